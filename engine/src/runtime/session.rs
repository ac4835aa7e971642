//! The host's handle on one call.
//!
//! All methods take `&mut self`: a `Session` belongs to one host thread at a time (it is `Send`,
//! so it may move between threads). Every method only touches the session's rings and atomics,
//! never blocks, and never waits for the worker. In inline mode (`workers == 0`) each method
//! first runs the session's pending work on the calling thread.

use super::agent_ring::AgentCons;
use super::carrier::CarrierPort;
use super::engine::{EngineShared, WorkerRef};
use super::records::{self, Header};
use super::shared::{SessionShared, play_record_us, play_tag};
use super::wakeup::Wakeup;
use super::worker_session::WorkerSession;
#[cfg(feature = "opus")]
use crate::codec::EncodedAudio;
use crate::codec::encode_l16;
use crate::config::{AgentFormat, SessionConfig};
use crate::event::{Event, RawEvent};
use crate::pipeline::playout::SYNC_MARK_PREFIX;
use crate::pipeline::{MAX_SEGMENT_TAG_BYTES, MAX_SEGMENTS, PLAY_PIECE, PLAY_RATES, SegmentCut};
use crate::protocol::MessageKind;
use crate::quality::LineQuality;
use crate::stats::{SessionCounters, SessionStats};
use ringbuf::{HeapCons, HeapProd};
use std::collections::{HashMap, VecDeque};
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
    /// go on: the worker catches the panic, which needs the default `panic = "unwind"`; a
    /// program built with `panic = "abort"` ends instead).
    #[error("session failed")]
    Failed,
    /// Encoded audio given to [`Session::play_encoded`] is corrupt, truncated or in a form not
    /// supported (a bad Ogg page, a stream that is not Opus, a packet libopus rejects): the stream
    /// was dropped and the error counted (`encoded_audio_errors`). The session goes on; the next
    /// input starts a new stream.
    #[error("bad encoded audio: {0}")]
    BadAudio(&'static str),
}

/// The segment the caller was hearing when the agent was cut off (see [`Session::begin_segment`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardSegment {
    /// The tag the host gave it.
    pub tag: String,
    /// How much of it the caller heard, ms, at most what was queued for it; `None` when the
    /// caller had heard nothing of it yet (distinct from `Some(0)`, under a millisecond).
    pub played_ms: Option<u64>,
}

/// Where the caller's playhead was among the host's segments when a barge-in or interrupt cut
/// the agent off: see [`Session::segments_at_cut`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentReport {
    /// The segment being heard (or, when nothing queued had been heard, the first one queued);
    /// `None` when no segment was queued.
    pub segment: Option<HeardSegment>,
    /// Tags of the segments after it, in the order begun, of which the caller heard nothing.
    pub unheard: Vec<String>,
}

