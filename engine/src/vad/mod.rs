//! Voice activity detection on telephone-band (8 kHz) audio.
//!
//! [`SpeechDetector`] = hum/DC pre-filter → `webrtc-vad` decisions on 20 ms frames → speech state
//! machine (minimum speech, hangover). Transitions carry stream time, not wall-clock time.
//!
//! Stream time: every call says where its first sample sits in the stream (`start_sample`, in
//! 8 kHz samples since stream start), and `at_ms = sample / 8`. Calls normally follow each other
//! contiguously, in chunks of any size; frames are assembled internally, so the transitions do not
//! depend on the chunking. If a call starts *after* the end of the previous one, the missing
//! audio is a gap: it counts as non-speech (speech stops if the gap outlasts the hangover), the
//! partial frame before it (< 20 ms) is dropped, and framing restarts at the new position. If a
//! call overlaps audio already taken, the overlapping samples are ignored: stream time never goes
//! backwards (call [`SpeechDetector::reset`] to start a new stream).

mod echo_delay;
mod echo_gate;
mod echo_match;
mod frame_classifier;
mod prefilter;
mod spectral;
mod speech_state;
mod standalone;
mod tone;
mod turn_end;

use frame_classifier::{FRAME_SAMPLES, FrameClassifier, Overhang};
use prefilter::HumFilter;
use spectral::SpectralClassifier;
use speech_state::SpeechStateMachine;
use turn_end::{TurnDecision, TurnEnd};

pub use standalone::{StandaloneVadError, VAD_RATES, Vad, VadFrame};

/// Length of the frames speech is decided on, in ms: onsets and ends fall on this grid (relative
/// to the first sample of the stream or of the audio after a gap).
pub const FRAME_MS: u32 = frame_classifier::FRAME_MS;

/// Frames a confirmed speech's start may be held back while the echo gate suspects an echo it
/// lets through (see [`SpeechDetector::start_held`]). Why 8: the echo match confirms an echo on
/// its seventh frame at the earliest, a frame after speech can be confirmed on it, and a quieter
/// echo's fit wanders over the threshold for a few frames more. (Measured, `vadbench --echo`,
/// mid-call rows on a quiet line, false `SpeechStarted` per 10 min of agent audio at ERL 6 dB:
/// 4.7 holding 3 or 5 frames, 3.1 holding 8, with only new echoes suspected; the interruptions
/// over the echo reached their barge-ins as without the hold either way.)
pub const HOLD_FRAMES: u8 = 8;

/// Largest accepted [`VadConfig::min_speech_ms`]. Why a limit: a longer minimum makes barge-in
/// unusable, and such values are usually a unit mistake (samples or µs for ms).
pub const MAX_MIN_SPEECH_MS: u32 = 5_000;

/// Largest accepted [`VadConfig::hangover_ms`] (same reasoning as [`MAX_MIN_SPEECH_MS`]).
pub const MAX_HANGOVER_MS: u32 = 10_000;

/// Largest accepted [`VadConfig::end_of_turn_threshold`] (a confidence in percent).
pub const MAX_END_OF_TURN_THRESHOLD: u8 = 99;

/// Which per-frame speech classifier a [`SpeechDetector`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VadBackend {
    /// Harmonicity and band SNR against a tracked noise floor (pure Rust): holds up in telephone
    /// noise (5 dB SNR, hum, clicks). The default.
    #[default]
    Spectral,
    /// webrtc-vad (libfvad's GMM) alone: fast and well known, but in noise around 5 dB SNR it calls
    /// nearly everything speech.
    WebRtc,
}

/// Settings of the speech detector. Defaults suit telephone calls.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Aggressiveness, 0 (least) ..= 3 (most aggressive about calling audio non-speech): the
    /// webrtc-vad mode, or the thresholds of the spectral backend.
    pub aggressiveness: u8,
    /// Voiced audio must last this long before speech is confirmed (the onset is still reported at
    /// its true start). Rounded up to whole 20 ms frames; at most [`MAX_MIN_SPEECH_MS`].
    pub min_speech_ms: u32,
    /// Non-speech must last this long, from the end of the last voiced frame, before speech is
    /// declared stopped. webrtc-vad's own overhang (≈100 ms at aggressiveness 2–3, 140 ms at 0–1)
    /// is part of it, so smaller values act like that overhang. At most [`MAX_HANGOVER_MS`].
    pub hangover_ms: u32,
    /// The frame classifier.
    pub backend: VadBackend,
    /// Echo-aware speech detection, for lines that carry the agent's voice back (speakerphones,
    /// hybrid echo): in a session, the agent's audio as the carrier plays it is kept as a few
    /// band energies, and caller audio its echo explains is not taken for the caller's speech,
    /// so the agent does not barge in on itself. Costs nothing while the agent is silent; the
    /// caller's audio the host reads is unchanged. Spectral backend only (refused with
    /// webrtc-vad); a standalone detector has no agent audio. Off by default: on a line without
    /// echo it also masks some soft speech over the agent (see docs/speech.md).
    pub echo_aware: bool,
    /// Report the end of the caller's turn ([`VadEvent::EndOfTurn`], a session's
    /// `Event::EndOfTurn`): early when the speech ended like a finished phrase, else with speech
    /// stopped (or after [`VadConfig::end_of_turn_max_silence_ms`]). Off by default. Its pitch
    /// cue needs the spectral backend (with webrtc-vad it decides on energy and lengthening
    /// alone). Reported by [`SpeechDetector::process_events`]
    /// and sessions, not by the frame-by-frame [`Vad`].
    pub end_of_turn_enabled: bool,
    /// Silence after a finished-sounding phrase before its end of turn is reported, ms (rounded
    /// up to whole 20 ms frames). Capped by the hangover.
    pub end_of_turn_min_silence_ms: u32,
    /// Silence after an unfinished-sounding phrase before its end of turn is reported, ms
    /// (whole 20 ms frames, at most [`MAX_HANGOVER_MS`]); 0 (the default): the hangover, the
    /// end of turn coming with speech stopped. Longer than the hangover, it comes after speech
    /// stopped, so a pause inside a sentence shorter than it is not taken for the end of the turn
    /// (1000 ms leaves the 300-800 ms pauses of the turn corpus uncut; see docs/speech.md).
    pub end_of_turn_max_silence_ms: u32,
    /// Confidence (1..=99, percent) the prosody must reach for an early end of turn: higher
    /// waits for the hangover more often (fewer pauses cut, slower answers).
    pub end_of_turn_threshold: u8,
}

