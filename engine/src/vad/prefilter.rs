//! Pre-filter in front of the VAD: removes DC and mains hum (50/60 Hz and low harmonics).
//!
//! Why: a DC offset or hum on an analogue leg of the call puts steady energy into webrtc-vad's
//! lowest band (80–250 Hz), which it can take for voicing before its noise model has adapted. The
//! telephone band starts around 300 Hz anyway, so nothing the VAD needs lives below ~200 Hz: a
//! steep high-pass costs no speech evidence and kills DC, the 50/60 Hz fundamentals and their
//! 100/120/150/180 Hz harmonics. Speech keeps its harmonics above 200 Hz even for low voices.

use crate::audio::to_i16;
use std::f64::consts::PI;

/// Sample rate the filter is designed for.
const SAMPLE_RATE_HZ: f64 = 8_000.0;

/// High-pass corner (Hz). 4th-order Butterworth: 180 Hz → −3 dB, 120 Hz → −14 dB, 60 Hz → −38 dB.
const HIGH_PASS_HZ: f64 = 180.0;

/// Q of the two sections of a 4th-order Butterworth high-pass (1 / (2 cos(π/8)), 1 / (2 cos(3π/8))).
const BUTTERWORTH4_Q: [f64; 2] = [0.541_196_1, 1.306_563];

/// Notches on mains harmonics that fall close to the high-pass corner, where it is still weak:
/// 150 Hz (3 × 50) and 180 Hz (3 × 60).
const NOTCH_HZ: [f64; 2] = [150.0, 180.0];

/// Quality factor of the notches: −3 dB bandwidth 50–60 Hz, all below the 300 Hz telephone band.
/// Why not narrower: a narrow notch rings for tens of ms after a loud click, and webrtc-vad reads
/// that ringing as more speech frames (Q 8 turned a 60 ms burst into 120 ms of "speech").
const NOTCH_Q: f64 = 3.0;

/// Sections in the cascade: two high-pass sections and the notches.
const SECTIONS: usize = BUTTERWORTH4_Q.len() + NOTCH_HZ.len();

/// Values smaller than this in the filter state are flushed to zero. Why: after the input goes to
/// digital silence the state decays towards denormals, which are very slow on x86.
const DENORMAL_FLOOR: f32 = 1e-15;

/// One second-order IIR section's coefficients (normalised by `a0`), in the form the update
/// uses: `y = b0·x + s1`, `s1' = k1·x + s2 − a1·s1`, `s2' = k2·x − a2·s1`.
///
/// The states are those of transposed direct form II; `k1 = b1 − a1·b0` and `k2 = b2 − a2·b0`
/// substitute `y` out of the state update, so the path from one sample's state to the next is
/// one multiply and one add (the textbook `b1·x − a1·y + s2` has `y`, one more add, on it).
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f32,
    k1: f32,
    k2: f32,
    a1: f32,
    a2: f32,
    /// `(b0 + b1 + b2) / (1 + a1 + a2)`.
    dc_gain: f32,
    /// `b1` and `b2`, for the steady state (see [`HumFilter::prime`]).
    b1: f32,
    b2: f32,
}

impl Biquad {
    /// Builds a section from RBJ-cookbook coefficients.
    fn from_coefficients(b: [f64; 3], a: [f64; 3]) -> Self {
        let [b0, b1, b2, a1, a2] = [b[0] / a[0], b[1] / a[0], b[2] / a[0], a[1] / a[0], a[2] / a[0]];
        Self {
            b0: b0 as f32,
            k1: (b1 - a1 * b0) as f32,
            k2: (b2 - a2 * b0) as f32,
            a1: a1 as f32,
            a2: a2 as f32,
            dc_gain: ((b0 + b1 + b2) / (1.0 + a1 + a2)) as f32,
            b1: b1 as f32,
            b2: b2 as f32,
        }
    }

    /// RBJ high-pass at `hz` with quality `q`.
    fn high_pass(hz: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * hz / SAMPLE_RATE_HZ;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        Self::from_coefficients(
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0],
            [1.0 + alpha, -2.0 * cos, 1.0 - alpha],
        )
    }

    /// RBJ notch at `hz` with quality `q`.
    fn notch(hz: f64, q: f64) -> Self {
        let w0 = 2.0 * PI * hz / SAMPLE_RATE_HZ;
        let (sin, cos) = w0.sin_cos();
        let alpha = sin / (2.0 * q);
        Self::from_coefficients([1.0, -2.0 * cos, 1.0], [1.0 + alpha, -2.0 * cos, 1.0 - alpha])
    }
}

