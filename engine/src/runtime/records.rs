//! Framed records over the byte rings between host and worker.
//!
//! A record is a fixed header followed by a body. Writers check there is room for the whole record
//! before writing any of it, and readers only take a record once all of it is there, so each side
//! sees whole records even though the ring itself moves bytes.
//!
//! On the host → worker rings, records are written with [`write_contiguous`]: a body never wraps
//! around the end of the ring (a [`PAD`] record fills the end instead), so the worker reads
//! bodies where they lie ([`body`]) instead of copying them into a buffer of its own. The price
//! is ring space: a ring guarantees room for a record of up to [`contiguous_capacity`] bytes.

use ringbuf::traits::{Consumer, Observer, Producer};
use ringbuf::{HeapCons, HeapProd};

/// Header: tag (1 byte) + three little-endian u32 fields.
pub const HEADER: usize = 13;

/// Tag of a padding record (any ring): its `b` bytes of body are skipped unread.
pub const PAD: u8 = 0xFF;

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
/// The body may wrap around the end of the ring: read it with [`take`].
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

/// The largest record (header and body) a ring of `capacity` bytes always has room for with
/// [`write_contiguous`] once the reader has caught up, whatever the ring's position: at worst the
/// end of the ring is padded and the record starts over at its beginning.
pub fn contiguous_capacity(capacity: usize, reserve: usize) -> usize {
    capacity.saturating_sub(reserve) / 2
}

/// Writes a whole record whose body lies in one piece in the ring (for [`body`]), if `reserve`
/// bytes stay free after it; false (nothing written) otherwise. When the body would wrap around
/// the end of the ring, a [`PAD`] record fills the end first (counted against the room).
pub fn write_contiguous(prod: &mut HeapProd<u8>, header: Header, body: &[u8], reserve: usize) -> bool {
    let need = HEADER + body.len();
    let (first, second) = prod.vacant_slices();
    let (first, second) = (first.len(), second.len());
    if first + second < need + reserve {
        return false;
    }
    // The header may straddle the end (it is read by copying); only the body must not.
    if need > first && first >= HEADER && !body.is_empty() {
        if second < need + reserve {
            return false;
        }
        let pad = first - HEADER;
        prod.push_slice(&Header { tag: PAD, a: 0, b: pad as u32, c: 0 }.bytes());
        let zeros = [0u8; 256];
        let mut left = pad;
        while left > 0 {
            left -= prod.push_slice(&zeros[..left.min(zeros.len())]);
        }
    }
    prod.push_slice(&header.bytes());
    prod.push_slice(body);
    true
}

/// The longest body [`write_contiguous`] would take now with `reserve` bytes left free.
pub fn contiguous_room(prod: &HeapProd<u8>, reserve: usize) -> usize {
    let (first, second) = prod.vacant_slices();
    let (first, second) = (first.len(), second.len());
    let total = (first + second).saturating_sub(HEADER + reserve);
    if first < HEADER {
        // The header straddles the end and the body lies after it.
        return total;
    }
    // After the header, up to the end; or, padding the end, in what follows.
    let here = (first - HEADER).min(total);
    let padded = if second > 0 { second.saturating_sub(HEADER + reserve) } else { 0 };
    here.max(padded)
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
    let len = if header.tag == PAD { header.b as usize } else { body_len(&header) };
    (cons.occupied_len() >= HEADER + len).then_some(header)
}

/// Like [`peek`], first dropping any [`PAD`] records (rings written with [`write_contiguous`]).
pub fn next(cons: &mut HeapCons<u8>, body_len: impl Fn(&Header) -> usize) -> Option<Header> {
    loop {
        let h = peek(cons, &body_len)?;
        if h.tag != PAD {
            return Some(h);
        }
        skip(cons, h.b as usize);
    }
}

/// The peeked record's `len`-byte body, where it lies in the ring (written with
/// [`write_contiguous`]). Remove the record with [`skip`] once done with it.
pub fn body(cons: &HeapCons<u8>, len: usize) -> &[u8] {
    let (first, second) = cons.as_slices();
    let body = if first.len() > HEADER {
        first.get(HEADER..HEADER + len)
    } else {
        second.get(HEADER - first.len()..HEADER - first.len() + len)
    };
    // A wrapped body means the record was not written with `write_contiguous`: a bug, and
    // reading a wrong body would be worse than stopping the session (caught per session).
    body.expect("record body lies in one piece")
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

    #[test]
    fn contiguous_records_are_read_in_place_wherever_the_ring_stands() {
        let body_len = |h: &Header| h.b as usize;
        // Records of every size up to the guaranteed one, from every ring position.
        let cap = 61;
        let reserve = 4;
        let largest = contiguous_capacity(cap, reserve) - HEADER;
        for start in 0..cap {
            for len in 0..=largest {
                let (mut p, mut c) = HeapRb::<u8>::new(cap).split();
                // Move the ring to `start`.
                p.push_slice(&vec![0; start]);
                c.skip(start);
                assert!(contiguous_room(&p, reserve) >= len, "start {start}, len {len}");
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + start) as u8).collect();
                let h = Header { tag: 3, a: len as u32, b: len as u32, c: 9 };
                assert!(write_contiguous(&mut p, h, &data, reserve), "start {start}, len {len}");
                assert!(p.vacant_len() >= reserve);
                assert_eq!(next(&mut c, body_len), Some(h));
                assert_eq!(body(&c, len), &data[..]);
                skip(&mut c, len);
                assert_eq!(c.occupied_len(), 0);
            }
        }
    }

    #[test]
    fn a_contiguous_record_that_does_not_fit_writes_nothing() {
        let body_len = |h: &Header| h.b as usize;
        let (mut p, mut c) = HeapRb::<u8>::new(64).split();
        p.push_slice(&[0; 40]);
        c.skip(40);
        // 24 bytes to the end, 40 after it, all free: a 26-byte body wraps unless padded.
        let h = Header { tag: 1, a: 0, b: 26, c: 0 };
        assert!(write_contiguous(&mut p, h, &[5; 26], 0));
        assert_eq!(p.vacant_len(), 64 - 24 - HEADER - 26);
        assert_eq!(next(&mut c, body_len), Some(h));
        assert_eq!(body(&c, 26), &[5; 26]);
        // `contiguous_room` is exactly what fits, from any position and fill.
        for fill in 0..64 {
            for start in 0..64 {
                let (mut p, mut c) = HeapRb::<u8>::new(64).split();
                p.push_slice(&[0; 64][..start]);
                c.skip(start);
                p.push_slice(&[0; 64][..fill]);
                let room = contiguous_room(&p, 3);
                let h = |len: usize| Header { tag: 1, a: 0, b: len as u32, c: 0 };
                if fill + HEADER + 3 <= 64 {
                    let (mut p2, mut c2) = HeapRb::<u8>::new(64).split();
                    p2.push_slice(&[0; 64][..start]);
                    c2.skip(start);
                    p2.push_slice(&[0; 64][..fill]);
                    assert!(
                        write_contiguous(&mut p2, h(room), &vec![1; room], 3),
                        "fill {fill}, start {start}"
                    );
                }
                assert!(
                    !write_contiguous(&mut p, h(room + 1), &vec![1; room + 1], 3),
                    "fill {fill}, start {start}"
                );
            }
        }
        // Not enough room (with the reserve): nothing is written, not even padding.
        let before = p.vacant_len();
        assert!(!write_contiguous(&mut p, Header { tag: 1, a: 0, b: 8, c: 0 }, &[1; 8], before));
        assert_eq!(p.vacant_len(), before);
    }
}
