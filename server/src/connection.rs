//! One carrier call, whatever its transport: messages in to the session and paced messages out
//! to the carrier, with the idle timeout, pings and graceful shutdown. The transports (their
//! handshakes, their framing of what is sent) are `websocket` and `audiosocket`.

use super::server::{
    CallSender, OffloadConfig, OffloadedCall, Route, RouteStats, ServerCounters, ServerStats,
};
use crate::audiosocket::AllowList;
use crate::logs::{self, CallIds, CallSummary, Origin, Outcome};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use trunkline::SessionStats;
use trunkline::config::SessionConfig;
use trunkline::metrics::{self, Family, Format};
use trunkline::protocol::signature::{AuthFailure, RequestAuth};
use trunkline::protocol::{
    Deframer, Dialect, Framing, Inbound, MessageKind, PayloadBuffer, StreamStart, dialect_by_name,
    dialect_name,
};
use trunkline::runtime::{CarrierPort, EngineHandle, OutboundSignal, SessionError, Wakeup};

/// Longest a connection waits for the engine to make room before it gives up on a message.
const PUSH_PATIENCE: Duration = Duration::from_secs(2);

/// One route as the server runs it: the session settings of its calls, its carrier's
/// authentication, its own counters.
pub(crate) struct Endpoint {
    pub(crate) route: Route,
    pub(crate) session: SessionConfig,
    pub(crate) auth: Option<RequestAuth>,
    /// The WebSocket subprotocol its carrier asks for, if any.
    pub(crate) subprotocol: Option<&'static str>,
    accepted: AtomicU64,
    rejected_signature: AtomicU64,
    rejected_signature_missing: AtomicU64,
}

impl Endpoint {
    pub(crate) fn new(route: Route, session: SessionConfig, auth: Option<RequestAuth>) -> Self {
        let subprotocol = carrier_subprotocol(dialect_name(&route.dialect));
        Self {
            route,
            session,
            auth,
            subprotocol,
            accepted: AtomicU64::new(0),
            rejected_signature: AtomicU64::new(0),
            rejected_signature_missing: AtomicU64::new(0),
        }
    }

    /// Whether a request for `path` is this endpoint's (an empty route path takes any path the
    /// server's `paths` allow).
    pub(crate) fn takes(&self, path: &str, paths: &[String]) -> bool {
        if self.route.path.is_empty() {
            paths.is_empty() || paths.iter().any(|p| p == path)
        } else {
            self.route.path == path
        }
    }

    /// Counts a completed handshake.
    pub(crate) fn count_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused authentication, here and in the server's counters.
    pub(crate) fn count_auth_refusal(&self, failure: AuthFailure, counters: &ServerCounters) {
        self.rejected_signature.fetch_add(1, Ordering::Relaxed);
        counters.rejected_signature.fetch_add(1, Ordering::Relaxed);
        match failure {
            AuthFailure::Missing => {
                self.rejected_signature_missing.fetch_add(1, Ordering::Relaxed);
                counters.rejected_signature_missing.fetch_add(1, Ordering::Relaxed);
            }
            AuthFailure::Expired => {
                counters.rejected_signature_expired.fetch_add(1, Ordering::Relaxed);
            }
            AuthFailure::Invalid => {}
        }
    }

    pub(crate) fn stats(&self) -> RouteStats {
        RouteStats {
            path: self.route.path.clone(),
            accepted: self.accepted.load(Ordering::Relaxed),
            rejected_signature: self.rejected_signature.load(Ordering::Relaxed),
            rejected_signature_missing: self.rejected_signature_missing.load(Ordering::Relaxed),
        }
    }
}

/// The WebSocket subprotocol the carrier of `dialect` offers on its upgrade and expects back.
fn carrier_subprotocol(dialect: &str) -> Option<&'static str> {
    match dialect {
        "jambonz" => Some("audio.jambonz.org"),
        _ => None,
    }
}

