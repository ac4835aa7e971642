//! Trunkline's offload server: Trunkline as the carrier's media-stream WebSocket endpoint.
//!
//! The carrier connects to Trunkline directly; the host never touches the WebSocket. A tokio
//! runtime on the server's own threads (`trunkline-net-N`, apart from the audio workers, so
//! network work never delays audio) accepts connections, checks the carrier's authentication
//! (Twilio's `X-Twilio-Signature`, Vonage's JWT, … per route: [`Route`]) and negotiates its
//! WebSocket subprotocol, and runs each stream as an ordinary session whose carrier side it
//! drives itself. Asterisk's AudioSocket comes over plain TCP instead
//! ([`OffloadServer::listen_audiosocket`], with an allow-list of call UUIDs). The host learns
//! of a call when its stream starts ([`OffloadServer::accept`] gives an [`OffloadedCall`] with
//! the call and stream ids, the custom parameters and the media format) and then uses the usual
//! session API (read audio, play, mark, interrupt, events).
//!
//! The server logs through `tracing` (calls started and ended, refusals with their reason,
//! drains; nothing per message), from its network threads only. Nothing is written unless the
//! host installs a subscriber.

mod audiosocket;
mod connection;
mod http;
mod logs;
mod server;
#[cfg(feature = "tls")]
mod tls;
mod websocket;

pub use server::{
    AudioSocketListener, OffloadConfig, OffloadError, OffloadServer, OffloadedCall, RecordFormat, Route,
    RouteStats, ServerStats, TlsConfig,
};
// `OffloadServer::metrics` takes it.
pub use trunkline::metrics::Format as MetricsFormat;
// Routes choose their authentication with it.
pub use trunkline::protocol::signature::RequestAuth;

// The offload server's documentation examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/offload.md")]
pub struct OffloadDoctests;
