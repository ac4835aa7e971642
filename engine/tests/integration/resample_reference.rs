//! `StreamResampler` against an independent implementation: rubato's FFT resampler, fed the same
//! input, for every conversion the engine makes.
//!
//! The signals repeat every 100 ms (every tone is a multiple of 10 Hz, and 10 Hz divides every
//! supported rate), so a 500 ms window of either output holds whole periods and each tone sits
//! exactly on one DFT bin: no spectral window is needed, and a delay of any fraction of a sample
//! is an exact phase rotation of each bin. rubato's `process_all` trims its own reported delay,
//! so its output is aligned with the input (checked below); ours lags by `delay_ms`.
//!
//! Measured, for every conversion: how closely ours matches rubato over the passband (SNR after
//! aligning the delays), how far each attenuates what would alias (downsampling) or the images
//! of the passband (upsampling), and each one's delay against the input by cross-correlation.
//! Run with `--nocapture` to see the figures.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};
use std::f64::consts::PI;
use trunkline::resample::{SUPPORTED_RATES, StreamResampler, is_supported};

/// Every conversion between different rates that the engine makes, as `is_supported` says
/// (tests/integration/resample.rs holds the list written out and checks it against `is_supported`).
fn conversions() -> Vec<(u32, u32)> {
    let rates = SUPPORTED_RATES.iter().copied();
    let pairs = rates.clone().flat_map(|from| rates.clone().map(move |to| (from, to)));
    pairs.filter(|&(from, to)| from != to && is_supported(from, to)).collect()
}

/// Every test tone is a multiple of this, Hz: the signals repeat every `1 / BASE_HZ` s.
const BASE_HZ: u32 = 10;

/// Spacing of the passband tones, Hz (3.4 kHz is the 34th).
const TONE_STEP_HZ: u32 = 100;

/// The end of the passband as a fraction of the lower rate's Nyquist frequency (3.4 kHz of 4),
/// and where the band that must be rejected starts (4.6 kHz of 4): the engine's design contract.
const PASS_EDGE: f64 = 0.85;
const STOP_EDGE: f64 = 1.15;

/// Signal length, and the analysed window of each output: late enough that both resamplers'
/// start-up transients are over (rubato's filter is up to 128 ms long), early enough that the end
/// of the input is not in it, and 5 whole periods long.
const INPUT_S: f64 = 1.0;
const WINDOW_START_S: f64 = 0.3;
const WINDOW_S: f64 = 0.5;

/// Passband: ours against rubato after aligning the delays, SNR at least this, dB (measured
/// 59-75 dB: ours' passband ripple and 16-bit output, against rubato's unrounded f64). A delay
/// off by a tenth of a sample, or a tenth of a dB of gain, would already bring it under 50.
const MIN_PASSBAND_SNR_DB: f64 = 55.0;

/// What would alias (a tone above the output's Nyquist frequency) or an image of the passband:
/// both resamplers attenuate it by at least this, dB.
const MIN_REJECTION_DB: f64 = 60.0;

/// Delay measurements agree with what is expected to this many output samples.
const DELAY_TOLERANCE_SAMPLES: f64 = 0.02;

/// A sum of cosines `(freq Hz, amplitude, phase)` sampled at `rate` for `len` samples.
fn tones_at(rate: u32, tones: &[(f64, f64, f64)], len: usize) -> Vec<f64> {
    (0..len)
        .map(|n| {
            let t = n as f64 / f64::from(rate);
            tones.iter().map(|&(f, a, p)| a * (2.0 * PI * f * t + p).cos()).sum()
        })
        .collect()
}

/// Equal tones every `TONE_STEP_HZ` up to `top` Hz, with Schroeder phases (a low crest factor:
/// the sum stays well inside 16 bits) and `rms` in total.
fn multitone(top: f64, rms: f64) -> Vec<(f64, f64, f64)> {
    let count = (top / f64::from(TONE_STEP_HZ)).floor() as usize;
    let amplitude = rms * (2.0 / count as f64).sqrt();
    (1..=count)
        .map(|i| (f64::from(TONE_STEP_HZ) * i as f64, amplitude, -PI * (i * i) as f64 / count as f64))
        .collect()
}

