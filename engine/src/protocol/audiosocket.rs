//! The Asterisk AudioSocket dialect: a TCP connection Asterisk opens to the application (the
//! `AudioSocket()` dialplan application, the `AudioSocket/` channel, or ARI external media with
//! `encapsulation=audiosocket`).
//!
//! Both ways the connection is a byte stream of messages, each a one-byte type, a big-endian
//! 16-bit length and that many bytes of payload. Asterisk first sends the call's UUID (type
//! `0x01`), then one audio message per 20 ms channel frame (`0x10`: 16-bit little-endian PCM at
//! 8 kHz; `0x11`-`0x18` for other rates on newer builds), key presses (`0x03`), and may end with a
//! hang-up (`0x00`) or just close the connection. The host pushes the bytes as they arrive, in
//! chunks of any size; the engine cuts messages out of them
//! ([`Framing::Stream`] with [`Dialect::stream_message_len`]). Asterisk writes each audio message
//! it receives into the call at once as one frame, with no buffer, no clear and no
//! confirmation: the engine paces agent audio itself, 20 ms at a time, never more than 40 ms
//! ahead, and its own clock says when a mark has played.
//!
//! # What is accepted
//!
//! Each message is handed to [`Dialect::parse`] whole (as binary). Checks run in this order: frame
//! kind, length, type, then the type's payload.
//!
//! | type | payload | accepted → result |
//! |---|---|---|
//! | (any) | | a text frame → `UnexpectedFrameKind(Text)`; fewer than 3 bytes, or a length other than the header's → `WrongType("length")` (never from the engine's own cutting) |
//! | `0x01` UUID | 16 bytes | → `Connected`, the UUID kept in canonical text form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase); another length → `WrongType("uuid")`; a second one → `DuplicateStart` |
//! | `0x10`-`0x18` audio | even length | the first → `Start` (below); every later one → `Media` (track inbound, no sequence, no timestamp: arrival order). Before the UUID → `MediaBeforeStart`; empty → `MissingField("audio")`; odd → `OddPayloadLength`; after the first, over [`PayloadBuffer::limit`] → `PayloadTooLarge`; a type other than the first's → `UnsupportedFormat` |
//! | `0x03` DTMF | 1 byte | `0`-`9` `*` `#` `A`-`D` (ASCII) → `Dtmf`; empty → `MissingField("dtmf")`; another byte or length → `WrongType("dtmf")` |
//! | `0x00` hang-up | none (any is ignored) | → `Stop` |
//! | `0xff` error | 1 byte, optional | the caller hung up (bit `0x01`) → `Stop`; otherwise reported and dropped, the call goes on: a frame-forwarding error (`0x02`) → `CarrierReported("error.frame_forwarding")`, a memory error (`0x04`) → `CarrierReported("error.memory")`, no or another code → `CarrierReported("error")` |
//! | other | | `UnknownEvent` |
//!
//! Audio types and rates: `0x10` 8 kHz, `0x11` 12, `0x12` 16, `0x13` 24, `0x14` 32, `0x15`
//! 44.1, `0x16` 48, `0x17` 96, `0x18` 192 kHz.
//!
//! `Start` carries the UUID as the call id and the stream id, no account id, no custom
//! parameters, tracks `[inbound]`, and L16 mono at the first audio message's rate.
//!
//! # Decisions
//!
//! - **The stream starts at the first audio message, not at the UUID.** The rate is per audio
//!   message and the engine builds its stages for the stream's format when it starts, so the
//!   format is only known then. That message's audio is not lost: it is kept and delivered in
//!   front of the next audio message's. Sessions take two 20 ms messages at 48 kHz in one payload,
//!   and a 192 kHz message whole ([`Dialect::inbound_sizes`]), so this holds at every rate the
//!   engine converts (at 96 and 192 kHz, whose audio is refused, the first is dropped). The UUID
//!   itself is reported as `Connected`.
//! - **The rate cannot change mid-call**: audio of another type than the first is refused
//!   (`UnsupportedFormat`) rather than restarting the stream's stages.
//! - ⚠ **The rate types changed between versions** (an intermediate revision had `0x11` =
//!   16 kHz; current Asterisk and its documentation have `0x11` = 12 kHz, `0x12` = 16 kHz). The
//!   current table is followed. Agent audio mirrors the caller's type when the engine writes that
//!   rate (8, 16, 24 and 48 kHz). At a rate it does not convert (12, 32, 44.1, 96, 192 kHz) the
//!   stream still starts (the host learns of the call), each caller audio message is refused
//!   (`UnsupportedFormat`; at 192 kHz `PayloadTooLarge`, over what is delivered at once), and
//!   agent audio goes back as `0x10` at 8 kHz, the one type every
//!   build reads (Asterisk converts it to the channel's format).
//! - ⚠ **Older builds accept only `0x10` and hang-up from the application.** They also only send
//!   `0x10`, so mirroring sends them nothing else.
//! - ⚠ **Whether Asterisk sends `0x00` on hang-up** (the application read closes the connection
//!   without it): both end the stream, the message as `Stop`, the close through
//!   `Session::end_stream`. A message cut short by the close is never parsed.
//! - ⚠ **Which versions forward DTMF (`0x03`)**: read whenever it comes.
//! - **Errors** Asterisk reports are `CarrierReported`, as other carriers' are (the host sees a
//!   `ProtocolError` event whose field says which error), not malformed input.
//! - **Pacing**: `max_lead_ms` is 40, the pacer's floor of two frames: what Asterisk holds plays
//!   at once and cannot be taken back, so the lead is the barge-in delay. No handshake, no marks
//!   ([`Confirmation::None`]), no clear ([`ClearKind::None`]): the engine stops sending, and at
//!   most those 40 ms still play.
//! - **Hanging up from the application** (`0x00 0x00 0x00`, or closing the connection) is the
//!   host's decision: the engine never writes it.
//!
//! Parsing audio allocates nothing (the payload is copied into the [`PayloadBuffer`]); the UUID
//! and the first audio message (the start) allocate.

