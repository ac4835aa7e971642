//! End of turn from prosody: whether the caller's speech ended like a finished phrase, decided
//! when the detector first hears silence and confirmed after a short silence, before the hangover.
//!
//! `speech_stopped` needs the whole hangover (400 ms by default) because a pause inside a
//! sentence (a stop closure, a breath, a hesitation) looks like its end to a VAD. A finished
//! phrase usually *sounds* finished, with no words needed:
//! - **falling pitch**: a declarative ends low, below the speaker's recent pitch level;
//! - **energy decay**: the last syllable fades rather than being cut by a stop closure;
//! - **final lengthening**: the last voiced stretch is longer than the phrase's usual syllable.
//!
//! Measured on the turn corpus (sentences, and sentences cut at a word boundary mid-phrase), each
//! cue alone separates a sentence's end from a pause inside a sentence only weakly (AUC about
//! 0.70 for the fall below the running pitch, 0.65-0.68 for the fall over the last 480 ms, 0.47
//! against a mid-phrase cut but 0.70 against the sentences' own pauses for energy decay, 0.55
//! for lengthening as measured here); combined they fire on about twice as many sentence ends as
//! pauses inside sentences.
//!
//! The pitch comes for free from the spectral classifier (the lag of its harmonicity peak, the
//! autocorrelation of the noise-whitened spectrum); the energy is one pass over the 20 ms frame.
//! Per speech frame the detector keeps a slot in a ring of the last [`RING`] frames (480 ms) and
//! three running references (pitch, voiced energy, voiced run length); at the first silent frame
//! after speech it scores the ring against the references, and it reports the end of turn once
//! `end_of_turn_min_silence_ms` of silence has followed if the score passes
//! `end_of_turn_threshold`, else together with `speech_stopped` (a host acting on it never waits
//! longer than with `speech_stopped`) or, with `end_of_turn_max_silence_ms` set, once that much
//! silence has passed, after `speech_stopped` if it is longer than the hangover (an unfinished
//! phrase is then not cut by the hangover). Speech that resumes before cancels it; every pause is
//! decided afresh.
//!
//! # What it can and cannot tell
//!
//! Prosody tells a *finished sentence* from an unfinished one; it cannot tell the end of a turn
//! from the end of a sentence the caller follows with another. On the turn corpus (sentences
//! joined by 300-800 ms pauses, every one labelled "inside the turn") the early decisions
//! therefore cut between-sentence pauses about as often as they answer turn ends quickly: the
//! threshold trades latency against those cuts. Pauses inside a plainly unfinished sentence
//! (the paused sentences: a break mid-phrase or after "and, um,") it cuts less often, but not
//! rarely enough at a fast threshold: with a 1 s maximum silence, threshold 50 answers turn ends
//! within 190 ms at p50 and cuts about 20 % of them; threshold 60 cuts under 5 % but answers
//! most turn ends only at the maximum silence. Figures in docs/speech.md ("End of turn").
//!
//! Cost: a few dozen operations per frame and the score (a pass over 24 slots) once per pause;
//! state is a few hundred bytes, no allocation.

/// Speech frames remembered: the last 480 ms of speech before a pause.
pub(crate) const RING: usize = 24;

/// Frames at the end of speech the pitch and energy are measured over (60 ms).
const TAIL: usize = 3;

/// Weight of a new frame in the running pitch and energy references (about a second).
const REF_ALPHA: f32 = 0.05;

/// Weight of a new voiced run in the running run-length reference.
const RUN_ALPHA: f32 = 0.2;

/// A pitch estimate this far (semitones) from the reference is an octave error or noise.
const MAX_PITCH_JUMP_ST: f32 = 7.0;

/// Score weights (per semitone of pitch fall below the running pitch, per dB of energy decay, per
/// doubling of the last voiced run, per semitone of fall over the last 480 ms) and offset: a
/// logistic regression of "sentence end" against "pause inside a sentence" (the split turn
/// corpus's cut sentences and the sentences' own pauses of 140 ms or more), on seeds 0-2 of
/// every line condition, seeds 3-5 held out (see docs/speech.md).
const W_FALL: f32 = 0.244;
const W_DECAY: f32 = 0.043;
const W_LENGTHEN: f32 = 0.186;
const W_SLOPE: f32 = 0.15;
const BIAS: f32 = -1.243;

