//! A worker thread: owns the sessions pinned to it and runs them against a monotonic clock.
//!
//! Each pass drains control messages, steps every session, retires closed ones, signals the
//! wakeup if anything was produced, then parks until the earliest deadline (a frame due, a gap
//! timing out) or the tick, whichever comes first. Host calls unpark it when they push work.

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

/// Shortest sleep while a session waits on the host (e.g. a full outbound ring): avoids spinning.
const MIN_SLEEP_US: u64 = 500;

pub(crate) fn run(engine: Arc<EngineShared>, control: Receiver<Control>, index: usize) {
    let tick_us = u64::from(engine.config.tick_ms.max(1)) * 1000;
    let mut sessions: Vec<Box<WorkerSession>> = Vec::with_capacity(engine.config.max_sessions);
    loop {
        while let Ok(msg) = control.try_recv() {
            match msg {
                Control::Open(s) => {
                    if sessions.len() == sessions.capacity() {
                        // A slot was freed by a close the worker has not retired yet: retire
                        // first, so the Vec never reallocates here.
                        retire_closed(&engine, &mut sessions, index);
                    }
                    sessions.push(s);
                }
                Control::Shutdown => {
                    for s in sessions.drain(..) {
                        retire(&engine, s);
                    }
                    return;
                }
            }
        }
        let now = engine.now_us();
        let mut deadline = now + tick_us;
        let mut produced = false;
        let mut i = 0;
        while i < sessions.len() {
            if sessions[i].is_closed() {
                let s = sessions.swap_remove(i);
                engine.workers[index].load.fetch_sub(1, Ordering::Relaxed);
                retire(&engine, s);
                continue;
            }
            produced |= sessions[i].step(now);
            if let Some(d) = sessions[i].pipeline.deadline_us() {
                deadline = deadline.min(d.max(now + MIN_SLEEP_US));
            }
            i += 1;
        }
        if produced {
            engine.wakeup.notify();
        }
        let now = engine.now_us();
        if deadline > now {
            std::thread::park_timeout(Duration::from_micros(deadline - now));
        }
    }
}

// Boxed on purpose: sessions arrive and leave through channels as one pointer, and are freed on
// the host's side, never by this thread.
#[allow(clippy::vec_box)]
fn retire_closed(engine: &EngineShared, sessions: &mut Vec<Box<WorkerSession>>, index: usize) {
    let mut i = 0;
    while i < sessions.len() {
        if sessions[i].is_closed() {
            let s = sessions.swap_remove(i);
            engine.workers[index].load.fetch_sub(1, Ordering::Relaxed);
            retire(engine, s);
        } else {
            i += 1;
        }
    }
}

/// Hands a finished session back to the host side to be freed there, so the worker never runs
/// the allocator. If the hand-back channel is somehow full, it is freed here.
fn retire(engine: &EngineShared, session: Box<WorkerSession>) {
    match engine.retired_tx.try_send(session) {
        Ok(()) => {}
        Err(TrySendError::Full(s) | TrySendError::Disconnected(s)) => drop(s),
    }
}
