//! Engine-wide session counters that survive the sessions: the live sessions' counters are read
//! where the workers already publish them, and each session's final counts are folded into the
//! engine's totals once nothing can write them any more (its shared state is dropped, on the
//! host's side), with its line quality counted in the per-call histograms then. Nothing here runs
//! on a worker's audio path but [`Registration::record_barge_in`], a few relaxed atomic adds per
//! barge-in.

use crate::protocol::PROTOCOL_ERROR_KINDS;
use crate::quality::LineQuality;
use crate::stats::{SessionCounters, SessionStats};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::histogram::{AtomicHistogram, Histogram};
use super::latency::LatencyHistogram;

/// Upper bounds of the per-call MOS histogram: the usual grades (4.3 and up: "very satisfied"
/// in G.107's terms; 4.41 is a clean G.711 call).
const MOS_BOUNDS: [f64; 8] = [1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 4.3, 4.5];
/// Upper bounds of the per-call jitter histogram, seconds: 1 ms to 200 ms (the reorder window is
/// 60 ms by default).
const JITTER_BOUNDS_S: [f64; 9] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2];
/// Upper bounds of the per-call loss histogram (a ratio): 0 first, so loss-free calls show.
const LOSS_BOUNDS: [f64; 9] = [0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5];
/// Upper bounds of the barge-in reaction histogram, seconds: a barge-in needs 300 ms of voiced
/// speech by default, so most fall between 0.3 and 1 s.
const BARGE_IN_BOUNDS_S: [f64; 12] = [0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.5, 5.0];

/// The line quality of ended calls (those that carried caller audio), one value per call as it
/// ended (see [`LineQuality`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CallQualityHistograms {
    /// The E-model MOS.
    pub mos: Histogram,
    /// The RFC 3550 interarrival jitter estimate at the call's end, seconds.
    pub jitter_seconds: Histogram,
    /// The share of the caller's audio never received.
    pub loss_ratio: Histogram,
}

impl Default for CallQualityHistograms {
    fn default() -> Self {
        Self {
            mos: Histogram::new(&MOS_BOUNDS),
            jitter_seconds: Histogram::new(&JITTER_BOUNDS_S),
            loss_ratio: Histogram::new(&LOSS_BOUNDS),
        }
    }
}

impl CallQualityHistograms {
    fn record(&mut self, quality: &LineQuality) {
        self.mos.record(quality.mos);
        self.jitter_seconds.record(quality.jitter_us as f64 / 1e6);
        self.loss_ratio.record(quality.loss_ratio);
    }
}

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
    /// The line quality of the sessions ended and freed that carried caller audio.
    pub call_quality: CallQualityHistograms,
    /// Every barge-in since the engine started: from the arrival of the caller's audio holding
    /// the speech onset to the barge-in decision (the `BargeIn` event, the `clear` queued),
    /// seconds.
    pub barge_in_reaction: Histogram,
    /// Protocol errors since the engine started, by code: index `code - 1` (see
    /// [`crate::protocol::ProtocolError::code`] and [`crate::protocol::PROTOCOL_ERROR_NAMES`]).
    pub protocol_errors: [u64; PROTOCOL_ERROR_KINDS],
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
    quality: CallQualityHistograms,
}

/// The engine's registry of session counters. One lock, taken when a session is opened and
/// freed and by each snapshot: never by a worker's step.
pub(crate) struct SessionTotals {
    inner: Mutex<Inner>,
    /// Written by the workers as barge-ins happen: atomics, not under the lock.
    barge_in_reaction: AtomicHistogram,
    /// Written by the workers as protocol errors happen, by code (index `code - 1`): atomics.
    protocol_errors: [AtomicU64; PROTOCOL_ERROR_KINDS],
}

impl Default for SessionTotals {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            barge_in_reaction: AtomicHistogram::new(&BARGE_IN_BOUNDS_S),
            protocol_errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What [`SessionTotals::sum`] reads.
pub(crate) struct Sums {
    /// Live sessions' counters now plus the freed ones' final counts.
    pub(crate) sessions: SessionStats,
    pub(crate) opened: u64,
    pub(crate) ended: CallOutcomes,
    /// The largest live jitter estimate, µs.
    pub(crate) live_jitter_max_us: u64,
    pub(crate) call_quality: CallQualityHistograms,
    pub(crate) barge_in_reaction: Histogram,
    pub(crate) protocol_errors: [u64; PROTOCOL_ERROR_KINDS],
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
    pub(crate) fn sum(&self) -> Sums {
        let inner = self.lock();
        let mut sum = inner.retired;
        let mut jitter_max = 0;
        for counters in inner.live.iter().flatten() {
            let stats = counters.snapshot();
            jitter_max = jitter_max.max(stats.jitter_us);
            sum = sum.plus(&stats);
        }
        Sums {
            sessions: sum,
            opened: inner.opened,
            ended: inner.ended,
            live_jitter_max_us: jitter_max,
            call_quality: inner.quality.clone(),
            barge_in_reaction: self.barge_in_reaction.snapshot(),
            protocol_errors: std::array::from_fn(|i| self.protocol_errors[i].load(Ordering::Relaxed)),
        }
    }
}

impl Registration {
    /// Folds the session's final counts into the totals and frees its slot. Called once nothing
    /// can write the counters any more.
    pub(crate) fn retire(&self, last: &SessionStats, outcome: Outcome) {
        // Computed before the lock: a few dozen floating-point operations.
        let quality = last.line_quality();
        let mut inner = self.totals.lock();
        inner.retired = inner.retired.plus(last);
        if let Some(quality) = &quality {
            inner.quality.record(quality);
        }
        match outcome {
            Outcome::Stopped => inner.ended.stopped += 1,
            Outcome::Closed => inner.ended.closed += 1,
            Outcome::Failed => inner.ended.failed += 1,
        }
        inner.live[self.slot] = None;
        inner.free.push(self.slot);
    }

