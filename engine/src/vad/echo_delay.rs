//! Echo delay estimator: how far behind the agent's played audio its echo comes on the caller's
//! line, from the two level envelopes (one number per 20 ms slot).
//!
//! Per caller frame that may hold echo, the caller's level (dB, floored a little above the line's
//! noise so that noise does not count) less its running mean is correlated with the played
//! audio's level at each lag 0..[`LAGS`] slots behind it, less that window's mean (each a
//! high-passed envelope: syllables and pauses). The sums leak with a time constant of about a
//! second, so the estimate follows a change of the path (or of the playout model, once the
//! carrier's marks correct it). The echo's delay is the lag of the highest normalised
//! correlation, refined between slots by a parabola through it and its neighbours.
//!
//! Why envelopes and not samples: the echo is µ-law re-quantised, possibly clipped and spread
//! by a tail, and the playout model only places the agent's audio to a few ms; the levels of
//! 20 ms slots survive all of that, and cost [`LAGS`] multiply-adds per frame. Why a
//! confidence: early in a prompt, or on a line without echo, the highest lag is chance (an
//! estimate locked onto a wrong lag lets the echo through); the gate then keeps predicting from
//! its whole window.
//!
//! State: two arrays of [`LAGS`] 16-bit sums and a few numbers (140 bytes); no sample history
//! (the levels come from the gate's reference ring).

use crate::audio::to_i16;

/// Lags searched, in 20 ms slots (0-620 ms): the gate's window.
pub(crate) const LAGS: usize = 32;
/// Leak of the correlation sums per frame (time constant 50 frames, 1 s).
const LEAK: f32 = 0.98;
/// Leak of the caller level's running mean (time constant 16 frames, about the window's span).
const MEAN_LEAK: f32 = 0.94;
/// The caller's level counts only this far above the line's noise, dB.
const ABOVE_NOISE_DB: f32 = 3.0;
/// Deviations from the means are clamped to this, dB: a loud caller or a long pause does not
/// outweigh the rest.
const CLAMP_DB: f32 = 20.0;
/// The played audio's silent slots count this far below the window's loudest, dB.
const REFERENCE_RANGE_DB: f32 = 30.0;
/// Frames of correlation before an estimate is given (0.8 s): fewer lock onto a wrong lag now
/// and then at the start of a prompt (measured: a barge-in on the echo at ERL 6 dB).
const MIN_FRAMES: u16 = 40;
/// Normalised correlation the peak must reach to be trusted. Low, because in 5 dB noise a 10 dB
/// echo's envelope correlates at only 0.3-0.5 with the reference's, yet at the right lag.
const MIN_CONFIDENCE: f32 = 0.25;

/// Units of the per-lag sums: a product of two clamped deviations is at most 400 and the leak
/// holds a sum under 400 / (1 - LEAK) = 20,000, so these scales fill an `i16` and a `u16`
/// (half the state of `f32`s; the peak's lag does not change, measured on the echo set).
const CORR_SCALE: f32 = 1.6;
const ENERGY_SCALE: f32 = 3.2;

/// `v` leaked once, in integer units: rounded, but never stuck above zero. (Rounded half away
/// from zero by hand, as [`to_i16`] does: `f32::round` is a libm call on baseline x86-64, three
/// per lag and frame.)
fn leak_units(v: f32) -> f32 {
    let l = (v * LEAK + 0.5f32.copysign(v)) as i32 as f32;
    if l == v && v != 0.0 { v - v.signum() } else { l }
}

/// The estimator's state; see the module docs. Fixed size, never allocates.
#[derive(Debug, Clone)]
pub(crate) struct EchoDelay {
    /// Leaky sums of caller deviation × reference deviation, per lag ([`CORR_SCALE`] units).
    corr: [i16; LAGS],
    /// Leaky sums of the reference deviation squared, per lag ([`ENERGY_SCALE`] units).
    ref_energy: [u16; LAGS],
    /// Leaky sum of the caller deviation squared.
    caller_energy: f32,
    /// Running mean of the caller's (floored) level, dB; meaningless before the first frame.
    caller_mean: f32,
    /// Frames correlated (saturating).
    frames: u16,
}

/// A delay estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Estimate {
    /// The lag of the peak, slots.
    pub(crate) lag: u64,
    /// The delay refined between slots, in slots (fractional).
    pub(crate) slots: f32,
    /// Normalised correlation at the peak (0-1).
    pub(crate) confidence: f32,
}

impl EchoDelay {
    pub(crate) fn new() -> Self {
        Self { corr: [0; LAGS], ref_energy: [0; LAGS], caller_energy: 0.0, caller_mean: 0.0, frames: 0 }
    }

