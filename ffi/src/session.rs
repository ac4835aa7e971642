//! The session handle: one call.

use crate::config::trunkline_session_config;
use crate::engine::{engine_ref, trunkline_engine};
use crate::event::trunkline_event;
use crate::result::trunkline_result;
use crate::versioned::{OutStruct, VersionedOutput, versioned};
use crate::{disjoint, guard, guard_void, try_out, try_slice, try_slice_mut};
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
    /// A text frame (the JSON messages of most carriers).
    Text = 0,
    /// A binary frame.
    Binary = 1,
}

/// How the carrier encodes its audio (trunkline_start_info.encoding). Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_audio_encoding {
    /// G.711 µ-law.
    Mulaw = 0,
    /// G.711 A-law.
    Alaw = 1,
    /// Signed 16-bit linear PCM.
    L16 = 2,
    /// G.722 (16 kHz audio).
    G722 = 3,
    /// Opus.
    Opus = 4,
}

impl From<AudioEncoding> for trunkline_audio_encoding {
    fn from(e: AudioEncoding) -> Self {
        match e {
            AudioEncoding::Mulaw => Self::Mulaw,
            AudioEncoding::Alaw => Self::Alaw,
            AudioEncoding::L16 => Self::L16,
            AudioEncoding::G722 => Self::G722,
            AudioEncoding::Opus => Self::Opus,
        }
    }
}

/// What the carrier said when the stream started (strings: trunkline_session_start_string). Set
/// `struct_size` before trunkline_session_start_info (see "VERSIONED OUTPUTS" above).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_start_info {
    /// sizeof(trunkline_start_info) in the caller's header: set by the caller before the call; the
    /// library writes no byte past it (see "VERSIONED OUTPUTS" above).
    pub struct_size: size_t,
    /// Bit 0: inbound track, bit 1: outbound track.
    pub tracks: u32,
    /// Encoding of the carrier's audio.
    pub encoding: trunkline_audio_encoding,
    /// Sample rate of the carrier's audio, Hz.
    pub sample_rate: u32,
    /// Channels of the carrier's audio.
    pub channels: u32,
    /// Number of custom parameters (see trunkline_session_custom_parameter).
    pub custom_parameter_count: size_t,
}

versioned!(trunkline_start_info {
    struct_size,
    tracks,
    encoding,
    sample_rate,
    channels,
    custom_parameter_count,
});

impl VersionedOutput for trunkline_start_info {
    /// The first version ends with `custom_parameter_count`.
    const FIRST_SIZE: usize =
        std::mem::offset_of!(Self, custom_parameter_count) + std::mem::size_of::<size_t>();
}

/// A string of the `start` message, by what it means whatever the carrier calls it. Values are
/// stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_start_field {
    /// The carrier's call identifier (Twilio callSid); empty when the carrier sends none.
    CallId = 0,
    /// The carrier's stream identifier (Twilio streamSid).
    StreamId = 1,
    /// The carrier's account identifier (Twilio accountSid); empty when the carrier sends none.
    AccountId = 2,
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
/// rates, limits, `max_mark_name_bytes` over 255; a dialect this build does not speak, an
/// option it cannot take, or not UTF-8); RECORD (`record_path` cannot be recorded to); IO (the
/// engine's recorder thread, started with its first recorded session, could not be);
/// TOO_MANY_SESSIONS; CLOSED (the engine is shutting down). Any thread.
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
/// INVALID_ARGUMENT (`kind` is not a trunkline_message_kind, or a session taken from the server,
/// which receives its messages); FULL (the inbound ring is full, retry after the engine has
/// caught up); CLOSED; FAILED. Any thread.
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

