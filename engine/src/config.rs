//! Engine and session settings, with telephone defaults.

use crate::protocol::{Dialect, InboundSizes};
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
    /// Nice value the worker threads ask for (Linux, per thread; −20..=19, lower runs sooner).
    /// `0` leaves them at the process's priority. Going below the process's value needs
    /// `CAP_SYS_NICE` or `RLIMIT_NICE`; when refused, the workers run at the default priority
    /// and [`crate::Engine::prioritised_workers`] says how many got it.
    pub worker_nice: i32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        // why -10: a woken worker must get a core within a fraction of a millisecond while the
        // host's threads are busy; see `runtime::priority` for the measurement.
        Self { workers: None, max_sessions: 4096, tick_ms: 10, worker_nice: -10 }
    }
}

/// Barge-in settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BargeInConfig {
    /// Whether caller speech interrupts agent audio.
    pub enabled: bool,
    /// Caller speech must have been voiced this long (from its first voiced frame to its last,
    /// pauses included; with [`Self::rejoin_within_ms`] set, speech resumed shortly after a short
    /// one over the agent counts from that one's first voiced frame) to interrupt.
    pub min_speech_ms: u32,
    /// Ducking, dB (0: off): while caller speech over the agent is not yet long enough to
    /// interrupt, the agent audio not yet sent is turned down by this much (a 10 ms ramp), and
    /// turned back up if the speech stops short (a backchannel, a cough). The caller hears the
    /// bot back off within the pacer's lead of speaking up; see `pipeline/ducking.rs`.
    pub duck_db: u8,
    /// Rejoining, ms (0: off; default [`RECOMMENDED_REJOIN_WITHIN_MS`]): caller speech over the
    /// agent that stopped short of `min_speech_ms`, and speech first voiced within this long of
    /// its last voiced frame, count as one utterance, voiced from the first one's first voiced
    /// frame, pauses included. It catches interruptions whose words a noisy line splits ("rear
    /// ... left"; recall at 5 dB SNR 0.875 → 0.958). Speech heard clearly (its clearest voiced
    /// frame [`REJOIN_BELOW_SNR_DB`] or more over the line's noise) is never split by the line,
    /// so it is never joined: on a quiet line two backchannels in a row stay two. The cost, on a
    /// noisy line only: two backchannels up to about 700 ms apart interrupt, and so does an
    /// uncancelled echo of the bot more often when barge-in is not echo-aware. At most [`MAX_REJOIN_WITHIN_MS`]. See `pipeline/barge_in.rs`.
    pub rejoin_within_ms: u32,
}

/// The default [`BargeInConfig::rejoin_within_ms`], ms. Why 800: inside
/// one speech the VAD already bridges voiced frames up to about 560 ms apart (its 160 ms of
/// weaker frames after the last voiced one, then its 400 ms hangover); at 5 dB SNR the noise
/// hides up to about 250 ms more of the soft word edges around a pause (measured on the two-word
/// recordings of the barge-in set: 380 ms apart on a quiet line, 640-740 ms at 5 dB). Longer
/// would also join backchannels said about a second apart.
pub const RECOMMENDED_REJOIN_WITHIN_MS: u32 = 800;

/// How far a speech's clearest voiced frame stands over the line's tracked noise floor (dB, the
/// highest band SNR among its voiced frames: `SpeechDetector::voiced_snr_db`) at and above which
/// the speech is heard clearly enough that its voiced time is all of it: speech that stopped
/// short there is short, not split by noise, and rejoining leaves it alone. Why 18: on the
/// corpus the speeches measure 24.8-36.8 dB on the quiet line (35 dB SNR) and 4.8-12.5 dB at
/// 5 dB SNR (those that stop short over the bot in the barge-in set: 24.5-38.5 and 3.0-12.4).
pub const REJOIN_BELOW_SNR_DB: f32 = 18.0;

/// The longest [`BargeInConfig::rejoin_within_ms`] a session takes, ms: beyond it, words a
/// breath apart are no longer what it joins (a session asking for more is refused).
pub const MAX_REJOIN_WITHIN_MS: u32 = 2_000;

impl Default for BargeInConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            min_speech_ms: 300,
            duck_db: 18,
            rejoin_within_ms: RECOMMENDED_REJOIN_WITHIN_MS,
        }
    }
}

/// How caller audio reaches the agent (`read_audio`) and agent audio comes back (`play`).
///
/// G.711 formats are 8 kHz by definition: a session with one needs `agent_rate` 8000 (another
/// rate is refused, not silently changed). When the carrier speaks the same codec at 8 kHz, its
/// bytes pass through untouched both ways; otherwise they are converted at the session's edge,
/// and everything inside (speech detection, barge-in, pacing, marks, played positions) works
/// on the same samples as with PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentFormat {
    /// Signed 16-bit samples at `agent_rate`.
    #[default]
    Pcm,
    /// G.711 µ-law at 8 kHz, a byte per sample (what an OpenAI Realtime `g711_ulaw` session
    /// speaks).
    Mulaw,
    /// G.711 A-law at 8 kHz, a byte per sample.
    Alaw,
}

