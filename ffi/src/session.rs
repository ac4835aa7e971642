//! The session handle: one call.

use crate::config::trunkline_session_config;
use crate::engine::{engine_ref, trunkline_engine};
use crate::event::trunkline_event;
use crate::result::trunkline_result;
use crate::{guard, guard_void, try_out, try_slice, try_slice_mut};
use std::ffi::{CStr, c_char};
use std::sync::{Mutex, MutexGuard};
use trunkline::protocol::{AudioEncoding, StreamStart, Track};
use trunkline::{Event, MessageKind, Session, SessionStats};

/// A call. Opaque.
pub struct trunkline_session {
    _private: [u8; 0],
}

/// Whether a WebSocket message is text or binary.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_message_kind {
    /// A text frame (Twilio's JSON).
    Text = 0,
    /// A binary frame.
    Binary = 1,
}

/// What the carrier said when the stream started (strings: trunkline_session_start_string).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_start_info {
    /// Bit 0: inbound track, bit 1: outbound track.
    pub tracks: u32,
    /// 0: µ-law, 1: A-law, 2: L16.
    pub encoding: u32,
    /// Sample rate of the carrier's audio, Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Number of custom parameters (see trunkline_session_custom_parameter).
    pub custom_parameter_count: size_t,
}

/// A string of the `start` message.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_start_field {
    /// callSid
    CallSid = 0,
    /// streamSid
    StreamSid = 1,
    /// accountSid
    AccountSid = 2,
}

#[allow(non_camel_case_types)]
type size_t = usize;

struct SessionBox {
    state: Mutex<SessionState>,
}

/// A new C handle for `session` (an offloaded call arrives with its `start` already known).
pub(crate) fn session_handle(session: Session, start: Option<Box<StreamStart>>) -> *mut trunkline_session {
    let b = SessionBox { state: Mutex::new(SessionState { session, start, closed: false }) };
    Box::into_raw(Box::new(b)).cast()
}

struct SessionState {
    session: Session,
    start: Option<Box<StreamStart>>,
    closed: bool,
}

impl SessionState {
    /// Closed by the host, or its engine was freed.
    fn closed(&self) -> bool {
        self.closed || self.session.status() == Err(trunkline::SessionError::Closed)
    }

    fn usable(&self) -> Result<(), trunkline_result> {
        if self.closed {
            return Err(trunkline_result::Closed);
        }
        self.session.status().map_err(trunkline_result::from)
    }
}

/// Locks a session handle. A poisoned lock (a panic while it was held) reports PANIC.
fn lock<'a>(ptr: *mut trunkline_session) -> Result<MutexGuard<'a, SessionState>, trunkline_result> {
    // SAFETY: a non-NULL `trunkline_session*` is a `Box<SessionBox>` from `trunkline_session_open`
    // that is not yet freed (the header's contract).
    let b = unsafe { ptr.cast::<SessionBox>().as_ref() }.ok_or(trunkline_result::NullParameter)?;
    b.state.lock().map_err(|_| trunkline_result::Panic)
}

/// Locks a session and checks it is open and healthy.
macro_rules! open_session {
    ($ptr:expr) => {
        match lock($ptr) {
            Ok(state) => match state.usable() {
                Ok(()) => state,
                Err(e) => return e,
            },
            Err(e) => return e,
        }
    };
}

/// Opens a session (a call) on `engine`. `config` may be NULL for the defaults. On success
/// `*out` receives a session the caller owns and must free with trunkline_session_free.
///
/// Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (a bad `struct_size`, a setting out of range:
/// rates, limits, `max_mark_name_bytes` over 255; a dialect this build does not speak, or not
/// UTF-8); TOO_MANY_SESSIONS; CLOSED (the engine is shutting down).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_open(
    engine: *const trunkline_engine,
    config: *const trunkline_session_config,
    out: *mut *mut trunkline_session,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        let config = match trunkline_session_config::read(config) {
            Ok(c) => c,
            Err(e) => return e,
        };
        match engine.open_session(&config) {
            Ok(session) => {
                out.set(session_handle(session, None));
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        }
    })
}

