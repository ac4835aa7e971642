//! State shared by a session's host handle and its worker: counters, events, flags.

use super::totals::{Outcome, Registration};
use super::wakeup::Wakeup;
use crate::alloc_guard;
use crate::event::RawEvent;
use crate::pipeline::SessionPipeline;
use crate::stats::SessionCounters;
use crossbeam_queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Inbound ring record tags.
pub mod inbound_tag {
    /// A text frame.
    pub const TEXT: u8 = 0;
    /// A binary frame.
    pub const BINARY: u8 = 1;
    /// A message over the size limit, dropped by the host handle (no body).
    pub const OVERSIZE: u8 = 2;
    /// The carrier's connection closed (no body).
    pub const CLOSED: u8 = 3;
}

/// Play ring record tags.
pub mod play_tag {
    /// Agent PCM: `a` = rate, `b` = body bytes (s16le), `c` = barge-in generation the host had seen.
    pub const PCM: u8 = 0;
    /// A host mark: `a` = id, `b` = name bytes, `c` = barge-in generation the host had seen.
    pub const MARK: u8 = 1;
    /// An interrupt: `a` = generation, no body.
    pub const INTERRUPT: u8 = 2;
    /// A segment begins: `a` = id, no body (the host handle keeps the tag), `c` = barge-in
    /// generation the host had seen.
    pub const SEGMENT: u8 = 3;
    /// Agent G.711 in the session's law: `a` = rate (8000), `b` = body bytes (a code each),
    /// `c` = barge-in generation the host had seen.
    pub const G711: u8 = 4;
}

/// Samples in an audio play record of `body_bytes` with `tag` (PCM: s16le; G.711: a byte each).
pub fn play_record_samples(tag: u8, body_bytes: u32) -> u32 {
    if tag == play_tag::G711 { body_bytes } else { body_bytes / 2 }
}

/// How long `samples` of a play record at `rate` Hz play, µs: the one formula the host handle
/// and the worker both count the play ring's audio with, so that their sums agree.
pub fn play_record_us(samples: u32, rate: u32) -> u64 {
    u64::from(samples) * 1_000_000 / u64::from(rate.max(1))
}

/// Outbound ring record tags: the message kind.
pub mod outbound_tag {
    /// A text frame.
    pub const TEXT: u8 = 0;
    /// A binary frame.
    pub const BINARY: u8 = 1;
}

/// Shared between the host handle and the worker.
#[derive(Debug)]
pub struct SessionShared {
    /// Counters.
    pub counters: Arc<SessionCounters>,
    /// Events, worker → host. Full: the oldest is dropped and counted.
    pub events: ArrayQueue<RawEvent>,
    /// Set by the host on close; the worker then retires the session.
    pub closed: AtomicBool,
    /// Bumped by the host per `interrupt`, after writing the interrupt record (wrapping).
    pub interrupt_gen: AtomicU32,
    /// The worker's barge-in generation, published after the `BargeIn` event is queued.
    pub barge_gen: AtomicU32,
    /// Set when the session's pipeline panicked; the session is then retired.
    pub failed: AtomicBool,
    /// Set when the carrier side is driven by another component (the offload server): the worker
    /// signals it after producing outbound messages, with `outbound_ready` set.
    pub carrier_wakeup: OnceLock<Arc<Wakeup>>,
    /// Outbound messages were produced since the carrier side last looked.
    pub outbound_ready: AtomicBool,
    /// The pacer is holding a frame because the outbound ring was full: taking a message should
    /// wake the worker (otherwise it retries on a short timer).
    pub pacer_stalled: AtomicBool,
    /// When the host last read caller audio (engine clock, µs; the session's opening until then).
    pub audio_read_us: AtomicU64,
    /// When the host last polled events (engine clock, µs; the session's opening until then).
    pub events_polled_us: AtomicU64,
    /// The worker is holding carrier messages until the host reads audio or polls events: those
    /// calls should wake it (otherwise it looks again on its timer).
    pub inbound_held: AtomicBool,
    /// The carrier's connection closed while the inbound ring had no room to say so: the worker
    /// ends the stream once it has handled every message before it (set by the carrier port).
    pub transport_closed: AtomicBool,
    /// The host has been given the stream's `Stopped` event (set by the host handle).
    pub stop_seen: AtomicBool,
    /// `BargeIn` and `Interrupted` events queued so far (bumped after each is queued).
    pub cuts: AtomicU32,
    /// Every segment id up to this one is done with in the worker (heard through, cut off or
    /// dropped): the host's bound on live segments.
    pub segments_retired: AtomicU32,
    /// Play ring audio the worker has taken (queued or flushed), µs by [`play_record_us`].
    pub play_drained_us: AtomicU64,
    /// Agent audio in the outbound queue, µs (published after each worker step).
    pub outbound_queued_us: AtomicU64,
    /// When the carrier will have played everything sent (engine time, µs; 0: it holds nothing),
    /// by the playout model (published after each worker step).
    pub carrier_done_us: AtomicU64,
    /// Its place in the engine's totals, where its final counts go when it is dropped (`None`
    /// outside an engine).
    pub(crate) registration: Option<Registration>,
}

