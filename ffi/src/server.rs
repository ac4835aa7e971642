//! The offload server: Trunkline as the carriers' WebSocket endpoint (one dialect, or several
//! bound to request paths by routes) and as Asterisk's AudioSocket one.

use crate::config::{opt_str, size_t, trunkline_session_config};
use crate::engine::{engine_ref, trunkline_engine};
use crate::result::trunkline_result;
use crate::session::{session_handle, trunkline_session};
use crate::versioned::{self, versioned};
use crate::{guard, guard_void, try_out, try_slice, try_slice_mut};
use ::trunkline_server::{
    AudioSocketListener, OffloadConfig, OffloadError, OffloadServer, RequestAuth, Route, ServerStats,
    TlsConfig,
};
use std::ffi::c_char;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A running offload server. Opaque.
pub struct trunkline_server {
    _private: [u8; 0],
}

/// Offload server settings. Fill with trunkline_server_config_default, then change what you need.
/// Strings and `session` are borrowed for the duration of trunkline_server_start only; strings
/// are NUL-terminated UTF-8.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_server_config {
    /// sizeof(trunkline_server_config) in the caller's header: set by
    /// trunkline_server_config_default (see "VERSIONED CONFIGS" above).
    pub struct_size: size_t,
    /// Address to listen on, e.g. "0.0.0.0:8080" ("127.0.0.1:0" by default: any free port).
    pub bind: *const c_char,
    /// The one request path served, e.g. "/media"; NULL: any path (NULL with `routes`).
    pub path: *const c_char,
    /// The account's auth token: when set, the carrier's request authentication is required and checked (Twilio: X-Twilio-Signature; 403 else).
    pub auth_token: *const c_char,
    /// Public URL base Twilio connects to (e.g. "wss://bot.example.com"), for the signature
    /// behind a proxy; NULL: rebuilt from the request.
    pub public_url: *const c_char,
    /// Settings of every session the server opens (a config filled by
    /// trunkline_session_config_default, with its own struct_size); NULL: the defaults. A pointer,
    /// not a nested struct, so that each of the two configs can grow on its own.
    pub session: *const trunkline_session_config,
    /// Most concurrent calls, 1-65536; more are refused with 503.
    pub max_sessions: u32,
    /// Largest WebSocket message accepted, bytes: 1 to 16 MiB.
    pub max_message_bytes: size_t,
    /// Time allowed for the WebSocket handshake, ms (> 0, at most a day, as for every timeout
    /// here).
    pub handshake_timeout_ms: u32,
    /// A connection that sends no message for this long is closed, ms (> 0; pings and pongs
    /// do not count); so is one whose stream has not started this long after it connected.
    pub idle_timeout_ms: u32,
    /// Longest one send to the carrier may take, ms (> 0): a carrier that stops reading is
    /// closed after it (its session gets STOPPED), counted in send_timeouts.
    pub send_timeout_ms: u32,
    /// Interval of pings to the carrier, ms (0: none).
    pub ping_interval_ms: u32,
    /// Network threads, 1-1024.
    pub threads: u32,
    /// TLS certificate chain (PEM file path): the server then takes wss:// (and https:// for
    /// /metrics and the health checks) only; NULL: plain ws://. Set both or neither. A library
    /// built without the `tls` feature (the shipped one has it) refuses it.
    pub tls_cert_pem: *const c_char,
    /// TLS private key (PEM file path: PKCS#8, PKCS#1 or SEC1).
    pub tls_key_pem: *const c_char,
    /// Request paths bound to dialects, for one server that takes several carriers (e.g.
    /// "/twilio" and "/telnyx"): `route_count` routes, an array of trunkline_route (NULL with a
    /// count of 0: none, the default). With routes, a request is accepted only on a route's path,
    /// its call speaks the route's dialect (whatever `session` says) and is checked with the
    /// route's secret; `path` and `auth_token` must then be NULL. Borrowed for
    /// trunkline_server_start only.
    pub routes: *const trunkline_route,
    /// Number of routes in `routes`.
    pub route_count: size_t,
}

versioned!(trunkline_server_config {
    struct_size, bind, path, auth_token, public_url, session, max_sessions, max_message_bytes,
    handshake_timeout_ms, idle_timeout_ms, send_timeout_ms, ping_interval_ms, threads,
    tls_cert_pem, tls_key_pem, routes, route_count,
} bools {});

