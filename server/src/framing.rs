//! Whole carrier messages in a byte stream, for the server's own look at each one (the stream's
//! start and stop). A WebSocket frame is already one message; a TCP carrier (AudioSocket) sends
//! a byte stream that arrives in chunks of any size, cut here by the dialect's header the same
//! way the engine cuts it (so both see the same messages).

use trunkline::protocol::Dialect;

/// Reassembles messages from chunks of a byte stream whose messages start with a header of
/// `header_len` bytes that tells their length ([`Dialect::stream_message_len`]).
///
/// A message longer than `max` (the session's `max_message_bytes`) is skipped unseen, byte for
/// byte, as the engine skips it, so the two stay in step.
#[derive(Debug)]
pub(crate) struct StreamCutter {
    buf: Vec<u8>,
    header_len: usize,
    max: usize,
    /// Bytes of an oversized message still to skip.
    skip: usize,
    /// `buf` holds a message handed out: cleared before the next.
    complete: bool,
}

impl StreamCutter {
    pub(crate) fn new(header_len: usize, max: usize) -> Self {
        let max = max.max(header_len);
        Self { buf: Vec::new(), header_len, max, skip: 0, complete: false }
    }

    /// The next complete message from what is buffered and `input` (advanced past what was
    /// taken), or `None` once `input` is used up.
    pub(crate) fn next<'s>(&'s mut self, input: &mut &[u8], dialect: &dyn Dialect) -> Option<&'s [u8]> {
        loop {
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
                continue;
            }
            if !self.fill(input, total) {
                return None;
            }
            self.complete = true;
            return Some(&self.buf);
        }
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
    use trunkline::protocol::dialect_by_name;

    fn cut_all(chunks: &[&[u8]], max: usize) -> Vec<Vec<u8>> {
        let dialect = dialect_by_name("audiosocket").unwrap();
        let mut cutter = StreamCutter::new(3, max);
        let mut out = vec![];
        for chunk in chunks {
            let mut input = *chunk;
            while let Some(m) = cutter.next(&mut input, &*dialect) {
                out.push(m.to_vec());
            }
            assert!(input.is_empty());
        }
        out
    }

    #[test]
    fn messages_come_out_whole_whatever_the_chunking() {
        let stream: Vec<u8> =
            [&[0x01, 0x00, 0x02, 0xaa, 0xbb][..], &[0x10, 0x00, 0x00], &[0x00, 0x00, 0x00]].concat();
        let expected =
            vec![vec![0x01, 0x00, 0x02, 0xaa, 0xbb], vec![0x10, 0x00, 0x00], vec![0x00, 0x00, 0x00]];
        assert_eq!(cut_all(&[&stream], 100), expected);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(cut_all(&bytes, 100), expected, "a byte at a time");
        let (a, b) = stream.split_at(4);
        assert_eq!(cut_all(&[a, b], 100), expected, "split inside a payload");
    }

    #[test]
    fn oversized_messages_are_skipped_and_the_stream_stays_in_step() {
        let mut stream = vec![0x10, 0x00, 0x08];
        stream.extend_from_slice(&[0x55; 8]);
        stream.extend_from_slice(&[0x00, 0x00, 0x00]);
        let bytes: Vec<&[u8]> = stream.chunks(2).collect();
        assert_eq!(cut_all(&bytes, 6), vec![vec![0x00, 0x00, 0x00]]);
    }
}
