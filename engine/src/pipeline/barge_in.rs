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
//! That delay is the caller's stream time, and the time their media has been missing: when it
//! stops arriving (a network stall, one-way media loss), the stream time stops with it and the
//! detector still holds the speech confirmed, but no voiced frame is coming either.
//!
//! One utterance can reach the detector as two speeches: words apart by a pause longer than the
//! VAD hangover each stop short, e.g. "rear ... left" on a noisy line, where the noise hides the
//! soft edges of each word, so its voiced stretch shrinks (400 → 140 ms measured at 5 dB SNR) and
//! the pause between the voiced stretches grows (380 → 640 ms). With
//! [`BargeInConfig::rejoin_within_ms`] set (800 ms by default), speech over agent audio that
//! stopped short and speech whose first voiced frame follows its last one within that long count
//! as one: the voiced time runs from the first one's first voiced frame, pauses included, as it
//! does inside one speech. A lone backchannel, a cough or typing still never reaches the minimum;
//! two backchannels in a row can. Only speech the noise can have split is joined: speech whose
//! voiced frames stood [`REJOIN_BELOW_SNR_DB`] or more over the line's noise
//! ([`SpeechDetector::voiced_snr_db`]) lost none of its voicing, so when it stops short it was
//! short, and on a quiet line "mm-hm ... yeah" stays two backchannels.
//!
//! In an echo-aware session (spectral backend) one more wait: speech heard through the line's
//! noise whose voicing stopped long enough to let a ducked agent up, and then came back, may
//! barge in only once that new duck has held for [`HOLD_AFTER_RESTORE_MS`]. It tells the agent's
//! own echo from the caller by what the duck does to it: the duck reaches the line, the echo goes
//! under the noise with it, its voicing stops, and the agent is let up again; a caller's voice
//! does not follow the agent's level.
//!
//! [`SpeechDetector::voiced_ms`]: crate::vad::SpeechDetector::voiced_ms
//! [`SpeechDetector::voiced_snr_db`]: crate::vad::SpeechDetector::voiced_snr_db
//! [`BargeInConfig::duck_db`]: crate::config::BargeInConfig::duck_db
//! [`BargeInConfig::rejoin_within_ms`]: crate::config::BargeInConfig::rejoin_within_ms
//! [`RESTORE_AFTER_MS`]: crate::pipeline::barge_in::RESTORE_AFTER_MS
//! [`REJOIN_BELOW_SNR_DB`]: crate::config::REJOIN_BELOW_SNR_DB

use crate::config::{BargeInConfig, REJOIN_BELOW_SNR_DB};

/// Stream time without a new voiced frame after which a ducked agent is restored, ms, and as
/// long without the caller's media (engine time the stream did not keep up with). Why 160:
/// longer than the unvoiced stretches inside a word and between words said in one breath (stop
/// closures, fricatives), so an interruption is not let up mid-word; short enough that a
/// backchannel's dip ends soon after it. Longer, too, than media on a working line lags behind
/// (a frame held for the default 60 ms reorder window behind a lost one, jitter), so that a late
/// frame does not let the agent up either.
pub const RESTORE_AFTER_MS: u64 = 160;

/// Stream time a duck must hold, in an echo-aware session, before speech that had let the ducked
/// agent up during it ([`RESTORE_AFTER_MS`]) and voiced again can barge in, ms, from the frame its
/// voicing came back (the agent is ducked again there). Measured on echoes of the agent 6 dB
/// down that open mid-call in 5 dB pink noise, the gate not yet knowing them: after the agent is
/// let up, its echo voices again and, counted with its first voicing, reached a barge-in. Ducked
/// again, the echo goes from the line once the duck reaches it (the carrier's buffer, the path),
/// its voicing stops, and the agent is let up again before this wait is over. 160 ms caught one
/// such barge-in in eight, 190-260 ms six, 300 ms seven; what it costs is the barge-in's time on
/// interruptions whose voicing the noise broke up (figures in docs/echo-gate-tuning.md), so the
/// least of the plateau is taken, rounded up.
pub const HOLD_AFTER_RESTORE_MS: u32 = 200;

/// Speech whose sound has held one level this long (ms; see
/// [`SpeechDetector::steady_ms`](crate::vad::SpeechDetector::steady_ms)) does not barge in
/// while it holds: a voice moves more with its syllables (on the corpus never so steady for more
/// than 300 ms), a drone or a fan that comes up while the agent talks does not, and is taken for
/// the line's sound a second in, which ends the speech. Under the 300 ms a barge-in needs by
/// default, so a drone never reaches one (with `min_speech_ms` at 240 or less it does, as does
/// a drone whose level rises for long enough to reach 300 ms voiced before it holds); a voice
/// that happens to be that steady waits until it moves (see `holds_while_steady`).
pub const STEADY_HOLDS_MS: u64 = 240;

/// The voiced stretch of one caller speech as the detector saw it, stream ms. Kept in 32 bits
/// (49 days of stream): a session's memory is budgeted to the byte.
#[derive(Debug, Clone, Copy)]
struct Voicing {
    onset: u32,
    /// Its voiced time so far, and from when to when (0, 0 until a voiced frame came).
    voiced_ms: u32,
    first_ms: u32,
    end_ms: u32,
    /// It goes on from the speech before it (see [`BargeInConfig::rejoin_within_ms`]), whose
    /// utterance was first voiced at `joined_from` (a flag and a time: four bytes less than an
    /// `Option<u32>`).
    joined: bool,
    joined_from: u32,
    /// Agent audio played at some point while it lasted.
    over_agent: bool,
    /// Its voiced frames stood [`REJOIN_BELOW_SNR_DB`] or more over the line's noise, as last
    /// measured.
    clear: bool,
}

impl Voicing {
    /// The voiced time of the utterance this speech belongs to, up to its last voiced frame.
    fn utterance_voiced_ms(&self) -> u32 {
        if self.joined && self.voiced_ms > 0 {
            self.end_ms.saturating_sub(self.joined_from)
        } else {
            self.voiced_ms
        }
    }
}

