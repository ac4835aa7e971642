//! One call's pipeline: carrier messages in, agent PCM, events and paced carrier messages out.
//!
//! ```text
//! message ─► dialect ─► decode ─► reorder/gap-fill ─┬► resample to agent rate ─► sink.agent_audio
//!                                                   └► VAD ─► events, barge-in
//! play(pcm, rate) ─► resample to 8 kHz ─► µ-law ─► OutboundQueue ─► pacer ─► sink.outbound
//! ```
//!
//! Driven with an explicit clock (`now_us`, monotonic microseconds), never reads time itself.
//! Allocation happens only in [`SessionPipeline::new`] (which builds a resampler for every rate
//! `play` accepts, so the first `play` at any of them allocates nothing) and when `start` is
//! parsed.
//!
//! Memory: the pipeline keeps what must outlive a call (the outbound queue, the mark table, the
//! reorder slots, the resampler and VAD state, the received payload); audio on its way through
//! (decoded caller audio, resampled agent audio) lives in small stack buffers, a piece at a time.

use crate::alloc_guard;
use crate::audio::{CARRIER_RATE, FRAME_SAMPLES, FRAME_US, SAMPLES_PER_MS};
use crate::codec::encode_ulaw;
use crate::config::SessionConfig;
use crate::event::RawEvent;
use crate::pipeline::barge_in::BargeInDetector;
use crate::pipeline::marks::{MarkEcho, MarkTable};
use crate::pipeline::outbound_queue::{FRAME_BYTES, OutboundQueue};
use crate::pipeline::playout::{PlayoutClock, SYNC_MARK_PREFIX, parse_sync_mark, sync_mark_name};
use crate::pipeline::reorder::{Arrival, Delivery, FrameAudio, InboundReorder, MAX_TIMESTAMP_MS};
use crate::protocol::{
    AudioEncoding, Dialect, Inbound, MediaFormat, MessageKind, PayloadBuffer, ProtocolError, Track,
};
use crate::resample::{ResampleError, SUPPORTED_RATES, StreamResampler};
use crate::stats::SessionCounters;
use crate::vad::{SpeechDetector, SpeechTransition, VadError};
use std::borrow::Cow;
use std::sync::Arc;

/// Caller audio is analysed in pieces of at most this many 8 kHz samples, so the scratch buffers
/// stay small whatever the payload size.
const INBOUND_PIECE: usize = 480;
/// Caller audio is resampled for the agent in pieces of at most this many 8 kHz samples (one
/// 20 ms frame: a Twilio frame takes one call) ...
const AGENT_PIECE: usize = FRAME_SAMPLES;
/// ... into a buffer of this many samples (160 samples at 8 kHz are 960 at 48 kHz).
const AGENT_PIECE_OUT: usize = 1024;
/// Agent audio is taken in pieces of at most this many samples per `play` step.
pub const PLAY_PIECE: usize = 2048;
/// Agent audio is resampled and encoded in pieces of at most this many samples (20 ms at 24 kHz
/// takes one) ...
const PLAY_CHUNK: usize = 512;
/// ... into buffers of this many 8 kHz samples (agent audio is never upsampled).
const PLAY_CHUNK_OUT: usize = PLAY_CHUNK + 8;
/// Rates `play` accepts: every rate the resampler supports converts to the carrier's.
pub const PLAY_RATES: [u32; SUPPORTED_RATES.len()] = SUPPORTED_RATES;
/// Rates the agent may read at: the carrier's, and those the resampler converts it up to.
pub const AGENT_RATES: [u32; 4] = [CARRIER_RATE, 16_000, 24_000, 48_000];
static ZEROS: [i16; INBOUND_PIECE] = [0; INBOUND_PIECE];

/// Where a pipeline's outputs go. Implementations must not block.
pub trait PipelineSink {
    /// Caller audio at the agent rate, in stream order.
    fn agent_audio(&mut self, pcm: &[i16]);
    /// An event.
    fn event(&mut self, event: RawEvent);
    /// Whether one outbound message of `len` bytes would fit right now.
    fn outbound_room(&self, len: usize) -> bool;
    /// A message for the carrier (only called after `outbound_room` said yes).
    fn outbound(&mut self, kind: MessageKind, message: &[u8]);
}

/// Whether a parsed message holds memory its parse allocated (freed when it is dropped).
fn owns_memory(message: &Inbound<'_>) -> bool {
    matches!(message, Inbound::Start(_) | Inbound::Mark { name: Cow::Owned(_), .. })
}

