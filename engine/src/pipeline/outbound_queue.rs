//! Agent audio waiting to be paced out, encoded as the carrier takes it, with the marks placed in
//! it.
//!
//! Bounded: `push_audio` takes what fits and says how much, so the caller keeps the rest (the
//! host's play ring is the backpressure). Frames are cut at mark positions so that a mark goes out
//! right after the last sample of the audio before it, for carriers that are sent marks; for one
//! sent none (its marks are played by the engine's clock), frames run through marks, and each mark
//! is placed within the frame that holds its position.

use std::collections::VecDeque;

/// One frame cut from the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutFrame {
    /// Agent audio bytes in the frame; the rest of the frame is silence padding.
    pub audio_bytes: usize,
}

/// The outbound queue, in bytes of the carrier's encoding. Capacity fixed at construction; never
/// reallocates.
#[derive(Debug)]
pub struct OutboundQueue {
    audio: VecDeque<u8>,
    capacity: usize,
    /// Bytes in one outbound frame.
    frame_bytes: usize,
    /// The byte that pads a short frame: silence in the carrier's encoding (every byte of a
    /// silent frame is the same in G.711 and L16).
    silence: u8,
    /// Total bytes ever taken out (sent or flushed): the stream position of `audio[0]`.
    taken: u64,
    /// Marks as (position in the queue's stream, mark id). Positions never decrease.
    marks: VecDeque<(u64, u32)>,
    mark_capacity: usize,
    /// Whether frames end at marks (the carrier is sent marks, which must follow their audio).
    cut_at_marks: bool,
}

impl OutboundQueue {
    /// A queue for `capacity` bytes of audio and `mark_capacity` marks, cut into frames of
    /// `frame_bytes` padded with `silence`, and at marks if `cut_at_marks` (the carrier is sent
    /// marks).
    pub fn new(capacity: usize, mark_capacity: usize, frame_bytes: usize, silence: u8, cut_at_marks: bool) -> Self {
        Self {
            audio: VecDeque::with_capacity(capacity),
            capacity,
            frame_bytes,
            silence,
            taken: 0,
            marks: VecDeque::with_capacity(mark_capacity),
            mark_capacity,
            cut_at_marks,
        }
    }

    /// Free audio space, bytes.
    pub fn free(&self) -> usize {
        self.capacity - self.audio.len()
    }

    /// Queued audio, bytes.
    pub fn audio_len(&self) -> usize {
        self.audio.len()
    }