impl Default for VadConfig {
    /// Telephone defaults:
    /// - aggressiveness 2 (webrtc's "aggressive"): line noise, breathing and clicks are common on
    ///   calls. On the fixture all four modes find every utterance within 20 ms, so the choice is
    ///   about noise: mode 0 takes strong 60 Hz hum (−12 dBFS, harmonics up to 300 Hz, past the
    ///   pre-filter) for speech at stream start, modes 1–3 do not; 3 drops more soft speech.
    /// - min_speech 120 ms (6 frames): longer than clicks, pops and cough attacks. Why not 100 ms:
    ///   a 60 ms burst straddling the 20 ms frame grid touches 4 frames, and webrtc-vad often
    ///   calls the frame after a loud burst speech too, so 60 ms can look like 100 ms; 120 ms
    ///   keeps such bursts out with a frame to spare. With webrtc-vad's overhang accounted for,
    ///   speech is confirmed 180 ms (stream time) after its onset.
    /// - hangover 400 ms: longer than the pauses inside a sentence (stop closures, breaths
    ///   between phrases), short enough that a finished turn is seen promptly.
    fn default() -> Self {
        Self {
            aggressiveness: 2,
            min_speech_ms: 120,
            hangover_ms: 400,
            backend: VadBackend::Spectral,
            echo_aware: false,
            end_of_turn_enabled: false,
            end_of_turn_min_silence_ms: 140,
            end_of_turn_max_silence_ms: 0,
            end_of_turn_threshold: 35,
        }
    }
}

impl VadConfig {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), VadError> {
        if self.aggressiveness > 3 {
            return Err(VadError::BadAggressiveness(self.aggressiveness));
        }
        if self.min_speech_ms > MAX_MIN_SPEECH_MS {
            return Err(VadError::MinSpeechTooLong(self.min_speech_ms));
        }
        if self.hangover_ms > MAX_HANGOVER_MS {
            return Err(VadError::HangoverTooLong(self.hangover_ms));
        }
        if self.end_of_turn_max_silence_ms > MAX_HANGOVER_MS {
            return Err(VadError::MaxSilenceTooLong(self.end_of_turn_max_silence_ms));
        }
        if self.end_of_turn_threshold == 0 || self.end_of_turn_threshold > MAX_END_OF_TURN_THRESHOLD {
            return Err(VadError::BadEndOfTurnThreshold(self.end_of_turn_threshold));
        }
        // Its pitch cues come from the spectral classifier, and webrtc-vad calls its own
        // overhang speech: the pauses it would score are 100-140 ms late and always fade.
        if self.end_of_turn_enabled && self.backend != VadBackend::Spectral {
            return Err(VadError::EndOfTurnNeedsSpectral);
        }
        // webrtc-vad keeps no echo gate: taken, it would leave the agent barging in on itself.
        if self.echo_aware && self.backend != VadBackend::Spectral {
            return Err(VadError::EchoAwareNeedsSpectral);
        }
        Ok(())
    }
}

/// A change of the caller's speech state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechTransition {
    /// Speech confirmed; `at_ms` is the stream time of its onset.
    Started {
        /// Stream time (ms) of the first voiced frame of this speech.
        at_ms: u64,
    },
    /// Speech ended; `at_ms` is the stream time just after its last voiced frame.
    Stopped {
        /// Stream time (ms) of the end of the last voiced frame.
        at_ms: u64,
    },
}

