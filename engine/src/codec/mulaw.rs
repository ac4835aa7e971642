//! G.711 µ-law. (stub, being written)

/// Decodes one µ-law code to a linear 16-bit sample.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let _ = code;
    todo!()
}

/// Encodes one linear 16-bit sample to µ-law.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let _ = sample;
    todo!()
}

/// Decodes `min(input.len(), output.len())` codes; returns that count.
pub fn decode_ulaw(input: &[u8], output: &mut [i16]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(input) {
        *o = ulaw_to_linear(i);
    }
    n
}

/// Encodes `min(input.len(), output.len())` samples; returns that count.
pub fn encode_ulaw(input: &[i16], output: &mut [u8]) -> usize {
    let n = input.len().min(output.len());
    for (o, &i) in output[..n].iter_mut().zip(input) {
        *o = linear_to_ulaw(i);
    }
    n
}
