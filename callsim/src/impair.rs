//! Network impairments on the caller's media: jitter, bursts, gaps, reordering and stalls, all
//! seeded.
//!
//! The carrier's stream keeps its true timestamps; only when (and whether, and in which order) its
//! messages are sent changes, as after a network stall. Messages still leave in one order on one
//! connection (TCP), so a delayed frame delays the ones behind it.

use super::audio::FRAME_MS;
use super::carrier::Wire;
use super::rng::SplitMix64;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What to do to the caller's media. All zero (the default): frames leave every 20 ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Impairments {
    /// Each frame is sent up to this many ms late (uniform, seeded).
    pub jitter_ms: u32,
    /// Bursts: `burst_frames` frames are held and sent together with the last of them...
    pub burst_frames: u32,
    /// ...once every `burst_every` frames (0 with `burst_frames` set: every
    /// [`Self::DEFAULT_BURST_EVERY`] frames, once a second). `burst_frames` must be fewer: a
    /// burst as long as its period holds every frame until the hang-up.
    pub burst_every: u32,
    /// Every `gap_every`-th frame is never sent (its timestamp is skipped: a gap).
    pub gap_every: u32,
    /// Every `reorder_every`-th frame is sent after the frame that follows it (a swapped pair).
    pub reorder_every: u32,
    /// Network stalls: every `stall_every_ms` ms of the call (stream time, from `start`)...
    pub stall_every_ms: u32,
    /// ...everything the caller sends is held for `stall_ms` ms, then leaves at once, as TCP
    /// delivers what queued behind a lost segment once it is retransmitted. Shorter than
    /// `stall_every_ms` (a longer one is cut to one frame less: the line moves between stalls).
    pub stall_ms: u32,
    /// Seed of the jitter (each call derives its own stream from it).
    pub seed: u64,
}

impl Impairments {
    /// The burst period when `burst_every` is 0, frames.
    pub const DEFAULT_BURST_EVERY: u32 = 50;

    fn burst_period(&self) -> u64 {
        match (self.burst_frames, self.burst_every) {
            (0, _) => 0,
            (_, 0) => u64::from(Self::DEFAULT_BURST_EVERY),
            (_, every) => u64::from(every),
        }
    }

    /// The stall period and length, if stalls are on.
    fn stalls(&self) -> Option<(Duration, Duration)> {
        if self.stall_every_ms == 0 || self.stall_ms == 0 {
            return None;
        }
        let every = u64::from(self.stall_every_ms);
        let length = u64::from(self.stall_ms).min(every.saturating_sub(FRAME_MS).max(1));
        Some((Duration::from_millis(every), Duration::from_millis(length)))
    }

    /// Whether media frame `k` (0-based) is dropped.
    pub(crate) fn drops(&self, k: u64) -> bool {
        self.gap_every > 0 && (k + 1).is_multiple_of(u64::from(self.gap_every))
    }
}

/// Counts of what was done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImpairmentCounts {
    /// Frames never sent (gaps).
    pub dropped: u64,
    /// Frames sent after their successor.
    pub reordered: u64,
    /// Frames held back in bursts.
    pub held_in_bursts: u64,
    /// Frames sent late by jitter (by at least 1 ms).
    pub jittered: u64,
    /// Stalls that held something.
    pub stalls: u64,
    /// Time the line was held by those stalls, ms.
    pub stalled_ms: u64,
    /// Most media frames one stall held (they all leave at once when it ends).
    pub largest_stall_burst: u64,
}

/// A message waiting to leave at `due`.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) due: Instant,
    /// When the carrier handed it to the network (its unimpaired send time): a message handed
    /// later cannot overtake it.
    pub(crate) handed: Instant,
    pub(crate) msg: Wire,
    /// Caller frames (20 ms) the message carries: 0 for anything but media.
    pub(crate) frames: u64,
}

