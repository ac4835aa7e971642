//! The adaptive filter that models the echo path: a partitioned-block frequency-domain NLMS
//! filter (overlap-save, one block per 20 ms frame) run as two paths.
//!
//! - **Partitioned blocks**: the path's 140 ms ([`SPAN`]) is split into [`PARTITIONS`] blocks of
//!   one frame each, so filtering and adapting cost a few FFTs of 320 points and one complex
//!   multiply-add per bin and partition, instead of 1,120 multiply-adds per sample in the time
//!   domain; and a frame comes out as soon as it comes in (no added delay).
//! - **Two paths**: a caller talking over the echo (double talk) drives any adaptive filter off
//!   the echo path, and a detector of it decides too late (its first 100 ms already did the
//!   harm). So one filter (`adapting`) adapts on every frame, fast, and another (`serving`),
//!   which makes the output, only takes its weights when it has been clearly better at removing
//!   what is on the line for a while: in double talk neither is better (the caller's speech is
//!   most of both errors), and the serving filter stays as it was. When the adapting filter has
//!   been thrown off by far more than the serving one, it starts again from the serving one.
//! - **Normalisation**: each bin's step is divided by the far end's power in that bin over the
//!   filter's span, so loud and quiet agent audio, low and high frequencies, converge alike.
//!
//! Why written here: the canceller must not allocate on the audio path. speexdsp's canceller
//! (the same kind of filter, one path) needs a system library and was thrown off by double talk
//! on this engine's test calls; WebRTC's AEC3 (the Rust port) allocates on every 10 ms frame.
//! This one allocates once, when it is made, and shares its FFT plans with every session.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealToComplex};

use crate::fft::shared_plans;

/// Samples per block: one 20 ms frame at 8 kHz.
pub(crate) const FRAME: usize = 160;
/// Blocks the filter spans.
pub(crate) const PARTITIONS: usize = 7;
/// Samples of echo path the filter spans (140 ms): a 100 ms tail, and room for the delay
/// estimate's error on both sides.
pub(crate) const SPAN: usize = PARTITIONS * FRAME;
/// The overlap-save transform: two blocks.
const FFT: usize = 2 * FRAME;
const BINS: usize = FFT / 2 + 1;

/// The adapting filter's largest step (normalised LMS; stable below 2). Fast, because the serving
/// path keeps its mistakes out of the output.
const STEP: f32 = 1.0;
/// Each bin's step shrinks as its error nears the error's floor (the line's own noise, which no
/// filter of the far end removes): the step is `STEP * (1 - floor / error power)`. The floor
/// follows the smallest error power, rising by this factor per frame (4.3 dB a second).
const FLOOR_RISE: f32 = 1.02;
/// ... but never below this share of it: a steady echo (hold music, a beep) keeps its error's
/// power as steady as the noise's, and the floor would stop the filter from ever learning it
/// (a 1 kHz tone: nothing removed without this share, 55 dB with it).
const MIN_STEP_SHARE: f32 = 0.1;
/// Weight of the newest frame in each bin's smoothed error power.
const ERROR_SMOOTHING: f32 = 0.5;
/// Added to each bin's far-end power before dividing by it: the power of a -60 dBFS far end
/// over the span, so that a silent far end does not divide by zero.
const REGULARISATION: f32 = FFT as f32 * PARTITIONS as f32 * 1_074.0;
/// ... and this share of the far end's usual power per bin: the bins where the agent's voice
/// has little energy hold mostly the line's noise, and normalised by their own small power they
/// would make the largest steps. Measured on the echo corpus: 0.2 halves the echo left, against
/// no such term, at ERL 6 and 10 dB.
const QUIET_BIN_FLOOR: f32 = 0.2;
/// The far end's usual power follows its mean bin power, while the agent speaks (above -40
/// dBFS), with this weight per frame (a time constant of about a second).
const LEVEL_SMOOTHING: f32 = 0.02;
/// Weight of the newest frame in the smoothed error energies (about 60 ms of memory).
const SMOOTHING: f32 = 0.3;
/// The adapting filter's error must be below this share of the serving one's (1 dB) for its
/// weights to serve.
const BETTER: f32 = 0.8;
/// ... and below this share of the line's energy (6 dB): it removes the echo, not the line's
/// noise. Where the echo lies under the noise, the adapting filter learns mostly the noise's
/// chance alignment with the agent's voice; with 3 dB here that served, and the echo the host
/// read grew by up to 2.7 dB in 5 dB pink noise. With 6 dB it never serves there, and nothing is added.
const REMOVES: f32 = 0.25;
/// The adapting filter starts again from the serving one when its error is this many times
/// the serving one's (6 dB).
const DIVERGED: f32 = 4.0;

