//! G.711 A-law, bit-exact with the ITU-T G.711 reference as shipped in CPython's `audioop`
//! (`lin2alaw` / `alaw2lin`, the Sun/CCITT `g711.c` algorithm).
//!
//! Both directions are single table lookups. The tables are built at compile time by `const fn`s
//! that transcribe the reference algorithm, so the per-sample code has no branches and no
//! segment search.

/// Upper bound of each segment, in 13-bit magnitude (the reference's `seg_aend`).
const SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

/// The reference decoder for one code (`st_alaw2linear16`), used only to build the table.
const fn reference_decode(code: u8) -> i16 {
    let a = (code ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let segment = (a & 0x70) >> 4;
    match segment {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= segment - 1;
        }
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

/// The reference encoder for one 13-bit sample (`st_linear2alaw`), used only to build the table.
const fn reference_encode_13(sample_13: i32) -> u8 {
    let (magnitude, mask): (i32, i32) = if sample_13 >= 0 {
        (sample_13, 0xD5)
    } else {
        // One's complement: the reference maps -1 to magnitude 0, like its sign-magnitude codes.
        (-sample_13 - 1, 0x55)
    };
    let mut segment = 0;
    while segment < 8 && magnitude > SEGMENT_END[segment] {
        segment += 1;
    }
    if segment >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut code = (segment as i32) << 4;
    if segment < 2 {
        code |= (magnitude >> 1) & 0x0F;
    } else {
        code |= (magnitude >> segment) & 0x0F;
    }
    (code ^ mask) as u8
}

/// Linear value of every A-law code.
const DECODE_TABLE: [i16; 256] = {
    let mut table = [0i16; 256];
    let mut code = 0;
    while code < 256 {
        table[code] = reference_decode(code as u8);
        code += 1;
    }
    table
};

/// A-law code of every 16-bit sample, indexed by `(sample as u16) >> 3`.
///
/// The reference encodes `sample >> 3` (a 13-bit value), so the three low bits never matter and
/// 8 Ki entries cover every input. Entry `i` holds the code of the 13-bit two's-complement value
/// whose bit pattern is `i`.
const ENCODE_TABLE: [u8; 1 << 13] = {
    let mut table = [0u8; 1 << 13];
    let mut index = 0;
    while index < (1 << 13) {
        // Sign-extend the 13-bit pattern back to the arithmetic `sample >> 3`.
        let sample_13 = ((index as i32) << 19) >> 19;
        table[index] = reference_encode_13(sample_13);
        index += 1;
    }
    table
};

/// Decodes one A-law code to a linear 16-bit sample.
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    DECODE_TABLE[code as usize]
}

/// Encodes one linear 16-bit sample to A-law.
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    ENCODE_TABLE[(sample as u16 >> 3) as usize]
}

/// Decodes `min(input.len(), output.len())` codes; returns that count.
pub fn decode_alaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    // why: zipped equal-length slices and a u8 index into a 256-entry table leave no bounds
    // checks or branches in the loop body.
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = DECODE_TABLE[i as usize];
    }
    n
}

/// Encodes `min(input.len(), output.len())` samples; returns that count.
pub fn encode_alaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(&input[..n]) {
        *o = ENCODE_TABLE[(i as u16 >> 3) as usize];
    }
    n
}
