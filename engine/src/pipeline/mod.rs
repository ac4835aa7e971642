//! The sans-IO core: [`SessionPipeline`], one call's media pipeline as a state machine driven
//! from outside (time passed in, outputs polled), and the stages it wires.
//!
//! Every stage is a plain value with fixed memory; the pipeline owns one of each, so it runs the
//! same on a worker thread, inline on the host's thread, and in deterministic tests. The stages
//! themselves are internal; this workspace's benchmarks and fuzzers reach them through the
//! `internals` feature, which promises nothing to anyone else.

/// Declares the stage modules: crate-private, public with the `internals` feature.
macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident;)*) => {
        $(
            $(#[$doc])*
            #[cfg(feature = "internals")]
            pub mod $name;
            $(#[$doc])*
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $name;
        )*
    };
}

stages! {
    /// Barge-in decisions.
    barge_in;
    /// The agent turned down while a possible interruption is confirmed.
    ducking;
    /// Host marks between `mark()` and the carrier's echo.
    marks;
    /// Agent audio waiting to be paced out.
    outbound_queue;
    /// The carrier's playout clock.
    playout;
    /// Reordering and gap filling of caller audio.
    reorder;
    /// Host-named segments of agent audio.
    segments;
}
mod arrivals;
mod events;
mod inbound;
mod outbound;
mod session;
mod tap;

pub use inbound::AgentAudio;
pub use outbound::{PLAY_PIECE, PLAY_RATES};
pub use segments::{MAX_SEGMENT_TAG_BYTES, MAX_SEGMENTS, SegmentCut};
pub use session::{AGENT_RATES, PipelineError, SessionPipeline};
pub use tap::CallTap;
