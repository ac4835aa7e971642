//! Line quality of a call: the caller's audio as it reached the engine, rated.
//!
//! Three measures, from numbers the engine counts anyway ([`LineQuality::from_stats`]):
//! - the interarrival jitter of RFC 3550 (section 6.4.1), kept as the call runs by
//!   [`InterarrivalJitter`] (a handful of operations per media message);
//! - loss: caller audio the engine never received, and audio that came too late to be placed;
//! - an E-model rating (ITU-T G.107) of those, as an R factor and the MOS it predicts.
//!
//! # The E-model, simplified
//!
//! R = (R0 − Is) − Id − Ie,eff + A, where
//! - R0 − Is = 93.2 ([`R0_MINUS_IS`]): G.107's default basic signal-to-noise ratio less the
//!   simultaneous impairments;
//! - Id is the delay impairment, taken as its Idd term alone (talker and listener echo count as
//!   cancelled): 0 up to 100 ms of one-way mouth-to-ear delay Ta, above that
//!   25·((1 + X⁶)^(1/6) − 3·(1 + (X/3)⁶)^(1/6) + 2) with X = log2(Ta / 100 ms)
//!   ([`delay_impairment`]);
//! - Ie,eff = Ie + (95 − Ie)·Ppl / (Ppl/BurstR + Bpl), Ppl the percentage of audio lost
//!   ([`effective_equipment_impairment`]);
//! - A = 0: no advantage factor (what a wired line is expected to give).
//!
//! and MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶ for 0 < R < 100, 1 below, 4.5 above
//! ([`mos_from_r`]).
//!
//! What [`LineQuality::from_stats`] puts in:
//! - **Codec.** Caller audio is G.711 (µ-law, A-law) or L16. L16 is rated as G.711 (Ie = 0, the
//!   same as G.711's; its wider range is not credited). Lost audio is filled with silence, not
//!   concealed, so the G.113 figure for G.711 *without* packet loss concealment applies:
//!   Bpl = 4.3 ([`CodecImpairment::G711`]; with G.711 Appendix I's concealment it would be 25.1,
//!   [`CodecImpairment::G711_PLC`]).
//! - **Ppl.** The share of the caller's audio that was filled with silence: never received, or
//!   arrived after its place had been filled (for whoever listens, both are lost).
//! - **BurstR = 1.** Loss is taken as random: the engine does not track runs of lost frames.
//! - **Ta.** [`ASSUMED_PATH_DELAY_MS`] (the part of the way the engine cannot see) + the
//!   engine-added latency (the mean time a carrier message waited between the host's push and
//!   its processing) + the jitter buffer's delay (the mean time caller audio was held in the
//!   reorder stage for an earlier gap: in-order audio passes straight through it).

use crate::stats::SessionStats;

/// G.107's default R0 − Is: the basic signal-to-noise ratio less the simultaneous impairments.
pub const R0_MINUS_IS: f64 = 93.2;

/// The one-way delay assumed before the engine, ms: the caller's phone and the carrier's media
/// path to the engine's host, which the engine does not see. A typical figure for a telephone
/// call bridged to a media stream: 20 ms of G.711 framing, about 20 ms of processing and playout
/// buffering at the phone or gateway, about 40 ms of network to the carrier and on to the host.
pub const ASSUMED_PATH_DELAY_MS: f64 = 80.0;

/// A codec's impairment figures from ITU-T G.113 Appendix I.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor Ie (the codec's own distortion).
    pub ie: f64,
    /// Packet-loss robustness factor Bpl.
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 with lost audio replaced by silence (no concealment): what the engine does. L16 is
    /// rated the same.
    pub const G711: Self = Self { ie: 0.0, bpl: 4.3 };
    /// G.711 with the packet loss concealment of G.711 Appendix I (for comparison).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
}

/// The RFC 3550 (section 6.4.1, appendix A.8) interarrival jitter estimate.
///
/// For packets i and j: D(i,j) = (Rj − Ri) − (Sj − Si), R the arrival time, S the media
/// timestamp, both in µs here; after each packet, J += (|D(i−1,i)| − J) / 16.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InterarrivalJitter {
    /// R − S of the previous packet, µs.
    last_transit_us: Option<i64>,
    jitter_us: f64,
}

impl InterarrivalJitter {
    /// No packet yet: J = 0.
    pub const fn new() -> Self {
        Self { last_transit_us: None, jitter_us: 0.0 }
    }

