//! A model of the carrier's playout clock: what the caller has heard so far.
//!
//! The carrier buffers what it is sent and plays it in order, in real time, going idle
//! when the buffer runs dry. Replaying that rule against the engine's own send times gives the
//! playhead as if the network were instant; the engine's hidden sync marks (echoed by the carrier
//! when the audio before them has played) measure how far the real playhead lags that model, and
//! the lag is added back. After a `clear`, echoes of older sync marks prove nothing and are ignored.

use crate::audio::SAMPLES_PER_MS;

/// Hidden sync marks in flight at most; older ones are forgotten when more are sent.
const SYNC_SLOTS: usize = 16;
/// Lag corrections are capped: a larger value is a broken echo, not a network.
const MAX_LAG_US: u64 = 2_000_000;
/// Prefix of the engine's own mark names. Host marks may not use it.
pub const SYNC_MARK_PREFIX: &str = "trunkline-sync-";

#[derive(Debug, Clone, Copy)]
struct SyncMark {
    n: u32,
    /// When the model says the audio before the mark finishes playing.
    due_us: u64,
    epoch: u32,
}

/// The playout model with sync-mark correction. Fixed size; never allocates.
#[derive(Debug)]
pub struct PlayoutClock {
    /// Model time (no network delay) at which the carrier finishes everything sent.
    carrier_end_us: u64,
    /// Measured lag of the real playhead behind the model.
    lag_us: u64,
    /// Samples (at the carrier's outbound rate) sent in the current utterance.
    utterance_sent: u64,
    /// Samples sent since the model carrier last went idle (its current run of playback), and
    /// the run before that: its samples (0: none, or cleared) and when it ended. After an
    /// underrun the real carrier, the lag behind the model, is still playing the run before
    /// while the model restarts: what the lag holds back is the end of that run and the start of
    /// this one, not this one's samples alone.
    run_sent: u64,
    run_before_sent: u64,
    run_before_end_us: u64,
    /// Samples per millisecond at the carrier's outbound rate.
    samples_per_ms: u64,
    sync_interval_ms: u32,
    /// Bumped by every clear, so echoes from before it are recognised.
    epoch: u32,
    sync: [Option<SyncMark>; SYNC_SLOTS],
    next_sync: u32,
    sync_interval: u64,
    since_sync: u64,
    /// A pause in agent audio at least this long (µs) ends the utterance.
    utterance_gap_us: u64,
}

impl PlayoutClock {
    /// `sync_interval_ms`: audio between hidden sync marks (0: no sync marks);
    /// `utterance_gap_ms`: a pause in agent audio at least this long starts a new utterance.
    pub fn new(sync_interval_ms: u32, utterance_gap_ms: u32) -> Self {
        Self {
            carrier_end_us: 0,
            lag_us: 0,
            utterance_sent: 0,
            run_sent: 0,
            run_before_sent: 0,
            run_before_end_us: 0,
            samples_per_ms: SAMPLES_PER_MS,
            sync_interval_ms,
            epoch: 0,
            sync: [None; SYNC_SLOTS],
            next_sync: 0,
            sync_interval: u64::from(sync_interval_ms) * SAMPLES_PER_MS,
            since_sync: 0,
            utterance_gap_us: u64::from(utterance_gap_ms) * 1000,
        }
    }

    /// Counts samples at `rate` Hz (a multiple of 1 kHz), the rate of the audio sent to the
    /// carrier; 8 kHz until then. Called when the stream starts, before anything is sent.
    pub fn set_rate(&mut self, rate: u32) {
        self.samples_per_ms = u64::from(rate / 1000).max(1);
        self.sync_interval = u64::from(self.sync_interval_ms) * self.samples_per_ms;
    }

    /// Samples per millisecond at the outbound rate.
    pub fn samples_per_ms(&self) -> u64 {
        self.samples_per_ms
    }

    /// How far the model playhead is behind what was sent, µs (the carrier's buffer depth).
    pub fn ahead_us(&self, now_us: u64) -> u64 {
        self.carrier_end_us.saturating_sub(now_us)
    }

    /// Model time at which everything sent has played (no network delay).
    pub fn carrier_end_us(&self) -> u64 {
        self.carrier_end_us
    }

    /// The measured lag of the real playhead behind the model, µs.
    pub fn lag_us(&self) -> u64 {
        self.lag_us
    }

    /// Whether the caller is (by the corrected model) still hearing agent audio.
    pub fn is_playing(&self, now_us: u64) -> bool {
        self.utterance_sent > 0 && self.carrier_end_us + self.lag_us > now_us
    }

    /// Samples of the current utterance sent so far.
    pub fn utterance_sent(&self) -> u64 {
        self.utterance_sent
    }

