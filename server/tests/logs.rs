//! The server's logs, recorded by a `tracing` layer of the test's own: a real call over loopback
//! logs its start and its end with the carrier's ids and the messages the client counted both
//! ways; refused upgrades log a warning naming the reason; and the number of events a call makes
//! does not grow with its length (nothing per frame). Every wait is bounded.

#[path = "../../engine/tests/support/alloc_guarded.rs"]
mod alloc_guarded;
#[path = "../../engine/tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use trunkline::protocol::signature;
use trunkline::{Engine, EngineConfig, Event as CallEvent, Session};
use trunkline_server::{OffloadConfig, OffloadServer};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One event as the layer saw it: level, target, and every field (the message as `message`) in
/// its text form.
#[derive(Debug, Clone)]
struct Recorded {
    level: Level,
    target: String,
    fields: BTreeMap<String, String>,
}

impl Recorded {
    fn message(&self) -> &str {
        self.field("message")
    }

    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

static EVENTS: Mutex<Vec<Recorded>> = Mutex::new(Vec::new());

/// Records every event, at every level: a test sees exactly what a subscriber would be given.
struct Recorder;

struct FieldText<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldText<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut FieldText(&mut fields));
        let meta = event.metadata();
        let recorded = Recorded { level: *meta.level(), target: meta.target().to_owned(), fields };
        EVENTS.lock().unwrap_or_else(|e| e.into_inner()).push(recorded);
    }
}

/// Installs the recorder (once per process: a global default, since the server logs from its own
/// threads) and serializes the tests, which share it; the events recorded so far are cleared.
fn recording() -> MutexGuard<'static, ()> {
    static INSTALL: Once = Once::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Recorder))
            .expect("no other subscriber in this test binary");
    });
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    events_clear();
    guard
}

fn events_clear() {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The server's events recorded so far.
fn events() -> Vec<Recorded> {
    let all = EVENTS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    all.into_iter().filter(|e| e.target.starts_with("trunkline")).collect()
}

/// Waits (up to 10 s) for an event with `message`; all events recorded by then.
fn wait_for(message: &str) -> Vec<Recorded> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = events();
        if seen.iter().any(|e| e.message() == message) || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn connect(url: &str, signature: Option<&str>) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if let Some(sig) = signature {
        request.headers_mut().insert("X-Twilio-Signature", sig.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// The host: takes the one call, plays `reply` (8 kHz) then a mark named `done` if it is not
/// empty, reads the caller's audio and polls events until `Stopped` (at most 10 s); returns the
/// session, whose counters the tests compare with the logs.
fn host(
    engine: Arc<Engine>,
    server: Arc<OffloadServer>,
    reply: Vec<i16>,
) -> std::thread::JoinHandle<Session> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut call = loop {
            engine.wait(Some(Duration::from_millis(10)));
            if let Some(call) = server.accept() {
                break call;
            }
            assert!(Instant::now() < deadline, "no call reached the host");
        };
        let mut played = 0;
        let mut marked = reply.is_empty();
        let mut pcm = [0i16; 1024];
        while Instant::now() < deadline {
            engine.wait(Some(Duration::from_millis(5)));
            played += call.session.play(&reply[played..], 8_000).unwrap_or(0);
            if played == reply.len() && !marked {
                call.session.mark("done").unwrap();
                marked = true;
            }
            while call.session.read_audio(&mut pcm) > 0 {}
            let mut stopped = false;
            while let Some(event) = call.session.poll_event() {
                stopped |= matches!(event, CallEvent::Stopped);
            }
            if stopped {
                break;
            }
        }
        call.session
    })
}

/// The next message: `Some(Some(text))`, `Some(None)` for another kind, `None` once the
/// connection ended (or nothing came for 5 s).
async fn read(ws: &mut Ws) -> Option<Option<String>> {
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(Some(t.as_str().to_owned())),
        Ok(Some(Ok(_))) => Some(None),
        _ => None,
    }
}