    /// Takes one packet that arrived at `arrival_us` carrying media time `media_us` (its
    /// timestamp; where the carrier sends none, where its audio falls in arrival order).
    #[inline]
    pub fn update(&mut self, arrival_us: u64, media_us: u64) {
        let transit = (arrival_us as i64).wrapping_sub(media_us as i64);
        if let Some(previous) = self.last_transit_us {
            let d = transit.wrapping_sub(previous).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit);
    }

    /// Takes a packet that starts a new timeline (the carrier's timestamps jumped): the packets
    /// after it are compared with it, and the jump itself is not taken for jitter.
    #[inline]
    pub fn resync(&mut self, arrival_us: u64, media_us: u64) {
        self.last_transit_us = None;
        self.update(arrival_us, media_us);
    }

    /// The estimate J, µs.
    pub fn jitter_us(&self) -> f64 {
        self.jitter_us
    }
}

/// G.107's delay impairment Idd for a one-way mouth-to-ear delay of `ta_ms` (the Id used here:
/// see the module docs).
pub fn delay_impairment(ta_ms: f64) -> f64 {
    if ta_ms <= 100.0 {
        return 0.0;
    }
    let x = (ta_ms / 100.0).log2();
    25.0 * ((1.0 + x.powi(6)).powf(1.0 / 6.0) - 3.0 * (1.0 + (x / 3.0).powi(6)).powf(1.0 / 6.0) + 2.0)
}

/// G.107's effective equipment impairment Ie,eff for `codec` with `ppl_percent` % of the audio
/// lost, `burst_r` the burst ratio (1: random loss; above 1: burstier).
pub fn effective_equipment_impairment(codec: CodecImpairment, ppl_percent: f64, burst_r: f64) -> f64 {
    let ppl = ppl_percent.clamp(0.0, 100.0);
    if ppl == 0.0 {
        return codec.ie;
    }
    codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_r.max(f64::MIN_POSITIVE) + codec.bpl)
}

/// The R factor of the simplified E-model (see the module docs) for a one-way delay of `ta_ms`,
/// `codec`, `ppl_percent` % of the audio lost with burst ratio `burst_r`.
pub fn r_factor(ta_ms: f64, codec: CodecImpairment, ppl_percent: f64, burst_r: f64) -> f64 {
    R0_MINUS_IS - delay_impairment(ta_ms) - effective_equipment_impairment(codec, ppl_percent, burst_r)
}

/// The MOS (conversational quality, 1 to 4.5) G.107 predicts for an R factor.
pub fn mos_from_r(r: f64) -> f64 {
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

/// A call's line quality, as of the counters it was computed from (a live call's so far; an
/// ended call's final ones). See the module docs for what goes into the rating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineQuality {
    /// The RFC 3550 interarrival jitter estimate of the caller's media, µs (the estimate after
    /// the latest frame, as an RTCP report gives it).
    pub jitter_us: u64,
    /// Caller audio expected, samples at the carrier's rate: the stream from its first frame to
    /// its last, as delivered (received or filled with silence).
    pub expected_samples: u64,
    /// Of that, audio never received (RFC 3550's cumulative number lost, expected − received,
    /// counted in samples: received audio includes audio that came too late to be used).
    pub lost_samples: u64,
    /// `lost_samples / expected_samples`.
    pub loss_ratio: f64,
    /// Media frames that came after their audio had been filled with silence or delivered
    /// (dropped, so also part of `filled_ratio`).
    pub late_frames: u64,
    /// Media frames that arrived out of order and were put back in place.
    pub reordered_frames: u64,
    /// The share of the expected audio filled with silence (lost, or late): the E-model's Ppl.
    pub filled_ratio: f64,
    /// The one-way mouth-to-ear delay assumed for the rating, ms.
    pub delay_ms: f64,
    /// The E-model's R factor.
    pub r_factor: f64,
    /// The MOS it predicts (1 to 4.5).
    pub mos: f64,
}

