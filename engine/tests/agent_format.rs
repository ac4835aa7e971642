//! Agent audio formats beyond PCM: an agent that reads and plays G.711 µ-law or A-law at 8 kHz.
//!
//! Expectations are independent of the path under test: pass-through is held to the exact bytes
//! sent (every one of the 256 codes, including µ-law's second zero 0x7F, which decoding and
//! encoding again would turn into 0xFF); conversions to the codec tables applied to the carrier's
//! samples (µ-law decoded by a reference written from the ITU-T formula); resampled audio, VAD,
//! barge-in, pacing, marks and segments to a second session on the PCM path fed the same call.
//!
//! This binary installs `assert_no_alloc`'s allocator (debug builds), so every session step here,
//! inline or on a worker, aborts the run if it allocates.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use std::time::{Duration, Instant};
use trunkline::codec::{alaw_to_linear, linear_to_alaw, linear_to_ulaw};
use trunkline::protocol::{AudioEncoding, MediaFormat, TelnyxDialect, TwilioDialect};
use trunkline::runtime::ManualClock;
use trunkline::vad::VadConfig;
use trunkline::{AgentFormat, Engine, EngineConfig, Event, Session, SessionConfig};

#[cfg(debug_assertions)]
#[global_allocator]
static ALLOCATOR: assert_no_alloc::AllocDisabler = assert_no_alloc::AllocDisabler;

const FRAME: usize = 160;

fn config(format: AgentFormat) -> SessionConfig {
    SessionConfig { agent_format: format, agent_rate: 8_000, ..Default::default() }
}

/// An inline engine on `clock` with a Twilio session.
fn open(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .unwrap();
    let session = engine.open_session_with(config, Box::new(TwilioDialect::new())).unwrap();
    (engine, session)
}

/// A Twilio `start` announcing `encoding` at `rate`.
fn start_with(encoding: &str, rate: u32) -> String {
    start().replace(
        r#""encoding":"audio/x-mulaw","sampleRate":8000"#,
        &format!(r#""encoding":"{encoding}","sampleRate":{rate}"#),
    )
}

/// Every caller byte waiting, read as bytes in the agent's format.
fn read_bytes(s: &mut Session) -> Vec<u8> {
    let mut all = vec![];
    let mut buf = [0u8; 333];
    loop {
        let n = s.read_audio_bytes(&mut buf);
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

fn read_pcm(s: &mut Session) -> Vec<i16> {
    let mut all = vec![];
    let mut buf = [0i16; 333];
    loop {
        let n = s.read_audio(&mut buf);
        if n == 0 {
            return all;
        }
        all.extend_from_slice(&buf[..n]);
    }
}

/// Every outbound message waiting, as text.
fn outbound(s: &mut Session) -> Vec<String> {
    let mut out = vec![];
    let mut buf = vec![];
    while s.next_outbound(&mut buf).is_some() {
        out.push(String::from_utf8(buf.clone()).unwrap());
    }
    out
}

/// The media payloads among `messages` (any dialect: `media.payload`).
fn payloads(messages: &[String]) -> Vec<u8> {
    let mut all = vec![];
    for m in messages {
        let v: serde_json::Value = serde_json::from_str(m).unwrap();
        if v["event"] == "media" {
            all.extend(STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap());
        }
    }
    all
}

/// 8 kHz µ-law holding every code, in an order that puts each next to many others.
fn all_codes(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 97 + i / 256) & 0xff) as u8).collect()
}

#[test]
fn a_g711_agent_needs_8_khz() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    for format in [AgentFormat::Mulaw, AgentFormat::Alaw] {
        for rate in [16_000, 24_000, 48_000] {
            let bad = SessionConfig { agent_format: format, agent_rate: rate, ..Default::default() };
            let err = engine.open_session(&bad).err().expect("refused").to_string();
            assert!(err.contains("agent_rate 8000"), "{err}");
        }
        assert!(engine.open_session(&config(format)).is_ok());
    }
    assert_eq!(AgentFormat::from_name("g711_ulaw"), Some(AgentFormat::Mulaw));
    assert_eq!(AgentFormat::from_name("ALAW"), Some(AgentFormat::Alaw));
    assert_eq!(AgentFormat::from_name("pcm"), Some(AgentFormat::Pcm));
    assert_eq!(AgentFormat::from_name("opus"), None);
}

