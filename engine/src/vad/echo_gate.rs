//! Echo gate: keeps the bot's own voice, echoed back on the caller's line, from counting as the
//! caller's speech.
//!
//! On speakerphones and lines with hybrid echo the caller's track carries the agent's audio back,
//! 6-25 dB down (the echo return loss, ERL), 20-400 ms after the carrier plays it, with a decaying
//! tail of up to 100 ms. The engine knows what it sent and, from its playout model, when the
//! carrier plays each frame (give or take the carrier's own playout delay). So the gate keeps, per
//! 20 ms slot of the caller's stream time, the energy of the played audio in [`GATE_BANDS`] bands
//! of ~400 Hz (the spectral classifier's bands in pairs, from the same FFT).
//! For each caller frame it predicts the echo energy per band as the loudest reference over the
//! slots the echo comes from, times the band's echo gain. A band no louder than the line's noise
//! plus that prediction (with [`MARGIN_DB`]) is taken as echo: the classifier treats it as line
//! noise (no band SNR, flat in the harmonicity measure, and the noise floor does not learn from
//! it). A caller talking over the echo is louder than their own echo would be, typically by the
//! ERL itself, so their bands stay, and speech over the echo is still detected. The gate decides;
//! it never changes the caller audio the host reads.
//!
//! Which slots: the echo's delay behind the reference (the carrier's playout delay plus the
//! path's) is estimated by correlating the two level envelopes ([`super::echo_delay`]). Once the
//! estimate is trusted, the echo is predicted from a slot before it to two after it; until then
//! (the first ~0.8 s of agent audio on a call, or while the correlation is weak) from the whole
//! window, delays 0 to [`WINDOW_SLOTS`] slots (400 ms of path, 100 ms of tail and up to about
//! 140 ms of carrier playout delay), which masks the caller's speech for up to 0.6 s after a loud
//! stretch of the agent. Why not a sample-domain canceller (NLMS, frequency-domain): the echo is
//! µ-law re-quantised and possibly clipped, the reference's timing is known only to a few ms, and
//! a 500 ms filter costs far more than the 10 µs per frame allowed; the gate needs only to tell
//! whose a band is, not to remove the echo.
//!
//! Why the reference is placed by the playout model without the lag the carrier's mark echoes
//! measure: that correction comes in steps (at each mark echo, on the 20 ms grid), and each step
//! would move the echo's lag under the estimator; uncorrected, the lag holds still and takes in
//! the carrier's delay. (Measured: with the correction, interruptions over a 10 dB echo were
//! pre-empted by barge-ins on the echo in 6 of 48 calls; without, none.)
//!
//! The echo gain per band starts at the worst return loss handled ([`START_GAIN_DB`], ERL 6 dB:
//! nothing of a louder echo passes) and tracks a high quantile (97 %) of (caller band energy −
//! loudest reference) over the frames that look like echo (no more than a few dB above the
//! threshold) where the predicted echo stands above the line's noise, or the caller's band does
//! where the bounds below allow an echo as loud ([`LEARN_ABOVE_NOISE_DB`]): once the delay is known its
//! first frames step down fast (a caller may interrupt within the first seconds of a prompt),
//! later ones slowly, and an echo louder than predicted raises it at once.
//!
//! The gain learns only where the echo stands above the line's noise, so on a line without echo
//! (or in noise) it would stay at its start and mask soft speech over the agent. A second
//! estimate bounds it from the other side: per lag, the most the echo's gain can be, learnt from
//! the frames where the reference at that lag (and its neighbours) was loud and the caller's line
//! was not (what stands above the noise bounds what an echo could have put there). It steps down
//! fast (a line without echo is learnt within a second of agent audio), except at the lags where
//! the delay estimator finds the echo, and up slowly, only for frames near it (or, where the
//! estimator is sure of the echo, however far under the frame: [`CLIMB_CONFIDENCE`]). On a noisy line
//! each band bounds it too (see [`EchoGate::learn_bounds`]). The prediction is the learnt gain on
//! the loudest reference but never more than the bounds allow, and an echo predicted under the
//! noise explains nothing.
//!
//! An echo that starts mid-call (a caller switching to speakerphone) meets bounds learnt on a
//! line without echo, far under it, and a gain learnt down: to both the new echo is the caller,
//! and the bounds rise only for frames near them until the delay estimator is sure of its lag
//! (a second or two; in noise, where the match rarely sees the echo, the only way they rise).
//! The echo match ([`super::echo_match`]) recognises it
//! by its spectrum within a few frames of its start: where it confirms an echo at a lag whose
//! bounds lie more than [`MATCH_EXPLAINED_DB`] under its measured level, they are raised to that
//! level plus [`MATCH_SLACK_DB`] (never past [`START_GAIN_DB`]). If that includes the echo's own
//! two slots, the echo is new to the gate: the gains under it are raised too and learn afresh,
//! and for a second bands must stand [`FRESH_MARGIN_DB`] more over the prediction to count as the
//! caller's, since speech may already have started on the echo's first frames and any frame of
//! it that slips through would carry that speech on to a barge-in; and the speech detector ends
//! the speech it has heard so far (see [`EchoGate::take_recognised`]), so what the caller says
//! over the echo from then on counts from its own first frame. Those two only if the gate let
//! some of the matched frames through (else the detector heard nothing of them, and a caller
//! starting next would meet the wider margin). An echo the bounds already follow keeps its
//! gains: one match can read it a few dB high. A match louder than [`LOUDEST_MATCH_DB`] is
//! not an echo handled, and is ignored. While the match has, in its last few frames, confirmed
//! an echo or found a fit that would be an echo new to the gate, the gate says so
//! ([`EchoGate::suspects_echo`]): speech confirmed then may be the echo's first frames, and the
//! speech detector holds its start back until the match confirms the echo (the speech is then
//! dropped unreported) or the suspicion lapses.
//!
//! Measured (`engine/tests/integration/echo_barge_in.rs`, docs/speech.md): no false barge-in or
//! speech start on an echo present from the start, in 10 min of agent audio per line and ERL
//! (6-25 dB; quiet, 5 dB pink noise, noise + hum + clicks); interruptions over a 6-10 dB echo on
//! a quiet line barge in at 0.94-0.96 recall; an echo that opens mid-call: none on a quiet line
//! (26 calls per ERL), but at ERL 6 dB in 5 dB noise its first onsets start speech 3-4 times in
//! 26 calls (4.8 and 6.3 per 10 min of agent audio after it opens), and barge in three times in
//! pink noise.
//! It is a setting (`VadConfig::echo_aware`), off by
//! default: on a quiet line without echo it changes nothing, but in noise it still masks some
//! soft speech over the agent (the barge-in set's recall in 5 dB pink noise falls from 0.958 to
//! 0.833).
//!
//! Cost: one 512-point real FFT per frame sent (the reference's bands) and, per caller frame
//! while the window holds reference audio, the delay estimator's and the bounds' [`LAGS`] steps
//! (on a noisy line, [`LAGS`] × [`GATE_BANDS`] for the bands' bounds),
//! the echo match's comparison and a max over at most [`WINDOW_SLOTS`] × [`GATE_BANDS`] bytes.
//! Once the bot has been silent for the window, one comparison. State: [`SLOTS`] ×
//! [`GATE_BANDS`] bytes of band energies (1 dB steps), a byte of bound per lag, the estimator's
//! 16-bit sums, the match's last frames and a few numbers (600 bytes,
//! within what a running default call leaves of its 128 KiB); no sample history.

use super::echo_delay::{EchoDelay, Estimate, LAGS};
use super::echo_match::{CONFIRM_WITHIN, EchoMatch, FRAMES, Match, USABLE_ABOVE_NOISE_DB, Verdict};