impl SessionShared {
    /// Shared state with an event queue of `event_capacity`, for a session opened at `now_us`.
    pub fn new(event_capacity: usize, now_us: u64) -> Self {
        Self {
            counters: Arc::new(SessionCounters::default()),
            events: ArrayQueue::new(event_capacity.max(1)),
            closed: AtomicBool::new(false),
            interrupt_gen: AtomicU32::new(0),
            barge_gen: AtomicU32::new(0),
            failed: AtomicBool::new(false),
            carrier_wakeup: OnceLock::new(),
            outbound_ready: AtomicBool::new(false),
            pacer_stalled: AtomicBool::new(false),
            audio_read_us: AtomicU64::new(now_us),
            events_polled_us: AtomicU64::new(now_us),
            inbound_held: AtomicBool::new(false),
            transport_closed: AtomicBool::new(false),
            stop_seen: AtomicBool::new(false),
            cuts: AtomicU32::new(0),
            segments_retired: AtomicU32::new(0),
            play_drained_us: AtomicU64::new(0),
            outbound_queued_us: AtomicU64::new(0),
            carrier_done_us: AtomicU64::new(0),
            registration: None,
        }
    }

    /// Puts the session in the engine's totals (before it is shared).
    pub(crate) fn with_registration(mut self, registration: Registration) -> Self {
        self.registration = Some(registration);
        self
    }

    /// Counts a barge-in's reaction time (µs) in the engine's histogram (nothing outside an
    /// engine). Lock-free: called by the worker as the barge-in is decided.
    pub(crate) fn record_barge_in(&self, reaction_us: u64) {
        if let Some(registration) = &self.registration {
            registration.record_barge_in(reaction_us);
        }
    }

    /// Counts a protocol error by its code in the engine's totals (nothing outside an engine).
    /// Lock-free: called by the worker as it reports the error.
    pub(crate) fn record_protocol_error(&self, code: u32) {
        if let Some(registration) = &self.registration {
            registration.record_protocol_error(code);
        }
    }

    /// The worker took a play record of `samples` at `rate` from the ring.
    pub(crate) fn play_drained(&self, samples: u32, rate: u32) {
        self.play_drained_us.fetch_add(play_record_us(samples, rate), Ordering::Release);
    }

    /// Publishes what the host's `queued_ms` and segment bound read from the pipeline.
    pub(crate) fn publish_playout(&self, pipeline: &SessionPipeline) {
        self.outbound_queued_us.store(pipeline.queued_outbound_us(), Ordering::Release);
        self.carrier_done_us.store(pipeline.carrier_done_us(), Ordering::Release);
        self.segments_retired.store(pipeline.segments_retired_through(), Ordering::Release);
    }

    /// Queues an event, dropping the oldest if the host has fallen behind; true if one was
    /// dropped (the worker counts it).
    pub fn push_event(&self, event: RawEvent) -> bool {
        let oldest = self.events.force_push(event);
        let dropped = oldest.is_some();
        // A `Started` event owns the stream's identity: dropping it frees memory, which a
        // worker step may only do here, by design.
        alloc_guard::permit(|| drop(oldest));
        dropped
    }
}

impl Drop for SessionShared {
    /// The last of the host handle, the worker's side and the carrier port is gone: nothing can
    /// write the counters any more, so their final values go into the engine's totals. This
    /// runs where the session is freed, on the host's side (never in a worker's step).
    fn drop(&mut self) {
        let Some(registration) = &self.registration else { return };
        let outcome = if *self.failed.get_mut() {
            Outcome::Failed
        } else if *self.stop_seen.get_mut()
            || std::iter::from_fn(|| self.events.pop()).any(|e| matches!(e, RawEvent::Stopped))
        {
            // Given to the host, or still waiting for it in the queue.
            Outcome::Stopped
        } else {
            Outcome::Closed
        };
        registration.retire(&self.counters.snapshot(), outcome);
    }
}
