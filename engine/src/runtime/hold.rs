//! When the worker holds carrier messages back rather than drop what the host has no room for.
//!
//! Caller audio and events go to the host through bounded queues. A host that reads normally
//! can still find them full for a moment: a network stall delivers a second of messages at once,
//! a replay pushes as fast as the engine takes them. Dropping then would lose audio the host was
//! about to read, so while the host has read recently the worker leaves the next message in the
//! inbound ring, that ring fills, and `push` refuses with `Full`: backpressure to the carrier's
//! socket, nothing lost. A host that has stopped reading (it only wants events, or it died) must
//! not stop its call, so once it has not read for `read_hold_ms` the worker goes on and the
//! queue's own overflow policy (newest audio dropped, oldest events dropped, both counted) applies.

use super::shared::SessionShared;
use crate::config::SessionConfig;
use std::sync::atomic::{AtomicU64, Ordering};

/// Room in one host-facing queue, in its own units.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Room {
    /// Free now.
    pub(crate) vacant: usize,
    /// Waiting for the host now.
    pub(crate) occupied: usize,
    /// The most the next message can add.
    pub(crate) needed: usize,
}

impl Room {
    /// Too little room for the next message. An empty queue is never short: a message whose
    /// output exceeds the whole queue goes through (its excess dropped and counted) rather than
    /// wait for room that can never come.
    fn short(self) -> bool {
        self.occupied > 0 && self.vacant < self.needed
    }
}

/// A session's hold settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldPolicy {
    hold_us: u64,
    event_reserve: usize,
}

impl HoldPolicy {
    pub(crate) fn new(config: &SessionConfig) -> Self {
        // One message can raise a barge-in that clears every outstanding mark (one event each),
        // plus a few more (speech start and stop, a protocol error); never more than half the
        // queue, so a host that polls keeps the worker going.
        let event_reserve = (config.max_pending_marks + 8).min(config.event_capacity.max(1) / 2).max(1);
        Self { hold_us: u64::from(config.read_hold_ms) * 1000, event_reserve }
    }

    /// Room the next message needs in the event queue.
    pub(crate) fn event_reserve(&self) -> usize {
        self.event_reserve
    }

    /// Whether to hold the next message at `now_us`: `Some(until)` while a queue it needs is short
    /// and the host has read (polled) that queue within the hold time, `until` being when that
    /// hold runs out if the host does not read again.
    pub(crate) fn hold_until(
        &self,
        now_us: u64,
        audio: Room,
        events: Room,
        shared: &SessionShared,
    ) -> Option<u64> {
        if self.hold_us == 0 {
            return None;
        }
        let until = |last: &AtomicU64| {
            let until = last.load(Ordering::Acquire).saturating_add(self.hold_us);
            (now_us < until).then_some(until)
        };
        let audio = if audio.short() { until(&shared.audio_read_us) } else { None };
        let events = if events.short() { until(&shared.events_polled_us) } else { None };
        match (audio, events) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(read_hold_ms: u32) -> HoldPolicy {
        HoldPolicy::new(&SessionConfig { read_hold_ms, ..Default::default() })
    }

    const ROOMY: Room = Room { vacant: 1000, occupied: 0, needed: 100 };
    const SHORT: Room = Room { vacant: 50, occupied: 950, needed: 100 };

    #[test]
    fn holds_only_while_the_host_has_read_that_queue_recently() {
        let shared = SessionShared::new(8, 0);
        let p = policy(1_000);
        shared.audio_read_us.store(5_000_000, Ordering::Release);
        // Read 0.2 s ago: held until a second after that read.
        assert_eq!(p.hold_until(5_200_000, SHORT, ROOMY, &shared), Some(6_000_000));
        // Not read for a second: not held.
        assert_eq!(p.hold_until(6_000_000, SHORT, ROOMY, &shared), None);
        // Room enough: never held.
        assert_eq!(p.hold_until(5_200_000, ROOMY, ROOMY, &shared), None);
        // Events short, but the host never polled them since the session opened at 0.
        assert_eq!(p.hold_until(5_200_000, ROOMY, SHORT, &shared), None);
        shared.events_polled_us.store(5_100_000, Ordering::Release);
        assert_eq!(p.hold_until(5_200_000, ROOMY, SHORT, &shared), Some(6_100_000));
        // Both short: held until the later of the two runs out.
        assert_eq!(p.hold_until(5_200_000, SHORT, SHORT, &shared), Some(6_100_000));
    }

    #[test]
    fn an_empty_queue_never_holds_and_zero_disables_holding() {
        let shared = SessionShared::new(8, 0);
        let huge = Room { vacant: 10, occupied: 0, needed: 100 };
        assert_eq!(policy(1_000).hold_until(1, huge, ROOMY, &shared), None);
        assert_eq!(policy(0).hold_until(1, SHORT, SHORT, &shared), None);
    }

    #[test]
    fn the_event_reserve_leaves_half_the_queue_to_the_host() {
        let small = HoldPolicy::new(&SessionConfig { event_capacity: 32, ..Default::default() });
        assert_eq!(small.event_reserve(), 16);
        let default = HoldPolicy::new(&SessionConfig::default());
        assert_eq!(default.event_reserve(), 64);
    }
}