/// Bands of the gate (each two of the spectral classifier's ~200 Hz bands).
pub(crate) const GATE_BANDS: usize = 8;
/// Slots of reference kept (40 × 20 ms): the window behind the caller's frame plus what the
/// pacer has sent ahead of it (its lead, 100 ms by default: up to 160 ms is held; with more,
/// the window's oldest slots are lost first).
const SLOTS: usize = 40;
/// [`EchoGate::newest`] when no slot is held.
const NO_SLOT: u32 = u32::MAX;
/// Samples per slot (20 ms at 8 kHz).
pub(crate) const SLOT_SAMPLES: u64 = 160;
/// Slots a caller frame's echo may come from, back from its own: 0-640 ms (path delay up to
/// 400 ms, tail up to 100 ms, and about 140 ms for the carrier's playout delay, which the
/// reference's placement leaves out, and the slot grid).
pub(crate) const WINDOW_SLOTS: u64 = LAGS as u64;
/// Once the delay is known, the lags the echo is predicted from: a slot before it (the estimate's
/// error) to two after it. The estimate sits at the echo's energy centroid, tail included; the
/// rest of a 100 ms tail is more than 10 dB down. (Measured: up to five after it masked more of
/// the caller, ERL 10 dB quiet recall 0.83 against 0.94, with no fewer false starts.)
const LAGS_BEFORE: u64 = 1;
const LAGS_AFTER: u64 = 2;
/// Echo gain assumed before any is measured, and the most it may be: ERL 6 dB.
pub(crate) const START_GAIN_DB: f32 = -6.0;
/// The least echo gain tracked (an echo 45 dB down is lost in any line's noise).
const MIN_GAIN_DB: f32 = -45.0;
/// A band counts as the caller's only this far above the predicted echo. (Measured: at 3 dB a
/// near-pure reflection at ERL 6 dB, whose level the cap on the gain holds, started speech about
/// twice per 10 min of agent audio on a quiet line; at 4 dB none did.)
pub(crate) const MARGIN_DB: f32 = 4.0;
/// The gain's steps per frame taken as echo: down when the band is quieter than the gain
/// predicts, up when louder; it settles at the UP / (UP + DOWN) quantile (97 %) of the ratio of
/// the caller's band to the loudest reference. Why so high a quantile: the window's loudest
/// reference is often well above the one that made the echo; the frames where it is the same
/// give the echo's true level.
const GAIN_DOWN_DB: f32 = 0.03;
const GAIN_UP_DB: f32 = 1.0;
/// The first frames a band learns from step down faster, so that a quieter echo is learnt
/// within the first second of the agent speaking (a caller may interrupt that early); the up
/// steps put back what they overshoot.
const FAST_DOWN_DB: f32 = 0.15;
const FAST_FRAMES: u8 = 40;
/// Bands up to this far above the masking threshold still teach the gain: an echo somewhat
/// louder than predicted raises it, speech well above it does not.
const LEARN_ABOVE_THRESHOLD_DB: f32 = 6.0;
/// The gain learns only where an echo could be seen: where the echo it predicts stands this far
/// above the line's noise, or where the caller's band does and the bounds allow an echo that
/// loud. Why the second: a gain learnt low (on the line before an echo opened) predicts every
/// later echo under the noise, and by the first rule alone would never learn again; the echo
/// then passes for the caller wherever it stands near the noise. (Measured, `vadbench --echo`,
/// an echo opening mid-call at ERL 6 dB: in 5 dB pink noise false barge-ins per 10 min 8.0 →
/// 3.2 and false starts 27 → 4.7, with hum and clicks 4.8 → 0 and 21 → 6.3; on the lines without
/// echo the bounds lie under the noise, and the barge-in set did not change. Its cost: a gain
/// that knows the echo's level masks more of a soft caller over it in noise, interruptions over
/// the echo 0.02-0.04 fewer in four of the eight noisy rows.)
const LEARN_ABOVE_NOISE_DB: f32 = 6.0;
/// Units of the stored gain, dB (its steps are whole units).
const GAIN_UNIT_DB: f32 = 0.01;
/// How fast the stream clock offset may rise per reference frame, µs: follows a carrier clock
/// slower than the engine's (its minimum is taken otherwise, see [`EchoGate::sample_of`]).
const OFFSET_CREEP_US: i64 = 20;
/// The echo bound per lag (see [`EchoGate::mask`]): units of the stored bound below
/// [`START_GAIN_DB`], dB, and its lowest value.
const BOUND_UNIT_DB: f32 = 0.5;
const MIN_BOUND_DB: f32 = -60.0;
/// Caller energy this far under the line's noise cannot be seen: a frame at the noise bounds the
/// echo in it by the noise less this.
const HIDDEN_DB: f32 = 20.0;
/// Allowance of the bound for what the slot grid, clipping and the two analyses blur (a slot's
/// echo split between two caller frames, 3 dB each; clipped, 2.4 dB). (Measured: at 6 dB the
/// bound at the echo's own lag fell below it now and then, and a 6-10 dB echo on a quiet line
/// started speech 4-13 times per 10 min; at 9 dB none did.)
const BOUND_SLACK_DB: f32 = 9.0;
/// A caller frame this far under the line's noise floor bounds the echo by its own level (see
/// [`EchoGate::learn_bounds`]). (Measured: on a digitally silent line the echo of the agent's
/// quiet stretches lies 1-4 dB under the floor, and taking it for noise pulled the bound at the
/// echo's own lag 12 dB under the echo: the echo of the next loud word started speech.)
const UNDER_FLOOR_DB: f32 = 1.5;
/// An estimated delay whose bounds allow no echo louder than this (dB under the reference) is
/// contradicted by them, and the prediction takes the whole window (with its bounds) instead.
const CONTRADICTED_DB: f32 = -26.0;
/// Steps of the bound per frame: down by up to this at once (a line without echo is learnt in a
/// few frames of agent audio), up slowly, and only for a frame whose level is near it (an echo
/// somewhat louder than bounded; not the caller talking over the agent).
const BOUND_DOWN_DB: f32 = 6.0;
/// Down by no more than this per frame at the lags where the delay estimator finds the echo (its
/// slot and the tail's): there the echo's presence is measured, and a frame that contradicts it
/// is more likely the reference placed a slot off (in real time the playout model places it to a
/// few ms, and an edge of the agent's speech then falls on the wrong side of a slot) than the echo
/// gone. (Measured: on a digitally silent line over the offload server, single such frames pulled
/// the bounds at the echo's lags from -12 to -18 dB, under the echo, which then started speech in
/// about half of the runs.)
const BOUND_DOWN_NEAR_DB: f32 = 0.5;
/// Where a frame bounds the echo at a lag only loosely by its total level (the line's noise
/// within [`BAND_EVIDENCE_ABOVE_DB`] of the agent's level there, slack included: a noisy
/// line), each band bounds it too, and the tightest band may lower that bound by up to
/// [`BAND_TIGHTER_DB`] (see [`EchoGate::learn_bounds`]).
const BAND_EVIDENCE_ABOVE_DB: f32 = -15.0;
const BAND_TIGHTER_DB: f32 = 6.0;
const BOUND_UP_DB: f32 = 0.5;
const BOUND_UP_WITHIN_DB: f32 = 10.0;
/// At the lags where the delay estimator finds the echo with at least this correlation, a bound
/// the frame stands more than [`BOUND_UP_WITHIN_DB`] over still rises (by [`CLIMB_UP_DB`]): the
/// estimator has measured an echo there that the bound rules out, so the bound is what is
/// wrong. An echo that opens mid-call in noise meets bounds learnt on the line without it, and
/// where the match cannot see its spectrum, nothing else raises them. (Measured, `vadbench
/// --echo`, ERL 6 dB mid-call in 5 dB pink noise: with the bound at the echo's own lag stuck
/// 10 dB under it while the estimate held that lag at 0.6-0.7, half the calls that barged in
/// did so again seconds later; climbing from 0.6, false barge-ins per 10 min 18.5 → 8.0, none
/// more than 2.1 s after the path opened. From 0.5: 11.5, and one more in the mix; from 0.35 the
/// barge-in set's recall in pink noise without echo fell from 0.854 to 0.812; from 0.7, 11.4.
/// Measured again once the bounds climbed 1 dB per frame and the match judged three bands per
/// frame in noise: from 0.45, that row's false starts / barge-ins went 4.7 / 1.6 → 0 / 0 and the
/// mix's false starts 4.7 → 3.1, but an interruption without echo was lost in pink noise and
/// four over the echo in the noisy rows; from 0.5, fewer gone and three lost; from 0.55, fewer still and one lost. A
/// caller's onset over the agent in that noise locks the estimator on a lag of chance at 0.4-0.6
/// for a second, as high as a new echo there reaches, and holds that lag as steadily.)
const CLIMB_CONFIDENCE: f32 = 0.6;
/// Frames after a match, or a loose fit new to the gate, in which speech that starts is suspect
/// of being the echo (see [`EchoGate::suspects_echo`]). After a close fit the suspicion lasts as
/// long as the fits to come may confirm it, [`CONFIRM_WITHIN`] frames: a 10 dB echo with a long
/// tail fit closely in its first frames and was confirmed seven frames later, after its start
/// had been reported. (Measured, `vadbench --echo`: that last false start mid-call on a quiet line
/// went; the interruptions over the echo on a quiet line held 26 starts instead of 16, each
/// barge-in unmoved. Every fit suspect for 6 frames: held 61; for 9: 101.)
const SUSPECT_FRAMES: u64 = 5;
/// How far such a bound rises per frame, dB: twice [`BOUND_UP_DB`], since the estimator has
/// already vouched for the echo there. (Measured, `vadbench --echo`, ERL 6 dB mid-call in 5 dB
/// pink noise: false barge-ins per 10 min 3.2 → 1.6, no interruption over the echo lost; rising
/// 2 dB per frame, the same there and 4.7 false starts instead of 6.3 with hum and clicks, but
/// one interruption in 48 lost in pink noise at ERL 15 dB.)
const CLIMB_UP_DB: f32 = 1.0;
/// What a confirmed echo match allows above the gain it measured, dB: the match measures the echo
/// against two slots' energies together where it falls between them (up to 3 dB more than the
/// one slot the prediction takes), and the gain's quantile sits over the echo's typical level.
const MATCH_SLACK_DB: f32 = 6.0;
/// The loudest echo a match may measure, dB: no echo handled is louder than [`START_GAIN_DB`],
/// and a match over it is a caller's voice over the agent or the echo of a louder slot seen
/// against a quiet one. (Measured, mid-call echo at ERL 6 dB on a quiet line: 99 % of confirmed
/// matches at -4.3 dB or under; a caller's voice in 5 dB pink noise matched at -2.8 dB, and its
/// interruption was lost.)
const LOUDEST_MATCH_DB: f32 = START_GAIN_DB + 3.0;
/// A bound or gain within this of a match's measured echo already explains it.
const MATCH_EXPLAINED_DB: f32 = 3.0;
/// For this many frames after a match raised the gate's estimates, bands must stand
/// [`FRESH_MARGIN_DB`] more over the predicted echo to count as the caller's: the echo had
/// passed for the caller until then, so speech may have started on it, and any frame of it that
/// slips through now (a band a few dB over a prediction not yet learnt) would carry that speech
/// on to a barge-in. The gain then also learns from bands up to that much louder, which lets it
/// rise to the new echo sooner.
const FRESH_FRAMES: u8 = 50;
const FRESH_MARGIN_DB: f32 = 6.0;

/// The lags an echo at `lag` reaches: its slot, the one before and the tail's after it, within
/// the window.
fn around(lag: u64) -> std::ops::RangeInclusive<u64> {
    lag.saturating_sub(LAGS_BEFORE)..=(lag + LAGS_AFTER).min(WINDOW_SLOTS - 1)
}

