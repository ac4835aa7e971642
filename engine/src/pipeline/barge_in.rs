//! Barge-in: caller speech over agent audio, voiced long enough, interrupts the agent.
//!
//! What counts is how long the caller's speech has been *voiced* ([`SpeechDetector::voiced_ms`]:
//! from its first voiced frame to the end of its last), not the time since its onset. Why: speech
//! stays "confirmed" through the VAD hangover (400 ms by default) after it ends, so a 250 ms
//! "mm-hm" would otherwise pass any minimum up to 650 ms; measured on the voiced frames, a
//! backchannel shorter than the minimum never interrupts, however long the hangover.
//!
//! With ducking on ([`BargeInConfig::duck_db`], see `ducking.rs`), the same detector also says
//! when to turn the agent down: while confirmed caller speech with voiced frames in it is being
//! voiced over agent audio and has not yet reached the minimum, and when to turn it back up: once
//! no voiced frame has come for [`RESTORE_AFTER_MS`] (the "mm-hm" is over), or the speech ended.
//!
//! [`SpeechDetector::voiced_ms`]: crate::vad::SpeechDetector::voiced_ms
//! [`BargeInConfig::duck_db`]: crate::config::BargeInConfig::duck_db

use crate::config::BargeInConfig;

/// Stream time without a new voiced frame after which a ducked agent is restored, ms. Why 160:
/// longer than the unvoiced stretches inside a word and between words said in one breath (stop
/// closures, fricatives), so an interruption is not let up mid-word; short enough that a
/// backchannel's dip ends soon after it.
pub const RESTORE_AFTER_MS: u64 = 160;

/// What the caller's speech asks of the agent audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BargeAction {
    /// Nothing changes.
    None,
    /// Turn the agent down: possibly an interruption.
    Duck,
    /// Turn the agent back up: it was not one.
    Restore,
    /// Interrupt: the onset of the speech that did.
    BargeIn(u64),
}

/// Decides when confirmed caller speech should interrupt agent audio (once per speech onset),
/// and when it should duck it meanwhile.
#[derive(Debug)]
pub struct BargeInDetector {
    enabled: bool,
    duck: bool,
    min_speech_ms: u64,
    /// Onset of the speech that last fired (or was seen with the agent silent), to fire once.
    handled_onset: Option<u64>,
    /// Onset of the speech being watched for ducking, its voiced time, and the stream time
    /// (ms) when that last grew.
    watched: Option<(u64, u64, u64)>,
    /// The agent is ducked on this detector's word.
    ducked: bool,
}

impl BargeInDetector {
    /// A detector with the given settings.
    pub fn new(config: &BargeInConfig) -> Self {
        Self {
            enabled: config.enabled,
            duck: config.enabled && config.duck_db > 0,
            min_speech_ms: u64::from(config.min_speech_ms),
            handled_onset: None,
            watched: None,
            ducked: false,
        }
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

    /// [`Self::check`], also deciding the ducking; `now_ms`: the stream time delivered so far.
    pub fn decide(&mut self, onset_ms: Option<u64>, voiced_ms: u64, agent_active: bool, now_ms: u64) -> BargeAction {
        if let Some(onset) = self.check(onset_ms, voiced_ms, agent_active) {
            // The clear that follows drops what was ducked; new audio starts at full level.
            self.ducked = false;
            return BargeAction::BargeIn(onset);
        }
        let voicing = self.duck && agent_active && onset_ms.is_some_and(|onset| {
            if self.handled_onset == Some(onset) {
                return false;
            }
            match &mut self.watched {
                Some((o, v, at)) if *o == onset => {
                    if voiced_ms > *v {
                        (*v, *at) = (voiced_ms, now_ms);
                    }
                }
                w => *w = Some((onset, voiced_ms, now_ms)),
            }
            // Some voiced frame (a cough or typing has none), and a recent one.
            self.watched.is_some_and(|(_, v, at)| v > 0 && now_ms.saturating_sub(at) < RESTORE_AFTER_MS)
        });
        match (voicing, self.ducked) {
            (true, false) => {
                self.ducked = true;
                BargeAction::Duck
            }
            (false, true) => {
                self.ducked = false;
                BargeAction::Restore
            }
            _ => BargeAction::None,
        }
    }

    /// The agent audio was flushed (a barge-in or the host's interrupt): it is not ducked.
    pub fn on_flush(&mut self) {
        self.ducked = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_once_after_the_minimum_voiced_time_only_over_agent_audio() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 200, duck_db: 0 });
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
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 300, duck_db: 0 });
        // A 240 ms "mm-hm": still confirmed for the hangover after it, its voiced time stays put.
        for _ in 0..20 {
            assert_eq!(b.check(Some(1000), 240, true), None);
        }
    }

    fn ducking() -> BargeInDetector {
        BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 300, duck_db: 18 })
    }

    #[test]
    fn a_backchannel_ducks_then_restores_once_its_voicing_stops() {
        let mut b = ducking();
        // Confirmed, but no voiced frame yet: nothing to go on.
        assert_eq!(b.decide(Some(1000), 0, true, 1120), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 20, true, 1140), BargeAction::Duck);
        assert_eq!(b.decide(Some(1000), 200, true, 1300), BargeAction::None);
        // Its voicing stops at 1300; restored 160 ms later, while still confirmed (hangover).
        assert_eq!(b.decide(Some(1000), 200, true, 1440), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 200, true, 1460), BargeAction::Restore);
        assert_eq!(b.decide(Some(1000), 200, true, 1600), BargeAction::None);
        assert_eq!(b.decide(None, 0, true, 1800), BargeAction::None);
    }

    #[test]
    fn an_interruption_ducks_then_barges_in() {
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, true, 1140), BargeAction::Duck);
        assert_eq!(b.decide(Some(1000), 160, true, 1260), BargeAction::None);
        // Resumed voicing after a pause shorter than the restore delay keeps it ducked.
        assert_eq!(b.decide(Some(1000), 280, true, 1400), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 300, true, 1420), BargeAction::BargeIn(1000));
        assert_eq!(b.decide(Some(1000), 400, true, 1520), BargeAction::None);
    }

    #[test]
    fn speech_ending_or_the_agent_going_quiet_restores() {
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, true, 1140), BargeAction::Duck);
        assert_eq!(b.decide(None, 0, true, 1160), BargeAction::Restore);
        assert_eq!(b.decide(Some(2000), 40, true, 2140), BargeAction::Duck);
        assert_eq!(b.decide(Some(2000), 60, false, 2160), BargeAction::Restore);
        // Flushed by the host: no longer ducked; still voicing, so ducked again.
        assert_eq!(b.decide(Some(3000), 40, true, 3140), BargeAction::Duck);
        b.on_flush();
        assert_eq!(b.decide(Some(3000), 60, true, 3160), BargeAction::Duck);
    }

    #[test]
    fn no_ducking_when_off_or_over_silence() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: true, min_speech_ms: 300, duck_db: 0 });
        assert_eq!(b.decide(Some(1000), 40, true, 1140), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 300, true, 1400), BargeAction::BargeIn(1000));
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, false, 1140), BargeAction::None);
    }

    #[test]
    fn can_be_disabled() {
        let mut b = BargeInDetector::new(&BargeInConfig { enabled: false, min_speech_ms: 0, duck_db: 18 });
        assert_eq!(b.check(Some(0), 1000, true), None);
    }
}
