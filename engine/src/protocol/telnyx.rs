//! The Telnyx Media Streaming dialect (Call Control `stream_url`, TeXML `<Stream>`), with
//! bidirectional RTP mode (`stream_bidirectional_mode: rtp`).
//!
//! Telnyx sends JSON text frames with snake_case fields and most numbers as strings; audio is a
//! base64 RTP payload without its RTP header. [`TelnyxDialect::parse`] turns each frame into an
//! [`Inbound`]; the writers produce the three frames Telnyx accepts back (`media`, `mark`,
//! `clear`).
//!
//! # What is accepted
//!
//! Fields not listed are ignored (whatever their type). A JSON `null` counts as an absent field.
//! "Number" means a JSON string of ASCII digits (how Telnyx sends its counters, e.g. `"4"`) or a
//! bare non-negative JSON integer (how it sends `sample_rate` and `channels`); anything else —
//! object, array, bool, negative, float, empty or non-digit string, more than `u64::MAX` — is
//! [`ProtocolError::WrongType`] naming the field.
//!
//! | event | field | required | accepted values → result |
//! |---|---|---|---|
//! | all | `event` | yes | `connected`, `start`, `media`, `dtmf`, `mark`, `stop`, `error` (see below); other string → `UnknownEvent`, non-string → `WrongType("event")` |
//! | all | `sequence_number` | no | number |
//! | all | `stream_id` | no | string; after `start` (once [`Dialect::on_start`] has run), a `media`, `dtmf`, `mark` or `stop` naming another stream → `ForeignStream` (absent: accepted) |
//! | `connected` | `version`, auth token | no | ignored |
//! | `media` | `media` | yes | object |
//! | `media` | `media.timestamp` | yes | number (ms since the stream started) |
//! | `media` | `media.chunk` | no | number |
//! | `media` | `media.track` | no (inbound) | `inbound`, `outbound`, `inbound_track`, `outbound_track` |
//! | `media` | `media.payload` | yes | string, standard base64 with or without `=` padding, decoded into the [`PayloadBuffer`]; bad base64 → `InvalidBase64`, decoded length over [`PayloadBuffer::limit`] → `PayloadTooLarge`; on an L16 stream, an odd length → `OddPayloadLength`, else the big-endian samples are stored little-endian; an empty payload parses (the session then rejects it) |
//! | `dtmf` | `dtmf` | yes | object |
//! | `dtmf` | `dtmf.digit` | yes | exactly one of `0`-`9` `*` `#` `A`-`D` |
//! | `dtmf` | `occurred_at`, `dtmf.*` else | no | ignored |
//! | `mark` | `mark` | yes | object |
//! | `mark` | `mark.name` | yes | string (any, including empty); borrowed unless it contains escapes |
//! | `stop` | `stop` | no | ignored (its ids repeat `start`'s) |
//! | `start` | `start` | yes | object |
//! | `start` | `stream_id` | yes¹ | string (top level, where Telnyx puts it); `start.stream_id` is taken if the top level has none; if both are present they must be equal, else `WrongType("stream_id")` |
//! | `start` | `start.call_control_id` | no ("") | string → [`StreamStart::call_id`] (the id Call Control commands such as hang-up take) |
//! | `start` | `start.user_id` | no ("") | string → [`StreamStart::account_id`] |
//! | `start` | `start.custom_parameters` | no (empty) | object; string values kept, numbers and booleans become their JSON text (serde_json's rendering: `1.50` → `"1.5"`), `null`/array/object values → `WrongType`; document order and duplicate names kept |
//! | `start` | `start.media_format` | no (PCMU, 8000 Hz, 1 channel) | object |
//! | `start` | `start.media_format.encoding` | yes | `PCMU` → µ-law, `PCMA` → A-law, `L16` → L16 (big-endian on the wire), `G722` → G.722, `OPUS` → Opus (with the `opus` feature) (ASCII case-insensitive); `AMR-WB` and any other string → `UnsupportedFormat` (see "Codecs") |
//! | `start` | `start.media_format.sample_rate` | yes | number, 1..=`u32::MAX`; for `G722` 8000 or 16000, both stated as 16000 (else `UnsupportedFormat`) |
//! | `start` | `start.media_format.channels` | no (1) | number, 1..=`u16::MAX` |
//! | `start` | `call_session_id`, `from`, `to`, `tags`, `client_state` | no | ignored: [`StreamStart`] has no place for them |
//!
//! ¹ `MissingField("stream_id")` when neither is present. [`StreamStart::tracks`] is always
//! `[inbound]`: Telnyx's `start` does not list tracks, and outbound-track media is told apart by
//! `media.track`.
//!
//! Whole-message errors: a [`MessageKind::Binary`] frame → `UnexpectedFrameKind(Binary)`;
//! not UTF-8, not JSON, truncated, trailing data, a top-level value that is not an object, nesting
//! deeper than 128, or a duplicate key among the fields above → `MalformedJson`. Checks run in this
//! order: frame kind, JSON, `event`, `sequence_number`, `stream_id`, then the event's own fields as
//! listed.
//!
//! # What is written
//!
//! Exactly the documented shapes, as text frames, without `stream_id` (Telnyx's examples carry
//! none, and the socket has one stream):
//!
//! ```text
//! {"event":"media","media":{"payload":"<base64 RTP payload>"}}
//! {"event":"mark","mark":{"name":"<name>"}}
//! {"event":"clear"}
//! ```
//!
//! Each `media` carries exactly one 20 ms frame (Telnyx takes 20 ms to 30 s per chunk) in the
//! format Telnyx was told to expect back. That is configured on Telnyx's side
//! (`stream_bidirectional_codec`, `stream_bidirectional_sampling_rate`) and never announced on the
//! socket, so the dialect cannot learn it: [`TelnyxDialect::new`] assumes Telnyx's documented
//! default, PCMU at 8000 Hz, and [`TelnyxDialect::with_outbound_format`] states another (PCMA;
//! L16 at a rate the engine produces: 8, 16, 24 or 48 kHz, written big-endian; G.722; Opus at 8,
//! 16, 24 or 48 kHz).
//!
//! # Codecs
//!
//! | `media_format.encoding` | `sample_rate` accepted | caller's audio | audio sent back (`codec=` option) |
//! |---|---|---|---|
//! | `PCMU`, `PCMA` | any the engine converts (8000) | a byte per sample | `PCMU` (default), `PCMA`: 8000 Hz, 160 B per 20 ms |
//! | `L16` | 8000 to 48000 | big-endian, swapped | `L16`, `rate=` 8000 (default), 16000, 24000, 48000: big-endian |
//! | `G722` | 8000 or 16000 (RTP's clock or the audio's), both taken as 16 kHz audio | decoded at 16 kHz, on to the agent's rate directly | `G722` (`rate=` 16000 or 8000, both 16 kHz audio): 64 kbit/s, 160 B per 20 ms |
//! | `OPUS` (`opus` feature) | 8000, 12000, 16000, 24000, 48000 | one packet per message, decoded at the lowest of 8, 16 or 24 kHz that keeps what the announced rate and the agent's rate carry | `OPUS`, `rate=` 16000 (default), 8000, 24000, 48000: one 20 ms packet per message (VOIP mode; 16, 24 or 32 kbit/s by band), never concatenated |
//! | `AMR-WB`, other | | refused: `UnsupportedFormat` | |
//!
//! G.722 and Opus keep state across frames: their decoder and encoder are built at `start`, in
//! the calls that use them only. Payloads are decoded in arrival order (a frame Telnyx delivers
//! out of order is decoded late, then put back in place by its timestamp); a lost frame is
//! silence. A payload libopus refuses is dropped and reported as `WrongType("media.payload")`; a
//! G.722 payload over 90 ms as `PayloadTooLarge`. Without the `opus` feature, `OPUS` is refused.
//!
//! # Capabilities
//!
//! Messages framing; timestamps (Telnyx documents that media order is not guaranteed, so caller
//! audio is reordered by `media.timestamp`); 20 ms frames; no lead cap (Telnyx queues what it is
//! sent); marks echoed when played and, on `clear`, every queued mark echoed as well
//! (`Echo { on_clear: true }`: the engine tells played from cleared by its playout model); a
//! `clear` message.
//!
//! # Uncertain points, and how they were decided
//!
//! - The `media`, `dtmf`, `mark` and `stop` shapes come from peers rather than Telnyx's full
//!   reference: the fields above are the ones every source agrees on, both track spellings are
//!   accepted, and everything else is ignored.
//! - The unit of `media.timestamp` is not documented: it is taken as ms since the stream started,
//!   as in Twilio's format, which Telnyx's follows field for field. (A stream whose timestamps
//!   start far from zero is re-anchored once by the engine and reported as one `TimestampJump`.)
//! - The `error` frame's shape and codes are unconfirmed: whatever its body, it is reported to the
//!   host as `CarrierReported("error")` (a counted protocol error event of its own code) and the
//!   call goes on (a `stop` or the socket closing ends it).
//! - Where the stream auth token sits inside `connected` is unconfirmed: it is not read. Telnyx
//!   also sends it as the `x-telnyx-streaming-auth-token` upgrade header, which is where the
//!   server compares it (`signature::request_auth`, in constant time).
//! - Whether `dtmf` carries a duration is unconfirmed: only the digit is read.
//! - L16 byte order rests on peers and the RTP convention: big-endian, swapped both ways.
//! - G.722's `sample_rate` may be RTP's clock (8000) or the audio's (16000): both are accepted as
//!   16 kHz audio; and Telnyx is taken to send one G.722 frame of 20 ms (160 B) per message, as
//!   the engine sends (any whole number of bytes is decoded).
//! - Whether Telnyx takes Opus at 20 ms only is undocumented: 20 ms packets are what is sent.
//! - AMR-WB packing is undocumented: moot, AMR-WB is refused. No playback buffer cap is
//!   documented: the session's `lead_ms` applies.
//! - Two peers claim Telnyx needs RTP headers on outbound audio, or takes raw binary frames: both
//!   contradict Telnyx's documentation and are not followed.
//!
//! # Allocation
//!
//! Parsing a `media` message allocates nothing: the JSON is deserialized into borrowed structs
//! (see `wire`), and the payload is base64-decoded (and, for L16, byte-swapped in place) into the
//! caller's [`PayloadBuffer`] without growing it. Exceptions, all off the normal path: strings
//! with JSON escapes, and errors for malformed JSON (serde_json boxes its error). `start`
//! allocates its owned [`StreamStart`]. The writers clear `out` and allocate only if its capacity
//! is too small; size it with [`Dialect::max_media_message_len`].

