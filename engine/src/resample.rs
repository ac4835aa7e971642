//! Streaming sample-rate conversion between the carrier's rates (8, 16 and 24 kHz) and the agent's.
//!
//! [`StreamResampler`] is a synchronous polyphase FIR resampler: every supported ratio is
//! rational (`to / from = up / down` reduced), so every output sample falls exactly on one of
//! `up` sub-sample positions of the input, and is one dot product of the input with one
//! precomputed filter branch (no interpolation between branches, no drift). It adds what a
//! telephone stream needs: any input chunk size, an exact output count (PCM length always equals
//! stream time), a fixed and reported delay, and no allocation after construction.
//!
//! # Filter
//!
//! A Kaiser-windowed sinc (`filter`) designed by one rule for every pair, relative to the
//! lower of the two rates: its cutoff at 0.97 × that rate's Nyquist frequency, and
//! `32 × ceil(from / lower)` taps per branch. With 8 kHz on one side that is a 3.88 kHz cutoff
//! and 32 (at 8 kHz) to 192 (at 48 kHz) taps: flat to 3.4 kHz, everything that would alias into
//! 0–3.4 kHz (≥ 4.6 kHz) strongly attenuated, about 2 ms of group delay. With 16 or 24 kHz as the
//! lower rate every frequency scales with it (flat to 6.8 / 10.2 kHz, ≥ 9.2 / 13.8 kHz rejected)
//! and the delay shrinks to 0.65–1.45 ms. A 2× interpolation (8 → 16 and 24 → 48 kHz) uses a
//! half-band filter instead, which halves its work. The coefficients are 16-bit fixed point and
//! each branch sums to exactly one, so DC passes unchanged. Each rate pair's filter is designed
//! once per process, by the first resampler that needs it, and shared by every resampler of that
//! pair (read only).
//!
//! # Cost
//!
//! The dot products are integer (`i16 × i16 → i32`, `kernel`), which the compiler vectorises
//! into `pmaddwd` (SSE2) or its AVX2 form, chosen at run time; 8 → 16 kHz is 320 outputs × 32
//! taps per 20 ms frame (half of them copies), 24 → 8 kHz is 160 × 96, 24 → 16 kHz 320 × 64.
//! Integer arithmetic is exact, so the output is the same on every CPU and for every chunking of
//! the input.
//!
//! # Streaming
//!
//! The last `taps - 1` input samples are kept; each call appends its input and computes every
//! output that is owed: after `N` input samples in total, exactly `floor(N * up / down)` outputs
//! have been produced. Output `k` needs input up to `floor(k * down / up)`, which is always
//! there for those, so no output waits for a later call and the output lags the input by
//! exactly the filter's group delay ([`StreamResampler::delay_ms`]).

mod filter;
mod kernel;

use crate::audio::CARRIER_RATE;
use filter::{FilterSpec, PolyphaseFilter};
use kernel::{Kernel, Step, Stride};
use std::sync::OnceLock;
use thiserror::Error;

/// Why a resampler could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResampleError {
    /// The rate pair is not one Trunkline converts.
    #[error("unsupported rate conversion {from} Hz -> {to} Hz")]
    UnsupportedRate {
        /// Input rate.
        from: u32,
        /// Output rate.
        to: u32,
    },
    /// The output buffer is shorter than [`StreamResampler::max_output_len`] of the input.
    #[error("output buffer of {given} samples, {needed} needed")]
    OutputTooShort {
        /// Samples the output must hold.
        needed: usize,
        /// Samples it holds.
        given: usize,
    },
}

