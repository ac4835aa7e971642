//! Streaming sample-rate conversion (stub, being written).

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

/// A streaming mono resampler for s16 PCM that accepts any input chunk size.
///
/// Contract: after `N` input samples in total (over any chunking) exactly
/// `floor(N * to / from)` output samples have been produced in total; the output lags the input by
/// [`StreamResampler::delay_ms`]. No allocation after construction.
pub struct StreamResampler {
    from: u32,
    to: u32,
}

impl StreamResampler {
    /// Builds a resampler from `from` Hz to `to` Hz (equal rates give a pass-through).
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        Ok(Self { from, to })
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
        let _ = (input, output);
        todo!()
    }
    /// Algorithmic delay from input to output, in milliseconds.
    pub fn delay_ms(&self) -> f64 {
        0.0
    }
    /// Forgets all history (as if newly built).
    pub fn reset(&mut self) {}
}
