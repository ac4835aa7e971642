//! Proves the steady-state audio path allocates nothing, with a counting global allocator.
//!
//! After a session has started and warmed up, a window of caller media (with speech, so VAD
//! events and a barge-in happen), agent audio (the first `play` at each rate among it), pacing,
//! sync-mark echoes, audio reads and event polls must not allocate, on the worker thread or
//! inline. Runs without the libtest harness (see Cargo.toml) so that no other thread allocates
//! while counting.

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use trunkline::pipeline::PLAY_RATES;
use trunkline::{Engine, EngineConfig, Event, MessageKind, SessionConfig};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: usize = 50;

/// Runs a call; returns (allocations in the counted window, events seen in it).
fn run(workers: usize) -> (usize, Vec<Event>) {
    let (caller, labels) = speech();
    let frames = caller.len() / 160;
    assert!(labels[0].1 / 20 < frames as u64);
    // Everything the host sends is built before counting starts.
    let messages: Vec<String> = (0..frames)
        .map(|i| media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &caller[i * 160..(i + 1) * 160]))
        .collect();
    let sync_echoes: Vec<String> =
        (0..200).map(|n| mark_echo(5000 + n, &format!("trunkline-sync-{n}"))).collect();
    // 20 ms of agent audio at each rate `play` accepts. The warm-up plays at the configured
    // `play_rate` only; the counted window goes through every rate, so the first `play` at each
    // other rate is counted.
    let config = SessionConfig::default();
    let agent: Vec<(u32, Vec<i16>)> =
        PLAY_RATES.iter().map(|&r| (r, vec![1000i16; r as usize / 50])).collect();
    let usual = PLAY_RATES.iter().position(|&r| r == config.play_rate).unwrap();

    let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&config).unwrap();
    session.push_text(&connected()).unwrap();
    session.push_text(&start()).unwrap();
    let mut pcm = vec![0i16; 8192];
    let mut out = vec![0u8; 8192];
    let mut events = Vec::with_capacity(1024);
    let mut next_echo = 0;

    for (i, msg) in messages.iter().enumerate() {
        if i == WARMUP {
            COUNTING.store(true, Ordering::SeqCst);
        }
        while session.push(msg.as_bytes(), MessageKind::Text).is_err() {
            engine.wait(Some(Duration::from_millis(1)));
        }
        // The agent talks all the time, so the caller's speech barges in.
        let (rate, reply) = &agent[if i < WARMUP { usual } else { i % agent.len() }];
        let _ = session.play(reply, *rate);
        while session.read_audio(&mut pcm) > 0 {}
        while let Some((_, len)) = session.next_outbound_into(&mut out) {
            // Echo sync marks as a carrier would.
            if out[..len].windows(15).any(|w| w == b"trunkline-sync-") && next_echo < sync_echoes.len() {
                session.push(sync_echoes[next_echo].as_bytes(), MessageKind::Text).unwrap();
                next_echo += 1;
            }
        }
        while let Some(ev) = session.poll_event() {
            if COUNTING.load(Ordering::Relaxed) && events.len() < events.capacity() {
                events.push(ev);
            }
        }
        if workers > 0 && i % 5 == 0 {
            // Let the worker pace in real time now and then.
            engine.wait(Some(Duration::from_millis(1)));
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    COUNTING.store(false, Ordering::SeqCst);
    let n = ALLOCATIONS.swap(0, Ordering::SeqCst);
    let stats = session.stats();
    assert!(stats.frames_out > 0 && stats.media_frames_in as usize == frames, "{stats:?}");
    drop(session);
    (n, events)
}

fn main() {
    let mut passed = 0;
    let mut failed = 0;
    // The counter itself must see an allocation, or a zero below would prove nothing.
    COUNTING.store(true, Ordering::SeqCst);
    let probe = std::hint::black_box(vec![0u8; 64]);
    COUNTING.store(false, Ordering::SeqCst);
    drop(probe);
    let seen = ALLOCATIONS.swap(0, Ordering::SeqCst);
    println!(
        "no_alloc counter self-check: {seen} allocation(s) seen ... {}",
        if seen >= 1 { "ok" } else { "FAILED" }
    );
    if seen >= 1 {
        passed += 1
    } else {
        failed += 1
    }
    for workers in [0, 1] {
        let (allocations, events) = run(workers);
        let barge_in = events.iter().any(|e| matches!(e, Event::BargeIn { .. }));
        let speech = events.iter().any(|e| matches!(e, Event::SpeechStarted { .. }));
        let ok = allocations == 0 && barge_in && speech;
        println!(
            "no_alloc workers={workers}: {allocations} allocations in the steady state (speech events: {speech}, barge-in: {barge_in}) ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if ok { passed += 1 } else { failed += 1 }
    }
    println!("no_alloc: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
