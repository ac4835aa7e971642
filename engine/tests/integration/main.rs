//! The engine's integration tests, in one test binary: one build and one link on a fresh
//! machine instead of one per file. Each module is one subject (a carrier's protocol, the
//! barge-in set, the jitter buffer under network stalls...); run one with its module path, e.g.
//! `cargo test -p trunkline --test integration barge_in::`.
//!
//! Kept apart: the tests that need a global allocator of their own (`no_alloc`, `alloc_guard`,
//! `agent_format`, `opus_play`: the real-time guard; `session_memory`: bytes across threads),
//! `slow_host`, whose memory figure is the process's, and `worker_priority`, which reads the nice
//! value of every worker thread in the process (other tests' engines would be counted too). This
//! binary's allocator counts the allocations of one thread while asked to (`thread_allocations`),
//! which tests running in parallel do not disturb, and allocates through the engine's allocation
//! guard: a session step that allocates aborts the binary.
#![allow(
    clippy::disallowed_methods,
    reason = "tests drive the engine from outside: they wait, sleep and start threads"
)]

#[path = "../common/mod.rs"]
mod common;
#[path = "../support/dialect_session.rs"]
mod dialect_session;
#[path = "../support/thread_allocations.rs"]
mod thread_allocations;
#[path = "../vad_corpus/mod.rs"]
mod vad_corpus;
#[path = "../support/wire.rs"]
mod wire;

mod audiosocket_protocol;
mod barge_in;
mod barge_in_reaction;
mod carrier_codecs;
mod carrier_seam;
mod ducking;
mod echo_barge_in;
mod end_to_end;
mod engine_latency;
mod exotel_protocol;
mod g711;
mod g722;
mod hostile_input;
mod jambonz_protocol;
mod network_stall;
mod pacing;
mod play_backpressure;
mod plivo_protocol;
mod recording;
mod resample;
mod resample_reference;
mod segments;
mod session_behaviour;
mod signalwire_protocol;
mod standalone_vad;
mod telnyx_protocol;
mod turn_taking;
mod twilio_protocol;
mod vad;
mod vad_scores;
mod vonage_protocol;
mod worker_slots;
