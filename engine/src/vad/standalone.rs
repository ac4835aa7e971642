//! The speech detector on its own, one 20 ms frame at a time: for hosts that want Trunkline's VAD
//! on audio that does not come through a session (another transport, a recording).
//!
//! [`Vad`] is the [`SpeechDetector`] a session runs, fed the way a session feeds it: audio at 16,
//! 24 or 48 kHz is first resampled to 8 kHz by the same [`StreamResampler`] a session uses for a
//! carrier at that rate. It adds what a frame-by-frame caller needs: the classifier's decision on
//! each frame, and the speaking state after it.
//!
//! # Frames
//!
//! Every call takes exactly one 20 ms frame ([`Vad::frame_len`] samples): the detector decides
//! on 20 ms frames, so a frame in gives exactly one decision out, and the probability returned
//! belongs to that frame. (With any other length a call would hold a partial frame over, or
//! decide on several frames at once, and the returned value would describe no frame in
//! particular.) The frames follow each other: the stream time of transitions is the number of
//! frames since [`Vad::new`] or [`Vad::reset`] times 20 ms.
//!
//! # Probability
//!
//! The classifier decides; it does not estimate a probability. Its features (harmonicity, band
//! SNR over a tracked noise floor) are compared with thresholds that depend on whether a run of
//! speech is already going, so no calibrated score exists to report. The probability is
//! therefore 1.0 for a frame the classifier called speech and 0.0 otherwise: any threshold in
//! (0, 1] applied to it gives the classifier's own decision. With the spectral backend (the
//! default) a frame is speech when it is voiced, or when it continues a run that a voiced frame
//! began; with webrtc-vad, when webrtc-vad says so (its own overhang included). The speaking
//! state is the hysteresis on top (minimum speech, hangover): what a session reports as speech
//! started and stopped.

use super::frame_classifier::FRAME_SAMPLES;
use super::{FRAME_MS, SpeechDetector, SpeechTransition, VadConfig, VadError};
use crate::audio::CARRIER_RATE;
use crate::resample::StreamResampler;

/// The sample rates [`Vad`] accepts, Hz: the detector's own (8 kHz) and the carrier rates a
/// session resamples to it.
pub const VAD_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

/// Why a [`Vad`] could not be built or refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StandaloneVadError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] VadError),
    /// The sample rate is not one of [`VAD_RATES`].
    #[error("VAD sample rate {0} Hz is not one of 8000, 16000, 24000, 48000")]
    UnsupportedRate(u32),
    /// A frame that is not exactly 20 ms long.
    #[error("a VAD frame is 20 ms: {expected} samples at this rate, got {given}")]
    FrameLength {
        /// Samples in 20 ms at the VAD's rate.
        expected: usize,
        /// Samples given.
        given: usize,
    },
}

/// What one frame gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadFrame {
    /// 1.0 if the classifier called the frame speech, else 0.0 (see the module docs).
    pub probability: f32,
    /// True while speech is confirmed (after the frame).
    pub speaking: bool,
    /// The change of the speaking state this frame caused, if any; `at_ms` is stream time (ms
    /// since the first frame), as in a session's speech events.
    pub transition: Option<SpeechTransition>,
}

/// The session's speech detector over a stream of 20 ms frames at 8, 16, 24 or 48 kHz.
///
/// Allocates only in [`Vad::new`]: [`Vad::process`] and [`Vad::reset`] never allocate.
pub struct Vad {
    detector: SpeechDetector,
    rate: u32,
    /// To 8 kHz, for the other rates.
    to_8k: Option<StreamResampler>,
    /// 8 kHz stream position of the next frame.
    next_sample: u64,
}

impl std::fmt::Debug for Vad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vad")
            .field("rate", &self.rate)
            .field("detector", &self.detector)
            .finish_non_exhaustive()
    }
}