mod payload;
mod wire;

use self::wire::EventKind;
use super::json_read::{
    self, Obj, optional_number, optional_string, required_number, required_object, required_string,
};
use super::*;
use crate::audio::CARRIER_RATE;
use crate::codec::g722::G722_RATE;
use crate::protocol::json_text::{base64_len, push_escaped};

/// `{"event":"media","media":{"payload":"` … `"}}`
const MEDIA_HEAD: &[u8] = br#"{"event":"media","media":{"payload":""#;
const MEDIA_TAIL: &[u8] = br#""}}"#;
/// `{"event":"mark","mark":{"name":"` … `"}}`
const MARK_HEAD: &[u8] = br#"{"event":"mark","mark":{"name":""#;
const MARK_TAIL: &[u8] = br#""}}"#;
const CLEAR: &[u8] = br#"{"event":"clear"}"#;

/// PCMU at 8000 Hz, mono: Telnyx's documented default for the audio it takes back
/// (`stream_bidirectional_codec`, `stream_bidirectional_sampling_rate`), and what a `start` without
/// `media_format` is taken to announce.
const PCMU_8K: MediaFormat =
    MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: CARRIER_RATE, channels: 1 };

/// Telnyx Media Streaming JSON, bidirectional RTP mode.
///
/// Parses what Telnyx sends and writes what it accepts; the stream id learnt in
/// [`Dialect::on_start`] is used to refuse inbound messages naming another stream, and the
/// caller's encoding to turn big-endian L16 little-endian.
#[derive(Debug, Clone)]
pub struct TelnyxDialect {
    /// The stream id as `start` named it; `None` before `start`.
    stream_id: Option<String>,
    /// The caller's audio is L16, which Telnyx sends big-endian.
    inbound_l16: bool,
    /// The format Telnyx expects back.
    outbound: MediaFormat,
}

