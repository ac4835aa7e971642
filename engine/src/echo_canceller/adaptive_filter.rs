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
//! - **Cost**: spectra are [`Bins`] (see [`super::transform`]) and every per-bin loop is written
//!   lane by lane, so the compiler vectorises it; [`AdaptiveFilter::begin`] and
//!   [`AdaptiveFilter::end`] run in the AVX2 build where the CPU has it ([`Kernel`]), with the
//!   same results.
//!
//! Why written here: the canceller must not allocate on the audio path. speexdsp's canceller
//! (the same kind of filter, one path) needs a system library and was thrown off by double talk
//! on this engine's test calls; WebRTC's AEC3 (the Rust port) allocates on every 10 ms frame.
//! This one allocates once, when it is made, and shares its FFT plans with every session.

use super::transform::{BINS, Bins, FFT, PADDED, SCALE, SILENT, Transform};
use crate::simd::Kernel;

/// Samples per block: one 20 ms frame at 8 kHz.
pub(crate) const FRAME: usize = 160;
/// Blocks the filter spans.
pub(crate) const PARTITIONS: usize = 7;
/// Samples of echo path the filter spans (140 ms): a 100 ms tail, and room for the delay
/// estimate's error on both sides.
pub(crate) const SPAN: usize = PARTITIONS * FRAME;
// Overlap-save: each transform holds two blocks.
const _: () = assert!(FFT == 2 * FRAME);

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
/// The serving filter is dropped (the line passes unfiltered) when its output carries this many
/// times the line's energy (6 dB): it takes out an echo that is no longer there (the caller
/// left the speakerphone, or their handset's canceller settled), so it adds the agent's voice,
/// inverted (about 40 dB over the line in the unit test). The adapting filter, which learns
/// that there is no echo, cannot take over by the rule above, since removing nothing it never
/// removes [`REMOVES`] of the line. With a correct model the output is the caller's speech and
/// the line's noise, less than the line. (2 dB dropped good models in 5 dB pink noise: the echo
/// removed there fell from 1.3 to 0.3 dB; 6 dB changes no figure of the echo corpus.)
const ADDS: f32 = 4.0;

/// One echo path's model; see the module docs.
pub(crate) struct AdaptiveFilter {
    /// The build of the loops below this CPU runs.
    kernel: Kernel,
    transform: Transform,
    /// The far end's last two blocks.
    far_time: [f32; FFT],
    /// The far end's block spectra, newest at `newest`, then older ones in ring order.
    far: [Bins; PARTITIONS],
    newest: usize,
    /// Per bin: the far end's power over the span, plus [`REGULARISATION`].
    far_power: [f32; PADDED],
    /// Weights per partition (spectra of 160 taps, zero-padded).
    adapting: [Bins; PARTITIONS],
    serving: [Bins; PARTITIONS],
    /// The partition whose weights are next made a 160-tap filter again (the gradient constraint,
    /// one partition per block, in turn).
    constrain: usize,
    /// Smoothed energies: the serving and adapting filters' errors, and the line.
    serving_error: f32,
    adapting_error: f32,
    line: f32,
    /// Per bin: the adapting filter's error power, smoothed, and its floor (the line's noise).
    error_power: [f32; PADDED],
    error_floor: [f32; PADDED],
    /// The far end's usual mean bin power while the agent speaks (0 until it first does).
    far_level: f32,
    /// The block begun: the serving and adapting filters' estimates of its echo.
    serving_echo: [f32; FRAME],
    adapting_echo: [f32; FRAME],
}

impl AdaptiveFilter {
    /// A filter that has learnt nothing yet (allocates; not on the audio path).
    pub(crate) fn new() -> Self {
        Self::with_kernel(Kernel::detect())
    }

    /// A new filter whose loops run in `kernel`'s build.
    pub(crate) fn with_kernel(kernel: Kernel) -> Self {
        Self {
            kernel,
            transform: Transform::new(),
            far_time: [0.0; FFT],
            far: [SILENT; PARTITIONS],
            newest: 0,
            far_power: [REGULARISATION; PADDED],
            adapting: [SILENT; PARTITIONS],
            serving: [SILENT; PARTITIONS],
            constrain: 0,
            serving_error: 0.0,
            adapting_error: 0.0,
            line: 0.0,
            error_power: [0.0; PADDED],
            error_floor: [f32::MAX; PADDED],
            far_level: 0.0,
            serving_echo: [0.0; FRAME],
            adapting_echo: [0.0; FRAME],
        }
    }

