//! A simulated call through the engine's public API, frame by frame on a manual clock: an inline
//! [`Engine`] with a Twilio-dialect session, a host that plays scheduled agent prompts, a carrier
//! that plays what the engine actually sent (after its playout delay, in order, dropping what had
//! not played on a `clear`, echoing marks once the audio before them has played), and optionally
//! the echo of that played audio on the caller's line (see [`super::echo`]).
//!
//! Time is stream time in ms: caller frame `k` holds the caller's audio of `[20k, 20k + 20)` and
//! reaches the engine at `20k + 20`; events and outbound messages are stamped with the time of
//! the tick they were taken at.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use trunkline::codec::mulaw::{linear_to_ulaw, ulaw_to_linear};
use trunkline::protocol::ProtocolError;
use trunkline::runtime::ManualClock;
use trunkline::{Engine, EngineConfig, Event, SessionConfig, SessionStats};

use super::echo::{EchoLine, EchoPath};

/// One prompt the host plays: from stream time `at_ms`, as fast as the session takes it.
#[derive(Debug, Clone, Copy)]
pub struct Prompt {
    pub at_ms: u64,
    pub pcm: &'static [f32],
}

/// What the host does when the caller barges in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBargeIn {
    /// Drops the rest of the interrupted prompt; later prompts play as scheduled.
    NextPrompt,
    /// Plays nothing more (the bot listens to the caller).
    Stop,
}

/// The echo of the bot's voice on the caller's line.
#[derive(Debug, Clone, Copy)]
pub struct EchoSetup {
    pub path: EchoPath,
    /// Seeds the path's tail.
    pub seed: u64,
    /// Soft-clips the caller's line after the echo is added (a handset's overdriven input):
    /// [`soft_clip`].
    pub soft_clip: bool,
    /// Stream time (ms) from which the echo reaches the caller's line: 0 from the start, later
    /// for a path that opens mid-call (a caller switching to speakerphone).
    pub from_ms: u64,
}

/// A mild soft clip: unity gain for small signals, full scale pressed down to 0.76 (tanh).
pub fn soft_clip(v: f32) -> f32 {
    32_767.0 * (v / 32_767.0).tanh()
}

/// How the call's audio travels between the carrier and the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// Twilio's messages, 8 kHz µ-law both ways; the host plays its prompts at 8 kHz.
    Twilio,
    /// Telnyx's messages with L16 at 16 kHz both ways (`telnyx;codec=L16;rate=16000`, the
    /// session's dialect whatever the spec's config says): the caller's 8 kHz side is brought up
    /// to 16 kHz, and the host plays its prompts at 16 kHz with a band up to 8 kHz (each prompt
    /// interpolated linearly, which leaves the image of its band over 4 kHz, 10-20 dB down, as
    /// a wideband voice has), so the echo has highs an 8 kHz line never carries.
    TelnyxL16Wide,
}

impl Wire {
    /// Samples per ms on the wire.
    pub fn per_ms(self) -> usize {
        match self {
            Self::Twilio => super::PER_MS as usize,
            Self::TelnyxL16Wide => 2 * super::PER_MS as usize,
        }
    }
}

/// An 8 kHz signal at 16 kHz, each new sample halfway between its neighbours.
pub fn interpolate_2x(x: &[i16]) -> Vec<i16> {
    let mut out = Vec::with_capacity(2 * x.len());
    for (i, &v) in x.iter().enumerate() {
        let next = x.get(i + 1).copied().unwrap_or(0);
        out.push(v);
        out.push(((i32::from(v) + i32::from(next)) / 2) as i16);
    }
    out
}

/// One call: the caller's own side (line noise and whatever the caller says, 8 kHz telephone
/// audio, whole 20 ms frames), the host's prompts, the carrier and the echo.
#[derive(Debug, Clone)]
pub struct CallSpec<'a> {
    pub config: SessionConfig,
    pub caller: &'a [i16],
    pub prompts: Vec<Prompt>,
    pub after_barge_in: AfterBargeIn,
    /// The carrier's playout delay (its jitter buffer), ms.
    pub carrier_delay_ms: u64,
    pub echo: Option<EchoSetup>,
    /// After the caller's audio the host ends the stream (`Session::end_stream`); the events
    /// that follow are taken at the last frame's time.
    pub end_stream: bool,
    /// The caller's media from this ms to that never reaches the engine (an outage): the next
    /// frame's timestamp jumps, and past the session's `max_gap_fill_ms` the engine re-anchors
    /// the caller's timeline (reporting the jump) rather than fill it, so `received` lacks it.
    pub outage_ms: Option<(u64, u64)>,
    pub wire: Wire,
}

