//! Inbound jitter buffer: puts caller audio back in stream order by media timestamp.
//!
//! Frames are placed by their timestamp, never by arrival time. In-order frames pass straight
//! through (no added latency). A gap is waited for until audio `window` past it has arrived or
//! `window` of wall time has passed, then filled with silence so the delivered PCM stays aligned
//! with stream time. Duplicates and frames older than what was delivered are dropped and counted.
//! Jumps larger than `max_gap` (a carrier restart, a clock hours off) re-anchor the stream instead
//! of inventing hours of silence. Delivered positions are always contiguous, so downstream stages
//! see one monotonic timeline.

use crate::audio::SAMPLES_PER_MS;
use crate::codec::{decode_alaw, decode_l16, decode_ulaw, encode_l16};
use crate::quality::InterarrivalJitter;
use crate::stats::SessionStats;

/// Slots for audio held out of order; a frame that finds too few free fills the gap at once.
const SLOTS: usize = 6;
/// Samples a slot holds (20 ms at 24 kHz): a longer frame (20 ms of 48 kHz L16, 40 ms of Opus)
/// takes consecutive pieces, so no session pays for slots sized for the largest frames.
const SLOT_SAMPLES: usize = 480;
/// Timestamps beyond this (about 35 years) are refused by the session before they get here, so
/// position arithmetic cannot overflow.
pub const MAX_TIMESTAMP_MS: u64 = 1 << 40;
/// A sequence number this far behind the highest seen is a restart of the numbering, not a
/// duplicate.
const SEQ_RESET: u64 = 1000;

/// Audio released in stream order. `start` is the position in the delivered timeline (carrier-rate
/// samples since the stream started), equal to the carrier's timestamp unless the stream was
/// re-anchored after a jump.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery<'a> {
    /// Received audio.
    Audio {
        /// Delivered-timeline position of `pcm[0]`.
        start: u64,
        /// The samples.
        pcm: &'a [i16],
    },
    /// Silence standing in for audio that never arrived.
    Silence {
        /// Delivered-timeline position of the first silent sample.
        start: u64,
        /// Number of silent samples.
        len: u64,
    },
    /// The stream was re-anchored here (its timestamps jumped further than a gap is filled):
    /// the audio after does not go on from the audio before, though the two meet on the
    /// delivered timeline. Never before a stream's first audio.
    Splice {
        /// Delivered-timeline position of the audio after the jump.
        start: u64,
    },
}

/// Where released audio goes: each [`Delivery`], and with received audio the same samples as
/// the carrier's G.711 codes, exactly as received (empty for silence, and when the carrier's
/// audio is not G.711): what an agent speaking the same law is given untouched.
pub trait Deliver: FnMut(Delivery<'_>, &[u8]) {}

impl<F: FnMut(Delivery<'_>, &[u8])> Deliver for F {}

/// One frame's audio as it arrived: PCM, or the carrier's encoding, which is decoded a piece at a
/// time as it is delivered (or held), so a session needs no buffer the size of its largest payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAudio<'a> {
    /// Decoded samples.
    Pcm(&'a [i16]),
    /// G.711 µ-law, a byte per sample.
    Mulaw(&'a [u8]),
    /// G.711 A-law, a byte per sample.
    Alaw(&'a [u8]),
    /// Signed 16-bit little-endian; an odd last byte is ignored.
    L16(&'a [u8]),
}

impl FrameAudio<'_> {
    /// Samples in the frame.
    pub fn len(&self) -> usize {
        match self {
            Self::Pcm(p) => p.len(),
            Self::Mulaw(b) | Self::Alaw(b) => b.len(),
            Self::L16(b) => b.len() / 2,
        }
    }

    /// Whether the frame has no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame without its first `n` samples.
    fn skip(self, n: usize) -> Self {
        match self {
            Self::Pcm(p) => Self::Pcm(&p[n..]),
            Self::Mulaw(b) => Self::Mulaw(&b[n..]),
            Self::Alaw(b) => Self::Alaw(&b[n..]),
            Self::L16(b) => Self::L16(&b[2 * n..]),
        }
    }

    /// The G.711 codes of the frame, if it is G.711.
    fn g711(&self) -> &[u8] {
        match self {
            Self::Mulaw(b) | Self::Alaw(b) => b,
            Self::Pcm(_) | Self::L16(_) => &[],
        }
    }

    /// Decodes the first `out.len()` samples (at most [`Self::len`]) into `out`.
    fn decode_into(&self, out: &mut [i16]) {
        match self {
            Self::Pcm(p) => out.copy_from_slice(&p[..out.len()]),
            Self::Mulaw(b) => {
                decode_ulaw(&b[..out.len()], out);
            }
            Self::Alaw(b) => {
                decode_alaw(&b[..out.len()], out);
            }
            Self::L16(b) => {
                decode_l16(b, out);
            }
        }
    }
}

/// Encoded audio is decoded for delivery in pieces of at most this many samples.
const DECODE_PIECE: usize = 480;

/// What happened to one pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Delivered (possibly with earlier held frames).
    Delivered,
    /// Held until the gap before it is resolved.
    Held,
    /// Dropped: this sequence number was already seen.
    Duplicate,
    /// Dropped: its audio lies entirely before what was already delivered.
    Late,
    /// The timestamp jumped by more than the fill limit; the stream was re-anchored and the
    /// frame delivered.
    Jump,
}

/// How a held frame's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotEncoding {
    Mulaw,
    Alaw,
    L16,
}

#[derive(Debug, Clone)]
struct Slot {
    start: u64,
    len: usize,
    /// Whether this is the frame's last piece (see [`SLOT_SAMPLES`]): a frame is counted late,
    /// and its wait counted, once, there.
    last: bool,
    /// When the frame arrived, µs: its wait here is counted when it leaves.
    arrived_us: u64,
    encoding: SlotEncoding,
    /// The frame as received (PCM as L16), so that G.711 leaves exactly as it came: decoding
    /// it here and encoding again would not give back every code (µ-law's two zeros).
    bytes: [u8; 2 * SLOT_SAMPLES],
}

impl Slot {
    /// The frame's audio from sample `skip` on.
    fn audio(&self, skip: usize) -> FrameAudio<'_> {
        match self.encoding {
            SlotEncoding::Mulaw => FrameAudio::Mulaw(&self.bytes[skip..self.len]),
            SlotEncoding::Alaw => FrameAudio::Alaw(&self.bytes[skip..self.len]),
            SlotEncoding::L16 => FrameAudio::L16(&self.bytes[2 * skip..2 * self.len]),
        }
    }
}

/// What [`SeenWindow::insert`] knows of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    New,
    /// Among the last 64 numbers, and seen.
    Seen,
    /// Further back than the window remembers.
    TooOld,
}

