//! Agent audio played as Ogg Opus and raw Opus packets (`Session::play_encoded`), checked at the
//! carrier: the µ-law frames it receives are decoded (by the reference formula) and held to the
//! source signal, computed here at the carrier's 8 kHz from the same formula that wrote the WAVs
//! the Ogg Opus fixtures are encoded from. The fixtures are made at test time by `opusenc`
//! (opus-tools), an encoder independent of the engine, into the target directory.
//!
//! This binary installs `assert_no_alloc::AllocDisabler`: a session step (inline here, on the
//! worker in `the_worker_does_not_allocate`) that allocates aborts it.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use trunkline::runtime::ManualClock;
use trunkline::{EncodedAudio, Engine, EngineConfig, Session, SessionConfig, SessionError};

#[global_allocator]
static ALLOCATOR: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const CARRIER_RATE: u32 = 8_000;
const TICK: Duration = Duration::from_millis(10);
/// Least SNR (dB) of the tone mix at the carrier against the source (gain- and lag-matched).
/// µ-law alone gives about 38 dB; Opus at 48 kbit/s keeps 37 to 39 dB, 28 dB with 2.5 ms frames.
const MIN_SNR_DB: f64 = 20.0;
/// Least SNR (dB) of the chirp (34 dB measured).
const MIN_CHIRP_SNR_DB: f64 = 25.0;

/// The two source signals, as functions of time (s).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Signal {
    /// 440 Hz + 1 kHz, 0.3 full scale each.
    Tones,
    /// A linear sweep 300 Hz to 3 kHz over the signal's length, 0.5 full scale.
    Chirp,
}

const SECONDS: f64 = 1.2;

impl Signal {
    fn at(self, t: f64) -> f64 {
        use std::f64::consts::TAU;
        match self {
            Self::Tones => 0.3 * (TAU * 440.0 * t).sin() + 0.3 * (TAU * 1000.0 * t).sin(),
            Self::Chirp => {
                let (f0, f1) = (300.0, 3000.0);
                0.5 * (TAU * (f0 * t + (f1 - f0) * t * t / (2.0 * SECONDS))).sin()
            }
        }
    }

    /// The signal at `rate` Hz as s16.
    fn samples(self, rate: u32) -> Vec<i16> {
        self.samples_for(rate, SECONDS)
    }

    fn samples_for(self, rate: u32, seconds: f64) -> Vec<i16> {
        let n = (seconds * f64::from(rate)) as usize;
        (0..n).map(|i| (self.at(i as f64 / f64::from(rate)) * 32767.0).round() as i16).collect()
    }
}

fn fixture_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("opus_play");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A 16-bit PCM WAV of `signal` at `rate`, the same samples on each of `channels`.
fn write_wav(path: &PathBuf, signal: Signal, rate: u32, channels: u16, seconds: f64) {
    let pcm = signal.samples_for(rate, seconds);
    let data_len = (pcm.len() * 2 * usize::from(channels)) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&channels.to_le_bytes());
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
    wav.extend_from_slice(&(2 * channels).to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        for _ in 0..channels {
            wav.extend_from_slice(&s.to_le_bytes());
        }
    }
    std::fs::write(path, wav).unwrap();
}

/// Ogg Opus of `signal` recorded at `rate` with `channels`, by `opusenc` with `framesize` ms.
fn ogg_opus(signal: Signal, rate: u32, channels: u16, framesize: &str) -> Vec<u8> {
    ogg_opus_for(signal, rate, channels, framesize, SECONDS)
}