/// Tells the engine the carrier's connection closed. Carriers that send no stop message (Plivo,
/// Vonage, jambonz; AudioSocket without its hang-up message) end their stream this way: call it
/// when the socket closes, and the stream ends as with a stop (marks the caller heard reported
/// played, the others cleared, then STOPPED), after every message pushed before it, even those
/// still waiting in a full inbound ring. After the stream has ended it does nothing. Results: OK;
/// NULL_PARAMETER; INVALID_ARGUMENT (a session taken from the server, which tells the engine
/// itself); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_end_stream(session: *mut trunkline_session) -> trunkline_result {
    guard(|| {
        let mut s = open_session!(session);
        match s.session.end_stream() {
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

/// Reads caller audio as bytes in the session's agent format (trunkline_session_config.
/// agent_format) into `out`, at most `capacity` bytes; `*out_len` receives how many were written.
/// MULAW / ALAW: a G.711 code per sample at 8 kHz, exactly the carrier's bytes when it speaks the
/// same law at 8 kHz (gaps filled with the law's silence, 0xFF / 0xD5). PCM: s16le samples at
/// the agent rate, whole samples only. Results: OK (at least one byte); EMPTY (none ready);
/// NULL_PARAMETER; INVALID_ARGUMENT (`capacity` 0, or 1 for PCM: less than a sample, which would
/// never be filled); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_read_audio_bytes(
    session: *mut trunkline_session,
    out: *mut u8,
    capacity: size_t,
    out_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_len = try_out!(out_len);
        if capacity == 0 {
            return trunkline_result::InvalidArgument;
        }
        let buf = try_slice_mut!(out, capacity);
        let mut s = open_session!(session);
        if capacity < 2 && s.session.agent_format() == trunkline::AgentFormat::Pcm {
            return trunkline_result::InvalidArgument;
        }
        match s.session.read_audio_bytes(buf) {
            0 => trunkline_result::Empty,
            n => {
                out_len.set(n);
                trunkline_result::Ok
            }
        }
    })
}

/// Queues agent audio given as `len` bytes in the session's agent format, copied: MULAW / ALAW
/// codes at `rate` 8000 (sent to the carrier untouched when it takes the same law at 8 kHz), or
/// for a PCM agent s16le samples at `rate` (as trunkline_session_play). Takes as much as fits,
/// in whole samples; `*out_taken` receives the bytes taken (keep the rest and retry later).
/// Results: OK; FULL (nothing fit); NULL_PARAMETER; INVALID_ARGUMENT (rate); CLOSED; FAILED. Any
/// thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_play_bytes(
    session: *mut trunkline_session,
    data: *const u8,
    len: size_t,
    rate: u32,
    out_taken: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_taken = try_out!(out_taken);
        let data = try_slice!(data, len);
        let mut s = open_session!(session);
        match s.session.play_bytes(data, rate) {
            Ok(n) => {
                out_taken.set(n);
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        }
    })
}

/// A string argument (a mark name, a segment tag): NULL_PARAMETER for NULL, INVALID_ARGUMENT for
/// invalid UTF-8. Borrowed, not copied: it is used before the call returns.
fn str_arg<'a>(ptr: *const c_char) -> Result<&'a str, trunkline_result> {
    if ptr.is_null() {
        return Err(trunkline_result::NullParameter);
    }
    // SAFETY: non-NULL; the header requires a NUL-terminated string valid for the call, and the
    // callers use the borrow only within it.
    unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| trunkline_result::InvalidArgument)
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
        let name = match str_arg(name) {
            Ok(name) => name,
            Err(e) => return e,
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

/// Begins a segment tagged `tag` (NUL-terminated UTF-8, 1 to 63 bytes): the agent audio played
/// after this call belongs to it, until the next trunkline_session_begin_segment. BARGE_IN and
/// INTERRUPTED events then say which segment the caller was hearing, how much of it, and how many
/// later ones went unheard (trunkline_session_unheard_segment); they end every segment. Results:
/// OK; NULL_PARAMETER; INVALID_ARGUMENT (empty, too long, not UTF-8); FULL (32 segments queued
/// that the caller has not got past yet: nothing taken, retry once playout has moved on);
/// CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_begin_segment(
    session: *mut trunkline_session,
    tag: *const c_char,
) -> trunkline_result {
    guard(|| {
        let tag = match str_arg(tag) {
            Ok(tag) => tag,
            Err(e) => return e,
        };
        let mut s = open_session!(session);
        match s.session.begin_segment(tag) {
            Ok(()) => trunkline_result::Ok,
            Err(e) => e.into(),
        }
    })
}

