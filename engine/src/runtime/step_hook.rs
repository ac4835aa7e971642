//! Test support (feature `test-hooks`, debug builds only): a worker pre-empted at the worst
//! moment of its step.
//!
//! A host runs on its own thread and may look at a session at any instant of a worker's step.
//! The windows between the things one step publishes are a few microseconds wide, too narrow for
//! a test to hit by chance; this hook widens the one after each event, so that a test can check
//! what a host finds once it has seen an event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static PAUSE_US: AtomicU64 = AtomicU64::new(0);

/// Every worker in the process sleeps this long after publishing each event (zero: not at all).
pub fn pause_after_each_event(pause: Duration) {
    PAUSE_US.store(u64::try_from(pause.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

pub(crate) fn after_event() {
    let us = PAUSE_US.load(Ordering::Relaxed);
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}