#[test]
fn every_mulaw_code_reaches_a_mulaw_agent_untouched_through_reordering_and_gaps() {
    every_mulaw_code_passes_through(config(AgentFormat::Mulaw));
}

#[test]
fn with_echo_reduction_on_the_codes_pass_through_while_nothing_is_taken_out() {
    // The agent has played nothing, so no echo can be in the caller's audio: the canceller
    // hands every sample on as it came, and the carrier's codes go to the agent, not the codes
    // of their decoded samples (which would turn 0x7F into 0xFF).
    let vad = VadConfig { echo_aware: true, ..VadConfig::default() };
    every_mulaw_code_passes_through(SessionConfig {
        vad,
        echo_reduction: true,
        ..config(AgentFormat::Mulaw)
    });
}

fn every_mulaw_code_passes_through(config: SessionConfig) {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config);
    s.push_text(&start()).unwrap();
    let mut codes = all_codes(12 * FRAME);
    // Both µ-law zeros in the frame that is held out of order, and elsewhere.
    codes[2 * FRAME + 5] = 0x7F;
    codes[2 * FRAME + 6] = 0xFF;
    assert!(codes.contains(&0x7F) && codes.contains(&0xFF));
    let frame = |i: usize| &codes[i * FRAME..][..FRAME];
    // Frames 0, 2, 1 (held, then released in order), 3, then 4 is lost: 5..=11 arrive, which
    // overtakes the reorder window, so 4 becomes silence.
    let order = [0, 2, 1, 3, 5, 6, 7, 8, 9, 10, 11];
    for &i in &order {
        s.push_text(&media(i as u64 + 2, i as u64 + 1, i as u64 * 20, frame(i))).unwrap();
    }
    s.end_stream().unwrap();
    let got = read_bytes(&mut s);
    let mut expected = codes.clone();
    expected[4 * FRAME..5 * FRAME].fill(0xFF);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the agent reads the carrier's codes exactly, gaps as 0xFF");
    assert!(s.stats().frames_reordered >= 1 && s.stats().gap_fill_samples == FRAME as u64);
}

#[test]
fn read_audio_decodes_what_read_audio_bytes_would_give() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config(AgentFormat::Mulaw));
    s.push_text(&start()).unwrap();
    let codes = all_codes(4 * FRAME);
    for i in 0..4 {
        s.push_text(&media(i + 2, i + 1, i * 20, &codes[i as usize * FRAME..][..FRAME])).unwrap();
    }
    let pcm = read_pcm(&mut s);
    let expected: Vec<i16> = codes.iter().map(|&c| reference_ulaw_decode(c)).collect();
    assert_eq!(pcm, expected);
}

#[test]
fn mulaw_agent_audio_goes_out_untouched() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config(AgentFormat::Mulaw));
    s.push_text(&start()).unwrap();
    let codes = all_codes(50 * FRAME);
    assert_eq!(s.play_bytes(&codes, 8_000).unwrap(), codes.len());
    let mut sent = vec![];
    for _ in 0..80 {
        sent.extend(outbound(&mut s));
        clock.advance(Duration::from_millis(20));
    }
    let out = payloads(&sent);
    assert_eq!(out.len(), codes.len(), "whole frames, no padding");
    assert!(out == codes, "the carrier gets the agent's codes exactly");
    assert_eq!(s.stats().frames_out, 50);
    // The played position counts samples, a byte each.
    assert!(s.play_bytes(&codes[..100], 16_000).is_err(), "G.711 plays at 8 kHz");
}