/// Copies the tag of unheard segment `index` (0 to `unheard_segments` - 1, in the order begun) of
/// the last BARGE_IN or INTERRUPTED event polled into `buf` (NUL-terminated; a buffer of
/// TRUNKLINE_SEGMENT_TAG_CAPACITY always suffices), its length into `*out_len`. Valid until the
/// next such event is polled. Results: OK; EMPTY (no such index, or no such event polled yet);
/// BUFFER_TOO_SMALL; NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_unheard_segment(
    session: *mut trunkline_session,
    index: size_t,
    buf: *mut c_char,
    capacity: size_t,
    out_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let out_len = try_out!(out_len);
        let buf = try_slice_mut!(buf, capacity);
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(tag) = s.session.segments_at_cut().and_then(|r| r.unheard.get(index)) else {
            return trunkline_result::Empty;
        };
        match copy_c_string(tag, buf) {
            Some(n) => {
                out_len.set(n);
                trunkline_result::Ok
            }
            None => trunkline_result::BufferTooSmall,
        }
    })
}

/// Writes into `*out_ms` how much agent audio was accepted by trunkline_session_play and not yet
/// heard by the caller, ms: waiting in the engine and at the carrier (by the engine's playout
/// model, corrected with the carrier's echoes where it sends them). Results: OK; NULL_PARAMETER;
/// CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_queued_ms(
    session: *mut trunkline_session,
    out_ms: *mut u64,
) -> trunkline_result {
    guard(|| {
        let out_ms = try_out!(out_ms);
        let mut s = open_session!(session);
        out_ms.set(s.session.queued_ms());
        trunkline_result::Ok
    })
}

/// Writes the size in bytes of the next outbound message into `*out_len`. Results: OK; EMPTY
/// (no message); NULL_PARAMETER; INVALID_ARGUMENT (a session taken from the server, which sends
/// its messages); CLOSED; FAILED. Any thread.
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
/// 4096 bytes always hold a media message); NULL_PARAMETER; INVALID_ARGUMENT (a session taken
/// from the server, which sends its messages); CLOSED; FAILED. Any thread.
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

/// Takes the next event into `*out`, whose `struct_size` the caller sets (to
/// sizeof(trunkline_event)). Results: OK; EMPTY (none); NULL_PARAMETER; INVALID_ARGUMENT (a bad
/// `struct_size`: nothing taken); CLOSED; FAILED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_poll_event(
    session: *mut trunkline_session,
    out: *mut trunkline_event,
) -> trunkline_result {
    guard(|| {
        let out = match OutStruct::new(out) {
            Ok(out) => out,
            Err(e) => return e,
        };
        let mut s = open_session!(session);
        let Some(event) = s.session.poll_event() else { return trunkline_result::Empty };
        let mut c_event = trunkline_event::from(&event);
        if matches!(event, Event::BargeIn { .. } | Event::Interrupted { .. })
            && let Some(report) = s.session.segments_at_cut()
        {
            c_event = c_event.with_segments(report);
        }
        out.set(c_event);
        if let Event::Started(start) = event {
            s.start = Some(start);
        }
        trunkline_result::Ok
    })
}

/// Writes what the `start` message announced into `*out`, whose `struct_size` the caller sets (to
/// sizeof(trunkline_start_info)). Results: OK; EMPTY (no STARTED event polled yet, unless the
/// session was opened started); NULL_PARAMETER; INVALID_ARGUMENT (a bad `struct_size`); CLOSED.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_start_info(
    session: *mut trunkline_session,
    out: *mut trunkline_start_info,
) -> trunkline_result {
    guard(|| {
        let out = match OutStruct::new(out) {
            Ok(out) => out,
            Err(e) => return e,
        };
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(start) = &s.start else { return trunkline_result::Empty };
        let f = start.media_format;
        out.set(trunkline_start_info {
            struct_size: std::mem::size_of::<trunkline_start_info>(),
            tracks: start.tracks.iter().fold(0, |acc, t| {
                acc | match t {
                    Track::Inbound => 1,
                    Track::Outbound => 2,
                }
            }),
            encoding: f.encoding.into(),
            sample_rate: f.sample_rate,
            channels: u32::from(f.channels),
            custom_parameter_count: start.custom_parameters.len(),
        });
        trunkline_result::Ok
    })
}

