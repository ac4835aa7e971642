//! Engine-wide session counters that survive the sessions: the live sessions' counters are read
//! where the workers already publish them, and each session's final counts are folded into the
//! engine's totals once nothing can write them any more (its shared state is dropped, on the
//! host's side). Nothing here runs on a worker's audio path.

use crate::stats::{SessionCounters, SessionStats};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::latency::LatencyHistogram;

/// How sessions ended, as far as the engine can tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallOutcomes {
    /// The stream ended before the session was freed: the carrier's stop, a hang-up, or its
    /// connection closing (the host was given `Stopped`).
    pub stopped: u64,
    /// The host closed the session while its stream had not ended (or had not started).
    pub closed: u64,
    /// The session failed (a bug caught in its pipeline).
    pub failed: u64,
}

impl CallOutcomes {
    /// Sessions ended, whatever the outcome.
    pub fn total(&self) -> u64 {
        self.stopped + self.closed + self.failed
    }
}

/// How one session ended (see [`CallOutcomes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Stopped,
    Closed,
    Failed,
}

/// A snapshot of the engine's counters for monitoring ([`super::Engine::metrics_snapshot`]),
/// built when asked from counters the engine keeps anyway.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    /// Every session's counters since the engine started: the sessions not yet freed as they
    /// stand now, plus the final counts of those freed. Each field only grows from one snapshot
    /// to the next, except `jitter_us`, which is an estimate per session (summing it means
    /// nothing; see `live_jitter_max_us`).
    pub sessions: SessionStats,
    /// Sessions open now ([`super::Engine::open_sessions`]).
    pub active: usize,
    /// Sessions opened since the engine started.
    pub opened: u64,
    /// Sessions ended and freed, by outcome. A closed session counts here once the engine has
    /// freed it (the worker's next pass after the close, and the next host call on the engine).
    pub ended: CallOutcomes,
    /// The largest interarrival jitter estimate (µs) among sessions not yet freed.
    pub live_jitter_max_us: u64,
    /// Engine-added latency ([`super::Engine::latency`]).
    pub latency: LatencyHistogram,
    /// CPU time each worker thread has used, in worker order (`None` where the system would not
    /// tell); empty for an inline engine.
    pub worker_cpu: Vec<Option<Duration>>,
    /// CPU time the whole process has used (user and system), if the system tells.
    pub process_cpu: Option<Duration>,
}

#[derive(Default)]
struct Inner {
    /// Counters of sessions not yet freed, by registration slot.
    live: Vec<Option<Arc<SessionCounters>>>,
    /// Slots of `live` free for the next session.
    free: Vec<usize>,
    /// Final counts of the sessions freed.
    retired: SessionStats,
    ended: CallOutcomes,
    opened: u64,
}

/// The engine's registry of session counters. One lock, taken when a session is opened and
/// freed and by each snapshot: never by a worker's step.
#[derive(Default)]
pub(crate) struct SessionTotals {
    inner: Mutex<Inner>,
}

/// A session's place in [`SessionTotals`], held by its shared state.
pub(crate) struct Registration {
    totals: Arc<SessionTotals>,
    slot: usize,
}

impl SessionTotals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new session's counters (on the thread opening it).
    pub(crate) fn register(self: &Arc<Self>, counters: Arc<SessionCounters>) -> Registration {
        let mut inner = self.lock();
        inner.opened += 1;
        let slot = match inner.free.pop() {
            Some(slot) => {
                inner.live[slot] = Some(counters);
                slot
            }
            None => {
                inner.live.push(Some(counters));
                inner.live.len() - 1
            }
        };
        Registration { totals: self.clone(), slot }
    }

    /// Sums the counters: live sessions now plus the freed ones' final counts (consistent with
    /// a session being freed meanwhile: both happen under the lock).
    pub(crate) fn sum(&self) -> (SessionStats, u64, CallOutcomes, u64) {
        let inner = self.lock();
        let mut sum = inner.retired;
        let mut jitter_max = 0;
        for counters in inner.live.iter().flatten() {
            let stats = counters.snapshot();
            jitter_max = jitter_max.max(stats.jitter_us);
            sum = sum.plus(&stats);
        }
        (sum, inner.opened, inner.ended, jitter_max)
    }
}

impl Registration {
    /// Folds the session's final counts into the totals and frees its slot. Called once nothing
    /// can write the counters any more.
    pub(crate) fn retire(&self, last: &SessionStats, outcome: Outcome) {
        let mut inner = self.totals.lock();
        inner.retired = inner.retired.plus(last);
        match outcome {
            Outcome::Stopped => inner.ended.stopped += 1,
            Outcome::Closed => inner.ended.closed += 1,
            Outcome::Failed => inner.ended.failed += 1,
        }
        inner.live[self.slot] = None;
        inner.free.push(self.slot);
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration").field("slot", &self.slot).finish()
    }
}

/// CPU time used by the thread `thread` (another thread of this process, not yet joined), read
/// through its CPU-time clock: one system call, nothing asked of the thread itself.
pub(crate) fn thread_cpu_time(thread: libc::pthread_t) -> Option<Duration> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: `thread` is a live (not yet joined) thread of this process, which the caller
    // guarantees; `clock` is a valid place for the result.
    if unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } != 0 {
        return None;
    }
    clock_time(clock)
}

fn clock_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write; a bad clock id only makes the call fail.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

/// CPU time used by the whole process so far.
pub(crate) fn process_cpu_time() -> Option<Duration> {
    clock_time(libc::CLOCK_PROCESS_CPUTIME_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn totals_keep_what_freed_sessions_counted() {
        let totals = Arc::new(SessionTotals::default());
        let a = Arc::new(SessionCounters::default());
        let b = Arc::new(SessionCounters::default());
        let ra = totals.register(a.clone());
        let rb = totals.register(b.clone());
        a.frames_out.store(5, Ordering::Relaxed);
        b.frames_out.store(7, Ordering::Relaxed);
        b.jitter_us.store(900, Ordering::Relaxed);
        let (sum, opened, ended, jitter) = totals.sum();
        assert_eq!((sum.frames_out, opened, ended.total(), jitter), (12, 2, 0, 900));
        rb.retire(&b.snapshot(), Outcome::Stopped);
        let (sum, _, ended, jitter) = totals.sum();
        assert_eq!((sum.frames_out, ended.stopped, jitter), (12, 1, 0));
        // The freed slot is used again, and the totals go on from where they were.
        let c = Arc::new(SessionCounters::default());
        let rc = totals.register(c.clone());
        assert_eq!(rc.slot, rb.slot);
        c.frames_out.store(1, Ordering::Relaxed);
        ra.retire(&a.snapshot(), Outcome::Failed);
        let (sum, opened, ended, _) = totals.sum();
        assert_eq!((sum.frames_out, opened), (13, 3));
        assert_eq!(ended, CallOutcomes { stopped: 1, closed: 0, failed: 1 });
    }

    #[test]
    fn this_threads_cpu_time_is_readable_and_grows() {
        // SAFETY: the calling thread is alive.
        let me = unsafe { libc::pthread_self() };
        let before = thread_cpu_time(me).expect("thread CPU clock");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = thread_cpu_time(me).expect("thread CPU clock");
        assert!(after > before, "{before:?} then {after:?}");
        assert!(process_cpu_time().expect("process CPU clock") >= after);
    }
}