impl Vad {
    /// A VAD with `config` for audio at `sample_rate` Hz (one of [`VAD_RATES`]).
    pub fn new(config: &VadConfig, sample_rate: u32) -> Result<Self, StandaloneVadError> {
        if !VAD_RATES.contains(&sample_rate) {
            return Err(StandaloneVadError::UnsupportedRate(sample_rate));
        }
        let detector = SpeechDetector::new(config)?;
        let to_8k = (sample_rate != CARRIER_RATE)
            .then(|| StreamResampler::new(sample_rate, CARRIER_RATE))
            .transpose()
            .map_err(|_| StandaloneVadError::UnsupportedRate(sample_rate))?;
        Ok(Self { detector, rate: sample_rate, to_8k, next_sample: 0 })
    }

    /// The sample rate, Hz.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples in one frame: 20 ms at the sample rate (160 at 8 kHz, 320 at 16 kHz ...).
    pub fn frame_len(&self) -> usize {
        (self.rate / (1_000 / FRAME_MS)) as usize
    }

    /// Takes the next 20 ms frame: its speech probability, the speaking state after it and the
    /// transition it caused. `FrameLength` (nothing taken) for any other length.
    pub fn process(&mut self, frame: &[i16]) -> Result<VadFrame, StandaloneVadError> {
        let expected = self.frame_len();
        if frame.len() != expected {
            return Err(StandaloneVadError::FrameLength { expected, given: frame.len() });
        }
        // 20 ms at any of the rates resamples to exactly one 8 kHz frame: the resampler's output
        // count after N inputs is floor(N * 8000 / rate), and N is a whole number of frames.
        let mut resampled = [0i16; FRAME_SAMPLES + 2];
        let pcm: &[i16] = match &mut self.to_8k {
            None => frame,
            Some(r) => match r.process(frame, &mut resampled) {
                Ok(n) => &resampled[..n],
                Err(_) => {
                    debug_assert!(false, "a 20 ms frame's output fits its buffer");
                    &[]
                }
            },
        };
        let mut transition = None;
        let speech = match <&[i16; FRAME_SAMPLES]>::try_from(pcm) {
            Ok(pcm) => self.detector.process_frame(pcm, self.next_sample, |t| transition = Some(t)),
            Err(_) => {
                debug_assert!(false, "20 ms resamples to one 8 kHz frame");
                false
            }
        };
        self.next_sample += FRAME_SAMPLES as u64;
        Ok(VadFrame {
            probability: if speech { 1.0 } else { 0.0 },
            speaking: self.detector.is_speaking(),
            transition,
        })
    }

    /// True while speech is confirmed and not yet stopped.
    pub fn is_speaking(&self) -> bool {
        self.detector.is_speaking()
    }

    /// Forgets everything (speech state, noise floor, resampler history): the next frame starts
    /// a new stream at time 0. Does not allocate.
    pub fn reset(&mut self) {
        self.detector.reset();
        if let Some(r) = &mut self.to_8k {
            r.reset();
        }
        self.next_sample = 0;
    }
}

impl SpeechDetector {
    /// [`SpeechDetector::process`] for one whole frame starting at stream sample `start`, which
    /// continues the stream (or starts it) on the frame grid; returns the classifier's decision
    /// on it. The same steps as `process` takes for a frame (pre-filter, classifier, state
    /// machine), so the transitions are the ones `process` would report.
    fn process_frame(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        start: u64,
        mut on_transition: impl FnMut(SpeechTransition),
    ) -> bool {
        let Some((input, pos)) = self.align(frame, start, &mut on_transition) else { return false };
        if input.len() != FRAME_SAMPLES || self.filled != 0 {
            // Not on the grid (cannot happen through `Vad`): the general path keeps it correct.
            self.process(input, pos, on_transition);
            return false;
        }
        self.filter.process(input, &mut self.frame);
        let end = pos + FRAME_SAMPLES as u64;
        // A standalone detector has no agent audio: the slot only matters to the echo gate.
        let (speech, voiced, lead) = self.classifier.classify(&self.frame, pos / FRAME_SAMPLES as u64);
        self.state.on_decision(speech, voiced, lead, end, &mut on_transition);
        self.next_sample = Some(end);
        speech
    }
}