/// Copies one string from the `start` message, `field` (a trunkline_start_field value, passed as
/// an integer so that any value is defined), into `buf` (NUL-terminated) and its length (without
/// the NUL) into `*out_len`. The string is the carrier's as sent, which may hold a NUL byte (JSON
/// `\u0000`): use `*out_len`, not strlen. Results: OK; EMPTY (no STARTED event polled yet,
/// unless the session was opened started); BUFFER_TOO_SMALL (needs length + 1: the length is
/// written to `*out_len`, `buf` is untouched); INVALID_ARGUMENT (unknown `field`);
/// NULL_PARAMETER; CLOSED. Any thread.
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
            f if f == trunkline_start_field::CallId as u32 => trunkline_start_field::CallId,
            f if f == trunkline_start_field::StreamId as u32 => trunkline_start_field::StreamId,
            f if f == trunkline_start_field::AccountId as u32 => trunkline_start_field::AccountId,
            _ => return trunkline_result::InvalidArgument,
        };
        let s = match lock(session) {
            Ok(s) if s.closed() => return trunkline_result::Closed,
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(start) = &s.start else { return trunkline_result::Empty };
        let value = match field {
            trunkline_start_field::CallId => &start.call_id,
            trunkline_start_field::StreamId => &start.stream_id,
            trunkline_start_field::AccountId => &start.account_id,
        };
        // Too small, the length tells the caller the capacity to ask with (length + 1).
        out_len.set(value.len());
        match copy_c_string(value, buf) {
            Some(_) => trunkline_result::Ok,
            None => trunkline_result::BufferTooSmall,
        }
    })
}

/// Copies custom parameter `index` (in the order the carrier sent them) into `key` and `value`
/// (NUL-terminated), with their lengths (use them, not strlen: a carrier's string may hold a NUL
/// byte). `key` and `value` must not overlap. Results: OK; EMPTY (no such index, or no STARTED
/// event polled yet, unless the session was opened started); BUFFER_TOO_SMALL (each buffer needs
/// its string's length + 1: both lengths are written, neither buffer is touched);
/// NULL_PARAMETER; INVALID_ARGUMENT (`key` and `value` overlap); CLOSED. Any thread.
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
        if !disjoint(key, key_capacity, value, value_capacity) {
            return trunkline_result::InvalidArgument;
        }
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
        // Too small, the lengths tell the caller the capacities to ask with (length + 1).
        out_key_len.set(k.len());
        out_value_len.set(v.len());
        if k.len() >= key.len() || v.len() >= value.len() {
            return trunkline_result::BufferTooSmall;
        }
        let _ = (copy_c_string(k, key), copy_c_string(v, value));
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

/// Runs `body` on an open, healthy session (for the exports of other modules); the results of a
/// closed, failed or NULL handle as [`open_session`] gives them.
pub(crate) fn with_open_session(
    session: *mut trunkline_session,
    body: impl FnOnce(&mut Session) -> trunkline_result,
) -> trunkline_result {
    let mut s = open_session!(session);
    body(&mut s.session)
}

