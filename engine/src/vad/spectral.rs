//! Noise-robust frame classifier: harmonicity and band SNR against a tracked noise floor.
//!
//! Why not webrtc-vad alone: its GMM adapts to stationary noise only slowly and, at telephone
//! SNRs around 5 dB, calls nearly every frame speech. Voiced speech has two properties that
//! noise, hum and clicks lack at the same time:
//! - **harmonicity**: a periodic waveform with a period of 2.5-14 ms (70-400 Hz pitch). Measured
//!   as the peak of the normalised autocorrelation of the *noise-subtracted* power spectrum (the
//!   Wiener-Khinchin theorem: the autocorrelation is the inverse FFT of the power spectrum), so
//!   stationary noise and steady tones, which the noise floor absorbs, do not count;
//! - **band SNR**: energy well above the tracked noise floor in several telephone sub-bands.
//!
//! A frame *starts* speech only when it is voiced (both high); a started run then goes on through
//! frames that have either clear energy above the floor or moderate harmonicity (unvoiced
//! consonants, soft syllable ends), for at most [`BRIDGE_FRAMES`] after the last voiced frame. A
//! click is loud but aperiodic, hum and steady noise are absorbed by the floor, so neither starts
//! a run. A tone (a keypad's pair, a dial tone) is periodic too, but it is one or two lines in
//! the spectrum where a voice spreads over several harmonics: a line that stands out at the same
//! frequency two frames in a row is never voiced. A drone that rises over the floor does start a
//! run, but one as steady as a drone for a second is learnt as the line's sound, and ends.
//!
//! The noise floor is tracked per band with asymmetric steps (fast down, slow up: a low
//! percentile of the band energy), rising faster in frames judged non-speech, so speech does not
//! drag the floor up, and faster still once the line has stood over it for 200 ms without
//! voicing, so a line that got louder is learnt within a second. It is first learnt from the
//! line's first sound that is not speech, and never from digital silence (a carrier's before the
//! call's audio, or the engine's in a gap).
//!
//! Cost: two 512-point real FFTs and a few passes over 257 bins per 20 ms frame (a few µs).

use std::sync::{Arc, OnceLock};

use realfft::num_complex::Complex;
use realfft::{ComplexToReal, RealToComplex};

use crate::fft::shared_plans;
use crate::simd::max_of;

use super::echo_gate::{EchoGate, GATE_BANDS, SLOT_SAMPLES, to_db_code};
use super::frame_classifier::FRAME_SAMPLES;
use super::tone::{Lines, Tones};

/// Analysis window: the current 20 ms frame and the 12 ms before it (32 ms), so that the
/// longest pitch period (14 ms, 70 Hz) fits twice.
const WINDOW: usize = 256;
/// FFT length: the window zero-padded to twice its length, so the autocorrelation is linear
/// (no wrap-around) at every lag of interest.
const FFT: usize = 512;
/// Bins of the real FFT.
const BINS: usize = FFT / 2 + 1;
/// Hz per bin at 8 kHz.
#[cfg(test)]
const BIN_HZ: f32 = 8_000.0 / FFT as f32;
/// Lowest and highest bin used (250-3500 Hz, the telephone band with margin for the hum filter).
const LO_BIN: usize = 16;
const HI_BIN: usize = 224;
// The tones' lines are counted in a u8 (see `super::tone`).
const _: () = assert!(HI_BIN - LO_BIN < u8::MAX as usize);
/// Sub-bands between `LO_BIN` and `HI_BIN` (13 bins, ~200 Hz each).
const BANDS: usize = 16;
const BAND_BINS: usize = (HI_BIN - LO_BIN) / BANDS;
/// Pitch lags searched, in samples: 400 Hz down to 70 Hz.
const MIN_LAG: usize = 20;
const MAX_LAG: usize = 114;

/// Cap of a whitened bin (power over noise floor, 50 dB), so one huge bin cannot dominate.
const MAX_WHITENED: f32 = 1e5;

/// After the last voiced frame, a run goes on for at most this many frames on weaker evidence.
pub(crate) const BRIDGE_FRAMES: u32 = 8;

/// Most weak-evidence frames before a run's first voiced frame counted as part of the run.
pub(crate) const MAX_LEAD_FRAMES: u32 = 4;

/// Block length (samples) of the impulsiveness measure.
const IMPULSE_BLOCK: usize = 16;

/// A frame whose window holds more than this share of its energy in one 2 ms block is a click
/// (or the ringing of the line's filters after one), never voiced.
const MAX_VOICED_IMPULSIVENESS: f32 = 0.3;

/// The quietest line the noise floor may assume, dBFS of white noise. Real lines always carry some
/// noise; digital silence (µ-law 0xFF decodes to exact zeros) would otherwise pull the floor to
/// nothing, saturate every whitened bin of the next speech (a flat spectrum: no harmonicity) and
/// leave the detector deaf for many seconds while the floor climbs back.
const MIN_LINE_NOISE_DBFS: f32 = -72.0;

/// Frames from the one the floor is learnt from (at a stream's start, or afresh) during which it
/// adapts quickly: down 1.9 dB a frame, up 0.5 dB (as to a line that got louder,
/// [`LOUDER_LINE_FRAMES`]). That leaves it where about a fifth of the line's frames fall under
/// it, near where the slower rates after it keep it (a sixth: down 0.5 dB, up 0.1 dB), so the
/// caller's first words stand over it as later ones do. Climbing 0.8 dB a frame, it sat higher
/// in the line's noise and climbed into the speech of a caller who spoke at once; down 1.5 dB,
/// it stopped where a quarter fall under, and took seconds more to settle, the words meanwhile
/// 0.5-1 dB less over it. On the noisy lines, words 0.2-0.5 s into the stream were heard at p90
/// 280-840 ms with those (220-240 ms 3 s in); now 240-480 ms. Faster is worse: down 2 dB, the
/// strong hum after a carrier's silence passed for speech for 1.8 s instead of 1.2 s; 2.5 dB,
/// the floor fell under the line's noise after silence, which then started speech.
const WARMUP_FRAMES: u32 = 10;

/// Frames in a row over the floor (by the SNR that may lead into speech) without a voiced one
/// after which the line is taken to have got louder (a television, traffic), and the floor
/// climbs to it 0.5 dB per frame instead of 0.1: speech voices within a few frames of its soft
/// start, and a louder line climbed to at 5 dB/s passed for speech meanwhile (one false start
/// in 2 min after most steps of 10-30 dB).
const LOUDER_LINE_FRAMES: u32 = 10;

/// Frames of sound in a row after which a floor still waiting for a sound that is neither
/// speech nor harmonic learns from the sound it has (1 s: a sustained vowel may be as steady for
/// half of that).
const MAX_WAIT_FRAMES: u32 = 50;

/// Frames of a run in a row as steady as [`STEADY_SOUND`] after which its sound is taken for the
/// line's (a drone, a hum that came up), not a voice: 1 s, as long as a voiced sound keeps the
/// floor waiting at a stream's start ([`MAX_WAIT_FRAMES`]). The corpus's speech stays so steady
/// for at most 15 frames.
const STEADY_SOUND_FRAMES: u32 = 50;

/// Energy ratio (3 dB) within which each frame of a steady sound stays of its stretch's first.
/// Within 1.5 dB, a tone 8 dB over 5 dB pink noise, or one with clicks, was learnt after
/// 2-2.5 s rather than 1. The line's energy, not its energy over the floor, which noise moves
/// as much as a weak tone's: at 0 and -3 dB SNR the corpus's speech never stays so steady for a
/// second either (no score moved but white noise's at -3 dB, F1 0.782 → 0.786).
const STEADY_SOUND: f32 = 1.995_262;