/// Why a detector could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VadError {
    /// Aggressiveness outside 0..=3.
    #[error("VAD aggressiveness {0} is outside 0..=3")]
    BadAggressiveness(u8),
    /// `min_speech_ms` above [`MAX_MIN_SPEECH_MS`].
    #[error("VAD minimum speech {0} ms is above {MAX_MIN_SPEECH_MS} ms")]
    MinSpeechTooLong(u32),
    /// `hangover_ms` above [`MAX_HANGOVER_MS`].
    #[error("VAD hangover {0} ms is above {MAX_HANGOVER_MS} ms")]
    HangoverTooLong(u32),
    /// `end_of_turn_max_silence_ms` above [`MAX_HANGOVER_MS`].
    #[error("end-of-turn maximum silence {0} ms is above {MAX_HANGOVER_MS} ms")]
    MaxSilenceTooLong(u32),
    /// `end_of_turn_threshold` outside 1..=[`MAX_END_OF_TURN_THRESHOLD`].
    #[error("end-of-turn threshold {0} is outside 1..={MAX_END_OF_TURN_THRESHOLD}")]
    BadEndOfTurnThreshold(u8),
    /// End of turn asked of the webrtc-vad backend (it needs the spectral classifier's pitch and
    /// voicing).
    #[error("end of turn needs the spectral VAD backend")]
    EndOfTurnNeedsSpectral,
    /// `echo_aware` asked of the webrtc-vad backend (the echo gate is the spectral classifier's).
    #[error("echo_aware needs the spectral VAD backend")]
    EchoAwareNeedsSpectral,
}

/// The caller's turn seems over: the speech that ended at `at_ms` was followed by `silence_ms`
/// of silence, and either sounded finished (`early`) or the hangover passed (then it comes just
/// before the `Stopped` transition of the same frame) or [`VadConfig::end_of_turn_max_silence_ms`]
/// did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndOfTurn {
    /// Stream time (ms) of the end of the last speech frame.
    pub at_ms: u64,
    /// Silence waited since then, ms.
    pub silence_ms: u32,
    /// How finished the phrase sounded, 0-100 (the prosodic score as a percentage).
    pub confidence: u8,
    /// Decided on prosody (after the minimum silence).
    pub early: bool,
}

/// What [`SpeechDetector::process_events`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// A change of the speech state.
    Transition(SpeechTransition),
    /// The end of the caller's turn (only with [`VadConfig::end_of_turn_enabled`]).
    EndOfTurn(EndOfTurn),
}

/// The per-frame classifier of a detector.
enum Classifier {
    WebRtc(FrameClassifier),
    Spectral(Box<SpectralClassifier>),
}

impl Classifier {
    fn new(config: &VadConfig) -> Self {
        match config.backend {
            VadBackend::WebRtc => Self::WebRtc(FrameClassifier::new(config.aggressiveness)),
            VadBackend::Spectral => {
                Self::Spectral(Box::new(SpectralClassifier::new(config.aggressiveness, config.echo_aware)))
            }
        }
    }

    /// The hangover the classifier itself appends to speech (see [`Overhang`]).
    fn overhang(&self) -> Overhang {
        match self {
            Self::WebRtc(c) => c.overhang(),
            Self::Spectral(_) => Overhang { short: 0, long: 0 },
        }
    }

    /// Whether `frame` is speech; whether it is strong (voiced) evidence of it; and if it starts
    /// a run, how many frames before it belong to that run. webrtc-vad has no such detail: all
    /// its speech frames count as voiced (its overhang included).
    /// `slot`: the frame's 20 ms slot of stream time, for the spectral backend's echo gate.
    fn classify(&mut self, frame: &[i16; FRAME_SAMPLES], slot: u64) -> (bool, bool, u32) {
        match self {
            Self::WebRtc(c) => {
                let speech = c.classify(frame);
                (speech, speech, 0)
            }
            Self::Spectral(c) => {
                let speech = c.classify(frame, slot);
                (speech, c.last_voiced(), c.lead_frames())
            }
        }
    }

    /// Whether the echo gate has just recognised an echo new to it (see
    /// [`SpectralClassifier::echo_recognised`]); webrtc-vad has no gate.
    fn echo_recognised(&mut self) -> bool {
        match self {
            Self::WebRtc(_) => false,
            Self::Spectral(c) => c.echo_recognised(),
        }
    }

    /// Whether the echo gate's match confirmed an echo at the caller's frame in `slot`.
    fn echo_confirmed(&self, slot: u64) -> bool {
        match self {
            Self::WebRtc(_) => false,
            Self::Spectral(c) => c.echo_confirmed(slot),
        }
    }

    /// Whether the echo gate suspects an echo it lets through at the caller's frame in `slot`.
    fn echo_suspected(&self, slot: u64) -> bool {
        match self {
            Self::WebRtc(_) => false,
            Self::Spectral(c) => c.echo_suspected(slot),
        }
    }

    /// The pitch of the last frame, Hz, if the classifier estimates one.
    fn pitch_hz(&self) -> Option<f32> {
        match self {
            Self::WebRtc(_) => None,
            Self::Spectral(c) => {
                let lag = c.features().pitch_lag;
                (lag > 0).then(|| 8_000.0 / f32::from(lag))
            }
        }
    }

