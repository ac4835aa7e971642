//! Trunkline's offload server: Trunkline as the carrier's media-stream WebSocket endpoint.
//!
//! The carrier connects to Trunkline directly; the host never touches the WebSocket. A tokio
//! runtime on the server's own threads (`trunkline-net-N`, apart from the audio workers, so
//! network work never delays audio) accepts connections, checks the request signature of the
//! session dialect's carrier (Twilio's `X-Twilio-Signature`), and runs each stream as an ordinary
//! session whose carrier side it drives itself. The host learns of a call when its stream starts
//! ([`OffloadServer::accept`] gives an [`OffloadedCall`] with the call and stream ids, the custom
//! parameters and the media format) and then uses the usual session API (read audio, play, mark,
//! interrupt, events).

mod connection;
mod server;
#[cfg(feature = "tls")]
mod tls;

pub use server::{OffloadConfig, OffloadError, OffloadServer, OffloadedCall, Route, ServerStats, TlsConfig};

// The offload server's documentation examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/offload.md")]
pub struct OffloadDoctests;
