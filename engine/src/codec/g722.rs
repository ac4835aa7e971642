//! G.722 (ITU-T G.722, 64 kbit/s mode): 16 kHz audio, one byte per pair of samples, the
//! sub-band ADPCM of the ITU reference (the quadrature mirror filters, then a 6-bit low band and
//! a 2-bit high band), with the arithmetic of the reference's fixed-point blocks so that codes and
//! samples are bit-exact with the widely used reference port (SpanDSP's / CMU's).
//!
//! Written here rather than taken from a crate: the Rust ports published so far return a fresh
//! `Vec` per call (an allocation on the worker, which the engine forbids after a stream starts)
//! and bring an async runtime along; this one encodes and decodes into the caller's buffers and
//! is two small state structs, built when a stream that uses G.722 starts.
//!
//! RTP calls G.722's clock 8000 Hz (RFC 3551's historical error); the audio is 16 kHz whatever a
//! carrier announces, and the dialects take it as such.

/// Samples per second of G.722 audio.
pub const G722_RATE: u32 = 16_000;

/// Bytes of a 20 ms frame (320 samples, two per byte).
pub const G722_FRAME_20MS: usize = 160;

/// The QMF's coefficients (G.722 Table 11, half of its symmetric 24 taps).
const QMF: [i32; 12] = [3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11];
/// Low band: logarithmic scale factor adaptation (WL) and the 4-bit code's magnitude class (RIL).
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
const RL42: [i32; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];
/// Inverse log base 2 table (ILB).
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896,
    2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];
/// High band: scale factor adaptation, magnitude class, inverse quantizer.
const WH: [i32; 3] = [0, -214, 798];
const RH2: [i32; 4] = [2, 1, 2, 1];
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Low band inverse quantizers: 4 bits (for the predictor) and 6 bits (for the output).
const QM4: [i32; 16] =
    [0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0];
const QM6: [i32; 64] = [
    -136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360,
    -8576, -7856, -7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688,
    -1360, -1040, -728, 24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856,
    7192, 6576, 6000, 5456, 4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136,
    -432, -136,
];
/// Low band quantizer decision levels (Q6) and the codes of each interval, negative and positive.
const Q6: [i32; 32] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121,
    1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0,
];
const ILN: [i32; 32] = [
    0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8,
    7, 6, 5, 4, 0,
];
const ILP: [i32; 32] = [
    0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37,
    36, 35, 34, 33, 32, 0,
];
const IHN: [i32; 3] = [0, 1, 0];
const IHP: [i32; 3] = [0, 3, 2];

fn saturate(x: i32) -> i32 {
    x.clamp(i32::from(i16::MIN), i32::from(i16::MAX))
}

/// One sub-band's adaptive predictor and scale factor.
#[derive(Debug, Clone, Copy, Default)]
struct Band {
    s: i32,
    sp: i32,
    sz: i32,
    r: [i32; 3],
    a: [i32; 3],
    ap: [i32; 3],
    p: [i32; 3],
    d: [i32; 7],
    b: [i32; 7],
    bp: [i32; 7],
    sg: [i32; 7],
    nb: i32,
    det: i32,
}

impl Band {
    /// The reference's reset: a scale factor of 32 (low band) or 8 (high band), all else zero.
    fn new(det: i32) -> Self {
        Self { det, ..Self::default() }
    }

