//! A carrier's Opus (Telnyx's `OPUS`): the caller's packets decoded to PCM, and the agent's audio
//! encoded one 20 ms frame per packet, through libopus (`audiopus`).
//!
//! Both sides are built when the stream starts. libopus allocates its state with its own
//! `malloc`, outside Rust's allocator, once there; encoding and decoding then use only that state
//! and the stack, so the worker allocates nothing per frame.

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels};

use super::opus::sample_rate;
pub use super::opus::{OPUS_RATES, OpusDecoder, OpusError};

/// The largest packet of one frame (RFC 6716, 3.4: at most 1275 bytes of frame data, and the
/// TOC and length bytes of a code-0 packet are at most 2 more).
pub const MAX_PACKET_BYTES: usize = 1277;

/// Every packet the encoder writes carries this much audio, ms.
pub const FRAME_MS: u32 = 20;

/// The rates a carrier's Opus may be encoded from here: [`OPUS_RATES`] without 12 kHz, which
/// the engine's resampler does not produce.
pub const ENCODE_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// A mono Opus encoder for speech (libopus's VOIP application), 20 ms frames at a fixed rate.
pub struct CarrierOpusEncoder {
    encoder: Encoder,
    rate: u32,
}

impl std::fmt::Debug for CarrierOpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierOpusEncoder").field("rate", &self.rate).finish()
    }
}

impl CarrierOpusEncoder {
    /// An encoder of mono audio at `rate` Hz (one of [`ENCODE_RATES`]). The bit rate is fixed
    /// by the band: 16 kbit/s narrowband, 24 kbit/s wideband, 32 kbit/s above (what libopus
    /// needs for transparent speech at each), variable.
    pub fn new(rate: u32) -> Result<Self, OpusError> {
        if !ENCODE_RATES.contains(&rate) {
            return Err(OpusError::Decoder);
        }
        let mut encoder =
            Encoder::new(sample_rate(rate).ok_or(OpusError::Decoder)?, Channels::Mono, Application::Voip)
                .map_err(|_| OpusError::Decoder)?;
        let bits = match rate {
            8_000 => 16_000,
            16_000 => 24_000,
            _ => 32_000,
        };
        encoder.set_bitrate(Bitrate::BitsPerSecond(bits)).map_err(|_| OpusError::Decoder)?;
        Ok(Self { encoder, rate })
    }

    /// The rate it encodes from, Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples in one frame.
    pub fn frame_samples(&self) -> usize {
        (self.rate / 1000 * FRAME_MS) as usize
    }

    /// Encodes exactly one frame (`pcm` is [`Self::frame_samples`] long) into one packet in
    /// `out` (at least [`MAX_PACKET_BYTES`] long); returns its length.
    pub fn encode(&mut self, pcm: &[i16], out: &mut [u8]) -> Result<usize, OpusError> {
        if pcm.len() != self.frame_samples() {
            return Err(OpusError::BadPacket);
        }
        self.encoder.encode(pcm, out).map_err(|_| OpusError::BadPacket)
    }
}

/// The rate to decode a carrier's Opus announced at `announced` Hz at, for an agent at
/// `agent_rate`: the lowest of 8, 16 and 24 kHz that keeps what both carry. Never 48 kHz:
/// telephone Opus carries speech, and a 20 ms frame at 24 kHz (480 samples) is the most the
/// reorder stage holds out of order.
pub fn inbound_decode_rate(announced: u32, agent_rate: u32) -> u32 {
    super::opus::decode_rate(announced, agent_rate).min(24_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_frame_is_one_packet_that_decodes_alone_to_20_ms() {
        for rate in ENCODE_RATES {
            let mut enc = CarrierOpusEncoder::new(rate).unwrap();
            let n = enc.frame_samples();
            let pcm: Vec<i16> = (0..n)
                .map(|k| {
                    (6_000.0 * (2.0 * std::f64::consts::PI * 440.0 * k as f64 / f64::from(rate)).sin()) as i16
                })
                .collect();
            let mut packet = [0u8; MAX_PACKET_BYTES];
            let len = enc.encode(&pcm, &mut packet).unwrap();
            assert!(len > 1 && len < 400, "{rate}: {len}");
            let mut dec = OpusDecoder::new(rate).unwrap();
            let mut out = vec![0i16; dec.max_samples()];
            assert_eq!(dec.decode(&packet[..len], &mut out), Ok(n), "{rate}");
            assert_eq!(enc.encode(&pcm[1..], &mut packet), Err(OpusError::BadPacket));
        }
        assert!(CarrierOpusEncoder::new(12_000).is_err());
    }

    #[test]
    fn inbound_rate_keeps_the_narrower_side_and_stays_at_most_24k() {
        assert_eq!(inbound_decode_rate(48_000, 16_000), 16_000);
        assert_eq!(inbound_decode_rate(16_000, 48_000), 16_000);
        assert_eq!(inbound_decode_rate(48_000, 48_000), 24_000);
        assert_eq!(inbound_decode_rate(8_000, 24_000), 8_000);
        assert_eq!(inbound_decode_rate(12_000, 16_000), 16_000);
    }
}
