//! `/metrics`, `/healthz`, `/readyz` and drain, over loopback: real calls through the server,
//! scraped over HTTP and read back with a Prometheus text parser (`prometheus-parse`), compared
//! with the sessions' own `stats()` and the server's `stats()`. Every wait is bounded.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use trunkline::{Engine, EngineConfig, Event, SessionStats};
use trunkline_server::{OffloadConfig, OffloadError, OffloadServer, OffloadedCall, Route, ServerStats};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn engine() -> Arc<Engine> {
    Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Polls `done` every 10 ms for up to 10 s; whether it came true.
fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}

/// An HTTP answer: status, `Content-Type`, body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 request over a fresh connection (the server closes it after answering).
fn http(addr: SocketAddr, method: &str, path: &str, accept: Option<&str>) -> Answer {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(tcp, "{method} {path} HTTP/1.1\r\nHost: test\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type =
        head.lines().find_map(|l| l.strip_prefix("Content-Type: ")).unwrap_or_default().to_owned();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
    if method != "HEAD" {
        assert_eq!(body.len(), length, "Content-Length");
    }
    Answer { status, content_type, body: body.to_owned() }
}

/// A scrape, parsed.
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn get(addr: SocketAddr) -> Self {
        let answer = http(addr, "GET", "/metrics", None);
        assert_eq!(answer.status, 200);
        assert_eq!(answer.content_type, "text/plain; version=0.0.4; charset=utf-8");
        let lines = answer.body.lines().map(|l| Ok(l.to_owned()));
        Self(prometheus_parse::Scrape::parse(lines).unwrap())
    }

    /// The value of `metric` with the label `label` (name, value), if given.
    fn value(&self, metric: &str, label: Option<(&str, &str)>) -> f64 {
        let sample = self
            .0
            .samples
            .iter()
            .find(|s| s.metric == metric && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)));
        match sample.unwrap_or_else(|| panic!("no {metric} {label:?}")).value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{metric}: {other:?}"),
        }
    }

    fn counter(&self, metric: &str) -> u64 {
        let sample = self.0.samples.iter().find(|s| s.metric == metric);
        match sample.unwrap_or_else(|| panic!("no {metric}")).value {
            prometheus_parse::Value::Counter(v) => v as u64,
            ref other => panic!("{metric} is not a counter: {other:?}"),
        }
    }

    /// Every session counter summed, as scraped (counters of µs are exported in seconds).
    fn session_counters(&self) -> Vec<(&'static str, u64)> {
        let fields = SessionStats::default().fields();
        fields
            .iter()
            .filter(|(f, _)| *f != "jitter_us")
            .map(|(f, _)| match f.strip_suffix("_us") {
                Some(stem) => {
                    let seconds = self.value(&format!("trunkline_session_{stem}_seconds_total"), None);
                    (*f, (seconds * 1e6).round() as u64)
                }
                None => (*f, self.counter(&format!("trunkline_session_{f}_total"))),
            })
            .collect()
    }
}

/// The host: takes calls, drains their events and audio, and keeps them until told to drop one.
struct Host {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<(OffloadedCall, bool)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Host {
    fn start(engine: Arc<Engine>, server: Arc<OffloadServer>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let calls: Arc<Mutex<Vec<(OffloadedCall, bool)>>> = Arc::default();
        let (s, c) = (stop.clone(), calls.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                engine.wait(Some(Duration::from_millis(5)));
                let mut calls = c.lock().unwrap();
                while let Some(call) = server.accept() {
                    calls.push((call, false));
                }
                for (call, stopped) in calls.iter_mut() {
                    while let Some(event) = call.session.poll_event() {
                        *stopped |= event == Event::Stopped;
                    }
                    let mut pcm = [0i16; 1024];
                    while call.session.read_audio(&mut pcm) > 0 {}
                }
            }
        });
        Self { stop, calls, thread: Some(thread) }
    }

    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    /// Every call's stats.
    fn stats(&self) -> Vec<SessionStats> {
        self.calls.lock().unwrap().iter().map(|(c, _)| c.session.stats()).collect()
    }

    fn stopped(&self) -> usize {
        self.calls.lock().unwrap().iter().filter(|(_, stopped)| *stopped).count()
    }

    /// Drops (closes) the call whose id is `call_id`.
    fn drop_call(&self, call_id: &str) {
        self.calls.lock().unwrap().retain(|(c, _)| c.start.call_id != call_id);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.take().unwrap().join();
    }
}

