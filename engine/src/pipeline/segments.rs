//! Host-named segments of agent audio, and where the caller's playhead is among them.
//!
//! A segment starts where the host began it in the outbound stream (`begin_segment`) and runs to
//! the next one's start. Two coordinates meet here: positions in the outbound queue (samples the
//! host's audio filled, which say how long a segment is) and positions in what was sent to the
//! carrier (samples of frames, silence padding included, which the playout model counts). A
//! segment's start is placed in the second when the frame holding its first sample goes out; the
//! played position of a segment is then the playout model's position less that start, less the
//! silence padded into frames in between (a frame cut short at a host's mark, or sent partial
//! while the carrier starved), clamped to the audio queued for it.
//!
//! Fixed capacity, never allocates: the host handle refuses a segment beyond it (`Full`), so the
//! table cannot overflow here. Segments are kept in the order begun; the oldest leaves once the
//! caller has started hearing the one after it, and a clear (barge-in, interrupt, stop) ends all.

/// Most segments queued and not yet behind the caller's playhead, per session.
pub const MAX_SEGMENTS: usize = 32;
/// Longest segment tag, bytes.
pub const MAX_SEGMENT_TAG_BYTES: usize = 63;
/// Padded frames remembered, the latest ones: those the caller has not heard yet are where the
/// padding behind the playhead is told from the padding ahead of it. More padded frames than
/// this ahead of the playhead (a host marking every few ms of audio) count the oldest of them as
/// behind it: the segment is then reported heard for less than it was.
const PADDED_FRAMES: usize = 8;
/// [`Segment::sent_pos`] until the frame holding the segment's start is sent.
const NOT_SENT: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u32,
    /// [`SegmentTable::padding_total`] when its start was sent (wrapping: only differences).
    padding_at_start: u32,
    /// Start in the outbound queue's stream, samples.
    queue_pos: u64,
    /// Start in the sent stream, samples; [`NOT_SENT`] until the frame holding it is sent (a
    /// sentinel, not an `Option`: 8 bytes less per slot).
    sent_pos: u64,
}

impl Default for Segment {
    fn default() -> Self {
        Self { id: 0, padding_at_start: 0, queue_pos: 0, sent_pos: NOT_SENT }
    }
}

impl Segment {
    fn sent(&self) -> Option<u64> {
        (self.sent_pos != NOT_SENT).then_some(self.sent_pos)
    }
}

/// Where the playhead was among the segments when the agent was cut off. Two words, so that it
/// adds little to every queued event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentCut {
    /// The segment being heard (ids start at 1); 0 when the caller had not started hearing any
    /// queued segment. Every segment before it had been heard through.
    pub heard_id: u32,
    /// How much of it was heard, ms (0 when `heard_id` is 0).
    pub played_ms: u32,
}

/// The segments of one session.
#[derive(Debug)]
pub struct SegmentTable {
    slots: [Segment; MAX_SEGMENTS],
    /// Index of the oldest segment in `slots` (a ring).
    head: usize,
    len: usize,
    /// Every id up to this one has left the table (heard through, cleared or dropped as stale).
    retired_through: u32,
    /// The latest id the table was told of.
    last_seen: u32,
    /// Samples sent to the carrier, ever (padding included).
    sent_total: u64,
    /// Samples sent since the carrier last dropped its buffer (a clear).
    sent_since_clear: u64,
    /// Samples of silence padded into frames, ever.
    padding_total: u64,
    /// The latest padded frames: where each ends in the sent stream, and its padding (samples),
    /// a ring written at `padded_next`.
    padded: [(u64, u32); PADDED_FRAMES],
    padded_next: usize,
}

