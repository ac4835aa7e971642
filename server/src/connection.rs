//! One carrier connection: handshake checks, then messages in to the session and paced messages
//! out to the carrier, with the idle timeout, pings and graceful shutdown.

use super::server::{CallSender, OffloadConfig, OffloadedCall, Route, ServerCounters};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use trunkline::config::SessionConfig;
use trunkline::protocol::signature::{self, RequestAuth};
use trunkline::protocol::{Inbound, MessageKind, PayloadBuffer, dialect_by_name};
use trunkline::runtime::{CarrierPort, EngineHandle, OutboundSignal, SessionError, Wakeup};

/// Longest a connection waits for the engine to make room before it gives up on a message.
const PUSH_PATIENCE: Duration = Duration::from_secs(2);

/// Shared by the accept loop, the dispatcher and every connection.
/// One route as the server runs it: the session settings of its calls, its carrier's
/// authentication.
pub(crate) struct Endpoint {
    pub(crate) route: Route,
    pub(crate) session: SessionConfig,
    pub(crate) auth: Option<RequestAuth>,
}

impl Endpoint {
    /// Whether a request for `path` is this endpoint's (an empty route path takes any path the
    /// server's `paths` allow).
    fn takes(&self, path: &str, paths: &[String]) -> bool {
        if self.route.path.is_empty() {
            paths.is_empty() || paths.iter().any(|p| p == path)
        } else {
            self.route.path == path
        }
    }
}