/// A silent caller (so that no barge-in cuts the reply short): `connected`, `start`, `frames`
/// media messages, then (if `until_mark`) reads until the mark `done` comes; then `stop`, a close,
/// and everything the server sends until the connection ends. Returns (messages sent, text
/// messages received).
async fn caller(ws: &mut Ws, frames: usize, until_mark: bool) -> (u64, u64) {
    let silence = [0xFFu8; 160];
    let mut sent = 0;
    let mut received = 0;
    let mut messages = vec![connected(), start()];
    messages.extend((0..frames as u64).map(|i| media(i + 2, i + 1, i * 20, &silence)));
    for m in messages {
        ws.send(Message::text(m)).await.unwrap();
        sent += 1;
    }
    if until_mark {
        while let Some(message) = read(ws).await {
            let Some(text) = message else { continue };
            received += 1;
            if parse_outbound(text.as_bytes()) == Outbound::Mark("done".into()) {
                break;
            }
        }
    }
    ws.send(Message::text(stop(frames as u64 + 2))).await.unwrap();
    sent += 1;
    ws.close(None).await.unwrap();
    // A client that closed still gets the frames the server sent before it saw the close.
    while let Some(message) = read(ws).await {
        received += u64::from(message.is_some());
    }
    (sent, received)
}

#[test]
fn a_call_logs_its_start_and_its_end_with_the_messages_both_ways() {
    let _serial = recording();
    let engine = engine();
    let config = OffloadConfig { paths: vec!["/media".into()], ..Default::default() };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let url = format!("ws://{}/media", server.local_addr());
    let host = host(engine.clone(), server.clone(), vec![2000; 1600]); // 200 ms of reply
    let (sent, received) = runtime().block_on(async {
        let mut ws = connect(&url, None).await.unwrap();
        caller(&mut ws, 100, true).await
    });
    let session = host.join().unwrap();
    let seen = wait_for("call ended");

    let started: Vec<_> = seen.iter().filter(|e| e.message() == "call started").collect();
    let ended: Vec<_> = seen.iter().filter(|e| e.message() == "call ended").collect();
    assert_eq!((started.len(), ended.len()), (1, 1), "{seen:#?}");
    let (started, ended) = (started[0], ended[0]);
    assert_eq!(started.level, Level::INFO);
    assert_eq!(ended.level, Level::INFO);
    for e in [started, ended] {
        assert_eq!(e.field("call_id"), CALL_SID);
        assert_eq!(e.field("stream_id"), STREAM_SID);
        assert_eq!(e.field("dialect"), "twilio");
        assert_eq!(e.field("conn"), started.field("conn"), "one connection");
    }
    assert_eq!(started.field("path"), "/media");
    // connected + start + 100 media + stop, as the client sent them and as the session took them.
    assert_eq!(sent, 103);
    assert_eq!(ended.field("messages_in"), sent.to_string());
    assert_eq!(session.stats().messages_in, sent);
    // 200 ms of reply is 10 media frames; with the mark and whatever else the session sent, every
    // message the client received.
    assert!(received >= 11, "{received} messages received");
    assert_eq!(ended.field("messages_out"), received.to_string());
    assert_eq!(ended.field("outcome"), "carrier_left");
    assert!(ended.field("duration_ms").parse::<u64>().is_ok());
    // The session's own counters, as its worker had published them when the connection ended
    // (it may not have taken the last messages yet): at most the 100 frames sent, and a rating
    // of a clean line.
    let media_in: u64 = ended.field("media_frames_in").parse().unwrap();
    assert!((1..=100).contains(&media_in), "media_frames_in {media_in}");
    assert_eq!(ended.field("frames_late"), "0");
    let mos: f64 = ended.field("mos").parse().unwrap();
    assert!(mos > 4.0 && mos <= 4.5, "MOS {mos} on a clean line");
    // The connection's detail is there for whoever asks for `debug`.
    let accepted = seen.iter().find(|e| e.message() == "stream connection accepted").expect("debug line");
    assert_eq!((accepted.level, accepted.field("path")), (Level::DEBUG, "/media"));
    assert!(seen.iter().all(|e| e.level != Level::WARN && e.level != Level::ERROR), "{seen:#?}");
}

