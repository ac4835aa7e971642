//! The host side of [`crate::Session::play_encoded`]: encoded agent audio decoded, on the host's
//! thread, into the PCM that `play` queues.
//!
//! At most one packet of decoded PCM is held (plus, as a stream starts, up to one frame): what
//! did not fit the play ring is offered first on the next call, and no more input is taken until
//! it is gone. Input is taken a page (Ogg) or a packet (raw Opus) at a time, so what is held
//! stays bounded by one page and one packet.
//!
//! A stream's first 20 ms are gathered before any is played: the pacer sends what it has when a
//! frame is due, so a short first packet (what the pre-skip leaves of it, or a 2.5 ms frame)
//! would otherwise go out padded with silence, a gap right after the reply's first sound.

use super::ogg_opus::{OggOpusError, OggOpusStream};
use super::opus::{EncodedAudio, MAX_PACKET_SAMPLES, OPUS_RATES, OpusDecoder, decode_rate};
use std::ops::Range;

/// Audio gathered at a stream's start before it is played, ms (one carrier frame).
const PRIME_MS: usize = 20;
/// The most that gathering adds to one packet's samples (20 ms at 48 kHz).
const PRIME_SAMPLES: usize = 48 * PRIME_MS;

/// Why encoded audio was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum PlayError<E> {
    /// Decoded audio is still waiting for room in the play ring: nothing new was taken.
    Full,
    /// The stream (Ogg) or packet (raw) is corrupt, truncated or unsupported, and was dropped.
    Bad(&'static str),
    /// An argument is out of range.
    InvalidArgument(&'static str),
    /// The sink failed (the session is closed).
    Sink(E),
}

/// Decoders and the pending PCM of one session's encoded playback. Built on first use.
pub struct EncodedPlayer {
    ogg: Option<OggOpusStream>,
    /// The raw-packet decoder, with the rate the host stated for its packets.
    raw: Option<(u32, OpusDecoder)>,
    /// Decoded audio; `pending` is the part not yet played, at `pending_rate`.
    pcm: Box<[i16]>,
    pending: Range<usize>,
    pending_rate: u32,
    /// A stream is starting: its packets are gathered in `pcm` until [`PRIME_MS`] are there.
    priming: bool,
    /// The pending audio was decoded from raw packets (not from the Ogg stream).
    pending_raw: bool,
    /// The barge-in generation the held audio was decoded under.
    generation: u32,
}

impl std::fmt::Debug for EncodedPlayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedPlayer").field("ogg", &self.ogg).field("pending", &self.pending).finish()
    }
}

impl Default for EncodedPlayer {
    fn default() -> Self {
        Self::new()
    }
}

/// Description of an Ogg Opus error (static, for `SessionError`).
fn describe(e: OggOpusError) -> &'static str {
    match e {
        OggOpusError::CapturePattern => "no Ogg capture pattern where a page starts",
        OggOpusError::Version => "unknown Ogg stream structure version",
        OggOpusError::Crc => "Ogg page CRC mismatch",
        OggOpusError::PageOrder => "Ogg pages out of order",
        OggOpusError::Multiplexed => "multiplexed Ogg streams are not supported",
        OggOpusError::NotOpus => "not an Ogg Opus stream (no OpusHead)",
        OggOpusError::BadHeader => "malformed Opus header",
        OggOpusError::Unsupported => "only mono and stereo Opus streams (mapping family 0) are supported",
        OggOpusError::BadPacket => "corrupt Opus packet",
        OggOpusError::Truncated => "Ogg Opus stream truncated",
    }
}

impl EncodedPlayer {
    /// No stream yet.
    pub fn new() -> Self {
        Self {
            ogg: None,
            raw: None,
            pcm: vec![0; MAX_PACKET_SAMPLES + PRIME_SAMPLES].into_boxed_slice(),
            pending: 0..0,
            pending_rate: 0,
            priming: false,
            pending_raw: false,
            generation: 0,
        }
    }

