//! Speech state machine: turns per-frame webrtc-vad decisions into confirmed speech start/stop.
//!
//! Works in stream samples (8 kHz). A *run* is a stretch of consecutive frames webrtc-vad called
//! speech. webrtc-vad pads every stretch of real speech frames with its own overhang (see
//! [`Overhang`]), which would make a 60 ms click look like 120 ms of speech and put every stop
//! ~100 ms late; the machine accounts for it:
//! - Speech is confirmed once a run holds `min_speech` frames that cannot be overhang, i.e. its
//!   length minus the longest overhang that could be trailing it. `Started` carries the run's
//!   first frame (the onset), not the confirmation time.
//! - When a run ends, its true end is the run's end minus the overhang webrtc-vad must have added
//!   (short or long, inferred from the run's length).
//! - Speech stops once `hangover` of non-speech has passed since that true end; `Stopped` carries
//!   the true end. The hangover therefore includes webrtc-vad's overhang: it cannot be effectively
//!   shorter than that overhang (100 ms in modes 2–3).

use super::SpeechTransition;
use super::frame_classifier::{FRAME_SAMPLES, Overhang};

/// 8 kHz samples per millisecond.
const SAMPLES_PER_MS: u64 = 8;

/// Frame length in samples, as u64 for stream arithmetic.
const FRAME: u64 = FRAME_SAMPLES as u64;

/// The state machine; see the module docs.
#[derive(Debug, Clone)]
pub(crate) struct SpeechStateMachine {
    /// Frames of speech (excluding possible overhang) needed to confirm.
    min_speech_frames: u32,
    /// Non-speech (samples) after the true end of speech before it is declared stopped.
    hangover_samples: u64,
    /// webrtc-vad's overhang for the classifier's mode.
    overhang: Overhang,
    /// Frames in the current run; 0 when not in a run.
    run_frames: u32,
    /// Stream sample where the current run started.
    run_start: u64,
    /// Stream sample just after the current run's last frame.
    run_end: u64,
    /// Speech confirmed and not yet stopped.
    speaking: bool,
    /// Onset (stream sample) of the confirmed speech.
    onset: u64,
    /// Stream sample just after the last (estimated) real speech frame of the confirmed speech.
    speech_end: u64,
    /// A run's lead may not reach before this sample (the end of the previous run or gap).
    floor: u64,
    /// Start of the first voiced frame of the current run, if any.
    run_first_voiced: Option<u64>,
    /// End of the last voiced frame of the current run.
    run_voiced_end: u64,
    /// Start of the first and end of the last voiced frame of the confirmed speech.
    first_voiced: u64,
    voiced_end: u64,
}

impl SpeechStateMachine {
    /// Builds the machine.
    pub(crate) fn new(min_speech_ms: u32, hangover_ms: u32, overhang: Overhang) -> Self {
        // Round up: "at least min_speech_ms". At least one frame, so a confirmation needs speech.
        let min_speech_frames = min_speech_ms.div_ceil(super::FRAME_MS).max(1);
        Self {
            min_speech_frames,
            hangover_samples: u64::from(hangover_ms) * SAMPLES_PER_MS,
            overhang,
            run_frames: 0,
            run_start: 0,
            run_end: 0,
            speaking: false,
            onset: 0,
            speech_end: 0,
            floor: 0,
            run_first_voiced: None,
            run_voiced_end: 0,
            first_voiced: 0,
            voiced_end: 0,
        }
    }

    /// True while speech is confirmed.
    pub(crate) fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// Onset (stream sample) of the confirmed speech.
    pub(crate) fn onset_sample(&self) -> Option<u64> {
        self.speaking.then_some(self.onset)
    }

    /// Voiced time of the confirmed speech, in samples: from its first voiced frame to the end
    /// of its last one (pauses included, the soft start and bridged frames not).
    pub(crate) fn voiced_samples(&self) -> Option<u64> {
        self.speaking.then(|| self.voiced_end.saturating_sub(self.first_voiced))
    }

    /// Back to "no speech, no run".
    pub(crate) fn reset(&mut self) {
        self.run_first_voiced = None;
        self.run_frames = 0;
        self.speaking = false;
        self.floor = 0;
    }

    /// The most frames at the end of a run of `len` frames that could be webrtc-vad overhang
    /// rather than real speech frames: the short overhang after a run of real speech of any
    /// length, the long one only if at least `LONG_AFTER + 1` real speech frames precede it.
    fn max_trailing_overhang(&self, len: u32) -> u32 {
        let after_short = self.overhang.short.min(len.saturating_sub(1));
        let after_long = self.overhang.long.min(len.saturating_sub(Overhang::LONG_AFTER + 1));
        after_short.max(after_long)
    }

    /// The overhang webrtc-vad added to a run of `len` frames that has just ended. Exact when the
    /// run is too short to hold a long-overhang run; otherwise the long one, as real speech
    /// usually ends a run of more than `LONG_AFTER` speech frames (at worst 40 ms early).
    fn overhang_of_ended_run(&self, len: u32) -> u32 {
        let o = if len > Overhang::LONG_AFTER + self.overhang.long {
            self.overhang.long
        } else {
            self.overhang.short
        };
        // A run holds at least one real speech frame.
        o.min(len.saturating_sub(1))
    }

