//! The carriers' audio encodings: G.711 (ITU-T G.711 µ-law and A-law, bit-exact with the
//! reference) and little-endian L16.
//!
//! Buffer functions process as many samples as both sides hold (for G.711
//! `min(input.len(), output.len())`) and return that count.

pub mod alaw;
pub mod l16;
pub mod mulaw;

pub use alaw::{alaw_to_linear, decode_alaw, encode_alaw, linear_to_alaw};
pub use l16::{decode_l16, encode_l16};
pub use mulaw::{decode_ulaw, encode_ulaw, linear_to_ulaw, ulaw_to_linear};

/// The µ-law code of digital silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;
