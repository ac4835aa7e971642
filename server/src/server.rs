//! The listener, its configuration, limits and counters, and the hand-over of calls to the host.

use super::audiosocket::{self, AllowList};
use super::connection::{ConnectionContext, Endpoint, dispatch_outbound};
use super::logs::{self, Origin};
use super::{http, websocket};
use crossbeam_channel::{Receiver, Sender};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use trunkline::config::SessionConfig;
use trunkline::metrics::Format;
use trunkline::protocol::StreamStart;
use trunkline::protocol::dialect_by_name;
use trunkline::protocol::signature::{RequestAuth, request_auth};
use trunkline::runtime::{Engine, EngineError, Session, Wakeup};

/// Offload server settings.
#[derive(Debug, Clone)]
pub struct OffloadConfig {
    /// Address to listen on (port 0: any free port; see [`OffloadServer::local_addr`]).
    pub bind: SocketAddr,
    /// Request paths accepted (e.g. `/media`); others get 404. Empty: any path.
    pub paths: Vec<String>,
    /// The account's auth token. When set, every upgrade request must carry a valid signature
    /// of the carrier the session's dialect speaks (Twilio: `X-Twilio-Signature`), else 403; a
    /// dialect whose carrier signs nothing refuses the setting.
    pub auth_token: Option<String>,
    /// The public URL base the carrier connects to (e.g. `wss://bot.example.com`), needed for the
    /// signature when a proxy rewrites the scheme or host. Default: rebuilt from the request.
    pub public_url: Option<String>,
    /// Settings of every session the server opens (its `dialect` is the carrier's, unless
    /// `routes` binds paths to dialects).
    pub session: SessionConfig,
    /// Request paths bound to dialects, for one server that takes several carriers (e.g.
    /// `/twilio` and `/telnyx`). When set, a request is accepted only on a route's path, its call
    /// speaks the route's dialect and is checked with the route's secret; `paths` and
    /// `auth_token` are then not used. Empty: every call speaks `session.dialect`.
    pub routes: Vec<Route>,
    /// Most concurrent calls, 1-65536; more are refused with 503.
    pub max_sessions: usize,
    /// Largest WebSocket message accepted, 1 byte to 16 MiB; a larger one closes the connection
    /// (1009).
    pub max_message_bytes: usize,
    /// Time allowed from TCP accept to a completed WebSocket handshake. This and every timeout
    /// and interval here must be positive and at most a day (`OffloadError::Invalid`).
    pub handshake_timeout: Duration,
    /// A connection that sends no message for this long is closed: pings and pongs do not count
    /// (a peer that answers the server's pings and sends nothing else holds no slot). So is one
    /// whose stream has not started this long after it connected, whatever it sends.
    pub idle_timeout: Duration,
    /// Longest one send (or flush) to the carrier may take. A carrier that stops reading fills
    /// the socket's buffers and then blocks every send; past this the connection is closed (its
    /// host session gets `Stopped`, its slot is freed) and counted in `send_timeouts`.
    pub send_timeout: Duration,
    /// Interval of WebSocket pings to the carrier (`None`: no pings).
    pub ping_interval: Option<Duration>,
    /// Network threads, 1-1024.
    pub threads: usize,
    /// TLS (with the `tls` feature), for deployments without a terminating proxy.
    pub tls: Option<TlsConfig>,
    /// Record every call into this directory (which must exist), as `<stream id>.wav` (or
    /// `.opus`, see `record_format`): the caller's audio on the left channel, the agent's as the
    /// caller heard it on the right (see `docs/recordings.md`). The stream id is made safe for a
    /// file name (characters other than letters, digits, `-` and `_` become `_`); until the
    /// carrier's start names it, the file is `call-<connection>.pending.<ext>` (removed if the
    /// call never starts). `None` (the default): no recordings.
    pub record_dir: Option<PathBuf>,
    /// The recordings' format (default WAV).
    pub record_format: RecordFormat,
}

/// The file format of the offload server's recordings (see [`OffloadConfig::record_dir`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordFormat {
    /// 16-bit stereo WAV.
    #[default]
    Wav,
    /// Stereo Ogg Opus.
    OggOpus,
}

impl RecordFormat {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::OggOpus => "opus",
        }
    }
}

