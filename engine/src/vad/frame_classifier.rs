//! Per-frame speech/non-speech decisions from webrtc-vad (libfvad, GMM over six sub-bands).
//!
//! Frame length: 20 ms (160 samples at 8 kHz). Why 20 ms rather than 10 ms:
//! - webrtc-vad's own hangover ("overhang", see [`Overhang`]) switches from its short to its long
//!   form after 6 consecutive speech *frames*, so with 20 ms frames a short burst is told apart from
//!   sustained speech sooner in milliseconds, and speech is confirmed faster (180 ms after its
//!   onset with the default 120 ms minimum, against 210 ms with 10 ms frames);
//! - its band energies are measured over twice the samples, so single-frame decisions are steadier;
//! - it matches the 20 ms packetisation of telephone media, and halves the calls into C.
//!
//! The cost is onset resolution: onsets are reported on a 20 ms grid, well inside the ±60 ms the
//! barge-in logic needs.

use webrtc_vad::{SampleRate, Vad, VadMode};

/// Length of a classified frame, in ms.
pub(crate) const FRAME_MS: u32 = 20;

/// Length of a classified frame, in 8 kHz samples.
pub(crate) const FRAME_SAMPLES: usize = (FRAME_MS * 8) as usize;

/// webrtc-vad's built-in hangover, in frames of [`FRAME_MS`].
///
/// libfvad (`vad_core.c`, `GmmProbability`) keeps answering "speech" for a few frames after the
/// last frame its GMM really classified as speech: `short` frames if that run of speech frames was
/// at most [`Overhang::LONG_AFTER`] frames long, `long` frames otherwise. A new speech frame cuts
/// the overhang short. The values are the tables of webrtc-vad 0.4 / libfvad for 20 ms frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overhang {
    /// Overhang after a run of at most `LONG_AFTER` speech frames.
    pub(crate) short: u32,
    /// Overhang after a longer run.
    pub(crate) long: u32,
}

impl Overhang {
    /// A run of more than this many speech frames gets the long overhang (`kMaxSpeechFrames`).
    pub(crate) const LONG_AFTER: u32 = 6;

    /// The overhang of aggressiveness `mode` (0..=3) at 20 ms frames
    /// (`kOverHangMax1*[1]`, `kOverHangMax2*[1]`).
    fn for_mode(mode: u8) -> Self {
        match mode {
            0 | 1 => Self { short: 4, long: 7 },
            _ => Self { short: 3, long: 5 },
        }
    }
}

/// Owns a webrtc-vad instance so that it can move between threads.
struct OwnedVad(Vad);

// SAFETY: `Vad` is `!Send` only because it holds a raw pointer to its C state (`Fvad`). That state
// is a plain heap struct of integers, allocated by `fvad_new` in `Vad::new_*`, freed by `Vad`'s
// `Drop`, and reachable only through this one `Vad`: webrtc-vad never copies or exposes the
// pointer, and `OwnedVad` is neither `Clone` nor `Sync`. libfvad keeps no global or thread-local
// mutable state (its tables are `static const`). Every access goes through `&mut self`, so moving
// the value to another thread moves exclusive ownership of the C state with it; no two threads
// can ever touch it at once.
unsafe impl Send for OwnedVad {}

/// Classifies 20 ms frames of 8 kHz audio as speech or not.
pub(crate) struct FrameClassifier {
    vad: OwnedVad,
    mode: u8,
}

impl FrameClassifier {
    /// Builds a classifier. `mode` must be in 0..=3 (checked by the caller). Allocates (in C).
    pub(crate) fn new(mode: u8) -> Self {
        let mut this = Self { vad: OwnedVad(Vad::new_with_rate(SampleRate::Rate8kHz)), mode };
        this.apply_mode();
        this
    }

    /// The webrtc-vad mode for our aggressiveness (webrtc's `VadMode` is neither `Copy` nor
    /// constructible from an integer).
    fn apply_mode(&mut self) {
        let mode = match self.mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        self.vad.0.set_mode(mode);
    }

    /// webrtc-vad's built-in hangover for this classifier's mode.
    pub(crate) fn overhang(&self) -> Overhang {
        Overhang::for_mode(self.mode)
    }

    /// True if webrtc-vad calls `frame` speech (including its own overhang frames).
    pub(crate) fn classify(&mut self, frame: &[i16; FRAME_SAMPLES]) -> bool {
        // Err only for a length other than 10/20/30 ms, impossible with a fixed-size array.
        self.vad.0.is_voice_segment(frame).unwrap_or(false)
    }

    /// Feeds up to one overhang's worth of digital silence, standing in for audio that never
    /// arrived (a gap), so webrtc-vad's pending overhang does not leak into the audio after it.
    /// Why zeros are safe: below its minimum energy webrtc-vad updates no noise or speech model.
    pub(crate) fn feed_silence(&mut self, frames: u64) {
        let silence = [0i16; FRAME_SAMPLES];
        for _ in 0..frames.min(u64::from(self.overhang().long)) {
            self.classify(&silence);
        }
    }

    /// Forgets all adaptation, as freshly built. `fvad_reset` also restores the default mode and
    /// rate, so ours are applied again.
    pub(crate) fn reset(&mut self) {
        self.vad.0.reset();
        self.vad.0.set_sample_rate(SampleRate::Rate8kHz);
        self.apply_mode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn classifier_is_send() {
        assert_send::<FrameClassifier>();
    }

    #[test]
    fn silence_is_not_speech() {
        let mut c = FrameClassifier::new(2);
        for _ in 0..10 {
            assert!(!c.classify(&[0; FRAME_SAMPLES]));
        }
    }
}
