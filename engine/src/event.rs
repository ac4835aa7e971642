//! Events the engine reports to the host.

use crate::pipeline::SegmentCut;
use crate::protocol::{ProtocolError, StreamStart};

/// Something that happened in a call, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The carrier's transport is up (`connected`).
    Connected,
    /// The stream started; who is calling and with what parameters.
    Started(Box<StreamStart>),
    /// The caller started speaking at stream time `stream_ms` (the onset, not the detection time).
    SpeechStarted {
        /// Stream time of the onset, ms.
        stream_ms: u64,
    },
    /// The caller stopped speaking at stream time `stream_ms`.
    SpeechStopped {
        /// Stream time of the end of speech, ms.
        stream_ms: u64,
    },
    /// The caller's turn seems over ([`crate::vad::VadConfig::end_of_turn_enabled`]): the speech
    /// that ended at `stream_ms` sounded finished and `silence_ms` of silence followed, or the
    /// hangover passed (then just before `SpeechStopped`, with `silence_ms` the hangover, or
    /// more if a gap in the stream stopped the speech), or the maximum silence did (after
    /// `SpeechStopped` when longer than the hangover), or the call ended (then just before the
    /// `SpeechStopped` the stop brings, at the same time, or after it if the turn was waiting
    /// for its maximum silence). At most one per pause; speech may resume after it.
    EndOfTurn {
        /// Stream time of the end of speech, ms.
        stream_ms: u64,
        /// Silence waited, ms.
        silence_ms: u32,
        /// How finished the phrase sounded, 0-100.
        confidence: u8,
    },
    /// The caller spoke over the agent: queued agent audio was dropped and `clear` sent.
    BargeIn {
        /// Stream time of the caller's onset, ms.
        stream_ms: u64,
        /// How much of the current utterance the caller heard, ms.
        played_ms: u64,
    },
    /// The host called `interrupt`: queued agent audio was dropped and `clear` sent.
    Interrupted {
        /// How much of the current utterance the caller heard, ms.
        played_ms: u64,
    },
    /// The carrier played everything up to a host mark.
    MarkPlayed {
        /// The mark's name.
        name: String,
        /// Position of the mark in its utterance, ms.
        played_ms: u64,
    },
    /// A host mark was flushed by a barge-in or interrupt before the caller heard it.
    MarkCleared {
        /// The mark's name.
        name: String,
    },
    /// The caller pressed a key.
    Dtmf {
        /// `0`-`9`, `*`, `#`, `A`-`D`.
        digit: char,
        /// Stream time of the key press (the inbound audio position when it arrived), ms.
        stream_ms: u64,
        /// How long the key was held, ms, on carriers that say (Vonage, Exotel, SignalWire,
        /// jambonz); `None` on the others.
        duration_ms: Option<u32>,
    },
    /// The stream ended (`stop`).
    Stopped,
    /// A message was dropped; the session goes on.
    ProtocolError {
        /// What was wrong.
        error: ProtocolError,
    },
}

/// The kind of an [`Event`], as a stable number for the C ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum EventKind {
    /// [`Event::Connected`]
    Connected = 1,
    /// [`Event::Started`]
    Started = 2,
    /// [`Event::SpeechStarted`]
    SpeechStarted = 3,
    /// [`Event::SpeechStopped`]
    SpeechStopped = 4,
    /// [`Event::BargeIn`]
    BargeIn = 5,
    /// [`Event::Interrupted`]
    Interrupted = 6,
    /// [`Event::MarkPlayed`]
    MarkPlayed = 7,
    /// [`Event::MarkCleared`]
    MarkCleared = 8,
    /// [`Event::Dtmf`]
    Dtmf = 9,
    /// [`Event::Stopped`]
    Stopped = 10,
    /// [`Event::ProtocolError`]
    ProtocolError = 11,
    /// [`Event::EndOfTurn`]
    EndOfTurn = 12,
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::Connected => EventKind::Connected,
            Self::Started(_) => EventKind::Started,
            Self::SpeechStarted { .. } => EventKind::SpeechStarted,
            Self::SpeechStopped { .. } => EventKind::SpeechStopped,
            Self::BargeIn { .. } => EventKind::BargeIn,
            Self::Interrupted { .. } => EventKind::Interrupted,
            Self::MarkPlayed { .. } => EventKind::MarkPlayed,
            Self::MarkCleared { .. } => EventKind::MarkCleared,
            Self::Dtmf { .. } => EventKind::Dtmf,
            Self::Stopped => EventKind::Stopped,
            Self::ProtocolError { .. } => EventKind::ProtocolError,
            Self::EndOfTurn { .. } => EventKind::EndOfTurn,
        }
    }
}

/// The worker-side form of an event: no strings, so producing one never allocates. Mark names
/// are resolved from their ids by the host-side handle, which turns these into [`Event`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // Same meaning as the `Event` variant of the same name.
pub enum RawEvent {
    Connected,
    Started(Box<StreamStart>),
    SpeechStarted {
        stream_ms: u64,
    },
    SpeechStopped {
        stream_ms: u64,
    },
    EndOfTurn {
        stream_ms: u64,
        silence_ms: u32,
        confidence: u8,
    },
    /// `generation`: the session's barge-in count, which the host handle acknowledges.
    /// `reaction_us`: from the arrival of the caller's audio holding the speech onset to this
    /// decision (for the engine's barge-in reaction histogram).
    /// `segment`: where the playhead was among the host's segments (played in ms).
    BargeIn {
        stream_ms: u64,
        played_ms: u64,
        generation: u32,
        reaction_us: u64,
        segment: SegmentCut,
    },
    /// `generation`: the host's interrupt number this one answers (0 when not from a host
    /// handle); `segment` as for `BargeIn`.
    Interrupted {
        played_ms: u64,
        generation: u32,
        segment: SegmentCut,
    },
    MarkPlayed {
        id: u32,
        played_ms: u64,
    },
    MarkCleared {
        id: u32,
    },
    Dtmf {
        digit: u8,
        stream_ms: u64,
        duration_ms: Option<u32>,
    },
    Stopped,
    ProtocolError {
        error: ProtocolError,
    },
}
