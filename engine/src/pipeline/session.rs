//! One call's pipeline: a state machine driven from outside, in the sans-IO shape.
//!
//! ```text
//! handle_message ─► dialect ─► decode ─► reorder/gap-fill ─┬► resample to agent rate ─► audio callback
//!                                                          └► VAD ─► events, barge-in
//! play(pcm, rate) ─► resample to carrier rate ─► encode ─► OutboundQueue ─► poll_transmit (paced)
//! ```
//!
//! An agent speaking G.711 (see [`AgentFormat`]) reads codes and plays codes: they pass through
//! untouched when the carrier speaks the same law at 8 kHz, and are converted at the edges
//! otherwise; every stage in between is the same.
//!
//! Time is passed in (`now_us`, monotonic microseconds); the pipeline never reads a clock, starts
//! a thread or does IO. Its outputs are taken from it when the caller asks: carrier messages with
//! [`SessionPipeline::poll_transmit`] (a frame counts as sent when it is polled, so a caller
//! with nowhere to put one simply stops polling), events with [`SessionPipeline::poll_event`],
//! the next deadline with [`SessionPipeline::poll_timeout`], counters with
//! [`SessionPipeline::counters`]. Caller audio, the one output of a size set by the carrier, goes
//! to a callback as it is decoded, so that it is written once, where the caller wants it,
//! rather than buffered here too.
//!
//! The carrier is whatever the [`Dialect`] says: its [`Capabilities`] and the formats its `start`
//! announces. Allocation happens only in [`SessionPipeline::new`] and when `start` is handled
//! (which builds the stages for the stream's formats, among them a resampler for every rate
//! `play` accepts, so no later call allocates).

use crate::alloc_guard;
use crate::audio::{CARRIER_RATE, SAMPLES_PER_MS};
use crate::codec::G711;
use crate::config::{AgentFormat, SessionConfig};
use crate::echo_canceller::EchoCanceller;
use crate::event::RawEvent;
use crate::pipeline::arrivals::ArrivalTrail;
use crate::pipeline::barge_in::{BargeAction, BargeInDetector};
use crate::pipeline::ducking::Ducker;
use crate::pipeline::events::EventQueue;
use crate::pipeline::inbound::{AgentAudio, InboundCounts, InboundOut, InboundPath, push_vad_event};
use crate::pipeline::marks::{MarkEcho, MarkTable};
use crate::pipeline::outbound::{OutboundPath, PLAY_PIECE, PLAY_RATES, PlaySource};
use crate::pipeline::playout::{PlayoutClock, SYNC_MARK_PREFIX, parse_sync_mark, sync_mark_name};
use crate::pipeline::reorder::{Arrival, Delivery, InboundReorder, MAX_TIMESTAMP_MS};
use crate::pipeline::segments::{SegmentCut, SegmentTable};
use crate::pipeline::tap::CallTap;
use crate::protocol::{
    Capabilities, ClearKind, Confirmation, Deframer, Dialect, Framing, Inbound, MarkSaid, MessageKind,
    PayloadBuffer, ProtocolError, StreamStart, Track,
};
use crate::resample::ResampleError;
use crate::stats::SessionStats;
use crate::vad::VadBackend;
use crate::vad::{SpeechDetector, VadError};
use std::borrow::Cow;

/// Rates the agent may read at: the carrier's, and those the resampler converts it up to.
pub const AGENT_RATES: [u32; 4] = [CARRIER_RATE, 16_000, 24_000, 48_000];

/// Bytes reserved for a reply or a mark beyond the media message bound: a mark's name may be
/// escaped to six times its length, plus the message around it.
const CONTROL_MESSAGE_SLACK: usize = 1024;

/// The least `outbound_buffer_ms`: one play piece at 8 kHz (256 ms) and its resampler's margin,
/// in whole 10 ms, the figure the settings document.
const MIN_OUTBOUND_BUFFER_MS: u32 = 260;
const _: () = assert!(MIN_OUTBOUND_BUFFER_MS as u64 * SAMPLES_PER_MS >= (PLAY_PIECE + 16) as u64);

/// How long a mark cleared on a carrier that echoes cleared marks waits for its echo. Carriers
/// echo a clear's marks at once, so a second covers any network delay; past it the mark is
/// reported cleared without one, so a carrier that does not echo them holds no mark slot.
const CLEARED_ECHO_GRACE_US: u64 = 1_000_000;

/// The most agent audio (µs) the pacer keeps at the carrier: the session's `lead_ms`, less if the
/// carrier plays what it gets at once, and never under two frames, so that a frame can be sent
/// while the one before it plays.
fn lead_us(lead_ms: u32, caps: Capabilities) -> u64 {
    let lead_ms = lead_ms.min(caps.max_lead_ms.unwrap_or(u32::MAX)).max(caps.frame_ms.saturating_mul(2));
    u64::from(lead_ms) * 1000
}

/// Whether a parsed message holds memory its parse allocated (freed when it is dropped).
fn owns_memory(message: &Inbound<'_>) -> bool {
    matches!(message, Inbound::Start(_) | Inbound::Mark { name: Cow::Owned(_), .. })
}

