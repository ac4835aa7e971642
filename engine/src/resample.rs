//! Streaming sample-rate conversion between the carrier's 8 kHz and the agent's rates.
//!
//! [`StreamResampler`] wraps a [`rubato::Async`] windowed-sinc resampler configured as a fixed
//! polyphase filter, and adds what a telephone stream needs on top of it: any input chunk size,
//! an exact output count (PCM length always equals stream time), a fixed and reported delay, and
//! no allocation after construction.
//!
//! # Filter
//!
//! Every supported ratio is rational with a small denominator (`to / from = a / b`), so every
//! output sample falls exactly on one of `a` sub-sample phases of the input. The resampler uses
//! `SincInterpolationType::Nearest` with `oversampling_factor = a`: each output is one dot
//! product with one precomputed filter phase, with no interpolation between phases, which makes
//! it an exact synchronous polyphase FIR (no drift, no interpolation error).
//!
//! The filter is a Blackman-windowed sinc with its cutoff at 0.97 × 4 kHz, `32 × ceil(from / 8000)`
//! taps long at the input rate (32 at 8 kHz, 192 at 48 kHz): the passband is flat to 3.4 kHz
//! (−0.13 dB), everything that would alias into 0–3.4 kHz (≥ 4.6 kHz) is attenuated by more than
//! 70 dB, and the filter's group delay is 2 ms (2.2 ms from 22.05/44.1 kHz).
//!
//! 8 kHz → 16 kHz, the busiest conversion, uses a half-band filter instead (cutoff exactly at
//! 4 kHz). Its even output phase is then the input itself, delayed, so rubato only computes the
//! odd phase: a half-sample interpolator, run as a ratio-1 resampler with two filter phases of
//! which it always uses the half-sample one. That roughly halves the CPU cost; the passband is
//! flat to ±0.01 dB and every image stays below −70 dB, with a 2.75 ms delay.
//!
//! # Streaming
//!
//! Each `process` call hands rubato exactly the samples it was given (rubato's chunk size is set
//! per call, up to an internal maximum), so rubato produces every output whose filter window is
//! complete. Those outputs go through a tiny FIFO that was primed with a few zeros, and the caller
//! receives exactly `floor(N * to / from)` samples in total after `N` input samples. The output is
//! therefore the same whatever the chunking, and lags the input by a fixed
//! [`StreamResampler::delay_ms`].

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler, Resizable, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
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

/// The rates Trunkline resamples between (and passes through unchanged when equal).
pub const SUPPORTED_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Input samples handed to rubato per internal call; longer inputs are processed in a loop.
// why: covers a 20 ms frame at 8, 16 and 24 kHz (the rates of the caller and of TTS) in one
// rubato call; 48 kHz frames take two. Every buffer of a resampler scales with it (about 9 KiB
// per resampler at 512, 18 KiB at 1024), and each session has two.
const MAX_CHUNK: usize = 512;

/// Relative cutoff of the anti-aliasing / anti-imaging filter, as a fraction of 4 kHz (the
/// Nyquist frequency of the 8 kHz side).
// why: measured with the tap counts below to keep 3.4 kHz within 0.13 dB while putting
// 4.6 kHz (the lowest frequency that aliases into 0-3.4 kHz) below -70 dB.
const CUTOFF: f32 = 0.97;

/// Filter taps per 8 kHz of input rate.
// why: 32 taps at 8 kHz give the 3.4 -> 4.6 kHz transition band above; scaling the length with
// the input rate keeps that transition width in Hz and a constant 2 ms group delay. Multiples
// of 32 also fill rubato's AVX dot product (4 x 8 lanes per step) with no scalar tail.
const TAPS_PER_8K: usize = 32;

/// Filter taps (at 8 kHz) of the 8 kHz -> 16 kHz half-band interpolator.
// why: with the cutoff at exactly 4 kHz the transition band is symmetric around it; 40 taps
// put the image of 3.4 kHz (at 4.6 kHz) below -70 dB (32 only reach -55 dB) and keep the delay
// at 2.75 ms.
const HALF_BAND_TAPS: usize = 40;

