//! Barge-in reaction as the engine counts it (`MetricsSnapshot::barge_in_reaction`): from the
//! arrival of the caller's audio holding the speech onset to the barge-in decision. On a manual
//! clock, so the arrival of every frame and the time of the decision are known exactly.

use crate::common::*;
use std::time::Duration;
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig};

/// Network delay of caller frame `k`, µs: 0 to 15 ms, seeded, so arrivals are not a multiple of
/// the stream time (and, under 20 ms, keep the frames in order).
fn delay_us(k: u64) -> u64 {
    let x = (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 40) % 15_000
}

fn drain_outbound(session: &mut Session) {
    let mut buf = Vec::new();
    while session.next_outbound(&mut buf).is_some() {}
}

#[test]
fn reaction_runs_from_the_arrival_of_the_onset_to_the_decision() {
    let (audio, labels) = speech();
    let clock = ManualClock::new();
    let config = EngineConfig { workers: Some(0), ..Default::default() };
    let engine = Engine::with_manual_clock(config, clock.clone()).unwrap();
    let mut session =
        engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    session.push_text(&connected()).unwrap();
    session.push_text(&start()).unwrap();
    // The agent talks from the start: half a second queued, then 20 ms more per frame.
    let tone: Vec<i16> = (0..4_000).map(|i| ((i % 20) as i16 - 10) * 800).collect();
    session.play(&tone, 8_000).unwrap();

    let mut arrivals = Vec::new();
    let mut barge_in = None;
    let mut pcm = [0i16; 1024];
    for (k, frame) in audio.chunks_exact(160).enumerate() {
        let k = k as u64;
        let arrival = 1_000_000 + k * 20_000 + delay_us(k);
        clock.advance(Duration::from_micros(arrival - clock.now_us()));
        session.push_text(&media(k + 2, k + 1, k * 20, frame)).unwrap();
        arrivals.push(arrival);
        while session.read_audio(&mut pcm) > 0 {}
        while let Some(event) = session.poll_event() {
            if let Event::BargeIn { stream_ms, .. } = event {
                barge_in = Some((stream_ms, clock.now_us()));
            }
        }
        if barge_in.is_some() {
            break;
        }
        drain_outbound(&mut session);
        let _ = session.play(&tone[..160], 8_000);
    }

    let (onset_ms, decided_us) = barge_in.expect("the caller's first utterance barges in");
    // Ducked once on the way (default `duck_db`), and not let go before the barge-in.
    let stats = session.stats();
    assert_eq!((stats.ducks, stats.duck_restores), (1, 0), "{stats:?}");
    assert!(onset_ms.abs_diff(labels[0].0) <= 100, "onset {onset_ms} ms, labelled {} ms", labels[0].0);
    // The onset lies in frame onset_ms / 20 (frames are 20 ms from stream time 0).
    let expected_us = decided_us - arrivals[(onset_ms / 20) as usize];
    // At least the 300 ms of voiced speech barge-in waits for (less the network's spread).
    assert!(expected_us >= 300_000 - 15_000, "{expected_us} µs");
    let reactions = engine.metrics_snapshot().barge_in_reaction;
    assert_eq!(reactions.count(), 1);
    assert_eq!(reactions.sum(), expected_us as f64 / 1e6);
    let bucket = reactions.bounds().iter().position(|&b| expected_us as f64 / 1e6 <= b);
    assert_eq!(reactions.counts()[bucket.unwrap_or(reactions.bounds().len())], 1);
}

#[test]
fn speech_while_the_agent_is_quiet_is_not_a_barge_in_and_counts_no_reaction() {
    let (audio, _) = speech();
    let clock = ManualClock::new();
    let config = EngineConfig { workers: Some(0), ..Default::default() };
    let engine = Engine::with_manual_clock(config, clock.clone()).unwrap();
    let mut session =
        engine.open_session(&SessionConfig { agent_rate: 8_000, ..Default::default() }).unwrap();
    session.push_text(&start()).unwrap();
    let mut pcm = [0i16; 1024];
    let mut speech_started = false;
    for (k, frame) in audio.chunks_exact(160).take(150).enumerate() {
        clock.advance(Duration::from_millis(20));
        let k = k as u64;
        session.push_text(&media(k + 2, k + 1, k * 20, frame)).unwrap();
        while session.read_audio(&mut pcm) > 0 {}
        while let Some(event) = session.poll_event() {
            speech_started |= matches!(event, Event::SpeechStarted { .. });
            assert!(!matches!(event, Event::BargeIn { .. }));
        }
    }
    assert!(speech_started);
    assert_eq!(engine.metrics_snapshot().barge_in_reaction.count(), 0);
    // Nothing to duck while the agent is quiet.
    assert_eq!(session.stats().ducks, 0);
}
