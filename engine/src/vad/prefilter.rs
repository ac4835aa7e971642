//! Pre-filter in front of the VAD: removes DC and mains hum (50/60 Hz and low harmonics).
//!
//! Why: a DC offset or hum on an analogue leg of the call puts steady energy into webrtc-vad's
//! lowest band (80–250 Hz), which it can take for voicing before its noise model has adapted. The
//! telephone band starts around 300 Hz anyway, so nothing the VAD needs lives below ~200 Hz: a
//! steep high-pass costs no speech evidence and kills DC, the 50/60 Hz fundamentals and their
//! 100/120/150/180 Hz harmonics. Speech keeps its harmonics above 200 Hz even for low voices.

use crate::audio::to_i16;
use crate::simd::Kernel;
use std::f64::consts::PI;
use std::sync::OnceLock;

/// Sample rate the filter is designed for.
const SAMPLE_RATE_HZ: f64 = 8_000.0;

/// High-pass corner (Hz). 4th-order Butterworth: 180 Hz → −3 dB, 120 Hz → −14 dB, 60 Hz → −38 dB.
const HIGH_PASS_HZ: f64 = 180.0;

/// Q of the two sections of a 4th-order Butterworth high-pass (1 / (2 cos(π/8)), 1 / (2 cos(3π/8))).
const BUTTERWORTH4_Q: [f64; 2] = [0.541_196_1, 1.306_563];

/// Notches on mains harmonics that fall close to the high-pass corner, where it is still weak:
/// 150 Hz (3 × 50) and 180 Hz (3 × 60).
const NOTCH_HZ: [f64; 2] = [150.0, 180.0];

/// Quality factor of the notches: −3 dB bandwidth 50–60 Hz, all below the 300 Hz telephone band.
/// Why not narrower: a narrow notch rings for tens of ms after a loud click, and webrtc-vad reads
/// that ringing as more speech frames (Q 8 turned a 60 ms burst into 120 ms of "speech").
const NOTCH_Q: f64 = 3.0;

/// Sections in the cascade: two high-pass sections and the notches.
const SECTIONS: usize = BUTTERWORTH4_Q.len() + NOTCH_HZ.len();

/// Values smaller than this in the filter state are flushed to zero. Why: after the input goes to
/// digital silence the state decays towards denormals, which are very slow on x86.
const DENORMAL_FLOOR: f32 = 1e-15;

/// The cascade's order: two states per section.
const ORDER: usize = 2 * SECTIONS;

/// Samples filtered at once by the block form (see [`Block`]).
const BLOCK: usize = 16;

/// One second-order IIR section's coefficients (normalised by `a0`, rounded to f32 as the filter
/// runs them), in the form the update uses: `y = b0·x + s1`, `s1' = k1·x + s2 − a1·s1`,
/// `s2' = k2·x − a2·s1`: transposed direct form II with `y` substituted out of the state update.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f32,
    k1: f32,
    k2: f32,
    a1: f32,
    a2: f32,
    /// `(b0 + b1 + b2) / (1 + a1 + a2)`.
    dc_gain: f32,
    /// `b1` and `b2`, for the steady state (see [`HumFilter::prime`]).
    b1: f32,
    b2: f32,
}

impl Biquad {
    /// Builds a section from RBJ-cookbook coefficients.
    fn from_coefficients(b: [f64; 3], a: [f64; 3]) -> Self {
        let [b0, b1, b2, a1, a2] = [b[0] / a[0], b[1] / a[0], b[2] / a[0], a[1] / a[0], a[2] / a[0]];
        Self {
            b0: b0 as f32,
            k1: (b1 - a1 * b0) as f32,
            k2: (b2 - a2 * b0) as f32,
            a1: a1 as f32,
            a2: a2 as f32,
            dc_gain: ((b0 + b1 + b2) / (1.0 + a1 + a2)) as f32,
            b1: b1 as f32,
            b2: b2 as f32,
        }
    }

    /// RBJ high-pass at `hz` with quality `q`.
    fn high_pass(hz: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * hz / SAMPLE_RATE_HZ;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        Self::from_coefficients(
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0],
            [1.0 + alpha, -2.0 * cos, 1.0 - alpha],
        )
    }

    /// RBJ notch at `hz` with quality `q`.
    fn notch(hz: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * hz / SAMPLE_RATE_HZ;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        Self::from_coefficients([1.0, -2.0 * cos, 1.0], [1.0 + alpha, -2.0 * cos, 1.0 - alpha])
    }

    /// One sample through the section, on state `(s1, s2)`: the update above, in `T`.
    #[inline(always)]
    fn step<T>(&self, x: T, s1: &mut T, s2: &mut T) -> T
    where
        T: Copy
            + From<f32>
            + std::ops::Mul<Output = T>
            + std::ops::Add<Output = T>
            + std::ops::Sub<Output = T>,
    {
        let c = |v: f32| T::from(v);
        let y = c(self.b0) * x + *s1;
        let next = c(self.k1) * x + *s2 - c(self.a1) * *s1;
        *s2 = c(self.k2) * x - c(self.a2) * *s1;
        *s1 = next;
        y
    }
}

