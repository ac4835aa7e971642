//! A whole call per 20 ms frame (`cargo bench -p trunkline-benches --bench session`).
//!
//! - `pipeline/*`: the [`SessionPipeline`] alone on a simulated clock, its outputs polled and
//!   only counted (as in `engine/tests/integration/pacing.rs`): inbound = one Twilio `media` message
//!   (parse, base64, µ-law decode, reorder, resample 8→16 kHz, VAD); outbound = 20 ms of agent
//!   audio at 24 kHz (resample 24→8 kHz, µ-law encode, queue) and the timer tick that paces one
//!   frame out as `media` JSON (plus a sync mark every 500 ms); duplex = both; duplex_ulaw =
//!   both for an agent speaking 8 kHz µ-law (`AgentFormat::Mulaw`), whose audio passes through
//!   untouched both ways (no resampling or µ-law coding for the agent; the VAD still decodes).
//! - `inline/*`: the same through the public [`Session`] of an inline engine (`workers: 0`),
//!   including the host-facing rings: push, read the caller audio, poll events, and for duplex play
//!   20 ms and take the outbound messages (duplex_ulaw: read and play µ-law bytes).
//!
//! - `echo_gate/*`: the echo gate's cost (`VadConfig::echo_aware`), the agent speaking or
//!   silent, the gate on or off; and echo reduction's (`SessionConfig::echo_reduction`, the
//!   gate on too): `reduction_on` against `gate_on` is the canceller's cost.
//! - `recording/*`: a call's recording, the worker's part: the pipeline duplex with its
//!   recording tap on and off.
//!
//! The caller audio is the speech fixture (10.6 s, speech and pauses, one barge-in per pass);
//! the measurement restarts the call after each pass, untimed.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use trunkline::codec::{G711, encode_ulaw};
use trunkline::pipeline::SessionPipeline;
use trunkline::protocol::{MessageKind, TwilioDialect};
use trunkline::vad::VadConfig;
use trunkline::{AgentFormat, Engine, EngineConfig, SessionConfig};
use trunkline_benches::{CONNECTED, CountingSink, speech_messages, start_message};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Inbound,
    Outbound,
    Duplex,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Duplex => "duplex",
        }
    }
    fn inbound(self) -> bool {
        self != Self::Outbound
    }
    fn outbound(self) -> bool {
        self != Self::Inbound
    }
}

const FRAME_US: u64 = 20_000;
/// 20 ms of agent audio at 24 kHz (a TTS's usual rate): a soft tone.
fn agent_frame() -> Vec<i16> {
    (0..480).map(|i| ((i as f32 * 0.13).sin() * 4000.0) as i16).collect()
}

/// 20 ms of agent audio as 8 kHz µ-law (what a `g711_ulaw` speech service sends).
fn agent_ulaw_frame() -> Vec<u8> {
    let pcm: Vec<i16> = (0..160).map(|i| ((i as f32 * 0.39).sin() * 4000.0) as i16).collect();
    let mut codes = vec![0u8; 160];
    encode_ulaw(&pcm, &mut codes);
    codes
}

/// The benchmarks' agents: PCM at the defaults (16 kHz read, 24 kHz played), or 8 kHz µ-law.
fn agent_config(ulaw: bool, base: SessionConfig) -> SessionConfig {
    if ulaw { SessionConfig { agent_format: AgentFormat::Mulaw, agent_rate: 8_000, ..base } } else { base }
}

/// The benchmark cases: direction and whether the agent speaks µ-law.
const CASES: [(Direction, bool); 4] = [
    (Direction::Inbound, false),
    (Direction::Outbound, false),
    (Direction::Duplex, false),
    (Direction::Duplex, true),
];

fn case_name(dir: Direction, ulaw: bool) -> String {
    format!("{}{}", dir.name(), if ulaw { "_ulaw" } else { "" })
}

fn started_pipeline(config: &SessionConfig, sink: &mut CountingSink) -> SessionPipeline {
    start(SessionPipeline::new(config, Box::new(TwilioDialect::new())).unwrap(), sink)
}

