//! The worker's side of a session: its pipeline and the worker ends of its rings.

use super::agent_ring::AgentProd;
use super::clock::EngineClock;
use super::engine::WorkerRef;
pub(crate) use super::hold::HoldPolicy;
use super::hold::Room;
use super::latency::{self, LatencyRecorder};
use super::records::{self, Header};
use super::shared::{SessionShared, inbound_tag, outbound_tag, play_record_samples, play_tag};
use crate::alloc_guard;
use crate::codec::G711;
use crate::event::RawEvent;
use crate::pipeline::{AgentAudio, SessionPipeline};
use crate::protocol::{MessageKind, ProtocolError};
use crate::stats::SessionStats;
use ringbuf::traits::Observer;
use ringbuf::{HeapCons, HeapProd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// The counters the worker side keeps itself (the pipeline keeps the rest), added to the
/// pipeline's when published. Not a whole `SessionStats`: every session carries one, and each
/// counter it would hold unused costs 8 bytes a session.
#[derive(Debug, Default, Clone, Copy)]
struct WorkerCounts {
    messages_in: u64,
    protocol_errors: u64,
    message_wait_us: u64,
    agent_samples_out: u64,
    agent_samples_dropped: u64,
    events_dropped: u64,
    outbound_stalls: u64,
    flushed_samples: u64,
    marks_cleared: u64,
    /// A drop counted in `events_dropped` ahead of a push that then dropped nothing (the host
    /// made room meanwhile): it stands for the next drop, since a counter never goes back.
    event_drop_counted_ahead: bool,
}

impl WorkerCounts {
    fn add_to(&self, stats: &mut SessionStats) {
        let Self {
            messages_in,
            protocol_errors,
            message_wait_us,
            agent_samples_out,
            agent_samples_dropped,
            events_dropped,
            outbound_stalls,
            flushed_samples,
            marks_cleared,
            event_drop_counted_ahead: _,
        } = *self;
        for (total, own) in [
            (&mut stats.messages_in, messages_in),
            (&mut stats.protocol_errors, protocol_errors),
            (&mut stats.message_wait_us, message_wait_us),
            (&mut stats.agent_samples_out, agent_samples_out),
            (&mut stats.agent_samples_dropped, agent_samples_dropped),
            (&mut stats.events_dropped, events_dropped),
            (&mut stats.outbound_stalls, outbound_stalls),
            (&mut stats.flushed_samples, flushed_samples),
            (&mut stats.marks_cleared, marks_cleared),
        ] {
            *total = total.wrapping_add(own);
        }
    }
}

/// Where one step's outputs go: the host-facing rings and queue, and the worker's own counts.
struct Outputs<'a> {
    pcm: &'a mut AgentProd,
    outbound: &'a mut HeapProd<u8>,
    shared: &'a SessionShared,
    /// What the worker side counts itself (the pipeline counts the rest).
    counts: &'a mut WorkerCounts,
    produced: bool,
    produced_outbound: bool,
    /// The pipeline has a message due that the outbound ring has no room for.
    stalled: bool,
}

