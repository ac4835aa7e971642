//! Call recordings (`SessionConfig::record_path`), checked against what the test itself pushed
//! and what the carrier was sent.
//!
//! One call on a manual clock: the caller speaks (the committed speech), the agent says a short
//! phrase, pauses, starts a long one the caller talks over (barge-in), and later says a third.
//! The expectation is built here, independently of the engine: channel 1 is the caller's µ-law
//! decoded with the reference formula; channel 2 is a carrier that plays the frames it is sent
//! back to back, each from the caller's position when it arrived if it was idle, and drops what
//! it holds at a `clear`.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, EngineError, Event, Session, SessionConfig};

const FRAME: usize = 160;

fn tone(freq: f64, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI * freq / 8000.0).sin()) as i16)
        .collect()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("trunkline-recording-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn outbound(s: &mut Session) -> Vec<Outbound> {
    let mut buf = Vec::new();
    std::iter::from_fn(|| s.next_outbound(&mut buf).map(|_| parse_outbound(&buf))).collect()
}

/// What the call should have left in the recording.
struct Expected {
    caller: Vec<i16>,
    agent: Vec<i16>,
    /// Where each agent run starts and ends, samples (after cuts).
    runs: Vec<(usize, usize)>,
    /// The barge-in's played position and where the carrier's clear cut the run (samples).
    barge_in_played: u64,
    cut_at: usize,
    cut_run_start: usize,
}

/// A carrier model: frames back to back, from the caller's position when idle; a clear drops
/// everything not played by the caller's position then.
#[derive(Default)]
struct Carrier {
    agent: Vec<i16>,
    end: usize,
    runs: Vec<(usize, usize)>,
}

impl Carrier {
    fn frame(&mut self, at: usize, pcm: &[i16]) {
        let start = at.max(self.end);
        if start > self.end || self.runs.is_empty() {
            self.runs.push((start, start));
        }
        if self.agent.len() < start + pcm.len() {
            self.agent.resize(start + pcm.len(), 0);
        }
        self.agent[start..start + pcm.len()].copy_from_slice(pcm);
        self.end = start + pcm.len();
        self.runs.last_mut().unwrap().1 = self.end;
    }

    fn clear(&mut self, at: usize) {
        if self.agent.len() > at {
            self.agent.truncate(at);
        }
        self.end = self.end.min(at);
        if let Some(run) = self.runs.last_mut() {
            run.1 = run.1.min(at);
        }
    }
}

/// An inline engine on a manual clock and a started Twilio call on it, at 8 kHz both ways,
/// recorded to `path`.
fn started_call(path: &Path) -> (ManualClock, Engine, Session) {
    let clock = ManualClock::new();
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .unwrap();
    let config = SessionConfig {
        agent_rate: 8_000,
        play_rate: 8_000,
        record_path: Some(path.to_owned()),
        ..Default::default()
    };
    let mut s = engine.open_session(&config).unwrap();
    s.push_text(&connected()).unwrap();
    s.push_text(&start()).unwrap();
    (clock, engine, s)
}

