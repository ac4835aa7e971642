//! Messages cut out of a byte stream, for carriers that speak over TCP rather than WebSocket
//! (see [`crate::protocol::Framing::Stream`]).

use crate::protocol::{Dialect, ProtocolError};

/// Reassembles messages from chunks of a byte stream, whatever their sizes.
///
/// Each message is copied into one buffer of the session's message limit, allocated at
/// construction; a message announced longer than that is skipped, byte for byte, and reported
/// once, so the stream stays in step.
#[derive(Debug)]
pub(crate) struct Deframer {
    buf: Vec<u8>,
    max: usize,
    header_len: usize,
    /// Bytes of an oversized message still to skip.
    skip: usize,
    /// `buf` holds a complete message that was handed out: cleared before the next.
    complete: bool,
}

impl Deframer {
    /// A deframer for messages of at most `max` bytes with headers of `header_len` bytes.
    pub(crate) fn new(header_len: usize, max: usize) -> Self {
        let max = max.max(header_len);
        Self { buf: Vec::with_capacity(max), max, header_len, skip: 0, complete: false }
    }

    /// The next complete message from what is buffered and `input` (advanced past what was
    /// taken), or `None` when `input` is used up before a message completes.
    pub(crate) fn next<'a>(
        &'a mut self,
        input: &mut &[u8],
        dialect: &dyn Dialect,
    ) -> Option<Result<&'a [u8], ProtocolError>> {
        if self.complete {
            self.buf.clear();
            self.complete = false;
        }
        if self.skip > 0 {
            let n = self.skip.min(input.len());
            *input = &input[n..];
            self.skip -= n;
            if self.skip > 0 {
                return None;
            }
        }
        if !self.fill(input, self.header_len) {
            return None;
        }
        let total = dialect.stream_message_len(&self.buf[..self.header_len]).max(self.header_len);
        if total > self.max {
            self.skip = total - self.buf.len();
            self.buf.clear();
            return Some(Err(ProtocolError::MessageTooLarge));
        }
        if !self.fill(input, total) {
            return None;
        }
        self.complete = true;
        Some(Ok(&self.buf))
    }

    /// Moves bytes from `input` until `buf` holds `upto`; whether it does.
    fn fill(&mut self, input: &mut &[u8], upto: usize) -> bool {
        let n = upto.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
        self.buf.len() >= upto
    }
}