/// The rates Trunkline resamples between (and passes through unchanged when equal). Each of them
/// converts to every carrier rate (8, 16, 24 and 48 kHz), so this is also the rates `play` accepts
/// ([`crate::pipeline::PLAY_RATES`]).
pub const SUPPORTED_RATES: [u32; 6] = [CARRIER_RATE, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Input samples taken per internal step; longer inputs are processed in a loop.
// why: covers a 20 ms frame at 8, 16 and 24 kHz (the rates of the caller and of TTS) in one
// step; 48 kHz frames take two. The window buffer is this plus the filter's history.
const MAX_CHUNK: usize = 512;

/// Filter cutoff as a fraction of the lower rate's Nyquist frequency, `CUTOFF_PERCENT / 100`:
/// 3.88 kHz when one side is 8 kHz.
// why: measured at 8 kHz with the tap counts and window below to keep 3.4 kHz (0.85 × Nyquist)
// within 0.15 dB while putting 4.6 kHz (1.15 × Nyquist, the lowest frequency that aliases into
// 0-3.4 kHz) far down. Every other pair is the same design with its frequencies scaled by
// `lower / 8 kHz`, so the same fractions hold. An integer percentage keeps 8 kHz's cutoff at
// exactly 3880.0 Hz (`8000 × 97 / 200` is exact in f64).
const CUTOFF_PERCENT: u32 = 97;

/// Filter taps (per branch) per lower rate's worth of input rate: `32 × ceil(from / lower)`.
// why: 32 taps at 8 kHz give the 3.4 -> 4.6 kHz transition band above. The transition width in
// Hz goes as input rate / taps, so `32 × from / lower` taps would keep it at exactly 0.3 × the
// lower Nyquist frequency (1.2 kHz at 8 kHz, 2.4 kHz at 16, 3.6 kHz at 24) and the group delay
// at 16 samples of the lower rate (~2 ms at 8 kHz, ~1 ms at 16); rounding up to a whole multiple
// only narrows the band and lengthens the delay (24 -> 16 kHz: 64 taps, 1.3 ms). With 8 kHz the
// lower rate this is the former `32 × ceil(from / 8000)`. Multiples of 32 also suit the
// vectorised dot product: 24 -> 16 kHz measured faster with 64 taps than with 48.
const BASE_TAPS: usize = 32;

/// Kaiser window shape.
// why: trades the window's main lobe (transition width) against its sidelobes (stopband
// depth); see docs/architecture.md (Resampler) for what it measures.
const KAISER_BETA: f64 = 7.3;

/// Taps per branch of a 2× half-band interpolator (8 -> 16 kHz, 24 -> 48 kHz).
// why: with the cutoff at the input's Nyquist frequency (4 kHz for 8 kHz input) 32 taps give
// a transition band 0.85 -> 1.15 × that frequency (3.4 -> 4.6 kHz), centred on it, the same
// relative band as `BASE_TAPS`; see docs/architecture.md (Resampler) for the passband and
// image levels this length measures.
const HALF_BAND_TAPS: usize = 32;

/// Kaiser window shape of the half-band interpolator.
const HALF_BAND_BETA: f64 = 7.3;

/// Every conversion between two different rates that Trunkline makes, `(from, to)`: each carrier
/// rate (8, 16, 24 kHz) to each agent rate (8, 16, 24, 48 kHz), and every play rate
/// ([`SUPPORTED_RATES`]) to each carrier rate, 48 kHz among them.
const CONVERSIONS: [(u32, u32); 20] = [
    // Carrier to agent (8 kHz also takes 16, 24 and 48 kHz play audio back down to it).
    (8_000, 16_000),
    (8_000, 24_000),
    (8_000, 48_000),
    (16_000, 8_000),
    (16_000, 24_000),
    (16_000, 48_000),
    (24_000, 8_000),
    (24_000, 16_000),
    (24_000, 48_000),
    // The remaining play rates to each carrier rate.
    (22_050, 8_000),
    (44_100, 8_000),
    (48_000, 8_000),
    (22_050, 16_000),
    (44_100, 16_000),
    (48_000, 16_000),
    (22_050, 24_000),
    (44_100, 24_000),
    (48_000, 24_000),
    // 48 kHz carriers (jambonz, AudioSocket, Telnyx's Opus) take the other play rates at their own.
    (22_050, 48_000),
    (44_100, 48_000),
];

/// Each conversion's filter, designed by the first resampler that needs it and then shared.
// why: a filter is fixed by its rate pair and only read, and the large ones are 22.05 and
// 44.1 kHz to 8 or 16 kHz (80 to 320 branches, 30 KiB of coefficients each; 10 KiB to 24 kHz):
// one copy per process lets every session build a resampler for every play rate up front (so the
// worker never builds one) within the per-session memory budget.
static FILTERS: [OnceLock<PolyphaseFilter>; CONVERSIONS.len()] =
    [const { OnceLock::new() }; CONVERSIONS.len()];

/// Whether `from -> to` is a conversion Trunkline supports.
pub fn is_supported(from: u32, to: u32) -> bool {
    if from == to {
        return SUPPORTED_RATES.contains(&from);
    }
    CONVERSIONS.contains(&(from, to))
}

/// A streaming mono resampler for s16 PCM that accepts any input chunk size.
///
/// Contract: after `N` input samples in total (over any chunking) exactly
/// `floor(N * to / from)` output samples have been produced in total; the output lags the input by
/// [`StreamResampler::delay_ms`]. No allocation after construction.
pub struct StreamResampler {
    from: u32,
    to: u32,
    /// `None` for equal rates (a copy).
    stage: Option<Box<PolyphaseStage>>,
}

/// The filter plus the input history and counters that turn it into a stream.
struct PolyphaseStage {
    /// Shared by every resampler of this rate pair (see [`FILTERS`]).
    filter: &'static PolyphaseFilter,
    kernel: Kernel,
    stride: Stride,
    /// The history the next output reaches back to, then this step's input.
    window: Vec<i16>,
    /// Valid samples at the start of `window`.
    filled: usize,
    /// Where the next output's window ends, and its branch.
    step: Step,
    /// `up` and `down` of the reduced ratio.
    up: u64,
    down: u64,
    /// `(N * up) mod down` for the `N` input samples seen so far.
    phase: u64,
    /// Input-to-output delay in ms.
    delay_ms: f64,
}

impl StreamResampler {
    /// Builds a resampler from `from` Hz to `to` Hz (equal rates give a pass-through).
    ///
    /// Supported: each carrier rate (8, 16 and 24 kHz) to 8, 16, 24 and 48 kHz; every rate of
    /// [`SUPPORTED_RATES`] (8, 16, 22.05, 24, 44.1 and 48 kHz) to 8, 16 and 24 kHz; and any rate of
    /// [`SUPPORTED_RATES`] to itself.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        if !is_supported(from, to) {
            return Err(ResampleError::UnsupportedRate { from, to });
        }
        let stage = (from != to).then(|| Box::new(PolyphaseStage::new(from, to)));
        Ok(Self { from, to, stage })
    }

    /// Input rate in Hz.
    pub fn input_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn output_rate(&self) -> u32 {
        self.to
    }

    /// An upper bound on the samples one `process` call with `input_len` samples can write.
    pub fn max_output_len(&self, input_len: usize) -> usize {
        (input_len as u64 * self.to as u64 / self.from as u64) as usize + 2
    }

    /// Converts `input`, writes the output to the start of `output`, returns how many were written.
    /// `OutputTooShort` (nothing taken) when `output` is shorter than [`Self::max_output_len`] of
    /// `input.len()`.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        let needed = self.max_output_len(input.len());
        if output.len() < needed {
            return Err(ResampleError::OutputTooShort { needed, given: output.len() });
        }
        Ok(match &mut self.stage {
            None => {
                output[..input.len()].copy_from_slice(input);
                input.len()
            }
            Some(stage) => input
                .chunks(MAX_CHUNK)
                .fold(0, |written, chunk| written + stage.process_chunk(chunk, &mut output[written..])),
        })
    }

    /// Algorithmic delay from input to output, in milliseconds.
    ///
    /// A feature of the input at time `t` appears in the output at time `t + delay_ms()`, where
    /// output sample `k` is at time `k / output_rate` (the first outputs are zeros).
    pub fn delay_ms(&self) -> f64 {
        self.stage.as_ref().map_or(0.0, |stage| stage.delay_ms)
    }

    /// Forgets the input so far, as if it had been silence (a stream spliced over an outage:
    /// nothing from before it may reach the output after it). Unlike [`Self::reset`], the
    /// output count stays exact over the whole stream (`floor(N * up / down)` for all `N` input
    /// samples), whatever the input's length before.
    pub fn forget_input(&mut self) {
        if let Some(stage) = &mut self.stage {
            let filled = stage.filled;
            stage.window[..filled].fill(0);
        }
    }

    /// Forgets all history (as if newly built).
    pub fn reset(&mut self) {
        if let Some(stage) = &mut self.stage {
            stage.reset();
        }
    }
}

