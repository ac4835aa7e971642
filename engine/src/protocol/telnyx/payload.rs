//! Telnyx's base64 RTP payloads, in and out, without allocating.
//!
//! Telnyx carries L16 as RTP does, big-endian (network order); the engine's L16 is little-endian.
//! So L16 payloads are byte-swapped here: in place after decoding, and a block at a time before
//! encoding (the writers take `&self` and own no scratch buffer).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

use crate::protocol::{PayloadBuffer, ProtocolError};

/// Standard alphabet, padding optional on input; trailing bits must be zero, as in canonical
/// base64.
const PAYLOAD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The decoded length of well-formed base64 `text` (padded or not), without decoding it.
pub(super) fn decoded_len(text: &[u8]) -> Result<usize, ProtocolError> {
    let padding = text.iter().rev().take(2).take_while(|&&b| b == b'=').count();
    let symbols = text.len() - padding;
    let tail = match symbols % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        // One symbol carries 6 bits: not even one byte.
        _ => return Err(ProtocolError::InvalidBase64),
    };
    Ok(symbols / 4 * 3 + tail)
}

/// Decodes `text` into `payload`, never growing its buffer; with `big_endian_l16`, the result is
/// 16-bit samples turned little-endian (an odd length is then `OddPayloadLength`).
pub(super) fn decode(
    text: &[u8],
    payload: &mut PayloadBuffer,
    big_endian_l16: bool,
) -> Result<(), ProtocolError> {
    let len = decoded_len(text)?;
    let limit = payload.limit();
    let buf = payload.raw_mut();
    // Why also check the capacity: the buffer must never reallocate on this path, whatever the
    // caller did to it.
    if len > limit || len > buf.capacity() {
        return Err(ProtocolError::PayloadTooLarge);
    }
    // Within capacity: no allocation. Zero-filling first keeps this free of `unsafe`.
    buf.resize(len, 0);
    match PAYLOAD_BASE64.decode_slice(text, buf) {
        Ok(written) if written == len => {}
        // A decode error, or (output too small / short write) text that was not the well-formed
        // base64 `decoded_len` assumed.
        _ => {
            buf.clear();
            return Err(ProtocolError::InvalidBase64);
        }
    }
    if big_endian_l16 {
        if !len.is_multiple_of(2) {
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
    fn decoded_len_matches_padded_and_unpadded_base64() {
        // RFC 4648 §10 vectors: "", "f", "fo", "foo", "foob", "fooba", "foobar".
        let vectors = ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"];
        for (len, text) in vectors.iter().enumerate() {
            assert_eq!(decoded_len(text.as_bytes()), Ok(len), "{text}");
            let unpadded = text.trim_end_matches('=');
            assert_eq!(decoded_len(unpadded.as_bytes()), Ok(len), "{unpadded}");
        }
        assert_eq!(decoded_len(b"Zm9vY"), Err(ProtocolError::InvalidBase64));
    }

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