/// Applies [`Impairments`] to the caller's messages, feeding a send queue.
pub(crate) struct Impairer {
    config: Impairments,
    rng: SplitMix64,
    held_reorder: Option<(Wire, u64)>,
    /// Messages held by a burst (a stall), and whether each is media.
    held_burst: Vec<(Wire, u64)>,
    last_due: Option<Instant>,
    /// Stream time 0 (when `start` was sent): stalls are scheduled from it.
    origin: Instant,
    /// The stall that held the latest held message, and how many media frames it held.
    stall: Option<(u64, u64)>,
    pub(crate) counts: ImpairmentCounts,
}

impl Impairer {
    /// `origin`: stream time 0, from which stalls are scheduled (see [`Self::set_origin`]).
    pub(crate) fn new(config: Impairments, call_index: usize, origin: Instant) -> Self {
        Self {
            config,
            rng: SplitMix64::for_call(config.seed, call_index),
            held_reorder: None,
            held_burst: vec![],
            last_due: None,
            origin,
            stall: None,
            counts: ImpairmentCounts::default(),
        }
    }

    /// Moves stream time 0 (before anything is queued): when `start` actually left.
    pub(crate) fn set_origin(&mut self, origin: Instant) {
        self.origin = origin;
    }

    /// When a message due at `due` can leave: at the end of the stall it falls in, if any (a
    /// stall holds everything, media or not, and releases it all together). Never earlier than
    /// `due`, and a message due later never leaves earlier (the mapping is monotonic).
    fn after_stall(&mut self, due: Instant, is_media: bool) -> Instant {
        let Some((every, length)) = self.config.stalls() else { return due };
        let since = due.saturating_duration_since(self.origin).as_nanos();
        let (every, length) = (every.as_nanos(), length.as_nanos());
        let n = since / every;
        if n == 0 || since - n * every >= length {
            return due;
        }
        let end = self.origin + Duration::from_nanos((n * every + length) as u64);
        let n = n as u64;
        // Media frames come here in order of their due times; a control message may fall into a
        // stall before the latest one (it goes ahead of frames not handed yet, which jitter can
        // push into the next stall): it is held to that stall's end, not counted again.
        let held = match self.stall {
            Some((latest, held)) if n == latest => held,
            Some((latest, _)) if n < latest => return end,
            _ => {
                self.counts.stalls += 1;
                self.counts.stalled_ms += (length / 1_000_000) as u64;
                0
            }
        } + u64::from(is_media);
        self.stall = Some((n, held));
        self.counts.largest_stall_burst = self.counts.largest_stall_burst.max(held);
        end
    }

    /// Counts a frame that [`Impairments::drops`] removed.
    pub(crate) fn count_drop(&mut self) {
        self.counts.dropped += 1;
    }

    /// Media frame `k`, normally sent at `due`.
    pub(crate) fn media(
        &mut self,
        k: u64,
        due: Instant,
        text: Wire,
        frames: u64,
        queue: &mut VecDeque<Outgoing>,
    ) {
        // Reordering: hold this one until the next frame has gone.
        let every = u64::from(self.config.reorder_every);
        if every > 0 && self.held_reorder.is_none() && (k + 1).is_multiple_of(every) {
            self.held_reorder = Some((text, frames));
            self.counts.reordered += 1;
            return;
        }
        let mut batch: Vec<(Wire, u64)> = vec![(text, frames)];
        batch.extend(self.held_reorder.take());
        // Bursts: hold frames `0..burst_frames` of each period (a stall: everything sent meanwhile
        // waits too), release them with the last.
        let period = self.config.burst_period();
        if period > 0 {
            let (pos, burst) = (k % period, u64::from(self.config.burst_frames));
            if pos < burst {
                self.held_burst.append(&mut batch);
                if pos + 1 < burst {
                    return;
                }
                batch = std::mem::take(&mut self.held_burst);
                // All but the frame that ends the stall left late.
                self.counts.held_in_bursts +=
                    batch.iter().filter(|(_, frames)| *frames > 0).count() as u64 - 1;
            } else if !self.held_burst.is_empty() {
                // The frame that ends the stall never came (a gap, or inside a message that
                // carries several frames): what it held leaves when that frame would have.
                let ended =
                    due.checked_sub(Duration::from_millis((pos + 1 - burst) * FRAME_MS)).unwrap_or(due);
                let held = std::mem::take(&mut self.held_burst);
                self.counts.held_in_bursts += held.iter().filter(|(_, frames)| *frames > 0).count() as u64;
                for (text, frames) in held {
                    self.push(ended, ended, text, frames, queue);
                }
            }
        }
        let delay = self.rng.up_to(u64::from(self.config.jitter_ms));
        if delay > 0 {
            self.counts.jittered += batch.len() as u64;
        }
        let late = due + Duration::from_millis(delay);
        for (text, frames) in batch {
            self.push(late, due, text, frames, queue);
        }
    }

