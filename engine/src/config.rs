//! Engine and session settings, with telephone defaults.

use crate::vad::VadConfig;

/// Engine-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Worker threads. `None`: one per core. `Some(0)`: inline mode, where the host's own calls do
    /// the processing (for hosts that own their threads, and for deterministic tests).
    pub workers: Option<usize>,
    /// Most sessions open at once, over all workers.
    pub max_sessions: usize,
    /// Worker timer period in ms: the longest a worker sleeps while it has sessions.
    pub tick_ms: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { workers: None, max_sessions: 4096, tick_ms: 10 }
    }
}

/// Barge-in settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BargeInConfig {
    /// Whether caller speech interrupts agent audio.
    pub enabled: bool,
    /// Caller speech must have lasted this long (from its onset) to interrupt.
    pub min_speech_ms: u32,
}

impl Default for BargeInConfig {
    fn default() -> Self {
        Self { enabled: true, min_speech_ms: 300 }
    }
}

/// Per-session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Rate (Hz) of the PCM the host reads: 8000, 16000, 24000 or 48000.
    pub agent_rate: u32,
    /// Rate (Hz) the host usually plays at; its resampler is built up front (others on first use).
    pub play_rate: u32,
    /// Speech detection.
    pub vad: VadConfig,
    /// Barge-in.
    pub barge_in: BargeInConfig,
    /// The most agent audio the carrier holds unplayed, in ms (at least 40): the pacer sends the
    /// next 20 ms frame once it fits under this. Larger rides out network jitter; smaller makes
    /// barge-in and the played position tighter.
    pub lead_ms: u32,
    /// Interval (ms of played audio) between the engine's own hidden marks, which correct the
    /// played-position estimate against the carrier's real playout. 0 disables them.
    pub sync_mark_interval_ms: u32,
    /// A pause in agent audio at least this long (ms) ends the utterance: played positions count
    /// from the start of the current utterance (or the last barge-in or interrupt).
    pub utterance_gap_ms: u32,
    /// Largest received message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Largest decoded media payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// How long (stream ms) a gap in media timestamps is waited for before it is filled with silence.
    pub reorder_window_ms: u32,
    /// Gaps longer than this (ms) are a discontinuity: counted and reported, not filled.
    pub max_gap_fill_ms: u32,
    /// Capacity of the host → engine message ring, in bytes.
    pub inbound_ring_bytes: usize,
    /// Capacity of the host → engine play ring (agent audio, marks), in bytes.
    pub play_ring_bytes: usize,
    /// Agent audio the engine holds before pacing it out, in ms of 8 kHz audio.
    pub outbound_buffer_ms: u32,
    /// Capacity of the engine → host agent PCM ring, in ms at the agent rate.
    pub agent_ring_ms: u32,
    /// Capacity of the engine → host outbound message ring, in bytes.
    pub outbound_ring_bytes: usize,
    /// Capacity of the event queue; when full the oldest event is dropped and counted.
    pub event_capacity: usize,
    /// Longest mark name accepted, in bytes.
    pub max_mark_name_bytes: usize,
    /// Most host marks outstanding (sent or queued, not yet echoed) at once.
    pub max_pending_marks: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            agent_rate: 16_000,
            play_rate: 24_000,
            vad: VadConfig::default(),
            barge_in: BargeInConfig::default(),
            lead_ms: 100,
            sync_mark_interval_ms: 500,
            utterance_gap_ms: 1_000,
            // why 16 KiB / 8 KiB: a Twilio `media` message is about 330 bytes with 160 bytes of
            // audio; these still take a whole second of audio in one message, and each limit is
            // a buffer every session allocates (the message, the payload, and its decoded PCM).
            max_message_bytes: 16 * 1024,
            max_payload_bytes: 8 * 1024,
            reorder_window_ms: 60,
            max_gap_fill_ms: 2_000,
            // why 32 KiB: room for two maximal messages, or ~100 Twilio messages (2 s of audio)
            // arriving in one burst before the worker takes them.
            inbound_ring_bytes: 32 * 1024,
            // why 64 KiB: hosts play a TTS chunk of 1-2 s in one call (1.3 s at 24 kHz fits).
            play_ring_bytes: 64 * 1024,
            // why 2 s: the pacer keeps only `lead_ms` at the carrier; 2 s queued here plus the
            // play ring is plenty for a streaming TTS, and a host playing more keeps the rest
            // (`play` returns what it took). 10 s cost 78 KiB per session.
            outbound_buffer_ms: 2_000,
            agent_ring_ms: 1_000,
            outbound_ring_bytes: 16 * 1024,
            event_capacity: 256,
            max_mark_name_bytes: 128,
            max_pending_marks: 64,
        }
    }
}
