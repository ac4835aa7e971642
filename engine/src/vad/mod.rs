//! Voice activity detection on telephone-band (8 kHz) audio (stub, being written).
//!
//! [`SpeechDetector`] = hum/DC pre-filter → `webrtc-vad` frame decisions → speech state machine
//! (minimum speech, hangover). Transitions carry stream time, not wall-clock time.

/// Settings of the speech detector. Defaults suit telephone calls.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// webrtc-vad aggressiveness, 0 (least) ..= 3 (most aggressive about calling audio non-speech).
    pub aggressiveness: u8,
    /// Voiced audio must last this long before speech is confirmed (the onset is still reported at
    /// its true start).
    pub min_speech_ms: u32,
    /// Non-speech must last this long before speech is declared stopped.
    pub hangover_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self { aggressiveness: 2, min_speech_ms: 100, hangover_ms: 400 }
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
}

/// Pre-filter + webrtc-vad + speech state machine over 8 kHz PCM.
pub struct SpeechDetector {
    speaking: bool,
}

impl SpeechDetector {
    /// Builds a detector.
    pub fn new(config: &VadConfig) -> Result<Self, VadError> {
        if config.aggressiveness > 3 {
            return Err(VadError::BadAggressiveness(config.aggressiveness));
        }
        Ok(Self { speaking: false })
    }
    /// Feeds 8 kHz PCM of any length whose first sample sits at stream sample `start_sample`
    /// (8 kHz samples since stream start); calls `on_transition` for every state change.
    pub fn process(
        &mut self,
        input: &[i16],
        start_sample: u64,
        on_transition: impl FnMut(SpeechTransition),
    ) {
        let _ = (input, start_sample, on_transition);
    }
    /// True while speech is confirmed and not yet stopped.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }
    /// Stream time (ms) of the onset of the current speech, while speaking.
    pub fn onset_ms(&self) -> Option<u64> {
        None
    }
    /// Forgets all state.
    pub fn reset(&mut self) {
        self.speaking = false;
    }
}