/// One speech frame.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Frame energy, dB.
    db: f32,
    /// Pitch, semitones re 1 Hz, or 0.0 when the frame has no pitch estimate.
    st: f32,
}

/// What one frame gave the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TurnDecision {
    /// Nothing to report.
    None,
    /// The turn ended: the phrase sounded finished and enough silence followed (`early`), or
    /// the maximum silence passed. Report it now.
    End {
        /// Silence waited since the end of the last speech frame, in frames.
        silence_frames: u32,
        /// Score as a confidence, 0-100.
        confidence: u8,
        /// Decided on the score, after the minimum silence.
        early: bool,
    },
}

/// The end-of-turn detector of one stream.
#[derive(Debug, Clone)]
pub(crate) struct TurnEnd {
    min_silence_frames: u32,
    /// Silence after which any pause ends the turn, frames; `None`: speech stopping does.
    max_silence_frames: Option<u32>,
    /// The maximum silence is longer than the hangover: a pause speech stopping leaves undecided
    /// waits for it. (One no longer ends the turn with the speech, before `Stopped`.)
    waits_past_stop: bool,
    /// Score a finished phrase needs (a logit).
    threshold: f32,
    ring: [Slot; RING],
    /// Next slot to write.
    head: usize,
    /// Slots written since the last reset (at most `RING` count).
    filled: usize,
    /// Running pitch (semitones) and voiced energy (dB) of the speech so far; 0.0 before any.
    ref_st: f32,
    ref_db: f32,
    /// Running length of voiced runs, frames.
    ref_run: f32,
    /// Voiced frames in the current run, and in the last run that ended.
    run: u32,
    last_run: u32,
    /// Silent frames since the last speech frame.
    silence: u32,
    /// Confirmed speech heard since the last end of turn reported.
    armed: bool,
    /// Speech stopped (the hangover passed) in the pause under way, its end of turn still to
    /// come: until speech is confirmed again, frames taken for speech (a click, a noise burst)
    /// do not end the pause.
    stopped: bool,
    /// Score of the pause under way.
    score: f32,
    /// `score` is the pause's: taken when the speech before it ended (once per pause).
    scored: bool,
    /// The features behind `score`: pitch fall below the running pitch (st), energy decay (dB),
    /// lengthening (log2), pitch fall over the ring (st).
    features: [f32; 4],
}

impl TurnEnd {
    /// A detector that reports after `min_silence_ms` of silence when the score reaches
    /// `threshold` (a confidence, 0-100), else after `max_silence_ms` (if given) or when speech
    /// stops (after `hangover_ms`), whichever comes first.
    pub(crate) fn new(
        min_silence_ms: u32,
        threshold: u8,
        max_silence_ms: Option<u32>,
        hangover_ms: u32,
    ) -> Self {
        let p = f32::from(threshold.clamp(1, 99)) / 100.0;
        let frames = |ms: u32| ms.div_ceil(super::FRAME_MS).max(1);
        let waits_past_stop = max_silence_ms.is_some_and(|max| max > hangover_ms);
        Self::fresh(frames(min_silence_ms), max_silence_ms.map(frames), waits_past_stop, (p / (1.0 - p)).ln())
    }

    /// Takes one frame: whether it was speech, voiced, whether speech is confirmed (`speaking`:
    /// a pause after a click or a cough that never became speech ends no turn), its energy (dB)
    /// and pitch (Hz, if any).
    pub(crate) fn on_frame(
        &mut self,
        speech: bool,
        voiced: bool,
        speaking: bool,
        db: f32,
        pitch_hz: Option<f32>,
    ) -> TurnDecision {
        if speech && (speaking || !self.stopped) {
            self.stopped = false;
            self.on_speech(voiced, db, pitch_hz);
            self.armed |= speaking;
            return TurnDecision::None;
        }
        self.end_speech();
        self.silence = self.silence.saturating_add(1);
        // A frame taken for speech after speech stopped may be speech resuming, not yet
        // confirmed: no decision on it.
        if !self.armed || speech {
            return TurnDecision::None;
        }
        let early = self.silence >= self.min_silence_frames && self.score >= self.threshold;
        if early || self.max_silence_frames.is_some_and(|m| self.silence >= m) {
            self.armed = false;
            self.stopped = false;
            return TurnDecision::End { silence_frames: self.silence, confidence: self.confidence(), early };
        }
        TurnDecision::None
    }