/// The cascade as one linear system over [`BLOCK`] samples: from the state before a block
/// (`s`, [`ORDER`] values: every section's `s1`, then every section's `s2`) and the block's
/// input `x`, its output is `O·s + T·x` and the state after it `A·s + K·x`.
///
/// Why: run sample by sample, each section's state update waits for the one before it, so the
/// cascade costs the latency of a chain of dependent operations per sample (a quarter of the
/// VAD's time). In the block form only the state passes from block to block, once per 16
/// samples; the rest are independent products the compiler vectorises. The matrices are the
/// cascade's responses, computed in f64 by running it on each unit state and unit impulse, so
/// the block form is the same filter, rounded differently (`block_form_is_the_cascade`).
/// Stored column by column, each column over the outputs (or states) it feeds.
#[derive(Debug)]
struct Block {
    /// `O`: each state's contribution to the block's outputs.
    out_from_state: [[f32; BLOCK]; ORDER],
    /// `T`: each input sample's contribution to the block's outputs (none before it).
    out_from_input: [[f32; BLOCK]; BLOCK],
    /// `A`: each state's contribution to the state after the block.
    state_from_state: [[f32; ORDER]; ORDER],
    /// `K`: each input sample's contribution to the state after the block.
    state_from_input: [[f32; ORDER]; BLOCK],
}

/// Everything about the filter but its state, built once per process.
#[derive(Debug)]
struct Design {
    sections: [Biquad; SECTIONS],
    block: Block,
    /// Which build of the block loops this CPU runs.
    kernel: Kernel,
}

impl Design {
    fn new() -> Self {
        let sections = [
            Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[0]),
            Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[1]),
            Biquad::notch(NOTCH_HZ[0], NOTCH_Q),
            Biquad::notch(NOTCH_HZ[1], NOTCH_Q),
        ];
        // The cascade in f64 on `state`, over `input`: its outputs, and its state after.
        let run = |mut state: [f64; ORDER], input: &[f64; BLOCK]| {
            let outputs = input.map(|x| {
                let mut v = x;
                for (k, section) in sections.iter().enumerate() {
                    let (s1, s2) = state.split_at_mut(SECTIONS);
                    v = section.step(v, &mut s1[k], &mut s2[k]);
                }
                v
            });
            (outputs, state)
        };
        let from_state = std::array::from_fn::<_, ORDER, _>(|j| run(unit(j), &[0.0; BLOCK]));
        let from_input = std::array::from_fn::<_, BLOCK, _>(|m| run([0.0; ORDER], &unit(m)));
        let narrow = |v: f64| v as f32;
        Self {
            sections,
            block: Block {
                out_from_state: from_state.map(|(y, _)| y.map(narrow)),
                out_from_input: from_input.map(|(y, _)| y.map(narrow)),
                state_from_state: from_state.map(|(_, s)| s.map(narrow)),
                state_from_input: from_input.map(|(_, s)| s.map(narrow)),
            },
            kernel: Kernel::detect(),
        }
    }

    fn get() -> &'static Self {
        static DESIGN: OnceLock<Design> = OnceLock::new();
        DESIGN.get_or_init(Design::new)
    }
}

/// The unit vector `i` of length `N`.
fn unit<const N: usize>(i: usize) -> [f64; N] {
    std::array::from_fn(|k| if k == i { 1.0 } else { 0.0 })
}

/// DC and mains-hum filter for 8 kHz audio: 4th-order Butterworth high-pass at 180 Hz plus notches
/// at 150 and 180 Hz. Streaming, allocation-free, state kept across calls. Whole blocks of
/// [`BLOCK`] samples run in the block form ([`Block`]), the samples left over through the
/// sections one after the other.
#[derive(Debug, Clone)]
pub(crate) struct HumFilter {
    /// Every section's `s1`, then every section's `s2` (the block form's state vector).
    state: [f32; ORDER],
    design: &'static Design,
}

impl HumFilter {
    /// Builds the filter with zero state.
    pub(crate) fn new() -> Self {
        Self { state: [0.0; ORDER], design: Design::get() }
    }

    /// Puts the filter in the steady state for a constant input `x` (the first sample of a stream
    /// or of the audio after a discontinuity), so a DC offset does not start with a click.
    // why: starting from zero state, a DC offset would look like a step and ring through the
    // high-pass as a click at stream start.
    pub(crate) fn prime(&mut self, x: i16) {
        let mut v = f32::from(x);
        for (k, s) in self.design.sections.iter().enumerate() {
            let y = s.dc_gain * v;
            self.state[SECTIONS + k] = s.b2 * v - s.a2 * y;
            self.state[k] = s.b1 * v - s.a1 * y + self.state[SECTIONS + k];
            v = y;
        }
    }