/// How long the watched speech (`BargeInDetector::watched`) has gone without a new voiced
/// frame by stream time `now` and engine time `engine` (ms, wrapping): in its stream time, and
/// the engine time its media was missing besides; `None` before its first voiced frame.
fn unvoiced_for(watched: Option<(u32, u32, u32, u32)>, now: u32, engine: u32) -> Option<(u32, u32)> {
    let (_, voiced, at, at_engine) = watched?;
    let stream_ms = now.saturating_sub(at);
    (voiced > 0).then(|| (stream_ms, engine.wrapping_sub(at_engine).saturating_sub(stream_ms)))
}

/// A stream time or duration in ms as [`Voicing`] keeps it.
fn ms32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

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
    min_speech_ms: u32,
    /// Rejoining split utterances, when on.
    rejoin: Option<Rejoin>,
    /// Onset of the speech that last fired (or was seen with the agent silent), to fire once.
    handled_onset: Option<u32>,
    /// That speech reached the minimum with the agent quiet (a turn, not an interruption), or
    /// the agent went quiet since (the clear after its barge-in): what the agent says next while
    /// it goes on answers it (see [`Answered`]).
    took_turn: bool,
    /// A turn the agent began answering while it was still confirmed (see [`Answered`]).
    answered: Option<Answered>,
    /// Onset of the speech being watched for ducking, its voiced time, and when that last grew:
    /// the stream time and the engine time, ms (the engine's in 32 bits, wrapping: only the time
    /// since is taken, well within 49 days).
    watched: Option<(u32, u32, u32, u32)>,
    /// The agent is ducked on this detector's word.
    ducked: bool,
    /// Barge-ins wait after a restore ([`HOLD_AFTER_RESTORE_MS`]): an echo-aware session's.
    hold_after_restore: bool,
    /// The speech over the agent that let it up, while a barge-in waits for its next duck to hold.
    restored: Option<Restored>,
    /// The speech held because its sound held one level (onset, voiced ms when last so).
    steady: Option<(u32, u32)>,
}

/// Caller speech taken as a turn that the agent began to answer while it was still confirmed: an
/// early end of turn (`end_of_turn`), or a reply started in the hangover. What the caller voices
/// over the answer is judged as a speech of its own, from its first voiced frame over it, so
/// that they can still interrupt an answer that came too soon; the voicing before the answer,
/// and the pause up to it, do not count (an "mm-hm" over the answer stays one).
#[derive(Debug, Clone, Copy)]
struct Answered {
    /// The turn's onset, stream ms.
    onset: u32,
    /// Its voiced time when the agent was first seen, then when it was first voiced over it.
    voiced_at: u32,
    /// Where that first voiced frame over the agent began, stream ms (0: not yet).
    first_ms: u32,
}

/// Speech that let the ducked agent up, on a line whose noise can break its voicing.
#[derive(Debug, Clone, Copy)]
struct Restored {
    /// Its onset and voiced time when the agent was let up, stream ms.
    onset: u32,
    voiced_ms: u32,
    /// When its voicing came back (the agent ducked again), if it has.
    resumed_at: Option<u32>,
}

/// What rejoining follows of the caller's speech (see [`BargeInConfig::rejoin_within_ms`]).
#[derive(Debug)]
struct Rejoin {
    /// Longest pause (ms) between a speech that stopped short and the next for both to count as
    /// one utterance.
    within_ms: u32,
    /// The caller's current speech.
    current: Option<Voicing>,
    /// The last speech that stopped short over agent audio and may be heard as split by the
    /// line's noise: where its utterance was first voiced and where it was last voiced. The
    /// next speech may go on from it.
    stopped_short: Option<(u32, u32)>,
}

impl BargeInDetector {
    /// A detector with the given settings.
    pub fn new(config: &BargeInConfig) -> Self {
        Self {
            enabled: config.enabled,
            duck: config.enabled && config.duck_db > 0,
            min_speech_ms: config.min_speech_ms,
            rejoin: (config.rejoin_within_ms > 0).then_some(Rejoin {
                within_ms: config.rejoin_within_ms,
                current: None,
                stopped_short: None,
            }),
            handled_onset: None,
            took_turn: false,
            answered: None,
            watched: None,
            ducked: false,
            hold_after_restore: false,
            restored: None,
            steady: None,
        }
    }

    /// The same detector, its barge-ins made to wait after a restore
    /// ([`HOLD_AFTER_RESTORE_MS`]) when `on`: for an echo-aware session.
    #[must_use]
    pub fn holding_after_restore(mut self, on: bool) -> Self {
        self.hold_after_restore = on && self.duck;
        self
    }

    /// Called as caller audio is delivered. `onset_ms`: onset of the caller's current confirmed
    /// speech, if speaking; `voiced_ms`: how long that speech has been voiced so far;
    /// `agent_active`: agent audio is playing or queued. Returns the onset to report when a
    /// barge-in fires.
    pub fn check(&mut self, onset_ms: Option<u64>, voiced_ms: u64, agent_active: bool) -> Option<u64> {
        let onset = onset_ms?;
        if !self.enabled
            || self.handled_onset == Some(ms32(onset))
            || voiced_ms < u64::from(self.min_speech_ms)
        {
            return None;
        }
        // Speech that reached the minimum while the agent was quiet is a turn, not an
        // interruption: what it voiced so far never interrupts (see [`Answered`] for what it
        // voices over an answer).
        self.handled_onset = Some(ms32(onset));
        self.took_turn = !agent_active;
        agent_active.then_some(onset)
    }