/// A request path bound to a dialect (trunkline_server_config.routes). Every field's zero (NULL)
/// is its default, so `{.struct_size = sizeof(trunkline_route), .path = ..., .dialect = ...}`
/// is a complete route; fields are only ever appended (see "VERSIONED CONFIGS" above). In an
/// array, every element's `struct_size` is the same: the array's stride.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_route {
    /// sizeof(trunkline_route) in the caller's header.
    pub struct_size: size_t,
    /// The request path, e.g. "/telnyx": starts with '/', unique among the routes.
    pub path: *const c_char,
    /// The dialect of the calls on this path, e.g. "telnyx" or "telnyx;codec=L16;rate=16000" (one
    /// this build speaks, with the options it takes).
    pub dialect: *const c_char,
    /// The carrier account's secret: when set, every request on this path must be authenticated
    /// with it (the way `auth` says), else 403. NULL: no check.
    pub auth_token: *const c_char,
    /// How requests on this path authenticate: NULL or "" the way the dialect's carrier does by
    /// default (Twilio's X-Twilio-Signature, Telnyx's token header...); "vonage_jwt" Vonage's
    /// signed JWT (`{"type": "vonage"}` on the endpoint) rather than its custom bearer value.
    /// A scheme other than the default needs `auth_token` (the secret it is checked with).
    pub auth: *const c_char,
}

versioned!(trunkline_route { struct_size, path, dialect, auth_token, auth } bools {});

impl trunkline_route {
    /// Every field NULL (the size apart).
    fn defaults() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>(),
            path: std::ptr::null(),
            dialect: std::ptr::null(),
            auth_token: std::ptr::null(),
            auth: std::ptr::null(),
        }
    }

    fn route(&self) -> Result<Route, trunkline_result> {
        let path = opt_str(self.path)?.ok_or(trunkline_result::NullParameter)?;
        let dialect = opt_str(self.dialect)?.ok_or(trunkline_result::NullParameter)?;
        // An empty path would take any path: a route names its own. The dialect (with its
        // options) is checked where it is built.
        if !path.starts_with('/') || trunkline::protocol::dialect_by_name(&dialect).is_err() {
            return Err(trunkline_result::InvalidArgument);
        }
        let auth = match opt_str(self.auth)?.as_deref() {
            None | Some("") => None,
            Some("vonage_jwt") => Some(RequestAuth::VonageJwt),
            Some(_) => return Err(trunkline_result::InvalidArgument),
        };
        Ok(Route { path, dialect, auth_token: opt_str(self.auth_token)?, auth })
    }
}

/// The routes of `count` elements at `ptr`, each `struct_size` bytes apart (an older caller's
/// smaller struct is read as such). INVALID_ARGUMENT for a bad or unequal `struct_size` or a bad
/// route (a path given twice the server refuses as it starts).
fn read_routes(ptr: *const trunkline_route, count: usize) -> Result<Vec<Route>, trunkline_result> {
    if count == 0 {
        return Ok(vec![]);
    }
    if ptr.is_null() {
        return Err(trunkline_result::NullParameter);
    }
    // SAFETY: non-NULL; the header requires `routes` to point to `route_count` routes, each
    // beginning with its `size_t struct_size`.
    let stride = unsafe { ptr.cast::<usize>().read() };
    let aligned = stride % std::mem::align_of::<trunkline_route>() == 0;
    if !aligned || stride < std::mem::size_of::<usize>() || count > isize::MAX as usize / stride {
        return Err(trunkline_result::InvalidArgument);
    }
    let mut routes: Vec<Route> = Vec::with_capacity(count.min(64));
    for i in 0..count {
        // SAFETY: within the caller's array of `count` elements of `stride` bytes (checked not to
        // overflow an isize), aligned as its first element is (`stride` is a multiple of the
        // alignment).
        let element = unsafe { ptr.byte_add(i * stride) };
        // Each element is read as its own `struct_size` says, so that size must be the stride
        // before anything is read: a larger one would read past the element (past the array,
        // for the last).
        // SAFETY: within the array as above; every element begins with its `size_t struct_size`.
        if unsafe { element.cast::<usize>().read() } != stride {
            return Err(trunkline_result::InvalidArgument);
        }
        let r = versioned::read(element, trunkline_route::defaults())?;
        routes.push(r.route()?);
    }
    Ok(routes)
}