/// Why a connection gets no call slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoSlot {
    /// The server is draining.
    Draining,
    /// `max_sessions` calls are live.
    Capacity,
}

/// Shared by the accept loops, the dispatcher and every connection.
pub(crate) struct ConnectionContext {
    pub(crate) engine: EngineHandle,
    pub(crate) config: OffloadConfig,
    /// Where WebSocket calls are taken, with what dialect and authentication.
    pub(crate) routes: Vec<Endpoint>,
    pub(crate) counters: Arc<ServerCounters>,
    pub(crate) calls: CallSender,
    /// Signalled by audio workers when a detached session produced outbound messages.
    pub(crate) outbound_wakeup: Arc<Wakeup>,
    /// Live connections: whose outbound flag to check, whom to wake. Locked by network threads
    /// only, never by an audio worker.
    pub(crate) registry: Mutex<HashMap<u64, Registered>>,
    /// Set when the listeners stop.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// When live calls must end (set by a drain or a shutdown; the earliest wins).
    pub(crate) wind_down: watch::Receiver<Option<Instant>>,
    /// No new calls are taken (see `OffloadServer::drain`).
    pub(crate) draining: AtomicBool,
    /// Signalled as each call's connection ends, for a drain waiting for them.
    pub(crate) ended: CallsEnded,
    /// The AudioSocket call UUIDs allowed to connect.
    pub(crate) audiosocket_calls: AllowList,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

impl ConnectionContext {
    /// Whether new calls are taken: not draining, and below `max_sessions`.
    pub(crate) fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst)
            && (self.counters.active.load(Ordering::Acquire) as usize) < self.config.max_sessions
    }

    /// Takes a call slot for a connection about to be accepted, or says why there is none. The
    /// slot is taken before the drain flag is read, as a drain sets the flag before it counts
    /// the slots (both in one order): a connection that read the flag clear before a drain set
    /// it holds a slot that drain waits for, never one it missed.
    pub(crate) fn take_slot(&self) -> Result<(), NoSlot> {
        let taken = self.counters.active.fetch_add(1, Ordering::SeqCst) as usize;
        let refused = if self.draining.load(Ordering::SeqCst) {
            NoSlot::Draining
        } else if taken >= self.config.max_sessions {
            NoSlot::Capacity
        } else {
            return Ok(());
        };
        self.release_slot();
        Err(refused)
    }

    /// A call's connection has ended: its slot is free.
    pub(crate) fn call_ended(&self) {
        // Counted closed before the slot shows free: whoever sees the slot free sees it closed.
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
        self.release_slot();
    }

    /// Frees a call slot, taken for a call or reserved for a handshake: a drain waiting for the
    /// last one learns of it at once.
    pub(crate) fn release_slot(&self) {
        self.ended.release(&self.counters.active);
    }

    /// The engine's metrics and the server's, built now (see `OffloadServer::metrics`).
    pub(crate) fn render_metrics(&self, format: Format) -> String {
        let stats = self.counters.snapshot();
        let mut families: Vec<Family> = ServerStats::NAMES_NUL
            .iter()
            .zip(stats.values())
            .map(|(name, value)| {
                let field = name.trim_end_matches('\0');
                if field == "active" {
                    Family::gauge("trunkline_server_active", "Connections holding a call slot now.", value)
                } else {
                    let help = format!("The offload server's {field} counter (ServerStats).");
                    Family::counter(format!("trunkline_server_{field}"), help, value)
                }
            })
            .collect();
        families.push(Family::gauge(
            "trunkline_server_draining",
            "1 while the server is draining (taking no new calls).",
            u64::from(self.draining.load(Ordering::SeqCst)),
        ));
        let routes: Vec<RouteStats> = self.routes.iter().map(Endpoint::stats).collect();
        let label = |r: &RouteStats| if r.path.is_empty() { "*".to_owned() } else { r.path.clone() };
        let per_route = |name: &str, help: &str, value: fn(&RouteStats) -> u64| {
            Family::counters(name, help, "route", routes.iter().map(|r| (label(r), value(r))).collect())
        };
        families.push(per_route("trunkline_route_accepted", "WebSocket calls taken on each route.", |r| {
            r.accepted
        }));
        families.push(per_route(
            "trunkline_route_rejected_signature",
            "Upgrades refused for their authentication on each route.",
            |r| r.rejected_signature,
        ));
        families.push(per_route(
            "trunkline_route_rejected_signature_missing",
            "Of those, requests with no credentials at all.",
            |r| r.rejected_signature_missing,
        ));
        metrics::render(&self.engine.metrics_snapshot(), &families, format)
    }
}