    /// Speech stopped (the hangover passed): if the pause was not decided yet, it is the end of
    /// the turn now (returns the confidence and the silence counted so far, frames), unless the
    /// maximum silence is longer than the hangover: then it comes when that silence has passed,
    /// unless confirmed speech resumes first. Either way the next speech starts with fresh
    /// references.
    pub(crate) fn on_stopped(&mut self) -> Option<(u8, u32)> {
        // Stopped with no silence heard (speech retracted as the agent's echo): scored on how it
        // ended, as at a first silent frame.
        self.end_speech();
        let (armed, silence, score, features) = (self.armed, self.silence, self.score, self.features);
        let pending = armed.then(|| (self.confidence(), silence));
        self.reset();
        if armed && self.waits_past_stop {
            // Scored already: the next frame must not score it again on the emptied ring.
            (self.armed, self.stopped, self.silence, self.score, self.scored, self.features) =
                (true, true, silence, score, true, features);
            return None;
        }
        pending
    }

    /// The speech under way is confirmed (a start held back, then reported): it is a turn, to
    /// end like any other.
    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    /// `frames` of audio never arrived (a gap in the stream): silence, for the turn. A pause the
    /// gap begins is scored on the speech before it, as at its first silent frame; the next
    /// frame decides it, counting the gap in its silence.
    pub(crate) fn on_gap(&mut self, frames: u32) {
        if frames == 0 {
            return;
        }
        self.end_speech();
        self.silence = self.silence.saturating_add(frames);
    }

    /// The stream ended: a turn under way (confirmed speech heard since the last end of turn)
    /// ends with it. Returns its confidence (how the speech ended, scored now if it was cut
    /// mid-phrase) and the silence since the speech, frames; the detector starts afresh.
    pub(crate) fn on_stream_end(&mut self) -> Option<(u8, u32)> {
        self.end_speech();
        let ended = self.armed.then(|| (self.confidence(), self.silence));
        self.reset();
        ended
    }

    /// The speech (if any) ends here, at a silent frame, a gap, speech stopping or the stream's
    /// end: its voiced run closes and, if no silence has followed it yet, the pause it begins is
    /// scored on how it ended (once per pause, whichever of those comes first).
    fn end_speech(&mut self) {
        if self.run > 0 {
            self.end_run();
        }
        if self.armed && !self.scored {
            self.score = self.score_tail();
            self.scored = true;
        }
    }

    /// The score as a confidence, 0-100.
    fn confidence(&self) -> u8 {
        let p = 1.0 / (1.0 + (-self.score).exp());
        (p * 100.0).round().clamp(0.0, 100.0) as u8
    }

    /// The features of the last pause scored (for tuning tools).
    pub(crate) fn features(&self) -> [f32; 4] {
        self.features
    }

    fn on_speech(&mut self, voiced: bool, db: f32, pitch_hz: Option<f32>) {
        self.silence = 0;
        self.scored = false;
        let mut st = 0.0;
        if let Some(hz) = pitch_hz.filter(|_| voiced) {
            let s = 12.0 * hz.log2();
            if self.ref_st == 0.0 {
                self.ref_st = s;
            }
            if (s - self.ref_st).abs() <= MAX_PITCH_JUMP_ST {
                st = s;
                self.ref_st += REF_ALPHA * (s - self.ref_st);
            }
        }
        if voiced {
            self.ref_db = if self.ref_db == 0.0 { db } else { self.ref_db + REF_ALPHA * (db - self.ref_db) };
            self.run += 1;
        } else if self.run > 0 {
            self.end_run();
        }
        self.ring[self.head] = Slot { db, st };
        self.head = (self.head + 1) % RING;
        self.filled = (self.filled + 1).min(RING);
    }

    fn end_run(&mut self) {
        self.last_run = self.run;
        let r = self.run as f32;
        self.ref_run = if self.ref_run == 0.0 { r } else { self.ref_run + RUN_ALPHA * (r - self.ref_run) };
        self.run = 0;
    }

    /// The slot `back` frames before the last one written (0 = the last).
    fn slot(&self, back: usize) -> Slot {
        self.ring[(self.head + RING - 1 - back) % RING]
    }

