//! callsim playing each carrier against Trunkline: the offload server with one route per
//! WebSocket dialect (each with the carrier's authentication) and its AudioSocket TCP listener.
//! Behind them, one small bot: it reads the caller's audio,
//! replies to each end of speech with a tone in 100 ms pieces, each followed by a mark, and stops
//! on barge-in.
//!
//! Per carrier: the caller's audio reaches the bot sample for sample (checked against an
//! independent µ-law decode of the script's audio), the caller's interruption produces a clear,
//! the engine's `BargeIn.played_ms` agrees with what callsim played, marks are acknowledged as
//! that carrier does (and the engine reports played exactly the marks callsim echoed as played),
//! Trunkline breaks none of the carrier's framing rules, and a wrong or missing secret is refused
//! with 403. The calls run concurrently, a few seconds each.

use crate::common::{reference_ulaw_decode, speech};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trunkline::protocol::StreamStart;
use trunkline::{Engine, EngineConfig, Event, Session, SessionConfig};
use trunkline_callsim::{
    self as callsim, CallError, CallEvent, CallOptions, CallResult, CallerAudio, Dialect, Script,
    SpeechSegment,
};
use trunkline_server::{AudioSocketListener, OffloadConfig, OffloadServer, Route};

/// The WebSocket carriers, with the secret each route checks.
const WEBSOCKET: [(Dialect, &str); 7] = [
    (Dialect::Twilio, "twilio-auth-token"),
    (Dialect::Telnyx, "telnyx-stream-token"),
    (Dialect::Plivo, "plivo-auth-token"),
    (Dialect::Vonage, "vonage-bearer"),
    (Dialect::Exotel, "exotel-key:exotel-token"),
    (Dialect::SignalWire, "signalwire-bearer"),
    (Dialect::Jambonz, "jambonz-user:jambonz-pass"),
];

/// The AudioSocket call's UUID, on the server's allow-list.
const AUDIOSOCKET_UUID: &str = "40325ec2-5efd-4bd3-805f-53576e581d13";

/// Samples of each reply piece (100 ms at 8 kHz), each followed by a mark.
const PIECE: usize = 800;
/// The engine's lead: enough that some of the bot's marks sit at the carrier when it clears.
const LEAD_MS: u32 = 300;

fn caller() -> CallerAudio {
    let (audio, labels) = speech();
    CallerAudio::from_ulaw(audio)
        .with_speech(labels.into_iter().map(|(s, e)| SpeechSegment { start_ms: s, end_ms: e }))
}

fn tone_8k(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| (6000.0 * (i as f64 * 2.0 * std::f64::consts::PI * 440.0 / 8000.0).sin()) as i16)
        .collect()
}

fn session_config(dialect: &str) -> SessionConfig {
    SessionConfig {
        dialect: dialect.into(),
        agent_rate: 8_000,
        play_rate: 8_000,
        lead_ms: LEAD_MS,
        ..Default::default()
    }
}

/// What the bot saw of one call.
#[derive(Default, Clone)]
struct Record {
    start: Option<StreamStart>,
    audio: Vec<i16>,
    events: Vec<(Instant, Event)>,
    stopped: bool,
}

struct BotCall {
    session: Session,
    record: usize,
    reply: Vec<i16>,
    offset: usize,
    replies: u32,
}

impl BotCall {
    fn serve(&mut self, record: &mut Record) {
        while let Some(ev) = self.session.poll_event() {
            match &ev {
                Event::SpeechStopped { .. } => {
                    self.offset = 0;
                    self.replies += 1;
                }
                Event::BargeIn { .. } => self.offset = self.reply.len(),
                Event::Stopped => record.stopped = true,
                _ => {}
            }
            record.events.push((Instant::now(), ev));
        }
        // The reply in pieces, each followed by a mark once the engine took all of it.
        while self.offset < self.reply.len() {
            let end = ((self.offset / PIECE + 1) * PIECE).min(self.reply.len());
            match self.session.play(&self.reply[self.offset..end], 8_000) {
                Ok(n) if n > 0 => {
                    self.offset += n;
                    if self.offset == end {
                        let _ = self.session.mark(&format!("r{}-{}", self.replies, end / PIECE));
                    }
                }
                _ => break,
            }
        }
        let mut pcm = [0i16; 1024];
        loop {
            let n = self.session.read_audio(&mut pcm);
            if n == 0 {
                break;
            }
            record.audio.extend_from_slice(&pcm[..n]);
        }
    }
}

