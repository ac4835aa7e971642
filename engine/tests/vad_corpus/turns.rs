//! Turn-taking conditions: multi-sentence caller turns. Corpus utterances (each a whole sentence,
//! trimmed to its speech) are joined into turns of 2-4 sentences with seeded in-turn pauses of
//! 300-800 ms, and the turns are separated by 2-3 s (where the bot would answer). Labels are
//! exact: every pause between two sentences of a turn is *inside the turn*; the end of a turn's
//! last sentence is a *turn end*.
//!
//! Measured per turn signal (today `SpeechStopped`): at each turn end, the time from the labelled
//! end of speech to the signal (response latency); at each in-turn pause, whether the signal
//! fired in it (an early cut: the bot would start answering mid-turn).

use super::call::{CallSpec, CallTrace, run_call};
use super::{
    ClipKind, Condition, LEAD_MS, PER_MS, Rng, band_limit, clips_of, line, noise_rms_for, percentile,
    to_telephone,
};
use trunkline::{Event, SessionConfig};

/// Shortest and longest in-turn pause, ms.
pub const PAUSE_MS: (u64, u64) = (300, 800);
/// Shortest and longest silence between turns, ms.
pub const TURN_GAP_MS: (u64, u64) = (2_000, 3_000);

/// One caller turn: its sentences (ms, `[start, end)`), in order. In a split track
/// ([`split_turn_track`]) a sentence may be in two pieces, each listed here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub sentences: Vec<(u64, u64)>,
    /// Per pause ([`Turn::pauses`]): whether it is inside a sentence (between its two pieces)
    /// rather than between two sentences.
    pub splits: Vec<bool>,
}

impl Turn {
    /// The pauses inside the turn (ms, `[start, end)`).
    pub fn pauses(&self) -> Vec<(u64, u64)> {
        self.sentences.windows(2).map(|w| (w[0].1, w[1].0)).collect()
    }
    /// The labelled end of the turn's speech, ms.
    pub fn end(&self) -> u64 {
        self.sentences.last().unwrap().1
    }
}

/// Caller turns over a line condition.
#[derive(Debug, Clone)]
pub struct TurnTrack {
    pub pcm: Vec<i16>,
    pub turns: Vec<Turn>,
}

/// Every caller utterance, in seeded order, as turns over `cond`'s line (seed `seed`).
pub fn turn_track(cond: &Condition, seed: u64) -> TurnTrack {
    build_track(cond, seed, false)
}

/// Sentences at least this long are split by [`split_turn_track`], ms.
pub const SPLIT_MIN_MS: u64 = 1_200;

/// As [`turn_track`], with every sentence of at least [`SPLIT_MIN_MS`] cut in two at its quietest
/// 60 ms between 30 % and 70 % of its length (a word boundary, mid-phrase) and a 300-800 ms pause
/// put there: pauses inside a sentence, labelled as such, next to the pauses between sentences.
pub fn split_turn_track(cond: &Condition, seed: u64) -> TurnTrack {
    build_track(cond, seed, true)
}

/// Where to cut `pcm` (a clip, samples): the middle of its quietest 60 ms between 30 % and 70 %.
fn split_point(pcm: &[f32]) -> usize {
    let win = (60 * PER_MS) as usize;
    let hop = (10 * PER_MS) as usize;
    let (lo, hi) = (pcm.len() * 3 / 10, pcm.len() * 7 / 10 - win);
    (lo..hi)
        .step_by(hop)
        .min_by(|&a, &b| {
            let e = |i: usize| pcm[i..i + win].iter().map(|x| x * x).sum::<f32>();
            e(a).total_cmp(&e(b))
        })
        .map_or(pcm.len() / 2, |i| i + win / 2)
}

fn build_track(cond: &Condition, seed: u64, split: bool) -> TurnTrack {
    let mut rng = Rng::new(cond.seed ^ 0x7A11 ^ (seed << 16));
    let mut utts = clips_of(&[ClipKind::Utterance, ClipKind::Real]);
    rng.shuffle(&mut utts);
    let mut placed = Vec::new();
    let mut turns = Vec::new();
    let mut pos = LEAD_MS;
    let mut rest = &utts[..];
    while !rest.is_empty() {
        let n = (2 + (rng.next_u64() % 3) as usize).min(rest.len());
        let (these, more) = rest.split_at(n);
        rest = more;
        // One speaker level per turn.
        let gain = 10f64.powf(rng.range(-4.0, 2.0) / 20.0);
        let mut sentences = Vec::new();
        let mut splits = Vec::new();
        for (i, c) in these.iter().enumerate() {
            if i > 0 {
                pos += rng.range(PAUSE_MS.0 as f64, PAUSE_MS.1 as f64) as u64;
                splits.push(false);
            }
            let cut = if split && c.ms() >= SPLIT_MIN_MS { split_point(&c.pcm) } else { c.pcm.len() };
            // Cut on the ms grid, so the labels stay exact.
            let cut = cut / PER_MS as usize * PER_MS as usize;
            placed.push((pos, &c.pcm[..cut], gain));
            let first = cut as u64 / PER_MS;
            sentences.push((pos, pos + first));
            pos += first;
            if cut < c.pcm.len() {
                pos += rng.range(PAUSE_MS.0 as f64, PAUSE_MS.1 as f64) as u64;
                splits.push(true);
                placed.push((pos, &c.pcm[cut..], gain));
                sentences.push((pos, pos + c.ms() - first));
                pos += c.ms() - first;
            }
        }
        turns.push(Turn { sentences, splits });
        pos += rng.range(TURN_GAP_MS.0 as f64, TURN_GAP_MS.1 as f64) as u64;
    }
    mix(cond, pos, placed, turns, &mut rng)
}

