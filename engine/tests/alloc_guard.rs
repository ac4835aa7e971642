//! The allocation guard around every session step (`trunkline::alloc_guard`, on in the engine's
//! debug test builds through the `alloc-guard` feature).
//!
//! This binary installs `assert_no_alloc::AllocDisabler` as its global allocator, so a step that
//! allocates or frees aborts the whole process ("memory allocation of N bytes failed"), on a
//! worker thread or inline. The calls below go through everything a step does, on zero, one and
//! two workers, and must finish. `the_guard_catches_an_allocation_in_a_step` runs this binary
//! again with a hook that makes every step allocate, and expects the abort.
//!
//! Debug builds only: the guard compiles to nothing in release builds.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]
#![cfg(debug_assertions)]

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};
use trunkline::pipeline::PLAY_RATES;
use trunkline::{Engine, EngineConfig, Event, MessageKind, Session, SessionConfig};

#[global_allocator]
static ALLOCATOR: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

/// Set in the child process `the_guard_catches_an_allocation_in_a_step` starts: `<workers>,<hook>`.
const CHILD_ENV: &str = "TRUNKLINE_ALLOC_GUARD_CHILD";

/// Pushes `message`, waiting while the inbound ring is full.
fn push(engine: &Engine, session: &mut Session, message: &[u8], kind: MessageKind) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while session.push(message, kind).is_err() {
        assert!(Instant::now() < deadline, "the inbound ring stayed full");
        engine.wait(Some(Duration::from_millis(1)));
    }
}

/// Reads audio, takes outbound messages (echoing marks as the carrier would) and, if `events` is
/// given, polls events into it.
fn drain(engine: &Engine, session: &mut Session, seq: &mut u64, events: Option<&mut Vec<Event>>) {
    let mut pcm = [0i16; 4096];
    while session.read_audio(&mut pcm) > 0 {}
    let mut out = vec![0u8; 8192];
    while let Some((_, len)) = session.next_outbound_into(&mut out) {
        if let Outbound::Mark(name) = parse_outbound(&out[..len]) {
            *seq += 1;
            push(engine, session, mark_echo(*seq, &name).as_bytes(), MessageKind::Text);
        }
    }
    if let Some(events) = events {
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
}

/// One call through everything a step does: start, caller speech (VAD events, barge-in), agent
/// audio at every play rate (the first `play` at each rate included), host marks and their echoes,
/// sync marks, DTMF, an interrupt, rejected and escaped messages, an overflowing event queue,
/// stop, and `play` after it. Returns its events (those the queue kept) and its session.
fn call(engine: &Engine, config: &SessionConfig) -> (Vec<Event>, Session) {
    let (caller, _) = speech();
    let mut session = engine.open_session(config).unwrap();
    let mut events = vec![];
    let mut seq = 1;
    for message in [connected(), start()] {
        push(engine, &mut session, message.as_bytes(), MessageKind::Text);
    }
    let frames = (caller.len() / 160).min(300);
    for i in 0..frames {
        seq += 1;
        let frame = &caller[i * 160..][..160];
        push(
            engine,
            &mut session,
            media(seq, i as u64 + 1, i as u64 * 20, frame).as_bytes(),
            MessageKind::Text,
        );
        let rate = PLAY_RATES[i % PLAY_RATES.len()];
        let _ = session.play(&vec![1000i16; rate as usize / 50], rate);
        match i {
            10 | 60 | 200 => session.mark(&format!("reply-{i}")).unwrap(),
            40 => session.interrupt().unwrap(),
            50 => push(engine, &mut session, dtmf(seq, '7').as_bytes(), MessageKind::Text),
            70 => {
                // Rejected messages and an escaped mark name: parsing them allocates, by design.
                let bad = [
                    r#"{"event":"media","media":"#.to_owned(),
                    r#"{"event":"nonsense"}"#.to_owned(),
                    start(),
                    mark_echo(seq, "re\u{e9}ply-\"quoted\""),
                ];
                for message in &bad {
                    push(engine, &mut session, message.as_bytes(), MessageKind::Text);
                }
                push(engine, &mut session, b"\x00\x01", MessageKind::Binary);
                push(engine, &mut session, &vec![b' '; 64 * 1024], MessageKind::Text);
            }
            _ => {}
        }
        // Until frame 100 events are left in the queue, so that it overflows and drops the
        // oldest ones (`Started` among them) on the step's thread.
        drain(engine, &mut session, &mut seq, (i >= 100).then_some(&mut events));
        if engine.workers() > 0 && i % 5 == 0 {
            engine.wait(Some(Duration::from_millis(1)));
        }
    }
    seq += 1;
    push(engine, &mut session, stop(seq).as_bytes(), MessageKind::Text);
    push(engine, &mut session, media(seq + 1, 0, 0, &[0xff; 160]).as_bytes(), MessageKind::Text);
    let _ = session.play(&[0i16; 480], 24_000);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|e| matches!(e, Event::Stopped)) {
        assert!(Instant::now() < deadline, "no Stopped event");
        engine.wait(Some(Duration::from_millis(1)));
        drain(engine, &mut session, &mut seq, Some(&mut events));
    }
    (events, session)
}