/// Frames of digital silence in a row, or of a gap in the stream, after which the line is taken
/// to have gone (muted, on hold), and its sound when it returns is compared with the floor: the
/// longest gap the engine fills with silence (2 s, `max_gap_fill_ms`' default).
const MAX_GAP_FILL_FRAMES: u32 = 100;

/// A voiced frame this many times the energy of the frame the floor was first learnt from (10
/// dB), in the warm-up, shows that frame was the soft start of speech, not the line's noise.
const RELEARN: f32 = 10.0;

/// A voiced frame this many times the energy of a steady sound taken for speech and learnt at
/// once after silence (6 dB), in the warm-up, shows that sound was the soft start of a quiet
/// voice, not a hum: a hum's level holds, a voice's rises into its first syllable. Why not
/// [`RELEARN`]'s 10 dB: in the tracks this was traced on, a soft start held steady for two
/// frames was followed by a first voiced frame 8 dB over it, which began the words' run; the
/// next frame, 10 dB over, came a frame too late for the run to reach back.
const SOFT_START_RISE: f32 = 3.981_072;

/// Energy under which a block of `IMPULSE_BLOCK` samples holds no sound: RMS 8, the lowest line
/// noise (-72 dBFS). The zeros of the analysis window before a stream's first samples, a
/// carrier's digital silence, the first 2 ms a resampler puts out.
const SILENT_BLOCK_ENERGY: f32 = IMPULSE_BLOCK as f32 * 64.0;

/// While the floor waits after digital silence, a frame within 1 dB (this energy ratio) of the
/// one before it, and quieter than [`STEADY_MAX_OVER_MIN`], is learnt as the line's, voiced or
/// not (see [`SpectralClassifier::track_noise`]).
const STEADY: f32 = 1.258_925_4;

/// The loudest steady sound learnt so, over the lowest floor: 32 dB (-40 dBFS in the band). A
/// caller's vowel held as steady and quieter than that is learnt as the line, its speech heard
/// late; with -35 dBFS, 3 of the corpus's 40 first utterances after silence were heard 60-100 ms
/// late, with -40 none.
const STEADY_MAX_OVER_MIN: f32 = 1_584.893;

/// A line back after silence longer than the engine fills is another line if quieter than this
/// energy ratio (1.5 dB) under the floor it left: a line's frames stand 0-5 dB over its floor.
const QUIETER_LINE: f32 = 1.412_537_6;

/// Frames of sound after which the analysis window holds nothing from before it.
const WINDOW_FRAMES: u32 = WINDOW.div_ceil(FRAME_SAMPLES) as u32;

/// Tunable thresholds, per aggressiveness.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    /// Harmonicity a voiced frame needs (0..1).
    pub(crate) voiced_harmonicity: f32,
    /// Mean band SNR (dB, per band clipped at 0) a voiced frame needs.
    pub(crate) voiced_snr_db: f32,
    /// Within a run: harmonicity that continues it.
    pub(crate) keep_harmonicity: f32,
    /// Within a run: mean band SNR that continues it.
    pub(crate) keep_snr_db: f32,
}

impl Thresholds {
    /// Aggressiveness 0 (calls most audio speech) ..= 3 (strictest). Level 2, the default, was
    /// tuned on the vadbench corpus (noise harmonicity stays below 0.40 and band SNR below 3.7 dB
    /// in 99% of frames); the other levels step around it.
    pub(crate) fn for_aggressiveness(a: u8) -> Self {
        let t = |voiced_harmonicity, voiced_snr_db, keep_harmonicity, keep_snr_db| Self {
            voiced_harmonicity,
            voiced_snr_db,
            keep_harmonicity,
            keep_snr_db,
        };
        match a {
            0 => t(0.41, 2.6, 0.27, 2.3),
            1 => t(0.44, 2.8, 0.28, 2.45),
            2 => t(0.47, 3.0, 0.30, 2.6),
            _ => t(0.52, 3.5, 0.33, 2.9),
        }
    }
}

/// Features of one frame (exposed for tuning and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Features {
    /// Peak normalised autocorrelation over the pitch lags of the noise-subtracted spectrum.
    pub(crate) harmonicity: f32,
    /// Mean over bands of max(0, band SNR in dB).
    pub(crate) snr_db: f32,
    /// Share of the window's energy in its loudest 2 ms block: 1/16 for steady sound, near 1 for
    /// a click.
    pub(crate) impulsiveness: f32,
    /// Lag of the harmonicity peak, samples: the pitch period when the frame is voiced.
    pub(crate) pitch_lag: u8,
}

/// The reference's analysis window (a 20 ms Hann window) and the factor that puts its band
/// energies on the scale of the caller's 32 ms window (the ratio of their energies), built once.
fn reference_window() -> &'static ([f32; SLOT_SAMPLES as usize], f32) {
    static WINDOW_160: OnceLock<([f32; SLOT_SAMPLES as usize], f32)> = OnceLock::new();
    WINDOW_160.get_or_init(|| {
        let hann =
            |i: usize, n: usize| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos();
        let w: [f32; SLOT_SAMPLES as usize] = std::array::from_fn(|i| hann(i, SLOT_SAMPLES as usize));
        let caller: f32 = (0..WINDOW).map(|i| hann(i, WINDOW).powi(2)).sum();
        let reference: f32 = w.iter().map(|w| w * w).sum();
        (w, caller / reference)
    })
}

/// What the noise floor made of a frame ([`SpectralClassifier::track_noise`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracked {
    /// Measured against the floor (learnt from, or not), or digital silence.
    Measured,
    /// A frame of sound with no floor to measure it against: the floor was waiting for the
    /// line's sound, or the line just came back and was not yet judged, or was judged another
    /// line.
    Unmeasured,
    /// A frame taken for speech was learnt as the line's (see [`SpectralClassifier::classify`]).
    LearntAsLine,
    /// A voiced frame rose so far over a steady sound just learnt as the line's that the sound
    /// was a voice's soft start ([`SOFT_START_RISE`]): the floor is forgotten, and the frames
    /// measured against it belong to the voice (as the lead of a run that frame starts; a run
    /// already begun keeps its start).
    SoftStartForgotten,
}

/// The classifier; see the module docs.
pub(crate) struct SpectralClassifier {
    thresholds: Thresholds,
    forward: Arc<dyn RealToComplex<f32>>,
    inverse: Arc<dyn ComplexToReal<f32>>,
    /// Hann window.
    window: [f32; WINDOW],
    /// Band energy of white noise at `MIN_LINE_NOISE_DBFS`: the lowest noise floor.
    min_noise: f32,
    /// 1 / normalised autocorrelation of the window at each lag (bias correction).
    lag_gain: [f32; MAX_LAG + 1],
    /// The last `WINDOW` input samples.
    history: [f32; WINDOW],
    time: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: [f32; BINS],
    /// Noise floor per band (band energy).
    noise: [f32; BANDS],
    /// Frames the floor has learnt from (0: none yet, see [`Self::track_noise`]).
    frames: u32,
    /// Band energy of the frame the floor was first learnt from, but for the bands taken as echo
    /// (while it waits, of the frame before).
    learnt_from: f32,
    /// Every block of the last analysis window held sound (see [`SILENT_BLOCK_ENERGY`]).
    window_full: bool,
    /// Frames since the last one of digital silence (or the stream's start, or a gap).
    sounding: u32,
    /// The floor waits since digital silence (not since a voiced frame made it forget).
    after_silence: bool,
    /// The floor was learnt at once from a steady sound after silence that had been taken for
    /// speech ([`STEADY`]): a hum heard against the minimum, or a quiet voice's soft start.
    learnt_steady: bool,
    /// While the floor waits for its first sound: frames of sound in a row so far.
    waited: u32,
    /// The line went silent, or the stream had a gap, for longer than the engine fills; its
    /// sound, when it returns, is compared with the floor it left (see [`Self::track_noise`]).
    line_gone: bool,
    /// Frames of digital silence in a row (see [`Self::track_noise`]).
    silent_frames: u32,
    /// In a run: how long the energy of the bands the echo does not explain has held one level,
    /// for the floor (see [`Self::steady_sound`]).
    steady: LevelStretch,
    /// The same over all the bands, those taken as the agent's echo too, for barge-in (see
    /// [`Self::follow_the_level`]).
    held: LevelStretch,
    /// Frames since the last voiced frame while in a run; `None` outside runs.
    since_voiced: Option<u32>,
    /// Outside runs: consecutive frames up to now with weak evidence of speech (see `lead`).
    weak_frames: u32,
    /// Tones from frame to frame (see [`super::tone`]).
    tones: Tones,
    /// Weak-evidence frames just before the voiced frame that started the current run, counted
    /// as part of it (the soft start of an utterance: /h/, /s/, a rising vowel).
    lead: u32,
    /// Last frame's features.
    last: Features,
    /// The agent's audio as played, to tell its echo from the caller (see [`super::echo_gate`]);
    /// built only for an echo-aware detector, so that the others do not carry its 600 bytes.
    echo: Option<Box<EchoGate>>,
}