/// Hands one message received from the carrier to the engine: `len` bytes at `data` (copied;
/// the caller keeps ownership), received as a frame of `kind` (a trunkline_message_kind value,
/// passed as an integer so that any value is defined). Bad input is not an error here: it is
/// dropped and reported as a PROTOCOL_ERROR event. Results: OK; NULL_PARAMETER;
/// INVALID_ARGUMENT (`kind` is not a trunkline_message_kind); FULL (the inbound ring is full,
/// retry after the engine has caught up); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_push(
    session: *mut trunkline_session,
    data: *const u8,
    len: size_t,
    kind: u32,
) -> trunkline_result {
    guard(|| {
        let message = try_slice!(data, len);
        let mut s = open_session!(session);
        let kind = match kind {
            k if k == trunkline_message_kind::Text as u32 => MessageKind::Text,
            k if k == trunkline_message_kind::Binary as u32 => MessageKind::Binary,
            _ => return trunkline_result::InvalidArgument,
        };
        match s.session.push(message, kind) {
            Ok(()) => trunkline_result::Ok,
            Err(e) => e.into(),
        }
    })
}

/// Reads caller audio (mono s16 at the session's agent rate) into `out`, at most `capacity`
/// samples; `*out_samples` receives how many were written. Results: OK (at least one sample);
/// EMPTY (none ready); NULL_PARAMETER; INVALID_ARGUMENT (`capacity` 0); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_read_audio(
    session: *mut trunkline_session,
    out: *mut i16,
    capacity: size_t,
    out_samples: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_samples = try_out!(out_samples);
        if capacity == 0 {
            return trunkline_result::InvalidArgument;
        }
        let buf = try_slice_mut!(out, capacity);
        let mut s = open_session!(session);
        match s.session.read_audio(buf) {
            0 => trunkline_result::Empty,
            n => {
                out_samples.set(n);
                trunkline_result::Ok
            }
        }
    })
}

/// Queues agent audio: `samples` mono s16 samples at `rate` Hz (8000, 16000, 22050, 24000, 44100
/// or 48000), copied. Takes as much as fits; `*out_taken` receives the count (keep the rest and
/// retry later). Results: OK; FULL (nothing fit); NULL_PARAMETER; INVALID_ARGUMENT (rate);
/// CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_play(
    session: *mut trunkline_session,
    pcm: *const i16,
    samples: size_t,
    rate: u32,
    out_taken: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_taken = try_out!(out_taken);
        let pcm = try_slice!(pcm, samples);
        let mut s = open_session!(session);
        match s.session.play(pcm, rate) {
            Ok(n) => {
                out_taken.set(n);
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        }
    })
}

/// Places a mark named `name` (NUL-terminated UTF-8, at most `max_mark_name_bytes`, not starting
/// with "trunkline-sync-") after the audio played so far. A MARK_PLAYED event follows when the
/// caller has heard everything before it, or MARK_CLEARED if it was flushed. Results: OK;
/// NULL_PARAMETER; INVALID_ARGUMENT; FULL (too many marks outstanding); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_mark(
    session: *mut trunkline_session,
    name: *const c_char,
) -> trunkline_result {
    guard(|| {
        if name.is_null() {
            return trunkline_result::NullParameter;
        }
        // SAFETY: non-NULL; the header requires a NUL-terminated string.
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else {
            return trunkline_result::InvalidArgument;
        };
        let mut s = open_session!(session);
        match s.session.mark(name) {
            Ok(()) => trunkline_result::Ok,
            Err(e) => e.into(),
        }
    })
}

/// Stops the agent: queued audio is dropped, `clear` is sent, and an INTERRUPTED event reports
/// how much the caller heard. Audio played after this call is kept. Results: OK; NULL_PARAMETER;
/// FULL; CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_interrupt(session: *mut trunkline_session) -> trunkline_result {
    guard(|| {
        let mut s = open_session!(session);
        match s.session.interrupt() {
            Ok(()) => trunkline_result::Ok,
            Err(e) => e.into(),
        }
    })
}