impl<'a> CallSpec<'a> {
    /// A call where the caller talks and the bot never does.
    pub fn listening(caller: &'a [i16]) -> Self {
        Self {
            config: SessionConfig { agent_rate: 8_000, ..SessionConfig::default() },
            caller,
            prompts: Vec::new(),
            after_barge_in: AfterBargeIn::Stop,
            carrier_delay_ms: 80,
            echo: None,
            end_stream: false,
            outage_ms: None,
            wire: Wire::Twilio,
        }
    }
}

/// What happened in a call.
#[derive(Debug, Clone, Default)]
pub struct CallTrace {
    /// Every event, with the time it was taken.
    pub events: Vec<(u64, Event)>,
    /// Every `media` frame the engine sent (decoded), with the time it left.
    pub sent: Vec<(u64, Vec<i16>)>,
    /// Times at which a `clear` left the engine.
    pub clears: Vec<u64>,
    /// The caller's audio as the engine delivered it to the host (`read_audio`).
    pub received: Vec<i16>,
    /// The echo added to the caller's line, per sample of the wire (before µ-law).
    pub echo: Vec<f32>,
    /// Samples per ms of `sent` and `echo`.
    pub per_ms: u64,
    /// The session's counters at the end of the call.
    pub stats: SessionStats,
    /// The caller's frames (index) at whose end the session held back a speech start it had
    /// just confirmed (`speech_starts_held` rose, `speech_segments` did not).
    pub held_frames: Vec<u64>,
}