/// The signal both resamplers are given: `tones` at `rate` for `INPUT_S`, rounded to 16 bits.
fn input(rate: u32, tones: &[(f64, f64, f64)]) -> Vec<i16> {
    let exact = tones_at(rate, tones, (INPUT_S * f64::from(rate)) as usize);
    let peak = exact.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    assert!(peak < 30_000.0, "test signal clips: peak {peak}");
    exact.iter().map(|x| x.round() as i16).collect()
}

/// Ours, fed 20 ms pieces as the engine feeds it.
fn ours(from: u32, to: u32, input: &[i16]) -> (Vec<f64>, f64) {
    let mut r = StreamResampler::new(from, to).expect("supported conversion");
    let piece = from as usize / 50;
    let mut out = Vec::new();
    let mut buf = vec![0i16; r.max_output_len(piece)];
    for chunk in input.chunks(piece) {
        let n = r.process(chunk, &mut buf).expect("output buffer sized by max_output_len");
        out.extend(buf[..n].iter().map(|&s| f64::from(s)));
    }
    (out, r.delay_ms())
}

/// rubato's synchronous FFT resampler on the same 16-bit input, in f64, its delay trimmed.
fn rubato(from: u32, to: u32, input: &[i16]) -> Vec<f64> {
    // One FFT block per chunk of about 1024 frames: the largest block (the widest passband,
    // cutoff about 0.99 × the lower Nyquist frequency) at a delay that does not matter here.
    let mut r = Fft::<f64>::new_custom(
        from as usize,
        to as usize,
        1024,
        1,
        1,
        WindowFunction::BlackmanHarris2,
        FixedSync::Both,
    )
    .expect("rubato accepts the rates");
    let samples: Vec<f64> = input.iter().map(|&s| f64::from(s)).collect();
    let adapter = InterleavedSlice::new(&samples, 1, samples.len()).expect("mono slice");
    r.process_all(&adapter, samples.len(), None).expect("rubato resamples the clip").take_data()
}

/// The analysed window of an output at `rate`: `WINDOW_S` from `WINDOW_START_S`.
fn window(out: &[f64], rate: u32) -> &[f64] {
    let start = (WINDOW_START_S * f64::from(rate)) as usize;
    let len = (WINDOW_S * f64::from(rate)) as usize;
    assert!(out.len() >= start + len, "output of {} samples, {} needed", out.len(), start + len);
    &out[start..start + len]
}

/// The DFT bins `0..=N/2` of a real window.
fn spectrum(x: &[f64]) -> Vec<Complex<f64>> {
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(x.len());
    let mut input = x.to_vec();
    let mut out = fft.make_output_vec();
    fft.process(&mut input, &mut out).expect("buffers sized by the planner");
    out
}

/// Power of the bins of an `n`-point spectrum, each bin but DC (and Nyquist) counted twice for
/// its negative-frequency twin; `pick` chooses the bins.
fn power(spectrum: &[Complex<f64>], n: usize, pick: impl Fn(usize) -> bool) -> f64 {
    spectrum
        .iter()
        .enumerate()
        .filter(|&(k, _)| pick(k))
        .map(|(k, c)| if k == 0 || 2 * k == n { 1.0 } else { 2.0 } * c.norm_sqr())
        .sum()
}

/// The bin of `freq` Hz in an `n`-point DFT at `rate`.
fn bin(freq: f64, rate: u32, n: usize) -> usize {
    (freq * n as f64 / f64::from(rate)).round() as usize
}

/// `x` (a window at `rate`) delayed by `delay` samples, as a spectrum: each bin rotated.
// why: the windows hold whole periods, so this is exact for any fraction of a sample.
fn delayed(x: &[Complex<f64>], n: usize, delay: f64) -> Vec<Complex<f64>> {
    x.iter()
        .enumerate()
        .map(|(k, c)| c * Complex::from_polar(1.0, -2.0 * PI * k as f64 * delay / n as f64))
        .collect()
}

fn db(ratio: f64) -> f64 {
    10.0 * ratio.log10()
}

