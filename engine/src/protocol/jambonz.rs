//! The jambonz `listen` / `stream` verb dialect (FreeSWITCH's mod_audio_fork underneath; plain
//! mod_audio_fork too, given JSON metadata with a `sampleRate`).
//!
//! The first text frame is a JSON object of metadata: the call's attributes (`callSid`, `from`,
//! `to`, …) merged with the verb's `sampleRate` and `mixType` and the application's own
//! `metadata`. Then the caller's audio comes as binary frames of raw 16-bit little-endian PCM at
//! `sampleRate` (no envelope, no timestamp), with JSON text between them: key presses (with
//! `passDtmf`) and the echoes of marks. There is no stop message: the call's end is the socket
//! closing (the host calls `Session::end_stream`). Agent audio goes back as binary L16, marks as
//! `{"type":"mark","data":{"name":…}}`, which the module echoes labelled `"event":"playout"` when
//! the audio before it has played or `"event":"cleared"` when `{"type":"killAudio"}` (the
//! clear) dropped it. The WebSocket subprotocol (`audio.jambonz.org`) is negotiated by the server
//! that accepts the connection, before a session exists.
//!
//! The verb must enable bidirectional streaming (`bidirectionalAudio: {"enabled": true,
//! "streaming": true, "sampleRate": …}`): otherwise jambonz discards the agent's audio silently.
//! Agent audio is sent at the caller's `sampleRate` unless the dialect is made with
//! [`JambonzDialect::with_playback_rate`], so set `bidirectionalAudio.sampleRate` to the same
//! value as `sampleRate` (or pass it).
//!
//! # What is accepted
//!
//! A text frame must be UTF-8 and one JSON object: otherwise, or with trailing data or a repeated
//! field among those read, `MalformedJson`. Fields not listed are ignored (whatever their type,
//! skipped without recursing, so at any depth); the metadata, whose every field is kept, refuses
//! nesting over 128 (`MalformedJson`). A JSON `null` counts as absent.
//!
//! | message | field | required | accepted values → result |
//! |---|---|---|---|
//! | first text frame (every text frame until [`Dialect::on_start`] has accepted one) | (the object) | yes | the metadata → `Start` |
//! | metadata | `sampleRate` | yes | number or string of digits, 1..=`u32::MAX` → the caller's rate (8, 16, 24 or 48 kHz are converted; another starts the stream, see below); absent → `MissingField("sampleRate")`, other → `WrongType("sampleRate")` |
//! | metadata | `mixType` | no (`mono`) | `mono` → 1 channel, tracks `[inbound]`; `mixed` (both parties in one channel) → 1 channel, `[inbound]`; `stereo` → 2 channels, `[inbound, outbound]` (the stream starts and each audio frame is refused `UnsupportedFormat`: the engine takes mono); other → `WrongType("mixType")` |
//! | metadata | `callSid` | no ("") | string → the call id and the stream id (there is one stream per verb); other → `WrongType("callSid")` |
//! | metadata | `accountSid` | no ("") | string → the account id; other → `WrongType("accountSid")` |
//! | metadata | every field | | → custom parameters, all of them (those above included), in the order sent; a string as it is, any other value as its compact JSON text (`customerData` objects with sorted keys) |
//! | metadata | `sampleRate`, `mixType`, `callSid`, `accountSid` twice | | `MalformedJson` |
//! | binary frame | (the frame) | yes | the caller's audio, taken in arrival order → `Media` (track inbound, no sequence, no timestamp); empty → `MissingField("audio")`, odd length → `OddPayloadLength`, over [`PayloadBuffer::limit`] → `PayloadTooLarge` |
//! | later text | `type` | no¹ | `mark` → a mark echo (below); another string (`playDone` answers a `playAudio` this dialect never sends) → `UnknownEvent`; non-string → `WrongType("type")` |
//! | later text | `event` | ¹ | read when `type` is absent: `dtmf` → a key press (below); another string → `UnknownEvent`; non-string → `WrongType("event")`. Neither `type` nor `event`: `MissingField("type")` |
//! | `mark` | `data` | yes | object (absent → `MissingField("data")`, other → `WrongType("data")`) |
//! | `mark` | `data.name` | yes | string, decoded from the wire spelling (below) → `Mark` (borrowed unless it holds `%` or escapes) |
//! | `mark` | `data.event` | no | `playout` → the mark played, `cleared` → a clear dropped it ([`MarkSaid`]; absent: the engine's playout model decides); another value → `WrongType("data.event")` |
//! | `dtmf` | `dtmf` | yes | exactly one of `0`-`9` `*` `#` `A`-`D` → `Dtmf`; other → `WrongType("dtmf")` |
//! | `dtmf` | `duration` | no | 8 kHz samples (a number, or a string of digits) → the key press's `duration_ms` (samples / 8); absent, negative or unreadable → none. The key press is stamped with the audio position when it arrives |
//!
//! # Decisions
//!
//! - **Marks are echoed, on a clear too, labelled: [`Confirmation::Echo`] with `on_clear: true`.**
//!   On `killAudio` mod_audio_fork echoes every pending mark `cleared`. The label is the
//!   module's own knowledge of what it played, so it is taken ([`Inbound::Mark`]'s `said`) over
//!   the engine's playout model, which the other carriers' echoes leave to decide: early in a
//!   reply, before a hidden sync mark has measured the module's buffer, the model runs ahead of
//!   it. A sync mark echoed `cleared` measures nothing.
//! - **Mark names are percent-encoded on the wire** (`%`, `"`, `\` and control characters as
//!   `%XX`) and decoded from the echo: the module writes the name back into its JSON echo without
//!   escaping it, so a name needing a JSON escape would otherwise come back as broken JSON and
//!   its mark would never resolve.
//! - ⚠ **The module marks its playout buffer with the sample value `0xFFFF` (-1)**, so a real -1
//!   sample can fire a mark early or swallow one. Every -1 sample the agent sends is written as
//!   -2 (one step of 65 536, inaudible); the module's own resampling (when its playback rate is
//!   not the call's) can still produce -1, which this dialect cannot prevent.
//! - **A mark is queued ahead of the next audio the module receives**, so one with no audio
//!   after it (the last of a reply) would wait for the next reply. The dialect says so
//!   ([`Dialect::marks_wait_for_audio`]): after such a mark the pacer sends one 20 ms frame of
//!   silence as the module's buffer is about to run dry, and the mark is echoed as the reply
//!   ends.
//! - ⚠ **Some versions are reported to echo marks almost at once.** The engine reports a mark
//!   played when its echo comes; early echoes also make its played-position model think the
//!   carrier's delay is shorter. Nothing in the messages tells such an echo apart.
//! - **At most 30 marks may be outstanding at the module**, which drops the excess. The engine
//!   sends a mark only when the audio before it goes out, paced to the session's lead, so only
//!   the marks within the lead (100 ms by default) are outstanding there.
//! - ⚠ **`clearMarks` is reported to have no effect**: never sent (the clear is `killAudio`).
//! - ⚠ **The DTMF `duration` unit** (8 kHz samples, inferred): divided by 8 into ms.
//! - **An audio message holds what the module buffered since its last write**: 20 ms as a rule,
//!   but 40-80 ms after a text write of its own (a mark echo, a key press: one write per turn of
//!   its service loop) or a busy loop, and more after a network stall (it buffers up to 2 s).
//!   Sessions take up to [`LARGEST_AUDIO`] bytes of audio in one message
//!   ([`Dialect::inbound_sizes`]): 80 ms at 48 kHz, 240 ms at 16 kHz, 480 ms at 8 kHz. A longer
//!   one is refused (`PayloadTooLarge`, or `MessageTooLarge` past [`LARGEST_METADATA`]), reported.
//! - **The metadata can be up to [`LARGEST_METADATA`] bytes** (the module's buffer for it):
//!   sessions take messages that long, so a call whose application sent large `metadata` still
//!   starts.
//! - **`{"type":"disconnect"}`** (the application's hang-up: it ends the verb) is not written by
//!   the engine: hanging up is the host's decision, and it closes or ends the call itself.
//! - **No timestamps; no buffer limit** (the module grows its buffer): `max_lead_ms` is `None`,
//!   the session's `lead_ms` applies. Frames are 20 ms (the module takes any length).
//!
//! Parsing audio allocates nothing (the frame is copied into the [`PayloadBuffer`]); neither do
//! mark echoes and key presses unless their strings contain escapes or `%`. The metadata
//! allocates its owned record.