    /// [`Self::check`], also deciding the ducking; `now_ms`: the stream time delivered so far;
    /// `engine_us`: the engine's clock.
    /// With rejoining on, the voiced time checked is the utterance's: speech that goes on from an
    /// earlier one that stopped short counts from that one's first voiced frame (see
    /// [`BargeInConfig::rejoin_within_ms`]).
    /// `voiced_snr_db`: how clearly that speech's voiced frames stand over the line's noise
    /// ([`SpeechDetector::voiced_snr_db`](crate::vad::SpeechDetector::voiced_snr_db));
    /// `steady_ms`: how long its sound has held one level ([`STEADY_HOLDS_MS`]).
    #[allow(
        clippy::too_many_arguments,
        reason = "each argument is a measure of the speech or the time; the session calls it once a step"
    )]
    pub fn decide(
        &mut self,
        onset_ms: Option<u64>,
        voiced_ms: u64,
        voiced_snr_db: Option<f32>,
        agent_active: bool,
        now_ms: u64,
        engine_us: u64,
        steady_ms: u64,
    ) -> BargeAction {
        if !agent_active && onset_ms.is_some_and(|onset| self.handled_onset == Some(ms32(onset))) {
            // The speech barged in and goes on after the clear: the agent's next words over it
            // are an answer it can interrupt as well.
            self.took_turn = true;
        }
        let (onset_ms, voiced_ms) = self.over_answer(onset_ms, voiced_ms, agent_active, now_ms);
        let handled = self.handled_onset;
        let utterance_ms = match self.rejoin.as_mut() {
            Some(rejoin) => rejoin.follow(onset_ms, voiced_ms, voiced_snr_db, agent_active, now_ms, handled),
            None => voiced_ms,
        };
        let (voiced, now) = (ms32(voiced_ms), ms32(now_ms));
        if self.waits_after_restore(onset_ms.map(ms32), voiced, now, agent_active) {
            // Not yet: the duck since this speech let the agent up has not held.
        } else if self.holds_while_steady(onset_ms.map(ms32), voiced, steady_ms, agent_active) {
            // Not while it sounds like a drone.
        } else if let Some(onset) = self.check(onset_ms, utterance_ms, agent_active) {
            // The clear that follows drops what was ducked; new audio starts at full level.
            self.ducked = false;
            return BargeAction::BargeIn(onset);
        }
        // Truncated on purpose: only differences of it are taken (wrapping).
        let engine = (engine_us / 1_000) as u32;
        let voicing = self.duck
            && onset_ms.map(ms32).is_some_and(|onset| {
                if self.handled_onset == Some(onset) {
                    return false;
                }
                // Followed with the agent quiet too: a reply that starts in the hangover of a
                // short answer ("yes") finds its voicing over, and is not ducked.
                match &mut self.watched {
                    Some((o, v, at, at_engine)) if *o == onset => {
                        if voiced > *v {
                            (*v, *at, *at_engine) = (voiced, now, engine);
                        }
                    }
                    w => *w = Some((onset, voiced, now, engine)),
                }
                if !agent_active {
                    return false;
                }
                // Some voiced frame (a cough or typing has none), and a recent one: recent in the
                // caller's stream time, which the delay is about (a late frame must not let the
                // agent up mid-word). That time stops while no caller media arrives, though, and the
                // agent would stay ducked (its later utterances too) until media resumes; so the
                // time the media has been missing since the voiced frame (engine time the stream
                // did not keep up with) is held to the same delay.
                unvoiced_for(self.watched, now, engine).is_some_and(|(stream_ms, missing_ms)| {
                    u64::from(stream_ms) < RESTORE_AFTER_MS && u64::from(missing_ms) < RESTORE_AFTER_MS
                })
            });
        match (voicing, self.ducked) {
            (true, false) => {
                self.ducked = true;
                BargeAction::Duck
            }
            (false, true) => {
                self.ducked = false;
                // Let up because the speech's voicing stopped, in its own stream time: what an
                // echo ducked with the agent does (not the agent going quiet, the speech ending,
                // or the caller's media going missing). Speech heard clearly over the line's
                // noise keeps its voicing, and the echo gate sees an echo's spectrum there: the
                // wait is for a line whose noise hides both (the clear speech of rejoining; a
                // speech with no measure yet counts as noisy).
                let onset = onset_ms.map(ms32);
                let voicing_stopped = agent_active
                    && self.watched.is_some_and(|(o, ..)| Some(o) == onset)
                    && unvoiced_for(self.watched, now, engine)
                        .is_some_and(|(stream_ms, _)| u64::from(stream_ms) >= RESTORE_AFTER_MS);
                let noisy = voiced_snr_db.is_none_or(|snr| snr < REJOIN_BELOW_SNR_DB);
                if let Some(onset) = onset
                    && self.hold_after_restore
                    && voicing_stopped
                    && noisy
                {
                    self.restored = Some(Restored { onset, voiced_ms: voiced, resumed_at: None });
                }
                BargeAction::Restore
            }
            _ => BargeAction::None,
        }
    }

    /// The speech to judge: the caller's (`onset_ms`, `voiced_ms`), or, for a turn the agent began
    /// answering while it was still confirmed, what was voiced over the answer ([`Answered`]):
    /// nothing until a voiced frame comes, then a speech from that frame on.
    fn over_answer(
        &mut self,
        onset_ms: Option<u64>,
        voiced_ms: u64,
        agent_active: bool,
        now_ms: u64,
    ) -> (Option<u64>, u64) {
        let Some(onset) = onset_ms.map(ms32) else {
            self.answered = None;
            return (None, voiced_ms);
        };
        let voiced = ms32(voiced_ms);
        let a = match &mut self.answered {
            Some(a) if a.onset == onset => a,
            answered => {
                *answered = None;
                if !(agent_active && self.took_turn && self.handled_onset == Some(onset)) {
                    return (onset_ms, voiced_ms);
                }
                answered.insert(Answered { onset, voiced_at: voiced, first_ms: 0 })
            }
        };
        if a.first_ms == 0 {
            if voiced <= a.voiced_at {
                return (None, 0);
            }
            // The voiced frame just seen ended at `now_ms`, to within a frame (as in
            // `waits_after_restore`); never 0, which means not yet.
            a.first_ms = ms32(now_ms).saturating_sub(crate::vad::FRAME_MS).max(1);
            a.voiced_at = voiced;
        }
        (Some(u64::from(a.first_ms)), u64::from(voiced - a.voiced_at + crate::vad::FRAME_MS))
    }

    /// Whether a barge-in of the speech at `onset_ms` (voiced `voiced_ms` by `now_ms`) waits: it
    /// let the ducked agent up, and its voicing has not come back, or came back (ducking the
    /// agent again) less than [`HOLD_AFTER_RESTORE_MS`] ago. Another restore starts the wait
    /// afresh; another speech ends it, even one rejoined to this one (carried over to those,
    /// the wait lost 1-3 interruptions in each noisy row of 48 over the echo and 2-3 of the 48
    /// without echo per noisy line, and kept no echo off); with the agent quiet nothing waits
    /// (the speech is then a turn, as before). Checked before the duck is decided: a wait that
    /// ends as the agent would be let up again lets the barge-in through (waiting for that
    /// restore as well lost 5 of the 384 interruptions over the echo in noise and 2 of the 96
    /// without echo, and kept no echo off).
    fn waits_after_restore(
        &mut self,
        onset_ms: Option<u32>,
        voiced_ms: u32,
        now_ms: u32,
        agent_active: bool,
    ) -> bool {
        let Some(r) = self.restored.as_mut() else { return false };
        if onset_ms != Some(r.onset) {
            self.restored = None;
            return false;
        }
        if !agent_active {
            return false;
        }
        if r.resumed_at.is_none() && voiced_ms > r.voiced_ms {
            // The voiced frame just seen began a frame ago (a message of one 20 ms frame, as
            // carriers send; a message of several makes the wait start late).
            r.resumed_at = Some(now_ms.saturating_sub(crate::vad::FRAME_MS));
        }
        r.resumed_at.is_none_or(|at| now_ms.saturating_sub(at) < HOLD_AFTER_RESTORE_MS)
    }

    /// Whether a barge-in of the speech at `onset_ms` (voiced `voiced_ms`) waits because its
    /// sound has held one level for [`STEADY_HOLDS_MS`] (`steady_ms`), or did and has not moved
    /// off it since. Moved off: it has voiced, since it last held, for more than a frame longer
    /// than its current stretch at one level. A drone broken by a click or a gap in the media
    /// comes back at its level, its stretch starting afresh with its voicing, and goes on
    /// waiting (two frames' margin made a real interruption over an echo wait 137 ms more); a
    /// drone taken for the line's sound a second in voices no more, and waits out its hangover; a
    /// voice moves again within a few frames. With the agent quiet nothing waits (the speech is
    /// a turn).
    fn holds_while_steady(
        &mut self,
        onset_ms: Option<u32>,
        voiced_ms: u32,
        steady_ms: u64,
        agent_active: bool,
    ) -> bool {
        let (Some(onset), true) = (onset_ms, agent_active) else {
            self.steady = None;
            return false;
        };
        if steady_ms >= STEADY_HOLDS_MS {
            self.steady = Some((onset, voiced_ms));
            return true;
        }
        match self.steady {
            Some((o, voiced)) if o == onset => {
                let moved =
                    u64::from(voiced_ms.saturating_sub(voiced)) > steady_ms + u64::from(crate::vad::FRAME_MS);
                if moved {
                    self.steady = None;
                }
                !moved
            }
            _ => {
                self.steady = None;
                false
            }
        }
    }

    /// The agent audio was flushed (a barge-in or the host's interrupt): it is not ducked, and
    /// what the caller said over it is answered.
    pub fn on_flush(&mut self) {
        self.ducked = false;
        self.restored = None;
        if let Some(rejoin) = self.rejoin.as_mut() {
            rejoin.stopped_short = None;
            if let Some(v) = rejoin.current.as_mut() {
                v.over_agent = false;
            }
        }
    }
}

