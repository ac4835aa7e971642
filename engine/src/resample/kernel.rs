//! The inner loop of every conversion: fixed-point dot products of input windows with filter
//! branches, compiled twice and chosen once per process by what the CPU supports.
//!
//! The loop is written as plain integer Rust: an `i16 × i16` product summed into `i32` is what
//! `pmaddwd` computes, and integer addition is associative, so the compiler vectorises it without
//! `unsafe` intrinsics (8 products per instruction on baseline x86-64, 16 with AVX2). Integer
//! arithmetic is exact, so both builds give bit-identical output.

use super::filter::PolyphaseFilter;
pub(super) use crate::simd::Kernel;

/// One output sample's worth of work: where its window ends and which branch it uses.
pub(super) struct Step {
    /// Index (in the window buffer) of the newest input sample of the next output.
    pub newest: usize,
    /// Branch of the next output.
    pub branch: usize,
}

/// The fixed walk from one output to the next (`down / up` input samples, in whole samples and
/// branches).
#[derive(Clone, Copy)]
pub(super) struct Stride {
    /// Whole input samples per output (`down / up`).
    pub samples: usize,
    /// Branches per output beyond the whole samples (`down % up`).
    pub branches: usize,
    /// Branch count (`up`).
    pub up: usize,
}

/// Computes `count` outputs starting at `step`, each the rounded, saturated dot product of
/// `taps` input samples ending at `step.newest` with the step's branch; advances `step`.
///
/// `window` must hold every sample read.
pub(super) fn run(
    kernel: Kernel,
    window: &[i16],
    filter: &PolyphaseFilter,
    stride: Stride,
    step: &mut Step,
    output: &mut [i16],
) {
    kernel.run(
        #[inline(always)]
        || run_sized(window, filter, stride, step, output),
    );
}

/// Picks a build of the loop with the tap count known at compile time.
#[inline(always)]
fn run_sized(window: &[i16], filter: &PolyphaseFilter, stride: Stride, step: &mut Step, output: &mut [i16]) {
    // why: with a constant length the dot product is fully unrolled (two AVX2 multiply-adds
    // for 32 taps) and its bounds are checked once per output, not per chunk; these are the tap
    // counts the design rule gives (1, 2, 3 or 6 × `BASE_TAPS`; a unit test checks every pair).
    match filter.taps() {
        32 => run_generic::<32>(window, filter, stride, step, output),
        64 => run_generic::<64>(window, filter, stride, step, output),
        96 => run_generic::<96>(window, filter, stride, step, output),
        192 => run_generic::<192>(window, filter, stride, step, output),
        _ => run_generic::<0>(window, filter, stride, step, output),
    }
}

/// The loop for `TAPS` taps per branch, or any tap count when `TAPS` is 0.
#[inline(always)]
fn run_generic<const TAPS: usize>(
    window: &[i16],
    filter: &PolyphaseFilter,
    stride: Stride,
    step: &mut Step,
    output: &mut [i16],
) {
    let (taps, shift) = (filter.taps(), filter.shift());
    debug_assert!(TAPS == 0 || TAPS == taps);
    let round = 1i32 << (shift - 1);
    for out in output.iter_mut() {
        let start = step.newest + 1 - taps;
        let samples = &window[start..start + taps];
        *out = match filter.impulse(step.branch) {
            Some(j) => samples[j],
            None => {
                let branch = filter.branch(step.branch);
                let dot = match (<&[i16; TAPS]>::try_from(samples), <&[i16; TAPS]>::try_from(branch)) {
                    (Ok(samples), Ok(branch)) if TAPS > 0 => dot_product(samples, branch),
                    _ => dot_product(samples, branch),
                };
                ((dot + round) >> shift).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
            }
        };

        step.newest += stride.samples;
        step.branch += stride.branches;
        if step.branch >= stride.up {
            step.branch -= stride.up;
            step.newest += 1;
        }
    }
}

/// `Σ a[i]·b[i]` in `i32` (the filter design keeps it from overflowing).
#[inline(always)]
fn dot_product(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum()
}

#[cfg(test)]
mod tests {
    use super::super::filter::FilterSpec;
    use super::*;

    #[test]
    fn dot_product_matches_a_plain_sum_at_every_length() {
        let mut rng = crate::test_rng::XorShift(0x9e37_79b9_7f4a_7c15);
        let mut next = || (rng.next() >> 48) as i16;
        for len in 0..70 {
            let a: Vec<i16> = (0..len).map(|_| next() / 4).collect();
            let b: Vec<i16> = (0..len).map(|_| next() / 4).collect();
            let expected: i64 = a.iter().zip(&b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
            assert_eq!(i64::from(dot_product(&a, &b)), expected, "length {len}");
        }
    }

    #[test]
    fn every_kernel_this_cpu_runs_gives_identical_output() {
        let taps = 32;
        let filter = PolyphaseFilter::new(&FilterSpec {
            up: 3,
            taps,
            cutoff: 0.97 / 3.0,
            beta: 8.0,
            odd_length: false,
        });
        let window: Vec<i16> = (0..600i32).map(|k| ((k * 104_729) % 65_535 - 32_767) as i16).collect();
        let stride = Stride { samples: 0, branches: 1, up: 3 };
        let outputs = |kernel| {
            let mut step = Step { newest: taps - 1, branch: 0 };
            let mut out = vec![0i16; 1_500];
            run(kernel, &window, &filter, stride, &mut step, &mut out);
            (out, step.newest, step.branch)
        };
        let portable = outputs(Kernel::PORTABLE);
        assert_eq!(outputs(Kernel::detect()), portable);
        assert_eq!((portable.1, portable.2), (taps - 1 + 500, 0));
    }
}
