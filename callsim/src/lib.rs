//! `trunkline-callsim`: a simulated carrier for latency benchmarking (library and the `callsim`
//! binary).
//!
//! It plays a carrier's role against a voice bot's URL (Trunkline's offload server or any other
//! bot): Twilio Media Streams by default, or, by [`Dialect`], Telnyx, Plivo, Vonage, Exotel,
//! SignalWire, jambonz, or Asterisk AudioSocket over TCP. It connects as that carrier does (its
//! authentication, its opening messages, custom parameters), sends the caller's audio in real time
//! as 20 ms frames (Exotel: 100 ms chunks), optionally with jitter, bursts, gaps, reordering and
//! network stalls, key presses and the carrier's hang-up; and it treats what the bot sends as the
//! carrier does: it plays the bot's audio on its own clock, acknowledges marks when their audio has
//! played, and on a clear drops its buffer and acknowledges (or not) the pending marks, as that
//! carrier does. Every message from the bot is checked against the carrier's framing rules.
//!
//! Each call measures response latency (the caller's end of speech, known exactly from the
//! script's labels, to the bot's first audio frame), barge-in reaction (the caller's onset over
//! bot audio to the bot's `clear`) and how continuous the bot's audio is (underruns, frame
//! lateness, jitter); [`Report`] gives p50/p90/p99 over calls and events, as a table or JSON.
//!
//! ```no_run
//! use std::time::Duration;
//! use trunkline_callsim::{self as callsim, CallOptions, CallerAudio, Report, RunOptions, Script};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let caller = CallerAudio::load("engine/tests/fixtures/speech_8k.ulaw")?; // + speech_8k.labels
//! let script = Script::new()
//!     .say(caller.slice_ms(0, 4_000))                                  // the question
//!     .wait_for_reply(Duration::from_secs(5))
//!     .interrupt(Duration::from_millis(800), caller.utterance(1, 200).unwrap()) // barge in
//!     .wait_for_reply_end(Duration::from_secs(5));
//! let options = CallOptions::new("ws://127.0.0.1:8080/media");
//! let results = callsim::run_calls_blocking(&options, &script, &RunOptions { calls: 10, ..Default::default() })?;
//! print!("{}", callsim::format_timeline(&results[0], None));
//! print!("{}", Report::new(&results).table());
//! # Ok(())
//! # }
//! ```

mod audio;
mod carrier;
mod client;
mod echo;
mod impair;
mod metrics;
mod playout;
mod report;
mod result;
mod rng;
mod runner;
mod script;
mod transport;

pub use audio::{AudioError, CallerAudio, FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SpeechSegment, parse_labels};
pub use carrier::Dialect;
pub use client::{CallOptions, run_call};
pub use echo::EchoPath;
pub use impair::{ImpairmentCounts, Impairments};
pub use metrics::{Histogram, Percentiles, nearest_rank};
pub use playout::{CarrierPlayout, ClearOutcome, MediaOutcome, PlayoutConfig, PlayoutStats, ReplyEnd};
pub use report::{CallSummary, Metrics, Report, Totals, format_timeline};
pub use result::{CallError, CallEvent, CallMetrics, CallResult, TimelineEntry};
pub use runner::{RunOptions, run_call_blocking, run_calls, run_calls_blocking};
pub use script::{DEFAULT_REPLY_QUIET, DEFAULT_REPLY_TIMEOUT, Script, Step};

// callsim's documentation examples are compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/callsim.md")]
pub struct CallsimDoctests;