/// A session on a Telnyx stream whose caller audio is A-law and which takes back A-law.
fn open_telnyx_alaw(clock: &ManualClock, config: &SessionConfig) -> (Engine, Session) {
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .unwrap();
    let alaw = MediaFormat { encoding: AudioEncoding::Alaw, sample_rate: 8_000, channels: 1 };
    let dialect = TelnyxDialect::with_outbound_format(alaw);
    let mut s = engine.open_session_with(config, Box::new(dialect)).unwrap();
    s.push_text(r#"{"event":"start","sequence_number":"1","stream_id":"st1","start":{"call_control_id":"c1","media_format":{"encoding":"PCMA","sample_rate":8000,"channels":1}}}"#).unwrap();
    (engine, s)
}

fn telnyx_media(seq: u64, payload: &[u8]) -> String {
    serde_json::json!({"event":"media","sequence_number":seq.to_string(),"stream_id":"st1",
        "media":{"track":"inbound","chunk":seq.to_string(),"timestamp":((seq - 2) * 20).to_string(),
        "payload":STANDARD.encode(payload)}})
    .to_string()
}

#[test]
fn an_alaw_carrier_and_a_mulaw_agent_convert_through_the_codec_tables() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_telnyx_alaw(&clock, &config(AgentFormat::Mulaw));
    let codes = all_codes(4 * FRAME);
    for i in 0..4 {
        s.push_text(&telnyx_media(i + 2, &codes[i as usize * FRAME..][..FRAME])).unwrap();
    }
    let got = read_bytes(&mut s);
    let expected: Vec<u8> = codes.iter().map(|&a| linear_to_ulaw(alaw_to_linear(a))).collect();
    assert!(got == expected, "caller A-law reaches the agent as the µ-law of its samples");

    // Back: the agent's µ-law goes out as the A-law of its samples.
    let agent = all_codes(10 * FRAME);
    assert_eq!(s.play_bytes(&agent, 8_000).unwrap(), agent.len());
    let mut sent = vec![];
    for _ in 0..20 {
        sent.extend(outbound(&mut s));
        clock.advance(Duration::from_millis(20));
    }
    let expected: Vec<u8> = agent.iter().map(|&u| linear_to_alaw(reference_ulaw_decode(u))).collect();
    assert!(payloads(&sent) == expected);
}

#[test]
fn an_alaw_agent_on_an_alaw_carrier_passes_through_both_ways() {
    let clock = ManualClock::new();
    let (_engine, mut s) = open_telnyx_alaw(&clock, &config(AgentFormat::Alaw));
    let codes = all_codes(6 * FRAME);
    // Frame 3 is lost (6 frames after it overtake the window): A-law silence fills it.
    for i in [0u64, 1, 2, 4, 5] {
        s.push_text(&telnyx_media(i + 2, &codes[i as usize * FRAME..][..FRAME])).unwrap();
    }
    s.end_stream().unwrap();
    let mut expected = codes.clone();
    expected[3 * FRAME..4 * FRAME].fill(0xD5);
    assert!(read_bytes(&mut s) == expected);

    let (_engine, mut s) = open_telnyx_alaw(&clock, &config(AgentFormat::Alaw));
    s.play_bytes(&codes, 8_000).unwrap();
    let mut sent = vec![];
    for _ in 0..12 {
        sent.extend(outbound(&mut s));
        clock.advance(Duration::from_millis(20));
    }
    assert!(payloads(&sent) == codes);
}