impl Default for TelnyxDialect {
    fn default() -> Self {
        Self::new()
    }
}

impl TelnyxDialect {
    /// A dialect with no stream yet, sending back PCMU at 8000 Hz (Telnyx's default
    /// `stream_bidirectional_codec` and `stream_bidirectional_sampling_rate`).
    pub fn new() -> Self {
        Self::with_outbound_format(PCMU_8K)
    }

    /// A dialect with no stream yet, sending back `format`: what the call's
    /// `stream_bidirectional_codec` and `stream_bidirectional_sampling_rate` say (µ-law for PCMU,
    /// A-law for PCMA, L16 for L16; mono). A format the engine cannot produce refuses the stream's
    /// `start` with `UnsupportedFormat`.
    pub fn with_outbound_format(format: MediaFormat) -> Self {
        Self { stream_id: None, inbound_l16: false, outbound: format }
    }

    /// `expected_id`: the stream `start` named, if it has been seen.
    fn parse_text<'a>(
        text: &'a str,
        expected_id: Option<&str>,
        inbound_l16: bool,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        let mut root = Obj::Absent;
        wire::parse_message(text, &mut root)?;
        let Obj::Valid(msg) = &mut root else { unreachable!("parse_message succeeds only with an object") };
        let event = json_read::event_kind(&msg.event, EventKind::from_name)?;
        let sequence = optional_number(msg.sequence.take(), "sequence_number")?;
        let stream_id = optional_string(msg.stream_id.take(), "stream_id")?;
        // Why before the event's own fields: a message for another stream is dropped whatever it
        // carries (its payload is not even decoded). `start` is left to the session, which refuses
        // any second one; a message naming no stream is taken as this stream's.
        let of_stream =
            matches!(event, EventKind::Media | EventKind::Dtmf | EventKind::Mark | EventKind::Stop);
        json_read::same_stream(expected_id, stream_id.as_deref(), of_stream)?;
        Ok(match event {
            EventKind::Error => return Err(ProtocolError::CarrierReported("error")),
            EventKind::Connected => Inbound::Connected,
            EventKind::Stop => Inbound::Stop { sequence },
            EventKind::Media => {
                let (frame, base64) =
                    json_read::media_frame(required_object(&mut msg.media, "media")?, sequence)?;
                // Outbound-track audio is dropped by the session whatever its bytes; swapping it
                // too keeps one rule (the stream's encoding) for every payload.
                payload::decode(base64.as_bytes(), payload, inbound_l16)?;
                Inbound::Media(frame)
            }
            EventKind::Dtmf => {
                let dtmf = required_object(&mut msg.dtmf, "dtmf")?;
                let digit = required_string(dtmf.digit.take(), "dtmf.digit")?;
                let digit = match digit.as_bytes() {
                    &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => d,
                    _ => return Err(ProtocolError::WrongType("dtmf.digit")),
                };
                Inbound::Dtmf { sequence, digit, duration_ms: None }
            }
            EventKind::Mark => {
                let mark = required_object(&mut msg.mark, "mark")?;
                let name = required_string(mark.name.take(), "mark.name")?;
                Inbound::Mark { sequence, name, said: MarkSaid::Nothing }
            }
            EventKind::Start => {
                let start = required_object(&mut msg.start, "start")?;
                let inner_id = optional_string(start.stream_id.take(), "start.stream_id")?;
                let stream_id = match (stream_id, inner_id) {
                    (Some(outer), Some(inner)) if inner != outer => {
                        return Err(ProtocolError::WrongType("stream_id"));
                    }
                    (Some(id), _) | (None, Some(id)) => id.into_owned(),
                    (None, None) => return Err(ProtocolError::MissingField("stream_id")),
                };
                let call_id = optional_string(start.call_control_id.take(), "start.call_control_id")?;
                let account_id = optional_string(start.user_id.take(), "start.user_id")?;
                let custom_parameters = match start.custom_parameters.take() {
                    None => Vec::new(),
                    Some(json_read::Params::Map(params)) => params,
                    Some(json_read::Params::Text(_) | json_read::Params::Invalid) => {
                        return Err(ProtocolError::WrongType("start.custom_parameters"));
                    }
                };
                let media_format = match &mut start.media_format {
                    Obj::Absent => PCMU_8K,
                    Obj::Invalid => return Err(ProtocolError::WrongType("start.media_format")),
                    Obj::Valid(format) => media_format(format)?,
                };
                Inbound::Start(Box::new(StreamStart {
                    sequence,
                    account_id: account_id.map(Cow::into_owned).unwrap_or_default(),
                    stream_id,
                    call_id: call_id.map(Cow::into_owned).unwrap_or_default(),
                    tracks: vec![Track::Inbound],
                    custom_parameters,
                    media_format,
                }))
            }
        })
    }
}

