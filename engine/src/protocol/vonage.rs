//! The Vonage Voice API WebSocket dialect (the NCCO `connect` action to a `websocket` endpoint).
//!
//! Vonage mixes frame kinds: the caller's audio comes as binary frames of raw 16-bit
//! little-endian PCM (no envelope, no timestamp, 20 ms each), and everything else as JSON text.
//! The first text message, `websocket:connected`, names the audio format (`content-type`) and
//! carries the NCCO's `headers` flattened beside it; there is no stop message (the call ends
//! when the socket closes: the host calls `Session::end_stream`). Agent audio goes back the same
//! way, as binary frames of exactly 20 ms (320 bytes at 8 kHz, 640 at 16 kHz), and the two
//! control messages Vonage takes are text: `{"action":"clear"}` and
//! `{"action":"notify","payload":{…}}`, whose payload Vonage echoes once the audio sent before
//! it has played (the mark).
//!
//! # What is accepted
//!
//! A text frame must be UTF-8 and one JSON object: otherwise, or with trailing data or a repeated
//! field among those read, `MalformedJson`. Fields not listed are ignored (whatever their type,
//! skipped without recursing, so at any depth); `websocket:connected`, whose every field is kept,
//! refuses nesting over 128 (`MalformedJson`). A JSON `null` counts as absent. Checks run in this
//! order: frame kind, JSON, `event`, then the event's fields.
//!
//! | message | field | required | accepted values → result |
//! |---|---|---|---|
//! | binary frame | (the frame) | yes | the caller's audio, L16 little-endian in the format `content-type` named, taken in arrival order → `Media` (track inbound, no sequence, no timestamp); empty → `MissingField("audio")`, odd length → `OddPayloadLength`, over [`PayloadBuffer::limit`] → `PayloadTooLarge`. Any even length is taken (Vonage sends 20 ms) |
//! | text | `event` | yes | `websocket:connected`, `websocket:dtmf`, `websocket:notify`, `websocket:cleared`; another string → `UnknownEvent`, non-string → `WrongType("event")`, absent → `MissingField("event")` |
//! | `websocket:connected` | `content-type` | yes | string `audio/l16;rate=<Hz>` (MIME rules: case-insensitive type and parameter names, spaces around `;` and `=`, a quoted value); optional `channels=<n>` (default 1); other parameters ignored. Another type → `UnsupportedFormat` (the stream does not start); no or bad `rate`/`channels` (not digits, 0) → `WrongType("content-type")`; not a string → `WrongType("content-type")`; absent → `MissingField("content-type")`; twice → `MalformedJson` |
//! | `websocket:connected` | `uuid` | no ("") | string → the call id and the stream id; not a string → `WrongType("uuid")`; twice → `MalformedJson` |
//! | `websocket:connected` | every other field | no | the NCCO `headers`: all of them (including `uuid`) → custom parameters, in the order sent; a string as it is, any other value as its compact JSON text (numbers as serde_json renders them, objects with sorted keys) |
//! | `websocket:dtmf` | `digit` | yes¹ | exactly one of `0`-`9` `*` `#` `A`-`D` → `Dtmf`; another string or a non-string → `WrongType("digit")` |
//! | `websocket:dtmf` | `dtmf` | ¹ | an object with `digit` (as above), or the digit itself as a string; used only when `digit` is absent. Neither: `MissingField("digit")` |
//! | `websocket:dtmf` | `duration` | no | ms, a number or a numeric string → the key press's `duration_ms`; anything else → none (the digit is kept). The key press is stamped with the audio position when it arrives |
//! | `websocket:notify` | `payload` | yes | object → `MissingField("payload")` if absent, `WrongType("payload")` if not an object |
//! | `websocket:notify` | `payload.mark` | yes | string → `Mark` with that name (borrowed unless escaped); absent → `MissingField("payload.mark")` (a `notify` this dialect did not write); not a string → `WrongType("payload.mark")` |
//! | `websocket:cleared` | | | → `Notice` (see below) |
//!
//! The `start` fields Vonage has no counterpart for: no account id (empty), tracks `[inbound]`,
//! no sequence numbers.
//!
//! # Decisions
//!
//! - **Call id.** The protocol carries none: Vonage puts the call's `uuid` in the socket only if
//!   the NCCO `headers` name it. By Vonage's own name for a call leg, a header `uuid` is taken as
//!   the call id and the stream id (the socket is the call's one stream); without it both are
//!   empty, and the host finds whatever ids it put in the headers among the custom parameters.
//! - **`websocket:cleared` is an [`Inbound::Notice`].** It acknowledges a clear the engine sent
//!   and changes nothing: accepted and counted, not reported.
//! - **Marks are `notify`s with the payload `{"mark":"<name>"}`.** Vonage echoes the payload,
//!   whatever it holds, so the name comes back as sent.
//! - ⚠ **What a `clear` does to pending `notify`s is undocumented.** [`Confirmation::Echo`] with
//!   `on_clear: false`: at a clear the engine reports the marks the caller had not reached as
//!   cleared, as if Vonage drops them (what the integrations that use `notify` assume). Marks the
//!   caller had reached by the model wait a second for their echo, then are reported cleared
//!   too (the model may have run ahead of Vonage's buffer). If Vonage does echo a dropped `notify`, that
//!   echo names a mark already reported and is refused as `UnknownMark` (dropped, counted): the
//!   host never sees a cleared mark reported as played.
//! - ⚠ **Vonage's buffer holds 1024 messages (~20 s) in the older documentation, 3072 (~60 s) in
//!   newer material.** `max_lead_ms` is 20 000, under the smaller one, so no lead setting can
//!   overflow it. The session's `lead_ms` (100 ms by default) is normally far below either: the
//!   engine paces, and a short lead keeps barge-in tight.
//! - ⚠ **24 kHz is unconfirmed** (the documentation and SDK name 8 and 16 kHz; some integrations
//!   ask for `audio/l16;rate=24000`). Accepted: frames are then 960 bytes, the same 20 ms.
//!   Agent audio goes back in the caller's format (mono) at 8, 16 or 24 kHz; another rate refuses
//!   the stream in [`Dialect::on_start`] (`UnsupportedFormat`). A `channels` other than 1 starts
//!   the stream and each audio frame is refused (`UnsupportedFormat`: the engine takes mono).
//! - ⚠ **The DTMF message has variants** (`digit`, `dtmf.digit`, `dtmf` as the digit): all are
//!   read, `digit` first.
//! - ⚠ **`headers` may be limited to 512 bytes (older documentation) or 2000.** Not the dialect's
//!   to enforce: the session's `max_message_bytes` bounds the message.
//! - ⚠ **The JWT on the WebSocket upgrade** (`authorization: {"type":"vonage"}`) is the server's
//!   to check, before a session exists; nothing of it reaches the dialect.
//!
//! Parsing audio allocates nothing (the frame is copied into the [`PayloadBuffer`]); neither do
//! `websocket:dtmf` and `websocket:notify` unless they contain escapes. `websocket:connected`
//! allocates its owned record.

