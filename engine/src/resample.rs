//! Streaming sample-rate conversion between the carrier's 8 kHz and the agent's rates.
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
//! A Kaiser-windowed sinc ([`filter`]) with its cutoff at 3.88 kHz (0.97 × the 8 kHz side's
//! Nyquist frequency), `32 × ceil(from / 8000)` taps per branch (32 at 8 kHz, 192 at 48 kHz):
//! flat to 3.4 kHz, everything that would alias into 0–3.4 kHz (≥ 4.6 kHz) strongly attenuated,
//! about 2 ms of group delay. The coefficients are 16-bit fixed point and each branch sums to
//! exactly one, so DC passes unchanged. Each rate pair's filter is designed once per process, by
//! the first resampler that needs it, and shared by every resampler of that pair (read only).
//!
//! # Cost
//!
//! The dot products are integer (`i16 × i16 → i32`, [`kernel`]), which the compiler vectorises
//! into `pmaddwd` (SSE2) or its AVX2 form, chosen at run time; 8 → 16 kHz is 320 outputs × 32
//! taps per 20 ms frame, 24 → 8 kHz is 160 × 96. Integer arithmetic is exact, so the output is
//! the same on every CPU and for every chunking of the input.
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
}

/// The rates Trunkline resamples between (and passes through unchanged when equal). Each of them
/// converts to the carrier's rate, so this is also the rates `play` accepts
/// ([`crate::pipeline::session::PLAY_RATES`]).
pub const SUPPORTED_RATES: [u32; 6] = [CARRIER_RATE, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Input samples taken per internal step; longer inputs are processed in a loop.
// why: covers a 20 ms frame at 8, 16 and 24 kHz (the rates of the caller and of TTS) in one
// step; 48 kHz frames take two. The window buffer is this plus the filter's history.
const MAX_CHUNK: usize = 512;

/// Filter cutoff in Hz: 0.97 × 4 kHz, the Nyquist frequency of the 8 kHz side.
// why: measured with the tap counts and window below to keep 3.4 kHz within 0.15 dB while
// putting 4.6 kHz (the lowest frequency that aliases into 0-3.4 kHz) far down.
const CUTOFF_HZ: f64 = 3880.0;

/// Filter taps (per branch) per 8 kHz of input rate.
// why: 32 taps at 8 kHz give the 3.4 -> 4.6 kHz transition band above; scaling the length with
// the input rate keeps that transition width in Hz and a constant ~2 ms group delay. A multiple
// of 16 fills the vectorised dot product with no tail.
const TAPS_PER_8K: usize = 32;

/// Kaiser window shape.
// why: trades the window's main lobe (transition width) against its sidelobes (stopband
// depth); see docs/architecture.md (Resampler) for what it measures.
const KAISER_BETA: f64 = 7.3;

/// Taps per branch of the 8 kHz -> 16 kHz half-band interpolator.
// why: with the cutoff at 4 kHz the transition band is 3.4 -> 4.6 kHz, centred on it; see
// docs/architecture.md (Resampler) for the passband and image levels this length measures.
const HALF_BAND_TAPS: usize = 32;

/// Kaiser window shape of the half-band interpolator.
const HALF_BAND_BETA: f64 = 7.3;

/// Every conversion between two different rates that Trunkline makes, `(from, to)`: the carrier's
/// rate up to the agent's, and every play rate down to the carrier's.
const CONVERSIONS: [(u32, u32); 8] = [
    (CARRIER_RATE, 16_000),
    (CARRIER_RATE, 24_000),
    (CARRIER_RATE, 48_000),
    (16_000, CARRIER_RATE),
    (22_050, CARRIER_RATE),
    (24_000, CARRIER_RATE),
    (44_100, CARRIER_RATE),
    (48_000, CARRIER_RATE),
];

/// Each conversion's filter, designed by the first resampler that needs it and then shared.
// why: a filter is fixed by its rate pair and only read, and the large ones are 22.05 and
// 44.1 kHz (160 and 80 branches, 30 KiB of coefficients each): one copy per process lets every
// session build a resampler for every play rate up front (so the worker never builds one) within
// the per-session memory budget.
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
    /// Supported: 8 kHz to and from 16, 24 and 48 kHz; 16, 22.05, 24, 44.1 and 48 kHz to 8 kHz;
    /// and any rate of [`SUPPORTED_RATES`] to itself.
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
    ///
    /// # Panics
    /// If `output` is shorter than [`Self::max_output_len`] of `input.len()`.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> usize {
        assert!(
            output.len() >= self.max_output_len(input.len()),
            "output buffer of {} samples is shorter than max_output_len({}) = {}",
            output.len(),
            input.len(),
            self.max_output_len(input.len())
        );
        match &mut self.stage {
            None => {
                output[..input.len()].copy_from_slice(input);
                input.len()
            }
            Some(stage) => input
                .chunks(MAX_CHUNK)
                .fold(0, |written, chunk| written + stage.process_chunk(chunk, &mut output[written..])),
        }
    }

    /// Algorithmic delay from input to output, in milliseconds.
    ///
    /// A feature of the input at time `t` appears in the output at time `t + delay_ms()`, where
    /// output sample `k` is at time `k / output_rate` (the first outputs are zeros).
    pub fn delay_ms(&self) -> f64 {
        self.stage.as_ref().map_or(0.0, |stage| stage.delay_ms)
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

/// Designs the filter of conversion `from -> to` (two different supported rates).
fn design_filter(from: u32, to: u32) -> PolyphaseFilter {
    let (up, _) = reduced_ratio(from, to);
    let taps = TAPS_PER_8K * (from as usize).div_ceil(8_000);
    let virtual_rate = up as f64 * f64::from(from);
    let spec = if (from, to) == (CARRIER_RATE, 16_000) {
        // why: the busiest conversion. A half-band filter (cutoff exactly at 4 kHz, centred
        // on a sample) makes every even output the input itself, delayed, so only the odd
        // outputs are computed: half the work, for a transition band that is symmetric
        // around 4 kHz (3.4 kHz passes, its image at 4.6 kHz is rejected).
        FilterSpec { up, taps: HALF_BAND_TAPS, cutoff: 0.5, beta: HALF_BAND_BETA, odd_length: true }
    } else {
        FilterSpec {
            up,
            taps,
            cutoff: CUTOFF_HZ / (virtual_rate / 2.0),
            beta: KAISER_BETA,
            odd_length: false,
        }
    };
    PolyphaseFilter::new(&spec)
}

impl PolyphaseStage {
    /// A stage for a supported conversion between two different rates.
    fn new(from: u32, to: u32) -> Self {
        let (up, down) = reduced_ratio(from, to);
        let virtual_rate = up as f64 * f64::from(from);
        let conversion = CONVERSIONS.iter().position(|&c| c == (from, to));
        let conversion = conversion.expect("`StreamResampler::new` checked the conversion");
        let filter = FILTERS[conversion].get_or_init(|| design_filter(from, to));
        let taps = filter.taps();
        // why: the window keeps only `taps - 1` samples between steps, so one output may not
        // advance past more input than that (at most 6 samples here, against 32+ taps).
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