/// The bot behind both front ends.
struct Bot {
    engine: Arc<Engine>,
    server: Arc<OffloadServer>,
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    audiosocket_addr: std::net::SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Bot {
    fn start(reply_ms: usize) -> Self {
        let engine = Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap());
        let routes = WEBSOCKET
            .iter()
            .map(|(d, secret)| Route {
                path: format!("/{d}"),
                dialect: d.name().into(),
                auth_token: Some((*secret).into()),
                ..Default::default()
            })
            .collect();
        let config = OffloadConfig { routes, session: session_config("twilio"), ..Default::default() };
        let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
        let audiosocket_addr = server
            .listen_audiosocket(AudioSocketListener {
                bind: ([127, 0, 0, 1], 0).into(),
                allowed_calls: vec![AUDIOSOCKET_UUID.into()],
            })
            .unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = vec![];
        let (eng, srv, rec, st) = (engine.clone(), server.clone(), records.clone(), stop.clone());
        let reply = tone_8k(reply_ms);
        threads.push(std::thread::spawn(move || {
            let mut calls: Vec<BotCall> = vec![];
            while !st.load(Ordering::Acquire) {
                eng.wait(Some(Duration::from_millis(2)));
                let mut records = rec.lock().unwrap();
                while let Some(call) = srv.accept() {
                    records.push(Record { start: Some((*call.start).clone()), ..Default::default() });
                    let (session, record) = (call.session, records.len() - 1);
                    calls.push(BotCall {
                        session,
                        record,
                        reply: reply.clone(),
                        offset: reply.len(),
                        replies: 0,
                    });
                }
                for call in &mut calls {
                    call.serve(&mut records[call.record]);
                }
            }
        }));
        Self { engine, server, records, stop, audiosocket_addr, threads }
    }

    fn url(&self, dialect: Dialect) -> String {
        if dialect.is_tcp() {
            format!("tcp://{}", self.audiosocket_addr)
        } else {
            format!("ws://{}/{dialect}", self.server.local_addr())
        }
    }

