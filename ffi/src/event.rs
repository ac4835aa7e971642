//! Events as a tagged C struct.

use crate::config::{TRUNKLINE_EVENT_NAME_CAPACITY, TRUNKLINE_MAX_NAME_BYTES, size_t};
use crate::versioned::{VersionedOutput, versioned};
use std::ffi::c_char;
use trunkline::protocol::ProtocolError;
use trunkline::{Event, SegmentReport};

/// What an event is. Values are stable.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_event_kind {
    /// The carrier's transport is up.
    Connected = 1,
    /// The stream started: `name` holds the call id; see trunkline_session_start_info and
    /// trunkline_session_start_string for the rest.
    Started = 2,
    /// The caller started speaking at `stream_ms` (the onset).
    SpeechStarted = 3,
    /// The caller stopped speaking at `stream_ms`.
    SpeechStopped = 4,
    /// The caller spoke over the agent (onset at `stream_ms`); queued agent audio was dropped and
    /// `clear` sent; the caller heard `played_ms` of the current utterance. `segment`,
    /// `segment_played_ms` and `unheard_segments` say where that was among the host's segments.
    BargeIn = 5,
    /// trunkline_session_interrupt took effect; the caller heard `played_ms`. Segment fields as
    /// for BARGE_IN.
    Interrupted = 6,
    /// The caller heard everything before mark `name`, which sat at `played_ms` of its utterance.
    MarkPlayed = 7,
    /// Mark `name` was flushed (barge-in, interrupt, stop) before the caller heard it.
    MarkCleared = 8,
    /// The caller pressed `digit` at `stream_ms`.
    Dtmf = 9,
    /// The stream ended.
    Stopped = 10,
    /// A message was dropped: `error` is the code (trunkline_protocol_error_message describes it),
    /// `name` the offending field when there is one. The call goes on.
    ProtocolError = 11,
    /// The caller's turn seems over (end-of-turn detection enabled): the speech that ended at
    /// `stream_ms` sounded finished (`confidence`) and `duration_ms` of silence followed, or the
    /// hangover passed (then just before SPEECH_STOPPED, `duration_ms` the hangover), or the
    /// maximum silence did, or the call ended (then just before the SPEECH_STOPPED it brings, or
    /// after it while the turn waited for its maximum silence). At most one per pause; the caller
    /// may still speak again after it.
    EndOfTurn = 12,
}

/// The code of a PROTOCOL_ERROR event (`trunkline_event.error`). Values are stable; new codes
/// may be added, so keep a default branch (trunkline_protocol_error_message describes any code).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum trunkline_protocol_error {
    /// Not valid JSON.
    MalformedJson = 1,
    /// A required field is missing (`name` holds it).
    MissingField = 2,
    /// A field has the wrong type or value (`name` holds it).
    WrongType = 3,
    /// Unknown `event`.
    UnknownEvent = 4,
    /// The media payload is not valid base64.
    InvalidBase64 = 5,
    /// The media payload is over `max_payload_bytes`.
    PayloadTooLarge = 6,
    /// The message is over `max_message_bytes`.
    MessageTooLarge = 7,
    /// A binary frame where text is expected.
    UnexpectedFrameKind = 8,
    /// Media before `start`.
    MediaBeforeStart = 9,
    /// A second `start`.
    DuplicateStart = 10,
    /// A message after `stop`.
    AfterStop = 11,
    /// A media format the engine does not handle.
    UnsupportedFormat = 12,
    /// A payload that is not a whole number of samples.
    OddPayloadLength = 13,
    /// A media timestamp discontinuity.
    TimestampJump = 14,
    /// The echo of a mark that was never sent.
    UnknownMark = 15,
    /// A `media`, `mark`, `dtmf` or `stop` naming another stream than `start` did.
    ForeignStream = 16,
    /// The carrier reported an error of its own (Telnyx `error`, Plivo `error` or `playFailed`;
    /// `name` holds the event). The call goes on.
    CarrierReported = 17,
}

/// Size of trunkline_event's `segment` buffer: the longest segment tag (63 bytes) plus the NUL.
pub const TRUNKLINE_SEGMENT_TAG_CAPACITY: usize = 64;

