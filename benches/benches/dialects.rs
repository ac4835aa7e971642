//! Every dialect per 20 ms of audio (`cargo bench -p trunkline-benches --bench dialects`).
//!
//! The [`SessionPipeline`] alone on a simulated clock, its outputs polled and only counted, as
//! `pipeline/*` in the session bench, for each dialect in [`DIALECTS`] with its carrier's call
//! (`trunkline_benches::carriers`: its format and chunk size, its message shapes):
//! - `dialects/inbound/<dialect>`: one carrier media message handled into caller audio at the
//!   agent rate (16 kHz) with its VAD and events;
//! - `dialects/outbound/<dialect>`: 20 ms of agent audio at 24 kHz played, the timer tick, and
//!   the carrier messages due taken (frames, and hidden sync marks for a dialect that echoes
//!   them).
//!
//! Every figure is per 20 ms of audio. A carrier whose messages carry more is timed over whole
//! messages and the time divided by their 20 ms count: Exotel's chunks (100 ms in, 200 ms out at
//! 8 kHz: its pacer sends one chunk every tenth 20 ms played). So that every chunk sent is full,
//! each call has three frames' worth of agent audio queued before the timing starts (at least
//! 200 ms), as a TTS ahead of real time has.
//! The call restarts after each pass of the 10.6 s speech fixture, untimed.
//!
//! Telnyx runs twice more, in G.722 and in Opus both ways (`dialects/*/telnyx;codec=G722`,
//! `…;codec=OPUS`: the caller's frames decoded, the agent's encoded a frame per message), and
//! `codecs/g722/{encode,decode}` times the codec alone on 20 ms (320 samples, 160 bytes).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use trunkline::SessionConfig;
use trunkline::codec::{G722Decoder, G722Encoder};
use trunkline::pipeline::SessionPipeline;
use trunkline::protocol::{DIALECTS, dialect_by_name};
use trunkline_benches::CountingSink;
use trunkline_benches::carriers::{self, CarrierCall};

const FRAME_US: u64 = 20_000;
/// The agent audio's rate (a TTS's usual one) and 20 ms of it.
const PLAY_RATE: u32 = 24_000;
const PLAY_FRAME: usize = 480;
/// Agent audio queued before an outbound pass is timed, in 20 ms frames: at least this many, and
/// three of the dialect's frames (the pacer's lead of two, and one more), so that no frame the
/// pacer sends is padded for want of audio.
const PREFILL_FRAMES: usize = 10;

fn prefill_frames(p: &SessionPipeline) -> usize {
    PREFILL_FRAMES.max(3 * p.capabilities().frame_ms as usize / 20)
}
/// Agent frames played per outbound pass: the length of the speech fixture.
const OUTBOUND_PASS: u64 = 530;

/// A soft tone: 20 ms of agent audio.
fn agent_frame() -> Vec<i16> {
    (0..PLAY_FRAME).map(|i| ((i as f32 * 0.13).sin() * 4000.0) as i16).collect()
}

/// A pipeline speaking `call`'s dialect, its stream started at time 0.
fn started(call: &CarrierCall, config: &SessionConfig, sink: &mut CountingSink) -> SessionPipeline {
    let dialect = dialect_by_name(call.dialect).expect("a dialect of DIALECTS");
    let mut p = SessionPipeline::new(config, dialect).expect("the default settings");
    for m in &call.setup {
        p.handle_message(&m.bytes, m.kind, 0, 0, &mut |pcm| sink.audio(pcm));
        sink.drain(&mut p, 0);
    }
    assert!(p.accepts_play(), "{}: the setup messages did not start the stream", call.dialect);
    p
}

/// A timed pass must have measured real work, not refusals.
fn assert_clean(call: &CarrierCall, p: &SessionPipeline) {
    let stats = p.counters();
    assert_eq!(stats.protocol_errors, 0, "{}: messages refused", call.dialect);
}