type Spectrum = [Complex<f32>; BINS];
const ZERO: Spectrum = [Complex::new(0.0, 0.0); BINS];

/// The FFTs and their buffers.
struct Transform {
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    time: [f32; FFT],
    spectrum: Spectrum,
    scratch: Box<[Complex<f32>]>,
}

impl Transform {
    fn new() -> Self {
        let (forward, inverse) = shared_plans(FFT);
        let scratch = forward.get_scratch_len().max(inverse.get_scratch_len());
        Self {
            forward,
            inverse,
            time: [0.0; FFT],
            spectrum: ZERO,
            scratch: vec![Complex::default(); scratch].into_boxed_slice(),
        }
    }

    /// The spectrum of `self.time` into `self.spectrum` (`self.time` is used up).
    fn forward(&mut self) {
        // The lengths match the plan, the only way it fails.
        let _ = self.forward.process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch);
    }

    /// `self.spectrum` back to `self.time`, scaled to undo the forward transform.
    fn inverse(&mut self) {
        // A real signal's spectrum has real end bins; rounding may leave a trace, which the
        // inverse transform would refuse.
        self.spectrum[0].im = 0.0;
        self.spectrum[BINS - 1].im = 0.0;
        let _ = self.inverse.process_with_scratch(&mut self.spectrum, &mut self.time, &mut self.scratch);
        for t in &mut self.time {
            *t *= 1.0 / FFT as f32;
        }
    }
}

/// One echo path's model; see the module docs.
pub(crate) struct AdaptiveFilter {
    transform: Transform,
    /// The far end's last two blocks.
    far_time: [f32; FFT],
    /// The far end's block spectra, newest at `newest`, then older ones in ring order.
    far: [Spectrum; PARTITIONS],
    newest: usize,
    /// Per bin: the far end's power over the span, plus [`REGULARISATION`].
    far_power: [f32; BINS],
    /// Weights per partition (spectra of 160 taps, zero-padded).
    adapting: [Spectrum; PARTITIONS],
    serving: [Spectrum; PARTITIONS],
    /// The partition whose weights are next made a 160-tap filter again (the gradient constraint,
    /// one partition per block, in turn).
    constrain: usize,
    /// Smoothed energies: the serving and adapting filters' errors, and the line.
    serving_error: f32,
    adapting_error: f32,
    line: f32,
    /// Per bin: the adapting filter's error power, smoothed, and its floor (the line's noise).
    error_power: [f32; BINS],
    error_floor: [f32; BINS],
    /// The far end's usual mean bin power while the agent speaks (0 until it first does).
    far_level: f32,
    /// The block begun: the serving and adapting filters' estimates of its echo.
    serving_echo: [f32; FRAME],
    adapting_echo: [f32; FRAME],
}