    /// Takes the decision for the frame that ends just before stream sample `end`.
    #[cfg(test)]
    pub(crate) fn on_frame(
        &mut self,
        speech: bool,
        end: u64,
        on_transition: &mut impl FnMut(SpeechTransition),
    ) {
        self.on_decision(speech, speech, 0, end, on_transition);
    }

    /// As `on_frame` (which tests call), with the classifier's detail: `voiced`, the frame is strong
    /// evidence of speech (not just a continuation of a run); `lead`, if the frame starts a run,
    /// the frames before it (classified non-speech, but judged by the classifier to be the soft
    /// start of this run) that are part of it. The lead never reaches back before the previous
    /// run or a gap.
    pub(crate) fn on_decision(
        &mut self,
        speech: bool,
        voiced: bool,
        lead: u32,
        end: u64,
        on_transition: &mut impl FnMut(SpeechTransition),
    ) {
        if speech && voiced {
            if self.run_first_voiced.is_none() {
                self.run_first_voiced = Some(end.saturating_sub(FRAME));
            }
            self.run_voiced_end = end;
            if self.speaking {
                self.voiced_end = end;
            }
        }
        if speech {
            if self.run_frames == 0 {
                let first = end.saturating_sub(FRAME);
                let lead = u64::from(lead).min(first.saturating_sub(self.floor) / FRAME);
                self.run_start = first - lead * FRAME;
                self.run_frames = lead as u32;
            }
            self.run_frames += 1;
            self.run_end = end;
            let sure = self.run_frames - self.max_trailing_overhang(self.run_frames);
            if !self.speaking && sure >= self.min_speech_frames {
                self.speaking = true;
                self.onset = self.run_start;
                self.speech_end = end;
                self.first_voiced = self.run_first_voiced.unwrap_or(self.run_start);
                self.voiced_end = self.run_voiced_end.max(self.first_voiced);
                on_transition(SpeechTransition::Started { at_ms: self.onset / SAMPLES_PER_MS });
            }
            return;
        }
        if self.run_frames > 0 {
            let o = u64::from(self.overhang_of_ended_run(self.run_frames));
            self.end_run(self.run_end - o * FRAME);
            self.floor = self.run_end;
        }
        self.check_stopped(end, on_transition);
    }

    /// The speech heard up to stream sample `end` ends there, whatever the hangover: it was not
    /// the caller's (the echo gate has just recognised the agent's echo in it, this frame
    /// included), or the caller's audio broke off (the stream was spliced over an outage). The
    /// current run ends, confirmed speech stops at once, at the end of its last speech frame;
    /// speech after is new speech (its soft start reaches no further back than `end`).
    pub(crate) fn cut(&mut self, end: u64, on_transition: &mut impl FnMut(SpeechTransition)) {
        if self.run_frames > 0 {
            self.end_run(self.run_end);
        }
        self.floor = end;
        if self.speaking {
            self.speaking = false;
            on_transition(SpeechTransition::Stopped { at_ms: self.speech_end / SAMPLES_PER_MS });
        }
    }

    /// Audio from just after the last frame taken up to stream sample `to` never arrived: it
    /// counts as non-speech. A run cut by the gap ends where its audio ended (no overhang is
    /// subtracted: nothing says the speech did not go on up to the gap).
    pub(crate) fn on_gap(&mut self, to: u64, on_transition: &mut impl FnMut(SpeechTransition)) {
        if self.run_frames > 0 {
            self.end_run(self.run_end);
        }
        self.floor = to;
        self.check_stopped(to, on_transition);
    }

    /// Closes the current run, whose real speech ended at `true_end`. An unconfirmed run is
    /// simply dropped (too short to be speech).
    fn end_run(&mut self, true_end: u64) {
        if self.speaking {
            // A run holds at least one real frame.
            let true_end = true_end.max(self.run_start + FRAME);
            self.speech_end = self.speech_end.max(true_end);
        }
        self.run_frames = 0;
        self.run_first_voiced = None;
    }

