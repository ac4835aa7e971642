//! The simulated carrier's playout buffer: what a carrier does with the bot's audio.
//!
//! The carrier buffers every audio message it receives and plays the buffer in order on its own
//! clock, gaplessly while anything is buffered; a mark is due once the audio sent before it has
//! finished playing (at once if nothing is buffered); a clear drops the buffer and flushes the
//! pending marks (whether those are echoed is the carrier's business: Twilio echoes them, Plivo
//! does not). A carrier without a buffer (AudioSocket) plays each message as it arrives, which is
//! the same model as long as the bot paces its audio. This model runs against a monotonic clock,
//! and measures what a caller would hear: when each reply starts, underruns (the buffer ran dry in
//! the middle of a reply: choppy audio), and how regularly frames arrive.

use super::metrics::Histogram;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Bytes of 8 kHz µ-law per ms.
const BYTES_PER_MS: f64 = 8.0;

/// Playout settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayoutConfig {
    /// Delay between a frame reaching an idle carrier and its playout (a carrier-side jitter
    /// buffer; Twilio's is not documented, 0 plays at once). A frame that arrives while audio is
    /// still buffered plays right after it, as from any jitter buffer.
    pub delay: Duration,
    /// Bot silence at least this long between two frames ends a reply: the next frame starts a
    /// new one (so does the first audio after any silence once the caller has finished an
    /// utterance since the reply started, and the first after a `clear`). Shorter silences inside
    /// a reply are underruns.
    pub reply_gap: Duration,
    /// Silences shorter than this are not counted as underruns (the measurement's own precision:
    /// the task that timestamps arrivals runs on a shared scheduler).
    pub underrun_tolerance: Duration,
}

impl Default for PlayoutConfig {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            reply_gap: Duration::from_millis(1_000),
            underrun_tolerance: Duration::from_millis(2),
        }
    }
}

/// What a received media payload did.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaOutcome {
    /// It started a new reply (the previous one, if any, ended as given).
    ReplyStarted {
        /// The reply before it.
        previous: Option<ReplyEnd>,
    },
    /// It arrived after the buffer had run dry in the middle of a reply.
    Underrun {
        /// Silence the caller heard, ms.
        gap_ms: f64,
    },
    /// It was queued behind audio still playing (or within the tolerance).
    Continued,
}

/// How a reply ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReplyEnd {
    /// When its audio stopped playing.
    pub at: Instant,
    /// Audio of it the caller heard, ms.
    pub played_ms: f64,
    /// Whether a `clear` cut it.
    pub cleared: bool,
}

/// What a `clear` did.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearOutcome<M = String> {
    /// Buffered audio dropped, ms.
    pub dropped_ms: f64,
    /// The reply it cut, if one was playing or had played.
    pub reply: Option<ReplyEnd>,
    /// The marks it flushed (their audio was not heard), in order.
    pub flushed: Vec<M>,
}

/// Playout counters and per-frame timing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayoutStats {
    /// Media payloads received.
    pub frames: u64,
    /// Audio received, ms.
    pub audio_ms: f64,
    /// Replies (talk spurts) started.
    pub replies: u64,
    /// Times the buffer ran dry inside a reply.
    pub underruns: u64,
    /// Silence heard inside replies because of underruns, ms.
    pub underrun_ms: f64,
    /// For each frame after a reply's first: how much later than the previous frame's length it
    /// arrived (ms, 0 when on time or early). Counted to the 0.1 ms the report prints, so that
    /// a long call's memory does not grow with its frames.
    pub lateness_ms: Histogram,
    /// RFC 3550 interarrival jitter of the bot's frames, ms (the running estimate at the end).
    pub jitter_ms: f64,
    /// Audio dropped by `clear`, ms.
    pub cleared_ms: f64,
    /// Marks received.
    pub marks: u64,
    /// Marks due after their audio played.
    pub marks_played: u64,
    /// Marks a `clear` flushed.
    pub marks_cleared: u64,
}

#[derive(Debug, Clone, Copy)]
struct Reply {
    received_ms: f64,
    cleared: bool,
}