/// The delay of `out` (a window at `rate`) behind `reference` (the same window of the input,
/// evaluated at `rate` without resampling), in samples, by cross-correlation over the `tones`.
///
/// The cross-correlation lives in the tone bins (`Y·conj(X)`, everything else is error): its
/// peak over whole lags gives the delay to within half a sample, and the slope of the
/// cross-spectrum's remaining phase against frequency gives the fraction.
fn measured_delay(out: &[f64], reference: &[f64], rate: u32, tones: &[(f64, f64, f64)]) -> f64 {
    let n = out.len();
    let (y, x) = (spectrum(out), spectrum(reference));
    let cross: Vec<(f64, Complex<f64>)> = tones
        .iter()
        .map(|&(f, _, _)| {
            let k = bin(f, rate, n);
            (2.0 * PI * k as f64 / n as f64, y[k] * x[k].conj())
        })
        .collect();
    let correlation =
        |lag: f64| -> f64 { cross.iter().map(|&(w, c)| (c * Complex::from_polar(1.0, w * lag)).re).sum() };
    // why: the tones are multiples of `TONE_STEP_HZ`, so the signal repeats every 10 ms and its
    // correlation too: lags are told apart within ±4 ms, twice either resampler's delay.
    let most = (rate / 250) as i64;
    let coarse = (-most..=most).max_by(|&a, &b| correlation(a as f64).total_cmp(&correlation(b as f64)));
    let coarse = coarse.expect("a non-empty range") as f64;
    // `cross = |c| e^{-jw·delay}`: after the coarse lag the phase is `-w·(delay - coarse)`, within
    // ±π/2 (the fraction is at most half a sample and w at most π), so a least-squares slope.
    let (num, den) = cross.iter().fold((0.0, 0.0), |(num, den), &(w, c)| {
        let residual = (c * Complex::from_polar(1.0, w * coarse)).arg();
        (num + w * residual, den + w * w)
    });
    coarse - num / den
}

#[test]
fn every_supported_conversion_is_compared() {
    // 8, 16 and 24 kHz to each other and to 48 kHz, and every play rate to each of them and to
    // 48 kHz.
    assert_eq!(conversions().len(), 20);
}

#[test]
fn delays_measured_against_the_input_match_the_reported_ones() {
    for (from, to) in conversions() {
        let tones = multitone(PASS_EDGE * f64::from(from.min(to)) / 2.0, 6_000.0);
        let x = input(from, &tones);
        let (ours, delay_ms) = ours(from, to, &x);
        let theirs = rubato(from, to, &x);
        // The input itself on the output's sample grid: the timing reference for both.
        let reference = tones_at(to, &tones, ours.len());
        let reference = window(&reference, to);
        let reported = delay_ms * f64::from(to) / 1000.0;
        let ours_measured = measured_delay(window(&ours, to), reference, to, &tones);
        let theirs_measured = measured_delay(window(&theirs, to), reference, to, &tones);
        println!(
            "delay {from:>5} -> {to:>5}: ours reported {reported:8.4} measured {ours_measured:8.4} \
             samples; rubato (trimmed) {theirs_measured:+.4}"
        );
        assert!(
            (ours_measured - reported).abs() < DELAY_TOLERANCE_SAMPLES,
            "{from} -> {to}: ours measured {ours_measured} samples, reports {reported}"
        );
        // rubato trims a whole number of output samples (half its FFT block) while its filter
        // is centred on a whole or half input sample, so a fraction can remain: at most half an
        // output sample plus half an input sample (measured: half an output sample from 48 kHz,
        // half an input sample from 22.05 and 44.1 kHz, nothing for the rest). The passband
        // comparison measures it and aligns it.
        let leftover = 0.5 + 0.5 * f64::from(to) / f64::from(from);
        assert!(
            theirs_measured.abs() < leftover + DELAY_TOLERANCE_SAMPLES,
            "{from} -> {to}: rubato left {theirs_measured} samples of delay after trimming its own"
        );
    }
}

