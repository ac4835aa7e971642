//! The offload server recording a call (`OffloadConfig::record_dir`) that callsim makes as a
//! Twilio caller: it asks, the bot answers with a tone, the caller talks over it (barge-in).
//!
//! The recording, read back with a WAV parser of this test's own (and Python's `wave` module
//! when there is a `python3`), must hold on its left channel exactly what callsim sent (the
//! script's µ-law, decoded with the reference formula) and on its right the bot's tone as callsim
//! played it: the same samples up to µ-law's quantisation, starting where callsim started
//! playing it and ending where callsim's playout was cleared.

use crate::common::{reference_ulaw_decode, speech};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use trunkline::{Engine, EngineConfig, Event, SessionConfig};
use trunkline_callsim::{self as callsim, CallEvent, CallOptions, CallerAudio, Script, SpeechSegment};
use trunkline_server::{OffloadConfig, OffloadServer, RecordFormat};

const REPLY_MS: usize = 1_500;

fn tone_8k(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| (6000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16)
        .collect()
}

fn decode(ulaw: &[u8]) -> Vec<i16> {
    ulaw.iter().map(|&c| reference_ulaw_decode(c)).collect()
}

/// A bot behind the server: a tone for each end of the caller's speech, silent on barge-in.
fn bot(
    engine: Arc<Engine>,
    server: Arc<OffloadServer>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let reply = tone_8k(REPLY_MS);
    std::thread::spawn(move || {
        let mut calls = vec![];
        while !stop.load(Ordering::Acquire) {
            engine.wait(Some(Duration::from_millis(2)));
            while let Some(call) = server.accept() {
                calls.push((call.session, reply.len()));
            }
            for (session, offset) in &mut calls {
                while let Some(ev) = session.poll_event() {
                    match ev {
                        Event::SpeechStopped { .. } => *offset = 0,
                        Event::BargeIn { .. } => *offset = reply.len(),
                        _ => {}
                    }
                }
                while *offset < reply.len() {
                    match session.play(&reply[*offset..], 8_000) {
                        Ok(n) if n > 0 => *offset += n,
                        _ => break,
                    }
                }
                let mut pcm = [0i16; 1024];
                while session.read_audio(&mut pcm) > 0 {}
            }
        }
    })
}