impl trunkline_server_config {
    /// The defaults (bind "127.0.0.1:0", any path, no signature check, default sessions).
    fn defaults() -> Self {
        let d = OffloadConfig::default();
        Self {
            struct_size: std::mem::size_of::<Self>(),
            bind: c"127.0.0.1:0".as_ptr(),
            path: std::ptr::null(),
            auth_token: std::ptr::null(),
            public_url: std::ptr::null(),
            session: std::ptr::null(),
            max_sessions: d.max_sessions as u32,
            max_message_bytes: d.max_message_bytes,
            handshake_timeout_ms: d.handshake_timeout.as_millis() as u32,
            idle_timeout_ms: d.idle_timeout.as_millis() as u32,
            send_timeout_ms: d.send_timeout.as_millis() as u32,
            ping_interval_ms: d.ping_interval.map_or(0, |p| p.as_millis() as u32),
            threads: d.threads as u32,
            tls_cert_pem: std::ptr::null(),
            tls_key_pem: std::ptr::null(),
            routes: std::ptr::null(),
            route_count: 0,
        }
    }
}

struct ServerBox {
    /// `None` after trunkline_server_shutdown. Each call takes a reference for its own length
    /// and lets go of the lock at once, so that a drain (which blocks for its grace) leaves the
    /// other calls free meanwhile; the shutdown waits for the drain to let go of its reference.
    server: Mutex<Option<Arc<OffloadServer>>>,
}

impl ServerBox {
    /// The running server, or `None` after trunkline_server_shutdown.
    fn get(&self) -> Option<Arc<OffloadServer>> {
        self.server.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

fn server_box<'a>(ptr: *const trunkline_server) -> Option<&'a ServerBox> {
    // SAFETY: a non-NULL `trunkline_server*` is a `Box<ServerBox>` from trunkline_server_start that
    // is not yet freed (the header's contract).
    unsafe { ptr.cast::<ServerBox>().as_ref() }
}

/// Writes the default server settings (bind "127.0.0.1:0", any path, no signature check,
/// `session` NULL: default sessions) into `*out`, a struct of `struct_size` bytes: pass
/// sizeof(trunkline_server_config). Only the fields that fit in it are written; `struct_size` is
/// stored in it. Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (`struct_size` smaller than a
/// size_t or larger than this library's struct). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_config_default(
    out: *mut trunkline_server_config,
    struct_size: size_t,
) -> trunkline_result {
    guard(|| versioned::write(out, struct_size, trunkline_server_config::defaults()))
}

/// Starts an offload server on `engine` (which must have worker threads). `config` may be NULL for
/// the defaults. On success `*out` receives a server the caller owns and must free with
/// trunkline_server_free (before freeing the engine). New calls are announced through
/// trunkline_server_accept and signal the engine's wakeup fd.
///
/// Results: OK; NULL_PARAMETER (also a route without its path or dialect); INVALID_ARGUMENT (a bad
/// `struct_size` here, in `session` or in a route, a bad setting, address or dialect, an inline
/// engine, TLS without the `tls` feature or with unreadable PEM files; a route whose path does not
/// start with '/' or is another route's, whose dialect this build does not speak (or with
/// options it does not take), whose `auth` is unknown or set without an `auth_token`, or with an `auth_token` for a carrier that
/// authenticates nothing; routes with `path` or `auth_token` set; a `session` with a
/// `record_path`: every call would write the same file); IO (the address could not be bound).
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_start(
    engine: *const trunkline_engine,
    config: *const trunkline_server_config,
    out: *mut *mut trunkline_server,
) -> trunkline_result {
    guard(|| {
        let Some(engine) = engine_ref(engine) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        let c = if config.is_null() {
            trunkline_server_config::defaults()
        } else {
            match versioned::read(config, trunkline_server_config::defaults()) {
                Ok(c) => c,
                Err(e) => return e,
            }
        };
        let config = match build_config(&c) {
            Ok(config) => config,
            Err(e) => return e,
        };
        match OffloadServer::start(engine, config) {
            Ok(server) => {
                let server = Mutex::new(Some(Arc::new(server)));
                out.set(Box::into_raw(Box::new(ServerBox { server })).cast());
                trunkline_result::Ok
            }
            Err(e) => offload_error(e),
        }
    })
}

fn offload_error(e: OffloadError) -> trunkline_result {
    match e {
        OffloadError::Io(_) => trunkline_result::Io,
        _ => trunkline_result::InvalidArgument,
    }
}

fn build_config(c: &trunkline_server_config) -> Result<OffloadConfig, trunkline_result> {
    let bind = opt_str(c.bind)?.ok_or(trunkline_result::NullParameter)?;
    let bind = bind.parse().map_err(|_| trunkline_result::InvalidArgument)?;
    let tls = match (opt_str(c.tls_cert_pem)?, opt_str(c.tls_key_pem)?) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsConfig { cert_pem: cert.into(), key_pem: key.into() }),
        _ => return Err(trunkline_result::InvalidArgument),
    };
    let routes = read_routes(c.routes, c.route_count)?;
    let (path, auth_token) = (opt_str(c.path)?, opt_str(c.auth_token)?);
    if !routes.is_empty() && (path.is_some() || auth_token.is_some()) {
        // Each route has its own path and secret: the server's single ones would be ignored.
        return Err(trunkline_result::InvalidArgument);
    }
    Ok(OffloadConfig {
        bind,
        paths: path.into_iter().collect(),
        auth_token,
        public_url: opt_str(c.public_url)?,
        session: server_session_config(c.session)?,
        routes,
        max_sessions: c.max_sessions as usize,
        max_message_bytes: c.max_message_bytes,
        handshake_timeout: Duration::from_millis(u64::from(c.handshake_timeout_ms)),
        idle_timeout: Duration::from_millis(u64::from(c.idle_timeout_ms)),
        send_timeout: Duration::from_millis(u64::from(c.send_timeout_ms)),
        ping_interval: (c.ping_interval_ms > 0).then(|| Duration::from_millis(u64::from(c.ping_interval_ms))),
        threads: c.threads as usize,
        tls,
        // Settings this ABI does not carry (the server's own recordings) keep their defaults.
        ..OffloadConfig::default()
    })
}