#[test]
fn an_l16_carrier_at_16_khz_reaches_a_mulaw_agent_as_the_pcm_paths_audio_encoded() {
    let (speech, _) = speech();
    // The caller's speech at 16 kHz: each sample twice (what the test needs is realistic audio
    // through the resampler, identical for both sessions).
    let wide: Vec<i16> = speech[..4000].iter().flat_map(|&c| [reference_ulaw_decode(c); 2]).collect();
    let messages: Vec<String> = wide
        .chunks(320)
        .enumerate()
        .map(|(i, chunk)| {
            let bytes: Vec<u8> = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &bytes)
        })
        .collect();
    let run = |format: AgentFormat| {
        let clock = ManualClock::new();
        let (_engine, mut s) = open(&clock, &config(format));
        s.push_text(&start_with("audio/x-l16", 16_000)).unwrap();
        let (mut bytes, mut pcm) = (vec![], vec![]);
        for m in &messages {
            s.push_text(m).unwrap();
            match format {
                AgentFormat::Pcm => pcm.extend(read_pcm(&mut s)),
                _ => bytes.extend(read_bytes(&mut s)),
            }
        }
        let events: Vec<Event> = std::iter::from_fn(|| s.poll_event()).collect();
        (bytes, pcm, events)
    };
    let (_, pcm, pcm_events) = run(AgentFormat::Pcm);
    let (ulaw, _, ulaw_events) = run(AgentFormat::Mulaw);
    assert_eq!(pcm.len(), wide.len() / 2, "resampled to 8 kHz");
    let expected: Vec<u8> = pcm.iter().map(|&v| linear_to_ulaw(v)).collect();
    assert!(ulaw == expected, "the µ-law agent reads the PCM path's 8 kHz audio, encoded");
    assert_eq!(ulaw_events, pcm_events, "speech detection sees the same audio");
}

/// What one call with an agent talking over the caller produces: the outbound messages in order,
/// the events, the host's `queued_ms` along the way and the segment report at the barge-in.
#[derive(Debug, PartialEq)]
struct CallTrace {
    sent: Vec<String>,
    events: Vec<(usize, Event)>,
    queued_ms: Vec<u64>,
    cut: Option<trunkline::SegmentReport>,
}

/// The agent starts a 6 s answer in two segments with a mark between them, at once; the caller
/// (the speech fixture) talks over it; the carrier echoes marks 60 ms after they were sent.
fn barge_in_call(format: AgentFormat, answer: &[u8]) -> CallTrace {
    let (speech, _) = speech();
    let clock = ManualClock::new();
    let (_engine, mut s) = open(&clock, &config(format));
    s.push_text(&start()).unwrap();
    let play = |s: &mut Session, codes: &[u8]| match format {
        AgentFormat::Pcm => {
            let pcm: Vec<i16> = codes.iter().map(|&c| reference_ulaw_decode(c)).collect();
            s.play(&pcm, 8_000).unwrap_or(0)
        }
        _ => s.play_bytes(codes, 8_000).unwrap_or(0),
    };
    let mut trace = CallTrace { sent: vec![], events: vec![], queued_ms: vec![], cut: None };
    let mut echoes: Vec<(u64, String)> = vec![];
    let mut echo_seq = 10_000;
    let half = answer.len() / 2;
    let (mut fed, mut marked) = (0, false);
    s.begin_segment("first").unwrap();
    for (i, frame) in speech.chunks(FRAME).take(400).enumerate() {
        // The answer in 100 ms pieces as a TTS streams it, kept a second ahead (so both hosts'
        // play rings are empty between calls); the mark and the second segment half way.
        while s.queued_ms() < 1_000 {
            if fed == half && !marked {
                s.mark("half").unwrap();
                s.begin_segment("second").unwrap();
                marked = true;
            }
            let end = if fed < half { half } else { answer.len() };
            let n = (end - fed).min(800);
            if n == 0 {
                break;
            }
            let taken = play(&mut s, &answer[fed..fed + n]);
            fed += taken;
            if taken < n {
                break;
            }
        }
        s.push_text(&media(i as u64 + 2, i as u64 + 1, i as u64 * 20, frame)).unwrap();
        let now = clock.now_us();
        for m in outbound(&mut s) {
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            if v["event"] == "mark" {
                echoes.push((now + 60_000, v["mark"]["name"].as_str().unwrap().to_owned()));
            }
            if v["event"] == "clear" {
                // The carrier echoes every pending mark at once on a clear.
                for (at, _) in &mut echoes {
                    *at = now;
                }
            }
            trace.sent.push(m);
        }
        let (due, later): (Vec<_>, Vec<_>) = echoes.drain(..).partition(|(at, _)| *at <= now);
        echoes = later;
        for (_, name) in due {
            echo_seq += 1;
            s.push_text(&mark_echo(echo_seq, &name)).unwrap();
        }
        while let Some(e) = s.poll_event() {
            if matches!(e, Event::BargeIn { .. }) {
                trace.cut = s.segments_at_cut().cloned();
            }
            trace.events.push((i, e));
        }
        trace.queued_ms.push(s.queued_ms());
        match format {
            AgentFormat::Pcm => drop(read_pcm(&mut s)),
            _ => drop(read_bytes(&mut s)),
        }
        clock.advance(Duration::from_millis(20));
    }
    trace
}