/// `p` after the carrier's `connected` and `start`.
fn start(mut p: SessionPipeline, sink: &mut CountingSink) -> SessionPipeline {
    for message in [CONNECTED.to_owned(), start_message()] {
        p.handle_message(message.as_bytes(), MessageKind::Text, 0, 0, &mut |pcm| sink.audio(pcm));
        sink.drain(&mut p, 0);
    }
    p
}

fn pipeline(c: &mut Criterion) {
    let messages = speech_messages();
    let agent = agent_frame();
    let agent_ulaw = agent_ulaw_frame();
    let mut group = c.benchmark_group("pipeline");
    for (dir, ulaw) in CASES {
        let config = agent_config(ulaw, SessionConfig::default());
        group.bench_function(BenchmarkId::from_parameter(case_name(dir, ulaw)), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                let mut sink = CountingSink::default();
                while done < iters {
                    let mut p = started_pipeline(&config, &mut sink);
                    let n = (iters - done).min(messages.len() as u64) as usize;
                    let mut now = 0u64;
                    let t = Instant::now();
                    for msg in &messages[..n] {
                        now += FRAME_US;
                        if dir.inbound() {
                            let msg = black_box(msg.as_bytes());
                            if ulaw {
                                p.handle_message_agent(msg, MessageKind::Text, now, now, &mut |a| {
                                    sink.samples += a.len()
                                });
                            } else {
                                p.handle_message(msg, MessageKind::Text, now, now, &mut |pcm| {
                                    sink.audio(pcm)
                                });
                            }
                            sink.drain(&mut p, now);
                        }
                        if dir.outbound() {
                            // A frame's worth of agent audio in, one paced frame out.
                            if ulaw {
                                let _ = p.play_g711(black_box(&agent_ulaw), G711::Mulaw);
                                p.handle_timeout_agent(now, true, &mut |a| sink.samples += a.len());
                            } else {
                                let _ = p.play(black_box(&agent), 24_000);
                                p.handle_timeout(now, true, &mut |pcm| sink.audio(pcm));
                            }
                            sink.drain(&mut p, now);
                        }
                    }
                    total += t.elapsed();
                    done += n as u64;
                }
                black_box(&sink);
                total
            })
        });
    }
    group.finish();
}

fn inline(c: &mut Criterion) {
    let messages = speech_messages();
    let agent = agent_frame();
    // why the huge lead: the inline engine paces against the real clock, and the benchmark runs
    // far faster than real time; with the lead out of the way every 20 ms played goes out as one
    // frame at once, so each iteration does a frame's outbound work, as a real call does.
    let base = SessionConfig { lead_ms: u32::MAX / 2, ..Default::default() };
    let agent_ulaw = agent_ulaw_frame();
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let start = start_message();
    let mut group = c.benchmark_group("inline");
    for (dir, ulaw) in [(Direction::Inbound, false), (Direction::Duplex, false), (Direction::Duplex, true)] {
        let config = agent_config(ulaw, base.clone());
        group.bench_function(BenchmarkId::from_parameter(case_name(dir, ulaw)), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                let mut pcm = vec![0i16; 4096];
                let mut codes = vec![0u8; 4096];
                let mut out = vec![0u8; 4096];
                let mut taken = 0usize;
                while done < iters {
                    let mut s = engine.open_session(&config).unwrap();
                    s.push_text(CONNECTED).unwrap();
                    s.push_text(&start).unwrap();
                    while s.poll_event().is_some() {}
                    let n = (iters - done).min(messages.len() as u64) as usize;
                    let t = Instant::now();
                    for msg in &messages[..n] {
                        s.push(black_box(msg.as_bytes()), MessageKind::Text).unwrap();
                        taken += if ulaw { s.read_audio_bytes(&mut codes) } else { s.read_audio(&mut pcm) };
                        while let Some(ev) = s.poll_event() {
                            black_box(ev);
                        }
                        if dir.outbound() {
                            if ulaw {
                                let _ = s.play_bytes(black_box(&agent_ulaw), 8_000);
                            } else {
                                let _ = s.play(black_box(&agent), 24_000);
                            }
                            while let Some((_, len)) = s.next_outbound_into(&mut out) {
                                taken += len;
                            }
                        }
                    }
                    total += t.elapsed();
                    done += n as u64;
                    drop(s);
                }
                black_box(taken);
                total
            })
        });
    }
    group.finish();
}