    /// Clears the state.
    pub(crate) fn reset(&mut self) {
        self.prime(0);
    }

    /// Filters one sample through the sections one after the other.
    fn cascade(&mut self, x: f32) -> f32 {
        let (s1, s2) = self.state.split_at_mut(SECTIONS);
        self.design
            .sections
            .iter()
            .enumerate()
            .fold(x, |v, (k, section)| section.step(v, &mut s1[k], &mut s2[k]))
    }

    /// Filters whole blocks in the block form, in `kernel`'s build.
    #[inline(always)]
    fn whole_blocks(&mut self, kernel: Kernel, input: &[[i16; BLOCK]], output: &mut [[i16; BLOCK]]) {
        let (m, state) = (&self.design.block, &mut self.state);
        kernel.run(
            #[inline(always)]
            || {
                for (x, y) in input.iter().zip(output.iter_mut()) {
                    block(m, state, x, y);
                }
            },
        );
    }

    /// Filters `input` into `output` (same length) and flushes denormals at the end. Why per
    /// call: flushing per sample would cost more than denormals can within a frame.
    pub(crate) fn process(&mut self, input: &[i16], output: &mut [i16]) {
        debug_assert_eq!(input.len(), output.len());
        let (blocks, rest) = input.as_chunks::<BLOCK>();
        let (out_blocks, out_rest) = output.as_chunks_mut::<BLOCK>();
        self.whole_blocks(self.design.kernel, blocks, out_blocks);
        for (o, &x) in out_rest.iter_mut().zip(rest) {
            *o = to_i16(self.cascade(f32::from(x)));
        }
        for state in self.state.iter_mut() {
            if state.abs() < DENORMAL_FLOOR {
                *state = 0.0;
            }
        }
    }
}

/// Partial sums per product: a sum of columns added one after the other is a chain of dependent
/// additions as long as the columns are many, which bounds the speed; four chains run side by
/// side.
const CHAINS: usize = 4;
const _: () =
    assert!(ORDER.is_multiple_of(CHAINS) && BLOCK.is_multiple_of(CHAINS), "whole groups of columns");

/// `Σ columns[k] · values[k]`, column `k` into partial sum `k % CHAINS`, lane by lane.
#[inline(always)]
fn columns_times<const N: usize>(columns: &[[f32; N]], values: &[f32], sums: &mut [[f32; N]; CHAINS]) {
    let [s0, s1, s2, s3] = sums;
    for (c, v) in columns.chunks_exact(CHAINS).zip(values.chunks_exact(CHAINS)) {
        for i in 0..N {
            s0[i] += c[0][i] * v[0];
            s1[i] += c[1][i] * v[1];
            s2[i] += c[2][i] * v[2];
            s3[i] += c[3][i] * v[3];
        }
    }
}

/// The partial sums' total, as a tree.
#[inline(always)]
fn total<const N: usize>(sums: &[[f32; N]; CHAINS]) -> [f32; N] {
    let mut out = [0.0f32; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (sums[0][i] + sums[1][i]) + (sums[2][i] + sums[3][i]);
    }
    out
}