#[test]
fn the_passband_matches_rubato_once_aligned() {
    for (from, to) in conversions() {
        let tones = multitone(PASS_EDGE * f64::from(from.min(to)) / 2.0, 6_000.0);
        let x = input(from, &tones);
        let (ours, delay_ms) = ours(from, to, &x);
        let theirs = rubato(from, to, &x);
        let (ours, theirs) = (window(&ours, to), window(&theirs, to));
        let n = ours.len();
        // Ours lags the input by its reported delay (see the delay test); rubato by what is left
        // of its own after trimming, measured.
        let reference = tones_at(to, &tones, (INPUT_S * f64::from(to)) as usize);
        let theirs_delay = measured_delay(theirs, window(&reference, to), to, &tones);
        let ours_delay = delay_ms * f64::from(to) / 1000.0;
        let expected = delayed(&spectrum(theirs), n, ours_delay - theirs_delay);
        let error: Vec<Complex<f64>> = spectrum(ours).iter().zip(&expected).map(|(a, b)| a - b).collect();
        let snr = db(power(&expected, n, |_| true) / power(&error, n, |_| true));
        println!("passband {from:>5} -> {to:>5}: {} tones, ours vs rubato SNR {snr:6.2} dB", tones.len());
        assert!(snr > MIN_PASSBAND_SNR_DB, "{from} -> {to}: ours vs rubato SNR {snr:.2} dB");
    }
}

#[test]
fn both_reject_what_would_alias_and_the_images() {
    for (from, to) in conversions() {
        let lower_nyquist = f64::from(from.min(to)) / 2.0;
        let input_nyquist = f64::from(from) / 2.0;
        let snap = |f: f64| (f / f64::from(BASE_HZ)).round() * f64::from(BASE_HZ);
        let amplitude = 16_000.0;
        let (mut worst_ours, mut worst_theirs) = (f64::INFINITY, f64::INFINITY);
        if to < from {
            // Downsampling: a tone the output cannot hold must not fold back into it. From the
            // stopband edge up to just under the input's Nyquist frequency.
            let top = 0.98 * input_nyquist;
            let count = 6;
            for i in 0..count {
                let f = snap(
                    STOP_EDGE * lower_nyquist
                        + (top - STOP_EDGE * lower_nyquist) * i as f64 / (count - 1) as f64,
                );
                let x = input(from, &[(f, amplitude, 0.3)]);
                let tone_power = amplitude * amplitude / 2.0;
                let rejection = |out: &[f64]| {
                    let w = window(out, to);
                    db(tone_power / (w.iter().map(|s| s * s).sum::<f64>() / w.len() as f64))
                };
                let (ours, _) = ours(from, to, &x);
                let (a, b) = (rejection(&ours), rejection(&rubato(from, to, &x)));
                println!(
                    "alias    {from:>5} -> {to:>5}: {f:7.0} Hz in, ours {a:6.1} dB, rubato {b:6.1} dB down"
                );
                worst_ours = worst_ours.min(a);
                worst_theirs = worst_theirs.min(b);
            }
        } else {
            // Upsampling: a passband tone must not leave images (at `from ± f`, `2·from ± f`…).
            // The highest passband tone has the nearest image, at the stopband edge. Everything
            // in the output but the tone counts as image: where the output's Nyquist frequency is
            // below an image (22.05 -> 24 kHz) the image folds back to a lower frequency.
            for fraction in [0.25, 0.5, PASS_EDGE] {
                let f = snap(fraction * input_nyquist);
                let x = input(from, &[(f, amplitude, 0.3)]);
                let rejection = |out: &[f64]| {
                    let w = window(out, to);
                    let n = w.len();
                    let s = spectrum(w);
                    let tone = bin(f, to, n);
                    db(power(&s, n, |k| k == tone) / power(&s, n, |k| k != tone))
                };
                let (ours, _) = ours(from, to, &x);
                let (a, b) = (rejection(&ours), rejection(&rubato(from, to, &x)));
                println!(
                    "image    {from:>5} -> {to:>5}: {f:7.0} Hz in, ours {a:6.1} dB, rubato {b:6.1} dB down"
                );
                worst_ours = worst_ours.min(a);
                worst_theirs = worst_theirs.min(b);
            }
        }
        println!(
            "rejection {from:>5} -> {to:>5}: worst ours {worst_ours:6.1} dB, rubato {worst_theirs:6.1} dB"
        );
        assert!(worst_ours > MIN_REJECTION_DB, "{from} -> {to}: ours only {worst_ours:.1} dB down");
        assert!(worst_theirs > MIN_REJECTION_DB, "{from} -> {to}: rubato only {worst_theirs:.1} dB down");
    }
}
