//! Fixed-bucket histograms of per-call figures (line quality, barge-in reaction), kept by the
//! engine for monitoring: counts per bucket as a Prometheus histogram exports them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Values counted by bucket: bucket `i` holds values above `bounds[i - 1]` and at most
/// `bounds[i]`; a last bucket holds those above every bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket, not cumulative: one more than `bounds`.
    counts: Vec<u64>,
    sum: f64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (ascending).
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Self { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    /// Counts one value.
    pub(crate) fn record(&mut self, value: f64) {
        let i = self.bounds.iter().position(|&b| value <= b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += value;
    }

    /// The buckets' upper bounds (the last bucket, above them all, has none).
    pub fn bounds(&self) -> &'static [f64] {
        self.bounds
    }

    /// Values in each bucket (not cumulative), the one above every bound last.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// (upper bound, values in the bucket) per bucket, the last bound infinite: the form
    /// exporters take.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().copied().chain([f64::INFINITY]).zip(self.counts.iter().copied())
    }
}

/// A histogram of µs values that any thread adds to with relaxed atomics (no lock), read as a
/// [`Histogram`] of seconds.
#[derive(Debug)]
pub(crate) struct AtomicHistogram {
    /// Upper bounds, seconds.
    bounds: &'static [f64],
    /// The same in µs, so that recording compares integers.
    bounds_us: Box<[u64]>,
    counts: Box<[AtomicU64]>,
    sum_us: AtomicU64,
}

impl AtomicHistogram {
    /// An empty histogram with these upper bounds, in seconds (ascending).
    pub(crate) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            bounds_us: bounds.iter().map(|b| (b * 1e6).round() as u64).collect(),
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
        }
    }

    /// Counts one value of `us` microseconds.
    pub(crate) fn record(&self, us: u64) {
        let i = self.bounds_us.iter().position(|&b| us <= b).unwrap_or(self.bounds_us.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// What it holds now, in seconds.
    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            bounds: self.bounds,
            counts: self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect(),
            sum: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let mut h = Histogram::new(&[0.0, 1.0, 2.5]);
        for v in [0.0, 0.5, 1.0, 2.5, 2.6, 100.0] {
            h.record(v);
        }
        assert_eq!(h.counts(), &[1, 2, 1, 2]);
        assert_eq!(h.count(), 6);
        assert!((h.sum() - 106.6).abs() < 1e-9, "{}", h.sum());
        let buckets: Vec<_> = h.buckets().collect();
        assert_eq!(buckets, [(0.0, 1), (1.0, 2), (2.5, 1), (f64::INFINITY, 2)]);
    }

    #[test]
    fn the_atomic_form_counts_microseconds_into_second_bounds() {
        let h = AtomicHistogram::new(&[0.3, 0.5]);
        for us in [299_999, 300_000, 300_001, 500_000, 2_000_000] {
            h.record(us);
        }
        let s = h.snapshot();
        assert_eq!(s.counts(), &[2, 2, 1]);
        assert_eq!(s.sum(), 3.4);
        assert_eq!(s.bounds(), &[0.3, 0.5]);
    }
}
