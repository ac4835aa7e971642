//! Per-session memory: what opening one session with the default settings allocates.
//!
//! A counting global allocator counts, on the test's own thread, the bytes allocated and freed
//! between just before `open_session` and just after it (the `Session` handle boxed, as the C ABI
//! holds it). The engine's one-time costs (the VAD's shared FFT plans, the first session's lazy
//! statics) are paid by a first session opened before counting. The budget: at most 128 KiB.
//!
//! `TRUNKLINE_MEMORY_TRACE=1` prints every allocation (+size) and free (-size) of the counted
//! open, in order.
//!
//! Debug builds pass every allocation on to `assert_no_alloc`'s allocator, so the running call
//! below also runs under the worker's allocation guard (see `tests/alloc_guard.rs`).
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

mod common;

#[cfg(debug_assertions)]
use assert_no_alloc::AllocDisabler as Inner;
use common::*;
#[cfg(not(debug_assertions))]
use std::alloc::System as Inner;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};
use trunkline::{Engine, EngineConfig, Session, SessionConfig};

struct Counting;

thread_local! {
    // Counted per thread, so that the harness's other threads (and the worker) do not count.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static TRACE_LEN: Cell<usize> = const { Cell::new(0) };
}

const TRACE_MAX: usize = 256;
static TRACE: [AtomicIsize; TRACE_MAX] = [const { AtomicIsize::new(0) }; TRACE_MAX];

fn counted(delta: isize) {
    // `try_with`: the allocator may run while thread-locals are being torn down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            LIVE.with(|l| l.set(l.get() + delta));
            TRACE_LEN.with(|n| {
                let i = n.get();
                if i < TRACE_MAX {
                    TRACE[i].store(delta, Ordering::Relaxed);
                    n.set(i + 1);
                }
            });
        }
    });
}

