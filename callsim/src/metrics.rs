//! Percentiles over calls and events.

use serde::Serialize;

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
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n.max(1)) - 1).copied()
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
}
