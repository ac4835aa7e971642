//! Test support: fixtures, Twilio message builders, and a simulated carrier.
#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub const STREAM_SID: &str = "MZ18ad3ab5a668481ce02b83e7395059f0";
pub const CALL_SID: &str = "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f";

pub fn fixture(name: &str) -> PathBuf {
    // The fixtures live with the engine; other crates' tests share this module by path.
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures").join(name)
}

/// The committed caller speech (8 kHz µ-law) and its ground-truth utterances (ms).
pub fn speech() -> (Vec<u8>, Vec<(u64, u64)>) {
    let audio = std::fs::read(fixture("speech_8k.ulaw")).expect("speech fixture");
    let labels = std::fs::read_to_string(fixture("speech_8k.labels"))
        .expect("labels")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace().map(|v| v.parse::<u64>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    (audio, labels)
}

/// G.711 µ-law decode written from the ITU-T formula, independent of the engine's table.
pub fn reference_ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = ((i32::from(mantissa) << 3) + 0x84) << exponent;
    let v = magnitude - 0x84;
    (if sign != 0 { -v } else { v }) as i16
}

pub fn connected() -> String {
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
}

pub fn start() -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"AC0123456789abcdef0123456789abcdef","streamSid":"{STREAM_SID}","callSid":"{CALL_SID}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"caller":"+15550100","lang":"en"}}}},"streamSid":"{STREAM_SID}"}}"#
    )
}

pub fn media(seq: u64, chunk: u64, timestamp_ms: u64, payload: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{timestamp_ms}","payload":"{}"}},"streamSid":"{STREAM_SID}"}}"#,
        STANDARD.encode(payload)
    )
}

pub fn dtmf(seq: u64, digit: char) -> String {
    format!(
        r#"{{"event":"dtmf","streamSid":"{STREAM_SID}","sequenceNumber":"{seq}","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
    )
}

pub fn mark_echo(seq: u64, name: &str) -> String {
    serde_json::json!({"event":"mark","sequenceNumber":seq.to_string(),"streamSid":STREAM_SID,"mark":{"name":name}})
        .to_string()
}

pub fn stop(seq: u64) -> String {
    format!(
        r#"{{"event":"stop","sequenceNumber":"{seq}","streamSid":"{STREAM_SID}","stop":{{"accountSid":"AC0123456789abcdef0123456789abcdef","callSid":"{CALL_SID}"}}}}"#
    )
}

/// An outbound message as the carrier sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    Media(Vec<u8>),
    Mark(String),
    Clear,
}

pub fn parse_outbound(bytes: &[u8]) -> Outbound {
    let v: serde_json::Value = serde_json::from_slice(bytes).expect("outbound is JSON");
    assert_eq!(v["streamSid"], STREAM_SID, "every outbound message names the stream");
    match v["event"].as_str().expect("event") {
        "media" => Outbound::Media(STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap()),
        "mark" => Outbound::Mark(v["mark"]["name"].as_str().unwrap().to_owned()),
        "clear" => Outbound::Clear,
        other => panic!("unexpected outbound event {other}"),
    }
}

/// A carrier that behaves like Twilio on what it receives: it buffers audio and plays it in
/// order on its own clock, starting `playout_delay` after a frame arrives (a carrier-side jitter
/// buffer), echoes each mark once the audio before it has played, and on `clear` drops its
/// buffer and echoes the pending marks at once.
pub struct CarrierSim {
    start: Instant,
    playout_delay: Duration,
    /// Time at which everything received so far has finished playing.
    play_end: Duration,
    /// Received-and-played audio of the current utterance, as (start, end) intervals.
    segments: VecDeque<(Duration, Duration)>,
    pending_marks: VecDeque<(Duration, String)>,
    pub frames: Vec<(Duration, Vec<u8>)>,
    pub clears: Vec<Duration>,
    /// Audio (ms) of the current utterance heard when each clear landed.
    pub heard_at_clear: Vec<f64>,
}

impl CarrierSim {
    pub fn new(start: Instant, playout_delay: Duration) -> Self {
        Self {
            start,
            playout_delay,
            play_end: Duration::ZERO,
            segments: VecDeque::new(),
            pending_marks: VecDeque::new(),
            frames: vec![],
            clears: vec![],
            heard_at_clear: vec![],
        }
    }

    pub fn now(&self) -> Duration {
        self.start.elapsed()
    }

    fn heard_ms(&self, now: Duration) -> f64 {
        self.segments
            .iter()
            .map(|&(s, e)| if now <= s { 0.0 } else { (now.min(e) - s).as_secs_f64() * 1000.0 })
            .sum()
    }

    /// Takes one outbound message; returns echoes to send back now.
    pub fn receive(&mut self, message: Outbound) -> Vec<String> {
        let now = self.now();
        match message {
            Outbound::Media(payload) => {
                assert_eq!(payload.len(), 160, "every frame is exactly 20 ms");
                let begin = self.play_end.max(now + self.playout_delay);
                if self.play_end <= now {
                    // The carrier went idle: a new utterance.
                    self.segments.clear();
                }
                self.play_end = begin + Duration::from_millis(20);
                self.segments.push_back((begin, self.play_end));
                self.frames.push((now, payload));
                vec![]
            }
            Outbound::Mark(name) => {
                self.pending_marks.push_back((self.play_end.max(now), name));
                vec![]
            }
            Outbound::Clear => {
                self.heard_at_clear.push(self.heard_ms(now));
                self.clears.push(now);
                self.segments.clear();
                self.play_end = now;
                self.pending_marks.drain(..).map(|(_, n)| n).collect()
            }
        }
    }

    /// Marks whose audio has finished playing by now.
    pub fn due_echoes(&mut self) -> Vec<String> {
        let now = self.now();
        let mut out = vec![];
        while let Some((due, _)) = self.pending_marks.front() {
            if *due > now {
                break;
            }
            out.push(self.pending_marks.pop_front().unwrap().1);
        }
        out
    }
}

/// RMS of each 20 ms window.
pub fn window_rms(pcm: &[i16], window: usize) -> Vec<f64> {
    pcm.chunks_exact(window)
        .map(|w| (w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / window as f64).sqrt())
        .collect()
}

/// Pearson correlation.
pub fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}