// SAFETY: forwards to the system allocator (through the guard's in debug builds) unchanged; only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { Inner.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        counted(layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { Inner.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        counted(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { Inner.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        counted(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as the caller's.
        unsafe { Inner.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Memory a session may allocate (docs/settings.md: "Memory per session").
const BUDGET: usize = 128 * 1024;

/// Bytes live after `f` that were allocated during it (on this thread), and its result.
fn measure<T>(f: impl FnOnce() -> T) -> (usize, T) {
    LIVE.with(|l| l.set(0));
    TRACE_LEN.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let out = f();
    COUNTING.with(|c| c.set(false));
    (LIVE.with(Cell::get).max(0) as usize, out)
}

fn trace(label: &str) {
    if std::env::var_os("TRUNKLINE_MEMORY_TRACE").is_some() {
        let n = TRACE_LEN.with(Cell::get);
        let sizes: Vec<isize> = TRACE[..n].iter().map(|a| a.load(Ordering::Relaxed)).collect();
        println!("{label}: {} allocations and frees: {sizes:?}", sizes.len());
    }
}

/// Bytes one more default session costs on `engine`, after a first session paid the one-time costs.
fn session_bytes(engine: &Engine) -> usize {
    let config = SessionConfig::default();
    let _first = engine.open_session(&config).unwrap();
    let (bytes, session): (usize, Box<Session>) = measure(|| Box::new(engine.open_session(&config).unwrap()));
    drop(session);
    bytes
}

#[test]
fn a_default_session_fits_in_128_kib() {
    for workers in [1, 0] {
        let engine =
            Engine::new(EngineConfig { workers: Some(workers), max_sessions: 8, ..Default::default() })
                .unwrap();
        let bytes = session_bytes(&engine);
        trace(&format!("workers={workers}"));
        println!("workers={workers}: {bytes} bytes ({:.1} KiB) per session", bytes as f64 / 1024.0);
        assert!(
            bytes <= BUDGET,
            "workers={workers}: a default session allocates {bytes} bytes, over the {BUDGET}-byte budget"
        );
    }
}

/// Bytes a running call with `config` holds: a session opened, started (with custom parameters),
/// then one second of caller audio in and agent audio out with a mark, events polled. Inline, so
/// that the pipeline's own allocations (the stream's identity at `start`) happen on this thread.
fn running_call_bytes(config: &SessionConfig) -> usize {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    // The first call pays the one-time costs: the resampler filters, designed when a stream
    // first needs them and then shared by every session.
    let mut first = engine.open_session(config).unwrap();
    first.push_text(&start()).unwrap();
    let (audio, _) = speech();
    let media: Vec<String> =
        (0..50).map(|i| media(i + 2, i + 1, i * 20, &audio[i as usize * 160..][..160])).collect();
    let reply = vec![1000i16; 480];
    let (bytes, session) = measure(|| {
        let mut s = Box::new(engine.open_session(config).unwrap());
        s.push_text(&connected()).unwrap();
        s.push_text(&start()).unwrap();
        let mut pcm = [0i16; 1024];
        let mut out = [0u8; 4096];
        for (i, m) in media.iter().enumerate() {
            s.push_text(m).unwrap();
            s.play(&reply, 24_000).unwrap();
            if i == 10 {
                s.mark("reply-1").unwrap();
            }
            while s.read_audio(&mut pcm) > 0 {}
            while s.next_outbound_into(&mut out).is_some() {}
            while s.poll_event().is_some() {}
        }
        assert!(s.stats().frames_out > 0);
        s
    });
    drop(session);
    bytes
}

#[test]
fn a_running_default_call_stays_within_128_kib() {
    let bytes = running_call_bytes(&SessionConfig::default());
    trace("running call");
    println!("running call: {bytes} bytes ({:.1} KiB)", bytes as f64 / 1024.0);
    assert!(bytes <= BUDGET, "a running default call holds {bytes} bytes, over the {BUDGET}-byte budget");
}

/// The same call echo-aware: the echo gate's reference ring and estimator fit in what a default
/// call leaves of the budget.
#[test]
fn a_running_echo_aware_call_stays_within_128_kib() {
    let mut config = SessionConfig::default();
    config.vad.echo_aware = true;
    let bytes = running_call_bytes(&config);
    trace("running echo-aware call");
    println!("running echo-aware call: {bytes} bytes ({:.1} KiB)", bytes as f64 / 1024.0);
    assert!(bytes <= BUDGET, "a running echo-aware call holds {bytes} bytes, over the {BUDGET}-byte budget");
}

/// Echo reduction (opt-in) adds the canceller: its 2 s reference ring (32 KiB), the adaptive
/// filter's two weight sets and the far end's block spectra (27 KiB) and its buffers.
#[test]
fn a_running_echo_reduced_call_adds_at_most_72_kib() {
    let mut config = SessionConfig::default();
    config.vad.echo_aware = true;
    let echo_aware = running_call_bytes(&config);
    config.echo_reduction = true;
    let bytes = running_call_bytes(&config);
    trace("running echo-reduced call");
    let added = bytes - echo_aware;
    println!(
        "running echo-reduced call: {bytes} bytes ({:.1} KiB), {added} bytes more",
        bytes as f64 / 1024.0
    );
    assert!(added <= 72 * 1024, "echo reduction adds {added} bytes to a running call");
}

/// The same running call for an agent speaking 8 kHz µ-law (read and played as bytes): its
/// caller-audio ring holds bytes, so it costs no more than the default call.
#[test]
fn a_running_mulaw_agent_call_stays_within_128_kib() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let config = SessionConfig {
        agent_format: trunkline::AgentFormat::Mulaw,
        agent_rate: 8_000,
        ..Default::default()
    };
    let mut first = engine.open_session(&config).unwrap();
    first.push_text(&start()).unwrap();
    let (audio, _) = speech();
    let media: Vec<String> =
        (0..50).map(|i| media(i + 2, i + 1, i * 20, &audio[i as usize * 160..][..160])).collect();
    let reply = vec![0x5Au8; 160];
    let (bytes, session) = measure(|| {
        let mut s = Box::new(engine.open_session(&config).unwrap());
        s.push_text(&connected()).unwrap();
        s.push_text(&start()).unwrap();
        let mut codes = [0u8; 1024];
        let mut out = [0u8; 4096];
        for (i, m) in media.iter().enumerate() {
            s.push_text(m).unwrap();
            s.play_bytes(&reply, 8_000).unwrap();
            if i == 10 {
                s.mark("reply-1").unwrap();
            }
            while s.read_audio_bytes(&mut codes) > 0 {}
            while s.next_outbound_into(&mut out).is_some() {}
            while s.poll_event().is_some() {}
        }
        assert!(s.stats().frames_out > 0);
        s
    });
    trace("running mulaw call");
    println!("running mulaw call: {bytes} bytes ({:.1} KiB)", bytes as f64 / 1024.0);
    assert!(bytes <= BUDGET, "a running µ-law call holds {bytes} bytes, over the {BUDGET}-byte budget");
    drop(session);
}

#[test]
fn the_counter_sees_allocations() {
    let (bytes, v) = measure(|| std::hint::black_box(vec![0u8; 1000]));
    assert_eq!(bytes, 1000);
    drop(v);
}
