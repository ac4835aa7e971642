//! `StreamResampler`: supported pairs, exact output counts, chunking independence, passband,
//! stopband / image rejection, and the reported delay against the measured one.
//!
//! Frequencies are fractions of the lower rate's Nyquist frequency, so one contract covers every
//! pair: flat (±0.15 dB) to 0.85 × it, and 1.15 × it and above (what would alias into the
//! passband, or the images of the passband) at least 60 dB down. With 8 kHz on one side that
//! is 3.4 and 4.6 kHz.

use std::f64::consts::PI;
use trunkline::resample::{ResampleError, StreamResampler};

/// Every conversion Trunkline supports between different rates: each carrier rate (8, 16,
/// 24 kHz) to each agent rate (8, 16, 24, 48 kHz), and each play rate ([`PLAY_RATES`]) to each
/// carrier rate.
const CONVERSIONS: [(u32, u32); 20] = [
    (8_000, 16_000),
    (8_000, 24_000),
    (8_000, 48_000),
    (16_000, 8_000),
    (16_000, 24_000),
    (16_000, 48_000),
    (24_000, 8_000),
    (24_000, 16_000),
    (24_000, 48_000),
    (22_050, 8_000),
    (44_100, 8_000),
    (48_000, 8_000),
    (22_050, 16_000),
    (44_100, 16_000),
    (48_000, 16_000),
    (22_050, 24_000),
    (44_100, 24_000),
    (48_000, 24_000),
    // 48 kHz carriers (jambonz, AudioSocket, Telnyx's Opus) take the other play rates at their own.
    (22_050, 48_000),
    (44_100, 48_000),
];

/// Every rate a resampler accepts (to itself, at least).
const PLAY_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

/// Where the passband ends, as a fraction of the lower rate's Nyquist frequency (3.4 kHz of 4).
const PASS_EDGE: f64 = 0.85;

/// Where the stopband starts, as a fraction of the lower rate's Nyquist frequency (4.6 kHz of 4).
const STOP_EDGE: f64 = 1.15;

/// The Nyquist frequency of the lower of the two rates: the band the conversion keeps.
fn lower_nyquist(from: u32, to: u32) -> f64 {
    from.min(to) as f64 / 2.0
}

/// Tone amplitude for the measurements: loud, with headroom for filter overshoot.
const AMPLITUDE: f64 = 8_000.0;

/// A small deterministic PRNG (xorshift64), so the tests need no `rand`.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn tone(rate: u32, freq: f64, amplitude: f64, len: usize) -> Vec<i16> {
    (0..len).map(|n| (amplitude * (2.0 * PI * freq * n as f64 / rate as f64).sin()).round() as i16).collect()
}

fn noise(len: usize, seed: u64) -> Vec<i16> {
    let mut rng = XorShift(seed);
    (0..len).map(|_| (rng.below(40_001) as i32 - 20_000) as i16).collect()
}

/// Resamples `input` in one call.
fn resample_all(from: u32, to: u32, input: &[i16]) -> Vec<i16> {
    let mut r = StreamResampler::new(from, to).unwrap();
    let mut out = vec![0i16; r.max_output_len(input.len())];
    let n = r.process(input, &mut out).unwrap();
    out.truncate(n);
    out
}