/// Mixes the clips `placed` (start ms, samples, gain) into a track of `end` ms over `cond`'s line.
fn mix(
    cond: &Condition,
    end: u64,
    placed: Vec<(u64, &[f32], f64)>,
    turns: Vec<Turn>,
    rng: &mut Rng,
) -> TurnTrack {
    let total = end / 20 * 20;
    let mut x = vec![0.0; (total * PER_MS) as usize];
    for (at, pcm, gain) in placed {
        let start = (at * PER_MS) as usize;
        for (v, &s) in x[start..].iter_mut().zip(pcm) {
            *v += gain * f64::from(s);
        }
    }
    let (mut noisy, after) = line(cond, x.len(), noise_rms_for(cond), rng);
    for (v, s) in noisy.iter_mut().zip(&x) {
        *v += s;
    }
    band_limit(&mut noisy);
    for (v, a) in noisy.iter_mut().zip(&after) {
        *v += a;
    }
    TurnTrack { pcm: to_telephone(&noisy), turns }
}

/// A sentence with a pause inside where the phrase is plainly unfinished (mid-phrase, or after a
/// hesitation "and, um,"): espeak-ng SSML with a 450 ms break, built by
/// `scripts/make_vad_corpus.sh --paused`.
pub struct PausedClip {
    pub name: String,
    /// The speech before the pause and after it (trimmed to the speech).
    pub before: Vec<f32>,
    pub after: Vec<f32>,
    /// The pause cut out, ms (measured).
    pub pause_ms: u64,
}

/// Where the paused clips are built (under the workspace's `target/`).
pub fn paused_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/vad-corpus-paused")
}

/// The paused clips, cut at their pause: the longest stretch under 1 % of the clip's peak (the
/// clips' own trimming level), measured from the samples. Built on first use.
pub fn paused_clips() -> &'static [PausedClip] {
    static CLIPS: std::sync::OnceLock<Vec<PausedClip>> = std::sync::OnceLock::new();
    CLIPS.get_or_init(|| {
        super::build_corpus(&["--paused"], &paused_dir())
            .into_iter()
            .map(|(_, name, pcm)| {
                let (start, end) = quiet_stretch(&pcm);
                // On the ms grid, so the labels stay exact.
                let a = start / PER_MS as usize * PER_MS as usize;
                let b = end.div_ceil(PER_MS as usize) * PER_MS as usize;
                let pause_ms = ((b - a) as u64) / PER_MS;
                PausedClip { name, before: pcm[..a].to_vec(), after: pcm[b..].to_vec(), pause_ms }
            })
            .collect()
    })
}

/// The longest run of samples under 1 % of `pcm`'s peak, `[start, end)`.
pub fn quiet_stretch(pcm: &[f32]) -> (usize, usize) {
    let floor = 0.01 * pcm.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (mut best, mut run_start) = ((0, 0), None);
    for (i, v) in pcm.iter().enumerate() {
        match (v.abs() < floor, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                if i - s > best.1 - best.0 {
                    best = (s, i);
                }
                run_start = None;
            }
            _ => {}
        }
    }
    best
}

/// Turns of 1-3 sentences mixing whole corpus sentences (utterances and real recordings) and
/// paused sentences ([`paused_clips`], each paused once inside, a pause labelled as inside a
/// sentence); consecutive sentences of a turn are 300-800 ms apart (between sentences), and
/// every paused sentence's pause is stretched to a seeded 300-800 ms. Every turn ends with a
/// finished sentence.
pub fn paused_turn_track(cond: &Condition, seed: u64) -> TurnTrack {
    let mut rng = Rng::new(cond.seed ^ 0x9A05 ^ (seed << 16));
    let mut units: Vec<(&[f32], Option<&[f32]>)> = clips_of(&[ClipKind::Utterance, ClipKind::Real])
        .into_iter()
        .map(|c| (&c.pcm[..], None))
        .chain(paused_clips().iter().map(|c| (&c.before[..], Some(&c.after[..]))))
        .collect();
    rng.shuffle(&mut units);
    let mut placed = Vec::new();
    let mut turns = Vec::new();
    let mut pos = LEAD_MS;
    let mut rest = &units[..];
    while !rest.is_empty() {
        let n = (1 + (rng.next_u64() % 3) as usize).min(rest.len());
        let (these, more) = rest.split_at(n);
        rest = more;
        let gain = 10f64.powf(rng.range(-4.0, 2.0) / 20.0);
        let mut sentences = Vec::new();
        let mut splits = Vec::new();
        for (i, &(first, second)) in these.iter().enumerate() {
            if i > 0 {
                pos += rng.range(PAUSE_MS.0 as f64, PAUSE_MS.1 as f64) as u64;
                splits.push(false);
            }
            for (k, piece) in std::iter::once(first).chain(second).enumerate() {
                if k > 0 {
                    pos += rng.range(PAUSE_MS.0 as f64, PAUSE_MS.1 as f64) as u64;
                    splits.push(true);
                }
                placed.push((pos, piece, gain));
                let ms = piece.len() as u64 / PER_MS;
                sentences.push((pos, pos + ms));
                pos += ms;
            }
        }
        turns.push(Turn { sentences, splits });
        pos += rng.range(TURN_GAP_MS.0 as f64, TURN_GAP_MS.1 as f64) as u64;
    }
    mix(cond, pos, placed, turns, &mut rng)
}

