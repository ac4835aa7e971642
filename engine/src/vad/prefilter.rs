//! Pre-filter in front of the VAD: removes DC and mains hum (50/60 Hz and low harmonics).
//!
//! Why: a DC offset or hum on an analogue leg of the call puts steady energy into webrtc-vad's
//! lowest band (80–250 Hz), which it can take for voicing before its noise model has adapted. The
//! telephone band starts around 300 Hz anyway, so nothing the VAD needs lives below ~200 Hz: a
//! steep high-pass costs no speech evidence and kills DC, the 50/60 Hz fundamentals and their
//! 100/120/150/180 Hz harmonics. Speech keeps its harmonics above 200 Hz even for low voices.

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

/// One second-order IIR section, transposed direct form II, f32 state.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b0: f32,
    b1: f32,
    b2: f32,
    a1: f32,
    a2: f32,
    s1: f32,
    s2: f32,
}

impl Biquad {
    /// Builds a section from RBJ-cookbook coefficients (normalised by `a0`).
    fn from_coefficients(b: [f64; 3], a: [f64; 3]) -> Self {
        let n = 1.0 / a[0];
        Self {
            b0: (b[0] * n) as f32,
            b1: (b[1] * n) as f32,
            b2: (b[2] * n) as f32,
            a1: (a[1] * n) as f32,
            a2: (a[2] * n) as f32,
            s1: 0.0,
            s2: 0.0,
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

    /// Gain at DC.
    fn dc_gain(&self) -> f32 {
        (self.b0 + self.b1 + self.b2) / (1.0 + self.a1 + self.a2)
    }

    /// Sets the state to the steady state for a constant input `x` and returns the steady output.
    /// Why: starting from zero state, a DC offset would look like a step and ring through the
    /// high-pass as a click at stream start.
    fn prime(&mut self, x: f32) -> f32 {
        let y = self.dc_gain() * x;
        self.s2 = self.b2 * x - self.a2 * y;
        self.s1 = self.b1 * x - self.a1 * y + self.s2;
        y
    }

    /// Filters one sample.
    #[inline]
    fn process(&mut self, x: f32) -> f32 {
        let y = self.b0 * x + self.s1;
        self.s1 = self.b1 * x - self.a1 * y + self.s2;
        self.s2 = self.b2 * x - self.a2 * y;
        y
    }

    /// Flushes near-denormal state to zero.
    fn flush_denormals(&mut self) {
        if self.s1.abs() < DENORMAL_FLOOR {
            self.s1 = 0.0;
        }
        if self.s2.abs() < DENORMAL_FLOOR {
            self.s2 = 0.0;
        }
    }
}

/// DC and mains-hum filter for 8 kHz audio: 4th-order Butterworth high-pass at 180 Hz plus notches
/// at 150 and 180 Hz. Streaming, allocation-free, state kept across calls.
#[derive(Debug, Clone)]
pub(crate) struct HumFilter {
    sections: [Biquad; SECTIONS],
}

impl HumFilter {
    /// Builds the filter with zero state.
    pub(crate) fn new() -> Self {
        Self {
            sections: [
                Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[0]),
                Biquad::high_pass(HIGH_PASS_HZ, BUTTERWORTH4_Q[1]),
                Biquad::notch(NOTCH_HZ[0], NOTCH_Q),
                Biquad::notch(NOTCH_HZ[1], NOTCH_Q),
            ],
        }
    }

    /// Puts the filter in the steady state for a constant input `x` (the first sample of a stream
    /// or of the audio after a discontinuity), so a DC offset does not start with a click.
    pub(crate) fn prime(&mut self, x: i16) {
        let mut v = f32::from(x);
        for s in &mut self.sections {
            v = s.prime(v);
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
        for (o, &x) in output.iter_mut().zip(input) {
            let mut v = f32::from(x);
            for s in &mut self.sections {
                v = s.process(v);
            }
            // Rounds half away from zero like `f32::round`, without its libm call (baseline
            // x86-64 has no rounding instruction; the call was 8 % of a duplex frame). `as`
            // truncates and saturates, so loud clipped input cannot wrap around.
            *o = (v + 0.5f32.copysign(v)) as i16;
        }
        for s in &mut self.sections {
            s.flush_denormals();
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
    fn primed_dc_gives_no_click() {
        let mut f = HumFilter::new();
        f.prime(3_000);
        let input = [3_000i16; 160];
        let mut out = [0i16; 160];
        f.process(&input, &mut out);
        assert!(out.iter().all(|&y| y.abs() <= 1), "{out:?}");
    }
}