/// The least of `at` over a lag and its two neighbours (within the window): a slot's echo may
/// fall half into the next caller frame, so an edge of the agent's speech is no evidence.
fn least_around(lag: usize, at: impl Fn(usize) -> u8) -> u8 {
    at(lag).min(at(lag.saturating_sub(1))).min(at((lag + 1).min(LAGS - 1)))
}

/// A caller frame and the line's noise floor under it, per gate band and in total (dB).
struct Line<'a> {
    caller: &'a [f32; GATE_BANDS],
    noise: &'a [f32; GATE_BANDS],
    caller_total: f32,
    noise_total: f32,
    /// The floor is at the classifier's minimum (see [`EchoGate::mask`]).
    floor_at_minimum: bool,
}

impl Line<'_> {
    /// Whether the line's noise stands near the agent's loudest level in the window (`levels`,
    /// the reference's totals per lag): as near as where the bounds take each band's evidence
    /// ([`BAND_EVIDENCE_ABOVE_DB`], slack included). There an echo stands over the noise in few
    /// bands, and the echo match counts bands closer to the noise.
    fn is_noisy(&self, levels: &[u8; LAGS]) -> bool {
        let loudest = f32::from(levels.iter().copied().max().unwrap_or(0));
        self.noise_total + BOUND_SLACK_DB - loudest > BAND_EVIDENCE_ABOVE_DB
    }
}

/// 10^(c/10) for each dB code `c`, to sum band energies without a power per band.
static POWER: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let step = 1.258_925_4f32; // 10^0.1
    let mut v = 1.0f32;
    let mut i = 0;
    while i < 256 {
        t[i] = v;
        v *= step;
        i += 1;
    }
    t
};

/// A level in dB as energy.
pub(crate) fn power(db: f32) -> f32 {
    10f32.powf(db / 10.0)
}

/// Energy to 1 dB steps, rounded up (0: nothing).
pub(crate) fn to_db_code(e: f32) -> u8 {
    if e <= 1.0 { 0 } else { (10.0 * e.log10()).ceil().clamp(1.0, 255.0) as u8 }
}

/// The echo gate's state; see the module docs. Fixed size, never allocates.
#[derive(Debug, Clone)]
pub(crate) struct EchoGate {
    /// Reference band energies per slot (slot `s` at `s % SLOTS`), 1 dB steps, 0 = none.
    ring: [[u8; GATE_BANDS]; SLOTS],
    /// Where the echo lies behind the reference.
    delay: EchoDelay,
    /// The last delay estimate the bounds did not contradict, slots (NaN: none yet): what the
    /// echo canceller aligns to. A caller talking over the agent can lock the estimator on a lag
    /// of chance for a second, where the bounds know no echo is; followed, that moved the
    /// canceller's taps off what it had learnt.
    trusted_slots: f32,
    /// Newest slot written; slots in `(newest - SLOTS, newest]` are valid. [`NO_SLOT`]: none.
    /// (32 bits: 2.7 years of 20 ms slots, and the state fits the session's memory budget.)
    newest: u32,
    /// Engine time (µs) minus the caller's stream time (µs) of the newest audio delivered: the
    /// smallest seen, so network jitter does not move it. [`i64::MIN`]: not yet known.
    offset_us: i64,
    /// Echo gain per band, [`GAIN_UNIT_DB`] units.
    gain: [i16; GATE_BANDS],
    /// Frames each band has learnt from (up to [`FAST_FRAMES`]).
    learnt: [u8; GATE_BANDS],
    /// The most the echo's gain can be at each lag, from the frames where the reference there
    /// was loud and the caller's line was not: [`BOUND_UNIT_DB`] units below [`START_GAIN_DB`].
    bound: [u8; LAGS],
    /// Finds an echo that has just started (see [`super::echo_match`]).
    matcher: EchoMatch,
    /// Frames left of the wider margin after a match (see [`FRESH_FRAMES`]).
    fresh: u8,
    /// A match has found an echo new to the gate since [`Self::take_recognised`] last asked.
    recognised: bool,
    /// The slot up to which (not included) the match's last frames say the caller's line may
    /// carry an echo the gate lets through (see [`Self::suspects_echo`]); 32 bits as
    /// [`Self::newest`].
    suspect_until: u32,
    /// The slot of the last confirmed match of an echo (see [`Self::echo_confirmed`]).
    confirmed_slot: u32,
    /// The last frames, one bit each (bit 0 the newest), in which the gate let a band of the
    /// caller's through that stands over the line's noise as the echo match requires: what the
    /// speech detector may have taken for the caller's speech.
    passed: u8,
}

impl EchoGate {
    pub(crate) fn new() -> Self {
        Self {
            ring: [[0; GATE_BANDS]; SLOTS],
            delay: EchoDelay::new(),
            trusted_slots: f32::NAN,
            newest: NO_SLOT,
            offset_us: i64::MIN,
            gain: [(START_GAIN_DB / GAIN_UNIT_DB) as i16; GATE_BANDS],
            learnt: [0; GATE_BANDS],
            bound: [0; LAGS],
            matcher: EchoMatch::new(),
            fresh: 0,
            recognised: false,
            suspect_until: 0,
            confirmed_slot: NO_SLOT,
            passed: 0,
        }
    }

    /// Forgets everything (a new stream).
    pub(crate) fn reset(&mut self) {
        *self = Self::new();
    }

    fn newest(&self) -> Option<u64> {
        (self.newest != NO_SLOT).then_some(u64::from(self.newest))
    }

    /// The caller's stream sample (8 kHz) at which audio the carrier plays at engine time
    /// `play_us` is heard, given that at engine time `now_us` the caller's audio had been
    /// delivered up to stream sample `stream_now`. `None` before any caller audio.
    pub(crate) fn sample_of(&mut self, play_us: u64, now_us: u64, stream_now: Option<u64>) -> Option<u64> {
        let stream_now = stream_now?;
        let offset = now_us as i64 - (stream_now as i64) * 125;
        self.offset_us = match self.offset_us {
            i64::MIN => offset,
            o => (o + OFFSET_CREEP_US).min(offset),
        };
        self.sample_at(play_us)
    }

    /// [`Self::sample_of`] without learning the clock (`None` before it is known).
    pub(crate) fn sample_at(&self, play_us: u64) -> Option<u64> {
        if self.offset_us == i64::MIN {
            return None;
        }
        let stream_us = play_us as i64 - self.offset_us;
        Some(stream_us.max(0) as u64 * 8 / 1000)
    }

    /// Records the played audio's band energies (1 dB codes) for `slot`.
    pub(crate) fn record(&mut self, slot: u64, bands: [u8; GATE_BANDS]) {
        match self.newest() {
            Some(newest) if slot <= newest => {
                if slot + SLOTS as u64 > newest {
                    let r = &mut self.ring[slot as usize % SLOTS];
                    for (r, b) in r.iter_mut().zip(bands) {
                        *r = (*r).max(b);
                    }
                }
            }
            newest => {
                // Slots skipped since the newest hold nothing.
                let from = newest.map_or(slot, |n| (n + 1).max(slot.saturating_sub(SLOTS as u64)));
                for s in from..slot {
                    self.ring[s as usize % SLOTS] = [0; GATE_BANDS];
                }
                self.ring[slot as usize % SLOTS] = bands;
                self.newest = u32::try_from(slot).unwrap_or(NO_SLOT - 1);
            }
        }
    }

    /// The carrier dropped what it had not played: nothing plays from `slot` on.
    pub(crate) fn cut(&mut self, slot: u64) {
        let Some(newest) = self.newest() else { return };
        if slot > newest {
            return;
        }
        for s in slot.max(newest.saturating_sub(SLOTS as u64 - 1))..=newest {
            self.ring[s as usize % SLOTS] = [0; GATE_BANDS];
        }
        self.newest = slot.checked_sub(1).map_or(NO_SLOT, |s| u32::try_from(s).unwrap_or(NO_SLOT - 1));
    }

    /// Whether the caller's frame in `slot` may hold echo (played audio within the window
    /// behind it): one comparison, the whole cost while the agent is silent.
    pub(crate) fn active(&self, slot: u64) -> bool {
        self.newest().is_some_and(|n| n + WINDOW_SLOTS > slot)
    }

    /// The reference slot `s` if it is held (else silence).
    fn slot(&self, s: u64) -> [u8; GATE_BANDS] {
        match self.newest() {
            Some(n) if s <= n && s + SLOTS as u64 > n => self.ring[s as usize % SLOTS],
            _ => [0; GATE_BANDS],
        }
    }

    /// A reference slot's total level, 1 dB code (0: silence or not held).
    fn level(bands: &[u8; GATE_BANDS]) -> u8 {
        to_db_code(bands.iter().filter(|&&b| b > 0).map(|&b| POWER[usize::from(b)]).sum())
    }

    /// The estimated echo delay, ms: the last estimate the echo's bounds did not contradict, if
    /// any (kept while the agent is silent).
    pub(crate) fn delay_ms(&self) -> Option<f32> {
        (!self.trusted_slots.is_nan()).then_some(self.trusted_slots * (SLOT_SAMPLES / 8) as f32)
    }

    /// The loudest reference per band (dB codes) over lags `lags` (slots) behind `slot`.
    #[cfg(test)]
    fn loudest(&self, slot: u64, lags: std::ops::RangeInclusive<u64>) -> [u8; GATE_BANDS] {
        let mut max = [0u8; GATE_BANDS];
        for lag in lags {
            let Some(s) = slot.checked_sub(lag) else { break };
            for (m, r) in max.iter_mut().zip(self.slot(s)) {
                *m = (*m).max(r);
            }
        }
        max
    }

    /// The loudest reference per band over the whole window behind `slot`; `None` if the
    /// window holds no played audio.
    #[cfg(test)]
    pub(crate) fn reference_db(&self, slot: u64) -> Option<[u8; GATE_BANDS]> {
        let max = self.loudest(slot, 0..=WINDOW_SLOTS - 1);
        max.iter().any(|&m| m > 0).then_some(max)
    }