/// Least-squares fit of `a·sin(ωk) + b·cos(ωk)` to `x`; returns `(amplitude, phase)` with
/// `x[k] ≈ amplitude · sin(ωk − phase)`.
fn fit_tone(x: &[i16], freq: f64, rate: u32) -> (f64, f64) {
    let w = 2.0 * PI * freq / rate as f64;
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in x.iter().enumerate() {
        let (s, c) = (w * k as f64).sin_cos();
        let v = v as f64;
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += v * s;
        xc += v * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    ((a * a + b * b).sqrt(), (-b).atan2(a))
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.log10()
}

/// The output after the first `skip_ms`, where the filter has settled.
fn steady(out: &[i16], rate: u32, skip_ms: usize) -> &[i16] {
    &out[rate as usize * skip_ms / 1000..]
}

#[test]
fn supported_and_unsupported_pairs() {
    for (from, to) in CONVERSIONS {
        let r = StreamResampler::new(from, to).unwrap();
        assert_eq!((r.input_rate(), r.output_rate()), (from, to));
    }
    for rate in PLAY_RATES {
        let r = StreamResampler::new(rate, rate).unwrap();
        assert_eq!(r.delay_ms(), 0.0);
    }
    // Between the supported rates, exactly the listed conversions (and the copies) are built.
    for from in PLAY_RATES {
        for to in PLAY_RATES {
            let expected = from == to || CONVERSIONS.contains(&(from, to));
            assert_eq!(StreamResampler::new(from, to).is_ok(), expected, "{from} -> {to}");
        }
    }
    for (from, to) in [
        (8_000, 44_100),
        (8_000, 22_050),
        (16_000, 22_050),
        (24_000, 44_100),
        (48_000, 44_100),
        (11_025, 8_000),
        (11_025, 16_000),
        (32_000, 16_000),
        (0, 8_000),
        (8_000, 0),
        (0, 0),
        (12_345, 12_345),
    ] {
        assert_eq!(
            StreamResampler::new(from, to).err(),
            Some(ResampleError::UnsupportedRate { from, to }),
            "{from} -> {to}"
        );
    }
}

#[test]
fn pass_through_copies() {
    let input = noise(1000, 7);
    let mut r = StreamResampler::new(16_000, 16_000).unwrap();
    let mut out = vec![0i16; r.max_output_len(input.len())];
    assert_eq!(r.process(&input, &mut out).unwrap(), input.len());
    assert_eq!(out[..input.len()], input[..]);
}

#[test]
fn output_count_is_exact_after_every_call() {
    for (i, (from, to)) in CONVERSIONS.into_iter().enumerate() {
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ i as u64);
        let mut out = vec![0i16; r.max_output_len(30_000)];
        let (mut total_in, mut total_out) = (0u64, 0u64);
        for _ in 0..3_000 {
            let len = match rng.below(4) {
                0 => rng.below(4),
                1 => rng.below(200),
                2 => [160, 320, 441, 480, 882, 960][rng.below(6) as usize],
                _ => rng.below(3_000),
            } as usize;
            let input = vec![1000i16; len];
            let n = r.process(&input, &mut out).unwrap();
            assert!(n <= r.max_output_len(len));
            total_in += len as u64;
            total_out += n as u64;
            assert_eq!(total_out, total_in * to as u64 / from as u64, "{from} -> {to}");
        }
        // One large call, beyond the internal chunk size.
        let input = vec![0i16; 30_000];
        total_in += 30_000;
        total_out += r.process(&input, &mut out).unwrap() as u64;
        assert_eq!(total_out, total_in * to as u64 / from as u64, "{from} -> {to}");
    }
}

#[test]
fn chunking_does_not_change_the_output() {
    for (i, (from, to)) in CONVERSIONS.into_iter().enumerate() {
        let input = noise(from as usize * 2, 1 + i as u64);
        let whole = resample_all(from, to, &input);

        for seed in 0..3u64 {
            let mut rng = XorShift(0xD1B5_4A32_D192_ED03 ^ (seed * 31 + i as u64));
            let mut r = StreamResampler::new(from, to).unwrap();
            let mut pieces = Vec::with_capacity(whole.len());
            let mut out = vec![0i16; r.max_output_len(input.len())];
            let mut pos = 0;
            while pos < input.len() {
                let len = match (seed, rng.below(3)) {
                    (0, _) => 1 + rng.below(3),
                    (_, 0) => rng.below(10),
                    (_, 1) => rng.below(500),
                    _ => rng.below(5_000),
                } as usize;
                let end = (pos + len).min(input.len());
                let n = r.process(&input[pos..end], &mut out).unwrap();
                pieces.extend_from_slice(&out[..n]);
                pos = end;
            }
            // Documented contract: the arithmetic is exact integer, so every chunking gives the
            // same output, bit for bit.
            assert_eq!(pieces.len(), whole.len(), "{from} -> {to}");
            if let Some(k) = whole.iter().zip(&pieces).position(|(a, b)| a != b) {
                panic!(
                    "{from} -> {to}, seed {seed}: chunked output differs from the whole-input output at \
                     sample {k}: {} vs {}",
                    pieces[k], whole[k]
                );
            }
        }
    }
}

