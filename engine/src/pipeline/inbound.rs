//! The caller's side after reordering: audio resampled for the agent, speech detected.
//!
//! An agent speaking G.711 gets the carrier's own codes when the carrier speaks the same law at
//! 8 kHz (gaps filled with the law's silence code): nothing decoded and encoded again, so every
//! code arrives as sent. Otherwise the audio is resampled to 8 kHz and encoded. Speech detection
//! always works on the decoded PCM, so barge-in decides the same whatever the agent reads.
//!
//! A stateful carrier codec (G.722, Opus) is decoded here, as each payload arrives, by a decoder
//! built when the stream starts and only in streams that use one: the reorder stage then holds
//! and releases PCM at the decoded rate (16 kHz for G.722, straight to the agent's rate without
//! a detour through 8 kHz). A decoder's state follows arrival order: a frame that arrives out of
//! order is decoded after the ones that overtook it (reordered by its timestamp all the same), a
//! cost of a few ms of slightly wrong prediction that only reordered frames pay; a gap is silence.

use crate::audio::CARRIER_RATE;
#[cfg(feature = "opus")]
use crate::codec::carrier_opus::{OPUS_RATES, OpusDecoder, inbound_decode_rate};
use crate::codec::{G711, G722Decoder};
use crate::config::AgentFormat;
use crate::echo_canceller::{EchoCanceller, Reduced};
use crate::event::RawEvent;
use crate::pipeline::events::EventQueue;
use crate::pipeline::reorder::{Delivery, FrameAudio};
use crate::protocol::{AudioEncoding, MediaFormat, ProtocolError};
use crate::resample::{StreamResampler, is_supported};
use crate::vad::{SpeechDetector, SpeechTransition, VadEvent};

/// Caller audio is analysed in pieces of at most this many samples, so the scratch buffers stay
/// small whatever the payload size.
pub(crate) const INBOUND_PIECE: usize = 480;
/// Caller audio is resampled for the agent in pieces of at most this many samples (a 20 ms
/// frame at 8 kHz takes one call) ...
const AGENT_PIECE: usize = 160;
/// ... into a buffer of this many samples (160 samples at 8 kHz are 960 at 48 kHz).
const AGENT_PIECE_OUT: usize = 1024;
static ZEROS: [i16; INBOUND_PIECE] = [0; INBOUND_PIECE];

/// Caller audio for the agent, in the agent's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentAudio<'a> {
    /// Samples at the agent rate.
    Pcm(&'a [i16]),
    /// G.711 codes (the session's law) at 8 kHz, a byte per sample.
    G711(&'a [u8]),
}

impl AgentAudio<'_> {
    /// Its first `n` samples.
    fn prefix(self, n: usize) -> Self {
        match self {
            Self::Pcm(p) => Self::Pcm(&p[..n]),
            Self::G711(b) => Self::G711(&b[..n]),
        }
    }

    /// Samples in it.
    pub fn len(&self) -> usize {
        match self {
            Self::Pcm(p) => p.len(),
            Self::G711(b) => b.len(),
        }
    }

    /// Whether it has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the agent's audio is made from the carrier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ToAgent {
    /// Resampled PCM.
    Pcm,
    /// The carrier's codes as received: same law, same rate.
    PassThrough(G711),
    /// Resampled to 8 kHz and encoded.
    Encode(G711),
}

/// What the caller's side counts; the pipeline folds it into its counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct InboundCounts {
    /// Caller samples delivered (received and gap-filled), at the carrier's rate.
    pub(crate) samples: u64,
    /// Speech segments detected.
    pub(crate) speech_segments: u64,
    /// Agent-rate samples of gap-filling silence left out: the host had no room for them.
    pub(crate) agent_samples_dropped: u64,
}

/// Where one delivery's outputs go.
pub(crate) struct InboundOut<'a> {
    pub(crate) vad: &'a mut SpeechDetector,
    pub(crate) events: &'a mut EventQueue,
    pub(crate) counts: &'a mut InboundCounts,
    /// The echo canceller the agent's audio goes through, when the host asked for it.
    pub(crate) echo: Option<&'a mut EchoCanceller>,
    pub(crate) audio: &'a mut dyn FnMut(AgentAudio<'_>),
}