/// Runs the call, recording to `path`; `drop_at`: drop the session after that many caller
/// frames, without a stop (returns at once).
fn call(path: &Path, drop_at: Option<usize>) -> (Expected, trunkline::SessionStats) {
    let (speech, _) = speech();
    let frames = 250; // 5 s
    let caller_ulaw = &speech[..frames * FRAME];
    let (clock, engine, mut s) = started_call(path);
    // (frame to start playing at, audio)
    let phrases = [(5, tone(440.0, 300)), (40, tone(523.0, 3_000)), (175, tone(660.0, 200))];
    let mut playing: Option<(Vec<i16>, usize)> = None;
    let mut carrier = Carrier::default();
    let mut barge_in = None;
    let mut cut = None;
    let mut pcm = vec![0i16; 4096];
    for k in 0..frames {
        if drop_at == Some(k) {
            drop(s);
            let expected = Expected {
                caller: caller_ulaw[..k * FRAME].iter().map(|&c| reference_ulaw_decode(c)).collect(),
                agent: carrier.agent,
                runs: carrier.runs,
                barge_in_played: 0,
                cut_at: 0,
                cut_run_start: 0,
            };
            return (expected, Default::default());
        }
        clock.advance(Duration::from_millis(20));
        // The recorder drains its ring every 20 ms of wall time: a call simulated much faster
        // than real time would outrun it (and lose audio, counted in `recording_dropped_ms`).
        std::thread::sleep(Duration::from_millis(2));
        let payload = &caller_ulaw[k * FRAME..(k + 1) * FRAME];
        s.push_text(&media(k as u64 + 2, k as u64 + 1, k as u64 * 20, payload)).unwrap();
        if let Some((_, audio)) = phrases.iter().find(|(at, _)| *at == k) {
            playing = Some((audio.clone(), 0));
        }
        if let Some((audio, offset)) = playing.as_mut() {
            *offset += s.play(&audio[*offset..], 8_000).unwrap();
            if *offset == audio.len() {
                playing = None;
            }
        }
        while let Some(ev) = s.poll_event() {
            if let Event::BargeIn { played_ms, .. } = ev {
                barge_in = Some(played_ms);
                // The bot stops its answer.
                playing = None;
            }
        }
        while s.read_audio(&mut pcm) > 0 {}
        // Everything sent in this tick was sent with the caller's audio delivered through frame k.
        let pos = (k + 1) * FRAME;
        for message in outbound(&mut s) {
            match message {
                Outbound::Media(payload) => {
                    let decoded: Vec<i16> = payload.iter().map(|&c| reference_ulaw_decode(c)).collect();
                    carrier.frame(pos, &decoded);
                }
                Outbound::Clear => {
                    cut = Some((pos, carrier.runs.last().unwrap().0));
                    carrier.clear(pos);
                }
                Outbound::Mark(_) => {}
            }
        }
    }
    clock.advance(Duration::from_millis(20));
    s.push_text(&stop(frames as u64 + 2)).unwrap();
    // The hang-up: nothing still at the carrier was heard.
    carrier.clear(frames * FRAME);
    let stats = s.stats();
    drop(s);
    drop(engine);
    let (cut_at, cut_run_start) = cut.expect("the caller's speech cleared the agent");
    let expected = Expected {
        caller: caller_ulaw.iter().map(|&c| reference_ulaw_decode(c)).collect(),
        agent: carrier.agent,
        runs: carrier.runs,
        barge_in_played: barge_in.expect("a barge-in"),
        cut_at,
        cut_run_start,
    };
    (expected, stats)
}

fn read_wav(path: &Path) -> (hound::WavSpec, Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).unwrap();
    let spec = reader.spec();
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (spec, left, right)
}

