//! What the server logs, through `tracing`: connections taken and refused (with the reason), calls
//! started and ended (with their summary), drains. Silent unless the host installs a subscriber.
//!
//! Every line is written by a network thread (a connection's tokio task) or by the host's thread
//! calling `drain`, never by an audio worker, and none per message: a call logs its start and its
//! end, whatever its length. Levels: `info` for calls and drains, `warn` for refusals and calls
//! that ended in a failure, `debug` for connection detail, `trace` for health checks and scrapes.
//! Targets are the module paths (`trunkline_server::…`), so a filter of `trunkline=info` covers
//! them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tracing::{debug, info, warn};
use trunkline::SessionStats;

/// Why a connection was refused before its call could start. Each reason is counted in one
/// `ServerStats` counter (named in [`Refusal::counter`]) and logged as a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Credentials present but wrong (`rejected_signature`).
    BadSignature,
    /// No credentials at all (`rejected_signature_missing`).
    MissingSignature,
    /// A correctly signed token outside its validity window (`rejected_signature_expired`).
    ExpiredSignature,
    /// No stream endpoint at the request's path (`rejected_path`).
    WrongPath,
    /// `max_sessions` reached (`rejected_capacity`).
    Capacity,
    /// The server is draining (`rejected_draining`).
    Draining,
    /// None of the offered subprotocols is the route's carrier's (`rejected_subprotocol`).
    Subprotocol,
    /// An AudioSocket call UUID not on the allow-list (`rejected_audiosocket_call`).
    AudioSocketCall,
    /// The TLS or WebSocket handshake, or AudioSocket's UUID message, failed or did not come in
    /// time; or a plain HTTP request used another method than GET or HEAD
    /// (`handshake_failures`). The detail says which.
    Handshake(&'static str),
}

impl Refusal {
    /// The `reason` field of the log line.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::MissingSignature => "missing_signature",
            Self::ExpiredSignature => "expired_signature",
            Self::WrongPath => "wrong_path",
            Self::Capacity => "capacity",
            Self::Draining => "draining",
            Self::Subprotocol => "subprotocol",
            Self::AudioSocketCall => "audiosocket_call_not_allowed",
            Self::Handshake(_) => "handshake_failure",
        }
    }

    /// The `ServerStats` counter the refusal is counted in.
    pub(crate) fn counter(self) -> &'static str {
        match self {
            Self::BadSignature => "rejected_signature",
            Self::MissingSignature => "rejected_signature_missing",
            Self::ExpiredSignature => "rejected_signature_expired",
            Self::WrongPath => "rejected_path",
            Self::Capacity => "rejected_capacity",
            Self::Draining => "rejected_draining",
            Self::Subprotocol => "rejected_subprotocol",
            Self::AudioSocketCall => "rejected_audiosocket_call",
            Self::Handshake(_) => "handshake_failures",
        }
    }

    fn detail(self) -> &'static str {
        match self {
            Self::BadSignature => "the request's authentication did not verify",
            Self::MissingSignature => "the request carried no credentials",
            Self::ExpiredSignature => "a signed token outside its validity window (check the clock)",
            Self::WrongPath => "no stream endpoint at this path",
            Self::Capacity => "max_sessions reached",
            Self::Draining => "the server is draining",
            Self::Subprotocol => "none of the offered WebSocket subprotocols is served here",
            Self::AudioSocketCall => "the call UUID is not on the allow-list",
            Self::Handshake(detail) => detail,
        }
    }
}

/// How a call's connection ended, as its log line says (`outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The carrier closed the connection (or it failed).
    CarrierLeft,
    /// The carrier's hang-up message (AudioSocket).
    CarrierStopped,
    /// The host closed the call, or the engine stopped.
    Ended,
    /// A drain or shutdown ended it when its grace period ran out.
    ShutDown,
    /// Nothing came within `idle_timeout`.
    IdleTimeout,
    /// A send did not complete within `send_timeout` (the carrier stopped reading).
    SendTimeout,
    /// An oversize or malformed message.
    ProtocolFailure,
    /// The connection ended without a WebSocket close frame (the carrier vanished, or the
    /// connection was reset); counted in `protocol_failures` too.
    Dropped,
    /// The engine took no message for too long (its inbound ring stayed full).
    EngineStalled,
    /// The engine had no room for another session.
    EngineFull,
    /// The host's queue of new calls was full: it is not accepting calls.
    HostBusy,
    /// The session failed (a bug caught in its pipeline).
    SessionFailed,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::CarrierLeft => "carrier_left",
            Self::CarrierStopped => "carrier_stopped",
            Self::Ended => "ended",
            Self::ShutDown => "shut_down",
            Self::IdleTimeout => "idle_timeout",
            Self::SendTimeout => "send_timeout",
            Self::ProtocolFailure => "protocol_failure",
            Self::Dropped => "connection_dropped",
            Self::EngineStalled => "engine_stalled",
            Self::EngineFull => "engine_full",
            Self::HostBusy => "host_busy",
            Self::SessionFailed => "session_failed",
        }
    }

    /// Whether the call ended because something went wrong (logged as a warning).
    fn is_failure(self) -> bool {
        !matches!(self, Self::CarrierLeft | Self::CarrierStopped | Self::Ended | Self::ShutDown)
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// Where a connection came from: the fields that tie its log lines together.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    /// The connection's number, unique in the process (`conn` in every line about it).
    pub(crate) conn: u64,
    pub(crate) peer: SocketAddr,
}