mod wire;

use crate::protocol::json_in::{Field, Ordered, Text, dtmf_digit, parameter_text, parse_object};
use crate::protocol::json_read;

use crate::protocol::json_text::push_escaped;
use crate::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, MarkSaid, MediaFormat,
    MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};

/// Rates whose audio the engine converts both ways for every play rate, and so the rates Vonage
/// is answered at.
const REPLY_RATES: [u32; 3] = [8_000, 16_000, 24_000];

/// The Vonage Voice API WebSocket dialect. See the module documentation for what is accepted.
#[derive(Debug, Default)]
pub struct VonageDialect {
    /// Nothing to remember: no message names the stream, and the writers need no id. (A private
    /// field all the same, so that the dialect can gain state without changing its API.)
    _private: (),
}

impl VonageDialect {
    /// A dialect for one call.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the engine must know to drive Vonage: text and binary messages, no timestamps, frames
    /// of exactly 20 ms, marks echoed (not on clear), a clear message.
    pub const CAPABILITIES: Capabilities = Capabilities {
        framing: Framing::Messages,
        timestamps: false,
        frame_ms: 20,
        max_lead_ms: Some(20_000),
        confirmation: Confirmation::Echo { on_clear: false },
        clear: ClearKind::Message,
    };

    fn parse_text<'a>(text: &'a str) -> Result<Inbound<'a>, ProtocolError> {
        let msg: wire::Message<'a> = parse_object(text)?;
        let event = Text::required(msg.event, "event")?;
        let event = wire::Event::from_name(&event).ok_or(ProtocolError::UnknownEvent)?;
        Ok(match event {
            wire::Event::Connected => Inbound::Start(Box::new(connected(text)?)),
            wire::Event::Cleared => Inbound::Notice,
            wire::Event::Dtmf => {
                let mut duration = msg.duration;
                let digit = match (Text::string(msg.digit, "digit")?, msg.dtmf) {
                    (Some(digit), _) | (None, Field::Str(digit)) => digit,
                    (None, Field::Object(body)) => {
                        duration = duration.or(body.duration);
                        Text::required(body.digit, "digit")?
                    }
                    (None, Field::Absent) => return Err(ProtocolError::MissingField("digit")),
                    (None, Field::Other) => return Err(ProtocolError::WrongType("digit")),
                };
                let digit = dtmf_digit(&digit).ok_or(ProtocolError::WrongType("digit"))?;
                let duration_ms = json_read::dtmf_duration_ms(duration, 1);
                Inbound::Dtmf { sequence: None, digit, duration_ms }
            }
            wire::Event::Notify => {
                let payload = match msg.payload {
                    Field::Object(payload) => payload,
                    Field::Absent => return Err(ProtocolError::MissingField("payload")),
                    Field::Str(_) | Field::Other => return Err(ProtocolError::WrongType("payload")),
                };
                Inbound::Mark {
                    sequence: None,
                    name: Text::required(payload.mark, "payload.mark")?,
                    said: MarkSaid::Nothing,
                }
            }
        })
    }
}

