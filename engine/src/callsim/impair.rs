//! Network impairments on the caller's media: jitter, bursts, gaps and reordering, all seeded.
//!
//! The carrier's stream keeps its true timestamps; only when (and whether, and in which order) its
//! messages are sent changes, as after a network stall. Messages still leave in one order on one
//! connection (TCP), so a delayed frame delays the ones behind it.

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
    /// ...once every `burst_every` frames (0 with `burst_frames` set: every 50 frames, once a
    /// second).
    pub burst_every: u32,
    /// Every `gap_every`-th frame is never sent (its timestamp is skipped: a gap).
    pub gap_every: u32,
    /// Every `reorder_every`-th frame is sent after the frame that follows it (a swapped pair).
    pub reorder_every: u32,
    /// Seed of the jitter (each call derives its own stream from it).
    pub seed: u64,
}

impl Impairments {
    fn burst_period(&self) -> u64 {
        match (self.burst_frames, self.burst_every) {
            (0, _) => 0,
            (_, 0) => 50,
            (_, every) => u64::from(every),
        }
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
}

/// A message waiting to leave at `due`.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) due: Instant,
    /// When the carrier handed it to the network (its unimpaired send time): a message handed
    /// later cannot overtake it.
    pub(crate) handed: Instant,
    pub(crate) text: String,
    pub(crate) is_media: bool,
}

/// Applies [`Impairments`] to the caller's messages, feeding a send queue.
pub(crate) struct Impairer {
    config: Impairments,
    rng: SplitMix64,
    held_reorder: Option<String>,
    /// Messages held by a burst (a stall), and whether each is media.
    held_burst: Vec<(String, bool)>,
    last_due: Option<Instant>,
    pub(crate) counts: ImpairmentCounts,
}

impl Impairer {
    pub(crate) fn new(config: Impairments, call_index: usize) -> Self {
        Self {
            config,
            rng: SplitMix64::for_call(config.seed, call_index),
            held_reorder: None,
            held_burst: vec![],
            last_due: None,
            counts: ImpairmentCounts::default(),
        }
    }

    /// Counts a frame that [`Impairments::drops`] removed.
    pub(crate) fn count_drop(&mut self) {
        self.counts.dropped += 1;
    }

    /// Media frame `k`, normally sent at `due`.
    pub(crate) fn media(&mut self, k: u64, due: Instant, text: String, queue: &mut VecDeque<Outgoing>) {
        // Reordering: hold this one until the next frame has gone.
        let every = u64::from(self.config.reorder_every);
        if every > 0 && self.held_reorder.is_none() && (k + 1).is_multiple_of(every) {
            self.held_reorder = Some(text);
            self.counts.reordered += 1;
            return;
        }
        let mut batch: Vec<(String, bool)> = vec![(text, true)];
        batch.extend(self.held_reorder.take().map(|t| (t, true)));
        // Bursts: hold frames `0..burst_frames` of each period (a stall: everything sent meanwhile
        // waits too), release them with the last.
        let period = self.config.burst_period();
        if period > 0 {
            let pos = k % period;
            if pos < u64::from(self.config.burst_frames) {
                self.held_burst.append(&mut batch);
                if pos + 1 < u64::from(self.config.burst_frames) {
                    return;
                }
                batch = std::mem::take(&mut self.held_burst);
                // All but the frame that ends the stall left late.
                self.counts.held_in_bursts += batch.iter().filter(|(_, media)| *media).count() as u64 - 1;
            }
        }
        let delay = self.rng.up_to(u64::from(self.config.jitter_ms));
        if delay > 0 {
            self.counts.jittered += batch.len() as u64;
        }
        let late = due + Duration::from_millis(delay);
        for (text, is_media) in batch {
            self.push(late, due, text, is_media, queue);
        }
    }

    /// A non-media message (dtmf, mark echo, stop) handed over at `now`: not impaired itself, but
    /// behind whatever was handed before it (and held with a burst in progress).
    pub(crate) fn control(&mut self, now: Instant, text: String, queue: &mut VecDeque<Outgoing>) {
        if !self.held_burst.is_empty() {
            self.held_burst.push((text, false));
            return;
        }
        // Frames not handed yet (still being "recorded") do not hold it back.
        let pos = queue.iter().position(|m| m.handed > now).unwrap_or(queue.len());
        let due = queue.range(..pos).map(|m| m.due).max().map_or(now, |d| d.max(now));
        queue.insert(pos, Outgoing { due, handed: now, text, is_media: false });
        if pos + 1 == queue.len() {
            self.last_due = Some(self.last_due.map_or(due, |l| l.max(due)));
        }
    }

    /// Releases every held message at `due` (before `stop`).
    pub(crate) fn flush(&mut self, due: Instant, queue: &mut VecDeque<Outgoing>) {
        let held: Vec<(String, bool)> =
            self.held_burst.drain(..).chain(self.held_reorder.take().map(|t| (t, true))).collect();
        for (text, is_media) in held {
            self.push(due, due, text, is_media, queue);
        }
    }

    fn push(
        &mut self,
        due: Instant,
        handed: Instant,
        text: String,
        is_media: bool,
        queue: &mut VecDeque<Outgoing>,
    ) {
        // One connection: nothing overtakes what is already queued.
        let due = self.last_due.map_or(due, |last| due.max(last));
        self.last_due = Some(due);
        queue.push_back(Outgoing { due, handed, text, is_media });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: Impairments, frames: u64) -> (Vec<(u64, String)>, ImpairmentCounts) {
        let t0 = Instant::now();
        let mut imp = Impairer::new(config, 0);
        let mut q = VecDeque::new();
        for k in 0..frames {
            if config.drops(k) {
                imp.count_drop();
                continue;
            }
            imp.media(k, t0 + Duration::from_millis(20 * (k + 1)), k.to_string(), &mut q);
        }
        imp.flush(t0 + Duration::from_millis(20 * (frames + 1)), &mut q);
        let out = q.into_iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, o.text)).collect();
        (out, imp.counts)
    }

    #[test]
    fn control_messages_wait_for_handed_frames_only() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut imp = Impairer::new(Impairments { burst_frames: 2, burst_every: 4, ..Default::default() }, 0);
        let mut q = VecDeque::new();
        // Frame 0 is held (a stall): a mark echo meanwhile waits with it.
        imp.media(0, at(20), "f0".into(), &mut q);
        imp.control(at(25), "echo".into(), &mut q);
        imp.media(1, at(40), "f1".into(), &mut q);
        // Frame 2 is handed at 60; a dtmf at 50 goes before it.
        imp.media(2, at(60), "f2".into(), &mut q);
        imp.control(at(50), "dtmf".into(), &mut q);
        let got: Vec<(u64, &str)> =
            q.iter().map(|o| (o.due.duration_since(t0).as_millis() as u64, o.text.as_str())).collect();
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
}