impl Outputs<'_> {
    /// Caller audio at the agent rate, in stream order, into the host's PCM ring.
    fn agent_audio(
        pcm: &mut AgentProd,
        counts: &mut WorkerCounts,
        produced: &mut bool,
        audio: AgentAudio<'_>,
    ) {
        let n = pcm.push(audio);
        counts.agent_samples_out += n as u64;
        if n < audio.len() {
            // The host is not reading audio: drop the newest and count it, never block.
            counts.agent_samples_dropped += (audio.len() - n) as u64;
        }
        *produced |= n > 0;
    }

    /// Makes the counters so far visible to the host. Done before an event is queued (and
    /// again at the end of the step): a host that has seen an event reads counters that count
    /// everything before it, e.g. the whole call's once it sees `Stopped`.
    fn publish_counters(&mut self, pipeline: &SessionPipeline) {
        let mut counters = pipeline.counters();
        self.counts.add_to(&mut counters);
        self.shared.counters.publish(&counters);
    }

    /// One event the worker makes itself, after the counters.
    fn single_event(&mut self, pipeline: &SessionPipeline, event: RawEvent) {
        self.publish_counters(pipeline);
        self.event(pipeline, event);
    }

    fn event(&mut self, pipeline: &SessionPipeline, event: RawEvent) {
        if let RawEvent::BargeIn { reaction_us, .. } = event {
            // Into the engine's histogram as it happens (relaxed atomic adds), whatever becomes
            // of the event.
            self.shared.record_barge_in(reaction_us);
        }
        if let RawEvent::ProtocolError { error } = event {
            // By kind, for the metrics (the session's own counter has the total).
            self.shared.record_protocol_error(error.code());
        }
        let cut = matches!(event, RawEvent::BargeIn { .. } | RawEvent::Interrupted { .. });
        // A full queue drops its oldest event for this one: that is counted, and the count
        // published, before this event is there to be seen (a host that sees `Stopped` finds
        // every drop of the call counted). Only the worker pushes, so a queue not full now
        // drops nothing; one full now may have been polled meanwhile, and then dropped nothing:
        // the count stays, for the next drop (taken back, the published counter went down).
        let full = self.shared.events.is_full();
        if full && !self.counts.event_drop_counted_ahead {
            self.counts.events_dropped += 1;
            self.publish_counters(pipeline);
        }
        #[cfg(all(feature = "test-hooks", debug_assertions))]
        super::step_hook::before_event_push();
        let dropped = self.shared.push_event(event);
        if full {
            self.counts.event_drop_counted_ahead = !dropped;
        }
        #[cfg(all(feature = "test-hooks", debug_assertions))]
        super::step_hook::after_event();
        if cut {
            // After the event: a host that sees no cut pending knows no queued event refers to
            // the segments retired so far.
            self.shared.cuts.fetch_add(1, Ordering::Release);
        }
        self.produced = true;
    }

    /// Takes what the pipeline has for the host after a call: the carrier messages due, while
    /// the outbound ring has room for one, then its events, after the counters. Events come last
    /// so that a host that has seen one finds what came before it already visible: the caller
    /// audio, the messages to the carrier (a barge-in's `clear`) and the counts.
    fn drain(&mut self, pipeline: &mut SessionPipeline, now_us: u64) {
        self.transmit(pipeline, now_us);
        if pipeline.has_events() {
            self.publish_counters(pipeline);
            while let Some(event) = pipeline.poll_event() {
                self.event(pipeline, event);
            }
        }
    }

    /// The carrier messages due, while the outbound ring has room for one.
    fn transmit(&mut self, pipeline: &mut SessionPipeline, now_us: u64) {
        let was_stalled = std::mem::replace(&mut self.stalled, false);
        loop {
            if self.outbound.vacant_len() < records::HEADER + pipeline.max_transmit_len() {
                if pipeline.transmit_due(now_us) {
                    // Held, not lost: taking a message wakes the worker to send it. Counted once
                    // per message held, not at every step that finds it still held.
                    if !was_stalled {
                        self.counts.outbound_stalls += 1;
                    }
                    self.stalled = true;
                }
                return;
            }
            let Some((kind, message)) = pipeline.poll_transmit(now_us) else { return };
            let tag = match kind {
                MessageKind::Text => outbound_tag::TEXT,
                MessageKind::Binary => outbound_tag::BINARY,
            };
            let header = Header { tag, a: 0, b: message.len() as u32, c: 0 };
            let written = records::write(self.outbound, header, &[message], 0);
            debug_assert!(written, "room for the largest message was checked");
            self.produced = true;
            self.produced_outbound = true;
        }
    }
}

fn inbound_body_len(h: &Header) -> usize {
    if matches!(h.tag, inbound_tag::OVERSIZE | inbound_tag::CLOSED) { 0 } else { h.b as usize }
}

fn play_body_len(h: &Header) -> usize {
    if h.tag == play_tag::INTERRUPT { 0 } else { h.b as usize }
}

/// A session as its worker owns it.
///
/// It has no buffers of its own: messages are parsed, and agent audio and mark names read, where
/// they lie in the host's rings (written with [`records::write_contiguous`]).
pub struct WorkerSession {
    pub(crate) pipeline: SessionPipeline,
    pub(crate) shared: Arc<SessionShared>,
    inbound: HeapCons<u8>,
    play: HeapCons<u8>,
    pcm: AgentProd,
    outbound: HeapProd<u8>,
    interrupts_seen: u32,
    /// The latest interrupt applied: ahead of its record when the host's audio queued before
    /// it still sat in the ring (then newer than `interrupts_seen`).
    interrupt_applied: u32,
    /// The worker and slot it runs in (`None` inline).
    worker: Option<WorkerRef>,
    /// What the worker side counts itself; published with the pipeline's counters.
    counts: WorkerCounts,
    /// The pipeline has a message due that the outbound ring had no room for: taking a message
    /// wakes the worker, so no timer is needed until then.
    stalled: bool,
    hold: HoldPolicy,
    /// Carrier messages are being held back for the host (see [`HoldPolicy`]) until this time,
    /// engine clock µs, unless it reads before.
    held_until: Option<u64>,
}

