//! The host's handle on one call.
//!
//! All methods take `&mut self`: a `Session` belongs to one host thread at a time (it is `Send`,
//! so it may move between threads). Every method only touches the session's rings and atomics,
//! never blocks, and never waits for the worker. In inline mode (`workers == 0`) each method
//! first runs the session's pending work on the calling thread.

use super::carrier::CarrierPort;
use super::engine::{EngineShared, WorkerRef};
use super::records::{self, Header};
use super::shared::{SessionShared, play_tag};
use super::wakeup::Wakeup;
use super::worker_session::WorkerSession;
use crate::config::SessionConfig;
use crate::event::{Event, RawEvent};
use crate::pipeline::playout::SYNC_MARK_PREFIX;
use crate::pipeline::{PLAY_PIECE, PLAY_RATES};
use crate::protocol::MessageKind;
use crate::stats::{SessionCounters, SessionStats};
use ringbuf::traits::{Consumer, Observer};
use ringbuf::{HeapCons, HeapProd};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Room kept free in the play ring so that `interrupt` gets through when audio and marks have
/// filled it.
const INTERRUPT_RESERVE: usize = 8 * records::HEADER;

/// Room `play` leaves free in the play ring: the interrupt's, and a mark's, so that a `mark` right
/// after a `play` that filled the ring gets through. Two marks' worth: a record is written in
/// one piece, and the free room may be split around the ring's end.
pub(crate) fn play_reserve(max_mark_name: usize) -> usize {
    INTERRUPT_RESERVE + 2 * (records::HEADER + max_mark_name)
}

/// When the play ring has room for only part of a piece, that part is taken if it has at least
/// this many samples (smaller records would cost more in headers than they carry).
const MIN_PARTIAL_PIECE: usize = 256;

/// Why a session call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session (or its engine) is closed.
    #[error("session is closed")]
    Closed,
    /// A bounded queue is full; nothing was taken. Retry after the engine has made progress.
    #[error("queue full")]
    Full,
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The session hit an internal error and was shut down (the engine and its other sessions
    /// go on).
    #[error("session failed")]
    Failed,
}

pub(crate) enum Placement {
    Worker(WorkerRef),
    Inline(Box<WorkerSession>),
}

