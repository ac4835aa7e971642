//! Carriers over WebSocket: the upgrade's checks (route, capacity, authentication, subprotocol),
//! then the call over the socket's messages.

use super::connection::{
    self, CallLog, ConnectionContext, Deadline, Ending, Fault, Inbox, NoSlot, Outbox, Received, SendError,
};
use super::http::{self, Head, Rewind};
use super::logs::{Origin, Refusal as Logged};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use trunkline::config::SessionConfig;
use trunkline::metrics::Format;
use trunkline::protocol::MessageKind;
use trunkline::protocol::signature::{self, AuthFailure};
use trunkline::protocol::with_exotel_query_rate;

pub(crate) async fn serve(stream: TcpStream, ctx: Arc<ConnectionContext>, origin: Origin) {
    // One budget from TCP accept to a completed handshake, whatever it is spent on.
    let deadline = Instant::now() + ctx.config.handshake_timeout;
    #[cfg(feature = "tls")]
    if let Some(acceptor) = ctx.tls.clone() {
        // A load balancer's TCP check connects and closes without a byte: counted as on the
        // plain listener, but not worth a warning each time.
        if let Ok(Ok(0)) = timeout_at(deadline, stream.peek(&mut [0u8; 1])).await {
            ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            origin.closed_silently();
            return;
        }
        match timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls_stream)) => run(tls_stream, ctx, true, deadline, origin).await,
            _ => {
                ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
                origin
                    .refused(Logged::Handshake("the TLS handshake failed or did not complete in time"), None);
            }
        }
        return;
    }
    run(stream, ctx, false, deadline, origin).await
}

/// Why the upgrade was refused, to count it once.
#[derive(Clone, Copy)]
enum Refusal {
    Path,
    Capacity,
    Auth(AuthFailure),
    Subprotocol,
    Draining,
}

impl Refusal {
    /// The refusal as logged.
    fn logged(self) -> Logged {
        match self {
            Self::Path => Logged::WrongPath,
            Self::Capacity => Logged::Capacity,
            Self::Auth(AuthFailure::Invalid) => Logged::BadSignature,
            Self::Auth(AuthFailure::Missing) => Logged::MissingSignature,
            Self::Auth(AuthFailure::Expired) => Logged::ExpiredSignature,
            Self::Subprotocol => Logged::Subprotocol,
            Self::Draining => Logged::Draining,
        }
    }
}

fn refuse(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_owned()));
    *r.status_mut() = status;
    r
}

