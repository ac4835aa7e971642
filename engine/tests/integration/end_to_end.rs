//! A whole call through a threaded engine, in real time, against a simulated Twilio.
//!
//! The caller (the committed speech fixture) streams 20 ms frames with a lost frame, a duplicate
//! and a swapped pair; the agent speaks a long greeting that the caller interrupts, then replies
//! when the caller stops. The simulated carrier plays agent audio on its own clock with a 60 ms
//! playout delay, so the played position the engine reports can be checked against what the
//! carrier actually played when the `clear` landed.

use crate::common::*;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, Event, SessionConfig};

const CALLER_FRAMES: u64 = 220; // 4.4 s, ending before the fixture's second utterance.
const GAP_FRAME: u64 = 100; // never sent
const DUP_FRAME: u64 = 30; // sent twice
const SWAP_FRAME: u64 = 110; // sent after SWAP_FRAME + 1
const AGENT_RATE: usize = 16_000;

fn tone(rate: u32, seconds: f64, freq: f64, amplitude: f64) -> Vec<i16> {
    let n = (f64::from(rate) * seconds) as usize;
    (0..n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

#[test]
fn full_call_with_barge_in_in_threaded_mode() {
    let (caller, labels) = speech();
    let first = labels[0];
    assert!(first.0 > 600 && first.1 < CALLER_FRAMES * 20, "fixture layout changed: {labels:?}");

    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&SessionConfig::default()).unwrap();
    let t0 = Instant::now();
    let mut sim = CarrierSim::new(t0, Duration::from_millis(60));

    session.push_text(&connected()).unwrap();
    session.push_text(&start()).unwrap();

    // The agent's greeting: 3 s at 24 kHz, then a mark.
    let greeting = tone(24_000, 3.0, 440.0, 8000.0);
    let mut greeting_left: &[i16] = &greeting;
    let mut greeting_marked = false;
    let reply = tone(24_000, 0.4, 300.0, 6000.0);
    let mut reply_sent = false;
    // The reply is played like the greeting: what `play` does not take now is played later.
    let mut reply_left: &[i16] = &[];
    let mut reply_marked = false;

    let seq = 2u64;
    let mut next_frame = 0u64;
    let mut held_swap: Option<String> = None;
    let mut events: Vec<(Duration, Event)> = vec![];
    let mut agent_pcm: Vec<i16> = vec![];
    let mut chunk = vec![0i16; 4096];
    let mut buf = Vec::new();
    let mut stopped_sent = false;

    let frame_msg = |i: u64, seq: u64| {
        let payload = &caller[(i * 160) as usize..((i + 1) * 160) as usize];
        media(seq, i + 1, i * 20, payload)
    };

    while t0.elapsed() < Duration::from_secs(12) {
        let now = t0.elapsed();
        // Caller audio, in real time.
        while next_frame < CALLER_FRAMES && now >= Duration::from_millis(next_frame * 20) {
            let i = next_frame;
            next_frame += 1;
            let s = seq + i;
            match i {
                GAP_FRAME => {}
                DUP_FRAME => {
                    session.push_text(&frame_msg(i, s)).unwrap();
                    session.push_text(&frame_msg(i, s)).unwrap();
                }
                SWAP_FRAME => held_swap = Some(frame_msg(i, s)),
                _ => {
                    session.push_text(&frame_msg(i, s)).unwrap();
                    if let Some(m) = held_swap.take() {
                        session.push_text(&m).unwrap();
                    }
                }
            }
        }
        // Agent audio, as fast as the engine takes it.
        if !greeting_left.is_empty() {
            if let Ok(n) = session.play(greeting_left, 24_000) {
                greeting_left = &greeting_left[n..];
            }
        } else if !greeting_marked {
            session.mark("greeting-done").unwrap();
            greeting_marked = true;
        }
        if !reply_left.is_empty() {
            if let Ok(n) = session.play(reply_left, 24_000) {
                reply_left = &reply_left[n..];
            }
        } else if reply_sent && !reply_marked {
            session.mark("reply-done").unwrap();
            reply_marked = true;
        }
        // What the engine sends to the carrier.
        while session.next_outbound(&mut buf).is_some() {
            for echo in sim.receive(parse_outbound(&buf)) {
                session.push_text(&mark_echo(seq + 1000, &echo)).unwrap();
            }
        }
        for echo in sim.due_echoes() {
            session.push_text(&mark_echo(seq + 1000, &echo)).unwrap();
        }
        while let Some(ev) = session.poll_event() {
            if matches!(ev, Event::SpeechStopped { .. }) && !reply_sent {
                reply_left = &reply;
                reply_sent = true;
            }
            events.push((now, ev));
        }
        loop {
            let n = session.read_audio(&mut chunk);
            if n == 0 {
                break;
            }
            agent_pcm.extend_from_slice(&chunk[..n]);
        }
        let reply_heard =
            events.iter().any(|(_, e)| matches!(e, Event::MarkPlayed { name, .. } if name == "reply-done"));
        if next_frame == CALLER_FRAMES && reply_heard && !stopped_sent {
            session.push_text(&dtmf(seq + 2000, '5')).unwrap();
            session.push_text(&stop(seq + 2001)).unwrap();
            stopped_sent = true;
        }
        if events.iter().any(|(_, e)| *e == Event::Stopped) {
            break;
        }
        engine.wait(Some(Duration::from_millis(2)));
    }
    // Anything left after `stop`.
    loop {
        let n = session.read_audio(&mut chunk);
        if n == 0 {
            break;
        }
        agent_pcm.extend_from_slice(&chunk[..n]);
    }
    let stats = session.stats();
    let kinds: Vec<_> = events.iter().map(|(_, e)| e.clone()).collect();
    eprintln!("events: {kinds:#?}\nstats: {stats:#?}");

    // ---- Events, in order.
    let names: Vec<_> = kinds.iter().map(|e| e.kind()).collect();
    use trunkline::EventKind::*;
    let expected =
        [Connected, Started, SpeechStarted, BargeIn, MarkCleared, SpeechStopped, MarkPlayed, Dtmf, Stopped];
    assert_eq!(names, expected, "event sequence");
    let Event::Started(info) = &kinds[1] else { unreachable!() };
    assert_eq!(info.call_id, CALL_SID);
    assert_eq!(info.stream_id, STREAM_SID);
    assert_eq!(
        info.custom_parameters,
        vec![("caller".into(), "+15550100".into()), ("lang".into(), "en".into())]
    );

    let Event::SpeechStarted { stream_ms: onset } = kinds[2] else { unreachable!() };
    assert!(onset.abs_diff(first.0) <= 60, "speech onset {onset} vs truth {}", first.0);
    let Event::SpeechStopped { stream_ms: offset } = kinds[5] else { unreachable!() };
    assert!(offset.abs_diff(first.1) <= 120, "speech end {offset} vs truth {}", first.1);

    // ---- Barge-in: at the caller's onset, with the played position the carrier really played.
    let Event::BargeIn { stream_ms, played_ms } = kinds[3] else { unreachable!() };
    assert_eq!(stream_ms, onset);
    assert_eq!(sim.clears.len(), 1, "exactly one clear");
    let truth = sim.heard_at_clear[0];
    eprintln!("barge-in played position: engine {played_ms} ms, carrier truth {truth:.1} ms");
    assert!(
        (played_ms as f64 - truth).abs() <= 20.0,
        "barge-in played position {played_ms} ms vs carrier truth {truth:.1} ms"
    );
    assert_eq!(kinds[4], Event::MarkCleared { name: "greeting-done".into() });
    assert_eq!(kinds[6], Event::MarkPlayed { name: "reply-done".into(), played_ms: 400 });
    assert!(matches!(kinds[7], Event::Dtmf { digit: '5', .. }));

    // ---- Outbound framing and pacing.
    let clear_at = sim.clears[0];
    let greeting_frames: Vec<_> = sim.frames.iter().filter(|(t, _)| *t <= clear_at).collect();
    let first_at = greeting_frames[0].0;
    let lead_frames = 100 / 20;
    for (k, (t, _)) in greeting_frames.iter().enumerate() {
        // Never more than the lead ahead of real time (plus scheduling slack).
        let earliest = Duration::from_millis(20 * (k as u64).saturating_sub(lead_frames));
        assert!(*t + Duration::from_millis(5) >= first_at + earliest, "frame {k} sent too early at {t:?}");
    }
    // Frames sent up to the clear cover what was played plus at most the lead, the carrier's
    // playout delay, and 25 ms of scheduling slack (the sim stamps a frame when this thread
    // drains it, not when the worker sent it).
    let sent_ms = greeting_frames.len() as f64 * 20.0;
    let bound = truth + 100.0 + 60.0 + 25.0;
    assert!(sent_ms >= truth && sent_ms <= bound, "sent {sent_ms} ms, played {truth} ms");
    // The reply: 0.4 s at 24 kHz = exactly 20 frames of audio at the right level.
    let reply_frames: Vec<_> = sim.frames.iter().filter(|(t, _)| *t > clear_at).collect();
    assert_eq!(reply_frames.len(), 20);
    let reply_8k: Vec<i16> =
        reply_frames.iter().flat_map(|(_, f)| f.iter().map(|&c| reference_ulaw_decode(c))).collect();
    let rms = window_rms(&reply_8k[400..2800], 2400)[0];
    let expect = 6000.0 / 2f64.sqrt();
    assert!((20.0 * (rms / expect).log10()).abs() < 0.5, "reply level {rms:.0} vs {expect:.0}");

    // ---- Agent PCM: exactly the stream time at 16 kHz, matching the caller's audio.
    assert_eq!(agent_pcm.len(), (CALLER_FRAMES * 20) as usize * AGENT_RATE / 1000);
    let mut source: Vec<i16> =
        caller[..(CALLER_FRAMES * 160) as usize].iter().map(|&c| reference_ulaw_decode(c)).collect();
    source[(GAP_FRAME * 160) as usize..((GAP_FRAME + 1) * 160) as usize].fill(0);
    let src_env = window_rms(&source, 160);
    let agent_env = window_rms(&agent_pcm, 320);
    let r = correlation(&src_env, &agent_env);
    assert!(r > 0.98, "agent audio envelope correlates {r:.4} with the caller's");
    // The lost frame is silence (look at its middle, clear of the resampler's delay), while the
    // frames around it are speech.
    let g = (GAP_FRAME * 320) as usize;
    let gap_rms = window_rms(&agent_pcm[g + 100..g + 220], 120)[0];
    assert!(gap_rms < 0.05 * src_env[GAP_FRAME as usize - 1], "gap rms {gap_rms}");
    // The swapped pair is back in order: the agent audio around it follows the source envelope.
    let s = SWAP_FRAME as usize;
    for k in [s, s + 1] {
        let ratio = agent_env[k] / src_env[k];
        assert!((0.8..1.25).contains(&ratio), "frame {k}: agent/source level {ratio:.2}");
    }

    // ---- Counters.
    assert_eq!(stats.frames_duplicate, 1);
    assert_eq!(stats.frames_reordered, 1);
    assert_eq!(stats.gap_fill_samples, 160);
    assert_eq!(stats.frames_late, 0);
    assert_eq!(stats.protocol_errors, 0);
    assert_eq!(stats.barge_ins, 1);
    assert_eq!(stats.clears_sent, 1);
    assert_eq!(stats.agent_samples_dropped, 0);
    assert_eq!(stats.events_dropped, 0);
    assert_eq!(stats.media_frames_in, CALLER_FRAMES); // 219 sent + 1 duplicate
    assert!(stats.sync_marks_sent >= 1);
}