    /// A non-media message (dtmf, mark echo, stop) handed over at `now`: not impaired itself, but
    /// behind whatever was handed before it (and held with a burst in progress).
    pub(crate) fn control(&mut self, now: Instant, text: Wire, queue: &mut VecDeque<Outgoing>) {
        if !self.held_burst.is_empty() {
            self.held_burst.push((text, 0));
            return;
        }
        // Behind every message handed before it, ahead of any handed later (the client hands a
        // frame once it is recorded, so in a call nothing queued was handed later).
        let pos = queue.iter().position(|m| m.handed > now).unwrap_or(queue.len());
        // Frames behind it are due no earlier, so they are held at least as long: order holds.
        let own = self.after_stall(now, false);
        let due = queue.range(..pos).map(|m| m.due).max().map_or(own, |d| d.max(own));
        queue.insert(pos, Outgoing { due, handed: now, msg: text, frames: 0 });
        if pos + 1 == queue.len() {
            self.last_due = Some(self.last_due.map_or(due, |l| l.max(due)));
        }
    }

    /// Releases every held message at `due` (before `stop`).
    pub(crate) fn flush(&mut self, due: Instant, queue: &mut VecDeque<Outgoing>) {
        // The hang-up cut a burst short: no frame of it was the one that ends it, all left late.
        self.counts.held_in_bursts += self.held_burst.iter().filter(|(_, frames)| *frames > 0).count() as u64;
        let held: Vec<(Wire, u64)> = self.held_burst.drain(..).chain(self.held_reorder.take()).collect();
        for (text, frames) in held {
            self.push(due, due, text, frames, queue);
        }
    }