mod wire;

use crate::protocol::json_in::{Field, Ordered, Text, dtmf_digit, number, parameter_text, parse_object};
use crate::protocol::json_read;
use crate::protocol::vonage::copy_l16;
use crate::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, InboundSizes, MarkSaid,
    MediaFormat, MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};

/// The largest audio message taken, bytes: 80 ms of 48 kHz L16, 480 ms of 8 kHz (see the module
/// documentation). Why no more: one message's audio is delivered at once, and must fit the
/// caller audio ring (`agent_ring_ms`, 500 ms by default) however fast the host reads. With the
/// metadata's larger messages ([`LARGEST_METADATA`]), a session takes about 6.5 KiB more: the
/// payload buffer's 5.5 KiB, and 1 KiB of inbound ring to hold two such messages.
pub const LARGEST_AUDIO: usize = 7_680;

/// The largest metadata message, bytes: mod_audio_fork keeps the call's metadata in an 8 KiB
/// buffer (its terminating NUL included) and sends it as the first text frame. jambonz merges the
/// application's `metadata` into the call's attributes, so it can come near that size.
pub const LARGEST_METADATA: usize = 8_192;

/// The rates the engine writes agent audio at (every play rate converts to 8, 16 and 24 kHz;
/// 8, 16, 24 and 48 kHz to 48 kHz).
const PLAYBACK_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// The jambonz `listen`/`stream` dialect. See the module documentation for what is accepted.
#[derive(Debug, Default)]
pub struct JambonzDialect {
    /// [`Dialect::on_start`] accepted the stream: text frames are no longer metadata.
    started: bool,
    /// The rate jambonz takes agent audio at (`bidirectionalAudio.sampleRate`); `None`: the
    /// caller's rate.
    playback_rate: Option<u32>,
}