impl AgentFormat {
    /// The G.711 law, if the format is one.
    pub fn g711(self) -> Option<crate::codec::G711> {
        match self {
            Self::Pcm => None,
            Self::Mulaw => Some(crate::codec::G711::Mulaw),
            Self::Alaw => Some(crate::codec::G711::Alaw),
        }
    }

    /// The format named `name`: `"pcm"`, `"ulaw"` (also `"mulaw"`, `"g711_ulaw"`, `"pcmu"`) or
    /// `"alaw"` (also `"g711_alaw"`, `"pcma"`), ASCII case-insensitive.
    pub fn from_name(name: &str) -> Option<Self> {
        let is = |names: &[&str]| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if is(&["pcm", "s16", "l16"]) {
            Some(Self::Pcm)
        } else if is(&["ulaw", "mulaw", "g711_ulaw", "pcmu"]) {
            Some(Self::Mulaw)
        } else if is(&["alaw", "g711_alaw", "pcma"]) {
            Some(Self::Alaw)
        } else {
            None
        }
    }
}

/// Per-session settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The carrier's protocol, by name (see [`crate::protocol::DIALECTS`]): `"twilio"` (also
    /// SignalWire and other Twilio-compatible carriers) is the default.
    pub dialect: String,
    /// Rate (Hz) of the PCM the host reads: 8000, 16000, 24000 or 48000 (8000 with a G.711
    /// `agent_format`).
    pub agent_rate: u32,
    /// The agent's audio format, both ways: PCM (the default), or G.711 µ-law or A-law at 8 kHz.
    pub agent_format: AgentFormat,
    /// Rate (Hz) the host usually plays at: one of the rates `play` accepts (every one of their
    /// resamplers is built up front, so `play` may use any of them without allocating).
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
    /// Capacity of the host → engine message ring, in bytes: at least
    /// `2 * (max_message_bytes + 13)`, since a message never wraps around the ring's end (the worker
    /// parses it where it lies).
    pub inbound_ring_bytes: usize,
    /// Capacity of the host → engine play ring (agent audio, marks), in bytes: a hand-off the worker
    /// empties into the outbound queue, so it bounds what one threaded `play` takes (at least
    /// `2 * (4096 + 13) + 104 + 2 * (13 + max_mark_name_bytes)`: 8604 by default).
    pub play_ring_bytes: usize,
    /// Agent audio the engine holds before pacing it out, in ms of 8 kHz µ-law: where a long reply
    /// waits.
    pub outbound_buffer_ms: u32,
    /// Capacity of the engine → host caller-audio ring, in ms at the agent rate (a sample is two
    /// bytes of PCM, or one of G.711).
    pub agent_ring_ms: u32,
    /// How long the host counts as reading, in ms: while it has read caller audio (or polled
    /// events until the queue was empty) within this time, a full agent ring (or event queue) holds the carrier's messages
    /// in the inbound ring, and `push` refuses with `Full` once that is full too, instead of the
    /// newest audio (or oldest events) being dropped. A host that has not read for this long is
    /// taken as not reading: its audio is dropped and counted so that its events keep flowing,
    /// at most this late. 0: never hold (drop at once when full).
    pub read_hold_ms: u32,
    /// Capacity of the engine → host outbound message ring, in bytes.
    pub outbound_ring_bytes: usize,
    /// Capacity of the event queue; when full the oldest event is dropped and counted.
    pub event_capacity: usize,
    /// Longest mark name accepted, in bytes.
    pub max_mark_name_bytes: usize,
    /// Most host marks outstanding (sent or queued, not yet echoed) at once.
    pub max_pending_marks: usize,
    /// Record the call to this file: two channels at the rate the caller's audio is delivered at
    /// (the carrier's; 16 kHz for G.722; Opus's decoding rate), the caller's audio as
    /// delivered (left) and the agent's as the caller heard it (right). The format follows the
    /// extension: `.wav` (16-bit PCM) or `.opus` / `.ogg` (Ogg Opus). The file is created when the
    /// session opens (another extension, or a file that cannot be created, refuses the open) and
    /// written by the engine's recorder thread, never by a worker; see `docs/recordings.md`.
    /// `None` (the default): no recording, and nothing spent on one.
    pub record_path: Option<std::path::PathBuf>,
    /// Deliver the caller's audio with the agent's own voice, echoed back on the line, removed
    /// (an adaptive echo canceller fed the agent's audio as the carrier played it; see
    /// `docs/speech.md`). Needs `vad.echo_aware` with the spectral backend (the default; the
    /// echo's delay and the played audio's placement come from its echo gate). The canceller
    /// works at 8 kHz: a wider carrier stream (L16 or Opus at 16 kHz, G.722) reaches the agent
    /// through 8 kHz while this is on, so the agent gets the caller's band up to 3.9 kHz at its
    /// own rate. Speech detection keeps working on the audio as received.
    /// Off by default: it costs about 4 µs per 20 ms frame while the agent's audio echoes
    /// (nothing while it is silent) and 67 KiB more per session.
    pub echo_reduction: bool,
}