/// Agent audio for [`SessionPipeline::play`]: samples, or s16le bytes (converted a chunk at a time).
#[derive(Clone, Copy)]
enum PlaySource<'a> {
    Pcm(&'a [i16]),
    Le(&'a [u8]),
}

impl PlaySource<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Pcm(p) => p.len(),
            Self::Le(b) => b.len() / 2,
        }
    }
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

/// Caller-side stages after reordering: resample for the agent, detect speech.
struct InboundPath {
    to_agent: StreamResampler,
    /// 8 kHz samples resampled per call: `max_output_len` of it fits in `piece`'s stack buffer.
    agent_piece: usize,
    vad: SpeechDetector,
}

impl InboundPath {
    fn deliver(&mut self, d: Delivery<'_>, sink: &mut dyn PipelineSink, counters: &SessionCounters) {
        let (mut start, silence_len, audio) = match d {
            Delivery::Audio { start, pcm } => (start, 0, pcm),
            Delivery::Silence { start, len } => (start, len, &[][..]),
        };
        for piece in audio.chunks(INBOUND_PIECE) {
            self.piece(piece, start, sink, counters);
            start += piece.len() as u64;
        }
        let mut left = silence_len;
        while left > 0 {
            let n = left.min(INBOUND_PIECE as u64) as usize;
            self.piece(&ZEROS[..n], start, sink, counters);
            start += n as u64;
            left -= n as u64;
        }
    }

    fn piece(&mut self, pcm: &[i16], start: u64, sink: &mut dyn PipelineSink, counters: &SessionCounters) {
        SessionCounters::add(&counters.inbound_samples, pcm.len() as u64);
        let mut out = [0i16; AGENT_PIECE_OUT];
        for part in pcm.chunks(self.agent_piece) {
            let n = self.to_agent.process(part, &mut out);
            sink.agent_audio(&out[..n]);
        }
        self.vad.process(pcm, start, |t| match t {
            SpeechTransition::Started { at_ms } => {
                SessionCounters::bump(&counters.speech_segments);
                sink.event(RawEvent::SpeechStarted { stream_ms: at_ms });
            }
            SpeechTransition::Stopped { at_ms } => sink.event(RawEvent::SpeechStopped { stream_ms: at_ms }),
        });
    }
}

/// One call's complete media pipeline.
pub struct SessionPipeline {
    dialect: Box<dyn Dialect>,
    payload: PayloadBuffer,
    max_message_bytes: usize,
    state: StreamState,
    format: Option<MediaFormat>,
    reorder: InboundReorder,
    inbound: InboundPath,
    barge_in: BargeInDetector,
    queue: OutboundQueue,
    playout: PlayoutClock,
    marks: MarkTable,
    /// One per rate of [`PLAY_RATES`], in its order.
    play_resamplers: Vec<StreamResampler>,
    frame: [u8; FRAME_BYTES],
    message: Vec<u8>,
    lead_us: u64,
    clear_pending: bool,
    /// The pacer could not send because the host's outbound ring was full; taking a message
    /// wakes the worker, so no timer is needed until then.
    stalled: bool,
    /// Bumped by every barge-in. Agent audio and marks the host queued before it had seen the
    /// latest barge-in carry an older generation and are dropped as stale.
    barge_generation: u32,
    counters: Arc<SessionCounters>,
}

