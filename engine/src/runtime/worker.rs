//! A worker thread: owns the sessions pinned to it and runs them against a monotonic clock.
//!
//! Each pass drains control messages, then steps only the sessions that need it: those the host
//! flagged (a message, agent audio, a close; see [`super::engine::WorkerHandle::wake`]) and those
//! whose timer is due (a frame to pace, a gap timing out, or the tick). It retires closed ones,
//! signals the wakeup if anything was produced, then sleeps until the earliest timer.
//!
//! Batching: after a pass that found host work for several sessions, the worker sleeps
//! [`BATCH_US`] before the next one, and host calls in that time only set their session's flag
//! without waking it: under load, one pass (and one wakeup signal to the host) serves many
//! messages, instead of a futex wake, a context switch and a wakeup write per message. A worker
//! that found little host work parks as `Idle`, and the next host call wakes it at once, so a
//! lightly loaded engine adds no batching delay.

use super::engine::EngineShared;
use super::worker_session::WorkerSession;
use crossbeam_channel::{Receiver, TrySendError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Control messages, host → worker.
pub(crate) enum Control {
    /// Take over a new session.
    Open(Box<WorkerSession>),
    /// Drop every session and exit.
    Shutdown,
}

/// What a worker is doing (its handle's `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Running a pass: flags set now are seen by the next pass.
    Running = 0,
    /// Sleeping a batching interval (or until a timer): host calls do not wake it.
    Batching = 1,
    /// Parked until a timer with nothing to do: the next host call wakes it.
    Idle = 2,
}

/// Shortest sleep while a session waits on the host (e.g. a full outbound ring): avoids spinning.
const MIN_SLEEP_US: u64 = 500;

/// After a pass that did host work, the worker sleeps at least this long before the next pass.
// why 200 µs: at 1,000 calls (50,000 messages/s over two workers) a pass then serves about five
// messages per session-scan and the host gets at most 5,000 wakeup signals per second per worker,
// while the latency it adds (at most this, half of it on average) stays well under the 1 ms
// budget for engine-added latency.
pub(crate) const BATCH_US: u64 = 200;

/// A pass batches (see [`BATCH_US`]) only when it found at least this many sessions with host
/// work; below that the engine is lightly loaded, and the next host call wakes the worker at once.
// why 4: at 100 calls a pass finds one or two sessions flagged and batching would only add
// latency (p50 38 → 164 µs measured); at 1,000 calls passes find dozens.
const BATCH_MIN_SESSIONS: usize = 4;