/// One block through the block form: `y = O·s + T·x`, `s = A·s + K·x`. Each product is a sum
/// of columns scaled by one value, lane by lane (in [`CHAINS`] partial sums), so that both
/// builds give the same result.
#[inline(always)]
fn block(m: &Block, state: &mut [f32; ORDER], input: &[i16; BLOCK], output: &mut [i16; BLOCK]) {
    let mut x = [0.0f32; BLOCK];
    for (x, &v) in x.iter_mut().zip(input) {
        *x = f32::from(v);
    }
    let s = *state;
    let mut sums = [[0.0f32; BLOCK]; CHAINS];
    columns_times(&m.out_from_state, &s, &mut sums);
    columns_times(&m.out_from_input, &x, &mut sums);
    // Rounded to the nearest and saturated as `to_i16` does, but in a form that vectorises (a
    // float's conversion to an integer is checked lane by lane): adding 1.5 · 2^23 leaves the
    // rounded value in the low bits of the mantissa. Halves round to even here, away from zero
    // there: a difference of one step, on the rare output that lands on a half exactly.
    const ROUNDING: f32 = 12_582_912.0;
    for (o, &y) in output.iter_mut().zip(&total(&sums)) {
        let rounded = y.clamp(-32_768.0, 32_767.0) + ROUNDING;
        *o = (rounded.to_bits() as i32 - ROUNDING.to_bits() as i32) as i16;
    }
    // The state is the one chain from block to block: its own part last, on two columns per sum.
    let mut sums = [[0.0f32; ORDER]; CHAINS];
    columns_times(&m.state_from_input, &x, &mut sums);
    columns_times(&m.state_from_state, &s, &mut sums);
    *state = total(&sums);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state RMS gain of the filter for a sine at `hz`.
    fn gain_at(hz: f64) -> f64 {
        let mut f = HumFilter::new();
        let n = 8_000;
        let input: Vec<i16> =
            (0..n).map(|i| (10_000.0 * (2.0 * PI * hz * i as f64 / SAMPLE_RATE_HZ).sin()) as i16).collect();
        let mut out = vec![0i16; n];
        f.process(&input, &mut out);
        // Skip the first half second (transient).
        let rms = |v: &[i16]| (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        rms(&out[4_000..]) / rms(&input[4_000..])
    }

    fn db(g: f64) -> f64 {
        20.0 * g.max(1e-9).log10()
    }

    #[test]
    fn removes_hum_keeps_speech_band() {
        for hz in [50.0, 60.0] {
            assert!(db(gain_at(hz)) < -35.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
        for hz in [100.0, 120.0, 150.0, 180.0] {
            assert!(db(gain_at(hz)) < -15.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
        for hz in [300.0, 1_000.0, 3_000.0] {
            assert!(db(gain_at(hz)).abs() < 1.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
    }

    /// Random full-scale samples.
    fn noise(n: usize, seed: u64) -> Vec<i16> {
        let mut rng = crate::test_rng::XorShift(seed);
        (0..n).map(|_| (rng.below(65_536) as i32 - 32_768) as i16).collect()
    }

    /// `input` through `filter` in chunks of random lengths (many of them no whole block).
    fn chunked(filter: &mut HumFilter, input: &[i16], seed: u64) -> Vec<i16> {
        let mut rng = crate::test_rng::XorShift(seed);
        let mut output = vec![0i16; input.len()];
        let mut at = 0;
        while at < input.len() {
            let n = (rng.below(12) as usize).min(input.len() - at);
            let n = if rng.below(4) == 0 { (n * 40).min(input.len() - at) } else { n };
            filter.process(&input[at..at + n], &mut output[at..at + n]);
            at += n;
        }
        output
    }

    #[test]
    fn block_form_is_the_cascade() {
        // The same filter computed two ways, rounded differently: on full-scale noise, at most
        // one step of the output apart, and rarely that (0.9 % of the samples; 2 % allowed);
        // then on past the first input, so the state the block form leaves is the cascade's too.
        // A wrong matrix, column or state order puts them many steps apart.
        let (input, tail) = (noise(40_000, 0x2545_f491_4f6c_dd1d), noise(1_000, 99));
        let mut reference = HumFilter::new();
        reference.prime(input[0]);
        let expected: Vec<i16> =
            input.iter().chain(&tail).map(|&x| to_i16(reference.cascade(f32::from(x)))).collect();
        for seed in [None, Some(7), Some(8)] {
            let mut filter = HumFilter::new();
            filter.prime(input[0]);
            let mut output = match seed {
                None => {
                    let mut out = vec![0i16; input.len()];
                    filter.process(&input, &mut out);
                    out
                }
                Some(seed) => chunked(&mut filter, &input, seed),
            };
            let mut after = vec![0i16; tail.len()];
            filter.process(&tail, &mut after);
            output.extend(after);
            let differ = output.iter().zip(&expected).filter(|(a, b)| a != b).count();
            let most = output.iter().zip(&expected).map(|(a, b)| a.abs_diff(*b)).max();
            assert!(most <= Some(1), "chunks {seed:?}: {most:?} apart");
            assert!(
                differ * 50 < output.len(),
                "chunks {seed:?}: {differ} of {} samples differ",
                output.len()
            );
        }
    }

    #[test]
    fn every_build_of_the_block_form_gives_the_same_samples() {
        let input = noise(8_000, 5);
        let outputs = |kernel: Kernel| {
            let mut filter = HumFilter::new();
            filter.prime(input[0]);
            let mut out = vec![0i16; input.len()];
            filter.whole_blocks(kernel, input.as_chunks::<BLOCK>().0, out.as_chunks_mut::<BLOCK>().0);
            (out, filter.state)
        };
        assert_eq!(outputs(Kernel::detect()), outputs(Kernel::PORTABLE));
    }

    #[test]
    fn primed_dc_gives_no_click() {
        let mut f = HumFilter::new();
        f.prime(3_000);
        let input = [3_000i16; 160];
        let mut out = [0i16; 160];
        f.process(&input, &mut out);
        assert!(out.iter().all(|&y| y.abs() <= 1), "{out:?}");
    }
}
