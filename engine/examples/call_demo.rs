//! The end-to-end call demo: a caller talks over the agent's greeting, the agent stops, listens,
//! and answers; the engine does all the audio work on its worker thread.
//!
//! The carrier side is simulated in-process (a Twilio-like buffer that plays agent audio in real
//! time and echoes marks); the caller is the committed speech fixture. Run it with
//! `cargo run --release --example call_demo`. (The demo grows into a two-process WebSocket call
//! with the offload server and `callsim`.)

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, Event, SessionConfig};

const CALLER: &[u8] = include_bytes!("../tests/fixtures/speech_8k.ulaw");
const SID: &str = "MZdemo0000000000000000000000000000";

fn tone(rate: u32, seconds: f64, freq: f64) -> Vec<i16> {
    (0..(f64::from(rate) * seconds) as usize)
        .map(|i| (7000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let engine = Engine::new(EngineConfig { workers: Some(1), ..Default::default() })?;
    let mut call = engine.open_session(&SessionConfig::default())?;
    let t0 = Instant::now();
    let ms = |t: Instant| t.duration_since(t0).as_millis();
    println!("Trunkline call demo: caller = espeak-ng speech fixture, agent = synthetic speech tones\n");

    call.push_text(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#)?;
    call.push_text(&format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"{SID}","start":{{"accountSid":"ACdemo","streamSid":"{SID}","callSid":"CAdemo","tracks":["inbound"],"customParameters":{{"demo":"true"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    ))?;

    let greeting = tone(24_000, 4.0, 220.0);
    let mut greeting_left: &[i16] = &greeting;
    let mut greeting_marked = false;
    let mut answered = false;
    // The simulated carrier: when each buffered frame finishes playing, and pending mark echoes.
    let mut carrier_end = Instant::now();
    let mut marks: VecDeque<(Instant, String)> = VecDeque::new();
    let (mut frames_out, mut clears) = (0, 0);
    let mut agent_samples = 0usize;
    let mut pcm = vec![0i16; 4096];
    let mut out = Vec::new();
    let frames = (CALLER.len() / 160).min(300); // the first 6 s of the caller
    let mut next = 0;
    let mut stop_at = None;

    loop {
        let now = Instant::now();
        while next < frames && now >= t0 + Duration::from_millis(next as u64 * 20) {
            let payload = STANDARD.encode(&CALLER[next * 160..(next + 1) * 160]);
            call.push_text(&format!(
                r#"{{"event":"media","sequenceNumber":"{}","streamSid":"{SID}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}}}}"#,
                next + 2,
                next + 1,
                next * 20
            ))?;
            next += 1;
        }
        if !greeting_left.is_empty() {
            if let Ok(n) = call.play(greeting_left, 24_000) {
                greeting_left = &greeting_left[n..];
            }
        } else if !greeting_marked {
            call.mark("greeting")?;
            greeting_marked = true;
        }
        while call.next_outbound(&mut out).is_some() {
            let msg: serde_json::Value = serde_json::from_slice(&out)?;
            match msg["event"].as_str() {
                Some("media") => {
                    frames_out += 1;
                    carrier_end = carrier_end.max(now) + Duration::from_millis(20);
                }
                Some("mark") => {
                    marks.push_back((carrier_end, msg["mark"]["name"].as_str().unwrap_or("").to_owned()))
                }
                Some("clear") => {
                    clears += 1;
                    carrier_end = now;
                    for (_, name) in marks.drain(..) {
                        call.push_text(&format!(
                            r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"{name}"}}}}"#
                        ))?;
                    }
                }
                _ => {}
            }
        }
        while marks.front().is_some_and(|(due, _)| *due <= now) {
            let (_, name) = marks.pop_front().expect("checked");
            call.push_text(&format!(r#"{{"event":"mark","streamSid":"{SID}","mark":{{"name":"{name}"}}}}"#))?;
        }
        while let Some(ev) = call.poll_event() {
            let line = match &ev {
                Event::Started(s) => format!(
                    "call {} started (stream {}, params {:?})",
                    s.call_sid, s.stream_sid, s.custom_parameters
                ),
                Event::BargeIn { stream_ms, played_ms } => {
                    format!(
                        "BARGE-IN: caller spoke at {stream_ms} ms; they heard {played_ms} ms of the agent's utterance -> clear sent"
                    )
                }
                Event::SpeechStopped { stream_ms } if !answered => {
                    answered = true;
                    call.play(&tone(24_000, 0.5, 330.0), 24_000)?;
                    call.mark("answer")?;
                    format!("caller stopped at {stream_ms} ms -> agent answers (0.5 s)")
                }
                Event::MarkPlayed { name, played_ms } if name == "answer" => {
                    stop_at = Some(now + Duration::from_millis(200));
                    format!("mark '{name}' played at {played_ms} ms of the answer")
                }
                other => format!("{other:?}"),
            };
            println!("[{:>5} ms] {line}", ms(now));
        }
        loop {
            let n = call.read_audio(&mut pcm);
            if n == 0 {
                break;
            }
            agent_samples += n;
        }
        if stop_at.is_some_and(|t| now >= t) && next == frames || now > t0 + Duration::from_secs(15) {
            break;
        }
        engine.wait(Some(Duration::from_millis(2)));
    }
    call.push_text(&format!(r#"{{"event":"stop","sequenceNumber":"9999","streamSid":"{SID}","stop":{{"accountSid":"ACdemo","callSid":"CAdemo"}}}}"#))?;
    std::thread::sleep(Duration::from_millis(20));
    while let Some(ev) = call.poll_event() {
        println!("[{:>5} ms] {ev:?}", ms(Instant::now()));
    }
    loop {
        let n = call.read_audio(&mut pcm);
        if n == 0 {
            break;
        }
        agent_samples += n;
    }
    let stats = call.stats();
    println!(
        "\ncaller audio delivered to the agent: {agent_samples} samples at 16 kHz ({:.2} s); agent frames sent: {frames_out}; clears: {clears}",
        agent_samples as f64 / 16_000.0
    );
    println!("counters:");
    for (name, value) in stats.fields() {
        if value != 0 {
            println!("  {name:<28} {value}");
        }
    }
    Ok(())
}