    /// Scores the speech just ended: how much it sounds like the end of a phrase (a logit).
    fn score_tail(&mut self) -> f32 {
        if self.filled == 0 {
            return f32::NEG_INFINITY;
        }
        // Pitch: the last few pitched frames against the running reference.
        let (mut sum, mut n) = (0.0, 0);
        for back in 0..self.filled {
            let s = self.slot(back);
            if s.st != 0.0 {
                sum += s.st;
                n += 1;
                if n == TAIL {
                    break;
                }
            }
        }
        let fall = if n > 0 { self.ref_st - sum / n as f32 } else { 0.0 };
        // Energy: the last frames against the running voiced level.
        let k = TAIL.min(self.filled);
        let tail_db = (0..k).map(|b| self.slot(b).db).sum::<f32>() / k as f32;
        let decay = self.ref_db - tail_db;
        // Lengthening: the last voiced run against the usual one.
        let lengthen = if self.ref_run > 0.0 && self.last_run > 0 {
            (self.last_run as f32 / self.ref_run).log2()
        } else {
            0.0
        };
        // Pitch contour: the earlier pitched frames of the last 480 ms against the tail.
        let (mut esum, mut en, mut seen) = (0.0, 0, 0);
        for back in 0..self.filled {
            let s = self.slot(back);
            if s.st != 0.0 {
                seen += 1;
                if seen > TAIL {
                    esum += s.st;
                    en += 1;
                }
            }
        }
        let slope = if en > 0 && n > 0 { esum / en as f32 - sum / n as f32 } else { 0.0 };
        self.features = [fall, decay, lengthen, slope];
        BIAS + W_FALL * fall.clamp(-6.0, 12.0)
            + W_DECAY * decay.clamp(-10.0, 30.0)
            + W_LENGTHEN * lengthen.clamp(-2.0, 2.0)
            + W_SLOPE * slope.clamp(-6.0, 12.0)
    }

    /// Forgets the speech: the next starts with fresh references.
    pub(crate) fn reset(&mut self) {
        *self = Self::fresh(
            self.min_silence_frames,
            self.max_silence_frames,
            self.waits_past_stop,
            self.threshold,
        );
    }

