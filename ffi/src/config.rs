//! Configuration structs. Fill them with the `_default` functions, then change what you need, so
//! that fields added later get their defaults.

use crate::result::trunkline_result;
use crate::try_out;
use trunkline::vad::VadConfig;
use trunkline::{BargeInConfig, EngineConfig, SessionConfig};

/// Engine settings.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_engine_config {
    /// Worker threads; 0 = inline mode (your calls do the processing). At most 1024.
    pub workers: u32,
    /// If true, `workers` is ignored and one worker per core is started.
    pub workers_per_core: bool,
    /// Most sessions open at once, 1..=65536.
    pub max_sessions: u32,
    /// Longest a worker sleeps while it has sessions, ms.
    pub tick_ms: u32,
    /// Nice value the worker threads ask for, -20..=19 (default -10: woken workers get a core
    /// sooner); 0 leaves them alone. Without CAP_SYS_NICE it may be refused: see
    /// trunkline_engine_prioritised_workers.
    pub worker_nice: i32,
}

/// Session settings (see docs/settings.md for meanings and defaults).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_session_config {
    /// Rate of the caller PCM you read: 8000, 16000, 24000 or 48000.
    pub agent_rate: u32,
    /// The rate you usually play at (8000, 16000, 22050, 24000, 44100 or 48000).
    pub play_rate: u32,
    /// webrtc-vad aggressiveness 0..=3.
    pub vad_aggressiveness: u32,
    /// Voiced audio needed to confirm speech, ms.
    pub vad_min_speech_ms: u32,
    /// Non-speech needed to end speech, ms.
    pub vad_hangover_ms: u32,
    /// Whether caller speech interrupts agent audio.
    pub barge_in_enabled: bool,
    /// Caller speech needed (from its onset) to interrupt, ms.
    pub barge_in_min_speech_ms: u32,
    /// Most agent audio the carrier holds unplayed, ms (at least 40).
    pub lead_ms: u32,
    /// Interval between hidden sync marks, ms of audio (0: off).
    pub sync_mark_interval_ms: u32,
    /// A pause in agent audio this long starts a new utterance, ms.
    pub utterance_gap_ms: u32,
    /// Largest message accepted, bytes (at most 16 MiB).
    pub max_message_bytes: size_t,
    /// Largest decoded media payload accepted, bytes (at most 16 MiB).
    pub max_payload_bytes: size_t,
    /// How long a media gap is waited for before silence fills it, ms.
    pub reorder_window_ms: u32,
    /// Larger timestamp gaps re-anchor the stream, ms.
    pub max_gap_fill_ms: u32,
    /// Host → engine message ring, bytes: at least 2 × (max_message_bytes + 13), since a message
    /// never wraps around the ring's end (at most 256 MiB).
    pub inbound_ring_bytes: size_t,
    /// Host → engine agent-audio ring, bytes: a hand-off the engine empties into its outbound
    /// buffer, so it bounds what one trunkline_session_play call takes (at least 8604 with
    /// 128-byte mark names, at most 256 MiB).
    pub play_ring_bytes: size_t,
    /// Agent audio held for pacing, ms (260..=600000).
    pub outbound_buffer_ms: u32,
    /// Caller PCM waiting to be read, ms (at most 600000).
    pub agent_ring_ms: u32,
    /// Engine → host outbound message ring, bytes (at most 256 MiB).
    pub outbound_ring_bytes: size_t,
    /// Events waiting to be polled (at most 1048576).
    pub event_capacity: size_t,
    /// Longest mark name, bytes (at most 255 through this ABI).
    pub max_mark_name_bytes: size_t,
    /// Most marks outstanding at once (at most 65536).
    pub max_pending_marks: size_t,
    /// How long after your last read of caller audio (poll of events) you count as reading, ms
    /// (at most 600000): while you do, a full caller PCM ring (event queue) holds the carrier's
    /// messages back (push then returns FULL) instead of dropping; 0 drops at once.
    pub read_hold_ms: u32,
}

/// `size_t`, spelled so cbindgen writes `size_t`.
#[allow(non_camel_case_types)]
pub type size_t = usize;

/// Longest mark name the C ABI carries (the event's `name` buffer holds it plus a NUL).
pub const TRUNKLINE_MAX_NAME_BYTES: usize = 255;

// Upper bounds on the sizes a C caller can ask for. The engine allocates these up front, and a
// failed allocation aborts the process, so a wild value from C must be refused here
// (INVALID_ARGUMENT) instead. Each is far above any sensible setting.
/// Most worker threads.
const MAX_WORKERS: u32 = 1024;
/// Most sessions per engine (each worker preallocates a slot per session).
const MAX_SESSIONS: u32 = 65_536;
/// Largest message or payload limit.
const MAX_MESSAGE_BYTES: usize = 16 << 20;
/// Largest ring.
const MAX_RING_BYTES: usize = 256 << 20;
/// Longest audio buffer, ms.
const MAX_BUFFER_MS: u32 = 600_000;
/// Largest event queue.
const MAX_EVENTS: usize = 1 << 20;
/// Most marks outstanding (each preallocates a name buffer).
const MAX_PENDING_MARKS: usize = 65_536;
/// Size of trunkline_event's `name` buffer: TRUNKLINE_MAX_NAME_BYTES plus the NUL.
pub const TRUNKLINE_EVENT_NAME_CAPACITY: usize = 256;

impl From<&EngineConfig> for trunkline_engine_config {
    fn from(c: &EngineConfig) -> Self {
        Self {
            workers: c.workers.unwrap_or(0) as u32,
            workers_per_core: c.workers.is_none(),
            max_sessions: c.max_sessions as u32,
            tick_ms: c.tick_ms,
            worker_nice: c.worker_nice,
        }
    }
}

