//! The anti-aliasing / anti-imaging filter of a rational conversion, as fixed-point polyphase
//! branches.
//!
//! A conversion by `up / down` (reduced) is, in principle: insert `up - 1` zeros between input
//! samples, low-pass at the lower of the two Nyquist frequencies, keep every `down`-th sample.
//! The low-pass runs at the virtual rate `up × from` and is `up × taps` long; splitting it into
//! `up` branches of `taps` coefficients (branch `p` holds prototype taps `p, p + up, p + 2·up…`)
//! means each output is one `taps`-long dot product of real input samples with one branch, and
//! the zeros are never multiplied.
//!
//! A half-band interpolator (2×, cutoff exactly at the input's Nyquist frequency, odd length)
//! has every other prototype tap at zero except its centre: one of its two branches is a unit
//! impulse, i.e. a plain delay of the input, and is copied instead of computed.

/// A windowed-sinc low-pass split into polyphase branches of Q-format `i16` coefficients.
pub(super) struct PolyphaseFilter {
    /// Branch `p` at `[p * taps, (p + 1) * taps)`, reversed: its coefficient `j` multiplies the
    /// input sample `taps - 1 - j` before the newest one in the window.
    coefficients: Vec<i16>,
    /// Coefficients per branch (input samples per dot product).
    taps: usize,
    /// Fraction bits of the coefficients.
    shift: u32,
    /// Per branch: `Some(j)` if it is a unit impulse at (reversed) position `j`, whose output
    /// is the input sample there, unscaled.
    impulses: Vec<Option<usize>>,
    /// Group delay in samples of the virtual `up × from` rate.
    delay: f64,
}

/// Design parameters for [`PolyphaseFilter::new`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct FilterSpec {
    /// Branches (the reduced `to / gcd`).
    pub up: usize,
    /// Coefficients per branch.
    pub taps: usize,
    /// Cutoff as a fraction of the virtual rate's Nyquist frequency (0 < cutoff ≤ 1).
    pub cutoff: f64,
    /// Kaiser window shape parameter.
    pub beta: f64,
    /// Centre the prototype on a sample (length `up × taps - 1`, a zero appended): with
    /// `up = 2` and `cutoff = 0.5` that makes it half-band.
    pub odd_length: bool,
}

impl PolyphaseFilter {
    /// Designs the prototype, splits it into branches, and quantises each branch so that it sums
    /// to exactly one (DC passes unchanged, whatever the branch).
    pub(super) fn new(spec: &FilterSpec) -> Self {
        let FilterSpec { up, taps, cutoff, beta, odd_length } = *spec;
        let length = up * taps;
        let designed = if odd_length { length - 1 } else { length };
        let centre = (designed - 1) as f64 / 2.0;
        let window_norm = bessel_i0(beta);
        let prototype: Vec<f64> = (0..length)
            .map(|n| {
                if n >= designed {
                    return 0.0;
                }
                let x = n as f64 - centre;
                let ratio = x / (centre + 1.0);
                let window = bessel_i0(beta * (1.0 - ratio * ratio).max(0.0).sqrt()) / window_norm;
                cutoff * sinc(cutoff * x) * window
            })
            .collect();

        let branches: Vec<Vec<f64>> = (0..up)
            .map(|p| {
                let branch: Vec<f64> = (0..taps).map(|j| prototype[p + j * up]).collect();
                let sum: f64 = branch.iter().sum();
                branch.iter().map(|c| c / sum).collect()
            })
            .collect();
        // why: a branch that is a unit impulse (its other taps are zeros of the sinc, up to
        // rounding) is a delay; leaving it out of the fixed-point scaling keeps the other
        // branches at full precision (a coefficient of 1.0 would cost them a bit).
        let impulses: Vec<Option<usize>> = branches.iter().map(|branch| unit_impulse(branch)).collect();
        let computed: Vec<Vec<f64>> =
            (branches.iter().zip(&impulses)).filter(|(_, i)| i.is_none()).map(|(b, _)| b.clone()).collect();
        let shift = fraction_bits(&computed);

        let mut coefficients = vec![0i16; length];
        for (p, branch) in branches.iter().enumerate() {
            if impulses[p].is_some() {
                continue;
            }
            let reversed = &mut coefficients[p * taps..(p + 1) * taps];
            for (j, &c) in branch.iter().enumerate() {
                reversed[taps - 1 - j] = (c * f64::from(1u32 << shift)).round() as i16;
            }
            // why: rounding each coefficient leaves the branch sum a few units off 2^shift, which
            // would scale DC by up to ±0.05 % per branch and, with the branches cycling, put a
            // faint tone at the branch rate; the error goes onto the largest coefficient.
            let error = (1i32 << shift) - reversed.iter().map(|&c| i32::from(c)).sum::<i32>();
            let largest = (0..taps).max_by_key(|&j| reversed[j].unsigned_abs()).unwrap_or(0);
            reversed[largest] = (i32::from(reversed[largest]) + error) as i16;
        }
        Self { coefficients, taps, shift, impulses, delay: centre }
    }

    /// `Some(j)` if branch `p` is a unit impulse: its output is window position `j`, as is.
    #[inline]
    pub(super) fn impulse(&self, p: usize) -> Option<usize> {
        self.impulses[p]
    }