    /// The echo bound at `lag`, dB.
    fn bound_db(&self, lag: usize) -> f32 {
        START_GAIN_DB - BOUND_UNIT_DB * f32::from(self.bound[lag])
    }

    /// Sets the echo bound at `lag` to `db` (held within [`MIN_BOUND_DB`]..=[`START_GAIN_DB`]).
    fn set_bound_db(&mut self, lag: usize, db: f32) {
        self.bound[lag] =
            ((START_GAIN_DB - db.clamp(MIN_BOUND_DB, START_GAIN_DB)) / BOUND_UNIT_DB).round() as u8;
    }

    /// What of a caller level `caller_db` stands above the line's noise `noise_db`: the most an
    /// echo in it can be, dB. A floor at the classifier's minimum may be far above the line
    /// (digital silence is), and a level clearly under the floor shows the line quieter than it:
    /// then nothing can be taken off, and the level itself is the answer.
    fn heard(caller_db: f32, noise_db: f32, floor_at_minimum: bool) -> f32 {
        let hidden = noise_db - HIDDEN_DB;
        let excess = power(caller_db) - power(noise_db);
        if floor_at_minimum || caller_db < noise_db - UNDER_FLOOR_DB {
            caller_db
        } else if excess > power(hidden) {
            10.0 * excess.log10()
        } else {
            hidden
        }
    }

    /// Learns the echo bound per lag from the caller's frame over the line's noise (`line`) and
    /// the reference behind it (`reference[lag]` per band, `levels[lag]` its total), given the
    /// delay estimator's `estimate`: at the lags where it finds the echo the bounds step down
    /// slowly, and, where it is sure of it ([`CLIMB_CONFIDENCE`]), rise however far under the
    /// frame they lie.
    ///
    /// The frame's total level against the reference's bounds the echo's gain at each lag. On a
    /// noisy line that bound is loose: the line's noise spreads over every band while the agent's
    /// voice stands in a few, so a frame at the noise allows an echo as loud as the noise in the
    /// agent's loudest band, and the gate then masks a soft caller there (the barge-in set in
    /// 5 dB pink noise, no echo: recall 0.708 against 0.958 without the gate). Each band bounds a
    /// flat echo gain as well, and a band where the agent is loud and the line quiet bounds it far
    /// more tightly; so where the total's bound is loose the tightest band lowers it, by at most
    /// [`BAND_TIGHTER_DB`]: the path colours an echo by several dB from band to band, and one
    /// band's level over a noisy frame is a single low draw. (Measured, `vadbench --echo`: taking
    /// the tightest band in full, that recall rose to 0.958, but an echo opening mid-call at ERL
    /// 6 dB in that noise barged in 339 times per 10 min of agent audio against 24; with up to
    /// 10 dB, 0.938 and 57; with up to 6 dB, 0.854 and 26.) On a quiet line the total's bound
    /// already lies far under the caller's voice, and its looseness is what covers an echo that
    /// opens mid-call a little over the line's noise until the echo match sees it (with the bands
    /// there too: at ERL 25 dB, 13 barge-ins per 10 min against none).
    fn learn_bounds(
        &mut self,
        line: &Line,
        reference: &[[u8; GATE_BANDS]],
        levels: &[u8; LAGS],
        estimate: Option<Estimate>,
    ) {
        let near = estimate.map(|e| around(e.lag));
        let climb = estimate.is_some_and(|e| e.confidence >= CLIMB_CONFIDENCE);
        let hidden = line.noise_total - HIDDEN_DB;
        let heard = Self::heard(line.caller_total, line.noise_total, line.floor_at_minimum);
        // Per band, taken only on a frame that needs it (a noisy line's): 24 powers and logs.
        let mut band_heard = None;
        for lag in 0..LAGS {
            let l = least_around(lag, |lag| levels[lag]);
            let reference_db = f32::from(l);
            let bound = self.bound_db(lag);
            // Only where an echo at the bound could be seen.
            if l == 0 || reference_db + bound <= hidden {
                continue;
            }
            let mut seen = heard - reference_db + BOUND_SLACK_DB;
            if seen > BAND_EVIDENCE_ABOVE_DB {
                let band_heard: &[f32; GATE_BANDS] = band_heard.get_or_insert_with(|| {
                    std::array::from_fn(|b| Self::heard(line.caller[b], line.noise[b], line.floor_at_minimum))
                });
                let tightest = (0..GATE_BANDS)
                    .filter_map(|b| {
                        let l = least_around(lag, |lag| reference[lag][b]);
                        let visible = l > 0 && f32::from(l) + bound > line.noise[b] - HIDDEN_DB;
                        visible.then(|| band_heard[b] - f32::from(l) + BOUND_SLACK_DB)
                    })
                    .fold(f32::MAX, f32::min);
                seen = seen.min(tightest.max(seen - BAND_TIGHTER_DB));
            }
            let is_near = near.as_ref().is_some_and(|n| n.contains(&(lag as u64)));
            let down = if is_near { BOUND_DOWN_NEAR_DB } else { BOUND_DOWN_DB };
            let next = if seen < bound {
                seen.max(bound - down)
            } else if seen < bound + BOUND_UP_WITHIN_DB {
                bound + BOUND_UP_DB
            } else if climb && is_near {
                bound + CLIMB_UP_DB
            } else {
                bound
            };
            self.set_bound_db(lag, next);
        }
    }

    /// A confirmed echo match (see [`super::echo_match`]): the bounds at its lags that lie more
    /// than [`MATCH_EXPLAINED_DB`] under the echo it measured are raised to that echo plus
    /// [`MATCH_SLACK_DB`]; if that includes its own two slots, so are the gains that lie under
    /// it, they learn afresh, and the wider margin follows.
    fn take_match(&mut self, m: Match) {
        if m.gain_db > LOUDEST_MATCH_DB {
            return;
        }
        let allowed = (m.gain_db + MATCH_SLACK_DB).min(START_GAIN_DB);
        // What already predicts an echo within a few dB of the measured one stays.
        let explained = m.gain_db - MATCH_EXPLAINED_DB;
        // Only an echo the bounds at its own two slots did not allow is new to the gate: then it
        // may have passed for the caller (the wider margin), and the gains, learnt without it,
        // learn afresh. Where those bounds allow it, the gate is following this echo already: a
        // neighbour's bound (the tail's side) may still be raised, but the gains are left to
        // their own learning, since a single match can read a few dB high (measured: matches at
        // -5 to -8 dB on a 10 dB echo whose gains had learnt -8 to -12 dB; raising the gains and
        // widening the margin on those cost two interruptions in 48 at ERL 10 dB).
        let new = self.is_new(&m);
        for lag in around(m.lag) {
            if self.bound_db(lag as usize) < explained {
                self.set_bound_db(lag as usize, allowed);
            }
        }
        if !new {
            return;
        }
        let gain = (allowed / GAIN_UNIT_DB).round() as i16;
        for (g, learnt) in self.gain.iter_mut().zip(&mut self.learnt) {
            if f32::from(*g) * GAIN_UNIT_DB < explained {
                *g = gain;
                *learnt = 0;
            }
        }
        // If the gate let none of the frames the match compared through, the speech detector
        // heard nothing of them: no speech to end, no margin to widen (a caller who starts
        // right after would meet it). (Measured: a known echo matched at a lag of its rhythm,
        // just before the caller spoke, cost an interruption at ERL 25 dB.)
        if self.passed & ((1 << FRAMES) - 1) != 0 {
            self.fresh = FRESH_FRAMES;
            self.recognised = true;
        }
    }

    /// Whether the bounds at a match's own two slots lie under the echo it measured (by more
    /// than [`MATCH_EXPLAINED_DB`]): an echo the gate is not following, which it lets through as
    /// the caller's. Only a match no louder than [`LOUDEST_MATCH_DB`] is an echo.
    fn is_new(&self, m: &Match) -> bool {
        let explained = m.gain_db - MATCH_EXPLAINED_DB;
        m.gain_db <= LOUDEST_MATCH_DB
            && (m.lag..=(m.lag + 1).min(WINDOW_SLOTS - 1)).any(|lag| self.bound_db(lag as usize) < explained)
    }

    /// Whether a match has found an echo new to the gate since the last call: until then that
    /// echo passed for the caller, so speech the detector heard in it was likely the echo's.
    pub(crate) fn take_recognised(&mut self) -> bool {
        std::mem::take(&mut self.recognised)
    }

    /// Whether, at the caller's frame in `slot` (just masked), the echo match has in its last
    /// [`SUSPECT_FRAMES`] frames confirmed an echo or found a fit that would be an echo new to
    /// the gate but is not confirmed yet, or such a close fit in its last [`CONFIRM_WITHIN`]
    /// frames ([`Verdict::Candidate`]): speech that starts now may be an echo the gate lets
    /// through (its first frames, or a stretch the gate under-predicts), which a confirmation
    /// within a few frames would show (see [`Self::echo_confirmed`]).
    pub(crate) fn suspects_echo(&self, slot: u64) -> bool {
        (slot as u32) < self.suspect_until
    }

    /// Makes speech that starts in the `frames` frames after the caller's frame in `slot` suspect
    /// (see [`Self::suspects_echo`]). A shorter suspicion does not cut short one still running:
    /// a loose fit after a close one leaves the close one's [`CONFIRM_WITHIN`] frames.
    fn suspect(&mut self, slot: u64, frames: u64) {
        self.suspect_until = self.suspect_until.max((slot + 1 + frames) as u32);
    }

    /// Whether the echo match confirmed an echo at the caller's frame in `slot` (just masked):
    /// its last frames are the agent's audio through one path, not the caller.
    pub(crate) fn echo_confirmed(&self, slot: u64) -> bool {
        self.confirmed_slot == slot as u32
    }

