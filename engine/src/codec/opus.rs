//! Opus packets to mono PCM: libopus's decoder (through `audiopus`), for agent audio the host
//! plays encoded ([`crate::Session::play_encoded`]).
//!
//! libopus decodes any Opus packet at 8, 12, 16, 24 or 48 kHz whatever rate it was encoded at,
//! and a mono decoder downmixes a stereo stream itself, so one decoder per stream, at the rate the
//! play path wants, does both without a resampling or mixing stage of ours.

use audiopus::coder::Decoder;
use audiopus::{Channels, SampleRate};

/// The rates libopus decodes at, Hz.
pub const OPUS_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];

/// The rates a stream is decoded at: those of [`OPUS_RATES`] that `play` also takes (12 kHz is
/// not one), ascending.
const DECODE_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// The longest Opus packet plays 120 ms.
pub const MAX_PACKET_MS: u32 = 120;

/// Samples one packet decodes to at most, at 48 kHz (the largest buffer a decoder needs).
pub const MAX_PACKET_SAMPLES: usize = (48 * MAX_PACKET_MS) as usize;

/// Which encoding [`crate::Session::play_encoded`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodedAudio {
    /// An Ogg Opus stream (RFC 7845: `OpusHead`, `OpusTags`, then audio), fed in chunks of any
    /// size; pages may be split anywhere. One or two channels (downmixed to mono), any input rate.
    OggOpus,
    /// One raw Opus packet per call (RFC 6716), from a stream encoded at `rate` Hz (8000, 12000,
    /// 16000, 24000 or 48000: the encoder's input rate, which bounds the bandwidth it carries).
    Opus {
        /// The stream's encoding rate, Hz.
        rate: u32,
    },
}

/// The rate to decode a stream encoded at `source` Hz (0: not known) at, for a play path that
/// wants `target` Hz: the lowest decoding rate that loses nothing of either, which is `target`
/// itself (no resampling left) when `target` is 8, 16, 24 or 48 kHz and the source carries that
/// much.
pub fn decode_rate(source: u32, target: u32) -> u32 {
    let want = if source == 0 { target } else { source.min(target) };
    DECODE_RATES.into_iter().find(|&r| r >= want).unwrap_or(48_000)
}

/// libopus's name for one of [`OPUS_RATES`].
pub fn sample_rate(rate: u32) -> Option<SampleRate> {
    Some(match rate {
        8_000 => SampleRate::Hz8000,
        12_000 => SampleRate::Hz12000,
        16_000 => SampleRate::Hz16000,
        24_000 => SampleRate::Hz24000,
        48_000 => SampleRate::Hz48000,
        _ => return None,
    })
}

/// Why a packet did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpusError {
    /// libopus rejected the packet (empty, malformed, or longer than 120 ms).
    BadPacket,
    /// libopus refused to create a decoder (out of memory).
    Decoder,
}

/// One stream's decoder, mono, at a fixed rate.
pub struct OpusDecoder {
    decoder: Decoder,
    rate: u32,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").field("rate", &self.rate).finish()
    }
}

impl OpusDecoder {
    /// A decoder producing mono at `rate` Hz (one of [`OPUS_RATES`]).
    pub fn new(rate: u32) -> Result<Self, OpusError> {
        let sample_rate = sample_rate(rate).ok_or(OpusError::Decoder)?;
        let decoder = Decoder::new(sample_rate, Channels::Mono).map_err(|_| OpusError::Decoder)?;
        Ok(Self { decoder, rate })
    }

    /// The rate it decodes at, Hz.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Samples one packet decodes to at most (120 ms at this rate).
    pub fn max_samples(&self) -> usize {
        (self.rate / 1000 * MAX_PACKET_MS) as usize
    }

    /// Applies a gain, in 1/256 dB (the `OpusHead` output gain).
    pub fn set_gain(&mut self, gain_q8: i16) -> Result<(), OpusError> {
        self.decoder.set_gain(i32::from(gain_q8)).map_err(|_| OpusError::BadPacket)
    }

    /// Decodes one packet into `out` (at least [`Self::max_samples`] long); returns the samples
    /// written.
    pub fn decode(&mut self, packet: &[u8], out: &mut [i16]) -> Result<usize, OpusError> {
        if packet.is_empty() {
            // A zero-length packet is not an Opus packet (RFC 6716, 3); libopus would conceal
            // a loss instead.
            return Err(OpusError::BadPacket);
        }
        self.decoder.decode(Some(packet), out, false).map_err(|_| OpusError::BadPacket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rate_is_the_lowest_that_keeps_what_both_sides_carry() {
        assert_eq!(decode_rate(48_000, 8_000), 8_000);
        assert_eq!(decode_rate(0, 8_000), 8_000);
        assert_eq!(decode_rate(8_000, 24_000), 8_000);
        assert_eq!(decode_rate(12_000, 24_000), 16_000);
        assert_eq!(decode_rate(44_100, 48_000), 48_000);
        assert_eq!(decode_rate(0, 22_050), 24_000);
        assert_eq!(decode_rate(96_000, 96_000), 48_000);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = OpusDecoder::new(8_000).unwrap();
        let mut out = vec![0i16; d.max_samples()];
        assert_eq!(d.decode(&[], &mut out), Err(OpusError::BadPacket));
        // A code-3 packet (TOC 0x03) announcing 63 frames of 20 ms (over 120 ms).
        assert_eq!(d.decode(&[0x1B, 0x3F, 0, 0], &mut out), Err(OpusError::BadPacket));
    }
}
