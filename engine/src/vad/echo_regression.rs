//! Echo regression: how loud the agent's echo can be on a noisy line, from averages rather than
//! single frames.
//!
//! The echo gate's other estimates work frame by frame: a frame at the line's noise bounds the
//! echo by what stands above that noise, and a single frame of noise can stand a few dB above its
//! floor. So in noise they cannot tell an echo a little under the noise from none, and hold the
//! echo possible up to about the noise plus their slack: soft speech over the agent is masked
//! (in 5 dB pink noise without any echo, the barge-in set's recall was 0.708 with the gate on
//! against 0.958 off; with this regression, 0.875).
//!
//! Averaged over seconds, an echo shows where a frame cannot: the caller's power over the noise
//! rises with the reference's power at the echo's lag. Per lag this regresses the caller's
//! excess power over the line's noise (`e`) on the reference's power there (`r`), both in units
//! of the noise, with exponentially weighted means, variances and covariances, and takes the
//! slope plus [`STANDARD_ERRORS`] of its standard error as the most the echo's power gain at that
//! lag can be. An echo at gain `g` adds `g·r` to `e` (and its tail, at neighbouring lags that
//! correlate with this one, adds more), the line's noise adds nothing correlated with `r`, and the
//! caller's speech adds nothing correlated on average: the slope estimates `g`, and the margin
//! covers its spread. The intercept takes up the noise floor's bias (the floor sits under the
//! noise's mean, so `e` averages above zero without any echo).
//!
//! The caller talking over the agent would widen the bound within a few frames (their speech is
//! far above the noise, and the standard error grows with the residual): each frame's `e` is
//! clipped at the best-fitting lag's prediction plus [`CLIP_SPREADS`] spreads (the mean absolute
//! deviation from that prediction, itself learnt from the clipped values, so it grows by at most
//! a few percent a frame). An echo is predicted by its lag and passes; speech is not and is
//! clipped. (Measured in the tests below, the caller talking 300 ms in every 4 s: without echo
//! the bound stays within 6 dB of the silent caller's; clipped at three residual standard
//! deviations instead, which grow with every clipped frame, it rose 16 dB.)
//!
//! The gate uses the bound only where it says the echo lies under the line's noise, and only
//! while its other estimates allow no echo far above the noise (see `echo_gate`): a linear fit
//! falls short of a strong echo (clipped, its tail spread over lags), and those estimates measure
//! a strong echo well.
//!
//! Cost per caller frame while the window holds reference audio: two passes over [`LAGS`]
//! lags (a division each), and for the lags the gate asks about a division and a square root
//! each. State: three `f32` per lag and a few numbers (400 bytes), inside the gate's allocation.

use super::echo_delay::LAGS;

/// Weight of each new frame in the means, variances and covariances: a time constant of 200
/// frames (4 s). The bound must average out the line's noise, whose frame energies scatter by a
/// few dB. (Measured: an early version at 2 s and three standard errors let no more
/// interruptions through in 5 dB pink noise than the gate without it.)
const ALPHA: f32 = 0.005;
/// Frames before any bound is given (0.8 s of agent audio in the window).
const MIN_FRAMES: u16 = 40;
/// Standard errors of the slope added to it for the bound.
const STANDARD_ERRORS: f32 = 2.0;
/// A frame's excess is clipped this many spreads above the best-fitting lag's prediction.
const CLIP_SPREADS: f32 = 3.0;
/// The spread (mean absolute deviation from the prediction) starts at the line's noise (a noise
/// frame's excess scatters by about half of it) and never falls under a tenth of it.
const START_SPREAD: f32 = 1.0;
const MIN_SPREAD: f32 = 0.1;
/// Weight of each frame in the spread: a time constant of 50 frames (1 s).
const SPREAD_ALPHA: f32 = 0.02;

/// The regression's state; see the module docs. Fixed size, never allocates.
#[derive(Debug, Clone)]
pub(crate) struct EchoRegression {
    /// Weighted mean of the reference's power per lag (units of the noise).
    mean_r: [f32; LAGS],
    /// Weighted variance of the reference's power per lag.
    var_r: [f32; LAGS],
    /// Weighted covariance of the caller's excess and the reference's power per lag.
    cov: [f32; LAGS],
    /// Weighted mean and variance of the caller's (clipped) excess.
    mean_e: f32,
    var_e: f32,
    /// Mean absolute deviation of the (clipped) excess from the prediction.
    spread: f32,
    /// Frames taken in (saturating).
    frames: u16,
}

