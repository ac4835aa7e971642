//! Trunkline: a real-time media engine for telephone voice bots.
//!
//! A carrier (Twilio Media Streams, or any other a [`protocol::Dialect`] describes) streams call
//! audio as messages; Trunkline turns them into PCM at the agent's rate plus speech, barge-in, DTMF
//! and mark events, and turns the agent's reply audio into steadily paced frames in the carrier's
//! format. The audio work runs on the engine's own worker threads (or inline, on the caller's
//! thread, with zero workers) without allocating after a session has started.
//!
//! Usable on their own: [`codec`] (G.711), [`resample`], [`vad`], [`protocol`] (carrier dialects
//! and the seam they implement), [`quality`] (RFC 3550 jitter and an E-model rating of a call's
//! line) and [`pipeline`] (one call as a sans-IO state machine: time in, outputs polled). [`runtime`] runs pipelines as sessions on threads; [`Engine`] and [`Session`]
//! are the entry points. Nothing here does network IO: the offload server (Trunkline as the
//! carrier's WebSocket endpoint) is the `trunkline-server` crate, and the caller simulator is
//! `trunkline-callsim`.
#![warn(missing_docs)]

#[doc(hidden)]
pub mod alloc_guard;
pub mod audio;
pub mod codec;
pub mod config;
mod echo_canceller;
pub mod event;
mod fft;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod quality;
pub mod resample;
pub mod runtime;
mod simd;
pub mod stats;
pub mod vad;

#[cfg(test)]
mod test_rng;

#[cfg(feature = "opus")]
pub use codec::EncodedAudio;
pub use config::{AgentFormat, BargeInConfig, EngineConfig, SessionConfig};
pub use event::{Event, EventKind};
pub use protocol::MessageKind;
pub use quality::LineQuality;
pub use runtime::{Engine, EngineError, HeardSegment, SegmentReport, Session, SessionError};
pub use stats::{SessionCounters, SessionStats};

// The README's Rust example is compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