/// An outbound pass must have kept up with real time: sent the audio played, in whole frames,
/// but for the prefill it started ahead with and the frame being filled.
fn assert_paced(call: &CarrierCall, p: &SessionPipeline, played_frames: u64) {
    let frame_ms = u64::from(p.capabilities().frame_ms);
    let sent_ms = p.counters().frames_out * frame_ms;
    let played_ms = played_frames * 20;
    let ahead_ms = prefill_frames(p) as u64 * 20 + frame_ms;
    assert!(
        sent_ms <= played_ms && sent_ms + ahead_ms >= played_ms,
        "{}: {sent_ms} ms sent of {played_ms} ms played",
        call.dialect
    );
}

fn inbound(c: &mut Criterion, calls: &[CarrierCall]) {
    let config = SessionConfig::default();
    let mut group = c.benchmark_group("dialects/inbound");
    for call in calls {
        let frames_per_media = call.frames_per_media as u64;
        group.bench_function(BenchmarkId::from_parameter(call.dialect), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut frames = 0u64;
                let mut sink = CountingSink::default();
                while frames < iters {
                    let mut p = started(call, &config, &mut sink);
                    let wanted = (iters - frames).div_ceil(frames_per_media);
                    let n = wanted.min(call.media.len() as u64) as usize;
                    let mut now = 0u64;
                    let t = Instant::now();
                    for m in &call.media[..n] {
                        now += FRAME_US * frames_per_media;
                        p.handle_message(black_box(&m.bytes), m.kind, now, now, &mut |pcm| sink.audio(pcm));
                        sink.drain(&mut p, now);
                    }
                    total += t.elapsed();
                    frames += n as u64 * frames_per_media;
                    assert_clean(call, &p);
                }
                black_box(&sink);
                // Per 20 ms: the last message may carry a few frames past `iters`.
                total.mul_f64(iters as f64 / frames as f64)
            })
        });
    }
    group.finish();
}

fn outbound(c: &mut Criterion, calls: &[CarrierCall]) {
    let config = SessionConfig::default();
    let agent = agent_frame();
    let mut group = c.benchmark_group("dialects/outbound");
    for call in calls {
        group.bench_function(BenchmarkId::from_parameter(call.dialect), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                let mut sink = CountingSink::default();
                while done < iters {
                    let mut p = started(call, &config, &mut sink);
                    let prefill = prefill_frames(&p);
                    for _ in 0..prefill {
                        assert!(p.play(&agent, PLAY_RATE).expect("a play rate"), "the prefill fits");
                    }
                    sink.drain(&mut p, 0);
                    let n = (iters - done).min(OUTBOUND_PASS);
                    let mut now = 0u64;
                    let t = Instant::now();
                    for _ in 0..n {
                        now += FRAME_US;
                        let _ = p.play(black_box(&agent), PLAY_RATE);
                        p.handle_timeout(now, true, &mut |pcm| sink.audio(pcm));
                        sink.drain(&mut p, now);
                    }
                    total += t.elapsed();
                    done += n;
                    assert_clean(call, &p);
                    assert_paced(call, &p, prefill as u64 + n);
                }
                black_box(&sink);
                total
            })
        });
    }
    group.finish();
}

fn dialects(c: &mut Criterion) {
    let calls: Vec<CarrierCall> = DIALECTS
        .iter()
        .chain(&carriers::CODED_CALLS)
        .map(|name| carriers::call(name).expect("a call for every dialect"))
        .collect();
    inbound(c, &calls);
    outbound(c, &calls);
    g722(c);
}

/// G.722 alone, per 20 ms: 320 samples encoded, 160 bytes decoded (state carried on).
fn g722(c: &mut Criterion) {
    let pcm: Vec<i16> = (0..320).map(|i| ((i as f32 * 0.21).sin() * 6000.0) as i16).collect();
    let mut group = c.benchmark_group("codecs/g722");
    let mut encoder = G722Encoder::new();
    let mut codes = [0u8; 160];
    group.bench_function("encode", |b| b.iter(|| encoder.encode(black_box(&pcm), &mut codes)));
    let mut decoder = G722Decoder::new();
    let mut out = [0i16; 320];
    group.bench_function("decode", |b| b.iter(|| decoder.decode(black_box(&codes), &mut out)));
    group.finish();
}

criterion_group!(benches, dialects);
criterion_main!(benches);
