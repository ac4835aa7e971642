//! The agent's side: audio resampled to the carrier's rate, encoded as the carrier takes it and
//! queued in frames of the dialect's length.
//!
//! G.711 from an agent speaking the carrier's own law at 8 kHz is queued as it is, untouched:
//! the queue holds the carrier's encoding, so the codes go out exactly as played. Other G.711 is
//! decoded and takes the PCM path at 8 kHz.
//!
//! A stateful carrier codec (G.722, Opus) is queued as 16-bit PCM at the carrier's rate and
//! encoded a frame at a time as each frame is cut ([`OutboundPath::encode_frame`]): every
//! message then carries one whole coded frame (one Opus packet, as Telnyx requires), and marks,
//! clears and the playout model keep counting samples as for L16.

#[cfg(feature = "opus")]
use crate::codec::carrier_opus::{self, CarrierOpusEncoder};
use crate::codec::{
    G711, G722Encoder, decode_l16, encode_alaw, encode_l16, encode_ulaw, linear_to_alaw, linear_to_ulaw,
};
use crate::pipeline::outbound_queue::OutboundQueue;
use crate::protocol::{AudioEncoding, MediaFormat, ProtocolError};
use crate::resample::{SUPPORTED_RATES, StreamResampler, is_supported};

/// Agent audio is taken in pieces of at most this many samples per `play` step.
pub const PLAY_PIECE: usize = 2048;
/// Agent audio is resampled and encoded in pieces of at most this many samples (20 ms at 24 kHz
/// takes one) ...
const PLAY_CHUNK: usize = 512;
/// ... into buffers of this many carrier-rate samples (a chunk is halved until its output fits).
const PLAY_CHUNK_OUT: usize = PLAY_CHUNK + 8;
/// Rates `play` accepts: every rate the resampler supports (each converts to every carrier rate
/// the engine speaks).
pub const PLAY_RATES: [u32; SUPPORTED_RATES.len()] = SUPPORTED_RATES;

/// Agent audio for `play`: samples, s16le bytes, or G.711 codes (converted a chunk at a time).
#[derive(Clone, Copy)]
pub(crate) enum PlaySource<'a> {
    Pcm(&'a [i16]),
    Le(&'a [u8]),
    /// 8 kHz codes of one law.
    G711(&'a [u8], G711),
}

impl PlaySource<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Pcm(p) => p.len(),
            Self::Le(b) => b.len() / 2,
            Self::G711(b, _) => b.len(),
        }
    }
}

/// A stateful carrier codec's encoder, with its buffers for one frame.
struct CarrierEncoder {
    codec: CarrierCodec,
    /// One frame's PCM.
    pcm: Box<[i16]>,
    /// One frame coded.
    wire: Box<[u8]>,
    /// Bytes of `wire` the last frame took.
    wire_len: usize,
}

// Only ever in a box (one per call that uses a coded stream): the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
enum CarrierCodec {
    G722(G722Encoder),
    #[cfg(feature = "opus")]
    Opus(CarrierOpusEncoder),
}

/// The stages built for the carrier's outbound format when the stream starts.
pub(crate) struct OutboundPath {
    /// The encoding of the queue: the carrier's, or L16 for a codec encoded per frame.
    encoding: AudioEncoding,
    /// G.722's or Opus's encoder (`None` for the byte-per-sample encodings).
    carrier: Option<Box<CarrierEncoder>>,
    rate: u32,
    /// One per rate of [`PLAY_RATES`], in its order (`None`: no conversion to this carrier).
    play_resamplers: Vec<Option<StreamResampler>>,
    pub(crate) queue: OutboundQueue,
    /// The frame being sent, cut from the queue.
    pub(crate) frame: Box<[u8]>,
    /// Samples in one frame.
    pub(crate) frame_samples: u64,
    /// Length of one frame, µs.
    pub(crate) frame_us: u64,
}

/// How little audio the carrier may hold before a partial frame goes out padded rather than
/// wait for the rest of it: one frame, and never more than 40 ms (twice what carriers with
/// 20 ms frames have always been left, for the network's jitter). With Exotel's chunks of
/// 100-400 ms, one frame would pad silence into an utterance whose next words a streaming TTS
/// is still delivering, each time the chunk before had just begun to play.
const STARVING_US: u64 = 40_000;

