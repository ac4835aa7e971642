//! The engine handle.

use crate::config::trunkline_engine_config;
use crate::result::trunkline_result;
use crate::{guard, guard_void, try_out};
use std::time::{Duration, Instant};
use trunkline::Engine;

/// An engine: worker threads and a wakeup fd. Opaque.
pub struct trunkline_engine {
    _private: [u8; 0],
}

pub(crate) fn engine_ref<'a>(ptr: *const trunkline_engine) -> Option<&'a Engine> {
    // SAFETY: a non-NULL `trunkline_engine*` is a `Box<Engine>` made by `trunkline_engine_new`
    // and not yet freed (the header's contract).
    unsafe { ptr.cast::<Engine>().as_ref() }
}

/// Starts an engine. `config` may be NULL for the defaults (one worker per core). On success
/// `*out` receives an engine the caller owns and must free with trunkline_engine_free.
///
/// Results: OK; NULL_PARAMETER (`out` NULL); INVALID_ARGUMENT (a bad `struct_size`,
/// `max_sessions` not 1..=65536, `workers` over 1024, `worker_nice` not -20..=19); IO (a thread or the wakeup fd could not be
/// created). A refused `worker_nice` is not an error (see trunkline_engine_prioritised_workers).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_new(
    config: *const trunkline_engine_config,
    out: *mut *mut trunkline_engine,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let config = match trunkline_engine_config::read(config) {
            Ok(c) => c,
            Err(e) => return e,
        };
        match Engine::new(config) {
            Ok(engine) => {
                out.set(Box::into_raw(Box::new(engine)).cast());
                trunkline_result::Ok
            }
            Err(e) => e.into(),
        }
    })
}

/// Stops the engine's workers and frees it. NULL is a no-op. Sessions still open afterwards
/// return CLOSED from every call and must still be freed. Must not race with other calls on this
/// engine.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_free(engine: *mut trunkline_engine) {
    guard_void(|| {
        if !engine.is_null() {
            // SAFETY: made by `trunkline_engine_new` via Box::into_raw, freed once (contract).
            drop(unsafe { Box::from_raw(engine.cast::<Engine>()) });
        }
    });
}

/// Writes the engine's wakeup fd into `*out_fd`: it becomes readable when some session has new
/// audio, events or outbound messages. Put it in your event loop, then reset it with
/// trunkline_engine_clear_wakeup (or trunkline_engine_wait with timeout 0) before draining your
/// sessions. The engine owns the fd: do not close it. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_wakeup_fd(
    engine: *const trunkline_engine,
    out_fd: *mut i32,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out_fd = try_out!(out_fd);
        out_fd.set(engine.wakeup_fd());
        trunkline_result::Ok
    })
}

/// Writes into `*out` how many of the engine's workers run at the requested `worker_nice` (all
/// of them when it is 0; fewer when the system refused it, e.g. without CAP_SYS_NICE, and they
/// then run at the default priority). Results: OK; NULL_PARAMETER. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_prioritised_workers(
    engine: *const trunkline_engine,
    out: *mut u32,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        out.set(engine.prioritised_workers() as u32);
        trunkline_result::Ok
    })
}

/// Blocks until some session has output, trunkline_engine_wake is called, or `timeout_ms` passes
/// (negative: no timeout). Returns OK when woken (and resets the wakeup), TIMEOUT otherwise,
/// NULL_PARAMETER for a NULL engine. Any thread; several threads may wait at once (one of them is
/// woken per signal).
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_wait(
    engine: *const trunkline_engine,
    timeout_ms: i64,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        // Negative, or too far off to represent: no timeout.
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if engine.wait(left) {
                return trunkline_result::Ok;
            }
            // Not woken: the timeout passed, or another thread waiting on this engine took the
            // signal between the fd becoming readable and this thread resetting it. Only the
            // first is a TIMEOUT; in the second case, wait on for the time that is left.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return trunkline_result::Timeout;
            }
        }
    })
}

/// Makes a trunkline_engine_wait return OK: the one blocked now (on another thread), or else the
/// next one to start. For a host that stops a thread blocked in a wait, e.g. one with no timeout.
/// It raises the same signal as output does, so the waiter cannot tell the two apart: its wait
/// returns OK, draining its sessions then finds nothing new, and the wakeup fd is readable until
/// reset. Set your own stop flag before waking, and check it after every wait. The signal stays
/// set until a wait (or trunkline_engine_clear_wakeup) resets it, so a wake issued before the
/// wait starts is not lost: that wait returns OK at once. Wakes and output before that reset count
/// as one, and one reset releases one wait: with several threads waiting, wake again for each
/// one still waiting once the previous one has returned. Never blocks.
///
/// Results: OK; NULL_PARAMETER (NULL engine). Any thread, concurrently with every other call on
/// the engine, but not with trunkline_engine_free: to free an engine a thread waits on, wake it,
/// let its wait return, then free.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_wake(engine: *const trunkline_engine) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        engine.wake();
        trunkline_result::Ok
    })
}

/// Resets the wakeup fd without blocking. OK if it was signalled, EMPTY if not. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_clear_wakeup(engine: *const trunkline_engine) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        if engine.clear_wakeup() { trunkline_result::Ok } else { trunkline_result::Empty }
    })
}
