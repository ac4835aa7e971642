//! L16: 16-bit linear PCM as bytes, little-endian (the byte order of the engine's L16 everywhere:
//! carriers that send big-endian L16 are byte-swapped in their protocol module).
//!
//! The conversions view the aligned side, the `i16` samples, as bytes (`bytemuck`: every `i16`
//! is two bytes with alignment 2, so that cast always succeeds) and copy the wire bytes to or from
//! it. The wire side needs no alignment at all, so a payload at any offset of a message or a C
//! caller's byte buffer converts with one copy and no allocation. The cast is native-endian:
//! the explicit little-endian step after (or instead of) the copy is what fixes the byte order,
//! and it compiles to nothing on little-endian hosts.

/// Decodes `min(input.len() / 2, output.len())` little-endian samples (a trailing odd byte is
/// not a sample); returns that count.
pub fn decode_l16(input: &[u8], output: &mut [i16]) -> usize {
    let n = (input.len() / 2).min(output.len());
    let samples = &mut output[..n];
    bytemuck::cast_slice_mut::<i16, u8>(samples).copy_from_slice(&input[..2 * n]);
    // The copy put the wire's little-endian bytes in native order; this swaps them on
    // big-endian hosts.
    for s in samples.iter_mut() {
        *s = i16::from_le(*s);
    }
    n
}

/// Encodes `min(input.len(), output.len() / 2)` samples as little-endian bytes; returns that
/// count of samples (twice as many bytes are written).
pub fn encode_l16(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len() / 2);
    let (samples, bytes) = (&input[..n], &mut output[..2 * n]);
    if cfg!(target_endian = "little") {
        // Native order is the wire's: the samples' bytes are the encoding.
        bytes.copy_from_slice(bytemuck::cast_slice::<i16, u8>(samples));
    } else {
        for (b, s) in bytes.chunks_exact_mut(2).zip(samples) {
            b.copy_from_slice(&s.to_le_bytes());
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes that make every sample distinct and use both halves of each (a sign bit included).
    fn wire(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 73 + 11) as u8).collect()
    }

    #[test]
    fn decodes_little_endian_pairs_at_any_alignment() {
        let bytes = wire(67);
        // Every start offset of the byte slice, so both alignments of the source are covered.
        for offset in 0..4 {
            let input = &bytes[offset..];
            let mut out = [0i16; 40];
            let n = decode_l16(input, &mut out);
            assert_eq!(n, input.len() / 2, "offset {offset}");
            for (k, s) in out[..n].iter().enumerate() {
                assert_eq!(
                    *s,
                    i16::from_le_bytes([input[2 * k], input[2 * k + 1]]),
                    "offset {offset}, sample {k}"
                );
            }
            assert!(out[n..].iter().all(|&s| s == 0), "nothing written past the count");
        }
    }

    #[test]
    fn decoding_stops_at_the_shorter_side() {
        let bytes = wire(20);
        let mut out = [7i16; 4];
        assert_eq!(decode_l16(&bytes, &mut out), 4);
        assert_eq!(out[3], i16::from_le_bytes([bytes[6], bytes[7]]));
        assert_eq!(decode_l16(&bytes[..1], &mut out), 0, "one byte is no sample");
    }

    #[test]
    fn encodes_little_endian_pairs_at_any_alignment() {
        let samples = [0i16, 1, -1, 256, -256, i16::MAX, i16::MIN, 0x1234, -0x1234];
        let mut buf = [0u8; 2 * 9 + 3];
        for offset in 0..3 {
            buf.fill(0xAA);
            let out = &mut buf[offset..];
            assert_eq!(encode_l16(&samples, out), samples.len());
            for (k, s) in samples.iter().enumerate() {
                assert_eq!(out[2 * k..2 * k + 2], s.to_le_bytes(), "offset {offset}, sample {k}");
            }
            assert!(out[2 * samples.len()..].iter().all(|&b| b == 0xAA), "nothing written past the count");
        }
    }

    #[test]
    fn encoding_stops_at_the_shorter_side_and_round_trips() {
        let samples: Vec<i16> = (0..50).map(|k| (k * 1_337 - 30_000) as i16).collect();
        let mut bytes = [0u8; 41];
        assert_eq!(encode_l16(&samples, &mut bytes), 20, "20 whole samples fit 41 bytes");
        let mut back = [0i16; 20];
        assert_eq!(decode_l16(&bytes[..40], &mut back), 20);
        assert_eq!(back[..], samples[..20]);
    }
}