impl OutboundPath {
    /// Stages for a carrier taking `format` in frames of `frame_ms`, with a queue of `buffer_ms`.
    /// `cut_at_marks`: the carrier is sent marks, so frames end at them (see [`OutboundQueue`]).
    pub(crate) fn new(
        format: MediaFormat,
        frame_ms: u32,
        buffer_ms: u32,
        max_marks: usize,
        cut_at_marks: bool,
    ) -> Result<Self, ProtocolError> {
        let rate = format.sample_rate;
        if format.channels != 1 || !rate.is_multiple_of(1000) || frame_ms == 0 || !is_supported(rate, rate) {
            return Err(ProtocolError::UnsupportedFormat);
        }
        // Every rate up front, so that no `play` builds one on the worker; they are small, their
        // filters being shared between sessions.
        let play_resamplers = PLAY_RATES
            .iter()
            .map(|&from| is_supported(from, rate).then(|| StreamResampler::new(from, rate).ok()).flatten())
            .collect();
        let bytes = format.encoding.bytes_per_sample();
        let samples_per_ms = u64::from(rate / 1000);
        let frame_samples = u64::from(frame_ms) * samples_per_ms;
        let frame_bytes = frame_samples as usize * bytes;
        let carrier = carrier_encoder(format, frame_samples as usize)?;
        // The queue holds a whole frame and a play piece beside it (as it reaches the carrier,
        // from the lowest play rate), since a piece is queued whole and a frame cut only once
        // whole: with less, a piece that does not fit beside a partial frame waits for the
        // carrier to starve, and every frame goes out padded.
        let capacity = (u64::from(buffer_ms) * samples_per_ms) as usize * bytes;
        let lowest_play_rate = PLAY_RATES.iter().copied().min().unwrap_or(8_000);
        let largest_piece = carrier_samples_bound(PLAY_PIECE, rate, lowest_play_rate);
        let capacity = capacity.max(frame_bytes + largest_piece * bytes);
        let silence = match format.encoding {
            AudioEncoding::Mulaw => linear_to_ulaw(0),
            AudioEncoding::Alaw => linear_to_alaw(0),
            AudioEncoding::L16 | AudioEncoding::G722 | AudioEncoding::Opus => 0,
        };
        Ok(Self {
            encoding: if carrier.is_some() { AudioEncoding::L16 } else { format.encoding },
            carrier,
            rate,
            play_resamplers,
            queue: OutboundQueue::new(capacity, max_marks, frame_bytes, silence, cut_at_marks),
            frame: vec![0; frame_bytes].into_boxed_slice(),
            frame_samples,
            frame_us: u64::from(frame_ms) * 1000,
        })
    }

    /// A partial frame (the queue's tail, padded to a whole one) goes out once the carrier holds
    /// less than this, µs (see [`STARVING_US`]).
    pub(crate) fn starving_us(&self) -> u64 {
        self.frame_us.min(STARVING_US)
    }

    /// The frame last cut (`frame`) as the carrier takes it: the frame itself, or for G.722 and
    /// Opus the frame encoded (one Opus packet).
    pub(crate) fn encode_frame(&mut self) -> &[u8] {
        let Some(carrier) = self.carrier.as_deref_mut() else { return &self.frame };
        let n = decode_l16(&self.frame, &mut carrier.pcm);
        carrier.wire_len = match &mut carrier.codec {
            CarrierCodec::G722(encoder) => encoder.encode(&carrier.pcm[..n], &mut carrier.wire),
            // Cannot fail with a whole frame and a buffer of the largest packet; should libopus
            // fail anyway, an empty payload is sent rather than a stale packet.
            #[cfg(feature = "opus")]
            CarrierCodec::Opus(encoder) => {
                encoder.encode(&carrier.pcm[..n], &mut carrier.wire).unwrap_or_else(|_| {
                    debug_assert!(false, "a whole frame encodes");
                    0
                })
            }
        };
        &carrier.wire[..carrier.wire_len]
    }

    /// The longest [`Self::encode_frame`] gives, bytes.
    pub(crate) fn max_wire_len(&self) -> usize {
        self.carrier.as_ref().map_or(self.frame.len(), |c| c.wire.len())
    }

    /// The carrier's rate, Hz.
    pub(crate) fn rate(&self) -> u32 {
        self.rate
    }

    /// The carrier's encoding.
    pub(crate) fn encoding(&self) -> AudioEncoding {
        self.encoding
    }