pub(crate) fn run(engine: Arc<EngineShared>, control: Receiver<Control>, index: usize) {
    let tick_us = u64::from(engine.config.tick_ms.max(1)) * 1000;
    let handle = &engine.workers[index];
    let overflow = handle.overflow_slot();
    let mut sessions: Vec<Box<WorkerSession>> = Vec::with_capacity(engine.config.max_sessions);
    // Per session, in `sessions` order: its slot and when its timer is due (µs). Kept apart from
    // the sessions so a pass reads two small arrays, not every session's memory.
    let mut timers: Vec<(usize, u64)> = Vec::with_capacity(engine.config.max_sessions);
    loop {
        handle.state.store(State::Running as u8, Ordering::SeqCst);
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::Open(s) => {
                    if sessions.len() == sessions.capacity() {
                        // A slot was freed by a close the worker has not retired yet: retire
                        // first, so the Vecs never reallocate here.
                        retire_closed(&engine, &mut sessions, &mut timers, index);
                    }
                    let slot = s.worker().map_or(0, |at| at.slot);
                    sessions.push(s);
                    // Due at once: the first pass steps it.
                    timers.push((slot, 0));
                }
                Control::Shutdown => {
                    for s in sessions.drain(..) {
                        retire(&engine, s);
                    }
                    return;
                }
            }
        }
        // Before the clock is read: a pass held here steps at the time it is let go.
        #[cfg(all(feature = "test-hooks", debug_assertions))]
        super::step_hook::before_step();
        let now = engine.now_us();
        let mut next = now + tick_us;
        let mut produced = false;
        let mut host_work = 0usize;
        let mut i = 0;
        while i < sessions.len() {
            let (slot, due) = timers[i];
            // why load before swap: most flags are clear, and a plain load of a clear flag costs
            // nothing like a locked read-modify-write.
            let flagged = handle.ready[slot].load(Ordering::Relaxed)
                && handle.ready[slot].swap(false, Ordering::AcqRel);
            if !flagged && now < due {
                next = next.min(due);
                i += 1;
                continue;
            }
            host_work += usize::from(flagged);
            if sessions[i].is_closed() {
                let s = sessions.swap_remove(i);
                timers.swap_remove(i);
                handle.load.fetch_sub(1, Ordering::Relaxed);
                retire(&engine, s);
                continue;
            }
            produced |= sessions[i].step(now, Some((&handle.latency, &engine.clock)));
            let due = if sessions[i].is_closed() {
                // Failed in this step: retire it on the next pass.
                now
            } else if sessions[i].is_stalled() {
                // The host's taking a message wakes it; the tick only covers a take that came
                // as the stall began, before the worker said it was stalled. (Stepped every
                // 500 µs instead, a stalled session spent its worker's time polling.)
                now + tick_us
            } else if let Some(until) = sessions[i].held_until() {
                // Holding messages for the host: its next read wakes us; if it never comes, the
                // hold runs out then (checked at least every tick, since room may free otherwise).
                // The session's own deadlines still to come (the pacer's next frame) come first;
                // one already past is work the hold puts off (filling a gap), not a reason to
                // step it every 500 µs until the hold ends.
                let due = sessions[i].deadline_us().filter(|&d| d > now).map_or(until, |d| d.min(until));
                due.clamp(now + MIN_SLEEP_US, now + tick_us)
            } else if slot == overflow {
                // Sessions sharing the overflow slot may miss a flag another one cleared: poll.
                now + MIN_SLEEP_US
            } else {
                sessions[i]
                    .deadline_us()
                    .map_or(now + tick_us, |d| d.clamp(now + MIN_SLEEP_US, now + tick_us))
            };
            timers[i].1 = due;
            next = next.min(due);
            i += 1;
        }
        if produced {
            engine.wakeup.notify();
        }
        let now = engine.now_us();
        if host_work >= BATCH_MIN_SESSIONS {
            // Batch: let host work pile up for a moment (host calls meanwhile only set flags;
            // timers due sooner run at the end of it, at most `BATCH_US` late).
            handle.state.store(State::Batching as u8, Ordering::SeqCst);
            std::thread::park_timeout(Duration::from_micros(BATCH_US));
        } else {
            handle.state.store(State::Idle as u8, Ordering::SeqCst);
            // A host call that set a flag before seeing `Idle` did not wake us: look again.
            let pending = timers.iter().any(|&(slot, _)| handle.ready[slot].load(Ordering::SeqCst))
                || !control.is_empty();
            if !pending && next > now {
                std::thread::park_timeout(Duration::from_micros(next - now));
            }
        }
    }
}

// Boxed on purpose: sessions arrive and leave through channels as one pointer, and are freed on
// the host's side, never by this thread.
#[allow(clippy::vec_box)]
fn retire_closed(
    engine: &EngineShared,
    sessions: &mut Vec<Box<WorkerSession>>,
    timers: &mut Vec<(usize, u64)>,
    index: usize,
) {
    let mut i = 0;
    while i < sessions.len() {
        if sessions[i].is_closed() {
            let s = sessions.swap_remove(i);
            timers.swap_remove(i);
            engine.workers[index].load.fetch_sub(1, Ordering::Relaxed);
            retire(engine, s);
        } else {
            i += 1;
        }
    }
}

/// Hands a finished session back to the host side to be freed there, so the worker never runs
/// the allocator. If the hand-back channel is somehow full, it is freed here.
fn retire(engine: &EngineShared, mut session: Box<WorkerSession>) {
    // The recorder closes the file now, not when the host frees the session.
    session.pipeline.end_recording();
    match engine.retired_tx.try_send(session) {
        Ok(()) => {}
        Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => {
            if let Some(at) = s.worker() {
                engine.release_slot(at);
            }
            drop(s)
        }
    }
}
