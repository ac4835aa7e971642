//! Configuration structs. Fill them with the `_default` functions, then change what you need, so
//! that fields added later get their defaults. Each begins with its `struct_size` (see
//! [`crate::versioned`] for how a struct grows).

use crate::result::trunkline_result;
use crate::versioned::{self, versioned};
use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use trunkline::vad::VadConfig;
use trunkline::{AgentFormat, BargeInConfig, EngineConfig, SessionConfig};

/// Engine settings. Fill with trunkline_engine_config_default, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_engine_config {
    /// sizeof(trunkline_engine_config) in the caller's header: set by
    /// trunkline_engine_config_default (see "VERSIONED CONFIGS" above).
    pub struct_size: size_t,
    /// Worker threads; 0 = inline mode (your calls do the processing). At most 1024.
    pub workers: u32,
    /// If true, `workers` is ignored and one worker per core is started.
    pub workers_per_core: bool,
    /// Most sessions open at once, 1..=65536; times the workers (or the cores, with
    /// `workers_per_core`), at most 2^20: each worker has room for every session.
    pub max_sessions: u32,
    /// Longest a worker sleeps while it has sessions, ms.
    pub tick_ms: u32,
    /// Nice value the worker threads ask for, -20..=19 (default -10: woken workers get a core
    /// sooner); 0 leaves them alone. Without CAP_SYS_NICE it may be refused: see
    /// trunkline_engine_prioritised_workers.
    pub worker_nice: i32,
}

