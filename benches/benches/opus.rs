//! Host-thread cost of agent audio played as Ogg Opus (`cargo bench -p trunkline-benches --bench
//! opus`), per 20 ms of audio: `Session::play_encoded` decodes on the caller's thread, so this is
//! time a host spends in that call (libopus decoding at the carrier's 8 kHz, the Ogg demuxing, and
//! the `play` it then makes), not worker time.
//!
//! The stream is the speech fixture (10.6 s) encoded by `opusenc` (opus-tools, 20 ms frames,
//! 32 kbit/s) when the bench starts, fed in 4 KiB chunks (an HTTP response read as it arrives) to
//! an inline session on a manual clock, which is moved on 20 ms whenever the session is full.
//! `pcm` plays the same audio as PCM through the same loop: the difference is the decoding.
//! Setup (opening the session, its first `Started`) is untimed.

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::{Duration, Instant};
use trunkline::runtime::ManualClock;
use trunkline::{EncodedAudio, Engine, EngineConfig, Session, SessionConfig, SessionError};
use trunkline_benches::{CONNECTED, speech_pcm, start_message};

/// The speech fixture as Ogg Opus, by `opusenc`.
fn speech_ogg_opus() -> Vec<u8> {
    let pcm = speech_pcm();
    let dir = std::env::temp_dir().join(format!("trunkline-bench-opus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (wav, opus) = (dir.join("speech.wav"), dir.join("speech.opus"));
    let data_len = (pcm.len() * 2) as u32;
    let mut bytes = Vec::new();
    for chunk in [b"RIFF".as_slice(), &(36 + data_len).to_le_bytes(), b"WAVEfmt ", &16u32.to_le_bytes()] {
        bytes.extend_from_slice(chunk);
    }
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&8000u32.to_le_bytes());
    bytes.extend_from_slice(&16000u32.to_le_bytes());
    bytes.extend_from_slice(&2u16.to_le_bytes());
    bytes.extend_from_slice(&16u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    pcm.iter().for_each(|s| bytes.extend_from_slice(&s.to_le_bytes()));
    std::fs::write(&wav, bytes).unwrap();
    let status = std::process::Command::new("opusenc")
        .args(["--quiet", "--bitrate", "32", "--framesize", "20"])
        .arg(&wav)
        .arg(&opus)
        .status()
        .expect("opusenc (opus-tools) must be installed");
    assert!(status.success());
    let ogg = std::fs::read(&opus).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    ogg
}

struct Call {
    clock: ManualClock,
    session: Session,
    _engine: Engine,
    buf: Vec<u8>,
}

impl Call {
    fn new() -> Self {
        let clock = ManualClock::new();
        let engine =
            Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
                .unwrap();
        let mut session = engine.open_session(&SessionConfig::default()).unwrap();
        session.push_text(CONNECTED).unwrap();
        session.push_text(&start_message()).unwrap();
        while session.poll_event().is_some() {}
        Self { clock, session, _engine: engine, buf: Vec::with_capacity(4096) }
    }

    /// The session is full: 20 ms pass and the carrier takes what it is sent.
    fn wait(&mut self) {
        self.clock.advance(Duration::from_millis(20));
        while self.session.next_outbound(&mut self.buf).is_some() {}
        while self.session.poll_event().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    let ogg = speech_ogg_opus();
    let pcm = speech_pcm();
    let frames = (pcm.len() / 160) as u32;
    let mut group = c.benchmark_group("opus_per_20ms");
    group.sample_size(20);
    group.bench_function("ogg_opus_play_encoded", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut call = Call::new();
                let started = Instant::now();
                for chunk in ogg.chunks(4096) {
                    let mut at = 0;
                    while at < chunk.len() {
                        match call.session.play_encoded(&chunk[at..], EncodedAudio::OggOpus) {
                            Ok(n) => at += n,
                            Err(SessionError::Full) => call.wait(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                while call.session.end_encoded() == Err(SessionError::Full) {
                    call.wait();
                }
                total += started.elapsed();
            }
            // Per 20 ms of audio.
            total / frames
        })
    });
    group.bench_function("pcm_play", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut call = Call::new();
                let started = Instant::now();
                let mut at = 0;
                while at < pcm.len() {
                    match call.session.play(&pcm[at..], 8000) {
                        Ok(n) => at += n,
                        Err(SessionError::Full) => call.wait(),
                        Err(e) => panic!("{e}"),
                    }
                }
                total += started.elapsed();
            }
            total / frames
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