/// Queues what the speech detector reported as the session's event.
pub(crate) fn push_vad_event(e: VadEvent, events: &mut EventQueue, counts: &mut InboundCounts) {
    match e {
        VadEvent::Transition(SpeechTransition::Started { at_ms }) => {
            counts.speech_segments += 1;
            events.push(RawEvent::SpeechStarted { stream_ms: at_ms });
        }
        VadEvent::Transition(SpeechTransition::Stopped { at_ms }) => {
            events.push(RawEvent::SpeechStopped { stream_ms: at_ms });
        }
        VadEvent::EndOfTurn(t) => events.push(RawEvent::EndOfTurn {
            stream_ms: t.at_ms,
            silence_ms: t.silence_ms,
            confidence: t.confidence,
        }),
    }
}

/// The most samples one G.722 or Opus payload decodes to: 120 ms (Opus's longest packet) at
/// 24 kHz, or 90 ms of G.722 (whose longer payloads are refused as too large).
const CARRIER_PCM: usize = 2_880;

/// A stateful carrier codec's decoder, with the PCM of the payload it decoded last.
pub(crate) struct CarrierDecoder {
    codec: CarrierCodec,
    pcm: [i16; CARRIER_PCM],
}

// Only ever in a box (one per call that uses a coded stream): the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum CarrierCodec {
    G722(G722Decoder),
    #[cfg(feature = "opus")]
    Opus(OpusDecoder),
}

impl CarrierDecoder {
    /// Decodes one payload; returns the samples in `pcm`.
    fn decode(&mut self, payload: &[u8]) -> Result<usize, ProtocolError> {
        match &mut self.codec {
            CarrierCodec::G722(decoder) => {
                if 2 * payload.len() > CARRIER_PCM {
                    return Err(ProtocolError::PayloadTooLarge);
                }
                Ok(decoder.decode(payload, &mut self.pcm))
            }
            // A packet libopus refuses is the payload's fault, reported like any bad payload.
            #[cfg(feature = "opus")]
            CarrierCodec::Opus(decoder) => decoder
                .decode(payload, &mut self.pcm)
                .ok()
                .filter(|&n| n > 0)
                .ok_or(ProtocolError::WrongType("media.payload")),
        }
    }
}

/// The stages built for the caller's audio format when the stream starts.
pub(crate) struct InboundPath {
    encoding: AudioEncoding,
    /// The rate the stages work at: the carrier's, or the one its codec is decoded at.
    rate: u32,
    /// G.722's or Opus's decoder (`None` for the byte-per-sample encodings).
    carrier: Option<Box<CarrierDecoder>>,
    to_agent_format: ToAgent,
    to_agent: StreamResampler,
    /// Carrier samples resampled per call: `max_output_len` of it fits the stack buffer.
    agent_piece: usize,
    /// The speech detector works at 8 kHz: audio at another rate is resampled for it.
    to_vad: Option<StreamResampler>,
    /// Position of the next sample the speech detector gets, 8 kHz samples.
    vad_pos: u64,
    /// With echo reduction on a stream wider than 8 kHz the agent reads the canceller's 8 kHz
    /// output (see [`Self::piece`]), and `to_agent` starts from 8 kHz.
    reads_narrow: bool,
    /// Most agent-rate samples of gap-filling silence the host has room for now (`None`: no
    /// limit); see [`Self::limit_gap_fill`].
    gap_room: Option<u64>,
}