impl LineQuality {
    /// The line quality a session's counters describe; `None` before any caller audio was
    /// delivered (there is nothing to rate).
    pub fn from_stats(stats: &SessionStats) -> Option<Self> {
        let expected = stats.inbound_samples;
        if expected == 0 {
            return None;
        }
        let filled = stats.gap_fill_samples.min(expected);
        // Expected − received, where received = delivered audio + audio that came late. Like
        // RFC 3550's count it can come out negative (a late frame that overlapped audio that
        // was received, not filled): taken as 0.
        let lost = filled.saturating_sub(stats.late_samples);
        let mean = |total_us: u64, n: u64| if n == 0 { 0.0 } else { total_us as f64 / n as f64 / 1000.0 };
        let engine_ms = mean(stats.message_wait_us, stats.messages_in);
        let jitter_buffer_ms = mean(stats.reorder_wait_us, stats.media_frames_in);
        let delay_ms = ASSUMED_PATH_DELAY_MS + engine_ms + jitter_buffer_ms;
        let filled_ratio = filled as f64 / expected as f64;
        let r = r_factor(delay_ms, CodecImpairment::G711, 100.0 * filled_ratio, 1.0);
        Some(Self {
            jitter_us: stats.jitter_us,
            expected_samples: expected,
            lost_samples: lost,
            loss_ratio: lost as f64 / expected as f64,
            late_frames: stats.frames_late,
            reordered_frames: stats.frames_reordered,
            filled_ratio,
            delay_ms,
            r_factor: r,
            mos: mos_from_r(r),
        })
    }
}

