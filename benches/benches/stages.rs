//! Every pipeline stage, per 20 ms frame of one call (`cargo bench -p trunkline-benches --bench
//! stages`). Inputs come from the committed speech fixture, cycled frame by frame, so the DSP
//! stages see real speech and pauses rather than one repeated frame.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use trunkline::codec::{ULAW_SILENCE, decode_ulaw, encode_ulaw};
use trunkline::pipeline::outbound_queue::OutboundQueue;
use trunkline::pipeline::playout::PlayoutClock;
use trunkline::pipeline::reorder::{Delivery, InboundReorder};
use trunkline::protocol::{Dialect, Inbound, MessageKind, PayloadBuffer, TwilioDialect};
use trunkline::resample::StreamResampler;
use trunkline::stats::SessionStats;
use trunkline::vad::{SpeechDetector, VadBackend, VadConfig};
use trunkline_benches::{FRAME, speech_frames, speech_messages, speech_pcm, start_message};

/// Cycles through `items` forever.
struct Cycle<'a, T> {
    items: &'a [T],
    next: usize,
}

impl<'a, T> Cycle<'a, T> {
    fn new(items: &'a [T]) -> Self {
        Self { items, next: 0 }
    }
    fn next(&mut self) -> &'a T {
        let item = &self.items[self.next];
        self.next = (self.next + 1) % self.items.len();
        item
    }
}

/// A started Twilio dialect (it writes the stream SID into every outbound message).
fn started_dialect() -> TwilioDialect {
    let mut dialect = TwilioDialect::new();
    let mut payload = PayloadBuffer::with_limit(16 * 1024);
    let start = start_message();
    match dialect.parse(start.as_bytes(), MessageKind::Text, &mut payload) {
        Ok(Inbound::Start(s)) => {
            dialect.on_start(&s).expect("Twilio takes any start");
        }
        other => panic!("start did not parse: {other:?}"),
    }
    dialect
}