/// A request path bound to a dialect (see [`OffloadConfig::routes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The request path, e.g. `/telnyx`.
    pub path: String,
    /// The dialect of the calls on this path (one of `trunkline::protocol::DIALECTS`).
    pub dialect: String,
    /// The carrier account's secret: when set, every request on this path must be authenticated
    /// (by `auth`, else the way its carrier does it by default:
    /// `trunkline::protocol::signature::request_auth`), else 403.
    pub auth_token: Option<String>,
    /// How requests on this path authenticate, when not the carrier's default: e.g.
    /// `RequestAuth::VonageJwt` for Vonage's signed JWT (`{"type": "vonage"}`) rather than its
    /// custom bearer value (the default). Needs `auth_token` (the secret it is checked with).
    pub auth: Option<RequestAuth>,
}

/// A TCP port taking Asterisk AudioSocket connections (see
/// [`OffloadServer::listen_audiosocket`]).
#[derive(Debug, Clone)]
pub struct AudioSocketListener {
    /// Address to listen on (port 0: any free port, returned by `listen_audiosocket`).
    pub bind: SocketAddr,
    /// Call UUIDs accepted from the start (AudioSocket has no authentication: a connection is
    /// taken only if its first message names an allowed UUID). Added to the server's allow-list,
    /// which [`OffloadServer::allow_audiosocket_call`] also fills.
    pub allowed_calls: Vec<String>,
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Certificate chain (PEM).
    pub cert_pem: std::path::PathBuf,
    /// Private key (PEM).
    pub key_pem: std::path::PathBuf,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            paths: vec![],
            auth_token: None,
            public_url: None,
            session: SessionConfig::default(),
            routes: vec![],
            max_sessions: 1000,
            max_message_bytes: 64 * 1024,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            // Why 5 s: a send blocks only once the socket's buffers (seconds of paced audio) are
            // full, so the peer has already taken nothing for seconds; TCP recovers a lost segment
            // within a retransmission timeout or two (1 s, then 2 s), well inside 5 s more. Much
            // shorter than `idle_timeout` (30 s): a slot held by a dead peer is a call refused.
            send_timeout: Duration::from_secs(5),
            ping_interval: Some(Duration::from_secs(20)),
            threads: 1,
            tls: None,
            record_dir: None,
            record_format: RecordFormat::Wav,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum OffloadError {
    /// Binding or the runtime failed.
    #[error("offload server I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A bad setting.
    #[error("invalid offload setting: {0}")]
    Invalid(&'static str),
    /// A route or `session.dialect` names no dialect this build speaks, or options it cannot take.
    #[error("invalid offload setting: {0}")]
    Dialect(trunkline::protocol::DialectError),
    /// The session settings are ones no call could open with (checked at start for each
    /// route's dialect, so that the server fails then rather than at every call).
    #[error("invalid offload setting: {0}")]
    Session(EngineError),
    /// TLS was configured but could not be set up (or the `tls` feature is off).
    #[error("TLS: {0}")]
    Tls(String),
}

/// A call the server accepted, handed to the host once its `start` arrived.
pub struct OffloadedCall {
    /// The session: read audio, play, mark, interrupt, events, stats. (Its carrier side is driven
    /// by the server: `push` and `next_outbound` are not available.)
    pub session: Session,
    /// What the carrier said in `start`.
    pub start: Box<StreamStart>,
}

macro_rules! server_counters {
    ($($(#[doc = $doc:expr])* $name:ident,)*) => {
        #[derive(Debug, Default)]
        pub(crate) struct ServerCounters { $(pub(crate) $name: AtomicU64,)* }

        /// A snapshot of the server's counters.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct ServerStats { $($(#[doc = $doc])* pub $name: u64,)* }

        impl ServerCounters {
            pub(crate) fn snapshot(&self) -> ServerStats {
                ServerStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }

        impl ServerStats {
            /// Counter names, NUL-terminated (for the C ABI), in declaration order.
            pub const NAMES_NUL: &'static [&'static str] = &[$(concat!(stringify!($name), "\0"),)*];

            /// Every counter's value, in declaration order.
            pub fn values(&self) -> Vec<u64> {
                vec![$(self.$name,)*]
            }
        }
    };
}

server_counters! {
    /// TCP connections accepted (WebSocket and AudioSocket listeners).
    connections,
    /// Calls taken: WebSocket handshakes completed, AudioSocket UUIDs allowed.
    accepted,
    /// Upgrades refused: a missing or invalid request signature (403).
    rejected_signature,
    /// Upgrades refused: path not served (404).
    rejected_path,
    /// Upgrades refused: `max_sessions` reached (503).
    rejected_capacity,
    /// Connections that did not complete the handshake in time (or failed it; for AudioSocket:
    /// no call UUID as the first message).
    handshake_failures,
    /// Connections closed for sending nothing within the idle timeout.
    idle_timeouts,
    /// Connections closed because a send to the carrier did not complete within `send_timeout`
    /// (the carrier stopped reading).
    send_timeouts,
    /// Connections closed for a message over the size limit (or a protocol violation).
    protocol_failures,
    /// Calls handed to the host.
    calls_opened,
    /// Calls refused because the host had not accepted earlier ones (its queue was full).
    calls_refused,
    /// Call connections (those that took a call slot) that ended, for any reason. Connections
    /// refused or failed before a call, probes and scrapes are in `connections` only.
    closed,
    /// Call connections holding a call slot now.
    active,
    /// Of `rejected_signature`: requests that carried no credentials at all.
    rejected_signature_missing,
    /// Of `rejected_signature`: correctly signed JWTs outside their validity window (`exp`,
    /// `nbf`, `iat`: often a clock out of step).
    rejected_signature_expired,
    /// Upgrades refused: the client offered WebSocket subprotocols, none of them the route's
    /// carrier's (400).
    rejected_subprotocol,
    /// AudioSocket connections refused: their call UUID is not on the allow-list.
    rejected_audiosocket_call,
    /// Calls refused because the server is draining (503 to an upgrade; an AudioSocket
    /// connection closed).
    rejected_draining,
    /// `/metrics` requests answered.
    scrapes,
    /// `/healthz` and `/readyz` requests answered.
    health_checks,
}

/// One route's own counters (see [`OffloadServer::route_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteStats {
    /// The route's path (empty: the server's single endpoint, any path in `paths`).
    pub path: String,
    /// WebSocket handshakes completed on this route.
    pub accepted: u64,
    /// Upgrades refused for their authentication (also in `ServerStats::rejected_signature`).
    pub rejected_signature: u64,
    /// Of those, requests that carried no credentials at all.
    pub rejected_signature_missing: u64,
}

/// A running offload server. Dropping it shuts it down (with no grace period).
pub struct OffloadServer {
    local_addr: SocketAddr,
    ctx: Arc<ConnectionContext>,
    calls: Receiver<OffloadedCall>,
    /// Stops the listeners.
    shutdown: watch::Sender<bool>,
    /// When live calls are ended (see [`OffloadServer::drain`]).
    wind_down: watch::Sender<Option<tokio::time::Instant>>,
    runtime: Option<tokio::runtime::Runtime>,
    /// One per listener: reports when the listener and all its connections have ended.
    done: Mutex<Vec<Receiver<()>>>,
}

/// The server's endpoints: its routes, or one taking any allowed path for `session.dialect`.
fn endpoints(config: &OffloadConfig) -> Result<Vec<Endpoint>, OffloadError> {
    let routes = if config.routes.is_empty() {
        let path = String::new(); // any path in `paths`
        let dialect = config.session.dialect.clone();
        vec![Route { path, dialect, auth_token: config.auth_token.clone(), auth: None }]
    } else {
        config.routes.clone()
    };
    if routes.iter().enumerate().any(|(i, r)| routes[..i].iter().any(|other| other.path == r.path)) {
        // The second could never be reached, and its metrics would repeat the first's series.
        return Err(OffloadError::Invalid("two routes have the same path"));
    }
    let plain = |path: &str| http::PATHS.contains(&path);
    if routes.iter().any(|r| plain(&r.path)) || config.paths.iter().any(|p| plain(p)) {
        return Err(OffloadError::Invalid(
            "/metrics, /healthz and /readyz are answered as plain HTTP and cannot be stream paths",
        ));
    }
    routes
        .into_iter()
        .map(|route| {
            if let Err(e) = dialect_by_name(&route.dialect) {
                return Err(OffloadError::Dialect(e));
            }
            let auth = route.auth.or_else(|| request_auth(&route.dialect));
            if route.auth_token.is_some() && auth.is_none() {
                return Err(OffloadError::Invalid(
                    "an auth token is set for a dialect whose carrier authenticates nothing",
                ));
            }
            if route.auth.is_some() && route.auth_token.is_none() {
                return Err(OffloadError::Invalid("a route's auth scheme needs its secret (auth_token)"));
            }
            let session = SessionConfig { dialect: route.dialect.clone(), ..config.session.clone() };
            Engine::check_session_config(&session).map_err(OffloadError::Session)?;
            Ok(Endpoint::new(route, session, auth))
        })
        .collect()
}

/// Most calls one server takes: its queue of calls for the host is allocated whole at start.
const MAX_SESSIONS: usize = 65_536;
/// Most network threads.
const MAX_THREADS: usize = 1024;
/// Longest timeout or ping interval: far beyond any use, and clear of overflowing a deadline.
const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);
/// Largest message limit: a connection buffers a message whole, so a wild limit lets any peer
/// make the process allocate until it aborts (the C ABI bounds a session's limit the same way).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Refuses limits the server cannot run with: zero (nothing would fit, or every connection
/// would be closed at once), or so large that allocating for them would abort the process.
fn check_limits(config: &OffloadConfig) -> Result<(), OffloadError> {
    if !(1..=MAX_SESSIONS).contains(&config.max_sessions) || !(1..=MAX_THREADS).contains(&config.threads) {
        return Err(OffloadError::Invalid("max_sessions must be 1-65536 and threads 1-1024"));
    }
    if !(1..=MAX_MESSAGE_BYTES).contains(&config.max_message_bytes) {
        return Err(OffloadError::Invalid("max_message_bytes must be 1 to 16 MiB"));
    }
    let timeouts = [
        Some(config.handshake_timeout),
        Some(config.idle_timeout),
        // Zero would close every connection whose first send has to wait at all.
        Some(config.send_timeout),
        config.ping_interval,
    ];
    if timeouts.into_iter().flatten().any(|t| t.is_zero() || t > MAX_TIMEOUT) {
        return Err(OffloadError::Invalid(
            "handshake_timeout, idle_timeout, send_timeout and ping_interval must be positive and at most a day",
        ));
    }
    Ok(())
}

/// An AudioSocket call UUID in its text form, or `Invalid`.
fn call_uuid(text: &str) -> Result<[u8; 16], OffloadError> {
    audiosocket::parse_uuid(text).ok_or(OffloadError::Invalid("not a UUID"))
}

impl OffloadServer {
    /// Starts listening. The engine must be threaded (`workers >= 1`).
    pub fn start(engine: &Engine, config: OffloadConfig) -> Result<Self, OffloadError> {
        if engine.workers() == 0 {
            return Err(OffloadError::Invalid("the offload server needs a threaded engine (workers >= 1)"));
        }
        check_limits(&config)?;
        let routes = endpoints(&config)?;
        #[cfg(feature = "tls")]
        type Acceptor = tokio_rustls::TlsAcceptor;
        #[cfg(not(feature = "tls"))]
        type Acceptor = ();
        let tls: Option<Acceptor> = match &config.tls {
            None => None,
            #[cfg(feature = "tls")]
            Some(t) => Some(super::tls::acceptor(t)?),
            #[cfg(not(feature = "tls"))]
            Some(_) => return Err(OffloadError::Tls("built without the `tls` feature".into())),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .thread_name_fn({
                // Numbered, as the audio workers are, to tell them apart in `top -H`.
                let next = std::sync::atomic::AtomicUsize::new(0);
                move || format!("trunkline-net-{}", next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            })
            .enable_io()
            .enable_time()
            .build()?;
        let listener = listen(&runtime, config.bind)?;
        let local_addr = listener.local_addr()?;
        let (calls_tx, calls) = crossbeam_channel::bounded(config.max_sessions);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (wind_down, wind_down_rx) = watch::channel(None);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let ctx = Arc::new(ConnectionContext {
            engine: engine.handle(),
            config,
            routes,
            counters: Arc::new(ServerCounters::default()),
            calls: calls_tx,
            outbound_wakeup: Arc::new(Wakeup::new()?),
            registry: Default::default(),
            shutdown: shutdown_rx,
            wind_down: wind_down_rx,
            draining: AtomicBool::new(false),
            ended: Default::default(),
            audiosocket_calls: AllowList::default(),
            #[cfg(feature = "tls")]
            tls,
        });
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        runtime.spawn(dispatch_outbound(ctx.clone()));
        runtime.spawn(accept_loop(listener, ctx.clone(), Transport::WebSocket, done_tx));
        let dialects: Vec<&str> = ctx.routes.iter().map(|e| e.route.dialect.as_str()).collect();
        tracing::info!(addr = %local_addr, dialects = ?dialects, "offload server listening");
        Ok(Self {
            local_addr,
            ctx,
            calls,
            shutdown,
            wind_down,
            runtime: Some(runtime),
            done: Mutex::new(vec![done]),
        })
    }

    /// Also listens for Asterisk AudioSocket on `listener.bind` (TCP, no TLS: Asterisk has
    /// none), returning the bound address. Its calls speak the `audiosocket` dialect with the
    /// server's other session settings, count against the same `max_sessions`, and reach the
    /// host through [`OffloadServer::accept`] like any other call, once their first audio
    /// arrives. A connection whose first message is not a call UUID on the allow-list is closed
    /// (counted in `rejected_audiosocket_call`, or `handshake_failures` when no UUID comes
    /// within `handshake_timeout`). The idle and send timeouts apply; there are no pings.
    pub fn listen_audiosocket(&self, listener: AudioSocketListener) -> Result<SocketAddr, OffloadError> {
        let Some(runtime) = &self.runtime else {
            return Err(OffloadError::Invalid("the server is shut down"));
        };
        let uuids =
            listener.allowed_calls.iter().map(|uuid| call_uuid(uuid)).collect::<Result<Vec<_>, _>>()?;
        let session = SessionConfig { dialect: "audiosocket".into(), ..self.ctx.config.session.clone() };
        Engine::check_session_config(&session).map_err(OffloadError::Session)?;
        let tcp = listen(runtime, listener.bind)?;
        let local_addr = tcp.local_addr()?;
        // Allowed once nothing can fail: a listen refused for any reason allows none of them.
        for uuid in uuids {
            self.ctx.audiosocket_calls.allow(uuid);
        }
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let transport = Transport::AudioSocket(Arc::new(session));
        runtime.spawn(accept_loop(tcp, self.ctx.clone(), transport, done_tx));
        tracing::info!(addr = %local_addr, "offload server listening for AudioSocket");
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push(done);
        Ok(local_addr)
    }

    /// Allows AudioSocket connections for call `uuid` (text form, e.g.
    /// `40325ec2-5efd-4bd3-805f-53576e581d13`, any case, hyphens optional), until revoked.
    /// Register it before handing it to Asterisk (`AudioSocket(uuid,host:port)`).
    pub fn allow_audiosocket_call(&self, uuid: &str) -> Result<(), OffloadError> {
        self.ctx.audiosocket_calls.allow(call_uuid(uuid)?);
        Ok(())
    }

    /// Stops allowing new AudioSocket connections for call `uuid` (a live one goes on); whether
    /// it was allowed.
    pub fn revoke_audiosocket_call(&self, uuid: &str) -> bool {
        audiosocket::parse_uuid(uuid).is_some_and(|uuid| self.ctx.audiosocket_calls.revoke(&uuid))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The next call whose stream has started, if any. New calls also signal the engine's wakeup
    /// (so `Engine::wait` / the wakeup fd cover them).
    pub fn accept(&self) -> Option<OffloadedCall> {
        self.calls.try_recv().ok()
    }

    /// The server's counters.
    pub fn stats(&self) -> ServerStats {
        self.ctx.counters.snapshot()
    }

    /// Each route's own counters, in the order of [`OffloadConfig::routes`] (without routes:
    /// one, the server's single endpoint).
    pub fn route_stats(&self) -> Vec<RouteStats> {
        self.ctx.routes.iter().map(Endpoint::stats).collect()
    }

    /// The engine's and the server's counters in the Prometheus text `format`, as `/metrics`
    /// answers them (for a host that serves metrics elsewhere). No per-call labels; routes are
    /// told apart by their path (`*` for the single endpoint without routes).
    pub fn metrics(&self, format: Format) -> String {
        self.ctx.render_metrics(format)
    }

    /// Whether the server takes new calls now (what `/readyz` answers): not draining, and
    /// fewer than `max_sessions` connections.
    pub fn is_ready(&self) -> bool {
        self.ctx.is_ready()
    }

    /// Drains the server for a restart: at once it takes no new calls (`/readyz` answers 503,
    /// upgrades get 503 and AudioSocket connections are closed, counted in
    /// `rejected_draining`), while `/metrics` and `/healthz` go on; live calls go on for up to
    /// `grace` (until their stream stops or the carrier hangs up), then the rest are ended as
    /// [`OffloadServer::shutdown`] ends them (a close frame, or the TCP connection closed; their
    /// hosts get `Stopped`). Blocks until every call has ended, or `grace` plus 2 s; returns
    /// whether they all did. The server keeps listening (drop it or call `shutdown` to stop);
    /// draining cannot be undone.
    pub fn drain(&self, grace: Duration) -> bool {
        self.ctx.draining.store(true, Ordering::SeqCst);
        logs::drain_started(grace, self.ctx.counters.active.load(Ordering::Acquire));
        self.end_calls_after(grace);
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        let all_ended = self.ctx.ended.wait_until_none(&self.ctx.counters.active, deadline);
        logs::drain_finished(all_ended, self.ctx.counters.active.load(Ordering::Acquire));
        all_ended
    }

    /// Tells every call to end by `grace` from now (or sooner, if told before).
    fn end_calls_after(&self, grace: Duration) {
        let by = tokio::time::Instant::now() + grace;
        self.wind_down.send_if_modified(|current| match current {
            Some(earlier) if *earlier <= by => false,
            _ => {
                *current = Some(by);
                true
            }
        });
    }

    /// Stops accepting, lets live calls go on for up to `grace` (until their stream stops or the
    /// carrier hangs up), then closes what is left and stops the network threads.
    pub fn shutdown(mut self, grace: Duration) {
        self.stop(grace);
    }

    fn stop(&mut self, grace: Duration) {
        self.end_calls_after(grace);
        let _ = self.shutdown.send(true);
        // Each accept loop reports when every connection it took has ended.
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        for done in std::mem::take(self.done.get_mut().unwrap_or_else(|e| e.into_inner())) {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
        if let Some(rt) = self.runtime.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Called from a task of the host's own runtime, which may not block on another
                // runtime's shutdown: the connections have ended (or their wait ran out), and
                // the network threads are let go without waiting for them.
                rt.shutdown_background();
            } else {
                rt.shutdown_timeout(Duration::from_secs(1));
            }
        }
        // A host blocked waiting for its next call learns there will be none.
        self.ctx.engine.notify_host();
    }
}

impl Drop for OffloadServer {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

/// What a listener's connections speak.
enum Transport {
    /// A carrier's media stream over WebSocket, on the server's routes.
    WebSocket,
    /// Asterisk AudioSocket over raw TCP, with these session settings.
    AudioSocket(Arc<SessionConfig>),
}

/// A listening socket on `addr`, registered with `runtime`, as `TcpListener::bind` makes it
/// (address reuse, a backlog of 1024) but without blocking on the runtime: the server may be
/// started from a task of the host's own tokio runtime, where that would panic.
fn listen(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let _in_runtime = runtime.enter();
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// How long the accept loop pauses after a failed accept.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<ConnectionContext>,
    transport: Transport,
    done: Sender<()>,
) {
    let mut shutdown = ctx.shutdown.clone();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: the listener stays ready and the next
                        // accept fails at once, so pause instead of spinning a network thread.
                        logs::accept_failed(&error);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                ctx.counters.connections.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                match &transport {
                    Transport::WebSocket => {
                        let origin = Origin::accepted(peer, "websocket");
                        tasks.spawn(websocket::serve(stream, ctx.clone(), origin))
                    }
                    Transport::AudioSocket(session) => {
                        let origin = Origin::accepted(peer, "audiosocket");
                        tasks.spawn(audiosocket::serve(stream, ctx.clone(), session.clone(), origin))
                    }
                };
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
    let _ = done.send(());
}

pub(crate) type CallSender = Sender<OffloadedCall>;
