//! The caller's side after reordering: audio resampled for the agent, speech detected.

use crate::audio::CARRIER_RATE;
use crate::event::RawEvent;
use crate::pipeline::events::EventQueue;
use crate::pipeline::reorder::{Delivery, FrameAudio};
use crate::protocol::{AudioEncoding, MediaFormat, ProtocolError};
use crate::resample::{StreamResampler, is_supported};
use crate::vad::{SpeechDetector, SpeechTransition};

/// Caller audio is analysed in pieces of at most this many samples, so the scratch buffers stay
/// small whatever the payload size.
pub(crate) const INBOUND_PIECE: usize = 480;
/// Caller audio is resampled for the agent in pieces of at most this many samples (a 20 ms
/// frame at 8 kHz takes one call) ...
const AGENT_PIECE: usize = 160;
/// ... into a buffer of this many samples (160 samples at 8 kHz are 960 at 48 kHz).
const AGENT_PIECE_OUT: usize = 1024;
static ZEROS: [i16; INBOUND_PIECE] = [0; INBOUND_PIECE];

/// What the caller's side counts; the pipeline folds it into its counters.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct InboundCounts {
    /// Caller samples delivered (received and gap-filled), at the carrier's rate.
    pub(crate) samples: u64,
    /// Speech segments detected.
    pub(crate) speech_segments: u64,
}

/// Where one delivery's outputs go.
pub(crate) struct InboundOut<'a> {
    pub(crate) vad: &'a mut SpeechDetector,
    pub(crate) events: &'a mut EventQueue,
    pub(crate) counts: &'a mut InboundCounts,
    pub(crate) audio: &'a mut dyn FnMut(&[i16]),
}

/// The stages built for the caller's audio format when the stream starts.
pub(crate) struct InboundPath {
    encoding: AudioEncoding,
    to_agent: StreamResampler,
    /// Carrier samples resampled per call: `max_output_len` of it fits the stack buffer.
    agent_piece: usize,
    /// The speech detector works at 8 kHz: audio at another rate is resampled for it.
    to_vad: Option<StreamResampler>,
    /// Position of the next sample the speech detector gets, 8 kHz samples.
    vad_pos: u64,
}

impl InboundPath {
    /// The stages for caller audio in `format`, delivered to the agent at `agent_rate`.
    /// `UnsupportedFormat` when the engine cannot convert it.
    pub(crate) fn new(format: MediaFormat, agent_rate: u32) -> Result<Self, ProtocolError> {
        let rate = format.sample_rate;
        let convertible = format.channels == 1
            && rate.is_multiple_of(1000)
            && is_supported(rate, agent_rate)
            && (rate == CARRIER_RATE || is_supported(rate, CARRIER_RATE));
        if !convertible {
            return Err(ProtocolError::UnsupportedFormat);
        }
        let to_agent =
            StreamResampler::new(rate, agent_rate).map_err(|_| ProtocolError::UnsupportedFormat)?;
        let mut agent_piece = AGENT_PIECE;
        while to_agent.max_output_len(agent_piece) > AGENT_PIECE_OUT {
            agent_piece /= 2;
        }
        let to_vad = (rate != CARRIER_RATE)
            .then(|| StreamResampler::new(rate, CARRIER_RATE))
            .transpose()
            .map_err(|_| ProtocolError::UnsupportedFormat)?;
        Ok(Self { encoding: format.encoding, to_agent, agent_piece, to_vad, vad_pos: 0 })
    }

    /// The frame audio of a payload in this stream's encoding.
    pub(crate) fn frame_audio<'a>(&self, payload: &'a [u8]) -> Result<FrameAudio<'a>, ProtocolError> {
        Ok(match self.encoding {
            AudioEncoding::Mulaw => FrameAudio::Mulaw(payload),
            AudioEncoding::Alaw => FrameAudio::Alaw(payload),
            AudioEncoding::L16 if !payload.len().is_multiple_of(2) => {
                return Err(ProtocolError::OddPayloadLength);
            }
            AudioEncoding::L16 => FrameAudio::L16(payload),
        })
    }

    /// The most agent-rate samples `carrier_samples` of caller audio can become.
    pub(crate) fn max_agent_len(&self, carrier_samples: usize) -> usize {
        self.to_agent.max_output_len(carrier_samples)
    }

    /// Takes audio the reorder stage released.
    pub(crate) fn deliver(&mut self, d: Delivery<'_>, out: &mut InboundOut<'_>) {
        let (mut start, silence_len, audio) = match d {
            Delivery::Audio { start, pcm } => (start, 0, pcm),
            Delivery::Silence { start, len } => (start, len, &[][..]),
        };
        for piece in audio.chunks(INBOUND_PIECE) {
            self.piece(piece, start, out);
            start += piece.len() as u64;
        }
        let mut left = silence_len;
        while left > 0 {
            let n = left.min(INBOUND_PIECE as u64) as usize;
            self.piece(&ZEROS[..n], start, out);
            start += n as u64;
            left -= n as u64;
        }
    }

    fn piece(&mut self, pcm: &[i16], start: u64, out: &mut InboundOut<'_>) {
        out.counts.samples += pcm.len() as u64;
        let mut agent = [0i16; AGENT_PIECE_OUT];
        for part in pcm.chunks(self.agent_piece) {
            // `agent_piece` is sized so that its output fits: an error would be a bug.
            let n = self.to_agent.process(part, &mut agent).unwrap_or_else(|_| {
                debug_assert!(false, "an agent piece's output fits its buffer");
                0
            });
            (out.audio)(&agent[..n]);
        }
        let InboundOut { vad, events, counts, .. } = out;
        let mut on_transition = |t| match t {
            SpeechTransition::Started { at_ms } => {
                counts.speech_segments += 1;
                events.push(RawEvent::SpeechStarted { stream_ms: at_ms });
            }
            SpeechTransition::Stopped { at_ms } => events.push(RawEvent::SpeechStopped { stream_ms: at_ms }),
        };
        match &mut self.to_vad {
            None => vad.process(pcm, start, &mut on_transition),
            Some(to_vad) => {
                // Downsampling only (the carrier's rate is above 8 kHz): a piece never grows.
                let mut narrow = [0i16; INBOUND_PIECE];
                let n = to_vad.process(pcm, &mut narrow).unwrap_or_else(|_| {
                    debug_assert!(false, "downsampling never grows a piece");
                    0
                });
                vad.process(&narrow[..n], self.vad_pos, &mut on_transition);
                self.vad_pos += n as u64;
            }
        }
    }
}