fn python_wave(path: &Path) -> Option<(u32, u32, u32, u64)> {
    let script = "import sys, wave\nw = wave.open(sys.argv[1])\nw.readframes(w.getnframes())\n\
                  print(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes())";
    let out = Command::new("python3").arg("-c").arg(script).arg(path).output().ok()?;
    assert!(
        out.status.success(),
        "python's wave refused {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<u64> = text.split_whitespace().map(|x| x.parse().unwrap()).collect();
    Some((v[0] as u32, v[1] as u32, v[2] as u32, v[3]))
}

fn padded(v: &[i16], len: usize) -> Vec<i16> {
    let mut v = v.to_vec();
    v.resize(len, 0);
    v
}

#[test]
fn a_wav_recording_holds_the_caller_and_what_the_caller_heard_of_the_agent() {
    let path = temp_path("call.wav");
    let (expected, stats) = call(&path, None);
    assert_eq!(stats.recording_dropped_ms, 0);
    let (spec, left, right) = read_wav(&path);
    assert_eq!((spec.channels, spec.sample_rate, spec.bits_per_sample), (2, 8_000, 16));
    // Channel 1: the caller's audio, sample for sample.
    assert_eq!(left.len(), expected.caller.len());
    assert!(left == expected.caller, "channel 1 differs from the caller's audio");
    // Channel 2: what was sent, where the caller heard it, cut at the clear and at the hang-up.
    assert_eq!(right, padded(&expected.agent, right.len()));
    // Three runs: the phrase, the interrupted answer, the last phrase; silence between them.
    assert_eq!(expected.runs.len(), 3, "{:?}", expected.runs);
    let (a, b, c) = (expected.runs[0], expected.runs[1], expected.runs[2]);
    assert_eq!(a.1 - a.0, 300 * 8, "the first phrase is heard whole");
    assert_eq!(c.1 - c.0, 200 * 8, "the last phrase is heard whole");
    assert!(right[..a.0].iter().all(|&s| s == 0) && right[a.1..b.0].iter().all(|&s| s == 0));
    assert!(right[b.1..c.0].iter().all(|&s| s == 0) && right[c.1..].iter().all(|&s| s == 0));
    // The pause is where it was: the answer started 700 ms after the phrase did.
    assert_eq!(b.0 - a.0, 35 * FRAME);
    // The cut falls at the engine's played position when it barged in.
    assert_eq!((expected.cut_run_start, expected.cut_at), (b.0, b.1));
    // (The pause was shorter than `utterance_gap_ms`: one utterance, played counted from its start.)
    assert_eq!(((a.1 - a.0) + (b.1 - b.0)) as u64, expected.barge_in_played * 8);
    assert!(b.1 - b.0 < 3_000 * 8 && right[b.0..b.1].iter().any(|&s| s != 0));
    if let Some((channels, rate, width, frames)) = python_wave(&path) {
        assert_eq!((channels, rate, width, frames), (2, 8_000, 2, left.len() as u64));
    }
}

#[test]
fn an_ogg_opus_recording_is_valid_and_decodes_to_the_same_call() {
    let path = temp_path("call.opus");
    let (expected, _) = call(&path, None);
    let info = Command::new("opusinfo").arg(&path).output().expect("opusinfo (opus-tools) is installed");
    assert!(
        info.status.success(),
        "opusinfo refused the recording: {}{}",
        String::from_utf8_lossy(&info.stdout),
        String::from_utf8_lossy(&info.stderr)
    );
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("Channels: 2"), "{text}");
    let decoded = temp_path("call-decoded.wav");
    let status = Command::new("opusdec")
        .args(["--quiet", "--rate", "8000"])
        .arg(&path)
        .arg(&decoded)
        .status()
        .expect("opusdec (opus-tools) is installed");
    assert!(status.success());
    let (spec, left, right) = read_wav(&decoded);
    assert_eq!((spec.channels, spec.sample_rate), (2, 8_000));
    // The length is the call's, to the sample: the encoder's delay (pre-skip) is flushed and
    // the padding of the last packet trimmed by the last granule position.
    assert_eq!(left.len(), expected.caller.len());
    // Lossy, so compared by signal-to-noise ratio over each agent run: the answer and the
    // phrases come back at least 20 dB above the coding noise, and the silence between them
    // stays silent.
    let want = padded(&expected.agent, right.len());
    for &(start, end) in &expected.runs {
        let (s, n) = (start + 80, end.min(right.len()) - 80);
        let signal: f64 = want[s..n].iter().map(|&x| f64::from(x).powi(2)).sum();
        let noise: f64 =
            want[s..n].iter().zip(&right[s..n]).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
        let snr = 10.0 * (signal / noise.max(1.0)).log10();
        println!("agent run {start}..{end}: SNR {snr:.1} dB");
        assert!(snr > 20.0, "agent run {start}..{end}: SNR {snr:.1} dB");
    }
    let (a, b) = (expected.runs[0], expected.runs[1]);
    let pause = &right[a.1 + 160..b.0 - 160];
    let pause_rms = (pause.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / pause.len() as f64).sqrt();
    assert!(pause_rms < 100.0, "the pause is not silent: rms {pause_rms:.0}");
    // The caller's channel too.
    let caller = padded(&expected.caller, left.len());
    let signal: f64 = caller.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = caller.iter().zip(&left).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    let snr = 10.0 * (signal / noise).log10();
    println!("caller channel: SNR {snr:.1} dB");
    // Speech keeps its waveform less well through Opus than a tone does: 12 dB (20 measured).
    assert!(snr > 12.0, "caller SNR {snr:.1} dB");
}

#[test]
fn audio_a_full_disk_keeps_out_of_the_recording_is_counted_as_dropped() {
    // The recording's path leads to /dev/full: every write fails with ENOSPC (once the file's
    // buffer fills, a quarter of a second of audio in). The call goes on; what the file lost is
    // counted where a host looks for a recording's losses.
    for name in ["full.wav", "full.opus"] {
        let path = temp_path(name);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink("/dev/full", &path).unwrap();
        let (_, stats) = call(&path, None);
        let _ = std::fs::remove_file(&path);
        println!("{name}: recording_dropped_ms {}", stats.recording_dropped_ms);
        // 5 s of call, both channels: all but the first buffer's worth, less what the recorder
        // had not taken yet when the counters were read.
        assert!(stats.recording_dropped_ms > 4_000, "{name}: {} ms", stats.recording_dropped_ms);
    }
}

/// The level of a `freq` Hz tone in `x` (8 kHz), as its amplitude.
fn tone_level(x: &[i16], freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / 8000.0;
    let (c, s) = x.iter().enumerate().fold((0.0, 0.0), |(c, s), (k, &v)| {
        (c + f64::from(v) * (w * k as f64).cos(), s + f64::from(v) * (w * k as f64).sin())
    });
    2.0 * (c * c + s * s).sqrt() / x.len() as f64
}

