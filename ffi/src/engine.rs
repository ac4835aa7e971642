//! The engine handle.

use crate::config::{size_t, trunkline_engine_config};
use crate::result::trunkline_result;
use crate::{guard, guard_void, try_out, try_slice_mut};
use std::ffi::c_char;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use trunkline::metrics::{self, Format};
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig};

/// trunkline_engine_metrics `format`: the Prometheus text exposition format, version 0.0.4
/// (serve it as `text/plain; version=0.0.4; charset=utf-8`).
pub const TRUNKLINE_METRICS_PROMETHEUS: u32 = 0;

/// trunkline_engine_metrics `format`: OpenMetrics 1.0 text, ending with `# EOF` (serve it as
/// `application/openmetrics-text; version=1.0.0; charset=utf-8`).
pub const TRUNKLINE_METRICS_OPENMETRICS: u32 = 1;

/// An engine: worker threads and a wakeup fd. Opaque.
pub struct trunkline_engine {
    _private: [u8; 0],
}

/// What a `trunkline_engine*` points to: the engine and, for one made by
/// `trunkline_engine_new_manual_clock`, its clock. Only this handle advances that clock.
struct EngineBox {
    engine: Engine,
    /// The manual clock (`None`: the engine's own monotonic clock). Behind a lock so that an
    /// advance checks the limit and moves the clock in one step, whatever the threads.
    clock: Option<Mutex<ManualClock>>,
}

/// The furthest a manual clock goes, µs (2^62 - 1: about 146,000 years), so that the engine's
/// sums of a time and a duration never wrap.
const MAX_CLOCK_US: u64 = (1 << 62) - 1;

fn engine_box<'a>(ptr: *const trunkline_engine) -> Option<&'a EngineBox> {
    // SAFETY: a non-NULL `trunkline_engine*` is a `Box<EngineBox>` made by `trunkline_engine_new`
    // or `trunkline_engine_new_manual_clock` and not yet freed (the header's contract).
    unsafe { ptr.cast::<EngineBox>().as_ref() }
}

pub(crate) fn engine_ref<'a>(ptr: *const trunkline_engine) -> Option<&'a Engine> {
    engine_box(ptr).map(|b| &b.engine)
}

/// Boxes an engine into the handle the caller owns.
fn into_handle(engine: Engine, clock: Option<ManualClock>) -> *mut trunkline_engine {
    Box::into_raw(Box::new(EngineBox { engine, clock: clock.map(Mutex::new) })).cast()
}

/// Starts an engine. `config` may be NULL for the defaults (one worker per core). On success
/// `*out` receives an engine the caller owns and must free with trunkline_engine_free.
///
/// Results: OK; NULL_PARAMETER (`out` NULL); INVALID_ARGUMENT (a bad `struct_size`,
/// `max_sessions` not 1..=65536, `workers` over 1024, workers × `max_sessions` over 2^20,
/// `worker_nice` not -20..=19); IO (a thread or the wakeup fd could not be
/// created). A refused `worker_nice` is not an error (see trunkline_engine_prioritised_workers).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_new(
    config: *const trunkline_engine_config,
    out: *mut *mut trunkline_engine,
) -> trunkline_result {
    new_engine(config, out, |config| Ok((Engine::new(config)?, None)))
}

/// Reads `config`, starts an engine with `start` and hands it to `out`: what both constructors
/// share.
fn new_engine(
    config: *const trunkline_engine_config,
    out: *mut *mut trunkline_engine,
    start: impl FnOnce(EngineConfig) -> Result<(Engine, Option<ManualClock>), trunkline_result>,
) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let config = match trunkline_engine_config::read(config) {
            Ok(c) => c,
            Err(e) => return e,
        };
        match start(config) {
            Ok((engine, clock)) => {
                out.set(into_handle(engine, clock));
                trunkline_result::Ok
            }
            Err(e) => e,
        }
    })
}

/// Starts an inline engine on a manual clock, for deterministic tests and simulations: its time
/// starts at 0 and moves only when trunkline_engine_advance_clock moves it. Everything
/// time-driven in its sessions (the pacing of outbound media, the wait for a missing frame,
/// played positions, the holding of carrier messages while you read) follows that clock, so the
/// same calls give the same outputs however long they take in wall time: after `start` and a
/// trunkline_session_play of more than the lead, exactly the lead's worth of media frames is
/// ready at once (`lead_ms / 20` frames when it is a multiple of 20 ms), then one more per 20 ms
/// advanced.
///
/// `config` is read as by trunkline_engine_new (the same `struct_size` rules and ranges) and
/// must ask for an inline engine: `workers_per_core` false and `workers` 0. Everything else is
/// as for any inline engine: sessions do their work on the thread that calls them. The wakeup
/// fd and trunkline_engine_wait work as usual, but their timeouts are wall time; advancing the
/// clock signals nothing, so drain your sessions after each advance. Free it with
/// trunkline_engine_free.
///
/// Results: OK; NULL_PARAMETER (`out` NULL); INVALID_ARGUMENT (a config with worker threads,
/// NULL included: the defaults start one per core; a bad `struct_size` or a setting out of range,
/// as for trunkline_engine_new); IO (the wakeup fd could not be created). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_new_manual_clock(
    config: *const trunkline_engine_config,
    out: *mut *mut trunkline_engine,
) -> trunkline_result {
    new_engine(config, out, |config| {
        if config.workers != Some(0) {
            return Err(trunkline_result::InvalidArgument);
        }
        let clock = ManualClock::new();
        Ok((Engine::with_manual_clock(config, clock.clone())?, Some(clock)))
    })
}