/// The cascade's coefficients and states, one lane per section.
#[derive(Debug, Clone, Copy)]
struct Lanes {
    b0: [f32; SECTIONS],
    k1: [f32; SECTIONS],
    k2: [f32; SECTIONS],
    a1: [f32; SECTIONS],
    a2: [f32; SECTIONS],
    s1: [f32; SECTIONS],
    s2: [f32; SECTIONS],
}

impl Lanes {
    /// Filters `x` through section `k` alone.
    #[inline(always)]
    fn section(&mut self, k: usize, x: f32) -> f32 {
        let y = self.b0[k] * x + self.s1[k];
        let s1 = self.k1[k] * x + self.s2[k] - self.a1[k] * self.s1[k];
        self.s2[k] = self.k2[k] * x - self.a2[k] * self.s1[k];
        self.s1[k] = s1;
        y
    }

    /// One wavefront step: section `k` filters `x[k]`, every section at once ([`Self::section`]
    /// lane by lane, which the compiler vectorises: the lanes are independent).
    #[inline(always)]
    fn all_sections(&mut self, x: [f32; SECTIONS]) -> [f32; SECTIONS] {
        std::array::from_fn(|k| self.section(k, x[k]))
    }

    /// Filters `x` through the whole cascade, one section after the other.
    #[inline(always)]
    fn cascade(&mut self, x: f32) -> f32 {
        (0..SECTIONS).fold(x, |v, k| self.section(k, v))
    }
}

/// DC and mains-hum filter for 8 kHz audio: 4th-order Butterworth high-pass at 180 Hz plus notches
/// at 150 and 180 Hz. Streaming, allocation-free, state kept across calls.
///
/// The four sections run as a wavefront: at step `t` section `k` filters sample `t − k`, so the
/// four are independent within a step and run as one 4-lane vector operation. Run one after the
/// other per sample, they were a chain of dependent scalar operations, 40 % of the VAD's time.
#[derive(Debug, Clone)]
pub(crate) struct HumFilter {
    lanes: Lanes,
    dc_gain: [f32; SECTIONS],
    b1: [f32; SECTIONS],
    b2: [f32; SECTIONS],
}