impl JambonzDialect {
    /// A dialect for one call, sending agent audio at the caller's `sampleRate`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A dialect for a verb whose `bidirectionalAudio.sampleRate` differs from its `sampleRate`:
    /// agent audio is sent at `rate` (8, 16, 24 or 48 kHz; another refuses the stream).
    pub fn with_playback_rate(rate: u32) -> Self {
        Self { started: false, playback_rate: Some(rate) }
    }

    /// What the engine must know to drive jambonz: text and binary messages, no timestamps,
    /// 20 ms frames, marks echoed (also on clear, labelled), a clear message.
    pub const CAPABILITIES: Capabilities = Capabilities {
        framing: Framing::Messages,
        timestamps: false,
        frame_ms: 20,
        max_lead_ms: None,
        confirmation: Confirmation::Echo { on_clear: true },
        clear: ClearKind::Message,
    };

    fn parse_text<'a>(text: &'a str) -> Result<Inbound<'a>, ProtocolError> {
        let msg: wire::Message<'a> = parse_object(text)?;
        if let Some(kind) = Text::string(msg.kind, "type")? {
            if kind != "mark" {
                return Err(ProtocolError::UnknownEvent);
            }
            let data = match msg.data {
                Field::Object(data) => data,
                Field::Absent => return Err(ProtocolError::MissingField("data")),
                Field::Str(_) | Field::Other => return Err(ProtocolError::WrongType("data")),
            };
            let name = Text::required(data.name, "data.name")?;
            let said = match Text::string(data.event, "data.event")?.as_deref() {
                None => MarkSaid::Nothing,
                Some("playout") => MarkSaid::Played,
                Some("cleared") => MarkSaid::Cleared,
                Some(_) => return Err(ProtocolError::WrongType("data.event")),
            };
            return Ok(Inbound::Mark { sequence: None, name: wire::name_from_wire(name)?, said });
        }
        match Text::string(msg.event, "event")? {
            None => Err(ProtocolError::MissingField("type")),
            Some(event) if event == "dtmf" => {
                let digit = Text::required(msg.dtmf, "dtmf")?;
                let digit = dtmf_digit(&digit).ok_or(ProtocolError::WrongType("dtmf"))?;
                // Samples at 8 kHz: eight to the millisecond.
                let duration_ms = json_read::dtmf_duration_ms(msg.duration, 8);
                Ok(Inbound::Dtmf { sequence: None, digit, duration_ms })
            }
            Some(_) => Err(ProtocolError::UnknownEvent),
        }
    }
}