#[test]
fn agent_audio_sent_while_the_callers_media_is_held_up_keeps_its_times() {
    // The caller's media stops arriving at 1 s (a one-way stall) and comes back in a burst 3 s
    // later. Meanwhile the agent says a 440 Hz phrase from 1.2 s and a 660 Hz one from 2.2 s:
    // each must be in the recording where the caller heard it, not piled up where the caller's
    // audio stopped (the second over the first).
    let path = temp_path("stalled.wav");
    let (clock, engine, mut s) = started_call(&path);
    let silence = [0xFFu8; FRAME];
    let mut pcm = vec![0i16; 4096];
    let mut next = 0u64;
    for tick in 0..260u64 {
        clock.advance(Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(1));
        // In real time to 1 s, nothing for 3 s, then five frames a tick until caught up.
        let due = match tick {
            0..50 => tick + 1,
            50..200 => 50,
            _ => (50 + (tick - 199) * 5).min(tick + 1),
        };
        while next < due {
            s.push_text(&media(next + 2, next + 1, next * 20, &silence)).unwrap();
            next += 1;
        }
        if tick == 59 {
            assert_eq!(s.play(&tone(440.0, 500), 8_000), Ok(4_000));
        }
        if tick == 109 {
            assert_eq!(s.play(&tone(660.0, 500), 8_000), Ok(4_000));
        }
        while s.poll_event().is_some() {}
        while s.read_audio(&mut pcm) > 0 {}
        let mut buf = Vec::new();
        while s.next_outbound(&mut buf).is_some() {}
    }
    s.push_text(&stop(next + 2)).unwrap();
    drop(s);
    drop(engine);
    let (_, left, right) = read_wav(&path);
    assert_eq!(left.len(), 260 * FRAME);
    let at = |ms: usize| &right[ms * 8..(ms + 200) * 8];
    let (a, b) = (at(1_450), at(2_450));
    println!(
        "440 Hz at 1.45 s: {:.0}, at 2.45 s: {:.0}; 660 Hz at 2.45 s: {:.0}",
        tone_level(a, 440.0),
        tone_level(b, 440.0),
        tone_level(b, 660.0)
    );
    assert!(tone_level(a, 440.0) > 4_000.0, "the first phrase where it was heard");
    assert!(tone_level(b, 660.0) > 4_000.0, "the second phrase where it was heard");
    assert!(tone_level(b, 440.0) < 400.0, "nothing of the first phrase a second later");
}

#[test]
fn a_session_dropped_mid_call_leaves_a_readable_recording() {
    let path = temp_path("dropped.wav");
    // Recording on a threaded engine, to see the file while the call is still going.
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let config = SessionConfig { record_path: Some(path.clone()), ..Default::default() };
    let mut s = engine.open_session(&config).unwrap();
    s.push_text(&start()).unwrap();
    let (speech, _) = speech();
    let frames = 75; // 1.5 s, pushed in real time
    for k in 0..frames {
        let payload = &speech[k * FRAME..(k + 1) * FRAME];
        s.push_text(&media(k as u64 + 2, k as u64 + 1, k as u64 * 20, payload)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Readable up to the last flush (once a second) while the call goes on.
    std::thread::sleep(Duration::from_millis(1_200));
    let (spec, left, _) = read_wav(&path);
    assert_eq!(spec.channels, 2);
    let caller: Vec<i16> = speech[..frames * FRAME].iter().map(|&c| reference_ulaw_decode(c)).collect();
    assert!(!left.is_empty() && left.len() <= caller.len(), "{} samples", left.len());
    assert!(left[..] == caller[..left.len()]);
    // Dropped without a stop: the recording is closed all the same.
    drop(s);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, left, _) = read_wav(&path);
        if left.len() == caller.len() {
            assert!(left == caller);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the recording was not closed: {} samples", left.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some((channels, _, _, frames)) = python_wave(&path) {
        assert_eq!((channels, frames), (2, caller.len() as u64));
    }
}

#[test]
fn an_inline_session_dropped_mid_call_is_closed_by_the_engine() {
    let path = temp_path("inline-dropped.wav");
    let (expected, _) = call(&path, Some(60));
    let (_, left, right) = read_wav(&path);
    assert!(left == expected.caller);
    // Heard so far: the first phrase and the start of the answer up to the caller's position
    // (what the carrier held beyond it was not heard yet, and is left out).
    assert_eq!(right.len(), left.len());
    assert_eq!(right, padded(&expected.agent, right.len()));
    assert!(expected.agent.len() > right.len() && right[expected.runs[1].0..].iter().any(|&s| s != 0));
}

#[test]
fn a_path_that_cannot_be_recorded_to_refuses_the_open() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    for path in [temp_path("call.mp3"), temp_path("no-such-dir/call.wav")] {
        let config = SessionConfig { record_path: Some(path.clone()), ..Default::default() };
        match engine.open_session(&config) {
            Err(EngineError::Record { path: p, reason }) => {
                assert_eq!(p, path);
                let message = EngineError::Record { path: p, reason }.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
            }
            Err(e) => panic!("{}: {e}", path.display()),
            Ok(_) => panic!("{}: opened", path.display()),
        }
    }
    assert!(!temp_path("call.mp3").exists());
    assert_eq!(engine.open_sessions(), 0);
}