    /// The bot's record of the call callsim made, once its stream stopped.
    fn record_of(&self, r: &CallResult) -> Record {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let found = self.records.lock().unwrap().iter().find_map(|rec| {
                let start = rec.start.as_ref()?;
                (start.call_id.contains(&r.call_sid) && rec.stopped).then(|| rec.clone())
            });
            if let Some(rec) = found {
                return rec;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the bot never saw the call {} stop",
                r.dialect,
                r.call_sid
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.engine.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The caller asks (its first utterance, 1000-3421 ms), waits for the reply, talks over it 500 ms
/// in with its second utterance, then stays on the line briefly.
fn script() -> (Script, CallerAudio, CallerAudio) {
    let caller = caller();
    let ask = caller.slice_ms(0, 3_600);
    let interruption = caller.utterance(1, 300).unwrap();
    let script = Script::new()
        .say(ask.clone())
        .wait_for_reply(Duration::from_secs(3))
        .interrupt(Duration::from_millis(500), interruption.clone())
        .silence(Duration::from_millis(600));
    (script, ask, interruption)
}

fn decode(ulaw: &[u8]) -> Vec<i16> {
    ulaw.iter().map(|&c| reference_ulaw_decode(c)).collect()
}

/// The bot's caller audio is the question, silence, the interruption (starting on a 20 ms frame),
/// silence: exactly, sample for sample.
fn check_caller_audio(heard: &[i16], ask: &CallerAudio, interruption: &CallerAudio) -> Result<(), String> {
    let ask = decode(ask.ulaw());
    let cut = decode(interruption.ulaw());
    if heard.len() < ask.len() + cut.len() {
        return Err(format!("the bot read {} samples, fewer than were spoken", heard.len()));
    }
    if heard[..ask.len()] != ask[..] {
        let at = heard.iter().zip(&ask).position(|(a, b)| a != b).unwrap_or(0);
        return Err(format!("the question differs from sample {at}"));
    }
    let Some(at) =
        (ask.len()..=heard.len() - cut.len()).step_by(160).find(|&at| heard[at..at + cut.len()] == cut[..])
    else {
        return Err("the interruption is not in the bot's audio, sample for sample".into());
    };
    let stray = heard[ask.len()..at].iter().chain(&heard[at + cut.len()..]).filter(|s| **s != 0).count();
    if stray > 0 {
        return Err(format!("{stray} non-silent samples outside the caller's speech"));
    }
    Ok(())
}

/// The engine's barge-in: how much of the reply it says was heard, and when the bot saw it.
fn engine_barge_in(record: &Record) -> Option<(u64, Instant)> {
    record.events.iter().find_map(|(at, e)| match e {
        Event::BargeIn { played_ms, .. } => Some((*played_ms, *at)),
        _ => None,
    })
}

/// The bot's own marks (`rN-k`) among the timeline events `pick` names.
fn names(r: &CallResult, pick: impl Fn(&CallEvent) -> Option<&String>) -> BTreeSet<String> {
    r.timeline.iter().filter_map(|e| pick(&e.event)).filter(|n| n.starts_with('r')).cloned().collect()
}

/// Everything one carrier's call must show; every problem found, not only the first.
fn check_call(
    dialect: Dialect,
    r: &CallResult,
    record: &Record,
    script: &(Script, CallerAudio, CallerAudio),
) -> Vec<String> {
    let timeline = callsim::format_timeline(r, None);
    let mut problems = vec![];
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{dialect}: {what}"));
        }
    };
    let m = &r.metrics;
    expect(r.ok(), format!("the call failed: {:?}", r.error));
    expect(m.bad_messages == 0, format!("{} bad messages from Trunkline", m.bad_messages));
    expect(m.framing_violations == 0, format!("{} framing violations by Trunkline", m.framing_violations));
    if let Err(e) = check_caller_audio(&record.audio, &script.1, &script.2) {
        expect(false, e);
    }
    expect(m.replies >= 1 && !m.response_ms.is_empty(), "no reply to the question".into());
    expect(m.barge_ins == 1, format!("{} barge-ins", m.barge_ins));

    let engine_played = engine_barge_in(record);
    expect(engine_played.is_some(), "no BargeIn event".into());
    // The carrier's truth: what of the reply the caller heard when it was cut, and when that was.
    let heard = if dialect.is_tcp() {
        // No clear: the bot stops sending and what the carrier holds (at most the pacer's 40 ms
        // lead) still plays; the reply ends when that runs out.
        r.timeline.iter().find_map(|e| match e.event {
            CallEvent::BotReplyEnded { played_ms, .. } => Some((played_ms, e.at)),
            _ => None,
        })
    } else {
        expect(m.clears >= 1 && m.barge_in_reaction_ms.len() == 1, format!("{} clears", m.clears));
        r.timeline.iter().find_map(|e| match e.event {
            CallEvent::ClearReceived { played_ms, .. } => played_ms.map(|p| (p, e.at)),
            _ => None,
        })
    };
    // When the cut reply stopped playing: at the clear, or earlier if the carrier's buffer had
    // run dry (the reply's end, logged with the clear; the timeline is in time order).
    let stopped = heard.and_then(|(_, clear)| {
        r.timeline
            .iter()
            .filter(|e| matches!(e.event, CallEvent::BotReplyEnded { .. }) && e.at <= clear)
            .map(|e| e.at)
            .next_back()
    });
    match (engine_played, heard) {
        (Some((engine, seen)), Some((heard, at))) => {
            // The engine's figure is for the moment it decided; the carrier plays on until the
            // clear reaches it. Both ends run in this process, on one clock: what played after
            // the bot saw the barge-in is the clear's transit (a millisecond or two, but tens
            // when the loaded test machine stalls the server), not the engine's error. The bot
            // sees the event after the engine decided, so this never takes off more than the
            // transit; and it ends where the reply stopped playing, if its audio ran out first.
            let transit = if dialect.is_tcp() {
                0.0
            } else {
                stopped.unwrap_or(at).min(at).saturating_duration_since(seen).as_secs_f64() * 1e3
            };
            // The engine counts the bot's audio; the carrier, its timeline, silence padded at
            // marks included.
            let audio = reply_audio_in(dialect, heard - transit);
            let diff = audio - engine as f64;
            println!(
                "{dialect}: played at barge-in: engine {engine} ms, carrier {heard:.1} ms \
                 ({transit:.1} ms after the bot saw it: {audio:.1} ms of the reply's audio); \
                 marks flushed {}",
                m.marks_cleared
            );
            let window = if dialect.is_tcp() { -20.0..=60.0 } else { -20.0..=20.0 };
            expect(
                window.contains(&diff),
                format!(
                    "the engine says {engine} ms played, the carrier {heard:.1} ms ({audio:.1} ms \
                     of the reply's audio), {transit:.1} ms after the bot saw the barge-in"
                ),
            );
        }
        _ => expect(false, format!("no played position to compare (carrier {heard:?})")),
    }

    // Marks: the engine reports played exactly those callsim acknowledged as played.
    let echoed_played = names(r, |e| match e {
        CallEvent::MarkEchoed { name, cleared: false } => Some(name),
        _ => None,
    });
    let engine_played: BTreeSet<String> = record
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::MarkPlayed { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    if !dialect.is_tcp() {
        expect(!echoed_played.is_empty(), "no mark played".into());
        // A mark whose audio ended within the played-position tolerance of the cut may be taken
        // either way: its echo and the clear cross on the wire.
        let clear_at = r.events(|e| matches!(e, CallEvent::ClearReceived { .. })).next().map(|e| e.at);
        let borderline: BTreeSet<String> = names(r, |e| match e {
            CallEvent::MarkEchoed { name, cleared: false } => Some(name),
            _ => None,
        })
        .into_iter()
        .filter(|n| {
            let echo = r.events(|e| matches!(e, CallEvent::MarkEchoed { name, .. } if name == n)).next();
            match (echo, clear_at) {
                (Some(echo), Some(clear)) => {
                    clear.saturating_duration_since(echo.at) <= Duration::from_millis(20)
                }
                _ => false,
            }
        })
        .collect();
        let missing: BTreeSet<&String> = echoed_played.difference(&engine_played).collect();
        expect(
            engine_played.is_subset(&echoed_played) && missing.iter().all(|n| borderline.contains(*n)),
            format!("the engine's played marks {engine_played:?}, the carrier's {echoed_played:?}"),
        );
        let echoed_cleared = r.events(|e| matches!(e, CallEvent::MarkEchoed { cleared: true, .. })).count();
        let dropped = r.events(|e| matches!(e, CallEvent::MarkDropped { .. })).count();
        expect(m.marks_cleared > 0, "no mark was pending at the carrier when it cleared".into());
        match dialect {
            // These two never acknowledge what a clear flushed.
            Dialect::Plivo | Dialect::Vonage => expect(
                echoed_cleared == 0
                    && dropped as u64 == m.marks_cleared
                    && m.marks_dropped == m.marks_cleared,
                format!(
                    "{echoed_cleared} cleared marks echoed, {dropped} dropped ({} counted)",
                    m.marks_dropped
                ),
            ),
            _ => expect(
                dropped == 0 && echoed_cleared as u64 == m.marks_cleared && m.marks_dropped == 0,
                format!(
                    "{echoed_cleared} cleared marks echoed, {dropped} dropped ({} counted)",
                    m.marks_dropped
                ),
            ),
        }
        let engine_cleared: BTreeSet<String> = record
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::MarkCleared { name } => Some(name.clone()),
                _ => None,
            })
            .collect();
        let flushed = names(r, |e| match e {
            CallEvent::MarkEchoed { name, cleared: true } | CallEvent::MarkDropped { name } => Some(name),
            _ => None,
        });
        expect(
            flushed.is_subset(&engine_cleared),
            format!("marks the clear flushed {flushed:?}, the engine's cleared {engine_cleared:?}"),
        );
    } else {
        // No marks on the wire: the engine's own clock reports them.
        expect(m.marks == 0, format!("{} marks reached AudioSocket", m.marks));
    }
    if !problems.is_empty() {
        println!("{dialect} timeline:\n{timeline}");
    }
    problems
}

