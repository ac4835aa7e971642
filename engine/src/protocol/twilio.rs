//! The Twilio Media Streams dialect (also SignalWire and other Twilio-compatible carriers).
//!
//! Twilio sends JSON text frames; [`TwilioDialect::parse`] turns each into an [`Inbound`] and the
//! writers produce the three messages Twilio accepts on a bidirectional stream (`media`, `mark`,
//! `clear`). docs/dialects.md describes the behaviour. [`SignalWireDialect`] speaks the same
//! messages but takes back the format the stream announced (SignalWire's L16 at 16 or 24 kHz).
//!
//! # What is accepted
//!
//! Fields not listed are ignored (whatever their type). A JSON `null` counts as an absent field.
//! "Number" means a JSON string of ASCII digits (how Twilio sends every number, e.g. `"42"`) or a
//! bare non-negative JSON integer (some compatible carriers); anything else — object, array, bool,
//! negative, float, empty or non-digit string, more than `u64::MAX` — is
//! [`ProtocolError::WrongType`] naming the field.
//!
//! | event | field | required | accepted values → result |
//! |---|---|---|---|
//! | all | `event` | yes | `connected`, `start`, `media`, `dtmf`, `mark`, `stop`; other string → `UnknownEvent`, non-string → `WrongType("event")` |
//! | all | `sequenceNumber` | no | number |
//! | all | `streamSid` | no | string; after `start` (once [`Dialect::on_start`] has run), a `media`, `dtmf`, `mark` or `stop` naming another stream → `ForeignStream` (absent: accepted) |
//! | `connected` | `protocol`, `version` | no | ignored |
//! | `media` | `media` | yes | object |
//! | `media` | `media.timestamp` | yes | number (ms since the stream started) |
//! | `media` | `media.chunk` | no | number |
//! | `media` | `media.track` | no (inbound) | `inbound`, `outbound`, `inbound_track`, `outbound_track` |
//! | `media` | `media.payload` | yes | string, standard base64 with or without `=` padding, decoded into the [`PayloadBuffer`]; bad base64 → `InvalidBase64`, decoded length over [`PayloadBuffer::limit`] → `PayloadTooLarge`; an empty payload parses (the session then rejects it) |
//! | `dtmf` | `dtmf` | yes | object |
//! | `dtmf` | `dtmf.digit` | yes | exactly one of `0`-`9` `*` `#` `A`-`D` |
//! | `dtmf` | `dtmf.duration` | no | ms (SignalWire): a number or numeric string |
//! | `dtmf` | `dtmf.track` | no | ignored |
//! | `mark` | `mark` | yes | object |
//! | `mark` | `mark.name` | yes | string (any, including empty); borrowed unless it contains escapes |
//! | `stop` | `stop` | no | ignored (its `accountSid`/`callSid` repeat `start`'s) |
//! | `start` | `start` | yes | object |
//! | `start` | `start.streamSid` | yes¹ | string; falls back to the top-level `streamSid`; if both are present they must be equal, else `WrongType("streamSid")` |
//! | `start` | `start.callSid` | no ("") | string |
//! | `start` | `start.accountSid` | no ("") | string |
//! | `start` | `start.tracks` | no (`[inbound]`) | array of track names (as `media.track`), kept in order |
//! | `start` | `start.customParameters` | no (empty) | object; string values kept, numbers and booleans become their JSON text (serde_json's rendering: `1.50` → `"1.5"`), `null`/array/object values → `WrongType`; document order and duplicate names kept |
//! | `start` | `start.mediaFormat` | no (µ-law, 8000 Hz, 1 channel) | object |
//! | `start` | `start.mediaFormat.encoding` | yes | `audio/x-mulaw` → µ-law, `audio/x-alaw` → A-law, `audio/x-l16` or `audio/l16` → L16 (ASCII case-insensitive, like all MIME types); other string → `UnsupportedFormat` |
//! | `start` | `start.mediaFormat.sampleRate` | yes | number, 1..=`u32::MAX` |
//! | `start` | `start.mediaFormat.channels` | no (1) | number, 1..=`u16::MAX` |
//!
//! ¹ `MissingField("start.streamSid")` when neither is present: every outbound message needs it.
//! Call and account SIDs are optional because nothing in the engine needs them.
//!
//! Whole-message errors: a [`MessageKind::Binary`] frame → `UnexpectedFrameKind(Binary)`;
//! not UTF-8, not JSON, truncated, trailing data, a top-level value that is not an object, nesting
//! deeper than 128, or a duplicate key among the fields above → `MalformedJson`. Checks run in this
//! order: frame kind, JSON, `event`, `sequenceNumber`, `streamSid`, then the event's own fields as
//! listed.
//!
//! # Allocation
//!
//! Parsing a `media` message allocates nothing: the JSON is deserialized into borrowed structs
//! (see `wire`), and the payload is base64-decoded into the caller's [`PayloadBuffer`] without
//! growing it. Exceptions, all off the normal path: strings with JSON escapes (serde_json unescapes
//! them into a scratch buffer), and errors for malformed JSON (serde_json boxes its error). `start`
//! allocates its owned [`StreamStart`]; `mark` names are borrowed unless escaped. The writers
//! clear `out` and allocate only if its capacity is too small; size it with
//! [`Dialect::max_media_message_len`].