#[test]
fn barge_in_marks_segments_and_pacing_match_the_pcm_path() {
    // Every code but µ-law's second zero, which the PCM host cannot express (it plays 0, which is
    // 0xFF): with it out, both hosts give the carrier the same codes.
    let answer: Vec<u8> = all_codes(48_000).into_iter().map(|c| if c == 0x7F { 0x7E } else { c }).collect();
    let pcm = barge_in_call(AgentFormat::Pcm, &answer);
    let ulaw = barge_in_call(AgentFormat::Mulaw, &answer);
    let barge = |t: &CallTrace| t.events.iter().find(|(_, e)| matches!(e, Event::BargeIn { .. })).cloned();
    let (frame, event) = barge(&ulaw).expect("the caller's speech barges in");
    assert_eq!(barge(&pcm), Some((frame, event.clone())), "the same frame, onset and played position");
    // The agent plays on after the barge-in while the caller talks on: that is cut as well
    // (the mark between the segments with it), once the caller has talked over it long enough.
    let resolved = |t: &CallTrace| {
        t.events.iter().find_map(|(i, e)| match e {
            Event::MarkPlayed { name, .. } | Event::MarkCleared { name } if name == "half" => {
                Some((*i, e.clone()))
            }
            _ => None,
        })
    };
    assert!(resolved(&ulaw).is_some(), "the mark between the segments is played or cleared");
    assert_eq!(resolved(&ulaw), resolved(&pcm));
    let barge_ins =
        |t: &CallTrace| t.events.iter().filter(|(_, e)| matches!(e, Event::BargeIn { .. })).count();
    assert_eq!(barge_ins(&ulaw), 2, "{:?}", ulaw.events);
    let cut = ulaw.cut.clone().expect("a segment report");
    assert!(cut.segment.as_ref().is_some_and(|s| s.tag == "second"), "{cut:?}");
    assert_eq!(ulaw.cut, pcm.cut);
    assert_eq!(ulaw.queued_ms, pcm.queued_ms);
    assert_eq!(ulaw.events, pcm.events);
    assert!(ulaw.sent == pcm.sent, "the carrier gets the same messages at the same times");
}

/// The same µ-law call on a worker thread: with this binary's allocator, a step that allocated
/// would abort the run.
#[test]
fn a_mulaw_call_on_a_worker_passes_through_without_allocating() {
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap();
    let mut s = engine.open_session(&config(AgentFormat::Mulaw)).unwrap();
    s.push_text(&start()).unwrap();
    let codes = all_codes(50 * FRAME);
    let mut played = 0;
    let mut got = vec![];
    let mut sent = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 0;
    while (got.len() < codes.len() || sent.len() < codes.len()) && Instant::now() < deadline {
        if next < 50 {
            let frame = &codes[next * FRAME..][..FRAME];
            if s.push_text(&media(next as u64 + 2, next as u64 + 1, next as u64 * 20, frame)).is_ok() {
                next += 1;
            }
        }
        if played < codes.len() {
            played += s.play_bytes(&codes[played..], 8_000).unwrap_or(0);
        }
        if next == 10 {
            s.mark("m").unwrap_or(());
        }
        got.extend(read_bytes(&mut s));
        sent.extend(payloads(&outbound(&mut s)));
        while s.poll_event().is_some() {}
        engine.wait(Some(Duration::from_millis(5)));
    }
    assert!(got == codes, "caller codes bit-exact through a worker");
    assert!(sent[..codes.len()] == codes[..], "agent codes bit-exact through a worker");
}
