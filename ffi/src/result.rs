//! Result codes.

use std::ffi::c_char;

/// The result of a fallible call.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_result {
    /// Success; out-parameters were written.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// An argument is out of range (a rate, a setting, a name that is too long or not UTF-8).
    InvalidArgument = 2,
    /// A bug inside Trunkline was caught at the boundary; the handle may be unusable.
    Panic = 3,
    /// A bounded queue is full; nothing was taken. Retry after the engine has made progress.
    Full = 4,
    /// The session was closed (or its engine freed).
    Closed = 5,
    /// Nothing to return right now (no event, no outbound message, no audio).
    Empty = 6,
    /// The caller's buffer is too small for the item; nothing was taken (ask its size first).
    BufferTooSmall = 7,
    /// The session hit an internal error and was shut down; free it. The engine goes on.
    Failed = 8,
    /// The engine already has its maximum number of sessions.
    TooManySessions = 9,
    /// The operating system refused a resource (a thread, the wakeup fd).
    Io = 10,
    /// `trunkline_engine_wait` timed out.
    Timeout = 11,
    /// Encoded audio (trunkline_session_play_encoded) is corrupt, truncated or not supported:
    /// the stream was dropped and counted (`encoded_audio_errors`); the next bytes start a new one.
    BadAudio = 12,
    /// The call's recording (trunkline_session_config.record_path) could not be started: the file
    /// cannot be created, or its extension is not .wav, .opus or .ogg. The session was not opened.
    Record = 13,
}

/// A static, NUL-terminated English description of `result`, a trunkline_result value (passed as
/// an integer so that any value is defined: unknown codes get a generic text). Never NULL. Needs
/// no allocation; any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_result_message(result: u32) -> *const c_char {
    use trunkline_result as R;
    const ALL: [trunkline_result; 14] = [
        R::Ok,
        R::NullParameter,
        R::InvalidArgument,
        R::Panic,
        R::Full,
        R::Closed,
        R::Empty,
        R::BufferTooSmall,
        R::Failed,
        R::TooManySessions,
        R::Io,
        R::Timeout,
        R::BadAudio,
        R::Record,
    ];
    let text: &'static str = match ALL.into_iter().find(|&r| r as u32 == result) {
        Some(R::Ok) => "ok\0",
        Some(R::NullParameter) => "a required pointer argument was NULL\0",
        Some(R::InvalidArgument) => "an argument is out of range\0",
        Some(R::Panic) => "internal error (a panic was caught at the C boundary)\0",
        Some(R::Full) => "queue full: nothing was taken, retry later\0",
        Some(R::Closed) => "the session is closed\0",
        Some(R::Empty) => "nothing available right now\0",
        Some(R::BufferTooSmall) => "buffer too small for the item\0",
        Some(R::Failed) => "the session failed and was shut down\0",
        Some(R::TooManySessions) => "the engine's session limit is reached\0",
        Some(R::Io) => "the operating system refused a resource\0",
        Some(R::Timeout) => "timed out\0",
        Some(R::BadAudio) => "the encoded audio is corrupt, truncated or not supported\0",
        Some(R::Record) => {
            "the recording file cannot be created, or its extension is not .wav, .opus or .ogg\0"
        }
        None => "unknown result code\0",
    };
    text.as_ptr().cast()
}

impl From<trunkline::SessionError> for trunkline_result {
    fn from(e: trunkline::SessionError) -> Self {
        match e {
            trunkline::SessionError::Closed => Self::Closed,
            trunkline::SessionError::Full => Self::Full,
            trunkline::SessionError::InvalidArgument(_) => Self::InvalidArgument,
            trunkline::SessionError::Failed => Self::Failed,
            trunkline::SessionError::BadAudio(_) => Self::BadAudio,
        }
    }
}

impl From<trunkline::EngineError> for trunkline_result {
    fn from(e: trunkline::EngineError) -> Self {
        match e {
            trunkline::EngineError::Io(_) => Self::Io,
            trunkline::EngineError::Config(_)
            | trunkline::EngineError::Dialect(_)
            | trunkline::EngineError::Start(_) => Self::InvalidArgument,
            trunkline::EngineError::TooManySessions(_) => Self::TooManySessions,
            trunkline::EngineError::Shutdown => Self::Closed,
            trunkline::EngineError::Record { .. } => Self::Record,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN: &str = "unknown result code";

    fn message(code: u32) -> &'static str {
        // SAFETY: the function returns static NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(trunkline_result_message(code)) }.to_str().unwrap()
    }

    /// The codes the message function knows are kept by hand beside the enum: every value of the
    /// generated C enum must have its own text, and nothing past them.
    #[test]
    fn every_result_in_the_c_header_has_its_own_message() {
        let mut codes = crate::c_header::enum_values("TRUNKLINE_RESULT_");
        codes.sort_unstable();
        let dense: Vec<u32> = (0..codes.len() as u32).collect();
        assert_eq!(codes, dense, "trunkline_result values in include/trunkline.h");
        let mut texts: Vec<&str> = codes.iter().map(|&c| message(c)).collect();
        assert!(!texts.contains(&UNKNOWN), "a result without a message: {texts:?}");
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), codes.len(), "texts shared between results");
        let next = codes.len() as u32;
        for code in [next, next + 1, u32::MAX] {
            assert_eq!(message(code), UNKNOWN, "code {code}");
        }
        assert_eq!(message(trunkline_result::Ok as u32), "ok");
    }
}
