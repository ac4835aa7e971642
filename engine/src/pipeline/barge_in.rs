//! Barge-in: caller speech over agent audio, voiced long enough, interrupts the agent.
//!
//! What counts is how long the caller's speech has been *voiced* ([`SpeechDetector::voiced_ms`]:
//! from its first voiced frame to the end of its last), not the time since its onset. Why: speech
//! stays "confirmed" through the VAD hangover (400 ms by default) after it ends, so a 250 ms
//! "mm-hm" would otherwise pass any minimum up to 650 ms; measured on the voiced frames, a
//! backchannel shorter than the minimum never interrupts, however long the hangover.
//!
//! [`SpeechDetector::voiced_ms`]: crate::vad::SpeechDetector::voiced_ms

use crate::config::BargeInConfig;

/// Decides when confirmed caller speech should interrupt agent audio; fires once per speech onset.
#[derive(Debug)]
pub struct BargeInDetector {
    enabled: bool,
    min_speech_ms: u64,
    /// Onset of the speech that last fired (or was seen with the agent silent), to fire once.
    handled_onset: Option<u64>,
}

impl BargeInDetector {
    /// A detector with the given settings.
    pub fn new(config: &BargeInConfig) -> Self {
        Self { enabled: config.enabled, min_speech_ms: u64::from(config.min_speech_ms), handled_onset: None }
    }

    /// Called as caller audio is delivered. `onset_ms`: onset of the caller's current confirmed
    /// speech, if speaking; `voiced_ms`: how long that speech has been voiced so far;
    /// `agent_active`: agent audio is playing or queued. Returns the onset to report when a
    /// barge-in fires.
    pub fn check(&mut self, onset_ms: Option<u64>, voiced_ms: u64, agent_active: bool) -> Option<u64> {
        let onset = onset_ms?;
        if !self.enabled || self.handled_onset == Some(onset) || voiced_ms < self.min_speech_ms {
            return None;
        }
        if !agent_active {
            // Speech that started while the agent was quiet is a turn, not an interruption;
            // it keeps that status even if the agent starts talking over it.
            self.handled_onset = Some(onset);
            return None;
        }
        self.handled_onset = Some(onset);
        Some(onset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_after_the_minimum_voiced_time_only_over_agent_audio() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 200 });
        assert_eq!(b.check(Some(1000), 150, true), None);
        assert_eq!(b.check(Some(1000), 200, true), Some(1000));
        assert_eq!(b.check(Some(1000), 300, true), None);
        // A new utterance while the agent is quiet: no barge-in, even if the agent starts later.
        assert_eq!(b.check(Some(5000), 300, false), None);
        assert_eq!(b.check(Some(5000), 400, true), None);
        assert_eq!(b.check(None, 0, true), None);
    }

    #[test]
    fn a_short_voiced_burst_in_its_hangover_does_not_fire() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 300 });
        // A 240 ms "mm-hm": still confirmed for the hangover after it, its voiced time stays put.
        for _ in 0..20 {
            assert_eq!(b.check(Some(1000), 240, true), None);
        }
    }

    #[test]
    fn can_be_disabled() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: false, min_speech_ms: 0 });
        assert_eq!(b.check(Some(0), 1000, true), None);
    }
}
