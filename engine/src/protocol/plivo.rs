//! The Plivo Audio Streams dialect (a `<Stream bidirectional="true">`).
//!
//! Plivo sends JSON text frames: `start` first (there is no `connected`), then `media`, `dtmf`,
//! `playedStream` when a checkpoint is reached and `clearedAudio` after a `clearAudio`. It sends no
//! `stop`: the stream ends when the WebSocket closes, which the host reports with
//! `Session::end_stream`. The writers produce `playAudio`, `checkpoint` and `clearAudio`.
//!
//! # What is chosen ([`Capabilities`])
//!
//! | | value | why |
//! |---|---|---|
//! | `framing` | `Messages` | one JSON text frame per message |
//! | `timestamps` | `false` | `media.timestamp` is wall-clock Unix time (ms) of unstated precision, not stream time: placing audio by it could trim or pad real audio. The socket keeps the order, so arrival order is exact |
//! | `frame_ms` | 20 | Plivo's own chunks are about 20 ms and its own engine paces at 20 ms; every `playAudio` is then 160 B (µ-law 8k), 320 B (L16 8k) or 640 B (L16 16k), far below the 64 KB message cap and the 16 KB of base64 Plivo recommends per message |
//! | `max_lead_ms` | `None` | Plivo buffers what it is sent (a playback queue of about 60 s) |
//! | `confirmation` | `Echo { on_clear: false }` | a `checkpoint` is answered with `playedStream` only once the audio before it has played; checkpoints a `clearAudio` discards are never answered, so the engine reports them cleared at the clear |
//! | `clear` | `Message` | `clearAudio` |
//!
//! # What is accepted
//!
//! Fields not listed are ignored (whatever their type); a JSON `null` counts as an absent field.
//! "Number" means a bare non-negative JSON integer (how Plivo sends them) or a string of ASCII
//! digits; anything else is [`ProtocolError::WrongType`] naming the field.
//!
//! | event | field | required | accepted values → result |
//! |---|---|---|---|
//! | all | `event` | yes | `start`, `media`, `dtmf`, `playedStream` (or `played`), `clearedAudio`, `stop`, `error`, `playFailed`, `muteStream`, `unmuteStream`; other string → `UnknownEvent`, non-string → `WrongType("event")` |
//! | all | `sequenceNumber` | no | number |
//! | all | `streamId` | no | string; once [`Dialect::on_start`] has run, any message but `start` naming another stream → `ForeignStream` (absent: accepted) |
//! | all | `extra_headers` | no | ignored except on `start` |
//! | `start` | `start` | yes | object |
//! | `start` | `start.streamId` | yes¹ | string; falls back to the top-level `streamId`; if both are present they must be equal, else `WrongType("streamId")` |
//! | `start` | `start.callId`, `start.accountId` | no ("") | string |
//! | `start` | `start.tracks` | no (`[inbound]`) | array of `inbound`/`outbound` (also `inbound_track`/`outbound_track`), kept in order |
//! | `start` | `start.mediaFormat` | yes² | object |
//! | `start` | `start.mediaFormat.encoding` | yes | `audio/x-mulaw` → µ-law, `audio/x-l16` or `audio/l16` → L16 little-endian (ASCII case-insensitive; MIME parameters such as `;rate=16000` allowed); another type → `UnsupportedFormat` (the stream does not start) |
//! | `start` | `start.mediaFormat.sampleRate` | no³ | number, 1..=`u32::MAX` |
//! | `start` | `extra_headers` | no (empty) | string of `k=v` items separated by `;` or `,` (either, or both), blanks trimmed, empty items skipped, an item without `=` a key with an empty value; or a string holding a JSON object; or a JSON object (string values kept, numbers and booleans as their JSON text) → `custom_parameters`, in the order sent; anything else → `WrongType("extra_headers")` |
//! | `media` | `media` | yes | object |
//! | `media` | `media.payload` | yes | string, standard base64 with or without `=` padding, decoded into the [`PayloadBuffer`]; bad base64 → `InvalidBase64`, decoded length over [`PayloadBuffer::limit`] → `PayloadTooLarge` |
//! | `media` | `media.timestamp` | no | number (Unix ms); reported as ms since the first `media` of the stream (`0` when absent; earlier ones count as `0`) |
//! | `media` | `media.chunk` | no | number |
//! | `media` | `media.track` | no (inbound) | `inbound`, `outbound` (also with `_track`) |
//! | `dtmf` | `dtmf.digit` | yes | exactly one of `0`-`9` `*` `#` `A`-`D` |
//! | `playedStream`, `played` | `name` | yes | string (any) → [`Inbound::Mark`] |
//! | `clearedAudio`, `muteStream`, `unmuteStream` | — | — | [`Inbound::Notice`]⁴ |
//! | `error`, `playFailed` | — | — | `CarrierReported` naming the event: reported to the host, the call goes on |
//! | `stop` | — | — | [`Inbound::Stop`] |
//!
//! ¹ `MissingField("start.streamId")` when neither is present: `checkpoint` and `clearAudio` need it.
//! ² `MissingField("start.mediaFormat")` when absent (see the ⚠ below). ³ From the encoding's
//! `rate` parameter when absent, else 8000 for µ-law; `MissingField("start.mediaFormat.sampleRate")`
//! for L16 without one. ⁴ Valid messages the session has nothing to do with: accepted and
//! counted, not reported.
//!
//! Whole-message errors: a [`MessageKind::Binary`] frame → `UnexpectedFrameKind(Binary)`; over
//! 64 KiB (Plivo's WebSocket message cap) → `MessageTooLarge`; not UTF-8, not JSON, truncated,
//! trailing data, a top-level value that is not an object, nesting deeper than 128, or a duplicate
//! key among the top-level fields above → `MalformedJson`. Checks run in this order: frame kind,
//! size, JSON, `event`, `sequenceNumber`, `streamId`, then the event's own fields as listed.
//!
//! # What is written
//!
//! ```text
//! {"event":"playAudio","media":{"contentType":"audio/x-l16","sampleRate":16000,"payload":"<base64>"}}
//! {"event":"checkpoint","streamId":"<id>","name":"<name>"}
//! {"event":"clearAudio","streamId":"<id>"}
//! ```
//!
//! `contentType` and `sampleRate` (a JSON number) repeat the stream's `mediaFormat` (Plivo refuses
//! any other); L16 is little-endian. [`Dialect::on_start`] returns that same format: Plivo takes
//! back what it sends. `sendDTMF` is outside the seam; [`PlivoDialect::write_send_dtmf`] writes it
//! for a host that sends it itself.
//!
//! # Uncertain points, decided
//!
//! - ⚠ **Default `contentType`** (the XML reference says L16 8k, a guide says µ-law 8k): no
//!   default is guessed; a `start` without `mediaFormat` is refused (`MissingField`), since a
//!   wrong guess would play noise both ways.
//! - ⚠ **`extra_headers` separator** (`,` in the XML reference, `;` in the guide and the `start`
//!   example): both, in one string if need be. Values are documented as alphanumeric, so neither
//!   can be part of one.
//! - ⚠ **No `stop`**: the end of the stream is the socket closing (`Session::end_stream`); a
//!   `stop` is still accepted, as Plivo's own code parses one.
//! - ⚠ **L16 byte order**: little-endian, as Plivo's own code decodes and encodes it; nothing is
//!   swapped.
//! - ⚠ **`played` vs `playedStream`**: both are checkpoint echoes.
//! - ⚠ **The WebSocket signature** is not this module's: see `signature::RequestAuth`.
//!
//! # Allocation
//!
//! Parsing a `media` message allocates nothing: the JSON is read into borrowed structs (see
//! `json_read`; `extra_headers`, repeated on every message, is skipped unread) and the payload is
//! base64-decoded into the caller's [`PayloadBuffer`] without growing it. Exceptions, off the normal
//! path: strings with JSON escapes, and errors for malformed JSON (serde_json boxes them). `start`
//! allocates its owned [`StreamStart`], and [`Dialect::on_start`] the message heads. The writers
//! clear `out` and allocate only if its capacity is too small.