impl AdaptiveFilter {
    /// A filter that has learnt nothing yet (allocates; not on the audio path).
    pub(crate) fn new() -> Self {
        Self {
            transform: Transform::new(),
            far_time: [0.0; FFT],
            far: [ZERO; PARTITIONS],
            newest: 0,
            far_power: [REGULARISATION; BINS],
            adapting: [ZERO; PARTITIONS],
            serving: [ZERO; PARTITIONS],
            constrain: 0,
            serving_error: 0.0,
            adapting_error: 0.0,
            line: 0.0,
            error_power: [0.0; BINS],
            error_floor: [f32::MAX; BINS],
            far_level: 0.0,
            serving_echo: [0.0; FRAME],
            adapting_echo: [0.0; FRAME],
        }
    }

    /// Takes the next block of far end (the agent's audio aligned with the line's block to come)
    /// into the history, without a line block to go with it.
    pub(crate) fn push_far(&mut self, far: &[i16; FRAME]) {
        self.far_time.copy_within(FRAME.., 0);
        for (t, &f) in self.far_time[FRAME..].iter_mut().zip(far) {
            *t = f32::from(f);
        }
        self.newest = (self.newest + PARTITIONS - 1) % PARTITIONS;
        self.transform.time = self.far_time;
        self.transform.forward();
        self.far[self.newest] = self.transform.spectrum;
        self.far_power = [REGULARISATION; BINS];
        for block in &self.far {
            for (p, x) in self.far_power.iter_mut().zip(block) {
                *p += x.norm_sqr();
            }
        }
    }

    /// The far end has been silent for longer than the span: forget it (so that nothing stale
    /// is filtered when it speaks again). The weights stay: the echo path has not changed.
    pub(crate) fn far_silent(&mut self) {
        self.far_time = [0.0; FFT];
        self.far = [ZERO; PARTITIONS];
        self.far_power = [REGULARISATION; BINS];
    }

    /// The far end is now fed `by` samples later (negative: earlier) than before: the echo path's
    /// taps move that much earlier, and what they had learnt is kept. Taps moved out of the span
    /// are lost. The far end's history is forgotten (the caller pushes it again, realigned).
    pub(crate) fn realign(&mut self, by: i64) {
        let Self { transform, adapting, serving, .. } = self;
        shift_taps(transform, adapting, -by);
        shift_taps(transform, serving, -by);
        self.far_silent();
    }

    /// Starts the line's next block: takes its far end (the agent's audio aligned with it) and
    /// estimates the block's echo, which [`Self::echo`] then gives sample by sample.
    pub(crate) fn begin(&mut self, far: &[i16; FRAME]) {
        self.push_far(far);
        self.serving_echo = estimate(&mut self.transform, &self.far, self.newest, &self.serving);
        self.adapting_echo = estimate(&mut self.transform, &self.far, self.newest, &self.adapting);
    }

    /// The echo the serving filter estimates for the block begun, per sample: what the line
    /// loses.
    pub(crate) fn echo(&self) -> &[f32; FRAME] {
        &self.serving_echo
    }

    /// Ends the block begun with the line it carried: both paths' errors, one step of the
    /// adapting filter, and which weights serve from the next block on.
    pub(crate) fn end(&mut self, line: &[i16; FRAME]) {
        let line: [f32; FRAME] = std::array::from_fn(|n| f32::from(line[n]));
        let serving: [f32; FRAME] = std::array::from_fn(|n| line[n] - self.serving_echo[n]);
        let adapting: [f32; FRAME] = std::array::from_fn(|n| line[n] - self.adapting_echo[n]);
        let energy = |x: &[f32; FRAME]| x.iter().map(|v| v * v).sum::<f32>();
        let smooth = |s: &mut f32, v: f32| *s += SMOOTHING * (v - *s);
        smooth(&mut self.serving_error, energy(&serving));
        smooth(&mut self.adapting_error, energy(&adapting));
        smooth(&mut self.line, energy(&line));
        self.adapt(&adapting);
        if self.adapting_error < BETTER * self.serving_error && self.adapting_error < REMOVES * self.line {
            self.serving = self.adapting;
            self.serving_error = self.adapting_error;
        } else if self.adapting_error > DIVERGED * self.serving_error || !self.adapting_error.is_finite() {
            // (A non-finite error, which no input has produced, would otherwise stop adapting
            // for the rest of the call.)
            self.adapting = self.serving;
            self.adapting_error = self.serving_error;
        }
    }