impl SessionPipeline {
    /// Builds a pipeline (this is where its memory is allocated).
    pub fn new(
        config: &SessionConfig,
        dialect: Box<dyn Dialect>,
        counters: Arc<SessionCounters>,
    ) -> Result<Self, PipelineError> {
        if !AGENT_RATES.contains(&config.agent_rate) {
            return Err(ResampleError::UnsupportedRate { from: CARRIER_RATE, to: config.agent_rate }.into());
        }
        if !PLAY_RATES.contains(&config.play_rate) {
            return Err(ResampleError::UnsupportedRate { from: config.play_rate, to: CARRIER_RATE }.into());
        }
        if config.max_payload_bytes == 0 || config.max_message_bytes == 0 {
            return Err(PipelineError::Invalid("message and payload limits must be positive"));
        }
        if config.lead_ms < 40 {
            return Err(PipelineError::Invalid("lead_ms must be at least 40 (two frames)"));
        }
        let outbound_samples = u64::from(config.outbound_buffer_ms) * SAMPLES_PER_MS;
        if outbound_samples < (PLAY_PIECE + 16) as u64 {
            return Err(PipelineError::Invalid("outbound_buffer_ms must hold one play piece (at least 260)"));
        }
        let to_agent = StreamResampler::new(CARRIER_RATE, config.agent_rate)?;
        let mut agent_piece = AGENT_PIECE;
        while to_agent.max_output_len(agent_piece) > AGENT_PIECE_OUT {
            agent_piece /= 2;
        }
        // Every rate up front, so that no `play` builds one on the worker; they are small, their
        // filters being shared between sessions.
        let play_resamplers = PLAY_RATES
            .iter()
            .map(|&rate| StreamResampler::new(rate, CARRIER_RATE))
            .collect::<Result<Vec<_>, _>>()?;
        let max_message = dialect.max_media_message_len(FRAME_BYTES).max(1024);
        Ok(Self {
            dialect,
            payload: PayloadBuffer::with_limit(config.max_payload_bytes),
            max_message_bytes: config.max_message_bytes,
            state: StreamState::AwaitingStart,
            format: None,
            reorder: InboundReorder::new(config.reorder_window_ms, config.max_gap_fill_ms),
            inbound: InboundPath { to_agent, agent_piece, vad: SpeechDetector::new(&config.vad)? },
            barge_in: BargeInDetector::new(&config.barge_in),
            queue: OutboundQueue::new(outbound_samples as usize, config.max_pending_marks),
            playout: PlayoutClock::new(config.sync_mark_interval_ms, config.utterance_gap_ms),
            marks: MarkTable::new(config.max_pending_marks, config.max_mark_name_bytes),
            play_resamplers,
            frame: [0; FRAME_BYTES],
            message: Vec::with_capacity(6 * config.max_mark_name_bytes + max_message),
            lead_us: u64::from(config.lead_ms) * 1000,
            clear_pending: false,
            stalled: false,
            barge_generation: 0,
            counters,
        })
    }

    /// Stream time delivered so far, ms.
    pub fn stream_ms(&self) -> u64 {
        self.reorder.position() / SAMPLES_PER_MS
    }

    /// The barge-in generation: agent audio and marks queued by a host that had not yet seen
    /// barge-in number `n` carry a generation below `n` and are stale.
    pub fn barge_generation(&self) -> u32 {
        self.barge_generation
    }

    /// Whether `samples` of agent audio at `rate` fit in the outbound queue now.
    pub fn play_fits(&self, samples: usize, rate: u32) -> bool {
        (samples as u64 * u64::from(CARRIER_RATE)).div_ceil(u64::from(rate.max(1))) as usize + 8
            <= self.queue.free()
    }

    /// Agent audio is playing at the carrier or waiting here.
    pub fn agent_active(&self, now_us: u64) -> bool {
        self.queue.audio_len() > 0 || self.playout.is_playing(now_us)
    }

    /// Whether the pacer is holding a frame because the sink had no room for it.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Free room in the outbound queue, in 8 kHz samples.
    pub fn outbound_free(&self) -> usize {
        self.queue.free()
    }