    /// Takes the next block of far end (the agent's audio aligned with the line's block to come)
    /// into the history, without a line block to go with it.
    #[inline(always)]
    pub(crate) fn push_far(&mut self, far: &[i16; FRAME]) {
        self.far_time.copy_within(FRAME.., 0);
        for (t, &f) in self.far_time[FRAME..].iter_mut().zip(far) {
            *t = f32::from(f);
        }
        self.newest = (self.newest + PARTITIONS - 1) % PARTITIONS;
        self.transform.forward(&self.far_time, &mut self.far[self.newest]);
        self.far_power = [REGULARISATION; PADDED];
        for x in &self.far {
            for k in 0..PADDED {
                self.far_power[k] += x.re[k] * x.re[k] + x.im[k] * x.im[k];
            }
        }
    }

    /// The far end has been silent for longer than the span: forget it (so that nothing stale
    /// is filtered when it speaks again). The weights stay: the echo path has not changed.
    pub(crate) fn far_silent(&mut self) {
        self.far_time = [0.0; FFT];
        self.far = [SILENT; PARTITIONS];
        self.far_power = [REGULARISATION; PADDED];
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
        self.kernel.run(
            #[inline(always)]
            || {
                self.push_far(far);
                let (serving, adapting) = filter_both(&self.far, self.newest, &self.serving, &self.adapting);
                self.serving_echo = block_of(&mut self.transform, &serving);
                self.adapting_echo = block_of(&mut self.transform, &adapting);
            },
        );
    }

    /// The echo the serving filter estimates for the block begun, per sample: what the line
    /// loses.
    pub(crate) fn echo(&self) -> &[f32; FRAME] {
        &self.serving_echo
    }

    /// Ends the block begun with the line it carried: both paths' errors, one step of the
    /// adapting filter, and which weights serve from the next block on.
    pub(crate) fn end(&mut self, line: &[i16; FRAME]) {
        self.kernel.run(
            #[inline(always)]
            || self.end_block(line),
        );
    }

    #[inline(always)]
    fn end_block(&mut self, line: &[i16; FRAME]) {
        let line: [f32; FRAME] = std::array::from_fn(|n| f32::from(line[n]));
        let serving: [f32; FRAME] = std::array::from_fn(|n| line[n] - self.serving_echo[n]);
        let adapting: [f32; FRAME] = std::array::from_fn(|n| line[n] - self.adapting_echo[n]);
        let energy = |x: &[f32; FRAME]| sum(x, |v| v * v);
        let smooth = |s: &mut f32, v: f32| *s += SMOOTHING * (v - *s);
        smooth(&mut self.serving_error, energy(&serving));
        smooth(&mut self.adapting_error, energy(&adapting));
        smooth(&mut self.line, energy(&line));
        self.adapt(&adapting);
        if self.adapting_error < BETTER * self.serving_error && self.adapting_error < REMOVES * self.line {
            self.serving = self.adapting;
            self.serving_error = self.adapting_error;
        } else if self.serving_error > ADDS * self.line {
            self.serving = [SILENT; PARTITIONS];
            self.serving_error = self.line;
        } else if self.adapting_error > DIVERGED * self.serving_error || !self.adapting_error.is_finite() {
            // (A non-finite error, which no input has produced, would otherwise stop adapting
            // for the rest of the call.)
            self.adapting = self.serving;
            self.adapting_error = self.serving_error;
        }
    }

