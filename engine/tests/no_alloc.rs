//! Proves the steady-state audio path allocates nothing, with a counting global allocator.
//!
//! After a session has started and warmed up, a window of caller media (with speech, so VAD
//! events and a barge-in happen), agent audio (the first `play` at each rate among it), pacing,
//! sync-mark echoes, audio reads and event polls must not allocate, on the worker thread or
//! inline. Runs without the libtest harness (see Cargo.toml) so that no other thread allocates
//! while counting. The call runs three ways: Twilio's µ-law, and Telnyx's G.722 and Opus (both
//! ways: the caller's audio decoded, the agent's encoded), whose codec state is built at `start`.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use trunkline::codec::G722Encoder;
#[cfg(feature = "opus")]
use trunkline::codec::carrier_opus::CarrierOpusEncoder;
use trunkline::pipeline::PLAY_RATES;
use trunkline::protocol::dialect_by_name;
use trunkline::{Engine, EngineConfig, Event, MessageKind, SessionConfig};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && !on_recorder_thread() {
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
        if COUNTING.load(Ordering::Relaxed) && !on_recorder_thread() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Whether this is the engine's recorder thread, which writes recordings off the audio path and
/// may allocate (its name read into a stack buffer: asking it must not allocate either).
fn on_recorder_thread() -> bool {
    let mut name = [0u8; 16];
    // SAFETY: the buffer is 16 bytes, the most a Linux thread name takes with its NUL.
    let ok =
        unsafe { libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len()) } == 0;
    ok && name.starts_with(b"trunkline-recor")
}

const WARMUP: usize = 50;

/// The carrier and codec of the call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    /// Twilio, µ-law at 8 kHz.
    Twilio,
    /// Telnyx, G.722 both ways.
    TelnyxG722,
    /// Telnyx, Opus at 16 kHz both ways.
    #[cfg(feature = "opus")]
    TelnyxOpus,
}

const TELNYX_STREAM: &str = "32DE0DEA-53CB-4B21-89A4-9E1819C043BC";

fn telnyx_media(seq: u64, timestamp_ms: u64, payload: &[u8]) -> String {
    serde_json::json!({"event": "media", "sequence_number": seq.to_string(), "stream_id": TELNYX_STREAM,
        "media": {"track": "inbound", "chunk": seq.to_string(), "timestamp": timestamp_ms.to_string(),
        "payload": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, payload)}})
    .to_string()
}

/// The caller's speech as 16 kHz PCM, 320 samples a frame (each 8 kHz sample twice, then a
/// two-tap smoothing: enough for speech detection).
fn speech_16k(ulaw: &[u8]) -> Vec<i16> {
    let narrow: Vec<i16> = ulaw.iter().map(|&c| reference_ulaw_decode(c)).collect();
    let mut wide: Vec<i16> = narrow.iter().flat_map(|&s| [s, s]).collect();
    for i in (1..wide.len()).rev() {
        wide[i] = ((i32::from(wide[i]) + i32::from(wide[i - 1])) / 2) as i16;
    }
    wide
}

/// The caller's media messages and the carrier's echo of sync mark `n`, for `call`.
fn caller_messages(call: Call, caller: &[u8]) -> (Vec<String>, Vec<String>) {
    let frames = caller.len() / 160;
    let twilio =
        || (0..frames).map(|i| media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &caller[i * 160..][..160]));
    let coded = |encode: &mut dyn FnMut(&[i16]) -> Vec<u8>| -> Vec<String> {
        let wide = speech_16k(caller);
        (0..frames)
            .map(|i| telnyx_media(i as u64 + 2, i as u64 * 20, &encode(&wide[i * 320..][..320])))
            .collect()
    };
    let messages = match call {
        Call::Twilio => twilio().collect(),
        Call::TelnyxG722 => {
            let mut encoder = G722Encoder::new();
            coded(&mut |pcm| {
                let mut out = vec![0; 160];
                encoder.encode(pcm, &mut out);
                out
            })
        }
        #[cfg(feature = "opus")]
        Call::TelnyxOpus => {
            let mut encoder = CarrierOpusEncoder::new(16_000).unwrap();
            coded(&mut |pcm| {
                let mut out = vec![0; 1500];
                let n = encoder.encode(pcm, &mut out).unwrap();
                out.truncate(n);
                out
            })
        }
    };
    let echoes = (0..200)
        .map(|n| {
            let name = format!("trunkline-sync-{n}");
            match call {
                Call::Twilio => mark_echo(5000 + n, &name),
                _ => serde_json::json!({"event": "mark", "sequence_number": (5000 + n).to_string(),
                    "stream_id": TELNYX_STREAM, "mark": {"name": name}})
                .to_string(),
            }
        })
        .collect();
    (messages, echoes)
}

/// Runs a call; returns (allocations in the counted window, events seen in it).
fn run(workers: usize, call: Call) -> (usize, Vec<Event>) {
    run_recorded(workers, call, None)
}

/// [`run`], the call recorded to `record` if given.
fn run_recorded(workers: usize, call: Call, record: Option<std::path::PathBuf>) -> (usize, Vec<Event>) {
    run_with(workers, call, SessionConfig { record_path: record, ..Default::default() })
}