/// Lets a drain wait for the calls' connections to end.
#[derive(Debug, Default)]
pub(crate) struct CallsEnded {
    lock: Mutex<()>,
    signal: Condvar,
}

impl CallsEnded {
    /// Takes one from `active` (a slot freed) and wakes the waiters.
    fn release(&self, active: &AtomicU64) {
        active.fetch_sub(1, Ordering::AcqRel);
        // Taken so that a waiter between its check and its wait cannot miss this.
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.signal.notify_all();
    }

    /// Waits until `active` is zero or `deadline` passes; whether it reached zero.
    pub(crate) fn wait_until_none(&self, active: &AtomicU64, deadline: std::time::Instant) -> bool {
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // In one order with the drain flag (see `ConnectionContext::take_slot`).
            if active.load(Ordering::SeqCst) == 0 {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            held = self.signal.wait_timeout(held, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

/// A live connection as the dispatcher sees it: whose outbound flag to check, whom to wake.
pub(crate) type Registered = (OutboundSignal, Arc<Notify>);

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

/// How a carrier broke the transport's protocol (the WebSocket close code says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A message over the size limit.
    TooLarge,
    /// A text message that is not UTF-8.
    NotUtf8,
    /// A frame the transport's protocol forbids (unmasked, a fragmented control frame...).
    Protocol,
}

/// What the carrier sent, as the call loop sees it.
pub(crate) enum Received<'a> {
    /// Bytes for the session: one message (WebSocket), or a chunk of a byte stream (TCP).
    Data(&'a [u8], MessageKind),
    /// Something that only shows the carrier is there (a ping, a pong).
    KeepAlive,
    /// The carrier closed the connection (a byte stream: or it was reset).
    Closed,
    /// The carrier broke the protocol (an oversize or malformed frame): the connection cannot go
    /// on.
    Broken(Fault),
    /// The connection ended without the transport's own close (a WebSocket without its close
    /// frame: the peer vanished, or the connection was reset). Counted as a protocol failure.
    Dropped,
}

/// The carrier's half of a connection that the call loop reads. `receive` must be cancel safe
/// (it runs in a `select!`).
pub(crate) trait Inbox {
    async fn receive(&mut self) -> Received<'_>;
}

/// Why the server ends a call, for a transport that can tell the carrier (WebSocket close codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The carrier closed the connection: nothing to tell.
    CarrierLeft,
    /// The host closed the call (or the engine stopped).
    CallEnded,
    /// The carrier's own end-of-call message (AudioSocket's hang-up).
    CarrierStopped,
    /// The engine took no message for `PUSH_PATIENCE` (its inbound ring stayed full).
    EngineStalled,
    /// Nothing came within the idle timeout.
    Idle,
    /// An oversize or malformed message.
    Malformed(Fault),
    /// The carrier's `start` names a stream the session cannot take (its format): no call can
    /// come of it.
    StartRefused,
    /// The connection ended without the transport's close (nothing can be sent any more).
    Dropped,
    /// The engine had no room for another session.
    EngineFull,
    /// The host's queue of new calls was full.
    HostBusy,
    /// The session failed (a bug caught in its pipeline): the call cannot go on.
    SessionFailed,
    /// The server is shutting down and the grace period ran out.
    ShuttingDown,
}

impl Ending {
    /// What the call's log line says of it.
    fn outcome(self) -> Outcome {
        match self {
            Self::CarrierLeft => Outcome::CarrierLeft,
            Self::CallEnded => Outcome::Ended,
            Self::CarrierStopped => Outcome::CarrierStopped,
            Self::EngineStalled => Outcome::EngineStalled,
            Self::Idle => Outcome::IdleTimeout,
            Self::Malformed(_) | Self::StartRefused => Outcome::ProtocolFailure,
            Self::Dropped => Outcome::Dropped,
            Self::EngineFull => Outcome::EngineFull,
            Self::HostBusy => Outcome::HostBusy,
            Self::SessionFailed => Outcome::SessionFailed,
            Self::ShuttingDown => Outcome::ShutDown,
        }
    }
}

/// Why a send to the carrier did not happen.
#[derive(Debug)]
pub(crate) enum SendError {
    /// The connection failed (or is closing).
    Failed,
    /// It did not complete within `send_timeout` (or an earlier one did not): the carrier is not
    /// reading.
    Stalled,
}

/// The carrier's half of a connection that the call loop writes. Every operation is bounded by
/// the send timeout (see [`Deadline`]).
pub(crate) trait Outbox {
    /// Queues one outbound message (written by `flush` at the latest).
    async fn feed(&mut self, bytes: &[u8], kind: MessageKind) -> Result<(), SendError>;
    /// Writes what was queued.
    async fn flush(&mut self) -> Result<(), SendError>;
    /// Shows the carrier the server is there, where the transport can (WebSocket ping).
    async fn ping(&mut self) -> Result<(), SendError>;
    /// Ends the connection, telling the carrier why where the transport can.
    async fn end(&mut self, why: Ending);
    /// Whether a send stalled (the connection is then counted in `send_timeouts`).
    fn stalled(&self) -> bool;
}

/// The send timeout of one connection: every send, flush and close is bounded by `limit`. Once
/// one has stalled, nothing more is tried: each attempt would wait out the limit again, holding
/// the session slot for a peer that is not reading.
pub(crate) struct Deadline {
    limit: Duration,
    stalled: bool,
}

impl Deadline {
    pub(crate) fn new(limit: Duration) -> Self {
        Self { limit, stalled: false }
    }

    /// Runs `op` within the limit.
    pub(crate) async fn run<E>(&mut self, op: impl Future<Output = Result<(), E>>) -> Result<(), SendError> {
        if self.stalled {
            return Err(SendError::Stalled);
        }
        match timeout(self.limit, op).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Failed),
            Err(_) => {
                self.stalled = true;
                Err(SendError::Stalled)
            }
        }
    }