/// One event. Plain data, owned by the caller; `name` is always NUL-terminated. Set `struct_size`
/// before trunkline_session_poll_event (see "VERSIONED OUTPUTS" above).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_event {
    /// sizeof(trunkline_event) in the caller's header: set by the caller before the call; the
    /// library writes no byte past it (see "VERSIONED OUTPUTS" above).
    pub struct_size: size_t,
    /// What happened.
    pub kind: trunkline_event_kind,
    /// Stream time, ms (speech, barge-in, DTMF), else 0.
    pub stream_ms: u64,
    /// Played position in the current utterance, ms (barge-in, interrupt, mark played), else 0.
    pub played_ms: u64,
    /// The DTMF digit ('0'-'9', '*', '#', 'A'-'D'), else 0.
    pub digit: c_char,
    /// Protocol error code (a trunkline_protocol_error), else 0.
    pub error: u32,
    /// Mark name, call id (started) or field name (protocol error), else empty.
    pub name: [c_char; TRUNKLINE_EVENT_NAME_CAPACITY],
    /// How long the DTMF key was held, ms, on carriers that say (Vonage, Exotel, SignalWire,
    /// jambonz), -1 when the carrier does not say; END_OF_TURN: the silence waited, ms; -1 for
    /// other events.
    pub duration_ms: i64,
    /// BARGE_IN, INTERRUPTED: the tag of the segment the caller was hearing (see
    /// trunkline_session_begin_segment), or, when nothing queued had been heard yet, of the first
    /// one queued; empty when no segment was queued, and for other events.
    pub segment: [c_char; TRUNKLINE_SEGMENT_TAG_CAPACITY],
    /// BARGE_IN, INTERRUPTED: how much of `segment` the caller heard, ms, at most what was queued
    /// for it; -1 when nothing of it was heard yet (0: under a millisecond), and for other events.
    pub segment_played_ms: i64,
    /// BARGE_IN, INTERRUPTED: how many segments after `segment` the caller heard nothing of; read
    /// their tags with trunkline_session_unheard_segment. 0 for other events.
    pub unheard_segments: u32,
    /// END_OF_TURN: how finished the phrase sounded, 0..=100 (percent); -1 for other events.
    pub confidence: i64,
}

versioned!(trunkline_event {
    struct_size,
    kind,
    stream_ms,
    played_ms,
    digit,
    error,
    name,
    duration_ms,
    segment,
    segment_played_ms,
    unheard_segments,
    confidence,
});

impl VersionedOutput for trunkline_event {
    /// The first version ends with `name`.
    const FIRST_SIZE: usize = std::mem::offset_of!(Self, name) + TRUNKLINE_EVENT_NAME_CAPACITY;
}

impl trunkline_event {
    fn new(kind: trunkline_event_kind) -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            kind,
            stream_ms: 0,
            played_ms: 0,
            digit: 0,
            error: 0,
            name: [0; TRUNKLINE_EVENT_NAME_CAPACITY],
            duration_ms: -1,
            segment: [0; TRUNKLINE_SEGMENT_TAG_CAPACITY],
            segment_played_ms: -1,
            unheard_segments: 0,
            confidence: -1,
        }
    }

    /// Fills the segment fields of a BARGE_IN or INTERRUPTED event from its report.
    pub(crate) fn with_segments(mut self, report: &SegmentReport) -> Self {
        if let Some(heard) = &report.segment {
            // Tags are at most 63 bytes (checked when begun), so this never truncates.
            for (dst, &b) in self.segment.iter_mut().zip(&heard.tag.as_bytes()[..heard.tag.len().min(63)]) {
                *dst = b as c_char;
            }
            self.segment_played_ms = heard.played_ms.map_or(-1, |ms| ms.min(i64::MAX as u64) as i64);
        }
        self.unheard_segments = report.unheard.len() as u32;
        self
    }

    fn with_name(mut self, name: &str) -> Self {
        // Truncate on a char boundary so the C side always gets valid UTF-8.
        let mut n = name.len().min(TRUNKLINE_MAX_NAME_BYTES);
        while !name.is_char_boundary(n) {
            n -= 1;
        }
        for (dst, &b) in self.name.iter_mut().zip(&name.as_bytes()[..n]) {
            *dst = b as c_char;
        }
        self
    }
}

