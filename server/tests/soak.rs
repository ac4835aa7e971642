//! Faults and load through the offload server, over loopback only (127.0.0.1), bounded in time
//! and in count (docs/reliability.md: the soak test).
//!
//! A bot on the host side echoes every call's caller audio back (8 kHz in, 8 kHz out: µ-law to
//! PCM and back is exact), so each well-behaved caller can check end to end that all of its
//! audio made the round trip unaltered (sample count and content hash) and measure each frame's
//! latency (sent → echoed back). Meanwhile other clients misbehave: some vanish mid-call without
//! `stop`, some stall (stop reading, keep sending, tiny receive buffer), some interleave garbage
//! with their audio (their good audio must still come back whole), some send raw non-HTTP bytes,
//! some open TCP connections and never handshake, some fail signature validation, and some well-behaved
//! callers have their network stall (a second of frames held every two seconds, then delivered at
//! once: their audio must come back whole as well). Checked: the
//! server stays up and serves a call afterwards, every refusal is counted, every session is
//! closed at the end, RSS stays bounded, and, in the long run, the well-behaved calls' latency p99
//! stays within 2× that of an unloaded run.
//!
//! `soak_short` (about 15 s, ~90 connections) runs with the tests and reports its latencies
//! without judging them: a debug build on shared cores measures the machine, not the server.
//! `soak_long` (a minute, ~400 connections, release) is the load measurement and holds the 2×
//! rule; it is `#[ignore]`d: `cargo test --release -p trunkline-server --test soak -- --ignored
//! --nocapture`.

#[path = "../../engine/tests/support/alloc_guarded.rs"]
mod alloc_guarded;
#[path = "../../engine/tests/common/mod.rs"]
mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use trunkline::protocol::signature;
use trunkline::{BargeInConfig, Engine, EngineConfig, Event, SessionConfig};
use trunkline_server::{OffloadConfig, OffloadServer, OffloadedCall};

const TOKEN: &str = "soak-test-auth-token-0123456789ab";

/// How many clients of each kind, and for how long.
#[derive(Debug, Clone)]
struct Plan {
    /// Load phase length; clients start spread over the first ~80% of it.
    duration: Duration,
    good: usize,
    /// 20 ms frames per well-behaved call.
    good_frames: usize,
    vanish: usize,
    stall: usize,
    garbage: usize,
    /// Well-behaved calls whose network stalls: 1 s of frames held every 2 s, then sent at once.
    net_stall: usize,
    raw_garbage: usize,
    no_handshake: usize,
    bad_signature: usize,
}

#[derive(Debug, Default)]
struct Report {
    calls_checked: usize,
    frames_checked: usize,
    unloaded_p50_ms: f64,
    unloaded_p99_ms: f64,
    loaded_p50_ms: f64,
    loaded_p99_ms: f64,
    loaded_max_ms: f64,
    rss_min_mb: f64,
    rss_max_mb: f64,
    rss_start_mb: f64,
    connections: usize,
    wall_s: f64,
}

