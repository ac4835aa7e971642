//! Test support (feature `test-hooks`, debug builds only): a worker pre-empted at the worst
//! moment of its step.
//!
//! A host runs on its own thread and may look at a session at any instant of a worker's step.
//! The windows between the things one step publishes are a few microseconds wide, too narrow for
//! a test to hit by chance; this hook widens the one after each event, so that a test can check
//! what a host finds once it has seen an event. It can also hold the workers between steps, so
//! that a test can queue the host's and the carrier's input for one step to find together.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

static PAUSE_US: AtomicU64 = AtomicU64::new(0);

/// Every worker in the process sleeps this long after publishing each event (zero: not at all).
pub fn pause_after_each_event(pause: Duration) {
    PAUSE_US.store(u64::try_from(pause.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

static EVENTS: AtomicU64 = AtomicU64::new(0);

/// Events the workers of the process have published so far (a test waits for the next before
/// it looks).
pub fn events_published() -> u64 {
    EVENTS.load(Ordering::Acquire)
}

pub(crate) fn after_event() {
    EVENTS.fetch_add(1, Ordering::Release);
    let us = PAUSE_US.load(Ordering::Relaxed);
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

static PAUSE_BEFORE_PUSH_US: AtomicU64 = AtomicU64::new(0);

/// Every worker in the process sleeps this long between finding the event queue full (and
/// counting the drop that makes room) and pushing the event (zero: not at all).
pub fn pause_before_each_full_push(pause: Duration) {
    PAUSE_BEFORE_PUSH_US.store(u64::try_from(pause.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

pub(crate) fn before_event_push() {
    let us = PAUSE_BEFORE_PUSH_US.load(Ordering::Relaxed);
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

static HOLD: AtomicBool = AtomicBool::new(false);
static PARKED: AtomicU32 = AtomicU32::new(0);

/// Holds every worker thread in the process before its next pass over its sessions (`true`), or
/// lets them go (`false`). Inline sessions, stepped on the host's thread, are not held.
pub fn hold_steps(hold: bool) {
    HOLD.store(hold, Ordering::Release);
}

/// How many worker threads wait before a pass, held by [`hold_steps`]. Once one does, none of
/// its sessions steps until they are let go.
pub fn workers_held() -> u32 {
    PARKED.load(Ordering::Acquire)
}

pub(crate) fn before_step() {
    if !HOLD.load(Ordering::Acquire) {
        return;
    }
    PARKED.fetch_add(1, Ordering::AcqRel);
    while HOLD.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_micros(200));
    }
    PARKED.fetch_sub(1, Ordering::AcqRel);
}
