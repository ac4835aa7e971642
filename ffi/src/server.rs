//! The offload server: Trunkline as the carrier's WebSocket endpoint.

use crate::config::{size_t, trunkline_session_config};
use crate::engine::{engine_ref, trunkline_engine};
use crate::result::trunkline_result;
use crate::session::{session_handle, trunkline_session};
use crate::{guard, guard_void, try_out, try_slice_mut};
use ::trunkline_server::{OffloadConfig, OffloadServer, ServerStats, TlsConfig};
use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::time::Duration;
use trunkline::SessionConfig;

/// A running offload server. Opaque.
pub struct trunkline_server {
    _private: [u8; 0],
}

/// Offload server settings. Fill with trunkline_server_config_default, then change what you need.
/// Strings are NUL-terminated UTF-8, borrowed for the duration of trunkline_server_start only.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct trunkline_server_config {
    /// Address to listen on, e.g. "0.0.0.0:8080" ("127.0.0.1:0" by default: any free port).
    pub bind: *const c_char,
    /// The one request path served, e.g. "/media"; NULL: any path.
    pub path: *const c_char,
    /// The account's auth token: when set, X-Twilio-Signature is required and checked (403 else).
    pub auth_token: *const c_char,
    /// Public URL base Twilio connects to (e.g. "wss://bot.example.com"), for the signature
    /// behind a proxy; NULL: rebuilt from the request.
    pub public_url: *const c_char,
    /// Settings of every session the server opens.
    pub session: trunkline_session_config,
    /// Most concurrent calls; more are refused with 503.
    pub max_sessions: u32,
    /// Largest WebSocket message accepted, bytes.
    pub max_message_bytes: size_t,
    /// Time allowed for the WebSocket handshake, ms.
    pub handshake_timeout_ms: u32,
    /// A connection that sends nothing for this long is closed, ms.
    pub idle_timeout_ms: u32,
    /// Longest one send to the carrier may take, ms (> 0): a carrier that stops reading is
    /// closed after it (its session gets STOPPED), counted in send_timeouts.
    pub send_timeout_ms: u32,
    /// Interval of pings to the carrier, ms (0: none).
    pub ping_interval_ms: u32,
    /// Network threads.
    pub threads: u32,
    /// TLS certificate chain (PEM file path); NULL: plain ws:// (needs the `tls` build feature).
    pub tls_cert_pem: *const c_char,
    /// TLS private key (PEM file path).
    pub tls_key_pem: *const c_char,
}

struct ServerBox {
    server: Mutex<Option<OffloadServer>>,
}

fn server_box<'a>(ptr: *const trunkline_server) -> Option<&'a ServerBox> {
    // SAFETY: a non-NULL `trunkline_server*` is a `Box<ServerBox>` from trunkline_server_start that
    // is not yet freed (the header's contract).
    unsafe { ptr.cast::<ServerBox>().as_ref() }
}

/// Reads an optional C string: Ok(None) for NULL, Err for invalid UTF-8.
fn opt_str(ptr: *const c_char) -> Result<Option<String>, trunkline_result> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL; the header requires a NUL-terminated string valid for the call.
    let s = unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| trunkline_result::InvalidArgument)?;
    Ok(Some(s.to_owned()))
}

/// Writes the default server settings into `*out` (bind "127.0.0.1:0", any path, no signature
/// check, default session settings). Results: OK; NULL_PARAMETER. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_config_default(out: *mut trunkline_server_config) -> trunkline_result {
    guard(|| {
        let out = try_out!(out);
        let d = OffloadConfig::default();
        out.set(trunkline_server_config {
            bind: c"127.0.0.1:0".as_ptr(),
            path: std::ptr::null(),
            auth_token: std::ptr::null(),
            public_url: std::ptr::null(),
            session: (&SessionConfig::default()).into(),
            max_sessions: d.max_sessions as u32,
            max_message_bytes: d.max_message_bytes,
            handshake_timeout_ms: d.handshake_timeout.as_millis() as u32,
            idle_timeout_ms: d.idle_timeout.as_millis() as u32,
            send_timeout_ms: d.send_timeout.as_millis() as u32,
            ping_interval_ms: d.ping_interval.map_or(0, |p| p.as_millis() as u32),
            threads: d.threads as u32,
            tls_cert_pem: std::ptr::null(),
            tls_key_pem: std::ptr::null(),
        });
        trunkline_result::Ok
    })
}

