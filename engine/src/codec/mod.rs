//! The carriers' audio encodings: G.711 (ITU-T G.711 µ-law and A-law, bit-exact with the
//! reference), G.722 (bit-exact with the reference, stateful: [`g722`]) and little-endian L16;
//! and, with the `opus` feature, the agent's Opus and Ogg Opus (decoded on the host's thread by
//! [`crate::Session::play_encoded`]) and a carrier's Opus ([`carrier_opus`]).
//!
//! Buffer functions process as many samples as both sides hold (for G.711
//! `min(input.len(), output.len())`) and return that count.

pub mod alaw;
#[cfg(feature = "opus")]
pub mod carrier_opus;
#[cfg(feature = "opus")]
pub mod encoded;
pub mod g722;
pub mod l16;
pub mod mulaw;
#[cfg(feature = "opus")]
pub mod ogg_opus;
#[cfg(feature = "opus")]
pub mod opus;

pub use alaw::{alaw_to_linear, decode_alaw, encode_alaw, linear_to_alaw};
pub use g722::{G722Decoder, G722Encoder};
pub use l16::{decode_l16, encode_l16};
pub use mulaw::{decode_ulaw, encode_ulaw, linear_to_ulaw, ulaw_to_linear};
#[cfg(feature = "opus")]
pub use opus::EncodedAudio;

/// The µ-law code of digital silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;

/// The A-law code of digital silence (linear 0).
pub const ALAW_SILENCE: u8 = 0xD5;

/// A G.711 law: the byte-per-sample formats an agent may speak besides PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum G711 {
    /// µ-law.
    Mulaw,
    /// A-law.
    Alaw,
}

impl G711 {
    /// Decodes `min(input.len(), output.len())` codes; returns that count.
    #[inline]
    pub fn decode(self, input: &[u8], output: &mut [i16]) -> usize {
        match self {
            Self::Mulaw => decode_ulaw(input, output),
            Self::Alaw => decode_alaw(input, output),
        }
    }

    /// Encodes `min(input.len(), output.len())` samples; returns that count.
    #[inline]
    pub fn encode(self, input: &[i16], output: &mut [u8]) -> usize {
        match self {
            Self::Mulaw => encode_ulaw(input, output),
            Self::Alaw => encode_alaw(input, output),
        }
    }

    /// The code of digital silence.
    pub fn silence(self) -> u8 {
        match self {
            Self::Mulaw => ULAW_SILENCE,
            Self::Alaw => ALAW_SILENCE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes_decode_to_zero_and_are_what_zero_encodes_to() {
        for law in [G711::Mulaw, G711::Alaw] {
            let mut pcm = [1i16];
            law.decode(&[law.silence()], &mut pcm);
            let mut code = [0u8];
            law.encode(&[0], &mut code);
            assert_eq!(code[0], law.silence(), "{law:?}");
            // A-law has no code for exact zero: its silence is the smallest positive step.
            assert!(pcm[0].abs() <= 8, "{law:?}");
        }
    }
}