fn ogg_opus_for(signal: Signal, rate: u32, channels: u16, framesize: &str, seconds: f64) -> Vec<u8> {
    // A name of its own per call: tests running in parallel ask for the same fixture, and two
    // writers of one file corrupt it.
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = fixture_dir();
    let name = format!("{signal:?}_{rate}_{channels}ch_{framesize}ms_{seconds}s");
    let wav = dir.join(format!("{name}_{}_{n}.wav", std::process::id()));
    let opus = dir.join(format!("{name}_{}_{n}.opus", std::process::id()));
    write_wav(&wav, signal, rate, channels, seconds);
    let status = Command::new("opusenc")
        .args(["--quiet", "--bitrate", "48", "--framesize", framesize])
        .arg(&wav)
        .arg(&opus)
        .status()
        .expect("opusenc (Debian: opus-tools) must be installed");
    assert!(status.success(), "opusenc failed for {name}");
    let bytes = std::fs::read(&opus).unwrap();
    let _ = std::fs::remove_file(&wav);
    let _ = std::fs::remove_file(&opus);
    bytes
}

/// One inline call on the manual clock, its carrier receiving every outbound message.
struct Call {
    clock: ManualClock,
    session: Session,
    _engine: Engine,
    /// Decoded µ-law the carrier received, in order, and where each `clear` fell in it.
    heard: Vec<i16>,
    clears: Vec<usize>,
    echo_seq: u64,
}

impl Call {
    fn new() -> Self {
        Self::with(&SessionConfig::default())
    }

    fn with(config: &SessionConfig) -> Self {
        let clock = ManualClock::new();
        let engine =
            Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
                .unwrap();
        let mut session = engine.open_session(config).unwrap();
        session.push_text(&connected()).unwrap();
        session.push_text(&start()).unwrap();
        // The host sees `Started` (the carrier's 8 kHz) before it plays.
        while session.poll_event().is_some() {}
        Self { clock, session, _engine: engine, heard: vec![], clears: vec![], echo_seq: 100 }
    }

    /// Takes the outbound messages, echoing marks at once.
    fn exchange(&mut self) {
        let mut buf = Vec::new();
        while self.session.next_outbound(&mut buf).is_some() {
            match parse_outbound(&buf) {
                Outbound::Media(payload) => {
                    self.heard.extend(payload.iter().map(|&b| reference_ulaw_decode(b)))
                }
                Outbound::Mark(name) => {
                    self.echo_seq += 1;
                    self.session.push_text(&mark_echo(self.echo_seq, &name)).unwrap();
                }
                Outbound::Clear => self.clears.push(self.heard.len()),
            }
        }
        while self.session.poll_event().is_some() {}
    }

    fn tick(&mut self) {
        self.clock.advance(TICK);
        self.exchange();
    }