impl SpectralClassifier {
    /// Builds the classifier (allocates the FFT plans and buffers, and the echo gate if
    /// `echo_aware`).
    pub(crate) fn new(aggressiveness: u8, echo_aware: bool) -> Self {
        // The process's shared plans (`crate::fft`).
        let (forward, inverse) = shared_plans(FFT);
        // Built here, not on the worker when the agent first speaks.
        let _ = reference_window();
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        let mut window = [0.0f32; WINDOW];
        for (i, w) in window.iter_mut().enumerate() {
            *w = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / WINDOW as f32).cos();
        }
        let energy: f32 = window.iter().map(|w| w * w).sum();
        // White noise of variance σ² gives E|X[k]|² = σ² Σw² per bin of the unnormalised FFT.
        let sigma = 32_768.0 * 10f32.powf(MIN_LINE_NOISE_DBFS / 20.0);
        let min_noise = BAND_BINS as f32 * sigma * sigma * energy + 1.0;
        let mut lag_gain = [0.0f32; MAX_LAG + 1];
        for (lag, g) in lag_gain.iter_mut().enumerate() {
            let r: f32 = (0..WINDOW - lag).map(|i| window[i] * window[i + lag]).sum();
            *g = energy / r;
        }
        Self {
            thresholds: Thresholds::for_aggressiveness(aggressiveness),
            time: forward.make_input_vec(),
            spectrum: forward.make_output_vec(),
            scratch: vec![Complex::default(); scratch_len],
            forward,
            inverse,
            window,
            min_noise,
            lag_gain,
            history: [0.0; WINDOW],
            power: [0.0; BINS],
            noise: [0.0; BANDS],
            frames: 0,
            learnt_from: 0.0,
            learnt_steady: false,
            window_full: false,
            sounding: 0,
            after_silence: false,
            waited: 0,
            line_gone: false,
            silent_frames: 0,
            steady: LevelStretch::default(),
            held: LevelStretch::default(),
            since_voiced: None,
            tones: Tones::default(),
            weak_frames: 0,
            lead: 0,
            last: Features::default(),
            echo: echo_aware.then(|| Box::new(EchoGate::new())),
        }
    }

    /// The last frame's features.
    pub(crate) fn features(&self) -> Features {
        self.last
    }

    /// The echo gate, to map the agent's playout onto the caller's stream.
    pub(crate) fn echo_gate(&mut self) -> Option<&mut EchoGate> {
        self.echo.as_deref_mut()
    }

    /// Whether the echo gate has recognised an echo new to it since the last call (see
    /// [`EchoGate::take_recognised`]).
    pub(crate) fn echo_recognised(&mut self) -> bool {
        self.echo.as_deref_mut().is_some_and(EchoGate::take_recognised)
    }

    /// Whether the echo gate's match confirmed an echo at the caller's frame in `slot` (see
    /// [`EchoGate::echo_confirmed`]).
    pub(crate) fn echo_confirmed(&self, slot: u64) -> bool {
        self.echo.as_deref().is_some_and(|e| e.echo_confirmed(slot))
    }

    /// Whether the echo gate suspects, at the caller's frame in `slot`, an echo it lets through
    /// (see [`EchoGate::suspects_echo`]).
    pub(crate) fn echo_suspected(&self, slot: u64) -> bool {
        self.echo.as_deref().is_some_and(|e| e.suspects_echo(slot))
    }

    /// Records up to 20 ms of the agent's audio (8 kHz), heard in the caller's stream from
    /// `sample` on, as the echo gate's reference.
    pub(crate) fn echo_reference(&mut self, pcm: &[i16], sample: u64) {
        let (window, scale) = reference_window();
        let n = pcm.len().min(window.len());
        for ((t, &x), &w) in self.time.iter_mut().zip(&pcm[..n]).zip(window) {
            *t = f32::from(x) * w;
        }
        self.time[n..].fill(0.0);
        // Lengths are fixed by construction, so this cannot fail.
        let _ = self.forward.process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch);
        let mut codes = [0u8; GATE_BANDS];
        for (g, code) in codes.iter_mut().enumerate() {
            let lo = LO_BIN + 2 * g * BAND_BINS;
            let e: f32 = self.spectrum[lo..lo + 2 * BAND_BINS].iter().map(|c| c.norm_sqr()).sum();
            *code = to_db_code(e * scale);
        }
        if let Some(echo) = self.echo.as_mut() {
            echo.record((sample + n as u64 / 2) / SLOT_SAMPLES, codes);
        }
    }

    /// Which bands of the caller's frame in `slot` are the agent's echo (see
    /// [`super::echo_gate`]); `None` (at the cost of one comparison) while no agent audio can
    /// echo in it.
    fn echo_mask(&mut self, bands: &[f32; BANDS], slot: u64) -> Option<[bool; BANDS]> {
        if !self.echo.as_ref().is_some_and(|e| e.active(slot)) {
            return None;
        }
        let db = |e: [f32; BANDS], g: usize| 10.0 * (e[2 * g] + e[2 * g + 1]).max(1.0).log10();
        let caller: [f32; GATE_BANDS] = std::array::from_fn(|g| db(*bands, g));
        let noise: [f32; GATE_BANDS] = std::array::from_fn(|g| db(self.noise, g));
        // Within 1 dB of its minimum in every band, the floor says nothing of the line under it.
        let at_minimum = self.noise.iter().all(|&n| n <= self.min_noise * 1.26);
        let after_tone = self.tones.in_tone();
        let gate = self.echo.as_mut()?.mask(slot, &caller, &noise, at_minimum, after_tone)?;
        Some(std::array::from_fn(|b| gate[b / 2]))
    }

    /// Computes the features of `frame` (and shifts it into the history); `slot`: where it lies
    /// in the caller's stream, for the echo gate. Returns the band energies, the bands taken as
    /// echo and the strongest lines of the whitened spectrum (to tell tones) with them.
    fn analyse(
        &mut self,
        frame: &[i16; FRAME_SAMPLES],
        slot: u64,
    ) -> ([f32; BANDS], [bool; BANDS], Features, Lines) {
        self.history.copy_within(FRAME_SAMPLES.., 0);
        for (h, &x) in self.history[WINDOW - FRAME_SAMPLES..].iter_mut().zip(frame) {
            *h = f32::from(x);
        }
        let (mut total, mut peak, mut full) = (0.0f32, 0.0f32, true);
        for block in self.history.chunks_exact(IMPULSE_BLOCK) {
            let e: f32 = block.iter().map(|x| x * x).sum();
            total += e;
            peak = peak.max(e);
            full &= e > SILENT_BLOCK_ENERGY;
        }
        self.window_full = full;
        let impulsiveness = if total > 0.0 { peak / total } else { 0.0 };
        for ((t, &h), &w) in self.time.iter_mut().zip(&self.history).zip(&self.window) {
            *t = h * w;
        }
        self.time[WINDOW..].fill(0.0);
        // Lengths are fixed by construction, so this cannot fail.
        let _ = self.forward.process_with_scratch(&mut self.time, &mut self.spectrum, &mut self.scratch);
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.norm_sqr();
        }
        let mut bands = [0.0f32; BANDS];
        for (b, e) in bands.iter_mut().enumerate() {
            let lo = LO_BIN + b * BAND_BINS;
            *e = self.power[lo..lo + BAND_BINS].iter().sum::<f32>() + 1.0;
        }
        // Bands the agent's echo explains count as line noise: no SNR, flat when whitened.
        // A floor exists (learnt, or waiting at its minimum) from the first frame on.
        let echo = if self.noise[0] > 0.0 { self.echo_mask(&bands, slot) } else { None };
        let echo = echo.unwrap_or([false; BANDS]);
        let mut snr_sum = 0.0;
        for ((e, n), &masked) in bands.iter().zip(&self.noise).zip(&echo) {
            let ratio = if *n > 0.0 && !masked { e / n } else { 1.0 };
            snr_sum += 10.0 * ratio.max(1.0).log10();
        }
        // Noise-whitened spectrum in the band (power over the noise floor), as the input of the
        // inverse FFT: stationary noise becomes white (no autocorrelation at pitch lags), steady
        // tones in the floor flatten out, bins where speech stands above the floor dominate.
        for c in self.spectrum.iter_mut() {
            *c = Complex::default();
        }
        // Uncapped too, for the lines: on a quiet line the cap flattens a tone's main lobe and
        // its skirts alike.
        let mut whitened = [0.0f32; HI_BIN - LO_BIN];
        for (b, &masked) in echo.iter().enumerate() {
            let inv = if self.noise[b] > 0.0 { BAND_BINS as f32 / self.noise[b] } else { 0.0 };
            let lo = LO_BIN + b * BAND_BINS;
            for k in lo..lo + BAND_BINS {
                let w = if masked { 1.0 } else { self.power[k] * inv };
                whitened[k - LO_BIN] = w;
                self.spectrum[k].re = w.min(MAX_WHITENED);
            }
        }
        let lines = Lines::measure(&whitened, &self.power[LO_BIN..HI_BIN]);
        let _ = self.inverse.process_with_scratch(&mut self.spectrum, &mut self.time, &mut self.scratch);
        let r0 = self.time[0];
        let mut harmonicity = 0.0f32;
        let mut pitch_lag = 0u8;
        if r0 > 0.0 {
            // The largest weighted autocorrelation and the first lag that holds it, by a
            // maximum (which vectorises) and then a search for it: compared lag by lag, the
            // running maximum was a chain of dependent comparisons.
            let mut weighted = [0.0f32; MAX_LAG + 1 - MIN_LAG];
            for (w, (&r, &g)) in
                weighted.iter_mut().zip(self.time[MIN_LAG..=MAX_LAG].iter().zip(&self.lag_gain[MIN_LAG..]))
            {
                *w = r * g;
            }
            let peak = max_of(&weighted);
            if peak > 0.0 {
                harmonicity = peak / r0;
                pitch_lag = (MIN_LAG + weighted.iter().position(|&w| w == peak).unwrap_or(0)) as u8;
            }
        }
        let snr_db = snr_sum / BANDS as f32;
        (bands, echo, Features { harmonicity, snr_db, impulsiveness, pitch_lag }, lines)
    }

    /// True if `frame` (20 ms, 8 kHz, hum-filtered), heard in `slot` of the caller's stream (20 ms
    /// slots, for the echo gate), is speech.
    pub(crate) fn classify(&mut self, frame: &[i16; FRAME_SAMPLES], slot: u64) -> bool {
        let (bands, echo, f, lines) = self.analyse(frame, slot);
        let t = self.thresholds;
        // A tone (or a keypad's pair) is as periodic as a voice, never voiced (see
        // `super::tone`). Its first frame or two, before its line was seen twice at one
        // frequency, may have started a run: a run every frame of which held the line ends.
        let echoed = echo.contains(&true);
        let tone = self.tones.is_tone(lines);
        if tone && self.tones.run_was_the_tone(&lines) {
            self.since_voiced = None;
        }
        self.last = f;
        let voiced = f.harmonicity >= t.voiced_harmonicity
            && f.snr_db >= t.voiced_snr_db
            && f.impulsiveness <= MAX_VOICED_IMPULSIVENESS
            && !tone;
        let weak = f.harmonicity >= t.keep_harmonicity || f.snr_db >= t.keep_snr_db;
        self.lead = 0;
        let starts_run = voiced && self.since_voiced.is_none();
        self.tones.run_goes_on(&lines, starts_run);
        let speech = if voiced {
            if starts_run {
                self.lead = self.weak_frames.min(MAX_LEAD_FRAMES);
            }
            self.since_voiced = Some(0);
            true
        } else if let Some(n) = self.since_voiced {
            let keep = weak && n < BRIDGE_FRAMES;
            self.since_voiced = keep.then_some(n + 1);
            keep
        } else {
            false
        };
        // A soft start has energy clearly above the floor; harmonicity alone is not enough.
        let lead_like = f.snr_db >= t.keep_snr_db;
        let weak_before = self.weak_frames;
        // Nor is a tone's frame anyone's soft start.
        self.weak_frames = if speech || !lead_like || tone { 0 } else { self.weak_frames + 1 };
        let tracked = self.track_noise(&bands, &echo, speech, voiced, tone);
        self.follow_the_level(&bands, speech);
        // A frame of sound with no floor to measure it against (a stream's first frames, a
        // line back after a silence before it is judged, or judged another line's) may be the
        // soft start of words said at once: it counts towards a run's lead as one over the
        // floor would. Measured against the floor the line left, or none, a caller who spoke
        // the moment a quieter line came back had their first run fall a frame or two short of
        // the minimum speech, and was heard a word or two later. Capped at the longest lead, so
        // that such frames alone never take the line for a louder one; not a frame the agent's
        // echo explains in part (it is no one's soft start).
        if tracked == Tracked::Unmeasured && !speech && !lead_like && !tone && !echoed {
            self.weak_frames = (weak_before + 1).min(MAX_LEAD_FRAMES);
        }
        if tracked == Tracked::SoftStartForgotten && starts_run && !tone && !echoed {
            // The frames since the silence were the voice's soft start, measured against a floor
            // learnt from that soft start: the run reaches back over them as over frames with no
            // floor (at most the longest lead). Without it a quiet caller's first words after
            // silence began one to four frames late and were confirmed as much later.
            self.lead = self.lead.max(self.sounding.saturating_sub(1).min(MAX_LEAD_FRAMES));
        }
        if tracked == Tracked::LearntAsLine {
            // Learnt as the line's sound: neither this frame nor the run it continued (measured
            // against the minimum, or a steady sound over the floor) was speech.
            self.since_voiced = None;
            self.weak_frames = 0;
            self.lead = 0;
            return false;
        }
        speech
    }

    /// Updates the noise floor with this frame's band energies, but for the bands taken as echo.
    ///
    /// The floor is first learnt from a frame of sound that is neither speech nor harmonic
    /// enough to continue it. Until then it waits at its minimum: a carrier may send digital
    /// silence before the call's audio, and a floor learnt from that silence took the line's
    /// noise after it for speech for seconds (it climbs 5 dB/s), while speech over a digitally
    /// silent line is heard against the minimum as it comes. A floor learnt from the soft start
    /// of an utterance is forgotten when a voiced frame stands 10 dB over it during the warm-up
    /// ([`RELEARN`]); a sound that stays harmonic for a second is learnt all the same
    /// ([`MAX_WAIT_FRAMES`]), and after digital silence a quiet one as steady as the frame before
    /// it at once ([`STEADY`]); if that sound had passed for speech, it is forgotten as a quiet
    /// voice's soft start when a voiced frame rises 6 dB over it during the warm-up
    /// ([`SOFT_START_RISE`]).
    ///
    /// That first frame is analysed in a window wholly of sound. Where the sound begins inside
    /// the window (a stream's first frames, a carrier's silence ending inside a frame, a
    /// resampler's first 2 ms), the window's energy is short by as much, and a floor learnt from
    /// it stood under the line: its noise then started speech in a third of noisy calls whose
    /// first 8 ms were silent. A stream's frames before a floor exists are never speech (nothing
    /// to measure them against), so the wait costs at most two frames of a stream that begins
    /// with speech; after silence, speech is heard against the minimum meanwhile.
    ///
    /// Later digital silence leaves the floor as it is, however long. When the engine fills a
    /// gap in the caller's media with silence, a floor that learnt from it fell toward its
    /// minimum, and the line's noise after a gap of a second or two passed for speech while the
    /// floor climbed back (a false start after most such gaps). The same after the caller muted
    /// or the call was on hold for longer than the engine fills: a floor that followed the
    /// silent line down took it back for speech (after 2.5-3.5 s, 0-8 of 50 calls per line and
    /// 42-50 on the strong hum), and one that waited at the minimum for the line's sound learnt
    /// it afresh from a frame or two, and heard speech soon after it late (after 5 s, p50
    /// 240-300 ms and p90 880-920 ms on the noisy lines, against 120-140 and 220-240 ms without
    /// the silence). After such a silence, or such a gap in the stream, the line's first window
    /// wholly of sound is compared with the floor: a line come back quieter ([`QUIETER_LINE`])
    /// is learnt afresh, as at a stream's start; a louder one is climbed to, as when a line gets
    /// louder mid-call ([`LOUDER_LINE_FRAMES`]).
    ///
    /// Returns what became of the frame (see [`Tracked`]).
    fn track_noise(
        &mut self,
        bands: &[f32; BANDS],
        echo: &[bool; BANDS],
        speech: bool,
        voiced: bool,
        tone: bool,
    ) -> Tracked {
        let silent = bands.iter().all(|&e| e <= self.min_noise);
        self.silent_frames = if silent { self.silent_frames.saturating_add(1) } else { 0 };
        self.sounding = if silent { 0 } else { self.sounding.saturating_add(1) };
        if silent {
            self.forget_steady();
        }
        if self.frames == 0 {
            if silent {
                self.wait_for_the_line(true);
                return Tracked::Measured;
            }
            // From here on measured against no floor, or against the minimum (where any sound
            // stands over the threshold anyway).
            if !self.window_of_sound() {
                return Tracked::Unmeasured;
            }
            // After a carrier's silence a line's hum or tone is harmonic against the minimum,
            // as a voice is, and would pass for speech until learnt after a second of it: a
            // sound as steady as the frame before it, and too quiet for the speech that follows
            // silence, is the line. (`learnt_from` holds the previous frame's energy meanwhile.)
            let line = line_energy(bands, echo);
            let steady = self.after_silence
                && self.waited > 0
                && line < BANDS as f32 * self.min_noise * STEADY_MAX_OVER_MIN
                && line <= self.learnt_from * STEADY
                && line * STEADY >= self.learnt_from;
            self.learnt_from = line;
            self.waited += 1;
            let harmonic = self.last.harmonicity >= self.thresholds.keep_harmonicity;
            // A steady harmonic sound (hold music, a drone) would keep the floor waiting for
            // ever, all of it speech: after a while it is learnt all the same, and the warm-up
            // takes the floor down to its quieter frames.
            if (speech || harmonic) && self.waited < MAX_WAIT_FRAMES && !steady {
                self.noise = [self.min_noise; BANDS];
                return Tracked::Unmeasured;
            }
            self.learn_the_line(bands, echo);
            self.learnt_steady = speech && steady;
            // A steady sound taken for speech is the line's (a sound learnt after a second of it
            // may have been a voice: the run goes on, as the warm-up decides).
            return if speech && steady { Tracked::LearntAsLine } else { Tracked::Unmeasured };
        }
        let rise = if self.learnt_steady { SOFT_START_RISE } else { RELEARN };
        if self.frames <= WARMUP_FRAMES && voiced && line_energy(bands, echo) > self.learnt_from * rise {
            let soft_start = self.learnt_steady;
            self.wait_for_the_line(false);
            return if soft_start { Tracked::SoftStartForgotten } else { Tracked::Measured };
        }
        if silent {
            // Nothing of the line is in it: a gap the engine filled, or a carrier's silence.
            self.line_gone |= self.silent_frames > MAX_GAP_FILL_FRAMES;
            return Tracked::Measured;
        }
        if self.line_gone {
            if !self.window_of_sound() {
                return Tracked::Unmeasured;
            }
            self.line_gone = false;
            let line = line_energy(bands, echo);
            let floor = line_energy(&self.noise, echo);
            if line * QUIETER_LINE < floor {
                // Another line, quieter: the floor left would hide its speech until it fell to
                // it, 0.5 dB a frame. Learnt afresh, its speech heard against the minimum
                // meanwhile.
                self.wait_for_the_line(true);
                return Tracked::Unmeasured;
            }
        }
        // A drone, or a hum that came up (or a tone its lines did not tell, in noise), is voiced:
        // once taken for speech, the floor climbed to it at the speech rate (a hum 30 dB louder
        // passed for one speech of 39 s, a drone for as long as it lasted). Steady for a second,
        // it is learnt as the line's at once.
        if self.steady_sound(bands, echo, speech) {
            self.learn_the_line(bands, echo);
            return Tracked::LearntAsLine;
        }
        // A tone is never speech, and the floor climbed to it at 5 dB/s: a voice over a loud
        // one was heard only once its harmonics stood out of the tone's, seconds later. Held for
        // a second, it is learnt as the line's sound as a drone is.
        if tone && self.tones.held_for() >= STEADY_SOUND_FRAMES {
            self.learn_the_line(bands, echo);
            return Tracked::Measured;
        }
        self.frames = self.frames.saturating_add(1);
        let warm = self.frames <= WARMUP_FRAMES;
        // Per frame: in the warm-up (`WARMUP_FRAMES`) down 1.9 dB and up 0.5 dB; after it, down
        // 0.5 dB; up 0.1 dB (5 dB/s) outside speech, 0.01 dB in speech, and 0.5 dB once the line
        // has stood over the floor without speech for `LOUDER_LINE_FRAMES`.
        let (down, up) = if warm {
            (0.64, 1.12)
        } else if !speech && self.weak_frames >= LOUDER_LINE_FRAMES {
            (0.891, 1.12)
        } else if speech {
            (0.891, 1.0023)
        } else {
            (0.891, 1.023)
        };
        for ((n, &e), _) in self.noise.iter_mut().zip(bands).zip(echo).filter(|(_, masked)| !**masked) {
            *n = if e < *n { (*n * down).max(e) } else { (*n * up).min(e) };
            *n = n.max(self.min_noise);
        }
        Tracked::Measured
    }

    /// Learns the floor from this frame's bands, but for those taken as echo, and starts the
    /// warm-up.
    fn learn_the_line(&mut self, bands: &[f32; BANDS], echo: &[bool; BANDS]) {
        self.frames = 1;
        self.learnt_steady = false;
        self.learnt_from = line_energy(bands, echo);
        self.forget_steady();
        for ((n, &e), &masked) in self.noise.iter_mut().zip(bands).zip(echo) {
            *n = if masked { self.min_noise } else { e.max(self.min_noise) };
        }
    }

    /// Whether a run has been as steady as a drone or a hum for [`STEADY_SOUND_FRAMES`]: a
    /// voice's energy moves with its syllables by far more than [`STEADY_SOUND`] within a second.
    fn steady_sound(&mut self, bands: &[f32; BANDS], echo: &[bool; BANDS], speech: bool) -> bool {
        self.steady.follow(line_energy(bands, echo), speech, !echo.contains(&true));
        self.steady.frames >= STEADY_SOUND_FRAMES
    }

    /// True once the analysis window holds only the line's sound, nothing of a silence before it
    /// (a line quieter than the blocks' threshold fills it only with its own frames: true then).
    fn window_of_sound(&self) -> bool {
        self.window_full || self.sounding > WINDOW_FRAMES
    }

    /// Forgets the floor: it waits at its minimum for the line's sound (see
    /// [`Self::track_noise`]), after digital silence or not.
    fn wait_for_the_line(&mut self, after_silence: bool) {
        self.noise = [self.min_noise; BANDS];
        self.frames = 0;
        self.learnt_steady = false;
        self.line_gone = false;
        self.waited = 0;
        self.after_silence = after_silence;
        self.forget_steady();
    }

    /// Ends the steady stretch (see [`Self::steady_sound`]): the sound after is compared afresh.
    fn forget_steady(&mut self) {
        self.steady = LevelStretch::default();
    }

    /// Follows how long the run's sound, over all bands, has held one level (within
    /// [`STEADY_SOUND`] of its stretch's first frame). Unlike the steady stretch that teaches the
    /// floor, a frame the agent's echo masks in part goes on with it: while the agent talks the
    /// gate masks bands even on a line without echo, and a drone there would start afresh at
    /// each. Its level with an echo in it moves with the agent's voice.
    fn follow_the_level(&mut self, bands: &[f32; BANDS], speech: bool) {
        self.held.follow(bands.iter().sum(), speech, true);
    }

    /// Frames in a row, up to the last, of a run whose sound held one level over all bands (see
    /// [`Self::follow_the_level`]).
    pub(crate) fn held_frames(&self) -> u32 {
        self.held.frames
    }

    /// True if the last frame was voiced (strong evidence, not a continuation).
    pub(crate) fn last_voiced(&self) -> bool {
        self.since_voiced == Some(0)
    }

    /// Frames just before the last frame, if it started a run, that belong to that run.
    pub(crate) fn lead_frames(&self) -> u32 {
        self.lead
    }

    /// Audio that never arrived: nothing to learn, and a run does not survive it.
    pub(crate) fn feed_silence(&mut self, frames: u64) {
        self.sounding = 0;
        // As long a silence as any digital silence around it.
        let frames = u32::try_from(frames).unwrap_or(u32::MAX);
        self.silent_frames = self.silent_frames.saturating_add(frames);
        self.line_gone |= self.frames > 0 && self.silent_frames > MAX_GAP_FILL_FRAMES;
        if self.frames == 0 {
            // As digital silence: the sound after it is compared with none before it.
            self.waited = 0;
            self.after_silence = true;
        }
        self.since_voiced = None;
        self.weak_frames = 0;
        self.lead = 0;
        self.history = [0.0; WINDOW];
        self.tones.forget();
        self.forget_steady();
        self.held = LevelStretch::default();
    }

    /// Forgets all adaptation.
    pub(crate) fn reset(&mut self) {
        self.history = [0.0; WINDOW];
        self.noise = [0.0; BANDS];
        self.frames = 0;
        self.learnt_from = 0.0;
        self.learnt_steady = false;
        self.window_full = false;
        self.sounding = 0;
        self.after_silence = false;
        self.waited = 0;
        self.line_gone = false;
        self.silent_frames = 0;
        self.forget_steady();
        self.held = LevelStretch::default();
        self.tones.forget();
        self.since_voiced = None;
        self.weak_frames = 0;
        self.lead = 0;
        self.last = Features::default();
        if let Some(echo) = self.echo.as_mut() {
            echo.reset();
        }
    }
}