/// Writes the session's agent format (a trunkline_agent_format, as its config set it) into
/// `*out`: how a host that did not open the session (one accepted from a server) learns what
/// trunkline_session_read_audio_bytes returns. Works on closed and failed sessions. Results: OK;
/// NULL_PARAMETER. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_agent_format(
    session: *mut trunkline_session,
    out: *mut crate::config::trunkline_agent_format,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let s = match lock(session) {
            Ok(s) => s,
            Err(e) => return e,
        };
        out.set(s.session.agent_format().into());
        trunkline_result::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{trunkline_engine_config, trunkline_engine_config_default};
    use crate::engine::{trunkline_engine_free, trunkline_engine_new};
    use crate::event::trunkline_event_kind;
    use crate::versioned::{self, Versioned};
    use std::mem::{MaybeUninit, offset_of, size_of};
    use std::ptr::{null, null_mut};

    /// Bytes past the caller's struct, which the library must never write.
    const GUARD: usize = 64;
    const POISON: u8 = 0xA5;

    /// An output struct of `T` followed by guard bytes, as a caller's memory: poisoned, then
    /// `struct_size` set.
    #[repr(C, align(8))]
    struct Guarded<T> {
        bytes: [MaybeUninit<u8>; 512],
        _t: std::marker::PhantomData<T>,
    }

    impl<T> Guarded<T> {
        fn new(struct_size: usize) -> Self {
            assert!(size_of::<T>() + GUARD <= 512);
            let mut g = Self { bytes: [MaybeUninit::new(POISON); 512], _t: std::marker::PhantomData };
            for (dst, b) in g.bytes.iter_mut().zip(struct_size.to_ne_bytes()) {
                *dst = MaybeUninit::new(b);
            }
            g
        }

        fn ptr(&mut self) -> *mut T {
            self.bytes.as_mut_ptr().cast()
        }

        /// Byte `i`, which the test knows to be initialised: the struct_size field, or a byte the
        /// library did not write (still POISON). The library copies whole structs, their padding
        /// too, which a Rust value need not have initialised: those bytes are never read here.
        fn byte(&self, i: usize) -> u8 {
            // SAFETY: every byte started initialised (POISON), and the callers ask only for the
            // struct_size field and bytes the library must not have written.
            unsafe { self.bytes[i].assume_init() }
        }

        fn struct_size(&self) -> usize {
            usize::from_ne_bytes(std::array::from_fn(|i| self.byte(i)))
        }

        fn untouched_from(&self, start: usize) -> bool {
            (start..self.bytes.len()).all(|i| self.byte(i) == POISON)
        }

        /// The struct, once the library wrote all of it (a `struct_size` of sizeof T).
        fn value(&self) -> T {
            // SAFETY: a whole `T` was written at the start of the (8-aligned) buffer.
            unsafe { self.bytes.as_ptr().cast::<T>().read() }
        }
    }

    /// An inline session that has received `connected` and a Twilio `start` (8 kHz µ-law, mono).
    fn started_session() -> (*mut trunkline_engine, *mut trunkline_session) {
        let mut config = MaybeUninit::<trunkline_engine_config>::uninit();
        assert_eq!(
            trunkline_engine_config_default(config.as_mut_ptr(), size_of::<trunkline_engine_config>()),
            trunkline_result::Ok
        );
        // SAFETY: written whole by trunkline_engine_config_default (OK, the full size).
        let mut config = unsafe { config.assume_init() };
        config.workers = 0;
        config.workers_per_core = false;
        let mut engine = null_mut();
        assert_eq!(trunkline_engine_new(&config, &mut engine), trunkline_result::Ok);
        let mut session = null_mut();
        assert_eq!(trunkline_session_open(engine, null(), &mut session), trunkline_result::Ok);
        for msg in [
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
            r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1",
              "streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{"a":"b"},
              "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#,
        ] {
            let r =
                trunkline_session_push(session, msg.as_ptr(), msg.len(), trunkline_message_kind::Text as u32);
            assert_eq!(r, trunkline_result::Ok);
        }
        (engine, session)
    }

    fn close(engine: *mut trunkline_engine, session: *mut trunkline_session) {
        trunkline_session_free(session);
        trunkline_engine_free(engine);
    }

    #[test]
    fn field_lists_cover_the_output_structs() {
        versioned::assert_covers::<trunkline_event>();
        versioned::assert_covers::<trunkline_start_info>();
        #[cfg(target_pointer_width = "64")]
        {
            versioned::assert_layouts::<trunkline_event>(&[(12, 392)]);
            versioned::assert_layouts::<trunkline_start_info>(&[(6, 32)]);
        }
        // The first versions, fixed forever (LP64): a field appended later must not change them.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(trunkline_event::FIRST_SIZE, 296);
            assert_eq!(trunkline_start_info::FIRST_SIZE, 32);
        }
        for (first, prefix) in [
            (trunkline_event::FIRST_SIZE, trunkline_event::prefix_len(trunkline_event::FIRST_SIZE)),
            (
                trunkline_start_info::FIRST_SIZE,
                trunkline_start_info::prefix_len(trunkline_start_info::FIRST_SIZE),
            ),
        ] {
            assert_eq!(first, prefix, "a first version ends at a field's end");
        }
        assert!(trunkline_event::FIRST_SIZE <= size_of::<trunkline_event>());
        assert!(trunkline_start_info::FIRST_SIZE <= size_of::<trunkline_start_info>());
    }

    #[test]
    fn outputs_are_written_within_struct_size_and_bad_sizes_take_nothing() {
        let (engine, session) = started_session();
        let size = size_of::<trunkline_event>();
        // Refused sizes write nothing and leave the event queued.
        for bad in [0, 7, size_of::<usize>(), trunkline_event::FIRST_SIZE - 1, size + 1] {
            let mut ev = Guarded::<trunkline_event>::new(bad);
            assert_eq!(
                trunkline_session_poll_event(session, ev.ptr()),
                trunkline_result::InvalidArgument,
                "{bad}"
            );
            assert_eq!(ev.struct_size(), bad);
            assert!(ev.untouched_from(size_of::<usize>()), "{bad}");
        }
        assert_eq!(trunkline_session_poll_event(session, null_mut()), trunkline_result::NullParameter);
        let mut ev = Guarded::<trunkline_event>::new(size);
        assert_eq!(trunkline_session_poll_event(session, ev.ptr()), trunkline_result::Ok);
        assert!(ev.untouched_from(size), "bytes past struct_size written");
        assert_eq!(ev.struct_size(), size);
        assert_eq!(ev.value().kind, trunkline_event_kind::Connected);
        assert_eq!(trunkline_session_poll_event(session, ev.ptr()), trunkline_result::Ok);
        let started = ev.value();
        assert_eq!(started.kind, trunkline_event_kind::Started);
        assert_eq!(started.name[..4].iter().map(|&c| c as u8).collect::<Vec<_>>(), b"CA1\0");

        let size = size_of::<trunkline_start_info>();
        for bad in [0, trunkline_start_info::FIRST_SIZE - 1, size + 1] {
            let mut info = Guarded::<trunkline_start_info>::new(bad);
            assert_eq!(trunkline_session_start_info(session, info.ptr()), trunkline_result::InvalidArgument);
            assert!(info.untouched_from(size_of::<usize>()), "{bad}");
        }
        let mut info = Guarded::<trunkline_start_info>::new(size);
        assert_eq!(trunkline_session_start_info(session, info.ptr()), trunkline_result::Ok);
        assert!(info.untouched_from(size), "bytes past struct_size written");
        let info = info.value();
        assert_eq!(info.struct_size, size);
        assert_eq!(info.tracks, 1);
        assert_eq!(info.encoding, trunkline_audio_encoding::Mulaw);
        assert_eq!((info.sample_rate, info.channels, info.custom_parameter_count), (8000, 1, 1));
        close(engine, session);
    }

    #[test]
    fn start_strings_are_named_by_meaning() {
        let (engine, session) = started_session();
        let mut ev = Guarded::<trunkline_event>::new(size_of::<trunkline_event>());
        while trunkline_session_poll_event(session, ev.ptr()) == trunkline_result::Ok {}
        let mut buf: [c_char; 16] = [0; 16];
        let mut len = 0;
        for (field, want) in [
            (trunkline_start_field::CallId, "CA1"),
            (trunkline_start_field::StreamId, "MZ1"),
            (trunkline_start_field::AccountId, "AC1"),
        ] {
            let r =
                trunkline_session_start_string(session, field as u32, buf.as_mut_ptr(), buf.len(), &mut len);
            assert_eq!(r, trunkline_result::Ok);
            assert_eq!(buf[..len].iter().map(|&c| c as u8).collect::<Vec<_>>(), want.as_bytes());
        }
        let r = trunkline_session_start_string(session, 3, buf.as_mut_ptr(), buf.len(), &mut len);
        assert_eq!(r, trunkline_result::InvalidArgument);
        close(engine, session);
    }

    #[test]
    fn audio_encodings_have_their_c_values() {
        assert_eq!(trunkline_audio_encoding::from(AudioEncoding::Mulaw) as u32, 0);
        assert_eq!(trunkline_audio_encoding::from(AudioEncoding::Alaw) as u32, 1);
        assert_eq!(trunkline_audio_encoding::from(AudioEncoding::L16) as u32, 2);
        assert_eq!(trunkline_audio_encoding::from(AudioEncoding::G722) as u32, 3);
        assert_eq!(trunkline_audio_encoding::from(AudioEncoding::Opus) as u32, 4);
        assert_eq!(offset_of!(trunkline_start_info, struct_size), 0);
        assert_eq!(offset_of!(trunkline_event, struct_size), 0);
    }
}
