//! The adaptive filter's real FFT, its spectra kept with real and imaginary parts apart.
//!
//! The filter multiplies spectra bin by bin; over interleaved `Complex` pairs the compiler must
//! shuffle the halves of every pair apart and back, and those loops took about twice as long. So
//! its spectra are [`Bins`]: real parts, then imaginary parts.
//!
//! A real transform of [`FFT`] points is a complex one of half as many (rustfft's), the even
//! samples as real parts and the odd ones as imaginary, and a pass that separates the two halves'
//! spectra and joins them (for the inverse: the reverse). realfft makes that pass over
//! interleaved pairs, one bin at a time, and it took longer than the complex transform itself
//! (realfft's own code was 15 % of an echo-reduced call's time). Here the pass reads and writes
//! the split layout directly, in loops the compiler vectorises; a test holds both directions to
//! realfft's results.

use std::sync::{Arc, OnceLock};

use rustfft::Fft;
use rustfft::num_complex::Complex;

use crate::fft::shared_complex_plans;

/// Points of the transform: two blocks of 160 samples (overlap-save).
pub(super) const FFT: usize = 320;
/// Points of the complex transform underneath.
const HALF: usize = FFT / 2;
/// Bins of a real signal's spectrum (0 to half the sample rate).
pub(super) const BINS: usize = HALF + 1;
/// Bins as kept: padded to a multiple of 8, so that every loop over them vectorises whole (the
/// padding stays zero).
pub(super) const PADDED: usize = BINS.next_multiple_of(8);
/// Undoes the scaling of a forward and an inverse transform (neither is normalised).
pub(super) const SCALE: f32 = 1.0 / FFT as f32;

/// A spectrum with its real and imaginary parts apart.
#[derive(Clone, Copy)]
pub(super) struct Bins {
    pub(super) re: [f32; PADDED],
    pub(super) im: [f32; PADDED],
}

/// The spectrum of silence.
pub(super) const SILENT: Bins = Bins { re: [0.0; PADDED], im: [0.0; PADDED] };

/// `e^(-2πik/FFT)` for each bin `k`, shared by every transform.
struct Twiddles {
    re: [f32; BINS],
    im: [f32; BINS],
}

fn twiddles() -> &'static Twiddles {
    static TWIDDLES: OnceLock<Twiddles> = OnceLock::new();
    TWIDDLES.get_or_init(|| {
        let angle = |k: usize| -2.0 * std::f64::consts::PI * k as f64 / FFT as f64;
        let mut w = Twiddles {
            re: std::array::from_fn(|k| angle(k).cos() as f32),
            im: std::array::from_fn(|k| angle(k).sin() as f32),
        };
        // Exactly -1 (sin(-π) in floating point is 1e-16, not 0): the last bin of a real
        // signal's spectrum then comes out real.
        (w.re[HALF], w.im[HALF]) = (-1.0, 0.0);
        w
    })
}

/// The plans and buffers of one filter's transforms.
pub(super) struct Transform {
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    twiddles: &'static Twiddles,
    /// The complex transform's points (even samples real, odd ones imaginary).
    half: [Complex<f32>; HALF],
    scratch: Box<[Complex<f32>]>,
}

impl Transform {
    /// Plans are shared; the buffers are allocated here (not on the audio path).
    pub(super) fn new() -> Self {
        let (forward, inverse) = shared_complex_plans(HALF);
        let scratch = forward.get_inplace_scratch_len().max(inverse.get_inplace_scratch_len());
        Self {
            forward,
            inverse,
            twiddles: twiddles(),
            half: [Complex::new(0.0, 0.0); HALF],
            scratch: vec![Complex::default(); scratch].into_boxed_slice(),
        }
    }

