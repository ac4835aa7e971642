//! The carriers' wire formats spelled independently of the engine, for the dialect tests: what a
//! test writes into a message or reads out of one goes through these, never through the code
//! under test.
#![allow(dead_code)]

use serde_json::Value;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A deliberately naive RFC 4648 encoder, independent of the `base64` crate.
pub fn reference_base64(data: &[u8]) -> String {
    let mut text = String::new();
    for group in data.chunks(3) {
        let mut bits = 0u32;
        for (i, &b) in group.iter().enumerate() {
            bits |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= group.len() {
                text.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Decodes what [`reference_base64`] encodes (the writers' payloads, read back independently).
pub fn reference_unbase64(text: &str) -> Vec<u8> {
    let symbols: Vec<u32> = text
        .bytes()
        .filter(|&b| b != b'=')
        .map(|b| ALPHABET.iter().position(|&a| a == b).expect("base64 symbol") as u32)
        .collect();
    let mut out = Vec::new();
    for group in symbols.chunks(4) {
        let bits = group.iter().enumerate().fold(0u32, |acc, (i, &s)| acc | s << (18 - 6 * i));
        for i in 0..group.len() - 1 {
            out.push((bits >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// Samples as little-endian 16-bit PCM bytes (L16 as the carriers that send it little-endian do).
pub fn l16(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A test signal no codec or resampler would pass unchanged by accident: a ramp of odd steps,
/// started `seed` steps in.
pub fn ramp(samples: usize, seed: usize) -> Vec<i16> {
    (0..samples).map(|i| (((i + seed) * 37) % 20_000) as i16 - 10_000).collect()
}

/// A message the engine wrote, read back as JSON.
pub fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("a written message is JSON")
}

/// Owned key-value pairs, as a start message's custom parameters come out.
pub fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
