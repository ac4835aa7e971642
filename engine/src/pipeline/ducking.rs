//! Ducking: the agent's voice is turned down the moment the caller may be interrupting, before
//! the interruption is confirmed.
//!
//! Barge-in waits for [`BargeInConfig::min_speech_ms`] of voiced caller speech (300 ms by
//! default) so that a backchannel ("mm-hm"), a cough or typing never cuts the agent off; the
//! `clear` then stops the carrier at once. Until then the caller hears the bot talk over them.
//! Ducking closes that gap without giving up the confirmation: as soon as the speech detector
//! confirms caller speech with voiced frames in it (about 120 ms after its onset) over agent
//! audio, every frame cut from the outbound queue from then on is attenuated by
//! [`BargeInConfig::duck_db`]. The carrier holds only the pacer's lead (100 ms by default) of
//! what was sent before, so the bot's voice drops at the carrier within the lead. If the speech
//! is confirmed as an interruption the barge-in clears as before; if its voicing stops short of
//! the minimum (a backchannel) the level ramps back up and nothing is cleared.
//!
//! Why gain at cut time rather than rewriting the queue: the queue keeps the host's audio
//! untouched, so restoring is only a gain ramp back, and ducking costs nothing (not even a pass
//! over the frame) while the gain is at unity. Why a ramp: a gain step is a click; 10 ms is
//! short enough that the first ducked frame is mostly down already, long enough not to click.
//! Why 18 dB by default: 10 dB is where a level change reads as "half as loud"; 18 dB leaves
//! the bot clearly in the background while a caller who only said "mm-hm" still hears that it
//! went on (and the restore is not a jump back from silence).
//!
//! [`BargeInConfig::min_speech_ms`]: crate::config::BargeInConfig::min_speech_ms
//! [`BargeInConfig::duck_db`]: crate::config::BargeInConfig::duck_db

use crate::codec::{G711, decode_l16, encode_l16};
use crate::protocol::AudioEncoding;

/// Gain 1.0 in the Q15 fixed point of [`Ducker`].
const UNITY: u32 = 1 << 15;

/// Length of the gain ramp down or back up, ms.
pub const RAMP_MS: u32 = 10;

/// The gain stage applied to each outbound frame as it is cut. A few words of state.
#[derive(Debug, Clone, Copy)]
pub struct Ducker {
    /// Ducked gain, Q15; [`UNITY`] when ducking is off.
    floor: u32,
    /// Current gain, Q15.
    gain: u32,
    /// Where the gain is heading: `floor` while ducked, [`UNITY`] otherwise.
    target: u32,
}

impl Ducker {
    /// A ducker attenuating by `duck_db` dB (0: off).
    pub fn new(duck_db: u8) -> Self {
        let floor = (f64::from(UNITY) * 10f64.powf(-f64::from(duck_db) / 20.0)).round() as u32;
        Self { floor: floor.min(UNITY), gain: UNITY, target: UNITY }
    }

    /// Ramps down, from the next frame cut.
    pub fn duck(&mut self) {
        self.target = self.floor;
    }

    /// Ramps back up to full level, from the next frame cut.
    pub fn restore(&mut self) {
        self.target = UNITY;
    }

    /// At full level at once if the ramp back up is under way (a new reply starts: the ramp was
    /// for the audio before it, and no frame of that was left to carry it).
    pub fn settle(&mut self) {
        if self.target == UNITY {
            self.gain = UNITY;
        }
    }

    /// Back to full level at once (the audio that follows is new: after a clear).
    pub fn reset(&mut self) {
        self.gain = UNITY;
        self.target = UNITY;
    }