fn protocol(c: &mut Criterion) {
    let messages = speech_messages();
    let mut group = c.benchmark_group("protocol");
    group.bench_function("twilio_parse_media_base64", |b| {
        let mut dialect = started_dialect();
        let mut payload = PayloadBuffer::with_limit(16 * 1024);
        let mut msgs = Cycle::new(&messages);
        b.iter(|| {
            let msg = msgs.next();
            let parsed = dialect.parse(black_box(msg.as_bytes()), MessageKind::Text, &mut payload);
            black_box(&parsed);
            black_box(payload.as_slice().len())
        })
    });
    group.bench_function("twilio_write_media_json", |b| {
        let dialect = started_dialect();
        let frames = speech_frames();
        let mut frames = Cycle::new(&frames);
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            dialect.write_media(black_box(frames.next()), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let frames = speech_frames();
    let pcm = speech_pcm();
    let pcm_frames: Vec<&[i16]> = pcm.chunks_exact(FRAME).collect();
    let mut group = c.benchmark_group("codec");
    group.bench_function("ulaw_decode_160", |b| {
        let mut frames = Cycle::new(&frames);
        let mut out = [0i16; FRAME];
        b.iter(|| black_box(decode_ulaw(black_box(frames.next()), &mut out)))
    });
    group.bench_function("ulaw_encode_160", |b| {
        let mut frames = Cycle::new(&pcm_frames);
        let mut out = [0u8; FRAME];
        b.iter(|| black_box(encode_ulaw(black_box(frames.next()), &mut out)))
    });
    group.finish();
}

/// The speech fixture at `rate` Hz: by the engine's own resampler where it converts 8 kHz to
/// `rate`, otherwise (22.05 and 44.1 kHz, which Trunkline only converts down to the carrier
/// rates) by linear interpolation; done once, outside the measurement.
fn speech_at(rate: u32) -> Vec<i16> {
    let speech = speech_pcm();
    if rate == 8_000 {
        return speech;
    }
    if let Ok(mut up) = StreamResampler::new(8_000, rate) {
        let mut out = vec![0; up.max_output_len(speech.len())];
        let n = up.process(&speech, &mut out).unwrap();
        out.truncate(n);
        return out;
    }
    let len = speech.len() as u64 * u64::from(rate) / 8_000;
    (0..len)
        .map(|k| {
            let pos = k as f64 * 8_000.0 / f64::from(rate);
            let i = pos as usize;
            let frac = pos - i as f64;
            let a = f64::from(speech[i]);
            let b = f64::from(*speech.get(i + 1).unwrap_or(&speech[i]));
            (a + (b - a) * frac).round() as i16
        })
        .collect()
}

/// `8000` -> `8k`, `22050` -> `22.05k`.
fn khz(rate: u32) -> String {
    format!("{}k", f64::from(rate) / 1000.0)
}

/// `from -> to` on 20 ms frames of the speech fixture brought to `from` ([`speech_at`]).
fn resample_case(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    from: u32,
    to: u32,
) {
    let input = speech_at(from);
    let frame = from as usize / 50;
    let frames: Vec<&[i16]> = input.chunks_exact(frame).collect();
    c.bench_function(format!("{}_to_{}", khz(from), khz(to)), |b| {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = vec![0i16; r.max_output_len(frame)];
        let mut frames = Cycle::new(&frames);
        b.iter(|| black_box(r.process(black_box(frames.next()), &mut out).unwrap()))
    });
}

/// Every conversion Trunkline supports between different rates.
fn resample(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    for (from, to) in [
        (8_000, 16_000),
        (8_000, 24_000),
        (8_000, 48_000),
        (24_000, 8_000),
        (16_000, 8_000),
        (22_050, 8_000),
        (44_100, 8_000),
        (48_000, 8_000),
        (16_000, 24_000),
        (16_000, 48_000),
        (24_000, 16_000),
        (24_000, 48_000),
        (22_050, 16_000),
        (44_100, 16_000),
        (48_000, 16_000),
        (22_050, 24_000),
        (44_100, 24_000),
        (48_000, 24_000),
    ] {
        resample_case(&mut group, from, to);
    }
    group.finish();
}

fn vad(c: &mut Criterion) {
    let pcm = speech_pcm();
    let frames: Vec<&[i16]> = pcm.chunks_exact(FRAME).collect();
    let mut group = c.benchmark_group("vad");
    for (name, backend) in [("spectral", VadBackend::Spectral), ("webrtc", VadBackend::WebRtc)] {
        group.bench_function(name, |b| {
            let mut vad = SpeechDetector::new(&VadConfig { backend, ..Default::default() }).unwrap();
            let mut pos = 0u64;
            let mut frames = Cycle::new(&frames);
            b.iter(|| {
                vad.process(black_box(frames.next()), pos, |t| {
                    black_box(t);
                });
                pos += FRAME as u64;
            })
        });
    }
    // The spectral detector with end-of-turn detection on: the difference to `spectral` is its
    // cost per frame.
    group.bench_function("spectral_end_of_turn", |b| {
        let config = VadConfig { end_of_turn_enabled: true, ..Default::default() };
        let mut vad = SpeechDetector::new(&config).unwrap();
        let mut pos = 0u64;
        let mut frames = Cycle::new(&frames);
        b.iter(|| {
            vad.process_events(black_box(frames.next()), pos, |e| {
                black_box(e);
            });
            pos += FRAME as u64;
        })
    });
    group.finish();
}

fn reorder(c: &mut Criterion) {
    let pcm = speech_pcm();
    let frames: Vec<&[i16]> = pcm.chunks_exact(FRAME).collect();
    let mut group = c.benchmark_group("reorder");
    group.bench_function("in_order_frame", |b| {
        let mut counters = SessionStats::default();
        let mut reorder = InboundReorder::new(60, 2_000);
        let mut frames = Cycle::new(&frames);
        let mut seq = 0u64;
        b.iter(|| {
            let arrival = reorder.push(
                Some(seq),
                seq * 20,
                black_box(frames.next()),
                seq * 20_000,
                &mut counters,
                &mut |d| {
                    black_box(matches!(d, Delivery::Audio { .. }));
                },
            );
            seq += 1;
            black_box(arrival)
        })
    });
    group.finish();
}

/// The outbound side after µ-law: queue a frame of agent audio, cut it, advance the playout
/// clock, write the `media` JSON.
fn outbound(c: &mut Criterion) {
    let frames = speech_frames();
    let mut group = c.benchmark_group("outbound");
    group.bench_function("framer_pacer_json", |b| {
        let dialect = started_dialect();
        let mut queue = OutboundQueue::new(80_000, 64, FRAME, ULAW_SILENCE, true);
        let mut clock = PlayoutClock::new(500, 1_000);
        let mut frame = [0u8; FRAME];
        let mut message = Vec::with_capacity(1024);
        let mut frames = Cycle::new(&frames);
        let mut now = 0u64;
        b.iter(|| {
            queue.push_audio(black_box(frames.next()));
            if clock.ahead_us(now) + 20_000 <= 100_000
                && let Some(cut) = queue.cut_frame(&mut frame, false)
            {
                dialect.write_media(&frame, &mut message);
                if clock.on_frame_sent(now, cut.audio_bytes as u64) {
                    clock.sync_mark_sent();
                }
            }
            now += 20_000;
            black_box(message.len())
        })
    });
    group.finish();
}

criterion_group!(benches, protocol, codec, resample, vad, reorder, outbound);
criterion_main!(benches);