mod wire;

use std::borrow::Cow;

use self::wire::EventKind;
use super::json_read::{self, Obj};
use super::json_text::{base64_len, push_base64, push_escaped};
use super::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat,
    MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};

/// Plivo's largest WebSocket message, either way.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// What Plivo needs from the engine (see the module documentation for why).
pub const CAPABILITIES: Capabilities = Capabilities {
    framing: Framing::Messages,
    timestamps: false,
    frame_ms: 20,
    max_lead_ms: None,
    confirmation: Confirmation::Echo { on_clear: false },
    clear: ClearKind::Message,
};

const PLAY_TAIL: &[u8] = br#""}}"#;
const CHECKPOINT_HEAD: &[u8] = br#"{"event":"checkpoint","streamId":""#;
const CHECKPOINT_MID: &[u8] = br#"","name":""#;
const CHECKPOINT_TAIL: &[u8] = br#""}"#;
const CLEAR_HEAD: &[u8] = br#"{"event":"clearAudio","streamId":""#;
const CLEAR_TAIL: &[u8] = br#""}"#;

/// Plivo Audio Streams JSON.
///
/// Parses what Plivo sends and writes what it accepts; the stream id learnt in
/// [`Dialect::on_start`] goes into `checkpoint` and `clearAudio` (empty before that), and inbound
/// messages naming another stream are refused.
#[derive(Debug, Clone)]
pub struct PlivoDialect {
    /// The stream id as `start` named it; `None` before `start`.
    stream_id: Option<String>,
    /// The same, escaped for the inside of a JSON string.
    stream_id_json: Vec<u8>,
    /// `playAudio` up to the payload, with the stream's content type and rate.
    play_head: Vec<u8>,
    /// `media.timestamp` of the stream's first `media`, which later ones are counted from.
    first_timestamp: Option<u64>,
}