    /// The caller's frame in `slot`, its energy per gate band (`caller_db`) and the line's noise
    /// floor there (`noise_db`; `floor_at_minimum`: the floor is at the classifier's minimum, so
    /// the line itself may be much quieter): which bands are the agent's echo. Learns the echo's
    /// level on the way; `after_tone`: the frame before was told a tone's (a key the caller
    /// pressed, see [`super::tone`]), so this one likely is too, and its level is kept from the
    /// delay estimate. `None` when no played audio can echo in it.
    pub(crate) fn mask(
        &mut self,
        slot: u64,
        caller_db: &[f32; GATE_BANDS],
        noise_db: &[f32; GATE_BANDS],
        floor_at_minimum: bool,
        after_tone: bool,
    ) -> Option<[bool; GATE_BANDS]> {
        // A slot's level is 0 only if all its bands are: no level, nothing played in the window.
        // The reference behind this frame, slot by slot: what the echo match compares, and (its
        // first LAGS slots' totals) what the delay estimator and the bounds take.
        let reference: [[u8; GATE_BANDS]; LAGS + FRAMES] =
            std::array::from_fn(|d| slot.checked_sub(d as u64).map_or([0; GATE_BANDS], |s| self.slot(s)));
        let levels: [u8; LAGS] = std::array::from_fn(|lag| Self::level(&reference[lag]));
        if levels.iter().all(|&l| l == 0) {
            self.note_passed(caller_db, noise_db, &[false; GATE_BANDS]);
            return None;
        }
        let total = |db: &[f32; GATE_BANDS]| 10.0 * db.iter().map(|&d| power(d)).sum::<f32>().log10();
        let line = Line {
            caller: caller_db,
            noise: noise_db,
            caller_total: total(caller_db),
            noise_total: total(noise_db),
            floor_at_minimum,
        };
        // A key the caller presses is a loud burst on the line that follows the keys, not the
        // agent: its level pulled the delay estimate to a lag of chance (traced: 140 ms off the
        // echo's, for seconds after four presses, and the echo passed for the caller). A tone is
        // told from its second frame, known here a frame later: its first two frames still
        // count, the frame after it does not.
        if !after_tone {
            self.delay.update(line.caller_total, line.noise_total, &levels);
        }
        // Where the delay is known, the echo comes from its slot and the tail's; else from
        // anywhere in the window.
        let estimate = self.delay.estimate();
        let near = |e: Estimate| around(e.lag);
        // What the match says of the last frames: an echo confirmed, or a fit awaiting
        // confirmation as an echo new to the gate; either makes speech starting within the next
        // few frames suspect (after a close fit, as long as the fits to come may confirm it).
        match self.matcher.update(caller_db, noise_db, &reference, line.is_noisy(&levels)) {
            Some(Verdict::Confirmed(m)) => {
                if m.gain_db <= LOUDEST_MATCH_DB {
                    self.confirmed_slot = slot as u32;
                    self.suspect(slot, SUSPECT_FRAMES);
                }
                self.take_match(m);
            }
            Some(Verdict::Candidate { found, close }) if self.is_new(&found) => {
                self.suspect(slot, if close { u64::from(CONFIRM_WITHIN) } else { SUSPECT_FRAMES });
            }
            _ => {}
        }
        self.learn_bounds(&line, &reference[..LAGS], &levels, estimate);
        // An estimate the bounds contradict (no echo can be near it) is early or wrong: the echo
        // is predicted from wherever the bounds allow it.
        let trusted = estimate.filter(|&e| near(e).any(|lag| self.bound_db(lag as usize) >= CONTRADICTED_DB));
        if let Some(e) = trusted {
            self.trusted_slots = e.slots;
        }
        let lags = match trusted {
            Some(e) => near(e),
            None => 0..=WINDOW_SLOTS - 1,
        };
        // Per band, the loudest reference over those lags, and the loudest echo their bounds
        // allow.
        let mut reference = [0u8; GATE_BANDS];
        let mut bounded = [f32::MIN; GATE_BANDS];
        for lag in lags {
            let Some(s) = slot.checked_sub(lag) else { break };
            let bound = self.bound_db(lag as usize);
            for ((m, e), r) in reference.iter_mut().zip(&mut bounded).zip(self.slot(s)) {
                if r > 0 {
                    *m = (*m).max(r);
                    *e = e.max(f32::from(r) + bound);
                }
            }
        }
        let margin = if self.fresh > 0 { MARGIN_DB + FRESH_MARGIN_DB } else { MARGIN_DB };
        self.fresh = self.fresh.saturating_sub(1);
        let mut mask = [false; GATE_BANDS];
        for b in 0..GATE_BANDS {
            if reference[b] == 0 {
                continue;
            }
            let reference = f32::from(reference[b]);
            let gain_db = f32::from(self.gain[b]) * GAIN_UNIT_DB;
            let echo = reference + gain_db;
            // The prediction: the learnt gain on the loudest reference, but no more than the
            // bounds allow (on a line without echo, under its noise).
            let predicted = echo.min(bounded[b]);
            // What the line's noise plus an echo at `echo_db` explain, with margin, dB.
            let noise = power(noise_db[b]);
            let explained_by = |echo_db: f32| 10.0 * (noise + power(echo_db + margin)).log10();
            // Explained: no louder than that for the echo predicted; an echo predicted under the
            // noise explains nothing (the band is the line's).
            mask[b] = caller_db[b] < explained_by(predicted) && predicted + margin >= noise_db[b];
            let seen = |level: f32| level >= noise_db[b] + LEARN_ABOVE_NOISE_DB;
            if caller_db[b] < explained_by(echo) + LEARN_ABOVE_THRESHOLD_DB
                && (seen(echo) || (seen(caller_db[b]) && seen(bounded[b])))
            {
                let ratio = caller_db[b] - reference;
                let learnt = &mut self.learnt[b];
                // Fast only once the delay is known: from the whole window's loudest reference
                // the fast steps undershoot the echo's level (measured: barge-ins on the echo
                // at ERL 6 dB in the first second).
                let fast = *learnt < FAST_FRAMES && estimate.is_some();
                let down = if fast { FAST_DOWN_DB } else { GAIN_DOWN_DB };
                *learnt = learnt.saturating_add(u8::from(estimate.is_some()));
                let gain = if ratio > gain_db { gain_db + GAIN_UP_DB } else { gain_db - down };
                self.gain[b] = (gain.clamp(MIN_GAIN_DB, START_GAIN_DB) / GAIN_UNIT_DB).round() as i16;
            }
        }
        self.note_passed(caller_db, noise_db, &mask);
        Some(mask)
    }

    /// Notes whether the gate let the caller's frame through: a band it did not mask that
    /// stands over the line's noise as the echo match requires.
    fn note_passed(
        &mut self,
        caller_db: &[f32; GATE_BANDS],
        noise_db: &[f32; GATE_BANDS],
        mask: &[bool; GATE_BANDS],
    ) {
        let through = (0..GATE_BANDS).any(|b| !mask[b] && caller_db[b] > noise_db[b] + USABLE_ABOVE_NOISE_DB);
        self.passed = (self.passed << 1) | u8::from(through);
    }

