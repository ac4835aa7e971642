//! Threads, rings and handles: how sessions run on workers (or inline) and talk to the host.
//!
//! Per session: host → worker SPSC byte rings for carrier messages and for agent audio/marks/
//! interrupts; worker → host SPSC rings for agent PCM and outbound messages, and a bounded event
//! queue; the pipeline's plain counters, published as relaxed atomics after each step. Per engine: a control channel per worker and one wakeup fd.
//! The host writes each record into its ring in one piece (`records::write_contiguous`), so the
//! worker parses messages and reads agent audio and mark names where they lie, with no buffers of
//! its own.
//!
//! Overflow policy (never block a worker): inbound/play rings full → the host call returns
//! `Full` (counted); agent PCM ring or event queue short of room for the next carrier message
//! while the host reads them → the message waits in the inbound ring (`hold`); the same when
//! the host has stopped reading → the newest audio (the oldest event) is dropped (counted);
//! outbound ring full → the pacer holds its frame and retries (counted as a stall, nothing lost).

#![allow(clippy::disallowed_methods, reason = "the runtime owns the threads, the waits and the clock")]

mod agent_ring;
pub mod carrier;
mod clock;
pub(crate) mod engine;
mod histogram;
mod hold;
mod latency;
mod priority;
mod recorder;
pub(crate) mod records;
mod session;
pub(crate) mod shared;
#[cfg(all(feature = "test-hooks", debug_assertions))]
#[doc(hidden)]
pub mod step_hook;
mod totals;
mod wakeup;
mod worker;
mod worker_session;

pub use carrier::{CarrierPort, OutboundSignal};
pub use clock::ManualClock;
pub use engine::{Engine, EngineError, EngineHandle};
pub use histogram::Histogram;
pub use latency::LatencyHistogram;
#[cfg(feature = "internals")]
pub use recorder::bench_tap;
pub use session::{HeardSegment, SegmentReport, Session, SessionError};
pub use totals::{CallOutcomes, CallQualityHistograms, MetricsSnapshot};
pub use wakeup::Wakeup;