fn media_format(format: &mut wire::FormatBody<'_>) -> Result<MediaFormat, ProtocolError> {
    const ENCODING: &str = "start.media_format.encoding";
    const RATE: &str = "start.media_format.sample_rate";
    const CHANNELS: &str = "start.media_format.channels";
    let name = required_string(format.encoding.take(), ENCODING)?;
    let encoding = if name.eq_ignore_ascii_case("PCMU") {
        AudioEncoding::Mulaw
    } else if name.eq_ignore_ascii_case("PCMA") {
        AudioEncoding::Alaw
    } else if name.eq_ignore_ascii_case("L16") {
        AudioEncoding::L16
    } else if name.eq_ignore_ascii_case("G722") {
        AudioEncoding::G722
    } else if cfg!(feature = "opus") && name.eq_ignore_ascii_case("OPUS") {
        AudioEncoding::Opus
    } else {
        // AMR-WB (which Telnyx offers), Opus in a build without libopus, and anything else: the
        // stream cannot be heard.
        return Err(ProtocolError::UnsupportedFormat);
    };
    let sample_rate = required_number(format.sample_rate.take(), RATE)?;
    let sample_rate =
        u32::try_from(sample_rate).ok().filter(|&r| r > 0).ok_or(ProtocolError::WrongType(RATE))?;
    let sample_rate = match (encoding, sample_rate) {
        // RTP's clock for G.722 is 8000 (RFC 3551), its audio 16 kHz: either announcement is
        // G.722's 16 kHz audio.
        (AudioEncoding::G722, 8000 | 16_000) => G722_RATE,
        (AudioEncoding::G722, _) => return Err(ProtocolError::UnsupportedFormat),
        (_, rate) => rate,
    };
    let channels = optional_number(format.channels.take(), CHANNELS)?.unwrap_or(1);
    let channels =
        u16::try_from(channels).ok().filter(|&c| c > 0).ok_or(ProtocolError::WrongType(CHANNELS))?;
    Ok(MediaFormat { encoding, sample_rate, channels })
}