/// Reads `websocket:connected` whole: the format, the call id, the headers in order.
fn connected(text: &str) -> Result<StreamStart, ProtocolError> {
    let fields = Ordered::parse(text)?;
    let format = match fields.unique("content-type")? {
        None => return Err(ProtocolError::MissingField("content-type")),
        Some(serde_json::Value::String(s)) => content_type(s)?,
        Some(_) => return Err(ProtocolError::WrongType("content-type")),
    };
    let call_id = match fields.unique("uuid")? {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(ProtocolError::WrongType("uuid")),
    };
    let custom_parameters = fields
        .0
        .into_iter()
        .filter(|(key, _)| key != "event" && key != "content-type")
        .map(|(key, value)| (key, parameter_text(value)))
        .collect();
    Ok(StreamStart {
        sequence: None,
        account_id: String::new(),
        stream_id: call_id.clone(),
        call_id,
        tracks: vec![Track::Inbound],
        custom_parameters,
        media_format: format,
    })
}

/// The format a `content-type` names: `audio/l16;rate=<Hz>[;channels=<n>]`.
fn content_type(value: &str) -> Result<MediaFormat, ProtocolError> {
    const FIELD: ProtocolError = ProtocolError::WrongType("content-type");
    let mut parts = value.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("audio/l16") {
        return Err(ProtocolError::UnsupportedFormat);
    }
    let (mut rate, mut channels) = (None, None);
    for param in parts {
        if param.trim().is_empty() {
            continue;
        }
        let (name, value) = param.split_once('=').ok_or(FIELD)?;
        let (name, value) = (name.trim(), value.trim());
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        let slot = if name.eq_ignore_ascii_case("rate") {
            &mut rate
        } else if name.eq_ignore_ascii_case("channels") {
            &mut channels
        } else {
            continue;
        };
        if slot.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FIELD);
        }
        *slot = Some(value.parse::<u32>().ok().filter(|&n| n > 0).ok_or(FIELD)?);
    }
    let channels = u16::try_from(channels.unwrap_or(1)).map_err(|_| FIELD)?;
    Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate.ok_or(FIELD)?, channels })
}