/// Agent audio for [`Session::play_source`].
#[derive(Clone, Copy)]
enum PlayInput<'a> {
    Pcm(&'a [i16]),
    /// s16le bytes (an odd last byte is not a sample).
    Le(&'a [u8]),
    /// Codes in the session's G.711 law.
    G711(&'a [u8]),
}

impl PlayInput<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Pcm(p) => p.len(),
            Self::Le(b) => b.len() / 2,
            Self::G711(b) => b.len(),
        }
    }
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
    pcm: AgentCons,
    max_mark_name: usize,
    max_pending_marks: usize,
    agent_rate: u32,
    agent_format: AgentFormat,
    mark_names: HashMap<u32, String>,
    next_mark_id: u32,
    marks_issued: u64,
    interrupts: u32,
    /// The latest barge-in this handle has seen; agent audio is tagged with it so that audio
    /// queued before the host knew of a barge-in is dropped as stale.
    barge_seen: u32,
    /// Segments begun and not known to be over, oldest first, with their tags (kept here, on
    /// the host's side: the worker tracks ids only).
    segments: VecDeque<(u32, String)>,
    next_segment_id: u32,
    /// Per interrupt not yet reported: its number and the last segment begun before it.
    interrupt_cuts: VecDeque<(u32, u32)>,
    /// `BargeIn` and `Interrupted` events taken (or known dropped): compared with the worker's
    /// count to know none is pending.
    cuts_seen: u32,
    /// The report of the last `BargeIn` or `Interrupted` event polled.
    last_cut: Option<SegmentReport>,
    /// Play ring audio written, µs (see [`play_record_us`]).
    play_accepted_us: u64,
    /// `play_encoded`'s decoders and pending PCM, built on first use (a session that never plays
    /// encoded audio pays a pointer).
    #[cfg(feature = "opus")]
    encoded: Option<Box<crate::codec::encoded::EncodedPlayer>>,
    /// The rate encoded audio is decoded for: the carrier's once the host has seen `Started`,
    /// the configured `play_rate` until then.
    #[cfg(feature = "opus")]
    encoded_rate: u32,
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
        pcm: AgentCons,
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
            agent_format: config.agent_format,
            // Grown here, on the host's thread, as marks are placed (most calls have a few
            // outstanding at a time, not `max_pending_marks`).
            mark_names: HashMap::new(),
            next_mark_id: 1,
            marks_issued: 0,
            interrupts: 0,
            barge_seen: 0,
            // Grown here, on the host's thread, once segments are used.
            segments: VecDeque::new(),
            next_segment_id: 1,
            interrupt_cuts: VecDeque::new(),
            cuts_seen: 0,
            last_cut: None,
            play_accepted_us: 0,
            #[cfg(feature = "opus")]
            encoded: None,
            #[cfg(feature = "opus")]
            encoded_rate: config.play_rate,
            closed: false,
        }
    }

    /// The rate (Hz) of the PCM [`Session::read_audio`] returns.
    pub fn agent_rate(&self) -> u32 {
        self.agent_rate
    }

    /// The agent's audio format: what [`Session::read_audio_bytes`] returns and
    /// [`Session::play_bytes`] takes.
    pub fn agent_format(&self) -> AgentFormat {
        self.agent_format
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
    /// With a G.711 agent format the codes are decoded for it (see [`Session::read_audio_bytes`]
    /// for the codes themselves).
    ///
    /// Reading (even when nothing is ready) tells the engine the host is taking caller audio:
    /// for `read_hold_ms` after it, carrier messages whose audio has no room yet wait instead of
    /// being dropped.
    pub fn read_audio(&mut self, out: &mut [i16]) -> usize {
        self.pump();
        let n = self.pcm.pop_pcm(out);
        self.read_done();
        n
    }

    /// Reads caller audio as bytes in the agent's format into `out`; returns the bytes written.
    /// G.711: a code per sample, 8 kHz, exactly as the carrier sent them when it speaks the same
    /// law at 8 kHz (its gaps filled with the law's silence code, µ-law 0xFF, A-law 0xD5). PCM:
    /// s16le at the agent rate, whole samples only. Otherwise as [`Session::read_audio`].
    pub fn read_audio_bytes(&mut self, out: &mut [u8]) -> usize {
        self.pump();
        let n = self.pcm.pop_bytes(out);
        self.read_done();
        n
    }

    fn read_done(&mut self) {
        self.shared.audio_read_us.store(self.engine.now_us(), Ordering::Release);
        self.resume_held();
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
        self.play_source(PlayInput::Pcm(pcm), rate)
    }

    /// Queues agent audio given as bytes in the agent's format: G.711 codes (the session's law,
    /// `rate` 8000), passed to the carrier untouched when it takes the same law at 8 kHz; or,
    /// for a PCM agent, s16le samples at `rate` (as [`Session::play`]). Returns the bytes taken
    /// (whole samples); otherwise as [`Session::play`].
    pub fn play_bytes(&mut self, data: &[u8], rate: u32) -> Result<usize, SessionError> {
        match self.agent_format.g711() {
            Some(_) if rate != crate::audio::CARRIER_RATE => {
                Err(SessionError::InvalidArgument("G.711 agent audio is played at 8000 Hz"))
            }
            Some(_) => self.play_source(PlayInput::G711(data), rate),
            None => Ok(2 * self.play_source(PlayInput::Le(data), rate)?),
        }
    }

    fn play_source(&mut self, input: PlayInput<'_>, rate: u32) -> Result<usize, SessionError> {
        self.check_open()?;
        if !PLAY_RATES.contains(&rate) {
            return Err(SessionError::InvalidArgument(
                "play rate must be 8000, 16000, 22050, 24000, 44100 or 48000 Hz",
            ));
        }
        let len = input.len();
        if len == 0 {
            return Ok(0);
        }
        let (tag, bytes_per_sample) = match input {
            PlayInput::G711(_) => (play_tag::G711, 1),
            PlayInput::Pcm(_) | PlayInput::Le(_) => (play_tag::PCM, 2),
        };
        let reserve = play_reserve(self.max_mark_name);
        let mut taken = 0;
        let mut bytes = [0u8; PLAY_PIECE * 2];
        while taken < len {
            let want = (len - taken).min(PLAY_PIECE);
            let mut room = records::contiguous_room(&self.play, reserve) / bytes_per_sample;
            if room < want && matches!(self.placement, Placement::Inline(_)) {
                // Inline, this thread is the worker: move what the ring holds into the outbound
                // queue first.
                self.pump();
                room = records::contiguous_room(&self.play, reserve) / bytes_per_sample;
            }
            // The ring is full: take the part of this piece that fits, if it is worth a record.
            let n = if room >= want {
                want
            } else if room >= MIN_PARTIAL_PIECE {
                room
            } else {
                break;
            };
            let body: &[u8] = match input {
                PlayInput::Pcm(pcm) => {
                    encode_l16(&pcm[taken..taken + n], &mut bytes);
                    &bytes[..n * 2]
                }
                PlayInput::Le(le) => &le[2 * taken..2 * (taken + n)],
                PlayInput::G711(codes) => &codes[taken..taken + n],
            };
            let header = Header { tag, a: rate, b: body.len() as u32, c: self.barge_seen };
            if !records::write_contiguous(&mut self.play, header, body, reserve) {
                debug_assert!(false, "contiguous_room said it fits");
                break;
            }
            self.play_accepted_us += play_record_us(n as u32, rate);
            taken += n;
            if n < want {
                break;
            }
        }
        if taken < len {
            SessionCounters::bump_shared(&self.shared.counters.play_refused_full);
        }
        if taken == 0 {
            return Err(SessionError::Full);
        }
        self.kick();
        Ok(taken)
    }

    /// Queues encoded agent audio: an Ogg Opus stream given in chunks as it arrives (pages split
    /// anywhere), or one raw Opus packet per call (see [`EncodedAudio`]). It is decoded here, on
    /// the calling thread, to mono PCM at the rate closest to the carrier's that libopus decodes
    /// at (8, 16, 24 or 48 kHz, not above the stream's own), and queued as by [`Session::play`]:
    /// paced, marked, cleared and counted like PCM.
    ///
    /// Returns how many bytes of `data` it took; the caller keeps the rest and retries. Decoded
    /// audio that did not fit the play ring is kept and offered first on the next call, and
    /// until it has all gone in, no new input is taken (`Full`). An empty `data` only offers that
    /// audio: `Ok(0)` once none is left. A raw packet is taken whole or not at all.
    ///
    /// `BadAudio` (counted in `encoded_audio_errors`): the stream or packet is corrupt or not
    /// supported; it was dropped and the next bytes start a new stream. An interrupt drops the
    /// stream too (start the next reply with a new stream); after a barge-in, audio decoded
    /// from input taken before it is dropped, like the PCM queued before it.
    #[cfg(feature = "opus")]
    pub fn play_encoded(&mut self, data: &[u8], codec: EncodedAudio) -> Result<usize, SessionError> {
        self.check_open()?;
        let mut player = self.encoded.take().unwrap_or_default();
        player.cut(self.barge_seen);
        let rate = self.encoded_rate;
        let result = player.play(data, codec, rate, |pcm, rate| self.encoded_sink(pcm, rate));
        self.encoded = Some(player);
        self.encoded_result(result)
    }

    /// The host's encoded input is over (the end of a TTS response): plays what
    /// [`Session::play_encoded`] still holds (`Full` while some waits for room: call again),
    /// then checks the Ogg stream ended on a page boundary (`BadAudio` if it was truncated) and
    /// forgets it, so the next bytes start a new stream.
    #[cfg(feature = "opus")]
    pub fn end_encoded(&mut self) -> Result<(), SessionError> {
        self.check_open()?;
        let Some(mut player) = self.encoded.take() else {
            return Ok(());
        };
        player.cut(self.barge_seen);
        let result = player.end(|pcm, rate| self.encoded_sink(pcm, rate));
        self.encoded = Some(player);
        self.encoded_result(result)
    }

    /// `play` for decoded audio: the samples taken, 0 when the ring is full.
    #[cfg(feature = "opus")]
    fn encoded_sink(&mut self, pcm: &[i16], rate: u32) -> Result<usize, SessionError> {
        match self.play(pcm, rate) {
            Err(SessionError::Full) => Ok(0),
            taken => taken,
        }
    }

    #[cfg(feature = "opus")]
    fn encoded_result<T>(
        &mut self,
        result: Result<T, crate::codec::encoded::PlayError<SessionError>>,
    ) -> Result<T, SessionError> {
        use crate::codec::encoded::PlayError;
        result.map_err(|e| match e {
            PlayError::Full => SessionError::Full,
            PlayError::Bad(why) => {
                SessionCounters::bump_shared(&self.shared.counters.encoded_audio_errors);
                SessionError::BadAudio(why)
            }
            PlayError::InvalidArgument(why) => SessionError::InvalidArgument(why),
            PlayError::Sink(e) => e,
        })
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
        self.interrupt_cuts.push_back((generation, self.next_segment_id.wrapping_sub(1)));
        // Encoded audio taken before the interrupt is cleared with it: its pending PCM and
        // decoders go too, so nothing of that stream plays after.
        #[cfg(feature = "opus")]
        {
            self.encoded = None;
        }
        // After the record: the worker, seeing the new generation, skips to that record.
        self.shared.interrupt_gen.store(generation, Ordering::Release);
        self.kick();
        Ok(())
    }

    /// Begins a segment named `tag` (1 to 63 bytes, no NUL): the agent audio played after this
    /// call belongs to it, until the next `begin_segment`. A barge-in or interrupt ends every
    /// segment; [`Session::segments_at_cut`] then says which one the caller was hearing, how much
    /// of it, and which later ones went unheard.
    ///
    /// `Full` when 32 segments are queued that the caller has not yet got past (the table is
    /// fixed-size; nothing was taken: retry once playout has moved on, or interrupt).
    pub fn begin_segment(&mut self, tag: &str) -> Result<(), SessionError> {
        self.check_open()?;
        if tag.is_empty() || tag.len() > MAX_SEGMENT_TAG_BYTES || tag.contains('\0') {
            return Err(SessionError::InvalidArgument("segment tag must be 1 to 63 bytes, without NUL"));
        }
        self.pump();
        // The retired id first, then the cut count: a cut that retired segments is then seen.
        let retired = self.shared.segments_retired.load(Ordering::Acquire);
        if self.shared.cuts.load(Ordering::Acquire) == self.cuts_seen {
            // No barge-in or interrupt report is pending, so none names the retired segments.
            while self.segments.front().is_some_and(|&(id, _)| id <= retired) {
                self.segments.pop_front();
            }
        }
        let id = self.next_segment_id;
        if id.wrapping_sub(1).wrapping_sub(retired) as usize >= MAX_SEGMENTS {
            return Err(SessionError::Full);
        }
        let header = Header { tag: play_tag::SEGMENT, a: id, b: 0, c: self.barge_seen };
        if !records::write_contiguous(&mut self.play, header, &[], INTERRUPT_RESERVE) {
            return Err(SessionError::Full);
        }
        self.next_segment_id = id.wrapping_add(1);
        self.segments.push_back((id, tag.to_owned()));
        self.kick();
        Ok(())
    }

    /// Agent audio accepted by `play` that the caller has not heard yet, ms: waiting in the play
    /// ring, in the outbound queue, and at the carrier (by the playout model, corrected with
    /// the carrier's echoes where it sends them).
    pub fn queued_ms(&mut self) -> u64 {
        self.pump();
        let now = self.engine.now_us();
        let ring = self.play_accepted_us.saturating_sub(self.shared.play_drained_us.load(Ordering::Acquire));
        let outbound = self.shared.outbound_queued_us.load(Ordering::Acquire);
        let carrier = self.shared.carrier_done_us.load(Ordering::Acquire).saturating_sub(now);
        (ring + outbound + carrier) / 1000
    }

    /// Where the caller's playhead was among the segments when the `BargeIn` or `Interrupted`
    /// event last returned by [`Session::poll_event`] cut the agent off (`None` before any).
    pub fn segments_at_cut(&self) -> Option<&SegmentReport> {
        self.last_cut.as_ref()
    }

    fn mark_name(&mut self, id: u32) -> String {
        self.mark_names.remove(&id).unwrap_or_default()
    }

    /// Turns the worker's position at a cut into tags; `last_id`: the last segment begun before
    /// the cut. Those segments are over: forgotten here.
    fn resolve_cut(&mut self, cut: SegmentCut, last_id: u32) -> SegmentReport {
        self.cuts_seen = self.cuts_seen.wrapping_add(1);
        let mut report = SegmentReport::default();
        let (current, played_ms) = if cut.heard_id != 0 {
            // Every segment before it was heard through.
            while self.segments.front().is_some_and(|&(id, _)| id < cut.heard_id) {
                self.segments.pop_front();
            }
            (Some(cut.heard_id), Some(u64::from(cut.played_ms)))
        } else {
            // Nothing queued was being heard: segments heard through leave the worker only when
            // a later one is heard, and those a cut ended were forgotten with its report, so the
            // oldest one here is the first queued.
            (self.segments.front().map(|&(id, _)| id).filter(|&id| id <= last_id), None)
        };
        while let Some((id, tag)) = self.segments.front().filter(|&&(id, _)| id <= last_id).cloned() {
            self.segments.pop_front();
            if Some(id) == current {
                report.segment = Some(HeardSegment { tag, played_ms });
            } else if current.is_some_and(|c| id > c) {
                report.unheard.push(tag);
            }
        }
        report
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
        let cuts = self.shared.cuts.load(Ordering::Acquire);
        let Some(raw) = self.shared.events.pop() else {
            // Every cut event up to `cuts` was taken or dropped.
            self.cuts_seen = cuts;
            // A host that polls until the queue is empty is taking events (see `read_audio`):
            // stamped once per drain, not per event (a clock read each).
            self.shared.events_polled_us.store(self.engine.now_us(), Ordering::Release);
            self.resume_held();
            // Forward only: the worker publishes at the end of the step that queued its BargeIn,
            // so a poll inside that step loads the generation before it, which this handle may
            // already have taken from the event itself. Going back to it would tag what the host
            // plays in answer to the barge-in as audio from before it, and drop it.
            if published.wrapping_sub(self.barge_seen) as i32 > 0 {
                self.barge_seen = published;
            }
            return None;
        };
        Some(self.resolve(raw))
    }

    fn resolve(&mut self, raw: RawEvent) -> Event {
        match raw {
            RawEvent::Connected => Event::Connected,
            RawEvent::Started(s) => {
                #[cfg(feature = "opus")]
                {
                    self.encoded_rate = s.media_format.sample_rate;
                }
                Event::Started(s)
            }
            RawEvent::SpeechStarted { stream_ms } => Event::SpeechStarted { stream_ms },
            RawEvent::SpeechStopped { stream_ms } => Event::SpeechStopped { stream_ms },
            RawEvent::EndOfTurn { stream_ms, silence_ms, confidence } => {
                Event::EndOfTurn { stream_ms, silence_ms, confidence }
            }
            RawEvent::BargeIn { stream_ms, played_ms, generation, segment, .. } => {
                self.barge_seen = generation;
                // Every segment begun so far was begun before this handle saw the barge-in: the
                // worker drops those it had not taken, so all are cut off.
                let last_id = self.next_segment_id.wrapping_sub(1);
                self.last_cut = Some(self.resolve_cut(segment, last_id));
                Event::BargeIn { stream_ms, played_ms }
            }
            RawEvent::Interrupted { played_ms, generation, segment } => {
                let mut last_id = self.next_segment_id.wrapping_sub(1);
                // Back-to-back interrupts are answered by one event, numbered with the latest.
                if self.interrupt_cuts.iter().any(|&(g, _)| g == generation) {
                    while let Some((g, id)) = self.interrupt_cuts.pop_front() {
                        last_id = id;
                        if g == generation {
                            break;
                        }
                    }
                }
                self.last_cut = Some(self.resolve_cut(segment, last_id));
                Event::Interrupted { played_ms }
            }
            RawEvent::MarkPlayed { id, played_ms } => {
                Event::MarkPlayed { name: self.mark_name(id), played_ms }
            }
            RawEvent::MarkCleared { id } => Event::MarkCleared { name: self.mark_name(id) },
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

    /// Marks the session failed, as a panic in its pipeline would, so that a host can test its
    /// handling of [`SessionError::Failed`]. (The C ABI exports it only from the test library:
    /// trunkline-ffi's `test-hooks` feature.)
    pub fn inject_failure(&self) {
        self.shared.failed.store(true, Ordering::Release);
    }

    /// A snapshot of the session's counters.
    pub fn stats(&self) -> SessionStats {
        self.shared.counters.snapshot()
    }

    /// The call's line quality so far (jitter, loss, an E-model MOS), from its counters: see
    /// [`LineQuality`]. `None` before any caller audio was delivered.
    pub fn line_quality(&self) -> Option<LineQuality> {
        self.stats().line_quality()
    }

    /// Closes the session: the worker drops it at its next pass. Further calls return `Closed`.
    /// The engine's wakeup is signalled, as for output: a host's waiter for this session (an
    /// async event stream, say) looks again and finds it closed.
    pub fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.shared.closed.store(true, Ordering::Release);
            self.engine.open_sessions.fetch_sub(1, Ordering::AcqRel);
            match &mut self.placement {
                Placement::Worker(at) => self.engine.wake(*at),
                Placement::Inline(session) => session.pipeline.end_recording(),
            }
            self.engine.reap();
            self.engine.wakeup.notify();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}