    /// Counts a barge-in's reaction time (µs). Lock-free (relaxed atomic adds): the worker
    /// calls it as the barge-in is decided.
    pub(crate) fn record_barge_in(&self, reaction_us: u64) {
        self.totals.barge_in_reaction.record(reaction_us);
    }

    /// Counts a protocol error by its code (one relaxed atomic add; codes outside the table,
    /// which no error has, are not counted by kind).
    pub(crate) fn record_protocol_error(&self, code: u32) {
        let slot = (code as usize).checked_sub(1).and_then(|i| self.totals.protocol_errors.get(i));
        if let Some(slot) = slot {
            slot.fetch_add(1, Ordering::Relaxed);
        }
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
        let s = totals.sum();
        assert_eq!((s.sessions.frames_out, s.opened, s.ended.total(), s.live_jitter_max_us), (12, 2, 0, 900));
        rb.retire(&b.snapshot(), Outcome::Stopped);
        let s = totals.sum();
        assert_eq!((s.sessions.frames_out, s.ended.stopped, s.live_jitter_max_us), (12, 1, 0));
        // The freed slot is used again, and the totals go on from where they were.
        let c = Arc::new(SessionCounters::default());
        let rc = totals.register(c.clone());
        assert_eq!(rc.slot, rb.slot);
        c.frames_out.store(1, Ordering::Relaxed);
        ra.retire(&a.snapshot(), Outcome::Failed);
        let s = totals.sum();
        assert_eq!((s.sessions.frames_out, s.opened), (13, 3));
        assert_eq!(s.ended, CallOutcomes { stopped: 1, closed: 0, failed: 1 });
        // None of them carried caller audio: no line quality to count.
        assert_eq!(s.call_quality.mos.count(), 0);
    }

    #[test]
    fn ended_calls_with_caller_audio_are_rated_once_each() {
        let totals = Arc::new(SessionTotals::default());
        let calls = [
            // 1 s of clean audio, jitter 1.5 ms.
            SessionStats { inbound_samples: 8_000, jitter_us: 1_500, ..Default::default() },
            // 1 s with 10 % never received, jitter 25 ms.
            SessionStats {
                inbound_samples: 8_000,
                gap_fill_samples: 800,
                jitter_us: 25_000,
                ..Default::default()
            },
            // No caller audio (closed before its stream started).
            SessionStats::default(),
        ];
        for stats in &calls {
            let counters = Arc::new(SessionCounters::default());
            counters.publish(stats);
            totals.register(counters.clone()).retire(&counters.snapshot(), Outcome::Stopped);
        }
        let q = totals.sum().call_quality;
        assert_eq!((q.mos.count(), q.jitter_seconds.count(), q.loss_ratio.count()), (2, 2, 2));
        // The clean call: MOS 4.41 (≤ 4.5), no loss (≤ 0), jitter ≤ 2 ms. The other: R = 93.2 −
        // 95 · 10 / 14.3 = 26.767, MOS = 1 + 0.93685 + 26.767 · (−33.233) · 73.233 · 7e-6 = 1.481
        // (≤ 2), loss 0.1 (≤ 0.1), jitter ≤ 30 ms.
        assert_eq!(q.mos.counts(), &[0, 1, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(q.loss_ratio.counts(), &[1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(q.jitter_seconds.counts(), &[0, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!((q.mos.sum() - (4.409286 + 1.481)).abs() < 1e-3, "{}", q.mos.sum());
        assert!((q.jitter_seconds.sum() - 0.0265).abs() < 1e-12);
    }

    #[test]
    fn barge_in_reactions_are_counted_without_the_lock() {
        let totals = Arc::new(SessionTotals::default());
        let registration = totals.register(Arc::new(SessionCounters::default()));
        let held = totals.lock();
        registration.record_barge_in(420_000);
        registration.record_barge_in(310_000);
        drop(held);
        let h = totals.sum().barge_in_reaction;
        assert_eq!(h.count(), 2);
        assert!((h.sum() - 0.73).abs() < 1e-12);
        let le = |bound: f64| h.buckets().take_while(|&(b, _)| b <= bound).map(|(_, n)| n).sum::<u64>();
        assert_eq!((le(0.3), le(0.35), le(0.5)), (0, 1, 2));
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
