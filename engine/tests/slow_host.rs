//! A slow host on a threaded engine: one call's host stops reading caller audio, events and
//! outbound messages while it keeps pushing carrier audio and playing agent audio. Its worker
//! must never block (another call pinned to the same worker keeps its real-time latency), memory
//! must not grow (RSS over ten minutes of the slow call's audio), and every drop must be counted:
//! caller audio (newest dropped), events (oldest dropped), agent audio (`play` takes less), pacer
//! stalls. One test in this file, so the RSS figures are this test's alone.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

#[path = "support/alloc_guarded.rs"]
mod alloc_guarded;
mod common;

use common::*;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig, SessionError};

fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4
}

/// Pushes a message, waiting out backpressure (`Full`) like a WebSocket reader would.
fn push(s: &mut Session, m: &str) -> Duration {
    let t = Instant::now();
    loop {
        match s.push_text(m) {
            Ok(()) => return t.elapsed(),
            Err(SessionError::Full) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("push: {e}"),
        }
    }
}

#[test]
fn a_host_that_stops_reading_never_blocks_the_worker_nor_grows_memory() {
    // One worker: the slow call and the healthy call share it.
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let config = SessionConfig {
        agent_ring_ms: 500,
        event_capacity: 32,
        outbound_ring_bytes: 4096,
        ..Default::default()
    };
    let mut slow = engine.open_session(&config).unwrap();
    let mut healthy = engine.open_session(&SessionConfig::default()).unwrap();
    push(&mut slow, &start());
    push(&mut healthy, &start());
    let frame = [0xFFu8; 160];

    // Warm up (first allocations of the rings, the allocator's arenas), then measure.
    let mut ts = 0u64;
    for i in 0..500u64 {
        push(&mut slow, &media(i + 2, i + 1, ts, &frame));
        push(&mut slow, &dtmf(100_000 + i, '1'));
        ts += 20;
    }
    let rss_before = rss_kb();

    // Ten minutes of the slow call's audio (plus a DTMF event per frame), as fast as the engine
    // takes it; every 20 frames, one frame of the healthy call, whose latency is measured from
    // push to its audio being readable.
    let frames = 30_000u64;
    let mut healthy_ts = 0u64;
    let mut latencies = vec![];
    let mut slowest_push = Duration::ZERO;
    let mut pcm = [0i16; 4096];
    let mut played = 0usize;
    let agent_audio = vec![1000i16; 2400];
    for i in 500..500 + frames {
        slowest_push = slowest_push.max(push(&mut slow, &media(i + 2, i + 1, ts, &frame)));
        push(&mut slow, &dtmf(100_000 + i, '1'));
        ts += 20;
        if i % 20 == 0 {
            // The slow host also keeps playing agent audio and never takes outbound messages.
            played += slow.play(&agent_audio, 24_000).unwrap_or(0);
            let t = Instant::now();
            let k = healthy_ts / 20;
            push(&mut healthy, &media(k + 2, k + 1, healthy_ts, &frame));
            healthy_ts += 20;
            let mut got = 0;
            while got < 320 && t.elapsed() < Duration::from_secs(2) {
                got += healthy.read_audio(&mut pcm[got..]);
                if got < 320 {
                    engine.wait(Some(Duration::from_millis(1)));
                }
            }
            assert_eq!(got, 320, "the healthy call's audio arrived");
            latencies.push(t.elapsed());
            while healthy.poll_event().is_some() {}
        }
    }
    // Let the worker finish what was pushed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.stats().messages_in < 2 * (500 + frames) + 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let rss_after = rss_kb();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let st = slow.stats();
    println!(
        "slow host: RSS {rss_before} kB -> {rss_after} kB; healthy call p50 {:?} p99 {:?} max {:?}; slowest push {:?}",
        latencies[latencies.len() / 2],
        p99,
        latencies.last().unwrap(),
        slowest_push
    );
    println!("slow call: {st:?}");

    // Every message was processed; nothing was refused for good (the host waited out `Full`).
    assert_eq!(st.messages_in, 2 * (500 + frames) + 1);
    // Caller audio: the 500 ms ring holds 8000 samples at 16 kHz; everything else was dropped
    // (the newest) and counted, and the two add up to the stream time delivered.
    let delivered = (500 + frames) * 160 * 2;
    assert_eq!(st.agent_samples_out, 8_000);
    assert_eq!(st.agent_samples_out + st.agent_samples_dropped, delivered);
    assert_eq!(st.inbound_samples, (500 + frames) * 160);
    // Events: the queue holds 32; the oldest of the 30 501 were dropped and counted.
    assert_eq!(st.events_dropped, 1 + 2 * (500 + frames) / 2 - 32);
    // Agent audio: the pacer stopped when the outbound ring filled; `play` then took less (its
    // refusals counted) and nothing it took was lost.
    assert!(st.outbound_stalls > 0 && st.play_refused_full > 0, "{st:?}");
    // A held frame is counted once, not at every step that finds it still held (about 31,000
    // steps of the slow call here: a count of thousands).
    assert!(st.outbound_stalls <= 10, "{st:?}");
    assert!(played < agent_audio.len() * (frames as usize / 20), "play took less once full");
    // The newest events are the ones kept.
    let kept: Vec<_> = std::iter::from_fn(|| slow.poll_event()).collect();
    assert_eq!(kept.len(), 32);
    assert!(kept.iter().all(|e| matches!(e, Event::Dtmf { .. })), "{kept:?}");
    // Memory: ten minutes of dropped audio and events did not accumulate anywhere.
    assert!(rss_after < rss_before + 8 * 1024, "RSS grew from {rss_before} kB to {rss_after} kB");
    // The worker never blocked on the slow call: the healthy call kept real-time latency.
    assert!(p99 < Duration::from_millis(50), "healthy call p99 {p99:?}");
}