impl Default for PlivoDialect {
    fn default() -> Self {
        Self::new()
    }
}

impl PlivoDialect {
    /// A dialect with no stream yet (its `playAudio` says 8 kHz µ-law until `start`).
    pub fn new() -> Self {
        Self {
            stream_id: None,
            stream_id_json: Vec::new(),
            play_head: play_head("audio/x-mulaw", 8000),
            first_timestamp: None,
        }
    }

    /// Writes Plivo's `sendDTMF` (`{"event":"sendDTMF","dtmf":"<digits>"}`), which plays DTMF
    /// tones to the caller, into `out` (cleared first). The engine never sends it (the seam has
    /// no outbound DTMF): a host that wants it sends the message on the socket itself.
    /// `digits` must be one or more of `0`-`9`, `A`-`D`, `*`, `#`, else `WrongType("dtmf")`.
    pub fn write_send_dtmf(digits: &str, out: &mut Vec<u8>) -> Result<MessageKind, ProtocolError> {
        let valid = |b: &u8| matches!(b, b'0'..=b'9' | b'A'..=b'D' | b'*' | b'#');
        if digits.is_empty() || !digits.bytes().all(|b| valid(&b)) {
            return Err(ProtocolError::WrongType("dtmf"));
        }
        out.clear();
        out.extend_from_slice(br#"{"event":"sendDTMF","dtmf":""#);
        out.extend_from_slice(digits.as_bytes());
        out.extend_from_slice(br#""}"#);
        Ok(MessageKind::Text)
    }

    fn parse_text<'a>(
        &mut self,
        text: &'a str,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        use json_read::{optional_number, optional_string, required_object, required_string};

        let mut root: Obj<wire::Message<'a>> = Obj::Absent;
        json_read::parse_root(text, &mut root)?;
        let Obj::Valid(msg) = &mut root else { unreachable!("parse_root succeeds only with an object") };
        let event = json_read::event_kind(&msg.event, EventKind::from_name)?;
        let sequence = optional_number(msg.sequence.take(), "sequenceNumber")?;
        let stream_id = optional_string(msg.stream_id.take(), "streamId")?;
        // Before the event's own fields: a message for another stream is dropped whatever it
        // carries. `start` is left to the session, which refuses any second one.
        json_read::same_stream(self.stream_id.as_deref(), stream_id.as_deref(), event != EventKind::Start)?;
        Ok(match event {
            EventKind::Media => {
                let media = required_object(&mut msg.media, "media")?;
                let timestamp = optional_number(media.timestamp.take(), "media.timestamp")?;
                let chunk = optional_number(media.chunk.take(), "media.chunk")?;
                let track = json_read::track(media.track.take(), "media.track")?;
                let base64 = required_string(media.payload.take(), "media.payload")?;
                json_read::decode_payload(base64.as_bytes(), payload)?;
                // Only an accepted message sets where the stream's time starts.
                let timestamp_ms =
                    timestamp.map_or(0, |t| t.saturating_sub(*self.first_timestamp.get_or_insert(t)));
                Inbound::Media(MediaFrame { sequence, chunk, timestamp_ms, track })
            }
            EventKind::Dtmf => {
                let dtmf = required_object(&mut msg.dtmf, "dtmf")?;
                let digit = json_read::dtmf_digit(dtmf.digit.take(), "dtmf.digit")?;
                let duration_ms = json_read::dtmf_duration_ms(dtmf.duration.take(), 1);
                Inbound::Dtmf { sequence, digit, duration_ms }
            }
            EventKind::Played => Inbound::Mark {
                sequence,
                name: required_string(msg.name.take(), "name")?,
                said: MarkSaid::Nothing,
            },
            EventKind::Cleared | EventKind::Notice => Inbound::Notice,
            EventKind::Failure(event) => return Err(ProtocolError::CarrierReported(event)),
            EventKind::Stop => Inbound::Stop { sequence },
            EventKind::Start => Inbound::Start(Box::new(parse_start(msg, stream_id, sequence)?)),
        })
    }
}

fn parse_start(
    msg: &mut wire::Message<'_>,
    outer_id: Option<Cow<'_, str>>,
    sequence: Option<u64>,
) -> Result<StreamStart, ProtocolError> {
    use json_read::{optional_string, required_object};

    let start = required_object(&mut msg.start, "start")?;
    let inner_id = optional_string(start.stream_id.take(), "start.streamId")?;
    let stream_id = match (inner_id, outer_id) {
        (Some(inner), Some(outer)) if inner != outer => return Err(ProtocolError::WrongType("streamId")),
        (Some(id), _) | (None, Some(id)) => id.into_owned(),
        (None, None) => return Err(ProtocolError::MissingField("start.streamId")),
    };
    let call_id = optional_string(start.call_id.take(), "start.callId")?;
    let account_id = optional_string(start.account_id.take(), "start.accountId")?;
    let tracks = match start.tracks.take() {
        None => vec![Track::Inbound],
        Some(json_read::Tracks::Valid(tracks)) => tracks,
        Some(json_read::Tracks::Invalid) => return Err(ProtocolError::WrongType("start.tracks")),
    };
    let media_format = match &mut start.media_format {
        Obj::Absent => return Err(ProtocolError::MissingField("start.mediaFormat")),
        Obj::Invalid => return Err(ProtocolError::WrongType("start.mediaFormat")),
        Obj::Valid(format) => media_format(format)?,
    };
    let custom_parameters = match msg.extra_headers.take() {
        None => Vec::new(),
        Some(params) => json_read::params_to_pairs(params, &[';', ','], "extra_headers")?,
    };
    Ok(StreamStart {
        sequence,
        account_id: account_id.map(Cow::into_owned).unwrap_or_default(),
        stream_id,
        call_id: call_id.map(Cow::into_owned).unwrap_or_default(),
        tracks,
        custom_parameters,
        media_format,
    })
}

fn media_format(format: &mut wire::FormatBody<'_>) -> Result<MediaFormat, ProtocolError> {
    const ENCODING: &str = "start.mediaFormat.encoding";
    const RATE: &str = "start.mediaFormat.sampleRate";
    let name = json_read::required_string(format.encoding.take(), ENCODING)?;
    let (essence, rate_parameter) = json_read::mime_and_rate(&name);
    let encoding = if essence.eq_ignore_ascii_case("audio/x-mulaw") {
        AudioEncoding::Mulaw
    } else if essence.eq_ignore_ascii_case("audio/x-l16") || essence.eq_ignore_ascii_case("audio/l16") {
        AudioEncoding::L16
    } else {
        return Err(ProtocolError::UnsupportedFormat);
    };
    let sample_rate = match json_read::optional_number(format.sample_rate.take(), RATE)? {
        Some(rate) => rate,
        None => match rate_parameter {
            Some(rate) => json_read::digits(rate).ok_or(ProtocolError::WrongType(ENCODING))?,
            // µ-law is only ever 8 kHz on Plivo.
            None if encoding == AudioEncoding::Mulaw => 8000,
            None => return Err(ProtocolError::MissingField(RATE)),
        },
    };
    let sample_rate =
        u32::try_from(sample_rate).ok().filter(|&r| r > 0).ok_or(ProtocolError::WrongType(RATE))?;
    Ok(MediaFormat { encoding, sample_rate, channels: 1 })
}

/// `{"event":"playAudio","media":{"contentType":"<type>","sampleRate":<rate>,"payload":"`
fn play_head(content_type: &str, sample_rate: u32) -> Vec<u8> {
    format!(r#"{{"event":"playAudio","media":{{"contentType":"{content_type}","sampleRate":{sample_rate},"payload":""#)
        .into_bytes()
}

impl Dialect for PlivoDialect {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    /// Parses one Plivo message (see the module documentation for exactly what is accepted).
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
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(ProtocolError::MessageTooLarge);
        }
        // Why validate up front: serde_json's `from_str` then skips its own per-string checks, and
        // ignored fields would otherwise go unchecked.
        let text = std::str::from_utf8(message).map_err(|_| ProtocolError::MalformedJson)?;
        let result = self.parse_text(text, payload);
        if result.is_err() {
            payload.raw_mut().clear();
        }
        result
    }