    /// Nothing queued: no audio and no mark.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.audio.is_empty() && self.marks.is_empty()
    }

    /// Stream position (bytes) of the next byte to be cut: everything before it was sent or
    /// flushed.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Stream position (bytes) just after the last queued byte.
    pub fn end_pos(&self) -> u64 {
        self.taken + self.audio.len() as u64
    }

    /// Bytes in one frame.
    pub fn frame_bytes(&self) -> usize {
        self.frame_bytes
    }

    /// Appends as much of `encoded` as fits; returns the count taken.
    pub fn push_audio(&mut self, encoded: &[u8]) -> usize {
        let n = encoded.len().min(self.free());
        self.audio.extend(&encoded[..n]);
        n
    }

    /// Places mark `id` after the audio queued so far. False if the mark queue is full.
    pub fn push_mark(&mut self, id: u32) -> bool {
        if self.marks.len() >= self.mark_capacity {
            return false;
        }
        self.marks.push_back((self.taken + self.audio.len() as u64, id));
        true
    }

    /// Cuts the next frame into `out` ([`Self::frame_bytes`] long). A frame is cut short (and
    /// padded) at a mark (when frames are cut at marks), or when `allow_partial` and less than a
    /// frame is queued. `None` when there is no audio to send (a mark may still be due: see
    /// [`Self::pop_due_mark`]).
    pub fn cut_frame(&mut self, out: &mut [u8], allow_partial: bool) -> Option<CutFrame> {
        debug_assert_eq!(out.len(), self.frame_bytes);
        let until_mark = match self.marks.front() {
            Some(&(pos, _)) if self.cut_at_marks => (pos - self.taken) as usize,
            _ => usize::MAX,
        };
        let want = self.frame_bytes.min(until_mark);
        let take = want.min(self.audio.len());
        if take == 0 {
            return None;
        }
        let at_mark = take == until_mark;
        if take < self.frame_bytes && !at_mark && !allow_partial {
            return None;
        }
        let (a, b) = self.audio.as_slices();
        let from_a = take.min(a.len());
        out[..from_a].copy_from_slice(&a[..from_a]);
        out[from_a..take].copy_from_slice(&b[..take - from_a]);
        out[take..].fill(self.silence);
        self.audio.drain(..take);
        self.taken += take as u64;
        Some(CutFrame { audio_bytes: take })
    }

    /// A frame of silence alone, taking nothing from the queue (for a carrier that needs audio
    /// after a mark when there is none).
    pub fn silence_frame(&self, out: &mut [u8]) -> CutFrame {
        out.fill(self.silence);
        CutFrame { audio_bytes: 0 }
    }

    /// The next mark whose audio has all been cut, if any, without removing it.
    pub fn peek_due_mark(&self) -> Option<u32> {
        self.marks.front().filter(|&&(pos, _)| pos <= self.taken).map(|&(_, id)| id)
    }

    /// Whether a mark sits within the next frame's worth of audio (so a short frame can be cut).
    pub fn mark_within_frame(&self) -> bool {
        self.cut_at_marks && self.marks.front().is_some_and(|&(pos, _)| pos - self.taken <= self.frame_bytes as u64)
    }

    /// Removes and returns the next mark whose audio has all been cut, if any, with the bytes of
    /// audio cut after it (0 when frames are cut at marks; else where it sits in the last frame).
    pub fn pop_due_mark(&mut self) -> Option<(u32, u64)> {
        match self.marks.front() {
            Some(&(pos, id)) if pos <= self.taken => {
                self.marks.pop_front();
                Some((id, self.taken - pos))
            }
            _ => None,
        }
    }

    /// Drops all queued audio and marks; reports each dropped mark. Returns the audio bytes dropped.
    pub fn clear(&mut self, mut on_mark: impl FnMut(u32)) -> usize {
        let n = self.audio.len();
        self.taken += n as u64;
        self.audio.clear();
        for (_, id) in self.marks.drain(..) {
            on_mark(id);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ULAW_SILENCE;

    const FRAME_BYTES: usize = 160;

    #[test]
    fn frames_are_cut_at_marks_and_padded() {
        let mut q = OutboundQueue::new(1000, 4, FRAME_BYTES, ULAW_SILENCE, true);
        let audio: Vec<u8> = (0..250).map(|i| i as u8).collect();
        assert_eq!(q.push_audio(&audio), 250);
        assert!(q.push_mark(7));
        q.push_audio(&[1; 100]);
        let mut f = [0u8; FRAME_BYTES];
        assert_eq!(q.cut_frame(&mut f, false), Some(CutFrame { audio_bytes: 160 }));
        assert_eq!(&f[..], &audio[..160]);
        assert_eq!(q.pop_due_mark(), None);
        // 90 bytes left before the mark: cut short even without allow_partial.
        assert_eq!(q.cut_frame(&mut f, false), Some(CutFrame { audio_bytes: 90 }));
        assert_eq!(&f[..90], &audio[160..]);
        assert!(f[90..].iter().all(|&b| b == ULAW_SILENCE));
        assert_eq!(q.pop_due_mark(), Some((7, 0)));
        // 100 bytes after the mark: only with allow_partial.
        assert_eq!(q.cut_frame(&mut f, false), None);
        assert_eq!(q.cut_frame(&mut f, true), Some(CutFrame { audio_bytes: 100 }));
        assert!(q.is_empty());
    }

    #[test]
    fn capacity_bounds_audio_and_marks() {
        let mut q = OutboundQueue::new(300, 1, FRAME_BYTES, ULAW_SILENCE, true);
        assert_eq!(q.push_audio(&[0; 500]), 300);
        assert_eq!(q.free(), 0);
        assert!(q.push_mark(1));
        assert!(!q.push_mark(2));
        let mut dropped = vec![];
        assert_eq!(q.clear(|id| dropped.push(id)), 300);
        assert_eq!(dropped, vec![1]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_mark_on_an_empty_queue_is_due_at_once() {
        let mut q = OutboundQueue::new(300, 2, FRAME_BYTES, ULAW_SILENCE, true);
        assert!(q.push_mark(3));
        assert_eq!(q.pop_due_mark(), Some((3, 0)));
    }
}