    /// The last frame's mean band SNR over the tracked noise floor, dB, if the classifier
    /// measures one.
    fn snr_db(&self) -> Option<f32> {
        match self {
            Self::WebRtc(_) => None,
            Self::Spectral(c) => Some(c.features().snr_db),
        }
    }

    fn feed_silence(&mut self, frames: u64) {
        match self {
            Self::WebRtc(c) => c.feed_silence(frames),
            Self::Spectral(c) => c.feed_silence(frames),
        }
    }

    fn reset(&mut self) {
        match self {
            Self::WebRtc(c) => c.reset(),
            Self::Spectral(c) => c.reset(),
        }
    }
}

/// Energy of a frame, dB re 1 (a full-scale square wave is about 90 dB).
fn frame_db(frame: &[i16; FRAME_SAMPLES]) -> f32 {
    let e: f32 = frame.iter().map(|&x| f32::from(x) * f32::from(x)).sum();
    10.0 * (e / FRAME_SAMPLES as f32 + 1.0).log10()
}

/// Pre-filter + frame classifier + speech state machine over 8 kHz PCM.
///
/// Allocates only in [`SpeechDetector::new`]; [`SpeechDetector::process`] and
/// [`SpeechDetector::reset`] never allocate. `Send`, so a session can move between threads.
pub struct SpeechDetector {
    filter: HumFilter,
    classifier: Classifier,
    state: SpeechStateMachine,
    /// End-of-turn detector, when enabled.
    turn: Option<TurnEnd>,
    /// The hangover, ms (the silence a late end of turn waited).
    hangover_ms: u32,
    /// The frame being assembled (already filtered).
    frame: [i16; FRAME_SAMPLES],
    /// Samples in `frame`.
    filled: usize,
    /// The highest band SNR (dB) among the voiced frames of the current speech (or of the run
    /// that may become one); NaN before the first.
    voiced_snr_db: f32,
    /// Stream sample expected next; `None` before the first sample (or after a reset).
    next_sample: Option<u64>,
    /// Speech is confirmed but its start not reported yet, for so many frames: it may be the
    /// first frames of a new echo that the echo match is about to confirm (see
    /// [`SpeechDetector::start_held`]), and its onset, ms.
    held: Option<(u8, u64)>,
    /// What holding starts back has done so far.
    held_starts: HeldStarts,
}

/// What an echo-aware detector's holding of speech starts did (see
/// [`SpeechDetector::start_held`]); a session reports these as its `speech_starts_held` and
/// `speech_starts_dropped_as_echo` counters. 32 bits each: a session's memory is budgeted to the
/// byte, and a start is held at most once per speech.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeldStarts {
    /// Speech starts held back while the echo match suspected an echo.
    pub held: u32,
    /// Of those, the ones dropped unreported: the match confirmed the agent's echo meanwhile.
    pub dropped: u32,
}

impl std::fmt::Debug for SpeechDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechDetector")
            .field("speaking", &self.is_speaking())
            .field("onset_ms", &self.onset_ms())
            .field("next_sample", &self.next_sample)
            .finish_non_exhaustive()
    }
}

impl SpeechDetector {
    /// Builds a detector, after checking `config` ([`VadConfig::validate`]).
    pub fn new(config: &VadConfig) -> Result<Self, VadError> {
        config.validate()?;
        let classifier = Classifier::new(config);
        let state = SpeechStateMachine::new(config.min_speech_ms, config.hangover_ms, classifier.overhang());
        Ok(Self {
            filter: HumFilter::new(),
            classifier,
            state,
            turn: config.end_of_turn_enabled.then(|| {
                let min = config.end_of_turn_min_silence_ms.min(config.hangover_ms);
                let max =
                    (config.end_of_turn_max_silence_ms > 0).then_some(config.end_of_turn_max_silence_ms);
                TurnEnd::new(min, config.end_of_turn_threshold, max, config.hangover_ms)
            }),
            hangover_ms: config.hangover_ms,
            frame: [0; FRAME_SAMPLES],
            filled: 0,
            voiced_snr_db: f32::NAN,
            next_sample: None,
            held: None,
            held_starts: HeldStarts::default(),
        })
    }

    /// Feeds 8 kHz PCM of any length whose first sample sits at stream sample `start_sample`
    /// (8 kHz samples since stream start); calls `on_transition` for every state change, in
    /// order. A start after the previous call's end is a gap, one before it an overlap (see the
    /// module docs). An empty `input` does nothing.
    pub fn process(
        &mut self,
        input: &[i16],
        start_sample: u64,
        mut on_transition: impl FnMut(SpeechTransition),
    ) {
        self.process_events(input, start_sample, |e| {
            if let VadEvent::Transition(t) = e {
                on_transition(t);
            }
        });
    }