/// The simulated carrier's buffer; `M` is what it keeps of a mark (its name by default).
#[derive(Debug)]
pub struct CarrierPlayout<M = String> {
    config: PlayoutConfig,
    /// When everything received so far has played.
    play_end: Option<Instant>,
    /// When the current stretch of gapless playout began.
    segment_start: Option<Instant>,
    /// The stretch before it (start, end): a caller onset can be handled after a bot message
    /// that arrived later, and that message may have started the current stretch.
    previous_segment: Option<(Instant, Instant)>,
    reply: Option<Reply>,
    /// Arrival time and length (ms) of the last frame of the current reply.
    last_frame: Option<(Instant, f64)>,
    marks: VecDeque<(Instant, M)>,
    /// Marks queued ahead of the next audio to arrive ([`Self::on_mark_before_next_audio`]).
    waiting: Vec<M>,
    stats: PlayoutStats,
}

impl<M> CarrierPlayout<M> {
    /// An idle carrier.
    pub fn new(config: PlayoutConfig) -> Self {
        Self {
            config,
            play_end: None,
            segment_start: None,
            previous_segment: None,
            reply: None,
            last_frame: None,
            marks: VecDeque::new(),
            waiting: Vec::new(),
            stats: PlayoutStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &PlayoutStats {
        &self.stats
    }

    /// Whether bot audio is playing at `at` (not while it waits out the playout delay). `at` may
    /// be a little earlier than the last audio received (a caller onset handled after it): audio
    /// that started playing after `at` does not count.
    pub fn is_playing(&self, at: Instant) -> bool {
        let within = |(start, end): (Instant, Instant)| start <= at && at < end;
        self.segment_start.zip(self.play_end).is_some_and(within) || self.previous_segment.is_some_and(within)
    }

    /// Whether the carrier holds audio at `now`, playing or waiting out the playout delay.
    fn holds_audio(&self, now: Instant) -> bool {
        self.play_end.is_some_and(|end| end > now)
    }

    /// When the buffer ran empty, if it is empty at `now` and ever played.
    pub fn silent_since(&self, now: Instant) -> Option<Instant> {
        self.play_end.filter(|end| *end <= now)
    }

    /// When audio arriving at `now` starts to play: right after what the carrier still holds,
    /// or, if it holds nothing, after the playout delay.
    pub fn play_start(&self, now: Instant) -> Instant {
        self.play_end.filter(|_| self.holds_audio(now)).unwrap_or(now + self.config.delay)
    }

    /// Audio received but not yet played at `now`, ms.
    pub fn buffered_ms(&self, now: Instant) -> f64 {
        match (self.play_end, self.segment_start) {
            (Some(end), Some(start)) if end > now => ms(end.duration_since(now.max(start))),
            _ => 0.0,
        }
    }

    fn end_reply(&mut self, now: Instant) -> Option<ReplyEnd> {
        let reply = self.reply.take()?;
        let remaining = self.buffered_ms(now);
        self.last_frame = None;
        // Cut now if audio was still buffered, else it ended when its audio ran out.
        let at = if remaining > 0.0 { now } else { self.play_end.unwrap_or(now) };
        Some(ReplyEnd {
            at,
            played_ms: reply.received_ms - remaining,
            cleared: remaining > 0.0 && reply.cleared,
        })
    }

    /// A `media` payload of `bytes` µ-law bytes arrived at `now`. `caller_spoke` says whether the
    /// caller finished an utterance since the current reply started: audio that then follows a
    /// silence answers it (a new reply), whatever the silence's length.
    pub fn on_media(&mut self, now: Instant, bytes: usize, caller_spoke: bool) -> MediaOutcome {
        self.on_audio(now, bytes as f64 / BYTES_PER_MS, caller_spoke)
    }

    /// `dur_ms` of audio (in whatever encoding) arrived at `now`; as [`Self::on_media`].
    pub fn on_audio(&mut self, now: Instant, dur_ms: f64, caller_spoke: bool) -> MediaOutcome {
        self.stats.frames += 1;
        self.stats.audio_ms += dur_ms;
        let start_at = now + self.config.delay;
        let idle = !self.holds_audio(now);
        let from = self.play_start(now);
        let gap = self.play_end.map(|end| start_at.saturating_duration_since(end));
        // A silence the caller could hear (not one within the measurement's precision).
        let silence = gap.filter(|g| idle && *g > self.config.underrun_tolerance);
        let new_reply =
            self.reply.is_none() || silence.is_some_and(|g| caller_spoke || g >= self.config.reply_gap);
        let mut outcome = MediaOutcome::Continued;
        if new_reply {
            let previous = self.end_reply(now);
            self.reply = Some(Reply { received_ms: 0.0, cleared: false });
            self.stats.replies += 1;
            outcome = MediaOutcome::ReplyStarted { previous };
        } else {
            if let Some(g) = silence {
                self.stats.underruns += 1;
                self.stats.underrun_ms += ms(g);
                outcome = MediaOutcome::Underrun { gap_ms: ms(g) };
            }
            if let Some((prev_at, prev_len)) = self.last_frame {
                // RFC 3550 §6.4.1: D = (arrival spacing) - (media spacing).
                let d = ms(now.duration_since(prev_at)) - prev_len;
                self.stats.lateness_ms.push(d.max(0.0));
                self.stats.jitter_ms += (d.abs() - self.stats.jitter_ms) / 16.0;
            }
        }
        if idle {
            self.previous_segment = self.segment_start.zip(self.play_end);
            self.segment_start = Some(start_at);
        }
        // Marks that waited for this audio are due when it starts playing.
        self.marks.extend(self.waiting.drain(..).map(|m| (from, m)));
        self.play_end = Some(from + Duration::from_secs_f64(dur_ms / 1000.0));
        if let Some(r) = &mut self.reply {
            r.received_ms += dur_ms;
        }
        self.last_frame = Some((now, dur_ms));
        outcome
    }

    /// A `mark` arrived: returns it if it is to be echoed at once (nothing buffered), else it is
    /// echoed by [`Self::due_marks`] when the audio before it has played.
    pub fn on_mark(&mut self, now: Instant, name: M) -> Option<M> {
        self.stats.marks += 1;
        match self.play_end {
            Some(end) if end > now => {
                self.marks.push_back((end, name));
                None
            }
            _ => {
                self.stats.marks_played += 1;
                Some(name)
            }
        }
    }

    /// A `mark` arrived at a carrier that queues it ahead of the next audio it receives
    /// (mod_audio_fork): it is due when that audio starts playing, and until some arrives it
    /// waits, however long.
    pub fn on_mark_before_next_audio(&mut self, name: M) {
        self.stats.marks += 1;
        self.waiting.push(name);
    }

    /// Marks received and neither echoed nor flushed yet.
    pub fn marks_outstanding(&self) -> usize {
        self.marks.len() + self.waiting.len()
    }

    /// When the next pending mark is due.
    pub fn next_mark_due(&self) -> Option<Instant> {
        self.marks.front().map(|(due, _)| *due)
    }

    /// Marks whose audio has played by `now`, in order.
    pub fn due_marks(&mut self, now: Instant) -> Vec<M> {
        let mut out = vec![];
        while self.marks.front().is_some_and(|(due, _)| *due <= now) {
            out.extend(self.marks.pop_front().map(|(_, n)| n));
        }
        self.stats.marks_played += out.len() as u64;
        out
    }

    /// A `clear` arrived: drops what is buffered and flushes every pending mark.
    pub fn on_clear(&mut self, now: Instant) -> ClearOutcome<M> {
        let dropped_ms = self.buffered_ms(now);
        if let Some(r) = &mut self.reply {
            r.cleared = true;
        }
        let reply = self.end_reply(now);
        self.stats.cleared_ms += dropped_ms;
        if self.play_end.is_some_and(|end| end > now) {
            self.play_end = Some(now);
        }
        let flushed: Vec<M> = self.marks.drain(..).map(|(_, n)| n).chain(self.waiting.drain(..)).collect();
        self.stats.marks_cleared += flushed.len() as u64;
        ClearOutcome { dropped_ms, reply, flushed }
    }

    /// The call ended at `now`: ends the current reply (what had not played by then is lost).
    pub fn finish(&mut self, now: Instant) -> Option<ReplyEnd> {
        self.end_reply(now)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The bot's level as the carrier plays it, 10 ms at a time: how soon the bot's voice drops
/// once the caller speaks over it (a bot that ducks its voice before it is sure of an
/// interruption drops before its `clear`), and how long it stays down when the caller only said
/// "mm-hm".
///
/// A drop is measured against the bot's own level over the half second before the caller's
/// onset, so it is exact for a steady bot (a tone); a bot that speaks has pauses of its own,
/// which a drop that must last [`BotLevels::HOLD`] mostly rides out. Where nothing plays after
/// the onset (the bot stopped sending, or a `clear` cut it), its voice is down too: the caller
/// hears it stop.
#[derive(Debug, Clone, Default)]
pub struct BotLevels {
    /// When each window starts and stops playing, and its mean power (linear, re full scale²), in
    /// order, since what [`BotLevels::forget_before`] left.
    windows: VecDeque<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
    power: f64,
}

/// A stretch of time after an onset, and whether the bot's voice was down through it.
#[derive(Debug, Clone, Copy)]
struct Stretch {
    start: Instant,
    end: Instant,
    down: bool,
}

impl BotLevels {
    /// Window length.
    pub const WINDOW: Duration = Duration::from_millis(10);
    /// A drop must last this long (or until the end of the measured span) to count.
    pub const HOLD: Duration = Duration::from_millis(30);
    /// How far down the level must be, dB.
    pub const DROP_DB: f64 = 10.0;
    /// The reference: the bot's level over this long before the onset.
    pub const REFERENCE: Duration = Duration::from_millis(500);

    /// `pcm` (8 kHz) starts playing at `start`.
    pub fn played(&mut self, start: Instant, pcm: &[i16]) {
        for (k, w) in pcm.chunks(80).enumerate() {
            let power = w.iter().map(|&v| (f64::from(v) / 32_768.0).powi(2)).sum::<f64>() / w.len() as f64;
            let start = start + Self::WINDOW * k as u32;
            let end = start + Duration::from_micros(w.len() as u64 * 125);
            self.windows.push_back(Window { start, end, power });
        }
    }

    /// A `clear` at `now`: what had not started playing never will.
    pub fn cleared(&mut self, now: Instant) {
        self.windows.retain(|w| w.start < now);
        if let Some(last) = self.windows.back_mut() {
            last.end = last.end.min(now);
        }
    }

    /// No onset before `horizon` will be measured: forgets what only those could look at (what
    /// started playing more than [`Self::REFERENCE`] before it), so that a long call's memory
    /// does not grow with its length.
    pub fn forget_before(&mut self, horizon: Instant) {
        let Some(from) = horizon.checked_sub(Self::REFERENCE) else { return };
        while self.windows.front().is_some_and(|w| w.start < from) {
            self.windows.pop_front();
        }
    }

    /// Windows kept.
    #[cfg(test)]
    pub(crate) fn windows(&self) -> usize {
        self.windows.len()
    }

    /// The bot's mean power over [`Self::REFERENCE`] before `onset` (`None` if it played
    /// nothing then).
    fn reference(&self, onset: Instant) -> Option<f64> {
        let from = onset.checked_sub(Self::REFERENCE).unwrap_or(onset);
        let before: Vec<f64> =
            self.windows.iter().filter(|w| w.start >= from && w.start < onset).map(|w| w.power).collect();
        let mean = before.iter().sum::<f64>() / before.len().max(1) as f64;
        (mean > 0.0).then_some(mean)
    }

    /// Whether a window's power is [`Self::DROP_DB`] below `reference`.
    fn down(power: f64, reference: f64) -> bool {
        power <= reference * 10f64.powf(-Self::DROP_DB / 10.0)
    }

    /// `onset..until`, cut into what played (down or not against `reference`) and the silences
    /// between (down), in order and without gaps.
    fn stretches(&self, onset: Instant, until: Instant, reference: f64) -> Vec<Stretch> {
        let mut out = vec![];
        let mut at = onset;
        for w in self.windows.iter().filter(|w| w.end > onset && w.start < until) {
            if w.start > at {
                out.push(Stretch { start: at, end: w.start, down: true });
            }
            let (start, end) = (w.start.max(at), w.end.min(until));
            if end > start {
                out.push(Stretch { start, end, down: Self::down(w.power, reference) });
                at = end;
            }
        }
        if at < until {
            out.push(Stretch { start: at, end: until, down: true });
        }
        out
    }

    /// When, at or after `onset` and before `until`, the bot's level first fell
    /// [`Self::DROP_DB`] below its level before the onset, or its audio stopped, and stayed down
    /// for [`Self::HOLD`] (or until `until`).
    pub fn drop_after(&self, onset: Instant, until: Instant) -> Option<Instant> {
        let reference = self.reference(onset)?;
        let mut run_start = None;
        for s in self.stretches(onset, until, reference) {
            if !s.down {
                run_start = None;
                continue;
            }
            let start = *run_start.get_or_insert(s.start);
            if s.end >= until || s.end.duration_since(start) >= Self::HOLD {
                return Some(start);
            }
        }
        None
    }

    /// How long, between `onset` and `until`, the bot played [`Self::DROP_DB`] below its level
    /// before the onset or not at all, ms.
    pub fn dip_ms(&self, onset: Instant, until: Instant) -> f64 {
        let Some(reference) = self.reference(onset) else { return 0.0 };
        let stretches = self.stretches(onset, until, reference);
        stretches.iter().filter(|s| s.down).map(|s| ms(s.end.duration_since(s.start))).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: usize = 160;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn marks_echo_when_their_audio_has_played() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        assert_eq!(p.on_mark(t0, "before".into()), Some("before".into()), "nothing buffered: at once");
        // A 100 ms lead arrives at once, then one frame every 20 ms.
        for _ in 0..5 {
            assert!(matches!(
                p.on_media(t0, FRAME, false),
                MediaOutcome::ReplyStarted { .. } | MediaOutcome::Continued
            ));
        }
        assert_eq!(p.on_mark(t0, "a".into()), None);
        assert_eq!(p.next_mark_due(), Some(at(t0, 100)));
        for i in 1..=5 {
            assert_eq!(p.on_media(at(t0, 20 * i), FRAME, false), MediaOutcome::Continued);
        }
        p.on_mark(at(t0, 100), "b".into());
        assert!(p.due_marks(at(t0, 99)).is_empty());
        assert_eq!(p.due_marks(at(t0, 100)), ["a"]);
        assert_eq!(p.next_mark_due(), Some(at(t0, 200)));
        assert!(p.is_playing(at(t0, 199)));
        assert_eq!(p.due_marks(at(t0, 200)), ["b"]);
        assert_eq!(p.silent_since(at(t0, 250)), Some(at(t0, 200)));
        let s = p.stats();
        assert_eq!((s.frames, s.replies, s.underruns, s.marks, s.marks_played), (10, 1, 0, 3, 3));
        assert_eq!((s.lateness_ms.len(), s.lateness_ms.percentiles().max), (9, Some(0.0)));
        assert_eq!(p.finish(at(t0, 300)).map(|e| (e.at, e.played_ms)), Some((at(t0, 200), 200.0)));
    }

    #[test]
    fn clear_drops_the_buffer_and_echoes_pending_marks() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        p.on_media(t0, 8 * 1000, false); // one second in one payload
        p.on_mark(t0, "end".into());
        p.on_media(t0, FRAME, false);
        p.on_mark(t0, "after".into());
        let c = p.on_clear(at(t0, 300));
        assert_eq!(c.flushed, ["end", "after"]);
        assert!((c.dropped_ms - 720.0).abs() < 1e-6);
        let reply = c.reply.unwrap();
        assert!((reply.played_ms - 300.0).abs() < 1e-6 && reply.cleared);
        assert_eq!(reply.at, at(t0, 300));
        assert!(!p.is_playing(at(t0, 300)));
        assert!(p.due_marks(at(t0, 5000)).is_empty());
        // Audio after a clear is a new reply.
        assert!(matches!(
            p.on_media(at(t0, 310), FRAME, false),
            MediaOutcome::ReplyStarted { previous: None }
        ));
        assert_eq!((p.stats().marks_cleared, p.stats().replies), (2, 2));
    }

    #[test]
    fn a_mark_queued_ahead_of_the_next_audio_waits_for_it() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        p.on_media(t0, FRAME, false);
        p.on_mark_before_next_audio("a".into());
        assert_eq!((p.next_mark_due(), p.marks_outstanding()), (None, 1), "no audio after it yet");
        // The next audio arrives after the buffer ran dry: the mark is due as it starts playing.
        p.on_media(at(t0, 300), FRAME, false);
        assert_eq!(p.due_marks(at(t0, 300)), ["a"]);
        // One still waiting when a clear comes is flushed with the queued ones.
        p.on_media(at(t0, 310), FRAME, false);
        p.on_mark(at(t0, 310), "queued".into());
        p.on_mark_before_next_audio("waiting".into());
        assert_eq!(p.on_clear(at(t0, 315)).flushed, ["queued", "waiting"]);
        assert_eq!((p.stats().marks, p.stats().marks_played, p.stats().marks_cleared), (3, 1, 2));
    }

    #[test]
    fn late_frames_are_underruns_and_pauses_or_turns_start_new_replies() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        assert!(matches!(p.on_media(t0, FRAME, false), MediaOutcome::ReplyStarted { previous: None }));
        assert_eq!(p.on_media(at(t0, 21), FRAME, false), MediaOutcome::Continued, "1 ms: within tolerance");
        match p.on_media(at(t0, 70), FRAME, false) {
            MediaOutcome::Underrun { gap_ms } => assert!((gap_ms - 29.0).abs() < 1e-6),
            other => panic!("{other:?}"),
        }
        let lateness = p.stats().lateness_ms.percentiles();
        assert_eq!((lateness.n, lateness.p50, lateness.max), (2, Some(1.0), Some(29.0)));
        assert!(p.stats().jitter_ms > 1.0);
        // 1.5 s of bot silence: a new reply (the old one ended when its audio ran out).
        match p.on_media(at(t0, 1590), FRAME, false) {
            MediaOutcome::ReplyStarted { previous: Some(end) } => {
                assert_eq!(end.at, at(t0, 90));
                assert!((end.played_ms - 60.0).abs() < 1e-6 && !end.cleared);
            }
            other => panic!("{other:?}"),
        }
        // A short pause after the caller spoke: also a new reply.
        assert!(matches!(p.on_media(at(t0, 1700), FRAME, true), MediaOutcome::ReplyStarted { .. }));
        assert_eq!((p.stats().replies, p.stats().underruns), (3, 1));
    }

    #[test]
    fn after_the_caller_spoke_over_a_reply_the_first_audio_after_a_silence_is_a_new_reply() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        assert!(matches!(p.on_media(t0, FRAME, false), MediaOutcome::ReplyStarted { .. }));
        // The caller finished an utterance while this frame was playing: it cannot answer it...
        assert_eq!(p.on_media(at(t0, 10), FRAME, true), MediaOutcome::Continued);
        // ...nor can audio within the measurement's precision of the last...
        assert_eq!(p.on_media(at(t0, 41), FRAME, true), MediaOutcome::Continued);
        // ...but the first after a silence the caller heard does, however short.
        assert!(matches!(p.on_media(at(t0, 361), FRAME, true), MediaOutcome::ReplyStarted { .. }));
        assert_eq!((p.stats().replies, p.stats().underruns), (2, 0));
    }