    pub(crate) fn stalled(&self) -> bool {
        self.stalled
    }
}

/// What the server's own look at a carrier message found.
enum Seen {
    Start(Box<StreamStart>),
    Stop,
    Other,
}

/// Parses `message` with the call's own copy of its dialect, if it may start or stop the stream
/// (the dialect's quick look keeps the full parse off the path of every audio message).
fn look(parser: &mut dyn Dialect, scratch: &mut PayloadBuffer, message: &[u8], kind: MessageKind) -> Seen {
    if !parser.may_start_or_stop(message, kind) {
        return Seen::Other;
    }
    match parser.parse(message, kind, scratch) {
        Ok(Inbound::Start(start)) => Seen::Start(start),
        Ok(Inbound::Stop { .. }) => Seen::Stop,
        _ => Seen::Other,
    }
}

/// Where a call came in and what the call loop saw of it, for its log lines. Counted on the
/// connection's task, never on an audio worker.
pub(crate) struct CallLog<'a> {
    pub(crate) origin: &'a Origin,
    /// The request path (empty for AudioSocket).
    pub(crate) path: &'a str,
    messages_in: u64,
    messages_out: u64,
    /// The carrier's ids, once its start was seen.
    ids: Option<CallIds>,
    /// When the call was handed to the host.
    handed_at: Option<Instant>,
    /// The session's counters as the connection ended (`None`: no session was opened).
    session: Option<SessionStats>,
}