impl HumFilter {
    /// Builds the filter with zero state.
    pub(crate) fn new() -> Self {
        let sections = [
            Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[0]),
            Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[1]),
            Biquad::notch(NOTCH_HZ[0], NOTCH_Q),
            Biquad::notch(NOTCH_HZ[1], NOTCH_Q),
        ];
        let lane = |f: fn(&Biquad) -> f32| sections.map(|s| f(&s));
        Self {
            lanes: Lanes {
                b0: lane(|s| s.b0),
                k1: lane(|s| s.k1),
                k2: lane(|s| s.k2),
                a1: lane(|s| s.a1),
                a2: lane(|s| s.a2),
                s1: [0.0; SECTIONS],
                s2: [0.0; SECTIONS],
            },
            dc_gain: lane(|s| s.dc_gain),
            b1: lane(|s| s.b1),
            b2: lane(|s| s.b2),
        }
    }

    /// Puts the filter in the steady state for a constant input `x` (the first sample of a stream
    /// or of the audio after a discontinuity), so a DC offset does not start with a click.
    // why: starting from zero state, a DC offset would look like a step and ring through the
    // high-pass as a click at stream start.
    pub(crate) fn prime(&mut self, x: i16) {
        let mut v = f32::from(x);
        for k in 0..SECTIONS {
            let y = self.dc_gain[k] * v;
            self.lanes.s2[k] = self.b2[k] * v - self.lanes.a2[k] * y;
            self.lanes.s1[k] = self.b1[k] * v - self.lanes.a1[k] * y + self.lanes.s2[k];
            v = y;
        }
    }

    /// Clears the state.
    pub(crate) fn reset(&mut self) {
        self.prime(0);
    }

    /// Filters `input` into `output` (same length) and flushes denormals at the end. Why per
    /// block: flushing per sample would cost more than denormals can within a block.
    pub(crate) fn process(&mut self, input: &[i16], output: &mut [i16]) {
        debug_assert_eq!(input.len(), output.len());
        const LAG: usize = SECTIONS - 1;
        let n = input.len();
        let lanes = &mut self.lanes;
        if n <= LAG {
            for (o, &x) in output.iter_mut().zip(input) {
                *o = to_i16(lanes.cascade(f32::from(x)));
            }
        } else {
            // Fill the wavefront: section k takes samples 0..LAG-k one at a time, so that at
            // step LAG section k is due to filter sample LAG - k.
            let mut carry = [0.0f32; SECTIONS];
            for (t, &x) in input.iter().enumerate().take(LAG) {
                let mut v = f32::from(x);
                for (k, slot) in carry.iter_mut().enumerate().take(LAG - t) {
                    v = lanes.section(k, v);
                    *slot = v;
                }
            }
            // carry[k] is now section k's output for sample LAG - 1 - k.
            for t in LAG..n {
                const _: () = assert!(SECTIONS == 4, "the step below shifts four lanes");
                let x = [f32::from(input[t]), carry[0], carry[1], carry[2]];
                carry = lanes.all_sections(x);
                output[t - LAG] = to_i16(carry[LAG]);
            }
            // Drain: section k still owes samples n - k .. n (k ≥ 1).
            for (t, out) in output.iter_mut().enumerate().skip(n - LAG) {
                // Sections 0 ..= n - 1 - t have filtered sample t already.
                let first = n - t;
                let mut v = carry[first - 1];
                for (k, slot) in carry.iter_mut().enumerate().skip(first) {
                    v = lanes.section(k, v);
                    *slot = v;
                }
                *out = to_i16(v);
            }
        }
        for state in lanes.s1.iter_mut().chain(lanes.s2.iter_mut()) {
            if state.abs() < DENORMAL_FLOOR {
                *state = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady-state RMS gain of the filter for a sine at `hz`.
    fn gain_at(hz: f64) -> f64 {
        let mut f = HumFilter::new();
        let n = 8_000;
        let input: Vec<i16> =
            (0..n).map(|i| (10_000.0 * (2.0 * PI * hz * i as f64 / SAMPLE_RATE_HZ).sin()) as i16).collect();
        let mut out = vec![0i16; n];
        f.process(&input, &mut out);
        // Skip the first half second (transient).
        let rms = |v: &[i16]| (v.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        rms(&out[4_000..]) / rms(&input[4_000..])
    }

    fn db(g: f64) -> f64 {
        20.0 * g.max(1e-9).log10()
    }

    #[test]
    fn removes_hum_keeps_speech_band() {
        for hz in [50.0, 60.0] {
            assert!(db(gain_at(hz)) < -35.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
        for hz in [100.0, 120.0, 150.0, 180.0] {
            assert!(db(gain_at(hz)) < -15.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
        for hz in [300.0, 1_000.0, 3_000.0] {
            assert!(db(gain_at(hz)).abs() < 1.0, "{hz} Hz: {} dB", db(gain_at(hz)));
        }
    }

    #[test]
    fn wavefront_equals_the_sections_one_after_the_other_for_any_chunking() {
        let mut rng = crate::test_rng::XorShift(0x2545_f491_4f6c_dd1d);
        let mut next = move |bound: u64| rng.below(bound);
        let input: Vec<i16> = (0..4_000).map(|_| (next(65_536) as i32 - 32_768) as i16).collect();
        let mut reference = HumFilter::new();
        reference.prime(input[0]);
        let expected: Vec<i16> =
            input.iter().map(|&x| to_i16(reference.lanes.cascade(f32::from(x)))).collect();

        let mut filter = HumFilter::new();
        filter.prime(input[0]);
        let mut output = vec![0i16; input.len()];
        let mut at = 0;
        while at < input.len() {
            let n = (next(12) as usize).min(input.len() - at);
            let n = if next(4) == 0 { (n * 40).min(input.len() - at) } else { n };
            filter.process(&input[at..at + n], &mut output[at..at + n]);
            at += n;
        }
        assert_eq!(output, expected);
    }

    #[test]
    fn primed_dc_gives_no_click() {
        let mut f = HumFilter::new();
        f.prime(3_000);
        let input = [3_000i16; 160];
        let mut out = [0i16; 160];
        f.process(&input, &mut out);
        assert!(out.iter().all(|&y| y.abs() <= 1), "{out:?}");
    }
}