    /// Bytes per sample of the carrier's encoding.
    pub(crate) fn bytes_per_sample(&self) -> usize {
        self.encoding.bytes_per_sample()
    }

    /// The frame last cut (`frame`) as 8 kHz PCM, in pieces of at most `PIECE` samples each
    /// handed to `f` with its offset (8 kHz samples): the reference of the echo gate and the
    /// echo canceller. Higher rates are averaged down, a crude low-pass, but enough: the
    /// canceller hears the caller through a sharp one and learns what of the reference is in
    /// that band (against the engine's own 16 → 8 kHz resampler as the reference, it removed
    /// the same echo on a 16 kHz stream: 23.0 / 20.5 dB at ERL 6 / 10 dB, averaged 24.3 / 20.4,
    /// at a tenth of the work; with highs as loud as the lows, 23.3 / 20.8 and 24.3 / 20.3). A
    /// rate that is not a multiple of 8 kHz gives nothing.
    pub(crate) fn frame_pcm_8k(&self, mut f: impl FnMut(&[i16], usize)) {
        const PIECE: usize = 160;
        if !self.has_reference() {
            return;
        }
        let factor = (self.rate / 8_000) as usize;
        let bytes = self.bytes_per_sample();
        let mut wide = [0i16; PIECE * 6];
        let mut narrow = [0i16; PIECE];
        for (k, part) in self.frame.chunks(PIECE * factor * bytes).enumerate() {
            let n = match self.encoding {
                AudioEncoding::Mulaw => G711::Mulaw.decode(part, &mut wide),
                AudioEncoding::Alaw => G711::Alaw.decode(part, &mut wide),
                AudioEncoding::L16 | AudioEncoding::G722 | AudioEncoding::Opus => decode_l16(part, &mut wide),
            };
            let m = n / factor;
            for (o, group) in narrow.iter_mut().zip(wide[..m * factor].chunks_exact(factor)) {
                *o = (group.iter().map(|&x| i32::from(x)).sum::<i32>() / factor as i32) as i16;
            }
            f(&narrow[..m], k * PIECE);
        }
    }

    /// Whether [`Self::frame_pcm_8k`] gives the frames' audio: at 8 kHz and its multiples up to
    /// 48 kHz (every rate a carrier is sent at).
    pub(crate) fn has_reference(&self) -> bool {
        let factor = self.rate / 8_000;
        self.rate.is_multiple_of(8_000) && (1..=6).contains(&factor)
    }

    /// Whether `samples` of agent audio at `rate` fit in the queue now.
    pub(crate) fn fits(&self, samples: usize, rate: u32) -> bool {
        carrier_samples_bound(samples, self.rate, rate) * self.bytes_per_sample() <= self.queue.free()
    }

    /// Forgets the resamplers' history (after a flush, the next audio starts afresh).
    pub(crate) fn reset_resamplers(&mut self) {
        self.play_resamplers.iter_mut().flatten().for_each(StreamResampler::reset);
    }

    /// Queues agent audio at `rate`: `Ok(Some(n))` with the carrier samples dropped for want of
    /// room (none unless there is a bug: the caller checks [`Self::fits`]), `Ok(None)` when it
    /// does not fit (nothing taken), `Err(())` when `rate` does not convert to the carrier's.
    pub(crate) fn push(&mut self, source: PlaySource<'_>, rate: u32) -> Result<Option<u64>, ()> {
        let idx = PLAY_RATES.iter().position(|&r| r == rate).ok_or(())?;
        let resampler = self.play_resamplers[idx].as_ref().ok_or(())?;
        let len = source.len();
        if let PlaySource::G711(codes, law) = source
            && self.passes_through(law, rate)
        {
            if len > self.queue.free() {
                return Ok(None);
            }
            let taken = self.queue.push_audio(codes);
            return Ok(Some((len - taken) as u64));
        }
        if resampler.max_output_len(len) * self.bytes_per_sample() > self.queue.free() {
            return Ok(None);
        }
        let mut chunk = PLAY_CHUNK;
        while resampler.max_output_len(chunk) > PLAY_CHUNK_OUT {
            chunk /= 2;
        }
        let mut dropped = 0;
        match source {
            PlaySource::Pcm(pcm) => {
                for part in pcm.chunks(chunk) {
                    dropped += self.push_chunk(idx, part);
                }
            }
            PlaySource::Le(bytes) => {
                let mut pcm = [0i16; PLAY_CHUNK];
                for part in bytes.chunks(2 * chunk) {
                    let n = decode_l16(part, &mut pcm);
                    dropped += self.push_chunk(idx, &pcm[..n]);
                }
            }
            PlaySource::G711(codes, law) => {
                let mut pcm = [0i16; PLAY_CHUNK];
                for part in codes.chunks(chunk) {
                    let n = law.decode(part, &mut pcm);
                    dropped += self.push_chunk(idx, &pcm[..n]);
                }
            }
        }
        Ok(Some(dropped))
    }