/// The echo gate's cost (`VadConfig::echo_aware`): the pipeline duplex, agent speaking, and
/// inbound only, agent silent, each with the gate on and off. The difference is the gate's
/// cost per 20 ms frame (with the agent speaking: the reference's analysis of the frame sent
/// and the prediction for the caller's).
fn echo_gate(c: &mut Criterion) {
    let messages = speech_messages();
    let agent = agent_frame();
    let mut group = c.benchmark_group("echo_gate");
    for (name, speaking) in [("agent_speaking", true), ("agent_silent", false)] {
        for (mode, echo_aware, echo_reduction) in
            [("gate_off", false, false), ("gate_on", true, false), ("reduction_on", true, true)]
        {
            let base = SessionConfig::default();
            let config =
                SessionConfig { vad: VadConfig { echo_aware, ..base.vad.clone() }, echo_reduction, ..base };
            let id = format!("{name}/{mode}");
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut done = 0u64;
                    let mut sink = CountingSink::default();
                    while done < iters {
                        let mut p = started_pipeline(&config, &mut sink);
                        let n = (iters - done).min(messages.len() as u64) as usize;
                        let mut now = 0u64;
                        let t = Instant::now();
                        for msg in &messages[..n] {
                            now += FRAME_US;
                            p.handle_message(
                                black_box(msg.as_bytes()),
                                MessageKind::Text,
                                now,
                                now,
                                &mut |pcm| sink.audio(pcm),
                            );
                            sink.drain(&mut p, now);
                            if speaking {
                                let _ = p.play(black_box(&agent), 24_000);
                            }
                            p.handle_timeout(now, true, &mut |pcm| sink.audio(pcm));
                            sink.drain(&mut p, now);
                        }
                        total += t.elapsed();
                        done += n as u64;
                    }
                    black_box(&sink);
                    total
                })
            });
        }
    }
    group.finish();
}

/// A call's recording (`SessionConfig::record_path`): the worker's part, the pipeline duplex with
/// its recording tap on and off. With it on, every caller frame and every frame sent is copied
/// into the recording's ring; the recorder thread's part (emptying it, writing the file) is left
/// out, the ring emptied untimed every 64 frames (a second of it fits).
fn recording(c: &mut Criterion) {
    let messages = speech_messages();
    let agent = agent_frame();
    let config = SessionConfig::default();
    let mut group = c.benchmark_group("recording");
    for on in [false, true] {
        group.bench_function(BenchmarkId::from_parameter(if on { "duplex_on" } else { "duplex_off" }), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                let mut sink = CountingSink::default();
                while done < iters {
                    let mut p = SessionPipeline::new(&config, Box::new(TwilioDialect::new())).unwrap();
                    let mut empty = on.then(|| {
                        let (tap, empty) = trunkline::runtime::bench_tap();
                        p.set_tap(tap);
                        empty
                    });
                    let mut p = start(p, &mut sink);
                    let n = (iters - done).min(messages.len() as u64) as usize;
                    let mut now = 0u64;
                    for chunk in messages[..n].chunks(64) {
                        if let Some(empty) = empty.as_mut() {
                            empty();
                        }
                        let t = Instant::now();
                        for msg in chunk {
                            now += FRAME_US;
                            p.handle_message(
                                black_box(msg.as_bytes()),
                                MessageKind::Text,
                                now,
                                now,
                                &mut |pcm| sink.audio(pcm),
                            );
                            sink.drain(&mut p, now);
                            let _ = p.play(black_box(&agent), 24_000);
                            p.handle_timeout(now, true, &mut |pcm| sink.audio(pcm));
                            sink.drain(&mut p, now);
                        }
                        total += t.elapsed();
                    }
                    assert_eq!(p.counters().recording_dropped_ms, 0, "the ring was emptied in time");
                    done += n as u64;
                }
                black_box(&sink);
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, pipeline, inline, echo_gate, recording);
criterion_main!(benches);
