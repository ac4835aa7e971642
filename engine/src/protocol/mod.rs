//! Carrier dialects: parsing what a carrier sends and writing what it expects back.
//!
//! The pipeline only sees [`Inbound`] values, asks a [`Dialect`] to write audio, mark and clear
//! messages, and adapts to what the dialect's [`Capabilities`] declare (how messages are framed,
//! whether media carries timestamps, how long an outbound frame is, how played audio is
//! confirmed, whether playback can be cleared) and to the audio formats its stream announces. So
//! another carrier is one more implementation of the trait; see `docs/dialects.md`.

use std::borrow::Cow;
use std::fmt;

pub mod audiosocket;
mod deframe;
pub mod exotel;
pub mod jambonz;
pub(crate) mod json_in;
pub(crate) mod json_read;
pub(crate) mod json_text;
pub mod plivo;
#[cfg(feature = "request-auth")]
pub mod signature;
mod spec;
pub mod telnyx;
pub mod twilio;
pub mod vonage;

pub use audiosocket::AudioSocketDialect;
pub use deframe::Deframer;
pub use exotel::ExotelDialect;
pub use jambonz::JambonzDialect;
pub use plivo::PlivoDialect;
pub use spec::{DialectError, dialect_by_name, dialect_name, with_exotel_query_rate};
pub use telnyx::TelnyxDialect;
pub use twilio::{SignalWireDialect, TwilioDialect};
pub use vonage::VonageDialect;

/// The dialects this build speaks, by the names every API uses to choose one (the Rust
/// [`crate::SessionConfig::dialect`], the C session config, the bindings), alone or with options
/// (`telnyx;codec=L16;rate=16000`: see [`dialect_by_name`]). The first is the default.
pub const DIALECTS: &[&str] =
    &["twilio", "telnyx", "plivo", "vonage", "exotel", "signalwire", "audiosocket", "jambonz"];

/// How a carrier's bytes arrive cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Each message the host pushes is one carrier message (a WebSocket text or binary frame).
    Messages,
    /// The host pushes a byte stream (a TCP connection) in chunks of any size; messages are
    /// found in it by a header of `header_len` bytes, from which
    /// [`Dialect::stream_message_len`] tells the whole message's length.
    Stream {
        /// Bytes of a message's header.
        header_len: usize,
    },
}

/// How the carrier tells which of the audio it was sent has been played to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// The carrier echoes a named mark (a checkpoint) once the audio sent before it has played.
    /// The engine sends the host's marks and its own hidden sync marks (which measure the
    /// carrier's playout delay).
    Echo {
        /// Whether a clear makes the carrier echo every mark still pending as well (Twilio does:
        /// the engine then tells played from cleared by its playout model, unless the echo says
        /// which, as jambonz's do: [`MarkSaid`]). When it does not, the engine reports the marks
        /// the caller had not reached as cleared at the clear, and waits a second at most for
        /// the echoes of those it had.
        on_clear: bool,
    },
    /// Nothing is confirmed: the engine's own pacer is the truth. Marks are reported played when
    /// the paced audio before them has played by the engine's clock; none is sent.
    None,
}

/// How playback already sent to the carrier is stopped on barge-in or interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearKind {
    /// A clear message drops what the carrier has buffered.
    Message,
    /// There is no such message: the engine stops sending, and what the carrier already holds
    /// (at most the pacer's lead) still plays.
    None,
}

