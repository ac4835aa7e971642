//! What a host finds once it has seen an event, on a threaded engine: everything the worker did
//! before the event. The caller audio up to it, the carrier messages it sent (a barge-in's
//! `clear`), and the counters (all of the call's once it sees `Stopped`).
//!
//! A host reads on its own thread, at any instant of the worker's step. The windows inside a
//! step are microseconds wide, so the step hook (`runtime::step_hook`) pauses the worker for
//! 3 ms after each event it publishes. The host polls far more often than that, so it looks
//! inside each window. The hook is process-wide, which is why these tests have a binary of their
//! own and take turns (`HOOKS`).
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]
#![cfg(debug_assertions)]

#[path = "support/alloc_guarded.rs"]
mod alloc_guarded;
mod common;

use common::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trunkline::runtime::step_hook;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig, SessionError};

const CALLER_FRAMES: u64 = 90; // 1.8 s: the fixture's first utterance starts at 1 s.
const AGENT_RATE: u32 = 24_000;

/// The step hooks are the process's: one test at a time sets them.
static HOOKS: Mutex<()> = Mutex::new(());

fn push(session: &mut Session, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match session.push_text(message) {
            Ok(()) => return,
            Err(SessionError::Full) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_micros(200))
            }
            Err(e) => panic!("push: {e}"),
        }
    }
}

/// The host's side: every event in order, what it found when it saw each, and the audio and
/// messages read so far.
#[derive(Default)]
struct Host {
    events: Vec<Event>,
    outbound: Vec<Outbound>,
    samples: usize,
    /// For each event: the `clear`s among the messages read after seeing it, and the counters.
    clears_at_event: Vec<usize>,
    stats_at_event: Vec<trunkline::SessionStats>,
}

impl Host {
    fn poll(&mut self, session: &mut Session) {
        let mut chunk = [0i16; 4096];
        let mut buf = Vec::new();
        while let Some(event) = session.poll_event() {
            // What a host reacting to the event finds right then.
            let stats = session.stats();
            while session.next_outbound(&mut buf).is_some() {
                self.outbound.push(parse_outbound(&buf));
            }
            self.clears_at_event.push(self.outbound.iter().filter(|o| matches!(o, Outbound::Clear)).count());
            self.stats_at_event.push(stats);
            self.events.push(event);
        }
        loop {
            let n = session.read_audio(&mut chunk);
            if n == 0 {
                break;
            }
            self.samples += n;
        }
        while session.next_outbound(&mut buf).is_some() {
            self.outbound.push(parse_outbound(&buf));
        }
    }

    fn index_of(&self, wanted: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().position(wanted).unwrap_or_else(|| panic!("event not seen: {:?}", self.events))
    }
}