impl EchoRegression {
    pub(crate) fn new() -> Self {
        Self {
            mean_r: [0.0; LAGS],
            var_r: [0.0; LAGS],
            cov: [0.0; LAGS],
            mean_e: 0.0,
            var_e: 0.0,
            spread: START_SPREAD,
            frames: 0,
        }
    }

    /// The slope of lag `lag` and the variance of its residual, if its reference varied.
    fn fit(&self, lag: usize) -> Option<(f32, f32)> {
        (self.var_r[lag] > 0.0).then(|| {
            let slope = self.cov[lag] / self.var_r[lag];
            (slope, (self.var_e - slope * self.cov[lag]).max(0.0))
        })
    }

    /// Takes in one caller frame: its power over the line's noise less one (`excess`: 0 for a
    /// frame at the noise floor) and the reference's power `reference[lag]` slots behind it, both
    /// in units of the line's noise.
    pub(crate) fn update(&mut self, excess: f32, reference: &[f32; LAGS]) {
        // The lag that explains the caller's excess best (least residual: the most variance
        // explained, cov² / var), and its prediction for this frame. (A plain loop first, so
        // that it vectorises.)
        let mut explained = [0.0f32; LAGS];
        for ((x, &c), &v) in explained.iter_mut().zip(&self.cov).zip(&self.var_r) {
            *x = if v > 0.0 { c * c / v } else { 0.0 };
        }
        let best = (0..LAGS).fold(0, |b, l| if explained[l] > explained[b] { l } else { b });
        let fit = self.fit(best).map_or(0.0, |(slope, _)| slope * (reference[best] - self.mean_r[best]));
        let predicted = self.mean_e + fit.max(0.0);
        let e = excess.min(predicted + CLIP_SPREADS * self.spread);
        // The spread learns from the clipped deviation only, so the caller talking raises it
        // by at most a few percent a frame.
        self.spread += SPREAD_ALPHA * ((e - predicted).abs() - self.spread);
        self.spread = self.spread.max(MIN_SPREAD);
        // Exact means over the first frames, then exponential weights.
        let a = ALPHA.max(1.0 / (f32::from(self.frames) + 1.0));
        let de = e - self.mean_e;
        self.mean_e += a * de;
        self.var_e = (1.0 - a) * (self.var_e + a * de * de);
        for (((m, v), c), &r) in self.mean_r.iter_mut().zip(&mut self.var_r).zip(&mut self.cov).zip(reference)
        {
            let dr = r - *m;
            *m += a * dr;
            *v = (1.0 - a) * (*v + a * dr * dr);
            *c = (1.0 - a) * (*c + a * de * dr);
        }
        self.frames = self.frames.saturating_add(1);
    }

    /// Whether some lag's slope stands `t` standard errors above zero: an echo the regression
    /// sees plainly.
    pub(crate) fn sees_echo(&self, t: f32) -> bool {
        let n = f32::from(self.frames).min(2.0 / ALPHA - 1.0);
        (0..LAGS).any(|lag| {
            self.fit(lag).is_some_and(|(slope, residual)| {
                slope > 0.0 && slope * slope * n * self.var_r[lag] > t * t * residual
            })
        })
    }