    /// One normalised LMS step of the adapting filter on its error `error`.
    fn adapt(&mut self, error: &[f32; FRAME]) {
        self.transform.time[..FRAME].fill(0.0);
        self.transform.time[FRAME..].copy_from_slice(error);
        self.transform.forward();
        let mean = self.far_power.iter().sum::<f32>() / BINS as f32;
        if mean > 100.0 * REGULARISATION {
            self.far_level += LEVEL_SMOOTHING * (mean - self.far_level);
        }
        let quiet_bin = QUIET_BIN_FLOOR * self.far_level;
        let gain: Spectrum = std::array::from_fn(|k| {
            let e = self.transform.spectrum[k];
            let power = &mut self.error_power[k];
            *power += ERROR_SMOOTHING * (e.norm_sqr() - *power);
            let floor = &mut self.error_floor[k];
            *floor = (*floor * FLOOR_RISE).min(*power).max(1.0);
            let step = STEP * (1.0 - *floor / power.max(1.0)).max(MIN_STEP_SHARE);
            e * (step / (self.far_power[k] + quiet_bin))
        });
        for (p, w) in self.adapting.iter_mut().enumerate() {
            let x = &self.far[(self.newest + p) % PARTITIONS];
            for ((w, x), g) in w.iter_mut().zip(x).zip(&gain) {
                *w += x.conj() * g;
            }
        }
        // The update above lets each partition's taps spill into the block after it (circular
        // convolution); one partition per block is cut back to its 160 taps, in turn (as
        // speexdsp's MDF does: constraining all seven every block costs 12 more FFTs and
        // measured no better).
        let c = self.constrain;
        self.constrain = (c + 1) % PARTITIONS;
        self.transform.spectrum = self.adapting[c];
        self.transform.inverse();
        self.transform.time[FRAME..].fill(0.0);
        self.transform.forward();
        self.adapting[c] = self.transform.spectrum;
    }
}

/// `weights`' estimate of the echo on the newest block, the far end's block spectra being `far`
/// (newest at `newest`).
fn estimate(
    transform: &mut Transform,
    far: &[Spectrum; PARTITIONS],
    newest: usize,
    weights: &[Spectrum; PARTITIONS],
) -> [f32; FRAME] {
    transform.spectrum = ZERO;
    for (p, w) in weights.iter().enumerate() {
        let x = &far[(newest + p) % PARTITIONS];
        for ((y, w), x) in transform.spectrum.iter_mut().zip(w).zip(x) {
            *y += w * x;
        }
    }
    transform.inverse();
    std::array::from_fn(|n| transform.time[FRAME + n])
}

/// Moves the filter `weights` stands for `by` taps later (negative: earlier) in the span.
fn shift_taps(transform: &mut Transform, weights: &mut [Spectrum; PARTITIONS], by: i64) {
    let mut taps = [0.0f32; SPAN];
    for (w, t) in weights.iter().zip(taps.chunks_exact_mut(FRAME)) {
        transform.spectrum = *w;
        transform.inverse();
        // The first half: the partition's taps (the second holds only what the gradient
        // constraint would cut).
        t.copy_from_slice(&transform.time[..FRAME]);
    }
    for (w, p) in weights.iter_mut().zip(0..) {
        transform.time = [0.0; FFT];
        for (n, t) in transform.time[..FRAME].iter_mut().enumerate() {
            let from = (p * FRAME + n) as i64 - by;
            *t = usize::try_from(from).ok().and_then(|f| taps.get(f)).copied().unwrap_or(0.0);
        }
        transform.forward();
        *w = transform.spectrum;
    }
}
