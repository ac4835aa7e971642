//! The session's stages between the codecs and the runtime, and the pipeline that wires them.
//!
//! Every stage is a plain value with fixed memory; [`session::SessionPipeline`] owns one of each
//! and is driven from outside (time passed in, outputs polled), so it runs the same on a worker
//! thread, inline on the host's thread, and in deterministic tests.

pub mod barge_in;
mod deframe;
mod events;
mod inbound;
pub mod marks;
mod outbound;
pub mod outbound_queue;
pub mod playout;
pub mod reorder;
pub mod session;

pub use barge_in::BargeInDetector;
pub use marks::{MarkEcho, MarkTable};
pub use outbound::{PLAY_PIECE, PLAY_RATES};
pub use outbound_queue::OutboundQueue;
pub use playout::PlayoutClock;
pub use reorder::{Arrival, Delivery, FrameAudio, InboundReorder};
pub use session::SessionPipeline;