impl SessionConfig {
    /// The message and payload limits a session on `dialect` takes: these settings', each raised
    /// to the carrier's largest ([`InboundSizes::limits_for`]).
    pub fn inbound_limits(&self, dialect: &dyn Dialect) -> InboundSizes {
        let configured =
            InboundSizes { message_bytes: self.max_message_bytes, payload_bytes: self.max_payload_bytes };
        InboundSizes::limits_for(dialect, configured)
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            dialect: crate::protocol::DIALECTS[0].to_owned(),
            agent_rate: 16_000,
            agent_format: AgentFormat::Pcm,
            play_rate: 24_000,
            vad: VadConfig::default(),
            barge_in: BargeInConfig::default(),
            lead_ms: 100,
            sync_mark_interval_ms: 500,
            utterance_gap_ms: 1_000,
            // Each size below is memory every session allocates up front (the worker never
            // allocates), so each is sized to what it must hold, with margin; every overflow is
            // refused or dropped visibly (`Full`, a counter, a `protocol_error`), never silently.
            //
            // why 6 KiB / 2 KiB: a Twilio `media` message is about 420 bytes (160 bytes of audio,
            // 20 ms); the largest message of a call is `start`, about 500 bytes plus the custom
            // parameters (6 KiB leaves them over 5 KB). 2 KiB of payload is 256 ms of µ-law in one
            // message: 12 Twilio frames, 2.5 times the 100 ms L16 chunks some carriers send, and
            // still well inside `agent_ring_ms` once resampled (a payload larger than that ring
            // would overflow it however fast the host reads). The payload is decoded into a
            // buffer of its own; the message is parsed where it lies in the inbound ring.
            max_message_bytes: 6 * 1024,
            max_payload_bytes: 2 * 1024,
            reorder_window_ms: 60,
            max_gap_fill_ms: 2_000,
            // why 16 KiB: it must hold two maximal messages (a message is never split around the
            // ring's end, see `runtime::records`), and that is also 38 Twilio messages, 0.75 s of
            // audio arriving in one burst after a network stall, while the worker takes them in
            // microseconds once woken. Full: `push` refuses (`messages_refused_full`), and the
            // host (or the offload server) retries: nothing is lost.
            inbound_ring_bytes: 16 * 1024,
            // why 16 KiB: the play ring is a hand-off, not where a reply waits: the worker moves
            // it into the outbound queue within a pass, as 8 kHz µ-law (a sixth of the bytes of
            // 24 kHz s16). 16 KiB takes about 0.3 s at 24 kHz in one `play` (a chunk of a
            // streaming TTS); a longer `play` takes what fits and returns the count (counted in
            // `play_refused_full`), and the host plays the rest once the worker has moved it.
            play_ring_bytes: 16 * 1024,
            // why 2 s: the outbound queue is where a long reply waits, 8 KB per second. The pacer
            // keeps only `lead_ms` at the carrier; a host that tops up at least every 1.9 s never
            // lets the carrier run dry. 10 s cost 78 KiB per session.
            outbound_buffer_ms: 2_000,
            // why 500 ms: the host reads caller audio every 20 ms or so; 0.5 s rides out a stalled
            // event loop (a GC pause, a slow callback) 25 times that long, and a burst of
            // messages after a network stall is held back (`read_hold_ms`) until the host has
            // read room free. 16 KB at 16 kHz.
            agent_ring_ms: 500,
            // why 1 s: longer than any pause of a host that is reading (a GC pause, a slow
            // callback: see `agent_ring_ms`), so such a host loses nothing, while a host that
            // never reads audio (events only) or has died still gets its events within a second.
            // Held messages wait in the inbound ring (0.75 s of Twilio audio), then in the
            // carrier's own buffers through `Full` (the offload server waits up to 2 s).
            read_hold_ms: 1_000,
            // why 8 KiB: the pacer sends only `lead_ms` (100 ms, five ~300-byte `media` messages)
            // ahead of real time, plus marks; 8 KiB holds that and about 20 more messages
            // (0.4 s) for a host late to take them. Full: the pacer holds its frame and retries
            // (`outbound_stalls`), nothing lost; a larger ring would only let the pacer count as
            // sent (and as playing) audio the carrier has not been given yet.
            outbound_ring_bytes: 8 * 1024,
            // why 128: twice `max_pending_marks`, so a barge-in that clears every outstanding
            // mark (one `mark_cleared` each) cannot push its own `barge_in` event out; the host
            // polls every 20 ms or so. 40 bytes each. Full: the oldest is dropped and counted.
            event_capacity: 128,
            max_mark_name_bytes: 128,
            max_pending_marks: 64,
            record_path: None,
            echo_reduction: false,
        }
    }
}