/// Moves the clock of an engine made by trunkline_engine_new_manual_clock forward by `us`
/// microseconds (0 is allowed and changes nothing). Its sessions see the new time at their next
/// call: drain them (trunkline_session_next_outbound, trunkline_session_poll_event, ...) after
/// advancing. While agent audio is queued, each 20 ms advanced releases one 20 ms media frame;
/// a step of the lead or more releases only the lead's worth (the carrier would have run dry:
/// pacing starts again from the new time).
///
/// Results: OK; NULL_PARAMETER (NULL engine); INVALID_ARGUMENT (an engine with the real clock,
/// i.e. made by trunkline_engine_new; or a step that would take the clock past 2^62 - 1 µs, in
/// which case it does not move). Any thread, concurrently with calls on the engine and its
/// sessions (advances from several threads add up); not with trunkline_engine_free.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_advance_clock(
    engine: *const trunkline_engine,
    us: u64,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_box(engine) else { return trunkline_result::NullParameter };
        let Some(clock) = &engine.clock else { return trunkline_result::InvalidArgument };
        let clock = clock.lock().unwrap_or_else(PoisonError::into_inner);
        match clock.now_us().checked_add(us) {
            Some(t) if t <= MAX_CLOCK_US => {
                clock.advance(Duration::from_micros(us));
                trunkline_result::Ok
            }
            _ => trunkline_result::InvalidArgument,
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
            // SAFETY: made by `trunkline_engine_new` or `trunkline_engine_new_manual_clock` via
            // Box::into_raw (`into_handle`), freed once (contract).
            drop(unsafe { Box::from_raw(engine.cast::<EngineBox>()) });
        }
    });
}

/// Writes the engine's wakeup fd into `*out_fd`: it becomes readable when some session has new
/// audio, events or outbound messages, or was closed. Put it in your event loop, then reset it with
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