/// How much of the bot's reply the first `heard_ms` of it on the caller's timeline hold. Each
/// 100 ms piece is followed by a mark, which cuts the frame the piece ends in: the rest of that
/// frame goes out as silence. Frames are 20 ms, but 200 ms on Exotel (its smallest chunk of 8 kHz
/// L16), where every piece is followed by 100 ms of silence.
fn reply_audio_in(dialect: Dialect, heard_ms: f64) -> f64 {
    let frame_ms = if dialect == Dialect::Exotel { 200.0 } else { 20.0 };
    let piece_ms = PIECE as f64 / 8.0;
    let slot_ms = (piece_ms / frame_ms).ceil() * frame_ms;
    let pieces = (heard_ms / slot_ms).floor();
    pieces * piece_ms + (heard_ms - pieces * slot_ms).min(piece_ms)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn every_websocket_carrier_calls_trunkline_end_to_end() {
    let bot = Bot::start(1_500);
    let script = script();
    let rt = runtime();
    let calls = WEBSOCKET.iter().enumerate().map(|(i, (dialect, secret))| {
        let mut options = CallOptions::new(bot.url(*dialect));
        options.dialect = *dialect;
        options.auth_token = Some((*secret).into());
        options.line_noise_dbfs = None;
        options.seed = 7 + i as u64;
        let script = script.0.clone();
        async move { callsim::run_call(0, &options, &script).await }
    });
    let results = rt.block_on(futures_util::future::join_all(calls));
    let mut problems = vec![];
    for ((dialect, _), r) in WEBSOCKET.iter().zip(&results) {
        assert_eq!(r.dialect, *dialect);
        let record = bot.record_of(r);
        problems.extend(check_call(*dialect, r, &record, &script));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_wrong_or_missing_secret_is_refused_for_every_websocket_carrier() {
    let bot = Bot::start(100);
    let rt = runtime();
    let brief = Script::new().silence(Duration::from_millis(100));
    let calls = WEBSOCKET.iter().flat_map(|(dialect, secret)| {
        [Some(format!("{secret}-wrong")), None].into_iter().map(|token| {
            let mut options = CallOptions::new(bot.url(*dialect));
            options.dialect = *dialect;
            options.auth_token = token;
            let brief = brief.clone();
            async move { callsim::run_call(0, &options, &brief).await }
        })
    });
    let results = rt.block_on(futures_util::future::join_all(calls));
    for r in &results {
        assert_eq!(r.error, Some(CallError::Refused(403)), "{}: {:?}", r.dialect, r.error);
    }
    assert_eq!(results.len(), 14);
    // The server counts a refusal once its response is out: give the last ones a moment.
    let deadline = Instant::now() + Duration::from_secs(2);
    while bot.server.stats().rejected_signature < 14 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(bot.server.stats().rejected_signature, 14);
}

#[test]
fn audiosocket_calls_an_engine_over_tcp() {
    let bot = Bot::start(1_500);
    let script = script();
    let mut options = CallOptions::new(bot.url(Dialect::AudioSocket));
    options.dialect = Dialect::AudioSocket;
    options.call_id = Some(AUDIOSOCKET_UUID.into());
    options.line_noise_dbfs = None;
    let r = callsim::run_call_blocking(&options, &script.0).unwrap();
    let record = bot.record_of(&r);
    let problems = check_call(Dialect::AudioSocket, &r, &record, &script);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // No clear exists: the caller's interruption is answered by silence, not a clear.
    assert_eq!((r.metrics.clears, r.metrics.barge_ins_without_clear), (0, 1));
    // A secret is refused up front: AudioSocket has no authentication to carry it.
    options.auth_token = Some("secret".into());
    let refused = callsim::run_call_blocking(&options, &Script::new()).unwrap();
    assert!(matches!(refused.error, Some(CallError::Url(_))), "{:?}", refused.error);
}

#[test]
fn audiosocket_audio_sent_ahead_of_real_time_is_an_overrun() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = runtime();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("tcp://{}", listener.local_addr().unwrap());
    // A bot that does not pace: half a second of audio (25 messages) in one write.
    let bot = rt.spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut uuid = [0u8; 19];
        tcp.read_exact(&mut uuid).await.unwrap();
        let burst: Vec<u8> =
            (0..25).flat_map(|_| [&[0x10, 0x01, 0x40][..], &[0u8; 320][..]].concat()).collect();
        tcp.write_all(&burst).await.unwrap();
        let mut sink = vec![0u8; 4096];
        while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    });
    let mut options = CallOptions::new(url);
    options.dialect = Dialect::AudioSocket;
    let r = rt.block_on(callsim::run_call(0, &options, &Script::new().silence(Duration::from_millis(800))));
    rt.block_on(bot).unwrap();
    assert!(r.ok(), "{:?}", r.error);
    // Every message beyond the first three (60 ms) arrived too far ahead; the caller heard it all.
    let m = &r.metrics;
    assert!(m.framing_violations >= 20, "{} violations", m.framing_violations);
    assert!(
        r.events(|e| matches!(e, CallEvent::FramingViolation { detail } if detail.contains("overrun")))
            .count()
            > 0
    );
    assert!((m.bot_audio_ms - 500.0).abs() < 1e-6);
}