/// The settings of the server's sessions. A `record_path` is refused: one file for every call.
fn server_session_config(
    ptr: *const trunkline_session_config,
) -> Result<trunkline::SessionConfig, trunkline_result> {
    let config = trunkline_session_config::read(ptr)?;
    if config.record_path.is_some() {
        return Err(trunkline_result::InvalidArgument);
    }
    Ok(config)
}

/// Writes the TCP port the server listens on into `*out_port` (useful with port 0). Results: OK;
/// NULL_PARAMETER; CLOSED (after trunkline_server_shutdown). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_local_port(
    server: *const trunkline_server,
    out_port: *mut u16,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out_port);
        let Some(server) = b.get() else { return trunkline_result::Closed };
        out.set(server.local_addr().port());
        trunkline_result::Ok
    })
}

/// Takes the next call whose stream has started. On success `*out` receives a session the caller
/// owns (free it with trunkline_session_free) with the usual agent-side API: read audio, play,
/// mark, interrupt, events, start info, stats. The server drives its carrier side, so
/// trunkline_session_push, trunkline_session_next_outbound, trunkline_session_outbound_len and
/// trunkline_session_end_stream return INVALID_ARGUMENT on it.
/// Results: OK; EMPTY (no new call); NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_accept(
    server: *const trunkline_server,
    out: *mut *mut trunkline_session,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        let Some(server) = b.get() else { return trunkline_result::Closed };
        match server.accept() {
            Some(call) => {
                out.set(session_handle(call.session, Some(call.start)));
                trunkline_result::Ok
            }
            None => trunkline_result::Empty,
        }
    })
}