/// Sliding window of recently seen sequence numbers (RFC 3550-style duplicate detection).
#[derive(Debug, Default, Clone)]
struct SeenWindow {
    highest: Option<u64>,
    /// Bit i set: `highest - i` was seen.
    mask: u64,
}

impl SeenWindow {
    /// Starts the window afresh at `seq` (the carrier renumbered its frames).
    fn restart(&mut self, seq: u64) {
        self.highest = Some(seq);
        self.mask = 1;
    }

    /// Records `seq`: whether it is new, was seen, or is too far back to tell (treated as seen
    /// unless its timestamp says the carrier started again: such a frame is hopelessly late).
    fn insert(&mut self, seq: u64) -> Seq {
        match self.highest {
            None => {
                self.restart(seq);
                Seq::New
            }
            Some(h) if seq > h => {
                let shift = seq - h;
                self.mask = if shift >= 64 { 0 } else { self.mask << shift };
                self.mask |= 1;
                self.highest = Some(seq);
                Seq::New
            }
            Some(h) => {
                let back = h - seq;
                if back > SEQ_RESET {
                    // The carrier restarted its numbering: start a fresh window.
                    self.restart(seq);
                    return Seq::New;
                }
                if back >= 64 {
                    return Seq::TooOld;
                }
                let bit = 1u64 << back;
                let fresh = self.mask & bit == 0;
                self.mask |= bit;
                if fresh { Seq::New } else { Seq::Seen }
            }
        }
    }
}

/// The reorder/gap-fill stage. Fixed memory; never allocates after construction.
#[derive(Debug)]
pub struct InboundReorder {
    /// Carrier samples per millisecond. Timestamps have 1 ms resolution, so a frame starting
    /// within this many samples of the expected position is treated as contiguous.
    samples_per_ms: u64,
    window_ms: u32,
    max_gap_ms: u32,
    window_samples: u64,
    window_us: u64,
    max_gap_samples: u64,
    /// Next expected position on the carrier's timeline; `None` before the first frame.
    next: Option<u64>,
    /// Where the carrier's timeline before the last jump ended (its `next` then), and when the
    /// jump came (µs): a frame of that timeline held up in the network may follow (see
    /// [`Self::push_frame_coded`]).
    left_at: Option<(u64, u64)>,
    /// Next position on the delivered timeline.
    out_pos: u64,
    slots: Box<[Option<Slot>]>,
    /// Wall time when the current gap was first seen.
    gap_since_us: Option<u64>,
    seen: SeenWindow,
    jitter: InterarrivalJitter,
    /// The latest time pushed or polled, µs: when held frames leave at the end of the stream.
    now_us: u64,
    /// Samples of the frame leaving in pieces whose earlier pieces were dropped as late: the frame
    /// is late whole if its last piece is too, else trimmed.
    late_pieces: u64,
}

impl InboundReorder {
    /// `window_ms`: how long a gap is waited for; `max_gap_ms`: the largest gap filled with silence.
    /// Positions count samples at the carrier's rate, 8 kHz until [`Self::set_rate`].
    pub fn new(window_ms: u32, max_gap_ms: u32) -> Self {
        Self {
            samples_per_ms: SAMPLES_PER_MS,
            window_ms,
            max_gap_ms,
            window_samples: u64::from(window_ms) * SAMPLES_PER_MS,
            window_us: u64::from(window_ms) * 1000,
            max_gap_samples: u64::from(max_gap_ms) * SAMPLES_PER_MS,
            next: None,
            left_at: None,
            out_pos: 0,
            slots: vec![None; SLOTS].into_boxed_slice(),
            gap_since_us: None,
            seen: SeenWindow::default(),
            jitter: InterarrivalJitter::new(),
            now_us: 0,
            late_pieces: 0,
        }
    }

    /// Counts positions at `rate` Hz (a multiple of 1 kHz), the rate of the carrier's audio.
    /// Called when the stream starts, before its first frame.
    pub fn set_rate(&mut self, rate: u32) {
        debug_assert!(self.next.is_none(), "the rate is set before the first frame");
        self.samples_per_ms = u64::from(rate / 1000).max(1);
        self.window_samples = u64::from(self.window_ms) * self.samples_per_ms;
        self.max_gap_samples = u64::from(self.max_gap_ms) * self.samples_per_ms;
    }

    /// Carrier samples per millisecond.
    pub fn samples_per_ms(&self) -> u64 {
        self.samples_per_ms
    }

    /// The carrier time (ms) the next frame is expected at: where a frame goes when its carrier
    /// sends no timestamps and the stream is taken in arrival order.
    pub fn expected_ms(&self) -> u64 {
        self.next.unwrap_or(0) / self.samples_per_ms
    }

    /// Delivered-timeline position of the next sample to be delivered.
    pub fn position(&self) -> u64 {
        self.out_pos
    }

    /// Interarrival jitter estimate (RFC 3550 §6.4.1), in microseconds.
    pub fn jitter_us(&self) -> u64 {
        self.jitter.jitter_us() as u64
    }