#[test]
fn long_streams_keep_count_and_phase() {
    // Five minutes in 20 ms frames for ratios whose step is not a binary fraction (the ones with
    // the most branches into 8 and 16 kHz, and from 8 and 16 kHz into 24 kHz): the count stays
    // exact, the FIFO never runs dry (a debug assertion), and a 1 kHz tone at the end still sits
    // exactly at the reported delay (no slipped sample).
    for (from, to) in [(8_000, 24_000), (16_000, 24_000), (22_050, 8_000), (22_050, 16_000), (44_100, 8_000)]
    {
        let mut r = StreamResampler::new(from, to).unwrap();
        let frame = from as usize / 50;
        let frames = 5 * 60 * 50;
        let freq = 1000.0;
        let mut input = vec![0i16; frame];
        let mut out = vec![0i16; r.max_output_len(frame)];
        let mut tail = Vec::new();
        let (mut total_in, mut total_out) = (0u64, 0u64);
        for f in 0..frames {
            for (i, v) in input.iter_mut().enumerate() {
                let n = (f * frame + i) as f64;
                *v = (AMPLITUDE * (2.0 * PI * freq * n / from as f64).sin()).round() as i16;
            }
            let n = r.process(&input, &mut out).unwrap();
            total_in += frame as u64;
            total_out += n as u64;
            assert_eq!(total_out, total_in * to as u64 / from as u64);
            if f >= frames - 5 {
                tail.extend_from_slice(&out[..n]);
            }
        }
        let k0 = total_out as usize - tail.len();
        let (amplitude, phase) = fit_tone(&tail, freq, to);
        assert!(db(amplitude / AMPLITUDE).abs() < 0.5, "{from} -> {to}: amplitude {amplitude}");
        let w = 2.0 * PI * freq / to as f64;
        let delay_ms = ((phase + w * k0 as f64) / (2.0 * PI * freq) * 1000.0).rem_euclid(1.0);
        let expected = r.delay_ms().rem_euclid(1.0);
        let diff = (delay_ms - expected + 0.5).rem_euclid(1.0) - 0.5;
        assert!(diff.abs() < 0.01, "{from} -> {to}: phase drifted by {diff:.4} ms after 5 min");
    }
}

#[test]
fn reset_starts_over() {
    for (from, to) in CONVERSIONS {
        let input = noise(from as usize / 10, 99);
        let fresh = resample_all(from, to, &input);
        let mut r = StreamResampler::new(from, to).unwrap();
        let mut out = vec![0i16; r.max_output_len(input.len())];
        r.process(&noise(777, 5), &mut out).unwrap();
        r.reset();
        let n = r.process(&input, &mut out).unwrap();
        assert_eq!(out[..n], fresh[..], "{from} -> {to}");
    }
}

#[test]
fn passband_is_flat_to_85_percent_of_the_lower_nyquist() {
    for (from, to) in CONVERSIONS {
        // At 8 kHz: 100 Hz to 3.4 kHz.
        let scale = lower_nyquist(from, to) / 4_000.0;
        let mut worst: f64 = 0.0;
        for freq in
            [100.0, 200.0, 300.0, 500.0, 800.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3200.0, 3400.0]
        {
            let freq = freq * scale;
            let input = tone(from, freq, AMPLITUDE, from as usize / 4);
            let out = resample_all(from, to, &input);
            let (amplitude, _) = fit_tone(steady(&out, to, 10), freq, to);
            let gain = db(amplitude / AMPLITUDE);
            assert!(gain.abs() <= 0.15, "{from} -> {to} at {freq} Hz: {gain:.3} dB");
            worst = worst.max(gain.abs());
        }
        let edge = PASS_EDGE * lower_nyquist(from, to);
        println!("{from} -> {to}: passband within ±{worst:.3} dB to {edge:.0} Hz");
    }
}