impl Dialect for TelnyxDialect {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            framing: Framing::Messages,
            timestamps: true,
            frame_ms: 20,
            max_lead_ms: None,
            confirmation: Confirmation::Echo { on_clear: true },
            clear: ClearKind::Message,
        }
    }

    /// Parses one Telnyx message (see the module documentation for exactly what is accepted).
    ///
    /// `payload` is cleared first, so after any call it holds the decoded audio of this message
    /// if it was a valid `media` message, and nothing otherwise.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        payload.raw_mut().clear();
        if kind == MessageKind::Binary {
            return Err(ProtocolError::UnexpectedFrameKind(MessageKind::Binary));
        }
        // Why validate up front: serde_json's `from_str` then skips its own per-string checks,
        // and ignored fields would otherwise go unchecked.
        let text = std::str::from_utf8(message).map_err(|_| ProtocolError::MalformedJson)?;
        let result = Self::parse_text(text, self.stream_id.as_deref(), self.inbound_l16, payload);
        if result.is_err() {
            payload.raw_mut().clear();
        }
        result
    }

    /// A `start` or `stop` event names itself in quotes; base64 audio has no quotes.
    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        let contains = |needle: &[u8]| message.windows(needle.len()).any(|w| w == needle);
        kind == MessageKind::Text && (contains(b"\"start\"") || contains(b"\"stop\""))
    }

    /// Remembers the stream id and whether its L16 needs swapping; Telnyx takes back the format
    /// this dialect was made with, whatever the caller's is.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        self.stream_id = Some(start.stream_id.clone());
        self.inbound_l16 = start.media_format.encoding == AudioEncoding::L16;
        Ok(self.outbound)
    }

    /// Writes `{"event":"media","media":{"payload":"<base64>"}}`, L16 turned big-endian.
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(MEDIA_HEAD);
        payload::push_base64(out, audio, self.outbound.encoding == AudioEncoding::L16);
        out.extend_from_slice(MEDIA_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"mark","mark":{"name":"<name>"}}`, `name` JSON-escaped.
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(MARK_HEAD);
        push_escaped(out, name);
        out.extend_from_slice(MARK_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"clear"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(CLEAR);
        MessageKind::Text
    }

    /// The exact length of [`Dialect::write_media`]'s output (saturating at `usize::MAX`).
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        (MEDIA_HEAD.len() + MEDIA_TAIL.len()).saturating_add(base64_len(payload_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dialect_can_move_to_a_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<TelnyxDialect>();
    }
}