/// Starts an offload server on `engine` (which must have worker threads). `config` may be NULL for
/// the defaults. On success `*out` receives a server the caller owns and must free with
/// trunkline_server_free (before freeing the engine). New calls are announced through
/// trunkline_server_accept and signal the engine's wakeup fd.
///
/// Results: OK; NULL_PARAMETER; INVALID_ARGUMENT (a bad setting or address, an inline engine, TLS
/// without the `tls` feature or with unreadable PEM files); IO (the address could not be bound).
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
        let mut c = trunkline_server_config {
            bind: std::ptr::null(),
            path: std::ptr::null(),
            auth_token: std::ptr::null(),
            public_url: std::ptr::null(),
            session: (&SessionConfig::default()).into(),
            max_sessions: 0,
            max_message_bytes: 0,
            handshake_timeout_ms: 0,
            idle_timeout_ms: 0,
            send_timeout_ms: 0,
            ping_interval_ms: 0,
            threads: 0,
            tls_cert_pem: std::ptr::null(),
            tls_key_pem: std::ptr::null(),
        };
        if trunkline_server_config_default(&mut c) != trunkline_result::Ok {
            return trunkline_result::Panic;
        }
        // SAFETY: NULL means defaults; otherwise the header requires a valid config.
        if let Some(given) = unsafe { config.as_ref() } {
            c = *given;
        }
        let config = match build_config(&c) {
            Ok(config) => config,
            Err(e) => return e,
        };
        match OffloadServer::start(engine, config) {
            Ok(server) => {
                out.set(Box::into_raw(Box::new(ServerBox { server: Mutex::new(Some(server)) })).cast());
                trunkline_result::Ok
            }
            Err(::trunkline_server::OffloadError::Io(_)) => trunkline_result::Io,
            Err(_) => trunkline_result::InvalidArgument,
        }
    })
}

fn build_config(c: &trunkline_server_config) -> Result<OffloadConfig, trunkline_result> {
    let bind = opt_str(c.bind)?.ok_or(trunkline_result::NullParameter)?;
    let bind = bind.parse().map_err(|_| trunkline_result::InvalidArgument)?;
    let tls = match (opt_str(c.tls_cert_pem)?, opt_str(c.tls_key_pem)?) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsConfig { cert_pem: cert.into(), key_pem: key.into() }),
        _ => return Err(trunkline_result::InvalidArgument),
    };
    Ok(OffloadConfig {
        bind,
        paths: opt_str(c.path)?.into_iter().collect(),
        auth_token: opt_str(c.auth_token)?,
        public_url: opt_str(c.public_url)?,
        session: c.session.engine_config().ok_or(trunkline_result::InvalidArgument)?,
        max_sessions: c.max_sessions as usize,
        max_message_bytes: c.max_message_bytes,
        handshake_timeout: Duration::from_millis(u64::from(c.handshake_timeout_ms)),
        idle_timeout: Duration::from_millis(u64::from(c.idle_timeout_ms)),
        send_timeout: Duration::from_millis(u64::from(c.send_timeout_ms)),
        ping_interval: (c.ping_interval_ms > 0).then(|| Duration::from_millis(u64::from(c.ping_interval_ms))),
        threads: c.threads as usize,
        tls,
    })
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
        let guard = b.server.lock().unwrap_or_else(|e| e.into_inner());
        let Some(server) = guard.as_ref() else { return trunkline_result::Closed };
        out.set(server.local_addr().port());
        trunkline_result::Ok
    })
}

/// Takes the next call whose stream has started. On success `*out` receives a session the caller
/// owns (free it with trunkline_session_free) with the usual agent-side API: read audio, play,
/// mark, interrupt, events, start info, stats. The server drives its carrier side, so
/// trunkline_session_push and trunkline_session_next_outbound return INVALID_ARGUMENT on it.
/// Results: OK; EMPTY (no new call); NULL_PARAMETER; CLOSED. Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_accept(
    server: *const trunkline_server,
    out: *mut *mut trunkline_session,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let out = try_out!(out);
        let guard = b.server.lock().unwrap_or_else(|e| e.into_inner());
        let Some(server) = guard.as_ref() else { return trunkline_result::Closed };
        match server.accept() {
            Some(call) => {
                out.set(session_handle(call.session, Some(call.start)));
                trunkline_result::Ok
            }
            None => trunkline_result::Empty,
        }
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

/// Copies the server's counters (connections, accepted, rejected_signature, rejected_path,
/// rejected_capacity, handshake_failures, idle_timeouts, send_timeouts, protocol_failures,
/// calls_opened, calls_refused, closed, active) into `values`, at most `capacity`; `*out_count`
/// receives how many. Results: OK; NULL_PARAMETER; CLOSED. Any thread.
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
        let guard = b.server.lock().unwrap_or_else(|e| e.into_inner());
        let Some(server) = guard.as_ref() else { return trunkline_result::Closed };
        let all = server.stats().values();
        let n = all.len().min(values.len());
        values[..n].copy_from_slice(&all[..n]);
        out_count.set(n);
        trunkline_result::Ok
    })
}

/// Stops accepting, lets live calls go on for up to `grace_ms` (until their stream stops or the
/// carrier hangs up), then closes the rest. Blocks until done. The handle must still be freed.
/// Results: OK; NULL_PARAMETER; CLOSED (already shut down). Any thread.
#[unsafe(no_mangle)]
pub extern "C" fn trunkline_server_shutdown(
    server: *const trunkline_server,
    grace_ms: u32,
) -> trunkline_result {
    guard(|| {
        let Some(b) = server_box(server) else { return trunkline_result::NullParameter };
        let taken = b.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        match taken {
            Some(server) => {
                server.shutdown(Duration::from_millis(u64::from(grace_ms)));
                trunkline_result::Ok
            }
            None => trunkline_result::Closed,
        }
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
