//! Echo reduction: the caller's audio with the agent's own voice, echoed back on the line,
//! removed, for a host that asks for it (`SessionConfig::echo_reduction`).
//!
//! The echo gate (`vad::echo_gate`) only decides whose speech a band is; the caller audio the host
//! reads stays as the carrier sent it. A host that transcribes the caller while the agent talks
//! (or records it) wants the echo out of that audio too. This stage runs an adaptive filter
//! ([`adaptive_filter`]) over the caller's 8 kHz audio with the agent's audio as the caller's
//! line heard it as the far end:
//!
//! - **Where the far end comes from**: the same reference the gate gets, the audio of each frame
//!   sent, placed on the caller's timeline by the playout model, kept here as samples in a ring
//!   ([`RING`], about 2 s: the pacer's lead ahead of the caller, the longest delay behind).
//! - **Alignment**: the echo arrives 20-400 ms (plus the carrier's playout delay) after the
//!   reference, while the filter spans [`SPAN`] samples (140 ms: a tail of up to 100 ms and the
//!   estimate's error). So the far end is fed [`SLACK`] earlier than the gate's delay estimate
//!   says the echo comes; until the estimate is trusted, undelayed. The alignment moves only when
//!   the estimate leaves what the filter can hold ([`EARLIEST`], [`LATEST`]): the estimate
//!   wanders by a few milliseconds. A move shifts the filter's taps by as much, so what it had
//!   learnt of the path is kept (only taps shifted out of the span are lost), and its far-end
//!   history is read again from the ring at the new alignment.
//! - **Silence costs nothing**: while the far end the filter would see has been silent for its
//!   whole span, frames pass unchanged without filtering (there is no echo to remove).
//! - **Framing**: the filter works in blocks of [`FRAME`] samples of line, but nothing is held
//!   back for one: a block's echo is estimated when it starts, from the far end already written
//!   (the pacer sends ahead, and the far end is fed behind the line), and each sample goes out
//!   as it comes; the filter learns from the block when it is whole. Pieces of any length give
//!   the same output.
//!
//! It works at 8 kHz whatever the carrier's rate: the reference is the agent's frames brought
//! down to 8 kHz, and a wider stream's caller audio is filtered as the speech detector hears it,
//! brought down to 8 kHz (`pipeline::inbound` then takes it to the agent's rate).

mod adaptive_filter;
mod transform;

use crate::audio::to_i16;

use adaptive_filter::{AdaptiveFilter, FRAME, PARTITIONS, SPAN};

/// How much earlier than the estimated delay the far end is fed, samples (16 ms): the estimate is
/// good to about ±10 ms, and an echo that comes before the filter's first tap cannot be removed.
const SLACK: u64 = 128;
/// The alignment moves when the estimated delay, less the alignment, falls below this (the echo
/// would start before the filter's first taps, given the estimate's error), samples ...
const EARLIEST: u64 = 32;
/// ... or rises above this (a 100 ms tail would run past the filter's last tap), samples.
const LATEST: u64 = SPAN as u64 - 800;
/// Samples of reference kept (2.048 s at 8 kHz): what the pacer sent ahead of the caller's
/// position, the longest delay the estimate reports (640 ms) and the filter's span behind it.
const RING: u64 = 16_384;

/// One session's canceller: the far end, the adaptive filter and the framing.
pub(crate) struct EchoCanceller {
    filter: AdaptiveFilter,
    /// The agent's audio by caller sample (8 kHz), at `sample % RING`.
    reference: Box<[i16; RING as usize]>,
    /// One past the newest reference sample written.
    reference_end: u64,
    /// One past the newest non-zero reference sample written (0: none yet).
    loud_end: u64,
    /// How far the far end is fed ahead of the caller's samples, samples.
    alignment: u64,
    /// The far end the filter holds has been silent for its whole span.
    far_silent: bool,
    /// The alignment moved: the filter's far-end history is to be pushed again from the ring.
    refill: bool,
    /// The echo's delay behind the reference as last estimated, samples: the alignment follows
    /// it at the next block's start.
    delay: Option<u64>,
    /// The block of line in progress: the caller sample it started at, its samples so far, and
    /// whether the filter runs on it (the far end was not silent).
    block_at: u64,
    block_len: usize,
    block: [i16; FRAME],
    filtered: bool,
    /// No gap's filling is in the block: the filter learns from it when it ends.
    learns: bool,
}