#[test]
fn a_host_that_sees_an_event_finds_the_audio_messages_and_counts_before_it() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    let paused = Paused::after_each_event(Duration::from_millis(3));
    let (caller, labels) = speech();
    assert_eq!(labels[0].0, 1000, "fixture layout changed: {labels:?}");
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&SessionConfig::default()).unwrap();
    let mut host = Host::default();
    push(&mut session, &connected());
    push(&mut session, &start());
    // A greeting the outbound queue holds whole (1.2 s), playing while the caller speaks over it.
    let greeting: Vec<i16> = (0..AGENT_RATE as usize * 6 / 5)
        .map(|i| {
            (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(AGENT_RATE)).sin()) as i16
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.events.iter().any(|e| matches!(e, Event::Started(_))) && Instant::now() < deadline {
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    let mut left: &[i16] = &greeting;
    while !left.is_empty() && Instant::now() < deadline {
        match session.play(left, AGENT_RATE) {
            Ok(n) => left = &left[n..],
            Err(SessionError::Full) => {}
            Err(e) => panic!("play: {e}"),
        }
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    assert!(left.is_empty(), "the greeting was taken");
    session.mark("greeting-done").unwrap();
    let mut pushed = 2;
    for i in 0..CALLER_FRAMES {
        let payload = &caller[(i * 160) as usize..((i + 1) * 160) as usize];
        push(&mut session, &media(i + 2, i + 1, i * 20, payload));
        pushed += 1;
        host.poll(&mut session);
    }
    push(&mut session, &stop(CALLER_FRAMES + 2));
    pushed += 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.events.contains(&Event::Stopped) && Instant::now() < deadline {
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    drop(paused);

    let barge_in = host.index_of(|e| matches!(e, Event::BargeIn { .. }));
    let cleared = host.index_of(|e| matches!(e, Event::MarkCleared { .. }));
    let stopped = host.index_of(|e| *e == Event::Stopped);
    assert_eq!(stopped, host.events.len() - 1, "{:?}", host.events);
    // The barge-in's clear was sent before the host heard of it, and counted.
    for at in [barge_in, cleared] {
        assert_eq!(host.clears_at_event[at], 1, "clears read on seeing {:?}", host.events[at]);
        let stats = host.stats_at_event[at];
        assert_eq!((stats.barge_ins, stats.clears_sent), (1, 1), "counters on seeing {:?}", host.events[at]);
    }
    // On `Stopped`: the whole call counted, and its audio there to read.
    let stats = host.stats_at_event[stopped];
    assert_eq!(stats.messages_in, pushed, "messages counted on seeing Stopped");
    assert_eq!(stats.media_frames_in, CALLER_FRAMES, "frames counted on seeing Stopped");
    assert_eq!(stats.agent_samples_out, CALLER_FRAMES * 20 * 16, "samples delivered on seeing Stopped");
    assert_eq!(host.samples as u64, stats.agent_samples_out, "and read");
    assert_eq!(stats, session.stats(), "nothing counted after Stopped");
}

/// Workers pause after each event until this is dropped, even by a failed assertion.
struct Paused;

impl Paused {
    fn after_each_event(pause: Duration) -> Self {
        step_hook::pause_after_each_event(pause);
        Paused
    }

    fn before_each_full_push(pause: Duration) -> Self {
        step_hook::pause_before_each_full_push(pause);
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        step_hook::pause_after_each_event(Duration::ZERO);
        step_hook::pause_before_each_full_push(Duration::ZERO);
    }
}

/// Lets the workers go when the test ends, even by a failed assertion.
struct Held;

impl Held {
    fn until_a_worker_waits() -> Self {
        step_hook::hold_steps(true);
        let held = Held;
        let deadline = Instant::now() + Duration::from_secs(5);
        while step_hook::workers_held() == 0 {
            assert!(Instant::now() < deadline, "no worker came to a step");
            std::thread::sleep(Duration::from_micros(200));
        }
        held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        step_hook::hold_steps(false);
    }
}

/// A started call on one worker, and its host.
fn started_call(config: &SessionConfig) -> (Engine, Session, Host) {
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut session = engine.open_session(config).unwrap();
    let mut host = Host::default();
    push(&mut session, &connected());
    push(&mut session, &start());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.events.iter().any(|e| matches!(e, Event::Started(_))) {
        assert!(Instant::now() < deadline, "no Started: {:?}", host.events);
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    (engine, session, host)
}

/// Polls until `Stopped` and a little after it, then checks that the mark was cleared before
/// it and that it came last.
fn mark_cleared_before_stopped(session: &mut Session, host: &mut Host, mark: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.events.contains(&Event::Stopped) && Instant::now() < deadline {
        host.poll(session);
        std::thread::sleep(Duration::from_micros(100));
    }
    // Whatever comes after `Stopped` (nothing should).
    std::thread::sleep(Duration::from_millis(50));
    host.poll(session);
    let cleared = host.index_of(|e| matches!(e, Event::MarkCleared { name } if name == mark));
    let stopped = host.index_of(|e| *e == Event::Stopped);
    assert!(cleared < stopped, "the mark is resolved before the call's end: {:?}", host.events);
    assert_eq!(stopped, host.events.len() - 1, "Stopped is the last event: {:?}", host.events);
    assert_eq!(session.stats().marks_cleared, 1, "{:?}", session.stats());
}

#[test]
fn a_mark_queued_before_the_carriers_stop_is_resolved_before_stopped() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    let (_engine, mut session, mut host) = started_call(&SessionConfig::default());
    // The host queues a reply and its mark, and the carrier's stop arrives, all before the worker
    // steps again: one step finds them together, the stop first in its own ring.
    let held = Held::until_a_worker_waits();
    let reply = vec![1000i16; AGENT_RATE as usize / 5];
    assert_eq!(session.play(&reply, AGENT_RATE).unwrap(), reply.len());
    session.mark("reply-done").unwrap();
    push(&mut session, &stop(2));
    drop(held);
    mark_cleared_before_stopped(&mut session, &mut host, "reply-done");
}

#[test]
fn a_mark_behind_audio_waiting_for_room_is_resolved_before_stopped() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    // An outbound queue of 260 ms (the least), and a reply of 400 ms: its records are 4096
    // samples (170 ms) at most, so the second waits in the play ring for room, the mark behind
    // it, when the caller hangs up.
    let config = SessionConfig { outbound_buffer_ms: 260, play_ring_bytes: 64 * 1024, ..Default::default() };
    let (_engine, mut session, mut host) = started_call(&config);
    let held = Held::until_a_worker_waits();
    let reply = vec![1000i16; AGENT_RATE as usize * 2 / 5];
    assert_eq!(session.play(&reply, AGENT_RATE).unwrap(), reply.len());
    session.mark("reply-done").unwrap();
    push(&mut session, &stop(2));
    drop(held);
    mark_cleared_before_stopped(&mut session, &mut host, "reply-done");
    assert!(session.stats().flushed_samples > 0, "{:?}", session.stats());
}

/// On `Stopped` the counters count every event dropped to make room, those the stop's own events
/// pushed out included. The host has not polled the call's key presses, its queue (4 events) is
/// full, and the host does not count as reading (`read_hold_ms` 0), so the stop's events drop
/// the oldest. The host looks once the first of them is published, during the worker's pause.
#[test]
fn on_stopped_the_events_dropped_to_make_room_for_the_stops_own_are_counted() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    let config = SessionConfig { event_capacity: 4, read_hold_ms: 0, ..Default::default() };
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&config).unwrap();
    push(&mut session, &connected());
    push(&mut session, &start());
    for i in 0..6 {
        push(&mut session, &dtmf(i + 3, '5'));
    }
    // Marks still pending when the stream stops: the stop resolves them, one event each.
    session.play(&[1000; 2400], AGENT_RATE).unwrap();
    for name in ["a", "b", "c"] {
        session.mark(name).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.stats().dtmf_digits < 6 {
        assert!(Instant::now() < deadline, "the key presses were not handled");
        std::thread::sleep(Duration::from_millis(1));
    }
    let dropped_before = session.stats().events_dropped;
    assert_eq!(dropped_before, 4, "8 events into a queue of 4");

    let paused = Paused::after_each_event(Duration::from_millis(3));
    let published = step_hook::events_published();
    push(&mut session, &stop(9));
    while step_hook::events_published() == published {
        assert!(Instant::now() < deadline, "the stop made no event");
        std::thread::yield_now();
    }
    let mut host = Host::default();
    while !host.events.contains(&Event::Stopped) {
        assert!(Instant::now() < deadline, "no Stopped: {:?}", host.events);
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    drop(paused);
    // The worker's step over (its last pause, then its counters): what the call counted in all.
    std::thread::sleep(Duration::from_millis(50));
    let stopped = host.index_of(|e| *e == Event::Stopped);
    let last = session.stats();
    assert!(last.events_dropped > dropped_before, "the stop's events dropped none: {last:?}");
    assert_eq!(host.stats_at_event[stopped].events_dropped, last.events_dropped, "on seeing Stopped");
    assert_eq!(host.stats_at_event[stopped], last, "nothing counted after Stopped");
}

#[test]
fn a_reply_played_on_seeing_a_barge_in_goes_out_though_the_host_polled_again_inside_the_step() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    // Long pauses after each event: the host's next polls, which find the queue empty, come while
    // the worker is still inside the step that queued the barge-in.
    let paused = Paused::after_each_event(Duration::from_millis(50));
    let (caller, _) = speech();
    let (_engine, mut session, mut host) = started_call(&SessionConfig::default());
    let greeting = vec![3000i16; AGENT_RATE as usize * 6 / 5];
    let mut left: &[i16] = &greeting;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !left.is_empty() && Instant::now() < deadline {
        match session.play(left, AGENT_RATE) {
            Ok(n) => left = &left[n..],
            Err(SessionError::Full) => std::thread::sleep(Duration::from_micros(100)),
            Err(e) => panic!("play: {e}"),
        }
    }
    for i in 0..CALLER_FRAMES {
        let payload = &caller[(i * 160) as usize..((i + 1) * 160) as usize];
        push(&mut session, &media(i + 2, i + 1, i * 20, payload));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.events.iter().any(|e| matches!(e, Event::BargeIn { .. })) {
        assert!(Instant::now() < deadline, "no barge-in: {:?}", host.events);
        host.poll(&mut session); // polls until the queue is empty, as hosts do
        std::thread::sleep(Duration::from_micros(200));
    }
    // The host answers the interruption at once.
    let reply = vec![2000i16; AGENT_RATE as usize / 5];
    let taken = session.play(&reply, AGENT_RATE).unwrap();
    assert!(taken > 0);
    session.mark("reply").unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline
        && !host.events.iter().any(|e| matches!(e, Event::MarkCleared { name } if name == "reply"))
    {
        host.poll(&mut session);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(paused);
    // The reply's audio went out after the barge-in's clear, and its mark was not cleared.
    let clear = host.outbound.iter().rposition(|o| matches!(o, Outbound::Clear)).expect("a clear");
    let media_after = host.outbound[clear..].iter().filter(|o| matches!(o, Outbound::Media(_))).count();
    assert!(media_after > 0, "the reply was dropped as stale: {:?}", host.events);
    assert!(
        !host.events.iter().any(|e| matches!(e, Event::MarkCleared { name } if name == "reply")),
        "{:?}",
        host.events
    );
}

#[test]
fn an_interrupt_asked_for_after_one_applied_ahead_of_its_record_is_applied_and_reported() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    // A small outbound queue: most of a long reply waits in the play ring, so the first interrupt
    // is applied at the first record ahead of its own (the worker pauses after the event).
    let config = SessionConfig { outbound_buffer_ms: 260, play_ring_bytes: 256 * 1024, ..Default::default() };
    let (_engine, mut session, mut host) = started_call(&config);
    let paused = Paused::after_each_event(Duration::from_millis(50));
    let reply = vec![1000i16; AGENT_RATE as usize * 2];
    assert_eq!(session.play(&reply, AGENT_RATE).unwrap(), reply.len());
    std::thread::sleep(Duration::from_millis(30)); // the queue fills, the rest waits in the ring
    session.interrupt().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !host.events.iter().any(|e| matches!(e, Event::Interrupted { .. })) {
        assert!(Instant::now() < deadline, "no Interrupted: {:?}", host.events);
        host.poll(&mut session);
        std::thread::sleep(Duration::from_micros(100));
    }
    // While the worker is still in that step: more audio, and a second interrupt.
    session.play(&reply[..AGENT_RATE as usize / 10], AGENT_RATE).unwrap();
    session.interrupt().unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        host.poll(&mut session);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(paused);
    let interrupted = host.events.iter().filter(|e| matches!(e, Event::Interrupted { .. })).count();
    assert_eq!(interrupted, 2, "{:?}", host.events);
    assert_eq!(session.stats().interrupts, 2, "{:?}", session.stats());
}

#[test]
fn events_dropped_never_goes_back_though_the_host_made_room_before_the_push() {
    let _turn = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    let config = SessionConfig { event_capacity: 4, ..Default::default() };
    let (_engine, mut session, host) = started_call(&config);
    // Events the host does not take: the queue fills, then drops its oldest for each new one.
    for _ in 0..8 {
        push(&mut session, "not json");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.stats().events_dropped < 2 {
        assert!(Instant::now() < deadline, "{:?}", session.stats());
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = session.stats().events_dropped;
    // The worker finds the queue full, counts the drop and pauses before the push; the host
    // takes an event meanwhile, so the push drops nothing.
    let paused = Paused::before_each_full_push(Duration::from_millis(200));
    push(&mut session, "not json");
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.stats().events_dropped == before {
        assert!(Instant::now() < deadline, "the drop was not counted ahead: {:?}", session.stats());
        std::thread::sleep(Duration::from_micros(200));
    }
    let counted = session.stats().events_dropped;
    assert!(session.poll_event().is_some()); // taken: counted below
    std::thread::sleep(Duration::from_millis(400));
    drop(paused);
    let after = session.stats().events_dropped;
    assert!(after >= counted, "events_dropped went from {counted} back to {after}");
    // The drop counted ahead stands for the next real one: once every message is processed
    // and every event taken, the count is the drops made, or one more (a drop counted ahead
    // that no later drop used).
    for _ in 0..6 {
        push(&mut session, "not json");
    }
    let mut taken = host.events.len() + 1;
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.stats().protocol_errors < 15 {
        assert!(Instant::now() < deadline, "{:?}", session.stats());
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    while session.poll_event().is_some() {
        taken += 1;
    }
    let stats = session.stats();
    // Every message made one event (the start's, taken before, and 15 protocol errors); what
    // was not taken was dropped.
    let dropped = (stats.protocol_errors + host.events.len() as u64) - taken as u64;
    assert!(
        (dropped..=dropped + 1).contains(&stats.events_dropped),
        "{dropped} dropped, {} counted",
        stats.events_dropped
    );
}