fn sum(stats: &[SessionStats]) -> Vec<(&'static str, u64)> {
    let fields = SessionStats::default().fields();
    fields
        .iter()
        .enumerate()
        .filter(|(_, (f, _))| *f != "jitter_us")
        .map(|(i, (f, _))| (*f, stats.iter().map(|s| s.values()[i]).sum()))
        .collect()
}

/// A Twilio call with `call_sid`: connected, start, then `frames` of the speech fixture.
async fn call(addr: SocketAddr, path: &str, call_sid: &str, frames: usize) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}")).await.unwrap();
    let (audio, _) = speech();
    ws.send(Message::text(connected())).await.unwrap();
    ws.send(Message::text(start().replace(CALL_SID, call_sid))).await.unwrap();
    for i in 0..frames {
        let m = media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &audio[i * 160..(i + 1) * 160]);
        ws.send(Message::text(m)).await.unwrap();
    }
    ws
}

/// Reads until the server closes; whether a close frame came (with its code).
async fn until_closed(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// The server's counters as scraped, with the values the scrape itself changes accounted for:
/// its connection is counted before the rendering, its scrape after.
fn assert_server_counters(scrape: &Scrape, after: &ServerStats) {
    for (name, value) in ServerStats::NAMES_NUL.iter().zip(after.values()) {
        let field = name.trim_end_matches('\0');
        let expected = if field == "scrapes" { value - 1 } else { value };
        if field == "active" {
            assert_eq!(scrape.value("trunkline_server_active", None), expected as f64);
        } else {
            assert_eq!(scrape.counter(&format!("trunkline_server_{field}_total")), expected, "{field}");
        }
    }
}

#[test]
fn metrics_match_the_sessions_and_the_server_and_survive_the_calls() {
    let engine = engine();
    let twilio = |path: &str| Route { path: path.into(), dialect: "twilio".into(), ..Default::default() };
    let config = OffloadConfig { routes: vec![twilio("/a"), twilio("/b")], ..Default::default() };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let addr = server.local_addr();
    let host = Host::start(engine.clone(), server.clone());
    let rt = runtime();
    let mut first = rt.block_on(call(addr, "/a", "CAfirst", 50));
    let mut second = rt.block_on(call(addr, "/b", "CAsecond", 30));
    assert!(eventually(
        || host.count() == 2 && host.stats().iter().map(|s| s.media_frames_in).sum::<u64>() == 80
    ));

    // Two live calls: the scrape is the sessions' stats summed, and the server's counters.
    let (scrape, expected) = loop {
        let before = host.stats();
        let scrape = Scrape::get(addr);
        // Nothing moves in a call with no new messages: take a scrape between equal readings.
        if host.stats() == before {
            break (scrape, sum(&before));
        }
    };
    assert_eq!(scrape.session_counters(), expected);
    assert_eq!(scrape.value("trunkline_calls_active", None), 2.0);
    assert_eq!(scrape.counter("trunkline_calls_opened_total"), 2);
    for outcome in ["stopped", "closed", "failed"] {
        assert_eq!(scrape.value("trunkline_calls_total", Some(("outcome", outcome))), 0.0);
    }
    assert_eq!(scrape.value("trunkline_media_frames_total", Some(("direction", "in"))), 80.0);
    let frames_out = expected.iter().find(|(f, _)| *f == "frames_out").unwrap().1;
    assert_eq!(scrape.value("trunkline_messages_out_total", Some(("kind", "media"))), frames_out as f64);
    // Line quality is counted as calls end: none has yet.
    assert_eq!(scrape.value("trunkline_call_mos_count", None), 0.0);
    assert_server_counters(&scrape, &server.stats());
    assert_eq!(scrape.value("trunkline_route_accepted_total", Some(("route", "/a"))), 1.0);
    assert_eq!(scrape.value("trunkline_route_accepted_total", Some(("route", "/b"))), 1.0);
    assert_eq!(scrape.value("trunkline_server_draining", None), 0.0);
    // Every message a worker processed is in the latency histogram.
    let messages: u64 = host.stats().iter().map(|s| s.messages_in).sum();
    assert_eq!(scrape.value("trunkline_engine_latency_seconds_count", None), messages as f64);
    let histogram = scrape.0.samples.iter().find(|s| s.metric == "trunkline_engine_latency_seconds");
    let prometheus_parse::Value::Histogram(buckets) = &histogram.expect("the histogram").value else {
        panic!("not a histogram")
    };
    assert_eq!(buckets.last().map(|b| (b.less_than, b.count)), Some((f64::INFINITY, messages as f64)));
    assert!(scrape.value("trunkline_worker_cpu_seconds_total", Some(("worker", "0"))) > 0.0);

    // The first call's carrier stops: the host sees `Stopped` and drops the call.
    rt.block_on(async {
        first.send(Message::text(stop(60))).await.unwrap();
        first.close(None).await.unwrap();
    });
    assert!(eventually(|| host.stopped() == 1));
    host.drop_call("CAfirst");
    assert!(eventually(
        || Scrape::get(addr).value("trunkline_calls_total", Some(("outcome", "stopped"))) == 1.0
    ));
    let after_first = Scrape::get(addr);
    assert_eq!(after_first.value("trunkline_calls_active", None), 1.0);
    // Counts of a freed session stay in the totals: nothing goes back.
    for ((field, now), (_, then)) in after_first.session_counters().into_iter().zip(&expected) {
        assert!(now >= *then, "{field}: {now} after {then}");
    }
    assert_eq!(after_first.value("trunkline_media_frames_total", Some(("direction", "in"))), 80.0);

    // The host closes the second call while it streams: outcome `closed`, its carrier told so.
    host.drop_call("CAsecond");
    assert_eq!(rt.block_on(until_closed(&mut second)), Some(1000));
    assert!(eventually(
        || Scrape::get(addr).value("trunkline_calls_total", Some(("outcome", "closed"))) == 1.0
    ));
    assert!(eventually(|| server.stats().active == 0));
    let last = Scrape::get(addr);
    assert_eq!(last.value("trunkline_calls_active", None), 0.0);
    // Both calls carried caller audio: each rated once as it ended, with nothing lost on
    // loopback (so a clean G.711 line, MOS above 4.3).
    assert_eq!(last.value("trunkline_call_mos_count", None), 2.0);
    assert_eq!(last.value("trunkline_call_loss_ratio_sum", None), 0.0);
    assert_eq!(last.value("trunkline_call_jitter_seconds_count", None), 2.0);
    let mos = last.0.samples.iter().find(|s| s.metric == "trunkline_call_mos").expect("the MOS histogram");
    let prometheus_parse::Value::Histogram(buckets) = &mos.value else { panic!("not a histogram") };
    let at = |bound: f64| buckets.iter().find(|b| b.less_than == bound).map(|b| b.count);
    assert_eq!((at(4.3), at(4.5)), (Some(0.0), Some(2.0)), "{buckets:?}");
    assert_eq!(last.counter("trunkline_calls_opened_total"), 2);
    assert_eq!(last.value("trunkline_calls_total", Some(("outcome", "stopped"))), 1.0);
    assert_eq!(last.value("trunkline_server_active", None), 0.0);
    for ((field, now), (_, then)) in last.session_counters().into_iter().zip(after_first.session_counters()) {
        assert!(now >= then, "{field}: {now} after {then}");
    }
    assert_server_counters(&last, &server.stats());
}

#[test]
fn health_and_readiness_on_the_stream_port() {
    let engine = engine();
    let config = OffloadConfig { paths: vec!["/media".into()], max_sessions: 1, ..Default::default() };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let addr = server.local_addr();
    let _host = Host::start(engine.clone(), server.clone());

    let health = http(addr, "GET", "/healthz", None);
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http(addr, "GET", "/readyz?verbose", None);
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert!(server.is_ready());
    let head = http(addr, "HEAD", "/healthz", None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(http(addr, "POST", "/metrics", None).status, 405);
    let open_metrics = http(addr, "GET", "/metrics", Some("application/openmetrics-text;version=1.0.0"));
    assert_eq!(open_metrics.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(open_metrics.body.ends_with("# EOF\n"));

    // At max_sessions: not ready, still healthy; a WebSocket client on a plain path gets HTTP.
    let rt = runtime();
    let mut ws = rt.block_on(call(addr, "/media", "CAone", 5));
    assert!(eventually(|| http(addr, "GET", "/readyz", None).status == 503));
    assert_eq!(http(addr, "GET", "/readyz", None).body, "at capacity\n");
    assert!(!server.is_ready());
    assert_eq!(http(addr, "GET", "/healthz", None).status, 200);
    match rt.block_on(tokio_tungstenite::connect_async(format!("ws://{addr}/metrics"))) {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 200),
        other => panic!("upgrade on /metrics: {:?}", other.map(|_| ())),
    }
    rt.block_on(ws.close(None)).unwrap();
    assert!(eventually(|| http(addr, "GET", "/readyz", None).status == 200));

    let stats = server.stats();
    // Scrapes: the OpenMetrics one and the upgrade attempt on /metrics; the POST was refused.
    assert_eq!((stats.scrapes, stats.handshake_failures), (2, 1), "{stats:?}");
    assert!(stats.health_checks >= 7, "{stats:?}");
    assert_eq!(Scrape::get(addr).counter("trunkline_server_scrapes_total"), 2);

    // The plain paths cannot be stream paths.
    for paths in [vec!["/metrics".to_owned()], vec!["/media".to_owned(), "/readyz".to_owned()]] {
        let config = OffloadConfig { paths, ..Default::default() };
        assert!(matches!(OffloadServer::start(&engine, config), Err(OffloadError::Invalid(_))));
    }
    let route = Route { path: "/healthz".into(), dialect: "twilio".into(), ..Default::default() };
    let config = OffloadConfig { routes: vec![route], ..Default::default() };
    assert!(matches!(OffloadServer::start(&engine, config), Err(OffloadError::Invalid(_))));
}

#[test]
fn drain_refuses_new_calls_and_ends_live_ones_within_the_grace() {
    let engine = engine();
    let server = Arc::new(OffloadServer::start(&engine, OffloadConfig::default()).unwrap());
    let addr = server.local_addr();
    let host = Host::start(engine.clone(), server.clone());
    let rt = runtime();
    let mut calls: Vec<Ws> =
        ["CA1", "CA2", "CA3"].iter().map(|sid| rt.block_on(call(addr, "/media", sid, 10))).collect();
    assert!(eventually(|| host.count() == 3));
    assert_eq!(http(addr, "GET", "/readyz", None).status, 200);

    let grace = Duration::from_millis(1500);
    let t = Instant::now();
    let drainer = {
        let server = server.clone();
        std::thread::spawn(move || server.drain(grace))
    };
    // At once: not ready, new calls refused with 503 (and counted), still healthy and scraped.
    assert!(eventually(|| http(addr, "GET", "/readyz", None).status == 503));
    assert_eq!(http(addr, "GET", "/readyz", None).body, "draining\n");
    match rt.block_on(tokio_tungstenite::connect_async(format!("ws://{addr}/media"))) {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("an upgrade while draining: {:?}", other.map(|_| ())),
    }
    // Counted once the refusal is written: the client may read it first.
    assert!(eventually(|| server.stats().rejected_draining == 1));
    assert_eq!(http(addr, "GET", "/healthz", None).status, 200);
    let scrape = Scrape::get(addr);
    assert_eq!(scrape.value("trunkline_server_draining", None), 1.0);
    assert_eq!(scrape.counter("trunkline_server_rejected_draining_total"), 1);
    assert!(t.elapsed() < grace, "the checks above took the whole grace period");

    // The live calls go on until the grace ends, then are closed as "going away".
    let codes: Vec<Option<u16>> = rt.block_on(async {
        let mut codes = vec![];
        for ws in &mut calls {
            codes.push(until_closed(ws).await);
        }
        codes
    });
    let closed_after = t.elapsed();
    assert_eq!(codes, vec![Some(1001); 3]);
    assert!(closed_after >= grace - Duration::from_millis(50), "{closed_after:?}");
    assert!(drainer.join().unwrap(), "drain returned before every call ended");
    assert!(t.elapsed() < grace + Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(server.stats().active, 0);
    // Every host got `Stopped`.
    assert!(eventually(|| host.stopped() == 3));
    // The server still answers after the drain, and still refuses calls.
    assert_eq!(http(addr, "GET", "/readyz", None).status, 503);
    assert!(rt.block_on(tokio_tungstenite::connect_async(format!("ws://{addr}/media"))).is_err());
}