    /// Applies the gain to `frame`, in the carrier's `encoding` at `samples_per_ms`, ramping
    /// towards the target. Leaves the bytes untouched at unity (no pass over them).
    pub fn apply(&mut self, frame: &mut [u8], encoding: AudioEncoding, samples_per_ms: u32) {
        if self.gain == UNITY && self.target == UNITY {
            return;
        }
        let ramp = (RAMP_MS * samples_per_ms).max(1);
        let step = ((UNITY - self.floor) / ramp).max(1);
        let bytes = encoding.bytes_per_sample();
        let mut pcm = [0i16; 160];
        for part in frame.chunks_mut(pcm.len() * bytes) {
            let n = match encoding {
                AudioEncoding::Mulaw => G711::Mulaw.decode(part, &mut pcm),
                AudioEncoding::Alaw => G711::Alaw.decode(part, &mut pcm),
                // L16, and the coded encodings, queued as 16-bit PCM and coded after the cut.
                _ => decode_l16(part, &mut pcm),
            };
            for s in &mut pcm[..n] {
                self.gain = if self.gain > self.target {
                    self.gain.saturating_sub(step).max(self.target)
                } else {
                    (self.gain + step).min(self.target)
                };
                *s = ((i32::from(*s) * self.gain as i32) >> 15) as i16;
            }
            match encoding {
                AudioEncoding::Mulaw => G711::Mulaw.encode(&pcm[..n], part),
                AudioEncoding::Alaw => G711::Alaw.encode(&pcm[..n], part),
                _ => encode_l16(&pcm[..n], part),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_ulaw, encode_ulaw};

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    fn tone(n: usize) -> Vec<i16> {
        (0..n).map(|i| (8_000.0 * (i as f64 * 0.3).sin()) as i16).collect()
    }

    #[test]
    fn a_restore_with_no_frame_left_to_ramp_is_at_full_level_by_the_next_reply() {
        let pcm = tone(160);
        let mut d = Ducker::new(18);
        d.duck();
        let mut bytes = vec![0u8; 320];
        for _ in 0..3 {
            encode_l16(&pcm, &mut bytes);
            d.apply(&mut bytes, AudioEncoding::L16, 8);
        }
        assert_eq!(d.gain, d.floor);
        // Let go as the reply ends: no frame carries the ramp. The next reply's first frame is
        // untouched once settled; a duck still wanted is kept.
        d.restore();
        d.settle();
        encode_l16(&pcm, &mut bytes);
        let orig = bytes.clone();
        d.apply(&mut bytes, AudioEncoding::L16, 8);
        assert_eq!(bytes, orig);
        d.duck();
        d.settle();
        d.apply(&mut bytes, AudioEncoding::L16, 8);
        assert_ne!(bytes, orig);
    }

    #[test]
    fn off_and_at_unity_leaves_the_bytes_alone() {
        let pcm = tone(160);
        let mut bytes = vec![0u8; 320];
        encode_l16(&pcm, &mut bytes);
        let orig = bytes.clone();
        let mut d = Ducker::new(0);
        assert_eq!(d.floor, UNITY);
        d.duck();
        d.apply(&mut bytes, AudioEncoding::L16, 8);
        assert_eq!(bytes, orig);
        let mut d = Ducker::new(18);
        d.apply(&mut bytes, AudioEncoding::L16, 8);
        assert_eq!(bytes, orig);
    }

    #[test]
    fn ducks_by_the_set_level_after_the_ramp_and_restores_without_a_step() {
        let pcm = tone(480);
        let mut codes = vec![0u8; 480];
        encode_ulaw(&pcm, &mut codes);
        let mut ref_pcm = vec![0i16; 480];
        decode_ulaw(&codes, &mut ref_pcm);
        let mut d = Ducker::new(18);
        d.duck();
        for frame in codes.chunks_mut(160) {
            d.apply(frame, AudioEncoding::Mulaw, 8);
        }
        let mut out = vec![0i16; 480];
        decode_ulaw(&codes, &mut out);
        // After the 10 ms ramp (80 samples), 18 dB down (µ-law's quantisation aside).
        let db = 20.0 * (rms(&out[160..]) / rms(&ref_pcm[160..])).log10();
        assert!((db + 18.0).abs() < 0.5, "{db} dB");
        // The ramp: no sample-to-sample gain jump larger than one ramp step.
        let gains: Vec<f64> = out[..80]
            .iter()
            .zip(&ref_pcm[..80])
            .filter(|(_, r)| r.abs() > 4_000)
            .map(|(&o, &r)| f64::from(o) / f64::from(r))
            .collect();
        assert!(gains.windows(2).all(|w| w[1] <= w[0] + 0.03), "{gains:?}");
        // Back up over the ramp, then at full level again.
        d.restore();
        let mut bytes = vec![0u8; 320];
        encode_l16(&pcm[..160], &mut bytes);
        d.apply(&mut bytes, AudioEncoding::L16, 8);
        let mut back = vec![0i16; 160];
        decode_l16(&bytes, &mut back);
        assert_eq!(&back[80..], &pcm[80..160]);
        assert!(rms(&back[..80]) < rms(&pcm[..80]));
        assert_eq!(d.gain, UNITY);
    }
}