#[test]
fn downsampling_rejects_what_would_alias() {
    for (from, to) in CONVERSIONS.into_iter().filter(|(from, to)| from > to) {
        // At 8 kHz: 4.6 kHz (what aliases onto 3.4 kHz) up to the input's Nyquist frequency.
        let nyquist = from as f64 / 2.0;
        let stop = STOP_EDGE * lower_nyquist(from, to);
        let scale = lower_nyquist(from, to) / 4_000.0;
        let mut freqs: Vec<f64> = [4_600.0, 5_000.0, 6_000.0, 7_000.0].map(|f| f * scale).to_vec();
        freqs.extend([0.6 * nyquist, 0.9 * nyquist]);
        freqs.extend((1..8).map(|k| stop + k as f64 * (nyquist - stop) / 8.0));
        // (A hertz of slack: `4_600 × scale` and `STOP_EDGE × lower` may round apart.)
        freqs.retain(|&f| f > stop - 1.0 && f < nyquist);
        let mut worst = f64::NEG_INFINITY;
        for freq in freqs {
            let input = tone(from, freq, AMPLITUDE, from as usize / 4);
            let out = resample_all(from, to, &input);
            let input_rms = AMPLITUDE / 2f64.sqrt();
            let level = db(rms(steady(&out, to, 10)) / input_rms);
            assert!(level <= -60.0, "{from} -> {to} at {freq} Hz: only {level:.1} dB");
            worst = worst.max(level);
        }
        println!("{from} -> {to}: stopband (>= {stop:.0} Hz) at most {worst:.1} dB");
    }
}

#[test]
fn upsampling_rejects_images() {
    for (from, to) in CONVERSIONS.into_iter().filter(|(from, to)| from < to) {
        // Every tone of the passband (at 8 kHz: 100 Hz to 3.4 kHz); its nearest image, at
        // `from - freq`, is at or above the stopband edge (4.6 kHz).
        let step = PASS_EDGE * lower_nyquist(from, to) / 34.0;
        let mut worst = f64::NEG_INFINITY;
        for freq in (1..=34).map(|k| k as f64 * step) {
            let input = tone(from, freq, AMPLITUDE, from as usize / 4);
            let out = resample_all(from, to, &input);
            // Images sit at `from ± freq`, `2·from ± freq`, …: measure everything that remains
            // once the tone itself is removed (rounding noise alone is about -86 dB).
            let settled = steady(&out, to, 10);
            let (amplitude, phase) = fit_tone(settled, freq, to);
            let w = 2.0 * PI * freq / to as f64;
            let residual_power = (settled.iter().enumerate())
                .map(|(k, &v)| (v as f64 - amplitude * (w * k as f64 - phase).sin()).powi(2))
                .sum::<f64>()
                / settled.len() as f64;
            let level = db(residual_power.sqrt() / (AMPLITUDE / 2f64.sqrt()));
            assert!(level <= -60.0, "{from} -> {to}: image of {freq} Hz at {level:.1} dB");
            worst = worst.max(level);
        }
        let edge = PASS_EDGE * lower_nyquist(from, to);
        println!(
            "{from} -> {to}: images of 0-{edge:.0} Hz (all, after removing the tone) at most {worst:.1} dB"
        );
    }
}

#[test]
fn reported_delay_is_small_and_matches_the_measured_delay() {
    for (from, to) in CONVERSIONS {
        let r = StreamResampler::new(from, to).unwrap();
        let reported = r.delay_ms();
        assert!(reported > 0.0 && reported <= 4.0, "{from} -> {to}: {reported} ms");

        // A 200 Hz tone has a 5 ms period, longer than any allowed delay, so its phase gives the
        // delay without ambiguity; the filter is linear-phase, so 1 kHz must agree modulo 1 ms.
        let measure = |freq: f64| {
            let input = tone(from, freq, AMPLITUDE, from as usize / 2);
            let out = resample_all(from, to, &input);
            let (_, phase) = fit_tone(steady(&out, to, 20), freq, to);
            // Fitting from output sample k0 = 20 ms: y[k0 + k] = A·sin(ω(k0 + k)/to − 2πf·d).
            let period_ms = 1000.0 / freq;
            (phase / (2.0 * PI * freq) * 1000.0).rem_euclid(period_ms)
        };
        let measured = measure(200.0);
        assert!(
            (measured - reported).abs() <= 0.25,
            "{from} -> {to}: reported {reported:.4} ms, measured {measured:.4} ms"
        );
        let at_1k = measure(1000.0);
        let expected_1k = reported.rem_euclid(1.0);
        let diff = (at_1k - expected_1k + 0.5).rem_euclid(1.0) - 0.5;
        assert!(diff.abs() <= 0.05, "{from} -> {to}: 1 kHz phase delay off by {diff:.4} ms");
        println!("{from} -> {to}: delay reported {reported:.4} ms, measured {measured:.4} ms");
    }
}

