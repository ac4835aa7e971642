//! What one simulated call did: its timeline and its measurements.

use super::impair::ImpairmentCounts;
use super::metrics::Histogram;
use serde::Serialize;
use std::fmt;
use std::time::Instant;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// The URL is not a `ws://` or `wss://` URL (or `wss://` without the `tls` feature).
    #[error("bad URL: {0}")]
    Url(String),
    /// TCP or TLS connection failed.
    #[error("connect: {0}")]
    Connect(String),
    /// The server answered the upgrade with an HTTP error (403 for a bad signature, 404, 503...).
    #[error("upgrade refused: HTTP {0}")]
    Refused(u16),
    /// The WebSocket handshake failed otherwise, or took too long.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The connection broke during the call.
    #[error("connection: {0}")]
    Connection(String),
    /// The bot closed the connection before the script ended.
    #[error("the bot closed the connection {at_ms:.0} ms into the stream, before the script ended")]
    ClosedEarly {
        /// Stream time of the close, ms.
        at_ms: f64,
    },
}

/// Something that happened during a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEvent {
    /// The WebSocket connected (`connected` sent next).
    Connected {
        /// TCP + TLS + WebSocket handshake, ms.
        handshake_ms: f64,
    },
    /// `start` was sent: stream time 0.
    StreamStarted {
        /// `streamSid`.
        stream_sid: String,
        /// `callSid`.
        call_sid: String,
    },
    /// The caller started talking (a labelled onset in the script's audio).
    CallerSpeechStarted {
        /// Whether bot audio was playing then (a barge-in attempt).
        over_bot: bool,
    },
    /// The caller stopped talking.
    CallerSpeechStopped,
    /// A `dtmf` message was sent.
    DtmfSent {
        /// The key.
        digit: char,
    },
    /// The first frame of a bot reply arrived (and started playing).
    BotReplyStarted {
        /// Time since the caller's last end of speech, if this reply answers it.
        response_ms: Option<f64>,
    },
    /// A bot reply stopped playing (ran out, or was cut by `clear`).
    BotReplyEnded {
        /// Audio of it the caller heard, ms.
        played_ms: f64,
        /// Whether a `clear` cut it.
        cleared: bool,
    },
    /// The carrier's buffer ran dry inside a reply: the caller heard a gap.
    BotUnderrun {
        /// The silence, ms.
        gap_ms: f64,
    },
    /// The bot sent `clear`.
    ClearReceived {
        /// Time since the caller's onset over bot audio, if it answers a barge-in.
        reaction_ms: Option<f64>,
        /// Buffered bot audio dropped, ms.
        dropped_ms: f64,
        /// Audio of the cut reply the caller heard, ms (the carrier's truth for a played position).
        played_ms: Option<f64>,
    },
    /// A mark a `clear` flushed, which this carrier does not acknowledge (Plivo, Vonage).
    MarkDropped {
        /// Its name.
        name: String,
    },
    /// The bot's message broke one of the carrier's framing rules (its audio still played).
    FramingViolation {
        /// Which rule, and how.
        detail: String,
    },
    /// A mark was echoed to the bot.
    MarkEchoed {
        /// Its name.
        name: String,
        /// Echoed because of a `clear` (its audio was not heard), not after playing.
        cleared: bool,
    },
    /// A script wait gave up.
    WaitTimedOut {
        /// Which wait.
        what: &'static str,
    },
    /// The bot sent something the carrier would not accept.
    BadMessage {
        /// What was wrong.
        detail: String,
    },
    /// The carrier's stop message was sent (carriers without one just close the connection).
    StopSent,
    /// The connection closed.
    Closed {
        /// Whether the bot closed it first.
        by_bot: bool,
    },
}

impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { handshake_ms } => write!(f, "connected (handshake {handshake_ms:.1} ms)"),
            Self::StreamStarted { stream_sid, call_sid } => {
                write!(f, "start sent: stream {stream_sid}, call {call_sid}")
            }
            Self::CallerSpeechStarted { over_bot: true } => {
                write!(f, "caller starts talking over the bot (barge-in)")
            }
            Self::CallerSpeechStarted { over_bot: false } => write!(f, "caller starts talking"),
            Self::CallerSpeechStopped => write!(f, "caller stops talking"),
            Self::DtmfSent { digit } => write!(f, "caller presses {digit}"),
            Self::BotReplyStarted { response_ms: Some(r) } => {
                write!(f, "bot reply starts: response latency {r:.0} ms")
            }
            Self::BotReplyStarted { response_ms: None } => write!(f, "bot audio starts"),
            Self::BotReplyEnded { played_ms, cleared: true } => {
                write!(f, "bot reply cut after {played_ms:.0} ms heard")
            }
            Self::BotReplyEnded { played_ms, cleared: false } => {
                write!(f, "bot reply ends ({played_ms:.0} ms played)")
            }
            Self::BotUnderrun { gap_ms } => write!(f, "underrun: {gap_ms:.0} ms of silence inside the reply"),
            Self::ClearReceived { reaction_ms, dropped_ms, played_ms } => {
                write!(f, "clear received")?;
                if let Some(r) = reaction_ms {
                    write!(f, ": barge-in reaction {r:.0} ms")?;
                }
                if let Some(p) = played_ms {
                    write!(f, ", caller heard {p:.0} ms of the reply")?;
                }
                write!(f, ", {dropped_ms:.0} ms dropped")
            }
            Self::MarkEchoed { name, cleared: false } => write!(f, "mark '{name}' echoed (played)"),
            Self::MarkEchoed { name, cleared: true } => write!(f, "mark '{name}' echoed (cleared)"),
            Self::MarkDropped { name } => write!(f, "mark '{name}' dropped by the clear (not acknowledged)"),
            Self::FramingViolation { detail } => write!(f, "framing violation: {detail}"),
            Self::WaitTimedOut { what } => write!(f, "timed out: {what}"),
            Self::BadMessage { detail } => write!(f, "bad message from the bot: {detail}"),
            Self::StopSent => write!(f, "stop sent"),
            Self::Closed { by_bot: true } => write!(f, "connection closed by the bot"),
            Self::Closed { by_bot: false } => write!(f, "connection closed"),
        }
    }
}

