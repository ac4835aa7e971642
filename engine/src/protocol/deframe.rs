//! Messages cut out of a byte stream, for carriers that speak over TCP rather than WebSocket
//! (see [`crate::protocol::Framing::Stream`]). The session cuts the stream it is pushed with this;
//! a transport that wants to look at the same messages (the offload server, for the stream's
//! start and stop) cuts its copy with it too, so both see the same messages.

use crate::protocol::{Dialect, ProtocolError};

/// Reassembles messages from chunks of a byte stream, whatever their sizes.
///
/// Each message is copied into one buffer of the session's message limit, allocated at
/// construction; a message announced longer than that is skipped, byte for byte, and reported
/// once, so the stream stays in step.
#[derive(Debug)]
pub struct Deframer {
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
    pub fn new(header_len: usize, max: usize) -> Self {
        let max = max.max(header_len);
        Self { buf: Vec::with_capacity(max), max, header_len, skip: 0, complete: false }
    }

    /// The next complete message from what is buffered and `input` (advanced past what was
    /// taken), or `None` when `input` is used up before a message completes.
    pub fn next<'a>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::dialect_by_name;

    /// Every message cut from `chunks`; `Err` for one skipped as too large.
    fn cut_all(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, ProtocolError>> {
        let dialect = dialect_by_name("audiosocket").unwrap();
        let mut deframer = Deframer::new(3, max);
        let mut out = vec![];
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(m) = deframer.next(&mut input, &*dialect) {
                out.push(m.map(<[u8]>::to_vec));
            }
            assert!(input.is_empty());
        }
        out
    }

    #[test]
    fn messages_come_out_whole_whatever_the_chunking() {
        let stream: Vec<u8> =
            [&[0x01, 0x00, 0x02, 0xaa, 0xbb][..], &[0x10, 0x00, 0x00], &[0x00, 0x00, 0x00]].concat();
        let expected = vec![
            Ok(vec![0x01, 0x00, 0x02, 0xaa, 0xbb]),
            Ok(vec![0x10, 0x00, 0x00]),
            Ok(vec![0x00, 0x00, 0x00]),
        ];
        assert_eq!(cut_all(&[&stream], 100), expected);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(cut_all(&bytes, 100), expected, "a byte at a time");
        let (a, b) = stream.split_at(4);
        assert_eq!(cut_all(&[a, b], 100), expected, "split inside a payload");
    }

    #[test]
    fn oversized_messages_are_skipped_once_and_the_stream_stays_in_step() {
        let mut stream = vec![0x10, 0x00, 0x08];
        stream.extend_from_slice(&[0x55; 8]);
        stream.extend_from_slice(&[0x00, 0x00, 0x00]);
        let bytes: Vec<&[u8]> = stream.chunks(2).collect();
        assert_eq!(cut_all(&bytes, 6), vec![Err(ProtocolError::MessageTooLarge), Ok(vec![0x00, 0x00, 0x00])]);
    }
}