impl From<&Event> for trunkline_event {
    fn from(e: &Event) -> Self {
        use trunkline_event_kind as K;
        match e {
            Event::Connected => Self::new(K::Connected),
            Event::Started(s) => Self::new(K::Started).with_name(&s.call_id),
            Event::SpeechStarted { stream_ms } => {
                Self { stream_ms: *stream_ms, ..Self::new(K::SpeechStarted) }
            }
            Event::SpeechStopped { stream_ms } => {
                Self { stream_ms: *stream_ms, ..Self::new(K::SpeechStopped) }
            }
            Event::BargeIn { stream_ms, played_ms } => {
                Self { stream_ms: *stream_ms, played_ms: *played_ms, ..Self::new(K::BargeIn) }
            }
            Event::Interrupted { played_ms } => Self { played_ms: *played_ms, ..Self::new(K::Interrupted) },
            Event::MarkPlayed { name, played_ms } => {
                Self { played_ms: *played_ms, ..Self::new(K::MarkPlayed) }.with_name(name)
            }
            Event::MarkCleared { name } => Self::new(K::MarkCleared).with_name(name),
            Event::Dtmf { digit, stream_ms, duration_ms } => Self {
                digit: *digit as u8 as c_char,
                stream_ms: *stream_ms,
                duration_ms: duration_ms.map_or(-1, i64::from),
                ..Self::new(K::Dtmf)
            },
            Event::Stopped => Self::new(K::Stopped),
            Event::ProtocolError { error } => Self { error: error.code(), ..Self::new(K::ProtocolError) }
                .with_name(error.field().unwrap_or("")),
            Event::EndOfTurn { stream_ms, silence_ms, confidence } => Self {
                stream_ms: *stream_ms,
                duration_ms: i64::from(*silence_ms),
                confidence: i64::from(*confidence),
                ..Self::new(K::EndOfTurn)
            },
        }
    }
}