pub(crate) struct ConnectionContext {
    pub(crate) engine: EngineHandle,
    pub(crate) config: OffloadConfig,
    /// Where calls are taken, with what dialect and authentication.
    pub(crate) routes: Vec<Endpoint>,
    pub(crate) counters: Arc<ServerCounters>,
    pub(crate) calls: CallSender,
    /// Signalled by audio workers when a detached session produced outbound messages.
    pub(crate) outbound_wakeup: Arc<Wakeup>,
    /// Live connections: whose outbound flag to check, whom to wake. Locked by network threads
    /// only, never by an audio worker.
    pub(crate) registry: Mutex<HashMap<u64, Registered>>,
    pub(crate) shutdown: watch::Receiver<Option<Duration>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// A live connection as the dispatcher sees it: whose outbound flag to check, whom to wake.
pub(crate) type Registered = (OutboundSignal, Arc<Notify>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Lets tokio poll the wakeup's eventfd while keeping it owned (and open) by the `Wakeup`.
struct BorrowedWakeup(Arc<Wakeup>);

impl std::os::fd::AsRawFd for BorrowedWakeup {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.fd()
    }
}

/// Turns the workers' eventfd signals into wake-ups of the connections that have output.
pub(crate) async fn dispatch_outbound(ctx: Arc<ConnectionContext>) {
    // SAFETY: the eventfd is owned by the `Wakeup` inside `BorrowedWakeup`, which the `AsyncFd`
    // holds, so the fd stays open and is not replaced for as long as it is registered.
    let Ok(fd) = (unsafe { AsyncFd::register(BorrowedWakeup(ctx.outbound_wakeup.clone())) }) else { return };
    loop {
        let Ok(mut guard) = fd.readable().await else { return };
        ctx.outbound_wakeup.drain();
        guard.clear_ready();
        let registry = ctx.registry.lock().unwrap_or_else(|e| e.into_inner());
        for (shared, notify) in registry.values() {
            if shared.take() {
                notify.notify_one();
            }
        }
    }
}

pub(crate) async fn serve(stream: TcpStream, ctx: Arc<ConnectionContext>) {
    #[cfg(feature = "tls")]
    if let Some(acceptor) = ctx.tls.clone() {
        match timeout(ctx.config.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => run(tls_stream, ctx, true).await,
            _ => {
                ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        return;
    }
    run(stream, ctx, false).await
}

/// Why the upgrade was refused, to count it once.
#[derive(Clone, Copy)]
enum Refusal {
    Path,
    Capacity,
    Signature,
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(stream: S, ctx: Arc<ConnectionContext>, tls: bool) {
    let config = &ctx.config;
    let mut refusal = None;
    // The capacity slot is reserved during the handshake, atomically, so concurrent handshakes
    // cannot all pass the check; it is released if the handshake then fails.
    let mut reserved = false;
    // The endpoint the request's path selects.
    let mut chosen = None;
    // The error type is tungstenite's handshake callback contract, not ours to box.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        let Some(index) = ctx.routes.iter().position(|e| e.takes(path, &config.paths)) else {
            refusal = Some(Refusal::Path);
            return Err(refuse(StatusCode::NOT_FOUND, "no stream endpoint at this path"));
        };
        let endpoint = &ctx.routes[index];
        chosen = Some(index);
        if ctx.counters.active.fetch_add(1, Ordering::AcqRel) as usize >= config.max_sessions {
            ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
            refusal = Some(Refusal::Capacity);
            return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "too many calls"));
        }
        reserved = true;
        if let (Some(token), Some(auth)) = (&endpoint.route.auth_token, endpoint.auth) {
            let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
            let path_and_query = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let url = signature::signed_url(
                config.public_url.as_deref(),
                header("x-forwarded-proto"),
                tls,
                header("host").unwrap_or(""),
                path_and_query,
            );
            let valid = auth.check(token, &url, header);
            if !valid {
                ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
                reserved = false;
                refusal = Some(Refusal::Signature);
                return Err(refuse(StatusCode::FORBIDDEN, "missing or invalid request signature"));
            }
        }
        Ok(resp)
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config));
    let ws = match timeout(config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        _ => {
            if reserved {
                ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
            }
            let counter = match refusal {
                Some(Refusal::Path) => &ctx.counters.rejected_path,
                Some(Refusal::Capacity) => &ctx.counters.rejected_capacity,
                Some(Refusal::Signature) => &ctx.counters.rejected_signature,
                None => &ctx.counters.handshake_failures,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let endpoint = chosen.map_or(&ctx.routes[0], |i| &ctx.routes[i]);
    call(ws, &ctx, endpoint).await;
    ctx.counters.active.fetch_sub(1, Ordering::AcqRel);
    ctx.counters.closed.fetch_add(1, Ordering::Relaxed);
}

async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    ctx: &Arc<ConnectionContext>,
    endpoint: &Endpoint,
) {
    let (sink, mut incoming) = ws.split();
    let mut sink = Outbox { sink, limit: ctx.config.send_timeout, stalled: false };
    let mut session = match ctx.engine.open_session(&endpoint.session) {
        Ok(s) => s,
        Err(_) => {
            let _ = sink.send(close(CloseCode::Again, "engine at capacity")).await;
            sink.count_stall(&ctx.counters);
            return;
        }
    };
    // The session's own dialect, to see `start` and `stop` as the session does (the name was
    // checked when the server started, and again when the session opened).
    let Some(mut start_parser) = dialect_by_name(&endpoint.session.dialect) else { return };
    let Ok(mut port) = session.detach_carrier(ctx.outbound_wakeup.clone()) else { return };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let notify = Arc::new(Notify::new());
    ctx.registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, (port.outbound_signal(), notify.clone()));

    let mut host_session = Some(session);
    let mut scratch = PayloadBuffer::with_limit(16);
    let mut out = vec![0u8; 8192];
    let mut stop_seen = false;
    let idle = sleep(ctx.config.idle_timeout);
    tokio::pin!(idle);
    let mut ping = tokio::time::interval(ctx.config.ping_interval.unwrap_or(Duration::from_secs(3600)));
    ping.tick().await;
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    let mut shutdown = ctx.shutdown.clone();
    let mut grace_until: Option<Instant> = None;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);

    loop {
        tokio::select! {
            msg = incoming.next() => {
                // Borrowed from the frame: no copy per message.
                let msg = match msg {
                    Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => m,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Ok(_)) => {
                        idle.as_mut().reset(Instant::now() + ctx.config.idle_timeout);
                        continue;
                    }
                    Some(Err(_)) => {
                        // An oversize message or a broken frame: the connection cannot go on.
                        ctx.counters.protocol_failures.fetch_add(1, Ordering::Relaxed);
                        let _ = sink.send(close(CloseCode::Size, "message too large or malformed")).await;
                        break;
                    }
                };
                let (bytes, kind): (&[u8], MessageKind) = match &msg {
                    Message::Binary(b) => (b, MessageKind::Binary),
                    Message::Text(t) => (t.as_bytes(), MessageKind::Text),
                    _ => continue,
                };
                idle.as_mut().reset(Instant::now() + ctx.config.idle_timeout);
                if push(&mut port, bytes, kind).await.is_err() {
                    break;
                }
                // Only the stream's start and stop matter here; the dialect's quick look keeps the
                // full parse off the path of every audio message.
                if start_parser.may_start_or_stop(bytes, kind) {
                    match start_parser.parse(bytes, kind, &mut scratch) {
                        Ok(Inbound::Start(start)) if host_session.is_some() => {
                            // Learns the stream, so that a `stop` naming another one (refused by
                            // the session) is not taken for this call's end below. Its outbound
                            // format is the session's business: this parser writes nothing.
                            let _ = start_parser.on_start(&start);
                            let session = host_session.take().expect("checked");
                            if ctx.calls.try_send(OffloadedCall { session, start }).is_ok() {
                                ctx.counters.calls_opened.fetch_add(1, Ordering::Relaxed);
                                ctx.engine.notify_host();
                            } else {
                                // The host is not accepting calls: refuse this one, visibly.
                                ctx.counters.calls_refused.fetch_add(1, Ordering::Relaxed);
                                let _ = sink.send(close(CloseCode::Again, "host not accepting calls")).await;
                                break;
                            }
                        }
                        Ok(Inbound::Stop { .. }) => stop_seen = true,
                        _ => {}
                    }
                }
            }
            _ = notify.notified() => {
                if flush(&mut port, &mut sink, &mut out).await.is_err() {
                    break;
                }
            }
            _ = &mut idle => {
                ctx.counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                let _ = sink.send(close(CloseCode::Policy, "idle")).await;
                break;
            }
            _ = ping.tick(), if ctx.config.ping_interval.is_some() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
            _ = housekeeping.tick() => {
                // The host closed the call, or the engine stopped.
                if !port.is_open() {
                    let _ = flush(&mut port, &mut sink, &mut out).await;
                    let _ = sink.send(close(CloseCode::Normal, "call ended")).await;
                    break;
                }
            }
            changed = shutdown.changed() => {
                let grace = if changed.is_ok() { *shutdown.borrow() } else { Some(Duration::ZERO) };
                if let Some(grace) = grace {
                    grace_until = Some(Instant::now() + grace);
                }
            }
            _ = sleep_until(grace_until.unwrap_or(far)), if grace_until.is_some() => {
                let _ = sink.send(close(CloseCode::Away, "server shutting down")).await;
                break;
            }
        }
    }
    let _ = flush(&mut port, &mut sink, &mut out).await;
    if !stop_seen && host_session.is_none() {
        // The carrier vanished without a stop: tell the pipeline the stream ended, so the host
        // gets its `stopped` event and nothing waits forever.
        let _ = port.end_stream();
    }
    ctx.registry.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    sink.close().await;
    sink.count_stall(&ctx.counters);
}