impl CallTrace {
    /// Time of the first event `f` accepts, and what it returns.
    pub fn first<T>(&self, f: impl Fn(&Event) -> Option<T>) -> Option<(u64, T)> {
        self.events.iter().find_map(|(t, e)| f(e).map(|v| (*t, v)))
    }
    pub fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.count_from(0, f)
    }
    /// The events `f` accepts, taken at `from_ms` or later.
    pub fn count_from(&self, from_ms: u64, f: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(t, e)| *t >= from_ms && f(e)).count()
    }
    /// Checks that the caller's speech events tell one story: starts and stops alternate, and a
    /// barge-in comes inside a speech whose start was reported, with that speech's onset.
    pub fn speech_events_in_order(&self) -> Result<(), String> {
        let mut onset = None;
        for (at, e) in &self.events {
            match (e, onset) {
                (Event::SpeechStarted { stream_ms }, None) => onset = Some(*stream_ms),
                (Event::SpeechStopped { .. }, Some(_)) => onset = None,
                (Event::BargeIn { stream_ms, .. }, Some(o)) if *stream_ms == o => {}
                (Event::SpeechStarted { .. } | Event::SpeechStopped { .. } | Event::BargeIn { .. }, _) => {
                    return Err(format!("{e:?} at {at} ms with speech started at {onset:?}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
    /// Agent audio the engine sent, ms.
    pub fn bot_ms(&self) -> u64 {
        self.bot_ms_from(0)
    }
    /// Agent audio the engine sent at `from_ms` or later, ms.
    pub fn bot_ms_from(&self, from_ms: u64) -> u64 {
        self.sent.iter().filter(|(t, _)| *t >= from_ms).map(|(_, f)| f.len() as u64 / self.per_ms).sum()
    }
}

pub const STREAM_SID: &str = "MZ1";

/// The carrier: plays frames in order from `arrival + delay` (or when the previous one ends),
/// echoes marks once the audio before them has played, drops its buffer on `clear`.
struct Carrier {
    delay_ms: u64,
    /// When everything received so far has played, ms.
    play_end: u64,
    /// Marks to echo: (due, name).
    marks: Vec<(u64, String)>,
}

fn media_message(seq: u64, k: u64, ulaw: &[u8]) -> String {
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","streamSid":"{STREAM_SID}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
        k + 1,
        k * 20,
        STANDARD.encode(ulaw)
    )
}

fn mark_message(seq: u64, name: &str) -> String {
    serde_json::json!({"event": "mark", "sequenceNumber": seq.to_string(), "streamSid": STREAM_SID, "mark": {"name": name}})
        .to_string()
}

fn telnyx_start_message() -> String {
    serde_json::json!({"event": "start", "sequence_number": "1", "stream_id": STREAM_SID, "start": {
        "call_control_id": "v3:call", "media_format": {"encoding": "L16", "sample_rate": 16_000, "channels": 1}}})
    .to_string()
}

fn telnyx_media_message(seq: u64, k: u64, pcm: &[i16]) -> String {
    let be: Vec<u8> = pcm.iter().flat_map(|v| v.to_be_bytes()).collect();
    serde_json::json!({"event": "media", "sequence_number": seq.to_string(), "stream_id": STREAM_SID, "media": {
        "track": "inbound", "chunk": (k + 1).to_string(), "timestamp": (k * 20).to_string(),
        "payload": STANDARD.encode(be)}})
    .to_string()
}

fn telnyx_mark_message(seq: u64, name: &str) -> String {
    serde_json::json!({"event": "mark", "sequence_number": seq.to_string(), "stream_id": STREAM_SID, "mark": {"name": name}})
        .to_string()
}

/// Where the stream starts on the engine's clock (so no time is 0).
const T0_US: u64 = 1_000_000;

/// Runs `spec` to the end of the caller's audio.
pub fn run_call(spec: &CallSpec<'_>) -> CallTrace {
    assert_eq!(spec.caller.len() % 160, 0, "whole 20 ms frames");
    let wire = spec.wire;
    let per_ms = wire.per_ms();
    let clock = ManualClock::new();
    let engine =
        Engine::with_manual_clock(EngineConfig { workers: Some(0), ..Default::default() }, clock.clone())
            .expect("inline engine");
    let config = match wire {
        Wire::Twilio => spec.config.clone(),
        Wire::TelnyxL16Wide => {
            SessionConfig { dialect: "telnyx;codec=L16;rate=16000".into(), ..spec.config.clone() }
        }
    };
    let mut session = engine.open_session(&config).expect("session");
    clock.advance(Duration::from_micros(T0_US));
    let start = match wire {
        Wire::Twilio => super::start_message(),
        Wire::TelnyxL16Wide => telnyx_start_message(),
    };
    session.push_text(&start).expect("start");
    let (caller, play_rate) = match wire {
        Wire::Twilio => (spec.caller.to_vec(), 8_000),
        Wire::TelnyxL16Wide => {
            let mut up = trunkline::resample::StreamResampler::new(8_000, 16_000).expect("8 to 16 kHz");
            let mut wide = vec![0i16; up.max_output_len(spec.caller.len())];
            let n = up.process(spec.caller, &mut wide).expect("room for the resampler's bound");
            assert_eq!(n, 2 * spec.caller.len());
            wide.truncate(n);
            (wide, 16_000)
        }
    };
    let frame_len = 20 * per_ms;

    let mut echo = spec.echo.map(|e| EchoLine::at_rate(e.path, e.seed, per_ms));
    // The sample from which the path carries the echo to the caller's line.
    let echo_from = spec.echo.map_or(0, |e| e.from_ms * per_ms as u64);
    let mut carrier = Carrier { delay_ms: spec.carrier_delay_ms, play_end: 0, marks: Vec::new() };
    let prompts: Vec<Vec<i16>> = spec
        .prompts
        .iter()
        .map(|p| p.pcm.iter().map(|&v| (f64::from(v) * 32_767.0).round() as i16).collect())
        .map(|p: Vec<i16>| if wire == Wire::Twilio { p } else { interpolate_2x(&p) })
        .collect();
    // The prompt being played and how much of it the session took.
    let mut next_prompt = 0;
    let mut current: Option<(usize, usize)> = None;
    let mut stopped = false;
    let mut barged = false;

    let mut trace =
        CallTrace { echo: vec![0.0; caller.len()], per_ms: per_ms as u64, ..CallTrace::default() };
    let mut counted = session.stats();
    let mut seq = 2;
    let mut line_frame = vec![0i16; frame_len];
    let mut pcm = [0i16; 1024];
    let mut out = Vec::new();
    for (k, frame) in caller.chunks_exact(frame_len).enumerate() {
        let k = k as u64;
        let now = k * 20 + 20;
        clock.advance(Duration::from_micros(T0_US + now * 1_000 - clock.now_us()));

        // The carrier acknowledges the marks whose audio has played.
        let due: Vec<String> = {
            let (due, keep) = carrier.marks.drain(..).partition(|(t, _)| *t <= now);
            carrier.marks = keep;
            due.into_iter().map(|(_, n)| n).collect()
        };
        for name in due {
            let mark = match wire {
                Wire::Twilio => mark_message(seq, &name),
                Wire::TelnyxL16Wide => telnyx_mark_message(seq, &name),
            };
            session.push_text(&mark).expect("mark");
            seq += 1;
        }

        // The caller's frame: their side plus the echo of what the carrier played.
        for (i, (u, &s)) in line_frame.iter_mut().zip(frame).enumerate() {
            let n = k as usize * frame_len + i;
            let e = echo.as_mut().map_or(0.0, |line| line.at(n));
            let e = if (n as u64) < echo_from { 0.0 } else { e };
            trace.echo[n] = e;
            let mut v = f32::from(s) + e;
            if spec.echo.is_some_and(|e| e.soft_clip) {
                v = soft_clip(v);
            }
            *u = v.round().clamp(-32_768.0, 32_767.0) as i16;
        }
        let lost = spec.outage_ms.is_some_and(|(from, to)| (from..to).contains(&(k * 20)));
        if !lost {
            let media = match wire {
                Wire::Twilio => {
                    let ulaw: Vec<u8> = line_frame.iter().map(|&v| linear_to_ulaw(v)).collect();
                    media_message(seq, k, &ulaw)
                }
                Wire::TelnyxL16Wide => telnyx_media_message(seq, k, &line_frame),
            };
            session.push_text(&media).expect("media");
            seq += 1;
        }

        loop {
            let n = session.read_audio(&mut pcm);
            if n == 0 {
                break;
            }
            trace.received.extend_from_slice(&pcm[..n]);
        }
        while let Some(e) = session.poll_event() {
            let jump = matches!(e, Event::ProtocolError { error: ProtocolError::TimestampJump });
            assert!(
                !matches!(e, Event::ProtocolError { .. }) || (jump && spec.outage_ms.is_some()),
                "the carrier's messages are valid: {e:?}"
            );
            barged |= matches!(e, Event::BargeIn { .. });
            trace.events.push((now, e));
        }
        if std::mem::take(&mut barged) {
            current = None;
            stopped |= spec.after_barge_in == AfterBargeIn::Stop;
        }

        // The host plays the prompt that is due, as much as fits.
        if !stopped {
            if current.is_none() && next_prompt < prompts.len() && spec.prompts[next_prompt].at_ms <= now {
                current = Some((next_prompt, 0));
                next_prompt += 1;
            }
            if let Some((i, taken)) = current.as_mut() {
                let p = &prompts[*i];
                while *taken < p.len() {
                    match session.play(&p[*taken..], play_rate) {
                        Ok(n) if n > 0 => *taken += n,
                        _ => break,
                    }
                }
                if *taken == p.len() {
                    current = None;
                }
            }
        }

        // What the engine sends, the carrier plays.
        while session.next_outbound(&mut out).is_some() {
            let v: serde_json::Value = serde_json::from_slice(&out).expect("outbound JSON");
            match v["event"].as_str() {
                Some("media") => {
                    let bytes = STANDARD.decode(v["media"]["payload"].as_str().unwrap()).unwrap();
                    let pcm: Vec<i16> = match wire {
                        Wire::Twilio => bytes.iter().map(|&c| ulaw_to_linear(c)).collect(),
                        Wire::TelnyxL16Wide => {
                            bytes.chunks_exact(2).map(|b| i16::from_be_bytes([b[0], b[1]])).collect()
                        }
                    };
                    let at = carrier.play_end.max(now + carrier.delay_ms);
                    carrier.play_end = at + (pcm.len() / per_ms) as u64;
                    if let Some(line) = echo.as_mut() {
                        line.play(at as usize * per_ms, &pcm);
                    }
                    trace.sent.push((now, pcm));
                }
                Some("mark") => {
                    let name = v["mark"]["name"].as_str().unwrap().to_owned();
                    carrier.marks.push((carrier.play_end.max(now), name));
                }
                Some("clear") => {
                    trace.clears.push(now);
                    if let Some(line) = echo.as_mut() {
                        line.clear(now as usize * per_ms);
                    }
                    carrier.play_end = now;
                    carrier.marks.iter_mut().for_each(|(t, _)| *t = now);
                }
                other => panic!("unexpected outbound {other:?}"),
            }
        }
        while let Some(e) = session.poll_event() {
            assert!(!matches!(e, Event::ProtocolError { .. }), "the carrier's messages are valid: {e:?}");
            barged |= matches!(e, Event::BargeIn { .. });
            trace.events.push((now, e));
        }
        let stats = session.stats();
        if stats.speech_starts_held > counted.speech_starts_held
            && stats.speech_segments == counted.speech_segments
        {
            trace.held_frames.push(k);
        }
        counted = stats;
    }
    if spec.end_stream {
        session.end_stream().expect("end the stream");
        let end = spec.caller.len() as u64 / super::PER_MS;
        while let Some(e) = session.poll_event() {
            trace.events.push((end, e));
        }
    }
    trace.stats = session.stats();
    trace
}
