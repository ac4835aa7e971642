//! `callsim` over loopback: against a small bot built on the offload server (response latency,
//! barge-in, mark echoes, concurrent calls and the JSON report, signatures), and against raw
//! in-test WebSocket servers that check what goes on the wire and feed it choppy audio. Every
//! test is bounded in time (a few seconds of real-time audio each).

use crate::common::speech;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;
use trunkline::protocol::signature;
use trunkline::{Engine, EngineConfig, Event, SessionConfig, SessionStats};
use trunkline_callsim::{
    self as callsim, CallError, CallEvent, CallOptions, CallResult, CallerAudio, Dialect, Impairments,
    Report, RunOptions, Script, SpeechSegment,
};
use trunkline_server::{OffloadConfig, OffloadServer, OffloadedCall};

/// The caller: the committed speech fixture with its exact labels (first utterance 1000–3421 ms,
/// second 4421–5435 ms).
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

fn bot_session() -> SessionConfig {
    SessionConfig { play_rate: 8_000, ..Default::default() }
}

/// A bot on the offload server: on each `speech_stopped` it plays `reply` (8 kHz) and marks
/// `reply-N` after it; it records every event with the instant it saw it, and each call's
/// counters when its stream stopped.
struct Bot {
    url: String,
    server: Arc<OffloadServer>,
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
    finals: Arc<Mutex<Vec<SessionStats>>>,
    starts: Arc<Mutex<Vec<trunkline::protocol::StreamStart>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _engine: Arc<Engine>,
}

impl Bot {
    fn start(session: SessionConfig, reply: Vec<i16>, auth_token: Option<&str>) -> Self {
        let engine = Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap());
        let config = OffloadConfig {
            paths: vec!["/media".into()],
            auth_token: auth_token.map(str::to_owned),
            session,
            ..Default::default()
        };
        let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
        let url = format!("ws://{}/media", server.local_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(vec![]));
        let starts = Arc::new(Mutex::new(vec![]));
        let finals = Arc::new(Mutex::new(vec![]));
        let (e, s, st, srv, eng, f) =
            (events.clone(), starts.clone(), stop.clone(), server.clone(), engine.clone(), finals.clone());
        let thread = std::thread::Builder::new()
            .name("test-bot".into())
            .spawn(move || {
                let mut calls: Vec<(OffloadedCall, usize, u32)> = vec![]; // call, reply offset, replies
                while !st.load(Ordering::Acquire) {
                    eng.wait(Some(Duration::from_millis(5)));
                    while let Some(call) = srv.accept() {
                        s.lock().unwrap().push((*call.start).clone());
                        calls.push((call, reply.len(), 0));
                    }
                    for (call, offset, replies) in &mut calls {
                        while let Some(ev) = call.session.poll_event() {
                            let now = Instant::now();
                            match ev {
                                Event::SpeechStopped { .. } => {
                                    *offset = 0;
                                    *replies += 1;
                                }
                                Event::BargeIn { .. } => *offset = reply.len(),
                                Event::Stopped => f.lock().unwrap().push(call.session.stats()),
                                _ => {}
                            }
                            e.lock().unwrap().push((now, ev));
                        }
                        if *offset < reply.len() {
                            if let Ok(n) = call.session.play(&reply[*offset..], 8_000) {
                                *offset += n;
                            }
                            if *offset == reply.len() {
                                call.session.mark(&format!("reply-{replies}")).unwrap();
                            }
                        }
                        let mut pcm = [0i16; 1024];
                        while call.session.read_audio(&mut pcm) > 0 {}
                    }
                }
            })
            .unwrap();
        Self { url, server, stop, events, finals, starts, thread: Some(thread), _engine: engine }
    }

    fn events(&self) -> Vec<(Instant, Event)> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn one_call(options: &CallOptions, script: &Script) -> CallResult {
    callsim::run_call_blocking(options, script).unwrap()
}

fn first<'a>(r: &'a CallResult, pred: impl Fn(&CallEvent) -> bool + 'a) -> &'a callsim::TimelineEntry {
    r.events(pred)
        .next()
        .unwrap_or_else(|| panic!("event missing from the timeline:\n{}", callsim::format_timeline(r, None)))
}

#[test]
fn response_latency_is_the_vad_hangover_plus_delivery_and_marks_echo_after_playout() {
    let session = bot_session();
    let hangover = f64::from(session.vad.hangover_ms);
    let bot = Bot::start(session, tone_8k(600), None);
    let mut options = CallOptions::new(&bot.url);
    options.custom_parameters = vec![("lang".into(), "en".into()), ("caller".into(), "+15550100".into())];
    let script =
        Script::new().dtmf('7').say(caller().slice_ms(0, 3_600)).wait_for_reply_end(Duration::from_secs(5));
    let r = one_call(&options, &script);
    let timeline = callsim::format_timeline(&r, Some("trunkline-sync-"));
    println!("{timeline}");
    assert!(r.ok(), "{timeline}");
    let m = &r.metrics;
    assert_eq!((m.turns, m.turns_unanswered, m.replies), (1, 0, 1), "{timeline}");
    assert_eq!(m.response_ms.len(), 1);
    let response = m.response_ms[0];

    // Independent expectation: the bot replies when its VAD declares the end of speech, which
    // takes the hangover after the caller's last voiced audio (label end 3421 ms).
    let label_end = r.stream_start + Duration::from_millis(3_421);
    let events = bot.events();
    let detected =
        events.iter().find(|(_, e)| matches!(e, Event::SpeechStopped { .. })).expect("speech_stopped").0;
    let detection_ms = detected.duration_since(label_end).as_secs_f64() * 1000.0;
    assert!(
        (hangover - 60.0..=hangover + 200.0).contains(&detection_ms),
        "the bot saw the end of speech {detection_ms:.0} ms after it (hangover {hangover})"
    );
    // callsim's latency is that plus delivering the first frame (a worker tick and loopback).
    assert!(
        response >= detection_ms && response <= detection_ms + 60.0,
        "response {response:.1} ms vs detection {detection_ms:.1} ms\n{timeline}"
    );

    // The carrier played the 600 ms reply gaplessly and echoed its mark when it had played.
    assert_eq!((m.underruns, m.clears, m.bad_messages), (0, 0, 0));
    let start = first(&r, |e| matches!(e, CallEvent::BotReplyStarted { .. }));
    let echo = first(&r, |e| matches!(e, CallEvent::MarkEchoed { name, .. } if name == "reply-1"));
    assert!(matches!(echo.event, CallEvent::MarkEchoed { cleared: false, .. }));
    let echo_after = echo.at.duration_since(start.at).as_secs_f64() * 1000.0;
    assert!((598.0..=625.0).contains(&echo_after), "mark echoed {echo_after:.1} ms after the reply started");
    match first(&r, |e| matches!(e, CallEvent::BotReplyEnded { .. })).event {
        CallEvent::BotReplyEnded { played_ms, cleared } => {
            assert!(!cleared && (played_ms - 600.0).abs() < 1.0)
        }
        _ => unreachable!(),
    }
    assert!(events.iter().any(|(_, e)| matches!(e, Event::MarkPlayed { name, .. } if name == "reply-1")));
    assert_eq!(m.marks, m.marks_played, "every mark (the engine's sync marks too) played");

    // What the bot was told: the call's ids, custom parameters and the key press.
    let starts = bot.starts.lock().unwrap();
    assert_eq!(
        (starts[0].call_id.as_str(), starts[0].stream_id.as_str()),
        (r.call_sid.as_str(), r.stream_sid.as_str())
    );
    assert_eq!(starts[0].custom_parameters, options.custom_parameters);
    assert!(events.iter().any(|(_, e)| matches!(e, Event::Dtmf { digit: '7', .. })));
}