    /// A `start` (or `stop`) names itself in quotes; base64 audio has none.
    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        kind == MessageKind::Text && json_read::names_start_or_stop(message)
    }

    /// Plivo takes back the format it sends (its `playAudio` must repeat the stream's content type
    /// and rate). A-law (never parsed from Plivo) or more than one channel → `UnsupportedFormat`.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        let format = start.media_format;
        let content_type = match format.encoding {
            AudioEncoding::Mulaw => "audio/x-mulaw",
            AudioEncoding::L16 => "audio/x-l16",
            AudioEncoding::Alaw | AudioEncoding::G722 | AudioEncoding::Opus => {
                return Err(ProtocolError::UnsupportedFormat);
            }
        };
        if format.channels != 1 || format.sample_rate == 0 {
            return Err(ProtocolError::UnsupportedFormat);
        }
        self.play_head = play_head(content_type, format.sample_rate);
        self.stream_id_json.clear();
        push_escaped(&mut self.stream_id_json, &start.stream_id);
        self.stream_id = Some(start.stream_id.clone());
        self.first_timestamp = None;
        Ok(format)
    }

    /// Writes `playAudio` with the stream's content type and rate and `audio` in base64.
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(&self.play_head);
        push_base64(out, audio);
        out.extend_from_slice(PLAY_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"checkpoint","streamId":"<id>","name":"<name>"}`, `name` JSON-escaped.
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(CHECKPOINT_HEAD);
        out.extend_from_slice(&self.stream_id_json);
        out.extend_from_slice(CHECKPOINT_MID);
        push_escaped(out, name);
        out.extend_from_slice(CHECKPOINT_TAIL);
        MessageKind::Text
    }

    /// Writes `{"event":"clearAudio","streamId":"<id>"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(CLEAR_HEAD);
        out.extend_from_slice(&self.stream_id_json);
        out.extend_from_slice(CLEAR_TAIL);
        MessageKind::Text
    }

    /// The exact length of [`Dialect::write_media`]'s output (saturating at `usize::MAX`).
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        (self.play_head.len() + PLAY_TAIL.len()).saturating_add(base64_len(payload_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_plivos() {
        let caps = PlivoDialect::new().capabilities();
        assert_eq!(caps.confirmation, Confirmation::Echo { on_clear: false });
        assert!(!caps.timestamps);
        assert_eq!(caps.frame_ms, 20);
    }

    #[test]
    fn the_largest_frame_is_far_below_the_message_cap() {
        let mut dialect = PlivoDialect::new();
        let format = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 };
        let start = StreamStart {
            sequence: None,
            account_id: String::new(),
            stream_id: "s".into(),
            call_id: String::new(),
            tracks: vec![Track::Inbound],
            custom_parameters: Vec::new(),
            media_format: format,
        };
        assert_eq!(dialect.on_start(&start), Ok(format));
        let frame_bytes = 16 * 2 * CAPABILITIES.frame_ms as usize;
        assert!(dialect.max_media_message_len(frame_bytes) < 16 * 1024);
    }

    #[test]
    fn send_dtmf_takes_only_dtmf_digits() {
        let mut out = Vec::new();
        assert_eq!(PlivoDialect::write_send_dtmf("12#*AD", &mut out), Ok(MessageKind::Text));
        assert_eq!(out, br#"{"event":"sendDTMF","dtmf":"12#*AD"}"#);
        for bad in ["", "1a", "E", "1 2", "\""] {
            assert_eq!(PlivoDialect::write_send_dtmf(bad, &mut out), Err(ProtocolError::WrongType("dtmf")));
        }
    }
}