/// Session settings (see docs/settings.md for meanings and defaults). Fill with
/// trunkline_session_config_default, then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_session_config {
    /// sizeof(trunkline_session_config) in the caller's header: set by
    /// trunkline_session_config_default (see "VERSIONED CONFIGS" above).
    pub struct_size: size_t,
    /// Rate of the caller PCM you read: 8000, 16000, 24000 or 48000.
    pub agent_rate: u32,
    /// The rate you usually play at (8000, 16000, 22050, 24000, 44100 or 48000).
    pub play_rate: u32,
    /// Speech detection's strictness, 0 (calls most audio speech) ..= 3 (the spectral
    /// classifier's thresholds: the C ABI always uses the spectral backend).
    pub vad_aggressiveness: u32,
    /// Voiced audio needed to confirm speech, ms.
    pub vad_min_speech_ms: u32,
    /// Non-speech needed to end speech, ms.
    pub vad_hangover_ms: u32,
    /// Whether caller speech interrupts agent audio.
    pub barge_in_enabled: bool,
    /// Voiced caller speech over agent audio needed to interrupt it (from its first voiced frame
    /// to its last, not from its onset), ms.
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
    /// The carrier's protocol, by name: "twilio" (the default; also Twilio-compatible carriers),
    /// with its options if it needs any ("telnyx;codec=L16;rate=16000", "exotel;rate=16000").
    /// NULL or "" chooses the default. NUL-terminated UTF-8, read during the call only. A name
    /// this build does not speak, or an option the dialect cannot take, is INVALID_ARGUMENT.
    pub dialect: *const c_char,
    /// The agent's audio format, both ways: a trunkline_agent_format (PCM by default). With
    /// MULAW or ALAW, `agent_rate` must be 8000; read the caller's codes with
    /// trunkline_session_read_audio_bytes and play codes with trunkline_session_play_bytes.
    pub agent_format: u32,
    /// A file the call is recorded to, in stereo at the rate the caller's audio is delivered at
    /// (the carrier's; 16 kHz for G.722; Opus's decoding rate): the caller on the first
    /// channel, the agent as the caller heard it on the second. Created when the session opens,
    /// written by an engine thread of its own (never a worker), closed when the stream stops, the
    /// session is freed or the engine is. Its extension chooses the format: ".wav" (16-bit PCM),
    /// ".opus" or ".ogg" (Ogg Opus). NULL or "": no recording. NUL-terminated UTF-8, read during
    /// the call only. A file that cannot be created or another extension is RECORD (the session
    /// is not opened). Not for trunkline_server_config.session (INVALID_ARGUMENT there: every call
    /// would write the same file).
    pub record_path: *const c_char,
    /// Echo-aware speech detection for lines that carry the agent's voice back: caller audio the
    /// agent's echo explains is not taken for speech, so the agent does not barge in on itself.
    /// Off by default (on a line without echo it also masks some soft speech over the agent).
    pub vad_echo_aware: bool,
    /// Report the end of the caller's turn (END_OF_TURN events): early when the speech ended
    /// like a finished phrase, else with speech stopped. Off by default.
    pub vad_end_of_turn_enabled: bool,
    /// Silence after a finished-sounding phrase before its END_OF_TURN, ms (default 140, rounded
    /// up to 20 ms frames; capped by vad_hangover_ms).
    pub vad_end_of_turn_min_silence_ms: u32,
    /// Confidence, percent (1..=99, default 35), the phrase's prosody must reach for an early
    /// END_OF_TURN: higher waits for the hangover more often.
    pub vad_end_of_turn_threshold: u32,
    /// While caller speech over the agent is not yet long enough to barge in, the agent audio not
    /// yet sent is turned down this many dB (a 10 ms ramp), and back up if the speech stops short;
    /// the caller hears the bot back off about 200 ms after speaking up. 0..=255, default 18; 0:
    /// off.
    pub barge_in_duck_db: u32,
    /// Silence after an unfinished-sounding phrase before its END_OF_TURN, ms (rounded up to 20 ms
    /// frames; at most 10000, above is INVALID_ARGUMENT). 0, the default: the hangover, the
    /// END_OF_TURN coming with SPEECH_STOPPED. Longer than vad_hangover_ms, it comes after
    /// SPEECH_STOPPED, so a pause inside a sentence shorter than it is not taken for the end of the
    /// turn (see docs/speech.md).
    pub vad_end_of_turn_max_silence_ms: u32,
    /// On a noisy line, speech over the agent that stopped short of barge_in_min_speech_ms and
    /// speech voiced again within this long of its last voiced frame count as one utterance
    /// (noise splits "rear ... left" into two short speeches), ms; at most 2000 (above is
    /// INVALID_ARGUMENT when the session opens). Default 800; 0: off, each speech counts alone.
    /// Speech heard clearly is never joined (see docs/speech.md).
    pub barge_in_rejoin_within_ms: u32,
    /// Deliver the caller's audio (trunkline_session_read_audio and _bytes) with the agent's own
    /// voice, echoed back on the line, removed by an adaptive echo canceller fed the agent's audio
    /// as the carrier played it. Needs vad_echo_aware with the spectral backend (INVALID_ARGUMENT
    /// at open without it). The canceller works at 8 kHz: a wider carrier stream reaches the agent
    /// through 8 kHz while this is on (the caller's band up to 3.9 kHz, at the agent's rate).
    /// Speech detection hears the audio as received. Off by default (about 4 us per 20 ms frame
    /// while the agent's audio echoes, 67 KiB more per session).
    pub echo_reduction: bool,
}

/// The agent's audio format (trunkline_session_config.agent_format). Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_agent_format {
    /// Signed 16-bit samples at the agent rate.
    Pcm = 0,
    /// G.711 µ-law at 8 kHz, a byte per sample: passed through untouched to and from a carrier
    /// that speaks µ-law at 8 kHz.
    Mulaw = 1,
    /// G.711 A-law at 8 kHz, a byte per sample (the same, for A-law carriers).
    Alaw = 2,
}

impl From<AgentFormat> for trunkline_agent_format {
    fn from(f: AgentFormat) -> Self {
        match f {
            AgentFormat::Pcm => Self::Pcm,
            AgentFormat::Mulaw => Self::Mulaw,
            AgentFormat::Alaw => Self::Alaw,
        }
    }
}

/// The format a C value names, if any.
fn agent_format(value: u32) -> Option<AgentFormat> {
    [AgentFormat::Pcm, AgentFormat::Mulaw, AgentFormat::Alaw]
        .into_iter()
        .find(|&f| trunkline_agent_format::from(f) as u32 == value)
}

versioned!(trunkline_engine_config {
    struct_size, workers, workers_per_core, max_sessions, tick_ms, worker_nice,
} bools { workers_per_core });