/// A piece of caller audio as [`EchoCanceller::process`] hands it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reduced<'a> {
    /// The samples as they came: nothing of the agent's could echo in them, or a gap's filling.
    Unchanged(&'a [i16]),
    /// The samples with the echo estimate taken out.
    Filtered(&'a [i16]),
}

impl<'a> Reduced<'a> {
    /// The samples, either way.
    pub(crate) fn samples(self) -> &'a [i16] {
        match self {
            Self::Unchanged(s) | Self::Filtered(s) => s,
        }
    }
}

impl EchoCanceller {
    /// A canceller that has learnt nothing yet (allocates; made when the session opens).
    pub(crate) fn new() -> Box<Self> {
        Box::new(Self {
            filter: AdaptiveFilter::new(),
            reference: Box::new([0; RING as usize]),
            reference_end: 0,
            loud_end: 0,
            alignment: 0,
            far_silent: true,
            refill: false,
            delay: None,
            block_at: 0,
            block_len: 0,
            block: [0; FRAME],
            filtered: false,
            learns: true,
        })
    }

    /// The agent's audio (8 kHz) heard on the caller's line from caller sample `at` on, or
    /// right after the audio before it if the carrier plays it straight on (`follows`). Audio
    /// more than [`RING`] behind the newest is dropped (too old to echo).
    pub(crate) fn reference(&mut self, pcm: &[i16], at: u64, follows: bool) {
        // The mapping from the engine's clock to caller samples creeps by a few samples from
        // frame to frame; the carrier plays back-to-back frames without a gap, and the filter
        // would have to chase every such jump.
        let at = if follows && self.reference_end > 0 { self.reference_end } else { at };
        let end = at + pcm.len() as u64;
        // A stretch the agent left silent since the last write holds no echo.
        for s in self.reference_end.max(end.saturating_sub(RING))..at {
            self.reference[(s % RING) as usize] = 0;
        }
        for (k, &v) in pcm.iter().enumerate() {
            let s = at + k as u64;
            // (Against the newest written, not this write's end: an older placement must not
            // overwrite newer audio in the same slot.)
            if s + RING < self.reference_end.max(end) {
                continue;
            }
            self.reference[(s % RING) as usize] = v;
            if v != 0 {
                self.loud_end = self.loud_end.max(s + 1);
            }
        }
        self.reference_end = self.reference_end.max(end);
    }

    /// The caller's timeline was re-anchored (the carrier's timestamps jumped past what is filled
    /// with silence): the agent's audio kept was placed by the old mapping of the engine's clock
    /// to caller samples, seconds off. It is forgotten, and what comes next is placed afresh;
    /// the filter keeps what it learnt (the echo path has not changed). (The ring need not be
    /// cleared: with no reference written, none is read, and the next write clears the ring
    /// before the samples it places.)
    pub(crate) fn forget_reference(&mut self) {
        self.reference_end = 0;
        self.loud_end = 0;
    }

    /// The carrier dropped what it had not played by caller sample `at`: none of it echoes.
    pub(crate) fn cut(&mut self, at: u64) {
        for s in at.max(self.reference_end.saturating_sub(RING))..self.reference_end {
            self.reference[(s % RING) as usize] = 0;
        }
        self.reference_end = self.reference_end.min(at);
        self.loud_end = self.loud_end.min(at);
    }

    /// Follows the echo's delay behind the reference, ms (`None`: not known yet). Taken at the
    /// next block's start.
    pub(crate) fn set_delay_ms(&mut self, delay_ms: Option<f32>) {
        if let Some(ms) = delay_ms {
            self.delay = Some((ms.max(0.0) * 8.0) as u64);
        }
    }