    /// Decoded samples waiting to be played.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The agent was cut off (barge-in `generation`): audio decoded from input taken before is
    /// dropped, as the worker drops the PCM queued before it. The streams go on.
    pub fn cut(&mut self, generation: u32) {
        if generation == self.generation {
            return;
        }
        self.generation = generation;
        self.pending = 0..0;
        // Playing starts afresh: gather a frame again.
        self.priming = true;
        if let Some(ogg) = &mut self.ogg {
            // Packets of pages already taken: decoded (keeping the decoder's state continuous)
            // and dropped.
            loop {
                match ogg.decode_next(&mut self.pcm) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        self.ogg = None;
                        break;
                    }
                }
            }
        }
    }

    /// Where the next packet decodes to: after the audio gathered while priming, else at the
    /// start (nothing is pending then: packets are decoded once the last one has played).
    fn decode_at(&self) -> usize {
        if self.priming { self.pending.end } else { 0 }
    }

    /// A packet of `len` samples at `rate` was decoded at [`Self::decode_at`]. `first`: it starts
    /// a stream (gathering begins); `last`: it ends one (what was gathered plays now).
    fn decoded(&mut self, len: usize, rate: u32, first: bool, last: bool) {
        self.pending = 0..self.decode_at() + len;
        if first {
            // Gathering begins with this packet (decoded at 0: nothing was pending).
            self.priming = true;
        }
        self.pending_rate = rate;
        if last || self.pending.len() >= rate as usize / 1000 * PRIME_MS {
            self.priming = false;
        }
    }

    /// Decoded audio holds new input back (it is pending and not being gathered).
    fn blocked(&self) -> bool {
        !self.priming && !self.pending.is_empty()
    }

    /// Offers the pending audio to `sink` (which returns the samples it took, 0 when full);
    /// `true` when none holds input back.
    fn drain<E>(&mut self, sink: &mut impl FnMut(&[i16], u32) -> Result<usize, E>) -> Result<bool, E> {
        if self.priming {
            return Ok(true);
        }
        while !self.pending.is_empty() {
            let n = sink(&self.pcm[self.pending.clone()], self.pending_rate)?;
            if n == 0 {
                return Ok(false);
            }
            self.pending.start += n;
        }
        Ok(true)
    }

    /// Plays `data` (see [`crate::Session::play_encoded`]) through `sink`, for a play path that
    /// wants `target_rate` Hz; returns the input bytes taken.
    pub fn play<E>(
        &mut self,
        data: &[u8],
        codec: EncodedAudio,
        target_rate: u32,
        mut sink: impl FnMut(&[i16], u32) -> Result<usize, E>,
    ) -> Result<usize, PlayError<E>> {
        match codec {
            EncodedAudio::OggOpus => self.play_ogg(data, target_rate, &mut sink),
            EncodedAudio::Opus { rate } => self.play_packet(data, rate, target_rate, &mut sink),
        }
    }

    fn play_ogg<E>(
        &mut self,
        data: &[u8],
        target_rate: u32,
        sink: &mut impl FnMut(&[i16], u32) -> Result<usize, E>,
    ) -> Result<usize, PlayError<E>> {
        if self.pending_raw {
            // What was gathered of raw packets plays first, at its own rate.
            self.priming = false;
        }
        if !self.drain(sink).map_err(PlayError::Sink)? {
            return Err(PlayError::Full);
        }
        let mut taken = 0;
        loop {
            let at = self.decode_at();
            let ogg = self.ogg.get_or_insert_with(|| OggOpusStream::new(target_rate));
            // The packets of the pages taken first, one at a time.
            let next = ogg.decode_next(&mut self.pcm[at..]);
            match next {
                Ok(Some(d)) => {
                    self.decoded(d.len, d.rate, d.first, d.last);
                    self.pending_raw = false;
                    if !self.drain(sink).map_err(PlayError::Sink)? {
                        break;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.ogg = None;
                    return Err(PlayError::Bad(describe(e)));
                }
            }
            if taken == data.len() {
                break;
            }
            let ogg = self.ogg.get_or_insert_with(|| OggOpusStream::new(target_rate));
            match ogg.push(&data[taken..]) {
                Ok(n) => taken += n,
                Err(e) => {
                    self.ogg = None;
                    return Err(PlayError::Bad(describe(e)));
                }
            }
        }
        if taken == 0 && self.blocked() { Err(PlayError::Full) } else { Ok(taken) }
    }

    fn play_packet<E>(
        &mut self,
        packet: &[u8],
        rate: u32,
        target_rate: u32,
        sink: &mut impl FnMut(&[i16], u32) -> Result<usize, E>,
    ) -> Result<usize, PlayError<E>> {
        if !OPUS_RATES.contains(&rate) {
            return Err(PlayError::InvalidArgument(
                "Opus rate must be 8000, 12000, 16000, 24000 or 48000 Hz",
            ));
        }
        let new_stream = self.raw.as_ref().is_none_or(|(stated, _)| *stated != rate);
        let gathered_ogg = !self.pending_raw && !self.pending.is_empty();
        if (new_stream || gathered_ogg) && !packet.is_empty() {
            // What was gathered of another stream (or of the Ogg stream) plays first.
            self.priming = false;
        }
        if !self.drain(sink).map_err(PlayError::Sink)? {
            return Err(PlayError::Full);
        }
        if packet.is_empty() {
            return Ok(0);
        }
        if new_stream {
            let decoder = OpusDecoder::new(decode_rate(rate, target_rate))
                .map_err(|_| PlayError::Bad("Opus decoder unavailable"))?;
            self.raw = Some((rate, decoder));
        }
        let at = self.decode_at();
        let Some((_, decoder)) = &mut self.raw else { unreachable!("set above") };
        match decoder.decode(packet, &mut self.pcm[at..]) {
            Ok(n) => {
                let rate = decoder.rate();
                self.decoded(n, rate, new_stream, false);
                self.pending_raw = true;
            }
            Err(_) => {
                // The next packet starts from a fresh decoder.
                self.raw = None;
                return Err(PlayError::Bad("corrupt Opus packet"));
            }
        }
        // What does not fit waits for the next call.
        self.drain(sink).map_err(PlayError::Sink)?;
        Ok(packet.len())
    }

    /// The host's encoded input is over: plays what is pending (`Full` while some waits for
    /// room: call again), then checks the Ogg stream ended on a page and packet boundary, and
    /// forgets the streams (the next input starts anew).
    pub fn end<E>(
        &mut self,
        mut sink: impl FnMut(&[i16], u32) -> Result<usize, E>,
    ) -> Result<(), PlayError<E>> {
        // Whatever was gathered plays now.
        self.priming = false;
        if !self.drain(&mut sink).map_err(PlayError::Sink)? {
            return Err(PlayError::Full);
        }
        if self.ogg.is_some() {
            // The packets of the pages taken (the stream exists: its rate is chosen).
            self.play_ogg(&[], 0, &mut sink)?;
            self.priming = false;
            if !self.drain(&mut sink).map_err(PlayError::Sink)? {
                return Err(PlayError::Full);
            }
        }
        self.raw = None;
        match self.ogg.take().map(|ogg| ogg.finish()) {
            Some(Err(e)) => Err(PlayError::Bad(describe(e))),
            _ => Ok(()),
        }
    }
}