    /// [`SpeechDetector::process`], also reporting the end of the caller's turn when
    /// [`VadConfig::end_of_turn_enabled`] (at most one per pause; after the `Stopped` of the pause
    /// only with [`VadConfig::end_of_turn_max_silence_ms`] longer than the hangover).
    pub fn process_events(&mut self, input: &[i16], start_sample: u64, mut on_event: impl FnMut(VadEvent)) {
        // A frame (or a gap) makes at most one transition.
        let mut gap_transition = None;
        let aligned = self.align(input, start_sample, &mut |t| gap_transition = Some(t));
        if let Some(t) = gap_transition {
            self.report_or_hold(Some(t), None, false, &mut on_event);
        }
        let Some((mut input, mut pos)) = aligned else { return };
        while !input.is_empty() {
            let n = (FRAME_SAMPLES - self.filled).min(input.len());
            let (head, rest) = input.split_at(n);
            self.filter.process(head, &mut self.frame[self.filled..self.filled + n]);
            self.filled += n;
            pos += n as u64;
            input = rest;
            if self.filled == FRAME_SAMPLES {
                self.filled = 0;
                let slot = (pos - FRAME_SAMPLES as u64 / 2) / FRAME_SAMPLES as u64;
                let (speech, voiced, lead) = self.classifier.classify(&self.frame, slot);
                let mut transition = None;
                // A new echo recognised, or an echo confirmed while a start is held for it.
                let retracted = self.classifier.echo_recognised()
                    || (self.held.is_some() && self.classifier.echo_confirmed(slot));
                if retracted {
                    // What was heard as speech up to here was the agent's echo: it ends, and
                    // what the caller says over the echo from now on is a speech of its own.
                    self.state.cut(pos, &mut |t| transition = Some(t));
                } else {
                    self.state.on_decision(speech, voiced, lead, pos, &mut |t| transition = Some(t));
                }
                let suspected = self.classifier.echo_suspected(slot);
                self.report_or_hold(transition, Some(suspected), retracted, &mut on_event);
                self.track_voiced_snr(speech, voiced);
                self.decide_turn(speech, voiced, pos, &mut on_event);
            }
        }
        self.next_sample = Some(pos);
    }

    /// Follows the band SNR of the voiced frames since speech last began (the frames before its
    /// confirmation included); a frame of silence between speeches starts afresh.
    fn track_voiced_snr(&mut self, speech: bool, voiced: bool) {
        if speech && voiced {
            if let Some(snr) = self.classifier.snr_db() {
                // NaN (none yet) gives way to any number.
                self.voiced_snr_db = self.voiced_snr_db.max(snr);
            }
        } else if !speech && !self.state.is_speaking() {
            self.voiced_snr_db = f32::NAN;
        }
    }

    /// Reports a transition, or holds a start back while the echo gate suspects an echo it lets
    /// through (`suspected`: for a frame just classified; `None` for a gap, which ends any hold).
    /// A start is held for at most [`HOLD_FRAMES`] frames and while the suspicion lasts; if the
    /// match confirms the echo meanwhile, the speech is retracted (`retracted`) and neither its
    /// start nor its end is reported.
    fn report_or_hold(
        &mut self,
        transition: Option<SpeechTransition>,
        suspected: Option<bool>,
        retracted: bool,
        on_event: &mut impl FnMut(VadEvent),
    ) {
        match (transition, self.held) {
            (Some(SpeechTransition::Started { at_ms }), _) if suspected == Some(true) => {
                self.held = Some((0, at_ms));
                self.held_starts.held = self.held_starts.held.saturating_add(1);
            }
            // Started and ended unheard: the echo's.
            (Some(SpeechTransition::Stopped { .. }), Some(_)) if retracted => {
                self.held = None;
                self.held_starts.dropped = self.held_starts.dropped.saturating_add(1);
            }
            (Some(t), _) => {
                self.release_held(on_event);
                self.report(t, retracted, on_event);
            }
            (None, Some((frames, at_ms))) => {
                if suspected == Some(true) && frames + 1 < HOLD_FRAMES {
                    self.held = Some((frames + 1, at_ms));
                } else {
                    self.release_held(on_event);
                }
            }
            (None, None) => {}
        }
    }

    /// Reports a start held back (see [`SpeechDetector::start_held`]), if any.
    pub(crate) fn release_held(&mut self, on_event: &mut impl FnMut(VadEvent)) {
        if let Some((_, at_ms)) = self.held.take() {
            // Confirmed speech after all: a turn, though its frames came while it was held.
            if let Some(turn) = self.turn.as_mut() {
                turn.arm();
            }
            self.report(SpeechTransition::Started { at_ms }, false, on_event);
        }
    }

    /// Reports a transition; a pause the prosody left undecided ends the turn when speech stops,
    /// just before it. `retracted`: the speech stops because the rest of it was the agent's echo,
    /// with no silence heard.
    fn report(&mut self, t: SpeechTransition, retracted: bool, on_event: &mut impl FnMut(VadEvent)) {
        if let (SpeechTransition::Stopped { at_ms }, Some(turn)) = (t, self.turn.as_mut())
            && let Some((confidence, silence_frames)) = turn.on_stopped()
        {
            // The hangover, or more when a gap in the stream stopped the speech.
            let silence_ms =
                if retracted { 0 } else { self.hangover_ms.max(silence_frames.saturating_mul(FRAME_MS)) };
            let e = EndOfTurn { at_ms, silence_ms, confidence, early: false };
            on_event(VadEvent::EndOfTurn(e));
        }
        on_event(VadEvent::Transition(t));
    }

