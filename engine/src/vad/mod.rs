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

mod frame_classifier;
mod prefilter;
mod spectral;
mod speech_state;
mod standalone;

use frame_classifier::{FRAME_SAMPLES, FrameClassifier, Overhang};
use prefilter::HumFilter;
use spectral::SpectralClassifier;
use speech_state::SpeechStateMachine;

pub use standalone::{StandaloneVadError, VAD_RATES, Vad, VadFrame};

/// Length of the frames speech is decided on, in ms: onsets and ends fall on this grid (relative
/// to the first sample of the stream or of the audio after a gap).
pub const FRAME_MS: u32 = frame_classifier::FRAME_MS;

/// Largest accepted [`VadConfig::min_speech_ms`]. Why a limit: a longer minimum makes barge-in
/// unusable, and such values are usually a unit mistake (samples or µs for ms).
pub const MAX_MIN_SPEECH_MS: u32 = 5_000;

/// Largest accepted [`VadConfig::hangover_ms`] (same reasoning as [`MAX_MIN_SPEECH_MS`]).
pub const MAX_HANGOVER_MS: u32 = 10_000;

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
        Self { aggressiveness: 2, min_speech_ms: 120, hangover_ms: 400, backend: VadBackend::Spectral }
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
            VadBackend::Spectral => Self::Spectral(Box::new(SpectralClassifier::new(config.aggressiveness))),
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
    fn classify(&mut self, frame: &[i16; FRAME_SAMPLES]) -> (bool, bool, u32) {
        match self {
            Self::WebRtc(c) => {
                let speech = c.classify(frame);
                (speech, speech, 0)
            }
            Self::Spectral(c) => {
                let speech = c.classify(frame);
                (speech, c.last_voiced(), c.lead_frames())
            }
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

/// Pre-filter + frame classifier + speech state machine over 8 kHz PCM.
///
/// Allocates only in [`SpeechDetector::new`]; [`SpeechDetector::process`] and
/// [`SpeechDetector::reset`] never allocate. `Send`, so a session can move between threads.
pub struct SpeechDetector {
    filter: HumFilter,
    classifier: Classifier,
    state: SpeechStateMachine,
    /// The frame being assembled (already filtered).
    frame: [i16; FRAME_SAMPLES],
    /// Samples in `frame`.
    filled: usize,
    /// Stream sample expected next; `None` before the first sample (or after a reset).
    next_sample: Option<u64>,
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
            frame: [0; FRAME_SAMPLES],
            filled: 0,
            next_sample: None,
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
        let Some((mut input, mut pos)) = self.align(input, start_sample, &mut on_transition) else {
            return;
        };
        while !input.is_empty() {
            let n = (FRAME_SAMPLES - self.filled).min(input.len());
            let (head, rest) = input.split_at(n);
            self.filter.process(head, &mut self.frame[self.filled..self.filled + n]);
            self.filled += n;
            pos += n as u64;
            input = rest;
            if self.filled == FRAME_SAMPLES {
                self.filled = 0;
                let (speech, voiced, lead) = self.classifier.classify(&self.frame);
                self.state.on_decision(speech, voiced, lead, pos, &mut on_transition);
            }
        }
        self.next_sample = Some(pos);
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

    /// True while speech is confirmed and not yet stopped.
    pub fn is_speaking(&self) -> bool {
        self.state.is_speaking()
    }

    /// Stream time (ms) of the onset of the current speech, while speaking.
    pub fn onset_ms(&self) -> Option<u64> {
        self.state.onset_sample().map(|s| s / 8)
    }

    /// Forgets all state (speech, framing, filter, webrtc-vad adaptation), as freshly built: the
    /// next call may start at any stream position. Does not allocate.
    pub fn reset(&mut self) {
        self.filter.reset();
        self.classifier.reset();
        self.state.reset();
        self.filled = 0;
        self.next_sample = None;
    }
}
