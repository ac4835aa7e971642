//! How much one `play` takes, and that what it does not take plays later, whole and in order.
//!
//! The play ring is a hand-off (`play_ring_bytes`, 16 KiB: about 0.3 s at 24 kHz); a long reply
//! waits in the outbound queue as 8 kHz µ-law (`outbound_buffer_ms`, 2 s). Threaded, one `play`
//! takes what the ring has room for; inline, it also moves the ring into the queue itself.

use crate::common::*;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig, SessionError};

fn started(workers: usize) -> (Engine, Session) {
    let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&connected()).unwrap();
    s.push_text(&start()).unwrap();
    (engine, s)
}

fn tone(seconds: f64) -> Vec<i16> {
    (0..(24_000.0 * seconds) as usize).map(|i| ((i as f64 * 0.11).sin() * 8000.0) as i16).collect()
}

#[test]
fn threaded_play_takes_what_the_ring_holds_and_the_rest_later() {
    let (engine, mut s) = started(1);
    let reply = tone(1.5);
    let first = s.play(&reply, 24_000).unwrap();
    // 16 KiB of s16 at 24 kHz, less headers and the interrupt reserve.
    assert!((7_000..=8_192).contains(&first), "first play took {first} samples");
    assert_eq!(s.stats().play_refused_full, 1);
    // The rest, as a host plays it: the worker moves the ring into the 2 s outbound queue.
    let mut at = first;
    let t0 = Instant::now();
    while at < reply.len() && t0.elapsed() < Duration::from_secs(2) {
        match s.play(&reply[at..], 24_000) {
            Ok(n) => at += n,
            Err(SessionError::Full) => {}
            Err(e) => panic!("{e}"),
        }
        engine.wait(Some(Duration::from_millis(2)));
    }
    assert_eq!(at, reply.len(), "1.5 s fits the outbound queue within moments");
    // Well under the reply's own 1.5 s: the queue took it, rather than the ring draining at the
    // pace the audio plays (a generous bound, for loaded CI cores).
    assert!(t0.elapsed() < Duration::from_secs(1), "took {:?}", t0.elapsed());
    s.mark("reply").unwrap();
    let mut out = vec![0u8; 4096];
    let mut frames = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        while let Some((_, len)) = s.next_outbound_into(&mut out) {
            match parse_outbound(&out[..len]) {
                Outbound::Media(p) => {
                    assert_eq!(p.len(), 160);
                    frames += 1;
                }
                Outbound::Mark(name) if name == "reply" => {
                    s.push_text(&mark_echo(900, &name)).unwrap();
                }
                _ => {}
            }
        }
        if std::iter::from_fn(|| s.poll_event()).any(|e| matches!(e, Event::MarkPlayed { .. })) {
            break;
        }
        engine.wait(Some(Duration::from_millis(5)));
    }
    let stats = s.stats();
    assert_eq!(frames, 75, "1.5 s is 75 frames, none lost");
    assert_eq!(stats.play_samples_in, reply.len() as u64);
    assert_eq!(stats.flushed_samples, 0);
}

#[test]
fn inline_play_fills_the_outbound_queue_itself() {
    let (_engine, mut s) = started(0);
    // 1.5 s: more than the ring, less than the 2 s queue: all of it in one call.
    let reply = tone(1.5);
    assert_eq!(s.play(&reply, 24_000), Ok(reply.len()));
    assert_eq!(s.stats().play_refused_full, 0);
    // Another 1.5 s: what is left of the queue (2 s less the 1.4 s waiting), then the ring.
    let more = s.play(&reply, 24_000).unwrap();
    assert!(more > 8_192 && more < reply.len(), "second play took {more} samples");
    assert_eq!(s.stats().play_refused_full, 1);
    // Full: nothing taken, said so.
    assert_eq!(s.play(&reply, 24_000), Err(SessionError::Full));
    assert_eq!(s.stats().play_refused_full, 2);
}
