//! Telnyx's base64 RTP payloads, in and out, without allocating.
//!
//! Telnyx carries L16 as RTP does, big-endian (network order); the engine's L16 is little-endian.
//! So L16 payloads are byte-swapped here: in place after decoding, and a block at a time before
//! encoding (the writers take `&self` and own no scratch buffer).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::protocol::json_read;
use crate::protocol::{PayloadBuffer, ProtocolError};

/// Decodes `text` into `payload`, never growing its buffer (see [`json_read::decode_payload`]);
/// with `big_endian_l16`, the result is 16-bit samples turned little-endian (an odd length is
/// then `OddPayloadLength`).
pub(super) fn decode(
    text: &[u8],
    payload: &mut PayloadBuffer,
    big_endian_l16: bool,
) -> Result<(), ProtocolError> {
    json_read::decode_payload(text, payload)?;
    let buf = payload.raw_mut();
    if big_endian_l16 {
        if !buf.len().is_multiple_of(2) {
            buf.clear();
            return Err(ProtocolError::OddPayloadLength);
        }
        swap_pairs(buf);
    }
    Ok(())
}

/// Swaps the bytes of every 16-bit sample in place (a trailing odd byte stays).
pub(super) fn swap_pairs(bytes: &mut [u8]) {
    for pair in bytes.chunks_exact_mut(2) {
        pair.swap(0, 1);
    }
}

/// Appends the padded standard base64 of `data` to `out`, with each 16-bit sample's bytes swapped
/// first when `swap` (little-endian L16 in, big-endian on the wire). Allocates only if `out` lacks
/// the capacity.
pub(super) fn push_base64(out: &mut Vec<u8>, data: &[u8], swap: bool) {
    if !swap {
        crate::protocol::json_text::push_base64(out, data);
        return;
    }
    // A block is a whole number of base64 groups (3 bytes) and of samples (2 bytes), so blocks
    // encode independently and only the last can carry padding.
    const BLOCK: usize = 48;
    let mut at = out.len();
    // Cannot overflow: a slice holds at most isize::MAX bytes, and 4/3 of that fits in usize.
    let encoded = base64::encoded_len(data.len(), true).expect("base64 length fits in usize");
    out.resize(at + encoded, 0);
    let mut block = [0u8; BLOCK];
    for piece in data.chunks(BLOCK) {
        let block = &mut block[..piece.len()];
        block.copy_from_slice(piece);
        swap_pairs(block);
        at += STANDARD.encode_slice(&*block, &mut out[at..]).expect("output sized with encoded_len");
    }
    debug_assert_eq!(at, out.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_swaps_l16_and_never_grows_the_buffer() {
        let mut payload = PayloadBuffer::with_limit(4);
        let capacity = payload.raw_mut().capacity();
        // "EjRWeA==" is 12 34 56 78: big-endian 0x1234, 0x5678.
        assert_eq!(decode(b"EjRWeA==", &mut payload, true), Ok(()));
        assert_eq!(payload.as_slice(), [0x34, 0x12, 0x78, 0x56]);
        assert_eq!(decode(b"EjRWeA", &mut payload, false), Ok(()));
        assert_eq!(payload.as_slice(), [0x12, 0x34, 0x56, 0x78]);
        assert_eq!(decode(b"EjRW", &mut payload, true), Err(ProtocolError::OddPayloadLength));
        assert!(payload.as_slice().is_empty());
        assert_eq!(decode(b"EjRWeJo=", &mut payload, true), Err(ProtocolError::PayloadTooLarge));
        assert_eq!(decode(b"EjR!", &mut payload, true), Err(ProtocolError::InvalidBase64));
        assert!(payload.as_slice().is_empty());
        assert_eq!(payload.raw_mut().capacity(), capacity);
    }

    #[test]
    fn swapped_encoding_is_the_base64_of_the_swapped_bytes_at_every_length() {
        for len in 0..200usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut swapped = data.clone();
            swap_pairs(&mut swapped);
            let mut out = b"prefix".to_vec();
            push_base64(&mut out, &data, true);
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..], STANDARD.encode(&swapped).as_bytes(), "length {len}");
        }
    }
}