#[test]
fn output_saturates_and_rounds() {
    for (from, to) in CONVERSIONS {
        for level in [i16::MAX, i16::MIN, 1234, -1] {
            let input = vec![level; from as usize / 10];
            let out = resample_all(from, to, &input);
            let settled = steady(&out, to, 10);
            assert!(
                settled.iter().all(|&v| (v as i32 - level as i32).abs() <= 1),
                "{from} -> {to}: DC {level} came out as {:?}",
                &settled[..4]
            );
        }
        // A full-scale square wave overshoots; it must clip, never wrap around.
        let half_period = 80;
        let square: Vec<i16> = (0..from as usize / 5)
            .map(|n| if (n / half_period).is_multiple_of(2) { i16::MAX } else { i16::MIN })
            .collect();
        let out = resample_all(from, to, &square);
        let delay_in = StreamResampler::new(from, to).unwrap().delay_ms() * from as f64 / 1000.0;
        for (k, &v) in out.iter().enumerate() {
            // Mid-way through each half-period the output must have the input's sign.
            let position = (k as f64 * from as f64 / to as f64 - delay_in) / half_period as f64;
            if position > 0.0 && (0.35..0.65).contains(&position.fract()) {
                let positive = (position as u64).is_multiple_of(2);
                assert_eq!(v > 20_000, positive, "{from} -> {to}: {v} at output {k}");
                assert_eq!(v < -20_000, !positive, "{from} -> {to}: {v} at output {k}");
            }
        }
    }
}

#[test]
fn step_response_is_centred_on_the_reported_delay() {
    // A second, independent delay measurement: a linear-phase filter's step response passes
    // half-way at its group delay. The sampled step 0,…,0,1,1,… has its half-way point half an
    // input sample before the first 1.
    for (from, to) in CONVERSIONS {
        let mut r = StreamResampler::new(from, to).unwrap();
        let input = vec![10_000i16; from as usize / 50];
        let mut out = vec![0i16; r.max_output_len(input.len())];
        let n = r.process(&input, &mut out).unwrap();
        let k = out[..n].iter().position(|&v| v >= 5_000).unwrap();
        let (before, after) = (out[k - 1] as f64, out[k] as f64);
        let crossing = k as f64 - (after - 5_000.0) / (after - before);
        let crossing_ms = crossing * 1000.0 / to as f64;
        let expected_ms = r.delay_ms() - 0.5 * 1000.0 / from as f64;
        println!("{from} -> {to}: step crosses 50% at {crossing_ms:.4} ms, expected {expected_ms:.4}");
        assert!(
            (crossing_ms - expected_ms).abs() <= 0.1,
            "{from} -> {to}: step crosses 50% at {crossing_ms:.4} ms, expected {expected_ms:.4}"
        );
    }
}

#[test]
fn a_short_output_buffer_is_refused_and_nothing_is_taken() {
    let input = noise(480, 5);
    let mut r = StreamResampler::new(8_000, 48_000).unwrap();
    let mut fresh = StreamResampler::new(8_000, 48_000).unwrap();
    let needed = r.max_output_len(input.len());
    let mut short = vec![0i16; needed - 1];
    assert_eq!(
        r.process(&input, &mut short),
        Err(ResampleError::OutputTooShort { needed, given: needed - 1 })
    );
    // The refused call left no trace: the same input then gives what a fresh resampler gives.
    let (mut a, mut b) = (vec![0i16; needed], vec![0i16; needed]);
    let n = r.process(&input, &mut a).unwrap();
    assert_eq!(fresh.process(&input, &mut b).unwrap(), n);
    assert_eq!(a[..n], b[..n]);
}
