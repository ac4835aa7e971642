//! The engine's own latency figure (`Engine::latency`: a message pushed → its audio in the agent
//! ring) counts every message a worker processed, and never exceeds what the host itself sees
//! from pushing a message to reading its audio (an independent, outside measurement).

use crate::common::*;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, MessageKind, SessionConfig};

#[test]
fn engine_latency_counts_every_message_and_is_below_what_the_host_sees() {
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut call = engine.open_session(&SessionConfig::default()).unwrap();
    call.push_text(&connected()).unwrap();
    call.push_text(&start()).unwrap();
    // Both processed (they count too) before the window opens.
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.latency().count() < 2 {
        assert!(Instant::now() < deadline, "connected/start never processed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = engine.latency();
    assert_eq!(before.count(), 2);

    let frames = 50u64;
    let mut pcm = [0i16; 1024];
    let mut seen_by_host = Vec::new();
    for k in 0..frames {
        let message = media(k + 2, k + 1, k * 20, &[0xFF; 160]);
        let pushed = Instant::now();
        call.push(message.as_bytes(), MessageKind::Text).unwrap();
        // 160 samples at 8 kHz are 320 at the default 16 kHz agent rate.
        let mut got = 0;
        while got < 320 {
            assert!(pushed.elapsed() < Duration::from_secs(5), "frame {k} never came");
            engine.wait(Some(Duration::from_millis(5)));
            got += call.read_audio(&mut pcm);
        }
        seen_by_host.push(pushed.elapsed().as_micros() as u64);
        std::thread::sleep(Duration::from_millis(2));
    }

    let measured = engine.latency().since(&before);
    assert_eq!(measured.count(), frames, "one figure per media message");
    seen_by_host.sort_unstable();
    // The engine's quantiles are bucket upper edges (at most 1/16 high): allow that.
    for q in [0.5, 0.9, 1.0] {
        let engine_q = measured.quantile(q).unwrap();
        let host_q = seen_by_host[((q * frames as f64).ceil() as usize).max(1) - 1];
        assert!(engine_q <= host_q + host_q / 16 + 1, "q {q}: engine {engine_q} µs, host saw {host_q} µs");
    }
    // Inline sessions are processed inside the host's call: not counted.
    let inline = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let mut s = inline.open_session(&SessionConfig::default()).unwrap();
    s.push_text(&connected()).unwrap();
    assert_eq!(inline.latency().count(), 0);
}
