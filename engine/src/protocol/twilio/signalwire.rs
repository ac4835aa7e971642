//! SignalWire's cXML `<Stream>`: the Twilio Media Streams format, except that SignalWire takes
//! back the audio format it sends.
//!
//! Every message is parsed and written exactly as [`TwilioDialect`] does (see the acceptance table
//! in the parent module), and the capabilities are Twilio's ([`Capabilities::TWILIO`]): JSON text
//! frames, timestamps, 20 ms frames, marks echoed when played and on `clear` (SignalWire documents
//! both), a `clear` message. The one difference is the audio going back: with `codec="L16@16000h"`
//! or `codec="L16@24000h"` SignalWire sends the caller as 16-bit linear PCM at that rate and plays
//! the same format back, where Twilio always takes 8 kHz µ-law. So [`Dialect::on_start`] returns
//! the `start`'s own format (µ-law, A-law, L16 at its rate, or G.722), mono.
//!
//! | `mediaFormat.encoding` | `sampleRate` | both ways |
//! |---|---|---|
//! | `audio/x-mulaw`, `audio/x-alaw` | 8000 | a byte per sample, 160 B per 20 ms |
//! | `audio/x-L16` | 16000, 24000 (8000) | little-endian |
//! | `audio/G722` (also `audio/x-g722`, `G722`) | 8000 (RTP's clock) or 16000, both 16 kHz audio | 64 kbit/s, 160 B per 20 ms, decoded at 16 kHz and resampled straight to the agent's rate; sent back encoded from the agent's audio at 16 kHz |
//!
//! What SignalWire adds on the wire is already covered by the Twilio parser: `audio/x-L16` (MIME
//! types are compared case-insensitively), `connected.protocol` `"Call"` and version `"0.2.0"`
//! (ignored), and a `dtmf.duration` number (ms).
//!
//! # Uncertain points, and how they were decided
//!
//! - G.722's name in `mediaFormat.encoding` is not documented (SignalWire lists G722 among its
//!   stream codecs): the MIME type `audio/G722`, `audio/x-g722` and the bare `G722` are taken,
//!   case-insensitively, and its rate may be RTP's 8000 or the audio's 16000.
//! - L16 byte order: little-endian, as the engine's L16 is, with no swapping. SignalWire does not
//!   document it; a peer passes SignalWire's L16 straight to a little-endian consumer.
//! - SignalWire's documentation shows every message wrapped in
//!   `{"timestamp", "direction", "eventType", "streamSid", "sequenceNumber", "rawEvent": {…}}`.
//!   That looks like its log viewer's rendering, with the frame itself in `rawEvent`; frames are
//!   parsed as Twilio's (a wrapper has no `event`: `MissingField("event")`).
//! - The documentation also lists an inbound `clear` acknowledgement, possibly only a log of the
//!   app's own `clear`. Should SignalWire send it, it is accepted as an [`Inbound::Notice`]
//!   (counted in `messages_in`, not reported), like Plivo's `clearedAudio`.
//! - `channels` may be 2 with `both_tracks`: the stream starts, and its audio is refused by the
//!   session as an unsupported format; what goes back is mono.
//! - The default track (inbound in cXML, both in REST) changes nothing here: outbound-track media
//!   is told apart by `media.track`.

use super::*;

/// SignalWire's Twilio-compatible stream: [`TwilioDialect`]'s messages, the caller's format back.
#[derive(Debug, Default, Clone)]
pub struct SignalWireDialect {
    twilio: TwilioDialect,
}

impl SignalWireDialect {
    /// A dialect with no stream yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Dialect for SignalWireDialect {
    fn capabilities(&self) -> Capabilities {
        Capabilities::TWILIO
    }

    /// Parses one message as [`TwilioDialect::parse`] does, and takes SignalWire's `clear`
    /// acknowledgement as a notice.
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        match self.twilio.parse(message, kind, payload) {
            // Read again only when the event was unknown, which a call does not do often.
            Err(ProtocolError::UnknownEvent) if is_clear(message) => Ok(Inbound::Notice),
            parsed => parsed,
        }
    }

    fn may_start_or_stop(&self, message: &[u8], kind: MessageKind) -> bool {
        self.twilio.may_start_or_stop(message, kind)
    }

    /// Remembers the stream SID as Twilio's dialect does, and takes back the caller's encoding at
    /// the caller's rate, mono. (A rate the engine cannot produce refuses the `start`.)
    fn on_start(&mut self, start: &StreamStart) -> Result<MediaFormat, ProtocolError> {
        self.twilio.on_start(start)?;
        Ok(MediaFormat { channels: 1, ..start.media_format })
    }

    fn write_media(&self, audio: &[u8], out: &mut Vec<u8>) -> MessageKind {
        self.twilio.write_media(audio, out)
    }

    fn write_mark(&self, name: &str, out: &mut Vec<u8>) -> MessageKind {
        self.twilio.write_mark(name, out)
    }

    fn write_clear(&self, out: &mut Vec<u8>) -> MessageKind {
        self.twilio.write_clear(out)
    }

    fn max_media_message_len(&self, payload_len: usize) -> usize {
        self.twilio.max_media_message_len(payload_len)
    }
}

/// Whether a message's `event` is `clear`.
fn is_clear(message: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event: Option<crate::protocol::json_in::Text<'a>>,
    }
    let event = std::str::from_utf8(message).ok().and_then(|t| serde_json::from_str::<Event<'_>>(t).ok());
    matches!(event, Some(Event { event: Some(crate::protocol::json_in::Text::Str(e)) }) if e == "clear")
}