impl trunkline_engine_config {
    /// The engine's config, or `None` if a value is out of the ABI's range.
    pub(crate) fn engine_config(&self) -> Option<EngineConfig> {
        let valid = (1..=MAX_SESSIONS).contains(&self.max_sessions)
            && (self.workers_per_core || self.workers <= MAX_WORKERS)
            && (-20..=19).contains(&self.worker_nice);
        valid.then(|| EngineConfig::from(self))
    }
}

impl From<&trunkline_engine_config> for EngineConfig {
    fn from(c: &trunkline_engine_config) -> Self {
        Self {
            workers: if c.workers_per_core { None } else { Some(c.workers as usize) },
            max_sessions: c.max_sessions as usize,
            tick_ms: c.tick_ms,
            worker_nice: c.worker_nice,
        }
    }
}

impl From<&SessionConfig> for trunkline_session_config {
    fn from(c: &SessionConfig) -> Self {
        Self {
            agent_rate: c.agent_rate,
            play_rate: c.play_rate,
            vad_aggressiveness: u32::from(c.vad.aggressiveness),
            vad_min_speech_ms: c.vad.min_speech_ms,
            vad_hangover_ms: c.vad.hangover_ms,
            barge_in_enabled: c.barge_in.enabled,
            barge_in_min_speech_ms: c.barge_in.min_speech_ms,
            lead_ms: c.lead_ms,
            sync_mark_interval_ms: c.sync_mark_interval_ms,
            utterance_gap_ms: c.utterance_gap_ms,
            max_message_bytes: c.max_message_bytes,
            max_payload_bytes: c.max_payload_bytes,
            reorder_window_ms: c.reorder_window_ms,
            max_gap_fill_ms: c.max_gap_fill_ms,
            inbound_ring_bytes: c.inbound_ring_bytes,
            play_ring_bytes: c.play_ring_bytes,
            outbound_buffer_ms: c.outbound_buffer_ms,
            agent_ring_ms: c.agent_ring_ms,
            outbound_ring_bytes: c.outbound_ring_bytes,
            event_capacity: c.event_capacity,
            max_mark_name_bytes: c.max_mark_name_bytes,
            max_pending_marks: c.max_pending_marks,
            read_hold_ms: c.read_hold_ms,
        }
    }
}

impl trunkline_session_config {
    /// The engine's config, or `None` if a value cannot be represented.
    // Settings this ABI does not carry keep their defaults (`..Default::default()` stays needed
    // as the engine's configs grow).
    #[allow(clippy::needless_update)]
    pub(crate) fn engine_config(self) -> Option<SessionConfig> {
        let in_range = self.max_mark_name_bytes <= TRUNKLINE_MAX_NAME_BYTES
            && self.max_message_bytes <= MAX_MESSAGE_BYTES
            && self.max_payload_bytes <= MAX_MESSAGE_BYTES
            && self.inbound_ring_bytes <= MAX_RING_BYTES
            && self.play_ring_bytes <= MAX_RING_BYTES
            && self.outbound_ring_bytes <= MAX_RING_BYTES
            && self.outbound_buffer_ms <= MAX_BUFFER_MS
            && self.agent_ring_ms <= MAX_BUFFER_MS
            && self.read_hold_ms <= MAX_BUFFER_MS
            && self.event_capacity <= MAX_EVENTS
            && self.max_pending_marks <= MAX_PENDING_MARKS;
        if !in_range {
            return None;
        }
        let vad = VadConfig {
            aggressiveness: u8::try_from(self.vad_aggressiveness).ok()?,
            min_speech_ms: self.vad_min_speech_ms,
            hangover_ms: self.vad_hangover_ms,
            ..VadConfig::default()
        };
        let barge_in = BargeInConfig {
            enabled: self.barge_in_enabled,
            min_speech_ms: self.barge_in_min_speech_ms,
            ..BargeInConfig::default()
        };
        Some(SessionConfig {
            // This ABI does not choose a dialect yet: the default (Twilio).
            dialect: SessionConfig::default().dialect,
            agent_rate: self.agent_rate,
            play_rate: self.play_rate,
            vad,
            barge_in,
            lead_ms: self.lead_ms,
            sync_mark_interval_ms: self.sync_mark_interval_ms,
            utterance_gap_ms: self.utterance_gap_ms,
            max_message_bytes: self.max_message_bytes,
            max_payload_bytes: self.max_payload_bytes,
            reorder_window_ms: self.reorder_window_ms,
            max_gap_fill_ms: self.max_gap_fill_ms,
            inbound_ring_bytes: self.inbound_ring_bytes,
            play_ring_bytes: self.play_ring_bytes,
            outbound_buffer_ms: self.outbound_buffer_ms,
            agent_ring_ms: self.agent_ring_ms,
            outbound_ring_bytes: self.outbound_ring_bytes,
            event_capacity: self.event_capacity,
            max_mark_name_bytes: self.max_mark_name_bytes,
            max_pending_marks: self.max_pending_marks,
            read_hold_ms: self.read_hold_ms,
        })
    }
}

/// Writes the default engine settings (one worker per core) into `*out`.
/// Returns NULL_PARAMETER if `out` is NULL. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_config_default(out: *mut trunkline_engine_config) -> trunkline_result {
    crate::guard(|| {
        let out = try_out!(out);
        out.set((&EngineConfig::default()).into());
        trunkline_result::Ok
    })
}

/// Writes the default session settings (telephone defaults, agent rate 16 kHz) into `*out`.
/// Returns NULL_PARAMETER if `out` is NULL. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_config_default(out: *mut trunkline_session_config) -> trunkline_result {
    crate::guard(|| {
        let out = try_out!(out);
        out.set((&SessionConfig::default()).into());
        trunkline_result::Ok
    })
}