mod json_out;
mod signalwire;
mod wire;

pub use self::signalwire::SignalWireDialect;

use self::wire::EventKind;
use super::json_read::{
    self, Obj, decode_payload, optional_number, optional_string, required_number, required_object,
    required_string,
};
use super::*;
use crate::audio::CARRIER_RATE;

/// Twilio Media Streams JSON (also SignalWire's).
///
/// Parses what Twilio sends and writes what it accepts; the stream SID learnt in
/// [`Dialect::on_start`] goes into every outbound message (an empty SID before that), and
/// inbound stream messages naming another SID are refused.
#[derive(Debug, Default, Clone)]
pub struct TwilioDialect {
    /// The stream SID, already escaped for the inside of a JSON string.
    stream_sid_json: Vec<u8>,
    /// The stream SID as `start` named it (unescaped, as parsed messages carry it); `None`
    /// before `start`.
    stream_sid: Option<String>,
}

impl TwilioDialect {
    /// A dialect with no stream yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `expected_sid`: the stream `start` named, if it has been seen.
    fn parse_text<'a>(
        text: &'a str,
        expected_sid: Option<&str>,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        let mut root = Obj::Absent;
        wire::parse_message(text, &mut root)?;
        let Obj::Valid(msg) = &mut root else { unreachable!("parse_message succeeds only with an object") };
        let event = json_read::event_kind(&msg.event, EventKind::from_name)?;
        let sequence = optional_number(msg.sequence.take(), "sequenceNumber")?;
        let stream_sid = optional_string(msg.stream_sid.take(), "streamSid")?;
        // Why before the event's own fields: a message for another stream is dropped whatever it
        // carries (its payload is not even decoded). `start` is left to the session, which refuses
        // any second one; a message naming no stream is taken as this stream's.
        let of_stream =
            matches!(event, EventKind::Media | EventKind::Dtmf | EventKind::Mark | EventKind::Stop);
        json_read::same_stream(expected_sid, stream_sid.as_deref(), of_stream)?;
        Ok(match event {
            EventKind::Connected => Inbound::Connected,
            EventKind::Stop => Inbound::Stop { sequence },
            EventKind::Media => {
                let (frame, base64) =
                    json_read::media_frame(required_object(&mut msg.media, "media")?, sequence)?;
                decode_payload(base64.as_bytes(), payload)?;
                Inbound::Media(frame)
            }
            EventKind::Dtmf => {
                let dtmf = required_object(&mut msg.dtmf, "dtmf")?;
                let digit = required_string(dtmf.digit.take(), "dtmf.digit")?;
                let digit = match digit.as_bytes() {
                    &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => d,
                    _ => return Err(ProtocolError::WrongType("dtmf.digit")),
                };
                // Twilio sends no duration; SignalWire, speaking this dialect, sends ms.
                let duration_ms = json_read::dtmf_duration_ms(dtmf.duration.take(), 1);
                Inbound::Dtmf { sequence, digit, duration_ms }
            }
            EventKind::Mark => {
                let mark = required_object(&mut msg.mark, "mark")?;
                let name = required_string(mark.name.take(), "mark.name")?;
                Inbound::Mark { sequence, name, said: MarkSaid::Nothing }
            }
            EventKind::Start => {
                let start = required_object(&mut msg.start, "start")?;
                let inner_sid = optional_string(start.stream_sid.take(), "start.streamSid")?;
                let stream_sid = match (inner_sid, stream_sid) {
                    (Some(inner), Some(outer)) if inner != outer => {
                        return Err(ProtocolError::WrongType("streamSid"));
                    }
                    (Some(sid), _) | (None, Some(sid)) => sid.into_owned(),
                    (None, None) => return Err(ProtocolError::MissingField("start.streamSid")),
                };
                let call_sid = optional_string(start.call_sid.take(), "start.callSid")?;
                let account_sid = optional_string(start.account_sid.take(), "start.accountSid")?;
                let tracks = match start.tracks.take() {
                    None => vec![Track::Inbound],
                    Some(json_read::Tracks::Valid(tracks)) => tracks,
                    Some(json_read::Tracks::Invalid) => {
                        return Err(ProtocolError::WrongType("start.tracks"));
                    }
                };
                let custom_parameters = match start.custom_parameters.take() {
                    None => Vec::new(),
                    Some(json_read::Params::Map(params)) => params,
                    Some(json_read::Params::Text(_) | json_read::Params::Invalid) => {
                        return Err(ProtocolError::WrongType("start.customParameters"));
                    }
                };
                let media_format = match &mut start.media_format {
                    Obj::Absent => {
                        MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: CARRIER_RATE, channels: 1 }
                    }
                    Obj::Invalid => return Err(ProtocolError::WrongType("start.mediaFormat")),
                    Obj::Valid(format) => media_format(format)?,
                };
                Inbound::Start(Box::new(StreamStart {
                    sequence,
                    account_id: account_sid.map(Cow::into_owned).unwrap_or_default(),
                    stream_id: stream_sid,
                    call_id: call_sid.map(Cow::into_owned).unwrap_or_default(),
                    tracks,
                    custom_parameters,
                    media_format,
                }))
            }
        })
    }
}