versioned!(trunkline_session_config {
    struct_size, agent_rate, play_rate, vad_aggressiveness, vad_min_speech_ms, vad_hangover_ms,
    barge_in_enabled, barge_in_min_speech_ms, lead_ms, sync_mark_interval_ms, utterance_gap_ms,
    max_message_bytes, max_payload_bytes, reorder_window_ms, max_gap_fill_ms, inbound_ring_bytes,
    play_ring_bytes, outbound_buffer_ms, agent_ring_ms, outbound_ring_bytes, event_capacity,
    max_mark_name_bytes, max_pending_marks, read_hold_ms, dialect, agent_format, record_path,
    vad_echo_aware, vad_end_of_turn_enabled, vad_end_of_turn_min_silence_ms, vad_end_of_turn_threshold,
    barge_in_duck_db, vad_end_of_turn_max_silence_ms, barge_in_rejoin_within_ms, echo_reduction,
} bools { barge_in_enabled, vad_echo_aware, vad_end_of_turn_enabled, echo_reduction });

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
            struct_size: std::mem::size_of::<Self>(),
            workers: c.workers.unwrap_or(0) as u32,
            workers_per_core: c.workers.is_none(),
            max_sessions: c.max_sessions as u32,
            tick_ms: c.tick_ms,
            worker_nice: c.worker_nice,
        }
    }
}

impl trunkline_engine_config {
    /// The engine's config from a caller's (possibly older) struct at `ptr`; NULL: the defaults.
    /// INVALID_ARGUMENT for a bad `struct_size` or a value out of the ABI's range.
    pub(crate) fn read(ptr: *const Self) -> Result<EngineConfig, trunkline_result> {
        if ptr.is_null() {
            return Ok(EngineConfig::default());
        }
        let c = versioned::read(ptr, Self::from(&EngineConfig::default()))?;
        c.engine_config().ok_or(trunkline_result::InvalidArgument)
    }

    /// The engine's config, or `None` if a value is out of the ABI's range.
    fn engine_config(&self) -> Option<EngineConfig> {
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
            struct_size: std::mem::size_of::<Self>(),
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
            // NULL: the default dialect, whichever the library's is (a static string could not
            // carry `c.dialect` anyway).
            dialect: std::ptr::null(),
            agent_format: trunkline_agent_format::from(c.agent_format) as u32,
            // NULL: no recording (a static pointer could not carry a path either).
            record_path: std::ptr::null(),
            vad_echo_aware: c.vad.echo_aware,
            vad_end_of_turn_enabled: c.vad.end_of_turn_enabled,
            vad_end_of_turn_min_silence_ms: c.vad.end_of_turn_min_silence_ms,
            vad_end_of_turn_threshold: u32::from(c.vad.end_of_turn_threshold),
            barge_in_duck_db: u32::from(c.barge_in.duck_db),
            vad_end_of_turn_max_silence_ms: c.vad.end_of_turn_max_silence_ms,
            barge_in_rejoin_within_ms: c.barge_in.rejoin_within_ms,
            echo_reduction: c.echo_reduction,
        }
    }
}

impl trunkline_session_config {
    /// The engine's config from a caller's (possibly older) struct at `ptr`; NULL: the defaults.
    /// INVALID_ARGUMENT for a bad `struct_size`, a value out of range, or a dialect (with its
    /// options) the engine does not take.
    pub(crate) fn read(ptr: *const Self) -> Result<SessionConfig, trunkline_result> {
        if ptr.is_null() {
            return Ok(SessionConfig::default());
        }
        let c = versioned::read(ptr, Self::from(&SessionConfig::default()))?;
        let mut config = c.engine_config().ok_or(trunkline_result::InvalidArgument)?;
        if let Some(name) = opt_str(c.dialect)?.filter(|name| !name.is_empty()) {
            // Checked here too, not only when a session opens: the offload server opens them later.
            // With its options (`telnyx;codec=L16;rate=16000`), as every API takes it.
            if trunkline::protocol::dialect_by_name(&name).is_err() {
                return Err(trunkline_result::InvalidArgument);
            }
            config.dialect = name;
        }
        // The engine checks the extension and creates the file when the session opens (RECORD).
        config.record_path = opt_str(c.record_path)?.filter(|path| !path.is_empty()).map(PathBuf::from);
        Ok(config)
    }