/// [`run`] with the session's settings `config` (echo-aware: the agent's audio kept as the echo
/// gate's reference on every frame sent; rejoining: the caller's speeches followed).
fn run_with(workers: usize, call: Call, config: SessionConfig) -> (usize, Vec<Event>) {
    let (caller, labels) = speech();
    let frames = caller.len() / 160;
    assert!(labels[0].1 / 20 < frames as u64);
    // Everything the host sends is built before counting starts.
    let (messages, sync_echoes) = caller_messages(call, &caller);
    // 20 ms of agent audio at each rate `play` accepts. The warm-up plays at the configured
    // `play_rate` only; the counted window goes through every rate, so the first `play` at each
    // other rate is counted.
    let agent: Vec<(u32, Vec<i16>)> =
        PLAY_RATES.iter().map(|&r| (r, vec![1000i16; r as usize / 50])).collect();
    let usual = PLAY_RATES.iter().position(|&r| r == config.play_rate).unwrap();

    let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
    let (dialect, start) = match call {
        Call::Twilio => ("twilio", start()),
        Call::TelnyxG722 => ("telnyx;codec=G722", telnyx_start("G722", 8000)),
        #[cfg(feature = "opus")]
        Call::TelnyxOpus => ("telnyx;codec=OPUS;rate=16000", telnyx_start("OPUS", 16_000)),
    };
    let mut session = engine.open_session_with(&config, dialect_by_name(dialect).unwrap()).unwrap();
    session.push_text(&connected()).unwrap();
    session.push_text(&start).unwrap();
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
    assert!(stats.frames_out > 0 && stats.media_frames_in as usize == frames, "{call:?}: {stats:?}");
    // The caller's speech over the agent ducked it first (default `duck_db`): the gain stage ran.
    assert!(stats.ducks >= 1, "{call:?}: {stats:?}");
    drop(session);
    (n, events)
}

fn telnyx_start(encoding: &str, rate: u32) -> String {
    serde_json::json!({"event": "start", "sequence_number": "1", "stream_id": TELNYX_STREAM,
        "start": {"call_control_id": "v3:call", "media_format": {"encoding": encoding, "sample_rate": rate, "channels": 1}}})
    .to_string()
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
    let calls = [
        Call::Twilio,
        Call::TelnyxG722,
        #[cfg(feature = "opus")]
        Call::TelnyxOpus,
    ];
    for (workers, call) in [0, 1].into_iter().flat_map(|w| calls.map(|c| (w, c))) {
        let (allocations, events) = run(workers, call);
        let barge_in = events.iter().any(|e| matches!(e, Event::BargeIn { .. }));
        let speech = events.iter().any(|e| matches!(e, Event::SpeechStarted { .. }));
        let ok = allocations == 0 && barge_in && speech;
        println!(
            "no_alloc workers={workers} {call:?}: {allocations} allocations in the steady state (speech events: {speech}, barge-in: {barge_in}) ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if ok { passed += 1 } else { failed += 1 }
    }
    // Echo-aware: the echo gate records every frame sent and masks the caller's frames in
    // fixed-size state.
    // Rejoining: the barge-in detector follows each speech in state boxed at the session's open.
    // Echo reduction: the canceller filters every caller frame while the agent's audio plays,
    // in buffers and FFT scratch made when the session opens.
    let mut echo_aware = SessionConfig::default();
    echo_aware.vad.echo_aware = true;
    let mut rejoining = SessionConfig::default();
    rejoining.barge_in.rejoin_within_ms = trunkline::config::RECOMMENDED_REJOIN_WITHIN_MS;
    let echo_reduction = SessionConfig { echo_reduction: true, ..echo_aware.clone() };
    // Echo reduction on a 16 kHz stream for a 16 kHz agent: the caller's audio goes through the
    // canceller at 8 kHz and back up to the agent's rate, in buffers on the stack.
    let wide_reduction = SessionConfig { agent_rate: 16_000, ..echo_reduction.clone() };
    for (name, call, config) in [
        ("echo-aware", Call::Twilio, echo_aware),
        ("rejoining", Call::Twilio, rejoining),
        ("echo-reduction", Call::Twilio, echo_reduction),
        ("echo-reduction, 16 kHz agent", Call::TelnyxG722, wide_reduction),
    ] {
        for workers in [0, 1] {
            let (allocations, events) = run_with(workers, call, config.clone());
            let barge_in = events.iter().any(|e| matches!(e, Event::BargeIn { .. }));
            let ok = allocations == 0 && barge_in;
            println!(
                "no_alloc workers={workers} {call:?} {name}: {allocations} allocations in the steady state (barge-in: {barge_in}) ... {}",
                if ok { "ok" } else { "FAILED" }
            );
            if ok { passed += 1 } else { failed += 1 }
        }
    }
    // With a recording: the worker only copies into the recording's preallocated ring.
    let dir = std::env::temp_dir().join(format!("trunkline-no-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for workers in [0, 1] {
        let path = dir.join(format!("call-{workers}.wav"));
        let (allocations, events) = run_recorded(workers, Call::Twilio, Some(path.clone()));
        let barge_in = events.iter().any(|e| matches!(e, Event::BargeIn { .. }));
        let written = std::fs::metadata(&path).is_ok_and(|m| m.len() > 44);
        let ok = allocations == 0 && barge_in && written;
        println!(
            "no_alloc workers={workers} Twilio recorded: {allocations} allocations in the steady state (barge-in: {barge_in}, recording written: {written}) ... {}",
            if ok { "ok" } else { "FAILED" }
        );
        if ok { passed += 1 } else { failed += 1 }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("no_alloc: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
