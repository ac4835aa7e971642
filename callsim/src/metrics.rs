//! Percentiles over calls and events.

use serde::Serialize;
use std::collections::BTreeMap;

/// The distribution of one measurement: count, p50/p90/p99 (nearest rank), max and mean.
/// Empty when nothing was measured (`n` = 0, the rest `None`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Values measured.
    pub n: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

impl Percentiles {
    /// Of `values` (NaNs are ignored).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Self::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Self {
            n,
            p50: nearest_rank(&v, 50.0),
            p90: nearest_rank(&v, 90.0),
            p99: nearest_rank(&v, 99.0),
            max: v.last().copied(),
            mean: Some(v.iter().sum::<f64>() / n as f64),
        }
    }
}

/// The nearest-rank percentile of sorted `v`: the smallest value with at least `p`% of the values
/// at or below it (no interpolation: every reported value was measured); `None` for no values.
pub fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    sorted.get(rank(sorted.len(), p) - 1).copied()
}

/// The 1-based rank of the `p`th percentile of `n` values (1 for none).
fn rank(n: usize, p: f64) -> usize {
    (((p / 100.0) * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// Values counted to the 0.1 the report prints them to (a bin per 0.1): memory bounded by how
/// widely they spread, not by how many there are. Rounding is monotonic, so the nearest-rank
/// percentiles and the max are those of the exact values, rounded as printed (`{:.1}`); the
/// mean is of the exact values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// How many values round to each tenth (`k`: k / 10), in order.
    bins: BTreeMap<i64, u64>,
    n: usize,
    sum: f64,
}

impl Histogram {
    /// Counts `v` (NaNs are ignored).
    pub fn push(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        *self.bins.entry(tenths(v)).or_default() += 1;
        self.n += 1;
        self.sum += v;
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Self) {
        for (k, count) in &other.bins {
            *self.bins.entry(*k).or_default() += count;
        }
        self.n += other.n;
        self.sum += other.sum;
    }

    /// Values counted.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Bins in use (what the memory grows with).
    pub fn bins(&self) -> usize {
        self.bins.len()
    }

    /// The values' distribution, to 0.1.
    pub fn percentiles(&self) -> Percentiles {
        let Some(max) = self.bins.keys().next_back() else { return Percentiles::default() };
        let at_rank = |p: f64| {
            let rank = rank(self.n, p) as u64;
            let mut seen = 0;
            self.bins.iter().find(|(_, count)| {
                seen += **count;
                seen >= rank
            })
        };
        let value = |k: &i64| *k as f64 / 10.0;
        Percentiles {
            n: self.n,
            p50: at_rank(50.0).map(|(k, _)| value(k)),
            p90: at_rank(90.0).map(|(k, _)| value(k)),
            p99: at_rank(99.0).map(|(k, _)| value(k)),
            max: Some(value(max)),
            mean: Some(self.sum / self.n as f64),
        }
    }
}

/// `v` in tenths, rounded as `{:.1}` prints it: to the nearest, exact ties to even.
fn tenths(v: f64) -> i64 {
    let p = v * 10.0;
    // A product that rounded onto a tie: its rounding error (exact, from a fused multiply-add)
    // says on which side of it `v` × 10 really is.
    let err = v.mul_add(10.0, -p);
    let k = match p - p.trunc() {
        half if half.abs() == 0.5 && err > 0.0 => p.ceil(),
        half if half.abs() == 0.5 && err < 0.0 => p.floor(),
        _ => p.round_ties_even(),
    };
    k as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_values_have_no_percentile() {
        assert_eq!(nearest_rank(&[], 50.0), None);
        assert_eq!(nearest_rank(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(f64::from));
        assert_eq!((p.n, p.p50, p.p90, p.p99, p.max), (100, Some(50.0), Some(90.0), Some(99.0), Some(100.0)));
        assert_eq!(p.mean, Some(50.5));
        let p = Percentiles::of([30.0, 10.0, 20.0, f64::NAN]);
        assert_eq!((p.n, p.p50, p.p90, p.p99), (3, Some(20.0), Some(30.0), Some(30.0)));
        let one = Percentiles::of([7.0]);
        assert_eq!((one.p50, one.p99), (Some(7.0), Some(7.0)));
        assert_eq!(Percentiles::of([]), Percentiles::default());
    }

    #[test]
    fn a_histogram_rounds_as_the_report_prints() {
        // To the nearest tenth; an exact tie to even; 0.35 and 0.05 are not ties in binary (a
        // little below and a little above).
        for (v, k) in [(0.0, 0), (0.25, 2), (0.75, 8), (0.35, 3), (0.45, 5), (0.05, 1), (12.3, 123)] {
            assert_eq!((tenths(v), format!("{v:.1}")), (k, format!("{:.1}", k as f64 / 10.0)), "{v}");
        }
        assert_eq!(tenths(f64::from_bits(0.05f64.to_bits() - 1)), 0);
        let mut h = Histogram::default();
        for v in [0.0, 0.25, 0.26, 0.75, 12.3, 29.0, 0.0, 1.0, 0.35, 2.0, f64::NAN] {
            h.push(v);
        }
        // Sorted: 0 0 0.25 0.26 0.35 | 0.75 1 2 12.3 29; the median is 0.35, printed 0.3 (as is
        // 0.26: 8 bins).
        let p = h.percentiles();
        assert_eq!((p.n, p.p50, p.p90, p.p99, p.max), (10, Some(0.3), Some(12.3), Some(29.0), Some(29.0)));
        assert!((p.mean.unwrap() - 4.591).abs() < 1e-12);
        assert_eq!((h.bins(), Histogram::default().percentiles()), (8, Percentiles::default()));
    }

    #[test]
    fn a_histogram_of_a_million_values_gives_their_percentiles_as_printed() {
        use crate::rng::SplitMix64;
        let mut rng = SplitMix64::new(11);
        // Values to the µs of 0..50 ms (ties among them), and their neighbours a bit away.
        let values: Vec<f64> = (0..1_000_000)
            .map(|_| {
                let v = rng.up_to(50_000) as f64 / 1000.0;
                match rng.up_to(2) {
                    0 => v,
                    1 => f64::from_bits(v.to_bits() + 1),
                    _ => f64::from_bits(v.to_bits().saturating_sub(1)).max(0.0),
                }
            })
            .collect();
        let (mut first, mut second) = (Histogram::default(), Histogram::default());
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(format!("{:.1}", tenths(v) as f64 / 10.0), format!("{v:.1}"), "{v:?}");
            if i % 2 == 0 { first.push(v) } else { second.push(v) }
        }
        first.merge(&second);
        assert!(first.bins() <= 501, "{}", first.bins());
        let printed =
            |p: Percentiles| format!("{} {:.1?} {:.1?} {:.1?} {:.1?}", p.n, p.p50, p.p90, p.p99, p.max);
        let (kept, exact) = (first.percentiles(), Percentiles::of(values));
        assert_eq!(printed(kept), printed(exact));
        // The mean, of the exact values, only summed in another order.
        assert!((kept.mean.unwrap() - exact.mean.unwrap()).abs() < 1e-9, "{kept:?} {exact:?}");
    }
}