/// What a dialect needs from the engine (see [`Dialect::capabilities`] for when it is read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// How messages are delimited.
    pub framing: Framing,
    /// Whether media messages carry the stream time of their audio. Without it, caller audio is
    /// taken in arrival order (no reordering, no gap filling).
    pub timestamps: bool,
    /// The length of each outbound audio message, ms: every message the pacer sends carries
    /// exactly this much audio (the last one of an utterance padded with silence), which meets
    /// the carriers' rules (exactly 20 ms; a byte size that depends on the format; any size).
    /// A dialect whose rule is in bytes may declare another length once [`Dialect::on_start`]
    /// has named the stream's format (Exotel: 100 to 400 ms); the session reads it then.
    pub frame_ms: u32,
    /// The most audio (ms) the carrier may be sent ahead of real time, for a carrier that plays
    /// what it gets at once instead of buffering it; `None` for one that buffers (the session's
    /// `lead_ms` then applies). The pacer never keeps less than two frames ahead.
    pub max_lead_ms: Option<u32>,
    /// How played audio is confirmed.
    pub confirmation: Confirmation,
    /// How playback is cleared.
    pub clear: ClearKind,
}

impl Capabilities {
    /// What a Twilio-compatible carrier does: JSON text messages with timestamps, 20 ms frames,
    /// marks echoed when played and on clear, a clear message.
    pub const TWILIO: Self = Self {
        framing: Framing::Messages,
        timestamps: true,
        frame_ms: 20,
        max_lead_ms: None,
        confirmation: Confirmation::Echo { on_clear: true },
        clear: ClearKind::Message,
    };
}

/// Whether a WebSocket message is a text or a binary frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageKind {
    /// A text frame (UTF-8, JSON for Twilio).
    Text = 0,
    /// A binary frame.
    Binary = 1,
}

/// The audio track a media or DTMF message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The caller's audio (`inbound`, `inbound_track`).
    Inbound,
    /// The audio sent to the caller (`outbound`, `outbound_track`).
    Outbound,
}

/// Audio encoding announced by the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioEncoding {
    /// G.711 µ-law (`audio/x-mulaw`).
    Mulaw,
    /// G.711 A-law (`audio/x-alaw`).
    Alaw,
    /// Signed 16-bit little-endian linear PCM.
    L16,
    /// G.722 at 64 kbit/s: 16 kHz audio, a byte per two samples, stateful (`codec::g722`). A
    /// stream in it always states 16000 Hz, whatever RTP's clock (8000) the carrier announced.
    G722,
    /// Opus (RFC 6716), one packet per message, at the stream's rate (the rate it is decoded at
    /// or encoded from). Needs the `opus` feature: without it, a stream in Opus is refused.
    Opus,
}

impl AudioEncoding {
    /// Bytes per sample of the byte-per-sample encodings. G.722 and Opus are not: the engine
    /// holds and queues their audio as 16-bit PCM and codes it at the edges, so for them this is
    /// 2, the size of the samples it keeps.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            Self::Mulaw | Self::Alaw => 1,
            Self::L16 | Self::G722 | Self::Opus => 2,
        }
    }
}

/// Audio format of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFormat {
    /// Encoding of the payloads.
    pub encoding: AudioEncoding,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u16,
}

/// What the carrier says when a stream starts. Owned: parsed once per call, at setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// Sequence number of the `start` message.
    pub sequence: Option<u64>,
    /// The carrier's account identifier (Twilio `accountSid`); empty when the carrier sends none.
    pub account_id: String,
    /// The stream's identifier (Twilio `streamSid`), which the dialect echoes where the carrier
    /// needs it.
    pub stream_id: String,
    /// The call's identifier (Twilio `callSid`); empty when the carrier sends none.
    pub call_id: String,
    /// Tracks the carrier will send.
    pub tracks: Vec<Track>,
    /// The carrier's custom data for the call (Twilio `customParameters`), in the order sent.
    pub custom_parameters: Vec<(String, String)>,
    /// Payload format.
    pub media_format: MediaFormat,
}

/// One audio message. The decoded payload is in the [`PayloadBuffer`] passed to the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaFrame {
    /// Message sequence number (`sequenceNumber`), if sent.
    pub sequence: Option<u64>,
    /// Per-track chunk number, if sent.
    pub chunk: Option<u64>,
    /// Stream time of the first sample, in ms since the stream started.
    pub timestamp_ms: u64,
    /// Which track the audio belongs to.
    pub track: Track,
}