use std::fmt::Write as _;

use crate::protocol::{
    AudioEncoding, Capabilities, ClearKind, Confirmation, Dialect, Framing, Inbound, InboundSizes,
    MediaFormat, MediaFrame, MessageKind, PayloadBuffer, ProtocolError, StreamStart, Track,
};

/// Message types.
const HANGUP: u8 = 0x00;
const UUID: u8 = 0x01;
const DTMF: u8 = 0x03;
/// 8 kHz audio, the type every build sends and reads.
const AUDIO_8K: u8 = 0x10;
const ERROR: u8 = 0xff;
/// The rate of each audio type, `0x10` first.
const AUDIO_RATES: [u32; 9] = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000];
/// The rates the engine writes agent audio at.
const PLAYBACK_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];
/// Error codes (bits of the error message's payload).
const ERROR_HANGUP: u8 = 0x01;
const ERROR_FRAME_FORWARDING: u8 = 0x02;
const ERROR_MEMORY: u8 = 0x04;
/// Bytes of a message's header: type, then a big-endian length.
const HEADER_LEN: usize = 3;
/// Asterisk sends one channel frame, 20 ms, per audio message (and the engine sends it as much).
const FRAME_MS: u32 = 20;
/// The largest audio message's payload, bytes: 20 ms at 192 kHz. Sessions take messages this
/// long, so a stream at any rate starts (the host learns of the call) even where its audio is
/// refused.
const LARGEST_AUDIO: usize = 192_000 / 1000 * FRAME_MS as usize * 2;
/// The largest payload delivered at once, bytes: the first audio message held and the second,
/// 20 ms each at 48 kHz, the highest rate the engine converts.
const LARGEST_DELIVERY: usize = 2 * 48_000 / 1000 * FRAME_MS as usize * 2;

/// The rate of audio type `kind`, if it is one.
fn audio_rate(kind: u8) -> Option<u32> {
    AUDIO_RATES.get(usize::from(kind.checked_sub(AUDIO_8K)?)).copied()
}

/// The Asterisk AudioSocket dialect. See the module documentation for what is accepted.
#[derive(Debug)]
pub struct AudioSocketDialect {
    /// The call's UUID in canonical text form, once its message came.
    uuid: Option<String>,
    /// The audio type of the stream, set by its first audio message (the start).
    stream_kind: Option<u8>,
    /// The first audio message's payload, delivered in front of the next one's.
    first_audio: Vec<u8>,
    /// The audio type agent audio is written as.
    reply_kind: u8,
}