/// Copies a binary frame of L16 audio into `payload`, never growing its buffer (shared with the
/// jambonz dialect, whose audio frames are the same).
pub(crate) fn copy_l16(frame: &[u8], payload: &mut PayloadBuffer) -> Result<(), ProtocolError> {
    if frame.is_empty() {
        return Err(ProtocolError::MissingField("audio"));
    }
    if !frame.len().is_multiple_of(2) {
        return Err(ProtocolError::OddPayloadLength);
    }
    let limit = payload.limit();
    let buf = payload.raw_mut();
    // Why also the capacity: the buffer must never reallocate here, whatever the caller did to it.
    if frame.len() > limit || frame.len() > buf.capacity() {
        return Err(ProtocolError::PayloadTooLarge);
    }
    buf.extend_from_slice(frame);
    Ok(())
}

impl Dialect for VonageDialect {
    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    /// Parses one Vonage message (see the module documentation for exactly what is accepted).
    ///
    /// `payload` is cleared first, so after any call it holds this message's audio if it was a
    /// valid binary frame, and nothing otherwise.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        payload.raw_mut().clear();
        if kind == MessageKind::Binary {
            let result = copy_l16(message, payload);
            if result.is_err() {
                payload.raw_mut().clear();
            }
            result?;
            return Ok(Inbound::Media(MediaFrame {
                sequence: None,
                chunk: None,
                timestamp_ms: 0,
                track: Track::Inbound,
            }));
        }
        let text = std::str::from_utf8(message).map_err(|_| ProtocolError::MalformedJson)?;
        Self::parse_text(text)
    }

    /// Only `websocket:connected` starts the stream, and nothing stops it but the socket closing:
    /// audio (binary) never does.
    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        let needle = b"websocket:connected";
        kind == MessageKind::Text && message.windows(needle.len()).any(|w| w == needle)
    }

    /// Vonage takes back the format it sends: L16, one channel, at the caller's rate if it is
    /// one the engine writes (8, 16 or 24 kHz); otherwise the stream is refused.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        let rate = start.media_format.sample_rate;
        if !REPLY_RATES.contains(&rate) {
            return Err(ProtocolError::UnsupportedFormat);
        }
        Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 })
    }

    /// The audio as it is: a binary frame of L16 (exactly 20 ms, as the engine cuts it).
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(audio);
        MessageKind::Binary
    }

    /// Writes `{"action":"notify","payload":{"mark":"<name>"}}`, `name` JSON-escaped.
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(wire::NOTIFY_HEAD);
        push_escaped(out, name);
        out.extend_from_slice(wire::NOTIFY_TAIL);
        MessageKind::Text
    }

    /// Writes `{"action":"clear"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(wire::CLEAR);
        MessageKind::Text
    }

    /// The exact length of [`Dialect::write_media`]'s output: the audio itself.
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        payload_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn format(rate: u32, channels: u16) -> Result<MediaFormat, ProtocolError> {
        Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels })
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("audio/l16;rate=16000"), format(16_000, 1));
        assert_eq!(content_type("audio/l16;rate=8000"), format(8_000, 1));
        assert_eq!(content_type("Audio/L16 ; Rate = \"24000\" ; foo=bar"), format(24_000, 1));
        assert_eq!(content_type("audio/l16;rate=16000;channels=2;"), format(16_000, 2));
        assert_eq!(content_type("audio/pcmu;rate=8000"), Err(ProtocolError::UnsupportedFormat));
        assert_eq!(content_type("audio/l16"), Err(ProtocolError::WrongType("content-type")));
        for bad in ["rate=", "rate=0", "rate=+8000", "rate=8k", "rate=8000;rate=8000", "channels=0", "x"] {
            let value = format!("audio/l16;{bad}");
            let value = if bad.starts_with("channels") { format!("{value};rate=8000") } else { value };
            assert_eq!(content_type(&value), Err(ProtocolError::WrongType("content-type")), "{value}");
        }
    }

    #[test]
    fn a_notify_echo_borrows_its_mark_name() {
        let parsed = VonageDialect::parse_text(r#"{"event":"websocket:notify","payload":{"mark":"m-1"}}"#);
        assert_eq!(
            parsed,
            Ok(Inbound::Mark { sequence: None, name: Cow::Borrowed("m-1"), said: MarkSaid::Nothing })
        );
        assert!(matches!(parsed, Ok(Inbound::Mark { name: Cow::Borrowed(_), .. })));
    }
}