/// What a carrier's mark echo says of its mark. Most carriers echo a mark alike whether its
/// audio played or a clear dropped it, and the engine tells the two apart by its playout model;
/// one that says (jambonz labels its echoes) is taken at its word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MarkSaid {
    /// The echo does not say.
    #[default]
    Nothing,
    /// The audio before the mark played.
    Played,
    /// A clear dropped the mark before its audio played.
    Cleared,
}

/// A parsed carrier message. Borrowed from the message bytes; parsing `media` allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// The transport is up (`connected`).
    Connected,
    /// A message the session has nothing to do with (the carrier acknowledging a clear, a notice):
    /// accepted and counted, not reported.
    Notice,
    /// The stream starts (`start`).
    Start(Box<StreamStart>),
    /// Audio (`media`); the payload bytes are in the [`PayloadBuffer`].
    Media(MediaFrame),
    /// A key press (`dtmf`).
    Dtmf {
        /// Message sequence number.
        sequence: Option<u64>,
        /// The digit: `0`-`9`, `*`, `#`, `A`-`D`.
        digit: u8,
        /// How long the key was held, ms, where the carrier says (Vonage, Exotel, SignalWire,
        /// jambonz).
        duration_ms: Option<u32>,
    },
    /// Echo of a mark the app sent (`mark`).
    Mark {
        /// Message sequence number.
        sequence: Option<u64>,
        /// The mark's name, as sent.
        name: Cow<'a, str>,
        /// Whether the carrier says the audio before the mark played or a clear dropped it.
        said: MarkSaid,
    },
    /// The stream ends (`stop`).
    Stop {
        /// Message sequence number.
        sequence: Option<u64>,
    },
}

/// Why a message was rejected. Every variant is a drop the session counts and reports.
///
/// `Display` gives the description of [`ProtocolError::message_nul`] (without the NUL), naming the
/// field of `MissingField` and `WrongType` and the frame kind of `UnexpectedFrameKind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// Not valid JSON (or not UTF-8).
    MalformedJson,
    /// A required field is absent.
    MissingField(&'static str),
    /// A field has the wrong JSON type or an unparsable value.
    WrongType(&'static str),
    /// `event` names nothing this dialect knows.
    UnknownEvent,
    /// The payload is not valid base64.
    InvalidBase64,
    /// The decoded payload exceeds the configured limit.
    PayloadTooLarge,
    /// The whole message exceeds the configured limit.
    MessageTooLarge,
    /// A binary frame where this dialect only uses text (or the reverse).
    UnexpectedFrameKind(MessageKind),
    /// `media` (or another stream message) before `start`.
    MediaBeforeStart,
    /// A second `start` on one stream.
    DuplicateStart,
    /// A message after `stop`.
    AfterStop,
    /// The stream announced a format this engine does not decode.
    UnsupportedFormat,
    /// A payload whose length is not a whole number of samples.
    OddPayloadLength,
    /// A media timestamp far outside the stream (a jump backwards or hours forward).
    TimestampJump,
    /// A `mark` echo naming no mark that was sent (or one already echoed).
    UnknownMark,
    /// A `media`, `mark`, `dtmf` or `stop` whose stream id differs from the one `start` named.
    ForeignStream,
    /// The carrier reported an error of its own (Telnyx `error`, Plivo `error` or `playFailed`,
    /// an AudioSocket error message): the message was well formed; the field names the event.
    /// The call goes on.
    CarrierReported(&'static str),
}

impl ProtocolError {
    /// The field a `MissingField`/`WrongType` error names, if any.
    pub fn field(self) -> Option<&'static str> {
        match self {
            Self::MissingField(f) | Self::WrongType(f) | Self::CarrierReported(f) => Some(f),
            _ => None,
        }
    }

    /// A stable numeric code for the C ABI and the bindings.
    pub fn code(self) -> u32 {
        match self {
            Self::MalformedJson => 1,
            Self::MissingField(_) => 2,
            Self::WrongType(_) => 3,
            Self::UnknownEvent => 4,
            Self::InvalidBase64 => 5,
            Self::PayloadTooLarge => 6,
            Self::MessageTooLarge => 7,
            Self::UnexpectedFrameKind(_) => 8,
            Self::MediaBeforeStart => 9,
            Self::DuplicateStart => 10,
            Self::AfterStop => 11,
            Self::UnsupportedFormat => 12,
            Self::OddPayloadLength => 13,
            Self::TimestampJump => 14,
            Self::UnknownMark => 15,
            Self::ForeignStream => 16,
            Self::CarrierReported(_) => 17,
        }
    }

    /// The description of error code `code` (see [`Self::code`]) with a trailing NUL, for the C
    /// ABI: the same text as the error's `Display`, in general terms for the variants that name a
    /// field or a frame kind; "unknown protocol error code" for a code no error has.
    pub fn message_nul(code: u32) -> &'static str {
        let index = code.checked_sub(1).map(|i| i as usize);
        index.and_then(|i| DESCRIPTIONS_NUL.get(i)).copied().unwrap_or(UNKNOWN_CODE_NUL)
    }

    /// [`Self::message_nul`] of this error's code, without the NUL.
    pub fn summary(self) -> &'static str {
        let text = Self::message_nul(self.code());
        &text[..text.len() - 1]
    }
}