    /// The stream ends (the call hangs up): a turn under way, whose end was not reported yet,
    /// ends with it. `stopped_at_ms`: where the host reports the caller's speech stopped, if it
    /// was still under way (the end of turn comes just before that `Stopped`, at the same time);
    /// otherwise the turn was waiting for [`VadConfig::end_of_turn_max_silence_ms`] after its
    /// `Stopped`, and the end of turn carries the end of that speech and the silence since. `None`
    /// when end of turn is off or no turn is under way. Call it before [`Self::reset`].
    pub fn end_turn(&mut self, stopped_at_ms: Option<u64>) -> Option<EndOfTurn> {
        let (confidence, silence_frames) = self.turn.as_mut()?.on_stream_end()?;
        let end = self.next_sample.unwrap_or(0).saturating_sub(self.filled as u64);
        let at_ms = stopped_at_ms
            .unwrap_or_else(|| end.saturating_sub(u64::from(silence_frames) * FRAME_SAMPLES as u64) / 8);
        let silence_ms = if stopped_at_ms.is_some() { 0 } else { silence_frames.saturating_mul(FRAME_MS) };
        Some(EndOfTurn { at_ms, silence_ms, confidence, early: false })
    }

    /// Feeds the frame just classified (ending at stream sample `end`) to the end-of-turn
    /// detector; reports an early end of turn.
    fn decide_turn(&mut self, speech: bool, voiced: bool, end: u64, on_event: &mut impl FnMut(VadEvent)) {
        let Some(turn) = self.turn.as_mut() else { return };
        // A start held back is not a turn yet.
        let speaking = self.state.is_speaking() && self.held.is_none();
        let decision =
            turn.on_frame(speech, voiced, speaking, frame_db(&self.frame), self.classifier.pitch_hz());
        if let TurnDecision::End { silence_frames, confidence, early } = decision {
            let silence = u64::from(silence_frames) * FRAME_SAMPLES as u64;
            on_event(VadEvent::EndOfTurn(EndOfTurn {
                at_ms: end.saturating_sub(silence) / 8,
                silence_ms: silence_frames.saturating_mul(FRAME_MS),
                confidence,
                early,
            }));
        }
    }

