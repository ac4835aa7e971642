//! Sessions opened already started: for a host whose framework read the carrier's `start`
//! message itself and hands over only what it learned from it.

use crate::config::{opt_str, size_t, trunkline_session_config};
use crate::engine::{engine_ref, trunkline_engine};
use crate::result::trunkline_result;
use crate::session::{session_handle, trunkline_audio_encoding, trunkline_session};
use crate::versioned::{self, versioned};
use crate::{guard, try_out};
use std::ffi::c_char;
use trunkline::protocol::{AudioEncoding, MediaFormat, StreamStart, Track};

/// What a host knows of a stream whose `start` message it already read (input of
/// trunkline_session_open_started). Fill it from trunkline_stream_start_default, then set what
/// the carrier said; fields are only ever appended (see "VERSIONED CONFIGS" above).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_stream_start {
    /// sizeof(trunkline_stream_start) in the caller's header.
    pub struct_size: size_t,
    /// The stream's id (Twilio `streamSid`, Telnyx `stream_id`...): the dialect echoes it in what
    /// it sends back, so it must be the carrier's. NULL: empty (carriers whose messages carry none).
    pub stream_id: *const c_char,
    /// The call's id (Twilio `callSid`...). NULL: empty.
    pub call_id: *const c_char,
    /// The account's id (Twilio `accountSid`). NULL: empty.
    pub account_id: *const c_char,
    /// The carrier's audio encoding, a trunkline_audio_encoding value (default MULAW).
    pub encoding: u32,
    /// Its sample rate, Hz (default 8000).
    pub sample_rate: u32,
    /// Its channels (default 1).
    pub channels: u32,
    /// The call's custom parameters: `custom_parameter_count` names and as many values (NULL
    /// with a count of 0: none).
    pub custom_parameter_names: *const *const c_char,
    /// Values of the custom parameters, in the order of their names.
    pub custom_parameter_values: *const *const c_char,
    /// Number of custom parameters.
    pub custom_parameter_count: size_t,
}

versioned!(trunkline_stream_start {
    struct_size, stream_id, call_id, account_id, encoding, sample_rate, channels,
    custom_parameter_names, custom_parameter_values, custom_parameter_count,
} bools {});

impl trunkline_stream_start {
    fn defaults() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            stream_id: std::ptr::null(),
            call_id: std::ptr::null(),
            account_id: std::ptr::null(),
            encoding: trunkline_audio_encoding::Mulaw as u32,
            sample_rate: 8000,
            channels: 1,
            custom_parameter_names: std::ptr::null(),
            custom_parameter_values: std::ptr::null(),
            custom_parameter_count: 0,
        }
    }

    fn read(&self) -> Result<StreamStart, trunkline_result> {
        let encoding = match self.encoding {
            e if e == trunkline_audio_encoding::Mulaw as u32 => AudioEncoding::Mulaw,
            e if e == trunkline_audio_encoding::Alaw as u32 => AudioEncoding::Alaw,
            e if e == trunkline_audio_encoding::L16 as u32 => AudioEncoding::L16,
            e if e == trunkline_audio_encoding::G722 as u32 => AudioEncoding::G722,
            e if e == trunkline_audio_encoding::Opus as u32 => AudioEncoding::Opus,
            _ => return Err(trunkline_result::InvalidArgument),
        };
        let channels = u16::try_from(self.channels).map_err(|_| trunkline_result::InvalidArgument)?;
        let names = slice(self.custom_parameter_names, self.custom_parameter_count)?;
        let values = slice(self.custom_parameter_values, self.custom_parameter_count)?;
        let mut custom_parameters = Vec::with_capacity(names.len().min(256));
        for (&name, &value) in names.iter().zip(values) {
            let name = opt_str(name)?.ok_or(trunkline_result::NullParameter)?;
            custom_parameters.push((name, opt_str(value)?.unwrap_or_default()));
        }
        Ok(StreamStart {
            sequence: None,
            account_id: opt_str(self.account_id)?.unwrap_or_default(),
            stream_id: opt_str(self.stream_id)?.unwrap_or_default(),
            call_id: opt_str(self.call_id)?.unwrap_or_default(),
            tracks: vec![Track::Inbound],
            custom_parameters,
            media_format: MediaFormat { encoding, sample_rate: self.sample_rate, channels },
        })
    }
}

/// `count` pointers at `ptr` (NULL with 0: none), as `try_slice!` reads them.
fn slice<'a>(ptr: *const *const c_char, count: usize) -> Result<&'a [*const c_char], trunkline_result> {
    if count == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(trunkline_result::NullParameter);
    }
    if count > crate::max_elements(ptr) {
        return Err(trunkline_result::InvalidArgument);
    }
    // SAFETY: the header requires `custom_parameter_names` and `_values` to point to
    // `custom_parameter_count` readable pointers each.
    Ok(unsafe { std::slice::from_raw_parts(ptr, count) })
}

/// Writes the defaults (every string NULL; MULAW at 8000 Hz, one channel; no custom parameters)
/// into `*out`, a struct of `struct_size` bytes: pass sizeof(trunkline_stream_start). Only the
/// fields that fit in it are written; `struct_size` is stored in it. Results: OK; NULL_PARAMETER;
/// INVALID_ARGUMENT (`struct_size` smaller than a size_t or larger than this library's struct).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_stream_start_default(
    out: *mut trunkline_stream_start,
    struct_size: size_t,
) -> trunkline_result {
    guard(|| versioned::write(out, struct_size, trunkline_stream_start::defaults()))
}

/// Opens a session whose stream has already started, as trunkline_session_open does otherwise:
/// for a host whose framework read the carrier's `start` message itself (a WebSocket handler that
/// parsed it to route the call). The session's dialect takes `start` as if it had parsed that
/// message: the stream id it echoes back is `start->stream_id`, the caller's audio is read in
/// `start`'s format, and a STARTED event is reported first as usual. Push the carrier's messages
/// that follow (media, marks, stop); a `start` pushed again is refused as a duplicate
/// (PROTOCOL_ERROR event). On success `*out` receives the session (free it with
/// trunkline_session_free).
///
/// Results: OK; NULL_PARAMETER (also a custom parameter without its name); INVALID_ARGUMENT (a bad
/// `struct_size` here or in `config`, a bad setting or dialect, an encoding that is not a
/// trunkline_audio_encoding value, or a format the dialect or the engine cannot take);
/// RECORD (`config->record_path` cannot be recorded to); TOO_MANY_SESSIONS; CLOSED; IO. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_open_started(
    engine: *const trunkline_engine,
    config: *const trunkline_session_config,
    start: *const trunkline_stream_start,
    out: *mut *mut trunkline_session,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        if start.is_null() {
            return trunkline_result::NullParameter;
        }
        let config = match trunkline_session_config::read(config) {
            Ok(c) => c,
            Err(e) => return e,
        };
        let start = match versioned::read(start, trunkline_stream_start::defaults()).and_then(|s| s.read()) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let info = Box::new(start.clone());
        match engine.open_session_started(&config, start) {
            Ok(session) => {
                out.set(session_handle(session, Some(info)));
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        }
    })
}
