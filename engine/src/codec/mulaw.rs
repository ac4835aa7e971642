//! G.711 µ-law, bit-exact with the ITU-T G.711 reference as shipped in CPython's `audioop`
//! (`lin2ulaw` / `ulaw2lin`, the Sun/CCITT `g711.c` algorithm).
//!
//! Both directions are single table lookups. The tables are built at compile time by `const fn`s
//! that transcribe the reference algorithm, so the per-sample code has no branches and no
//! segment search.

/// Magnitude bias added before the segment search (the reference's `BIAS >> 2`, in 14-bit units).
const BIAS_14: i32 = 0x84 >> 2;
/// Largest 14-bit magnitude the reference encodes before it saturates.
const CLIP_14: i32 = 8159;
/// Upper bound of each segment, in biased 14-bit magnitude (the reference's `seg_uend`).
const SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

/// The reference decoder for one code (`st_ulaw2linear16`), used only to build the table.
const fn reference_decode(code: u8) -> i16 {
    let u = !code as i32;
    let t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 { (0x84 - t) as i16 } else { (t - 0x84) as i16 }
}

/// The reference encoder for one 14-bit sample (`st_14linear2ulaw`), used only to build the table.
const fn reference_encode_14(sample_14: i32) -> u8 {
    let (mut magnitude, mask): (i32, i32) =
        if sample_14 < 0 { (-sample_14, 0x7F) } else { (sample_14, 0xFF) };
    if magnitude > CLIP_14 {
        magnitude = CLIP_14;
    }
    magnitude += BIAS_14;
    let mut segment = 0;
    while segment < 8 && magnitude > SEGMENT_END[segment] {
        segment += 1;
    }
    if segment >= 8 {
        // Unreachable after the clip above, kept to mirror the reference.
        return (0x7F ^ mask) as u8;
    }
    let code = ((segment as i32) << 4) | ((magnitude >> (segment + 1)) & 0x0F);
    (code ^ mask) as u8
}

/// Linear value of every µ-law code.
const DECODE_TABLE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = reference_decode(code as u8);
        code += 1;
    }
    table
};

/// µ-law code of every 16-bit sample, indexed by `(sample as u16) >> 2`.
///
/// The reference encodes `sample >> 2` (a 14-bit value), so the two low bits never matter and
/// 16 Ki entries cover every input. Indexing by the unsigned top 14 bits keeps the index
/// provably in range (no bounds check in the loop); entry `i` holds the code of the 14-bit
/// two's-complement value whose bit pattern is `i`.
const ENCODE_TABLE: [u8; 1 << 14] = {
    let mut table = [0u8; 1 << 14];
    let mut index = 0;
    while index < (1 << 14) {
        // Sign-extend the 14-bit pattern back to the arithmetic `sample >> 2`.
        let sample_14 = ((index as i32) << 18) >> 18;
        table[index] = reference_encode_14(sample_14);
        index += 1;
    }
    table
};

/// Decodes one µ-law code to a linear 16-bit sample.
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    DECODE_TABLE[code as usize]
}

/// Encodes one linear 16-bit sample to µ-law.
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    ENCODE_TABLE[(sample as u16 >> 2) as usize]
}

/// Decodes `min(input.len(), output.len())` codes; returns that count.
pub fn decode_ulaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    // why: zipped equal-length slices and a u8 index into a 256-entry table leave no bounds
    // checks or branches in the loop body.
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = DECODE_TABLE[i as usize];
    }
    n
}

/// Encodes `min(input.len(), output.len())` samples; returns that count.
pub fn encode_ulaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = ENCODE_TABLE[(i as u16 >> 2) as usize];
    }
    n
}