    /// The echo gain of band `b`, dB.
    #[cfg(test)]
    pub(crate) fn gain_db(&self, b: usize) -> f32 {
        f32::from(self.gain[b]) * GAIN_UNIT_DB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state sizes the module docs (here, in `echo_match` and `echo_delay`), the spectral
    /// classifier and docs/speech.md state: a change of the state must change them too.
    #[test]
    fn the_state_is_the_size_the_docs_state() {
        assert_eq!(size_of::<EchoMatch>(), 52);
        assert_eq!(size_of::<EchoDelay>(), 140);
        assert_eq!(size_of::<EchoGate>(), 600);
    }

    #[test]
    fn a_shorter_suspicion_does_not_cut_short_a_longer_one() {
        // A close fit at slot 100 (suspect through slot 109), then a loose one at 102 (through
        // 107): speech starting at slots 108 and 109 is still suspect, at 110 no longer.
        let mut g = EchoGate::new();
        g.suspect(100, u64::from(CONFIRM_WITHIN));
        g.suspect(102, SUSPECT_FRAMES);
        assert!(g.suspects_echo(109));
        assert!(!g.suspects_echo(110));
        // And a longer one extends a shorter.
        g.suspect(108, SUSPECT_FRAMES);
        assert!(g.suspects_echo(113) && !g.suspects_echo(114));
    }

    #[test]
    fn the_power_table_is_ten_to_the_code_over_ten() {
        for (c, &p) in POWER.iter().enumerate() {
            let want = 10f64.powf(c as f64 / 10.0);
            assert!((f64::from(p) / want - 1.0).abs() < 1e-4, "code {c}: {p} against {want}");
        }
    }

    #[test]
    fn a_floor_at_its_minimum_does_not_pass_for_the_lines_noise() {
        // Every frame holds an echo 10 dB under the reference, as loud as the noise floor. Over a
        // real noise floor that echo cannot be told from the noise and the bounds fall; over a
        // floor held at its minimum (a silent line far under it) the frame's own level bounds the
        // echo, and the bounds stay over its 10 dB.
        for at_minimum in [false, true] {
            let mut g = EchoGate::new();
            let noise = [50.0; GATE_BANDS];
            for slot in 0..60 {
                g.record(slot, [60; GATE_BANDS]);
                g.mask(slot, &[50.0; GATE_BANDS], &noise, at_minimum, false);
            }
            let lowest = (0..LAGS).map(|lag| g.bound_db(lag)).fold(f32::MAX, f32::min);
            if at_minimum {
                assert!(lowest >= -10.0, "a bound fell under the echo: {lowest} dB");
            } else {
                assert!(lowest < -15.0, "the bounds should fall under the noise: {lowest} dB");
            }
        }
    }

    #[test]
    fn without_echo_the_bounds_fall_and_nothing_is_masked() {
        // The agent talks at 70 dB, the line stays at its noise (20 dB): once the bound at every
        // lag of the window has seen a few frames (0.8 s), any echo is bounded under the noise,
        // and a caller 8 dB over the noise is theirs (the gain alone, at ERL 6 dB, would mask up
        // to 68 dB).
        let mut g = EchoGate::new();
        let noise = [20.0; GATE_BANDS];
        for slot in 0..40 {
            g.record(slot, [70; GATE_BANDS]);
            g.mask(slot, &noise, &noise, false, false);
        }
        g.record(40, [70; GATE_BANDS]);
        assert_eq!(g.mask(40, &[28.0; GATE_BANDS], &noise, false, false), Some([false; GATE_BANDS]));
        assert!(g.gain_db(0) > -10.0, "the gain alone would mask it: {}", g.gain_db(0));
        // With an echo 10 dB down from 100 ms on, the bound at its lag stays at the start; one
        // before it falls while the line is still silent (the frames before the echo came).
        let mut g = EchoGate::new();
        for slot in 0..50u64 {
            g.record(slot, [70; GATE_BANDS]);
            let caller = if slot >= 5 { 60.0 } else { 20.0 };
            g.mask(slot, &[caller; GATE_BANDS], &noise, false, false);
        }
        assert_eq!(g.bound_db(5), START_GAIN_DB);
        assert!(g.bound_db(1) <= START_GAIN_DB - 12.0, "{}", g.bound_db(1));
    }

    /// A noisy line's floor: pink-like noise, loudest in the low bands.
    const PINK_NOISE: [f32; GATE_BANDS] = [52.0, 50.0, 46.0, 42.0, 38.0, 34.0, 30.0, 26.0];
    /// The agent's voice: weak where the noise is loud, standing in bands 2-4, 12 dB over the
    /// noise's total.
    const VOICED: [u8; GATE_BANDS] = [48, 56, 64, 64, 58, 52, 44, 38];

    /// The gate after 1.2 s of the agent on the noisy line: the line rumbles 0-6 dB over its
    /// floor in bands 0-1 (seeded) and sits at the floor elsewhere, and the agent's echo, at
    /// `echo_db` per band (its path's gain), is added to it.
    fn noisy_line_after(echo_db: Option<[f32; GATE_BANDS]>) -> EchoGate {
        let mut rng = crate::test_rng::XorShift(0x5eed_1234);
        let mut g = EchoGate::new();
        for slot in 0..60 {
            g.record(slot, VOICED);
            let caller: [f32; GATE_BANDS] = std::array::from_fn(|b| {
                let line = PINK_NOISE[b] + if b < 2 { rng.below(60) as f32 / 10.0 } else { 0.0 };
                let echo = echo_db.map_or(0.0, |gain| power(f32::from(VOICED[b]) + gain[b]));
                10.0 * (power(line) + echo).log10()
            });
            g.mask(slot, &caller, &PINK_NOISE, false, false);
        }
        g.record(60, VOICED);
        g
    }

    #[test]
    fn on_a_noisy_line_without_echo_the_bands_bound_it_where_the_total_cannot() {
        // The frames' totals (the rumble in bands 0-1) allow an echo about 5 dB under the
        // agent (-10 dB); band 3, where the agent is loudest and the line at its floor, allows
        // none, and takes the bounds 6 dB lower. A caller 13 dB over the noise there is masked by
        // the totals' bound alone.
        let mut g = noisy_line_after(None);
        let mut caller = PINK_NOISE;
        caller[3] += 13.0;
        let mask = g.mask(60, &caller, &PINK_NOISE, false, false).unwrap();
        assert!(!mask[3], "the caller's band was taken for echo; bound at lag 0: {} dB", g.bound_db(0));
    }

    #[test]
    fn on_a_noisy_line_the_bands_keep_a_coloured_echo_bounded_over_it() {
        // The same line with the agent echoed 10 dB down, but 30 dB in band 3 (a path that
        // colours it): band 3 alone would bound the echo at -21 dB, far under the rest of it,
        // and let it pass everywhere; taken at most 6 dB under the totals' bound (-8 dB here),
        // the echo's frames stay masked in every band it stands over the noise in, and a caller
        // 8 dB over the echo in band 2 is theirs.
        let mut gain = [-10.0; GATE_BANDS];
        gain[3] = -30.0;
        let mut g = noisy_line_after(Some(gain));
        let echo: [f32; GATE_BANDS] = std::array::from_fn(|b| {
            10.0 * (power(PINK_NOISE[b] + 3.0) + power(f32::from(VOICED[b]) + gain[b])).log10()
        });
        let mask = g.clone().mask(60, &echo, &PINK_NOISE, false, false).unwrap();
        assert!([2, 4, 5, 6, 7].iter().all(|&b| mask[b]), "the echo passed for the caller: {mask:?}");
        let mut caller = echo;
        caller[2] += 8.0;
        assert!(!g.mask(60, &caller, &PINK_NOISE, false, false).unwrap()[2]);
    }

    /// Agent speech as seeded syllables, per slot: 3-7 slots at 70 dB, then 1-4 of silence, at
    /// least `slots` in all.
    fn syllables(seed: u64, slots: usize) -> Vec<u8> {
        let mut rng = crate::test_rng::XorShift(seed);
        let mut next = move |n: u64| rng.below(n);
        let mut reference = Vec::new();
        while reference.len() < slots {
            reference.extend(std::iter::repeat_n(70u8, 3 + next(5) as usize));
            reference.extend(std::iter::repeat_n(0u8, 1 + next(4) as usize));
        }
        reference
    }

    #[test]
    fn one_frame_against_the_estimated_echo_barely_moves_its_bounds() {
        // Agent speech in seeded syllables (70 dB, pauses of silence), its echo 10 dB down five
        // slots later on a line at 20 dB: the estimator finds lag 5.
        let reference = syllables(0x9e37_79b9, 140);
        let noise = [20.0; GATE_BANDS];
        let mut g = EchoGate::new();
        let caller_at = |s: usize| if s >= 5 && reference[s - 5] > 0 { 60.0 } else { 20.0 };
        let mut s = 0;
        while s < 120 || !(reference[s - 6..=s - 4].iter().all(|&r| r > 0)) {
            g.record(s as u64, [reference[s]; GATE_BANDS]);
            g.mask(s as u64, &[caller_at(s); GATE_BANDS], &noise, false, false);
            s += 1;
        }
        assert_eq!(g.delay.estimate().map(|e| e.lag), Some(5), "{:?}", g.delay.estimate());
        // A frame where the echo should be loud but the line is silent (the reference placed a
        // slot off, say): the bounds at the echo's lags step down by at most 0.5 dB, where one
        // frame anywhere else may take 6 dB off.
        let before: Vec<f32> = (0..LAGS).map(|lag| g.bound_db(lag)).collect();
        g.record(s as u64, [reference[s]; GATE_BANDS]);
        g.mask(s as u64, &noise, &noise, false, false);
        for (lag, was) in before.iter().enumerate().take(8).skip(4) {
            let drop = was - g.bound_db(lag);
            assert!(drop <= 0.5, "lag {lag}: the bound fell {drop} dB in one frame");
        }
        assert!(g.bound_db(5) >= -12.0, "the bound at the echo's lag is under the echo: {}", g.bound_db(5));
    }

    #[test]
    fn the_delay_given_the_canceller_does_not_follow_an_estimate_the_bounds_contradict() {
        // The echo 10 dB down five slots (100 ms) later, learnt over four seconds; then the echo
        // goes quiet and the line carries sound that follows the agent twelve slots later (a
        // caller talking along, say), louder than the bounds at that lag allow any echo to be.
        let reference = syllables(0x9e37_79b9, 320);
        let noise = [20.0; GATE_BANDS];
        let mut g = EchoGate::new();
        let mut moved = None;
        for s in 0..300usize {
            let caller = match s {
                ..200 if s >= 5 && reference[s - 5] > 0 => 60.0,
                200.. if reference[s - 12] > 0 => 75.0,
                _ => 20.0,
            };
            g.record(s as u64, [reference[s]; GATE_BANDS]);
            g.mask(s as u64, &[caller; GATE_BANDS], &noise, false, false);
            let lag = g.delay.estimate().map(|e| e.lag);
            moved = moved.or((lag == Some(12)).then_some(s));
            if let Some(at) = moved
                && s < at + 50
            {
                // The estimator follows the sound; for the second after, the delay given the
                // echo canceller stays the echo's.
                let delay = g.delay_ms().expect("an echo was learnt");
                assert!((90.0..=110.0).contains(&delay), "slot {s}: the canceller is given {delay} ms");
            }
        }
        assert!(moved.is_some(), "the estimator never moved to the sound's lag");
    }

    #[test]
    fn a_bound_far_under_an_echo_the_estimator_is_sure_of_climbs_to_it() {
        // Agent speech in seeded syllables (70 dB, pauses of silence) on a line at 20 dB: three
        // seconds without echo teach bounds far under any echo. Then the path opens, the echo
        // 10 dB down five slots later: each of its frames stands some 50 dB over the bounds,
        // too far to be taken for an echo they underrate, until the estimator is sure of lag 5.
        let reference = syllables(0x5eed_c11b, 560);
        const OPENS: usize = 150;
        let noise = [20.0; GATE_BANDS];
        let caller_at = |s: usize| if s >= OPENS + 5 && reference[s - 5] > 0 { 60.0 } else { 20.0 };
        let mut g = EchoGate::new();
        let mut masked = Vec::new();
        for (s, &played) in reference.iter().enumerate().take(550) {
            if s == OPENS {
                assert!(g.bound_db(5) <= -40.0, "the line without echo left the bound at {}", g.bound_db(5));
            }
            g.record(s as u64, [played; GATE_BANDS]);
            let mask = g.mask(s as u64, &[caller_at(s); GATE_BANDS], &noise, false, false);
            if caller_at(s) > 20.0 {
                masked.push(mask.is_some_and(|m| m.iter().all(|&m| m)));
            }
        }
        let e = g.delay.estimate().expect("an estimate");
        assert!(e.lag == 5 && e.confidence >= CLIMB_CONFIDENCE, "{e:?}");
        // The bound at the echo's lag has risen over it (the echo's -10 dB less the slack), and
        // with it the echo is masked; far from that lag nothing has moved the bounds.
        assert!(g.bound_db(5) >= -12.0, "the bound at the echo's lag stayed at {} dB", g.bound_db(5));
        let last = &masked[masked.len() - 50..];
        assert!(last.iter().all(|&m| m), "echo frames let through: {last:?}");
        assert!(g.bound_db(20) <= -40.0, "a lag without echo rose to {} dB", g.bound_db(20));
    }

    #[test]
    fn the_window_covers_the_delays_it_claims_and_forgets_beyond() {
        let mut g = EchoGate::new();
        g.record(100, [60; GATE_BANDS]);
        assert_eq!(g.reference_db(99), None);
        assert_eq!(g.reference_db(100), Some([60; GATE_BANDS]));
        assert_eq!(g.reference_db(100 + WINDOW_SLOTS - 1), Some([60; GATE_BANDS]));
        assert_eq!(g.reference_db(100 + WINDOW_SLOTS), None);
        // A later, quieter slot: the max is the louder earlier one while it is in the window.
        g.record(110, [40; GATE_BANDS]);
        assert_eq!(g.reference_db(112), Some([60; GATE_BANDS]));
        assert_eq!(g.reference_db(100 + WINDOW_SLOTS), Some([40; GATE_BANDS]));
        // A jump past the ring's length leaves no stale slot behind.
        g.record(110 + 3 * SLOTS as u64, [30; GATE_BANDS]);
        for s in 0..SLOTS as u64 {
            let slot = 110 + 2 * SLOTS as u64 + s;
            let want = (slot >= 110 + 3 * SLOTS as u64).then_some([30; GATE_BANDS]);
            assert_eq!(g.reference_db(slot), want, "slot {slot}");
        }
    }

    #[test]
    fn a_cut_drops_what_had_not_played() {
        let mut g = EchoGate::new();
        for s in 10..20 {
            g.record(s, [50; GATE_BANDS]);
        }
        g.cut(15);
        assert_eq!(g.reference_db(15 + WINDOW_SLOTS - 1), None);
        assert_eq!(g.reference_db(14 + WINDOW_SLOTS - 1), Some([50; GATE_BANDS]));
        // Recording resumes after the cut.
        g.record(16, [20; GATE_BANDS]);
        assert_eq!(g.reference_db(16 + WINDOW_SLOTS - 1), Some([20; GATE_BANDS]));
    }

    #[test]
    fn stream_time_follows_the_earliest_delivery() {
        let mut g = EchoGate::new();
        assert_eq!(g.sample_at(0), None);
        // Caller audio up to 1 s of stream time was delivered at engine time 3 s: offset 2 s.
        assert_eq!(g.sample_of(3_000_000, 3_000_000, Some(8_000)), Some(8_000));
        // Delivered 50 ms late (jitter): the offset keeps the earliest, plus its slow creep.
        let creep = OFFSET_CREEP_US as u64;
        assert_eq!(
            g.sample_of(3_100_000, 3_150_000, Some(8_000 + 800)),
            Some((1_100_000 - creep) * 8 / 1000)
        );
        assert_eq!(g.sample_of(0, 0, None), None);
    }

    #[test]
    fn a_delayed_attenuated_copy_is_echo_a_louder_caller_is_not() {
        let mut g = EchoGate::new();
        let noise = [20.0; GATE_BANDS];
        g.record(10, [70; GATE_BANDS]);
        // 200 ms later, 10 dB down: within the ERL 6 dB the gate assumes at first.
        assert_eq!(g.mask(20, &[60.0; GATE_BANDS], &noise, false, false), Some([true; GATE_BANDS]));
        // The caller 5 dB above the reference, in half the bands: those are theirs.
        let caller: [f32; GATE_BANDS] = std::array::from_fn(|b| if b % 2 == 0 { 75.0 } else { 60.0 });
        let mask = g.mask(21, &caller, &noise, false, false).unwrap();
        assert_eq!(mask, std::array::from_fn(|b| b % 2 == 1));
        // Nothing played within the window behind a frame: no gate at all.
        assert!(!g.active(10 + WINDOW_SLOTS));
        assert_eq!(g.mask(10 + WINDOW_SLOTS, &[60.0; GATE_BANDS], &noise, false, false), None);
    }

    /// A gate that has learnt a line without echo: every bound at `bound_db`, every band's gain
    /// at `gain_db`; it let the last frames through (a new echo there passed for the caller).
    fn learnt(bound_db: f32, gain_db: f32) -> EchoGate {
        let mut g = EchoGate::new();
        g.passed = u8::MAX;
        learn(&mut g, bound_db, gain_db);
        g
    }

    /// Sets every bound of `g` at `bound_db` and every band's gain at `gain_db`, learnt.
    fn learn(g: &mut EchoGate, bound_db: f32, gain_db: f32) {
        for lag in 0..LAGS {
            g.set_bound_db(lag, bound_db);
        }
        g.gain = [(gain_db / GAIN_UNIT_DB).round() as i16; GATE_BANDS];
        g.learnt = [FAST_FRAMES; GATE_BANDS];
    }

    #[test]
    fn a_match_raises_what_lay_under_it_and_only_there() {
        // Bounds learnt down to -40 dB, gains to -30 dB; an echo matched at lag 8, 14 dB down.
        let mut g = learnt(-40.0, -30.0);
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        for lag in 0..LAGS {
            let want = if (7..=10).contains(&lag) { -14.0 + MATCH_SLACK_DB } else { -40.0 };
            assert_eq!(g.bound_db(lag), want, "lag {lag}");
        }
        for b in 0..GATE_BANDS {
            assert_eq!(g.gain_db(b), -14.0 + MATCH_SLACK_DB, "band {b}");
            assert_eq!(g.learnt[b], 0, "band {b} learns afresh");
        }
        assert_eq!(g.fresh, FRESH_FRAMES, "the echo had passed for the caller");
        // Never past the gate's starting ERL, however loud the match.
        let mut loud = learnt(-40.0, -30.0);
        loud.take_match(Match { lag: 3, gain_db: LOUDEST_MATCH_DB - 0.5 });
        assert_eq!(loud.bound_db(3), START_GAIN_DB);
        assert_eq!(loud.gain_db(0), START_GAIN_DB);
    }

    #[test]
    fn a_match_at_the_windows_last_lag_is_taken_as_any_other() {
        // The match's lag may fall between the window's last slot and the next, which the gate
        // does not hold: only the last is its own.
        let last = WINDOW_SLOTS - 1;
        let mut g = learnt(-40.0, -30.0);
        g.take_match(Match { lag: last, gain_db: -14.0 });
        assert_eq!(g.bound_db(last as usize), -14.0 + MATCH_SLACK_DB);
        assert_eq!(g.bound_db(last as usize - 1), -14.0 + MATCH_SLACK_DB);
        assert_eq!(g.fresh, FRESH_FRAMES);
        assert!(g.take_recognised(), "an echo new to the gate");
        assert!(!g.take_recognised(), "said once");
        // Its own slot already allows it: the tail's side is raised, and it is not new.
        let mut g = learnt(-40.0, -30.0);
        g.set_bound_db(last as usize, -14.0);
        g.take_match(Match { lag: last, gain_db: -14.0 });
        assert_eq!(g.bound_db(last as usize - 1), -14.0 + MATCH_SLACK_DB);
        assert_eq!((g.fresh, g.take_recognised()), (0, false));
    }

    #[test]
    fn a_match_the_gate_already_explains_changes_nothing() {
        // Bounds and gains within MATCH_EXPLAINED_DB of the measured echo stay where they are,
        // and no wider margin follows.
        let mut g = learnt(-12.0, -16.0);
        let before = g.clone();
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        assert_eq!(g.bound, before.bound);
        assert_eq!(g.gain, before.gain);
        assert_eq!(g.fresh, 0);
        assert!(!g.take_recognised());
        // A "match" louder than any echo handled is a caller's voice or a louder slot's echo seen
        // against a quiet one.
        // So is one at -2.8 dB (a caller's voice in pink noise, measured): louder than ERL 6 dB
        // by more than the analyses differ.
        for gain_db in [LOUDEST_MATCH_DB + 0.2, -2.8] {
            let mut g = learnt(-40.0, -30.0);
            g.take_match(Match { lag: 8, gain_db });
            let untouched = learnt(-40.0, -30.0);
            assert_eq!((g.bound, g.gain, g.fresh), (untouched.bound, untouched.gain, 0), "{gain_db} dB");
        }
    }

    #[test]
    fn a_match_of_an_echo_the_bounds_follow_raises_only_the_tails_bound() {
        // The bounds at the echo's own two slots (lags 8 and 9) allow it; only the bounds a slot
        // before and after them (the neighbouring slots the tail and the playout's error reach)
        // lay under it, and are raised. The gains, learnt 10 dB under what this match reads,
        // stay where they are (a single match can read a few dB high), and no wider margin
        // follows.
        let mut g = learnt(-14.0, -24.0);
        g.set_bound_db(7, -46.0);
        g.set_bound_db(10, -46.0);
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        assert_eq!((g.bound_db(7), g.bound_db(10)), (-14.0 + MATCH_SLACK_DB, -14.0 + MATCH_SLACK_DB));
        assert_eq!((g.gain, g.learnt), (learnt(-14.0, -24.0).gain, [FAST_FRAMES; GATE_BANDS]));
        assert_eq!(g.fresh, 0);
        // Under it at one of its own slots: an echo new to the gate, the gains and the margin
        // follow.
        let mut g = learnt(-14.0, -24.0);
        g.set_bound_db(9, -46.0);
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        assert_eq!(g.gain_db(0), -14.0 + MATCH_SLACK_DB);
        assert_eq!(g.fresh, FRESH_FRAMES);
    }

    #[test]
    fn a_match_on_frames_the_gate_masked_ends_no_speech() {
        // The reference steady at 70 dB over a line at 20 dB, the caller's frames 10 dB under
        // it (within the ERL 6 dB a new gate assumes: all masked) for FRAMES frames: the speech
        // detector heard nothing of them, so a match there raises the estimates but neither
        // ends speech nor widens the margin for the caller who may start next.
        let mut g = EchoGate::new();
        let noise = [20.0; GATE_BANDS];
        for slot in 0..10 {
            g.record(slot, [70; GATE_BANDS]);
        }
        for slot in 10..10 + FRAMES as u64 {
            g.record(slot, [70; GATE_BANDS]);
            assert_eq!(g.mask(slot, &[60.0; GATE_BANDS], &noise, false, false), Some([true; GATE_BANDS]));
        }
        learn(&mut g, -40.0, -30.0);
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        assert_eq!(g.bound_db(8), -14.0 + MATCH_SLACK_DB);
        assert_eq!(g.gain_db(0), -14.0 + MATCH_SLACK_DB);
        assert_eq!((g.fresh, g.take_recognised()), (0, false));
        // One frame of the last FRAMES let through (a band 20 dB over the reference): the same
        // match is an echo that may have passed for the caller.
        let slot = 10 + FRAMES as u64;
        g.record(slot, [70; GATE_BANDS]);
        assert_eq!(g.mask(slot, &[90.0; GATE_BANDS], &noise, false, false), Some([false; GATE_BANDS]));
        learn(&mut g, -40.0, -30.0);
        g.take_match(Match { lag: 8, gain_db: -14.0 });
        assert_eq!((g.fresh, g.take_recognised()), (FRESH_FRAMES, true));
    }

    #[test]
    fn a_new_echo_is_suspected_before_its_match_is_confirmed_and_no_longer_after_it_ends() {
        // A line learnt without echo, then from slot 40 the agent's audio 8 slots late, 12 dB
        // down, over a line at 20 dB; from slot 120 the caller's line is quiet again while the
        // agent goes on.
        let played = super::super::echo_match::tests::agent(200, 7);
        let noise = [20.0; GATE_BANDS];
        let mut g = learnt(-40.0, -30.0);
        let (mut first_suspected, mut first_confirmed, mut last_confirmed) = (None, None, None);
        for (s, bands) in played.iter().enumerate() {
            let slot = s as u64;
            g.record(slot, *bands);
            let caller: [f32; GATE_BANDS] = match s.checked_sub(8).map(|t| played[t]) {
                Some(r) if (40..120).contains(&s) => {
                    std::array::from_fn(|b| (f32::from(r[b]) - 12.0).max(20.0))
                }
                _ => noise,
            };
            g.mask(slot, &caller, &noise, false, false);
            if g.suspects_echo(slot) && first_suspected.is_none() {
                first_suspected = Some(s);
            }
            if g.echo_confirmed(slot) {
                first_confirmed = first_confirmed.or(Some(s));
                last_confirmed = Some(s);
                assert!(g.suspects_echo(slot), "slot {s}: a confirmed echo is suspected");
            }
            assert!(!g.echo_confirmed(slot + 1), "slot {s}: confirmed only at its own frame");
            // The line quiet for longer than the match looks back and the suspicion lasts.
            if s >= 120 + FRAMES + usize::from(CONFIRM_WITHIN) {
                assert!(!g.suspects_echo(slot), "slot {s}: suspected on a quiet line");
            }
        }
        let (suspected, confirmed, last) =
            (first_suspected.unwrap(), first_confirmed.unwrap(), last_confirmed.unwrap());
        println!("suspected at {suspected}, confirmed at {confirmed}, last at {last}");
        assert!(
            (40..confirmed).contains(&suspected),
            "suspected from {suspected}, before the match at {confirmed}"
        );
        assert!((100..120 + FRAMES).contains(&last), "confirmed while the echo lasts, not after: {last}");
    }

    #[test]
    fn after_a_match_a_band_needs_the_wider_margin_for_a_second() {
        // The reference steady at 70 dB, the echo predicted at 64 dB after a match raised
        // everything to the start. A caller band at 71 dB stands 7 dB over that prediction: the
        // echo's own during the fresh frames (it needs MARGIN_DB + FRESH_MARGIN_DB), the
        // caller's once they are over (MARGIN_DB).
        let mut g = learnt(-40.0, -30.0);
        g.take_match(Match { lag: 8, gain_db: -6.0 });
        let noise = [20.0; GATE_BANDS];
        // The reference behind the matched lags (written before the gate sees a caller frame).
        for slot in 0..10 {
            g.record(slot, [70; GATE_BANDS]);
        }
        for n in 0..=u64::from(FRESH_FRAMES) {
            let slot = 10 + n;
            g.record(slot, [70; GATE_BANDS]);
            let mask = g.mask(slot, &[71.0; GATE_BANDS], &noise, false, false).unwrap();
            let fresh = n < u64::from(FRESH_FRAMES);
            assert_eq!(mask, [fresh; GATE_BANDS], "slot {slot}");
        }
    }

    #[test]
    fn a_gain_learnt_under_an_echo_in_noise_learns_it_where_the_bounds_allow_it() {
        // A line at 50 dB per band, the reference at 70 dB and its echo 14 dB down (56 dB: the
        // band reads 57 dB), with a gain learnt at -20 dB on the line before the echo opened:
        // the echo that gain predicts (50 dB) would stand under the noise plus 6 dB, too low to
        // be seen by its own measure, and the band, 1.5 dB over what it explains, passes for
        // the caller.
        let noise = [50.0; GATE_BANDS];
        let band = 10.0 * (power(50.0) + power(56.0)).log10();
        let learnt_low = |bound_db: f32| {
            let mut g = EchoGate::new();
            g.gain = [(-20.0 / GAIN_UNIT_DB) as i16; GATE_BANDS];
            for lag in 0..LAGS {
                g.set_bound_db(lag, bound_db);
            }
            g
        };
        // Where the bounds allow an echo that loud (raised by a match, or climbing at the lag the
        // delay estimator is sure of), the band standing over the noise teaches the gain: within
        // a few frames it reads the echo with the noise under it, and the echo is masked.
        let mut g = learnt_low(START_GAIN_DB);
        let masked: Vec<bool> = (0..50)
            .map(|slot| {
                g.record(slot, [70; GATE_BANDS]);
                g.mask(slot, &[band; GATE_BANDS], &noise, false, false).unwrap().iter().all(|&m| m)
            })
            .collect();
        assert!(!masked[0], "the echo was masked before the gain learnt it");
        assert!(masked[20..].iter().all(|&m| m), "{masked:?}");
        for b in 0..GATE_BANDS {
            assert!((g.gain_db(b) + 13.0).abs() <= 2.0, "band {b}: {}", g.gain_db(b));
        }
        // Where the bounds lie under the noise (a line without echo) it does not: the band stays
        // the caller's.
        let mut g = learnt_low(-30.0);
        for slot in 0..50 {
            g.record(slot, [70; GATE_BANDS]);
            assert_eq!(g.mask(slot, &[band; GATE_BANDS], &noise, false, false), Some([false; GATE_BANDS]));
        }
        assert_eq!(g.gain_db(0), -20.0);
    }

    #[test]
    fn the_gain_learns_the_echo_level_and_then_lets_a_softer_caller_through() {
        let mut g = EchoGate::new();
        let noise = [10.0; GATE_BANDS];
        // An echo 15 dB below the reference, for 10 s.
        for slot in 0..500 {
            g.record(slot, [70; GATE_BANDS]);
            assert_eq!(
                g.mask(slot, &[55.0; GATE_BANDS], &noise, false, false),
                Some([true; GATE_BANDS]),
                "slot {slot}"
            );
        }
        for b in 0..GATE_BANDS {
            assert!((g.gain_db(b) + 15.0).abs() <= GAIN_UP_DB, "band {b}: {}", g.gain_db(b));
        }
        // A caller 8 dB below the reference is 7 dB above that echo: theirs, not the echo's.
        g.record(500, [70; GATE_BANDS]);
        assert_eq!(g.mask(500, &[62.0; GATE_BANDS], &noise, false, false), Some([false; GATE_BANDS]));
        // An echo predicted under the line's noise is lost in it and explains nothing: the band
        // is the line's (its noise floor keeps learning from it).
        let mut quiet = EchoGate::new();
        quiet.record(0, [30; GATE_BANDS]);
        assert_eq!(
            quiet.mask(0, &[31.0; GATE_BANDS], &[30.0; GATE_BANDS], false, false),
            Some([false; GATE_BANDS])
        );
        assert_eq!(
            quiet.mask(0, &[34.0; GATE_BANDS], &[30.0; GATE_BANDS], false, false),
            Some([false; GATE_BANDS])
        );
        // Predicted at the noise, it explains a band at the noise plus the margin.
        let mut at_noise = EchoGate::new();
        at_noise.record(0, [36; GATE_BANDS]);
        assert_eq!(
            at_noise.mask(0, &[31.0; GATE_BANDS], &[30.0; GATE_BANDS], false, false),
            Some([true; GATE_BANDS])
        );
        assert_eq!(quiet.gain_db(0), START_GAIN_DB, "nothing learnt under the noise");
    }
}