/// mod_audio_fork queues a mark ahead of the next audio it receives, so the mark after a reply's
/// last piece would wait for the next reply; the engine sends a frame of silence after it as the
/// module runs dry, and the mark is echoed as the reply ends, the call's last one too.
#[test]
fn jambonz_echoes_a_replys_last_mark_as_the_reply_ends_after_the_engines_silence() {
    let bot = Bot::start(600);
    let caller = caller();
    let script = Script::new()
        .say(caller.slice_ms(0, 3_600))
        .wait_for_reply_end(Duration::from_secs(3))
        .say(caller.utterance(1, 300).unwrap())
        .wait_for_reply_end(Duration::from_secs(3));
    let mut options = CallOptions::new(bot.url(Dialect::Jambonz));
    options.dialect = Dialect::Jambonz;
    options.auth_token = Some(WEBSOCKET[6].1.into());
    options.line_noise_dbfs = None;
    let r = callsim::run_call_blocking(&options, &script).unwrap();
    let record = bot.record_of(&r);
    let timeline = callsim::format_timeline(&r, None);
    let m = &r.metrics;
    assert!(r.ok(), "{timeline}");
    assert_eq!((m.turns, m.turns_unanswered, m.replies, m.bad_messages), (2, 0, 2, 0), "{timeline}");
    // The first reply's last mark (six 100 ms pieces) is echoed before the second reply starts:
    // within a frame or two of the first reply's end.
    let second = r.events(|e| matches!(e, CallEvent::BotReplyStarted { .. })).nth(1).expect("two replies").at;
    let first_end =
        r.events(|e| matches!(e, CallEvent::BotReplyEnded { .. })).next().expect("a reply end").at;
    let echoed = |name: &'static str| {
        r.events(move |e| matches!(e, CallEvent::MarkEchoed { name: n, cleared: false } if n == name)).next()
    };
    let last = echoed("r1-6").expect("r1-6 echoed");
    assert!(last.at < second, "{timeline}");
    let after_end_ms = last.at.saturating_duration_since(first_end).as_secs_f64() * 1000.0;
    assert!(after_end_ms < 60.0, "r1-6 echoed {after_end_ms} ms after the reply ended\n{timeline}");
    assert!(echoed("r2-6").is_some(), "{timeline}");
    // The engine took both as played at the end of their reply's audio.
    let said = |name: &str| {
        record.events.iter().find_map(|(_, e)| match e {
            Event::MarkPlayed { name: n, played_ms } if n == name => Some(Some(*played_ms)),
            Event::MarkCleared { name: n } if n == name => Some(None),
            _ => None,
        })
    };
    assert_eq!((said("r1-6"), said("r2-6")), (Some(Some(600)), Some(Some(600))), "{timeline}");
}