    #[test]
    fn bot_levels_find_a_held_drop_and_measure_dips() {
        let t0 = Instant::now();
        let tone = |amp: f64, n: usize| -> Vec<i16> {
            (0..n).map(|i| (amp * (i as f64 * 0.7).sin()) as i16).collect()
        };
        let mut l = BotLevels::default();
        // 1 s at full level, then 20 ms at -6 dB (not a drop), 200 ms at -18 dB, full again to 2 s.
        l.played(at(t0, 0), &tone(8_000.0, 8_000));
        l.played(at(t0, 1_000), &tone(4_000.0, 160));
        l.played(at(t0, 1_020), &tone(1_000.0, 1_600));
        l.played(at(t0, 1_220), &tone(8_000.0, 6_240));
        let onset = at(t0, 900);
        assert_eq!(l.drop_after(onset, at(t0, 2_000)), Some(at(t0, 1_020)));
        assert!((l.dip_ms(onset, at(t0, 2_000)) - 200.0).abs() < 1e-9);
        // A 20 ms dip is not held long enough to count as the voice dropping.
        let mut short = BotLevels::default();
        short.played(at(t0, 0), &tone(8_000.0, 8_000));
        short.played(at(t0, 1_000), &tone(1_000.0, 160));
        short.played(at(t0, 1_020), &tone(8_000.0, 7_840));
        assert_eq!(short.drop_after(onset, at(t0, 2_000)), None);
        // A clear drops what had not started playing: from it on, nothing plays (down); nothing
        // before an onset: no reference.
        l.cleared(at(t0, 1_100));
        assert!((l.dip_ms(onset, at(t0, 2_000)) - 980.0).abs() < 1e-9);
        assert_eq!(BotLevels::default().drop_after(onset, at(t0, 2_000)), None);
    }