#[test]
fn dropping_the_engine_closes_the_recordings_of_sessions_still_held() {
    let (speech, _) = speech();
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut sessions = vec![];
    for name in ["held.wav", "held.opus"] {
        let config = SessionConfig { record_path: Some(temp_path(name)), ..Default::default() };
        let mut s = engine.open_session(&config).unwrap();
        s.push_text(&start()).unwrap();
        for k in 0..25 {
            s.push_text(&media(
                k as u64 + 2,
                k as u64 + 1,
                k as u64 * 20,
                &speech[k * FRAME..(k + 1) * FRAME],
            ))
            .unwrap();
            // Read as a host does (one that does not is held back once the agent ring is full).
            std::thread::sleep(Duration::from_millis(2));
            while s.read_audio(&mut [0i16; 1024]) > 0 {}
        }
        std::thread::sleep(Duration::from_millis(50));
        while s.read_audio(&mut [0i16; 1024]) > 0 {}
        sessions.push(s);
    }
    // Let the worker take the messages, then shut down with the calls still open.
    std::thread::sleep(Duration::from_millis(200));
    drop(engine);
    let caller: Vec<i16> = speech[..25 * FRAME].iter().map(|&c| reference_ulaw_decode(c)).collect();
    let (_, left, _) = read_wav(&temp_path("held.wav"));
    assert!(left == caller, "{} samples", left.len());
    // The Ogg stream was ended: opusinfo finds its end-of-stream page and its length.
    let info = Command::new("opusinfo").arg(temp_path("held.opus")).output().expect("opusinfo");
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success() && text.contains("Playback length: 0m:00.500s"), "{text}");
    drop(sessions);
}

#[test]
fn a_session_opened_started_records_and_one_refused_leaves_no_file() {
    use trunkline::protocol::{AudioEncoding, MediaFormat, StreamStart, Track};
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let start = StreamStart {
        sequence: None,
        account_id: String::new(),
        stream_id: STREAM_SID.into(),
        call_id: CALL_SID.into(),
        tracks: vec![Track::Inbound],
        custom_parameters: vec![],
        media_format: MediaFormat { encoding: AudioEncoding::Mulaw, sample_rate: 8000, channels: 1 },
    };
    let refused = temp_path("refused.wav");
    let odd = StreamStart {
        media_format: MediaFormat { encoding: AudioEncoding::L16, sample_rate: 44_100, channels: 1 },
        ..start.clone()
    };
    let config = SessionConfig { record_path: Some(refused.clone()), ..Default::default() };
    assert!(matches!(engine.open_session_started(&config, odd.clone()), Err(EngineError::Start(_))));
    assert!(!refused.exists(), "a refused open left its recording");
    // Nor does it touch a file already there (another call's recording).
    std::fs::write(&refused, b"an earlier call").unwrap();
    assert!(matches!(engine.open_session_started(&config, odd), Err(EngineError::Start(_))));
    assert_eq!(std::fs::read(&refused).unwrap(), b"an earlier call");
    std::fs::remove_file(&refused).unwrap();

    let path = temp_path("started.wav");
    let config = SessionConfig { record_path: Some(path.clone()), ..Default::default() };
    let mut s = engine.open_session_started(&config, start).unwrap();
    let (speech, _) = speech();
    for k in 0..10 {
        s.push_text(&media(k as u64 + 2, k as u64 + 1, k as u64 * 20, &speech[k * FRAME..(k + 1) * FRAME]))
            .unwrap();
    }
    s.push_text(&stop(12)).unwrap();
    drop(s);
    drop(engine);
    let (spec, left, _) = read_wav(&path);
    assert_eq!(spec.sample_rate, 8_000);
    assert!(left == speech[..10 * FRAME].iter().map(|&c| reference_ulaw_decode(c)).collect::<Vec<_>>());
}
