//! The engine's time: a monotonic clock of its own epoch, or a manual one that tests and
//! simulations advance themselves.
//!
//! Everything time-driven in a session (pacing, the reorder wait, the hold policy, the played
//! position, message arrival stamps) reads this one clock, so an inline engine on a manual clock
//! is deterministic: the same calls give the same outputs, however long they take in wall time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A clock the host sets: microseconds since an epoch of its choosing, never going back.
/// Cheap to clone; clones share the time. For inline engines ([`super::Engine::with_manual_clock`]).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_us: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at 0 µs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time now, µs.
    pub fn now_us(&self) -> u64 {
        self.now_us.load(Ordering::Acquire)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now_us.fetch_add(by.as_micros() as u64, Ordering::AcqRel);
    }
}

/// Where an engine's time comes from.
#[derive(Debug)]
pub(crate) enum EngineClock {
    Monotonic(Instant),
    Manual(ManualClock),
}

impl EngineClock {
    /// Microseconds since the engine's epoch.
    pub(crate) fn now_us(&self) -> u64 {
        match self {
            Self::Monotonic(epoch) => epoch.elapsed().as_micros() as u64,
            Self::Manual(clock) => clock.now_us(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = ManualClock::new();
        let engine_side = EngineClock::Manual(clock.clone());
        assert_eq!(engine_side.now_us(), 0);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(engine_side.now_us(), 0);
        clock.advance(Duration::from_millis(20));
        assert_eq!(engine_side.now_us(), 20_000);
    }

    #[test]
    fn the_monotonic_clock_follows_wall_time() {
        let c = EngineClock::Monotonic(Instant::now());
        std::thread::sleep(Duration::from_millis(3));
        assert!((3_000..1_000_000).contains(&c.now_us()));
    }
}