    /// Samples held out of order, waiting for a gap before them.
    pub fn held_samples(&self) -> usize {
        self.slots.iter().flatten().map(|s| s.len).sum()
    }

    /// The most silence one frame can release when it resolves a gap that was waited for (a
    /// larger one is a gap filled at once, or a jump).
    pub fn window_samples(&self) -> usize {
        self.window_samples as usize
    }

    /// When [`Self::poll`] next has work (a held gap timing out), as wall time in µs.
    pub fn deadline_us(&self) -> Option<u64> {
        self.gap_since_us.map(|t| t + self.window_us)
    }

    /// Takes one frame of decoded PCM starting at carrier timestamp `timestamp_ms`.
    #[cfg(any(test, feature = "internals"))]
    pub fn push(
        &mut self,
        sequence: Option<u64>,
        timestamp_ms: u64,
        pcm: &[i16],
        now_us: u64,
        counters: &mut SessionStats,
        deliver: &mut impl FnMut(Delivery<'_>),
    ) -> Arrival {
        self.push_frame(sequence, timestamp_ms, FrameAudio::Pcm(pcm), now_us, counters, deliver)
    }

    /// Takes one frame of audio, as received, starting at carrier timestamp `timestamp_ms`.
    #[cfg(any(test, feature = "internals"))]
    pub fn push_frame(
        &mut self,
        sequence: Option<u64>,
        timestamp_ms: u64,
        pcm: FrameAudio<'_>,
        now_us: u64,
        counters: &mut SessionStats,
        deliver: &mut impl FnMut(Delivery<'_>),
    ) -> Arrival {
        self.push_frame_coded(sequence, timestamp_ms, pcm, now_us, counters, &mut |d, _| deliver(d))
    }

    /// [`Self::push_frame`], delivering with each piece of audio the carrier's G.711 codes of
    /// it as received (see [`Deliver`]).
    pub fn push_frame_coded(
        &mut self,
        sequence: Option<u64>,
        timestamp_ms: u64,
        pcm: FrameAudio<'_>,
        now_us: u64,
        counters: &mut SessionStats,
        deliver: &mut impl Deliver,
    ) -> Arrival {
        debug_assert!(timestamp_ms <= MAX_TIMESTAMP_MS, "the session refuses larger timestamps");
        self.now_us = self.now_us.max(now_us);
        let mut start = timestamp_ms.saturating_mul(self.samples_per_ms);
        let next = *self.next.get_or_insert(0);
        let len = pcm.len() as u64;
        // Far outside the stream in either direction: a jump of the carrier's timestamps.
        let jump = start > next + self.max_gap_samples || start + len + self.max_gap_samples < next;
        if let Some(seq) = sequence
            && let seen @ (Seq::Seen | Seq::TooOld) = self.seen.insert(seq)
        {
            // A number seen (or too far back to tell) on audio the stream has not had: past what
            // was delivered and not held, or, too far back to tell, far from it (the carrier
            // restarted its timestamps with its numbering). The carrier renumbered its frames (a
            // restart fewer than `SEQ_RESET` back), and this is new audio, not a duplicate.
            let held = self.slots.iter().flatten().any(|s| s.start == start);
            let restarted = jump && seen == Seq::TooOld;
            // Behind the stream by no more than the millisecond its timestamps are rounded to
            // (below) is where the stream is: new audio, not a duplicate.
            let behind = start + self.samples_per_ms < next;
            if (behind && !restarted) || held {
                counters.frames_duplicate += 1;
                return Arrival::Duplicate;
            }
            self.seen.restart(seq);
        }
        let media_us = timestamp_ms.min(MAX_TIMESTAMP_MS) * 1000;

        // Far outside the stream in either direction: re-anchor rather than drop the rest of
        // the call or invent hours of silence.
        if jump {
            // A frame of the timeline left at the last jump, behind where it ended by less than
            // a jump, arriving within `max_gap` of wall time after the jump (held up in the
            // network): late, as a frame behind the stream is. Taken for a jump back, it was
            // spliced in, and the stream spliced again at the next frame. A frame at or after
            // where that timeline ended is still a jump back: it may be the carrier going on
            // after one bogus timestamp, which one frame cannot tell from a straggler.
            if let Some((left_at, jumped_us)) = self.left_at
                && now_us < jumped_us + u64::from(self.max_gap_ms) * 1000
                && start + len <= left_at
                && start + len + self.max_gap_samples >= left_at
            {
                counters.frames_late += 1;
                counters.late_samples += len;
                return Arrival::Late;
            }
            self.flush_coded(counters, deliver);
            self.left_at = self.next.map(|left_at| (left_at, now_us));
            counters.timestamp_jumps += 1;
            // A new timeline: its frames are compared with this one, and the jump is no jitter.
            self.jitter.resync(now_us, media_us);
            if self.out_pos > 0 {
                deliver(Delivery::Splice { start: self.out_pos }, &[]);
            }
            self.next = Some(start + len);
            self.emit_audio(pcm, deliver);
            return Arrival::Jump;
        }
        self.jitter.update(now_us, media_us);
        if start.abs_diff(next) <= self.samples_per_ms {
            start = next;
        }
        if start > next {
            // A gap before this frame: hold it if we can, then see whether the gap has waited
            // enough.
            if self.hold(start, pcm, now_us) {
                self.gap_since_us.get_or_insert(now_us);
                self.resolve_gaps(now_us, counters, deliver);
                return Arrival::Held;
            }
            // No room to hold it: give up on the gap now, releasing (in order) what is held
            // before this frame so that none of it is overwritten by the silence. A frame so
            // released may run past this one's start: then it is trimmed below, as a frame
            // overlapping delivered audio.
            while let Some(i) = self.earliest_slot() {
                let held_start = self.slots[i].as_ref().map_or(start, |s| s.start);
                if held_start >= start {
                    break;
                }
                self.fill_to(held_start, counters, deliver);
                self.drain_in_order(counters, deliver);
            }
            self.fill_to(start, counters, deliver);
        }
        let next = self.next.unwrap_or(0);
        if start + len <= next {
            counters.frames_late += 1;
            counters.late_samples += len;
            return Arrival::Late;
        }
        let mut pcm = pcm;
        if start < next {
            // Overlaps audio already delivered: keep only the new tail.
            let skip = (next - start) as usize;
            pcm = pcm.skip(skip);
            start = next;
            counters.frames_overlap_trimmed += 1;
        }
        if self.slots.iter().any(Option::is_some) {
            // It fills a gap that later frames had already arrived behind.
            counters.frames_reordered += 1;
        }
        self.next = Some(start + pcm.len() as u64);
        self.emit_audio(pcm, deliver);
        self.drain_in_order(counters, deliver);
        Arrival::Delivered
    }

    /// Fills a held gap whose wait has run out. Call on every timer tick.
    #[cfg(any(test, feature = "internals"))]
    pub fn poll(&mut self, now_us: u64, counters: &mut SessionStats, deliver: &mut impl FnMut(Delivery<'_>)) {
        self.poll_coded(now_us, counters, &mut |d, _| deliver(d));
    }

    /// [`Self::poll`], delivering codes too (see [`Deliver`]).
    pub fn poll_coded(&mut self, now_us: u64, counters: &mut SessionStats, deliver: &mut impl Deliver) {
        self.now_us = self.now_us.max(now_us);
        self.resolve_gaps(now_us, counters, deliver);
    }

    /// Releases everything held, filling gaps (end of stream).
    #[cfg(any(test, feature = "internals"))]
    pub fn flush(&mut self, counters: &mut SessionStats, deliver: &mut impl FnMut(Delivery<'_>)) {
        self.flush_coded(counters, &mut |d, _| deliver(d));
    }

    /// [`Self::flush`], delivering codes too (see [`Deliver`]).
    pub fn flush_coded(&mut self, counters: &mut SessionStats, deliver: &mut impl Deliver) {
        while let Some(i) = self.earliest_slot() {
            let start = self.slots[i].as_ref().map_or(0, |s| s.start);
            self.fill_to(start, counters, deliver);
            self.drain_in_order(counters, deliver);
        }
        self.gap_since_us = None;
    }

    fn resolve_gaps(&mut self, now_us: u64, counters: &mut SessionStats, deliver: &mut impl Deliver) {
        loop {
            let Some(since) = self.gap_since_us else { return };
            let Some(next) = self.next else { return };
            let held_end = self.slots.iter().flatten().map(|s| s.start + s.len as u64).max().unwrap_or(next);
            let waited = now_us.saturating_sub(since) >= self.window_us;
            let overtaken = held_end.saturating_sub(next) > self.window_samples;
            if !(waited || overtaken) {
                return;
            }
            let Some(i) = self.earliest_slot() else {
                self.gap_since_us = None;
                return;
            };
            let start = self.slots[i].as_ref().map_or(next, |s| s.start);
            self.fill_to(start, counters, deliver);
            self.drain_in_order(counters, deliver);
        }
    }

    /// Holds a frame that came after a gap, in as many slots as it takes; false (nothing held)
    /// if too few are free.
    fn hold(&mut self, start: u64, pcm: FrameAudio<'_>, now_us: u64) -> bool {
        let free = self.slots.iter().filter(|s| s.is_none()).count();
        if pcm.len().div_ceil(SLOT_SAMPLES) > free {
            return false;
        }
        let mut rest = pcm;
        let mut piece_start = start;
        while !rest.is_empty() {
            let len = rest.len().min(SLOT_SAMPLES);
            let last = len == rest.len();
            let mut bytes = [0; 2 * SLOT_SAMPLES];
            let encoding = match rest {
                FrameAudio::Mulaw(b) | FrameAudio::Alaw(b) => {
                    bytes[..len].copy_from_slice(&b[..len]);
                    if matches!(rest, FrameAudio::Mulaw(_)) { SlotEncoding::Mulaw } else { SlotEncoding::Alaw }
                }
                FrameAudio::L16(b) => {
                    bytes[..2 * len].copy_from_slice(&b[..2 * len]);
                    SlotEncoding::L16
                }
                FrameAudio::Pcm(p) => {
                    encode_l16(&p[..len], &mut bytes);
                    SlotEncoding::L16
                }
            };
            let slot = self.slots.iter_mut().find(|s| s.is_none()).expect("enough slots were free");
            *slot = Some(Slot { start: piece_start, len, last, arrived_us: now_us, encoding, bytes });
            piece_start += len as u64;
            rest = rest.skip(len);
        }
        true
    }

    fn earliest_slot(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, s.start)))
            .min_by_key(|&(_, start)| start)
            .map(|(i, _)| i)
    }

    /// Delivers held frames that now continue the stream; drops held frames made late.
    fn drain_in_order(&mut self, counters: &mut SessionStats, deliver: &mut impl Deliver) {
        while let Some(i) = self.earliest_slot() {
            let next = self.next.unwrap_or(0);
            let slot = self.slots[i].take().expect("earliest_slot returns a full slot");
            let mut start = slot.start;
            if start.abs_diff(next) <= self.samples_per_ms {
                start = next;
            }
            let end = start + slot.len as u64;
            if end <= next {
                // A frame's pieces leave in order: late at its last piece, it was late whole.
                self.late_pieces += slot.len as u64;
                if slot.last {
                    counters.frames_late += 1;
                    counters.late_samples += std::mem::take(&mut self.late_pieces);
                }
                continue;
            }
            if start > next {
                self.slots[i] = Some(slot);
                // A gap further on, with frames already held behind it: its own wait starts now,
                // not with the gap just closed.
                self.gap_since_us = Some(self.now_us);
                return;
            }
            if slot.last {
                counters.reorder_wait_us += self.now_us.saturating_sub(slot.arrived_us);
            }
            let skip = (next - start) as usize;
            // Its start overlapped audio delivered: in this piece, or in pieces dropped before it.
            if skip > 0 || std::mem::take(&mut self.late_pieces) > 0 {
                counters.frames_overlap_trimmed += 1;
            }
            self.next = Some(end);
            self.emit_audio(slot.audio(skip), deliver);
        }
        self.gap_since_us = None;
    }

    fn fill_to(&mut self, start: u64, counters: &mut SessionStats, deliver: &mut impl Deliver) {
        let next = self.next.unwrap_or(0);
        if start > next {
            let len = start - next;
            deliver(Delivery::Silence { start: self.out_pos, len }, &[]);
            self.out_pos += len;
            self.next = Some(start);
            counters.gap_fill_samples += len;
        }
    }

    fn emit_audio(&mut self, audio: FrameAudio<'_>, deliver: &mut impl Deliver) {
        if let FrameAudio::Pcm(pcm) = audio {
            if !pcm.is_empty() {
                deliver(Delivery::Audio { start: self.out_pos, pcm }, &[]);
                self.out_pos += pcm.len() as u64;
            }
            return;
        }
        let mut buf = [0i16; DECODE_PIECE];
        let mut rest = audio;
        while !rest.is_empty() {
            let n = rest.len().min(DECODE_PIECE);
            rest.decode_into(&mut buf[..n]);
            let g711 = rest.g711();
            deliver(Delivery::Audio { start: self.out_pos, pcm: &buf[..n] }, &g711[..g711.len().min(n)]);
            self.out_pos += n as u64;
            rest = rest.skip(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs frames through the buffer and returns the delivered timeline as one Vec, silence as 0.
    fn run(frames: &[(Option<u64>, u64, i16, usize, u64)], window_ms: u32) -> (Vec<i16>, SessionStats) {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(window_ms, 2000);
        let mut out = Vec::new();
        let mut sink = |d: Delivery<'_>| match d {
            Delivery::Audio { start, pcm } => {
                assert_eq!(start as usize, out.len());
                out.extend_from_slice(pcm)
            }
            Delivery::Silence { start, len } => {
                assert_eq!(start as usize, out.len());
                out.resize(out.len() + len as usize, 0)
            }
            Delivery::Splice { start } => assert_eq!(start as usize, out.len()),
        };
        for &(seq, ts, value, len, now) in frames {
            let pcm = vec![value; len];
            r.push(seq, ts, &pcm, now, &mut counters, &mut sink);
            r.poll(now, &mut counters, &mut sink);
        }
        r.flush(&mut counters, &mut sink);
        (out, counters)
    }

    #[test]
    fn a_restart_of_the_numbering_and_the_timestamps_together_loses_no_audio() {
        // Five seconds in, the carrier starts again from sequence 1 and timestamp 0.
        let mut f: Vec<_> = (0..250).map(|i| (Some(i + 2), i * 20, 1, 160, i * 20_000)).collect();
        f.extend((0..50).map(|i| (Some(i + 1), i * 20, 2, 160, (250 + i) * 20_000)));
        let (out, c) = run(&f, 60);
        assert_eq!((c.frames_duplicate, c.timestamp_jumps), (0, 1), "{c:?}");
        assert_eq!(out.len(), 300 * 160);
        assert!(out[250 * 160..].iter().all(|&v| v == 2));
        // A number among the last ones seen, far behind the stream: a duplicate still (a
        // restart numbers from far back, where the window no longer remembers).
        let mut f: Vec<_> = (0..250).map(|i| (Some(i + 2), i * 20, 1, 160, i * 20_000)).collect();
        f.push((Some(240), 20, 3, 160, 250 * 20_000));
        let (out, c) = run(&f, 60);
        assert_eq!((c.frames_duplicate, c.timestamp_jumps), (1, 0), "{c:?}");
        assert_eq!(out.len(), 250 * 160);
    }

    #[test]
    fn in_order_frames_pass_through_contiguously() {
        let frames: Vec<_> = (0..5).map(|i| (Some(i + 2), i * 20, i as i16 + 1, 160, i * 20_000)).collect();
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 800);
        for i in 0..5 {
            assert!(out[i * 160..(i + 1) * 160].iter().all(|&s| s == i as i16 + 1));
        }
        assert_eq!(c.gap_fill_samples, 0);
    }

    #[test]
    fn swapped_frames_are_put_back_in_order() {
        // Frame 2 arrives before frame 1.
        let frames = [
            (Some(1), 0, 1, 160, 0),
            (Some(3), 40, 3, 160, 40_000),
            (Some(2), 20, 2, 160, 41_000),
            (Some(4), 60, 4, 160, 60_000),
        ];
        let (out, c) = run(&frames, 60);
        let expect: Vec<i16> = [1, 2, 3, 4].iter().flat_map(|&v| [v; 160]).collect();
        assert_eq!(out, expect);
        assert_eq!(c.frames_reordered, 1);
        assert_eq!(c.gap_fill_samples, 0);
        // Frame 3 waited from its arrival (40 ms) to frame 2's (41 ms); nothing else was held.
        assert_eq!(c.reorder_wait_us, 1_000);
    }

    #[test]
    fn frames_longer_than_a_slot_are_put_back_in_order_too() {
        // 20 ms frames of 48 kHz audio (960 samples, two slots each), held on the 8 kHz
        // timeline as 960 samples = 120 ms: frame 3 arrives before frame 2, then frames 4 and 5.
        let f = |seq: u64, v: i16, now: u64| (Some(seq), (seq - 1) * 120, v, 960, now);
        let frames = [f(1, 1, 0), f(3, 3, 20_000), f(2, 2, 21_000), f(4, 4, 40_000)];
        let (out, c) = run(&frames, 300);
        let expect: Vec<i16> = [1, 2, 3, 4].iter().flat_map(|&v| [v; 960]).collect();
        assert_eq!(out, expect);
        assert_eq!((c.frames_reordered, c.gap_fill_samples, c.frames_late), (1, 0, 0), "{c:?}");
        // Frame 3's wait, counted once though it filled two slots.
        assert_eq!(c.reorder_wait_us, 1_000);
        // Held in pieces, then made late whole by a longer frame covering it: one late frame,
        // all its samples.
        let frames = [f(1, 1, 0), f(3, 3, 20_000), (Some(2), 120, 2, 1920, 21_000)];
        let (out, c) = run(&frames, 300);
        let expect: Vec<i16> = [1, 2, 2].iter().flat_map(|&v| [v; 960]).collect();
        assert_eq!(out, expect);
        assert_eq!((c.frames_late, c.late_samples, c.reorder_wait_us), (1, 960, 0), "{c:?}");
        // Covered in part (its first piece): trimmed, as a frame in one slot would be, not late.
        let frames = [f(1, 1, 0), f(3, 3, 20_000), (Some(2), 120, 2, 1440, 21_000)];
        let (out, c) = run(&frames, 300);
        let mut expect: Vec<i16> = [1, 2].iter().flat_map(|&v| [v; 960]).collect();
        expect.extend([2; 480].iter().chain(&[3; 480]));
        assert_eq!(out, expect);
        assert_eq!((c.frames_late, c.late_samples, c.frames_overlap_trimmed), (0, 0, 1), "{c:?}");
        // A frame that would fit the slots but finds too few free gives the gap up at once: five
        // frames held behind a lost one leave one slot, and the next needs two.
        let mut frames = vec![(Some(1), 0, 1, 160, 0)];
        frames.extend((3..8).map(|seq| (Some(seq), (seq - 1) * 20, seq as i16, 160, seq * 1_000)));
        frames.push((Some(8), 140, 8, 960, 9_000));
        let (out, c) = run(&frames, 300);
        let mut expect: Vec<i16> = [1, 0, 3, 4, 5, 6, 7].iter().flat_map(|&v| [v; 160]).collect();
        expect.extend([8; 960]);
        assert_eq!(out, expect);
        assert_eq!((c.gap_fill_samples, c.frames_late), (160, 0), "{c:?}");
    }

    #[test]
    fn a_lost_frame_becomes_silence_and_its_late_arrival_is_dropped() {
        let frames = [
            (Some(1), 0, 1, 160, 0),
            // 20 ms lost; 40, 60, 80 arrive: after more than the window the gap is filled.
            (Some(3), 40, 3, 160, 40_000),
            (Some(4), 60, 4, 160, 60_000),
            (Some(5), 80, 5, 160, 80_000),
            (Some(6), 100, 6, 160, 100_000),
            (Some(2), 20, 2, 160, 120_000),
        ];
        let (out, c) = run(&frames, 60);
        let expect: Vec<i16> = [1, 0, 3, 4, 5, 6].iter().flat_map(|&v| [v; 160]).collect();
        assert_eq!(out, expect);
        assert_eq!(c.gap_fill_samples, 160);
        assert_eq!((c.frames_late, c.late_samples), (1, 160));
        // Frames 3 and 4 were held for the gap until frame 5 overtook the window (80 ms).
        assert_eq!(c.reorder_wait_us, 40_000 + 20_000);
    }

    #[test]
    fn a_frame_too_long_to_hold_releases_held_audio_instead_of_silencing_it() {
        let frames = [
            (Some(1), 0, 1, 160, 0),
            // 20 ms lost; 40 ms held; then a coalesced 375 ms frame (more than the free slots
            // hold) at 60 ms.
            (Some(3), 40, 3, 160, 40_000),
            (Some(4), 60, 4, 3000, 41_000),
        ];
        let (out, c) = run(&frames, 60);
        let mut expect: Vec<i16> = [1, 0, 3].iter().flat_map(|&v| [v; 160]).collect();
        expect.extend([4; 3000]);
        assert_eq!(out, expect);
        assert_eq!(c.gap_fill_samples, 160);
        assert_eq!(c.frames_late, 0);
    }

    #[test]
    fn a_frame_too_long_to_hold_is_trimmed_against_a_held_frame_it_overlaps() {
        let frames = [
            (Some(1), 0, 1, 160, 0),
            // 20 ms lost; 40-60 ms held; then 3,000 samples from 55 ms, overlapping it by 5 ms.
            (Some(3), 40, 3, 160, 40_000),
            (Some(4), 55, 4, 3000, 41_000),
        ];
        let (out, c) = run(&frames, 60);
        // 0-20, silence to 40, 40-60, then the long frame's tail from 60 ms.
        let mut expect: Vec<i16> = [1, 0, 3].iter().flat_map(|&v| [v; 160]).collect();
        expect.extend([4; 2960]);
        assert_eq!(out, expect);
        assert_eq!(c.frames_overlap_trimmed, 1);
    }

    #[test]
    fn a_restart_of_sequence_numbers_is_not_taken_for_duplicates() {
        let mut frames: Vec<_> = (0..3).map(|i| (Some(5000 + i), i * 20, 1, 160, i * 20_000)).collect();
        frames.extend((3..6).map(|i| (Some(i - 2), i * 20, 2, 160, i * 20_000)));
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 960);
        assert_eq!(c.frames_duplicate, 0);
    }

    #[test]
    fn numbers_restarted_early_in_a_call_on_new_audio_are_not_duplicates() {
        // 50 frames numbered 1-50, then the carrier numbers again from 1, its timestamps going on.
        let mut frames: Vec<_> = (0..50).map(|i| (Some(i + 1), i * 20, 1, 160, i * 20_000)).collect();
        frames.extend((50..100).map(|i| (Some(i - 49), i * 20, 2, 160, i * 20_000)));
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 100 * 160);
        assert!(out[50 * 160..].iter().all(|&v| v == 2));
        assert_eq!(c.frames_duplicate, 0);
        // A true duplicate of the restarted numbering is still one.
        frames.push((Some(50), 99 * 20, 9, 160, 2_000_000));
        let (out, c) = run(&frames, 60);
        assert_eq!((out.len(), c.frames_duplicate), (100 * 160, 1));
    }