    /// The spectrum of `time` into `x` (not normalised: a transform's usual sum), its padding
    /// zero. The caller's buffers are read and written in place: a block's spectra are never
    /// copied.
    #[inline(always)]
    pub(super) fn forward(&mut self, time: &[f32; FFT], x: &mut Bins) {
        for (z, pair) in self.half.iter_mut().zip(time.chunks_exact(2)) {
            *z = Complex::new(pair[0], pair[1]);
        }
        self.forward.process_with_scratch(&mut self.half, &mut self.scratch);
        // The complex spectrum `Z`, split, with `Z[HALF]` = `Z[0]` (it is periodic).
        let (mut zr, mut zi) = ([0.0f32; BINS], [0.0f32; BINS]);
        for (k, z) in self.half.iter().enumerate() {
            (zr[k], zi[k]) = (z.re, z.im);
        }
        (zr[HALF], zi[HALF]) = (zr[0], zi[0]);
        let w = self.twiddles;
        for k in 0..BINS {
            // `Z[k]` and `conj(Z[HALF - k])` give the even samples' spectrum `E` (their half sum)
            // and the odd ones' `O` (their half difference over j); `X = E + w^k O`.
            let (ar, ai, br, bi) = (zr[k], zi[k], zr[HALF - k], -zi[HALF - k]);
            let (er, ei) = (0.5 * (ar + br), 0.5 * (ai + bi));
            let (or, oi) = (0.5 * (ai - bi), -0.5 * (ar - br));
            x.re[k] = er + w.re[k] * or - w.im[k] * oi;
            x.im[k] = ei + w.re[k] * oi + w.im[k] * or;
        }
        x.re[BINS..].fill(0.0);
        x.im[BINS..].fill(0.0);
    }

    /// The signal whose spectrum is `x`, into `time`, [`FFT`] times too large: callers scale by
    /// [`SCALE`] only what they use. `x` is taken as a real signal's spectrum (its end bins'
    /// imaginary parts, zero but for rounding, add only rounding).
    #[inline(always)]
    pub(super) fn inverse(&mut self, x: &Bins, time: &mut [f32; FFT]) {
        let w = self.twiddles;
        for (k, z) in self.half.iter_mut().enumerate() {
            // `X[k] + conj(X[HALF - k])` is `2E`, their difference `2 w^k O`: back to
            // `Z = 2(E + jO)`, whose inverse is `FFT` times the signal, even samples real.
            let (ar, ai, br, bi) = (x.re[k], x.im[k], x.re[HALF - k], -x.im[HALF - k]);
            let (sr, si, dr, di) = (ar + br, ai + bi, ar - br, ai - bi);
            let (or, oi) = (dr * w.re[k] + di * w.im[k], di * w.re[k] - dr * w.im[k]);
            *z = Complex::new(sr - oi, si + or);
        }
        self.inverse.process_with_scratch(&mut self.half, &mut self.scratch);
        for (pair, z) in time.chunks_exact_mut(2).zip(&self.half) {
            (pair[0], pair[1]) = (z.re, z.im);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;
    use realfft::RealFftPlanner;

    fn signal(seed: u64) -> [f32; FFT] {
        let mut rng = XorShift(seed);
        std::array::from_fn(|_| (rng.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
    }

    #[test]
    fn both_directions_match_realfft() {
        let mut planner = RealFftPlanner::<f32>::new();
        let (r2c, c2r) = (planner.plan_fft_forward(FFT), planner.plan_fft_inverse(FFT));
        let mut t = Transform::new();
        for seed in [3, 5, 8] {
            let x = signal(seed);
            let mut input = x.to_vec();
            let mut expected = r2c.make_output_vec();
            r2c.process(&mut input, &mut expected).unwrap();
            // Stale values everywhere, padding included: all are written.
            let mut bins = Bins { re: [7.0; PADDED], im: [7.0; PADDED] };
            t.forward(&x, &mut bins);
            let peak = expected.iter().map(|c| c.norm()).fold(0.0f32, f32::max);
            for (k, e) in expected.iter().enumerate() {
                let d = (Complex::new(bins.re[k], bins.im[k]) - e).norm();
                assert!(d < 1e-5 * peak, "bin {k}: {} {} against {e}", bins.re[k], bins.im[k]);
            }
            assert!(bins.re[BINS..].iter().chain(&bins.im[BINS..]).all(|&v| v == 0.0), "padding");
            assert!(bins.im[0] == 0.0 && bins.im[HALF] == 0.0, "a real signal's end bins are real");

            let mut spectrum = expected.clone();
            let mut back = c2r.make_output_vec();
            c2r.process(&mut spectrum, &mut back).unwrap();
            let mut time = [7.0; FFT];
            t.inverse(&bins, &mut time);
            let peak = back.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            for (n, (&got, &want)) in time.iter().zip(&back).enumerate() {
                assert!((got - want).abs() < 1e-5 * peak, "sample {n}: {got} against {want}");
                assert!(
                    (got * SCALE - x[n]).abs() < 1e-5,
                    "sample {n} back: {} against {}",
                    got * SCALE,
                    x[n]
                );
            }
        }
    }
}