    /// Takes caller audio from caller sample `start` on and hands the echo-reduced audio to
    /// `emit` at once, sample for sample (nothing is held back: a block's echo is estimated when
    /// it starts, from the far end already written ahead of it, and the filter learns from the
    /// block when it ends).
    ///
    /// `gap`: the samples fill a gap in the stream (audio lost or late), they are not the line.
    /// They pass unchanged (taking the echo estimate out of them would put the echo, inverted,
    /// where there was none), and the filter does not learn from the block they are in; they
    /// still take their place in the timeline, so the far end's history stays aligned.
    pub(crate) fn process(&mut self, pcm: &[i16], start: u64, gap: bool, emit: &mut dyn FnMut(Reduced<'_>)) {
        let mut out = [0i16; FRAME];
        let mut done = 0;
        while done < pcm.len() {
            let at = start + done as u64;
            if self.block_len > 0 && at != self.block_at + self.block_len as u64 {
                // The line jumped (a new stream): the block ends here, not learnt from.
                self.block_len = 0;
            }
            if self.block_len == 0 {
                self.begin_block(at);
            }
            let n = (FRAME - self.block_len).min(pcm.len() - done);
            let piece = &pcm[done..done + n];
            if self.filtered && !gap {
                let echo = &self.filter.echo()[self.block_len..][..n];
                for ((o, &l), &e) in out.iter_mut().zip(piece).zip(echo) {
                    *o = to_i16(f32::from(l) - e);
                }
                emit(Reduced::Filtered(&out[..n]));
            } else {
                emit(Reduced::Unchanged(piece));
            }
            self.learns &= !gap;
            self.block[self.block_len..][..n].copy_from_slice(piece);
            self.block_len += n;
            done += n;
            if self.block_len == FRAME {
                if self.filtered && self.learns {
                    self.filter.end(&self.block);
                }
                self.block_len = 0;
            }
        }
    }

    /// Starts a block of line at caller sample `at`: follows the delay estimate, then gives the
    /// filter the far end aligned with the block, unless it is silent over the filter's span.
    fn begin_block(&mut self, at: u64) {
        self.block_at = at;
        self.align();
        self.filtered = false;
        self.learns = true;
        let Some(far_start) = at.checked_sub(self.alignment) else { return };
        // No agent audio yet, or silent over the filter's whole span: no echo to remove.
        if self.loud_end == 0 || far_start >= self.loud_end + SPAN as u64 {
            if !self.far_silent {
                self.filter.far_silent();
                self.far_silent = true;
            }
            return;
        }
        self.far_silent = false;
        if std::mem::take(&mut self.refill) {
            // The blocks before this one, as the new alignment places them.
            for k in (1..=PARTITIONS as u64).rev() {
                let block = far_start.checked_sub(k * FRAME as u64).map_or([0; FRAME], |s| self.far_block(s));
                self.filter.push_far(&block);
            }
        }
        let far = self.far_block(far_start);
        self.filter.begin(&far);
        self.filtered = true;
    }

    /// Moves the alignment if the delay estimate has left what the filter can hold.
    fn align(&mut self) {
        let Some(delay) = self.delay else { return };
        let offset = delay.checked_sub(self.alignment);
        if offset.is_none_or(|o| !(EARLIEST..=LATEST).contains(&o)) || self.alignment == 0 {
            let alignment = delay.saturating_sub(SLACK);
            if alignment != self.alignment {
                self.filter.realign(alignment as i64 - self.alignment as i64);
                self.alignment = alignment;
                self.refill = true;
            }
        }
    }

    /// The reference's block from caller sample `start` on (silence where none is kept).
    fn far_block(&self, start: u64) -> [i16; FRAME] {
        let oldest = self.reference_end.saturating_sub(RING);
        std::array::from_fn(|k| {
            let s = start + k as u64;
            if s < self.reference_end && s >= oldest { self.reference[(s % RING) as usize] } else { 0 }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;

    /// A seeded, speech-like far end: noise in syllable-long bursts with pauses.
    pub(super) fn talk(samples: usize, seed: u64) -> Vec<i16> {
        let mut rng = XorShift(seed | 1);
        let mut rnd = move || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut out = Vec::with_capacity(samples);
        let mut smooth = 0.0;
        while out.len() < samples {
            let burst = 800 + (rnd() * 1600.0) as usize;
            let level = 2_000.0 + rnd() * 6_000.0;
            for k in 0..burst {
                let envelope = (std::f64::consts::PI * k as f64 / burst as f64).sin();
                smooth = 0.6 * smooth + 0.4 * (rnd() * 2.0 - 1.0);
                out.push((smooth * level * envelope * 2.0) as i16);
            }
            out.extend(std::iter::repeat_n(0, 400 + (rnd() * 1200.0) as usize));
        }
        out.truncate(samples);
        out
    }

    /// `far` through an echo path `delay` samples long with a short decaying tail, `erl_db`
    /// down.
    pub(super) fn echo_of(far: &[i16], delay: usize, erl_db: f64) -> Vec<i16> {
        let taps: Vec<f64> =
            (0..200).map(|j| (-(j as f64) / 40.0).exp() * if j % 3 == 1 { -0.6 } else { 1.0 }).collect();
        let energy: f64 = taps.iter().map(|t| t * t).sum();
        let scale = 10f64.powf(-erl_db / 20.0) / energy.sqrt();
        (0..far.len())
            .map(|n| {
                let mut e = 0.0;
                for (j, t) in taps.iter().enumerate() {
                    if let Some(k) = n.checked_sub(delay + j) {
                        e += t * f64::from(far[k]);
                    }
                }
                (e * scale).round() as i16
            })
            .collect()
    }

    fn energy(x: &[i16]) -> f64 {
        x.iter().map(|&v| f64::from(v) * f64::from(v)).sum()
    }

    /// Runs the canceller over `line` with `far` placed on the caller's timeline, in pieces of
    /// `piece` samples, the delay known.
    fn run(far: &[i16], line: &[i16], delay_ms: Option<f32>, piece: usize) -> Vec<i16> {
        let mut c = EchoCanceller::new();
        c.set_delay_ms(delay_ms);
        let mut out = Vec::with_capacity(line.len());
        let mut at = 0;
        for chunk in line.chunks(piece) {
            // The pacer sends ahead of what the caller's line brings.
            let ahead = (at + chunk.len() + 800).min(far.len());
            let written = c.reference_end as usize;
            if ahead > written {
                c.reference(&far[written..ahead], written as u64, true);
            }
            c.process(chunk, at as u64, false, &mut |x| out.extend_from_slice(x.samples()));
            at += chunk.len();
        }
        out
    }

    /// Echo return loss enhancement over the last 6 s of a 12 s call, dB.
    fn erle(line: &[i16], out: &[i16]) -> f64 {
        10.0 * (energy(&line[48_000..]) / energy(&out[48_000..])).log10()
    }

    #[test]
    fn a_delayed_echo_is_reduced_by_more_than_20_db_once_aligned_by_the_estimate() {
        let far = talk(8_000 * 12, 7);
        let line = echo_of(&far, 1_600, 10.0);
        let aligned = run(&far, &line, Some(200.0), 160);
        assert_eq!(aligned.len(), line.len());
        let unaligned = run(&far, &line, None, 160);
        let (with, without) = (erle(&line, &aligned), erle(&line, &unaligned));
        assert!(with > 20.0, "ERLE {with:.1} dB with the delay known");
        // A 200 ms echo is past the 140 ms filter when the far end is not delayed.
        assert!(with > without + 10.0, "ERLE {without:.1} dB without the delay, {with:.1} dB with it");
    }

    #[test]
    fn a_gap_passes_as_silence_and_leaves_what_was_learnt() {
        // Lost audio filled with silence: with the echo estimate taken out of it, the host
        // would read the echo, inverted, where the line carried nothing.
        let far = talk(8_000 * 10, 17);
        let line = echo_of(&far, 240, 6.0);
        let gap = 48_000..48_000 + 3 * FRAME + 37;
        let run_with = |gap_marked: bool| {
            let mut c = EchoCanceller::new();
            c.set_delay_ms(Some(30.0));
            let mut out = Vec::with_capacity(line.len());
            let zeros = [0i16; FRAME];
            let mut at = 0;
            while at < line.len() {
                let in_gap = gap.contains(&at);
                let end = if in_gap {
                    gap.end
                } else if at < gap.start {
                    gap.start
                } else {
                    line.len()
                };
                let end = end.min(at + FRAME);
                let ahead = (end + 800).min(far.len());
                let written = c.reference_end as usize;
                if ahead > written {
                    c.reference(&far[written..ahead], written as u64, true);
                }
                let piece = if in_gap { &zeros[..end - at] } else { &line[at..end] };
                c.process(piece, at as u64, in_gap && gap_marked, &mut |x| {
                    out.extend_from_slice(x.samples())
                });
                at = end;
            }
            out
        };
        let out = run_with(true);
        assert!(out[gap.clone()].iter().all(|&v| v == 0), "the gap reads as silence");
        let unmarked = run_with(false);
        let inverted = energy(&unmarked[gap.clone()]) / energy(&line[gap.clone()]);
        assert!(inverted > 0.5, "unmarked, the gap carries the echo estimate ({inverted:.2} of the echo)");
        let erle = |r: std::ops::Range<usize>| 10.0 * (energy(&line[r.clone()]) / energy(&out[r])).log10();
        let (before, after) = (erle(40_000..48_000), erle(gap.end..gap.end + 8_000));
        assert!(before > 20.0, "{before:.1} dB before the gap");
        assert!(after > before - 3.0, "{after:.1} dB after the gap, {before:.1} dB before");
    }

    #[test]
    fn an_echo_that_goes_away_is_not_put_back() {
        // The echo path closes halfway (the caller leaves the speakerphone): a model still
        // taking the old echo out would add it, inverted, to a line that no longer carries it.
        let far = talk(8_000 * 16, 21);
        let echo = echo_of(&far, 240, 6.0);
        let mut rng = crate::test_rng::XorShift(5);
        let noise: Vec<i16> = (0..far.len()).map(|_| (rng.next() % 21) as i16 - 10).collect();
        let closes = 8_000 * 6;
        let line: Vec<i16> =
            (0..far.len()).map(|n| noise[n].saturating_add(if n < closes { echo[n] } else { 0 })).collect();
        let out = run(&far, &line, Some(30.0), 160);
        let db = |r: std::ops::Range<usize>, x: &[i16]| 10.0 * energy(&x[r]).max(1.0).log10();
        // Before: the echo is taken out.
        let before = 40_000..48_000;
        assert!(db(before.clone(), &line) - db(before.clone(), &out) > 20.0);
        // From half a second after the change on, the host reads no more than the line
        // carries (its noise), within 1 dB.
        for second in 7..16 {
            let r = second * 8_000..(second + 1) * 8_000;
            let added = db(r.clone(), &out) - db(r.clone(), &line);
            assert!(added < 1.0, "second {second}: {added:.1} dB over the line");
        }
    }

    #[test]
    fn a_moved_alignment_keeps_what_the_filter_had_learnt() {
        // A 60 ms echo: within the filter's span undelayed, so it is learnt before the delay is
        // known; then the estimate arrives and moves the alignment by 352 samples.
        let far = talk(8_000 * 10, 13);
        let line = echo_of(&far, 480, 10.0);
        let mut c = EchoCanceller::new();
        let mut out = Vec::with_capacity(line.len());
        for (k, chunk) in line.chunks(FRAME).enumerate() {
            let at = k * FRAME;
            if at == 48_000 {
                c.set_delay_ms(Some(60.0));
            }
            let ahead = (at + FRAME + 800).min(far.len());
            let written = c.reference_end as usize;
            c.reference(&far[written..ahead], written as u64, true);
            c.process(chunk, at as u64, false, &mut |x| out.extend_from_slice(x.samples()));
        }
        assert_eq!(c.alignment, 480 - SLACK);
        let erle = |r: std::ops::Range<usize>| 10.0 * (energy(&line[r.clone()]) / energy(&out[r])).log10();
        let (before, after) = (erle(40_000..48_000), erle(48_000..56_000));
        assert!(before > 25.0, "{before:.1} dB before the move");
        // The second after the move: as good as before it (a filter learning afresh would
        // remove a few dB).
        assert!(after > before - 3.0, "{after:.1} dB in the second after the move, {before:.1} dB before");
    }

    #[test]
    fn pieces_off_the_frame_grid_come_out_whole_and_in_order() {
        let far = talk(8_000 * 12, 9);
        let line = echo_of(&far, 800, 10.0);
        let framed = run(&far, &line, Some(100.0), 160);
        // The same frames reach the filter at the same positions either way (the far end is
        // written 100 ms ahead): the output is the same, sample for sample.
        for piece in [1, 101, 333] {
            assert_eq!(run(&far, &line, Some(100.0), piece), framed, "pieces of {piece}");
        }
    }

    #[test]
    fn caller_audio_passes_unchanged_while_the_agent_is_silent() {
        let far = vec![0i16; 8_000 * 2];
        let line = talk(8_000 * 2, 3);
        assert_eq!(run(&far, &line, Some(100.0), 160), line);
    }

    #[test]
    fn a_cut_reference_echoes_nothing() {
        let mut c = EchoCanceller::new();
        c.reference(&[1_000; 800], 0, false);
        c.cut(400);
        assert_eq!((c.reference_end, c.loud_end), (400, 400));
        assert!(c.reference[400..800].iter().all(|&v| v == 0));
        // Written again after a gap: the gap is silence.
        c.reference(&[500; 160], 1_000, false);
        assert!(c.reference[400..1_000].iter().all(|&v| v == 0));
        assert_eq!((c.reference_end, c.loud_end), (1_160, 1_160));
    }
}

/// The adaptive filter on its own, the far end aligned with the line.
#[cfg(test)]
mod filter_tests {
    use super::adaptive_filter::{AdaptiveFilter, FRAME};
    use super::tests::{echo_of, talk};
    use crate::simd::Kernel;

    /// Runs a fresh filter over `line` with `far` aligned with it; returns its output.
    fn run(far: &[i16], line: &[i16]) -> Vec<i16> {
        run_in(Kernel::detect(), far, line)
    }

    /// [`run`] with the filter's loops in `kernel`'s build.
    fn run_in(kernel: Kernel, far: &[i16], line: &[i16]) -> Vec<i16> {
        let mut f = AdaptiveFilter::with_kernel(kernel);
        let mut out = vec![0i16; line.len()];
        for ((l, x), o) in
            line.chunks_exact(FRAME).zip(far.chunks_exact(FRAME)).zip(out.chunks_exact_mut(FRAME))
        {
            f.begin(x.try_into().unwrap());
            for ((o, &l), e) in o.iter_mut().zip(l).zip(f.echo()) {
                *o = (f32::from(l) - e).round() as i16;
            }
            f.end(l.try_into().unwrap());
        }
        out
    }

    /// Echo left in `out` over `range`, against the echo that came: `out` less what else the
    /// line carried (`near`), dB below the echo.
    fn erle(echo: &[i16], near: &[i16], out: &[i16], range: std::ops::Range<usize>) -> f64 {
        let e: f64 = echo[range.clone()].iter().map(|&v| f64::from(v).powi(2)).sum();
        let left: f64 = range.map(|i| (f64::from(out[i]) - f64::from(near[i])).powi(2)).sum();
        10.0 * (e / left).log10()
    }

    fn add(a: &[i16], b: &[i16]) -> Vec<i16> {
        a.iter().zip(b).map(|(a, b)| a.saturating_add(*b)).collect()
    }

    #[test]
    fn a_caller_talking_over_the_echo_does_not_undo_what_was_learnt() {
        let far = talk(8_000 * 14, 21);
        let echo = echo_of(&far, 300, 6.0);
        // The caller talks from 8 s to 11 s, louder than the echo (its own seed: not correlated
        // with the far end).
        let caller: Vec<i16> = talk(8_000 * 14, 22)
            .iter()
            .enumerate()
            .map(|(n, &v)| if (64_000..88_000).contains(&n) { v } else { 0 })
            .collect();
        let out = run(&far, &add(&echo, &caller));
        let before = erle(&echo, &caller, &out, 40_000..64_000);
        let during = erle(&echo, &caller, &out, 64_000..88_000);
        let after = erle(&echo, &caller, &out, 88_000..112_000);
        println!(
            "echo removed: {before:.1} dB before the caller talks, {during:.1} dB while, {after:.1} dB after"
        );
        assert!(before > 30.0, "{before:.1} dB before double talk");
        // The serving path keeps its weights while the caller's speech swamps both errors.
        assert!(during > before - 6.0, "{during:.1} dB during double talk, {before:.1} dB before");
        assert!(after > before - 6.0, "{after:.1} dB after double talk, {before:.1} dB before");
    }

    #[test]
    fn every_build_of_the_loops_gives_the_same_output() {
        // The loops are written lane by lane, so a wider vector changes no result; a reordered
        // sum would show here (this CPU's build against the baseline one, over double talk).
        let far = talk(8_000 * 6, 31);
        let caller: Vec<i16> = talk(8_000 * 6, 32).iter().map(|&v| v / 2).collect();
        let line = add(&echo_of(&far, 200, 6.0), &caller);
        if Kernel::detect() == Kernel::PORTABLE {
            eprintln!("this CPU runs only the baseline build: nothing to compare it with");
            return;
        }
        let portable = run_in(Kernel::PORTABLE, &far, &line);
        assert!(portable != line, "the filter removed nothing, so the comparison shows nothing");
        assert!(portable == run_in(Kernel::detect(), &far, &line), "{:?} differs", Kernel::detect());
    }

    #[test]
    fn a_steady_tone_is_learnt_too() {
        // Hold music or a beep: the error's power in its bins does not fall between words, as
        // speech's does, so the filter must not take it for the line's own noise.
        let far: Vec<i16> = (0..8_000 * 10)
            .map(|n| (8_000.0 * (2.0 * std::f64::consts::PI * 1_013.0 * n as f64 / 8_000.0).sin()) as i16)
            .collect();
        let echo = echo_of(&far, 0, 10.0);
        let silence = vec![0i16; far.len()];
        let out = run(&far, &echo);
        let db = erle(&echo, &silence, &out, 56_000..80_000);
        println!("echo of a 1,013 Hz tone removed: {db:.1} dB");
        assert!(db > 20.0, "{db:.1} dB");
    }

    #[test]
    fn a_quiet_agent_is_learnt_as_well_as_a_loud_one() {
        let loud = talk(8_000 * 10, 5);
        let quiet: Vec<i16> = loud.iter().map(|&v| v / 10).collect();
        // The line's own noise scales with the far end, so that only the level differs.
        let noise = |scale: f64| -> Vec<i16> {
            talk(8_000 * 10, 6).iter().map(|&v| (f64::from(v) * 0.02 * scale) as i16).collect()
        };
        let result = |far: &[i16], noise: &[i16]| {
            let echo = echo_of(far, 100, 10.0);
            let out = run(far, &add(&echo, noise));
            erle(&echo, noise, &out, 40_000..80_000)
        };
        let (loud, quiet) = (result(&loud, &noise(1.0)), result(&quiet, &noise(0.1)));
        println!("echo removed: {loud:.1} dB of a loud agent, {quiet:.1} dB of one 20 dB quieter");
        assert!(loud > 20.0 && quiet > 20.0, "{loud:.1} dB loud, {quiet:.1} dB quiet");
        assert!((loud - quiet).abs() < 3.0, "{loud:.1} dB loud, {quiet:.1} dB quiet");
    }
}
