//! G.711 codecs (ITU-T G.711 µ-law and A-law), bit-exact with the reference.
//!
//! Buffer functions process `min(input.len(), output.len())` samples and return that count.

pub mod alaw;
pub mod mulaw;

pub use alaw::{alaw_to_linear, decode_alaw, encode_alaw, linear_to_alaw};
pub use mulaw::{decode_ulaw, encode_ulaw, linear_to_ulaw, ulaw_to_linear};

/// The µ-law code of digital silence (linear 0).
pub const ULAW_SILENCE: u8 = 0xFF;