/// One line of a call's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    /// When it happened (monotonic clock). Caller speech is placed at its true time (stream start
    /// + the label), not when its frame was sent.
    #[serde(skip)]
    pub at: Instant,
    /// Stream time, ms: time since `start` was sent, which is the caller's media timestamp clock
    /// (so it lines up with the bot's own stream times). Negative before `start`.
    pub stream_ms: f64,
    /// What happened.
    #[serde(flatten)]
    pub event: CallEvent,
}

impl fmt::Display for TimelineEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:>8.0} ms  {}", self.stream_ms, self.event)
    }
}

/// Measurements of one call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CallMetrics {
    /// WebSocket handshake, ms.
    pub connect_ms: Option<f64>,
    /// Caller utterances that ended.
    pub turns: u64,
    /// For each answered utterance: its end (the label) → the first frame of the bot's reply, ms.
    pub response_ms: Vec<f64>,
    /// Utterances followed by no reply before the caller spoke again or the call ended.
    pub turns_unanswered: u64,
    /// Caller onsets while bot audio was playing.
    pub barge_ins: u64,
    /// For each barge-in the bot answered: onset → the bot's `clear`, ms.
    pub barge_in_reaction_ms: Vec<f64>,
    /// Barge-ins followed by no `clear` (before the caller's next onset, the bot's next reply or
    /// the end of the call).
    pub barge_ins_without_clear: u64,
    /// For each barge-in the bot answered: onset → the bot's level as played 10 dB below its
    /// level before the onset (a bot that ducks) or nothing playing (one that went quiet), or the
    /// `clear` if that came first, ms.
    pub voice_drop_ms: Vec<f64>,
    /// For each barge-in no `clear` answered (a backchannel, a cough): how long the bot played
    /// 10 dB down or not at all in the 2 s after the onset (up to the hang-up), ms (0: it played
    /// on).
    pub barge_in_dip_ms: Vec<f64>,
    /// `clear` messages received.
    pub clears: u64,
    /// `clear` messages with no barge-in to answer (none since the reply playing began).
    pub clears_unprompted: u64,
    /// Bot replies (talk spurts).
    pub replies: u64,
    /// Bot media payloads received.
    pub bot_frames: u64,
    /// Bot audio received, ms.
    pub bot_audio_ms: f64,
    /// Times the carrier's buffer ran dry inside a reply.
    pub underruns: u64,
    /// Silence inside replies caused by underruns, ms.
    pub underrun_ms: f64,
    /// Per bot frame (after each reply's first): arrival later than the previous frame's length, ms,
    /// to 0.1 ms. (Left out of JSON: the report gives its percentiles.)
    #[serde(skip)]
    pub frame_lateness_ms: Histogram,
    /// RFC 3550 interarrival jitter of the bot's frames at the end of the call, ms.
    pub jitter_ms: f64,
    /// Marks received from the bot.
    pub marks: u64,
    /// Marks echoed after their audio played.
    pub marks_played: u64,
    /// Marks a `clear` flushed (their audio never played), echoed at once or dropped, as the
    /// carrier does.
    pub marks_cleared: u64,
    /// Of those, the marks the carrier dropped unanswered (Plivo, Vonage); the others were echoed.
    pub marks_dropped: u64,
    /// Media frames sent.
    pub frames_sent: u64,
    /// What the impairments did.
    pub impairments: ImpairmentCounts,
    /// Messages from the bot that the carrier would reject.
    pub bad_messages: u64,
    /// Framing rules of the carrier the bot's messages broke (message sizes, formats, pacing).
    pub framing_violations: u64,
}

/// One simulated call.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    /// Its index in the run (0-based).
    pub index: usize,
    /// The carrier it played.
    pub dialect: crate::Dialect,
    /// `streamSid` it used (the carrier's stream id).
    pub stream_sid: String,
    /// `callSid` it used (the carrier's call id).
    pub call_sid: String,
    /// When `start` was sent (stream time 0); when the call began if it never got that far.
    #[serde(skip)]
    pub stream_start: Instant,
    /// Why it failed, if it did (its measurements up to then are kept).
    #[serde(serialize_with = "error_text")]
    pub error: Option<CallError>,
    /// What happened, in time order.
    pub timeline: Vec<TimelineEntry>,
    /// What was measured.
    pub metrics: CallMetrics,
}

fn error_text<S: serde::Serializer>(e: &Option<CallError>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.serialize_some(&e.to_string()),
        None => s.serialize_none(),
    }
}

impl CallResult {
    /// Whether the call completed its script.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Timeline entries matching `pred`.
    pub fn events<'a>(
        &'a self,
        pred: impl Fn(&CallEvent) -> bool + 'a,
    ) -> impl Iterator<Item = &'a TimelineEntry> + 'a {
        self.timeline.iter().filter(move |e| pred(&e.event))
    }
}