    /// One normalised LMS step of the adapting filter on its error `error`.
    #[inline(always)]
    fn adapt(&mut self, error: &[f32; FRAME]) {
        let mut block = [0.0; FFT];
        block[FRAME..].copy_from_slice(error);
        let mut e = SILENT;
        self.transform.forward(&block, &mut e);
        let mean = sum(&self.far_power[..BINS], |p| p) / BINS as f32;
        if mean > 100.0 * REGULARISATION {
            self.far_level += LEVEL_SMOOTHING * (mean - self.far_level);
        }
        let quiet_bin = QUIET_BIN_FLOOR * self.far_level;
        let mut gain = SILENT;
        for k in 0..PADDED {
            let power = &mut self.error_power[k];
            *power += ERROR_SMOOTHING * (e.re[k] * e.re[k] + e.im[k] * e.im[k] - *power);
            let floor = &mut self.error_floor[k];
            *floor = (*floor * FLOOR_RISE).min(*power).max(1.0);
            let step = STEP * (1.0 - *floor / power.max(1.0)).max(MIN_STEP_SHARE);
            let scale = step / (self.far_power[k] + quiet_bin);
            (gain.re[k], gain.im[k]) = (e.re[k] * scale, e.im[k] * scale);
        }
        // Each partition's weights move by its far end's conjugate times the gain.
        for (p, w) in self.adapting.iter_mut().enumerate() {
            let x = &self.far[(self.newest + p) % PARTITIONS];
            for k in 0..PADDED {
                w.re[k] += x.re[k] * gain.re[k] + x.im[k] * gain.im[k];
                w.im[k] += x.re[k] * gain.im[k] - x.im[k] * gain.re[k];
            }
        }
        // The update above lets each partition's taps spill into the block after it (circular
        // convolution); one partition per block is cut back to its 160 taps, in turn (as
        // speexdsp's MDF does: constraining all seven every block costs 12 more FFTs and
        // measured no better).
        let c = self.constrain;
        self.constrain = (c + 1) % PARTITIONS;
        let mut taps = [0.0; FFT];
        self.transform.inverse(&self.adapting[c], &mut taps);
        for t in &mut taps[..FRAME] {
            *t *= SCALE;
        }
        taps[FRAME..].fill(0.0);
        self.transform.forward(&taps, &mut self.adapting[c]);
    }
}

/// The serving and adapting weights' estimates of the newest block's echo, as spectra, the far
/// end's block spectra being `far` (newest at `newest`). One pass for both: each far-end bin is
/// read once.
#[inline(always)]
fn filter_both(
    far: &[Bins; PARTITIONS],
    newest: usize,
    serving: &[Bins; PARTITIONS],
    adapting: &[Bins; PARTITIONS],
) -> (Bins, Bins) {
    let (mut s, mut a) = (SILENT, SILENT);
    for p in 0..PARTITIONS {
        let (x, ws, wa) = (&far[(newest + p) % PARTITIONS], &serving[p], &adapting[p]);
        for k in 0..PADDED {
            s.re[k] += ws.re[k] * x.re[k] - ws.im[k] * x.im[k];
            s.im[k] += ws.re[k] * x.im[k] + ws.im[k] * x.re[k];
            a.re[k] += wa.re[k] * x.re[k] - wa.im[k] * x.im[k];
            a.im[k] += wa.re[k] * x.im[k] + wa.im[k] * x.re[k];
        }
    }
    (s, a)
}

/// The sum of `f` over `x`, kept as eight sums: one sum must add in order, which the compiler
/// cannot vectorise (`f32` addition is not associative), and the filter's sums took as long as
/// its multiply-adds.
#[inline(always)]
fn sum(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder().iter().map(|&v| f(v)).sum::<f32>();
    for chunk in chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += f(v);
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// The newest block's samples of the overlap-save output whose spectrum is `y`.
#[inline(always)]
fn block_of(transform: &mut Transform, y: &Bins) -> [f32; FRAME] {
    let mut time = [0.0; FFT];
    transform.inverse(y, &mut time);
    std::array::from_fn(|n| time[FRAME + n] * SCALE)
}

/// Moves the filter `weights` stands for `by` taps later (negative: earlier) in the span.
fn shift_taps(transform: &mut Transform, weights: &mut [Bins; PARTITIONS], by: i64) {
    let mut taps = [0.0f32; SPAN];
    let mut time = [0.0; FFT];
    for (w, t) in weights.iter().zip(taps.chunks_exact_mut(FRAME)) {
        transform.inverse(w, &mut time);
        // The first half: the partition's taps (the second holds only what the gradient
        // constraint would cut).
        for (t, &v) in t.iter_mut().zip(&time[..FRAME]) {
            *t = v * SCALE;
        }
    }
    for (w, p) in weights.iter_mut().zip(0..) {
        time = [0.0; FFT];
        for (n, t) in time[..FRAME].iter_mut().enumerate() {
            let from = (p * FRAME + n) as i64 - by;
            *t = usize::try_from(from).ok().and_then(|f| taps.get(f)).copied().unwrap_or(0.0);
        }
        transform.forward(&time, w);
    }
}
