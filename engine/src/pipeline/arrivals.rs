//! When the caller's audio reached the engine, by stream position.
//!
//! Barge-in reaction is timed from the arrival of the audio the caller's speech onset lies in to
//! the barge-in decision. The speech detector names the onset only later, as a stream position,
//! once the speech is confirmed and has lasted; by then that audio has gone. So each delivery of
//! caller audio leaves an entry here (where the delivered audio ends, when the message that
//! delivered it arrived), in fixed memory: one comparison and two stores per media message.

/// Entries kept: 64 deliveries are 1.28 s of 20 ms frames, past the default barge-in minimum
/// (300 ms of voiced speech) and the detector's confirmation with room to spare.
const ENTRIES: usize = 64;

/// The latest deliveries of caller audio, oldest first from `head - len`.
#[derive(Debug)]
pub(crate) struct ArrivalTrail {
    /// (end of the audio delivered, carrier samples; arrival of the message that delivered it, µs).
    entries: [(u64, u64); ENTRIES],
    len: usize,
    /// Where the next entry goes.
    head: usize,
    /// End of the newest entry overwritten: where the oldest kept entry's audio starts.
    dropped_end: u64,
}

impl ArrivalTrail {
    pub(crate) fn new() -> Self {
        Self { entries: [(0, 0); ENTRIES], len: 0, head: 0, dropped_end: 0 }
    }

    /// Delivered caller audio now ends at `end` (carrier samples): what was delivered since the
    /// last entry arrived at `arrived_us`. Nothing new delivered: nothing recorded.
    #[inline]
    pub(crate) fn record(&mut self, end: u64, arrived_us: u64) {
        if self.len > 0 && self.entries[(self.head + ENTRIES - 1) % ENTRIES].0 >= end {
            return;
        }
        if self.len == ENTRIES {
            self.dropped_end = self.entries[self.head].0;
        } else {
            self.len += 1;
        }
        self.entries[self.head] = (end, arrived_us);
        self.head = (self.head + 1) % ENTRIES;
    }

    /// Where the caller's timeline stands at `now_us`, audio being delivered up to `delivered`
    /// (carrier samples): at least there, and by the latest delivery its end plus the stream
    /// time since it arrived (`samples_per_ms` converts), since media held up in the network
    /// still has its stream time going on (a stall delivers it later, in a burst).
    pub(crate) fn position_at(&self, now_us: u64, samples_per_ms: u64, delivered: u64) -> u64 {
        if self.len == 0 {
            return delivered;
        }
        let (end, arrived_us) = self.entries[(self.head + ENTRIES - 1) % ENTRIES];
        delivered.max(end + now_us.saturating_sub(arrived_us) * samples_per_ms / 1000)
    }

    /// When the audio at position `at` (carrier samples) arrived: the arrival of the message that
    /// delivered it. For audio older than the entries kept, the oldest entry's arrival less the
    /// stream time between (`samples_per_ms` converts), as if it had arrived in real time; for
    /// audio not delivered yet, the newest arrival. `None` before any audio.
    pub(crate) fn arrival_of(&self, at: u64, samples_per_ms: u64) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let oldest = (self.head + ENTRIES - self.len) % ENTRIES;
        if at < self.dropped_end {
            let (_, arrived_us) = self.entries[oldest];
            let before_us = (self.dropped_end - at) * 1000 / samples_per_ms.max(1);
            return Some(arrived_us.saturating_sub(before_us));
        }
        let mut entries = (0..self.len).map(|k| self.entries[(oldest + k) % ENTRIES]);
        let newest = self.entries[(self.head + ENTRIES - 1) % ENTRIES];
        Some(entries.find(|&(end, _)| at < end).unwrap_or(newest).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arrival_of_the_delivery_holding_a_position() {
        let mut trail = ArrivalTrail::new();
        assert_eq!(trail.arrival_of(0, 8), None);
        // 20 ms frames (160 samples) arriving at 1 ms, 21 ms, a pair released together at 60 ms.
        trail.record(160, 1_000);
        trail.record(320, 21_000);
        trail.record(320, 30_000); // nothing new delivered (a held frame)
        trail.record(640, 60_000);
        assert_eq!(trail.arrival_of(0, 8), Some(1_000));
        assert_eq!(trail.arrival_of(159, 8), Some(1_000));
        assert_eq!(trail.arrival_of(160, 8), Some(21_000));
        assert_eq!(trail.arrival_of(400, 8), Some(60_000));
        assert_eq!(trail.arrival_of(10_000, 8), Some(60_000), "not delivered yet: the newest");
    }

    #[test]
    fn audio_older_than_the_trail_is_placed_in_real_time_before_it() {
        let mut trail = ArrivalTrail::new();
        // 100 frames of 20 ms, frame k arriving at 20 k ms + 5 ms.
        for k in 0..100u64 {
            trail.record((k + 1) * 160, k * 20_000 + 5_000);
        }
        // The 64 newest are kept: frames 36..100; frame 36 starts at sample 5760.
        assert_eq!(trail.arrival_of(5_760, 8), Some(36 * 20_000 + 5_000));
        assert_eq!(trail.arrival_of(99 * 160 + 3, 8), Some(99 * 20_000 + 5_000));
        // Frame 30 (sample 4800) is 120 ms of stream before frame 36: 120 ms before its arrival.
        assert_eq!(trail.arrival_of(4_800, 8), Some(36 * 20_000 + 5_000 - 120_000));
        assert_eq!(trail.arrival_of(0, 8), Some(5_000), "frame 0, as it did arrive");
    }
}