impl InboundPath {
    /// The stages for caller audio in `format`, delivered to the agent at `agent_rate` in
    /// `agent_format` (a G.711 format comes with an 8 kHz rate: the session checks it), with the
    /// agent's echo taken out when `echo_reduced`. `UnsupportedFormat` when the engine cannot
    /// convert it.
    pub(crate) fn new(
        format: MediaFormat,
        agent_rate: u32,
        agent_format: AgentFormat,
        echo_reduced: bool,
    ) -> Result<Self, ProtocolError> {
        let (rate, codec) = match format.encoding {
            // 16 kHz audio whatever clock rate the carrier announced (RTP says 8000).
            AudioEncoding::G722 => (16_000, Some(CarrierCodec::G722(G722Decoder::new()))),
            #[cfg(feature = "opus")]
            AudioEncoding::Opus if OPUS_RATES.contains(&format.sample_rate) => {
                let rate = inbound_decode_rate(format.sample_rate, agent_rate);
                let decoder = OpusDecoder::new(rate).map_err(|_| ProtocolError::UnsupportedFormat)?;
                (rate, Some(CarrierCodec::Opus(decoder)))
            }
            AudioEncoding::Opus => return Err(ProtocolError::UnsupportedFormat),
            _ => (format.sample_rate, None),
        };
        let convertible = format.channels == 1
            && rate.is_multiple_of(1000)
            && is_supported(rate, agent_rate)
            && (rate == CARRIER_RATE || is_supported(rate, CARRIER_RATE));
        if !convertible {
            return Err(ProtocolError::UnsupportedFormat);
        }
        let reads_narrow = echo_reduced && rate != CARRIER_RATE;
        let agent_from = if reads_narrow { CARRIER_RATE } else { rate };
        let to_agent =
            StreamResampler::new(agent_from, agent_rate).map_err(|_| ProtocolError::UnsupportedFormat)?;
        let mut agent_piece = AGENT_PIECE;
        while to_agent.max_output_len(agent_piece) > AGENT_PIECE_OUT {
            agent_piece /= 2;
        }
        let to_vad = (rate != CARRIER_RATE)
            .then(|| StreamResampler::new(rate, CARRIER_RATE))
            .transpose()
            .map_err(|_| ProtocolError::UnsupportedFormat)?;
        let same_law = match format.encoding {
            AudioEncoding::Mulaw => Some(G711::Mulaw),
            AudioEncoding::Alaw => Some(G711::Alaw),
            AudioEncoding::L16 | AudioEncoding::G722 | AudioEncoding::Opus => None,
        };
        let to_agent_format = match agent_format.g711() {
            None => ToAgent::Pcm,
            Some(law) if same_law == Some(law) && rate == agent_rate => ToAgent::PassThrough(law),
            Some(law) => ToAgent::Encode(law),
        };
        let carrier = codec.map(|codec| Box::new(CarrierDecoder { codec, pcm: [0; CARRIER_PCM] }));
        Ok(Self {
            encoding: format.encoding,
            rate,
            carrier,
            to_agent_format,
            to_agent,
            agent_piece,
            to_vad,
            vad_pos: 0,
            reads_narrow,
            gap_room: None,
        })
    }

    /// Lets at most `room` agent-rate samples of gap-filling silence reach the host, until the
    /// next call (`None`: all of it). A gap longer than the host's audio ring would otherwise
    /// fill the ring, and the caller's audio after the gap, the first words after an outage,
    /// would be what is dropped; silence left out is counted in `agent_samples_dropped` as
    /// dropped audio is, so the host's timeline stays accounted for.
    pub(crate) fn limit_gap_fill(&mut self, room: Option<u64>) {
        self.gap_room = room;
    }

