//! Which build of a hot loop this CPU runs.
//!
//! The engine's inner loops (the resampler's dot products, the echo canceller's spectra) are
//! plain Rust that the compiler vectorises. Built for baseline x86-64 they get 4-lane SSE2
//! vectors; the same code built with AVX2 enabled gets 8 lanes. [`Kernel::run`] runs a piece of
//! code in the build the CPU supports, chosen once by [`Kernel::detect`]. The loops are written
//! lane by lane (no sum whose order the vector width would change), so both builds give
//! bit-identical results; tests compare them.
//!
//! [`max_of`], a reduction written lane by lane in the same way, is shared from here by the
//! speech detector's searches; they call it directly, so it runs in the baseline build.

/// Which build of a loop this CPU runs. Opaque: only [`Kernel::detect`] gives the AVX2 build,
/// which on a CPU without AVX2 would run instructions it does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kernel(Build);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    /// The baseline build (SSE2 on x86-64; whatever the target has elsewhere).
    Portable,
    /// Built with AVX2 enabled; chosen only when the CPU reports AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The baseline build, which every CPU of the target runs.
    pub(crate) const PORTABLE: Self = Self(Build::Portable);

    /// The fastest build this CPU can run.
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Self(Build::Avx2);
        }
        Self::PORTABLE
    }

    /// Runs `body` in this build: `body` is inlined into a function built with the kernel's
    /// features, so the loops it contains (and the `#[inline(always)]` functions it calls) are
    /// compiled with them. Mark the closure `#[inline(always)]`: a closure holding a large body
    /// is otherwise left a function of its own, built for the baseline (seen in test builds).
    #[inline(always)]
    pub(crate) fn run<R>(self, body: impl FnOnce() -> R) -> R {
        match self.0 {
            Build::Portable => body(),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Build::Avx2` is only ever built by `Kernel::detect` after the CPU
            // reported AVX2 (the field is private to this module), which is the one requirement
            // of calling a function with that target feature.
            Build::Avx2 => unsafe { with_avx2(body) },
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn with_avx2<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// The largest of `values`, 0 for none over it (spectra: energies, never negative): eight running
/// maxima, which the compiler keeps in vector registers (two of SSE2's in the baseline build), so
/// the comparisons run eight at a time. Shared by the tone lines' search and the pitch search.
pub(crate) fn max_of(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            // As x86's maxps: no NaN to order, and the compiler emits one per eight.
            *lane = if v > *lane { v } else { *lane };
        }
    }
    chunks.remainder().iter().chain(&lanes).fold(0.0, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    #[test]
    fn max_of_is_the_largest_value_or_zero_at_every_length() {
        let mut rng = XorShift(7);
        for len in 0..40 {
            for _ in 0..20 {
                let values: Vec<f32> = (0..len).map(|_| rng.below(2000) as f32 / 1000.0 - 0.5).collect();
                let expected = values.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
                assert_eq!(max_of(&values), expected, "{values:?}");
            }
        }
        // The largest in the remainder past the last whole eight, and in each lane.
        let mut values = [1.0f32; 19];
        for at in 0..values.len() {
            values[at] = 3.0;
            assert_eq!(max_of(&values), 3.0);
            values[at] = 1.0;
        }
        assert_eq!(max_of(&[-1.0, -2.0]), 0.0);
    }
}