/// Reads the metadata whole: the format, the ids, every field in order.
fn metadata(text: &str) -> Result<StreamStart, ProtocolError> {
    let fields = Ordered::parse(text)?;
    let rate = match fields.unique("sampleRate")? {
        None => return Err(ProtocolError::MissingField("sampleRate")),
        Some(value) => number(value, "sampleRate")?,
    };
    let sample_rate =
        u32::try_from(rate).ok().filter(|&r| r > 0).ok_or(ProtocolError::WrongType("sampleRate"))?;
    let (channels, tracks) = match fields.unique("mixType")? {
        None => (1, vec![Track::Inbound]),
        Some(serde_json::Value::String(mix)) => match mix.as_str() {
            "mono" | "mixed" => (1, vec![Track::Inbound]),
            "stereo" => (2, vec![Track::Inbound, Track::Outbound]),
            _ => return Err(ProtocolError::WrongType("mixType")),
        },
        Some(_) => return Err(ProtocolError::WrongType("mixType")),
    };
    let string = |key: &'static str| match fields.unique(key)? {
        None => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ProtocolError::WrongType(key)),
    };
    let call_id = string("callSid")?;
    let account_id = string("accountSid")?;
    let custom_parameters = fields.0.into_iter().map(|(key, value)| (key, parameter_text(value))).collect();
    Ok(StreamStart {
        sequence: None,
        account_id,
        stream_id: call_id.clone(),
        call_id,
        tracks,
        custom_parameters,
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate, channels },
    })
}

impl Dialect for JambonzDialect {
    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    fn marks_wait_for_audio(&self) -> bool {
        true
    }

    /// An audio message is the module's buffer since its last write, often longer than 20 ms;
    /// the metadata the stream starts with can be longer still.
    fn inbound_sizes(&self) -> Option<InboundSizes> {
        Some(InboundSizes {
            message_bytes: LARGEST_METADATA.max(LARGEST_AUDIO),
            payload_bytes: LARGEST_AUDIO,
        })
    }

    /// Parses one jambonz message (see the module documentation for exactly what is accepted).
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
        if !self.started {
            // Why every text frame until a start is accepted: the metadata has no discriminator
            // of its own (the application's `metadata` may even hold a `type` or an `event`).
            return Ok(Inbound::Start(Box::new(metadata(text)?)));
        }
        Self::parse_text(text)
    }

    /// The metadata starts the stream, and nothing stops it but the socket closing: every text
    /// frame before the start may be it, nothing after.
    fn may_start_or_stop(&self, _message: &[u8], kind: MessageKind) -> bool {
        kind == MessageKind::Text && !self.started
    }

    /// jambonz takes mono L16 at the playback rate (the caller's unless set); one the engine does
    /// not write refuses the stream.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        let rate = self.playback_rate.unwrap_or(start.media_format.sample_rate);
        if !PLAYBACK_RATES.contains(&rate) {
            return Err(ProtocolError::UnsupportedFormat);
        }
        self.started = true;
        Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 })
    }

    /// A binary frame of L16, every -1 sample written as -2 (see the module documentation: -1 is
    /// the module's in-band mark).
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(audio);
        for sample in out.chunks_exact_mut(2) {
            if sample == [0xff, 0xff] {
                sample[0] = 0xfe;
            }
        }
        MessageKind::Binary
    }

    /// Writes `{"type":"mark","data":{"name":"<name>"}}`, `name` percent-encoded (see the module
    /// documentation).
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(wire::MARK_HEAD);
        wire::push_name(out, name);
        out.extend_from_slice(wire::MARK_TAIL);
        MessageKind::Text
    }

    /// Writes `{"type":"killAudio"}`.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        out.extend_from_slice(wire::KILL_AUDIO);
        MessageKind::Text
    }

    /// The exact length of [`Dialect::write_media`]'s output: the audio itself.
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        payload_len
    }
}