    /// The engine's config but its dialect (the default), or `None` if a value cannot be
    /// represented.
    // Settings this ABI does not carry keep their defaults (`..Default::default()` stays needed
    // as the engine's configs grow).
    #[allow(clippy::needless_update)]
    fn engine_config(self) -> Option<SessionConfig> {
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
            echo_aware: self.vad_echo_aware,
            end_of_turn_enabled: self.vad_end_of_turn_enabled,
            end_of_turn_min_silence_ms: self.vad_end_of_turn_min_silence_ms,
            end_of_turn_max_silence_ms: self.vad_end_of_turn_max_silence_ms,
            // The engine checks the percent range (1..=99) when the session opens.
            end_of_turn_threshold: u8::try_from(self.vad_end_of_turn_threshold).ok()?,
            ..VadConfig::default()
        };
        let barge_in = BargeInConfig {
            enabled: self.barge_in_enabled,
            min_speech_ms: self.barge_in_min_speech_ms,
            duck_db: u8::try_from(self.barge_in_duck_db).ok()?,
            // The engine checks the maximum when the session opens.
            rejoin_within_ms: self.barge_in_rejoin_within_ms,
        };
        Some(SessionConfig {
            // Set by `read` from the C string.
            dialect: SessionConfig::default().dialect,
            agent_rate: self.agent_rate,
            agent_format: agent_format(self.agent_format)?,
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
            // Set by `read` from the C string.
            record_path: None,
            read_hold_ms: self.read_hold_ms,
            echo_reduction: self.echo_reduction,
        })
    }
}

/// Reads an optional C string: Ok(None) for NULL, INVALID_ARGUMENT for invalid UTF-8.
pub(crate) fn opt_str(ptr: *const c_char) -> Result<Option<String>, trunkline_result> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; the header requires a NUL-terminated string valid for the call.
    let s = unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| trunkline_result::InvalidArgument)?;
    Ok(Some(s.to_owned()))
}

/// Writes the default engine settings (one worker per core) into `*out`, a struct of
/// `struct_size` bytes: pass sizeof(trunkline_engine_config). Only the fields that fit in it are
/// written; `struct_size` is stored in it. Results: OK; NULL_PARAMETER; INVALID_ARGUMENT
/// (`struct_size` smaller than a size_t or larger than this library's struct). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_config_default(
    out: *mut trunkline_engine_config,
    struct_size: size_t,
) -> trunkline_result {
    crate::guard(|| versioned::write(out, struct_size, (&EngineConfig::default()).into()))
}