    /// Feeds `data` in chunks of `chunk` bytes, each until all of it is taken, moving time on
    /// whenever the session is full.
    fn feed(&mut self, data: &[u8], chunk: usize, codec: EncodedAudio) -> Result<(), SessionError> {
        for piece in data.chunks(chunk) {
            let mut at = 0;
            while at < piece.len() {
                match self.session.play_encoded(&piece[at..], codec) {
                    Ok(n) => at += n,
                    Err(SessionError::Full) => self.tick(),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Ends the encoded input, then lets everything queued play out.
    fn finish(&mut self) -> Result<(), SessionError> {
        let result = loop {
            match self.session.end_encoded() {
                Err(SessionError::Full) => self.tick(),
                other => break other,
            }
        };
        self.play_out();
        result
    }

    fn play_out(&mut self) {
        for _ in 0..50 {
            self.tick();
        }
        while self.session.queued_ms() > 0 {
            self.tick();
        }
        for _ in 0..10 {
            self.tick();
        }
    }

    fn play_pcm(&mut self, pcm: &[i16]) {
        let mut at = 0;
        while at < pcm.len() {
            match self.session.play(&pcm[at..], CARRIER_RATE) {
                Ok(n) => at += n,
                Err(SessionError::Full) => self.tick(),
                Err(e) => panic!("play: {e}"),
            }
        }
        self.play_out();
    }
}

/// The carrier's audio with leading and trailing silence (the padding of frames) cut off.
fn trimmed(heard: &[i16]) -> &[i16] {
    let loud = |s: &i16| s.unsigned_abs() > 64;
    let Some(first) = heard.iter().position(loud) else { return &[] };
    let last = heard.iter().rposition(loud).unwrap();
    &heard[first..=last]
}

/// SNR (dB) of `got` against `reference`, at the best lag within ±`max_lag` and the
/// least-squares gain, over the reference's middle (away from the codec's start and end).
fn snr_db(reference: &[i16], got: &[i16], max_lag: isize) -> f64 {
    let from = reference.len() / 10;
    let to = reference.len() * 9 / 10;
    let mut best = f64::NEG_INFINITY;
    for lag in -max_lag..=max_lag {
        let pairs: Vec<(f64, f64)> = (from..to)
            .filter_map(|i| {
                let j = i as isize + lag;
                (j >= 0 && (j as usize) < got.len())
                    .then(|| (f64::from(reference[i]), f64::from(got[j as usize])))
            })
            .collect();
        if pairs.len() < (to - from) / 2 {
            continue;
        }
        let rr: f64 = pairs.iter().map(|(r, _)| r * r).sum();
        let rg: f64 = pairs.iter().map(|(r, g)| r * g).sum();
        let gain = rg / rr;
        let noise: f64 = pairs.iter().map(|(r, g)| (g - gain * r).powi(2)).sum();
        best = best.max(10.0 * (rr * gain * gain / noise.max(1e-9)).log10());
    }
    best
}

/// Power of `x` at `freq` Hz (Goertzel), normalised by its length.
fn goertzel(x: &[i16], rate: u32, freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (x.len() as f64).powi(2)
}

/// Plays `ogg` fed in `chunk`-byte pieces through a fresh call; returns the carrier's audio.
fn play_ogg(ogg: &[u8], chunk: usize) -> Vec<i16> {
    let mut call = Call::new();
    call.feed(ogg, chunk, EncodedAudio::OggOpus).expect("a valid stream plays");
    call.finish().expect("the stream ends on a page boundary");
    assert_eq!(call.session.stats().encoded_audio_errors, 0);
    call.heard
}

/// The checks every fixture must pass, whatever the chunking.
fn check_fixture(signal: Signal, rate: u32, channels: u16, framesize: &str) {
    let ogg = ogg_opus(signal, rate, channels, framesize);
    let reference = signal.samples(CARRIER_RATE);
    let label = format!("{signal:?} {rate} Hz {channels} ch {framesize} ms");
    let mut first: Option<Vec<i16>> = None;
    for chunk in [1, 7, 100, 4096] {
        let heard = play_ogg(&ogg, chunk);
        match &first {
            // Bit-identical whatever the chunking.
            Some(f) => assert!(*f == heard, "{label}: chunks of {chunk} bytes change the output"),
            None => first = Some(heard),
        }
    }
    let heard = first.unwrap();
    let audio = trimmed(&heard);
    // Pre-skip dropped and the end trimmed by the granule position: the source's length (give
    // or take a sample or two of the codec's fade at either end, where `trimmed` cuts), and no
    // gap (a short first packet played alone would leave one, padded by the pacer).
    let len_diff = audio.len() as i64 - reference.len() as i64;
    assert!(len_diff.abs() <= 8, "{label}: {} samples heard for {} sent", audio.len(), reference.len());
    // Aligned: the codec's delay is compensated by the pre-skip.
    let snr = snr_db(&reference, audio, 40);
    eprintln!("{label}: {} samples, SNR {snr:.1} dB", audio.len());
    let min = if signal == Signal::Tones { MIN_SNR_DB } else { MIN_CHIRP_SNR_DB };
    assert!(snr > min, "{label}: SNR {snr:.1} dB");
    if signal == Signal::Tones {
        let mid = &audio[audio.len() / 4..audio.len() * 3 / 4];
        let (a, b) = (goertzel(mid, CARRIER_RATE, 440.0), goertzel(mid, CARRIER_RATE, 1000.0));
        for off in [250.0, 700.0, 1500.0, 2500.0] {
            let p = goertzel(mid, CARRIER_RATE, off);
            assert!(a > 100.0 * p && b > 100.0 * p, "{label}: {off} Hz not 20 dB under the tones");
        }
        // Equal tones stay about equal (within 3 dB).
        assert!((a / b).log10().abs() < 0.3, "{label}: 440 Hz / 1 kHz power {:.2}", a / b);
    }
}

#[test]
fn tones_from_48k_mono_at_every_frame_size() {
    for framesize in ["2.5", "10", "20", "60"] {
        check_fixture(Signal::Tones, 48_000, 1, framesize);
    }
}

#[test]
fn tones_from_8k_and_16k_stereo() {
    check_fixture(Signal::Tones, 8_000, 2, "20");
    check_fixture(Signal::Tones, 16_000, 2, "20");
    check_fixture(Signal::Tones, 16_000, 1, "60");
}

#[test]
fn chirps_from_every_rate() {
    check_fixture(Signal::Chirp, 48_000, 2, "20");
    check_fixture(Signal::Chirp, 16_000, 1, "10");
    check_fixture(Signal::Chirp, 8_000, 1, "20");
}

/// Raw Opus packets, 20 ms each, from libopus's encoder at `rate` (mono, 48 kbit/s like the
/// Ogg fixtures).
fn opus_packets(signal: Signal, rate: u32) -> Vec<Vec<u8>> {
    use audiopus::coder::Encoder;
    use audiopus::{Application, Bitrate, Channels, SampleRate};
    let sample_rate = match rate {
        16_000 => SampleRate::Hz16000,
        48_000 => SampleRate::Hz48000,
        _ => unreachable!(),
    };
    let mut encoder = Encoder::new(sample_rate, Channels::Mono, Application::Audio).unwrap();
    encoder.set_bitrate(Bitrate::BitsPerSecond(48_000)).unwrap();
    let pcm = signal.samples(rate);
    let frame = rate as usize / 50;
    pcm.chunks_exact(frame)
        .map(|f| {
            let mut out = vec![0u8; 1500];
            let n = encoder.encode(f, &mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect()
}

#[test]
fn raw_packets_play_like_the_source() {
    for rate in [16_000, 48_000] {
        let packets = opus_packets(Signal::Tones, rate);
        let mut call = Call::new();
        for p in &packets {
            loop {
                match call.session.play_encoded(p, EncodedAudio::Opus { rate }) {
                    Ok(n) => {
                        assert_eq!(n, p.len(), "a packet is taken whole");
                        break;
                    }
                    Err(SessionError::Full) => call.tick(),
                    Err(e) => panic!("{rate}: {e}"),
                }
            }
        }
        call.finish().unwrap();
        let reference = Signal::Tones.samples(CARRIER_RATE);
        let audio = trimmed(&call.heard);
        // Without a container no pre-skip is known: the encoder's look-ahead (6.5 ms) leads.
        let expected = packets.len() * 160;
        assert!(audio.len().abs_diff(expected) <= 80, "{rate}: {} samples for {expected}", audio.len());
        let snr = snr_db(&reference, audio, 80);
        eprintln!("raw packets at {rate} Hz: {} samples, SNR {snr:.1} dB", audio.len());
        assert!(snr > MIN_SNR_DB, "{rate}: SNR {snr:.1} dB");
        assert_eq!(call.session.stats().encoded_audio_errors, 0);
    }
}

/// After a rejected stream: the error counted once, and PCM played afterwards reaches the carrier.
fn pcm_still_plays(call: &mut Call, errors: u64) {
    assert_eq!(call.session.stats().encoded_audio_errors, errors);
    let before = call.heard.len();
    let tone: Vec<i16> = Signal::Tones.samples(CARRIER_RATE)[..4000].to_vec();
    call.play_pcm(&tone);
    let after = trimmed(&call.heard[before..]);
    assert!(after.len().abs_diff(tone.len()) <= 8, "PCM after the error: {} samples", after.len());
    assert!(snr_db(&tone, after, 8) > 30.0);
}

fn expect_bad(result: Result<(), SessionError>, what: &str) -> &'static str {
    match result {
        Err(SessionError::BadAudio(why)) => why,
        other => panic!("{what}: {other:?}"),
    }
}

#[test]
fn a_flipped_byte_fails_the_page_crc() {
    let ogg = ogg_opus(Signal::Tones, 48_000, 1, "20");
    let mut bad = ogg.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x40;
    for chunk in [7, 4096] {
        let mut call = Call::new();
        let why = expect_bad(call.feed(&bad, chunk, EncodedAudio::OggOpus), "flipped byte");
        assert!(why.contains("CRC"), "{why}");
        pcm_still_plays(&mut call, 1);
        // And a good stream after it plays whole.
        call.feed(&ogg, chunk, EncodedAudio::OggOpus).unwrap();
        call.finish().unwrap();
        assert_eq!(call.session.stats().encoded_audio_errors, 1);
    }
}

#[test]
fn a_stream_cut_mid_page_is_truncated() {
    let ogg = ogg_opus(Signal::Tones, 16_000, 1, "20");
    let mut call = Call::new();
    call.feed(&ogg[..ogg.len() - 25], 100, EncodedAudio::OggOpus).unwrap();
    let why = expect_bad(call.finish(), "truncated");
    assert!(why.contains("truncated"), "{why}");
    // What came before the cut was played.
    assert!(trimmed(&call.heard).len() > 4000);
    pcm_still_plays(&mut call, 1);
}

#[test]
fn a_stream_that_is_not_opus_is_refused() {
    use ogg::writing::{PacketWriteEndInfo, PacketWriter};
    // A well-formed Ogg stream whose first packet is a Vorbis identification header.
    let mut vorbis = Vec::new();
    {
        let mut w = PacketWriter::new(&mut vorbis);
        let mut head = b"\x01vorbis".to_vec();
        head.extend_from_slice(&[0; 23]);
        w.write_packet(head, 7, PacketWriteEndInfo::EndPage, 0).unwrap();
        w.write_packet(b"\x03vorbis comments".to_vec(), 7, PacketWriteEndInfo::EndStream, 0).unwrap();
    }
    let mut call = Call::new();
    let why = expect_bad(call.feed(&vorbis, 100, EncodedAudio::OggOpus), "vorbis");
    assert!(why.contains("not an Ogg Opus"), "{why}");
    pcm_still_plays(&mut call, 1);

    // Random bytes: no capture pattern.
    let mut x = 0x2545_F491_u32;
    let noise: Vec<u8> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let why = expect_bad(call.feed(&noise, 100, EncodedAudio::OggOpus), "noise");
    assert!(why.contains("capture pattern"), "{why}");
    pcm_still_plays(&mut call, 2);

    // Valid Ogg Opus headers, then a packet libopus rejects.
    let mut bad_packet = Vec::new();
    {
        let mut w = PacketWriter::new(&mut bad_packet);
        let mut head = b"OpusHead".to_vec();
        head.extend_from_slice(&[1, 1, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
        w.write_packet(head, 9, PacketWriteEndInfo::EndPage, 0).unwrap();
        w.write_packet(b"OpusTags\0\0\0\0\0\0\0\0".to_vec(), 9, PacketWriteEndInfo::EndPage, 0).unwrap();
        // A code-3 packet announcing 63 frames of 60 ms.
        w.write_packet(vec![0x1B, 0x3F, 0, 0], 9, PacketWriteEndInfo::EndStream, 960).unwrap();
    }
    let why = expect_bad(call.feed(&bad_packet, 4096, EncodedAudio::OggOpus), "bad packet");
    assert!(why.contains("Opus packet"), "{why}");
    pcm_still_plays(&mut call, 3);

    // A raw packet libopus rejects.
    let result = call.session.play_encoded(&[0x1B, 0x3F, 0, 0], EncodedAudio::Opus { rate: 48_000 });
    assert!(matches!(result, Err(SessionError::BadAudio(_))), "{result:?}");
    pcm_still_plays(&mut call, 4);
    // A rate libopus does not decode at is an argument error, not counted.
    let result = call.session.play_encoded(&[0xF8], EncodedAudio::Opus { rate: 44_100 });
    assert!(matches!(result, Err(SessionError::InvalidArgument(_))), "{result:?}");
    assert_eq!(call.session.stats().encoded_audio_errors, 4);
}

#[test]
fn nothing_of_an_interrupted_stream_plays_after_the_clear() {
    // 4 s: more than the session holds (2 s queued, 16 KiB of play ring: 1 s at 8 kHz).
    let ogg = ogg_opus_for(Signal::Tones, 48_000, 1, "20", 4.0);
    let mut call = Call::new();
    // Feed without letting time pass until the session is full: decoded audio is then waiting
    // on the host's side as well as queued in the engine.
    let mut at = 0;
    loop {
        match call.session.play_encoded(&ogg[at..(at + 50).min(ogg.len())], EncodedAudio::OggOpus) {
            Ok(n) => at += n,
            Err(SessionError::Full) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(at < ogg.len(), "the whole stream fit: the session never filled");
    }
    for _ in 0..5 {
        call.tick();
    }
    assert!(!trimmed(&call.heard).is_empty(), "some of the stream played before the interrupt");
    call.session.interrupt().unwrap();
    call.exchange();
    // The rest of the old stream is not a stream start: refused, and nothing of it plays.
    let rest = call.session.play_encoded(&ogg[at..], EncodedAudio::OggOpus);
    assert!(matches!(rest, Err(SessionError::BadAudio(_))), "{rest:?}");
    // Silence afterwards (as PCM): anything loud after the clear would be the old stream.
    call.play_pcm(&[0; 8000]);
    assert_eq!(call.clears.len(), 1);
    let after = &call.heard[call.clears[0]..];
    assert!(after.len() >= 8000);
    assert!(after.iter().all(|s| s.unsigned_abs() <= 8), "old audio after the clear");
    // A new stream after the interrupt plays whole.
    let before = call.heard.len();
    call.feed(&ogg, 100, EncodedAudio::OggOpus).unwrap();
    call.finish().unwrap();
    let audio = trimmed(&call.heard[before..]);
    assert!(audio.len().abs_diff(32_000) <= 40, "{} samples", audio.len());
}

#[test]
fn the_worker_does_not_allocate() {
    // A worker thread steps the session under the allocation guard (this binary's allocator
    // aborts on an allocation there); decoding runs here, on the host's thread.
    let ogg = ogg_opus(Signal::Chirp, 48_000, 2, "20");
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut session = engine.open_session(&SessionConfig::default()).unwrap();
    session.push_text(&connected()).unwrap();
    session.push_text(&start()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frames = 0;
    let mut buf = Vec::new();
    let mut drain = |session: &mut Session| {
        while session.next_outbound(&mut buf).is_some() {
            if let Outbound::Media(_) = parse_outbound(&buf) {
                frames += 1;
            }
        }
        while session.poll_event().is_some() {}
    };
    for piece in ogg.chunks(500) {
        let mut at = 0;
        while at < piece.len() {
            match session.play_encoded(&piece[at..], EncodedAudio::OggOpus) {
                Ok(n) => at += n,
                Err(SessionError::Full) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
            drain(&mut session);
            assert!(Instant::now() < deadline);
        }
    }
    while session.end_encoded() == Err(SessionError::Full) {
        std::thread::sleep(Duration::from_millis(5));
        drain(&mut session);
    }
    while session.queued_ms() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        drain(&mut session);
    }
    drain(&mut session);
    // 1.2 s of audio in 20 ms frames.
    assert!(frames >= 60, "{frames} frames");
}

#[test]
fn chained_streams_play_one_after_the_other() {
    // Two streams back to back in one input (an Ogg chain): the second has its own headers,
    // serial and pre-skip, and plays right after the first.
    let first = ogg_opus(Signal::Tones, 48_000, 1, "20");
    let second = ogg_opus(Signal::Chirp, 16_000, 1, "20");
    let chain = [first.as_slice(), second.as_slice()].concat();
    let mut call = Call::new();
    call.feed(&chain, 100, EncodedAudio::OggOpus).unwrap();
    call.finish().unwrap();
    let audio = trimmed(&call.heard);
    let n = Signal::Tones.samples(CARRIER_RATE).len();
    assert!(audio.len().abs_diff(2 * n) <= 8, "{} samples for two streams of {n}", audio.len());
    assert!(snr_db(&Signal::Tones.samples(CARRIER_RATE), &audio[..n], 8) > MIN_SNR_DB);
    assert!(snr_db(&Signal::Chirp.samples(CARRIER_RATE), &audio[n..], 8) > MIN_CHIRP_SNR_DB);
}

/// The byte ranges of the Ogg pages in `ogg`.
fn pages(ogg: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = vec![];
    let mut at = 0;
    while at < ogg.len() {
        let segments = usize::from(ogg[at + 26]);
        let body: usize = ogg[at + 27..at + 27 + segments].iter().map(|&s| usize::from(s)).sum();
        let end = at + 27 + segments + body;
        out.push(at..end);
        at = end;
    }
    out
}

/// Rewrites the CRC of the page at `page` (Ogg's CRC-32: polynomial 0x04c11db7, not reflected,
/// over the page with its CRC field zeroed).
fn fix_crc(page: &mut [u8]) {
    page[22..26].fill(0);
    let mut crc = 0u32;
    for &b in page.iter() {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn a_last_granule_far_past_the_audio_plays_the_last_packet_whole() {
    let ogg = ogg_opus(Signal::Tones, 48_000, 1, "20");
    let whole = play_ogg(&ogg, 4096).len();
    let mut broken = ogg.clone();
    let last = pages(&ogg).pop().unwrap();
    let page = &mut broken[last];
    page[6..14].copy_from_slice(&(1u64 << 60).to_le_bytes());
    fix_crc(page);
    // The untouched stream with its CRC recomputed is the same stream: the CRC is right.
    let mut same = ogg.clone();
    fix_crc(&mut same[pages(&ogg).pop().unwrap()]);
    assert_eq!(same, ogg);
    // Its last packet is not trimmed (at most 20 ms more than the trimmed stream), and nothing
    // overflows.
    let heard = play_ogg(&broken, 4096).len();
    assert!((whole..=whole + 160).contains(&heard), "{heard} samples heard, {whole} from the stream as made");
}

#[test]
fn raw_packets_gathered_when_an_ogg_stream_follows_play_at_their_own_rate() {
    use trunkline::codec::EncodedAudio;
    use trunkline::codec::encoded::EncodedPlayer;
    // 10 ms of raw 48 kHz Opus, gathered (a stream starts by gathering 20 ms), then an Ogg
    // stream made at 24 kHz, on a 48 kHz play path: each plays at its own rate.
    let encoder = audiopus::coder::Encoder::new(
        audiopus::SampleRate::Hz48000,
        audiopus::Channels::Mono,
        audiopus::Application::Audio,
    )
    .unwrap();
    let tone: Vec<i16> = Signal::Tones.samples(48_000)[..480].to_vec();
    let mut packet = vec![0u8; 1500];
    let n = encoder.encode(&tone, &mut packet).unwrap();
    let ogg = ogg_opus(Signal::Tones, 24_000, 1, "20");
    let mut player = EncodedPlayer::new();
    let mut played: Vec<(usize, u32)> = Vec::new();
    let mut sink = |pcm: &[i16], rate: u32| -> Result<usize, ()> {
        played.push((pcm.len(), rate));
        Ok(pcm.len())
    };
    assert_eq!(
        player.play(&packet[..n], EncodedAudio::Opus { rate: 48_000 }, 48_000, &mut sink).ok(),
        Some(n)
    );
    let mut at = 0;
    while at < ogg.len() {
        at += player
            .play(&ogg[at..], EncodedAudio::OggOpus, 48_000, &mut sink)
            .unwrap_or_else(|_| panic!("taken"));
    }
    player.end(&mut sink).unwrap_or_else(|_| panic!("ended"));
    assert_eq!(
        played.first(),
        Some(&(480, 48_000)),
        "the raw packet's audio first, at 48 kHz: {:?}",
        &played[..played.len().min(4)]
    );
    assert!(played[1..].iter().all(|&(_, rate)| rate == 24_000), "{played:?}");
}