/// Also listens for Asterisk AudioSocket on `bind` (e.g. "0.0.0.0:9092"; port 0: any free one),
/// over plain TCP, and writes the port it bound into `*out_port`. Its calls speak the
/// `audiosocket` dialect with the server's other session settings, count against the same
/// `max_sessions`, and come out of trunkline_server_accept like any other call, once their first
/// audio arrives. AudioSocket has no authentication: a connection is taken only if its first
/// message names an allowed call UUID; the others are closed and counted in
/// `rejected_audiosocket_call`. `allowed_calls` holds `allowed_count` UUIDs (NUL-terminated text,
/// "40325ec2-5efd-4bd3-805f-53576e581d13", any case, hyphens optional; NULL with a count of 0:
/// none yet) added to the server's allow-list, which trunkline_server_allow_audiosocket_call also
/// fills. May be called more than once (one more port each time).
///
/// Results: OK; NULL_PARAMETER (`bind`, `out_port`, or a NULL UUID in the list); INVALID_ARGUMENT
/// (an address that does not parse, a string that is not a UUID, the server's session settings
/// refused for the audiosocket dialect); IO (the address could not be bound); CLOSED (after
/// trunkline_server_shutdown). On any failure none of the list is allowed and nothing is bound.
/// Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_listen_audiosocket(
    server: *const trunkline_server,
    bind: *const c_char,
    allowed_calls: *const *const c_char,
    allowed_count: size_t,
    out_port: *mut u16,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out_port);
        let uuids = try_slice!(allowed_calls, allowed_count);
        let bind = match opt_str(bind) {
            Ok(Some(bind)) => bind,
            Ok(None) => return trunkline_result::NullParameter,
            Err(e) => return e,
        };
        let Ok(bind) = bind.parse() else { return trunkline_result::InvalidArgument };
        let mut allowed_calls = Vec::with_capacity(uuids.len().min(1024));
        for &uuid in uuids {
            match opt_str(uuid) {
                // Not a UUID: the server refuses the whole list (INVALID_ARGUMENT), allowing none.
                Ok(Some(uuid)) => allowed_calls.push(uuid),
                Ok(None) => return trunkline_result::NullParameter,
                Err(e) => return e,
            }
        }
        let Some(server) = b.get() else { return trunkline_result::Closed };
        match server.listen_audiosocket(AudioSocketListener { bind, allowed_calls }) {
            Ok(addr) => {
                out.set(addr.port());
                trunkline_result::Ok
            }
            Err(e) => offload_error(e),
        }
    })
}

/// Allows AudioSocket connections for call `uuid` (see trunkline_server_listen_audiosocket), until
/// revoked. Register a call before handing it to Asterisk (`AudioSocket(uuid,host:port)`).
/// Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (not a UUID); CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_allow_audiosocket_call(
    server: *const trunkline_server,
    uuid: *const c_char,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let uuid = match opt_str(uuid) {
            Ok(Some(uuid)) => uuid,
            Ok(None) => return trunkline_result::NullParameter,
            Err(e) => return e,
        };
        let Some(server) = b.get() else { return trunkline_result::Closed };
        match server.allow_audiosocket_call(&uuid) {
            Ok(()) => trunkline_result::Ok,
            Err(e) => offload_error(e),
        }
    })
}

/// Stops allowing new AudioSocket connections for call `uuid` (a live one goes on);
/// `*out_was_allowed` receives whether it was allowed (false for a string that is not a UUID).
/// Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (not UTF-8); CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_revoke_audiosocket_call(
    server: *const trunkline_server,
    uuid: *const c_char,
    out_was_allowed: *mut bool,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out_was_allowed);
        let uuid = match opt_str(uuid) {
            Ok(Some(uuid)) => uuid,
            Ok(None) => return trunkline_result::NullParameter,
            Err(e) => return e,
        };
        let Some(server) = b.get() else { return trunkline_result::Closed };
        out.set(server.revoke_audiosocket_call(&uuid));
        trunkline_result::Ok
    })
}

/// Number of server counters (see trunkline_server_stats_name). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_stats_count() -> size_t {
    ServerStats::NAMES_NUL.len()
}

/// The name of server counter `index` (static, NUL-terminated), or NULL past the end. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_stats_name(index: size_t) -> *const c_char {
    ServerStats::NAMES_NUL.get(index).map_or(std::ptr::null(), |n| n.as_ptr().cast())
}

/// Copies the server's counters, in trunkline_server_stats_name order (connections, accepted,
/// the refusals by reason, failures and timeouts, calls opened and refused, closed, active), into
/// `values`, at most `capacity`; `*out_count` receives how many. Results: OK; NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_stats(
    server: *const trunkline_server,
    values: *mut u64,
    capacity: size_t,
    out_count: *mut size_t,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out_count = try_out!(out_count);
        let values = try_slice_mut!(values, capacity);
        let Some(server) = b.get() else { return trunkline_result::Closed };
        let all = server.stats().values();
        let n = all.len().min(values.len());
        values[..n].copy_from_slice(&all[..n]);
        out_count.set(n);
        trunkline_result::Ok
    })
}