/// Writes the default session settings (telephone defaults, agent rate 16 kHz, the default
/// dialect: `dialect` NULL) into `*out`, a struct of `struct_size` bytes: pass
/// sizeof(trunkline_session_config). Only the fields that fit in it are written; `struct_size` is
/// stored in it. Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (`struct_size` smaller than a size_t
/// or larger than this library's struct). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_session_config_default(
    out: *mut trunkline_session_config,
    struct_size: size_t,
) -> trunkline_result {
    crate::guard(|| versioned::write(out, struct_size, (&SessionConfig::default()).into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versioned::VersionedConfig;
    use std::mem::size_of;
    use trunkline::pipeline::PipelineError;
    use trunkline::runtime::{Engine, EngineError};
    use trunkline::vad::{MAX_HANGOVER_MS, VadError};

    /// The layouts of the session config while it was developed, before any release:
    /// `barge_in_duck_db` and `barge_in_rejoin_within_ms` went into the tail padding of the
    /// 176- and 184-byte layouts before them, where a caller of those layouts would have had its
    /// padding bytes read as their values. The layout check refuses such a history.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_layout_check_refuses_a_field_put_in_the_padding_of_the_layout_before_it() {
        use std::mem::offset_of;
        let n = <trunkline_session_config as versioned::Versioned>::field_offsets().len();
        let history = [(n - 4, 176), (n - 3, 176), (n - 2, 184), (n - 1, 184), (n, 192)];
        let refused = std::panic::catch_unwind(|| {
            versioned::assert_layouts::<trunkline_session_config>(&history);
        });
        let message = refused.expect_err("a field in the padding").downcast::<String>().unwrap();
        let duck = offset_of!(trunkline_session_config, barge_in_duck_db);
        assert_eq!(duck, 172);
        assert!(
            message.contains(&format!("starts at {duck}, inside the tail padding of the 176-byte")),
            "{message}"
        );
    }

    #[test]
    fn field_lists_cover_the_structs() {
        versioned::assert_covers::<trunkline_engine_config>();
        versioned::assert_covers::<trunkline_session_config>();
        #[cfg(target_pointer_width = "64")]
        {
            versioned::assert_layouts::<trunkline_engine_config>(&[(6, 32)]);
            versioned::assert_layouts::<trunkline_session_config>(&[(35, 192)]);
        }
        assert_eq!(
            trunkline_engine_config::bool_offsets(),
            [std::mem::offset_of!(trunkline_engine_config, workers_per_core)]
        );
    }

    #[test]
    fn an_older_caller_gets_defaults_for_the_fields_it_lacks() {
        let mut c = trunkline_session_config::from(&SessionConfig::default());
        c.agent_rate = 8000;
        c.dialect = c"no-such-dialect".as_ptr();
        assert_eq!(trunkline_session_config::read(&c), Err(trunkline_result::InvalidArgument));
        c.struct_size = std::mem::offset_of!(trunkline_session_config, dialect);
        let read = trunkline_session_config::read(&c).unwrap();
        assert_eq!(read.agent_rate, 8000);
        assert_eq!(read.dialect, SessionConfig::default().dialect);
        for bad in [0, 7, size_of::<trunkline_session_config>() + 1] {
            c.struct_size = bad;
            assert_eq!(trunkline_session_config::read(&c), Err(trunkline_result::InvalidArgument));
        }
    }

    #[test]
    fn the_agent_format_reads_by_value_and_defaults_to_pcm_for_older_callers() {
        let mut c = trunkline_session_config::from(&SessionConfig::default());
        assert_eq!(c.agent_format, trunkline_agent_format::Pcm as u32);
        c.agent_rate = 8000;
        for (value, format) in [(1, AgentFormat::Mulaw), (2, AgentFormat::Alaw), (0, AgentFormat::Pcm)] {
            c.agent_format = value;
            assert_eq!(trunkline_session_config::read(&c).unwrap().agent_format, format);
        }
        c.agent_format = 3;
        assert_eq!(trunkline_session_config::read(&c), Err(trunkline_result::InvalidArgument));
        // A caller compiled before the field existed: whatever lies past its struct is not read.
        c.struct_size = std::mem::offset_of!(trunkline_session_config, agent_format);
        assert_eq!(trunkline_session_config::read(&c).unwrap().agent_format, AgentFormat::Pcm);
    }

    #[test]
    fn the_vad_turn_settings_read_through_and_older_callers_keep_their_defaults() {
        let default = trunkline_session_config::from(&SessionConfig::default());
        let engine_default = VadConfig::default();
        assert_eq!(
            (default.vad_echo_aware, default.vad_end_of_turn_enabled),
            (engine_default.echo_aware, engine_default.end_of_turn_enabled)
        );
        assert_eq!(default.vad_end_of_turn_min_silence_ms, engine_default.end_of_turn_min_silence_ms);
        assert_eq!(default.vad_end_of_turn_threshold, u32::from(engine_default.end_of_turn_threshold));
        let mut c = default;
        c.vad_echo_aware = true;
        c.vad_end_of_turn_enabled = true;
        c.vad_end_of_turn_min_silence_ms = 200;
        c.vad_end_of_turn_threshold = 60;
        let vad = trunkline_session_config::read(&c).unwrap().vad;
        assert!(vad.echo_aware && vad.end_of_turn_enabled);
        assert_eq!((vad.end_of_turn_min_silence_ms, vad.end_of_turn_threshold), (200, 60));
        // Not a u8: refused here (1..=99 is the engine's to check when the session opens).
        c.vad_end_of_turn_threshold = 256;
        assert_eq!(trunkline_session_config::read(&c), Err(trunkline_result::InvalidArgument));
        // A caller compiled before these fields: its struct ends where they begin.
        c.struct_size = std::mem::offset_of!(trunkline_session_config, record_path);
        assert_eq!(trunkline_session_config::read(&c).unwrap().vad, engine_default);
    }

    #[test]
    fn ducking_reads_through_and_older_callers_keep_the_default() {
        let default = trunkline_session_config::from(&SessionConfig::default());
        let engine_default = BargeInConfig::default();
        assert_eq!(default.barge_in_duck_db, u32::from(engine_default.duck_db));
        let mut c = default;
        c.barge_in_duck_db = 0;
        assert_eq!(trunkline_session_config::read(&c).unwrap().barge_in.duck_db, 0);
        c.barge_in_duck_db = 256;
        assert_eq!(trunkline_session_config::read(&c), Err(trunkline_result::InvalidArgument));
        c.struct_size = std::mem::offset_of!(trunkline_session_config, barge_in_duck_db);
        assert_eq!(trunkline_session_config::read(&c).unwrap().barge_in, engine_default);
    }

    #[test]
    fn rejoining_reads_through_and_older_callers_keep_the_default() {
        let default = trunkline_session_config::from(&SessionConfig::default());
        let engine_default = BargeInConfig::default();
        assert_eq!(default.barge_in_rejoin_within_ms, engine_default.rejoin_within_ms);
        let mut c = default;
        c.barge_in_rejoin_within_ms = 0;
        assert_eq!(trunkline_session_config::read(&c).unwrap().barge_in.rejoin_within_ms, 0);
        c.struct_size = std::mem::offset_of!(trunkline_session_config, barge_in_rejoin_within_ms);
        assert_eq!(trunkline_session_config::read(&c).unwrap().barge_in, engine_default);
    }

    #[test]
    fn the_max_silence_reads_through_and_older_callers_keep_the_default() {
        let default = trunkline_session_config::from(&SessionConfig::default());
        let engine_default = VadConfig::default();
        assert_eq!(default.vad_end_of_turn_max_silence_ms, engine_default.end_of_turn_max_silence_ms);
        let mut c = default;
        for ms in [1000, MAX_HANGOVER_MS] {
            c.vad_end_of_turn_max_silence_ms = ms;
            assert_eq!(trunkline_session_config::read(&c).unwrap().vad.end_of_turn_max_silence_ms, ms);
        }
        // Read as given; the engine refuses it (when a session opens, or a server starts).
        c.vad_end_of_turn_max_silence_ms = MAX_HANGOVER_MS + 1;
        let too_long = trunkline_session_config::read(&c).unwrap();
        assert!(matches!(
            Engine::check_session_config(&too_long),
            Err(EngineError::Config(PipelineError::Vad(VadError::MaxSilenceTooLong(_))))
        ));
        c.struct_size = std::mem::offset_of!(trunkline_session_config, vad_end_of_turn_max_silence_ms);
        assert_eq!(trunkline_session_config::read(&c).unwrap().vad, engine_default);
    }

    #[test]
    fn a_c_bool_that_is_not_0_or_1_reads_as_true() {
        let default = trunkline_engine_config::from(&EngineConfig::default());
        let mut c = std::mem::MaybeUninit::new(default);
        let offset = std::mem::offset_of!(trunkline_engine_config, workers_per_core);
        // SAFETY: a byte inside `c`: its bool field, written as C could write it. `c` is read only
        // through raw pointers from here on, never as a Rust value.
        unsafe { c.as_mut_ptr().cast::<u8>().add(offset).write(0xA5) };
        assert!(versioned::read(c.as_ptr(), default).unwrap().workers_per_core);
    }

    #[test]
    fn defaults_are_written_only_as_far_as_the_callers_struct_goes() {
        const SIZE: usize = size_of::<trunkline_engine_config>();
        #[repr(C, align(8))]
        struct Buf([u8; SIZE]);
        let mut buf = Buf([0xA5; SIZE]);
        let short = std::mem::offset_of!(trunkline_engine_config, worker_nice);
        let out = (&raw mut buf).cast::<trunkline_engine_config>();
        assert_eq!(trunkline_engine_config_default(out, short), trunkline_result::Ok);
        assert_eq!(buf.0[..8], short.to_ne_bytes());
        assert!(buf.0[short..].iter().all(|&b| b == 0xA5));
        assert_eq!(trunkline_engine_config_default(out, 0), trunkline_result::InvalidArgument);
        assert_eq!(trunkline_engine_config_default(out, SIZE + 1), trunkline_result::InvalidArgument);
        let null = std::ptr::null_mut();
        assert_eq!(trunkline_engine_config_default(null, SIZE), trunkline_result::NullParameter);
    }
}