    /// Whether a frame sent at `now_us` would go on with the utterance sent so far rather than
    /// start a new one (see [`PlayoutModel::on_frame_sent`]).
    pub fn continues_utterance(&self, now_us: u64) -> bool {
        self.utterance_sent > 0 && now_us < self.carrier_end_us + self.lag_us + self.utterance_gap_us
    }

    /// Samples of the current utterance the caller has heard by `now_us`: none once it is over
    /// (the next frame would start a new one).
    pub fn played_samples(&self, now_us: u64) -> u64 {
        if !self.continues_utterance(now_us) {
            return 0;
        }
        let (run, before) = self.unplayed(now_us);
        self.utterance_sent.saturating_sub(run + before)
    }

    /// Samples sent that the caller has not heard by `now_us` (by the corrected model), across
    /// utterances.
    pub fn unplayed_samples(&self, now_us: u64) -> u64 {
        let (run, before) = self.unplayed(now_us);
        run + before
    }

    /// Samples not heard by `now_us` of the current run, and of the run before it: each run plays
    /// the measured lag after the model plays it.
    fn unplayed(&self, now_us: u64) -> (u64, u64) {
        let samples =
            |end_us: u64| (end_us + self.lag_us).saturating_sub(now_us) * self.samples_per_ms / 1000;
        (
            samples(self.carrier_end_us).min(self.run_sent),
            samples(self.run_before_end_us).min(self.run_before_sent),
        )
    }

    /// Records a frame of `samples` sent at `now_us`. A frame after a pause of at least the
    /// utterance gap starts a new utterance; shorter pauses (a slow TTS) do not, so the played
    /// position keeps counting from the utterance's start. Returns true when a sync mark should
    /// follow it.
    pub fn on_frame_sent(&mut self, now_us: u64, samples: u64) -> bool {
        if !self.continues_utterance(now_us) {
            self.utterance_sent = 0;
        }
        if now_us > self.carrier_end_us {
            // The model carrier went idle: a new run (the one before ended then).
            (self.run_before_sent, self.run_before_end_us) = (self.run_sent, self.carrier_end_us);
            self.run_sent = 0;
        }
        self.carrier_end_us = self.carrier_end_us.max(now_us) + samples * 1000 / self.samples_per_ms;
        self.utterance_sent += samples;
        self.run_sent += samples;
        self.since_sync += samples;
        if self.sync_interval > 0 && self.since_sync >= self.sync_interval {
            self.since_sync = 0;
            return true;
        }
        false
    }

    /// Registers a sync mark sent right after the last frame; returns its number for the name.
    pub fn sync_mark_sent(&mut self) -> u32 {
        let n = self.next_sync;
        self.next_sync = self.next_sync.wrapping_add(1);
        self.sync[n as usize % SYNC_SLOTS] =
            Some(SyncMark { n, due_us: self.carrier_end_us, epoch: self.epoch });
        n
    }

    /// The carrier echoed sync mark `n` at `now_us`: correct the lag, if its audio `played` (not a
    /// clear's echo). False if no such mark is outstanding (never sent, already echoed, or too old
    /// to remember): the echo is not genuine.
    pub fn sync_mark_echoed(&mut self, n: u32, now_us: u64, played: bool) -> bool {
        let slot = &mut self.sync[n as usize % SYNC_SLOTS];
        let Some(mark) = *slot else { return false };
        if mark.n != n {
            return false;
        }
        *slot = None;
        if played && mark.epoch == self.epoch {
            self.lag_us = now_us.saturating_sub(mark.due_us).min(MAX_LAG_US);
        }
        true
    }

    /// The agent was cut off with nothing left at the carrier: what it plays next is a new
    /// utterance, however soon (the clock and the sync measurement are left as they are).
    pub fn end_utterance(&mut self) {
        self.utterance_sent = 0;
    }

    /// The carrier's buffer was cleared at `now_us`. Returns the samples of the utterance heard.
    pub fn clear(&mut self, now_us: u64) -> u64 {
        let played = self.played_samples(now_us);
        self.carrier_end_us = now_us;
        self.utterance_sent = 0;
        self.run_sent = 0;
        self.run_before_sent = 0;
        self.since_sync = 0;
        self.epoch = self.epoch.wrapping_add(1);
        played
    }
}

/// Parses the number out of a sync mark name, if `name` is one.
pub fn parse_sync_mark(name: &str) -> Option<u32> {
    name.strip_prefix(SYNC_MARK_PREFIX)?.parse().ok()
}