impl<'a> CallLog<'a> {
    pub(crate) fn new(origin: &'a Origin, path: &'a str) -> Self {
        Self { origin, path, messages_in: 0, messages_out: 0, ids: None, handed_at: None, session: None }
    }
}

/// How long a connection the server ended is still read, for the carrier's own close.
const LINGER: Duration = Duration::from_secs(1);

/// Runs one call over a connection whose handshake is done: opens its session, hands it to the
/// host when its stream starts, and moves messages both ways until either side ends it (with
/// `ends_with_stop`, the carrier's stop message ends it too). Logs the call's start and end.
/// Returns the carrier's side when the server ended the call and told the carrier so: give it
/// to [`linger`] once the call's slot is free.
pub(crate) async fn call<I: Inbox, O: Outbox>(
    mut inbox: I,
    mut outbox: O,
    ctx: &Arc<ConnectionContext>,
    session_config: &SessionConfig,
    ends_with_stop: bool,
    mut log: CallLog<'_>,
) -> Option<I> {
    let opened = Instant::now();
    // Recorded under a name of its own until the carrier's start names the stream.
    let recorded;
    let session_config = match &ctx.config.record_dir {
        Some(dir) => {
            let name = format!("call-{}.pending.{}", log.origin.conn, ctx.config.record_format.extension());
            recorded = SessionConfig { record_path: Some(dir.join(name)), ..session_config.clone() };
            &recorded
        }
        None => session_config,
    };
    let ending = match ctx.engine.open_session(session_config) {
        Ok(session) => {
            drive(&mut inbox, &mut outbox, ctx, session_config, session, ends_with_stop, &mut log).await
        }
        Err(_) => Ending::EngineFull,
    };
    outbox.end(ending).await;
    if let Some(pending) = &session_config.record_path
        && ctx.config.record_dir.is_some()
        && log.ids.is_none()
    {
        // The call never started: nothing worth keeping.
        let _ = std::fs::remove_file(pending);
    }
    let stalled = outbox.stalled();
    if stalled {
        ctx.counters.send_timeouts.fetch_add(1, Ordering::Relaxed);
    }
    logs::call_ended(&CallSummary {
        origin: log.origin,
        dialect: &session_config.dialect,
        ids: log.ids.as_ref(),
        handed: log.handed_at.is_some(),
        duration: log.handed_at.unwrap_or(opened).elapsed(),
        messages_in: log.messages_in,
        messages_out: log.messages_out,
        session: log.session.as_ref(),
        // A stalled send ends the call as a failed send (`CarrierLeft`): the stall is the cause.
        outcome: if stalled { Outcome::SendTimeout } else { ending.outcome() },
    });
    let told = !stalled && !matches!(ending, Ending::CarrierLeft | Ending::Dropped | Ending::Malformed(_));
    told.then_some(inbox)
}

/// Reads and drops what the carrier still sends after the server ended its connection, until
/// the carrier closes its side too (or [`LINGER`] passes). A socket closed with bytes unread is
/// reset, not closed: the carrier would see its connection fail (an abnormal closure) instead
/// of the close the server sent it.
pub(crate) async fn linger<I: Inbox>(mut inbox: I) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Received::Data(..) | Received::KeepAlive = inbox.receive().await {}
    })
    .await;
}