fn media_format(format: &mut wire::FormatBody<'_>) -> Result<MediaFormat, ProtocolError> {
    const ENCODING: &str = "start.mediaFormat.encoding";
    const RATE: &str = "start.mediaFormat.sampleRate";
    const CHANNELS: &str = "start.mediaFormat.channels";
    let name = required_string(format.encoding.take(), ENCODING)?;
    let encoding = if name.eq_ignore_ascii_case("audio/x-mulaw") {
        AudioEncoding::Mulaw
    } else if name.eq_ignore_ascii_case("audio/x-alaw") {
        AudioEncoding::Alaw
    } else if name.eq_ignore_ascii_case("audio/x-l16") || name.eq_ignore_ascii_case("audio/l16") {
        AudioEncoding::L16
    } else if ["audio/g722", "audio/x-g722", "g722"].iter().any(|g| name.eq_ignore_ascii_case(g)) {
        // SignalWire's G.722 (see `signalwire`): its MIME spelling is not documented.
        AudioEncoding::G722
    } else {
        return Err(ProtocolError::UnsupportedFormat);
    };
    let sample_rate = required_number(format.sample_rate.take(), RATE)?;
    let sample_rate =
        u32::try_from(sample_rate).ok().filter(|&r| r > 0).ok_or(ProtocolError::WrongType(RATE))?;
    let sample_rate = match (encoding, sample_rate) {
        // RTP's clock for G.722 is 8000 (RFC 3551), its audio 16 kHz: either is 16 kHz audio.
        (AudioEncoding::G722, 8000 | 16_000) => crate::codec::g722::G722_RATE,
        (AudioEncoding::G722, _) => return Err(ProtocolError::UnsupportedFormat),
        (_, rate) => rate,
    };
    let channels = optional_number(format.channels.take(), CHANNELS)?.unwrap_or(1);
    let channels =
        u16::try_from(channels).ok().filter(|&c| c > 0).ok_or(ProtocolError::WrongType(CHANNELS))?;
    Ok(MediaFormat { encoding, sample_rate, channels })
}

impl Dialect for TwilioDialect {
    fn capabilities(&self) -> Capabilities {
        Capabilities::TWILIO
    }

    /// Parses one Twilio message (see the module documentation for exactly what is accepted).
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
        let result = Self::parse_text(text, self.stream_sid.as_deref(), payload);
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

    /// Twilio takes 8 kHz µ-law whatever the caller's audio is.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        self.stream_sid_json.clear();
        json_out::push_escaped(&mut self.stream_sid_json, &start.stream_id);
        self.stream_sid = Some(start.stream_id.clone());
        Ok(MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: CARRIER_RATE, channels: 1 })
    }

    /// Writes `{"event":"media","streamSid":"<sid>","media":{"payload":"<base64>"}}`.
    fn write_media(&self, mulaw: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(json_out::MEDIA_HEAD);
        out.extend_from_slice(&self.stream_sid_json);
        out.extend_from_slice(json_out::MEDIA_MID);
        json_out::push_base64(out, mulaw);
        out.extend_from_slice(json_out::MEDIA_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"mark","streamSid":"<sid>","mark":{"name":"<name>"}}`, `name` JSON-escaped.
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(json_out::MARK_HEAD);
        out.extend_from_slice(&self.stream_sid_json);
        out.extend_from_slice(json_out::MARK_MID);
        json_out::push_escaped(out, name);
        out.extend_from_slice(json_out::MARK_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"clear","streamSid":"<sid>"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(json_out::CLEAR_HEAD);
        out.extend_from_slice(&self.stream_sid_json);
        out.extend_from_slice(json_out::CLEAR_TAIL);
        MessageKind::Text
    }

    /// The exact length of [`Dialect::write_media`]'s output (saturating at `usize::MAX`).
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        (json_out::MEDIA_HEAD.len()
            + self.stream_sid_json.len()
            + json_out::MEDIA_MID.len()
            + json_out::MEDIA_TAIL.len())
        .saturating_add(json_out::base64_len(payload_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(s: &str) -> String {
        let mut out = Vec::new();
        json_out::push_escaped(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escaped("\n\r\t\u{8}\u{c}"), r"\n\r\t\b\f");
        assert_eq!(escaped("\u{0}\u{1f}\u{1b}"), r"\u0000\u001f\u001b");
        assert_eq!(escaped("é€😀\u{7f}"), "é€😀\u{7f}");
    }
}