impl Rejoin {
    /// Follows the caller's speech (`now_ms` is when its voiced time was seen to grow, to within
    /// a frame); returns the voiced time of the utterance it belongs to, joined to the speech
    /// that stopped short before it when first voiced at most `within_ms` after that one's last
    /// voiced frame. `handled_onset`: the onset of the speech that last fired or took a turn.
    fn follow(
        &mut self,
        onset_ms: Option<u64>,
        voiced_ms: u64,
        snr_db: Option<f32>,
        agent_active: bool,
        now_ms: u64,
        handled_onset: Option<u32>,
    ) -> u64 {
        let onset_ms = onset_ms.map(ms32);
        if self.current.is_some_and(|v| Some(v.onset) != onset_ms) {
            self.end_speech(handled_onset);
        }
        let within = self.within_ms;
        let Some(onset) = onset_ms else { return 0 };
        let (voiced_ms, now_ms) = (ms32(voiced_ms), ms32(now_ms));
        let stopped_short = self.stopped_short;
        let v = self.current.get_or_insert(Voicing {
            onset,
            voiced_ms: 0,
            first_ms: 0,
            end_ms: 0,
            joined: false,
            joined_from: 0,
            over_agent: false,
            clear: false,
        });
        // Said over the agent: voiced while it played (not a speech whose voicing was over when
        // a reply began in its hangover).
        v.over_agent |= agent_active && voiced_ms > v.voiced_ms;
        if let Some(snr) = snr_db {
            v.clear = snr >= REJOIN_BELOW_SNR_DB;
        }
        if voiced_ms > v.voiced_ms {
            if v.voiced_ms == 0 {
                v.first_ms = now_ms.saturating_sub(voiced_ms);
                if let Some((first, end)) = stopped_short
                    && v.first_ms.saturating_sub(end) <= within
                {
                    (v.joined, v.joined_from) = (true, first);
                }
                self.stopped_short = None;
            }
            (v.voiced_ms, v.end_ms) = (voiced_ms, now_ms);
        }
        u64::from(v.utterance_voiced_ms())
    }