    /// Declares speech stopped if the hangover has passed by stream sample `now`.
    fn check_stopped(&mut self, now: u64, on_transition: &mut impl FnMut(SpeechTransition)) {
        if self.speaking && now.saturating_sub(self.speech_end) >= self.hangover_samples {
            self.speaking = false;
            on_transition(SpeechTransition::Stopped { at_ms: self.speech_end / SAMPLES_PER_MS });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds frame decisions ('1' speech, '0' not) from sample 0; returns (transition, frame index
    /// at which it was reported).
    fn run(m: &mut SpeechStateMachine, pattern: &str) -> Vec<(SpeechTransition, usize)> {
        let mut out = Vec::new();
        for (i, c) in pattern.chars().filter(|c| *c != ' ').enumerate() {
            m.on_frame(c == '1', (i as u64 + 1) * FRAME, &mut |t| out.push((t, i)));
        }
        out
    }

    fn machine() -> SpeechStateMachine {
        SpeechStateMachine::new(100, 400, Overhang { short: 3, long: 5 })
    }

    #[test]
    fn short_burst_plus_overhang_is_not_speech() {
        // 4 real frames (80 ms) + 3 overhang frames: 7 frames of "speech", not confirmed.
        assert!(run(&mut machine(), "000 1111 111 0000000000").is_empty());
    }

    #[test]
    fn onset_and_true_end_are_reported() {
        // Onset at frame 2; 20 real frames + 5 overhang frames, then silence.
        let p = format!("00{}{}{}", "1".repeat(20), "1".repeat(5), "0".repeat(40));
        let out = run(&mut machine(), &p);
        // Confirmed after 8 frames (5 sure + 3 possible overhang), at frame index 9.
        assert_eq!(out[0], (SpeechTransition::Started { at_ms: 40 }, 9));
        // True end = end of frame 21 = 22 * 20 ms; stopped 400 ms later.
        assert_eq!(out[1].0, SpeechTransition::Stopped { at_ms: 440 });
        assert_eq!(out[1].1 as u64 * 20 + 20, 440 + 400);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn pause_shorter_than_hangover_does_not_stop() {
        let p = format!("{}{}{}{}", "1".repeat(20), "0".repeat(10), "1".repeat(20), "0".repeat(40));
        let out = run(&mut machine(), &p);
        assert_eq!(out.len(), 2, "{out:?}");
    }

    #[test]
    fn lead_backdates_the_onset_and_counts_voiced_time_apart() {
        let mut m = SpeechStateMachine::new(100, 400, Overhang { short: 0, long: 0 });
        let mut out = Vec::new();
        let mut cb = |t| out.push(t);
        // Frames 0-9 noise; frame 10 voiced with a lead of 3 (frames 7-9 were its soft start).
        for i in 0..10u64 {
            m.on_decision(false, false, 0, (i + 1) * FRAME, &mut cb);
        }
        m.on_decision(true, true, 3, 11 * FRAME, &mut cb);
        // Confirmed after 5 frames counting the lead: at frame 11.
        m.on_decision(true, true, 0, 12 * FRAME, &mut cb);
        assert_eq!(m.voiced_samples(), Some(2 * FRAME));
        // Bridged (not voiced) frames keep the run going but add no voiced time.
        for i in 12..15u64 {
            m.on_decision(true, false, 0, (i + 1) * FRAME, &mut cb);
        }
        assert_eq!(m.voiced_samples(), Some(2 * FRAME));
        m.on_decision(true, true, 0, 16 * FRAME, &mut cb);
        assert_eq!(m.voiced_samples(), Some(6 * FRAME));
        assert_eq!(out, vec![SpeechTransition::Started { at_ms: 7 * 20 }]);
        // The lead never reaches before the end of the previous run.
        let mut m = SpeechStateMachine::new(100, 400, Overhang { short: 0, long: 0 });
        m.on_decision(true, true, 0, FRAME, &mut |_| {});
        m.on_decision(false, false, 0, 2 * FRAME, &mut |_| {});
        let mut out = Vec::new();
        for i in 2..8u64 {
            m.on_decision(true, true, 4, (i + 1) * FRAME, &mut |t| out.push(t));
        }
        assert_eq!(out, vec![SpeechTransition::Started { at_ms: 20 }]);
    }

    #[test]
    fn retracted_speech_stops_at_once_and_what_follows_is_new_speech() {
        let mut m = machine();
        let mut out = Vec::new();
        // Confirmed at frame 7 (onset 0); frames 0-11 speech, frame 12 retracted.
        for i in 0..12u64 {
            m.on_frame(true, (i + 1) * FRAME, &mut |t| out.push((t, i)));
        }
        m.cut(13 * FRAME, &mut |t| out.push((t, 12)));
        assert!(!m.is_speaking());
        assert_eq!(
            out,
            vec![
                (SpeechTransition::Started { at_ms: 0 }, 7),
                (SpeechTransition::Stopped { at_ms: 12 * 20 }, 12)
            ]
        );
        // Speech going on right after it is a speech of its own, with its own onset and voiced
        // time, whose soft start does not reach into the retracted one.
        out.clear();
        for i in 13..25u64 {
            m.on_decision(true, true, 5, (i + 1) * FRAME, &mut |t| out.push((t, i)));
        }
        assert_eq!(out, vec![(SpeechTransition::Started { at_ms: 13 * 20 }, 20)]);
        assert_eq!(m.voiced_samples(), Some(12 * FRAME));
        // Cutting with no speech says nothing.
        let mut m = machine();
        m.cut(FRAME, &mut |t| panic!("{t:?}"));
    }

    #[test]
    fn gap_counts_as_silence() {
        let mut m = machine();
        let mut out = Vec::new();
        for i in 0..20u64 {
            m.on_frame(true, (i + 1) * FRAME, &mut |t| out.push(t));
        }
        assert!(m.is_speaking());
        m.on_gap(20 * FRAME + 8 * 1_000, &mut |t| out.push(t));
        assert!(!m.is_speaking());
        assert_eq!(out[1], SpeechTransition::Stopped { at_ms: 400 });
    }
}