/// Writes the engine's counters as metrics text into `buf` (NUL-terminated) and the text's length
/// (without the NUL) into `*out_len`. `format` is TRUNKLINE_METRICS_PROMETHEUS or
/// TRUNKLINE_METRICS_OPENMETRICS (a plain integer, so that any value is defined). The text is
/// built now from counters the engine keeps anyway, so asking costs the workers nothing: calls
/// open, opened and ended by outcome, media frames in and out, protocol errors, the sum of every
/// session's counters (trunkline_session_stats_name, as `trunkline_session_<name>_total`; freed
/// sessions' final counts stay in), the engine's latency histogram, and CPU time per worker and
/// for the process. No label is per call. With an offload server on this engine, its `/metrics`
/// endpoint serves this text plus the server's own counters: scrape that instead.
///
/// As with the start strings, `*out_len` is also written with BUFFER_TOO_SMALL, to the length of
/// the text that did not fit (nothing is copied): retry with a buffer of more than that, leaving room,
/// since the text can grow between calls (counters gain digits, workers and sessions come).
/// `buf` may be NULL with a `capacity` of 0, to ask the length. A few kilobytes of text, built
/// on the calling thread; call it from a monitoring thread, not for every frame.
///
/// Results: OK; BUFFER_TOO_SMALL (`capacity` not more than the length); NULL_PARAMETER (NULL
/// engine or `out_len`, or a NULL `buf` with a capacity); INVALID_ARGUMENT (an unknown `format`).
/// Any thread, concurrently with every call on the engine and its sessions; not with
/// trunkline_engine_free.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_engine_metrics(
    engine: *const trunkline_engine,
    format: u32,
    buf: *mut c_char,
    capacity: size_t,
    out_len: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out_len = try_out!(out_len);
        let buf = try_slice_mut!(buf, capacity);
        let format = match format {
            TRUNKLINE_METRICS_PROMETHEUS => Format::Prometheus,
            TRUNKLINE_METRICS_OPENMETRICS => Format::OpenMetrics,
            _ => return trunkline_result::InvalidArgument,
        };
        let text = metrics::render(&engine.metrics_snapshot(), &[], format);
        out_len.set(text.len());
        // Room for the text and its NUL.
        let Some(dst) = buf.get_mut(..=text.len()) else { return trunkline_result::BufferTooSmall };
        for (d, &b) in dst.iter_mut().zip(text.as_bytes()) {
            *d = b as c_char;
        }
        dst[text.len()] = 0;
        trunkline_result::Ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{
        trunkline_message_kind, trunkline_session_free, trunkline_session_next_outbound,
        trunkline_session_open, trunkline_session_play, trunkline_session_push,
    };
    use std::ptr::{null, null_mut};
    use trunkline::EngineConfig;

    fn config(workers: Option<usize>) -> trunkline_engine_config {
        trunkline_engine_config::from(&EngineConfig { workers, ..Default::default() })
    }

    /// Media messages ready now.
    fn media_out(session: *mut crate::session::trunkline_session) -> usize {
        let mut buf = vec![0u8; 4096];
        let (mut len, mut kind) = (0, trunkline_message_kind::Text);
        let mut n = 0;
        while trunkline_session_next_outbound(session, buf.as_mut_ptr(), buf.len(), &mut len, &mut kind)
            == trunkline_result::Ok
        {
            n += usize::from(buf[..len].windows(15).any(|w| w == br#""event":"media""#));
        }
        n
    }

    #[test]
    fn a_manual_clock_engine_paces_by_the_time_advanced() {
        let mut engine = null_mut();
        assert_eq!(trunkline_engine_new_manual_clock(&config(Some(0)), &mut engine), trunkline_result::Ok);
        let mut session = null_mut();
        assert_eq!(trunkline_session_open(engine, null(), &mut session), trunkline_result::Ok);
        let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1",
            "streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},
            "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
        let text = trunkline_message_kind::Text as u32;
        assert_eq!(trunkline_session_push(session, start.as_ptr(), start.len(), text), trunkline_result::Ok);
        let pcm = vec![1000i16; 8000];
        let mut taken = 0;
        assert_eq!(
            trunkline_session_play(session, pcm.as_ptr(), pcm.len(), 8000, &mut taken),
            trunkline_result::Ok
        );
        assert_eq!(taken, 8000);
        assert_eq!(media_out(session), 5, "the default lead, 100 ms, at t = 0");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(media_out(session), 0, "wall time does not move the clock");
        for _ in 0..5 {
            assert_eq!(trunkline_engine_advance_clock(engine, 20_000), trunkline_result::Ok);
            assert_eq!(media_out(session), 1);
        }
        assert_eq!(trunkline_engine_advance_clock(engine, 0), trunkline_result::Ok);
        assert_eq!(media_out(session), 0);
        // 60 ms at once: three frames; more than the lead at once: only the lead's worth.
        for (step, frames) in [(60_000, 3), (400_000, 5)] {
            assert_eq!(trunkline_engine_advance_clock(engine, step), trunkline_result::Ok);
            assert_eq!(media_out(session), frames, "after {step} µs");
        }
        trunkline_session_free(session);
        trunkline_engine_free(engine);
    }

    #[test]
    fn a_manual_clock_needs_an_inline_engine_and_stops_short_of_wrapping() {
        let mut engine = null_mut();
        for threaded in [config(Some(1)), config(None)] {
            assert_eq!(
                trunkline_engine_new_manual_clock(&threaded, &mut engine),
                trunkline_result::InvalidArgument
            );
        }
        assert_eq!(trunkline_engine_new_manual_clock(null(), &mut engine), trunkline_result::InvalidArgument);
        assert!(engine.is_null());
        assert_eq!(
            trunkline_engine_new_manual_clock(&config(Some(0)), null_mut()),
            trunkline_result::NullParameter
        );
        assert_eq!(trunkline_engine_advance_clock(null(), 1), trunkline_result::NullParameter);

        let mut real = null_mut();
        assert_eq!(trunkline_engine_new(&config(Some(0)), &mut real), trunkline_result::Ok);
        assert_eq!(trunkline_engine_advance_clock(real, 20_000), trunkline_result::InvalidArgument);
        trunkline_engine_free(real);

        assert_eq!(trunkline_engine_new_manual_clock(&config(Some(0)), &mut engine), trunkline_result::Ok);
        let clock = || engine_box(engine).and_then(|b| b.clock.as_ref()).map(|c| c.lock().unwrap().now_us());
        assert_eq!(clock(), Some(0));
        assert_eq!(trunkline_engine_advance_clock(engine, u64::MAX), trunkline_result::InvalidArgument);
        assert_eq!(trunkline_engine_advance_clock(engine, MAX_CLOCK_US), trunkline_result::Ok);
        assert_eq!(trunkline_engine_advance_clock(engine, 1), trunkline_result::InvalidArgument);
        assert_eq!(clock(), Some(MAX_CLOCK_US), "a refused step does not move the clock");
        trunkline_engine_free(engine);
    }
}