#[test]
fn an_interruption_is_a_barge_in_answered_by_clear_at_the_position_the_caller_heard() {
    let session = bot_session();
    let min_speech = f64::from(session.barge_in.min_speech_ms);
    let bot = Bot::start(session, tone_8k(3_000), None);
    let caller = caller();
    let script = Script::new()
        .say(caller.slice_ms(0, 3_600))
        .interrupt(Duration::from_millis(500), caller.utterance(1, 300).unwrap())
        .silence(Duration::from_millis(700));
    let r = one_call(&CallOptions::new(&bot.url), &script);
    let timeline = callsim::format_timeline(&r, Some("trunkline-sync-"));
    println!("{timeline}");
    for (at, e) in bot.events() {
        println!("bot {:>8.0} ms {e:?}", at.duration_since(r.stream_start).as_secs_f64() * 1000.0);
    }
    assert!(r.ok(), "{timeline}");
    let m = &r.metrics;
    assert_eq!(
        (m.barge_ins, m.barge_ins_without_clear, m.clears, m.clears_unprompted),
        (1, 0, 1, 0),
        "{timeline}"
    );
    let reaction = m.barge_in_reaction_ms[0];
    // The engine interrupts once the caller's speech has been *voiced* for barge_in.min_speech_ms
    // (its onset may be reported a frame early; its voiced time runs behind the elapsed time).
    assert!(
        (min_speech - 40.0..=min_speech + 400.0).contains(&reaction),
        "barge-in reaction {reaction:.0} ms (min speech {min_speech})\n{timeline}"
    );
    // The caller cut in 500 ms into the reply (its onset is 1 ms into its first frame).
    let reply = first(&r, |e| matches!(e, CallEvent::BotReplyStarted { .. }));
    let onset = first(&r, |e| matches!(e, CallEvent::CallerSpeechStarted { over_bot: true }));
    let into_reply = onset.at.duration_since(reply.at).as_secs_f64() * 1000.0;
    assert!((500.0..=545.0).contains(&into_reply), "onset {into_reply:.0} ms into the reply");
    let (heard, dropped) = match first(&r, |e| matches!(e, CallEvent::ClearReceived { .. })).event {
        CallEvent::ClearReceived { played_ms: Some(p), dropped_ms, .. } => (p, dropped_ms),
        ref other => panic!("{other:?}"),
    };
    assert!((heard - (into_reply + reaction)).abs() < 25.0, "heard {heard:.0} ms of the reply");
    // Ducking (on by default): the tone dropped 10 dB at the carrier before the clear, once the
    // speech was confirmed (about 120 ms) and the lead the carrier held had played (100 ms).
    let drop = m.voice_drop_ms[0];
    println!("voice drop {drop:.0} ms, clear {reaction:.0} ms after the onset");
    assert!(drop + 60.0 < reaction, "voice dropped {drop:.0} ms after the onset, clear at {reaction:.0} ms");
    assert!(drop >= 100.0, "voice dropped {drop:.0} ms after the onset");
    assert!(m.barge_in_dip_ms.is_empty());
    assert!(
        dropped <= f64::from(bot_session().lead_ms) + 1.0,
        "the engine keeps at most lead_ms at the carrier"
    );
    // The reply's mark was still queued in the engine behind unsent audio: it never reached the
    // carrier, and the engine reported it cleared. Every mark the carrier got, it echoed.
    assert!(
        r.events(|e| matches!(e, CallEvent::MarkEchoed { name, .. } if name == "reply-1")).next().is_none()
    );
    assert_eq!(m.marks, m.marks_played + m.marks_cleared);
    let events = bot.events();
    assert!(events.iter().any(|(_, e)| matches!(e, Event::MarkCleared { name } if name == "reply-1")));
    // The engine's played position agrees with the carrier's truth.
    let played = events
        .iter()
        .find_map(|(_, e)| match e {
            Event::BargeIn { played_ms, .. } => Some(*played_ms as f64),
            _ => None,
        })
        .expect("barge_in event");
    assert!((played - heard).abs() < 100.0, "engine says {played} ms heard, carrier {heard:.0} ms");
    // The interruption itself is a turn: the bot answered it too.
    assert_eq!((m.turns, m.response_ms.len()), (2, 2), "{timeline}");
}

#[test]
fn a_backchannel_over_the_bot_dips_it_briefly_and_is_no_barge_in() {
    let caller = caller();
    // The first 260 ms of the first utterance: speech (about 180 ms of it voiced), but shorter
    // than barge-in's minimum of voiced speech.
    let back = caller.slice_ms(1_000, 1_260);
    let script = Script::new()
        .say(caller.slice_ms(0, 3_600))
        .interrupt(Duration::from_millis(500), back)
        .silence(Duration::from_millis(1_500));
    let run = |duck_db: u8| {
        let mut session = bot_session();
        session.barge_in.duck_db = duck_db;
        let bot = Bot::start(session, tone_8k(3_000), None);
        let r = one_call(&CallOptions::new(&bot.url), &script);
        let timeline = callsim::format_timeline(&r, Some("trunkline-sync-"));
        println!("{timeline}");
        assert!(r.ok(), "{timeline}");
        let m = r.metrics.clone();
        let deadline = Instant::now() + Duration::from_secs(2);
        while bot.finals.lock().unwrap().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = bot.finals.lock().unwrap().first().copied().expect("the call's stream stopped");
        let timeline = format!("{timeline}\nbot counters: {stats:?}\nevents: {:?}", bot.events());
        assert_eq!((m.barge_ins, m.barge_ins_without_clear, m.clears), (1, 1, 0), "{timeline}");
        assert!(m.voice_drop_ms.is_empty());
        // The reply the caller talked over was still playing when the caller hung up (its 3 s
        // outlast the call): the dip is the bot's level, not its silence.
        let onset = first(&r, |e| matches!(e, CallEvent::CallerSpeechStarted { over_bot: true })).at;
        let hang_up = first(&r, |e| matches!(e, CallEvent::StopSent)).at;
        let reply_end =
            r.events(|e| matches!(e, CallEvent::BotReplyEnded { .. })).map(|e| e.at).find(|at| *at > onset);
        assert!(reply_end.is_some_and(|end| end >= hang_up), "{timeline}");
        assert_eq!(stats.ducks, stats.duck_restores, "{timeline}");
        assert_eq!(stats.ducks, u64::from(duck_db > 0), "{timeline}");
        (m.barge_in_dip_ms[0], timeline)
    };
    // With ducking the tone dips for about the backchannel plus the restore delay; without, it
    // plays on at its level (silence would count as a dip too).
    let (dip, timeline) = run(18);
    println!("dip {dip} ms");
    assert!((60.0..=500.0).contains(&dip), "dip {dip} ms\n{timeline}");
    let (dip, timeline) = run(0);
    assert_eq!(dip, 0.0, "{timeline}");
}