/// How many error codes there are: codes run from 1 to this.
pub const PROTOCOL_ERROR_KINDS: usize = 17;

/// A short name for each error code, index `code - 1` (the `kind` label of the metrics).
pub const PROTOCOL_ERROR_NAMES: [&str; PROTOCOL_ERROR_KINDS] = [
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_event",
    "invalid_base64",
    "payload_too_large",
    "message_too_large",
    "unexpected_frame_kind",
    "media_before_start",
    "duplicate_start",
    "after_stop",
    "unsupported_format",
    "odd_payload_length",
    "timestamp_jump",
    "unknown_mark",
    "foreign_stream",
    "carrier_reported",
];

/// Each error code's description, index `code - 1`, NUL-terminated so that the C ABI can hand
/// them out as they are (see [`ProtocolError::message_nul`]).
const DESCRIPTIONS_NUL: [&str; PROTOCOL_ERROR_KINDS] = [
    "malformed message: not valid JSON\0",
    "a required field is missing\0",
    "a field has the wrong type or value\0",
    "unknown event\0",
    "media payload is not valid base64\0",
    "media payload over the configured limit\0",
    "message over the configured size limit\0",
    "unexpected frame kind (binary where text is expected, or text where binary is)\0",
    "media before start\0",
    "duplicate start\0",
    "message after stop\0",
    "unsupported media format\0",
    "payload length is not a whole number of samples\0",
    "media timestamp discontinuity\0",
    "echo of a mark that was never sent\0",
    "message for another stream (its stream id differs from the start's)\0",
    "the carrier reported an error\0",
];

/// The description of a code no error has.
const UNKNOWN_CODE_NUL: &str = "unknown protocol error code\0";

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MissingField(field) => write!(f, "missing field `{field}`"),
            Self::WrongType(field) => write!(f, "field `{field}` has the wrong type or value"),
            Self::UnexpectedFrameKind(kind) => write!(f, "unexpected {kind:?} frame"),
            Self::CarrierReported(event) => write!(f, "the carrier reported an error (`{event}`)"),
            _ => f.write_str(self.summary()),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A fixed-capacity byte buffer that decoded payloads are written into, reused for every message.
#[derive(Debug)]
pub struct PayloadBuffer {
    bytes: Vec<u8>,
    limit: usize,
}