/// Writes into `*out_ready` whether the server takes new calls now, as its `/readyz` endpoint
/// answers (200 when true, 503 when false): true unless it is draining or holds `max_sessions`
/// calls. Results: OK; NULL_PARAMETER; CLOSED (after trunkline_server_shutdown). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_ready(
    server: *const trunkline_server,
    out_ready: *mut bool,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out_ready);
        let Some(server) = b.get() else { return trunkline_result::Closed };
        out.set(server.is_ready());
        trunkline_result::Ok
    })
}

/// Drains the server, e.g. on SIGTERM before a restart. At once it takes no new calls: `/readyz`
/// answers 503 (so a load balancer stops sending calls), a WebSocket upgrade gets 503 and an
/// AudioSocket connection is closed (counted in `rejected_draining`), while `/metrics` and
/// `/healthz` go on answering. Live calls go on for up to `grace_ms` (until their stream stops or
/// the carrier hangs up); those still live then are ended as trunkline_server_shutdown ends them
/// (a close frame; their hosts get STOPPED). Blocks until every call has ended, or `grace_ms`
/// plus 2 s.
///
/// `*out_all_ended` receives true when every call had ended by then (the ones ended at the grace
/// count as ended), false when some connection was still open 2 s after the grace. Draining
/// cannot be undone: the server keeps listening (for `/metrics` and `/healthz`) until
/// trunkline_server_shutdown or trunkline_server_free. While it drains, other threads go on with
/// the live calls' sessions and may call trunkline_server_accept (a call whose stream started
/// just before the drain still comes out of it), _stats, _ready and _local_port; another drain
/// (the earlier deadline wins) or a shutdown (see there) may be called too, but not
/// trunkline_server_free.
///
/// Results: OK; NULL_PARAMETER; CLOSED (after trunkline_server_shutdown). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_drain(
    server: *const trunkline_server,
    grace_ms: u32,
    out_all_ended: *mut bool,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out_all_ended);
        let Some(server) = b.get() else { return trunkline_result::Closed };
        out.set(server.drain(Duration::from_millis(u64::from(grace_ms))));
        trunkline_result::Ok
    })
}

/// Stops accepting, lets live calls go on for up to `grace_ms` (until their stream stops or the
/// carrier hangs up), then closes the rest. Blocks until done. Other calls on the server return
/// CLOSED from the moment it begins; while a trunkline_server_drain runs on another thread, the
/// calls are ended by the earlier of the two deadlines, and the shutdown completes once the drain
/// has returned. The handle must still be freed.
/// Results: OK; NULL_PARAMETER; CLOSED (already shut down). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_shutdown(
    server: *const trunkline_server,
    grace_ms: u32,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let taken = b.server.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some(mut server) = taken else { return trunkline_result::Closed };
        let grace = Duration::from_millis(u64::from(grace_ms));
        let mut drained = false;
        // Only a drain holds its reference for longer than a moment.
        let server = loop {
            match Arc::try_unwrap(server) {
                Ok(server) => break server,
                Err(shared) => {
                    if !drained {
                        // Brings the running drain's deadline forward to this grace, if sooner,
                        // and waits as it does.
                        shared.drain(grace);
                        drained = true;
                    }
                    server = shared;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        };
        server.shutdown(grace);
        trunkline_result::Ok
    })
}

