//! G.711 A-law. (stub, being written)

/// Decodes one A-law code to a linear 16-bit sample.
pub fn alaw_to_linear(code: u8) -> i16 {
    let _ = code;
    todo!()
}

/// Encodes one linear 16-bit sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let _ = sample;
    todo!()
}

/// Decodes `min(input.len(), output.len())` codes; returns that count.
pub fn decode_alaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(input) {
        *o = alaw_to_linear(i);
    }
    n
}

/// Encodes `min(input.len(), output.len())` samples; returns that count.
pub fn encode_alaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(input) {
        *o = linear_to_alaw(i);
    }
    n
}