    fn push(
        &mut self,
        due: Instant,
        handed: Instant,
        text: Wire,
        frames: u64,
        queue: &mut VecDeque<Outgoing>,
    ) {
        let due = self.after_stall(due, frames > 0);
        // One connection: nothing overtakes what is already queued.
        let due = self.last_due.map_or(due, |last| due.max(last));
        self.last_due = Some(due);
        queue.push_back(Outgoing { due, handed, msg: text, frames });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(w: Wire) -> String {
        match w {
            Wire::Text(t) => t,
            Wire::Binary(_) => unreachable!("the tests queue text"),
        }
    }

    fn label(w: &Wire) -> &str {
        match w {
            Wire::Text(t) => t,
            Wire::Binary(_) => unreachable!("the tests queue text"),
        }
    }

    fn run(config: Impairments, frames: u64) -> (Vec<(u64, String)>, ImpairmentCounts) {
        let t0 = Instant::now();
        let mut imp = Impairer::new(config, 0, t0);
        let mut q = VecDeque::new();
        for k in 0..frames {
            if config.drops(k) {
                imp.count_drop();
                continue;
            }
            imp.media(k, t0 + Duration::from_millis(20 * (k + 1)), Wire::Text(k.to_string()), 1, &mut q);
        }
        imp.flush(t0 + Duration::from_millis(20 * (frames + 1)), &mut q);
        let out = q.into_iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, text(o.msg))).collect();
        (out, imp.counts)
    }

    #[test]
    fn control_messages_wait_for_handed_frames_only() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut imp =
            Impairer::new(Impairments { burst_frames: 2, burst_every: 4, ..Default::default() }, 0, t0);
        let mut q = VecDeque::new();
        // Frame 0 is held (a stall): a mark echo meanwhile waits with it.
        imp.media(0, at(20), "f0".into(), 1, &mut q);
        imp.control(at(25), "echo".into(), &mut q);
        imp.media(1, at(40), "f1".into(), 1, &mut q);
        // Frame 2 is handed at 60; a dtmf at 50 goes before it.
        imp.media(2, at(60), "f2".into(), 1, &mut q);
        imp.control(at(50), "dtmf".into(), &mut q);
        let got: Vec<(u64, &str)> =
            q.iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, label(&o.msg))).collect();
        assert_eq!(got, [(40, "f0"), (40, "echo"), (40, "f1"), (50, "dtmf"), (60, "f2")]);
        assert_eq!(imp.counts.held_in_bursts, 1);
    }

    fn names(v: &[(u64, String)]) -> Vec<&str> {
        v.iter().map(|(_, t)| t.as_str()).collect()
    }

    #[test]
    fn gaps_and_reordering_are_exact() {
        let (out, counts) = run(Impairments { gap_every: 4, reorder_every: 3, ..Default::default() }, 9);
        // Frames 3 and 7 are gaps; 2 and 5 go after their successors; 8 is held to the end.
        assert_eq!(names(&out), ["0", "1", "4", "2", "6", "5", "8"]);
        assert_eq!(counts, ImpairmentCounts { dropped: 2, reordered: 3, ..Default::default() });
        assert_eq!(out[2].0, out[3].0, "a swapped pair leaves together");
    }

    #[test]
    fn bursts_hold_frames_and_release_them_together() {
        let (out, counts) = run(Impairments { burst_frames: 3, burst_every: 5, ..Default::default() }, 10);
        assert_eq!(names(&out), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
        let due: Vec<u64> = out.iter().map(|(d, _)| *d).collect();
        assert_eq!(due, [60, 60, 60, 80, 100, 160, 160, 160, 180, 200]);
        assert_eq!(counts.held_in_bursts, 4);
    }

    #[test]
    fn frames_a_burst_still_holds_at_the_hang_up_count_as_held() {
        // Frames 5 and 6 start the second burst when the call ends: both were held, to the end.
        let (out, counts) = run(Impairments { burst_frames: 3, burst_every: 5, ..Default::default() }, 7);
        let due: Vec<u64> = out.iter().map(|(d, _)| *d).collect();
        assert_eq!(due, [60, 60, 60, 80, 100, 160, 160]);
        assert_eq!(counts.held_in_bursts, 4);
    }

    #[test]
    fn a_burst_whose_last_frame_is_a_gap_ends_when_that_frame_was_due() {
        // Frame 4 would end each burst of 5; every 5th frame is a gap.
        let config = Impairments { burst_frames: 5, burst_every: 10, gap_every: 5, ..Default::default() };
        let (out, counts) = run(config, 20);
        assert_eq!(
            names(&out),
            ["0", "1", "2", "3", "5", "6", "7", "8", "10", "11", "12", "13", "15", "16", "17", "18"]
        );
        let due: Vec<u64> = out.iter().map(|(d, _)| *d).collect();
        assert_eq!(due, [100, 100, 100, 100, 120, 140, 160, 180, 300, 300, 300, 300, 320, 340, 360, 380]);
        assert_eq!(counts.held_in_bursts, 8);
        // A control message handed during the stall goes out with it, not at the hang-up.
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut imp = Impairer::new(config, 0, t0);
        let mut q = VecDeque::new();
        imp.media(0, at(20), "f0".into(), 1, &mut q);
        imp.control(at(30), "echo".into(), &mut q);
        imp.media(5, at(120), "f5".into(), 1, &mut q);
        let got: Vec<(u64, &str)> =
            q.iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, label(&o.msg))).collect();
        assert_eq!(got, [(100, "f0"), (100, "echo"), (120, "f5")]);
    }

    #[test]
    fn jitter_is_seeded_bounded_and_keeps_order() {
        let config = Impairments { jitter_ms: 30, seed: 42, ..Default::default() };
        let (a, counts) = run(config, 200);
        let (b, _) = run(config, 200);
        assert_eq!(a, b, "the same seed gives the same schedule");
        assert_eq!(names(&a), (0..200).map(|k| k.to_string()).collect::<Vec<_>>());
        assert!(counts.jittered > 150);
        for (k, (due, _)) in a.iter().enumerate() {
            let nominal = 20 * (k as u64 + 1);
            assert!(*due >= nominal && *due <= nominal + 30, "frame {k} at {due}");
        }
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        let (c, _) = run(Impairments { seed: 43, ..config }, 200);
        assert_ne!(a, c);
    }

    #[test]
    fn stalls_hold_everything_then_release_it_at_once() {
        // Every 200 ms the line stalls for 100 ms: frames due (once "recorded", at 20 (k + 1) ms)
        // in [200, 300) and [400, 500) leave at 300 and 500, with the frame due then.
        let config = Impairments { stall_every_ms: 200, stall_ms: 100, ..Default::default() };
        let (out, counts) = run(config, 29);
        assert_eq!(names(&out), (0..29).map(|k| k.to_string()).collect::<Vec<_>>(), "order kept");
        let due: Vec<u64> = out.iter().map(|(d, _)| *d).collect();
        let mut expected: Vec<u64> = (1..=29).map(|k| 20 * k).collect();
        for d in &mut expected {
            if (200..300).contains(d) || (400..500).contains(d) {
                *d = *d / 100 * 100 + 100;
            }
        }
        assert_eq!(due, expected);
        assert_eq!(&due[8..15], [180, 300, 300, 300, 300, 300, 300]);
        assert_eq!(
            counts,
            ImpairmentCounts { stalls: 2, stalled_ms: 200, largest_stall_burst: 5, ..Default::default() }
        );
        // The same schedule on every run, and none without a period.
        assert_eq!(run(config, 29), (out, counts));
        let (plain, counts) = run(Impairments { stall_ms: 100, ..Default::default() }, 29);
        assert!(plain.iter().enumerate().all(|(k, (d, _))| *d == 20 * (k as u64 + 1)));
        assert_eq!(counts, ImpairmentCounts::default());
    }

    #[test]
    fn a_stall_holds_control_messages_too_and_the_stop_behind_them() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut imp =
            Impairer::new(Impairments { stall_every_ms: 100, stall_ms: 60, ..Default::default() }, 0, t0);
        let mut q = VecDeque::new();
        imp.media(3, at(80), "f3".into(), 1, &mut q);
        imp.control(at(90), "before".into(), &mut q);
        imp.media(4, at(100), "f4".into(), 1, &mut q);
        imp.control(at(110), "echo".into(), &mut q);
        imp.media(5, at(120), "f5".into(), 1, &mut q);
        imp.media(6, at(140), "f6".into(), 1, &mut q);
        imp.media(7, at(160), "f7".into(), 1, &mut q);
        imp.control(at(170), "stop".into(), &mut q);
        let got: Vec<(u64, &str)> =
            q.iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, label(&o.msg))).collect();
        assert_eq!(
            got,
            [
                (80, "f3"),
                (90, "before"),
                (160, "f4"),
                (160, "echo"),
                (160, "f5"),
                (160, "f6"),
                (160, "f7"),
                (170, "stop")
            ]
        );
        assert_eq!((imp.counts.stalls, imp.counts.stalled_ms, imp.counts.largest_stall_burst), (1, 60, 3));
    }

    #[test]
    fn a_stall_as_long_as_its_period_is_cut_to_leave_the_line_moving() {
        let (out, counts) = run(Impairments { stall_every_ms: 100, stall_ms: 500, ..Default::default() }, 10);
        // 80 ms of each 100 ms held: [100, 180) and [200, 280) leave at 180 and 280.
        let due: Vec<u64> = out.iter().map(|(d, _)| *d).collect();
        assert_eq!(due, [20, 40, 60, 80, 180, 180, 180, 180, 180, 280]);
        assert_eq!((counts.stalls, counts.stalled_ms, counts.largest_stall_burst), (2, 160, 4));
    }
}