/// Why a session could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    /// An agent or play rate the engine does not convert.
    #[error(transparent)]
    Rate(#[from] ResampleError),
    /// Bad VAD settings.
    #[error(transparent)]
    Vad(#[from] VadError),
    /// Another bad setting.
    #[error("invalid session setting: {0}")]
    Invalid(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    AwaitingStart,
    Streaming,
    Stopped,
}

/// The settings the stages built at `start` need.
#[derive(Debug, Clone, Copy)]
struct StartSettings {
    agent_rate: u32,
    agent_format: AgentFormat,
    /// The session's `lead_ms`, bounded again by the capabilities the dialect declares at start.
    lead_ms: u32,
    outbound_buffer_ms: u32,
    max_pending_marks: usize,
    max_mark_name_bytes: usize,
}

/// What goes to the carrier next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Reply,
    Clear,
    SyncMark,
    Mark,
    Frame,
}

/// One call's complete media pipeline.
pub struct SessionPipeline {
    dialect: Box<dyn Dialect>,
    caps: Capabilities,
    settings: StartSettings,
    payload: PayloadBuffer,
    max_message_bytes: usize,
    /// The largest message whoever takes this pipeline's messages can hold
    /// ([`Self::limit_outbound_messages`]).
    max_outbound_message: usize,
    /// For [`Framing::Stream`] dialects: messages reassembled from the byte stream.
    deframer: Option<Deframer>,
    state: StreamState,
    reorder: InboundReorder,
    /// Built at `start`; `None` when the caller's audio format is not one the engine converts
    /// (each media message is then refused).
    inbound: Option<InboundPath>,
    inbound_counts: InboundCounts,
    vad: SpeechDetector,
    barge_in: BargeInDetector,
    /// Turns the agent down while the caller may be interrupting.
    ducker: Ducker,
    /// When the caller's delivered audio arrived: barge-in reaction is timed from its onset's.
    arrivals: ArrivalTrail,
    /// Built at `start`.
    outbound: Option<OutboundPath>,
    playout: PlayoutClock,
    marks: MarkTable,
    /// Host-named segments of the agent audio, for the played position per segment.
    segments: SegmentTable,
    /// The silence padded into frames before the current utterance (`SegmentTable`'s total):
    /// the padding since is no agent audio, and played positions leave it out.
    utterance_padding_from: u64,
    /// The message being handed out by `poll_transmit`.
    message: Vec<u8>,
    /// A handshake reply the dialect asked for, waiting to be polled.
    reply: Vec<u8>,
    reply_kind: Option<MessageKind>,
    lead_us: u64,
    clear_pending: bool,
    sync_pending: bool,
    /// The carrier queues a mark ahead of the next audio ([`Dialect::marks_wait_for_audio`]),
    /// and a mark was sent with no audio after it yet: a frame of silence follows it when the
    /// carrier is about to run dry.
    marks_wait_for_audio: bool,
    mark_awaits_audio: bool,
    /// `Stopped` waits for [`Self::release_stopped`] (see [`Self::hold_stopped_event`]).
    hold_stopped: bool,
    /// The stream has ended and its `Stopped` is held back.
    stopped_held: bool,
    /// Bumped by every barge-in. Agent audio and marks the host queued before it had seen the
    /// latest barge-in carry an older generation and are dropped as stale.
    barge_generation: u32,
    /// Record the agent's audio as played for the speech detector's echo gate.
    echo_aware: bool,
    /// The caller's audio with the agent's echo removed (`SessionConfig::echo_reduction`), fed
    /// the same played audio as the echo gate.
    echo_canceller: Option<Box<EchoCanceller>>,
    stats: SessionStats,
    events: EventQueue,
    /// A recording of the call, if one was asked for.
    tap: Option<Box<dyn CallTap>>,
}

impl SessionPipeline {
    /// Checks `config` for a carrier speaking `dialect` as [`SessionPipeline::new`] does, without
    /// building anything.
    pub fn check(config: &SessionConfig, dialect: &dyn Dialect) -> Result<(), PipelineError> {
        if !AGENT_RATES.contains(&config.agent_rate) {
            return Err(ResampleError::UnsupportedRate { from: CARRIER_RATE, to: config.agent_rate }.into());
        }
        if config.agent_format.g711().is_some() && config.agent_rate != CARRIER_RATE {
            return Err(PipelineError::Invalid("a G.711 agent_format (ulaw, alaw) needs agent_rate 8000"));
        }
        if !PLAY_RATES.contains(&config.play_rate) {
            return Err(ResampleError::UnsupportedRate { from: config.play_rate, to: CARRIER_RATE }.into());
        }
        if config.max_payload_bytes == 0 || config.max_message_bytes == 0 {
            return Err(PipelineError::Invalid("message and payload limits must be positive"));
        }
        if config.barge_in.rejoin_within_ms > crate::config::MAX_REJOIN_WITHIN_MS {
            return Err(PipelineError::Invalid("barge_in.rejoin_within_ms must be at most 2000"));
        }
        if config.lead_ms < 40 {
            return Err(PipelineError::Invalid("lead_ms must be at least 40 (two frames)"));
        }
        if config.outbound_buffer_ms < MIN_OUTBOUND_BUFFER_MS {
            return Err(PipelineError::Invalid("outbound_buffer_ms must hold one play piece (at least 260)"));
        }
        // The echo's delay and the played audio's placement come from the spectral detector's
        // echo gate; without it the canceller would never hear the agent and filter nothing.
        if config.echo_reduction && !(config.vad.echo_aware && config.vad.backend == VadBackend::Spectral) {
            return Err(PipelineError::Invalid(
                "echo_reduction needs vad.echo_aware with the spectral backend (the echo's delay estimate)",
            ));
        }
        config.vad.validate()?;
        if dialect.capabilities().frame_ms == 0 {
            return Err(PipelineError::Invalid("the dialect's frames must be at least 1 ms"));
        }
        Ok(())
    }

    /// Builds a pipeline for a carrier speaking `dialect` (this is where its memory is allocated,
    /// with the rest at `start`).
    pub fn new(config: &SessionConfig, dialect: Box<dyn Dialect>) -> Result<Self, PipelineError> {
        Self::check(config, dialect.as_ref())?;
        let echo_canceller = config.echo_reduction.then(EchoCanceller::new);
        let caps = dialect.capabilities();
        let deframer = match caps.framing {
            Framing::Messages => None,
            Framing::Stream { header_len } => Some(Deframer::new(header_len, config.max_message_bytes)),
        };
        let marks_wait_for_audio = dialect.marks_wait_for_audio();
        Ok(Self {
            dialect,
            caps,
            settings: StartSettings {
                agent_rate: config.agent_rate,
                agent_format: config.agent_format,
                lead_ms: config.lead_ms,
                outbound_buffer_ms: config.outbound_buffer_ms,
                max_pending_marks: config.max_pending_marks,
                max_mark_name_bytes: config.max_mark_name_bytes,
            },
            payload: PayloadBuffer::with_limit(config.max_payload_bytes),
            max_message_bytes: config.max_message_bytes,
            max_outbound_message: usize::MAX,
            deframer,
            state: StreamState::AwaitingStart,
            reorder: InboundReorder::new(config.reorder_window_ms, config.max_gap_fill_ms),
            inbound: None,
            inbound_counts: InboundCounts::default(),
            vad: SpeechDetector::new(&config.vad)?,
            barge_in: BargeInDetector::new(&config.barge_in)
                .holding_after_restore(config.vad.echo_aware && config.vad.backend == VadBackend::Spectral),
            ducker: Ducker::new(if config.barge_in.enabled { config.barge_in.duck_db } else { 0 }),
            arrivals: ArrivalTrail::new(),
            outbound: None,
            playout: PlayoutClock::new(
                if matches!(caps.confirmation, Confirmation::Echo { .. }) {
                    config.sync_mark_interval_ms
                } else {
                    0
                },
                config.utterance_gap_ms,
            ),
            marks: MarkTable::new(config.max_pending_marks, config.max_mark_name_bytes),
            segments: SegmentTable::new(),
            utterance_padding_from: 0,
            message: Vec::new(),
            reply: Vec::with_capacity(256),
            reply_kind: None,
            lead_us: lead_us(config.lead_ms, caps),
            clear_pending: false,
            sync_pending: false,
            marks_wait_for_audio,
            mark_awaits_audio: false,
            hold_stopped: false,
            stopped_held: false,
            barge_generation: 0,
            echo_aware: config.vad.echo_aware,
            echo_canceller,
            stats: SessionStats::default(),
            // Room for every outstanding mark cleared at once (a mark is queued or sent, never
            // both), and the handful of events around that: the most one call produces.
            events: EventQueue::new(config.max_pending_marks + 16),
            tap: None,
        })
    }

    /// Hands what the call carries to `tap` (a recording) from now on. Call it before the stream
    /// starts.
    pub fn set_tap(&mut self, tap: Box<dyn CallTap>) {
        self.tap = Some(tap);
    }

    /// The session is closing: its recording ends here (what the caller's timeline has reached
    /// is kept; agent audio beyond it was not heard yet).
    pub fn end_recording(&mut self) {
        if let Some(tap) = self.tap.as_mut() {
            tap.stopped();
        }
    }

    /// What the dialect declared (its frame length and lead bound as of the stream's start).
    pub fn capabilities(&self) -> Capabilities {
        self.caps
    }

    /// Stream time delivered so far, ms.
    pub fn stream_ms(&self) -> u64 {
        self.reorder.position() / self.reorder.samples_per_ms()
    }

    /// The barge-in generation: agent audio and marks queued by a host that had not yet seen
    /// barge-in number `n` carry a generation below `n` and are stale.
    pub fn barge_generation(&self) -> u32 {
        self.barge_generation
    }

    /// The counters, as of now. Plain values: the runtime publishes them.
    pub fn counters(&self) -> SessionStats {
        let mut stats = self.stats;
        stats.inbound_samples = self.inbound_counts.samples;
        stats.speech_segments = self.inbound_counts.speech_segments;
        stats.agent_samples_dropped = self.inbound_counts.agent_samples_dropped;
        stats.events_dropped = self.events.dropped;
        stats.jitter_us = self.reorder.jitter_us();
        stats.recording_dropped_ms = self.tap.as_ref().map_or(0, |t| t.dropped_ms());
        let held = self.vad.held_starts();
        (stats.speech_starts_held, stats.speech_starts_dropped_as_echo) =
            (u64::from(held.held), u64::from(held.dropped));
        stats
    }

    /// Whether the stream has started (or already ended): agent audio and marks are taken only
    /// then, once the carrier's format is known. Before, they wait where the caller keeps them.
    pub fn accepts_play(&self) -> bool {
        self.state != StreamState::AwaitingStart
    }

    /// Whether `samples` of agent audio at `rate` fit in the outbound queue now (never before
    /// the stream has started: the queue is built for the carrier's format then).
    pub fn play_fits(&self, samples: usize, rate: u32) -> bool {
        match self.state {
            StreamState::Stopped => true,
            _ => self.outbound.as_ref().is_some_and(|o| o.fits(samples, rate)),
        }
    }

    /// Agent audio is playing at the carrier or waiting here.
    pub fn agent_active(&self, now_us: u64) -> bool {
        self.outbound.as_ref().is_some_and(|o| o.queue.audio_len() > 0) || self.playout.is_playing(now_us)
    }

    /// When the pipeline next has timed work (a frame due, a gap timing out, a mark played by
    /// the engine's clock), µs. Work due now is taken by the polls.
    pub fn poll_timeout(&self) -> Option<u64> {
        let pace = match &self.outbound {
            Some(o) if self.state == StreamState::Streaming && o.queue.audio_len() > 0 => {
                if o.queue.audio_len() >= o.queue.frame_bytes() || o.queue.mark_within_frame() {
                    // A full frame goes out once it fits under the lead.
                    Some((self.playout.carrier_end_us() + o.frame_us).saturating_sub(self.lead_us))
                } else {
                    // A partial tail waits until the carrier is about to run dry.
                    Some(self.playout.carrier_end_us().saturating_sub(o.starving_us()))
                }
            }
            _ => None,
        };
        let marks = match self.caps.confirmation {
            Confirmation::None => self.marks.next_due_us(),
            Confirmation::Echo { .. } => self.marks.next_cleared_expiry_us(CLEARED_ECHO_GRACE_US),
        };
        [pace, self.reorder.deadline_us(), marks].into_iter().flatten().min()
    }

    /// Whether an event waits to be polled.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// The next event, if any. Poll after every call until `None`.
    pub fn poll_event(&mut self) -> Option<RawEvent> {
        self.events.pop()
    }

    /// The most caller audio (samples at the agent rate) processing one message of
    /// `message_len` bytes can deliver: its payload (a sample per byte at most for G.711 and
    /// L16, the most one payload decodes to for G.722 and Opus), the frames held out of order that
    /// it may release, and the silence of the waited-for gap before them. A gap longer than the reorder window, filled at once, is not
    /// included: it comes from audio the carrier lost, not from audio it delivers late.
    pub fn agent_room_needed(&self, message_len: usize) -> usize {
        self.agent_room(message_len, true)
    }

    /// [`Self::agent_room_needed`], with or without the silence of a gap within the window.
    fn agent_room(&self, message_len: usize, with_window: bool) -> usize {
        let Some(inbound) = &self.inbound else { return 0 };
        // A byte stream's chunk may hold many messages, each with a payload up to the limit.
        let payload =
            if self.deframer.is_some() { message_len } else { message_len.min(self.payload.limit()) };
        let window = if with_window { self.reorder.window_samples() } else { 0 };
        let released = self.reorder.held_samples() + window;
        inbound.max_agent_len(inbound.max_payload_samples(payload) + released)
    }

    /// Lets the silence filling gaps in the caller's audio have only the room the host's audio
    /// ring has (`vacant` agent-rate samples) beyond the audio the next call may deliver around
    /// it (a message of `message_len` bytes, 0 for a timeout, and the frames held), until the next
    /// call (`None`, the default: no limit). A gap longer than that ring would otherwise fill it
    /// with silence and push out the caller's audio after the gap. The silence left out counts in
    /// `agent_samples_dropped`. (A gap within the reorder window always fits: the room a message
    /// waits for, [`Self::agent_room_needed`], counts it.)
    pub fn limit_gap_fill(&mut self, vacant: Option<usize>, message_len: usize) {
        let room = vacant.map(|v| v.saturating_sub(self.agent_room(message_len, false)) as u64);
        if let Some(inbound) = &mut self.inbound {
            inbound.limit_gap_fill(room);
        }
    }

    /// Processes what the carrier sent: one message, or for a [`Framing::Stream`] dialect a
    /// chunk of its byte stream. It arrived at `arrived_us` (it may have waited while the host
    /// was behind): its arrival times the jitter estimate, the wait for out-of-order frames and
    /// mark echoes (the carrier's playout delay). Caller audio goes to `audio`.
    pub fn handle_message_agent(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        arrived_us: u64,
        now_us: u64,
        audio: &mut dyn FnMut(AgentAudio<'_>),
    ) {
        let arrived_us = arrived_us.min(now_us);
        let Some(mut deframer) = self.deframer.take() else {
            self.handle_one(message, kind, arrived_us, audio);
            self.check_barge_in(now_us);
            return;
        };
        let mut input = message;
        while let Some(next) = deframer.next(&mut input, &*self.dialect) {
            match next {
                Ok(message) => self.handle_one(message, kind, arrived_us, audio),
                Err(error) => self.refuse(error),
            }
        }
        self.deframer = Some(deframer);
        self.check_barge_in(now_us);
    }

    /// Starts the stream without its carrier's `start` message, from what the host learned of it
    /// elsewhere (a framework that read the carrier's `start` itself): as if the dialect had
    /// parsed `start`, so the dialect learns the ids it echoes, the format stages are built and
    /// `Started` is reported. A `start` pushed afterwards is refused as a duplicate. Allocates:
    /// call it before the session reaches a worker.
    pub fn start_with(&mut self, start: StreamStart) -> Result<(), ProtocolError> {
        self.start_stream(Box::new(start))
    }

    fn start_stream(&mut self, start: Box<StreamStart>) -> Result<(), ProtocolError> {
        if self.state != StreamState::AwaitingStart {
            return Err(ProtocolError::DuplicateStart);
        }
        let out_format = self.dialect.on_start(&start)?;
        // A dialect whose frame length depends on the stream's format (Exotel's) knows it
        // now. Only the frame and the lead bound may change: the framing, confirmation
        // and clear the session was built for stay as declared.
        let declared = self.dialect.capabilities();
        let caps =
            Capabilities { frame_ms: declared.frame_ms, max_lead_ms: declared.max_lead_ms, ..self.caps };
        let s = self.settings;
        let outbound = OutboundPath::new(
            out_format,
            caps.frame_ms,
            s.outbound_buffer_ms,
            s.max_pending_marks,
            caps.confirmation != Confirmation::None,
        )?;
        self.caps = caps;
        self.lead_us = lead_us(s.lead_ms, caps);
        self.playout.set_rate(outbound.rate());
        let media_len = self.dialect.max_media_message_len(outbound.max_wire_len());
        self.message = Vec::with_capacity(media_len.max(6 * s.max_mark_name_bytes) + CONTROL_MESSAGE_SLACK);
        // A stream whose messages could never be taken would never send anything: refused, as
        // its messages are over the size its host's side was configured for (the stream's
        // format and ids, which set their size, are known only now).
        if self.max_transmit_len() > self.max_outbound_message {
            return Err(ProtocolError::MessageTooLarge);
        }
        // The canceller works at 8 kHz, its reference the agent's frames brought down to it: at
        // a rate that is not a multiple of 8 kHz (none a carrier is sent at), the caller's audio
        // is delivered as received, and counted.
        if !outbound.has_reference() && self.echo_canceller.take().is_some() {
            self.stats.echo_reduction_unavailable += 1;
        }
        self.outbound = Some(outbound);
        self.state = StreamState::Streaming;
        let echo_reduced = self.echo_canceller.is_some();
        let inbound = InboundPath::new(start.media_format, s.agent_rate, s.agent_format, echo_reduced);
        if let Ok(inbound) = &inbound {
            // The carrier's rate, or the one its G.722 or Opus is decoded at.
            self.reorder.set_rate(inbound.rate());
        }
        self.inbound = inbound.as_ref().ok().map(|_| ()).and(inbound.ok());
        // The recording's caller track runs at the rate the caller's audio is delivered at, which
        // is not the announced one for Opus (decoded at most at 24 kHz) or G.722 (always 16 kHz).
        if let (Some(tap), Some(inbound)) = (self.tap.as_mut(), self.inbound.as_ref()) {
            tap.started(inbound.rate(), out_format.sample_rate, out_format.encoding);
        }
        let supported = self.inbound.is_some();
        self.events.push(RawEvent::Started(start));
        if !supported {
            return Err(ProtocolError::UnsupportedFormat);
        }
        Ok(())
    }

    /// [`Self::handle_message_agent`] with the caller's audio as PCM (G.711 decoded for it).
    pub fn handle_message(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        arrived_us: u64,
        now_us: u64,
        audio: &mut dyn FnMut(&[i16]),
    ) {
        let law = self.settings.agent_format.g711();
        self.handle_message_agent(message, kind, arrived_us, now_us, &mut |a| as_pcm(a, law, audio));
    }

    /// [`Self::handle_transport_closed_agent`] with the caller's audio as PCM.
    pub fn handle_transport_closed(&mut self, now_us: u64, audio: &mut dyn FnMut(&[i16])) {
        let law = self.settings.agent_format.g711();
        self.handle_transport_closed_agent(now_us, &mut |a| as_pcm(a, law, audio));
    }

    /// [`Self::handle_timeout_agent`] with the caller's audio as PCM.
    pub fn handle_timeout(&mut self, now_us: u64, gaps_due: bool, audio: &mut dyn FnMut(&[i16])) {
        let law = self.settings.agent_format.g711();
        self.handle_timeout_agent(now_us, gaps_due, &mut |a| as_pcm(a, law, audio));
    }

    /// The carrier's connection closed: a stream not yet ended by the carrier ends now, as with
    /// its stop message (a carrier may send none). Before `start`, the host still learns the
    /// call is over.
    pub fn handle_transport_closed_agent(&mut self, now_us: u64, audio: &mut dyn FnMut(AgentAudio<'_>)) {
        match self.state {
            StreamState::Streaming => self.stop(now_us, audio),
            StreamState::AwaitingStart => {
                self.state = StreamState::Stopped;
                self.push_stopped();
            }
            StreamState::Stopped => {}
        }
    }

    fn handle_one(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        now_us: u64,
        audio: &mut dyn FnMut(AgentAudio<'_>),
    ) {
        if let Err(error) = self.parse_and_handle(message, kind, now_us, audio) {
            self.refuse(error);
        } else {
            self.stats.messages_in += 1;
        }
    }

    /// Counts and reports a message dropped as `error`.
    fn refuse(&mut self, error: ProtocolError) {
        self.stats.messages_in += 1;
        self.stats.protocol_errors += 1;
        self.events.push(RawEvent::ProtocolError { error });
    }

    fn parse_and_handle(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        now_us: u64,
        audio: &mut dyn FnMut(AgentAudio<'_>),
    ) -> Result<(), ProtocolError> {
        if message.len() > self.max_message_bytes {
            return Err(ProtocolError::MessageTooLarge);
        }
        // Parsing may allocate by design (see `alloc_guard`): a `start` owns its stream's
        // identity, an escaped string is unescaped into a copy, a rejected message's JSON error
        // is boxed. What a parse allocated is used and freed while handling its message.
        let parsed = alloc_guard::permit(|| self.dialect.parse(message, kind, &mut self.payload));
        if self.reply_kind.is_none() {
            self.reply_kind = alloc_guard::permit(|| self.dialect.poll_reply(&mut self.reply));
        }
        let parsed = parsed?;
        if owns_memory(&parsed) {
            return alloc_guard::permit(|| self.handle_parsed(parsed, now_us, audio));
        }
        self.handle_parsed(parsed, now_us, audio)
    }

    fn handle_parsed(
        &mut self,
        parsed: Inbound<'_>,
        now_us: u64,
        audio: &mut dyn FnMut(AgentAudio<'_>),
    ) -> Result<(), ProtocolError> {
        if self.state == StreamState::Stopped {
            return Err(ProtocolError::AfterStop);
        }
        match parsed {
            Inbound::Connected => self.events.push(RawEvent::Connected),
            Inbound::Notice => {}
            Inbound::Start(start) => self.start_stream(start)?,
            Inbound::Media(frame) => {
                if self.state == StreamState::AwaitingStart {
                    return Err(ProtocolError::MediaBeforeStart);
                }
                if frame.track == Track::Outbound {
                    self.stats.media_outbound_track_ignored += 1;
                    return Ok(());
                }
                if frame.timestamp_ms > MAX_TIMESTAMP_MS {
                    return Err(ProtocolError::TimestampJump);
                }
                let inbound = self.inbound.as_mut().ok_or(ProtocolError::UnsupportedFormat)?;
                if self.payload.as_slice().is_empty() {
                    // No audio to place: a broken carrier or proxy, reported rather than taken as
                    // a zero-length frame (which would still move the reorder buffer's timeline).
                    return Err(ProtocolError::WrongType("media.payload"));
                }
                // Without timestamps the stream is taken in arrival order.
                let timestamp_ms =
                    if self.caps.timestamps { frame.timestamp_ms } else { self.reorder.expected_ms() };
                let mut out = InboundOut {
                    vad: &mut self.vad,
                    events: &mut self.events,
                    counts: &mut self.inbound_counts,
                    echo: self.echo_canceller.as_deref_mut(),
                    audio,
                };
                let (tap, reorder, stats) = (&mut self.tap, &mut self.reorder, &mut self.stats);
                // G.711 and L16 are decoded as they are delivered or held, a piece at a time (no
                // payload-sized buffer); G.722 and Opus once, into their decoder's.
                let arrival = inbound.with_frame_audio(self.payload.as_slice(), |frame_audio, inbound| {
                    stats.media_frames_in += 1;
                    reorder.push_frame_coded(
                        frame.sequence,
                        timestamp_ms,
                        frame_audio,
                        now_us,
                        stats,
                        &mut |d, g711| {
                            tap_caller(tap, &d);
                            inbound.deliver(d, g711, &mut out)
                        },
                    )
                })?;
                // `now_us` is the message's arrival here (see `handle_message`).
                self.arrivals.record(self.reorder.position(), now_us);
                if arrival == Arrival::Jump {
                    // Heard as a splice by the inbound path (see `InboundPath::deliver`).
                    return Err(ProtocolError::TimestampJump);
                }
            }
            Inbound::Dtmf { digit, duration_ms, .. } => {
                if self.state == StreamState::AwaitingStart {
                    return Err(ProtocolError::MediaBeforeStart);
                }
                self.stats.dtmf_digits += 1;
                self.events.push(RawEvent::Dtmf { digit, stream_ms: self.stream_ms(), duration_ms });
            }
            Inbound::Mark { name, said, .. } => self.on_mark_echo(&name, said, now_us)?,
            Inbound::Stop { .. } => self.stop(now_us, audio),
        }
        Ok(())
    }

    fn on_mark_echo(&mut self, name: &str, said: MarkSaid, now_us: u64) -> Result<(), ProtocolError> {
        if let Some(n) = parse_sync_mark(name) {
            // A hidden sync mark: only a genuine echo (of one sent and not yet echoed) counts,
            // and only one of audio that played measures the carrier's delay.
            return if self.playout.sync_mark_echoed(n, now_us, said != MarkSaid::Cleared) {
                Ok(())
            } else {
                Err(ProtocolError::UnknownMark)
            };
        }
        let Self { marks, stats, events, .. } = self;
        let echo = marks.echoed(name, said, |id| {
            stats.marks_cleared += 1;
            stats.cleared_marks_unechoed += 1;
            events.push(RawEvent::MarkCleared { id });
        });
        match echo.ok_or(ProtocolError::UnknownMark)? {
            MarkEcho::Played { id, utterance_pos } => {
                self.stats.marks_played += 1;
                let played_ms = utterance_pos / self.playout.samples_per_ms();
                self.events.push(RawEvent::MarkPlayed { id, played_ms });
            }
            MarkEcho::Cleared { id } => self.mark_cleared(id),
        }
        Ok(())
    }

    fn mark_cleared(&mut self, id: u32) {
        self.stats.marks_cleared += 1;
        self.events.push(RawEvent::MarkCleared { id });
    }

    fn stop(&mut self, now_us: u64, audio: &mut dyn FnMut(AgentAudio<'_>)) {
        if let Some(inbound) = self.inbound.as_mut() {
            let mut out = InboundOut {
                vad: &mut self.vad,
                events: &mut self.events,
                counts: &mut self.inbound_counts,
                echo: self.echo_canceller.as_deref_mut(),
                audio,
            };
            let tap = &mut self.tap;
            self.reorder.flush_coded(&mut self.stats, &mut |d, g711| {
                tap_caller(tap, &d);
                inbound.deliver(d, g711, &mut out)
            });
        }
        // A start still held back is speech no echo was confirmed in: it is reported, then
        // stopped with the stream. The call's end ends the caller's turn too: a host answering
        // on `EndOfTurn` gets one for every turn, as for every `SpeechStopped`.
        let speaking = self.vad.is_speaking().then(|| self.stream_ms());
        let (events, counts) = (&mut self.events, &mut self.inbound_counts);
        self.vad.end_under_way(speaking, &mut |e| push_vad_event(e, events, counts));
        self.vad.reset();
        // Marks the engine's clock says were heard are reported played; the rest never will be.
        self.resolve_due_marks(now_us);
        // The call is over: nothing queued will be heard.
        self.drop_queued();
        let Self { marks, stats, events, .. } = self;
        marks.drain(|id| {
            stats.marks_cleared += 1;
            events.push(RawEvent::MarkCleared { id });
        });
        let heard_to = self.reorder.position();
        if let Some(tap) = self.tap.as_mut() {
            tap.agent_cut(heard_to);
            tap.stopped();
        }
        self.playout.clear(now_us);
        self.segments.clear(true);
        self.clear_pending = false;
        self.sync_pending = false;
        self.state = StreamState::Stopped;
        self.push_stopped();
    }

    /// `Stopped` ends the call's events, unless held back (see [`Self::hold_stopped_event`]).
    fn push_stopped(&mut self) {
        if self.hold_stopped {
            self.stopped_held = true;
        } else {
            self.events.push(RawEvent::Stopped);
        }
    }

    /// From now on, when the stream ends, `Stopped` waits for [`Self::release_stopped`]. For a
    /// caller that holds the host's audio and marks in a queue of its own before they reach
    /// the pipeline (a threaded session's play ring): it hands in what the host queued before
    /// the end, which the ended stream resolves (the audio flushed, the marks cleared), then
    /// releases `Stopped`, so that it stays the call's last event.
    pub(crate) fn hold_stopped_event(&mut self) {
        self.hold_stopped = true;
    }

    /// Whether the stream has ended with its `Stopped` held back.
    pub(crate) fn stopped_held(&self) -> bool {
        self.stopped_held
    }

    /// Queues the `Stopped` held back, if any.
    pub(crate) fn release_stopped(&mut self) {
        if std::mem::take(&mut self.stopped_held) {
            self.events.push(RawEvent::Stopped);
        }
    }

    /// Queues agent audio at `rate` Hz. Takes all of `pcm` or nothing: returns false, taking
    /// nothing, when the outbound queue has no room for it yet (or the stream has not started).
    pub fn play(&mut self, pcm: &[i16], rate: u32) -> Result<bool, ResampleError> {
        self.play_samples(PlaySource::Pcm(pcm), rate)
    }

    /// [`Self::play`] for 8 kHz G.711 codes in `law`: passed to the carrier untouched when it
    /// takes the same law at 8 kHz, converted otherwise.
    pub fn play_g711(&mut self, codes: &[u8], law: G711) -> Result<bool, ResampleError> {
        self.play_samples(PlaySource::G711(codes, law), CARRIER_RATE)
    }

    /// The agent's audio format.
    pub fn agent_format(&self) -> AgentFormat {
        self.settings.agent_format
    }

    /// [`Self::play`] for audio given as s16le bytes (as the host's play ring holds it).
    pub fn play_le_bytes(&mut self, bytes: &[u8], rate: u32) -> Result<bool, ResampleError> {
        self.play_samples(PlaySource::Le(bytes), rate)
    }

    fn play_samples(&mut self, source: PlaySource<'_>, rate: u32) -> Result<bool, ResampleError> {
        let len = source.len();
        if self.state == StreamState::Stopped {
            // The call is over: nobody will hear it.
            self.stats.flushed_samples += len as u64;
            return Ok(true);
        }
        let Some(outbound) = self.outbound.as_mut() else { return Ok(false) };
        let unsupported = ResampleError::UnsupportedRate { from: rate, to: outbound.rate() };
        match outbound.push(source, rate) {
            Err(()) => Err(unsupported),
            Ok(None) => Ok(false),
            Ok(Some(dropped)) => {
                self.stats.flushed_samples += dropped;
                self.stats.play_samples_in += len as u64;
                Ok(true)
            }
        }
    }

    /// Places host mark `id` named `name` after the audio queued so far.
    pub fn mark(&mut self, id: u32, name: &[u8]) {
        let placed = self.state != StreamState::Stopped
            && !name.starts_with(SYNC_MARK_PREFIX.as_bytes())
            && self.marks.insert(id, name);
        if !placed {
            // The host handle validates names and counts outstanding marks, so this only
            // happens if events were dropped; the mark is reported rather than lost silently.
            self.mark_cleared(id);
            return;
        }
        let queued = match self.outbound.as_mut() {
            Some(o) => o.queue.push_mark(id),
            // Before the stream starts (see `accepts_play`): reported, not lost.
            None => false,
        };
        if !queued {
            self.marks.drop_queued(id);
            self.mark_cleared(id);
        }
    }

    /// The host interrupts the agent: drop queued audio, clear the carrier, report the position.
    pub fn interrupt(&mut self, now_us: u64) {
        self.interrupt_numbered(now_us, 0);
    }

    /// [`Self::interrupt`] for the host's interrupt number `generation` (echoed in the event,
    /// so the host knows which of its segments the interrupt cut off).
    pub fn interrupt_numbered(&mut self, now_us: u64, generation: u32) {
        self.stats.interrupts += 1;
        let played_ms = self.utterance_played_ms(now_us);
        let segment = self.segment_position(now_us);
        self.events.push(RawEvent::Interrupted { played_ms, generation, segment });
        self.flush_agent_audio(now_us);
    }

    /// Segment `id` begins here: the agent audio queued after it is its own. Work is limited to
    /// the fixed segment table.
    pub fn begin_segment(&mut self, id: u32, now_us: u64) {
        let Some(outbound) = self.outbound.as_ref().filter(|_| self.state == StreamState::Streaming) else {
            // Nothing after it will play (the call is over).
            self.segments.retire(id);
            return;
        };
        let pos = outbound.queue.end_pos() / outbound.bytes_per_sample() as u64;
        self.segments.retire_heard(self.played_pos(now_us));
        self.segments.begin(id, pos);
    }

    /// Segment `id` will never play: it was queued before a barge-in or interrupt its host had
    /// not seen.
    pub fn drop_segment(&mut self, id: u32) {
        self.segments.retire(id);
    }

    /// Every segment id up to this one is done with: heard through, cut off, or dropped.
    pub fn segments_retired_through(&self) -> u32 {
        self.segments.retired_through()
    }

    /// Agent audio in the outbound queue, µs.
    pub fn queued_outbound_us(&self) -> u64 {
        self.outbound.as_ref().map_or(0, |o| {
            (o.queue.audio_len() / o.bytes_per_sample()) as u64 * 1000 / self.playout.samples_per_ms()
        })
    }

    /// When (engine time, µs) the carrier will have played everything sent to it, by the
    /// corrected playout model; 0 when it holds nothing sent since its last clear.
    pub fn carrier_done_us(&self) -> u64 {
        if self.segments.sent_since_clear() == 0 {
            0
        } else {
            self.playout.carrier_end_us() + self.playout.lag_us()
        }
    }

    /// The agent audio of the current utterance the caller has heard by `now_us`, ms: the
    /// playout model's position less the silence padded into frames before it (a frame cut short
    /// at a mark, or sent partial to a starving carrier), so that it is an offset into the audio
    /// the host played.
    fn utterance_played_ms(&self, now_us: u64) -> u64 {
        let played = self.playout.played_samples(now_us);
        played.saturating_sub(self.utterance_padding(Some(self.played_pos(now_us))))
            / self.playout.samples_per_ms()
    }

    /// Samples of silence padded into the current utterance's frames before sent position
    /// `before` (`None`: all of it, up to what was sent last).
    fn utterance_padding(&self, before: Option<u64>) -> u64 {
        let padding = before.map_or(self.segments.padding_total(), |pos| self.segments.padding_before(pos));
        padding.saturating_sub(self.utterance_padding_from)
    }

    /// The sent-stream position (samples) the caller has heard by `now_us`.
    fn played_pos(&self, now_us: u64) -> u64 {
        self.segments.played_pos(self.playout.unplayed_samples(now_us))
    }

    /// Where the caller's playhead is among the segments at `now_us` (played in ms).
    fn segment_position(&mut self, now_us: u64) -> SegmentCut {
        let played = self.played_pos(now_us);
        let spms = self.playout.samples_per_ms();
        let queue_end = self.outbound.as_ref().map_or(0, |o| o.queue.end_pos() / o.bytes_per_sample() as u64);
        self.segments.position(played, queue_end, spms)
    }

    /// Timer work: gap timeouts, marks played by the engine's clock, barge-in. With `gaps_due`
    /// false, a gap in the caller's audio is not filled yet (the frame that closes it may be
    /// among messages not handled yet).
    pub fn handle_timeout_agent(
        &mut self,
        now_us: u64,
        gaps_due: bool,
        audio: &mut dyn FnMut(AgentAudio<'_>),
    ) {
        if gaps_due && let Some(inbound) = self.inbound.as_mut() {
            let mut out = InboundOut {
                vad: &mut self.vad,
                events: &mut self.events,
                counts: &mut self.inbound_counts,
                echo: self.echo_canceller.as_deref_mut(),
                audio,
            };
            let tap = &mut self.tap;
            self.reorder.poll_coded(now_us, &mut self.stats, &mut |d, g711| {
                tap_caller(tap, &d);
                inbound.deliver(d, g711, &mut out)
            });
            // Held audio a timeout released became available now.
            self.arrivals.record(self.reorder.position(), now_us);
        }
        self.resolve_due_marks(now_us);
        self.check_barge_in(now_us);
        self.segments.retire_heard(self.played_pos(now_us));
    }

    /// For a carrier that confirms nothing: the marks whose audio has played by now. For one
    /// that echoes cleared marks: those it has not echoed within the grace period never will be.
    fn resolve_due_marks(&mut self, now_us: u64) {
        if matches!(self.caps.confirmation, Confirmation::Echo { .. }) {
            let Self { marks, stats, events, .. } = self;
            marks.expire_cleared(now_us, CLEARED_ECHO_GRACE_US, |id| {
                stats.marks_cleared += 1;
                stats.cleared_marks_unechoed += 1;
                events.push(RawEvent::MarkCleared { id });
            });
        }
        if self.caps.confirmation != Confirmation::None {
            return;
        }
        let spms = self.playout.samples_per_ms();
        let Self { marks, stats, events, .. } = self;
        marks.resolve_due(now_us, |id, pos| {
            stats.marks_played += 1;
            events.push(RawEvent::MarkPlayed { id, played_ms: pos / spms });
        });
    }

    /// Reports a speech start the detector holds back (see `SpeechDetector::start_held`), if
    /// any: the speech is the caller's after all.
    fn release_held_start(&mut self) {
        let (events, counts) = (&mut self.events, &mut self.inbound_counts);
        self.vad.release_held(&mut |e| push_vad_event(e, events, counts));
    }

    fn check_barge_in(&mut self, now_us: u64) {
        let active = self.agent_active(now_us);
        let onset = self.vad.onset_ms();
        let voiced_ms = self.vad.voiced_ms().unwrap_or(0);
        let snr = self.vad.voiced_snr_db();
        // The engine's clock too: a duck is let go when the caller's media goes missing, which
        // the stream time does not see.
        let steady_ms = self.vad.steady_ms().unwrap_or(0);
        let onset_ms =
            match self.barge_in.decide(onset, voiced_ms, snr, active, self.stream_ms(), now_us, steady_ms) {
                BargeAction::None => None,
                BargeAction::Duck => {
                    self.stats.ducks += 1;
                    self.ducker.duck();
                    None
                }
                BargeAction::Restore => {
                    self.stats.duck_restores += 1;
                    self.ducker.restore();
                    None
                }
                BargeAction::BargeIn(onset_ms) => Some(onset_ms),
            };
        if let Some(onset_ms) = onset_ms {
            // The speech that barges in has started, even if its start was held back.
            self.release_held_start();
            self.stats.barge_ins += 1;
            // The onset is in the speech detector's stream time (8 kHz ms), which is the delivered
            // timeline's (up to a resampler's few samples for carriers at other rates).
            let spms = self.reorder.samples_per_ms();
            let onset_arrived = self.arrivals.arrival_of(onset_ms.saturating_mul(spms), spms);
            let reaction_us = now_us.saturating_sub(onset_arrived.unwrap_or(now_us));
            // The event first: the marks it flushes are reported after it, as its consequence.
            let played_ms = self.utterance_played_ms(now_us);
            let segment = self.segment_position(now_us);
            self.barge_generation = self.barge_generation.wrapping_add(1);
            let generation = self.barge_generation;
            self.events.push(RawEvent::BargeIn {
                stream_ms: onset_ms,
                played_ms,
                generation,
                reaction_us,
                segment,
            });
            self.flush_agent_audio(now_us);
        }
    }

    /// Drops the agent audio not yet sent; its marks are reported cleared (no echo will come).
    fn drop_queued(&mut self) {
        let Some(outbound) = self.outbound.as_mut() else { return };
        let Self { marks, stats, events, .. } = self;
        let dropped = outbound.queue.clear(|id| {
            marks.drop_queued(id);
            stats.marks_cleared += 1;
            events.push(RawEvent::MarkCleared { id });
        });
        self.stats.flushed_samples += (dropped / outbound.bytes_per_sample()) as u64;
    }

    /// Drops queued agent audio and stops what the carrier is playing, as far as it can be.
    fn flush_agent_audio(&mut self, now_us: u64) {
        self.drop_queued();
        // What the host plays next is new: at full level.
        self.ducker.reset();
        self.barge_in.on_flush();
        if let Some(outbound) = self.outbound.as_mut() {
            outbound.reset_resamplers();
        }
        // Every segment ends: the host begins new ones for what it plays next.
        self.segments.clear(self.caps.clear != ClearKind::None);
        if self.caps.clear == ClearKind::None {
            // What the carrier holds still plays: its marks keep their due times. What the agent
            // says next is new (its played position counts what the carrier holds as unplayed,
            // so it starts at 0 once the carrier has played it).
            self.playout.end_utterance();
            return;
        }
        if !self.playout.is_playing(now_us) {
            // The carrier holds nothing (it has played what it was sent, or was never sent any,
            // as before the stream's start): no clear, and the sync mark in flight still
            // measures its lag. What the agent says next is new all the same.
            self.playout.end_utterance();
            return;
        }
        let lag_us = self.playout.lag_us();
        match self.caps.confirmation {
            Confirmation::Echo { on_clear: true } => self.marks.on_clear(now_us, lag_us),
            Confirmation::Echo { on_clear: false } | Confirmation::None => {
                self.resolve_due_marks(now_us);
                let echoes = self.caps.confirmation != Confirmation::None;
                let Self { marks, stats, events, .. } = self;
                marks.clear_unreached(now_us, lag_us, echoes, |id| {
                    stats.marks_cleared += 1;
                    events.push(RawEvent::MarkCleared { id });
                });
            }
        }
        self.clear_pending = true;
        self.sync_pending = false;
        // The clear answers the marks the carrier held (cleared): none waits for audio.
        self.mark_awaits_audio = false;
        // The carrier stops playing now: nothing the model places from now on plays. What it
        // placed up to the measured lag before now did not play either (the carrier runs that
        // far behind the model): the gate keeps it (it only masks more), but the canceller
        // would subtract its echo, which never comes, from the caller's speech, so it is cut
        // from there (the gate maps onto the stream at 8 kHz: the lag in its samples).
        if let Some(sample) = self.vad.echo_cut(now_us)
            && let Some(canceller) = self.echo_canceller.as_mut()
        {
            canceller.cut(sample.saturating_sub(self.playout.lag_us() * crate::audio::SAMPLES_PER_MS / 1000));
        }
        // The caller heard the agent up to the played position: where the caller's timeline
        // stands now.
        let spms = self.reorder.samples_per_ms();
        let heard_to = self.arrivals.position_at(now_us, spms, self.reorder.position());
        if let Some(tap) = self.tap.as_mut() {
            tap.agent_cut(heard_to);
        }
        self.playout.clear(now_us);
    }

    /// Whoever takes this pipeline's messages holds at most `bytes` of one: a stream whose
    /// messages may be larger (a carrier format with long media messages, a very long stream
    /// id) is refused at its start (`MessageTooLarge`) rather than never sending anything.
    pub fn limit_outbound_messages(&mut self, bytes: usize) {
        self.max_outbound_message = bytes;
    }

    /// The upper bound of a message [`Self::poll_transmit`] hands out (0 before `start`, when
    /// only a handshake reply can go out): a caller with that much room can take the next one.
    pub fn max_transmit_len(&self) -> usize {
        self.message.capacity().max(self.reply.len())
    }

    /// Whether a message is due for the carrier at `now_us` (what the next
    /// [`Self::poll_transmit`] would hand out), without taking it.
    pub fn transmit_due(&self, now_us: u64) -> bool {
        self.next_transmit(now_us).is_some()
    }

    fn next_transmit(&self, now_us: u64) -> Option<Next> {
        if self.reply_kind.is_some() {
            return Some(Next::Reply);
        }
        if self.state != StreamState::Streaming {
            return None;
        }
        if self.clear_pending {
            return Some(Next::Clear);
        }
        if self.sync_pending {
            return Some(Next::SyncMark);
        }
        let outbound = self.outbound.as_ref()?;
        let queue = &outbound.queue;
        if queue.peek_due_mark().is_some() {
            return Some(Next::Mark);
        }
        let ahead = self.playout.ahead_us(now_us);
        // The carrier about to run dry: send what there is rather than let it.
        let starving = ahead < outbound.starving_us();
        if queue.audio_len() == 0 && self.mark_awaits_audio && starving {
            // Nothing more to say after a mark the carrier holds until audio comes: silence.
            return Some(Next::Frame);
        }
        // `lead` is the most the carrier holds: a frame goes out once it fits under it.
        if ahead + outbound.frame_us > self.lead_us || queue.audio_len() == 0 {
            return None;
        }
        (queue.audio_len() >= queue.frame_bytes() || queue.mark_within_frame() || starving)
            .then_some(Next::Frame)
    }

    /// The next message for the carrier at `now_us`, if one is due: a handshake reply, a clear,
    /// a mark, or a paced frame of agent audio. What is handed out counts as sent; a caller
    /// with no room for [`Self::max_transmit_len`] bytes should not poll.
    pub fn poll_transmit(&mut self, now_us: u64) -> Option<(MessageKind, &[u8])> {
        if self.reply_kind.is_none() {
            // A reply handed out before: the caller has taken it.
            self.reply.clear();
        }
        loop {
            let kind = match self.next_transmit(now_us)? {
                Next::Reply => {
                    if let Some(kind) = self.reply_kind.take() {
                        self.stats.replies_sent += 1;
                        // Handed out from its own buffer: `message` keeps the capacity it was
                        // given at `start` for the largest media message, which a frame written
                        // into a smaller buffer would grow on the audio path.
                        return Some((kind, &self.reply));
                    }
                    None
                }
                Next::Clear => {
                    self.clear_pending = false;
                    self.stats.clears_sent += 1;
                    Some(self.dialect.write_clear(&mut self.message))
                }
                Next::SyncMark => {
                    self.sync_pending = false;
                    let mut buf = [0u8; 32];
                    let n = self.playout.sync_mark_sent();
                    self.stats.sync_marks_sent += 1;
                    self.stats.mark_messages_sent += 1;
                    self.mark_awaits_audio = self.marks_wait_for_audio;
                    Some(self.dialect.write_mark(sync_mark_name(n, &mut buf), &mut self.message))
                }
                Next::Mark => self.send_mark(now_us),
                Next::Frame => self.send_frame(now_us),
            };
            if let Some(kind) = kind {
                return Some((kind, &self.message));
            }
        }
    }

    /// The next mark whose audio has all gone out: written for a carrier that echoes marks, or
    /// left for the engine's clock to resolve (`None`: nothing to send, look again).
    fn send_mark(&mut self, now_us: u64) -> Option<MessageKind> {
        let outbound = self.outbound.as_mut()?;
        let (id, after_bytes) = outbound.queue.pop_due_mark()?;
        // Audio cut after the mark: in the last frame, for a carrier sent no marks (its frames run
        // through them).
        let after = after_bytes / outbound.bytes_per_sample() as u64;
        let continues = self.playout.continues_utterance(now_us);
        // A mark placed before a new reply's first audio, once the last utterance is over, is at
        // its start: not at the end of the one before. Every frame's padding sent so far is
        // before it, and is no agent audio.
        let pos = if continues {
            self.playout.utterance_sent().saturating_sub(self.utterance_padding(None) + after)
        } else {
            0
        };
        let end_us = self.playout.carrier_end_us();
        let (kind, due) = match self.caps.confirmation {
            Confirmation::Echo { .. } => {
                let name = self.marks.name(id)?;
                self.stats.mark_messages_sent += 1;
                self.mark_awaits_audio = self.marks_wait_for_audio;
                (Some(self.dialect.write_mark(name, &mut self.message)), end_us)
            }
            // Played by the engine's clock: where it sits in the last frame, before the audio
            // after it and the frame's padding.
            Confirmation::None if continues => {
                let behind = self.segments.last_frame_padding() + after;
                (None, end_us.saturating_sub(behind * 1000 / self.playout.samples_per_ms()))
            }
            Confirmation::None => (None, end_us),
        };
        self.marks.sent(id, pos, due);
        self.stats.marks_sent += 1;
        kind
    }

    fn send_frame(&mut self, now_us: u64) -> Option<MessageKind> {
        let outbound = self.outbound.as_mut()?;
        let ahead = self.playout.ahead_us(now_us);
        let starving = ahead < outbound.starving_us();
        let bytes_per_sample = outbound.bytes_per_sample() as u64;
        let queue_from = outbound.queue.taken() / bytes_per_sample;
        let cut = match outbound.queue.cut_frame(&mut outbound.frame, starving) {
            Some(cut) => cut,
            // After a mark that waits for audio (see `next_transmit`).
            None if self.mark_awaits_audio => outbound.queue.silence_frame(&mut outbound.frame),
            None => return None,
        };
        self.mark_awaits_audio = false;
        let (encoding, samples_per_ms) = (outbound.encoding(), outbound.rate() / 1000);
        let continues = self.playout.continues_utterance(now_us);
        if !continues {
            // A duck let go as the last reply ended, with no frame of it left to ramp back up.
            self.ducker.settle();
            self.utterance_padding_from = self.segments.padding_total();
        }
        self.ducker.apply(&mut outbound.frame, encoding, samples_per_ms);
        let queue_to = outbound.queue.taken() / bytes_per_sample;
        self.segments.on_frame_sent(queue_from, queue_to, outbound.frame_samples);
        if cut.audio_bytes < outbound.frame.len() {
            self.stats.frames_padded += 1;
        }
        // The carrier ran dry before this frame, and the utterance goes on with it: the caller
        // heard a gap in the agent's audio (a late TTS, a host that played too little), whatever
        // the frame holds. A new utterance's first frame is no underrun.
        if ahead == 0 && cut.audio_bytes > 0 && continues {
            self.stats.underruns += 1;
        }
        let kind = self.dialect.write_media(outbound.encode_frame(), &mut self.message);
        self.stats.frames_out += 1;
        if self.echo_aware {
            // Where the playout model plays it. Not corrected by the measured lag: that moves in
            // steps as mark echoes come, and the echo gate's delay estimate takes in the
            // carrier's delay with the echo path's.
            let play_us = self.playout.carrier_end_us().max(now_us);
            // Played straight after the frame before it (the carrier is still playing that one).
            let follows = self.playout.carrier_end_us() > now_us;
            let (vad, canceller) = (&mut self.vad, &mut self.echo_canceller);
            outbound.frame_pcm_8k(|pcm, at| {
                let sample = vad.echo_reference(pcm, play_us + at as u64 * 125, now_us);
                if let (Some(sample), Some(canceller)) = (sample, canceller.as_mut()) {
                    canceller.reference(pcm, sample, follows || at > 0);
                }
            });
        }
        if let Some(tap) = self.tap.as_mut() {
            // Sent while the carrier still plays the previous frame: heard right after it.
            // Otherwise heard once the lag has passed, on the caller's timeline as it stands now
            // (so that what the agent says while the caller's media is held up keeps its times
            // instead of piling up at the last position delivered).
            let at = (self.playout.carrier_end_us() <= now_us).then(|| {
                let spms = self.reorder.samples_per_ms();
                let now = self.arrivals.position_at(now_us, spms, self.reorder.position());
                now + self.playout.lag_us() * spms / 1000
            });
            tap.agent_frame(at, &outbound.frame);
        }
        if self.playout.on_frame_sent(now_us, outbound.frame_samples) {
            self.sync_pending = true;
        }
        Some(kind)
    }
}

/// Hands caller audio the reorder stage delivered to the recording, if there is one.
fn tap_caller(tap: &mut Option<Box<dyn CallTap>>, delivery: &Delivery<'_>) {
    let Some(tap) = tap.as_mut() else { return };
    match *delivery {
        Delivery::Audio { start, pcm } => tap.caller_audio(start, pcm),
        Delivery::Silence { start, len } => tap.caller_silence(start, len),
        // The recording keeps the stream's timeline, on which the audio around a splice meets.
        Delivery::Splice { .. } => {}
    }
}

/// Hands caller audio to a PCM callback: G.711 codes (of `law`) decoded a piece at a time.
fn as_pcm(audio: AgentAudio<'_>, law: Option<G711>, pcm: &mut dyn FnMut(&[i16])) {
    match audio {
        AgentAudio::Pcm(p) => pcm(p),
        AgentAudio::G711(codes) => {
            let law = law.unwrap_or(G711::Mulaw);
            let mut buf = [0i16; 512];
            for part in codes.chunks(buf.len()) {
                let n = law.decode(part, &mut buf);
                pcm(&buf[..n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::{SUPPORTED_RATES, is_supported};

    #[test]
    fn every_play_and_agent_rate_converts() {
        assert!(PLAY_RATES.iter().all(|&rate| is_supported(rate, CARRIER_RATE)));
        assert!(AGENT_RATES.iter().all(|&rate| is_supported(CARRIER_RATE, rate)));
        // The agent rates are all the rates the carrier's audio converts to.
        let to_agent = SUPPORTED_RATES.iter().filter(|&&rate| is_supported(CARRIER_RATE, rate));
        assert!(to_agent.eq(AGENT_RATES.iter()));
    }
}