    /// Block 3: the logarithmic scale factor (`nb`) adapted by `w`, limited to `max`, and the
    /// linear one (`det`) from it; `shift` is 8 for the low band, 10 for the high.
    fn scale(&mut self, w: i32, max: i32, shift: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, max);
        let index = ((self.nb >> 6) & 31) as usize;
        let exp = shift - (self.nb >> 11);
        let det = if exp < 0 { ILB[index] << -exp } else { ILB[index] >> exp };
        self.det = det << 2;
    }

    /// Block 4: reconstruction, pole and zero predictor adaptation, and the next prediction,
    /// from the quantized difference `d`.
    fn update(&mut self, d: i32) {
        self.d[0] = d;
        self.r[0] = saturate(self.s + d);
        self.p[0] = saturate(self.sz + d);

        // UPPOL2
        for i in 0..3 {
            self.sg[i] = self.p[i] >> 15;
        }
        let wd1 = saturate(self.a[1] << 2);
        let wd2 = if self.sg[0] == self.sg[1] { -wd1 } else { wd1 }.min(32767);
        let mut wd3 = (wd2 >> 7) + if self.sg[0] == self.sg[2] { 128 } else { -128 };
        wd3 += (self.a[2] * 32512) >> 15;
        self.ap[2] = wd3.clamp(-12288, 12288);

        // UPPOL1
        self.sg[0] = self.p[0] >> 15;
        self.sg[1] = self.p[1] >> 15;
        let wd1 = if self.sg[0] == self.sg[1] { 192 } else { -192 };
        let wd2 = (self.a[1] * 32640) >> 15;
        self.ap[1] = saturate(wd1 + wd2);
        let limit = saturate(15360 - self.ap[2]);
        self.ap[1] = self.ap[1].clamp(-limit, limit);

        // UPZERO
        let step = if d == 0 { 0 } else { 128 };
        self.sg[0] = d >> 15;
        for i in 1..7 {
            self.sg[i] = self.d[i] >> 15;
            let wd2 = if self.sg[i] == self.sg[0] { step } else { -step };
            let wd3 = (self.b[i] * 32640) >> 15;
            self.bp[i] = saturate(wd2 + wd3);
        }

        // DELAYZ, DELAYA
        for i in (1..7).rev() {
            self.d[i] = self.d[i - 1];
            self.b[i] = self.bp[i];
        }
        for i in (1..3).rev() {
            self.r[i] = self.r[i - 1];
            self.p[i] = self.p[i - 1];
            self.a[i] = self.ap[i];
        }

        // FILTEP, FILTEZ, PREDIC
        let wd1 = (self.a[1] * saturate(self.r[1] + self.r[1])) >> 15;
        let wd2 = (self.a[2] * saturate(self.r[2] + self.r[2])) >> 15;
        self.sp = saturate(wd1 + wd2);
        let mut sz = 0;
        for i in (1..7).rev() {
            sz += (self.b[i] * saturate(self.d[i] + self.d[i])) >> 15;
        }
        self.sz = saturate(sz);
        self.s = saturate(self.sp + self.sz);
    }
}

/// A G.722 encoder (64 kbit/s): 16 kHz samples to codes, state kept across calls.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    x: [i32; 24],
    band: [Band; 2],
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// An encoder in the reference's initial state.
    pub fn new() -> Self {
        Self { x: [0; 24], band: [Band::new(32), Band::new(8)] }
    }

    /// Encodes `min(input.len() / 2, output.len())` sample pairs into as many bytes; returns that
    /// count of bytes. An odd last sample is left for the caller (G.722 codes pairs).
    pub fn encode(&mut self, input: &[i16], output: &mut [u8]) -> usize {
        let n = (input.len() / 2).min(output.len());
        for (pair, code) in input.chunks_exact(2).zip(output.iter_mut()).take(n) {
            *code = self.encode_pair(pair[0], pair[1]);
        }
        n
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        // Transmit QMF: the two band signals at 8 kHz.
        self.x.copy_within(2.., 0);
        self.x[22] = i32::from(first);
        self.x[23] = i32::from(second);
        let (mut sumeven, mut sumodd) = (0, 0);
        for i in 0..12 {
            sumodd += self.x[2 * i] * QMF[i];
            sumeven += self.x[2 * i + 1] * QMF[11 - i];
        }
        let xlow = (sumeven + sumodd) >> 14;
        let xhigh = (sumeven - sumodd) >> 14;

        // Low band: SUBTRA, QUANTL, INVQAL, LOGSCL, SCALEL, then the predictor.
        let low = &mut self.band[0];
        let el = saturate(xlow - low.s);
        let wd = if el >= 0 { el } else { -(el + 1) };
        let mut i = 1;
        while i < 30 && wd >= (Q6[i] * low.det) >> 12 {
            i += 1;
        }
        let ilow = if el < 0 { ILN[i] } else { ILP[i] };
        let ril = (ilow >> 2) as usize;
        let dlow = (low.det * QM4[ril]) >> 15;
        low.scale(WL[RL42[ril] as usize], 18432, 8);
        low.update(dlow);

        // High band: SUBTRA, QUANTH, INVQAH, LOGSCH, SCALEH, then the predictor.
        let high = &mut self.band[1];
        let eh = saturate(xhigh - high.s);
        let wd = if eh >= 0 { eh } else { -(eh + 1) };
        let mih = if wd >= (564 * high.det) >> 12 { 2 } else { 1 };
        let ihigh = if eh < 0 { IHN[mih] } else { IHP[mih] };
        let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
        high.scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        high.update(dhigh);

        ((ihigh << 6) | ilow) as u8
    }
}