/// A load balancer's TCP check (connect, close without a byte) is counted as a failed handshake
/// and logged at debug level, on a TLS listener as on a plain one: over TLS each check logged a
/// warning, so an alert on warnings fired with every probe.
#[test]
fn a_tcp_check_that_sends_nothing_is_counted_without_a_warning_on_plain_and_tls_listeners() {
    let _serial = recording();
    let engine = engine();
    let fixture = |name: &str| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
    };
    let tls = trunkline_server::TlsConfig { cert_pem: fixture("cert.pem"), key_pem: fixture("key.pem") };
    // The TLS listener exists when the crate is built with `tls` (the workspace's tests are).
    let listeners = [("plain", None), ("tls", Some(tls))];
    for (what, tls) in listeners.into_iter().filter(|(_, tls)| cfg!(feature = "tls") || tls.is_none()) {
        events_clear();
        let config = OffloadConfig { paths: vec!["/media".into()], tls, ..Default::default() };
        let server = OffloadServer::start(&engine, config).unwrap();
        drop(std::net::TcpStream::connect(server.local_addr()).unwrap());
        let seen = wait_for("connection closed before any request");
        let closed = seen.iter().find(|e| e.message() == "connection closed before any request");
        assert_eq!(closed.map(|e| e.level), Some(Level::DEBUG), "{what}: {seen:#?}");
        assert!(seen.iter().all(|e| e.level != Level::WARN && e.level != Level::ERROR), "{what}: {seen:#?}");
        // Counted just after the line is logged.
        let deadline = Instant::now() + Duration::from_secs(5);
        while server.stats().handshake_failures == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.stats().handshake_failures, 1, "{what}");
    }
}

#[test]
fn refused_upgrades_log_a_warning_with_the_reason() {
    let _serial = recording();
    let engine = engine();
    let token = "0123456789abcdef0123456789abcdef";
    let config =
        OffloadConfig { paths: vec!["/media".into()], auth_token: Some(token.into()), ..Default::default() };
    let server = OffloadServer::start(&engine, config).unwrap();
    let addr = server.local_addr();
    runtime().block_on(async {
        let url = format!("ws://{addr}/media");
        let forged = signature::twilio_signature("not-the-token", &url, &[]);
        assert!(connect(&url, Some(&forged)).await.is_err());
        assert!(connect(&url, None).await.is_err());
        let good = signature::twilio_signature(token, &format!("ws://{addr}/elsewhere"), &[]);
        assert!(connect(&format!("ws://{addr}/elsewhere"), Some(&good)).await.is_err());
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let refusals = loop {
        let refusals: Vec<_> = events().into_iter().filter(|e| e.message() == "connection refused").collect();
        if refusals.len() >= 3 || Instant::now() > deadline {
            break refusals;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let reasons: Vec<(&str, &str, &str)> =
        refusals.iter().map(|e| (e.field("reason"), e.field("counter"), e.field("path"))).collect();
    assert_eq!(
        reasons,
        [
            ("bad_signature", "rejected_signature", "/media"),
            ("missing_signature", "rejected_signature_missing", "/media"),
            ("wrong_path", "rejected_path", "/elsewhere"),
        ]
    );
    assert!(refusals.iter().all(|e| e.level == Level::WARN));
    // The counters the lines name moved as the lines say.
    let stats = server.stats();
    assert_eq!((stats.rejected_signature, stats.rejected_signature_missing, stats.rejected_path), (2, 1, 1));
    assert!(events().iter().all(|e| e.message() != "call started"));
}

#[test]
fn a_call_logs_as_many_events_with_100_frames_as_with_10() {
    let _serial = recording();
    let engine = engine();
    let config = OffloadConfig { paths: vec!["/media".into()], ..Default::default() };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let url = format!("ws://{}/media", server.local_addr());
    let mut per_call = vec![];
    for frames in [10, 100] {
        events_clear();
        let host = host(engine.clone(), server.clone(), vec![]);
        let (sent, _) = runtime().block_on(async {
            let mut ws = connect(&url, None).await.unwrap();
            caller(&mut ws, frames, false).await
        });
        host.join().unwrap();
        let seen = wait_for("call ended");
        let ended = seen.iter().find(|e| e.message() == "call ended").expect("call ended");
        assert_eq!(ended.field("messages_in"), sent.to_string());
        per_call.push(seen.len());
    }
    // Accepted, upgraded, started, ended: whatever the length of the call.
    assert_eq!(per_call[0], per_call[1], "events for 10 and 100 frames");
    assert!(per_call[1] <= 6, "{} events for one call", per_call[1]);
}