impl PayloadBuffer {
    /// A buffer that accepts payloads of up to `limit` decoded bytes (allocated once, here).
    pub fn with_limit(limit: usize) -> Self {
        Self { bytes: Vec::with_capacity(limit + 3), limit }
    }
    /// The largest payload accepted, in decoded bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }
    /// The payload of the last parsed media message.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }
    /// Mutable access for a dialect's decoder; capacity is `limit + 3` and must not grow.
    pub fn raw_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

/// A carrier's wire format: parses inbound messages and writes outbound ones.
///
/// A dialect is stateful (it learns the stream id from `start`) and owned by one session.
pub trait Dialect: Send {
    /// What the engine must know to drive this carrier. Read when the session is built, and
    /// again right after [`Self::on_start`] succeeds: then only `frame_ms` and `max_lead_ms`
    /// are taken (a frame length may depend on the stream's format); the framing, timestamps,
    /// confirmation and clear must not change.
    fn capabilities(&self) -> Capabilities;
    /// For [`Framing::Stream`]: the length of the whole message whose header (the first
    /// `header_len` bytes) is `header`. Never called for [`Framing::Messages`].
    fn stream_message_len(&self, header: &[u8]) -> usize {
        header.len()
    }
    /// Parses one received message. Audio payloads are decoded into `payload`; nothing allocates
    /// for `media` messages.
    ///
    /// Once [`Self::on_start`] has named the stream, a `media`, `mark`, `dtmf` or `stop` message
    /// naming another stream is [`ProtocolError::ForeignStream`] (one naming no stream is
    /// accepted): it must never reach the session, where a `stop` would end the call.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError>;
    /// Whether `message` may be the stream's start or its stop: a cheap look for a component that
    /// follows only the stream's life (the offload server) without parsing every audio message.
    /// It may say yes wrongly (the message is then parsed), never no wrongly.
    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        let _ = (message, kind);
        true
    }
    /// Remembers the stream identity from a parsed `start` (used by the writers, and by `parse` to
    /// refuse messages for other streams) and returns the format of the audio the carrier takes
    /// (the caller's audio comes in `start.media_format`). An error refuses the `start`.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError>;
    /// A message the carrier expects in answer to what was parsed (a handshake reply), written
    /// into `out` (cleared first); polled after every parse.
    fn poll_reply(&mut self, out: &mut Vec<u8>) -> Option<MessageKind> {
        let _ = out;
        None
    }
    /// Writes a message carrying `audio` (one frame, in the format [`Self::on_start`] returned)
    /// into `out` (cleared first), and says its frame kind.
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind;
    /// Writes a mark (checkpoint) named `name` into `out` (cleared first). Only called when the
    /// capabilities say [`Confirmation::Echo`].
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind;
    /// Writes a clear message into `out` (cleared first). Only called when the capabilities say
    /// [`ClearKind::Message`].
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind;
    /// An upper bound on the size of a `write_media` message for `payload_len` bytes of audio,
    /// so buffers can be sized once.
    fn max_media_message_len(&self, payload_len: usize) -> usize;

    /// The largest message this carrier sends, and the largest audio payload in one, when a
    /// session's default limits (sized for Twilio's 20 ms messages) are too small for them: a
    /// session on this dialect takes at least these (see [`InboundSizes`]), so the carrier's own
    /// messages are never refused for their size. `None`: the defaults suffice.
    fn inbound_sizes(&self) -> Option<InboundSizes> {
        None
    }

    /// Whether the carrier places a mark ahead of the next audio it receives, rather than behind
    /// the audio already sent (mod_audio_fork): a mark with no audio after it is then echoed only
    /// when more audio comes, so at the end of a reply the pacer sends one frame of silence after
    /// it as the carrier is about to run dry, and the mark is echoed as the reply ends.
    fn marks_wait_for_audio(&self) -> bool {
        false
    }
}

/// What a session must take to hold a carrier's largest messages (see
/// [`Dialect::inbound_sizes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboundSizes {
    /// The largest message, bytes (at least `SessionConfig::max_message_bytes`).
    pub message_bytes: usize,
    /// The largest decoded audio payload in one message, bytes (at least
    /// `SessionConfig::max_payload_bytes`).
    pub payload_bytes: usize,
}