impl Default for AudioSocketDialect {
    fn default() -> Self {
        Self { uuid: None, stream_kind: None, first_audio: Vec::new(), reply_kind: AUDIO_8K }
    }
}

impl AudioSocketDialect {
    /// A dialect for one call.
    pub fn new() -> Self {
        Self::default()
    }

    /// What the engine must know to drive AudioSocket: a byte stream of 3-byte-header messages,
    /// no timestamps, 20 ms frames at most 40 ms ahead, nothing confirmed, no clear.
    pub const CAPABILITIES: Capabilities = Capabilities {
        framing: Framing::Stream { header_len: HEADER_LEN },
        timestamps: false,
        frame_ms: FRAME_MS,
        max_lead_ms: Some(40),
        confirmation: Confirmation::None,
        clear: ClearKind::None,
    };

    fn uuid(&mut self, value: &[u8]) -> Result<Inbound<'static>, ProtocolError> {
        if self.uuid.is_some() {
            return Err(ProtocolError::DuplicateStart);
        }
        let bytes: &[u8; 16] = value.try_into().map_err(|_| ProtocolError::WrongType("uuid"))?;
        let mut text = String::with_capacity(36);
        for (i, b) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                text.push('-');
            }
            // Cannot fail: writing to a String.
            let _ = write!(text, "{b:02x}");
        }
        self.uuid = Some(text);
        Ok(Inbound::Connected)
    }

    fn audio(
        &mut self,
        kind: u8,
        rate: u32,
        value: &[u8],
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'static>, ProtocolError> {
        let Some(uuid) = &self.uuid else { return Err(ProtocolError::MediaBeforeStart) };
        if value.is_empty() {
            return Err(ProtocolError::MissingField("audio"));
        }
        if !value.len().is_multiple_of(2) {
            return Err(ProtocolError::OddPayloadLength);
        }
        // The first message is only kept (and the stream starts whatever its size); the limit
        // is for what is delivered.
        let limit = payload.limit().min(payload.raw_mut().capacity());
        if self.stream_kind.is_some() && value.len() > limit {
            return Err(ProtocolError::PayloadTooLarge);
        }
        match self.stream_kind {
            None => {
                self.stream_kind = Some(kind);
                self.first_audio.clear();
                self.first_audio.extend_from_slice(value);
                return Ok(Inbound::Start(Box::new(StreamStart {
                    sequence: None,
                    account_id: String::new(),
                    stream_id: uuid.clone(),
                    call_id: uuid.clone(),
                    tracks: vec![Track::Inbound],
                    custom_parameters: Vec::new(),
                    media_format: MediaFormat {
                        encoding: AudioEncoding::L16,
                        sample_rate: rate,
                        channels: 1,
                    },
                })));
            }
            Some(stream_kind) if stream_kind != kind => return Err(ProtocolError::UnsupportedFormat),
            Some(_) => {}
        }
        let buf = payload.raw_mut();
        if !self.first_audio.is_empty() {
            // Within the limit (checked against the capacity too): no allocation. The sessions'
            // limit holds two messages at every rate the engine converts (`inbound_sizes`).
            if self.first_audio.len() + value.len() <= limit {
                buf.extend_from_slice(&self.first_audio);
            }
            self.first_audio.clear();
        }
        buf.extend_from_slice(value);
        Ok(Inbound::Media(MediaFrame { sequence: None, chunk: None, timestamp_ms: 0, track: Track::Inbound }))
    }
}

/// A key press: one ASCII digit.
fn dtmf(value: &[u8]) -> Result<Inbound<'static>, ProtocolError> {
    match value {
        [] => Err(ProtocolError::MissingField("dtmf")),
        &[d @ (b'0'..=b'9' | b'*' | b'#' | b'A'..=b'D')] => {
            Ok(Inbound::Dtmf { sequence: None, digit: d, duration_ms: None })
        }
        _ => Err(ProtocolError::WrongType("dtmf")),
    }
}

/// An error Asterisk reports: the caller hanging up ends the stream; anything else is reported.
fn error(value: &[u8]) -> Result<Inbound<'static>, ProtocolError> {
    let code = value.first().copied().unwrap_or(0);
    if code & ERROR_HANGUP != 0 {
        Ok(Inbound::Stop { sequence: None })
    } else if code & ERROR_FRAME_FORWARDING != 0 {
        Err(ProtocolError::CarrierReported("error.frame_forwarding"))
    } else if code & ERROR_MEMORY != 0 {
        Err(ProtocolError::CarrierReported("error.memory"))
    } else {
        Err(ProtocolError::CarrierReported("error"))
    }
}