/// A 16-bit PCM WAV's format and samples, parsed here (RIFF chunks, `fmt `, `data`).
fn parse_wav(bytes: &[u8]) -> (u16, u32, Vec<i16>) {
    assert!(bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE", "not a WAV");
    let (mut at, mut format, mut data) = (12, None, None);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let body = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
        match id {
            b"fmt " => {
                let tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                let bits = u16::from_le_bytes([body[14], body[15]]);
                assert_eq!((tag, bits), (1, 16), "16-bit PCM");
                format = Some((channels, rate));
            }
            b"data" => {
                assert_eq!(body.len(), len, "the data chunk's length is the file's");
                data = Some(body.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect());
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    let (channels, rate) = format.expect("a fmt chunk");
    (channels, rate, data.expect("a data chunk"))
}

/// The stretches of non-silence (first and last sample), split by at least 40 silent samples.
fn runs(pcm: &[i16]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = vec![];
    for (i, _) in pcm.iter().enumerate().filter(|(_, s)| **s != 0) {
        match runs.last_mut() {
            Some(run) if i - run.1 < 40 => run.1 = i,
            _ => runs.push((i, i)),
        }
    }
    runs
}

fn python_wave_frames(path: &Path) -> Option<(u32, u64)> {
    let script = "import sys, wave\nw = wave.open(sys.argv[1])\nw.readframes(w.getnframes())\n\
                  print(w.getnchannels(), w.getnframes())";
    let out = std::process::Command::new("python3").arg("-c").arg(script).arg(path).output().ok()?;
    assert!(
        out.status.success(),
        "python's wave refused the recording: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut it = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    Some((it.next()? as u32, it.next()?))
}

/// Runs `script` as one callsim call against an offload server recording every call in
/// `format` to a fresh directory (named after `tag`), with the test bot answering; returns the
/// directory and the call's result once everything is shut down, which closes the recording.
fn record_a_call(tag: &str, format: RecordFormat, script: &Script) -> (PathBuf, callsim::CallResult) {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("trunkline-callsim-recording-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap());
    let config = OffloadConfig {
        session: SessionConfig { agent_rate: 8_000, play_rate: 8_000, ..Default::default() },
        record_dir: Some(dir.clone()),
        record_format: format,
        ..Default::default()
    };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = bot(engine.clone(), server.clone(), stop.clone());
    let mut options = CallOptions::new(format!("ws://{}/", server.local_addr()));
    options.line_noise_dbfs = None;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let r = rt.block_on(callsim::run_call(0, &options, script));
    // The hang-up reaches the engine; then everything is shut down, which closes the recording.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    engine.wake();
    thread.join().unwrap();
    drop(server);
    drop(Arc::try_unwrap(engine).ok().expect("the test holds the last reference to the engine"));
    (dir, r)
}

#[test]
fn the_offload_server_records_what_callsim_sent_and_heard() {
    let (audio, labels) = speech();
    let caller = CallerAudio::from_ulaw(audio)
        .with_speech(labels.into_iter().map(|(s, e)| SpeechSegment { start_ms: s, end_ms: e }));
    let ask = caller.slice_ms(0, 3_600);
    let interruption = caller.utterance(1, 300).unwrap();
    let script = Script::new()
        .say(ask.clone())
        .wait_for_reply(Duration::from_secs(3))
        .interrupt(Duration::from_millis(500), interruption.clone())
        .silence(Duration::from_millis(600));
    let (dir, r) = record_a_call("wav", RecordFormat::Wav, &script);
    assert!(r.ok(), "{:?}\n{}", r.error, callsim::format_timeline(&r, None));

    let path = dir.join(format!("{}.wav", r.stream_sid));
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(path.exists(), "no {} among {names:?}", path.display());
    assert_eq!(names.len(), 1, "a pending file was left: {names:?}");
    let (channels, rate, samples) = parse_wav(&std::fs::read(&path).unwrap());
    assert_eq!((channels, rate), (2, 8_000));
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    if let Some((ch, frames)) = python_wave_frames(&path) {
        assert_eq!((ch, frames), (2, left.len() as u64));
    }

    // Left: the question, then the interruption on a 20 ms frame, digital silence elsewhere.
    let ask = decode(ask.ulaw());
    let cut = decode(interruption.ulaw());
    assert!(left.len() >= ask.len() + cut.len(), "{} samples recorded", left.len());
    assert!(left[..ask.len()] == ask[..], "the question differs");
    let at = (ask.len()..=left.len() - cut.len())
        .step_by(160)
        .find(|&at| left[at..at + cut.len()] == cut[..])
        .expect("the interruption, sample for sample");
    assert!(left[ask.len()..at].iter().chain(&left[at + cut.len()..]).all(|&s| s == 0));

    // Right: the tone as played, each reply from where callsim started playing it, the first
    // (interrupted) to where callsim's playout was cleared. (The bot answers the interruption
    // too: a second reply, which the hang-up ends.)
    let started: Vec<f64> =
        r.events(|e| matches!(e, CallEvent::BotReplyStarted { .. })).map(|e| e.stream_ms).collect();
    let cleared_ms = r
        .timeline
        .iter()
        .find_map(|e| match e.event {
            CallEvent::BotReplyEnded { played_ms, cleared: true } => Some(played_ms),
            _ => None,
        })
        .expect("callsim's playout was cleared");
    let runs = runs(&right);
    assert_eq!(runs.len(), started.len(), "replies recorded {runs:?}, played from {started:?} ms");
    let tone = tone_8k(REPLY_MS);
    for (k, (&(first, last), &started_ms)) in runs.iter().zip(&started).enumerate() {
        // The tone starts at a zero crossing: its first sample is 0.
        let start = first - 1;
        let heard = &right[start..=last];
        assert!(heard.len() <= tone.len());
        for (i, (&got, &sent)) in heard.iter().zip(&tone).enumerate() {
            // µ-law keeps about 1/32 of the magnitude, and a step near zero.
            let (got, sent) = (i32::from(got), i32::from(sent));
            let bound = sent.abs() / 16 + 16;
            if start + i < at {
                assert!((got - sent).abs() <= bound, "reply {k}, sample {i}: {got} for {sent}");
            } else {
                // Once the caller talks over it, the engine may duck the reply before cutting
                // it: never louder, never another waveform.
                assert!(
                    got * sent >= 0 && got.abs() <= sent.abs() + bound,
                    "reply {k}, sample {i}: {got} for {sent}"
                );
            }
        }
        let start_ms = start as f64 / 8.0;
        let heard_ms = heard.len() as f64 / 8.0;
        println!(
            "reply {k}: recorded from {start_ms:.1} ms for {heard_ms:.1} ms; callsim played from {started_ms:.1} ms"
        );
        // The same timeline as callsim's, within the network's and the schedulers' few ms.
        assert!(
            (start_ms - started_ms).abs() <= 40.0,
            "reply {k} recorded from {start_ms} ms, played from {started_ms} ms"
        );
        if k == 0 {
            // Cut where the engine's played position (checked against callsim's in `carriers.rs`)
            // put it: what callsim had played when the clear came.
            println!("reply 0: callsim played {cleared_ms:.1} ms before the clear");
            assert!(heard.len() < tone.len(), "the reply was cut");
            assert!((heard_ms - cleared_ms).abs() <= 20.0, "recorded {heard_ms} ms, played {cleared_ms} ms");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_offload_server_records_ogg_opus_when_asked() {
    let (audio, _) = speech();
    let said = CallerAudio::from_ulaw(audio).slice_ms(1_000, 2_500);
    let script = Script::new().say(said.clone()).silence(Duration::from_millis(200));
    let (dir, r) = record_a_call("opus", RecordFormat::OggOpus, &script);
    assert!(r.ok(), "{:?}", r.error);

    let path = dir.join(format!("{}.opus", r.stream_sid));
    assert!(path.exists(), "no {}", path.display());
    let info = std::process::Command::new("opusinfo").arg(&path).output().expect("opusinfo (opus-tools)");
    assert!(info.status.success(), "{}", String::from_utf8_lossy(&info.stdout));
    let decoded = dir.join("decoded.wav");
    let ok = std::process::Command::new("opusdec")
        .args(["--quiet", "--rate", "8000"])
        .arg(&path)
        .arg(&decoded)
        .status()
        .expect("opusdec (opus-tools)")
        .success();
    assert!(ok);
    let (channels, rate, samples) = parse_wav(&std::fs::read(&decoded).unwrap());
    assert_eq!((channels, rate), (2, 8_000));
    // The caller's speech, back through Opus: at least 12 dB above the coding noise (21
    // measured).
    let sent = decode(said.ulaw());
    let left: Vec<i16> = samples.iter().step_by(2).copied().take(sent.len()).collect();
    assert_eq!(left.len(), sent.len());
    let signal: f64 = sent.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = sent.iter().zip(&left).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum();
    let snr = 10.0 * (signal / noise).log10();
    println!("caller channel through Opus: SNR {snr:.1} dB");
    assert!(snr > 12.0, "SNR {snr:.1} dB");
    let _ = std::fs::remove_dir_all(&dir);
}