/// The call's loop; how it ended.
async fn drive<I: Inbox, O: Outbox>(
    inbox: &mut I,
    outbox: &mut O,
    ctx: &Arc<ConnectionContext>,
    session_config: &SessionConfig,
    mut session: trunkline::runtime::Session,
    ends_with_stop: bool,
    log: &mut CallLog<'_>,
) -> Ending {
    // The session's own dialect, to see `start` and `stop` as the session does (the name was
    // checked when the server started, and again when the session opened).
    let Ok(mut start_parser) = dialect_by_name(&session_config.dialect) else { return Ending::CallEnded };
    // A byte stream is cut into messages as the engine cuts it; its start is an audio message,
    // parsed in full, so the scratch buffer takes a whole payload. A WebSocket's start and stop
    // carry no audio. The limits are the session's, raised as the engine raises them for the
    // dialect's carrier, so that every message the session takes is seen here too.
    let limits = session_config.inbound_limits(&*start_parser);
    let (mut cutter, mut scratch) = match start_parser.capabilities().framing {
        Framing::Stream { header_len } => (
            Some(Deframer::new(header_len, limits.message_bytes)),
            PayloadBuffer::with_limit(limits.payload_bytes),
        ),
        Framing::Messages => (None, PayloadBuffer::with_limit(16)),
    };
    let Ok(mut port) = session.detach_carrier(ctx.outbound_wakeup.clone()) else { return Ending::CallEnded };
    let id = log.origin.conn;
    let notify = Arc::new(Notify::new());
    ctx.registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, (port.outbound_signal(), notify.clone()));

    let mut host_session = Some(session);
    let mut out = vec![0u8; 8192];
    let mut stop_seen = false;
    let idle = sleep(ctx.config.idle_timeout);
    tokio::pin!(idle);
    // The stream must start within the idle timeout too: messages that never start one (junk,
    // a carrier that lost its way) would otherwise hold the slot for as long as they come.
    let start_by = sleep(ctx.config.idle_timeout);
    tokio::pin!(start_by);
    let mut ping = tokio::time::interval(ctx.config.ping_interval.unwrap_or(Duration::from_secs(3600)));
    ping.tick().await;
    let mut housekeeping = tokio::time::interval(Duration::from_millis(250));
    let mut wind_down = ctx.wind_down.clone();
    // A drain or shutdown told before this call started applies to it too.
    let mut grace_until: Option<Instant> = *wind_down.borrow_and_update();
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    let mut changed_open = true;

    let ending = 'call: loop {
        tokio::select! {
            received = inbox.receive() => {
                let (bytes, kind) = match received {
                    Received::Data(bytes, kind) => (bytes, kind),
                    // A ping or a pong keeps no call alive: a peer that answers the server's
                    // pings and sends nothing else would hold its slot for ever.
                    Received::KeepAlive => continue,
                    Received::Closed => break Ending::CarrierLeft,
                    Received::Broken(fault) => {
                        ctx.counters.protocol_failures.fetch_add(1, Ordering::Relaxed);
                        break Ending::Malformed(fault);
                    }
                    Received::Dropped => {
                        ctx.counters.protocol_failures.fetch_add(1, Ordering::Relaxed);
                        break Ending::Dropped;
                    }
                };
                idle.as_mut().reset(Instant::now() + ctx.config.idle_timeout);
                match push(&mut port, bytes, kind, outbox, &mut out, &mut log.messages_out).await {
                    Ok(()) => {}
                    Err(Pushed::Refused(SessionError::Full)) => break Ending::EngineStalled,
                    Err(Pushed::Refused(SessionError::Failed)) => break Ending::SessionFailed,
                    Err(Pushed::Refused(_)) => break Ending::CallEnded,
                    Err(Pushed::CarrierGone) => break Ending::CarrierLeft,
                }
                if cutter.is_none() {
                    log.messages_in += 1;
                }
                let mut rest = bytes;
                loop {
                    let message = match &mut cutter {
                        Some(cutter) => match cutter.next(&mut rest, &*start_parser) {
                            Some(Ok(message)) => {
                                log.messages_in += 1;
                                message
                            }
                            // Oversized: skipped, as the session skips (and reports) it.
                            Some(Err(_)) => {
                                log.messages_in += 1;
                                continue;
                            }
                            None => break,
                        },
                        None if rest.is_empty() => break,
                        None => std::mem::take(&mut rest),
                    };
                    match look(&mut *start_parser, &mut scratch, message, kind) {
                        Seen::Start(start) if host_session.is_some() => {
                            // Learns the stream, so that a `stop` naming another one (refused by
                            // the session) is not taken for this call's end below. Its outbound
                            // format is the session's business: this parser writes nothing. A
                            // start it refuses (a format the dialect cannot take) the session
                            // refuses as well: the call never starts, so the host is not given it.
                            if start_parser.on_start(&start).is_err() {
                                ctx.counters.protocol_failures.fetch_add(1, Ordering::Relaxed);
                                break 'call Ending::StartRefused;
                            }
                            let session = host_session.take().expect("checked");
                            let ids =
                                CallIds { call_id: start.call_id.clone(), stream_id: start.stream_id.clone() };
                            let ids = log.ids.insert(ids);
                            if let Some(pending) = &session_config.record_path
                                && ctx.config.record_dir.is_some()
                            {
                                name_recording(pending, &ids.stream_id, log.origin.conn);
                            }
                            if ctx.calls.try_send(OffloadedCall { session, start }).is_ok() {
                                ctx.counters.calls_opened.fetch_add(1, Ordering::Relaxed);
                                log.handed_at = Some(Instant::now());
                                logs::call_started(log.origin, &session_config.dialect, log.path, ids);
                                ctx.engine.notify_host();
                            } else {
                                // The host is not accepting calls: refuse this one, visibly.
                                ctx.counters.calls_refused.fetch_add(1, Ordering::Relaxed);
                                break 'call Ending::HostBusy;
                            }
                        }
                        Seen::Stop => stop_seen = true,
                        _ => {}
                    }
                }
                if stop_seen && ends_with_stop {
                    break Ending::CarrierStopped;
                }
            }
            _ = notify.notified() => {
                if flush(&mut port, outbox, &mut out, &mut log.messages_out).await.is_err() {
                    break Ending::CarrierLeft;
                }
            }
            _ = &mut idle => {
                ctx.counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                break Ending::Idle;
            }
            _ = &mut start_by, if host_session.is_some() => {
                ctx.counters.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                break Ending::Idle;
            }
            _ = ping.tick(), if ctx.config.ping_interval.is_some() => {
                if outbox.ping().await.is_err() {
                    break Ending::CarrierLeft;
                }
            }
            _ = housekeeping.tick() => {
                // The host closed the call, the engine stopped, or the session failed.
                match port.status() {
                    Ok(()) => {}
                    Err(SessionError::Failed) => break Ending::SessionFailed,
                    Err(_) => break Ending::CallEnded,
                }
            }
            changed = wind_down.changed(), if changed_open => {
                match changed {
                    Ok(()) => grace_until = *wind_down.borrow_and_update(),
                    // The server is gone: end now.
                    Err(_) => {
                        changed_open = false;
                        grace_until = Some(Instant::now());
                    }
                }
            }
            _ = sleep_until(grace_until.unwrap_or(far)), if grace_until.is_some() => {
                break Ending::ShuttingDown;
            }
        }
    };
    let _ = flush(&mut port, outbox, &mut out, &mut log.messages_out).await;
    log.session = Some(port.stats());
    // No `end_stream` here: `port` dropped as this returns ends a stream the carrier left
    // without a stop, so the host gets its `stopped` event (a stream already stopped, or never
    // handed over, is left as it is).
    ctx.registry.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    ending
}