impl Dialect for AudioSocketDialect {
    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }

    /// A 192 kHz message must pass for its stream to start, and the first message is
    /// delivered with the second: two 48 kHz messages, over the defaults' 2 KiB of payload.
    fn inbound_sizes(&self) -> Option<InboundSizes> {
        Some(InboundSizes { message_bytes: HEADER_LEN + LARGEST_AUDIO, payload_bytes: LARGEST_DELIVERY })
    }

    /// Three header bytes and the big-endian length they announce.
    fn stream_message_len(&self, header: &[u8]) -> usize {
        match header {
            [_, hi, lo, ..] => HEADER_LEN + usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => HEADER_LEN,
        }
    }

    /// Parses one whole message (see the module documentation for exactly what is accepted).
    ///
    /// `payload` is cleared first, so after any call it holds audio only if this message was a
    /// valid audio message after the start.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        payload.raw_mut().clear();
        if kind == MessageKind::Text {
            return Err(ProtocolError::UnexpectedFrameKind(MessageKind::Text));
        }
        if message.len() < HEADER_LEN || self.stream_message_len(message) != message.len() {
            return Err(ProtocolError::WrongType("length"));
        }
        let (kind, value) = (message[0], &message[HEADER_LEN..]);
        match kind {
            UUID => self.uuid(value),
            HANGUP => Ok(Inbound::Stop { sequence: None }),
            DTMF => dtmf(value),
            ERROR => error(value),
            _ => match audio_rate(kind) {
                Some(rate) => self.audio(kind, rate, value, payload),
                None => Err(ProtocolError::UnknownEvent),
            },
        }
    }

    /// The UUID, the first audio message (which starts the stream), a hang-up or an error.
    fn may_start_or_stop(&self, message: &[u8], _kind: MessageKind) -> bool {
        match message.first() {
            Some(&(UUID | HANGUP | ERROR)) => true,
            Some(&kind) => self.stream_kind.is_none() && audio_rate(kind).is_some(),
            None => false,
        }
    }

    /// Asterisk takes back L16 at the caller's rate (mirrored type) when the engine writes that
    /// rate, otherwise 8 kHz (`0x10`), which it converts itself.
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        let rate = start.media_format.sample_rate;
        let (kind, rate) = match AUDIO_RATES.iter().position(|&r| r == rate) {
            Some(i) if PLAYBACK_RATES.contains(&rate) => (AUDIO_8K + i as u8, rate),
            _ => (AUDIO_8K, AUDIO_RATES[0]),
        };
        self.reply_kind = kind;
        Ok(MediaFormat { encoding: AudioEncoding::L16, sample_rate: rate, channels: 1 })
    }

    /// Writes one audio message: the type, the big-endian length, the audio (20 ms, far below
    /// the 65 535-byte limit; anything beyond it would be cut off to keep the stream in step).
    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        let len = u16::try_from(audio.len()).unwrap_or(u16::MAX);
        out.clear();
        out.push(self.reply_kind);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&audio[..usize::from(len)]);
        MessageKind::Binary
    }

    /// Never called: nothing is confirmed ([`Confirmation::None`]). Writes nothing.
    fn write_mark(&self, _name: &str, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        MessageKind::Binary
    }

    /// Never called: there is no clear ([`ClearKind::None`]). Writes nothing.
    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        out.clear();
        MessageKind::Binary
    }

    /// The exact length of [`Dialect::write_media`]'s output (saturating at `usize::MAX`).
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        payload_len.min(usize::from(u16::MAX)).saturating_add(HEADER_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_types_map_to_the_current_rate_table() {
        assert_eq!(audio_rate(0x10), Some(8_000));
        assert_eq!(audio_rate(0x11), Some(12_000));
        assert_eq!(audio_rate(0x12), Some(16_000));
        assert_eq!(audio_rate(0x18), Some(192_000));
        for kind in [0x00, 0x01, 0x03, 0x0f, 0x19, 0xff] {
            assert_eq!(audio_rate(kind), None, "{kind:#x}");
        }
    }
}