/// Writes the size in bytes of the next outbound message into `*out_len`. Results: OK; EMPTY
/// (no message); NULL_PARAMETER; CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_outbound_len(
    session: *mut trunkline_session,
    out_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_len = try_out!(out_len);
        let mut s = open_session!(session);
        if s.session.is_offloaded() {
            return trunkline_result::InvalidArgument;
        }
        match s.session.outbound_len() {
            Some(n) => {
                out_len.set(n);
                trunkline_result::Ok
            }
            None => trunkline_result::Empty,
        }
    })
}

/// Takes the next message to send to the carrier: copies it into `buf` (not NUL-terminated),
/// writes its length and frame kind. Send it right away: the engine paces messages itself.
/// Results: OK; EMPTY (none); BUFFER_TOO_SMALL (nothing taken: see trunkline_session_outbound_len;
/// 4096 bytes always hold a media message); NULL_PARAMETER; CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_next_outbound(
    session: *mut trunkline_session,
    buf: *mut u8,
    capacity: size_t,
    out_len: *mut size_t,
    out_kind: *mut trunkline_message_kind,
) -> trunkline_result {
    guard(|| {
        let out_len = try_out!(out_len);
        let out_kind = try_out!(out_kind);
        let buf = try_slice_mut!(buf, capacity);
        let mut s = open_session!(session);
        if s.session.is_offloaded() {
            return trunkline_result::InvalidArgument;
        }
        let Some(needed) = s.session.outbound_len() else { return trunkline_result::Empty };
        if needed > buf.len() {
            return trunkline_result::BufferTooSmall;
        }
        match s.session.next_outbound_into(buf) {
            Some((kind, len)) => {
                out_len.set(len);
                out_kind.set(match kind {
                    MessageKind::Text => trunkline_message_kind::Text,
                    MessageKind::Binary => trunkline_message_kind::Binary,
                });
                trunkline_result::Ok
            }
            None => trunkline_result::Empty,
        }
    })
}

/// Takes the next event into `*out`. Results: OK; EMPTY (none); NULL_PARAMETER; CLOSED; FAILED.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_poll_event(
    session: *mut trunkline_session,
    out: *mut trunkline_event,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let mut s = open_session!(session);
        let Some(event) = s.session.poll_event() else { return trunkline_result::Empty };
        out.set(trunkline_event::from(&event));
        if let Event::Started(start) = event {
            s.start = Some(start);
        }
        trunkline_result::Ok
    })
}

/// Writes what the `start` message announced into `*out`. Results: OK; EMPTY (no STARTED event
/// polled yet); NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_start_info(
    session: *mut trunkline_session,
    out: *mut trunkline_start_info,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(start) = &s.start else { return trunkline_result::Empty };
        let f = start.media_format;
        out.set(trunkline_start_info {
            tracks: start.tracks.iter().fold(0, |acc, t| {
                acc | match t {
                    Track::Inbound => 1,
                    Track::Outbound => 2,
                }
            }),
            encoding: match f.encoding {
                AudioEncoding::Mulaw => 0,
                AudioEncoding::Alaw => 1,
                AudioEncoding::L16 => 2,
            },
            sample_rate: f.sample_rate,
            channels: u32::from(f.channels),
            custom_parameter_count: start.custom_parameters.len(),
        });
        trunkline_result::Ok
    })
}

/// Copies one string from the `start` message, `field` (a trunkline_start_field value, passed as
/// an integer so that any value is defined), into `buf` (NUL-terminated) and its length (without
/// the NUL) into `*out_len`. Results: OK; EMPTY (no STARTED event polled yet); BUFFER_TOO_SMALL
/// (needs length + 1); INVALID_ARGUMENT (unknown `field`); NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_start_string(
    session: *mut trunkline_session,
    field: u32,
    buf: *mut c_char,
    capacity: size_t,
    out_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_len = try_out!(out_len);
        let buf = try_slice_mut!(buf, capacity);
        let field = match field {
            f if f == trunkline_start_field::CallSid as u32 => trunkline_start_field::CallSid,
            f if f == trunkline_start_field::StreamSid as u32 => trunkline_start_field::StreamSid,
            f if f == trunkline_start_field::AccountSid as u32 => trunkline_start_field::AccountSid,
            _ => return trunkline_result::InvalidArgument,
        };
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(start) = &s.start else { return trunkline_result::Empty };
        let value = match field {
            trunkline_start_field::CallSid => &start.call_id,
            trunkline_start_field::StreamSid => &start.stream_id,
            trunkline_start_field::AccountSid => &start.account_id,
        };
        match copy_c_string(value, buf) {
            Some(n) => {
                out_len.set(n);
                trunkline_result::Ok
            }
            None => trunkline_result::BufferTooSmall,
        }
    })
}