    fn fresh(
        min_silence_frames: u32,
        max_silence_frames: Option<u32>,
        waits_past_stop: bool,
        threshold: f32,
    ) -> Self {
        Self {
            min_silence_frames,
            max_silence_frames,
            waits_past_stop,
            threshold,
            ring: [Slot::default(); RING],
            head: 0,
            filled: 0,
            ref_st: 0.0,
            ref_db: 0.0,
            ref_run: 0.0,
            run: 0,
            last_run: 0,
            silence: 0,
            armed: false,
            stopped: false,
            score: 0.0,
            scored: false,
            features: [0.0; 4],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `frames` voiced frames whose pitch goes from `from_hz` to `to_hz` (geometrically) and
    /// energy from `from_db` to `to_db`, then `silence` silent frames; returns the decisions.
    fn phrase(
        t: &mut TurnEnd,
        frames: u32,
        (from_hz, to_hz): (f32, f32),
        (from_db, to_db): (f32, f32),
        silence: u32,
    ) -> Vec<TurnDecision> {
        let mut out = Vec::new();
        for i in 0..frames {
            let x = i as f32 / (frames - 1) as f32;
            let hz = from_hz * (to_hz / from_hz).powf(x);
            out.push(t.on_frame(true, true, true, from_db + (to_db - from_db) * x, Some(hz)));
        }
        for _ in 0..silence {
            out.push(t.on_frame(false, false, true, 20.0, None));
        }
        out
    }

    fn early(d: &[TurnDecision]) -> Vec<(usize, u32)> {
        d.iter()
            .enumerate()
            .filter_map(|(i, d)| match d {
                TurnDecision::End { silence_frames, .. } => Some((i, *silence_frames)),
                TurnDecision::None => None,
            })
            .collect()
    }

    #[test]
    fn a_falling_fading_phrase_ends_the_turn_after_the_minimum_silence() {
        let mut t = TurnEnd::new(140, 35, None, 400);
        // 1 s of steady speech, then 400 ms falling an octave and fading by 20 dB.
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        let d = phrase(&mut t, 20, (160.0, 80.0), (70.0, 50.0), 20);
        // 140 ms = 7 frames of silence: decided on the 7th silent frame, once.
        assert_eq!(early(&d), vec![(20 + 6, 7)]);
        // Already decided: speech stopping later reports nothing more.
        assert_eq!(t.on_stopped(), None);
    }

    #[test]
    fn a_rising_steady_phrase_waits_for_the_hangover() {
        let mut t = TurnEnd::new(140, 35, None, 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        let d = phrase(&mut t, 20, (160.0, 200.0), (70.0, 72.0), 20);
        assert!(early(&d).is_empty());
        // The pause ends the turn only when speech stops, with a low confidence.
        let (c, silence) = t.on_stopped().expect("pending");
        assert!(c < 35, "confidence {c}");
        assert_eq!(silence, 20);
        // Stopped again without speech: nothing pending.
        assert_eq!(t.on_stopped(), None);
    }

    #[test]
    fn the_score_grows_with_each_cue() {
        let score = |fall_to_hz: f32, fade_to_db: f32| {
            let mut t = TurnEnd::new(20, 1, None, 400);
            phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
            phrase(&mut t, 20, (160.0, fall_to_hz), (70.0, fade_to_db), 1);
            t.score
        };
        assert!(score(120.0, 70.0) > score(160.0, 70.0));
        assert!(score(160.0, 55.0) > score(160.0, 70.0));
        assert!(score(120.0, 55.0) > score(120.0, 70.0));
        assert!(score(160.0, 70.0) > score(200.0, 70.0));
    }

    #[test]
    fn speech_resuming_in_the_pause_cancels_it_and_a_new_pause_is_decided_afresh() {
        let mut t = TurnEnd::new(140, 35, None, 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        let d = phrase(&mut t, 20, (160.0, 80.0), (70.0, 50.0), 4);
        assert!(early(&d).is_empty(), "4 silent frames are under the minimum");
        let d = phrase(&mut t, 20, (160.0, 80.0), (70.0, 50.0), 10);
        assert_eq!(early(&d).len(), 1);
    }

    #[test]
    fn octave_errors_do_not_count_as_pitch_falls() {
        let mut t = TurnEnd::new(20, 1, None, 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        // The pitch tracker jumps an octave down on the last frames: ignored.
        phrase(&mut t, 20, (80.0, 80.0), (70.0, 70.0), 1);
        assert!(t.features()[0].abs() < 1.0, "{:?}", t.features());
    }

    #[test]
    fn speech_never_confirmed_ends_no_turn() {
        let mut t = TurnEnd::new(140, 35, None, 400);
        for _ in 0..5 {
            t.on_frame(true, true, false, 70.0, Some(160.0));
        }
        for _ in 0..20 {
            assert_eq!(t.on_frame(false, false, false, 20.0, None), TurnDecision::None);
        }
        assert_eq!(t.on_stopped(), None);
    }

    #[test]
    fn with_a_maximum_silence_an_unfinished_phrase_waits_it_past_speech_stopped() {
        let mut t = TurnEnd::new(140, 35, Some(1_000), 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        let d = phrase(&mut t, 20, (160.0, 200.0), (70.0, 72.0), 20);
        assert!(early(&d).is_empty());
        // Speech stops (the hangover, 400 ms): nothing yet, the pause still counts.
        assert_eq!(t.on_stopped(), None);
        // A frame taken for speech but never confirmed (a click) does not end the pause and
        // is not decided on.
        assert_eq!(t.on_frame(true, false, false, 60.0, None), TurnDecision::None);
        let d: Vec<_> = (0..40).map(|_| t.on_frame(false, false, false, 20.0, None)).collect();
        // 1 s = 50 frames of silence (20 before the stop, the click, 29 after it).
        let e = early(&d);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0], (28, 50));
        assert!(matches!(d[28], TurnDecision::End { early: false, .. }));
        // Decided: nothing more until speech.
        assert_eq!(t.on_stopped(), None);
    }

    #[test]
    fn with_a_maximum_silence_confirmed_speech_cancels_the_pause() {
        let mut t = TurnEnd::new(140, 35, Some(1_000), 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        phrase(&mut t, 20, (160.0, 200.0), (70.0, 72.0), 20);
        assert_eq!(t.on_stopped(), None);
        // The caller goes on (confirmed speech), finished-sounding this time.
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        let d = phrase(&mut t, 20, (160.0, 80.0), (70.0, 50.0), 40);
        assert_eq!(early(&d), vec![(20 + 6, 7)]);
        assert!(matches!(d[26], TurnDecision::End { early: true, .. }));
    }

    #[test]
    fn state_is_small() {
        assert!(std::mem::size_of::<TurnEnd>() <= 320, "{}", std::mem::size_of::<TurnEnd>());
    }

    #[test]
    fn a_maximum_silence_no_longer_than_the_hangover_ends_the_turn_with_the_speech() {
        // Speech stopping on the frame the maximum is reached, or before it: the pause ends
        // then, just before `Stopped`, not on a frame after it.
        for max in [300, 400] {
            let mut t = TurnEnd::new(140, 99, Some(max), 400);
            phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
            let d = phrase(&mut t, 20, (160.0, 200.0), (70.0, 72.0), 19);
            if max == 300 {
                // 15 frames: decided on the silence alone, before the hangover.
                assert_eq!(early(&d), vec![(20 + 14, 15)]);
                assert_eq!(t.on_stopped(), None);
            } else {
                assert!(early(&d).is_empty());
                assert_eq!(t.on_stopped().map(|(_, silence)| silence), Some(19));
            }
        }
    }

    /// 1 s of steady speech, then 400 ms falling an octave and fading by 20 dB, no silence.
    fn finished(t: &mut TurnEnd) {
        phrase(t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        phrase(t, 20, (160.0, 80.0), (70.0, 50.0), 0);
    }

    #[test]
    fn a_pause_that_waits_past_a_stop_with_no_silence_heard_keeps_its_score() {
        // Speech stops before its first silent frame is counted (a hangover of one frame, or
        // speech retracted as echo), and the maximum silence is longer than the hangover: the
        // pause waits, scored on how the speech ended, and a finished phrase still ends early.
        let mut t = TurnEnd::new(20, 35, Some(1_000), 0);
        finished(&mut t);
        assert_eq!(t.on_stopped(), None);
        let d = t.on_frame(false, false, false, 20.0, None);
        assert!(matches!(d, TurnDecision::End { early: true, confidence, .. } if confidence > 50), "{d:?}");
    }

    #[test]
    fn a_gap_counts_as_silence_and_its_pause_is_scored_on_the_speech_before_it() {
        let mut heard = TurnEnd::new(140, 35, None, 400);
        finished(&mut heard);
        let d: Vec<_> = (0..7).map(|_| heard.on_frame(false, false, true, 20.0, None)).collect();
        let TurnDecision::End { confidence, .. } = d[6] else { panic!("{d:?}") };
        // The same speech, then 200 ms that never arrived: decided on the next frame, with the
        // gap in its silence and the same score.
        let mut gapped = TurnEnd::new(140, 35, None, 400);
        finished(&mut gapped);
        gapped.on_gap(10);
        assert_eq!(
            gapped.on_frame(false, false, true, 20.0, None),
            TurnDecision::End { silence_frames: 11, confidence, early: true }
        );
    }

    #[test]
    fn the_stream_ending_ends_a_turn_under_way_once() {
        let mut t = TurnEnd::new(140, 99, None, 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 0);
        // Cut mid-phrase: scored on how it ended, no silence.
        let (_, silence) = t.on_stream_end().expect("a turn under way");
        assert_eq!(silence, 0);
        assert_eq!(t.on_stream_end(), None);
        // Speech never confirmed: no turn.
        for _ in 0..5 {
            t.on_frame(true, true, false, 70.0, Some(160.0));
        }
        assert_eq!(t.on_stream_end(), None);
        // Waiting for a maximum silence past speech stopping: it ends with the stream.
        let mut t = TurnEnd::new(140, 99, Some(1_000), 400);
        phrase(&mut t, 50, (160.0, 160.0), (70.0, 70.0), 20);
        assert_eq!(t.on_stopped(), None);
        assert_eq!(t.on_stream_end().map(|(_, silence)| silence), Some(20));
    }

    #[test]
    fn speech_stopped_with_no_silence_heard_is_scored_on_how_it_ended() {
        // A speech retracted as the agent's echo stops without a silent frame: its confidence is
        // the score of its own ending, as when the stream ends there, not a stale one.
        let (mut stopped, mut ended) = (TurnEnd::new(140, 99, None, 400), TurnEnd::new(140, 99, None, 400));
        finished(&mut stopped);
        finished(&mut ended);
        let (confidence, silence) = stopped.on_stopped().expect("a turn under way");
        assert_eq!(silence, 0);
        assert_eq!(Some(confidence), ended.on_stream_end().map(|(c, _)| c));
        assert!(confidence > 50, "a falling, fading phrase: {confidence}");
    }
}