fn close(code: CloseCode, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// Pushes a message, waiting (without reading more from the socket: TCP backpressure) while the
/// engine's ring is full.
async fn push(port: &mut CarrierPort, bytes: &[u8], kind: MessageKind) -> Result<(), SessionError> {
    let deadline = Instant::now() + PUSH_PATIENCE;
    loop {
        match port.push(bytes, kind) {
            Err(SessionError::Full) if Instant::now() < deadline => sleep(Duration::from_millis(1)).await,
            other => return other,
        }
    }
}

/// Why a send to the carrier did not happen.
#[derive(Debug)]
enum SendError {
    /// The connection failed (or is closing).
    Failed,
    /// It did not complete within `send_timeout` (or an earlier one did not): the carrier is not
    /// reading.
    Stalled,
}

/// The carrier's half of the socket, with every send, flush and close bounded by `limit`. Once
/// one has stalled, nothing more is tried: each attempt would wait out the limit again, holding
/// the session slot for a peer that is not reading.
struct Outbox<K> {
    sink: K,
    limit: Duration,
    stalled: bool,
}

impl<K: futures_util::Sink<Message> + Unpin> Outbox<K> {
    async fn send(&mut self, message: Message) -> Result<(), SendError> {
        self.ready()?;
        let done = timeout(self.limit, self.sink.send(message)).await;
        self.settle(done)
    }

    async fn feed(&mut self, message: Message) -> Result<(), SendError> {
        self.ready()?;
        let done = timeout(self.limit, self.sink.feed(message)).await;
        self.settle(done)
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        self.ready()?;
        let done = timeout(self.limit, self.sink.flush()).await;
        self.settle(done)
    }

    async fn close(&mut self) {
        if self.ready().is_ok() {
            let done = timeout(self.limit, self.sink.close()).await;
            let _ = self.settle(done);
        }
    }

    fn ready(&self) -> Result<(), SendError> {
        if self.stalled { Err(SendError::Stalled) } else { Ok(()) }
    }

    fn settle<E>(
        &mut self,
        done: Result<Result<(), E>, tokio::time::error::Elapsed>,
    ) -> Result<(), SendError> {
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Failed),
            Err(_) => {
                self.stalled = true;
                Err(SendError::Stalled)
            }
        }
    }

    /// Counts the connection in `send_timeouts` if a send stalled (once, as it ends).
    fn count_stall(&self, counters: &ServerCounters) {
        if self.stalled {
            counters.send_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sends every outbound message the worker has produced.
async fn flush<K>(port: &mut CarrierPort, sink: &mut Outbox<K>, buf: &mut Vec<u8>) -> Result<(), SendError>
where
    K: futures_util::Sink<Message> + Unpin,
{
    let mut sent = false;
    while let Some(len) = port.outbound_len() {
        if len > buf.len() {
            buf.resize(len, 0);
        }
        let Some((kind, n)) = port.next_outbound_into(buf) else { break };
        let message = match kind {
            MessageKind::Text => Message::text(String::from_utf8_lossy(&buf[..n]).into_owned()),
            MessageKind::Binary => Message::binary(buf[..n].to_vec()),
        };
        sink.feed(message).await?;
        sent = true;
    }
    if sent {
        sink.flush().await?;
    }
    Ok(())
}
