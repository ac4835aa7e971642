//! Framed records over the byte rings between host and worker.
//!
//! A record is a fixed header followed by a body. Writers check there is room for the whole record
//! before writing any of it, and readers only take a record once all of it is there, so each side
//! sees whole records even though the ring itself moves bytes.

use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

/// Header: tag (1 byte) + three little-endian u32 fields.
pub const HEADER: usize = 13;

/// A record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// What the record is (meaning per ring).
    pub tag: u8,
    /// First field.
    pub a: u32,
    /// Second field; for records with a body, its length in bytes.
    pub b: u32,
    /// Third field.
    pub c: u32,
}

impl Header {
    fn bytes(self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0] = self.tag;
        h[1..5].copy_from_slice(&self.a.to_le_bytes());
        h[5..9].copy_from_slice(&self.b.to_le_bytes());
        h[9..13].copy_from_slice(&self.c.to_le_bytes());
        h
    }
}

/// Writes a whole record if `reserve` bytes stay free after it; false (nothing written) otherwise.
pub fn write(prod: &mut HeapProd<u8>, header: Header, bodies: &[&[u8]], reserve: usize) -> bool {
    let body: usize = bodies.iter().map(|b| b.len()).sum();
    if prod.vacant_len() < HEADER + body + reserve {
        return false;
    }
    prod.push_slice(&header.bytes());
    for b in bodies {
        prod.push_slice(b);
    }
    true
}

/// The header of the next record, if a whole record (header and `body_len(header)` bytes) is there.
pub fn peek(cons: &HeapCons<u8>, body_len: impl Fn(&Header) -> usize) -> Option<Header> {
    let mut h = [0u8; HEADER];
    if cons.occupied_len() < HEADER || cons.peek_slice(&mut h) < HEADER {
        return None;
    }
    let header = Header {
        tag: h[0],
        a: u32::from_le_bytes([h[1], h[2], h[3], h[4]]),
        b: u32::from_le_bytes([h[5], h[6], h[7], h[8]]),
        c: u32::from_le_bytes([h[9], h[10], h[11], h[12]]),
    };
    (cons.occupied_len() >= HEADER + body_len(&header)).then_some(header)
}

/// Removes the peeked record's header and copies its `len`-byte body into `body`.
pub fn take(cons: &mut HeapCons<u8>, len: usize, body: &mut [u8]) {
    cons.skip(HEADER);
    let got = cons.pop_slice(&mut body[..len]);
    debug_assert_eq!(got, len);
}

/// Removes the peeked record without reading its `len`-byte body.
pub fn skip(cons: &mut HeapCons<u8>, len: usize) {
    cons.skip(HEADER + len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::HeapRb;
    use ringbuf::traits::Split;

    #[test]
    fn records_round_trip_and_partial_records_are_invisible() {
        let (mut p, mut c) = HeapRb::<u8>::new(64).split();
        let body_len = |h: &Header| h.b as usize;
        assert!(write(&mut p, Header { tag: 1, a: 7, b: 5, c: 0 }, &[b"he", b"llo"], 0));
        assert_eq!(peek(&c, body_len), Some(Header { tag: 1, a: 7, b: 5, c: 0 }));
        let mut buf = [0u8; 16];
        take(&mut c, 5, &mut buf);
        assert_eq!(&buf[..5], b"hello");
        // A header whose body is not all there yet is not visible.
        p.push_slice(&Header { tag: 2, a: 0, b: 10, c: 0 }.bytes());
        p.push_slice(b"12345");
        assert_eq!(peek(&c, body_len), None);
        p.push_slice(b"67890");
        assert!(peek(&c, body_len).is_some());
        // Room is checked for the whole record plus the reserve.
        let (mut p, _c) = HeapRb::<u8>::new(24).split();
        assert!(!write(&mut p, Header { tag: 0, a: 0, b: 8, c: 0 }, &[&[0; 8]], 4));
        assert!(write(&mut p, Header { tag: 0, a: 0, b: 8, c: 0 }, &[&[0; 8]], 3));
    }
}