impl std::fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamResampler")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("delay_ms", &self.delay_ms())
            .finish_non_exhaustive()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// `up / down`: the ratio `to / from`, reduced.
fn reduced_ratio(from: u32, to: u32) -> (usize, usize) {
    let g = gcd(from, to);
    ((to / g) as usize, (from / g) as usize)
}

/// The design of conversion `from -> to` (two different rates).
fn filter_spec(from: u32, to: u32) -> FilterSpec {
    let (up, down) = reduced_ratio(from, to);
    if (up, down) == (2, 1) {
        // why: 8 -> 16 kHz is the busiest conversion. A half-band filter (cutoff exactly at
        // the input's Nyquist frequency, centred on a sample) makes every even output the input
        // itself, delayed, so only the odd outputs are computed: half the work, for a transition
        // band that is symmetric around that frequency (at 8 kHz, 3.4 kHz passes and its image
        // at 4.6 kHz is rejected). Every 2× interpolation gets it (24 -> 48 kHz too).
        return FilterSpec { up, taps: HALF_BAND_TAPS, cutoff: 0.5, beta: HALF_BAND_BETA, odd_length: true };
    }
    let lower = from.min(to);
    let taps = BASE_TAPS * from.div_ceil(lower) as usize;
    let cutoff_hz = f64::from(lower * CUTOFF_PERCENT) / 200.0;
    let virtual_rate = up as f64 * f64::from(from);
    FilterSpec { up, taps, cutoff: cutoff_hz / (virtual_rate / 2.0), beta: KAISER_BETA, odd_length: false }
}