    /// The rate the caller's audio is delivered at, Hz: the reorder stage counts positions at it.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// Calls `f` with the frame audio of a payload in this stream's encoding (decoded first when
    /// it is G.722 or Opus) and this path, to deliver it with.
    pub(crate) fn with_frame_audio<R>(
        &mut self,
        payload: &[u8],
        f: impl FnOnce(FrameAudio<'_>, &mut Self) -> R,
    ) -> Result<R, ProtocolError> {
        let Some(mut decoder) = self.carrier.take() else {
            let audio = self.frame_audio(payload)?;
            return Ok(f(audio, self));
        };
        // Moved out for the call so that `f` may deliver through `self`; moving a box back and
        // forth allocates nothing.
        let result = decoder.decode(payload).map(|n| f(FrameAudio::Pcm(&decoder.pcm[..n]), self));
        self.carrier = Some(decoder);
        result
    }

    /// The frame audio of a payload in this stream's byte-per-sample encoding.
    pub(crate) fn frame_audio<'a>(&self, payload: &'a [u8]) -> Result<FrameAudio<'a>, ProtocolError> {
        Ok(match self.encoding {
            AudioEncoding::G722 | AudioEncoding::Opus => return Err(ProtocolError::UnsupportedFormat),
            AudioEncoding::Mulaw => FrameAudio::Mulaw(payload),
            AudioEncoding::Alaw => FrameAudio::Alaw(payload),
            AudioEncoding::L16 if !payload.len().is_multiple_of(2) => {
                return Err(ProtocolError::OddPayloadLength);
            }
            AudioEncoding::L16 => FrameAudio::L16(payload),
        })
    }

    /// The most samples (at [`Self::rate`]) a payload of `bytes` decodes to: a sample per byte
    /// or fewer (G.711, L16), two for G.722, and for Opus the most one packet decodes to,
    /// whatever its length (a packet of 60 bytes can hold 120 ms).
    pub(crate) fn max_payload_samples(&self, bytes: usize) -> usize {
        match self.carrier.as_deref().map(|c| &c.codec) {
            None => bytes,
            Some(CarrierCodec::G722(_)) => (2 * bytes).min(CARRIER_PCM),
            #[cfg(feature = "opus")]
            Some(CarrierCodec::Opus(_)) => CARRIER_PCM,
        }
    }

    /// The most agent-rate samples `carrier_samples` of caller audio can become.
    pub(crate) fn max_agent_len(&self, carrier_samples: usize) -> usize {
        let to_agent = match &self.to_vad {
            Some(to_vad) if self.reads_narrow => to_vad.max_output_len(carrier_samples),
            _ => carrier_samples,
        };
        self.to_agent.max_output_len(to_agent)
    }

    /// Takes audio the reorder stage released, with its G.711 codes as received (if any).
    pub(crate) fn deliver(&mut self, d: Delivery<'_>, g711: &[u8], out: &mut InboundOut<'_>) {
        let (mut start, silence_len, audio) = match d {
            Delivery::Audio { start, pcm } => (start, 0, pcm),
            Delivery::Silence { start, len } => (start, len, &[][..]),
            Delivery::Splice { .. } => return self.splice(out),
        };
        // Passed through when the codes are there (they always are from a G.711 carrier), as
        // long as no echo is taken out of them.
        let pass = match self.to_agent_format {
            ToAgent::PassThrough(law) if g711.len() == audio.len() => Some(law),
            _ => None,
        };
        for (k, piece) in audio.chunks(INBOUND_PIECE).enumerate() {
            let codes = pass.map(|_| &g711[k * INBOUND_PIECE..][..piece.len()]);
            self.piece(piece, codes, start, false, out);
            start += piece.len() as u64;
        }
        // A gap reaches a pass-through agent as the law's silence code.
        let silence = match self.to_agent_format {
            ToAgent::PassThrough(law) if silence_len > 0 => Some([law.silence(); INBOUND_PIECE]),
            _ => None,
        };
        if silence_len == 0 {
            return;
        }
        let (mut room, mut dropped) = (self.gap_room, 0u64);
        {
            let InboundOut { vad, events, counts, echo, audio } = &mut *out;
            let mut limited = |a: AgentAudio<'_>| match &mut room {
                None => (**audio)(a),
                Some(room) => {
                    let n = (a.len() as u64).min(*room) as usize;
                    if n > 0 {
                        (**audio)(a.prefix(n));
                    }
                    *room -= n as u64;
                    dropped += (a.len() - n) as u64;
                }
            };
            let mut gap_out =
                InboundOut { vad, events, counts, echo: echo.as_deref_mut(), audio: &mut limited };
            let mut left = silence_len;
            while left > 0 {
                let n = left.min(INBOUND_PIECE as u64) as usize;
                self.piece(&ZEROS[..n], silence.as_ref().map(|s| &s[..n]), start, true, &mut gap_out);
                start += n as u64;
                left -= n as u64;
            }
        }
        self.gap_room = room;
        out.counts.agent_samples_dropped += dropped;
    }

    /// The stream was spliced over an outage: speech detection hears the audio after as after a
    /// long gap, and the canceller forgets the agent's audio it placed by the old timeline. A
    /// wide stream's 8 kHz resampler forgets its input (as if it had been silence, its count
    /// kept exact): it lags by its delay, and the last 2 ms before the outage would otherwise
    /// reach both after the cut. The agent's own resampler keeps them (the agent hears the
    /// stream as received, the cut smoothed by the filter), unless it reads the canceller's
    /// 8 kHz output, which has lost them with the rest.
    fn splice(&mut self, out: &mut InboundOut<'_>) {
        if let Some(to_vad) = self.to_vad.as_mut() {
            to_vad.forget_input();
        }
        let InboundOut { vad, events, counts, echo, .. } = out;
        vad.splice(&mut |e| push_vad_event(e, events, counts));
        if let Some(echo) = echo.as_deref_mut() {
            echo.forget_reference();
        }
    }

    /// One piece of delivered audio: `pcm`, and `codes`, the same samples as the agent's G.711
    /// codes when they pass through; `gap`, the piece fills a gap (silence for audio lost).
    ///
    /// The echo canceller works at 8 kHz, on the audio speech detection hears: a wider stream's
    /// is first brought down to 8 kHz (as for speech detection), and the host reads the
    /// canceller's output brought back to its rate, so it gets the caller's band up to 3.9 kHz.
    /// Why not a canceller at the stream's rate: twice the work and memory at 16 kHz, six times
    /// at 48 kHz, for a band a telephone agent's speech recognition barely uses.
    fn piece(&mut self, pcm: &[i16], codes: Option<&[u8]>, start: u64, gap: bool, out: &mut InboundOut<'_>) {
        out.counts.samples += pcm.len() as u64;
        if self.reads_narrow {
            let mut narrow = [0i16; INBOUND_PIECE];
            let n = self.narrow(pcm, &mut narrow);
            let narrow = &narrow[..n];
            match out.echo.as_deref_mut() {
                Some(echo) => {
                    echo.set_delay_ms(out.vad.echo_delay_ms());
                    let at = self.vad_pos;
                    echo.process(narrow, at, gap, &mut |reduced| {
                        self.pass_to_agent(reduced.samples(), out.audio)
                    });
                }
                None => self.pass_to_agent(narrow, out.audio),
            }
            self.hear(narrow, out);
            return;
        }
        match (codes, out.echo.as_deref_mut()) {
            (Some(codes), None) => (out.audio)(AgentAudio::G711(codes)),
            (None, None) => self.pass_to_agent(pcm, out.audio),
            // The speech detector below still hears the audio as received.
            (codes, Some(echo)) => {
                echo.set_delay_ms(out.vad.echo_delay_ms());
                let mut at = 0;
                echo.process(pcm, start, gap, &mut |reduced| {
                    let n = reduced.samples().len();
                    match (reduced, codes) {
                        // Nothing taken out: the carrier's codes pass through as they came.
                        (Reduced::Unchanged(_), Some(codes)) => {
                            (out.audio)(AgentAudio::G711(&codes[at..at + n]))
                        }
                        _ => self.pass_to_agent(reduced.samples(), out.audio),
                    }
                    at += n;
                });
            }
        }
        self.detect_speech(pcm, start, out);
    }

    /// Caller PCM converted to the agent's rate and format.
    fn pass_to_agent(&mut self, pcm: &[i16], audio: &mut dyn FnMut(AgentAudio<'_>)) {
        let mut agent = [0i16; AGENT_PIECE_OUT];
        match self.to_agent_format {
            ToAgent::PassThrough(law) | ToAgent::Encode(law) => {
                let mut encoded = [0u8; AGENT_PIECE_OUT];
                for part in pcm.chunks(self.agent_piece) {
                    let n = self.resample_for_agent(part, &mut agent);
                    let n = law.encode(&agent[..n], &mut encoded);
                    audio(AgentAudio::G711(&encoded[..n]));
                }
            }
            ToAgent::Pcm => {
                for part in pcm.chunks(self.agent_piece) {
                    let n = self.resample_for_agent(part, &mut agent);
                    audio(AgentAudio::Pcm(&agent[..n]));
                }
            }
        }
    }

    /// Resamples one agent piece into `agent`; returns the samples written.
    fn resample_for_agent(&mut self, part: &[i16], agent: &mut [i16; AGENT_PIECE_OUT]) -> usize {
        // `agent_piece` is sized so that its output fits: an error would be a bug.
        self.to_agent.process(part, agent).unwrap_or_else(|_| {
            debug_assert!(false, "an agent piece's output fits its buffer");
            0
        })
    }

    fn detect_speech(&mut self, pcm: &[i16], start: u64, out: &mut InboundOut<'_>) {
        if self.to_vad.is_none() {
            let InboundOut { vad, events, counts, .. } = out;
            vad.process_events(pcm, start, &mut |e| push_vad_event(e, events, counts));
            return;
        }
        let mut narrow = [0i16; INBOUND_PIECE];
        let n = self.narrow(pcm, &mut narrow);
        self.hear(&narrow[..n], out);
    }

    /// A piece of the carrier's audio at a rate above 8 kHz brought down to 8 kHz, into `narrow`;
    /// returns the samples written.
    fn narrow(&mut self, pcm: &[i16], narrow: &mut [i16; INBOUND_PIECE]) -> usize {
        let Some(to_vad) = self.to_vad.as_mut() else {
            debug_assert!(false, "only a stream above 8 kHz is brought down");
            return 0;
        };
        // Downsampling only (the carrier's rate is above 8 kHz): a piece never grows.
        to_vad.process(pcm, narrow).unwrap_or_else(|_| {
            debug_assert!(false, "downsampling never grows a piece");
            0
        })
    }

    /// The speech detector hears 8 kHz audio brought down from a wider stream.
    fn hear(&mut self, narrow: &[i16], out: &mut InboundOut<'_>) {
        let InboundOut { vad, events, counts, .. } = out;
        vad.process_events(narrow, self.vad_pos, &mut |e| push_vad_event(e, events, counts));
        self.vad_pos += narrow.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::mulaw::{linear_to_ulaw, ulaw_to_linear};
    use crate::vad::VadConfig;

    /// 200 ms of a 16 kHz stream with energy in both halves of its band.
    fn wide_signal() -> Vec<i16> {
        (0..3_200)
            .map(|i| {
                let t = f64::from(i) / 16_000.0;
                let v = 6_000.0 * (2.0 * std::f64::consts::PI * 700.0 * t).sin()
                    + 4_000.0 * (2.0 * std::f64::consts::PI * 6_100.0 * t).sin();
                v as i16
            })
            .collect()
    }

    /// What the agent reads of `pcm` through a path for a 16 kHz L16 stream, in 20 ms deliveries.
    fn agent_reads(agent_rate: u32, agent_format: AgentFormat, echo_reduced: bool, pcm: &[i16]) -> Vec<i16> {
        agent_reads_spliced(agent_rate, agent_format, echo_reduced, pcm, None)
    }

    /// [`agent_reads`], the stream spliced (re-anchored over an outage) before the frame at
    /// sample `splice_at`, if given.
    fn agent_reads_spliced(
        agent_rate: u32,
        agent_format: AgentFormat,
        echo_reduced: bool,
        pcm: &[i16],
        splice_at: Option<usize>,
    ) -> Vec<i16> {
        let format = MediaFormat { encoding: AudioEncoding::L16, sample_rate: 16_000, channels: 1 };
        let mut path = InboundPath::new(format, agent_rate, agent_format, echo_reduced).unwrap();
        let mut vad = SpeechDetector::new(&VadConfig { echo_aware: true, ..VadConfig::default() }).unwrap();
        let mut events = EventQueue::new(64);
        let mut counts = InboundCounts::default();
        let mut canceller = echo_reduced.then(EchoCanceller::new);
        let mut read = Vec::new();
        let mut audio = |a: AgentAudio<'_>| match a {
            AgentAudio::Pcm(p) => read.extend_from_slice(p),
            AgentAudio::G711(codes) => read.extend(codes.iter().map(|&c| ulaw_to_linear(c))),
        };
        for (k, frame) in pcm.chunks(320).enumerate() {
            let mut out = InboundOut {
                vad: &mut vad,
                events: &mut events,
                counts: &mut counts,
                echo: canceller.as_deref_mut(),
                audio: &mut audio,
            };
            let start = k as u64 * 320;
            if splice_at == Some(k * 320) {
                path.deliver(Delivery::Splice { start }, &[], &mut out);
            }
            path.deliver(Delivery::Audio { start, pcm: frame }, &[], &mut out);
        }
        read
    }

    fn resampled(from: u32, to: u32, pcm: &[i16]) -> Vec<i16> {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = vec![0; r.max_output_len(pcm.len())];
        let n = r.process(pcm, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn with_echo_reduction_a_wide_stream_reaches_the_agent_through_8_khz() {
        // Nothing of the agent's was sent, so the canceller passes its 8 kHz input unchanged:
        // what the agent reads is the stream brought down to 8 kHz (as speech detection hears
        // it), then to the agent's rate and format.
        let pcm = wide_signal();
        let narrow = resampled(16_000, 8_000, &pcm);
        assert_eq!(agent_reads(8_000, AgentFormat::Pcm, true, &pcm), narrow);
        assert_eq!(agent_reads(16_000, AgentFormat::Pcm, true, &pcm), resampled(8_000, 16_000, &narrow));
        assert_eq!(agent_reads(48_000, AgentFormat::Pcm, true, &pcm), resampled(8_000, 48_000, &narrow));
        let ulaw: Vec<i16> = narrow.iter().map(|&v| ulaw_to_linear(linear_to_ulaw(v))).collect();
        assert_eq!(agent_reads(8_000, AgentFormat::Mulaw, true, &pcm), ulaw);
        // Without it the stream goes straight to the agent's rate, its whole band kept.
        assert_eq!(agent_reads(16_000, AgentFormat::Pcm, false, &pcm), pcm);
        assert_eq!(agent_reads(8_000, AgentFormat::Pcm, false, &pcm), narrow);
    }

    #[test]
    fn after_a_splice_speech_detection_hears_nothing_of_the_audio_before_it() {
        // The 8 kHz audio speech detection (and the canceller) hears of a wide stream lags it by
        // the resampler's delay: at a splice, the last 2 ms before the outage are still in the
        // resampler. Heard after the splice, they would be taken for the line that came back.
        // With echo reduction on, the agent reads that 8 kHz audio (the canceller passes it
        // unchanged: nothing of the agent's was sent), so it shows what the detector heard.
        let pcm = wide_signal();
        let cut = 1_600;
        let read = agent_reads_spliced(8_000, AgentFormat::Pcm, true, &pcm, Some(cut));
        let (before, after) = read.split_at(cut / 2);
        assert_eq!(before, resampled(16_000, 8_000, &pcm[..cut]));
        // After it, the audio after the outage as a stream of its own.
        assert_eq!(after, resampled(16_000, 8_000, &pcm[cut..]));
        // Without echo reduction the agent reads the stream as received, splice or not.
        assert_eq!(agent_reads_spliced(16_000, AgentFormat::Pcm, false, &pcm, Some(cut)), pcm);
        let narrow = resampled(16_000, 8_000, &pcm);
        assert_eq!(agent_reads_spliced(8_000, AgentFormat::Pcm, false, &pcm, Some(cut)), narrow);
    }
}