/// What to answer to the subprotocols a client offered, for a route whose carrier asks for
/// `wanted`: `Ok(Some)` to select it, `Ok(None)` to select none (none offered, or the route has
/// none: the client then decides), `Err` when the client offered others only (it would fail on
/// an answer without its subprotocol anyway; a clear 400 says why).
fn choose_subprotocol(req: &Request, wanted: Option<&'static str>) -> Result<Option<&'static str>, ()> {
    let Some(wanted) = wanted else { return Ok(None) };
    let mut offered = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    if offered.peek().is_none() {
        return Ok(None);
    }
    if offered.any(|p| p == wanted) { Ok(Some(wanted)) } else { Err(()) }
}

async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    ctx: Arc<ConnectionContext>,
    tls: bool,
    deadline: Instant,
    origin: Origin,
) {
    let config = &ctx.config;
    // The request head first: `/metrics`, `/healthz` and `/readyz` are plain HTTP.
    let prefix = match timeout_at(deadline, http::read_head(&mut stream)).await {
        Ok(Ok(Head::Other(prefix))) => prefix,
        Ok(Ok(Head::Plain(request))) => return answer(stream, &ctx, request, &origin).await,
        // Too slow, or the connection failed.
        Ok(Err(_)) => {
            ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            origin.refused(Logged::Handshake("the connection failed while sending its request"), None);
            return;
        }
        Err(_) => {
            ctx.counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
            origin.refused(Logged::Handshake("no whole request within handshake_timeout"), None);
            return;
        }
    };
    // Closed without a byte: a TCP check (a load balancer's, a port scanner's), not a carrier.
    let silent = prefix.is_empty();
    let stream = Rewind::new(prefix, stream);
    let mut refusal = None;
    // The capacity slot is reserved during the handshake, atomically, so concurrent handshakes
    // cannot all pass the check; it is released if the handshake then fails.
    let mut reserved = false;
    // The endpoint the request's path selects.
    let mut chosen = None;
    // The request's path, for the log lines.
    let mut requested = None;
    // The session settings of a call whose URL states its stream's format (Exotel's
    // `?sample-rate=`), when they differ from the endpoint's.
    let mut from_url: Option<SessionConfig> = None;
    // The error type is tungstenite's handshake callback contract, not ours to box.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        requested = Some(path.to_owned());
        let Some(index) = ctx.routes.iter().position(|e| e.takes(path, &config.paths)) else {
            refusal = Some(Refusal::Path);
            return Err(refuse(StatusCode::NOT_FOUND, "no stream endpoint at this path"));
        };
        let endpoint = &ctx.routes[index];
        chosen = Some(index);
        from_url = req.uri().query().and_then(|query| {
            let dialect = with_exotel_query_rate(&endpoint.session.dialect, query)?;
            Some(SessionConfig { dialect, ..endpoint.session.clone() })
        });
        match ctx.take_slot() {
            Ok(()) => {}
            Err(NoSlot::Draining) => {
                refusal = Some(Refusal::Draining);
                return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "server draining"));
            }
            Err(NoSlot::Capacity) => {
                refusal = Some(Refusal::Capacity);
                return Err(refuse(StatusCode::SERVICE_UNAVAILABLE, "too many calls"));
            }
        }
        reserved = true;
        let mut release = |why: Refusal| {
            ctx.release_slot();
            reserved = false;
            refusal = Some(why);
        };
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
            if let Err(failure) = auth.verify(token, &url, header) {
                release(Refusal::Auth(failure));
                return Err(refuse(StatusCode::FORBIDDEN, "missing or invalid request signature"));
            }
        }
        match choose_subprotocol(req, endpoint.subprotocol) {
            Ok(Some(protocol)) => {
                resp.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol));
            }
            Ok(None) => {}
            Err(()) => {
                release(Refusal::Subprotocol);
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "none of the offered subprotocols is served here",
                ));
            }
        }
        Ok(resp)
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(ws_config));
    let ws = match timeout_at(deadline, handshake).await {
        Ok(Ok(ws)) => ws,
        _ => {
            if reserved {
                ctx.release_slot();
            }
            let counters = &ctx.counters;
            match refusal {
                Some(why) => origin.refused(why.logged(), requested.as_deref()),
                None if silent => origin.closed_silently(),
                None => origin.refused(
                    Logged::Handshake("the WebSocket handshake failed or did not complete in time"),
                    requested.as_deref(),
                ),
            }
            match refusal {
                Some(Refusal::Path) => counters.rejected_path.fetch_add(1, Ordering::Relaxed),
                Some(Refusal::Capacity) => counters.rejected_capacity.fetch_add(1, Ordering::Relaxed),
                Some(Refusal::Subprotocol) => counters.rejected_subprotocol.fetch_add(1, Ordering::Relaxed),
                Some(Refusal::Draining) => counters.rejected_draining.fetch_add(1, Ordering::Relaxed),
                Some(Refusal::Auth(failure)) => {
                    if let Some(endpoint) = chosen.map(|i| &ctx.routes[i]) {
                        endpoint.count_auth_refusal(failure, counters);
                    }
                    0
                }
                None => counters.handshake_failures.fetch_add(1, Ordering::Relaxed),
            };
            return;
        }
    };
    ctx.counters.accepted.fetch_add(1, Ordering::Relaxed);
    let endpoint = chosen.map_or(&ctx.routes[0], |i| &ctx.routes[i]);
    endpoint.count_accepted();
    let path = requested.unwrap_or_default();
    origin.upgraded(&path, &endpoint.session.dialect);
    let (sink, stream) = ws.split();
    let inbox = WsInbox { stream, current: None };
    let outbox = WsOutbox { sink, deadline: Deadline::new(config.send_timeout) };
    // After `stop` the carrier closes the connection itself (and a `stop` may name another
    // stream, which the session refuses).
    let log = CallLog::new(&origin, &path);
    let session = from_url.as_ref().unwrap_or(&endpoint.session);
    let left = connection::call(inbox, outbox, &ctx, session, false, log).await;
    ctx.call_ended();
    if let Some(inbox) = left {
        connection::linger(inbox).await;
    }
}