impl PolyphaseStage {
    /// A stage for a supported conversion between two different rates.
    fn new(from: u32, to: u32) -> Self {
        let (up, down) = reduced_ratio(from, to);
        let virtual_rate = up as f64 * f64::from(from);
        let conversion = CONVERSIONS.iter().position(|&c| c == (from, to));
        let conversion = conversion.expect("`StreamResampler::new` checked the conversion");
        let filter = FILTERS[conversion].get_or_init(|| PolyphaseFilter::new(&filter_spec(from, to)));
        let taps = filter.taps();
        // why: the window keeps only `taps - 1` samples between steps, so one output may not
        // advance past more input than that (at most 6 samples here, 48 -> 8 kHz, against its
        // 192 taps; every downsampler has at least 64).
        debug_assert!(down / up < taps);
        let delay_ms = filter.delay() * 1000.0 / virtual_rate;
        let mut stage = Self {
            filter,
            kernel: Kernel::detect(),
            stride: Stride { samples: down / up, branches: down % up, up },
            // why: between steps up to `taps - 1` samples of history stay, plus the samples an
            // output that is computable but not yet owed still needs (under one output stride).
            window: vec![0; taps + MAX_CHUNK + down.div_ceil(up)],
            filled: 0,
            step: Step { newest: 0, branch: 0 },
            up: up as u64,
            down: down as u64,
            phase: 0,
            delay_ms,
        };
        stage.reset();
        stage
    }

    fn reset(&mut self) {
        let history = self.filter.taps() - 1;
        // The input before the stream started is silence; output 0 is centred on input 0.
        self.window[..history].fill(0);
        self.filled = history;
        self.step = Step { newest: history, branch: 0 };
        self.phase = 0;
    }