    /// Branch `p`'s coefficients, reversed (see [`Self::coefficients`]).
    #[inline]
    pub(super) fn branch(&self, p: usize) -> &[i16] {
        &self.coefficients[p * self.taps..(p + 1) * self.taps]
    }

    /// Coefficients per branch.
    pub(super) fn taps(&self) -> usize {
        self.taps
    }

    /// Fraction bits of the coefficients: a dot product is scaled by `2^shift`.
    pub(super) fn shift(&self) -> u32 {
        self.shift
    }

    /// Group delay in samples of the virtual rate (`up × from`).
    pub(super) fn delay(&self) -> f64 {
        self.delay
    }
}

/// The most fraction bits (at most 15) for which every coefficient fits an `i16` and no dot
/// product with full-scale input can overflow an `i32`.
fn fraction_bits(branches: &[Vec<f64>]) -> u32 {
    let largest = branches.iter().flatten().fold(0.0f64, |m, c| m.max(c.abs()));
    let worst_sum = branches.iter().map(|b| b.iter().map(|c| c.abs()).sum::<f64>()).fold(0.0, f64::max);
    (8..=15)
        .rev()
        .find(|&bits| {
            let scale = f64::from(1u32 << bits);
            // why: +1 per coefficient covers rounding; the margin keeps the rounding offset
            // added after the dot product from overflowing too.
            let worst_dot = (worst_sum * scale + branches[0].len() as f64) * 32_768.0 + scale;
            largest * scale + 1.0 < 32_767.0 && worst_dot < i32::MAX as f64
        })
        .unwrap_or(8)
}

/// The reversed position of the one non-zero tap of a branch normalised to sum to one, if its
/// other taps are zero up to floating-point rounding.
fn unit_impulse(branch: &[f64]) -> Option<usize> {
    let (j, _) = branch.iter().enumerate().find(|(_, c)| (*c - 1.0).abs() < 1e-9)?;
    let rest_is_zero = branch.iter().enumerate().all(|(k, c)| k == j || c.abs() < 1e-9);
    rest_is_zero.then_some(branch.len() - 1 - j)
}

/// `sin(πx) / (πx)`.
fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let px = std::f64::consts::PI * x;
        px.sin() / px
    }
}

/// The zeroth-order modified Bessel function of the first kind (its power series).
fn bessel_i0(x: f64) -> f64 {
    let quarter_x2 = x * x / 4.0;
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 1..64 {
        term *= quarter_x2 / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_band_interpolator_has_one_delay_branch() {
        let filter =
            PolyphaseFilter::new(&FilterSpec { up: 2, taps: 32, cutoff: 0.5, beta: 8.0, odd_length: true });
        // Prototype centre at tap 31 (odd): branch 1 holds it, at input position 15 of 32.
        assert_eq!((filter.impulse(0), filter.impulse(1)), (None, Some(32 - 1 - 15)));
        assert_eq!(filter.delay(), 31.0);
        let sum: i32 = filter.branch(0).iter().map(|&c| i32::from(c)).sum();
        assert_eq!(sum, 1 << filter.shift());
        // The interpolating branch's taps alternate in sign with slowly decaying tails, so a
        // full-scale input of matching signs would overflow Q15: it gets 14 fraction bits.
        let worst: i64 = filter.branch(0).iter().map(|&c| i64::from(c).abs() * 32_768).sum();
        assert_eq!(filter.shift(), 14);
        assert!(worst + (1 << 13) <= i64::from(i32::MAX) && 2 * worst > i64::from(i32::MAX));
    }

    #[test]
    fn bessel_i0_matches_reference_values() {
        // Abramowitz & Stegun, table 9.8 (I0(x) = e^x · tabulated value): I0(1), I0(5), I0(10).
        for (x, expected) in
            [(0.0, 1.0), (1.0, 1.266_065_877_752), (5.0, 27.239_871_823_604), (10.0, 2_815.716_628_466)]
        {
            let got = bessel_i0(x);
            assert!((got - expected).abs() / expected < 1e-11, "I0({x}) = {got}, expected {expected}");
        }
    }

    #[test]
    fn every_branch_sums_to_one_and_is_symmetric_with_its_mirror() {
        for (up, taps) in [(1, 96), (2, 32), (3, 32), (160, 96)] {
            let spec = FilterSpec { up, taps, cutoff: 0.97 / up as f64, beta: 8.0, odd_length: false };
            let filter = PolyphaseFilter::new(&spec);
            assert!((0..up).all(|p| filter.impulse(p).is_none()));
            for p in 0..up {
                let sum: i32 = filter.branch(p).iter().map(|&c| i32::from(c)).sum();
                assert_eq!(sum, 1 << filter.shift(), "up {up}, branch {p}");
            }
            // A linear-phase prototype: branch p reversed is branch up - 1 - p (before the
            // per-branch sum correction, which moves one coefficient by a few units).
            for p in 0..up {
                let (a, b) = (filter.branch(p), filter.branch(up - 1 - p));
                let worst = (0..taps).map(|j| (i32::from(a[j]) - i32::from(b[taps - 1 - j])).abs()).max();
                assert!(worst.unwrap_or(0) <= 8, "up {up}, branch {p}: asymmetric by {worst:?}");
            }
        }
    }
}
