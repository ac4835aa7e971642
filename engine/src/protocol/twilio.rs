//! The Twilio Media Streams dialect (stub, being written).

use super::*;

/// Twilio Media Streams JSON (also SignalWire's).
#[derive(Debug, Default)]
pub struct TwilioDialect {
    stream_sid: String,
}

impl TwilioDialect {
    /// A dialect with no stream yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Dialect for TwilioDialect {
    fn name(&self) -> &'static str {
        "twilio"
    }
    fn outbound_kind(&self) -> MessageKind {
        MessageKind::Text
    }
    fn parse<'a>(
        &mut self,
        message: &'a [u8],
        kind: MessageKind,
        payload: &mut PayloadBuffer,
    ) -> Result<Inbound<'a>, ProtocolError> {
        let _ = (message, kind, payload);
        todo!()
    }
    fn on_start(&mut self, start: &StreamStart) {
        self.stream_sid = start.stream_sid.clone();
    }
    fn write_media(&self, mulaw: &[u8], out: &mut Vec<u8>) {
        let _ = (mulaw, out);
        todo!()
    }
    fn write_mark(&self, name: &str, out: &mut Vec<u8>) {
        let _ = (name, out);
        todo!()
    }
    fn write_clear(&self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
    fn max_media_message_len(&self, payload_len: usize) -> usize {
        payload_len.div_ceil(3) * 4 + 128 + self.stream_sid.len()
    }
}