fn rss_mb() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// FNV-1a, to compare content end to end.
fn fnv(hash: &mut u64, bytes: &[u8]) {
    for &b in bytes {
        *hash ^= u64::from(b);
        *hash = hash.wrapping_mul(0x100_0000_01b3);
    }
}
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Deterministic per-call audio: pseudo-random µ-law, without 0x7F (µ-law's negative zero,
/// which decodes to the same 0 as 0xFF and so cannot round-trip).
fn call_audio(id: u64, frames: usize) -> Vec<u8> {
    let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..frames * 160)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match (x >> 24) as u8 {
                0x7F => 0x7E,
                b => b,
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

// ------------------------------------------------------------------------------------ the bot

/// The host: accepts calls, echoes their audio, closes them when they stop.
struct Bot {
    stop: Arc<AtomicBool>,
    closed_calls: Arc<AtomicU64>,
    open_calls: Arc<AtomicU64>,
    echo_dropped: Arc<AtomicU64>,
    protocol_errors: Arc<AtomicU64>,
    /// Per callSid: agent samples lost by the engine (dropped or gap-filled) — must be 0 for
    /// well-behaved calls.
    losses: Arc<Mutex<HashMap<String, u64>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct BotCall {
    call: OffloadedCall,
    pending: Vec<i16>,
}

impl Bot {
    fn start(engine: Arc<Engine>, server: Arc<OffloadServer>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let closed_calls = Arc::new(AtomicU64::new(0));
        let open_calls = Arc::new(AtomicU64::new(0));
        let echo_dropped = Arc::new(AtomicU64::new(0));
        let protocol_errors = Arc::new(AtomicU64::new(0));
        let losses = Arc::new(Mutex::new(HashMap::new()));
        let (s, closed, open, dropped, errors, loss) = (
            stop.clone(),
            closed_calls.clone(),
            open_calls.clone(),
            echo_dropped.clone(),
            protocol_errors.clone(),
            losses.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("soak-bot".into())
            .spawn(move || {
                let mut calls: Vec<BotCall> = vec![];
                let mut pcm = vec![0i16; 8192];
                while !s.load(Ordering::Acquire) {
                    engine.wait(Some(Duration::from_millis(2)));
                    while let Some(call) = server.accept() {
                        open.fetch_add(1, Ordering::Relaxed);
                        calls.push(BotCall { call, pending: Vec::with_capacity(16_000) });
                    }
                    calls.retain_mut(|c| {
                        let session = &mut c.call.session;
                        loop {
                            let n = session.read_audio(&mut pcm);
                            if n == 0 {
                                break;
                            }
                            c.pending.extend_from_slice(&pcm[..n]);
                        }
                        // Echo everything read (`play` may take part of it: the rest goes next
                        // time, so that no tail waits for audio that may never come); a caller
                        // that stops reading fills the engine's queues, and then the echo is
                        // dropped (bounded) and counted here.
                        if !c.pending.is_empty()
                            && let Ok(n) = session.play(&c.pending, 8_000)
                        {
                            c.pending.drain(..n);
                        }
                        if c.pending.len() > 16_000 {
                            let excess = c.pending.len() - 16_000;
                            dropped.fetch_add(excess as u64, Ordering::Relaxed);
                            c.pending.drain(..excess);
                        }
                        let mut stopped = false;
                        while let Some(ev) = session.poll_event() {
                            match ev {
                                Event::Stopped => stopped = true,
                                Event::ProtocolError { .. } => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                }
                                _ => {}
                            }
                        }
                        if stopped || session.status().is_err() {
                            let st = session.stats();
                            loss.lock().unwrap().insert(
                                c.call.start.call_id.clone(),
                                st.agent_samples_dropped + st.gap_fill_samples,
                            );
                            session.close();
                            closed.fetch_add(1, Ordering::Relaxed);
                            return false;
                        }
                        true
                    });
                }
            })
            .unwrap();
        Self { stop, closed_calls, open_calls, echo_dropped, protocol_errors, losses, thread: Some(thread) }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.take().unwrap().join().unwrap();
    }
}

// -------------------------------------------------------------------------------- the clients

fn signed_request(
    addr: std::net::SocketAddr,
    id: u64,
    valid: bool,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let url = format!("ws://{addr}/media?call={id}");
    let sig = signature::twilio_signature(if valid { TOKEN } else { "wrong-token" }, &url, &[]);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("X-Twilio-Signature", sig.parse().unwrap());
    req
}

fn start_for(id: u64) -> String {
    start().replace(CALL_SID, &format!("CA{id:032}"))
}

/// What one well-behaved (or garbage-interleaving) call saw.
struct CallResult {
    frames_sent: usize,
    frames_back: usize,
    hash_sent: u64,
    hash_back: u64,
    latencies_ms: Vec<f64>,
}

/// A caller that streams `frames` of audio in real time (garbage interleaved if `garbage`),
/// echoes marks like Twilio, and collects the echoed audio until all of it is back.
async fn good_call(
    addr: std::net::SocketAddr,
    id: u64,
    frames: usize,
    garbage: bool,
    net_stall: bool,
) -> Result<CallResult, String> {
    // Without Nagle, like a carrier's media socket: small frames go out at once.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(signed_request(addr, id, true), None, true)
        .await
        .map_err(|e| format!("call {id}: connect: {e}"))?;
    let (mut tx, mut rx) = ws.split();
    let audio = call_audio(id, frames);
    let mut hash_sent = FNV_START;
    fnv(&mut hash_sent, &audio);
    let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(frames)));
    let (echo_tx, mut echo_rx) = tokio::sync::mpsc::unbounded_channel::<String>();

    let sender = {
        let sent_at = sent_at.clone();
        async move {
            tx.send(Message::text(connected())).await?;
            tx.send(Message::text(start_for(id))).await?;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0;
            let mut done_at: Option<Instant> = None;
            // Frames the stalled network holds back; they leave together when it recovers.
            let mut held: Vec<String> = vec![];
            loop {
                tokio::select! {
                    _ = tick.tick(), if i < frames => {
                        let m = media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &audio[i * 160..(i + 1) * 160]);
                        if net_stall && (40..90).contains(&(i % 100)) && i + 1 < frames {
                            held.push(m);
                        } else {
                            for m in held.drain(..).chain(std::iter::once(m)) {
                                sent_at.lock().unwrap().push(Instant::now());
                                tx.feed(Message::text(m)).await?;
                            }
                            tx.flush().await?;
                        }
                        if garbage {
                            match i % 5 {
                                0 => tx.send(Message::text("{\"event\":\"media\",")).await?,
                                1 => tx.send(Message::binary(vec![0xde, 0xad, 0xbe, 0xef])).await?,
                                2 => tx.send(Message::text(r#"{"event":"media","media":{"timestamp":"1","payload":"!!"}}"#)).await?,
                                3 => tx.send(Message::text(mark_echo(1, "never-sent"))).await?,
                                _ => tx.send(Message::text("\u{0}\u{1}garbage")).await?,
                            }
                        }
                        i += 1;
                        if i == frames {
                            done_at = Some(Instant::now());
                        }
                    }
                    echo = echo_rx.recv() => match echo {
                        Some(name) => tx.send(Message::text(mark_echo(9000, &name))).await?,
                        None => break, // the reader is done: everything came back
                    },
                    _ = tokio::time::sleep(Duration::from_secs(10)), if done_at.is_some() => break,
                }
            }
            tx.send(Message::text(stop(99_999))).await?;
            tx.close().await?;
            Ok::<_, tokio_tungstenite::tungstenite::Error>(())
        }
    };
    let reader = async move {
        let mut back = Vec::with_capacity(frames * 160);
        let mut recv_at = Vec::with_capacity(frames);
        let deadline = Instant::now() + Duration::from_millis(frames as u64 * 20) + Duration::from_secs(15);
        while back.len() < frames * 160 && Instant::now() < deadline {
            let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(5), rx.next()).await else {
                break;
            };
            let Message::Text(t) = msg else { continue };
            match parse_outbound(t.as_bytes()) {
                Outbound::Media(p) => {
                    let now = Instant::now();
                    back.extend_from_slice(&p);
                    recv_at.push(now);
                }
                Outbound::Mark(name) => {
                    let _ = echo_tx.send(name);
                }
                Outbound::Clear => return Err(format!("call {id}: unexpected clear")),
            }
        }
        drop(echo_tx);
        Ok((back, recv_at))
    };
    let (sent, read) = tokio::join!(sender, reader);
    sent.map_err(|e| format!("call {id}: send: {e}"))?;
    let (back, recv_at) = read?;
    let mut hash_back = FNV_START;
    fnv(&mut hash_back, &back);
    let sent_at = sent_at.lock().unwrap();
    let latencies_ms = recv_at
        .iter()
        .zip(sent_at.iter())
        .map(|(r, s)| r.duration_since(*s).as_secs_f64() * 1000.0)
        .collect();
    Ok(CallResult { frames_sent: frames, frames_back: back.len() / 160, hash_sent, hash_back, latencies_ms })
}

/// Streams a while, then drops the TCP connection without `stop` or a close frame.
async fn vanishing_call(addr: std::net::SocketAddr, id: u64, frames: usize) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(signed_request(addr, id, true)).await else {
        return;
    };
    let audio = call_audio(id, frames);
    let _ = ws.send(Message::text(connected())).await;
    let _ = ws.send(Message::text(start_for(id))).await;
    for i in 0..frames {
        let m = media(i as u64 + 2, i as u64 + 1, i as u64 * 20, &audio[i * 160..(i + 1) * 160]);
        if ws.send(Message::text(m)).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(ws); // vanish
}

/// Starts a call with a tiny receive buffer, then keeps sending audio and never reads, until
/// `until`.
async fn stalled_call(addr: std::net::SocketAddr, id: u64, until: Instant) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let _ = socket.set_recv_buffer_size(4096);
    let Ok(stream) = socket.connect(addr).await else { return };
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(signed_request(addr, id, true), stream).await
    else {
        return;
    };
    let audio = call_audio(id, 50);
    let _ = ws.send(Message::text(connected())).await;
    let _ = ws.send(Message::text(start_for(id))).await;
    let mut i = 0u64;
    let _ = tokio::time::timeout_at(until.into(), async {
        loop {
            let k = (i % 50) as usize;
            let m = media(i + 2, i + 1, i * 20, &audio[k * 160..(k + 1) * 160]);
            if ws.send(Message::text(m)).await.is_err() {
                return;
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    drop(ws);
}

/// Raw bytes that are not HTTP, then a wait for the server to hang up.
async fn raw_garbage(addr: std::net::SocketAddr, id: u64) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return false };
    let junk: Vec<u8> = call_audio(id, 4);
    let _ = s.write_all(&junk).await;
    // The server must close it (a refused handshake, or the handshake timeout).
    closed_by_server(&mut s).await
}

/// Whether the server closes `s` within 5 s (whatever it sends before).
async fn closed_by_server(s: &mut tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

/// A TCP connection that sends half an HTTP request and then nothing: the server must close it
/// after its handshake timeout.
async fn no_handshake(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return false };
    let _ = s.write_all(b"GET /media HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
    closed_by_server(&mut s).await
}

async fn bad_signature(addr: std::net::SocketAddr, id: u64) -> bool {
    match tokio_tungstenite::connect_async(signed_request(addr, id, false)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16() == 403,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------- the soak

fn soak(plan: &Plan) -> Report {
    let t0 = Instant::now();
    let engine = Arc::new(Engine::new(EngineConfig::default()).unwrap());
    let session = SessionConfig {
        agent_rate: 8_000,
        play_rate: 8_000,
        // The bot echoes the caller: its own "speech" must not interrupt it.
        barge_in: BargeInConfig { enabled: false, ..Default::default() },
        ..Default::default()
    };
    let config = OffloadConfig {
        paths: vec!["/media".into()],
        auth_token: Some(TOKEN.into()),
        session,
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let server = Arc::new(OffloadServer::start(&engine, config).unwrap());
    let addr = server.local_addr();
    let bot = Bot::start(engine.clone(), server.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut report = Report::default();

    // Unloaded: two calls, one after the other.
    let mut unloaded = vec![];
    for id in 0..2 {
        let r = rt.block_on(good_call(addr, 1_000_000 + id, 250, false, false)).expect("unloaded call");
        assert_eq!((r.frames_back, r.hash_back), (r.frames_sent, r.hash_sent), "unloaded call {id} echo");
        unloaded.extend(r.latencies_ms);
    }
    unloaded.sort_by(f64::total_cmp);
    report.unloaded_p50_ms = percentile(&unloaded, 0.5);
    report.unloaded_p99_ms = percentile(&unloaded, 0.99);
    report.rss_start_mb = rss_mb();

    // Loaded.
    let sampling = Arc::new(AtomicBool::new(true));
    let rss: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(vec![]));
    let sampler = {
        let (on, rss) = (sampling.clone(), rss.clone());
        std::thread::spawn(move || {
            while on.load(Ordering::Acquire) {
                rss.lock().unwrap().push(rss_mb());
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let load_start = Instant::now();
    let spread =
        plan.duration.mul_f64(0.8).saturating_sub(Duration::from_millis(plan.good_frames as u64 * 20));
    let spread = spread.max(Duration::from_millis(500));
    let stall_until = load_start + plan.duration;
    let (good_results, faults_ok, stalled_ok) = rt.block_on(async {
        let mut good = tokio::task::JoinSet::new();
        let mut faults = tokio::task::JoinSet::new();
        let at = |k: usize, n: usize| spread.mul_f64(k as f64 / n.max(1) as f64);
        for k in 0..plan.good {
            let (delay, frames) = (at(k, plan.good), plan.good_frames);
            good.spawn(async move {
                tokio::time::sleep(delay).await;
                good_call(addr, k as u64, frames, false, false).await
            });
        }
        for k in 0..plan.garbage {
            let (delay, frames) = (at(k, plan.garbage), plan.good_frames);
            good.spawn(async move {
                tokio::time::sleep(delay).await;
                good_call(addr, 100_000 + k as u64, frames, true, false).await
            });
        }
        let mut stalled = tokio::task::JoinSet::new();
        for k in 0..plan.net_stall {
            let (delay, frames) = (at(k, plan.net_stall), plan.good_frames);
            stalled.spawn(async move {
                tokio::time::sleep(delay).await;
                good_call(addr, 600_000 + k as u64, frames, false, true).await
            });
        }
        for k in 0..plan.vanish {
            let (delay, frames) = (at(k, plan.vanish), 20 + (k * 37) % 100);
            faults.spawn(async move {
                tokio::time::sleep(delay).await;
                vanishing_call(addr, 200_000 + k as u64, frames).await;
                true
            });
        }
        for k in 0..plan.stall {
            let delay = at(k, plan.stall * 2);
            faults.spawn(async move {
                tokio::time::sleep(delay).await;
                stalled_call(addr, 300_000 + k as u64, stall_until).await;
                true
            });
        }
        for k in 0..plan.raw_garbage {
            let delay = at(k, plan.raw_garbage);
            faults.spawn(async move {
                tokio::time::sleep(delay).await;
                raw_garbage(addr, 400_000 + k as u64).await
            });
        }
        for k in 0..plan.no_handshake {
            let delay = at(k, plan.no_handshake);
            faults.spawn(async move {
                tokio::time::sleep(delay).await;
                no_handshake(addr).await
            });
        }
        for k in 0..plan.bad_signature {
            let delay = at(k, plan.bad_signature);
            faults.spawn(async move {
                tokio::time::sleep(delay).await;
                bad_signature(addr, 500_000 + k as u64).await
            });
        }
        let mut results = vec![];
        while let Some(r) = good.join_next().await {
            results.push(r.unwrap());
        }
        let mut faults_ok = vec![];
        while let Some(r) = faults.join_next().await {
            faults_ok.push(r.unwrap());
        }
        // Their audio must come back whole; their latency is the stall's, not the engine's.
        let mut stalled_ok = vec![];
        while let Some(r) = stalled.join_next().await {
            let r = r.unwrap().unwrap_or_else(|e| panic!("{e}"));
            stalled_ok.push((r.frames_back, r.hash_back) == (r.frames_sent, r.hash_sent));
        }
        (results, faults_ok, stalled_ok)
    });
    report.connections = plan.good
        + plan.garbage
        + plan.vanish
        + plan.stall
        + plan.raw_garbage
        + plan.no_handshake
        + plan.bad_signature
        + plan.net_stall;
    assert!(faults_ok.iter().all(|&ok| ok), "a faulty client was not refused or closed as it should be");
    assert_eq!(stalled_ok.len(), plan.net_stall);
    assert!(stalled_ok.iter().all(|&ok| ok), "a call whose network stalled did not get its audio back whole");

    // Every well-behaved call (and every garbage-interleaving one) got all of its audio back.
    let mut latencies = vec![];
    for r in good_results {
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.frames_back, r.frames_sent, "a call did not get all its audio back");
        assert_eq!(r.hash_back, r.hash_sent, "a call's audio came back altered");
        report.calls_checked += 1;
        report.frames_checked += r.frames_sent;
        latencies.extend(r.latencies_ms);
    }
    latencies.sort_by(f64::total_cmp);
    report.loaded_p50_ms = percentile(&latencies, 0.5);
    report.loaded_p99_ms = percentile(&latencies, 0.99);
    report.loaded_max_ms = latencies.last().copied().unwrap_or(0.0);

    // The server is still up: one more call goes through.
    let after = rt.block_on(good_call(addr, 9_999_999, 50, false, false)).expect("a call after the soak");
    assert_eq!((after.frames_back, after.hash_back), (after.frames_sent, after.hash_sent));

    // Everything ends: the server's connections, the host's sessions.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (server.stats().active > 0 || engine.open_sessions() > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    sampling.store(false, Ordering::Release);
    sampler.join().unwrap();
    let stats = server.stats();
    let started = (plan.good + plan.garbage + plan.net_stall + plan.vanish + plan.stall + 3) as u64;
    println!("server: {stats:?}");
    println!(
        "bot: {} calls opened, {} closed, {} echo samples dropped (stalled callers), {} protocol errors seen",
        bot.open_calls.load(Ordering::Relaxed),
        bot.closed_calls.load(Ordering::Relaxed),
        bot.echo_dropped.load(Ordering::Relaxed),
        bot.protocol_errors.load(Ordering::Relaxed),
    );
    assert_eq!(stats.active, 0, "connections left open");
    assert_eq!(engine.open_sessions(), 0, "sessions left open");
    assert_eq!(stats.rejected_signature, plan.bad_signature as u64);
    assert!(stats.handshake_failures >= (plan.no_handshake + plan.raw_garbage) as u64);
    assert_eq!(stats.calls_opened, started, "every started call reached the host");
    assert_eq!(bot.closed_calls.load(Ordering::Relaxed), started, "the host saw every call end");
    // Garbage callers: 4 of every 5 garbage messages is a protocol error (the binary one too).
    assert!(bot.protocol_errors.load(Ordering::Relaxed) >= (plan.garbage * plan.good_frames) as u64);
    {
        let losses = bot.losses.lock().unwrap();
        let garbage = (0..plan.garbage as u64).map(|k| 100_000 + k);
        let net_stall = (0..plan.net_stall as u64).map(|k| 600_000 + k);
        for k in (0..plan.good as u64).chain(garbage).chain(net_stall) {
            let sid = format!("CA{k:032}");
            assert_eq!(losses.get(&sid), Some(&0), "{sid}: the engine dropped or filled caller audio");
        }
    }
    bot.finish();
    drop(server);

    let rss = rss.lock().unwrap();
    report.rss_min_mb = rss.iter().copied().fold(f64::INFINITY, f64::min);
    report.rss_max_mb = rss.iter().copied().fold(0.0, f64::max);
    // No growth over the run: the last quarter stays within the first three quarters' peak
    // (plus slack for allocator noise).
    let n = rss.len();
    if n >= 8 {
        let early = rss[..n * 3 / 4].iter().copied().fold(0.0, f64::max);
        let late = rss[n * 3 / 4..].iter().copied().fold(0.0, f64::max);
        assert!(late <= early * 1.1 + 16.0, "RSS kept growing: {early:.1} MB then {late:.1} MB");
    }
    report.wall_s = t0.elapsed().as_secs_f64();
    report
}

/// Which latency rule a run holds.
enum Latency {
    /// Printed, not asserted: the short run is a debug build sharing the CI's cores with other
    /// test binaries, where a p99 of a few ms doubles on one scheduler hiccup (it has failed that
    /// way with no change to the server). What it proves is that no audio is lost.
    Reported,
    /// The long release run: loaded p99 within 2× of the unloaded p99.
    WithinTwiceUnloaded,
}

fn check(plan: &Plan, report: &Report, latency: Latency) {
    println!("{plan:?}");
    println!("{report:#?}");
    assert_eq!(report.calls_checked, plan.good + plan.garbage);
    assert!(report.rss_max_mb < report.rss_start_mb + 256.0, "RSS grew by more than 256 MB");
    if let Latency::WithinTwiceUnloaded = latency {
        let bound = 2.0 * report.unloaded_p99_ms;
        assert!(
            report.loaded_p99_ms <= bound,
            "latency p99 under load {:.2} ms > {bound:.2} ms (2 × unloaded)",
            report.loaded_p99_ms,
        );
    }
}

#[test]
fn soak_short() {
    let plan = Plan {
        duration: Duration::from_secs(10),
        good: 30,
        good_frames: 150,
        vanish: 10,
        stall: 4,
        garbage: 6,
        net_stall: 4,
        raw_garbage: 6,
        no_handshake: 10,
        bad_signature: 10,
    };
    let report = soak(&plan);
    check(&plan, &report, Latency::Reported);
}

#[test]
#[ignore = "a minute of load: cargo test --release -p trunkline-server --test soak -- --ignored --nocapture"]
fn soak_long() {
    let plan = Plan {
        duration: Duration::from_secs(60),
        good: 240,
        good_frames: 400,
        vanish: 50,
        stall: 20,
        garbage: 30,
        net_stall: 20,
        raw_garbage: 20,
        no_handshake: 40,
        bad_signature: 40,
    };
    let report = soak(&plan);
    check(&plan, &report, Latency::WithinTwiceUnloaded);
}