/// Renames a call's recording after its stream (the recorder keeps writing to the open file):
/// `<stream id>.<ext>` made safe for a file name, with the connection's number added if a
/// recording of that name exists already.
fn name_recording(pending: &std::path::Path, stream_id: &str, conn: u64) {
    let ext = pending.extension().and_then(|e| e.to_str()).unwrap_or("wav");
    let safe = safe_file_stem(stream_id);
    let mut target = pending.with_file_name(format!("{safe}.{ext}"));
    if target.exists() {
        target = pending.with_file_name(format!("{safe}-{conn}.{ext}"));
    }
    let _ = std::fs::rename(pending, target);
}

/// `id` as a file name stem: letters, digits, `-` and `_` kept, anything else `_` (a dot too: no
/// stream id can name a path outside the directory or another call's pending file,
/// `call-<connection>.pending.<ext>`), at most 128 bytes; `call` if nothing is left.
pub(crate) fn safe_file_stem(id: &str) -> String {
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') { c } else { '_' })
        .take(128)
        .collect();
    if safe.is_empty() { "call".to_owned() } else { safe }
}

/// Why a message was not taken.
enum Pushed {
    /// The session refused it (`Full` after waiting `PUSH_PATIENCE`).
    Refused(SessionError),
    /// Sending to the carrier failed while waiting.
    CarrierGone,
}