impl WorkerSession {
    pub(crate) fn new(
        mut pipeline: SessionPipeline,
        shared: Arc<SessionShared>,
        inbound: HeapCons<u8>,
        play: HeapCons<u8>,
        pcm: AgentProd,
        outbound: HeapProd<u8>,
        hold: HoldPolicy,
    ) -> Self {
        // The host's audio and marks wait in the play ring: those queued before the stream ends
        // are handed in before its `Stopped` (see `finish_stop`).
        pipeline.hold_stopped_event();
        Self {
            pipeline,
            shared,
            inbound,
            play,
            pcm,
            outbound,
            interrupts_seen: 0,
            interrupt_applied: 0,
            worker: None,
            counts: WorkerCounts::default(),
            stalled: false,
            hold,
            held_until: None,
        }
    }

    /// Records the worker and slot this session is handed to.
    pub(crate) fn set_worker(&mut self, at: WorkerRef) {
        self.worker = Some(at);
    }

    /// The worker and slot this session runs in (`None` inline).
    pub(crate) fn worker(&self) -> Option<WorkerRef> {
        self.worker
    }

    /// Whether a message for the carrier is held because the outbound ring is full.
    pub(crate) fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// When the pipeline next has timed work, µs.
    pub(crate) fn deadline_us(&self) -> Option<u64> {
        self.pipeline.poll_timeout()
    }

    /// When a hold of carrier messages runs out (engine clock µs), if they are held.
    pub(crate) fn held_until(&self) -> Option<u64> {
        self.held_until
    }