    /// Resamples at most `MAX_CHUNK` samples; writes exactly the outputs they are owed.
    fn process_chunk(&mut self, chunk: &[i16], output: &mut [i16]) -> usize {
        let n = chunk.len();
        self.window[self.filled..self.filled + n].copy_from_slice(chunk);
        self.filled += n;

        // Exact count: floor(N * up / down) in total, tracked without overflow as N * up mod down.
        let total = self.phase + n as u64 * self.up;
        let owed = (total / self.down) as usize;
        self.phase = total % self.down;
        kernel::run(
            self.kernel,
            &self.window[..self.filled],
            self.filter,
            self.stride,
            &mut self.step,
            &mut output[..owed],
        );

        // Keep what the next output's window reaches back to.
        let oldest = self.step.newest + 1 - self.filter.taps();
        self.window.copy_within(oldest..self.filled, 0);
        self.filled -= oldest;
        self.step.newest -= oldest;
        owed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filters_of_the_original_pairs_are_unchanged() {
        // The design before it was generalised to 16 and 24 kHz carriers, spelled out: a
        // 3880 Hz cutoff, `32 × ceil(from / 8000)` taps, and the 8 -> 16 kHz half-band filter.
        let half_band = FilterSpec { up: 2, taps: 32, cutoff: 0.5, beta: 7.3, odd_length: true };
        assert_eq!(filter_spec(8_000, 16_000), half_band);
        for (from, to) in
            [(8_000, 24_000), (8_000, 48_000), (16_000, 8_000), (22_050, 8_000), (24_000, 8_000)]
                .into_iter()
                .chain([(44_100, 8_000), (48_000, 8_000)])
        {
            let (up, _) = reduced_ratio(from, to);
            let virtual_rate = up as f64 * f64::from(from);
            let original = FilterSpec {
                up,
                taps: 32 * (from as usize).div_ceil(8_000),
                cutoff: 3880.0 / (virtual_rate / 2.0),
                beta: 7.3,
                odd_length: false,
            };
            assert_eq!(filter_spec(from, to), original, "{from} -> {to}");
        }
    }

    #[test]
    fn forgotten_input_is_silence_and_the_count_stays_exact() {
        let tone =
            |n: usize| -> Vec<i16> { (0..n).map(|i| (8_000.0 * (i as f64 * 0.05).sin()) as i16).collect() };
        for (from, to) in CONVERSIONS {
            let r = StreamResampler::new(from, to).unwrap();
            let (up, down) = reduced_ratio(from, to);
            let mut out = vec![0; r.max_output_len(10 * down + 2_001)];
            // After a multiple of `down` samples: the output after is a fresh stream's.
            let (before, after) = (tone(10 * down), tone(2_000));
            let mut spliced = StreamResampler::new(from, to).unwrap();
            spliced.process(&before, &mut out).unwrap();
            spliced.forget_input();
            let n = spliced.process(&after, &mut out).unwrap();
            let mut fresh = StreamResampler::new(from, to).unwrap();
            let mut expected = vec![0; r.max_output_len(10 * down + 2_001)];
            let m = fresh.process(&after, &mut expected).unwrap();
            assert_eq!(out[..n], expected[..m], "{from} -> {to}");
            // After any length: the count is the whole stream's, and the output after is that of
            // a stream whose input so far was silence.
            let mut odd = StreamResampler::new(from, to).unwrap();
            let first = odd.process(&tone(10 * down + 1), &mut out).unwrap();
            odd.forget_input();
            let second = odd.process(&after, &mut out).unwrap();
            assert_eq!(first + second, (10 * down + 1 + after.len()) * up / down, "{from} -> {to}");
            let mut silent = StreamResampler::new(from, to).unwrap();
            silent.process(&vec![0; 10 * down + 1], &mut expected).unwrap();
            let m = silent.process(&after, &mut expected).unwrap();
            assert_eq!(out[..second], expected[..m], "{from} -> {to}");
        }
    }

    #[test]
    fn every_conversion_fits_its_window_and_has_an_unrolled_kernel() {
        for (from, to) in CONVERSIONS {
            let spec = filter_spec(from, to);
            let (up, down) = reduced_ratio(from, to);
            assert!(down / up < spec.taps, "{from} -> {to}: {down}/{up} against {} taps", spec.taps);
            assert!([32, 64, 96, 192].contains(&spec.taps), "{from} -> {to}: {} taps", spec.taps);
            // The cutoff is 0.97 × the lower rate's Nyquist frequency (the half-band: exactly it).
            let cutoff_hz = spec.cutoff * up as f64 * f64::from(from) / 2.0;
            let nyquist = f64::from(from.min(to)) / 2.0;
            let expected = if spec.odd_length { 1.0 } else { 0.97 };
            assert!((cutoff_hz / nyquist - expected).abs() < 1e-12, "{from} -> {to}: {cutoff_hz} Hz");
        }
    }
}