    /// When the pipeline next has timed work (a frame due, a gap timing out), µs.
    pub fn deadline_us(&self) -> Option<u64> {
        let audio = self.queue.audio_len();
        let pace = if self.state != StreamState::Streaming || self.stalled || audio == 0 {
            None
        } else if audio >= FRAME_BYTES || self.queue.mark_within_frame() {
            // A full frame goes out once it fits under the lead.
            Some((self.playout.carrier_end_us() + FRAME_US).saturating_sub(self.lead_us))
        } else {
            // A partial tail waits until the carrier is about to run dry.
            Some(self.playout.carrier_end_us().saturating_sub(FRAME_US))
        };
        match (pace, self.reorder.deadline_us()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The most caller audio (samples at the agent rate) processing one message of
    /// `message_len` bytes can deliver: its payload (at most one sample per byte at 8 kHz,
    /// whatever the encoding), the frames held out of order that it may release, and the silence
    /// of the waited-for gap before them. A gap longer than the reorder window, filled at once,
    /// is not included: it comes from audio the carrier lost, not from audio it delivers late.
    pub fn agent_room_needed(&self, message_len: usize) -> usize {
        let payload = message_len.min(self.payload.limit());
        let released = self.reorder.held_samples() + self.reorder.window_samples();
        self.inbound.to_agent.max_output_len(payload + released)
    }

    /// Processes one message received from the carrier.
    pub fn on_message(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) {
        self.on_message_at(message, kind, now_us, now_us, sink);
    }

    /// Processes one message that arrived at `arrived_us` (it may have waited in the inbound
    /// ring while the host was behind): its arrival time times the jitter estimate, the wait for
    /// out-of-order frames and mark echoes (the carrier's playout delay); pacing uses `now_us`.
    pub fn on_message_at(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        arrived_us: u64,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) {
        SessionCounters::bump(&self.counters.messages_in);
        if let Err(error) = self.handle_message(message, kind, arrived_us.min(now_us), sink) {
            SessionCounters::bump(&self.counters.protocol_errors);
            sink.event(RawEvent::ProtocolError { error });
        }
        self.check_barge_in(now_us, sink);
        self.pace(now_us, sink);
    }

    fn handle_message(
        &mut self,
        message: &[u8],
        kind: MessageKind,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<(), ProtocolError> {
        if message.len() > self.max_message_bytes {
            return Err(ProtocolError::MessageTooLarge);
        }
        // Parsing may allocate by design (see `alloc_guard`): a `start` owns its stream's
        // identity, an escaped string is unescaped into a copy, a rejected message's JSON error
        // is boxed. What a parse allocated is used and freed while handling its message.
        let parsed = alloc_guard::permit(|| self.dialect.parse(message, kind, &mut self.payload))?;
        if owns_memory(&parsed) {
            return alloc_guard::permit(|| self.handle_parsed(parsed, now_us, sink));
        }
        self.handle_parsed(parsed, now_us, sink)
    }

    fn handle_parsed(
        &mut self,
        parsed: Inbound<'_>,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<(), ProtocolError> {
        if self.state == StreamState::Stopped {
            return Err(ProtocolError::AfterStop);
        }
        match parsed {
            Inbound::Connected => sink.event(RawEvent::Connected),
            Inbound::Start(start) => {
                if self.state != StreamState::AwaitingStart {
                    return Err(ProtocolError::DuplicateStart);
                }
                self.dialect.on_start(&start);
                self.state = StreamState::Streaming;
                let f = start.media_format;
                let supported = f.sample_rate == CARRIER_RATE
                    && f.channels == 1
                    && matches!(f.encoding, AudioEncoding::Mulaw | AudioEncoding::Alaw | AudioEncoding::L16);
                self.format = supported.then_some(f);
                sink.event(RawEvent::Started(start));
                if !supported {
                    return Err(ProtocolError::UnsupportedFormat);
                }
            }
            Inbound::Media(frame) => {
                if self.state == StreamState::AwaitingStart {
                    return Err(ProtocolError::MediaBeforeStart);
                }
                if frame.track == Track::Outbound {
                    SessionCounters::bump(&self.counters.media_outbound_track_ignored);
                    return Ok(());
                }
                if frame.timestamp_ms > MAX_TIMESTAMP_MS {
                    return Err(ProtocolError::TimestampJump);
                }
                let format = self.format.ok_or(ProtocolError::UnsupportedFormat)?;
                if self.payload.as_slice().is_empty() {
                    // No audio to place: a broken carrier or proxy, reported rather than taken as
                    // a zero-length frame (which would still move the reorder buffer's timeline).
                    return Err(ProtocolError::WrongType("media.payload"));
                }
                let payload = self.payload.as_slice();
                // Decoded as it is delivered or held, a piece at a time: no payload-sized buffer.
                let audio = match format.encoding {
                    AudioEncoding::Mulaw => FrameAudio::Mulaw(payload),
                    AudioEncoding::Alaw => FrameAudio::Alaw(payload),
                    AudioEncoding::L16 if !payload.len().is_multiple_of(2) => {
                        return Err(ProtocolError::OddPayloadLength);
                    }
                    AudioEncoding::L16 => FrameAudio::L16(payload),
                };
                SessionCounters::bump(&self.counters.media_frames_in);
                let Self { reorder, inbound, counters, .. } = self;
                let arrival = reorder.push_frame(
                    frame.sequence,
                    frame.timestamp_ms,
                    audio,
                    now_us,
                    counters,
                    &mut |d| inbound.deliver(d, sink, counters),
                );
                SessionCounters::set(&counters.jitter_us, reorder.jitter_us());
                if arrival == Arrival::Jump {
                    return Err(ProtocolError::TimestampJump);
                }
            }
            Inbound::Dtmf { digit, .. } => {
                if self.state == StreamState::AwaitingStart {
                    return Err(ProtocolError::MediaBeforeStart);
                }
                SessionCounters::bump(&self.counters.dtmf_digits);
                sink.event(RawEvent::Dtmf { digit, stream_ms: self.stream_ms() });
            }
            Inbound::Mark { name, .. } => self.on_mark_echo(&name, now_us, sink)?,
            Inbound::Stop { .. } => self.stop(now_us, sink),
        }
        Ok(())
    }

    fn on_mark_echo(
        &mut self,
        name: &str,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<(), ProtocolError> {
        if let Some(n) = parse_sync_mark(name) {
            // A hidden sync mark: only a genuine echo (of one sent and not yet echoed) counts.
            return if self.playout.sync_mark_echoed(n, now_us) {
                Ok(())
            } else {
                Err(ProtocolError::UnknownMark)
            };
        }
        match self.marks.echoed(name).ok_or(ProtocolError::UnknownMark)? {
            MarkEcho::Played { id, utterance_pos } => {
                SessionCounters::bump(&self.counters.marks_played);
                sink.event(RawEvent::MarkPlayed { id, played_ms: utterance_pos / SAMPLES_PER_MS });
            }
            MarkEcho::Cleared { id } => {
                SessionCounters::bump(&self.counters.marks_cleared);
                sink.event(RawEvent::MarkCleared { id });
            }
        }
        Ok(())
    }

    fn stop(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        let Self { reorder, inbound, counters, .. } = self;
        reorder.flush(counters, &mut |d| inbound.deliver(d, sink, counters));
        if self.inbound.vad.is_speaking() {
            sink.event(RawEvent::SpeechStopped { stream_ms: self.stream_ms() });
        }
        self.inbound.vad.reset();
        // The call is over: nothing queued will be heard.
        self.drop_queued(sink);
        let counters = &self.counters;
        self.marks.drain(|id| {
            SessionCounters::bump(&counters.marks_cleared);
            sink.event(RawEvent::MarkCleared { id });
        });
        self.playout.clear(now_us);
        self.clear_pending = false;
        self.state = StreamState::Stopped;
        sink.event(RawEvent::Stopped);
    }

    /// Queues agent audio at `rate` Hz. Takes all of `pcm` (at most [`PLAY_PIECE`] samples) or
    /// nothing: returns false, taking nothing, when the outbound queue has no room for it yet.
    pub fn play(
        &mut self,
        pcm: &[i16],
        rate: u32,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<bool, ResampleError> {
        self.play_samples(PlaySource::Pcm(pcm), rate, now_us, sink)
    }

    /// [`Self::play`] for audio given as s16le bytes (as the host's play ring holds it).
    pub fn play_le_bytes(
        &mut self,
        bytes: &[u8],
        rate: u32,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<bool, ResampleError> {
        self.play_samples(PlaySource::Le(bytes), rate, now_us, sink)
    }

    fn play_samples(
        &mut self,
        source: PlaySource<'_>,
        rate: u32,
        now_us: u64,
        sink: &mut dyn PipelineSink,
    ) -> Result<bool, ResampleError> {
        let len = source.len();
        assert!(len <= PLAY_PIECE, "play pieces are at most PLAY_PIECE samples");
        if self.state == StreamState::Stopped {
            // The call is over: nobody will hear it.
            SessionCounters::add(&self.counters.flushed_samples, len as u64);
            return Ok(true);
        }
        let Some(idx) = PLAY_RATES.iter().position(|&r| r == rate) else {
            return Err(ResampleError::UnsupportedRate { from: rate, to: CARRIER_RATE });
        };
        let resampler = &mut self.play_resamplers[idx];
        if resampler.max_output_len(len) > self.queue.free() {
            return Ok(false);
        }
        let mut chunk = PLAY_CHUNK;
        while resampler.max_output_len(chunk) > PLAY_CHUNK_OUT {
            chunk /= 2;
        }
        match source {
            PlaySource::Pcm(pcm) => {
                for part in pcm.chunks(chunk) {
                    self.push_play_chunk(idx, part);
                }
            }
            PlaySource::Le(bytes) => {
                let mut pcm = [0i16; PLAY_CHUNK];
                for part in bytes.chunks(2 * chunk) {
                    for (s, b) in pcm.iter_mut().zip(part.chunks_exact(2)) {
                        *s = i16::from_le_bytes([b[0], b[1]]);
                    }
                    self.push_play_chunk(idx, &pcm[..part.len() / 2]);
                }
            }
        }
        SessionCounters::add(&self.counters.play_samples_in, len as u64);
        self.pace(now_us, sink);
        Ok(true)
    }

    /// Resamples, encodes and queues one chunk of agent audio (room was checked by the caller).
    fn push_play_chunk(&mut self, resampler: usize, pcm: &[i16]) {
        let (mut pcm_8k, mut ulaw) = ([0i16; PLAY_CHUNK_OUT], [0u8; PLAY_CHUNK_OUT]);
        let n = self.play_resamplers[resampler].process(pcm, &mut pcm_8k);
        encode_ulaw(&pcm_8k[..n], &mut ulaw);
        let taken = self.queue.push_audio(&ulaw[..n]);
        // Room for the whole piece was checked, so this is a bug; counted, not hidden.
        debug_assert_eq!(taken, n);
        SessionCounters::add(&self.counters.flushed_samples, (n - taken) as u64);
    }

    /// Places host mark `id` named `name` after the audio queued so far.
    pub fn mark(&mut self, id: u32, name: &[u8], now_us: u64, sink: &mut dyn PipelineSink) {
        if self.state == StreamState::Stopped
            || name.starts_with(SYNC_MARK_PREFIX.as_bytes())
            || !self.marks.insert(id, name)
        {
            // The host handle validates names and counts outstanding marks, so this only
            // happens if events were dropped; the mark is reported rather than lost silently.
            SessionCounters::bump(&self.counters.marks_cleared);
            sink.event(RawEvent::MarkCleared { id });
            return;
        }
        if !self.queue.push_mark(id) {
            self.marks.drop_queued(id);
            SessionCounters::bump(&self.counters.marks_cleared);
            sink.event(RawEvent::MarkCleared { id });
            return;
        }
        self.pace(now_us, sink);
    }

    /// The host interrupts the agent: drop queued audio, clear the carrier, report the position.
    pub fn interrupt(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        SessionCounters::bump(&self.counters.interrupts);
        let played_ms = self.playout.played_samples(now_us) / SAMPLES_PER_MS;
        sink.event(RawEvent::Interrupted { played_ms });
        self.flush_agent_audio(now_us, sink);
        self.pace(now_us, sink);
    }

    /// Timer work: gap timeouts and pacing. Call at every tick.
    pub fn tick(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        self.tick_with(now_us, true, sink);
    }

    /// [`Self::tick`]; with `gaps_due` false, a gap in the caller's audio is not filled yet
    /// (the frame that closes it may be among messages not processed yet).
    pub fn tick_with(&mut self, now_us: u64, gaps_due: bool, sink: &mut dyn PipelineSink) {
        let Self { reorder, inbound, counters, .. } = self;
        if gaps_due {
            reorder.poll(now_us, counters, &mut |d| inbound.deliver(d, sink, counters));
        }
        self.check_barge_in(now_us, sink);
        self.pace(now_us, sink);
    }

    fn check_barge_in(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        let active = self.agent_active(now_us);
        let onset = self.inbound.vad.onset_ms();
        let voiced_ms = self.inbound.vad.voiced_ms().unwrap_or(0);
        if let Some(onset_ms) = self.barge_in.check(onset, voiced_ms, active) {
            SessionCounters::bump(&self.counters.barge_ins);
            // The event first: the marks it flushes are reported after it, as its consequence.
            let played_ms = self.playout.played_samples(now_us) / SAMPLES_PER_MS;
            self.barge_generation = self.barge_generation.wrapping_add(1);
            let generation = self.barge_generation;
            sink.event(RawEvent::BargeIn { stream_ms: onset_ms, played_ms, generation });
            self.flush_agent_audio(now_us, sink);
        }
    }

    /// Drops the agent audio not yet sent; its marks are reported cleared (no echo will come).
    fn drop_queued(&mut self, sink: &mut dyn PipelineSink) {
        let counters = &self.counters;
        let marks = &mut self.marks;
        let dropped = self.queue.clear(|id| {
            marks.drop_queued(id);
            SessionCounters::bump(&counters.marks_cleared);
            sink.event(RawEvent::MarkCleared { id });
        });
        SessionCounters::add(&counters.flushed_samples, dropped as u64);
    }

    /// Drops queued agent audio and clears the carrier.
    fn flush_agent_audio(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        self.drop_queued(sink);
        self.marks.on_clear(now_us, self.playout.lag_us());
        for r in &mut self.play_resamplers {
            r.reset();
        }
        self.clear_pending = true;
        self.playout.clear(now_us);
    }

    /// Sends what is due: a pending `clear`, due marks, and frames until the carrier holds
    /// `lead` of audio. Stops (and counts a stall) when the host is not taking messages.
    fn pace(&mut self, now_us: u64, sink: &mut dyn PipelineSink) {
        if self.state != StreamState::Streaming {
            return;
        }
        self.stalled = false;
        if self.clear_pending {
            self.dialect.write_clear(&mut self.message);
            if !sink.outbound_room(self.message.len()) {
                SessionCounters::bump(&self.counters.outbound_stalls);
                self.stalled = true;
                return;
            }
            sink.outbound(self.dialect.outbound_kind(), &self.message);
            SessionCounters::bump(&self.counters.clears_sent);
            self.clear_pending = false;
        }
        let media_len = self.dialect.max_media_message_len(FRAME_BYTES);
        loop {
            if !self.send_due_marks(sink) {
                return;
            }
            let ahead = self.playout.ahead_us(now_us);
            // `lead` is the most the carrier holds: a frame goes out once it fits under it.
            if ahead + FRAME_US > self.lead_us || self.queue.audio_len() == 0 {
                return;
            }
            if !sink.outbound_room(media_len) {
                SessionCounters::bump(&self.counters.outbound_stalls);
                self.stalled = true;
                return;
            }
            // Less than a frame of audio left at the carrier: send what we have rather than let
            // it run dry.
            let starving = ahead < FRAME_US;
            let Some(cut) = self.queue.cut_frame(&mut self.frame, starving) else {
                return;
            };
            if cut.audio_bytes < FRAME_BYTES {
                SessionCounters::bump(&self.counters.frames_padded);
                if starving && self.playout.utterance_sent() > 0 && ahead == 0 {
                    SessionCounters::bump(&self.counters.underruns);
                }
            }
            self.dialect.write_media(&self.frame, &mut self.message);
            sink.outbound(self.dialect.outbound_kind(), &self.message);
            SessionCounters::bump(&self.counters.frames_out);
            if self.playout.on_frame_sent(now_us, FRAME_BYTES as u64) {
                self.send_sync_mark(sink);
            }
        }
    }

    /// Sends every mark whose audio has gone out. False if the host's outbound ring is full.
    fn send_due_marks(&mut self, sink: &mut dyn PipelineSink) -> bool {
        loop {
            let Some(id) = self.queue.peek_due_mark() else { return true };
            let Some(name) = self.marks.name(id) else {
                self.queue.pop_due_mark();
                continue;
            };
            self.dialect.write_mark(name, &mut self.message);
            if !sink.outbound_room(self.message.len()) {
                SessionCounters::bump(&self.counters.outbound_stalls);
                self.stalled = true;
                return false;
            }
            self.queue.pop_due_mark();
            sink.outbound(self.dialect.outbound_kind(), &self.message);
            let (pos, due) = (self.playout.utterance_sent(), self.playout.carrier_end_us());
            self.marks.sent(id, pos, due);
            SessionCounters::bump(&self.counters.marks_sent);
        }
    }

    fn send_sync_mark(&mut self, sink: &mut dyn PipelineSink) {
        let mut buf = [0u8; 32];
        let n = self.playout.sync_mark_sent();
        self.dialect.write_mark(sync_mark_name(n, &mut buf), &mut self.message);
        if sink.outbound_room(self.message.len()) {
            sink.outbound(self.dialect.outbound_kind(), &self.message);
            SessionCounters::bump(&self.counters.sync_marks_sent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resample::is_supported;

    #[test]
    fn every_play_and_agent_rate_converts() {
        assert!(PLAY_RATES.iter().all(|&rate| is_supported(rate, CARRIER_RATE)));
        assert!(AGENT_RATES.iter().all(|&rate| is_supported(CARRIER_RATE, rate)));
        // The agent rates are all the rates the carrier's audio converts to.
        let to_agent = SUPPORTED_RATES.iter().filter(|&&rate| is_supported(CARRIER_RATE, rate));
        assert!(to_agent.eq(AGENT_RATES.iter()));
    }
}