/// How rubato's sinc filter is built for one conversion.
#[derive(Clone, Copy)]
struct FilterDesign {
    /// Filter length in input samples.
    taps: usize,
    /// Precomputed filter phases (sub-sample positions) per input sample.
    phases: usize,
    /// Cutoff relative to the lower of the two Nyquist frequencies.
    cutoff: f32,
}

/// Whether `from -> to` is a conversion Trunkline supports.
pub fn is_supported(from: u32, to: u32) -> bool {
    if from == to {
        return SUPPORTED_RATES.contains(&from);
    }
    matches!(
        (from, to),
        (8_000, 16_000 | 24_000 | 48_000) | (16_000 | 22_050 | 24_000 | 44_100 | 48_000, 8_000)
    )
}

/// A streaming mono resampler for s16 PCM that accepts any input chunk size.
///
/// Contract: after `N` input samples in total (over any chunking) exactly
/// `floor(N * to / from)` output samples have been produced in total; the output lags the input by
/// [`StreamResampler::delay_ms`]. No allocation after construction.
pub struct StreamResampler {
    from: u32,
    to: u32,
    engine: Engine,
}

/// How samples are converted.
enum Engine {
    /// Equal rates: a copy.
    PassThrough,
    /// A rubato polyphase sinc filter with its streaming bookkeeping.
    Sinc(Box<SincStage>),
    /// 8 kHz -> 16 kHz: delayed input interleaved with rubato's half-sample interpolation.
    HalfBand(Box<HalfBandStage>),
}

/// The rubato resampler plus the buffers and counters that turn it into a stream with an exact
/// output count.
struct SincStage {
    resampler: Async<f32>,
    /// Input converted to f32 for rubato (`MAX_CHUNK` samples).
    input: Vec<f32>,
    /// FIFO of rubato outputs not yet handed out; rubato writes straight into it.
    pending: Vec<f32>,
    /// Valid samples at the start of `pending`.
    pending_len: usize,
    /// Zeros the FIFO holds at start, so that it never runs dry (see [`SincStage::new`]).
    prime: usize,
    /// Output samples per `in_per_out` input samples (`to / gcd`).
    out_per_in: u64,
    /// Input samples per `out_per_in` output samples (`from / gcd`).
    in_per_out: u64,
    /// `(N * out_per_in) mod in_per_out` for the `N` input samples seen so far.
    phase: u64,
    /// Input-to-output delay in input samples.
    delay_samples: f64,
}