    /// Whether the host closed the session, or it failed.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire) || self.shared.failed.load(Ordering::Acquire)
    }

    /// Does all pending work at `now_us`. Returns true if anything was produced for the host.
    ///
    /// A panic inside the pipeline (a bug) must not take the worker and its other sessions down:
    /// it is caught here, the session is marked failed (the host's calls then return `Failed`)
    /// and retired.
    ///
    /// `latency` counts, per carrier message, the time from its push to the end of its
    /// processing (its audio is then in the agent ring), on `clock` read then; `None` for inline
    /// sessions.
    ///
    /// In debug builds with the `alloc-guard` feature the step runs under the allocation guard
    /// (see [`crate::alloc_guard`]), on whichever thread runs it.
    pub(crate) fn step(&mut self, now_us: u64, latency: Option<(&LatencyRecorder, &EngineClock)>) -> bool {
        let step = std::panic::AssertUnwindSafe(|| alloc_guard::forbid(|| self.step_inner(now_us, latency)));
        match std::panic::catch_unwind(step) {
            Ok(produced) => produced,
            Err(_) => {
                self.shared.failed.store(true, Ordering::Release);
                true
            }
        }
    }

    fn step_inner(&mut self, now_us: u64, latency: Option<(&LatencyRecorder, &EngineClock)>) -> bool {
        let Self {
            pipeline,
            shared,
            inbound,
            play,
            pcm,
            outbound,
            interrupts_seen,
            interrupt_applied,
            worker: _,
            counts,
            stalled,
            hold,
            held_until,
        } = self;
        let mut out = Outputs {
            pcm,
            outbound,
            shared,
            counts,
            produced: false,
            produced_outbound: false,
            // As the last step left it: a message still held is not counted again.
            stalled: *stalled,
        };

        *held_until = None;
        while let Some(h) = records::next(inbound, inbound_body_len) {
            // What the host queued to play before this message reached the worker goes in
            // first, as it would have had the worker stepped between the two: the audio the
            // caller's words barge in on is playing, and a mark is placed before the stream ends.
            drain_play_ring(play, pipeline, &mut out, (interrupts_seen, interrupt_applied), now_us);
            if h.tag == inbound_tag::CLOSED {
                records::skip(inbound, 0);
                transport_closed(pipeline, play, &mut out, (interrupts_seen, interrupt_applied), now_us);
                continue;
            }
            // A message over the size limit is a header alone: no audio, one event, held as any
            // message is (thousands of them fit the ring, and would push out the host's events).
            let oversize = h.tag == inbound_tag::OVERSIZE;
            let len = if oversize { 0 } else { h.b as usize };
            let audio = Room {
                vacant: out.pcm.vacant_len(),
                occupied: out.pcm.occupied_len(),
                needed: if oversize { 0 } else { pipeline.agent_room_needed(len) },
            };
            let events = Room {
                vacant: shared.events.capacity() - shared.events.len(),
                occupied: shared.events.len(),
                needed: hold.event_reserve(),
            };
            if let Some(until) = hold.hold_until(now_us, audio, events, shared) {
                // Left in the ring for the next pass (the host's read wakes it): the ring fills and
                // `push` refuses with `Full`, the carrier's messages wait in its socket.
                *held_until = Some(until);
                break;
            }
            if oversize {
                records::skip(inbound, 0);
                out.counts.messages_in += 1;
                out.counts.protocol_errors += 1;
                out.single_event(pipeline, RawEvent::ProtocolError { error: ProtocolError::MessageTooLarge });
                continue;
            }
            let kind = if h.tag == inbound_tag::BINARY { MessageKind::Binary } else { MessageKind::Text };
            // Stamped by the host as it pushed: the message's arrival, on the engine's clock.
            let waited_us = latency::elapsed_since(h.a, now_us);
            let arrived_us = now_us.saturating_sub(waited_us);
            out.counts.message_wait_us += waited_us;
            // Parsed where it lies: the host writes nothing over it until it is skipped.
            // Silence filling a gap has the room the message's own audio does not need.
            pipeline.limit_gap_fill(Some(out.pcm.vacant_len()), len);
            let Outputs { pcm, counts, produced, .. } = &mut out;
            let mut audio = |a: AgentAudio<'_>| Outputs::agent_audio(pcm, counts, produced, a);
            pipeline.handle_message_agent(records::body(inbound, len), kind, arrived_us, now_us, &mut audio);
            records::skip(inbound, len);
            finish_stop(play, pipeline, &mut out, (interrupts_seen, interrupt_applied), now_us);
            if let Some((latency, clock)) = latency {
                // To now, not to the pass's start: the message's own processing and the sessions
                // stepped before it in the pass are part of its latency.
                latency.record(latency::elapsed_since(h.a, clock.now_us()));
            }
            out.drain(pipeline, now_us);
        }

        // The connection closed with the ring too full to say so: once every message before it
        // has been handled. (The ring is looked at again after the flag: the host may have filled
        // it since the loop above found it empty, before it closed; the flag then waits for the
        // next pass, which those messages wake.)
        if held_until.is_none()
            && shared.transport_closed.load(Ordering::Acquire)
            && records::next(inbound, inbound_body_len).is_none()
        {
            shared.transport_closed.store(false, Ordering::Relaxed);
            transport_closed(pipeline, play, &mut out, (interrupts_seen, interrupt_applied), now_us);
        }
        // Set before the host's next read looks at it; a read that came just before this store
        // finds it on its next call, or the worker finds the room on its timer.
        shared.inbound_held.store(held_until.is_some(), Ordering::Release);
        drain_play_ring(play, pipeline, &mut out, (interrupts_seen, interrupt_applied), now_us);
        // While messages wait, a gap in the caller's audio is not filled: the frame that closes
        // it may be among them.
        // A gap the wait fills is followed by the frames held behind it.
        pipeline.limit_gap_fill(Some(out.pcm.vacant_len()), 0);
        let Outputs { pcm, counts, produced, .. } = &mut out;
        let mut audio = |a: AgentAudio<'_>| Outputs::agent_audio(pcm, counts, produced, a);
        pipeline.handle_timeout_agent(now_us, held_until.is_none(), &mut audio);
        out.drain(pipeline, now_us);
        *stalled = out.stalled;
        // Published after the BargeIn event was queued: a host that reads this generation and then
        // finds the event queue empty has seen (or lost) every barge-in up to it.
        shared.barge_gen.store(pipeline.barge_generation(), Ordering::Release);
        shared.pacer_stalled.store(out.stalled, Ordering::Release);
        out.publish_counters(pipeline);
        shared.publish_playout(pipeline);
        if out.produced_outbound
            && let Some(wakeup) = shared.carrier_wakeup.get()
        {
            shared.outbound_ready.store(true, Ordering::Release);
            wakeup.notify();
        }
        out.produced
    }
}

/// The carrier's connection closed: the stream ends as with a stop, if it had not.
fn transport_closed(
    pipeline: &mut SessionPipeline,
    play: &mut HeapCons<u8>,
    out: &mut Outputs<'_>,
    interrupts: (&mut u32, &mut u32),
    now_us: u64,
) {
    // The frames held behind the gaps the end fills come out too.
    pipeline.limit_gap_fill(Some(out.pcm.vacant_len()), 0);
    let Outputs { pcm, counts, produced, .. } = out;
    let mut audio = |a: AgentAudio<'_>| Outputs::agent_audio(pcm, counts, produced, a);
    pipeline.handle_transport_closed_agent(now_us, &mut audio);
    finish_stop(play, pipeline, out, interrupts, now_us);
    out.drain(pipeline, now_us);
}