/// A run's stretch of frames whose energy stays within [`STEADY_SOUND`] of its first's: how
/// long its sound has held one level.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct LevelStretch {
    /// The energy of the stretch's first frame; 0 outside runs.
    from: f32,
    /// The frames after it so far.
    frames: u32,
}

impl LevelStretch {
    /// Follows a frame of `energy`: `speech`, the frame goes on a run; `comparable`, its energy
    /// can be held against the stretch's (otherwise a stretch starts afresh from it).
    fn follow(&mut self, energy: f32, speech: bool, comparable: bool) {
        if speech && comparable && energy <= self.from * STEADY_SOUND && energy * STEADY_SOUND >= self.from {
            self.frames = self.frames.saturating_add(1);
        } else {
            *self = Self { from: if speech { energy } else { 0.0 }, frames: 0 };
        }
    }
}

/// The energy of the bands the echo does not explain.
fn line_energy(bands: &[f32; BANDS], echo: &[bool; BANDS]) -> f32 {
    bands.iter().zip(echo).filter(|&(_, &masked)| !masked).map(|(e, _)| e).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::XorShift;
    use crate::vad::tone::TONE_OVER_THIRD;

    fn noise(rng: &mut XorShift, amp: f32) -> i16 {
        (rng.below(2001) as f32 / 1000.0 - 1.0).mul_add(amp, 0.0) as i16
    }

    /// 1.2 s: noise, then 300 ms of a 140 Hz harmonic "vowel" over it, then noise; returns the
    /// per-frame decisions and features.
    fn run(amp: f32) -> Vec<(bool, Features, Lines)> {
        over_noise(|t| {
            (1..12).map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() * amp / h as f32).sum()
        })
    }

    /// 1.2 s: noise, then 300 ms of `sound` (of the time, s) over it, then noise; returns the
    /// per-frame decisions and features.
    fn over_noise(sound: impl Fn(f32) -> f32) -> Vec<(bool, Features, Lines)> {
        let mut c = SpectralClassifier::new(2, false);
        let mut rng = XorShift(7);
        (0..60)
            .map(|i| {
                let mut f = [0i16; FRAME_SAMPLES];
                for (k, v) in f.iter_mut().enumerate() {
                    let t = (i * FRAME_SAMPLES + k) as f32 / 8000.0;
                    let sound = if (30..45).contains(&i) { sound(t) } else { 0.0 };
                    *v = noise(&mut rng, 300.0) + sound as i16;
                }
                (c.classify(&f, i as u64), c.features(), c.tones.last())
            })
            .collect()
    }

    #[test]
    fn a_tone_or_a_keypads_pair_over_noise_is_not_speech() {
        // As loud over the noise as the vowel above, which is speech from its second frame on.
        let tone = |hz: &'static [f32]| {
            move |t: f32| hz.iter().map(|hz| (2.0 * std::f32::consts::PI * hz * t).sin() * 1_000.0).sum()
        };
        for hz in [&[440.0][..], &[1_000.0], &[2_100.0], &[697.0, 1_209.0], &[941.0, 1_477.0]] {
            let out = over_noise(tone(hz));
            let speech: Vec<usize> = (0..out.len()).filter(|&i| out[i].0).collect();
            // Its first frames may be, until the line is seen twice at the same frequency (the
            // first frame holds it in part); then their run ends.
            assert!(speech.iter().all(|&i| i < 32), "{hz:?} Hz: speech at frames {speech:?}");
            // The line is measured where it is: the frame's strongest, far over the third.
            let l = out[35].2;
            let hz_at = (l.position - 1.0 + LO_BIN as f32) * BIN_HZ;
            assert!(hz.iter().any(|hz| (hz_at - hz).abs() <= BIN_HZ / 2.0), "{hz:?} Hz: {l:?}");
            assert!(l.first_over > TONE_OVER_THIRD, "{hz:?} Hz: {l:?}");
        }
        // A voice's harmonics share its energy: no line stands out so far.
        let l = run(800.0)[35].2;
        assert!(l.first_over < TONE_OVER_THIRD, "{l:?}");
    }

    #[test]
    fn a_harmonic_sound_over_noise_is_speech_the_noise_is_not() {
        let out = run(800.0);
        for (i, (speech, f, _)) in out.iter().enumerate() {
            // The run may go on for a few bridged frames after the sound (weak evidence).
            let bridged = 46..=46 + BRIDGE_FRAMES as usize;
            if (31..45).contains(&i) {
                assert!(*speech && f.harmonicity > 0.8, "frame {i}: {f:?}");
            } else if i < 30 {
                assert!(!*speech && f.harmonicity < 0.45, "frame {i}: {f:?}");
            } else if i > *bridged.end() {
                assert!(!*speech, "frame {i}: {f:?}");
            }
        }
    }

    /// A 20 ms frame of the tests' noise (±300) whose first `zeros` samples are silent.
    fn noise_frame(rng: &mut XorShift, zeros: usize) -> [i16; FRAME_SAMPLES] {
        std::array::from_fn(|k| if k < zeros { 0 } else { noise(rng, 300.0) })
    }

    #[test]
    fn the_floor_is_first_learnt_from_a_window_wholly_of_sound() {
        let mut rng = XorShift(11);
        // The first frame's window reaches back 96 samples before the stream: the second's is
        // the first whole one.
        let mut c = SpectralClassifier::new(2, false);
        c.classify(&noise_frame(&mut rng, 0), 0);
        assert_eq!(c.frames, 0, "nothing learnt from the first window");
        c.classify(&noise_frame(&mut rng, 0), 1);
        assert_eq!(c.frames, 1, "learnt from the second");
        // Silence ending 100 samples into the first frame reaches into the second's window.
        let mut c = SpectralClassifier::new(2, false);
        c.classify(&noise_frame(&mut rng, 100), 0);
        c.classify(&noise_frame(&mut rng, 0), 1);
        assert_eq!(c.frames, 0, "nothing learnt from windows partly empty");
        c.classify(&noise_frame(&mut rng, 0), 2);
        assert_eq!(c.frames, 1, "learnt from the first whole window");
        // Its floor is the line's: the next frames of it stand at most a few dB over it.
        for i in 3..10 {
            let f = noise_frame(&mut rng, 0);
            assert!(!c.classify(&f, i) && c.features().snr_db < 3.0, "frame {i}: {:?}", c.features());
        }
    }

    #[test]
    fn a_line_with_quiet_blocks_of_its_own_is_learnt_after_two_frames() {
        // A quarter of every frame under the blocks' threshold: no window is ever whole, and
        // once the window holds only the line's frames the floor is learnt all the same.
        let mut rng = XorShift(5);
        let mut c = SpectralClassifier::new(2, false);
        for i in 0..3 {
            c.classify(&noise_frame(&mut rng, FRAME_SAMPLES / 4), i);
            assert_eq!(c.frames, u32::from(i == 2), "frame {i}");
        }
    }

    /// After 100 ms of digital silence, `frames` frames of a 150 Hz tone with four harmonics at
    /// `amp` (plus faint noise); returns the classifier and how many frames it took for speech.
    fn tone_after_silence(amp: f32, frames: usize) -> (SpectralClassifier, usize) {
        let mut c = SpectralClassifier::new(2, false);
        let mut rng = XorShift(9);
        for i in 0..5 {
            c.classify(&[0; FRAME_SAMPLES], i);
        }
        let mut speech = 0;
        for i in 0..frames {
            let f: [i16; FRAME_SAMPLES] = std::array::from_fn(|k| {
                let t = (i * FRAME_SAMPLES + k) as f32 / 8000.0;
                let v: f32 = (1..5)
                    .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                    .sum();
                (v * amp) as i16 + noise(&mut rng, 10.0)
            });
            speech += usize::from(c.classify(&f, 5 + i as u64));
        }
        (c, speech)
    }

    #[test]
    fn a_quiet_steady_tone_after_silence_is_learnt_at_once_a_loud_one_is_not() {
        // A hum at about -50 dBFS: learnt on its third frame (the first whole window and the
        // one steady after it), and that frame and the run before it are not speech.
        let (c, speech) = tone_after_silence(150.0, 3);
        assert_eq!(c.frames, 1, "learnt");
        assert_eq!(c.since_voiced, None, "the run judged against the minimum ends");
        assert!(speech <= 2, "{speech} frames of speech");
        let (_, speech) = tone_after_silence(150.0, 50);
        assert!(speech <= 2, "{speech} frames of speech in 1 s of the hum");
        // As loud as a voice (about -20 dBFS): heard against the minimum, as speech after
        // silence must be, until a second of it has passed.
        let (c, speech) = tone_after_silence(4_000.0, 10);
        assert_eq!(c.frames, 0, "still waiting");
        assert!(speech >= 8, "{speech} frames of speech");
    }

    /// 2 s of noise at `amp`, `silent` frames of digital silence and a gap of `gap` frames in
    /// the stream, then 5 frames of the noise at `amp_back`; returns the classifier, the frames
    /// its floor had learnt from before the silence, and that floor's energy.
    fn line_back_after(silent: usize, gap: u64, amp: f32, amp_back: f32) -> (SpectralClassifier, u32, f32) {
        let mut c = SpectralClassifier::new(2, false);
        let mut rng = XorShift(13);
        let mut slot = 0..;
        for _ in 0..100 {
            let f: [i16; FRAME_SAMPLES] = std::array::from_fn(|_| noise(&mut rng, amp));
            c.classify(&f, slot.next().unwrap());
        }
        let (frames, floor) = (c.frames, c.noise.iter().sum::<f32>());
        for _ in 0..silent {
            c.classify(&[0; FRAME_SAMPLES], slot.next().unwrap());
        }
        if gap > 0 {
            c.feed_silence(gap);
        }
        for _ in 0..5 {
            let f: [i16; FRAME_SAMPLES] = std::array::from_fn(|_| noise(&mut rng, amp_back));
            assert!(!c.classify(&f, slot.next().unwrap()), "the line taken for speech");
        }
        (c, frames, floor)
    }

    #[test]
    fn a_line_back_after_a_long_silence_keeps_its_floor_a_quieter_one_is_learnt_afresh() {
        // 3 s of silence, the same line after it: the floor it left, kept through the silence.
        let (c, frames, floor) = line_back_after(150, 0, 300.0, 300.0);
        let kept = c.noise.iter().sum::<f32>() / floor;
        assert!(c.frames > frames && (0.7..1.4).contains(&kept), "{} frames, floor x{kept}", c.frames);
        // The line back 10 dB quieter: compared on its second frame (the first whole window of
        // it), learnt afresh from a frame after (the waiting rules). The floor left sat under
        // the louder line's frames, the new one is learnt from a frame: 6-10 dB down (kept, it
        // would fall 0.5 dB a frame).
        for (silent, gap) in [(150, 0), (0, 150), (60, 60)] {
            let (c, _, floor) = line_back_after(silent, gap, 300.0, 95.0);
            let learnt = c.noise.iter().sum::<f32>() / floor;
            assert!(
                (1..=3).contains(&c.frames) && (0.1..0.25).contains(&learnt),
                "after {silent} silent frames and a gap of {gap}: {} frames, floor x{learnt}",
                c.frames
            );
        }
        // After a silence or a gap the engine fills (1 s), the floor is kept whatever comes
        // back, and falls to a quieter line as it does mid-call.
        for (silent, gap) in [(50, 0), (0, 50)] {
            let (c, frames, _) = line_back_after(silent, gap, 300.0, 95.0);
            assert!(
                c.frames > frames,
                "after {silent} silent frames and a gap of {gap}: {} frames",
                c.frames
            );
        }
    }

    /// Words said at once on a line of noise at `amp_back` (frames from `from_slot`): the lead
    /// of their first voiced frame, and the frames of sound before it.
    fn first_lead(c: &mut SpectralClassifier, from_slot: u64, amp_back: f32) -> (u32, u32) {
        let mut rng = XorShift(29);
        // A soft start of three frames, then the vowel 16 dB louder.
        let words = voice(20, 140.0, 400.0);
        for (k, chunk) in words.chunks_exact(FRAME_SAMPLES).enumerate() {
            let gain = if k < 3 { 0.15 } else { 1.0 };
            let f: [i16; FRAME_SAMPLES] = std::array::from_fn(|i| {
                ((f32::from(chunk[i]) * gain) as i16).saturating_add(noise(&mut rng, amp_back))
            });
            c.classify(&f, from_slot + k as u64);
            if c.last_voiced() {
                return (c.lead_frames(), k as u32);
            }
        }
        panic!("the voice never voiced");
    }

    #[test]
    fn words_said_as_a_quieter_line_comes_back_are_led_by_its_first_frames() {
        // The line's first frames after a long silence are heard with no floor to measure them
        // against (before the line is judged, and as it is judged another line): they are the
        // words' soft start as much as frames over a floor would be, and count towards the first
        // run's lead, which reaches back to the line's first frame (at most `MAX_LEAD_FRAMES`).
        // Measured against the floor the louder line left, they did not: a lead of 1 here.
        let (mut c, _, _) = line_back_after(150, 0, 300.0, 300.0);
        // A fresh line after the silence: 10 dB quieter, the caller speaking as it comes back.
        for _ in 0..150 {
            c.classify(&[0; FRAME_SAMPLES], 1_000);
        }
        let (lead, before) = first_lead(&mut c, 2_000, 95.0);
        assert!(before >= 2 && lead == before.min(MAX_LEAD_FRAMES), "line back: lead {lead} of {before}");
    }

    #[test]
    fn a_silent_block_is_one_under_the_lowest_line_noise() {
        // Both thresholds stand for the same level: RMS 8 against MIN_LINE_NOISE_DBFS's 8.2.
        let sigma = 32_768.0 * 10f32.powf(MIN_LINE_NOISE_DBFS / 20.0);
        let ratio = SILENT_BLOCK_ENERGY / (IMPULSE_BLOCK as f32 * sigma * sigma);
        assert!((0.9..=1.0).contains(&ratio), "{ratio}");
    }

    /// A harmonic "vowel" at `pitch` Hz with pauses (on 300 ms, off 200 ms), as 8 kHz PCM.
    fn voice(frames: usize, pitch: f32, amp: f32) -> Vec<i16> {
        (0..frames * FRAME_SAMPLES)
            .map(|n| {
                let t = n as f32 / 8000.0;
                let on = (n / FRAME_SAMPLES) % 25 < 15;
                let v: f32 = (1..12)
                    .map(|h| (2.0 * std::f32::consts::PI * pitch * h as f32 * t).sin() / h as f32)
                    .sum();
                if on { (v * amp) as i16 } else { 0 }
            })
            .collect()
    }

    /// Runs the caller's audio through a classifier, the agent's audio recorded as played in
    /// the same slot (if any); returns the frames classified speech.
    fn speech_frames(caller: &[i16], agent: Option<&[i16]>) -> usize {
        let mut c = SpectralClassifier::new(2, true);
        let mut rng = XorShift(3);
        let mut speech = 0;
        for (i, frame) in caller.chunks_exact(FRAME_SAMPLES).enumerate() {
            if let Some(agent) = agent {
                c.echo_reference(&agent[i * FRAME_SAMPLES..][..FRAME_SAMPLES], (i * FRAME_SAMPLES) as u64);
            }
            let f: [i16; FRAME_SAMPLES] =
                std::array::from_fn(|k| frame[k].saturating_add(noise(&mut rng, 30.0)));
            speech += usize::from(c.classify(&f, i as u64));
        }
        speech
    }

    #[test]
    fn the_agents_delayed_echo_is_not_speech_a_louder_caller_over_it_is() {
        const FRAMES: usize = 250;
        const DELAY: usize = 10 * FRAME_SAMPLES;
        let agent = voice(FRAMES, 140.0, 3000.0);
        // The echo: 200 ms late, 10 dB down (ERL 10).
        let mut echo = vec![0i16; agent.len()];
        for (e, a) in echo[DELAY..].iter_mut().zip(&agent) {
            *e = (f32::from(*a) * 10f32.powf(-10.0 / 20.0)) as i16;
        }
        // Without the agent's audio, its echo is plainly speech; with it, it is not.
        assert!(speech_frames(&echo, None) > 50);
        // (Fewer frames than the shortest speech the detector confirms, 120 ms: no onset.)
        assert!(speech_frames(&echo, Some(&agent)) < 6);
        // The caller speaking over the echo after the agent's first 2 s (another voice, as loud
        // as the agent: 10 dB above its echo) is speech.
        let mut caller = voice(FRAMES, 210.0, 3000.0);
        caller[..100 * FRAME_SAMPLES].fill(0);
        let both: Vec<i16> = caller.iter().zip(&echo).map(|(c, e)| c.saturating_add(*e)).collect();
        let alone = speech_frames(&caller, None);
        let over_echo = speech_frames(&both, Some(&agent));
        assert!(over_echo * 10 >= alone * 7, "{over_echo} speech frames over the echo, {alone} alone");
    }

    #[test]
    fn reset_forgets_the_noise_floor() {
        let mut c = SpectralClassifier::new(2, false);
        c.classify(&[1000; FRAME_SAMPLES], 0);
        // A tone over noise, so that there is a tone to forget.
        let mut rng = XorShift(3);
        for i in 1..30 {
            let f: [i16; FRAME_SAMPLES] = std::array::from_fn(|k| {
                let t = (i * FRAME_SAMPLES + k) as f32 / 8000.0;
                noise(&mut rng, 300.0) + ((2.0 * std::f32::consts::PI * 1_000.0 * t).sin() * 1_000.0) as i16
            });
            c.classify(&f, i as u64);
        }
        assert_ne!(c.tones, Tones::default());
        c.reset();
        assert_eq!(c.noise, [0.0; BANDS]);
        assert_eq!((c.frames, c.waited, c.silent_frames, c.sounding), (0, 0, 0, 0));
        assert!(!c.window_full && !c.after_silence && !c.line_gone && !c.learnt_steady);
        assert_eq!((c.tones, c.steady), (Tones::default(), LevelStretch::default()));
    }
}