    /// Whether `law` codes at `rate` are the carrier's own encoding, queued untouched.
    fn passes_through(&self, law: G711, rate: u32) -> bool {
        let same_law = matches!(
            (law, self.encoding),
            (G711::Mulaw, AudioEncoding::Mulaw) | (G711::Alaw, AudioEncoding::Alaw)
        );
        same_law && rate == self.rate
    }

    /// Resamples, encodes and queues one chunk; returns the carrier samples that did not fit.
    fn push_chunk(&mut self, resampler: usize, pcm: &[i16]) -> u64 {
        let mut resampled = [0i16; PLAY_CHUNK_OUT];
        let mut encoded = [0u8; 2 * PLAY_CHUNK_OUT];
        let Some(r) = self.play_resamplers[resampler].as_mut() else { return 0 };
        // Chunks are sized so that their output fits (see `push`): an error would be a bug.
        let n = r.process(pcm, &mut resampled).unwrap_or_else(|_| {
            debug_assert!(false, "a play chunk's output fits its buffer");
            0
        });
        let bytes = match self.encoding {
            AudioEncoding::Mulaw => encode_ulaw(&resampled[..n], &mut encoded),
            AudioEncoding::Alaw => encode_alaw(&resampled[..n], &mut encoded),
            AudioEncoding::L16 | AudioEncoding::G722 | AudioEncoding::Opus => {
                2 * encode_l16(&resampled[..n], &mut encoded)
            }
        };
        let taken = self.queue.push_audio(&encoded[..bytes]);
        // Room for the whole piece was checked, so this is a bug; counted, not hidden.
        debug_assert_eq!(taken, bytes);
        ((bytes - taken) / self.bytes_per_sample()) as u64
    }
}

/// The encoder of a carrier taking `format` in frames of `frame_samples`, if its codec is
/// stateful; `UnsupportedFormat` when it cannot be built (Opus without the `opus` feature, at a
/// rate it is not encoded from here, or in frames other than 20 ms).
fn carrier_encoder(
    format: MediaFormat,
    frame_samples: usize,
) -> Result<Option<Box<CarrierEncoder>>, ProtocolError> {
    let (codec, wire_len) = match format.encoding {
        AudioEncoding::G722 if format.sample_rate == crate::codec::g722::G722_RATE => {
            (CarrierCodec::G722(G722Encoder::new()), frame_samples / 2)
        }
        #[cfg(feature = "opus")]
        AudioEncoding::Opus => {
            let encoder =
                CarrierOpusEncoder::new(format.sample_rate).map_err(|_| ProtocolError::UnsupportedFormat)?;
            if encoder.frame_samples() != frame_samples {
                return Err(ProtocolError::UnsupportedFormat);
            }
            (CarrierCodec::Opus(encoder), carrier_opus::MAX_PACKET_BYTES)
        }
        AudioEncoding::G722 => return Err(ProtocolError::UnsupportedFormat),
        #[cfg(not(feature = "opus"))]
        AudioEncoding::Opus => return Err(ProtocolError::UnsupportedFormat),
        AudioEncoding::Mulaw | AudioEncoding::Alaw | AudioEncoding::L16 => return Ok(None),
    };
    Ok(Some(Box::new(CarrierEncoder {
        codec,
        pcm: vec![0; frame_samples].into_boxed_slice(),
        wire: vec![0; wire_len].into_boxed_slice(),
        wire_len: 0,
    })))
}

/// The most carrier samples `samples` of agent audio at `play_rate` can become at `carrier_rate`
/// (with the resampler's rounding margin): what the queue must have room for.
fn carrier_samples_bound(samples: usize, carrier_rate: u32, play_rate: u32) -> usize {
    (samples as u64 * u64::from(carrier_rate)).div_ceil(u64::from(play_rate.max(1))) as usize + 8
}