/// One call. Dropping it closes it.
pub struct Session {
    engine: Arc<EngineShared>,
    shared: Arc<SessionShared>,
    placement: Placement,
    /// `None` once the offload server has taken the carrier side.
    carrier: Option<CarrierPort>,
    play: HeapProd<u8>,
    pcm: HeapCons<i16>,
    max_mark_name: usize,
    max_pending_marks: usize,
    agent_rate: u32,
    mark_names: HashMap<u32, String>,
    next_mark_id: u32,
    marks_issued: u64,
    interrupts: u32,
    /// The latest barge-in this handle has seen; agent audio is tagged with it so that audio
    /// queued before the host knew of a barge-in is dropped as stale.
    barge_seen: u32,
    closed: bool,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        engine: Arc<EngineShared>,
        shared: Arc<SessionShared>,
        placement: Placement,
        config: &SessionConfig,
        inbound: HeapProd<u8>,
        play: HeapProd<u8>,
        pcm: HeapCons<i16>,
        outbound: HeapCons<u8>,
    ) -> Self {
        let worker = match placement {
            Placement::Worker(i) => Some(i),
            Placement::Inline(_) => None,
        };
        let carrier = CarrierPort::new(
            engine.clone(),
            shared.clone(),
            worker,
            inbound,
            outbound,
            config.max_message_bytes,
        );
        Self {
            engine,
            shared,
            placement,
            carrier: Some(carrier),
            play,
            pcm,
            max_mark_name: config.max_mark_name_bytes,
            max_pending_marks: config.max_pending_marks,
            agent_rate: config.agent_rate,
            // Grown here, on the host's thread, as marks are placed (most calls have a few
            // outstanding at a time, not `max_pending_marks`).
            mark_names: HashMap::new(),
            next_mark_id: 1,
            marks_issued: 0,
            interrupts: 0,
            barge_seen: 0,
            closed: false,
        }
    }

    /// The rate (Hz) of the PCM [`Session::read_audio`] returns.
    pub fn agent_rate(&self) -> u32 {
        self.agent_rate
    }

    /// `Ok` while the session is usable; `Closed` or `Failed` otherwise.
    pub fn status(&self) -> Result<(), SessionError> {
        self.check_open()
    }

    fn check_open(&self) -> Result<(), SessionError> {
        if self.closed || self.engine.shutdown.load(Ordering::Acquire) {
            Err(SessionError::Closed)
        } else if self.shared.failed.load(Ordering::Acquire) {
            Err(SessionError::Failed)
        } else {
            Ok(())
        }
    }

    /// Runs pending work now (inline mode) or nudges the worker (threaded mode).
    fn kick(&mut self) {
        match &mut self.placement {
            Placement::Inline(ws) => {
                ws.step(self.engine.now_us(), None);
            }
            Placement::Worker(at) => self.engine.wake(*at),
        }
    }

    /// Inline mode: run pending work (pacing, timeouts) before reading outputs.
    fn pump(&mut self) {
        if let Placement::Inline(ws) = &mut self.placement {
            ws.step(self.engine.now_us(), None);
        }
    }

    /// Hands one message received from the carrier to the engine.
    ///
    /// A message over `max_message_bytes` is accepted and dropped, and raises a `protocol_error`
    /// event like any other bad input. `Full` means the inbound ring is full (nothing taken).
    pub fn push(&mut self, message: &[u8], kind: MessageKind) -> Result<(), SessionError> {
        self.check_open()?;
        self.carrier_mut()?.write(message, kind)?;
        self.kick();
        Ok(())
    }

    /// Tells the engine the carrier's connection closed (see [`CarrierPort::end_stream`]): the
    /// stream ends as with the carrier's stop message, if it has not already.
    pub fn end_stream(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        self.carrier_mut()?.end_stream()?;
        self.kick();
        Ok(())
    }

    /// Whether the carrier side was detached (an offloaded call): `push` and `next_outbound` are
    /// then not available on this handle.
    pub fn is_offloaded(&self) -> bool {
        self.carrier.is_none()
    }

    fn carrier_mut(&mut self) -> Result<&mut CarrierPort, SessionError> {
        self.carrier
            .as_mut()
            .ok_or(SessionError::InvalidArgument("the offload server drives this session's carrier side"))
    }

    /// Takes the carrier-facing half (push, outbound) so another component (the offload server)
    /// can drive the carrier's connection; the worker then also signals `wakeup` whenever it
    /// produced outbound messages. This handle keeps the agent side; its `push` and
    /// `next_outbound` then fail with `InvalidArgument`. Threaded sessions only.
    pub fn detach_carrier(&mut self, wakeup: Arc<Wakeup>) -> Result<CarrierPort, SessionError> {
        if matches!(self.placement, Placement::Inline(_)) {
            return Err(SessionError::InvalidArgument("inline sessions cannot be offloaded"));
        }
        let port =
            self.carrier.take().ok_or(SessionError::InvalidArgument("carrier side already detached"))?;
        if self.shared.carrier_wakeup.set(wakeup).is_err() {
            return Err(SessionError::InvalidArgument("carrier side already detached"));
        }
        Ok(port)
    }

    /// Hands one text message to the engine (see [`Session::push`]).
    pub fn push_text(&mut self, message: &str) -> Result<(), SessionError> {
        self.push(message.as_bytes(), MessageKind::Text)
    }

    /// Reads caller audio (s16 at the agent rate) into `out`; returns the samples written.
    ///
    /// Reading (even when nothing is ready) tells the engine the host is taking caller audio:
    /// for `read_hold_ms` after it, carrier messages whose audio has no room yet wait instead of
    /// being dropped.
    pub fn read_audio(&mut self, out: &mut [i16]) -> usize {
        self.pump();
        let n = self.pcm.pop_slice(out);
        self.shared.audio_read_us.store(self.engine.now_us(), Ordering::Release);
        self.resume_held();
        n
    }

    /// The worker holds carrier messages until the host makes room: now there may be some.
    fn resume_held(&mut self) {
        if self.shared.inbound_held.load(Ordering::Acquire) {
            self.kick();
        }
    }

    /// Caller audio samples ready to read.
    pub fn audio_available(&mut self) -> usize {
        self.pump();
        self.pcm.occupied_len()
    }

    /// Queues agent audio (mono s16 at `rate` Hz: 8000, 16000, 22050, 24000, 44100 or 48000).
    ///
    /// Takes as much as fits and returns how many samples it took; the caller keeps the rest and
    /// retries after the engine has drained some (`Full` when nothing fit). What fits: the free
    /// room of the play ring (`play_ring_bytes`, a hand-off the worker empties into the outbound
    /// queue within a pass) and, in inline mode, also of the outbound queue (`outbound_buffer_ms`
    /// of 8 kHz µ-law, where a long reply waits), which this call then fills itself.
    pub fn play(&mut self, pcm: &[i16], rate: u32) -> Result<usize, SessionError> {
        self.check_open()?;
        if !PLAY_RATES.contains(&rate) {
            return Err(SessionError::InvalidArgument(
                "play rate must be 8000, 16000, 22050, 24000, 44100 or 48000 Hz",
            ));
        }
        if pcm.is_empty() {
            return Ok(0);
        }
        let reserve = play_reserve(self.max_mark_name);
        let mut taken = 0;
        let mut bytes = [0u8; PLAY_PIECE * 2];
        while taken < pcm.len() {
            let want = (pcm.len() - taken).min(PLAY_PIECE);
            let mut room = records::contiguous_room(&self.play, reserve) / 2;
            if room < want && matches!(self.placement, Placement::Inline(_)) {
                // Inline, this thread is the worker: move what the ring holds into the outbound
                // queue first.
                self.pump();
                room = records::contiguous_room(&self.play, reserve) / 2;
            }
            // The ring is full: take the part of this piece that fits, if it is worth a record.
            let n = if room >= want {
                want
            } else if room >= MIN_PARTIAL_PIECE {
                room
            } else {
                break;
            };
            let piece = &pcm[taken..taken + n];
            for (b, s) in bytes.chunks_exact_mut(2).zip(piece) {
                b.copy_from_slice(&s.to_le_bytes());
            }
            let body = &bytes[..n * 2];
            let header = Header { tag: play_tag::PCM, a: rate, b: body.len() as u32, c: self.barge_seen };
            if !records::write_contiguous(&mut self.play, header, body, reserve) {
                debug_assert!(false, "contiguous_room said it fits");
                break;
            }
            taken += n;
            if n < want {
                break;
            }
        }
        if taken < pcm.len() {
            SessionCounters::bump_shared(&self.shared.counters.play_refused_full);
        }
        if taken == 0 {
            return Err(SessionError::Full);
        }
        self.kick();
        Ok(taken)
    }

    /// Places a mark after the audio played so far; a `MarkPlayed` event with its name follows
    /// when the caller has heard everything before it (or `MarkCleared` if it was flushed).
    pub fn mark(&mut self, name: &str) -> Result<(), SessionError> {
        self.check_open()?;
        if name.len() > self.max_mark_name {
            return Err(SessionError::InvalidArgument("mark name longer than max_mark_name_bytes"));
        }
        if name.starts_with(SYNC_MARK_PREFIX) {
            return Err(SessionError::InvalidArgument(
                "mark names starting with \"trunkline-sync-\" are reserved",
            ));
        }
        // Outstanding = issued minus resolved by the worker (played or cleared). Counting from the
        // worker's counters, not from events seen, keeps this right when events were dropped.
        let stats = self.shared.counters.snapshot();
        if self.marks_issued.saturating_sub(stats.marks_played + stats.marks_cleared)
            >= self.max_pending_marks as u64
        {
            return Err(SessionError::Full);
        }
        let id = self.next_mark_id;
        let header = Header { tag: play_tag::MARK, a: id, b: name.len() as u32, c: self.barge_seen };
        if !records::write_contiguous(&mut self.play, header, name.as_bytes(), INTERRUPT_RESERVE) {
            return Err(SessionError::Full);
        }
        self.next_mark_id = self.next_mark_id.wrapping_add(1).max(1);
        self.marks_issued += 1;
        if self.mark_names.len() >= 2 * self.max_pending_marks {
            // Names whose events were dropped (the host fell behind) would otherwise pile up:
            // forget the oldest, which can no longer be outstanding.
            let cutoff = id.saturating_sub(self.max_pending_marks as u32);
            self.mark_names.retain(|&k, _| k >= cutoff);
        }
        self.mark_names.insert(id, name.to_owned());
        self.kick();
        Ok(())
    }

    /// Stops the agent: drops its queued audio, sends `clear`, and reports an `Interrupted`
    /// event with how much of the utterance the caller heard. Audio played after this call is kept.
    pub fn interrupt(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        let generation = self.interrupts.wrapping_add(1);
        let header = Header { tag: play_tag::INTERRUPT, a: generation, b: 0, c: 0 };
        if !records::write_contiguous(&mut self.play, header, &[], 0) {
            return Err(SessionError::Full);
        }
        self.interrupts = generation;
        // After the record: the worker, seeing the new generation, skips to that record.
        self.shared.interrupt_gen.store(generation, Ordering::Release);
        self.kick();
        Ok(())
    }

    /// Size of the next outbound message, if there is one.
    pub fn outbound_len(&mut self) -> Option<usize> {
        self.pump();
        self.carrier.as_ref()?.outbound_len()
    }

    /// Takes the next message to send to the carrier into `buf` (replacing its contents).
    pub fn next_outbound(&mut self, buf: &mut Vec<u8>) -> Option<MessageKind> {
        let len = self.outbound_len()?;
        buf.resize(len, 0);
        self.next_outbound_into(buf).map(|(kind, _)| kind)
    }

    /// Takes the next outbound message into `buf` if it fits; returns its kind and length.
    /// `None` if there is no message or `buf` is too small (see [`Session::outbound_len`]).
    pub fn next_outbound_into(&mut self, buf: &mut [u8]) -> Option<(MessageKind, usize)> {
        self.carrier.as_mut()?.next_outbound_into(buf)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.pump();
        // Read before popping: the worker publishes a generation only after queueing its event,
        // so an empty queue after this load means every barge-in up to it was seen (or dropped).
        let published = self.shared.barge_gen.load(Ordering::Acquire);
        let Some(raw) = self.shared.events.pop() else {
            // A host that polls until the queue is empty is taking events (see `read_audio`):
            // stamped once per drain, not per event (a clock read each).
            self.shared.events_polled_us.store(self.engine.now_us(), Ordering::Release);
            self.resume_held();
            self.barge_seen = published;
            return None;
        };
        Some(self.resolve(raw))
    }

    fn resolve(&mut self, raw: RawEvent) -> Event {
        let mut name = |id: u32| self.mark_names.remove(&id).unwrap_or_default();
        match raw {
            RawEvent::Connected => Event::Connected,
            RawEvent::Started(s) => Event::Started(s),
            RawEvent::SpeechStarted { stream_ms } => Event::SpeechStarted { stream_ms },
            RawEvent::SpeechStopped { stream_ms } => Event::SpeechStopped { stream_ms },
            RawEvent::BargeIn { stream_ms, played_ms, generation } => {
                self.barge_seen = generation;
                Event::BargeIn { stream_ms, played_ms }
            }
            RawEvent::Interrupted { played_ms } => Event::Interrupted { played_ms },
            RawEvent::MarkPlayed { id, played_ms } => Event::MarkPlayed { name: name(id), played_ms },
            RawEvent::MarkCleared { id } => Event::MarkCleared { name: name(id) },
            RawEvent::Dtmf { digit, stream_ms, duration_ms } => {
                Event::Dtmf { digit: char::from(digit), stream_ms, duration_ms }
            }
            RawEvent::Stopped => {
                self.shared.stop_seen.store(true, Ordering::Relaxed);
                Event::Stopped
            }
            RawEvent::ProtocolError { error } => Event::ProtocolError { error },
        }
    }

    /// Marks the session failed, as a panic in its pipeline would (for testing hosts' handling
    /// of [`SessionError::Failed`]). Only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub fn inject_failure(&self) {
        self.shared.failed.store(true, Ordering::Release);
    }

    /// A snapshot of the session's counters.
    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// Closes the session: the worker drops it at its next pass. Further calls return `Closed`.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.shared.closed.store(true, Ordering::Release);
            self.engine.open_sessions.fetch_sub(1, Ordering::AcqRel);
            if let Placement::Worker(at) = self.placement {
                self.engine.wake(at);
            }
            self.engine.reap();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}