impl SessionStats {
    /// The line quality these counters describe (see [`LineQuality::from_stats`]).
    pub fn line_quality(&self) -> Option<LineQuality> {
        LineQuality::from_stats(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn mos_of_hand_computed_r_factors() {
        // R = 93.2: 1 + 3.262 + 93.2 · 33.2 · 6.8 · 7e-6 = 4.262 + 0.147286 = 4.409.
        assert!(close(mos_from_r(93.2), 4.409286, 1e-6), "{}", mos_from_r(93.2));
        assert_eq!((mos_from_r(93.2) * 100.0).round() / 100.0, 4.41);
        // R = 50: 1 + 1.75 + 50 · (−10) · 50 · 7e-6 = 2.75 − 0.175.
        assert!(close(mos_from_r(50.0), 2.575, 1e-9));
        // R = 70: 1 + 2.45 + 70 · 10 · 30 · 7e-6 = 3.45 + 0.147.
        assert!(close(mos_from_r(70.0), 3.597, 1e-9));
        // Outside 0..100 the formula does not apply.
        assert_eq!(
            (mos_from_r(-3.0), mos_from_r(0.0), mos_from_r(100.0), mos_from_r(120.0)),
            (1.0, 1.0, 4.5, 4.5)
        );
    }

    #[test]
    fn delay_impairment_matches_the_g107_formula_by_hand() {
        assert_eq!(delay_impairment(0.0), 0.0);
        assert_eq!(delay_impairment(100.0), 0.0);
        // Ta = 200 ms: X = 1. (1 + 1)^(1/6) = 1.122462; (1 + 3^-6)^(1/6) = 1.000229;
        // 25 · (1.122462 − 3.000686 + 2) = 3.0444.
        assert!(close(delay_impairment(200.0), 3.0444, 1e-3), "{}", delay_impairment(200.0));
        // Ta = 400 ms: X = 2. 65^(1/6) = 2.005175; (1 + (2/3)^6)^(1/6) = 1.014124;
        // 25 · (2.005175 − 3.042373 + 2) = 24.0700.
        assert!(close(delay_impairment(400.0), 24.070, 1e-2), "{}", delay_impairment(400.0));
        // It grows with the delay, continuously from 0 at 100 ms.
        assert!(delay_impairment(100.5) < 1e-6);
        let mut previous = 0.0;
        for ta in (101..1000).step_by(7) {
            let id = delay_impairment(f64::from(ta));
            assert!(id > previous, "{ta} ms");
            previous = id;
        }
    }

    #[test]
    fn effective_equipment_impairment_by_hand() {
        let g711 = CodecImpairment::G711;
        assert_eq!(effective_equipment_impairment(g711, 0.0, 1.0), 0.0);
        // 1 % random loss: 95 · 1 / (1 + 4.3) = 17.9245.
        assert!(close(effective_equipment_impairment(g711, 1.0, 1.0), 17.9245, 1e-4));
        // 5 %: 95 · 5 / (5 + 4.3) = 51.0753.
        assert!(close(effective_equipment_impairment(g711, 5.0, 1.0), 51.0753, 1e-4));
        // With concealment the same loss costs less: 95 · 5 / (5 + 25.1) = 15.7807.
        assert!(close(effective_equipment_impairment(CodecImpairment::G711_PLC, 5.0, 1.0), 15.7807, 1e-4));
        // Bursty loss (BurstR 2) costs more than random: 95 · 5 / (2.5 + 4.3) = 69.8529.
        assert!(close(effective_equipment_impairment(g711, 5.0, 2.0), 69.8529, 1e-4));
        // A codec's own impairment is the floor: Ie = 10, 1 %: 10 + 85 / 5.3 = 26.0377.
        let other = CodecImpairment { ie: 10.0, bpl: 4.3 };
        assert!(close(effective_equipment_impairment(other, 1.0, 1.0), 26.0377, 1e-4));
    }

    #[test]
    fn r_and_mos_of_whole_calls_by_hand() {
        // No loss, 80 ms: R = 93.2, MOS 4.41.
        let r = r_factor(80.0, CodecImpairment::G711, 0.0, 1.0);
        assert_eq!(r, 93.2);
        // 1 % loss at 200 ms: R = 93.2 − 3.0444 − 17.9245 = 72.2311;
        // MOS = 1 + 2.52809 + 72.2311 · 12.2311 · 27.7689 · 7e-6 = 3.52809 + 0.171733 = 3.6998.
        let r = r_factor(200.0, CodecImpairment::G711, 1.0, 1.0);
        assert!(close(r, 72.2311, 1e-3), "{r}");
        assert!(close(mos_from_r(r), 3.6998, 1e-3), "{}", mos_from_r(r));
    }

    #[test]
    fn jitter_follows_rfc3550_on_a_hand_worked_sequence() {
        let mut j = InterarrivalJitter::new();
        // Media 0, 20, 40, 60 ms arriving at 100, 125, 140, 160 ms: transits 100, 105, 100,
        // 100 ms; |D| = 5, 5, 0 ms. J = 5/16 = 0.3125; + (5 − 0.3125)/16 = 0.605469;
        // + (0 − 0.605469)/16 = 0.567627 ms.
        for (arrival, media) in [(100_000, 0), (125_000, 20_000), (140_000, 40_000), (160_000, 60_000)] {
            j.update(arrival, media);
        }
        assert!(close(j.jitter_us(), 567.627, 1e-3), "{}", j.jitter_us());
        // A steady stream after that decays it by 15/16 per packet.
        let before = j.jitter_us();
        j.update(180_000, 80_000);
        assert!(close(j.jitter_us(), before * 15.0 / 16.0, 1e-9));
    }

    fn stats(expected: u64, filled: u64, late_samples: u64) -> SessionStats {
        SessionStats {
            inbound_samples: expected,
            gap_fill_samples: filled,
            late_samples,
            messages_in: 100,
            media_frames_in: 100,
            ..Default::default()
        }
    }

    #[test]
    fn loss_and_rating_from_counters() {
        assert_eq!(SessionStats::default().line_quality(), None);
        let clean = stats(16_000, 0, 0).line_quality().unwrap();
        assert_eq!((clean.loss_ratio, clean.filled_ratio, clean.delay_ms), (0.0, 0.0, 80.0));
        assert_eq!(clean.r_factor, 93.2);
        // 2 % of the audio filled, half of it by frames that came late: 1 % never received;
        // the rating counts all 2 %: R = 93.2 − 95 · 2 / 6.3 = 63.0413.
        let q = stats(16_000, 320, 160).line_quality().unwrap();
        assert_eq!((q.lost_samples, q.loss_ratio, q.filled_ratio), (160, 0.01, 0.02));
        assert!(close(q.r_factor, 63.0413, 1e-3), "{}", q.r_factor);
        assert!(q.mos < clean.mos);
        // A late frame over received audio makes received exceed expected: no negative loss.
        assert_eq!(stats(16_000, 0, 160).line_quality().unwrap().lost_samples, 0);
        // The engine's latency and the reorder stage's holds add to the delay: 100 messages that
        // waited 5 ms each, 100 frames of which some were held for 30 ms in all → 80 + 5 + 0.3.
        let slow = SessionStats { message_wait_us: 500_000, reorder_wait_us: 30_000, ..stats(16_000, 0, 0) };
        assert!(close(slow.line_quality().unwrap().delay_ms, 85.3, 1e-9));
    }
}