    /// Correlates one caller frame: its level `caller_db` over the line's noise `noise_db`
    /// (both the frame's total, dB) against `levels[lag]`, the played audio's level `lag` slots
    /// behind it (dB, 0 for silence).
    pub(crate) fn update(&mut self, caller_db: f32, noise_db: f32, levels: &[u8; LAGS]) {
        let loudest = f32::from(*levels.iter().max().unwrap_or(&0));
        let floor = loudest - REFERENCE_RANGE_DB;
        let level = |l: u8| f32::from(l).max(floor);
        let mean = levels.iter().map(|&l| level(l)).sum::<f32>() / LAGS as f32;

        let caller = caller_db.max(noise_db + ABOVE_NOISE_DB);
        let caller_mean =
            if self.frames == 0 { caller } else { MEAN_LEAK * self.caller_mean + (1.0 - MEAN_LEAK) * caller };
        self.caller_mean = caller_mean;
        let x = (caller - caller_mean).clamp(-CLAMP_DB, CLAMP_DB);

        self.caller_energy = LEAK * self.caller_energy + x * x;
        for ((c, e), &l) in self.corr.iter_mut().zip(&mut self.ref_energy).zip(levels) {
            let r = (level(l) - mean).clamp(-CLAMP_DB, CLAMP_DB);
            let corr = leak_units(f32::from(*c)) + x * r * CORR_SCALE;
            *c = to_i16(corr);
            let energy = leak_units(f32::from(*e)) + r * r * ENERGY_SCALE;
            // Never negative; `as` saturates at the top.
            *e = (energy + 0.5) as u16;
        }
        self.frames = self.frames.saturating_add(1);
    }

    /// Normalised correlation at `lag`.
    fn normalised(&self, lag: usize) -> f32 {
        let d = (f32::from(self.ref_energy[lag]) / ENERGY_SCALE * self.caller_energy).sqrt();
        if d > 0.0 { f32::from(self.corr[lag]) / CORR_SCALE / d } else { 0.0 }
    }

    /// The peak of the correlation, trusted or not (`None` before any frame).
    pub(crate) fn peak(&self) -> Option<Estimate> {
        if self.frames == 0 {
            return None;
        }
        let (lag, confidence) = (0..LAGS)
            .map(|l| (l, self.normalised(l)))
            .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
        // A parabola through the peak and its neighbours places it between slots.
        let mut slots = lag as f32;
        if lag > 0 && lag + 1 < LAGS {
            let (a, b, c) = (self.normalised(lag - 1), confidence, self.normalised(lag + 1));
            let denom = a - 2.0 * b + c;
            if denom < 0.0 {
                slots += (0.5 * (a - c) / denom).clamp(-0.5, 0.5);
            }
        }
        Some(Estimate { lag: lag as u64, slots, confidence })
    }

    /// The delay, if the correlation has settled on one.
    pub(crate) fn estimate(&self) -> Option<Estimate> {
        if self.frames < MIN_FRAMES {
            return None;
        }
        self.peak().filter(|e| e.confidence >= MIN_CONFIDENCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A speech-like level envelope: syllables of 100-300 ms at 55-75 dB, pauses of 40-200 ms.
    fn envelope(slots: usize, seed: u64) -> Vec<u8> {
        let mut rng = crate::test_rng::XorShift(seed);
        let mut next = |n: u64| rng.below(n);
        let mut v = Vec::new();
        while v.len() < slots {
            let level = 55 + next(20) as u8;
            let (on, off) = (5 + next(10) as usize, 2 + next(8) as usize);
            v.resize(v.len() + on, level);
            v.resize(v.len() + off, 0);
        }
        v.truncate(slots);
        v
    }

    /// The reference levels behind slot `s`.
    fn levels(reference: &[u8], s: usize) -> [u8; LAGS] {
        std::array::from_fn(|lag| s.checked_sub(lag).map_or(0, |t| reference[t]))
    }

    #[test]
    fn finds_the_lag_of_a_delayed_attenuated_envelope() {
        for (delay, seed) in [(1usize, 1u64), (5, 2), (12, 3), (20, 4), (28, 5)] {
            let reference = envelope(400, seed);
            let mut d = EchoDelay::new();
            let noise = 20.0;
            for s in 0..reference.len() {
                // The echo 10 dB down, on a line at 20 dB.
                let caller = s.checked_sub(delay).map_or(noise, |t| {
                    if reference[t] == 0 { noise } else { f32::from(reference[t]) - 10.0 }
                });
                d.update(caller, noise, &levels(&reference, s));
            }
            let e = d.estimate().expect("an estimate");
            assert_eq!(e.lag, delay as u64, "{e:?}");
            assert!((e.slots - delay as f32).abs() <= 0.5, "{e:?}");
            assert!(e.confidence > 0.8, "{e:?}");
        }
    }

    #[test]
    fn no_echo_gives_no_estimate_or_a_chance_one() {
        // Another talker on the line: the peak is chance, well below an echo's (the gate's
        // threshold is low, see `MIN_CONFIDENCE`: a chance lock only narrows its window on a
        // line without echo).
        let reference = envelope(400, 9);
        let caller = envelope(400, 10);
        let mut d = EchoDelay::new();
        for (s, &c) in caller.iter().enumerate() {
            d.update(f32::from(c).max(20.0), 20.0, &levels(&reference, s));
        }
        assert!(d.peak().unwrap().confidence < 0.4, "{:?}", d.peak());
        // Nothing at all on the line: nothing to correlate.
        let mut d = EchoDelay::new();
        for s in 0..reference.len() {
            d.update(20.0, 20.0, &levels(&reference, s));
        }
        assert_eq!(d.estimate(), None);
    }
}
