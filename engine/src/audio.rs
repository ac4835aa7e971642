//! The carrier's audio format: the rate and the frame every stage counts in.
//!
//! Telephone carriers send caller audio and expect agent audio as 8 kHz mono, in 20 ms frames.
//! The pipeline's positions, queues, marks and played positions count samples at this rate, and
//! stream times (the carrier's timestamps, event positions) are milliseconds of it.

/// The carrier's sample rate, Hz: caller audio arrives at it, agent audio is resampled to it.
pub const CARRIER_RATE: u32 = 8_000;

/// Carrier samples per millisecond: turns stream times (ms) into sample positions and back.
pub const SAMPLES_PER_MS: u64 = CARRIER_RATE as u64 / 1000;

/// Length of one carrier frame (a Twilio `media` message), µs.
pub const FRAME_US: u64 = 20_000;

/// Samples in one carrier frame (20 ms at 8 kHz); as G.711, one byte each.
pub const FRAME_SAMPLES: usize = (FRAME_US / 1000 * SAMPLES_PER_MS) as usize;

/// A sample computed in `f32`, rounded half away from zero like `f32::round` but without its
/// libm call (baseline x86-64 has no rounding instruction); `as` truncates and saturates, so a
/// value out of range clips instead of wrapping around. (One difference: ±0.49999997, the
/// largest `f32` under a half, gives ±1, its sum with 0.5 rounding up to 1.)
#[inline(always)]
pub(crate) fn to_i16(v: f32) -> i16 {
    (v + 0.5f32.copysign(v)) as i16
}
