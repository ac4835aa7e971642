//! Threaded sessions get a worker slot (the flag the host sets to hand the worker work) even when
//! sessions are closed and opened faster than the worker retires them, and every session works,
//! whichever slot it got (including the shared overflow slot, which the worker polls).

mod common;

use common::*;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, MessageKind, SessionConfig};

#[test]
fn sessions_closed_and_reopened_at_once_always_get_a_working_slot() {
    let engine =
        Engine::new(EngineConfig { workers: Some(1), max_sessions: 2, ..Default::default() }).unwrap();
    let config = SessionConfig::default();
    let keep = engine.open_session(&config).unwrap();
    // Far more open/close cycles than there are slots, with no pause for the worker.
    for _ in 0..200 {
        let mut s = engine.open_session(&config).unwrap();
        s.close();
    }
    let mut last = engine.open_session(&config).unwrap();
    last.push_text(&connected()).unwrap();
    last.push_text(&start()).unwrap();
    last.push(media(2, 1, 0, &[0xFF; 160]).as_bytes(), MessageKind::Text).unwrap();
    // Its audio comes through (2 x 160 samples at 16 kHz), by flag or by the overflow poll.
    let mut pcm = [0i16; 1024];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < 320 && Instant::now() < deadline {
        engine.wait(Some(Duration::from_millis(10)));
        got += last.read_audio(&mut pcm);
    }
    assert_eq!(got, 320);
    drop(keep);
}