    /// Lines `input` up with the stream: handles a first call, a gap or an overlap, and returns
    /// the samples still to take with the stream position of the first one.
    fn align<'a>(
        &mut self,
        input: &'a [i16],
        start_sample: u64,
        on_transition: &mut impl FnMut(SpeechTransition),
    ) -> Option<(&'a [i16], u64)> {
        let &first = input.first()?;
        match self.next_sample {
            None => {
                self.filter.prime(first);
                Some((input, start_sample))
            }
            Some(next) if start_sample == next => Some((input, start_sample)),
            Some(next) if start_sample > next => {
                // Why drop the partial frame rather than pad it: padding would classify a frame
                // that is part audio, part invented silence; < 20 ms of audio is not worth it.
                let last_frame_end = next - self.filled as u64;
                self.filled = 0;
                let gap_frames = (start_sample - last_frame_end).div_ceil(FRAME_SAMPLES as u64);
                self.classifier.feed_silence(gap_frames);
                // Before the state hears of it: a gap that stops speech stops it with the gap's
                // silence counted in the pause.
                if let Some(turn) = self.turn.as_mut() {
                    turn.on_gap(u32::try_from(gap_frames).unwrap_or(u32::MAX));
                }
                self.state.on_gap(start_sample, on_transition);
                // The audio after a gap is unrelated to the filter's state: restart it steadily.
                self.filter.prime(first);
                Some((input, start_sample))
            }
            Some(next) => {
                let skip = next - start_sample;
                let rest = input.get(usize::try_from(skip).ok()?..)?;
                (!rest.is_empty()).then_some((rest, next))
            }
        }
    }

    /// Features of the last classified frame, for tuning tools: `(harmonicity, mean band SNR dB)`
    /// from the spectral backend, `None` for webrtc-vad. Not a stable API.
    #[doc(hidden)]
    pub fn last_frame_features(&self) -> Option<(f32, f32, f32)> {
        match &self.classifier {
            Classifier::Spectral(c) => {
                let f = c.features();
                Some((f.harmonicity, f.snr_db, f.impulsiveness))
            }
            Classifier::WebRtc(_) => None,
        }
    }

    /// While speech is confirmed: how long it has been voiced so far, in ms, from its first
    /// voiced frame to the end of its last one (pauses inside it included; with the spectral
    /// backend, its soft start and the weaker frames that merely continue it are not). Barge-in
    /// uses this rather than the time since the onset, so a short "mm-hm" followed by the
    /// hangover does not count as long speech.
    pub fn voiced_ms(&self) -> Option<u64> {
        self.state.voiced_samples().map(|s| s / 8)
    }

    /// While speech is confirmed: how far its clearest voiced frame stood over the line's tracked
    /// noise floor, dB (the highest band SNR among its voiced frames; `None` before a voiced
    /// frame, and with webrtc-vad, which measures none). How clearly the caller is heard: on a
    /// noisy line words lose their soft edges to the noise, so their voiced time undercounts
    /// them. The highest rather than a mean: a word's fading end does not pull it down.
    pub fn voiced_snr_db(&self) -> Option<f32> {
        (self.state.is_speaking() && !self.voiced_snr_db.is_nan()).then_some(self.voiced_snr_db)
    }

    /// While speech is confirmed (spectral backend): how long, up to the last frame, its sound
    /// has held one level, in ms: the frames in a row of it whose energy over all bands (those
    /// the echo gate masks too) stays within 3 dB of the first of them. A voice moves more with
    /// its syllables (on the corpus never so steady for more than 300 ms); a drone, a fan or a
    /// hum that came up stays there, and is taken for the line's sound after a second of it
    /// (where the echo gate masks nothing), which ends the speech. `None` otherwise.
    pub fn steady_ms(&self) -> Option<u64> {
        match &self.classifier {
            Classifier::Spectral(c) if self.state.is_speaking() => {
                Some(u64::from(c.held_frames()) * u64::from(FRAME_MS))
            }
            _ => None,
        }
    }

    /// True while speech is confirmed and not yet stopped (its start reported or held back).
    pub fn is_speaking(&self) -> bool {
        self.state.is_speaking()
    }

    /// True while confirmed speech's start is held back, not yet reported: on an echo-aware
    /// detector, speech confirmed while the echo match has, in its last few frames, confirmed an
    /// echo or found a fit that would be an echo new to the gate waits up to [`HOLD_FRAMES`]
    /// frames, and if the match confirms the echo meanwhile, the speech ends unreported (it was
    /// the echo, not the caller). Its onset and voiced time are known meanwhile
    /// ([`Self::onset_ms`], [`Self::voiced_ms`]), so a session still ducks the agent on it, and a
    /// barge-in reports the start first.
    pub fn start_held(&self) -> bool {
        self.held.is_some()
    }

    /// How many starts were held back, and dropped, since the detector was built (a reset
    /// keeps these counts).
    pub fn held_starts(&self) -> HeldStarts {
        self.held_starts
    }

    /// Stream time (ms) of the onset of the current speech, while speaking.
    pub fn onset_ms(&self) -> Option<u64> {
        self.state.onset_sample().map(|s| s / 8)
    }

    /// Features of the last pause the end-of-turn detector scored, for tuning tools: pitch fall
    /// below the running pitch (semitones), energy decay (dB), lengthening (log2), pitch fall
    /// over the last 480 ms (semitones). Not a stable API.
    #[doc(hidden)]
    pub fn last_turn_features(&self) -> Option<[f32; 4]> {
        self.turn.as_ref().map(TurnEnd::features)
    }

    /// The agent's audio (8 kHz PCM, any length) that the carrier plays from engine time
    /// `play_us` (µs, the clock of `now_us`), recorded at `now_us` for the echo gate (see
    /// `echo_gate.rs`): its echo on the caller's line is not taken for the caller's speech.
    /// Returns the caller's stream sample it was placed at (the echo canceller places it there
    /// too). The spectral backend only; before any caller audio, nothing is recorded (`None`).
    /// Does not allocate.
    pub(crate) fn echo_reference(&mut self, pcm: &[i16], play_us: u64, now_us: u64) -> Option<u64> {
        let Classifier::Spectral(c) = &mut self.classifier else { return None };
        let start = c.echo_gate().and_then(|g| g.sample_of(play_us, now_us, self.next_sample))?;
        for (k, piece) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            c.echo_reference(piece, start + (k * FRAME_SAMPLES) as u64);
        }
        Some(start)
    }

    /// The agent's audio (8 kHz PCM) heard in the caller's stream from stream sample `sample`
    /// on, for the echo gate: [`Self::echo_reference`] with the playout already mapped, for tools
    /// and tests that place the agent's audio themselves. Not a stable API.
    #[doc(hidden)]
    pub fn echo_reference_at(&mut self, pcm: &[i16], sample: u64) {
        let Classifier::Spectral(c) = &mut self.classifier else { return };
        if c.echo_gate().is_none() {
            return;
        }
        for (k, piece) in pcm.chunks(FRAME_SAMPLES).enumerate() {
            c.echo_reference(piece, sample + (k * FRAME_SAMPLES) as u64);
        }
    }

    /// The echo's delay behind the agent's audio as the echo gate estimates it, ms (`None`
    /// while it has none it trusts, or without the gate). Not a stable API.
    #[doc(hidden)]
    pub fn echo_delay_ms(&mut self) -> Option<f32> {
        let Classifier::Spectral(c) = &mut self.classifier else { return None };
        c.echo_gate()?.delay_ms()
    }

    /// The stream was spliced here: the caller's media was lost for longer than the engine
    /// fills, the carrier's timestamps jumped, and the audio after meets the audio before on the
    /// stream's timeline. What follows is heard as after a gap of that length, not as going on
    /// from what came before:
    /// - speech under way stops where it was last heard, and the turn under way ends just
    ///   before, as at the stream's end ([`Self::end_under_way`]);
    /// - the classifier takes it as a gap longer than the engine fills (the spectral one then
    ///   compares the line after it with its floor, and learns another line, quieter, afresh);
    /// - the echo gate starts afresh, as at a stream's start, since the agent's audio it holds
    ///   and the clock mapping it learnt place the echo seconds off;
    /// - the next audio is placed where it says, the filter primed on it.
    ///
    /// Nothing heard yet: nothing to splice. Does not allocate.
    pub(crate) fn splice(&mut self, on_event: &mut impl FnMut(VadEvent)) {
        let Some(next) = self.next_sample else { return };
        // A partial frame is dropped, as at a gap.
        let end = next - self.filled as u64;
        // Cutting only ever stops speech.
        let mut stopped_at_ms = None;
        self.state.cut(end, &mut |t| {
            if let SpeechTransition::Stopped { at_ms } = t {
                stopped_at_ms = Some(at_ms);
            }
        });
        self.end_under_way(stopped_at_ms, on_event);
        self.filled = 0;
        self.voiced_snr_db = f32::NAN;
        // How long the outage was is not known here, only that it was longer than filled.
        self.classifier.feed_silence(u64::MAX);
        if let Classifier::Spectral(c) = &mut self.classifier
            && let Some(gate) = c.echo_gate()
        {
            gate.reset();
        }
        self.next_sample = None;
    }

    /// The stream ends or breaks off: reports what is under way. A start held back first, then
    /// the turn under way ([`Self::end_turn`]) and, if speech was under way, its `Stopped` at
    /// `stopped_at_ms`, the turn just before it at the same time.
    pub(crate) fn end_under_way(&mut self, stopped_at_ms: Option<u64>, on_event: &mut impl FnMut(VadEvent)) {
        self.release_held(on_event);
        if let Some(turn) = self.end_turn(stopped_at_ms) {
            on_event(VadEvent::EndOfTurn(turn));
        }
        if let Some(at_ms) = stopped_at_ms {
            on_event(VadEvent::Transition(SpeechTransition::Stopped { at_ms }));
        }
    }

    /// The carrier dropped the agent's audio it had not played by engine time `play_us`: none
    /// of it echoes. Returns the caller's stream sample of the cut (`None` before the gate has
    /// placed any audio).
    pub(crate) fn echo_cut(&mut self, play_us: u64) -> Option<u64> {
        let Classifier::Spectral(c) = &mut self.classifier else { return None };
        let gate = c.echo_gate()?;
        let sample = gate.sample_at(play_us)?;
        gate.cut(sample.div_ceil(FRAME_SAMPLES as u64));
        Some(sample)
    }

    /// Forgets all state (speech, framing, filter, webrtc-vad adaptation), as freshly built but
    /// for the counts of [`Self::held_starts`]: the next call may start at any stream position.
    /// A start still held back is dropped unreported. Does not allocate.
    pub fn reset(&mut self) {
        if let Some(turn) = self.turn.as_mut() {
            turn.reset();
        }
        self.filter.reset();
        self.classifier.reset();
        self.state.reset();
        self.filled = 0;
        self.voiced_snr_db = f32::NAN;
        self.next_sample = None;
        self.held = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 150 Hz pulse train with decaying harmonics at 8 kHz: voiced speech to the detector.
    fn voiced(samples: usize) -> Vec<i16> {
        let period = 8_000.0 / 150.0;
        (0..samples)
            .map(|i| {
                let phase = (i as f64 % period) / period;
                (6_000.0 * (-phase * 6.0).exp() * (2.0 * std::f64::consts::PI * phase * 5.0).cos()) as i16
            })
            .collect()
    }

    #[test]
    fn speech_retracted_as_the_agents_echo_ends_its_turn_with_no_silence_claimed() {
        let config = VadConfig { end_of_turn_enabled: true, ..VadConfig::default() };
        let mut d = SpeechDetector::new(&config).unwrap();
        let mut events = Vec::new();
        d.process_events(&[0; 1_600], 0, |e| events.push(e));
        let speech = voiced(8_000);
        for (i, frame) in speech.chunks(160).enumerate() {
            d.process_events(frame, 1_600 + 160 * i as u64, |e| events.push(e));
            if events.iter().any(|e| matches!(e, VadEvent::Transition(SpeechTransition::Started { .. }))) {
                break;
            }
        }
        assert!(d.state.is_speaking(), "{events:?}");
        // What the echo gate does when it recognises the speech as the agent's echo: the speech
        // ends at once, with no silence after it.
        let mut stopped = None;
        d.state.cut(d.next_sample.unwrap(), &mut |t| stopped = Some(t));
        events.clear();
        d.report_or_hold(stopped, Some(false), true, &mut |e| events.push(e));
        match events[..] {
            [
                VadEvent::EndOfTurn(EndOfTurn { silence_ms, .. }),
                VadEvent::Transition(SpeechTransition::Stopped { .. }),
            ] => {
                assert_eq!(silence_ms, 0, "{events:?}")
            }
            _ => panic!("{events:?}"),
        }
    }
}