#[test]
fn concurrent_calls_give_a_json_report_with_percentiles() {
    let bot = Bot::start(bot_session(), tone_8k(300), None);
    let script = Script::new()
        .say(caller().slice_ms(0, 3_600))
        .wait_for_reply(Duration::from_secs(3))
        .silence(Duration::from_millis(400));
    let run = RunOptions { calls: 4, stagger: Duration::from_millis(40), progress: true };
    let results = callsim::run_calls_blocking(&CallOptions::new(&bot.url), &script, &run).unwrap();
    let report = Report::new(&results);
    println!("{}", report.table());
    assert_eq!(results.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let mut sids: Vec<&str> = results.iter().map(|r| r.call_sid.as_str()).collect();
    sids.dedup();
    assert_eq!(sids.len(), 4, "every call has its own callSid");
    assert_eq!(bot.server.stats().calls_opened, 4);

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("the report is JSON");
    assert_eq!(
        (json["calls"].as_u64(), json["ok"].as_u64(), json["failed"].as_u64()),
        (Some(4), Some(4), Some(0))
    );
    let latency = &json["metrics"]["response_latency_ms"];
    assert_eq!(latency["n"].as_u64(), Some(4), "{latency}");
    let (p50, p90, p99) = (
        latency["p50"].as_f64().unwrap(),
        latency["p90"].as_f64().unwrap(),
        latency["p99"].as_f64().unwrap(),
    );
    assert!(p50 > 300.0 && p50 <= p90 && p90 <= p99 && p99 < 1_000.0, "{latency}");
    for key in [
        "barge_in_reaction_ms",
        "voice_drop_ms",
        "barge_in_dip_ms",
        "underruns_per_call",
        "frame_lateness_ms",
        "jitter_ms",
        "connect_ms",
    ] {
        assert!(json["metrics"][key].get("p99").is_some(), "{key}");
    }
    assert_eq!(json["metrics"]["barge_in_reaction_ms"]["n"].as_u64(), Some(0));
    assert_eq!(json["per_call"].as_array().map(Vec::len), Some(4));
    assert_eq!(json["totals"]["turns"].as_u64(), Some(4));
    let table = report.table();
    assert!(table.contains("response latency (ms)") && table.contains("p99"));
}

#[test]
fn signed_upgrades_are_accepted_and_wrong_tokens_refused() {
    let bot = Bot::start(bot_session(), vec![], Some("s3cret"));
    let script = Script::new().silence(Duration::from_millis(100));
    let mut options = CallOptions::new(format!("{}?tenant=acme&lang=en", bot.url));
    options.auth_token = Some("s3cret".into());
    let r = one_call(&options, &script);
    assert!(r.ok(), "{:?}", r.error);
    options.auth_token = Some("wrong".into());
    assert_eq!(one_call(&options, &script).error, Some(CallError::Refused(403)));
    options.auth_token = None;
    assert_eq!(one_call(&options, &script).error, Some(CallError::Refused(403)));
    // The caller sees a 403 before the server task has counted it: let the counters settle.
    let deadline = Instant::now() + Duration::from_secs(2);
    while bot.server.stats().rejected_signature < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = bot.server.stats();
    assert_eq!((s.calls_opened, s.rejected_signature), (1, 2));
    assert!(matches!(one_call(&CallOptions::new("http://x/"), &script).error, Some(CallError::Url(_))));
}

/// What a raw in-test server received, and when.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;
/// The upgrade request's URL (as `url`) and headers.
type RequestLog = Arc<Mutex<Vec<(String, String)>>>;
type Sink =
    futures_util::stream::SplitSink<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, Message>;

/// A raw WebSocket server for one connection: records the upgrade request (its URL and headers)
/// and every text message; once `start` (jambonz: its metadata) arrives it runs `bot` with the
/// sending half and the stream's id (Twilio's `streamSid`, Plivo's `start.streamId`, jambonz's
/// `callSid`).
fn raw_server<F, Fut>(bot: F) -> (String, Received, RequestLog, std::thread::JoinHandle<()>)
where
    F: FnOnce(Sink, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    raw_server_answering_after(Duration::ZERO, bot)
}

/// [`raw_server`], answering the upgrade `delay` after it arrived (a slow handshake).
fn raw_server_answering_after<F, Fut>(
    delay: Duration,
    bot: F,
) -> (String, Received, RequestLog, std::thread::JoinHandle<()>)
where
    F: FnOnce(Sink, String) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/media?x=1", listener.local_addr().unwrap());
    let received: Received = Default::default();
    let request: RequestLog = Default::default();
    let (rec, req_log) = (received.clone(), request.clone());
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let record = |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                let mut log = req_log.lock().unwrap();
                let host = req.headers()["host"].to_str().unwrap();
                log.push(("url".into(), format!("ws://{host}{}", req.uri())));
                for (k, v) in req.headers() {
                    log.push((k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()));
                }
                std::thread::sleep(delay);
                Ok(resp)
            };
            let ws = tokio_tungstenite::accept_hdr_async(tcp, record).await.unwrap();
            let (sink, mut stream) = ws.split();
            let (mut sink, mut bot) = (Some(sink), Some(bot));
            let deadline = tokio::time::sleep(Duration::from_secs(15));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    msg = stream.next() => match msg {
                        Some(Ok(Message::Text(t))) => {
                            rec.lock().unwrap().push((Instant::now(), t.to_string()));
                            let v = json(t.as_str());
                            let start = v["event"] == "start" || v["mixType"].is_string();
                            if start && let (Some(b), Some(s)) = (bot.take(), sink.take()) {
                                let sid = v["streamSid"].as_str().or(v["start"]["streamId"].as_str());
                                let sid = sid.or(v["callSid"].as_str());
                                tokio::spawn(b(s, sid.unwrap().to_owned()));
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = &mut deadline => break,
                }
            }
        })
    });
    (url, received, request, thread)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_wire_carries_twilio_messages_signed_and_impaired_as_configured() {
    let (url, received, request, server) = raw_server(|sink, _| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sink);
    });
    let mut options = CallOptions::new(&url);
    options.auth_token = Some("tok".into());
    options.custom_parameters = vec![("tenant".into(), "acme".into())];
    options.impairments = Impairments { gap_every: 10, reorder_every: 4, ..Default::default() };
    let clip = CallerAudio::from_ulaw(vec![0x55; 8 * 600]).with_speech([]);
    let script = Script::new().dtmf('1').say(clip).dtmf('#').silence(Duration::from_millis(200));
    options.line_noise_dbfs = None;
    let r = one_call(&options, &script);
    assert!(r.ok(), "{:?}", r.error);
    server.join().unwrap();

    // The upgrade request: Twilio's user agent and a valid signature of the URL it connected to.
    let request = request.lock().unwrap().clone();
    let header = |name: &str| request.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(header("url").as_deref(), Some(url.as_str()));
    assert_eq!(header("user-agent").as_deref(), Some("TwilioProxy/1.1"));
    assert!(signature::validate("tok", &url, &header("x-twilio-signature").expect("signed")));

    let msgs: Vec<(Instant, serde_json::Value)> =
        received.lock().unwrap().iter().map(|(t, m)| (*t, json(m))).collect();
    let events: Vec<&str> = msgs.iter().map(|(_, m)| m["event"].as_str().unwrap()).collect();
    assert_eq!(&events[..3], ["connected", "start", "dtmf"]);
    assert_eq!(msgs[0].1, json(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#));
    let start = &msgs[1].1;
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["streamSid"], r.stream_sid.as_str());
    assert_eq!(start["start"]["callSid"], r.call_sid.as_str());
    assert_eq!(start["start"]["customParameters"], json(r#"{"tenant":"acme"}"#));
    assert_eq!(
        start["start"]["mediaFormat"],
        json(r#"{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}"#)
    );
    assert_eq!(msgs[2].1["dtmf"], json(r#"{"track":"inbound_track","digit":"1"}"#));
    assert_eq!(*events.last().unwrap(), "stop");
    assert_eq!(msgs.last().unwrap().1["stop"]["callSid"], r.call_sid.as_str());

    // 40 frames (600 + 200 ms): every 10th dropped (a timestamp gap), every 4th sent after its
    // successor; sequence numbers and chunks follow the stream, not the sending order.
    let media: Vec<&serde_json::Value> =
        msgs.iter().map(|(_, m)| m).filter(|m| m["event"] == "media").collect();
    let ts: Vec<u64> =
        media.iter().map(|m| m["media"]["timestamp"].as_str().unwrap().parse().unwrap()).collect();
    let mut expected = vec![];
    let mut held = None;
    for k in (0..40u64).filter(|k| (k + 1) % 10 != 0) {
        if (k + 1) % 4 == 0 && held.is_none() {
            held = Some(k);
            continue;
        }
        expected.push(k * 20);
        expected.extend(held.take().map(|h| h * 20));
    }
    expected.extend(held.map(|h| h * 20));
    assert_eq!(ts, expected);
    assert_eq!((r.metrics.impairments.dropped, r.metrics.frames_sent), (4, 36));
    let mut by_seq: Vec<(u64, &serde_json::Value)> =
        msgs[1..].iter().map(|(_, m)| (m["sequenceNumber"].as_str().unwrap().parse().unwrap(), m)).collect();
    by_seq.sort_by_key(|(s, _)| *s);
    assert_eq!(
        by_seq.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=by_seq.len() as u64).collect::<Vec<_>>()
    );
    let stream_order: Vec<u64> = by_seq
        .iter()
        .filter(|(_, m)| m["event"] == "media")
        .map(|(_, m)| m["media"]["timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(stream_order.windows(2).all(|w| w[0] < w[1]));
    let chunks: Vec<u64> = by_seq
        .iter()
        .filter(|(_, m)| m["event"] == "media")
        .map(|(_, m)| m["media"]["chunk"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(chunks, (1..=36).collect::<Vec<_>>());
    for m in &media {
        let clip = m["media"]["timestamp"].as_str().unwrap().parse::<u64>().unwrap() < 600;
        let payload = if clip { "VVVV".repeat(53) + "VQ==" } else { "////".repeat(53) + "/w==" };
        assert_eq!(m["media"]["payload"], payload.as_str(), "{m}");
    }
    // The '#' follows the clip: after its last frame sent (560 ms; 580 is a gap), before 600 ms.
    let hash = by_seq.iter().position(|(_, m)| m["dtmf"]["digit"] == "#").unwrap();
    assert_eq!(by_seq[hash - 1].1["media"]["timestamp"], "560");
    assert_eq!(by_seq[hash + 1].1["media"]["timestamp"], "600");
    // Real time: the frame at 760 ms leaves about 760 ms after the first one.
    let at = |stamp: &str| msgs.iter().find(|(_, m)| m["media"]["timestamp"] == stamp).unwrap().0;
    let spread = at("760").duration_since(at("0")).as_secs_f64() * 1000.0;
    assert!((750.0..=810.0).contains(&spread), "{spread}");
}

#[test]
fn the_scripts_last_step_still_happens_a_final_key_is_sent_and_a_final_wait_logs_its_timeout() {
    let silent_bot = |sink: Sink, _| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(sink);
    };
    let (url, received, _, server) = raw_server(silent_bot);
    let r = one_call(&CallOptions::new(&url), &Script::new().silence(Duration::from_millis(100)).dtmf('#'));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let events: Vec<serde_json::Value> = received.lock().unwrap().iter().map(|(_, t)| json(t)).collect();
    let key = events.iter().position(|m| m["event"] == "dtmf" && m["dtmf"]["digit"] == "#");
    let stop = events.iter().position(|m| m["event"] == "stop");
    assert!(key.is_some() && key < stop, "the '#' before the stop:\n{events:?}");
    first(&r, |e| matches!(e, CallEvent::DtmfSent { digit: '#' }));

    let (url, _, _, server) = raw_server(silent_bot);
    let script =
        Script::new().silence(Duration::from_millis(100)).wait_for_reply_end(Duration::from_millis(200));
    let r = one_call(&CallOptions::new(&url), &script);
    server.join().unwrap();
    assert!(r.ok(), "{}", callsim::format_timeline(&r, None));
    first(&r, |e| matches!(e, CallEvent::WaitTimedOut { what: "wait for the reply to end" }));
}

/// Unix ms of `at`, given an instant and the wall clock read together.
fn unix_ms(anchor: (Instant, SystemTime), at: Instant) -> f64 {
    let epoch = anchor.1.duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1000.0;
    epoch + if at >= anchor.0 { ms_between(anchor.0, at) } else { -ms_between(at, anchor.0) }
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64() * 1000.0
}

#[test]
fn plivo_stamps_media_and_key_presses_with_the_wall_clock_of_their_stream_time() {
    // The upgrade takes 300 ms: stream time 0 (and its wall clock) starts after it.
    let (url, received, _, server) =
        raw_server_answering_after(Duration::from_millis(300), |sink, _| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sink);
        });
    let mut options = CallOptions::new(&url);
    options.dialect = Dialect::Plivo;
    let anchor = (Instant::now(), SystemTime::now());
    let script =
        Script::new().silence(Duration::from_millis(400)).dtmf('5').silence(Duration::from_millis(100));
    let r = one_call(&options, &script);
    server.join().unwrap();
    assert!(r.ok(), "{}", callsim::format_timeline(&r, None));
    let msgs: Vec<(Instant, serde_json::Value)> =
        received.lock().unwrap().iter().map(|(t, m)| (*t, json(m))).collect();
    let stamp =
        |m: &serde_json::Value, key: &str| m[key]["timestamp"].as_str().unwrap().parse::<f64>().unwrap();
    let start_at = msgs.iter().find(|(_, m)| m["event"] == "start").unwrap().0;
    let media: Vec<f64> =
        msgs.iter().filter(|(_, m)| m["event"] == "media").map(|(_, m)| stamp(m, "media")).collect();
    // The first frame is stamped with the stream's start, when `start` arrived (loopback: a
    // millisecond or two; the clocks were read a few µs apart).
    let off = media[0] - unix_ms(anchor, start_at);
    assert!((-10.0..=10.0).contains(&off), "the first media stamped {off:.0} ms from the stream's start");
    assert_eq!(media[20] - media[0], 400.0);
    // The key was pressed 400 ms into the stream, with the frame that starts there.
    let key = msgs.iter().find(|(_, m)| m["event"] == "dtmf").expect("the key press").1.clone();
    assert_eq!((key["dtmf"]["digit"].as_str(), stamp(&key, "dtmf")), (Some("5"), media[20]), "{key}");
}

#[test]
fn choppy_bot_audio_shows_as_underruns_and_marks_echo_when_played() {
    let sent: Arc<Mutex<Vec<Instant>>> = Default::default();
    let sent_by_bot = sent.clone();
    let (url, received, _, server) = raw_server(move |mut sink, sid| async move {
        // A bot that cannot keep up: ten 20 ms frames, one every 30 ms, then a mark.
        let frame = silence_frame(&sid);
        tokio::time::sleep(Duration::from_millis(100)).await;
        for i in 0..10 {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            sent_by_bot.lock().unwrap().push(Instant::now());
            sink.send(Message::text(frame.clone())).await.unwrap();
        }
        let mark = format!(r#"{{"event":"mark","streamSid":"{sid}","mark":{{"name":"done"}}}}"#);
        sink.send(Message::text(mark)).await.unwrap();
        // And a message Twilio would reject.
        sink.send(Message::text(r#"{"event":"speak","streamSid":"x"}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let r = one_call(&CallOptions::new(&url), &Script::new().silence(Duration::from_millis(900)));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let m = &r.metrics;
    assert_eq!((m.bot_frames, m.replies, m.bad_messages), (10, 1, 1), "{timeline}");
    // Each frame after the first arrives ~10 ms after the previous one ran out.
    assert!((8..=9).contains(&m.underruns), "{} underruns\n{timeline}", m.underruns);
    let report = Report::new(std::slice::from_ref(&r));
    let lateness = report.metrics.frame_lateness_ms;
    assert_eq!(lateness.n, 9);
    assert!((7.0..=16.0).contains(&lateness.p50.unwrap()), "{lateness:?}");
    assert!((m.underrun_ms - 90.0).abs() < 25.0, "{} ms of underrun silence", m.underrun_ms);
    // The mark came after the last frame: echoed once that frame (20 ms) had played.
    let last_sent = *sent.lock().unwrap().last().unwrap();
    let echo = received
        .lock()
        .unwrap()
        .iter()
        .find(|(_, t)| t.contains(r#""event":"mark""#))
        .map(|(at, t)| (*at, json(t)))
        .expect("mark echoed");
    assert_eq!(echo.1["mark"]["name"], "done");
    assert_eq!(echo.1["streamSid"], r.stream_sid.as_str());
    let after = echo.0.duration_since(last_sent).as_secs_f64() * 1000.0;
    assert!((19.0..=32.0).contains(&after), "echoed {after:.1} ms after the last frame was sent");
    // Without impairments the carrier numbers its messages in the order it sends them: the
    // echo is not numbered ahead of a caller frame that goes out before it.
    let numbers: Vec<u64> = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, t)| json(t)["sequenceNumber"].as_str().map(|n| n.parse().unwrap()))
        .collect();
    assert!(numbers.len() > 40, "{numbers:?}");
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "in sending order");
}

/// A Twilio `media` message of 20 ms of µ-law silence (code 0xFF) for stream `sid`.
fn silence_frame(sid: &str) -> String {
    format!(
        r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"{}"}}}}"#,
        "////".repeat(53) + "/w=="
    )
}

/// Sends 20 ms frames of µ-law silence that play from `from_ms` to `to_ms` after `t`, each sent
/// 100 ms before it plays (a pacer's lead).
async fn send_paced(sink: &mut Sink, sid: &str, t: Instant, from_ms: u64, to_ms: u64) {
    let frame = silence_frame(sid);
    for at in (from_ms..to_ms).step_by(20) {
        tokio::time::sleep_until((t + Duration::from_millis(at.saturating_sub(100).max(from_ms))).into())
            .await;
        sink.send(Message::text(frame.clone())).await.unwrap();
    }
}

/// A call of 4.2 s on a quiet line whose caller speaks from 1000 to 1500 ms, to the bot at `url`
/// served by `server`: its result and timeline (checked to have run to its end).
fn caller_speaking_at_one_second(url: &str, server: std::thread::JoinHandle<()>) -> (CallResult, String) {
    let mut options = CallOptions::new(url);
    options.line_noise_dbfs = None;
    let caller = CallerAudio::from_ulaw(vec![0xFF; 8 * 4_200])
        .with_speech([SpeechSegment { start_ms: 1_000, end_ms: 1_500 }]);
    let r = one_call(&options, &Script::new().say(caller));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    (r, timeline)
}

#[test]
fn an_answer_after_the_reply_the_caller_talked_over_is_a_reply_to_that_speech() {
    let (url, _, _, server) = raw_server(move |mut sink, sid| async move {
        // A bot that ignores the barge-in: it finishes its reply (0.5-2.5 s), then, after 300 ms,
        // answers what the caller said over it.
        let t = Instant::now();
        send_paced(&mut sink, &sid, t, 500, 2_500).await;
        send_paced(&mut sink, &sid, t, 2_800, 3_800).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (r, timeline) = caller_speaking_at_one_second(&url, server);
    let m = &r.metrics;
    assert_eq!(
        (m.turns, m.turns_unanswered, m.barge_ins, m.barge_ins_without_clear),
        (1, 0, 1, 1),
        "{timeline}"
    );
    assert_eq!((m.replies, m.underruns, m.response_ms.len()), (2, 0, 1), "{timeline}");
    // From the caller's end of speech (1500 ms) to the answer (2800 ms).
    assert!((1_290.0..=1_340.0).contains(&m.response_ms[0]), "{timeline}");
}

#[test]
fn a_clear_in_a_later_reply_is_no_reaction_to_speech_over_an_earlier_one() {
    let (url, _, _, server) = raw_server(move |mut sink, sid| async move {
        // A bot that ignores the caller's speech over its reply (0.5-2.5 s), answers from
        // 2.8 s, and clears that answer 300 ms in (its own echo, say).
        let t = Instant::now();
        send_paced(&mut sink, &sid, t, 500, 2_500).await;
        send_paced(&mut sink, &sid, t, 2_800, 3_100).await;
        tokio::time::sleep_until((t + Duration::from_millis(3_100)).into()).await;
        let clear = format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#);
        sink.send(Message::text(clear)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let (r, timeline) = caller_speaking_at_one_second(&url, server);
    let m = &r.metrics;
    // The speech over the first reply got no clear; the answer's clear answered nothing.
    assert_eq!(
        (m.barge_ins, m.barge_ins_without_clear, m.clears, m.clears_unprompted),
        (1, 1, 1, 1),
        "{timeline}"
    );
    assert!(m.barge_in_reaction_ms.is_empty(), "{timeline}");
}

/// A bot playing a tone from 200 ms that goes quiet 60 ms after the caller's onset at 1000 ms
/// (its audio runs out at 1060 ms), then sends `clear` at `clear_ms` if given; the call lasts
/// 2.6 s.
fn a_bot_silent_after_the_onset(clear_ms: Option<u64>) -> CallResult {
    use base64::Engine as _;
    let ulaw: Vec<u8> = tone_8k(20).iter().map(|&s| trunkline::codec::linear_to_ulaw(s)).collect();
    let payload = base64::engine::general_purpose::STANDARD.encode(&ulaw);
    let (url, _, _, server) = raw_server(move |mut sink, sid| async move {
        let t = Instant::now();
        let frame = format!(r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"{payload}"}}}}"#);
        // Each 20 ms frame 40 ms before it plays (the first three together, at 200 ms).
        for at in (200..1_060).step_by(20) {
            tokio::time::sleep_until((t + Duration::from_millis((at - 40).max(200))).into()).await;
            sink.send(Message::text(frame.clone())).await.unwrap();
        }
        if let Some(clear_ms) = clear_ms {
            tokio::time::sleep_until((t + Duration::from_millis(clear_ms)).into()).await;
            sink.send(Message::text(format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#))).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut options = CallOptions::new(&url);
    options.line_noise_dbfs = None;
    let caller = CallerAudio::from_ulaw(vec![0xFF; 8 * 2_600])
        .with_speech([SpeechSegment { start_ms: 1_000, end_ms: 1_200 }]);
    let r = one_call(&options, &Script::new().say(caller));
    server.join().unwrap();
    assert!(r.ok(), "{}", callsim::format_timeline(&r, None));
    assert_eq!(r.metrics.barge_ins, 1, "{}", callsim::format_timeline(&r, None));
    r
}

#[test]
fn a_bot_that_goes_silent_over_the_caller_dropped_its_voice_then_not_at_its_clear() {
    // No clear: silent from 1060 ms to the hang-up (about 2600 ms) is all dip.
    let r = a_bot_silent_after_the_onset(None);
    let timeline = callsim::format_timeline(&r, None);
    let m = &r.metrics;
    assert_eq!((m.barge_ins_without_clear, m.barge_in_dip_ms.len()), (1, 1), "{timeline}");
    let dip = m.barge_in_dip_ms[0];
    assert!((1_450.0..=1_620.0).contains(&dip), "dip {dip:.0} ms\n{timeline}");
    // A clear at 1300 ms: the caller heard the voice drop at 1060 ms, not at the clear.
    let r = a_bot_silent_after_the_onset(Some(1_300));
    let timeline = callsim::format_timeline(&r, None);
    let m = &r.metrics;
    assert_eq!((m.barge_in_reaction_ms.len(), m.voice_drop_ms.len()), (1, 1), "{timeline}");
    let drop = m.voice_drop_ms[0];
    assert!((40.0..=100.0).contains(&drop), "voice dropped {drop:.0} ms after the onset\n{timeline}");
}

#[test]
fn clear_drops_buffered_audio_and_echoes_pending_marks_at_once() {
    let cleared_at: Arc<Mutex<Option<Instant>>> = Default::default();
    let c = cleared_at.clone();
    let (url, received, _, server) = raw_server(move |mut sink, sid| async move {
        // One second of audio in one payload, a mark after it, then `clear` 300 ms later.
        let second = format!(
            r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"{}"}}}}"#,
            "////".repeat(8000 / 3) + "//8="
        );
        sink.send(Message::text(second)).await.unwrap();
        let mark = format!(r#"{{"event":"mark","streamSid":"{sid}","mark":{{"name":"sentence"}}}}"#);
        sink.send(Message::text(mark)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        *c.lock().unwrap() = Some(Instant::now());
        sink.send(Message::text(format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let r = one_call(&CallOptions::new(&url), &Script::new().silence(Duration::from_millis(1_300)));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let m = &r.metrics;
    assert_eq!((m.marks, m.marks_played, m.marks_cleared, m.clears, m.clears_unprompted), (1, 0, 1, 1, 1));
    let echo =
        received.lock().unwrap().iter().find(|(_, t)| t.contains(r#""event":"mark""#)).map(|(at, _)| *at);
    let after_clear =
        echo.expect("echo").duration_since(cleared_at.lock().unwrap().unwrap()).as_secs_f64() * 1000.0;
    assert!(after_clear < 20.0, "the pending mark was echoed {after_clear:.1} ms after the clear");
    match first(&r, |e| matches!(e, CallEvent::ClearReceived { .. })).event {
        CallEvent::ClearReceived { dropped_ms, played_ms: Some(played), reaction_ms: None } => {
            assert!(
                (played - 300.0).abs() < 15.0 && (dropped_ms + played - 1000.0).abs() < 0.01,
                "{timeline}"
            );
        }
        ref other => panic!("{other:?}"),
    }
    assert!(matches!(
        first(&r, |e| matches!(e, CallEvent::MarkEchoed { .. })).event,
        CallEvent::MarkEchoed { cleared: true, .. }
    ));
    let table = Report::new(std::slice::from_ref(&r)).table();
    assert!(table.contains("1 flushed by a clear (1 echoed, 0 dropped unanswered)"), "{table}");
}

#[test]
fn the_report_says_plivo_dropped_the_checkpoint_a_clear_flushed() {
    let (url, received, _, server) = raw_server(move |mut sink, sid| async move {
        // One second of audio, a checkpoint after it, then `clearAudio` 300 ms later.
        let second = format!(
            r#"{{"event":"playAudio","media":{{"contentType":"audio/x-mulaw","sampleRate":8000,"payload":"{}"}}}}"#,
            "////".repeat(8000 / 3) + "//8="
        );
        sink.send(Message::text(second)).await.unwrap();
        let checkpoint = format!(r#"{{"event":"checkpoint","streamId":"{sid}","name":"sentence"}}"#);
        sink.send(Message::text(checkpoint)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        sink.send(Message::text(format!(r#"{{"event":"clearAudio","streamId":"{sid}"}}"#))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut options = CallOptions::new(&url);
    options.dialect = Dialect::Plivo;
    let r = one_call(&options, &Script::new().silence(Duration::from_millis(800)));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let sent: Vec<serde_json::Value> = received.lock().unwrap().iter().map(|(_, t)| json(t)).collect();
    assert!(sent.iter().any(|m| m["event"] == "clearedAudio"), "{sent:?}");
    assert!(!sent.iter().any(|m| m["event"] == "playedStream"), "{sent:?}");
    first(&r, |e| matches!(e, CallEvent::MarkDropped { name } if name == "sentence"));

    let report = Report::new(std::slice::from_ref(&r));
    let table = report.table();
    assert!(table.contains("1 flushed by a clear (0 echoed, 1 dropped unanswered)"), "{table}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!((&json["totals"]["marks_cleared"], &json["totals"]["marks_dropped"]), (&1.into(), &1.into()));
    assert_eq!(json["per_call"][0]["metrics"]["marks_dropped"], 1);
}

#[test]
fn jambonz_queues_a_mark_ahead_of_the_next_audio_and_keeps_at_most_30() {
    let (url, received, _, server) = raw_server(move |mut sink, _| async move {
        let t = Instant::now();
        let mark = |name: &str| Message::text(format!(r#"{{"type":"mark","data":{{"name":"{name}"}}}}"#));
        // 200 ms of audio and a mark after it; more audio only at 500 ms.
        sink.send(Message::binary(vec![0x10; 3_200])).await.unwrap();
        sink.send(mark("a")).await.unwrap();
        tokio::time::sleep_until((t + Duration::from_millis(500)).into()).await;
        sink.send(Message::binary(vec![0x10; 1_600])).await.unwrap();
        // Marks with no audio after them: 30 wait, the 31st is one too many.
        for k in 0..31 {
            sink.send(mark(&format!("b{k}"))).await.unwrap();
        }
        tokio::time::sleep_until((t + Duration::from_millis(800)).into()).await;
        sink.send(Message::text(r#"{"type":"killAudio"}"#)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut options = CallOptions::new(&url);
    options.dialect = Dialect::Jambonz;
    let r = one_call(&options, &Script::new().silence(Duration::from_millis(1_000)));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let echoes: Vec<(Instant, serde_json::Value)> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(at, t)| (*at, json(t)))
        .filter(|(_, m)| m["type"] == "mark")
        .collect();
    let start = r.stream_start;
    // "a" waited for the next audio, and played when it started playing.
    let (at, a) = &echoes[0];
    assert_eq!((a["data"]["name"].as_str(), a["data"]["event"].as_str()), (Some("a"), Some("playout")));
    let after = ms_between(start, *at);
    assert!((495.0..=540.0).contains(&after), "'a' echoed {after:.0} ms into the stream\n{timeline}");
    // The 30 it kept were still waiting at the killAudio; the 31st was discarded.
    let cleared: Vec<&str> = echoes[1..].iter().map(|(_, m)| m["data"]["name"].as_str().unwrap()).collect();
    assert_eq!(cleared, (0..30).map(|k| format!("b{k}")).collect::<Vec<_>>(), "{timeline}");
    assert!(echoes[1..].iter().all(|(_, m)| m["data"]["event"] == "cleared"), "{echoes:?}");
    let m = &r.metrics;
    assert_eq!((m.marks, m.marks_played, m.marks_cleared, m.bad_messages), (31, 1, 30, 1), "{timeline}");
}

#[test]
fn a_network_stall_holds_the_callers_frames_then_delivers_them_at_once_complete_and_in_order() {
    let (url, received, _, server) = raw_server(|sink, _| async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(sink);
    });
    // 3.6 s of caller audio, every frame distinct, so order and completeness show in the payloads.
    let frames = 180u64;
    let clip: Vec<u8> =
        (0..frames).flat_map(|k| (0..160u64).map(move |i| ((k * 7 + i) % 251) as u8)).collect();
    let mut options = CallOptions::new(&url);
    options.line_noise_dbfs = None;
    // A stall at 2 s of the call, for 1 s: the frames due then (stream time 1980..2960 ms, sent
    // once recorded, 20 ms later) wait, and leave at 3000 ms with the one due then.
    options.impairments = Impairments { stall_every_ms: 2_000, stall_ms: 1_000, ..Default::default() };
    let script = Script::new().say(CallerAudio::from_ulaw(clip.clone()).with_speech([]));
    let r = one_call(&options, &script);
    assert!(r.ok(), "{:?}", r.error);
    server.join().unwrap();

    let msgs: Vec<(Instant, serde_json::Value)> =
        received.lock().unwrap().iter().map(|(t, m)| (*t, json(m))).collect();
    assert_eq!(msgs.last().unwrap().1["event"], "stop");
    let media: Vec<(Instant, u64, Vec<u8>)> = msgs
        .iter()
        .filter(|(_, m)| m["event"] == "media")
        .map(|(at, m)| {
            let ts = m["media"]["timestamp"].as_str().unwrap().parse().unwrap();
            let payload = m["media"]["payload"].as_str().unwrap();
            use base64::Engine as _;
            (*at, ts, base64::engine::general_purpose::STANDARD.decode(payload).unwrap())
        })
        .collect();
    // Complete and in order: every frame once, in stream order, with its own audio.
    assert_eq!(
        media.iter().map(|m| m.1).collect::<Vec<_>>(),
        (0..frames).map(|k| k * 20).collect::<Vec<_>>()
    );
    for (k, (_, _, payload)) in media.iter().enumerate() {
        assert_eq!(payload[..], clip[k * 160..(k + 1) * 160], "frame {k}");
    }
    // On the wire: nothing for about the stall's length, then its 50 frames (and the one due as
    // it ended) at once, then frames every 20 ms again.
    let after = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1000.0;
    let ms = |ts: u64| (ts / 20) as usize;
    let gap = after(media[ms(1960)].0, media[ms(1980)].0);
    assert!(
        (950.0..=1_100.0).contains(&gap),
        "{gap:.0} ms between the last frame before the stall and the next"
    );
    let spread = after(media[ms(1980)].0, media[ms(2980)].0);
    assert!(spread < 10.0, "the 51 frames of the burst arrived over {spread:.1} ms");
    let largest = media.windows(2).map(|w| after(w[0].0, w[1].0)).fold(0.0, f64::max);
    assert_eq!(largest, gap, "the stall is the one long silence");
    let i = r.metrics.impairments;
    assert_eq!((i.stalls, i.stalled_ms, i.largest_stall_burst), (1, 1_000, 50));
    assert_eq!(r.metrics.frames_sent, frames);
    let report = Report::new(std::slice::from_ref(&r));
    assert!(
        report.table().contains("1 stalls (1000 ms held, largest burst 50 frames)"),
        "{}",
        report.table()
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(
        (&json["totals"]["stalls"], &json["totals"]["stalled_ms"], &json["totals"]["largest_stall_burst"]),
        (&serde_json::json!(1), &serde_json::json!(1000), &serde_json::json!(50))
    );
    assert_eq!(json["per_call"][0]["metrics"]["impairments"]["largest_stall_burst"], 50);
}

#[test]
fn after_network_stalls_the_bot_still_hears_every_frame_of_the_caller() {
    let bot = Bot::start(bot_session(), vec![], None);
    let mut options = CallOptions::new(&bot.url);
    // Two 1 s stalls (at 2 s and 4 s) in 5 s of speech: each lands 50 frames on the engine at once.
    options.impairments = Impairments { stall_every_ms: 2_000, stall_ms: 1_000, ..Default::default() };
    let r = one_call(&options, &Script::new().say(caller().slice_ms(0, 5_000)));
    assert!(r.ok(), "{:?}", r.error);
    let i = r.metrics.impairments;
    assert_eq!((i.stalls, i.largest_stall_burst, r.metrics.frames_sent), (2, 50, 250));
    let deadline = Instant::now() + Duration::from_secs(3);
    while bot.finals.lock().unwrap().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let finals = bot.finals.lock().unwrap().clone();
    let stats = finals.first().expect("the call's stream stopped");
    // Every frame reached the host, in place: none late, none filled in, no audio dropped.
    assert_eq!(stats.media_frames_in, 250, "{stats:?}");
    assert_eq!(stats.inbound_samples, 250 * 160, "{stats:?}");
    assert_eq!(
        (stats.frames_late, stats.frames_reordered, stats.gap_fill_samples, stats.agent_samples_dropped),
        (0, 0, 0, 0),
        "{stats:?}"
    );
}

#[test]
fn the_cli_refuses_bursts_as_long_as_their_period() {
    // Such a burst would hold every frame until the hang-up.
    for burst in [
        &["--burst", "5", "--burst-every", "5"][..],
        &["--burst", "8", "--burst-every", "4"],
        &["--burst", "50"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_callsim"))
            .args(["--url", "ws://127.0.0.1:9/media", "--quiet", "--speech", "0-100"])
            .args(burst)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{burst:?}: {stderr}");
        assert!(
            stderr.contains("--burst") && stderr.contains("less than --burst-every"),
            "{burst:?}: {stderr}"
        );
    }
}

#[test]
fn a_server_that_never_answers_the_upgrade_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut options = CallOptions::new(format!("ws://{}/media", listener.local_addr().unwrap()));
    options.connect_timeout = Duration::from_millis(300);
    let began = Instant::now();
    let r = one_call(&options, &Script::new().silence(Duration::from_millis(100)));
    assert!(matches!(r.error, Some(CallError::Handshake(_))), "{:?}", r.error);
    assert!(began.elapsed() < Duration::from_secs(2));
    assert_eq!(r.metrics.frames_sent, 0);
    drop(listener);
}

/// The caller's audio as the bot received it: the µ-law media payloads in timestamp order, decoded.
fn caller_audio_received(received: &Received) -> Vec<f64> {
    use base64::Engine as _;
    let mut frames: Vec<(u64, Vec<u8>)> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, t)| json(t))
        .filter(|v| v["event"] == "media")
        .map(|v| {
            let ts = v["media"]["timestamp"].as_str().unwrap().parse().unwrap();
            let payload = v["media"]["payload"].as_str().unwrap();
            (ts, base64::engine::general_purpose::STANDARD.decode(payload).unwrap())
        })
        .collect();
    frames.sort_by_key(|f| f.0);
    frames
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&c| f64::from(trunkline::codec::ulaw_to_linear(c))))
        .collect()
}

/// With an echo path, what the caller's line sends back is the bot's audio as the caller heard
/// it: delayed by the path's delay after the carrier played it, quieter by its return loss
/// (measured on the wire against the tone the bot sent), and ending where a `clear` cut it.
#[test]
fn an_echo_path_returns_what_the_caller_heard_delayed_and_quieter() {
    use base64::Engine as _;
    let tone = tone_8k(1000);
    let ulaw: Vec<u8> = tone.iter().map(|&s| trunkline::codec::linear_to_ulaw(s)).collect();
    let payload = base64::engine::general_purpose::STANDARD.encode(&ulaw);
    let (url, received, _, server) = raw_server(move |mut sink, sid| async move {
        // One second of tone at once, then `clear` 600 ms later: 400 ms never play.
        let media = format!(r#"{{"event":"media","streamSid":"{sid}","media":{{"payload":"{payload}"}}}}"#);
        sink.send(Message::text(media)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(600)).await;
        sink.send(Message::text(format!(r#"{{"event":"clear","streamSid":"{sid}"}}"#))).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut options = CallOptions::new(&url);
    options.line_noise_dbfs = None;
    options.echo = Some(callsim::EchoPath { erl_db: 10.0, delay_ms: 120, tail_ms: 0 });
    let r = one_call(&options, &Script::new().silence(Duration::from_millis(1_500)));
    server.join().unwrap();
    assert!(r.ok(), "{}", callsim::format_timeline(&r, None));
    let heard = caller_audio_received(&received);
    let onset = heard.iter().position(|s| s.abs() > 50.0).expect("an echo");
    let end = heard.iter().rposition(|s| s.abs() > 50.0).expect("an echo");
    // The tone reached callsim within a few ms of the stream's start (the bot sends it as soon
    // as `start` arrives); its echo follows 120 ms later, and lasts the 600 ms that played.
    assert!((960..960 + 30 * 8).contains(&onset), "echo onset at {} ms", onset / 8);
    let lasted_ms = (end - onset) / 8;
    assert!((570..=620).contains(&lasted_ms), "the echo lasted {lasted_ms} ms");
    // Its level: the echo against the same stretch of the tone (the echo of sample n is tone
    // sample n − onset), 10 dB down, within the µ-law quantisation.
    let echo = &heard[onset..onset + 4000];
    let source: Vec<f64> = tone[..4000].iter().map(|&s| f64::from(s)).collect();
    let power = |x: &[f64]| x.iter().map(|v| v * v).sum::<f64>();
    let erl = 10.0 * (power(&source) / power(echo)).log10();
    assert!((erl - 10.0).abs() < 0.5, "echo return loss {erl:.2} dB");
}

#[test]
fn a_reply_still_playing_at_the_hang_up_ends_there() {
    // A bot that hands over 5 s of audio at once and never closes: the caller hangs up after
    // 1 s, and what it heard of the reply ends at the hang-up, not after the wait for the bot's
    // close that follows it.
    let (url, _, _, server) = raw_server(move |mut sink, sid| async move {
        let frame = silence_frame(&sid);
        for _ in 0..250 {
            sink.send(Message::text(frame.clone())).await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    });
    let r = one_call(&CallOptions::new(&url), &Script::new().silence(Duration::from_millis(1_000)));
    server.join().unwrap();
    let timeline = callsim::format_timeline(&r, None);
    assert!(r.ok(), "{timeline}");
    let started = first(&r, |e| matches!(e, CallEvent::BotReplyStarted { .. })).at;
    let hang_up = first(&r, |e| matches!(e, CallEvent::StopSent)).at;
    let ended = first(&r, |e| matches!(e, CallEvent::BotReplyEnded { .. }));
    let CallEvent::BotReplyEnded { played_ms, .. } = ended.event else { unreachable!() };
    let heard_ms = hang_up.duration_since(started).as_secs_f64() * 1000.0;
    assert!(
        played_ms <= heard_ms + 1.0,
        "{played_ms} ms played, {heard_ms:.0} ms to the hang-up\n{timeline}"
    );
    assert!(ended.at <= hang_up, "{timeline}");
}
