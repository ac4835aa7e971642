//! Engine-added latency, measured by the engine itself: from a carrier message pushed by the host
//! to its audio being in the agent's ring, per worker.
//!
//! A host (or a benchmark) timing this from outside also counts its own delay in noticing the
//! audio (its thread waking, its other calls); the engine knows both ends exactly. The host
//! stamps each message as it writes it to the ring; the worker records the difference once the
//! message is processed, into a histogram of fixed buckets (no allocation, one relaxed atomic add).

use std::sync::atomic::{AtomicU64, Ordering};

/// Exact buckets below this many µs; above, `SUB_BUCKETS` per power of two.
const SUB_BUCKETS: u64 = 16;

/// Powers of two covered above the exact range (16 µs to 2^32 µs, about 71 minutes).
const OCTAVES: usize = 29;

/// Buckets in a histogram.
const BUCKETS: usize = SUB_BUCKETS as usize * (OCTAVES + 1);

/// A time on the engine's clock (µs), truncated to 32 bits: a stamp small enough for a ring
/// record's header. Differences of two stamps are exact below about 71 minutes.
pub(crate) fn stamp(now_us: u64) -> u32 {
    now_us as u32
}

/// Microseconds from `stamp` (taken with [`stamp`]) to `now_us`, on the same engine clock; 0 for
/// a stamp after `now_us`. That happens: the host stamps a message it pushes after the worker read
/// the clock for its pass, and the message is taken in that pass, having waited no time. (Read as
/// a wrapped difference, it would count as about 71 minutes.)
pub(crate) fn elapsed_since(stamp: u32, now_us: u64) -> u64 {
    let elapsed = (now_us as u32).wrapping_sub(stamp);
    if elapsed > u32::MAX / 2 { 0 } else { u64::from(elapsed) }
}

/// Bucket of a value: exact below 16, then 16 per power of two (at most 1/16 = 6.25 % wide).
fn bucket(us: u64) -> usize {
    if us < SUB_BUCKETS {
        return us as usize;
    }
    let shift = (63 - us.leading_zeros()) as usize - 4;
    let mantissa = (us >> shift) as usize; // 16..32
    (SUB_BUCKETS as usize * (shift + 1) + mantissa - SUB_BUCKETS as usize).min(BUCKETS - 1)
}

/// Smallest value that falls in bucket `b`.
fn bucket_floor(b: usize) -> u64 {
    let sub = SUB_BUCKETS as usize;
    if b < sub {
        return b as u64;
    }
    let shift = b / sub - 1;
    ((sub + b % sub) as u64) << shift
}

/// A latency histogram one worker writes and any thread reads.
pub(crate) struct LatencyRecorder {
    buckets: Box<[AtomicU64]>,
}

impl LatencyRecorder {
    pub(crate) fn new() -> Self {
        Self { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }

    /// Counts one latency of `us` microseconds.
    #[inline]
    pub(crate) fn record(&self, us: u64) {
        self.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
    }

    /// Adds this recorder's counts to `into`.
    pub(crate) fn add_to(&self, into: &mut LatencyHistogram) {
        for (sum, b) in into.counts.iter_mut().zip(self.buckets.iter()) {
            *sum += b.load(Ordering::Relaxed);
        }
    }
}

/// A snapshot of engine-added latency: carrier message pushed → its audio in the agent ring, in
/// µs, over every message the engine's workers processed (inline sessions are not counted: their
/// processing happens inside the host's own call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self { counts: vec![0; BUCKETS] }
    }
}

impl LatencyHistogram {
    /// Messages counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `q` quantile (0..=1) in µs, as the upper edge of its bucket (at most 6.25 % high);
    /// `None` when nothing was counted.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_floor(b + 1) - 1);
            }
        }
        None
    }

    /// Each bucket as (its smallest value, the smallest value of the next, its count), µs, in
    /// order (for exporters that rebucket).
    #[cfg(feature = "metrics")]
    pub(crate) fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().map(|(b, &n)| (bucket_floor(b), bucket_floor(b + 1), n))
    }

    /// The counts since `earlier` (a snapshot of the same engine taken before this one).
    pub fn since(&self, earlier: &LatencyHistogram) -> LatencyHistogram {
        let counts = self.counts.iter().zip(&earlier.counts).map(|(a, b)| a.saturating_sub(*b)).collect();
        LatencyHistogram { counts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_after_the_pass_read_its_clock_waited_nothing() {
        let now = 5_000_000_123;
        assert_eq!(elapsed_since(stamp(now - 250), now), 250);
        assert_eq!(elapsed_since(stamp(now), now), 0);
        assert_eq!(elapsed_since(stamp(now + 40), now), 0);
        // Across the wrap of the 32-bit stamp.
        let wrap = u64::from(u32::MAX) + 10;
        assert_eq!(elapsed_since(stamp(wrap - 30), wrap), 30);
    }

    #[test]
    fn buckets_are_contiguous_and_at_most_one_sixteenth_wide() {
        let mut previous = None;
        for us in (0..100_000u64).chain([1 << 20, (1 << 32) - 1]) {
            let b = bucket(us);
            assert!(bucket_floor(b) <= us && us < bucket_floor(b + 1), "{us} in bucket {b}");
            if let Some(p) = previous
                && us < 100_000
            {
                assert!(b == p || b == p + 1, "{us}: bucket {b} after {p}");
            }
            previous = Some(b);
            let width = bucket_floor(b + 1) - bucket_floor(b);
            assert!(width == 1 || width * 16 <= bucket_floor(b), "{us}: width {width}");
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_match_a_sorted_list() {
        let recorder = LatencyRecorder::new();
        let mut values: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 5_000 + (i % 97) * 3).collect();
        for &v in &values {
            recorder.record(v);
        }
        let mut histogram = LatencyHistogram::default();
        recorder.add_to(&mut histogram);
        values.sort_unstable();
        assert_eq!(histogram.count(), 10_000);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            let exact = values[((q * 10_000.0f64).ceil() as usize).max(1) - 1];
            let got = histogram.quantile(q).unwrap();
            assert!(got >= exact && got <= exact + exact / 16 + 1, "q {q}: {got} vs exact {exact}");
        }
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
        assert_eq!(histogram.since(&histogram).count(), 0);
    }

    #[test]
    fn stamps_measure_elapsed_time_across_the_32_bit_wrap() {
        let now = 5u64 << 32 | 0xFFFF_FF00;
        assert_eq!(elapsed_since(stamp(now), now + 3_000), 3_000);
        assert_eq!(elapsed_since(stamp(now), now), 0);
    }
}