/// Pushes a message, waiting (without reading more from the socket: TCP backpressure) while the
/// engine's ring is full. The agent's audio goes on to the carrier meanwhile: the worker keeps
/// pacing it, and held back here it would fill the outbound ring and stall.
async fn push<O: Outbox>(
    port: &mut CarrierPort,
    bytes: &[u8],
    kind: MessageKind,
    outbox: &mut O,
    buf: &mut Vec<u8>,
    sent_total: &mut u64,
) -> Result<(), Pushed> {
    let deadline = Instant::now() + PUSH_PATIENCE;
    loop {
        match port.push(bytes, kind) {
            Err(SessionError::Full) if Instant::now() < deadline => {
                flush(port, outbox, buf, sent_total).await.map_err(|_| Pushed::CarrierGone)?;
                sleep(Duration::from_millis(1)).await;
            }
            Ok(()) => return Ok(()),
            Err(e) => return Err(Pushed::Refused(e)),
        }
    }
}

/// Sends every outbound message the worker has produced, counting them in `sent_total`.
async fn flush<O: Outbox>(
    port: &mut CarrierPort,
    outbox: &mut O,
    buf: &mut Vec<u8>,
    sent_total: &mut u64,
) -> Result<(), SendError> {
    let mut sent = false;
    while let Some(len) = port.outbound_len() {
        if len > buf.len() {
            buf.resize(len, 0);
        }
        let Some((kind, n)) = port.next_outbound_into(buf) else { break };
        outbox.feed(&buf[..n], kind).await?;
        *sent_total += 1;
        sent = true;
    }
    if sent {
        outbox.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{CallsEnded, safe_file_stem};
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    #[test]
    fn a_drain_waiting_for_the_last_slot_wakes_as_it_is_released() {
        // One slot held (a handshake that reserved it as the drain began): the waiter sleeps
        // until its release, not until its deadline.
        let (ended, active) = (CallsEnded::default(), AtomicU64::new(1));
        let t = Instant::now();
        let deadline = t + Duration::from_secs(20);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| ended.wait_until_none(&active, deadline));
            std::thread::sleep(Duration::from_millis(100));
            ended.release(&active);
            assert!(waiter.join().unwrap(), "reached no slots held");
        });
        assert!(t.elapsed() < Duration::from_secs(10), "woke only at {:?}", t.elapsed());
    }

    #[test]
    fn stream_ids_become_safe_file_names() {
        assert_eq!(
            safe_file_stem("MZ18ad3ab5a668481ce02b83e7395059f0"),
            "MZ18ad3ab5a668481ce02b83e7395059f0"
        );
        assert_eq!(safe_file_stem("v3:call/../../etc passwd"), "v3_call_______etc_passwd");
        assert_eq!(safe_file_stem("../x"), "___x");
        // Never another connection's pending file.
        assert_eq!(safe_file_stem("call-12.pending"), "call-12_pending");
        assert_eq!(safe_file_stem(""), "call");
        assert_eq!(safe_file_stem("é"), "_");
        assert_eq!(safe_file_stem(&"a".repeat(300)).len(), 128);
    }
}