/// A G.722 decoder (64 kbit/s): codes to 16 kHz samples, state kept across calls.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    x: [i32; 24],
    band: [Band; 2],
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A decoder in the reference's initial state.
    pub fn new() -> Self {
        Self { x: [0; 24], band: [Band::new(32), Band::new(8)] }
    }

    /// Decodes `min(input.len(), output.len() / 2)` bytes into twice as many samples; returns the
    /// count of samples written.
    pub fn decode(&mut self, input: &[u8], output: &mut [i16]) -> usize {
        let n = input.len().min(output.len() / 2);
        for (&code, pair) in input.iter().zip(output.chunks_exact_mut(2)).take(n) {
            let (a, b) = self.decode_byte(code);
            pair[0] = a;
            pair[1] = b;
        }
        2 * n
    }

    fn decode_byte(&mut self, code: u8) -> (i16, i16) {
        let code = i32::from(code);
        let ilow = code & 0x3f;
        let ihigh = (code >> 6) & 0x3;

        // Low band: the 6-bit inverse quantizer gives the output, the 4-bit one the predictor's
        // input (INVQBL, RECONS, LIMIT, INVQAL, LOGSCL, SCALEL).
        let low = &mut self.band[0];
        let rlow = (low.s + ((low.det * QM6[ilow as usize]) >> 15)).clamp(-16384, 16383);
        let ril = (ilow >> 2) as usize;
        let dlow = (low.det * QM4[ril]) >> 15;
        low.scale(WL[RL42[ril] as usize], 18432, 8);
        low.update(dlow);

        // High band.
        let high = &mut self.band[1];
        let dhigh = (high.det * QM2[ihigh as usize]) >> 15;
        let rhigh = (dhigh + high.s).clamp(-16384, 16383);
        high.scale(WH[RH2[ihigh as usize] as usize], 22528, 10);
        high.update(dhigh);

        // Receive QMF: the two bands back to two 16 kHz samples.
        self.x.copy_within(2.., 0);
        self.x[22] = rlow + rhigh;
        self.x[23] = rlow - rhigh;
        let (mut xout1, mut xout2) = (0, 0);
        for i in 0..12 {
            xout2 += self.x[2 * i] * QMF[i];
            xout1 += self.x[2 * i + 1] * QMF[11 - i];
        }
        (saturate(xout1 >> 11) as i16, saturate(xout2 >> 11) as i16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(len: usize, hz: f64, amplitude: f64) -> Vec<i16> {
        (0..len)
            .map(|n| (amplitude * (2.0 * std::f64::consts::PI * hz * n as f64 / 16_000.0).sin()) as i16)
            .collect()
    }

    /// Signal-to-noise ratio of `b` against `a` in dB, `b` delayed by `delay` samples.
    fn snr_db(a: &[i16], b: &[i16], delay: usize) -> f64 {
        let pairs = a.iter().zip(&b[delay..]);
        let (mut signal, mut noise) = (0.0, 0.0);
        for (&x, &y) in pairs {
            signal += f64::from(x).powi(2);
            noise += (f64::from(x) - f64::from(y)).powi(2);
        }
        10.0 * (signal / noise.max(1.0)).log10()
    }

    #[test]
    fn a_sine_in_either_band_survives_a_round_trip() {
        // The QMF pair delays the signal by 22 samples; G.722 at 64 kbit/s keeps a tone well
        // over 20 dB above its quantization noise (the reference reaches about 30 dB).
        for hz in [440.0, 1_000.0, 3_000.0, 5_500.0] {
            let pcm = sine(3_200, hz, 8_000.0);
            let mut codes = vec![0u8; 1_600];
            assert_eq!(G722Encoder::new().encode(&pcm, &mut codes), 1_600);
            let mut back = vec![0i16; 3_200];
            assert_eq!(G722Decoder::new().decode(&codes, &mut back), 3_200);
            // Skip the adaptation's first 20 ms.
            let snr = snr_db(&pcm[320..3_000], &back[320..], 22);
            assert!(snr > 20.0, "{hz} Hz: {snr:.1} dB");
        }
    }

    #[test]
    fn counts_stop_at_the_shorter_side_and_calls_chain() {
        let pcm = sine(641, 700.0, 5_000.0);
        let mut one = [0u8; 320];
        assert_eq!(G722Encoder::new().encode(&pcm, &mut one), 320, "the odd last sample is left");
        let mut enc = G722Encoder::new();
        let mut two = [0u8; 320];
        assert_eq!(enc.encode(&pcm[..100], &mut two[..10]), 10, "output bounds the count");
        assert_eq!(enc.encode(&pcm[20..640], &mut two[10..]), 310);
        assert_eq!(one, two, "state carries across calls");
        let mut out = [0i16; 5];
        assert_eq!(G722Decoder::new().decode(&one, &mut out), 4);
    }
}