impl InboundSizes {
    /// The limits a session on `dialect` takes, given the configured ones: each raised to the
    /// carrier's largest. Whoever cuts or parses the carrier's messages besides the session (the
    /// offload server, for a byte stream) uses the same, so as to see every message it does.
    pub fn limits_for(dialect: &dyn Dialect, configured: InboundSizes) -> InboundSizes {
        let largest = dialect.inbound_sizes().unwrap_or(configured);
        InboundSizes {
            message_bytes: configured.message_bytes.max(largest.message_bytes),
            payload_bytes: configured.payload_bytes.max(largest.payload_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error, by code, with its `Display` text and the C ABI's description.
    const TEXTS: [(ProtocolError, &str, &str); 17] = [
        (
            ProtocolError::MalformedJson,
            "malformed message: not valid JSON",
            "malformed message: not valid JSON\0",
        ),
        (ProtocolError::MissingField("start"), "missing field `start`", "a required field is missing\0"),
        (
            ProtocolError::WrongType("media.track"),
            "field `media.track` has the wrong type or value",
            "a field has the wrong type or value\0",
        ),
        (ProtocolError::UnknownEvent, "unknown event", "unknown event\0"),
        (
            ProtocolError::InvalidBase64,
            "media payload is not valid base64",
            "media payload is not valid base64\0",
        ),
        (
            ProtocolError::PayloadTooLarge,
            "media payload over the configured limit",
            "media payload over the configured limit\0",
        ),
        (
            ProtocolError::MessageTooLarge,
            "message over the configured size limit",
            "message over the configured size limit\0",
        ),
        (
            ProtocolError::UnexpectedFrameKind(MessageKind::Binary),
            "unexpected Binary frame",
            "unexpected frame kind (binary where text is expected, or text where binary is)\0",
        ),
        (ProtocolError::MediaBeforeStart, "media before start", "media before start\0"),
        (ProtocolError::DuplicateStart, "duplicate start", "duplicate start\0"),
        (ProtocolError::AfterStop, "message after stop", "message after stop\0"),
        (ProtocolError::UnsupportedFormat, "unsupported media format", "unsupported media format\0"),
        (
            ProtocolError::OddPayloadLength,
            "payload length is not a whole number of samples",
            "payload length is not a whole number of samples\0",
        ),
        (ProtocolError::TimestampJump, "media timestamp discontinuity", "media timestamp discontinuity\0"),
        (
            ProtocolError::UnknownMark,
            "echo of a mark that was never sent",
            "echo of a mark that was never sent\0",
        ),
        (
            ProtocolError::ForeignStream,
            "message for another stream (its stream id differs from the start's)",
            "message for another stream (its stream id differs from the start's)\0",
        ),
        (
            ProtocolError::CarrierReported("error"),
            "the carrier reported an error (`error`)",
            "the carrier reported an error\0",
        ),
    ];

    #[test]
    fn every_error_has_its_code_and_texts() {
        for (i, (error, display, c_text)) in TEXTS.iter().enumerate() {
            assert_eq!(error.code(), i as u32 + 1, "{error:?}");
            assert_eq!(error.to_string(), *display, "{error:?}");
            assert_eq!(ProtocolError::message_nul(error.code()), *c_text, "{error:?}");
            assert_eq!(error.summary(), c_text.trim_end_matches('\0'), "{error:?}");
        }
        for code in [0, 18, u32::MAX] {
            assert_eq!(ProtocolError::message_nul(code), "unknown protocol error code\0");
        }
    }

    #[test]
    fn every_description_has_one_nul_at_its_end() {
        for text in DESCRIPTIONS_NUL.iter().chain([&UNKNOWN_CODE_NUL]) {
            assert_eq!(text.find('\0'), Some(text.len() - 1), "{text:?}");
        }
    }
}