/// If the stream has just ended: hands in everything the host queued to play (a record that
/// waited for room behind a full outbound queue among it), which the ended stream resolves (the
/// audio flushed, the marks cleared), then lets the pipeline queue `Stopped` after it.
fn finish_stop(
    play: &mut HeapCons<u8>,
    pipeline: &mut SessionPipeline,
    out: &mut Outputs<'_>,
    interrupts: (&mut u32, &mut u32),
    now_us: u64,
) {
    if pipeline.stopped_held() {
        drain_play_ring(play, pipeline, out, interrupts, now_us);
        pipeline.release_stopped();
    }
}

/// Feeds host play records to the pipeline until one does not fit (backpressure).
///
/// Records are dropped unplayed (marks reported cleared) when an interrupt the host has asked
/// for lies ahead in the ring (they were queued before it), or when they were queued by a host
/// that had not yet seen the latest barge-in (stale audio of the interrupted answer).
fn drain_play_ring(
    play: &mut HeapCons<u8>,
    pipeline: &mut SessionPipeline,
    out: &mut Outputs<'_>,
    (interrupts_seen, interrupt_applied): (&mut u32, &mut u32),
    now_us: u64,
) {
    let shared = out.shared;
    if !pipeline.accepts_play() {
        // Agent audio and marks wait in the ring until the stream starts and its format is known.
        return;
    }
    while let Some(h) = records::next(play, play_body_len) {
        let requested = shared.interrupt_gen.load(Ordering::Acquire);
        let interrupted = requested != *interrupts_seen;
        let stale = h.c != pipeline.barge_generation();
        if interrupted && *interrupt_applied != requested && h.tag != play_tag::INTERRUPT {
            // The host interrupted while audio it queued before still sits ahead of the interrupt
            // record: interrupt now, so `Interrupted` comes before the `MarkCleared`s of the marks
            // it drops, then skip to the record. Again for an interrupt asked for after one
            // applied so (audio played between them is cut by it).
            pipeline.interrupt_numbered(now_us, requested);
            out.drain(pipeline, now_us);
            *interrupt_applied = requested;
        }
        match h.tag {
            play_tag::INTERRUPT => {
                records::skip(play, 0);
                *interrupts_seen = h.a;
                // Applied here unless an interrupt as new or newer was applied ahead of it
                // (back-to-back interrupts applied so collapse into that one).
                if h.a.wrapping_sub(*interrupt_applied) as i32 > 0 {
                    pipeline.interrupt_numbered(now_us, h.a);
                    out.drain(pipeline, now_us);
                    *interrupt_applied = h.a;
                }
            }
            play_tag::PCM | play_tag::G711 if interrupted || stale => {
                records::skip(play, h.b as usize);
                let samples = play_record_samples(h.tag, h.b);
                out.counts.flushed_samples += u64::from(samples);
                shared.play_drained(samples, h.a);
            }
            play_tag::PCM | play_tag::G711 => {
                let len = h.b as usize;
                let samples = play_record_samples(h.tag, h.b);
                // A record that does not fit yet stays in the ring: that is the backpressure.
                if !pipeline.play_fits(samples as usize, h.a) {
                    return;
                }
                let body = records::body(play, len);
                let played = if h.tag == play_tag::PCM {
                    pipeline.play_le_bytes(body, h.a)
                } else {
                    // The host handle writes G.711 records only for a G.711 agent.
                    let law = pipeline.agent_format().g711().unwrap_or(G711::Mulaw);
                    pipeline.play_g711(body, law)
                };
                records::skip(play, len);
                shared.play_drained(samples, h.a);
                match played {
                    Ok(true) => {}
                    // Room was checked above, and the host handle validates rates against those
                    // `play` takes; a rate the carrier's format does not convert from is counted
                    // as flushed (the host's play call has already returned).
                    Ok(false) | Err(_) => out.counts.flushed_samples += samples as u64,
                }
                // No frame is cut here: the records after this one may continue the same audio,
                // and a frame cut now, before them, would be padded with silence. The step sends
                // what is due once the ring is drained.
            }
            play_tag::MARK => {
                let len = h.b as usize;
                if interrupted || stale {
                    out.counts.marks_cleared += 1;
                    out.single_event(pipeline, RawEvent::MarkCleared { id: h.a });
                } else {
                    pipeline.mark(h.a, records::body(play, len));
                    out.drain(pipeline, now_us);
                }
                records::skip(play, len);
            }
            play_tag::SEGMENT => {
                if interrupted || stale {
                    pipeline.drop_segment(h.a);
                } else {
                    pipeline.begin_segment(h.a, now_us);
                }
                records::skip(play, 0);
            }
            _ => records::skip(play, play_body_len(&h)),
        }
    }
}