#[test]
fn whole_calls_allocate_nothing_in_a_step() {
    for workers in [0, 1, 2] {
        let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
        // Two sessions, so that with two workers both threads run steps; a small event queue that
        // overflows rather than holding the carrier's messages back.
        let config = SessionConfig { event_capacity: 4, read_hold_ms: 0, ..SessionConfig::default() };
        for _ in 0..2 {
            let (events, mut session) = call(&engine, &config);
            let stats = session.stats();
            assert!(stats.frames_out > 0 && stats.speech_segments > 0, "workers={workers}: {stats:?}");
            assert!(stats.events_dropped > 0 && stats.protocol_errors >= 6, "workers={workers}: {stats:?}");
            let marks = stats.marks_played + stats.marks_cleared;
            assert!(marks == 3 && stats.interrupts == 1, "workers={workers}: {stats:?}");
            assert!(stats.dtmf_digits == 1 && stats.barge_ins > 0, "workers={workers}: {stats:?}");
            assert!(events.iter().any(|e| matches!(e, Event::SpeechStopped { .. })), "{events:?}");
            session.close();
        }
    }
}

#[test]
fn the_guard_catches_an_allocation_in_a_step() {
    for workers in [0, 1] {
        for hook in [false, true] {
            let child = Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_process", "--ignored", "--test-threads=1"])
                .env(CHILD_ENV, format!("{workers},{hook}"))
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&child.stderr);
            let what = format!("workers={workers}, allocating hook {hook}: {:?}\n{stderr}", child.status);
            if hook {
                assert!(!child.status.success(), "{what}");
                assert!(stderr.contains("memory allocation of"), "{what}");
                #[cfg(unix)]
                {
                    use std::os::unix::process::ExitStatusExt;
                    assert_eq!(child.status.signal(), Some(libc::SIGABRT), "{what}");
                }
            } else {
                // The same call without the hook's allocation runs to its end.
                assert!(child.status.success(), "{what}");
            }
        }
    }
}

/// Run by `the_guard_catches_an_allocation_in_a_step` in a child process (nothing otherwise).
#[test]
#[ignore = "run in a child process by the_guard_catches_an_allocation_in_a_step"]
fn child_process() {
    let Ok(setting) = std::env::var(CHILD_ENV) else { return };
    let (workers, hook) = setting.split_once(',').unwrap();
    let workers: usize = workers.parse().unwrap();
    trunkline::alloc_guard::test_hook::allocate_in_every_step(hook == "true");
    let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&SessionConfig::default()).unwrap();
    let mut events = vec![];
    let deadline = Instant::now() + Duration::from_secs(5);
    push(&engine, &mut session, connected().as_bytes(), MessageKind::Text);
    // On a worker the step runs on its thread: wait for it (an abort ends the process first).
    while events.is_empty() {
        assert!(Instant::now() < deadline, "the step never ran");
        engine.wait(Some(Duration::from_millis(1)));
        events.extend(std::iter::from_fn(|| session.poll_event()));
    }
    assert!(matches!(events[0], Event::Connected), "{events:?}");
}