/// Answers a plain HTTP request for `/metrics`, `/healthz` or `/readyz`, then closes.
async fn answer<S: AsyncWrite + Unpin>(
    mut stream: S,
    ctx: &Arc<ConnectionContext>,
    request: http::Request,
    origin: &Origin,
) {
    let counters = &ctx.counters;
    let head_only = request.method == "HEAD";
    let mut response = if request.method != "GET" && !head_only {
        counters.handshake_failures.fetch_add(1, Ordering::Relaxed);
        origin.refused(
            Logged::Handshake("a plain HTTP request with a method other than GET or HEAD"),
            Some(request.path),
        );
        http::Response::text(405, "GET or HEAD only\n")
    } else {
        match request.path {
            "/metrics" => {
                let format = Format::from_accept(request.accept.as_deref());
                // Built here: about 60 µs with 1,000 live sessions (the `metrics` bench), less
                // than a thread hand-off would be worth.
                let body = ctx.render_metrics(format);
                counters.scrapes.fetch_add(1, Ordering::Relaxed);
                http::Response { status: 200, content_type: format.content_type(), body, head_only: false }
            }
            "/readyz" => {
                counters.health_checks.fetch_add(1, Ordering::Relaxed);
                if ctx.draining.load(Ordering::SeqCst) {
                    http::Response::text(503, "draining\n")
                } else if ctx.is_ready() {
                    http::Response::text(200, "ready\n")
                } else {
                    http::Response::text(503, "at capacity\n")
                }
            }
            _ => {
                counters.health_checks.fetch_add(1, Ordering::Relaxed);
                http::Response::text(200, "ok\n")
            }
        }
    };
    response.head_only = head_only;
    if response.status != 405 {
        origin.answered(request.path, response.status);
    }
    let bytes = response.bytes();
    let _ = timeout(ctx.config.send_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
}

/// The messages the carrier sends; the last one is kept, for the call loop to borrow.
struct WsInbox<S> {
    stream: SplitStream<WebSocketStream<S>>,
    current: Option<Message>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Inbox for WsInbox<S> {
    async fn receive(&mut self) -> Received<'_> {
        let message = match self.stream.next().await {
            Some(Ok(message)) => message,
            // The peer vanished: EOF without a close frame, or a reset.
            Some(Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) | Error::Io(_))) => {
                return Received::Dropped;
            }
            Some(Err(Error::Capacity(_))) => return Received::Broken(Fault::TooLarge),
            Some(Err(Error::Utf8(_))) => return Received::Broken(Fault::NotUtf8),
            // A broken frame.
            Some(Err(_)) => return Received::Broken(Fault::Protocol),
            None => return Received::Closed,
        };
        let kind = match &message {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
            Message::Close(_) => return Received::Closed,
            _ => return Received::KeepAlive,
        };
        // Borrowed from the frame: no copy per message.
        let bytes: &[u8] = match self.current.insert(message) {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
            _ => &[],
        };
        Received::Data(bytes, kind)
    }
}

/// The carrier's half of the socket, every send bounded by the send timeout.
struct WsOutbox<K> {
    sink: K,
    deadline: Deadline,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Outbox for WsOutbox<SplitSink<WebSocketStream<S>, Message>> {
    async fn feed(&mut self, bytes: &[u8], kind: MessageKind) -> Result<(), SendError> {
        let message = match kind {
            MessageKind::Text => Message::text(String::from_utf8_lossy(bytes).into_owned()),
            MessageKind::Binary => Message::binary(bytes.to_vec()),
        };
        self.deadline.run(self.sink.feed(message)).await
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        self.deadline.run(self.sink.flush()).await
    }

    async fn ping(&mut self) -> Result<(), SendError> {
        self.deadline.run(self.sink.send(Message::Ping(Default::default()))).await
    }

    async fn end(&mut self, why: Ending) {
        let close = |code: CloseCode, reason: &'static str| {
            Message::Close(Some(CloseFrame { code, reason: reason.into() }))
        };
        let frame = match why {
            // Nothing can reach a carrier that is gone.
            Ending::CarrierLeft | Ending::Dropped => None,
            // The engine stalling keeps the close it always had: the carrier can do nothing else.
            Ending::CallEnded | Ending::CarrierStopped | Ending::EngineStalled => {
                Some(close(CloseCode::Normal, "call ended"))
            }
            Ending::Idle => Some(close(CloseCode::Policy, "idle")),
            Ending::Malformed(Fault::TooLarge) => Some(close(CloseCode::Size, "message too large")),
            Ending::Malformed(Fault::NotUtf8) => Some(close(CloseCode::Invalid, "text not UTF-8")),
            Ending::Malformed(Fault::Protocol) => Some(close(CloseCode::Protocol, "malformed frame")),
            Ending::StartRefused => Some(close(CloseCode::Unsupported, "stream format not supported")),
            Ending::EngineFull => Some(close(CloseCode::Again, "engine at capacity")),
            Ending::HostBusy => Some(close(CloseCode::Again, "host not accepting calls")),
            Ending::ShuttingDown => Some(close(CloseCode::Away, "server shutting down")),
            Ending::SessionFailed => Some(close(CloseCode::Error, "internal error")),
        };
        if let Some(frame) = frame {
            let _ = self.deadline.run(self.sink.send(frame)).await;
        }
        let _ = self.deadline.run(self.sink.close()).await;
    }

    fn stalled(&self) -> bool {
        self.deadline.stalled()
    }
}