    #[test]
    fn numbers_restarted_on_frames_placed_to_the_millisecond_are_not_duplicates() {
        // 12.5 ms frames at their rounded-down millisecond (as a carrier without timestamps is
        // placed, where its audio is expected), then numbered again from 1: a frame of the new
        // numbering starting up to a millisecond before where the stream is, is contiguous. Taken
        // for a duplicate, it was dropped, and with it every frame so placed until the new
        // numbers passed the old ones.
        let ts = |i: u64| i * 25 / 2;
        let mut frames: Vec<_> = (0..101).map(|i| (Some(i + 1), ts(i), 1, 100, i * 12_500)).collect();
        frames.extend((101..200).map(|i| (Some(i - 100), ts(i), 2, 100, i * 12_500)));
        let (out, c) = run(&frames, 60);
        assert_eq!(c.frames_duplicate, 0, "{c:?}");
        assert_eq!(out.len(), 200 * 100);
        assert!(out[101 * 100..].iter().all(|&v| v == 2));
        // A true duplicate, a frame behind the stream, still is one.
        frames.push((Some(99), ts(198), 9, 100, 200 * 12_500));
        let (out, c) = run(&frames, 60);
        assert_eq!((out.len(), c.frames_duplicate), (200 * 100, 1));
    }

    #[test]
    fn a_jump_of_the_timestamps_is_not_taken_for_jitter() {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(60, 2000);
        let mut sink = |_: Delivery<'_>| {};
        for i in 0..10u64 {
            r.push(Some(i + 1), i * 20, &[1; 160], i * 20_000, &mut counters, &mut sink);
        }
        // The carrier's clock jumps an hour ahead; frames go on from there in real time.
        for i in 10..20u64 {
            r.push(Some(i + 1), 3_600_000 + i * 20, &[1; 160], i * 20_000, &mut counters, &mut sink);
        }
        assert_eq!(counters.timestamp_jumps, 1);
        assert!(r.jitter_us() < 1_000, "jitter {} µs", r.jitter_us());
    }