/// Copies custom parameter `index` (in the order the carrier sent them) into `key` and `value`
/// (NUL-terminated), with their lengths. Results: OK; EMPTY (no such index, or no STARTED event
/// polled yet); BUFFER_TOO_SMALL; NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // Two C string outputs, each a buffer, capacity and length.
pub extern "C" fn trunkline_session_custom_parameter(
    session: *mut trunkline_session,
    index: size_t,
    key: *mut c_char,
    key_capacity: size_t,
    out_key_len: *mut size_t,
    value: *mut c_char,
    value_capacity: size_t,
    out_value_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_key_len = try_out!(out_key_len);
        let out_value_len = try_out!(out_value_len);
        let key = try_slice_mut!(key, key_capacity);
        let value = try_slice_mut!(value, value_capacity);
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some((k, v)) = s.start.as_ref().and_then(|st| st.custom_parameters.get(index)) else {
            return trunkline_result::Empty;
        };
        if k.len() >= key.len() || v.len() >= value.len() {
            return trunkline_result::BufferTooSmall;
        }
        out_key_len.set(copy_c_string(k, key).unwrap_or(0));
        out_value_len.set(copy_c_string(v, value).unwrap_or(0));
        trunkline_result::Ok
    })
}

fn copy_c_string(value: &str, buf: &mut [c_char]) -> Option<usize> {
    if value.len() >= buf.len() {
        return None;
    }
    for (dst, &b) in buf.iter_mut().zip(value.as_bytes()) {
        *dst = b as c_char;
    }
    buf[value.len()] = 0;
    Some(value.len())
}

/// Number of session counters (see trunkline_session_stats_name). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_stats_count() -> size_t {
    SessionStats::COUNT
}

/// The name of session counter `index` (static, NUL-terminated), or NULL past the end. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_stats_name(index: size_t) -> *const c_char {
    SessionStats::NAMES_NUL.get(index).map_or(std::ptr::null(), |n| n.as_ptr().cast())
}

/// Copies the session's counters (in trunkline_session_stats_name order) into `values`, at most
/// `capacity`; `*out_count` receives how many were written. Works on closed and failed sessions.
/// Results: OK; NULL_PARAMETER. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_stats(
    session: *mut trunkline_session,
    values: *mut u64,
    capacity: size_t,
    out_count: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_count = try_out!(out_count);
        let values = try_slice_mut!(values, capacity);
        let s = match lock(session) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let all = s.session.stats().values();
        let n = all.len().min(values.len());
        values[..n].copy_from_slice(&all[..n]);
        out_count.set(n);
        trunkline_result::Ok
    })
}

/// Closes the session: the engine stops working on it; every later call returns CLOSED (stats
/// still work). Closing twice is OK. Results: OK; NULL_PARAMETER. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_close(session: *mut trunkline_session) -> trunkline_result {
    guard(|| {
        let mut s = match lock(session) {
            Ok(s) => s,
            Err(e) => return e,
        };
        s.session.close();
        s.closed = true;
        trunkline_result::Ok
    })
}

/// Closes (if needed) and frees the session. NULL is a no-op. Must be the last call on it and
/// must not race with other calls on it.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_free(session: *mut trunkline_session) {
    guard_void(|| {
        if !session.is_null() {
            // SAFETY: made by `trunkline_session_open` via Box::into_raw, freed once (contract).
            drop(unsafe { Box::from_raw(session.cast::<SessionBox>()) });
        }
    });
}

/// Test hook (feature `test-hooks`): marks a session failed, as a panic in its pipeline would;
/// later calls return FAILED.
#[cfg(feature = "test-hooks")]
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_test_fail_session(session: *mut trunkline_session) -> trunkline_result {
    guard(|| match lock(session) {
        Ok(s) => {
            s.session.inject_failure();
            trunkline_result::Ok
        }
        Err(e) => e,
    })
}