/// 2x interpolation with a half-band filter, whose even phase is a plain delay.
struct HalfBandStage {
    /// Rubato at ratio 1 computing the sample half-way between each pair of inputs.
    odd: SincStage,
    /// This chunk's odd-phase outputs.
    odd_out: Vec<i16>,
    /// The last `delay` input samples followed by this chunk's input.
    history: Vec<i16>,
    /// Delay of the even phase in input samples, matched to the odd phase's.
    delay: usize,
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
        let unsupported = ResampleError::UnsupportedRate { from, to };
        let engine = if from == to {
            Engine::PassThrough
        } else if (from, to) == (8_000, 16_000) {
            Engine::HalfBand(Box::new(HalfBandStage::new().ok_or(unsupported)?))
        } else {
            let g = gcd(from, to);
            let design = FilterDesign {
                taps: TAPS_PER_8K * (from as usize).div_ceil(8_000),
                // why: one precomputed filter phase per distinct output position, so `Nearest`
                // picks the exact phase for every output and nothing is interpolated.
                phases: (to / g) as usize,
                cutoff: CUTOFF,
            };
            Engine::Sinc(Box::new(SincStage::new(from, to, design).ok_or(unsupported)?))
        };
        Ok(Self { from, to, engine })
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
        match &mut self.engine {
            Engine::PassThrough => {
                output[..input.len()].copy_from_slice(input);
                input.len()
            }
            Engine::Sinc(stage) => input
                .chunks(MAX_CHUNK)
                .fold(0, |written, chunk| written + stage.process_chunk(chunk, &mut output[written..])),
            Engine::HalfBand(stage) => input
                .chunks(MAX_CHUNK)
                .fold(0, |written, chunk| written + stage.process_chunk(chunk, &mut output[written..])),
        }
    }

    /// Algorithmic delay from input to output, in milliseconds.
    ///
    /// A feature of the input at time `t` appears in the output at time `t + delay_ms()`, where
    /// output sample `k` is at time `k / output_rate` (the first outputs are zeros).
    pub fn delay_ms(&self) -> f64 {
        match &self.engine {
            Engine::PassThrough => 0.0,
            Engine::Sinc(stage) => stage.delay_samples * 1000.0 / self.from as f64,
            Engine::HalfBand(stage) => stage.delay as f64 * 1000.0 / self.from as f64,
        }
    }

    /// Forgets all history (as if newly built).
    pub fn reset(&mut self) {
        match &mut self.engine {
            Engine::PassThrough => {}
            Engine::Sinc(stage) => stage.reset(),
            Engine::HalfBand(stage) => stage.reset(),
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

/// Rounds to the nearest integer (ties to even) and saturates to the i16 range.
#[inline]
fn f32_to_i16(value: f32) -> i16 {
    // why: adding and removing 1.5 * 2^23 rounds any |x| < 2^22 to an integer in the FPU's
    // round-to-nearest mode; unlike f32::round it needs no libm call on baseline x86-64, so the
    // output loop vectorises. The clamp first makes the trick valid and saturates.
    const MAGIC: f32 = 12_582_912.0;
    let clamped = value.clamp(i16::MIN as f32, i16::MAX as f32);
    ((clamped + MAGIC) - MAGIC) as i16
}

impl SincStage {
    /// Builds the rubato stage for `from -> to` with the given filter (`None` if rubato rejects
    /// the configuration, which the supported pairs never trigger).
    ///
    /// `design.phases` must be a multiple of `to / gcd(from, to)`, so that every output falls
    /// exactly on a precomputed phase.
    fn new(from: u32, to: u32, design: FilterDesign) -> Option<Self> {
        let g = gcd(from, to);
        let out_per_in = (to / g) as usize;
        let in_per_out = (from / g) as usize;
        let taps = design.taps;
        let parameters = SincInterpolationParameters {
            sinc_len: taps,
            f_cutoff: Some(design.cutoff),
            oversampling_factor: design.phases,
            interpolation: SincInterpolationType::Nearest,
            window: WindowFunction::Blackman,
        };
        let ratio = to as f64 / from as f64;
        let resampler =
            Async::<f32>::new_sinc(ratio, 1.0, &parameters, MAX_CHUNK, 1, FixedAsync::Input).ok()?;

        // Rubato emits output `n` (1-based) once it holds the whole filter window for it, which
        // for its initial state means after `n * b / a + 2` input samples. The caller is owed
        // `floor(N * a / b)` after `N`, at most `ceil(2 * a / b)` more than rubato has; one more
        // absorbs rubato's float rounding at exact boundaries. Priming the FIFO with that many
        // zeros means it never runs dry.
        let prime = (2 * out_per_in).div_ceil(in_per_out) + 1;
        // Output `j` is rubato output `j - prime`, whose filter is centred on input sample
        // `(j - prime + 1) * b / a - taps / 2 + 1 / phases` (rubato's phase layout), while its
        // nominal time is `j * b / a`: the difference is the delay.
        let step = in_per_out as f64 / out_per_in as f64;
        let delay_samples = (prime as f64 - 1.0) * step + taps as f64 / 2.0 - 1.0 / design.phases as f64;

        // why: after each chunk at most `prime + 1` samples stay pending, and one rubato call
        // adds at most `output_frames_max`; the slack covers rounding in that bound.
        let pending_capacity = prime + resampler.output_frames_max() + 8;
        let mut stage = Self {
            resampler,
            input: vec![0.0; MAX_CHUNK],
            pending: vec![0.0; pending_capacity],
            pending_len: 0,
            prime,
            out_per_in: out_per_in as u64,
            in_per_out: in_per_out as u64,
            phase: 0,
            delay_samples,
        };
        stage.reset();
        Some(stage)
    }

    fn reset(&mut self) {
        self.resampler.reset();
        self.pending[..self.prime].fill(0.0);
        self.pending_len = self.prime;
        self.phase = 0;
    }

    /// Resamples at most `MAX_CHUNK` samples; writes exactly the outputs they are owed.
    fn process_chunk(&mut self, chunk: &[i16], output: &mut [i16]) -> usize {
        let n = chunk.len();
        for (dst, &src) in self.input[..n].iter_mut().zip(chunk) {
            *dst = f32::from(src);
        }
        // why: giving rubato exactly this call's samples (rather than fixed chunks) means no
        // extra buffering delay, and every output whose window is complete is computed now.
        if n > 0 && self.resampler.set_chunk_size(n).is_ok() {
            let produced = self.run_rubato(n);
            debug_assert!(produced.is_some(), "rubato rejected a call it was sized for");
            self.pending_len += produced.unwrap_or(0);
        }

        // Exact count: floor(N * a / b) in total, tracked without overflow as N * a mod b.
        let total = self.phase + n as u64 * self.out_per_in;
        let owed = (total / self.in_per_out) as usize;
        self.phase = total % self.in_per_out;

        let available = owed.min(self.pending_len);
        debug_assert_eq!(available, owed, "resampler FIFO ran dry");
        for (dst, &src) in output[..available].iter_mut().zip(&self.pending[..available]) {
            *dst = f32_to_i16(src);
        }
        // Never reached (the priming guarantees it), but the count contract holds regardless.
        output[available..owed].fill(0);
        self.pending.copy_within(available..self.pending_len, 0);
        self.pending_len -= available;
        owed
    }

    /// One rubato call on `self.input[..n]`, appending to the FIFO; returns the samples added.
    fn run_rubato(&mut self, n: usize) -> Option<usize> {
        let input = InterleavedSlice::new(&self.input[..n], 1, n).ok()?;
        let capacity = self.pending.len();
        let mut output = InterleavedSlice::new_mut(&mut self.pending[..], 1, capacity).ok()?;
        let indexing = Indexing {
            input_offset: 0,
            output_offset: self.pending_len,
            partial_len: None,
            active_channels_mask: None,
        };
        let (_, produced) = self.resampler.process_into_buffer(&input, &mut output, Some(&indexing)).ok()?;
        Some(produced)
    }
}

impl HalfBandStage {
    fn new() -> Option<Self> {
        // Two filter phases at ratio 1 from an integer start: rubato always picks phase 0,
        // which rubato centres half a sample before the integer one, i.e. the half-way point.
        let design = FilterDesign {
            taps: HALF_BAND_TAPS,
            phases: 2,
            // why: a cutoff of exactly half the input rate makes the filter half-band: its
            // integer phase is a unit impulse, so the even outputs need no arithmetic at all.
            cutoff: 1.0,
        };
        let odd = SincStage::new(8_000, 8_000, design)?;
        // The odd output `m` is the input at `m - odd.delay_samples`; as the 16 kHz sample
        // `2m + 1` it belongs at `m + 1/2 - delay`, so the stage delay is that plus 1/2 — an
        // integer, which the even phase reproduces by delaying the input itself.
        let delay = (odd.delay_samples + 0.5).round() as usize;
        debug_assert_eq!(delay as f64, odd.delay_samples + 0.5);
        Some(Self { odd, odd_out: vec![0; MAX_CHUNK], history: vec![0; delay + MAX_CHUNK], delay })
    }

    fn reset(&mut self) {
        self.odd.reset();
        self.history.fill(0);
    }

    /// Interpolates at most `MAX_CHUNK` samples; writes exactly twice as many.
    fn process_chunk(&mut self, chunk: &[i16], output: &mut [i16]) -> usize {
        let n = chunk.len();
        let produced = self.odd.process_chunk(chunk, &mut self.odd_out[..n]);
        debug_assert_eq!(produced, n);
        self.history[self.delay..self.delay + n].copy_from_slice(chunk);
        let pairs = output[..2 * n].chunks_exact_mut(2);
        for ((pair, &even), &odd) in pairs.zip(&self.history[..n]).zip(&self.odd_out[..n]) {
            pair[0] = even;
            pair[1] = odd;
        }
        self.history.copy_within(n..n + self.delay, 0);
        2 * n
    }
}
