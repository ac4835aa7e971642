//! A whole session pipeline (the code a worker runs) fed an arbitrary sequence of carrier
//! messages (well-formed, out of order, duplicated, jumping, malformed, binary), host calls (play
//! at any rate and size, marks, interrupts), clock steps and a host that stops taking outbound
//! messages, on an arbitrary configuration. After every step the engine's invariants are checked:
//!
//! - caller PCM delivered to the agent matches delivered stream time exactly:
//!   `agent samples == floor(inbound_samples × agent_rate / stream_rate)` and
//!   `stream_ms == inbound / (stream_rate / 1000)`;
//! - events come in a legal order: one `Started` before any stream event, speech starts and stops
//!   alternate with non-decreasing stream times no later than the delivered stream, DTMF times
//!   never go back, barge-in generations count up by one, every host mark is resolved at most
//!   once, nothing but errors, cleared marks and interrupt reports after `Stopped`;
//! - counters agree with what the sink saw (messages, protocol errors, speech segments,
//!   barge-ins, interrupts, DTMF, marks played/cleared/sent, frames and clears sent, agent samples);
//! - every outbound media frame carries exactly 20 ms, and nothing is written without room.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;
use std::collections::{HashSet, VecDeque};
use std::sync::OnceLock;
use trunkline::codec::mulaw::{linear_to_ulaw, ulaw_to_linear};
use trunkline::config::{BargeInConfig, SessionConfig};
use trunkline::event::RawEvent;
use trunkline::pipeline::AGENT_RATES;
use trunkline::pipeline::SessionPipeline;
use trunkline::pipeline::{PLAY_PIECE, PLAY_RATES};
use trunkline::protocol::{MessageKind, TwilioDialect};
use trunkline::vad::{VadBackend, VadConfig};

#[derive(Arbitrary, Debug)]
struct Config {
    agent_rate: u8,
    play_rate: u8,
    reorder_window_ms: u8,
    max_gap_fill_ms: u16,
    lead_ms: u8,
    sync_mark_interval_ms: u16,
    utterance_gap_ms: u16,
    barge_in: bool,
    barge_in_min_ms: u16,
    max_payload_bytes: u16,
    max_message_bytes: u16,
    webrtc: bool,
    aggressiveness: u8,
    min_speech_ms: u8,
    hangover_ms: u16,
    /// Bit 0: echo-aware; bit 1: echo reduction too (refused without the first).
    echo: u8,
}

#[derive(Arbitrary, Debug)]
enum Seq {
    Next,
    Absent,
    Repeat,
    Back(u8),
    Jump(u32),
}

#[derive(Arbitrary, Debug)]
enum Time {
    /// Where the stream continues.
    Next,
    /// Off by this many ms (negative: overlap or late).
    Offset(i16),
    /// Hours away, or a raw value.
    Absolute(u64),
}

#[derive(Arbitrary, Debug)]
enum Sound {
    Silence,
    /// A loud tone (the VAD may call it speech): period in samples.
    Tone(u8),
    Bytes(Vec<u8>),
    /// The carrier's echo of what the engine sent: the media frames sent from `back` frames
    /// before the newest on (µ-law, as sent; silence past the newest), `attenuation` dB down
    /// (modulo 40), so that an echo-aware session's gate, delay estimator and echo match run on
    /// audio that correlates with its reference, as on a line that echoes.
    Echo {
        back: u8,
        attenuation: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connected,
    Start {
        encoding: u8,
        rate_8k: bool,
    },
    Media {
        seq: Seq,
        time: Time,
        len: u16,
        sound: Sound,
        outbound_track: bool,
        unpadded: bool,
    },
    Dtmf(u8),
    /// The carrier echoes the oldest mark it was sent (host or hidden sync mark).
    EchoMark,
    /// A mark echo with any name.
    BogusMark(String),
    Stop,
    Raw {
        bytes: Vec<u8>,
        binary: bool,
    },
    Advance(u16),
    /// Agent audio: `value` throughout, or with `period` set a pulse every `period` samples
    /// fading from `value` to a quarter of it (a voiced syllable, with harmonics in every band
    /// the echo gate compares).
    Play {
        samples: u16,
        rate: u8,
        value: i16,
        period: u8,
    },
    Mark(String),
    Interrupt,
    /// The host stops (false) or resumes (true) taking outbound messages.
    TakeOutbound(bool),
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Config,
    ops: Vec<Op>,
}

/// Records everything and checks what can be checked as it happens.
#[derive(Default)]
struct Sink {
    room: bool,
    agent_samples: u64,
    events: Vec<RawEvent>,
    frames: u64,
    clears: u64,
    host_marks_sent: u64,
    sync_marks_sent: u64,
    /// Mark names sent to the carrier, not echoed yet (what a carrier would echo).
    unechoed: Vec<String>,
    /// The last [`SENT_KEPT`] media payloads sent, newest last (what [`Sound::Echo`] plays back).
    sent: VecDeque<Vec<u8>>,
}

/// Media frames the sink keeps for [`Sound::Echo`].
const SENT_KEPT: usize = 40;

impl Sink {
    /// Takes the events, and the messages due while the host takes them (as the runtime does
    /// after every call).
    fn drain(&mut self, p: &mut SessionPipeline, now_us: u64) {
        while let Some(event) = p.poll_event() {
            self.events.push(event);
        }
        while self.room {
            let Some((kind, message)) = p.poll_transmit(now_us) else { break };
            let message = message.to_vec();
            self.outbound(kind, &message);
        }
    }