    /// The most the echo's power gain at `lag` can be (linear), once enough frames are in.
    pub(crate) fn gain(&self, lag: usize) -> Option<f32> {
        if self.frames < MIN_FRAMES {
            return None;
        }
        let (slope, residual) = self.fit(lag)?;
        // Effective frames of the weighted sums.
        let n = f32::from(self.frames).min(2.0 / ALPHA - 1.0);
        let standard_error = (residual / (n * self.var_r[lag])).sqrt();
        Some(slope.max(0.0) + STANDARD_ERRORS * standard_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    /// A speech-like reference power per slot, in units of the noise: syllables 12-24 dB over
    /// it, pauses of silence.
    fn reference(slots: usize, rng: &mut XorShift) -> Vec<f32> {
        let mut v = Vec::new();
        while v.len() < slots {
            let level = 10f32.powf((12.0 + rng.below(12) as f32) / 10.0);
            let (on, off) = (5 + rng.below(10) as usize, 2 + rng.below(8) as usize);
            for _ in 0..on {
                v.push(level * (0.5 + rng.below(100) as f32 / 100.0));
            }
            v.resize(v.len() + off, 0.0);
        }
        v.truncate(slots);
        v
    }

    /// Noise power of one frame relative to the floor: the floor sits under the mean, and frames
    /// scatter by about ±2 dB.
    fn noise(rng: &mut XorShift) -> f32 {
        10f32.powf((1.5 + (rng.below(400) as f32 / 100.0 - 2.0)) / 10.0)
    }

    fn lags(reference: &[f32], s: usize) -> [f32; LAGS] {
        std::array::from_fn(|lag| s.checked_sub(lag).map_or(0.0, |t| reference[t]))
    }

    /// 20 s of agent audio, with the echo at `gain` (power) `delay` slots behind (0: no echo),
    /// and `speech`: the caller talking (20 dB over the noise) for 300 ms every 2 s.
    fn run(gain: f32, delay: usize, speech: bool, seed: u64) -> EchoRegression {
        let mut rng = XorShift(seed);
        let reference = reference(1_000, &mut rng);
        let mut g = EchoRegression::new();
        for s in 0..reference.len() {
            let echo = s.checked_sub(delay).map_or(0.0, |t| gain * reference[t]);
            let talk = if speech && s % 200 < 15 { 100.0 } else { 0.0 };
            g.update(noise(&mut rng) + echo + talk - 1.0, &lags(&reference, s));
        }
        g
    }

    fn db(g: f32) -> f32 {
        10.0 * g.log10()
    }

    #[test]
    fn an_echo_is_bounded_from_above_at_its_lag() {
        // ERL 6-25 dB, at various lags, with and without the caller talking: the bound is at
        // least the echo's gain and not far over it.
        for (erl, delay, seed) in [(6.0, 3, 1), (10.0, 8, 2), (15.0, 14, 3), (25.0, 25, 4), (10.0, 30, 5)] {
            for speech in [false, true] {
                let gain = 10f32.powf(-erl / 10.0);
                let g = run(gain, delay, speech, seed);
                let bound = g.gain(delay).expect("a bound");
                assert!(bound >= gain, "ERL {erl} dB at lag {delay}: bound {:.1} dB", db(bound));
                assert!(db(bound) <= -erl + 6.0, "ERL {erl} dB: bound {:.1} dB, too loose", db(bound));
            }
        }
    }

    #[test]
    fn without_echo_the_bound_falls_far_under_the_noise() {
        // The reference's syllables 12-24 dB over the noise: an echo at the bound would lie
        // under the noise even on the loudest, at every lag, caller talking or not (the
        // per-frame estimates cannot bound it under the noise at all).
        for speech in [false, true] {
            let g = run(0.0, 0, speech, 7);
            for lag in 0..LAGS {
                let bound = db(g.gain(lag).expect("a bound"));
                assert!(bound <= -25.0, "lag {lag}, speech {speech}: bound {bound:.1} dB");
            }
        }
    }

    #[test]
    fn the_caller_talking_is_clipped_not_learnt() {
        // Unclipped, the caller's speech would widen the bound by its residual.
        let quiet = run(0.0, 0, false, 9);
        let talking = run(0.0, 0, true, 9);
        for lag in [0, 10, 31] {
            let (q, t) = (db(quiet.gain(lag).unwrap()), db(talking.gain(lag).unwrap()));
            assert!(t <= q + 6.0, "lag {lag}: {t:.1} dB with speech, {q:.1} dB without");
        }
    }

    #[test]
    fn an_echo_is_seen_and_the_caller_talking_is_not() {
        // An echo 15 dB down stands far more than five standard errors over zero at its lag;
        // without one, the caller talking over the agent does not make any lag's slope stand out.
        assert!(run(10f32.powf(-1.5), 12, true, 11).sees_echo(5.0));
        for seed in [11, 12, 13] {
            assert!(!run(0.0, 0, true, seed).sees_echo(5.0), "seed {seed}");
        }
    }

    #[test]
    fn no_bound_before_enough_frames() {
        let mut g = EchoRegression::new();
        for _ in 0..MIN_FRAMES - 1 {
            g.update(0.5, &[10.0; LAGS]);
        }
        assert_eq!(g.gain(0), None);
    }
}