/// Writes a sync mark name into `buf` without allocating; returns it.
pub fn sync_mark_name(n: u32, buf: &mut [u8; 32]) -> &str {
    let prefix = SYNC_MARK_PREFIX.as_bytes();
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let end = prefix.len() + digits.len() - i;
    buf[prefix.len()..end].copy_from_slice(&digits[i..]);
    std::str::from_utf8(&buf[..end]).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn played_position_follows_a_carrier_that_plays_in_real_time() {
        let mut p = PlayoutClock::new(0, 1000);
        // Five frames sent at once at t=0: the carrier plays them back to back.
        for _ in 0..5 {
            p.on_frame_sent(0, 160);
        }
        assert_eq!(p.played_samples(0), 0);
        assert_eq!(p.played_samples(30_000), 240);
        assert_eq!(p.played_samples(100_000), 800);
        assert_eq!(p.played_samples(500_000), 800);
        assert!(p.is_playing(99_999));
        assert!(!p.is_playing(100_000));
    }

    #[test]
    fn an_underrun_restarts_the_carrier_clock_but_not_the_utterance() {
        let mut p = PlayoutClock::new(0, 1000);
        p.on_frame_sent(0, 160);
        // The carrier went idle at 20 ms; a frame sent at 50 ms plays 50..70 ms.
        p.on_frame_sent(50_000, 160);
        assert_eq!(p.carrier_end_us(), 70_000);
        assert_eq!(p.played_samples(60_000), 160 + 80);
        // A pause of a second or more is a new utterance.
        p.on_frame_sent(1_070_000, 160);
        assert_eq!(p.played_samples(1_080_000), 80);
    }

    #[test]
    fn after_an_underrun_the_lag_holds_back_the_run_before_and_the_new_one_not_what_was_heard() {
        let mut p = PlayoutClock::new(100, 1000);
        for _ in 0..5 {
            p.on_frame_sent(0, 160);
        }
        // The carrier plays the model's 0-100 ms at 200-300 ms: a lag of 200 ms.
        let n = p.sync_mark_sent();
        p.sync_mark_echoed(n, 300_000, true);
        assert_eq!(p.lag_us(), 200_000);
        // A pause in the reply (shorter than the utterance gap); a frame at 500 ms plays at
        // 700-720 ms. All 800 samples before it were heard by 300 ms.
        p.on_frame_sent(500_000, 160);
        assert_eq!(p.played_samples(500_000), 800);
        assert_eq!(p.played_samples(700_000), 800);
        assert_eq!(p.played_samples(710_000), 880);
        assert_eq!(p.played_samples(720_000), 960);
        assert_eq!(p.unplayed_samples(500_000), 160);
        // Resumed while the carrier still plays the run before (the model idle at 100 ms, the
        // carrier until 300 ms): the new frame plays after it, at 350-370 ms.
        let mut p = PlayoutClock::new(100, 1000);
        for _ in 0..5 {
            p.on_frame_sent(0, 160);
        }
        let n = p.sync_mark_sent();
        p.sync_mark_echoed(n, 300_000, true);
        p.on_frame_sent(150_000, 160);
        assert_eq!(p.played_samples(150_000), 0);
        assert_eq!(p.played_samples(250_000), 400);
        assert_eq!(p.played_samples(350_000), 800);
        assert_eq!(p.played_samples(370_000), 960);
        // A clear: nothing is left unplayed, and the next reply starts afresh.
        p.clear(400_000);
        p.on_frame_sent(600_000, 160);
        assert_eq!(p.unplayed_samples(600_000), 160);
    }

    #[test]
    fn sync_echo_measures_network_lag_and_corrects_the_estimate() {
        let mut p = PlayoutClock::new(100, 1000);
        let mut due_sync = false;
        for _ in 0..5 {
            due_sync |= p.on_frame_sent(0, 160);
        }
        assert!(due_sync);
        let n = p.sync_mark_sent();
        // The model says everything ends at 100 ms; the echo comes at 130 ms: 30 ms of lag.
        p.sync_mark_echoed(n, 130_000, true);
        assert_eq!(p.lag_us(), 30_000);
        assert_eq!(p.played_samples(100_000), 800 - 240);
    }

    #[test]
    fn echoes_from_before_a_clear_are_ignored() {
        let mut p = PlayoutClock::new(20, 1000);
        p.on_frame_sent(0, 160);
        let n = p.sync_mark_sent();
        assert_eq!(p.clear(10_000), 80);
        p.sync_mark_echoed(n, 900_000, true);
        assert_eq!(p.lag_us(), 0);
    }

    #[test]
    fn sync_mark_names_round_trip() {
        let mut buf = [0u8; 32];
        for n in [0u32, 7, 42, 1_000_000, u32::MAX] {
            let name = sync_mark_name(n, &mut buf).to_owned();
            assert_eq!(name, format!("{SYNC_MARK_PREFIX}{n}"));
            assert_eq!(parse_sync_mark(&name), Some(n));
        }
        assert_eq!(parse_sync_mark("greeting"), None);
    }
}
