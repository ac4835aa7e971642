//! One `/metrics` scrape of an engine with 1,000 open sessions (`cargo bench -p trunkline-benches
//! --bench metrics`): `snapshot` is `Engine::metrics_snapshot` (the lock, every live session's
//! counters read and summed, the latency histogram and the workers' CPU clocks); `render` is
//! that plus the Prometheus text of it (what the offload server's `/metrics` does, without its
//! own few counters).
//!
//! The sessions are threaded (two workers) and each has streamed a few messages, so their
//! counters and the latency histogram are not empty; nothing moves while it is measured.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use trunkline::metrics::{self, Format};
use trunkline::{Engine, EngineConfig, Session, SessionConfig};
use trunkline_benches::{CONNECTED, speech_messages, start_message};

const SESSIONS: usize = 1_000;

fn sessions(engine: &Engine) -> Vec<Session> {
    let media = speech_messages();
    let config = SessionConfig::default();
    let mut sessions: Vec<Session> = (0..SESSIONS).map(|_| engine.open_session(&config).unwrap()).collect();
    for session in &mut sessions {
        session.push_text(CONNECTED).unwrap();
        session.push_text(&start_message()).unwrap();
        for message in &media[..5] {
            session.push_text(message).unwrap();
        }
    }
    // Let the workers take everything pushed, so the measurement sees still counters.
    let pushed = SESSIONS as u64 * 7;
    while sessions.iter().map(|s| s.stats().messages_in).sum::<u64>() < pushed {
        engine.wait(Some(Duration::from_millis(10)));
        for session in &mut sessions {
            while session.poll_event().is_some() {}
            let mut pcm = [0i16; 1024];
            while session.read_audio(&mut pcm) > 0 {}
        }
    }
    sessions
}

fn scrape(c: &mut Criterion) {
    let engine = Engine::new(EngineConfig { workers: Some(2), ..Default::default() }).unwrap();
    let sessions = sessions(&engine);
    let mut group = c.benchmark_group("metrics_1000_sessions");
    group.bench_function("snapshot", |b| b.iter(|| black_box(engine.metrics_snapshot())));
    group.bench_function("render", |b| {
        b.iter(|| black_box(metrics::render(&engine.metrics_snapshot(), &[], Format::Prometheus)))
    });
    group.finish();
    drop(sessions);
}

criterion_group!(benches, scrape);
criterion_main!(benches);