/// An event that says "the caller's turn may be over"; scored by the same rules.
#[derive(Debug, Clone, Copy)]
pub struct TurnSignal {
    pub name: &'static str,
    pub fires: fn(&Event) -> bool,
}

/// The turn signals measured.
pub fn turn_signals() -> Vec<TurnSignal> {
    vec![
        TurnSignal { name: "SpeechStopped", fires: |e| matches!(e, Event::SpeechStopped { .. }) },
        TurnSignal { name: "EndOfTurn", fires: |e| matches!(e, Event::EndOfTurn { .. }) },
    ]
}

/// Runs the turns through a session (the bot silent).
pub fn run_turns(config: &SessionConfig, track: &TurnTrack) -> CallTrace {
    run_call(&CallSpec { config: config.clone(), ..CallSpec::listening(&track.pcm) })
}

/// How a signal did on a track.
#[derive(Debug, Clone, Default)]
pub struct TurnScore {
    /// Every in-turn pause: its length (ms) and whether the signal fired in it.
    pub pauses: Vec<(u64, bool)>,
    /// Per pause: whether it is inside a sentence (see [`Turn::splits`]).
    pub within: Vec<bool>,
    /// Turn ends: labelled end of speech to the signal, ms.
    pub latencies: Vec<u64>,
    /// Turn ends with no signal before the next turn.
    pub missed_ends: usize,
    /// Signals inside a sentence.
    pub inside_speech: usize,
}

impl TurnScore {
    pub fn early_cut_rate(&self) -> f64 {
        self.pauses.iter().filter(|p| p.1).count() as f64 / self.pauses.len().max(1) as f64
    }
    pub fn latency_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.latencies, p)
    }
    /// The early-cut rate of the pauses inside sentences (`within`) or between them.
    pub fn early_cut_rate_of(&self, within: bool) -> f64 {
        let v: Vec<bool> =
            self.pauses.iter().zip(&self.within).filter(|p| *p.1 == within).map(|p| p.0.1).collect();
        v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64
    }
    pub fn add(&mut self, o: &TurnScore) {
        self.pauses.extend_from_slice(&o.pauses);
        self.within.extend_from_slice(&o.within);
        self.latencies.extend_from_slice(&o.latencies);
        self.missed_ends += o.missed_ends;
        self.inside_speech += o.inside_speech;
    }
}

/// A signal decided this soon after the next sentence began still belongs to the pause before
/// it (the detector needs a frame or two to see speech resume).
const RESUME_MS: u64 = 100;

/// Scores `signal` (by the time it was taken) against the track's labels: a signal after a
/// sentence's end and at most [`RESUME_MS`] into the next sentence belongs to that boundary.
pub fn score_turns(track: &TurnTrack, trace: &CallTrace, signal: TurnSignal) -> TurnScore {
    let times: Vec<u64> = trace.events.iter().filter(|(_, e)| (signal.fires)(e)).map(|(t, _)| *t).collect();
    let starts: Vec<u64> = track.turns.iter().flat_map(|t| t.sentences.iter().map(|s| s.0)).collect();
    let mut s = TurnScore::default();
    let mut used = vec![false; times.len()];
    let mut next = 1;
    for turn in &track.turns {
        for (i, &(_, end)) in turn.sentences.iter().enumerate() {
            let next_start = starts.get(next).copied().unwrap_or(u64::MAX - RESUME_MS);
            next += 1;
            let window = |t: u64| t > end && t <= next_start + RESUME_MS;
            let hit = times.iter().position(|&t| window(t));
            for (u, &t) in used.iter_mut().zip(&times) {
                *u |= window(t);
            }
            if i + 1 < turn.sentences.len() {
                s.pauses.push((next_start - end, hit.is_some()));
                s.within.push(turn.splits[i]);
            } else {
                match hit {
                    Some(h) => s.latencies.push(times[h] - end),
                    None => s.missed_ends += 1,
                }
            }
        }
    }
    s.inside_speech = used.iter().filter(|u| !**u).count();
    s
}