/// Shuts the server down at once (if still running) and frees it. NULL is a no-op. Must be the
/// last call on it and must not race with other calls on it.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_free(server: *mut trunkline_server) {
    guard_void(|| {
        if !server.is_null() {
            // SAFETY: made by trunkline_server_start via Box::into_raw, freed once (contract).
            drop(unsafe { Box::from_raw(server.cast::<ServerBox>()) });
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_list_covers_the_struct() {
        versioned::assert_covers::<trunkline_server_config>();
        #[cfg(target_pointer_width = "64")]
        versioned::assert_layouts::<trunkline_server_config>(&[(17, 120)]);
        assert!(<trunkline_server_config as versioned::VersionedConfig>::bool_offsets().is_empty());
    }

    #[test]
    fn the_route_field_list_covers_the_struct() {
        versioned::assert_covers::<trunkline_route>();
        #[cfg(target_pointer_width = "64")]
        versioned::assert_layouts::<trunkline_route>(&[(5, 40)]);
    }

    fn route(path: &std::ffi::CStr, dialect: &std::ffi::CStr) -> trunkline_route {
        trunkline_route { path: path.as_ptr(), dialect: dialect.as_ptr(), ..trunkline_route::defaults() }
    }

    #[test]
    fn routes_are_read_at_the_callers_stride_and_checked() {
        let mut routes = [route(c"/twilio", c"twilio"), route(c"/vonage", c"vonage")];
        routes[1].auth_token = c"secret".as_ptr();
        routes[1].auth = c"vonage_jwt".as_ptr();
        let read = read_routes(routes.as_ptr(), 2).unwrap();
        assert_eq!(read[0], Route { path: "/twilio".into(), dialect: "twilio".into(), ..Route::default() });
        assert_eq!(read[1].auth, Some(RequestAuth::VonageJwt));
        assert_eq!(read[1].auth_token.as_deref(), Some("secret"));
        assert_eq!(read_routes(std::ptr::null(), 0), Ok(vec![]));
        assert_eq!(read_routes(std::ptr::null(), 1), Err(trunkline_result::NullParameter));

        /// A caller compiled before `auth` was added: its elements end before it, and so does
        /// its stride. Its `auth` is not read (the default), nor is anything past its elements.
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Older {
            struct_size: usize,
            path: *const c_char,
            dialect: *const c_char,
            auth_token: *const c_char,
        }
        let size = std::mem::size_of::<Older>();
        let mut older = [Older {
            struct_size: size,
            path: c"/a".as_ptr(),
            dialect: c"telnyx".as_ptr(),
            auth_token: std::ptr::null(),
        }; 2];
        older[1].path = c"/b".as_ptr();
        let read = read_routes(older.as_ptr().cast(), 2).unwrap();
        assert_eq!((read[0].path.as_str(), read[1].path.as_str(), read[1].auth), ("/a", "/b", None));

        let bad = |edit: fn(&mut [trunkline_route; 2])| {
            let mut r = [route(c"/twilio", c"twilio"), route(c"/telnyx", c"telnyx")];
            edit(&mut r);
            read_routes(r.as_ptr(), 2).err()
        };
        let invalid = Some(trunkline_result::InvalidArgument);
        assert_eq!(bad(|r| r[1].path = c"telnyx".as_ptr()), invalid, "no leading /");
        assert_eq!(bad(|r| r[1].path = c"".as_ptr()), invalid, "an empty path");
        assert_eq!(bad(|r| r[1].dialect = c"no-such".as_ptr()), invalid, "an unknown dialect");
        assert_eq!(bad(|r| r[1].auth = c"jwt".as_ptr()), invalid, "an unknown auth");
        assert_eq!(bad(|r| r[1].struct_size = 16), invalid, "unequal sizes");
        assert_eq!(bad(|r| r[0].struct_size = 12), invalid, "a stride off the alignment");
        assert_eq!(bad(|r| r[0].struct_size = 4096), invalid, "a newer header");
        assert_eq!(bad(|r| r[1].dialect = std::ptr::null()), Some(trunkline_result::NullParameter));
        assert_eq!(bad(|r| r[0].auth = c"".as_ptr()), None, "an empty auth is the default");
    }

    #[test]
    fn a_session_record_path_is_refused_for_a_server() {
        let mut session = trunkline_session_config::from(&trunkline::SessionConfig::default());
        assert!(server_session_config(&session).is_ok());
        session.record_path = c"call.wav".as_ptr();
        assert!(crate::config::trunkline_session_config::read(&session).is_ok());
        assert_eq!(server_session_config(&session).err(), Some(trunkline_result::InvalidArgument));
    }

    #[test]
    fn an_older_caller_gets_defaults_for_the_fields_it_lacks() {
        let mut c = trunkline_server_config::defaults();
        c.max_sessions = 7;
        c.tls_key_pem = c"key.pem".as_ptr();
        c.struct_size = std::mem::offset_of!(trunkline_server_config, tls_key_pem);
        let read = versioned::read(&raw const c, trunkline_server_config::defaults()).unwrap();
        assert_eq!(read.max_sessions, 7);
        assert!(read.tls_key_pem.is_null());
    }
}