/// A static, NUL-terminated description of protocol error `code` (never NULL). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_protocol_error_message(code: u32) -> *const c_char {
    // The engine's one table of descriptions, NUL-terminated for C.
    ProtocolError::message_nul(code).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline::EventKind;

    #[test]
    fn event_kinds_match_the_engine() {
        let pairs = [
            (EventKind::Connected, trunkline_event_kind::Connected),
            (EventKind::Started, trunkline_event_kind::Started),
            (EventKind::SpeechStarted, trunkline_event_kind::SpeechStarted),
            (EventKind::SpeechStopped, trunkline_event_kind::SpeechStopped),
            (EventKind::BargeIn, trunkline_event_kind::BargeIn),
            (EventKind::Interrupted, trunkline_event_kind::Interrupted),
            (EventKind::MarkPlayed, trunkline_event_kind::MarkPlayed),
            (EventKind::MarkCleared, trunkline_event_kind::MarkCleared),
            (EventKind::Dtmf, trunkline_event_kind::Dtmf),
            (EventKind::Stopped, trunkline_event_kind::Stopped),
            (EventKind::ProtocolError, trunkline_event_kind::ProtocolError),
            (EventKind::EndOfTurn, trunkline_event_kind::EndOfTurn),
        ];
        for (engine, c) in pairs {
            assert_eq!(engine as u32, c as u32);
        }
    }

    #[test]
    fn segment_fields_come_from_the_report_and_default_to_none() {
        let e = trunkline_event::from(&Event::Interrupted { played_ms: 5 });
        assert_eq!((e.segment[0], e.segment_played_ms, e.unheard_segments), (0, -1, 0));
        let report = SegmentReport {
            segment: Some(trunkline::HeardSegment { tag: "t".repeat(63), played_ms: Some(0) }),
            unheard: vec!["b".into(), "c".into()],
        };
        let e = e.with_segments(&report);
        let tag: Vec<u8> = e.segment.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        assert_eq!(tag, [b't'; 63]);
        assert_eq!((e.segment_played_ms, e.unheard_segments), (0, 2));
        let unplayed = SegmentReport {
            segment: Some(trunkline::HeardSegment { tag: "a".into(), played_ms: None }),
            unheard: vec![],
        };
        assert_eq!(
            trunkline_event::from(&Event::Interrupted { played_ms: 0 })
                .with_segments(&unplayed)
                .segment_played_ms,
            -1
        );
    }

    #[test]
    fn end_of_turn_carries_its_silence_and_confidence_and_other_events_none() {
        let e =
            trunkline_event::from(&Event::EndOfTurn { stream_ms: 1_240, silence_ms: 160, confidence: 72 });
        assert_eq!(e.kind, trunkline_event_kind::EndOfTurn);
        assert_eq!((e.stream_ms, e.duration_ms, e.confidence), (1_240, 160, 72));
        let e = trunkline_event::from(&Event::SpeechStopped { stream_ms: 5 });
        assert_eq!((e.duration_ms, e.confidence), (-1, -1));
    }

    #[test]
    fn segment_tag_capacity_holds_the_longest_tag_and_its_nul() {
        assert_eq!(TRUNKLINE_SEGMENT_TAG_CAPACITY, trunkline::pipeline::MAX_SEGMENT_TAG_BYTES + 1);
    }

    #[test]
    fn name_capacity_holds_the_longest_name_and_its_nul() {
        assert_eq!(TRUNKLINE_EVENT_NAME_CAPACITY, TRUNKLINE_MAX_NAME_BYTES + 1);
    }

    #[test]
    fn names_are_truncated_on_char_boundaries_and_nul_terminated() {
        let long = "é".repeat(200); // 400 bytes
        let e = trunkline_event::from(&Event::MarkCleared { name: long });
        let bytes: Vec<u8> = e.name.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        assert_eq!(bytes.len(), 254);
        assert!(std::str::from_utf8(&bytes).is_ok());
    }

    #[test]
    fn protocol_error_codes_match_the_engine() {
        use trunkline_protocol_error as C;
        let pairs = [
            (ProtocolError::MalformedJson, C::MalformedJson),
            (ProtocolError::MissingField(""), C::MissingField),
            (ProtocolError::WrongType(""), C::WrongType),
            (ProtocolError::UnknownEvent, C::UnknownEvent),
            (ProtocolError::InvalidBase64, C::InvalidBase64),
            (ProtocolError::PayloadTooLarge, C::PayloadTooLarge),
            (ProtocolError::MessageTooLarge, C::MessageTooLarge),
            (ProtocolError::UnexpectedFrameKind(trunkline::MessageKind::Binary), C::UnexpectedFrameKind),
            (ProtocolError::MediaBeforeStart, C::MediaBeforeStart),
            (ProtocolError::DuplicateStart, C::DuplicateStart),
            (ProtocolError::AfterStop, C::AfterStop),
            (ProtocolError::UnsupportedFormat, C::UnsupportedFormat),
            (ProtocolError::OddPayloadLength, C::OddPayloadLength),
            (ProtocolError::TimestampJump, C::TimestampJump),
            (ProtocolError::UnknownMark, C::UnknownMark),
            (ProtocolError::ForeignStream, C::ForeignStream),
            (ProtocolError::CarrierReported("error"), C::CarrierReported),
        ];
        for (engine, c) in pairs {
            assert_eq!(engine.code(), c as u32, "{engine:?}");
        }
    }

    const UNKNOWN_CODE: &str = "unknown protocol error code";

    fn protocol_error_message(code: u32) -> &'static str {
        // SAFETY: the function returns static NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(trunkline_protocol_error_message(code)) }.to_str().unwrap()
    }

    #[test]
    fn every_protocol_error_code_has_a_message_and_a_c_name() {
        // The codes run from 1 up to the first the message function does not know; how many there
        // are comes from the engine (through that function), not from this test.
        let known: Vec<u32> =
            (1..).take_while(|&code| protocol_error_message(code) != UNKNOWN_CODE).take(1_000).collect();
        assert!(!known.is_empty() && known.len() < 1_000, "{} codes", known.len());
        let next = known.len() as u32 + 1;
        // Nothing is known past the end of the run (codes are dense), nor at 0.
        for code in [0, next, next + 1, next + 100, u32::MAX] {
            assert_eq!(protocol_error_message(code), UNKNOWN_CODE, "code {code}");
        }
        // Every known code has its own text.
        let mut texts: Vec<&str> = known.iter().map(|&c| protocol_error_message(c)).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), known.len(), "texts shared between codes");
        // The C enum names exactly these codes.
        let mut c_codes = crate::c_header::enum_values("TRUNKLINE_PROTOCOL_ERROR_");
        c_codes.sort_unstable();
        assert_eq!(c_codes, known, "trunkline_protocol_error in include/trunkline.h");
    }
}