    /// The current speech ended: if it stopped short over agent audio, and the line's noise can
    /// have split it, the next one may go on from it.
    fn end_speech(&mut self, handled_onset: Option<u32>) {
        let Some(v) = self.current.take() else { return };
        let short = v.over_agent && v.voiced_ms > 0 && handled_onset != Some(v.onset);
        // Heard clearly, its voiced time is the whole of it: short speech, not a split one.
        let first = if v.joined { v.joined_from } else { v.first_ms };
        self.stopped_short = (short && !v.clear).then_some((first, v.end_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`BargeInDetector::decide`] on a line whose media arrives in real time: the engine's clock
    /// keeps pace with the stream's.
    fn lockstep(
        b: &mut BargeInDetector,
        onset_ms: Option<u64>,
        voiced_ms: u64,
        snr_db: Option<f32>,
        agent_active: bool,
        now_ms: u64,
    ) -> BargeAction {
        b.decide(onset_ms, voiced_ms, snr_db, agent_active, now_ms, now_ms * 1_000, 0)
    }

    #[test]
    fn fires_once_after_the_minimum_voiced_time_only_over_agent_audio() {
        let mut b = BargeInDetector::new(&BargeInConfig {
            min_speech_ms: 200,
            duck_db: 0,
            ..BargeInConfig::default()
        });
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
        let mut b = BargeInDetector::new(&BargeInConfig {
            min_speech_ms: 300,
            duck_db: 0,
            ..BargeInConfig::default()
        });
        // A 240 ms "mm-hm": still confirmed for the hangover after it, its voiced time stays put.
        for _ in 0..20 {
            assert_eq!(b.check(Some(1000), 240, true), None);
        }
    }

    fn ducking() -> BargeInDetector {
        BargeInDetector::new(&BargeInConfig { min_speech_ms: 300, duck_db: 18, ..BargeInConfig::default() })
    }

    #[test]
    fn a_backchannel_ducks_then_restores_once_its_voicing_stops() {
        let mut b = ducking();
        // Confirmed, but no voiced frame yet: nothing to go on.
        assert_eq!(lockstep(&mut b, Some(1000), 0, None, true, 1120), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 20, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 200, None, true, 1300), BargeAction::None);
        // Its voicing stops at 1300; restored 160 ms later, while still confirmed (hangover).
        assert_eq!(lockstep(&mut b, Some(1000), 200, None, true, 1440), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 200, None, true, 1460), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, Some(1000), 200, None, true, 1600), BargeAction::None);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1800), BargeAction::None);
    }

    #[test]
    fn an_interruption_ducks_then_barges_in() {
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 160, None, true, 1260), BargeAction::None);
        // Resumed voicing after a pause shorter than the restore delay keeps it ducked.
        assert_eq!(lockstep(&mut b, Some(1000), 280, None, true, 1400), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 300, None, true, 1420), BargeAction::BargeIn(1000));
        assert_eq!(lockstep(&mut b, Some(1000), 400, None, true, 1520), BargeAction::None);
    }

    #[test]
    fn speech_that_barged_in_and_talks_on_interrupts_the_next_answer_too() {
        // The caller interrupts, the agent is cleared, the caller pauses briefly (an early end
        // of turn) and the agent answers while the same speech goes on: what the caller voices
        // over that answer ducks it, and interrupts it once voiced the minimum over it. The
        // speech had fired once already, so the answer played on over the caller.
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 300, None, true, 1420), BargeAction::BargeIn(1000));
        b.on_flush();
        assert_eq!(lockstep(&mut b, Some(1000), 500, None, false, 1700), BargeAction::None);
        // The answer starts at 2100; the caller's voicing before it does not count.
        assert_eq!(lockstep(&mut b, Some(1000), 500, None, true, 2100), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 520, None, true, 2120), BargeAction::Duck);
        for k in 1..14 {
            assert_eq!(lockstep(&mut b, Some(1000), 520 + 20 * k, None, true, 2120 + 20 * k), BargeAction::None);
        }
        // 300 ms voiced over the answer, from its first voiced frame at 2100.
        assert_eq!(lockstep(&mut b, Some(1000), 800, None, true, 2400), BargeAction::BargeIn(2100));
    }

    #[test]
    fn speech_ending_or_the_agent_going_quiet_restores() {
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1160), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, Some(2000), 40, None, true, 2140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(2000), 60, None, false, 2160), BargeAction::Restore);
        // Flushed by the host: no longer ducked; still voicing, so ducked again.
        assert_eq!(lockstep(&mut b, Some(3000), 40, None, true, 3140), BargeAction::Duck);
        b.on_flush();
        assert_eq!(lockstep(&mut b, Some(3000), 60, None, true, 3160), BargeAction::Duck);
    }

    #[test]
    fn a_stall_of_the_callers_media_restores_on_the_engine_clock() {
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 5_140_000, 0), BargeAction::Duck);
        // No caller media from here: its stream time stays put, the speech stays confirmed.
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 5_280_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 5_300_000, 0), BargeAction::Restore);
        // The agent goes quiet, then speaks again: not ducked again.
        assert_eq!(b.decide(Some(1000), 40, None, false, 1140, 7_000_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 9_000_000, 0), BargeAction::None);
        // Media resumes with the caller still voicing: ducked again.
        assert_eq!(b.decide(Some(1000), 60, None, true, 1160, 9_020_000, 0), BargeAction::Duck);
        // The engine's clock, kept in 32-bit ms, wraps after 49 days; the delay is unaffected.
        let wrap_us = (u64::from(u32::MAX) + 1) * 1_000;
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, wrap_us - 50_000, 0), BargeAction::Duck);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, wrap_us + 100_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, wrap_us + 110_000, 0), BargeAction::Restore);
    }

    #[test]
    fn late_media_keeps_to_the_stream_time_and_missing_media_counts() {
        let mut b = ducking();
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 1_140_000, 0), BargeAction::Duck);
        // Frames come late (jitter, a gap waited for): 220 ms of engine time without a voiced
        // frame but 80 ms of the caller's, so still ducked; and voiced again in time.
        assert_eq!(b.decide(Some(1000), 40, None, true, 1220, 1_360_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 60, None, true, 1240, 1_370_000, 0), BargeAction::None);
        // 100 ms of unvoiced frames, then no media: restored once it has been missing 160 ms.
        assert_eq!(b.decide(Some(1000), 60, None, true, 1340, 1_470_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 60, None, true, 1340, 1_629_000, 0), BargeAction::None);
        assert_eq!(b.decide(Some(1000), 60, None, true, 1340, 1_630_000, 0), BargeAction::Restore);
    }

    /// Speech over the agent in noise that ducks it, lets it up (voicing stopped from 1200 to
    /// 1360), and voices again at 1440, its span from 1100 then 340 ms: enough to barge in.
    fn let_up_then_voiced_again(b: &mut BargeInDetector, snr_db: Option<f32>) -> BargeAction {
        assert_eq!(lockstep(b, Some(1000), 40, snr_db, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(b, Some(1000), 100, snr_db, true, 1200), BargeAction::None);
        assert_eq!(lockstep(b, Some(1000), 100, snr_db, true, 1340), BargeAction::None);
        assert_eq!(lockstep(b, Some(1000), 100, snr_db, true, 1360), BargeAction::Restore);
        lockstep(b, Some(1000), 340, snr_db, true, 1440)
    }

    #[test]
    fn echo_aware_speech_that_let_the_agent_up_barges_in_once_its_next_duck_holds() {
        let holding = || ducking().holding_after_restore(true);
        // Not echo-aware, or heard clearly over the line's noise: it barges in at once.
        assert_eq!(let_up_then_voiced_again(&mut ducking(), None), BargeAction::BargeIn(1000));
        let clear = Some(REJOIN_BELOW_SNR_DB);
        assert_eq!(let_up_then_voiced_again(&mut holding(), clear), BargeAction::BargeIn(1000));

        // An echo: ducked again at 1440, it goes from the line with the duck and its voicing
        // stops; the agent is let up again before the duck has held 200 ms, and no barge-in.
        let mut b = holding();
        assert_eq!(let_up_then_voiced_again(&mut b, None), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 340, None, true, 1580), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 340, None, true, 1600), BargeAction::Restore);
        // Back again with the agent's level, and gone again: each return waits afresh.
        assert_eq!(lockstep(&mut b, Some(1000), 520, None, true, 1620), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 520, None, true, 1760), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 520, None, true, 1780), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 2000), BargeAction::None);

        // A caller: voiced on through the duck, so it holds; the barge-in comes 200 ms after
        // the frame the voicing came back in (1420), with the speech's onset.
        let mut b = holding();
        assert_eq!(let_up_then_voiced_again(&mut b, Some(5.0)), BargeAction::Duck);
        for now in (1460..1620).step_by(20) {
            assert_eq!(
                lockstep(&mut b, Some(1000), now - 1100, Some(5.0), true, now),
                BargeAction::None,
                "{now}"
            );
        }
        assert_eq!(lockstep(&mut b, Some(1000), 520, Some(5.0), true, 1620), BargeAction::BargeIn(1000));

        // With the agent gone quiet meanwhile, the speech is a turn, as without the wait. The
        // agent back (answering it), what the caller voices over it is a speech of its own,
        // from its first voiced frame over it (1480), and it interrupts the answer once voiced
        // 300 ms.
        let mut b = holding();
        let_up_then_voiced_again(&mut b, None);
        assert_eq!(lockstep(&mut b, Some(1000), 360, None, false, 1460), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, Some(1000), 380, None, true, 1480), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 400, None, true, 1500), BargeAction::Duck);
        for now in (1520..1780).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), now - 1100, None, true, now), BargeAction::None, "{now}");
        }
        assert_eq!(lockstep(&mut b, Some(1000), 680, None, true, 1780), BargeAction::BargeIn(1480));
    }

    #[test]
    fn a_wait_ending_as_the_agent_would_be_let_up_and_a_rejoined_speech_barge_in() {
        // Voiced for one frame after its return (1420-1460): the wait ends at 1620, as the
        // agent would be let up again. The barge-in is checked first, and goes through.
        let mut b = ducking().holding_after_restore(true);
        assert_eq!(let_up_then_voiced_again(&mut b, None), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 360, None, true, 1460), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 360, None, true, 1600), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 360, None, true, 1620), BargeAction::BargeIn(1000));

        // A speech that let the agent up ends; the next, first voiced 600 ms after its last
        // voiced frame, is rejoined to it and barges in on that frame, without the wait.
        let mut b = ducking().holding_after_restore(true);
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1300), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1400), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1700), 20, None, true, 1760), BargeAction::BargeIn(1700));
    }

    #[test]
    fn only_a_voicing_that_stopped_makes_a_barge_in_wait() {
        // Let up because the caller's media went missing (a stall), not because the speech
        // went quiet: the speech back in a burst barges in at once.
        let mut b = ducking().holding_after_restore(true);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 1_140_000, 0), BargeAction::Duck);
        assert_eq!(b.decide(Some(1000), 40, None, true, 1140, 1_300_000, 0), BargeAction::Restore);
        assert_eq!(b.decide(Some(1000), 300, None, true, 1400, 1_400_000, 0), BargeAction::BargeIn(1000));

        // A speech that let the agent up ended before its voicing came back: the next one is
        // judged alone, its barge-in not held (100 ms voiced, a minimum under the wait).
        let quick = BargeInConfig { min_speech_ms: 100, duck_db: 18, ..BargeInConfig::default() };
        let mut b = BargeInDetector::new(&quick).holding_after_restore(true);
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1300), BargeAction::Restore);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1400), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(2000), 40, None, true, 2140), BargeAction::Duck);
        assert_eq!(lockstep(&mut b, Some(2000), 100, None, true, 2200), BargeAction::BargeIn(2000));
    }

    #[test]
    fn a_sound_that_holds_one_level_does_not_barge_in_until_it_moves() {
        let plain = || {
            BargeInDetector::new(&BargeInConfig {
                min_speech_ms: 300,
                duck_db: 0,
                ..BargeInConfig::default()
            })
        };
        // Voiced from 100 ms after its onset, every frame; `steady`: how long its level held.
        let step = |b: &mut BargeInDetector, onset: u64, voiced: u64, steady: u64| {
            let now = onset + 100 + voiced;
            b.decide(Some(onset), voiced, None, true, now, now * 1_000, steady)
        };
        // A drone: as steady as it is long, for a second; then taken for the line's sound, no
        // longer steady but confirmed for the hangover, voiced no more. No barge-in.
        let mut b = plain();
        for v in (20..=1_000).step_by(20) {
            assert_eq!(step(&mut b, 1_000, v, v - 20), BargeAction::None, "{v}");
        }
        for _ in 0..20 {
            assert_eq!(step(&mut b, 1_000, 1_000, 0), BargeAction::None);
        }
        // A drone broken by a click: its stretch starts afresh with its voicing, at the same
        // level, and it goes on waiting until it holds again.
        let mut b = plain();
        assert_eq!(step(&mut b, 3_000, 300, 280), BargeAction::None);
        for v in (320..=540).step_by(20) {
            assert_eq!(step(&mut b, 3_000, v, v - 320), BargeAction::None, "{v}");
        }
        assert_eq!(step(&mut b, 3_000, 560, STEADY_HOLDS_MS), BargeAction::None);
        // A voice that happened to hold its level 260 ms when it reached 300: it barges in once
        // it has moved off it and off the next level, here three frames later.
        let mut b = plain();
        assert_eq!(step(&mut b, 5_000, 300, 260), BargeAction::None);
        assert_eq!(step(&mut b, 5_000, 320, 0), BargeAction::None);
        assert_eq!(step(&mut b, 5_000, 340, 20), BargeAction::None);
        assert_eq!(step(&mut b, 5_000, 360, 0), BargeAction::BargeIn(5_000));
        // Speech that reached the minimum while the agent was quiet is a turn, steady or not:
        // with the agent back, only what it voices over the agent counts (from 6_420 here),
        // 280 ms of it by 6_700: no barge-in.
        let mut b = plain();
        let now = 6_400;
        assert_eq!(b.decide(Some(6_000), 300, None, false, now, now * 1_000, 280), BargeAction::None);
        for v in (320..=600).step_by(20) {
            let now = 6_100 + v;
            assert_eq!(b.decide(Some(6_000), v, None, true, now, now * 1_000, 0), BargeAction::None, "{v}");
        }
        // Steady for less than the hold: at once, as without it.
        assert_eq!(step(&mut plain(), 7_000, 300, STEADY_HOLDS_MS - 20), BargeAction::BargeIn(7_000));
        // A new speech is judged alone.
        let mut b = plain();
        assert_eq!(step(&mut b, 1_000, 300, 280), BargeAction::None);
        assert_eq!(step(&mut b, 9_000, 300, 0), BargeAction::BargeIn(9_000));
    }

    #[test]
    fn a_turn_answered_in_its_hangover_can_still_be_interrupted_by_what_is_voiced_over_the_answer() {
        // The caller says 460 ms (voiced 1040-1500) and pauses; an early end of turn, and the
        // agent answers from 1600, the speech still confirmed (hangover).
        let mut b = ducking();
        for v in (20..=460).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), v, None, false, 1040 + v), BargeAction::None);
        }
        for now in (1520..=1600).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), 460, None, now >= 1600, now), BargeAction::None, "{now}");
        }
        // The pause before the answer does not count; the caller goes on from 1800 (in the same
        // speech): ducked at its first voiced frame, an interruption once voiced 300 ms over it,
        // reported from that frame.
        assert_eq!(lockstep(&mut b, Some(1000), 460, None, true, 1780), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 780, None, true, 1820), BargeAction::Duck);
        for now in (1840..2100).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), now - 1040, None, true, now), BargeAction::None, "{now}");
        }
        assert_eq!(lockstep(&mut b, Some(1000), 1060, None, true, 2100), BargeAction::BargeIn(1800));
        assert_eq!(lockstep(&mut b, Some(1000), 1160, None, true, 2200), BargeAction::None);

        // An "mm-hm" over the answer (voiced 200 ms) is one: ducked, then let up, never a barge-in.
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 460, None, false, 1500), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 460, None, true, 1600), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 480, None, true, 1720), BargeAction::Duck);
        for now in (1740..=1900).step_by(20) {
            let voiced = (now - 1240).min(660);
            let action = lockstep(&mut b, Some(1000), voiced, None, true, now);
            assert_ne!(action, BargeAction::BargeIn(1700), "{now}");
        }
        assert_eq!(lockstep(&mut b, Some(1000), 660, None, true, 2060), BargeAction::Restore);
        // Nothing voiced over the answer: nothing to judge.
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 460, None, false, 1500), BargeAction::None);
        for now in (1600..2000).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), 460, None, true, now), BargeAction::None, "{now}");
        }
    }

    #[test]
    fn a_reply_that_starts_after_a_short_answers_voicing_is_not_ducked() {
        // "Yes": voiced 180 ms (1060-1240), under the minimum; the agent starts at 1420 while
        // the speech is still confirmed. Its voicing ended 180 ms before: nothing to duck for.
        let mut b = ducking();
        for v in (20..=180).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), v, None, false, 1060 + v), BargeAction::None);
        }
        assert_eq!(lockstep(&mut b, Some(1000), 180, None, false, 1400), BargeAction::None);
        for now in (1420..1700).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), 180, None, true, now), BargeAction::None, "{now}");
        }
    }

    #[test]
    fn a_short_answer_the_agent_began_after_is_not_rejoined_as_said_over_it() {
        // "Yes" voiced 1040-1240 with the agent quiet; the agent starts at 1420, in its hangover;
        // the speech stops at 1660. A backchannel at 1900 is judged alone: not joined to it.
        let mut b = rejoining();
        for v in (20..=200).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1000), v, None, false, 1040 + v), BargeAction::None);
        }
        assert_eq!(lockstep(&mut b, Some(1000), 200, None, true, 1420), BargeAction::None);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1660), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1900), 20, None, true, 1960), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1900), 200, None, true, 2140), BargeAction::None);
    }

    #[test]
    fn no_ducking_when_off_or_over_silence() {
        let mut b = BargeInDetector::new(&BargeInConfig {
            min_speech_ms: 300,
            duck_db: 0,
            ..BargeInConfig::default()
        });
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, true, 1140), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1000), 300, None, true, 1400), BargeAction::BargeIn(1000));
        let mut b = ducking();
        assert_eq!(lockstep(&mut b, Some(1000), 40, None, false, 1140), BargeAction::None);
    }

    /// Rejoining on, at the default pause.
    fn rejoining() -> BargeInDetector {
        let within = crate::config::RECOMMENDED_REJOIN_WITHIN_MS;
        BargeInDetector::new(&BargeInConfig {
            min_speech_ms: 300,
            duck_db: 0,
            rejoin_within_ms: within,
            ..BargeInConfig::default()
        })
    }

    /// A short speech over agent audio: voiced from `first` for `voiced` ms, then stopped.
    fn short_speech(b: &mut BargeInDetector, onset: u64, first: u64, voiced: u64, agent: bool) {
        heard_speech(b, onset, first, voiced, agent, None);
    }

    /// [`short_speech`] whose voiced frames stood `snr_db` over the line's noise.
    fn heard_speech(
        b: &mut BargeInDetector,
        onset: u64,
        first: u64,
        voiced: u64,
        agent: bool,
        snr_db: Option<f32>,
    ) {
        for v in (20..=voiced).step_by(20) {
            assert_eq!(lockstep(b, Some(onset), v, snr_db, agent, first + v), BargeAction::None);
        }
        assert_eq!(lockstep(b, None, 0, None, agent, first + voiced + 560), BargeAction::None);
    }

    #[test]
    fn words_split_by_a_pause_longer_than_the_hangover_are_one_interruption() {
        let mut b = rejoining();
        // "Rear" (120 ms voiced from 1040), stopped; "left" voiced from 1740: 580 ms later.
        short_speech(&mut b, 1000, 1040, 120, true);
        assert_eq!(lockstep(&mut b, Some(1700), 0, None, true, 1740), BargeAction::None);
        // Voiced from 1040 to 1760 with the pause: the utterance's 720 ms reach the minimum.
        assert_eq!(lockstep(&mut b, Some(1700), 20, None, true, 1760), BargeAction::BargeIn(1700));
        assert_eq!(lockstep(&mut b, Some(1700), 100, None, true, 1840), BargeAction::None);
    }

    #[test]
    fn speech_heard_clearly_is_short_not_split() {
        // "Rear ... left" on a noisy line (the first word 8 dB over the noise): one utterance.
        let mut b = rejoining();
        heard_speech(&mut b, 1000, 1040, 120, true, Some(8.0));
        assert_eq!(lockstep(&mut b, Some(1700), 20, Some(8.0), true, 1760), BargeAction::BargeIn(1700));
        // "Mm-hm ... yeah" on a quiet line: the first stood clear of the noise and stopped short,
        // so it was a short speech, and the second is judged alone.
        let mut b = rejoining();
        let clear = Some(crate::config::REJOIN_BELOW_SNR_DB);
        heard_speech(&mut b, 1000, 1040, 120, true, clear);
        for v in (20..=280).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1700), v, clear, true, 1740 + v), BargeAction::None);
        }
    }

    #[test]
    fn rejoining_off_takes_each_speech_alone() {
        let mut b = BargeInDetector::new(&BargeInConfig {
            duck_db: 0,
            rejoin_within_ms: 0,
            ..BargeInConfig::default()
        });
        // The same "rear ... left" as above: each word on its own stops short of the minimum.
        short_speech(&mut b, 1000, 1040, 120, true);
        assert_eq!(lockstep(&mut b, Some(1700), 0, None, true, 1740), BargeAction::None);
        for v in (20..=280).step_by(20) {
            assert_eq!(lockstep(&mut b, Some(1700), v, None, true, 1740 + v), BargeAction::None);
        }
        // Its own voiced time alone decides.
        assert_eq!(lockstep(&mut b, Some(1700), 300, None, true, 2040), BargeAction::BargeIn(1700));
    }

    #[test]
    fn speech_further_apart_or_not_over_the_agent_is_not_joined() {
        // The next voiced frame comes later than `rejoin_within_ms` after the last: apart.
        let mut b = rejoining();
        short_speech(&mut b, 1000, 1040, 200, true);
        let first = 1240 + u64::from(crate::config::RECOMMENDED_REJOIN_WITHIN_MS) + 20;
        assert_eq!(lockstep(&mut b, Some(first - 40), 20, None, true, first + 20), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(first - 40), 200, None, true, first + 200), BargeAction::None);
        // The earlier speech was said while the agent was quiet: a turn of its own.
        let mut b = rejoining();
        short_speech(&mut b, 1000, 1040, 200, false);
        assert_eq!(lockstep(&mut b, Some(1500), 20, None, true, 1560), BargeAction::None);
        // It already barged in, or the host interrupted the agent after it: answered.
        let mut b = rejoining();
        assert_eq!(lockstep(&mut b, Some(1000), 300, None, true, 1340), BargeAction::BargeIn(1000));
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1800), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1900), 20, None, true, 1960), BargeAction::None);
        let mut b = rejoining();
        short_speech(&mut b, 1000, 1040, 200, true);
        b.on_flush();
        assert_eq!(lockstep(&mut b, Some(1500), 20, None, true, 1560), BargeAction::None);
        // A speech without a voiced frame (a cough) leaves nothing to go on from.
        let mut b = rejoining();
        assert_eq!(lockstep(&mut b, Some(1000), 0, None, true, 1200), BargeAction::None);
        assert_eq!(lockstep(&mut b, None, 0, None, true, 1600), BargeAction::None);
        assert_eq!(lockstep(&mut b, Some(1700), 200, None, true, 1900), BargeAction::None);
    }

    #[test]
    fn can_be_disabled() {
        let mut b = BargeInDetector::new(&BargeInConfig {
            enabled: false,
            min_speech_ms: 0,
            duck_db: 18,
            ..BargeInConfig::default()
        });
        assert_eq!(b.check(Some(0), 1000, true), None);
    }
}