    fn outbound(&mut self, kind: MessageKind, message: &[u8]) {
        assert_eq!(kind, MessageKind::Text);
        let v: serde_json::Value = serde_json::from_slice(message).expect("outbound is JSON");
        match v["event"].as_str() {
            Some("media") => {
                let payload = STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                assert_eq!(payload.len(), 160, "every frame is 20 ms");
                self.frames += 1;
                if self.sent.len() == SENT_KEPT {
                    self.sent.pop_front();
                }
                self.sent.push_back(payload);
            }
            Some("mark") => {
                let name = v["mark"]["name"].as_str().unwrap().to_owned();
                if name.starts_with("trunkline-sync-") {
                    self.sync_marks_sent += 1;
                } else {
                    self.host_marks_sent += 1;
                }
                self.unechoed.push(name);
            }
            Some("clear") => {
                self.clears += 1;
                // A carrier echoes every pending mark at once on clear.
            }
            other => panic!("unexpected outbound {other:?}"),
        }
    }
}

/// The event-order checker.
#[derive(Default)]
struct Order {
    started: bool,
    stopped: bool,
    speaking: bool,
    last_speech_ms: u64,
    last_dtmf_ms: u64,
    barge_generation: u32,
    resolved_marks: HashSet<u32>,
    counts: Counts,
}

#[derive(Default, Debug, PartialEq)]
struct Counts {
    protocol_errors: u64,
    speech_segments: u64,
    barge_ins: u64,
    interrupts: u64,
    dtmf: u64,
    marks_played: u64,
    marks_cleared: u64,
}

impl Order {
    fn check(&mut self, event: &RawEvent, stream_ms: u64, issued_marks: u32) {
        if self.stopped {
            assert!(
                matches!(
                    event,
                    RawEvent::ProtocolError { .. }
                        | RawEvent::MarkCleared { .. }
                        | RawEvent::Interrupted { .. }
                ),
                "{event:?} after Stopped"
            );
        }
        match *event {
            RawEvent::Connected => {}
            RawEvent::Started(_) => {
                assert!(!self.started, "a second Started");
                self.started = true;
            }
            RawEvent::SpeechStarted { stream_ms: at } => {
                assert!(self.started && !self.speaking, "SpeechStarted out of order");
                assert!(
                    at >= self.last_speech_ms && at <= stream_ms,
                    "onset {at} (last {}, stream {stream_ms})",
                    self.last_speech_ms
                );
                self.speaking = true;
                self.last_speech_ms = at;
                self.counts.speech_segments += 1;
            }
            RawEvent::SpeechStopped { stream_ms: at } => {
                assert!(self.speaking, "SpeechStopped without SpeechStarted");
                assert!(
                    at >= self.last_speech_ms && at <= stream_ms,
                    "end {at} (last {}, stream {stream_ms})",
                    self.last_speech_ms
                );
                self.speaking = false;
                self.last_speech_ms = at;
            }
            RawEvent::BargeIn { stream_ms: at, generation, .. } => {
                assert!(self.started && at <= stream_ms);
                assert_eq!(generation, self.barge_generation.wrapping_add(1));
                self.barge_generation = generation;
                self.counts.barge_ins += 1;
            }
            RawEvent::Interrupted { .. } => self.counts.interrupts += 1,
            RawEvent::MarkPlayed { id, .. } | RawEvent::MarkCleared { id } => {
                assert!(id >= 1 && id <= issued_marks, "mark {id} was never issued");
                assert!(self.resolved_marks.insert(id), "mark {id} resolved twice");
                if matches!(event, RawEvent::MarkPlayed { .. }) {
                    self.counts.marks_played += 1;
                } else {
                    self.counts.marks_cleared += 1;
                }
            }
            RawEvent::Dtmf { stream_ms: at, .. } => {
                assert!(self.started && at >= self.last_dtmf_ms && at <= stream_ms);
                self.last_dtmf_ms = at;
                self.counts.dtmf += 1;
            }
            RawEvent::Stopped => {
                // (A `stop` before `start` ends the stream too.)
                assert!(!self.stopped && !self.speaking, "Stopped out of order");
                self.stopped = true;
            }
            RawEvent::ProtocolError { .. } => self.counts.protocol_errors += 1,
            RawEvent::EndOfTurn { stream_ms: at, confidence, .. } => {
                // Decided during the pause's hangover: while speaking, never after its end.
                assert!(self.speaking, "EndOfTurn outside speech");
                assert!(at >= self.last_speech_ms && at <= stream_ms && confidence <= 100);
            }
        }
    }
}

fn config(c: &Config) -> SessionConfig {
    SessionConfig {
        agent_rate: AGENT_RATES[usize::from(c.agent_rate) % AGENT_RATES.len()],
        play_rate: PLAY_RATES[usize::from(c.play_rate) % PLAY_RATES.len()],
        reorder_window_ms: u32::from(c.reorder_window_ms),
        max_gap_fill_ms: u32::from(c.max_gap_fill_ms),
        lead_ms: 40 + u32::from(c.lead_ms),
        sync_mark_interval_ms: u32::from(c.sync_mark_interval_ms % 2000),
        utterance_gap_ms: u32::from(c.utterance_gap_ms),
        barge_in: BargeInConfig {
            enabled: c.barge_in,
            min_speech_ms: u32::from(c.barge_in_min_ms % 2000),
            ..BargeInConfig::default()
        },
        max_payload_bytes: 1 + usize::from(c.max_payload_bytes % 4096),
        max_message_bytes: 64 + usize::from(c.max_message_bytes),
        vad: VadConfig {
            backend: if c.webrtc { VadBackend::WebRtc } else { VadBackend::Spectral },
            aggressiveness: c.aggressiveness % 4,
            min_speech_ms: u32::from(c.min_speech_ms) * 4,
            hangover_ms: u32::from(c.hangover_ms % 2000),
            end_of_turn_enabled: c.webrtc,
            echo_aware: c.echo & 1 != 0,
            ..VadConfig::default()
        },
        echo_reduction: c.echo & 2 != 0,
        outbound_buffer_ms: 1000,
        ..Default::default()
    }
}

const ENCODINGS: [&str; 4] = ["audio/x-mulaw", "audio/x-alaw", "audio/x-l16", "audio/x-opus"];

fn sound(s: &Sound, len: usize, sent: &VecDeque<Vec<u8>>) -> Vec<u8> {
    match s {
        Sound::Echo { back, attenuation } => {
            let Some(first) = sent.len().checked_sub(1 + usize::from(*back)) else {
                return vec![0xFF; len];
            };
            let gain = 10f32.powf(-f32::from(attenuation % 40) / 20.0);
            let echo = |&code: &u8| linear_to_ulaw((f32::from(ulaw_to_linear(code)) * gain) as i16);
            let played = sent.range(first..).flatten().map(echo);
            played.chain(std::iter::repeat(0xFF)).take(len).collect()
        }
        Sound::Silence => vec![0xFF; len],
        Sound::Tone(period) => {
            let p = usize::from(*period).max(4);
            (0..len).map(|i| if (i % p) < p / 2 { 0x10 } else { 0x90 }).collect()
        }
        Sound::Bytes(b) if b.is_empty() => vec![0xFF; len],
        Sound::Bytes(b) => b.iter().copied().cycle().take(len).collect(),
    }
}

fn tick(p: &mut SessionPipeline, sink: &mut Sink, now_us: u64) {
    let mut agent_samples = 0;
    p.handle_timeout(now_us, true, &mut |pcm| agent_samples += pcm.len() as u64);
    sink.agent_samples += agent_samples;
}

/// Whether each run ends by printing the counters a seed is checked by (`fuzz/make_seeds.py
/// --check` sets `TRUNKLINE_FUZZ_REPORT`).
static REPORT: OnceLock<bool> = OnceLock::new();

fn run(input: Input) {
    let cfg = config(&input.config);
    let Ok(mut p) = SessionPipeline::new(&cfg, Box::new(TwilioDialect::new())) else {
        return;
    };
    let mut sink = Sink { room: true, ..Default::default() };
    let mut order = Order::default();
    let mut now_us = 1_000_000u64;
    let mut messages = 0u64;
    let mut seq = 1u64;
    let mut next_ts_ms = 0u64;
    let mut issued_marks = 0u32;
    let mut seen_events = 0;
    // The rate of the caller's audio, as the stream's start announced it.
    let mut stream_rate = 8000u64;

    for op in input.ops.iter().take(400) {
        let mut message = |p: &mut SessionPipeline, sink: &mut Sink, bytes: &[u8], kind: MessageKind| {
            messages += 1;
            let mut agent_samples = 0;
            p.handle_message(bytes, kind, now_us, now_us, &mut |pcm| agent_samples += pcm.len() as u64);
            sink.agent_samples += agent_samples;
        };
        match op {
            Op::Connected => message(
                &mut p,
                &mut sink,
                br#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
                MessageKind::Text,
            ),
            Op::Start { encoding, rate_8k } => {
                let enc = ENCODINGS[usize::from(*encoding) % ENCODINGS.len()];
                let rate = if *rate_8k { 8000 } else { 16000 };
                let m = format!(
                    r#"{{"event":"start","sequenceNumber":"{seq}","streamSid":"MZ1","start":{{"streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{{"encoding":"{enc}","sampleRate":{rate},"channels":1}}}}}}"#
                );
                seq += 1;
                message(&mut p, &mut sink, m.as_bytes(), MessageKind::Text);
            }
            Op::Media { seq: s, time, len, sound: snd, outbound_track, unpadded } => {
                let n = match s {
                    Seq::Next => {
                        seq += 1;
                        Some(seq - 1)
                    }
                    Seq::Absent => None,
                    Seq::Repeat => Some(seq.saturating_sub(1)),
                    Seq::Back(b) => Some(seq.saturating_sub(u64::from(*b))),
                    Seq::Jump(j) => {
                        seq += u64::from(*j);
                        Some(seq)
                    }
                };
                let ts = match time {
                    Time::Next => next_ts_ms,
                    Time::Offset(o) => next_ts_ms.saturating_add_signed(i64::from(*o)),
                    Time::Absolute(t) => *t,
                };
                let len = usize::from(*len % 2400);
                next_ts_ms = ts.saturating_add(len as u64 / 8);
                let payload = sound(snd, len, &sink.sent);
                let b64 = if *unpadded {
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(&payload)
                } else {
                    STANDARD.encode(&payload)
                };
                let seq_field = n.map(|n| format!(r#""sequenceNumber":"{n}","#)).unwrap_or_default();
                let track = if *outbound_track { "outbound" } else { "inbound" };
                let m = format!(
                    r#"{{"event":"media",{seq_field}"streamSid":"MZ1","media":{{"track":"{track}","chunk":"1","timestamp":"{ts}","payload":"{b64}"}}}}"#
                );
                message(&mut p, &mut sink, m.as_bytes(), MessageKind::Text);
            }
            Op::Dtmf(d) => {
                let digit = char::from(b"0123456789*#ABCDE"[usize::from(*d) % 17]);
                let m = format!(
                    r#"{{"event":"dtmf","streamSid":"MZ1","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
                );
                message(&mut p, &mut sink, m.as_bytes(), MessageKind::Text);
            }
            Op::EchoMark => {
                if !sink.unechoed.is_empty() {
                    let name = sink.unechoed.remove(0);
                    let m = serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":name}})
                        .to_string();
                    message(&mut p, &mut sink, m.as_bytes(), MessageKind::Text);
                }
            }
            Op::BogusMark(name) => {
                let m =
                    serde_json::json!({"event":"mark","streamSid":"MZ1","mark":{"name":name}}).to_string();
                message(&mut p, &mut sink, m.as_bytes(), MessageKind::Text);
            }
            Op::Stop => message(
                &mut p,
                &mut sink,
                br#"{"event":"stop","streamSid":"MZ1","stop":{}}"#,
                MessageKind::Text,
            ),
            Op::Raw { bytes, binary } => {
                let kind = if *binary { MessageKind::Binary } else { MessageKind::Text };
                message(&mut p, &mut sink, bytes, kind);
            }
            Op::Advance(ms) => {
                now_us += u64::from(*ms) * 100;
                tick(&mut p, &mut sink, now_us);
            }
            Op::Play { samples, rate, value, period } => {
                let rate = PLAY_RATES[usize::from(*rate) % PLAY_RATES.len()];
                let n = usize::from(*samples) % (PLAY_PIECE + 1);
                // A pulse train fades to a quarter over the piece, as a syllable does: its level
                // differs from frame to frame, which is what tells the echo's lag from others.
                let fade = |i: usize| (i32::from(*value) * (4 * n - 3 * i) as i32 / (4 * n) as i32) as i16;
                let pulse = |i: usize| match *period {
                    0 => *value,
                    p if i.is_multiple_of(usize::from(p)) => fade(i),
                    _ => 0,
                };
                let pcm: Vec<i16> = (0..n).map(pulse).collect();
                let _ = p.play(&pcm, rate);
            }
            Op::Mark(name) => {
                issued_marks += 1;
                p.mark(issued_marks, name.as_bytes());
            }
            Op::Interrupt => p.interrupt(now_us),
            Op::TakeOutbound(take) => {
                sink.room = *take;
                tick(&mut p, &mut sink, now_us);
            }
        }
        sink.drain(&mut p, now_us);
        // A clear at the carrier echoes every pending mark at once: the next EchoMark ops deliver
        // them (the order of `unechoed` is what was sent).

        let stats = p.counters();
        let stream_ms = p.stream_ms();
        for event in &sink.events[seen_events..] {
            order.check(event, stream_ms, issued_marks);
            if let RawEvent::Started(start) = event {
                stream_rate = u64::from(start.media_format.sample_rate);
            }
        }
        seen_events = sink.events.len();

        let rate = u64::from(cfg.agent_rate);
        assert_eq!(
            sink.agent_samples,
            stats.inbound_samples * rate / stream_rate,
            "agent PCM ≠ delivered stream time"
        );
        assert_eq!(
            stats.inbound_samples / (stream_rate / 1000),
            stream_ms,
            "inbound samples ≠ stream position"
        );
        assert_eq!(stats.agent_samples_out, 0, "the pipeline itself does not count ring writes");
        assert_eq!(stats.messages_in, messages);
        let counted = Counts {
            protocol_errors: stats.protocol_errors,
            speech_segments: stats.speech_segments,
            barge_ins: stats.barge_ins,
            interrupts: stats.interrupts,
            dtmf: stats.dtmf_digits,
            marks_played: stats.marks_played,
            marks_cleared: stats.marks_cleared,
        };
        assert_eq!(counted, order.counts, "counters disagree with the events");
        // A speech start held back for a suspected echo is reported, dropped as the echo, or
        // still held (one at a time); only an echo-aware session holds any.
        let (held, dropped) = (stats.speech_starts_held, stats.speech_starts_dropped_as_echo);
        assert!(
            dropped <= held && held - dropped <= stats.speech_segments + 1,
            "{held} held, {dropped} dropped"
        );
        assert!(cfg.vad.echo_aware || held == 0, "held without the echo gate");
        assert_eq!(stats.frames_out, sink.frames);
        assert_eq!(stats.clears_sent, sink.clears);
        assert_eq!(stats.marks_sent, sink.host_marks_sent);
        assert_eq!(stats.sync_marks_sent, sink.sync_marks_sent);
        assert!(stats.marks_played + stats.marks_cleared <= u64::from(issued_marks));
        assert!(stats.media_frames_in <= messages);
    }
    if *REPORT.get_or_init(|| std::env::var_os("TRUNKLINE_FUZZ_REPORT").is_some()) {
        let c = p.counters();
        eprintln!(
            "session counters: speech_starts_held={} speech_starts_dropped_as_echo={} speech_segments={} barge_ins={}",
            c.speech_starts_held, c.speech_starts_dropped_as_echo, c.speech_segments, c.barge_ins
        );
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        run(input);
    }
});