impl Default for SegmentTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentTable {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: [Segment::default(); MAX_SEGMENTS],
            head: 0,
            len: 0,
            retired_through: 0,
            last_seen: 0,
            sent_total: 0,
            sent_since_clear: 0,
            padding_total: 0,
            padded: [(0, 0); PADDED_FRAMES],
            padded_next: 0,
        }
    }

    fn at(&self, i: usize) -> &Segment {
        &self.slots[(self.head + i) % MAX_SEGMENTS]
    }

    /// Every id up to this one is done with (for the host's bound on live segments).
    pub fn retired_through(&self) -> u32 {
        self.retired_through
    }

    /// Live segments.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No live segment.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Samples of the sent stream the carrier has played, given `unplayed` samples still ahead of
    /// the playhead by the playout model (bounded by what was sent since the last clear, which
    /// is all the carrier can still hold).
    pub fn played_pos(&self, unplayed: u64) -> u64 {
        self.sent_total - unplayed.min(self.sent_since_clear)
    }

    /// Samples sent since the last clear (what the carrier may still hold).
    pub fn sent_since_clear(&self) -> u64 {
        self.sent_since_clear
    }

    /// Segment `id` begins at `queue_pos` (samples). False when the table is full (the host
    /// handle's bound prevents it): the segment is then not tracked, its audio counting as the
    /// previous segment's, and it is retired with the rest at the next clear.
    pub fn begin(&mut self, id: u32, queue_pos: u64) -> bool {
        self.last_seen = self.last_seen.max(id);
        if self.len == MAX_SEGMENTS {
            return false;
        }
        let i = (self.head + self.len) % MAX_SEGMENTS;
        self.slots[i] = Segment { id, padding_at_start: 0, queue_pos, sent_pos: NOT_SENT };
        self.len += 1;
        true
    }

    /// Segment `id` will never play (queued before a barge-in or interrupt the host had not seen,
    /// or after the stream ended).
    pub fn retire(&mut self, id: u32) {
        self.last_seen = self.last_seen.max(id);
        self.retired_through = self.retired_through.max(id);
    }

    /// A frame of `frame_samples` went out holding the queue's samples from `queue_from` to
    /// `queue_to` (then silence): segments starting in it get their sent position.
    pub fn on_frame_sent(&mut self, queue_from: u64, queue_to: u64, frame_samples: u64) {
        let frame_start = self.sent_total;
        for k in 0..self.len {
            let seg = &mut self.slots[(self.head + k) % MAX_SEGMENTS];
            if seg.sent_pos == NOT_SENT && seg.queue_pos < queue_to {
                // A start at or before `queue_from` (its segment began after a padded frame)
                // starts with this frame. The frame's padding follows its audio: after the start.
                seg.sent_pos = frame_start + seg.queue_pos.saturating_sub(queue_from);
                seg.padding_at_start = self.padding_total as u32;
            }
        }
        self.sent_total += frame_samples;
        self.sent_since_clear += frame_samples;
        let padding = frame_samples.saturating_sub(queue_to.saturating_sub(queue_from));
        if padding > 0 {
            self.padding_total += padding;
            self.padded[self.padded_next] = (self.sent_total, u32::try_from(padding).unwrap_or(u32::MAX));
            self.padded_next = (self.padded_next + 1) % PADDED_FRAMES;
        }
    }

    /// Samples of silence padded into frames, ever.
    pub fn padding_total(&self) -> u64 {
        self.padding_total
    }

    /// Samples of silence padded into the last frame sent.
    pub fn last_frame_padding(&self) -> u64 {
        let (end, padding) = self.padded[(self.padded_next + PADDED_FRAMES - 1) % PADDED_FRAMES];
        if end == self.sent_total && self.sent_total > 0 { u64::from(padding) } else { 0 }
    }

    /// Samples of padding sent before `played` (a sent position): all of it but what the padded
    /// frames remembered hold past it (a frame's padding is its last samples).
    pub fn padding_before(&self, played: u64) -> u64 {
        let ahead: u64 = self
            .padded
            .iter()
            .map(|&(end, padding)| end.saturating_sub(played).min(u64::from(padding)))
            .sum();
        self.padding_total.saturating_sub(ahead)
    }

    /// Drops the oldest segments the caller has heard through: those followed by one the caller
    /// has started hearing (`played`, a sent position, is past its start).
    pub fn retire_heard(&mut self, played: u64) {
        while self.len >= 2 && self.at(1).sent().is_some_and(|s| s < played) {
            let id = self.at(0).id;
            self.retire(id);
            self.head = (self.head + 1) % MAX_SEGMENTS;
            self.len -= 1;
        }
    }

    /// Where the playhead (`played`, a sent position) is; `queue_end` is the end of the queued
    /// audio (samples), which bounds the last segment; `samples_per_ms` at the outbound rate.
    pub fn position(&mut self, played: u64, queue_end: u64, samples_per_ms: u64) -> SegmentCut {
        self.retire_heard(played);
        if self.len == 0 {
            return SegmentCut::default();
        }
        let seg = self.at(0);
        // Heard once a sample of it has played: "not yet" is not "0 ms".
        let Some(start) = seg.sent().filter(|&s| s < played) else { return SegmentCut::default() };
        let end = if self.len > 1 { self.at(1).queue_pos } else { queue_end };
        let padded = (self.padding_before(played) as u32).wrapping_sub(seg.padding_at_start);
        let heard = (played - start).saturating_sub(u64::from(padded)).min(end.saturating_sub(seg.queue_pos));
        let played_ms = u32::try_from(heard / samples_per_ms.max(1)).unwrap_or(u32::MAX);
        SegmentCut { heard_id: seg.id, played_ms }
    }

    /// Everything queued and sent was dropped (a clear): every segment ends. `carrier_cleared`:
    /// the carrier dropped what it held (not so on carriers without a clear).
    pub fn clear(&mut self, carrier_cleared: bool) {
        self.retired_through = self.last_seen;
        self.len = 0;
        if carrier_cleared {
            self.sent_since_clear = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_playhead_is_placed_in_the_segment_holding_it_and_clamped_to_its_audio() {
        let mut t = SegmentTable::new();
        t.begin(1, 0);
        // 100 samples for segment 1, then segment 2 starts; a frame of 160 holds both.
        t.begin(2, 100);
        t.on_frame_sent(0, 160, 160);
        assert_eq!(t.position(50, 160, 1), SegmentCut { heard_id: 1, played_ms: 50 });
        assert_eq!(t.position(130, 160, 1), SegmentCut { heard_id: 2, played_ms: 30 });
        assert_eq!(t.retired_through(), 1);
        // Padding sent after the queued audio does not count as heard.
        t.on_frame_sent(160, 160, 160);
        assert_eq!(t.position(320, 160, 1), SegmentCut { heard_id: 2, played_ms: 60 });
    }

    #[test]
    fn silence_padded_inside_a_segment_does_not_count_as_heard() {
        // A segment queued in chunks of 90 and 160 samples, a host's mark after the first: the
        // first frame goes out with 70 samples of padding.
        let mut t = SegmentTable::new();
        t.begin(1, 0);
        t.on_frame_sent(0, 90, 160);
        t.on_frame_sent(90, 250, 160);
        // Played through the second frame: 250 samples of audio, not 320.
        assert_eq!(t.position(320, 1000, 1), SegmentCut { heard_id: 1, played_ms: 250 });
        // Inside the padding: only the audio before it was heard.
        assert_eq!(t.position(120, 1000, 1), SegmentCut { heard_id: 1, played_ms: 90 });
        assert_eq!(t.position(200, 1000, 1), SegmentCut { heard_id: 1, played_ms: 130 });
        // Padding before the segment began does not come off it.
        t.begin(2, 250);
        t.on_frame_sent(250, 330, 160);
        t.on_frame_sent(330, 490, 160);
        assert_eq!(t.position(640, 1000, 1), SegmentCut { heard_id: 2, played_ms: 240 });
        // Ten chunks of 170 samples, a mark after each (each takes two frames, the second
        // padded by 150): half of them heard is 850 samples of audio.
        let mut t = SegmentTable::new();
        t.begin(1, 0);
        for k in 0..10 {
            t.on_frame_sent(170 * k, 170 * k + 160, 160);
            t.on_frame_sent(170 * k + 160, 170 * (k + 1), 160);
        }
        assert_eq!(t.position(1_600, 1_700, 1), SegmentCut { heard_id: 1, played_ms: 850 });
    }

    #[test]
    fn a_segment_begun_after_a_padded_frame_starts_with_the_next_frame() {
        let mut t = SegmentTable::new();
        t.begin(1, 0);
        t.on_frame_sent(0, 80, 160);
        t.begin(2, 80);
        assert_eq!(t.position(160, 80, 1), SegmentCut { heard_id: 1, played_ms: 80 });
        t.on_frame_sent(80, 240, 160);
        assert_eq!(t.position(170, 240, 1), SegmentCut { heard_id: 2, played_ms: 10 });
    }

    #[test]
    fn nothing_heard_yet_is_not_zero_and_a_clear_ends_every_segment() {
        let mut t = SegmentTable::new();
        t.begin(1, 0);
        t.begin(2, 400);
        assert_eq!(t.position(0, 800, 1), SegmentCut::default());
        t.on_frame_sent(0, 160, 160);
        // Sent, not yet heard; then its first sample heard.
        assert_eq!(t.position(0, 800, 1), SegmentCut::default());
        assert_eq!(t.position(1, 800, 1), SegmentCut { heard_id: 1, played_ms: 1 });
        t.clear(true);
        assert!(t.is_empty());
        assert_eq!(t.retired_through(), 2);
        assert_eq!(t.position(0, 800, 1), SegmentCut::default());
        // After a clear, the model's unplayed time is bounded by what was sent since.
        assert_eq!(t.played_pos(1_000), 160);
    }

    #[test]
    fn a_full_table_refuses_the_newcomer_and_a_clear_retires_it() {
        let mut t = SegmentTable::new();
        for id in 1..=MAX_SEGMENTS as u32 {
            assert!(t.begin(id, u64::from(id)));
        }
        assert!(!t.begin(33, 99));
        assert_eq!(t.len(), MAX_SEGMENTS);
        assert_eq!(t.retired_through(), 0);
        t.clear(true);
        assert_eq!(t.retired_through(), 33);
    }
}