impl Origin {
    /// A new connection from `peer` (logged at `debug`).
    pub(crate) fn accepted(peer: SocketAddr, transport: &'static str) -> Self {
        let conn = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
        debug!(conn, %peer, transport, "connection accepted");
        Self { conn, peer }
    }

    /// The connection was refused (`path`: the request's, when it had one).
    pub(crate) fn refused(&self, refusal: Refusal, path: Option<&str>) {
        warn!(
            conn = self.conn,
            peer = %self.peer,
            path = path.unwrap_or("-"),
            reason = refusal.reason(),
            counter = refusal.counter(),
            detail = refusal.detail(),
            "connection refused"
        );
    }

    /// The connection closed before it sent anything: a load balancer's or a port scanner's TCP
    /// check, not worth a warning (still counted in `handshake_failures`).
    pub(crate) fn closed_silently(&self) {
        debug!(conn = self.conn, peer = %self.peer, "connection closed before any request");
    }

    /// The WebSocket upgrade (or AudioSocket's UUID) was accepted: the call's session opens.
    pub(crate) fn upgraded(&self, path: &str, dialect: &str) {
        debug!(conn = self.conn, peer = %self.peer, path, dialect, "stream connection accepted");
    }

    /// A plain HTTP request (`/metrics`, `/healthz`, `/readyz`) was answered.
    pub(crate) fn answered(&self, path: &str, status: u16) {
        tracing::trace!(conn = self.conn, peer = %self.peer, path, status, "plain request answered");
    }
}

/// What a call's end line reports.
#[derive(Debug)]
pub(crate) struct CallSummary<'a> {
    pub(crate) origin: &'a Origin,
    pub(crate) dialect: &'a str,
    /// The carrier's ids, once its start was seen (`None`: it never came).
    pub(crate) ids: Option<&'a CallIds>,
    /// Whether the call was handed to the host (its start line was logged).
    pub(crate) handed: bool,
    /// Since the call was handed to the host (or since its session opened, if it never was).
    pub(crate) duration: Duration,
    /// Carrier messages handed to the session (WebSocket messages; AudioSocket messages as the
    /// engine cuts them from the byte stream).
    pub(crate) messages_in: u64,
    /// Messages sent to the carrier (media, marks, clears: whatever the session produced).
    pub(crate) messages_out: u64,
    /// The session's counters when the connection ended (what its worker had processed by then).
    pub(crate) session: Option<&'a SessionStats>,
    pub(crate) outcome: Outcome,
}

/// A started call's ids, kept for its end line.
#[derive(Debug, Clone)]
pub(crate) struct CallIds {
    pub(crate) call_id: String,
    pub(crate) stream_id: String,
}

/// The call's stream started and it was handed to the host.
pub(crate) fn call_started(origin: &Origin, dialect: &str, path: &str, ids: &CallIds) {
    info!(
        conn = origin.conn,
        peer = %origin.peer,
        path,
        dialect,
        call_id = ids.call_id.as_str(),
        stream_id = ids.stream_id.as_str(),
        "call started"
    );
}

/// The call's connection ended: one line with its summary, a warning if it failed.
pub(crate) fn call_ended(s: &CallSummary<'_>) {
    let stats = s.session.copied().unwrap_or_default();
    // The E-model rating of the caller's line (0: no caller audio to rate).
    let quality = stats.line_quality();
    // One list of fields for both levels (a level is part of each call site's static metadata).
    macro_rules! line {
        ($macro:ident, $message:literal) => {
            $macro!(
                conn = s.origin.conn,
                peer = %s.origin.peer,
                dialect = s.dialect,
                call_id = s.ids.map_or("", |i| i.call_id.as_str()),
                stream_id = s.ids.map_or("", |i| i.stream_id.as_str()),
                duration_ms = s.duration.as_millis() as u64,
                messages_in = s.messages_in,
                messages_out = s.messages_out,
                media_frames_in = stats.media_frames_in,
                frames_out = stats.frames_out,
                frames_late = stats.frames_late,
                gap_fill_samples = stats.gap_fill_samples,
                barge_ins = stats.barge_ins,
                protocol_errors = stats.protocol_errors,
                mos = quality.map_or(0.0, |q| q.mos),
                outcome = s.outcome.name(),
                $message
            )
        };
    }
    match (s.handed, s.outcome.is_failure()) {
        (true, false) => line!(info, "call ended"),
        (true, true) => line!(warn, "call ended"),
        // Never handed to the host (no start yet, or the host's queue was full): a failure is
        // worth a warning, a carrier that merely left is detail.
        (false, true) => line!(warn, "connection ended before its call reached the host"),
        (false, false) => line!(debug, "connection ended before its call reached the host"),
    }
}

/// A connection could not be accepted (the process out of file descriptors, say).
pub(crate) fn accept_failed(error: &std::io::Error) {
    warn!(%error, "accepting a connection failed");
}

/// A drain began.
pub(crate) fn drain_started(grace: Duration, active: u64) {
    info!(grace_ms = grace.as_millis() as u64, active_calls = active, "drain started: taking no new calls");
}

/// A drain's wait ended.
pub(crate) fn drain_finished(all_ended: bool, active: u64) {
    if all_ended {
        info!("drain finished: every call has ended");
    } else {
        warn!(active_calls = active, "drain finished with calls still open");
    }
}