    #[test]
    fn silence_after_the_onset_is_the_voice_dropped() {
        let t0 = Instant::now();
        let tone =
            |n: u32| -> Vec<i16> { (0..n).map(|i| (8_000.0 * (f64::from(i) * 0.7).sin()) as i16).collect() };
        // The bot plays 950 ms and stops (no clear); the caller's onset is at 900 ms.
        let mut l = BotLevels::default();
        l.played(t0, &tone(7_600));
        let onset = at(t0, 900);
        assert_eq!(l.drop_after(onset, at(t0, 2_000)), Some(at(t0, 950)));
        assert!((l.dip_ms(onset, at(t0, 1_900)) - 950.0).abs() < 1e-9);
        // A silence shorter than the hold (a 20 ms underrun) is not the voice dropping.
        l.played(at(t0, 970), &tone(8_240));
        assert_eq!(l.drop_after(onset, at(t0, 2_000)), None);
        assert!((l.dip_ms(onset, at(t0, 1_900)) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn the_playout_delay_holds_audio_before_it_plays() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig {
            delay: Duration::from_millis(60),
            ..Default::default()
        });
        p.on_media(t0, FRAME, false);
        p.on_mark(t0, "m".into());
        assert_eq!(p.next_mark_due(), Some(at(t0, 80)));
        assert!((p.buffered_ms(at(t0, 10)) - 20.0).abs() < 1e-6);
        let c = p.on_clear(at(t0, 30));
        assert!((c.dropped_ms - 20.0).abs() < 1e-6);
        assert_eq!(c.reply.map(|r| r.played_ms), Some(0.0));
    }

    #[test]
    fn audio_arriving_while_audio_is_buffered_plays_right_after_it_whatever_the_delay() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig {
            delay: Duration::from_millis(60),
            ..Default::default()
        });
        // The first frame waits out the delay: it plays 60..80 ms.
        assert!(matches!(p.on_media(t0, FRAME, false), MediaOutcome::ReplyStarted { .. }));
        // The next arrives at 30 ms, the first still buffered: it plays 80..100, with no silence
        // between them (not 90..110 after a 10 ms silence no underrun would count).
        assert_eq!(p.play_start(at(t0, 30)), at(t0, 80));
        assert_eq!(p.on_media(at(t0, 30), FRAME, false), MediaOutcome::Continued);
        p.on_mark(at(t0, 30), "end".into());
        assert_eq!(p.next_mark_due(), Some(at(t0, 100)));
        assert!((p.buffered_ms(at(t0, 40)) - 40.0).abs() < 1e-6);
        assert!((p.buffered_ms(at(t0, 70)) - 30.0).abs() < 1e-6);
        assert_eq!(p.silent_since(at(t0, 100)), Some(at(t0, 100)));
        // Audio reaching the buffer after it ran dry (at 100) waits out the delay again: arriving
        // at 130 it plays 190..210, after 90 ms of silence inside the reply.
        match p.on_media(at(t0, 130), FRAME, false) {
            MediaOutcome::Underrun { gap_ms } => assert!((gap_ms - 90.0).abs() < 1e-6, "{gap_ms}"),
            other => panic!("{other:?}"),
        }
        // A clear at 200: 10 ms of it dropped, 50 of the reply's 60 ms heard.
        let c = p.on_clear(at(t0, 200));
        assert!((c.dropped_ms - 10.0).abs() < 1e-6, "{}", c.dropped_ms);
        assert!(c.reply.is_some_and(|r| (r.played_ms - 50.0).abs() < 1e-6), "{:?}", c.reply);
        assert_eq!((p.stats().replies, p.stats().underruns), (1, 1));
    }

    #[test]
    fn bot_audio_is_playing_at_an_onset_only_once_it_started_playing() {
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        // A frame received at 100 ms, before a caller onset at 95 ms was handled: it plays
        // 100..120, so the caller spoke over nothing.
        p.on_media(at(t0, 100), FRAME, false);
        assert!(!p.is_playing(at(t0, 95)));
        assert!(p.is_playing(at(t0, 100)) && p.is_playing(at(t0, 119)));
        assert!(!p.is_playing(at(t0, 120)));
        // The next, received at 150 after the first ran out, plays 150..170: an onset while the
        // first played still was over the bot, one in the silence between them was not.
        p.on_media(at(t0, 150), FRAME, false);
        assert!(p.is_playing(at(t0, 110)));
        assert!(!p.is_playing(at(t0, 130)) && !p.is_playing(at(t0, 149)));
        assert!(p.is_playing(at(t0, 150)) && !p.is_playing(at(t0, 170)));
        // Audio waiting out the playout delay is not playing yet: received at 0, it plays 60..80.
        let mut delayed = CarrierPlayout::<String>::new(PlayoutConfig {
            delay: Duration::from_millis(60),
            ..Default::default()
        });
        delayed.on_media(t0, FRAME, false);
        assert!(!delayed.is_playing(at(t0, 30)) && !delayed.is_playing(at(t0, 59)));
        assert!(delayed.is_playing(at(t0, 60)) && delayed.is_playing(at(t0, 79)));
    }

    #[test]
    fn an_hour_of_frame_lateness_is_kept_in_bounded_memory_with_the_reports_figures() {
        use crate::metrics::Percentiles;
        use crate::rng::SplitMix64;
        let t0 = Instant::now();
        let mut p = CarrierPlayout::<String>::new(PlayoutConfig::default());
        // A 100 ms lead, then an hour of 20 ms frames, each up to 15 ms late (to the µs), so never
        // an underrun: one reply.
        p.on_media(t0, 8 * 100, false);
        let mut rng = SplitMix64::new(7);
        let mut previous = (t0, 100.0);
        let mut lateness = vec![];
        for k in 1..=180_000u64 {
            let arrival = t0 + Duration::from_micros(k * 20_000 + rng.up_to(15_000));
            // The figure the report is about, computed apart: how much later than the previous
            // frame's length this one arrived.
            lateness.push((ms(arrival.duration_since(previous.0)) - previous.1).max(0.0));
            previous = (arrival, 20.0);
            assert_eq!(p.on_media(arrival, FRAME, false), MediaOutcome::Continued);
        }
        let s = p.stats();
        assert_eq!((s.replies, s.underruns, s.lateness_ms.len()), (1, 0, 180_000));
        // A bin per 0.1 ms of 0..15 ms, whatever the call's length.
        assert!(s.lateness_ms.bins() <= 151, "{}", s.lateness_ms.bins());
        // The report's figures are those of every value kept, as it prints them.
        let (kept, exact) = (s.lateness_ms.percentiles(), Percentiles::of(lateness.iter().copied()));
        let printed =
            |p: &Percentiles| format!("{} {:.1?} {:.1?} {:.1?} {:.1?}", p.n, p.p50, p.p90, p.p99, p.max);
        assert_eq!(printed(&kept), printed(&exact));
        assert!((kept.mean.unwrap() - exact.mean.unwrap()).abs() < 1e-9, "{kept:?} {exact:?}");
    }
}