    #[test]
    fn a_second_gap_waits_its_own_window_from_when_the_first_closed() {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(60, 2000);
        let mut sink = |_: Delivery<'_>| {};
        // 10 ms frames: A at 0, C at 20 (B missing), E at 40 (D missing), then B at 45 ms.
        for (seq, ts, now) in [(1, 0, 0), (3, 20, 20_000), (5, 40, 40_000), (2, 10, 45_000)] {
            r.push(Some(seq), ts, &[1; 80], now, &mut counters, &mut sink);
        }
        // B closed the first gap and C went out; D's gap waits from 45 ms, to 105 ms.
        assert_eq!(r.deadline_us(), Some(105_000));
    }

    #[test]
    fn duplicates_are_dropped_by_sequence_number() {
        let frames = [(Some(1), 0, 1, 160, 0), (Some(2), 20, 2, 160, 20_000), (Some(2), 20, 9, 160, 21_000)];
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 320);
        assert_eq!(c.frames_duplicate, 1);
    }

    #[test]
    fn gap_is_filled_by_wall_clock_timeout_without_further_frames() {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(60, 2000);
        let mut total = 0u64;
        let mut sink = |d: Delivery<'_>| match d {
            Delivery::Audio { pcm, .. } => total += pcm.len() as u64,
            Delivery::Silence { len, .. } => total += len,
            Delivery::Splice { .. } => panic!("no jump"),
        };
        r.push(Some(1), 0, &[1; 160], 0, &mut counters, &mut sink);
        assert_eq!(r.push(Some(3), 40, &[3; 160], 40_000, &mut counters, &mut sink), Arrival::Held);
        assert_eq!(r.deadline_us(), Some(100_000));
        r.poll(99_000, &mut counters, &mut sink);
        assert_eq!(r.position(), 160);
        r.poll(100_000, &mut counters, &mut sink);
        assert_eq!(r.position(), 480);
        assert_eq!(total, 480);
    }

    #[test]
    fn huge_jump_reanchors_instead_of_filling_hours() {
        let frames = [
            (Some(1), 0, 1, 160, 0),
            (Some(2), 3_600_000, 2, 160, 20_000),
            (Some(3), 3_600_020, 3, 160, 40_000),
        ];
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 480);
        assert_eq!(c.timestamp_jumps, 1);
        assert_eq!(c.gap_fill_samples, 0);
    }

    /// Pushes 20 ms frames `(sequence, timestamp ms)` into a reorder stage (60 ms window, 2 s
    /// fill), the `k`th at wall time `now_us(k, sequence)`: what became of each, every delivery
    /// as (kind, start, length), kind `a`udio, `s`ilence or `|` splice, and the counters.
    fn pushed(
        pushes: &[(u64, u64)],
        now_us: impl Fn(u64, u64) -> u64,
    ) -> (Vec<Arrival>, Vec<(char, u64, u64)>, SessionStats) {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(60, 2000);
        let mut log = Vec::new();
        let mut sink = |d: Delivery<'_>| {
            log.push(match d {
                Delivery::Audio { start, pcm } => ('a', start, pcm.len() as u64),
                Delivery::Silence { start, len } => ('s', start, len),
                Delivery::Splice { start } => ('|', start, 0),
            })
        };
        let arrivals = pushes
            .iter()
            .enumerate()
            .map(|(k, &(seq, ts))| {
                r.push(Some(seq), ts, &[1; 160], now_us(k as u64, seq), &mut counters, &mut sink)
            })
            .collect();
        (arrivals, log, counters)
    }

    #[test]
    fn a_jump_is_delivered_as_a_splice_between_the_audio_around_it() {
        // A stream whose first timestamp is far from zero, then a jump forward, held audio
        // before a jump back, and the same jump back again.
        let pushes = [(1, 90_000), (2, 90_020), (3, 95_000), (5, 95_040), (6, 20), (7, 3_600_000)];
        let (_, log, counters) = pushed(&pushes, |k, _| k * 20_000);
        // The frame after the held one goes first (the gap before it is filled) and the jump
        // back follows it; nothing precedes the stream's first audio.
        let expected = vec![
            ('a', 0, 160),
            ('a', 160, 160),
            ('|', 320, 0),
            ('a', 320, 160),
            ('s', 480, 160),
            ('a', 640, 160),
            ('|', 800, 0),
            ('a', 800, 160),
            ('|', 960, 0),
            ('a', 960, 160),
        ];
        assert_eq!(log, expected);
        assert_eq!(counters.timestamp_jumps, 4);
    }

    #[test]
    fn a_frame_of_the_timeline_before_a_jump_arriving_after_it_is_late() {
        // Frames to 100 ms, the one at 60 ms held up in the network: its gap is filled. Then
        // 10 s of media lost (a jump), and the frame at 60 ms turns up: late, as it would have
        // been without the jump, not a jump back. A frame going on from where that timeline
        // ended is a jump back, as before.
        let pushes =
            [(1, 0), (2, 20), (3, 40), (5, 80), (6, 100), (7, 10_000), (4, 60), (8, 10_020), (9, 120)];
        let (arrivals, log, counters) = pushed(&pushes, |k, _| k * 100_000);
        use Arrival::{Delivered, Jump, Late};
        assert_eq!(arrivals[5..], [Jump, Late, Delivered, Jump]);
        let expected = vec![
            ('a', 0, 160),
            ('a', 160, 160),
            ('a', 320, 160),
            ('s', 480, 160),
            ('a', 640, 160),
            ('a', 800, 160),
            ('|', 960, 0),
            ('a', 960, 160),
            ('a', 1_120, 160),
            ('|', 1_280, 0),
            ('a', 1_280, 160),
        ];
        assert_eq!(log, expected);
        assert_eq!((counters.timestamp_jumps, counters.frames_late, counters.late_samples), (2, 1, 160));

        // The same frame more than the fill limit (2 s) of wall time after the jump: a jump
        // back, as any frame that far behind the stream is.
        let (arrivals, _, _) = pushed(&pushes[..7], |k, seq| if seq == 4 { 2_600_000 } else { k * 100_000 });
        assert_eq!(arrivals[5..], [Jump, Jump]);
    }

    #[test]
    fn millisecond_rounding_of_timestamps_is_not_a_gap() {
        // 12.5 ms frames (100 samples): timestamps 0, 12, 25, 37 (rounded down).
        let frames =
            [(None, 0, 1, 100, 0), (None, 12, 2, 100, 1), (None, 25, 3, 100, 2), (None, 37, 4, 100, 3)];
        let (out, c) = run(&frames, 60);
        assert_eq!(out.len(), 400);
        assert_eq!(c.gap_fill_samples + c.frames_overlap_trimmed, 0);
    }

    #[test]
    fn jitter_estimate_follows_rfc3550() {
        let mut counters = SessionStats::default();
        let mut r = InboundReorder::new(60, 2000);
        let mut sink = |_: Delivery<'_>| {};
        // Every other frame arrives 10 ms late: |D| alternates 10 ms; J converges towards 10 ms.
        for i in 0..400u64 {
            let late = if i % 2 == 1 { 10_000 } else { 0 };
            r.push(Some(i), i * 20, &[0; 160], i * 20_000 + late, &mut counters, &mut sink);
        }
        let j = r.jitter_us();
        assert!((9_000..=10_000).contains(&j), "jitter {j} µs");
    }

    #[test]
    fn encoded_frames_deliver_what_their_decoded_pcm_would() {
        // In order, swapped (so one is held), overlapping what was delivered, and one frame
        // larger than a decode piece; delivered timelines must match sample for sample.
        let frames: [(Option<u64>, u64, usize, u64); 5] = [
            (Some(1), 0, 160, 0),
            (Some(3), 40, 160, 40_000),
            (Some(2), 20, 160, 41_000),
            (Some(4), 55, 200, 60_000),
            (Some(5), 80, 1_300, 80_000),
        ];
        let bytes_of = |n: usize, salt: usize| -> Vec<u8> {
            (0..n).map(|i| ((i * 13 + salt * 31) % 251) as u8).collect()
        };
        for encoding in 0..3 {
            let (mut via_pcm, mut via_frame) = (Vec::new(), Vec::new());
            for (out, encoded) in [(&mut via_pcm, false), (&mut via_frame, true)] {
                let mut counters = SessionStats::default();
                let mut r = InboundReorder::new(60, 2000);
                let mut sink = |d: Delivery<'_>| match d {
                    Delivery::Audio { pcm, .. } => out.extend_from_slice(pcm),
                    Delivery::Silence { len, .. } => out.resize(out.len() + len as usize, 0),
                    Delivery::Splice { .. } => panic!("no jump"),
                };
                for (k, &(seq, ts, len, now)) in frames.iter().enumerate() {
                    let raw = bytes_of(if encoding == 2 { 2 * len } else { len }, k);
                    let mut pcm = vec![0i16; len];
                    let audio = match encoding {
                        0 => FrameAudio::Mulaw(&raw),
                        1 => FrameAudio::Alaw(&raw),
                        _ => FrameAudio::L16(&raw),
                    };
                    audio.decode_into(&mut pcm);
                    if encoded {
                        r.push_frame(seq, ts, audio, now, &mut counters, &mut sink);
                    } else {
                        r.push(seq, ts, &pcm, now, &mut counters, &mut sink);
                    }
                    r.poll(now, &mut counters, &mut sink);
                }
                r.flush(&mut counters, &mut sink);
                assert_eq!(counters.frames_reordered, 1);
                assert_eq!(counters.frames_overlap_trimmed, 1);
            }
            assert!(via_pcm.len() > 1_700);
            assert!(via_pcm == via_frame, "encoding {encoding}");
        }
    }
}
