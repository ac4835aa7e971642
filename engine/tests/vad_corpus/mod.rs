//! The VAD evaluation corpus and its scoring, shared by `tools/src/bin/vadbench.rs` and the tests
//! (`tests/integration/vad_scores.rs`, `tests/integration/barge_in.rs`, `tests/integration/echo_barge_in.rs`, `tests/integration/turn_taking.rs`).
//!
//! `scripts/make_vad_corpus.sh` synthesises clean speech clips (espeak-ng voices and rates, real
//! recordings from alsa-utils, backchannels, agent prompts). This module places them on telephone
//! tracks with seeded gaps and levels, so the labels are exact (sample counts of where each
//! trimmed clip was placed), and adds the line: pink or white noise at a set SNR (active speech
//! power over noise power, both measured in the telephone band), mains hum with harmonics,
//! keyboard-like clicks; the mix is band-limited to 300-3400 Hz and passed through G.711 µ-law.
//! Everything is seeded: the same clips always give the same tracks.
//!
//! Whole calls through the engine's public API (`call.rs`) carry two more sets: the bot's own
//! voice echoed into the caller's track (`echo.rs`) and multi-sentence caller turns with
//! labelled in-turn pauses (`turns.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use trunkline::codec::mulaw::{linear_to_ulaw, ulaw_to_linear};
use trunkline::vad::{SpeechDetector, SpeechTransition, VadConfig};

/// Sample rate of every track.
pub const RATE: u64 = 8_000;
/// Samples per ms.
pub const PER_MS: u64 = RATE / 1_000;

// ---------------------------------------------------------------------------------------------
// Clips

/// What a clip is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipKind {
    /// Caller utterance (espeak-ng).
    Utterance,
    /// Caller utterance, human recording.
    Real,
    /// Short acknowledgement ("mm-hm", "yeah"), under 300 ms.
    Backchannel,
    /// The bot's voice.
    Agent,
}

/// A clean clip at 8 kHz, full scale = 1.0.
pub struct Clip {
    pub kind: ClipKind,
    pub name: String,
    pub pcm: Vec<f32>,
}

impl Clip {
    pub fn ms(&self) -> u64 {
        self.pcm.len() as u64 / PER_MS
    }
}

/// Where the clips are built (under the workspace's `target/`).
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/vad-corpus")
}

/// Runs `scripts/make_vad_corpus.sh` with `args` into `dir` (skipped inside when already built)
/// and reads its manifest: each clip's kind tag, name and samples (full scale = 1.0).
pub fn build_corpus(args: &[&str], dir: &std::path::Path) -> Vec<(String, String, Vec<f32>)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/make_vad_corpus.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(args)
        .arg(dir)
        .status()
        .expect("run scripts/make_vad_corpus.sh");
    assert!(status.success(), "scripts/make_vad_corpus.sh {args:?} failed (needs espeak-ng and sox)");
    let manifest = std::fs::read_to_string(dir.join("manifest.txt")).expect("corpus manifest");
    manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut it = line.split_whitespace();
            let kind = it.next().unwrap().to_owned();
            let name = it.next().unwrap().to_owned();
            let bytes = std::fs::read(dir.join("clips").join(format!("{name}.s16"))).expect("clip");
            let pcm = bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0)
                .collect();
            (kind, name, pcm)
        })
        .collect()
}

/// The clips, built by `scripts/make_vad_corpus.sh` on first use (about a second; skipped when
/// already built).
pub fn clips() -> &'static [Clip] {
    static CLIPS: OnceLock<Vec<Clip>> = OnceLock::new();
    CLIPS.get_or_init(|| {
        build_corpus(&[], &corpus_dir())
            .into_iter()
            .map(|(kind, name, pcm)| {
                let kind = match kind.as_str() {
                    "utt" => ClipKind::Utterance,
                    "real" => ClipKind::Real,
                    "back" => ClipKind::Backchannel,
                    "agent" => ClipKind::Agent,
                    k => panic!("unknown clip kind {k}"),
                };
                Clip { kind, name, pcm }
            })
            .collect()
    })
}

pub fn clips_of(kinds: &[ClipKind]) -> Vec<&'static Clip> {
    clips().iter().filter(|c| kinds.contains(&c.kind)).collect()
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness and signal pieces

/// xorshift64*: small, seeded, good enough for noise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }
    /// Standard normal (Box-Muller).
    pub fn gauss(&mut self) -> f64 {
        let u = self.uniform().max(1e-300);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// A biquad (RBJ cookbook), f64, direct form I.
#[derive(Debug, Clone)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    x: [f64; 2],
    y: [f64; 2],
}

impl Biquad {
    fn new(b: [f64; 3], a: [f64; 3]) -> Self {
        Self {
            b: [b[0] / a[0], b[1] / a[0], b[2] / a[0]],
            a: [a[1] / a[0], a[2] / a[0]],
            x: [0.0; 2],
            y: [0.0; 2],
        }
    }
    fn high_pass(hz: f64, q: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * hz / RATE as f64;
        let (s, c) = w.sin_cos();
        let al = s / (2.0 * q);
        Self::new([(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0], [1.0 + al, -2.0 * c, 1.0 - al])
    }
    fn low_pass(hz: f64, q: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * hz / RATE as f64;
        let (s, c) = w.sin_cos();
        let al = s / (2.0 * q);
        Self::new([(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0], [1.0 + al, -2.0 * c, 1.0 - al])
    }
    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.b[1] * self.x[0] + self.b[2] * self.x[1]
            - self.a[0] * self.y[0]
            - self.a[1] * self.y[1];
        self.x = [x, self.x[0]];
        self.y = [y, self.y[0]];
        y
    }
}

/// Telephone channel filter: 4th-order Butterworth high-pass at 300 Hz and low-pass at 3400 Hz.
pub fn band_limit(x: &mut [f64]) {
    const Q: [f64; 2] = [0.541_196_1, 1.306_563];
    let mut f = [
        Biquad::high_pass(300.0, Q[0]),
        Biquad::high_pass(300.0, Q[1]),
        Biquad::low_pass(3_400.0, Q[0]),
        Biquad::low_pass(3_400.0, Q[1]),
    ];
    for v in x.iter_mut() {
        *v = f.iter_mut().fold(*v, |acc, b| b.run(acc));
    }
}

/// Noise colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noise {
    White,
    Pink,
}

/// `n` samples of unit-RMS noise of the given colour.
pub fn noise(kind: Noise, n: usize, rng: &mut Rng) -> Vec<f64> {
    let mut v: Vec<f64> = match kind {
        Noise::White => (0..n).map(|_| rng.gauss()).collect(),
        Noise::Pink => {
            // Paul Kellet's refined pink filter (-3 dB/octave within 0.05 dB above 9 Hz at 44.1k;
            // at 8 kHz the slope holds over the telephone band).
            let mut b = [0.0f64; 7];
            (0..n)
                .map(|_| {
                    let w = rng.gauss();
                    b[0] = 0.99886 * b[0] + w * 0.0555179;
                    b[1] = 0.99332 * b[1] + w * 0.0750759;
                    b[2] = 0.96900 * b[2] + w * 0.1538520;
                    b[3] = 0.86650 * b[3] + w * 0.3104856;
                    b[4] = 0.55000 * b[4] + w * 0.5329522;
                    b[5] = -0.7616 * b[5] - w * 0.0168980;
                    let p = b[0] + b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + w * 0.5362;
                    b[6] = w * 0.115926;
                    p
                })
                .collect()
        }
    };
    let rms = (v.iter().map(|x| x * x).sum::<f64>() / n.max(1) as f64).sqrt();
    v.iter_mut().for_each(|x| *x /= rms.max(1e-12));
    v
}

/// Adds mains hum: `mains_hz` and harmonics 2..=5 (amplitude 1/h), fundamental at `dbfs` peak.
pub fn add_hum(x: &mut [f64], mains_hz: f64, dbfs: f64, rng: &mut Rng) {
    let amp = 10f64.powf(dbfs / 20.0);
    let phases: Vec<f64> = (0..5).map(|_| rng.range(0.0, 2.0 * std::f64::consts::PI)).collect();
    for (i, v) in x.iter_mut().enumerate() {
        let t = i as f64 / RATE as f64;
        for (h, ph) in phases.iter().enumerate() {
            let h = (h + 1) as f64;
            *v += amp / h * (2.0 * std::f64::consts::PI * mains_hz * h * t + ph).sin();
        }
    }
}

/// Adds keyboard-like clicks: typing bursts (3-10 keystrokes 80-250 ms apart) about every
/// `every_s` seconds, plus as many single clicks; each click a 2-8 ms decaying broadband burst,
/// peak between -26 and -6 dBFS.
pub fn add_clicks(x: &mut [f64], every_s: f64, rng: &mut Rng) {
    let n = x.len();
    let click = |x: &mut [f64], at: usize, rng: &mut Rng| {
        let len = (rng.range(2.0, 8.0) * PER_MS as f64) as usize;
        let peak = 10f64.powf(rng.range(-26.0, -6.0) / 20.0);
        let tau = len as f64 / 3.0;
        for k in 0..len {
            if at + k < x.len() {
                x[at + k] += peak * (-(k as f64) / tau).exp() * rng.range(-1.0, 1.0) * 1.7;
            }
        }
    };
    let mut t = rng.range(0.5, every_s) * RATE as f64;
    while (t as usize) < n {
        if rng.uniform() < 0.5 {
            let strokes = 3 + (rng.next_u64() % 8) as usize;
            let mut at = t;
            for _ in 0..strokes {
                click(x, at as usize, rng);
                at += rng.range(0.08, 0.25) * RATE as f64;
            }
        } else {
            click(x, t as usize, rng);
        }
        t += rng.range(0.3, 2.0) * every_s * RATE as f64;
    }
}

/// Clamps to 16 bits and passes through G.711 µ-law (encode + decode), like a real call.
pub fn to_telephone(x: &[f64]) -> Vec<i16> {
    x.iter()
        .map(|&v| ulaw_to_linear(linear_to_ulaw((v * 32_768.0).round().clamp(-32_768.0, 32_767.0) as i16)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Conditions and tracks

/// A line condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub name: &'static str,
    pub noise: Noise,
    /// Active speech power over noise power (telephone band), dB.
    pub snr_db: f64,
    /// Mains hum: (frequency, fundamental level dBFS).
    pub hum: Option<(f64, f64)>,
    /// Click bursts about every this many seconds.
    pub clicks_every_s: Option<f64>,
    /// Noisy conditions carry the issue's targets (F1 >= 0.90 ...), the others F1 >= 0.93.
    pub noisy: bool,
    pub seed: u64,
}

/// The evaluation conditions: quiet; pink and white noise at 5 dB SNR; strong hum; clicks; and
/// everything at once.
pub fn conditions() -> Vec<Condition> {
    let c = |name, noise, snr_db, hum, clicks_every_s, noisy, seed| Condition {
        name,
        noise,
        snr_db,
        hum,
        clicks_every_s,
        noisy,
        seed,
    };
    vec![
        c("quiet", Noise::Pink, 35.0, Some((60.0, -50.0)), None, false, 1),
        c("hum", Noise::Pink, 25.0, Some((50.0, -20.0)), None, false, 2),
        c("clicks", Noise::Pink, 25.0, None, Some(6.0), false, 3),
        c("pink-5dB", Noise::Pink, 5.0, None, None, true, 4),
        c("white-5dB", Noise::White, 5.0, None, None, true, 5),
        c("noisy-mix", Noise::Pink, 5.0, Some((60.0, -30.0)), Some(6.0), true, 6),
    ]
}

/// A track of 8 kHz telephone audio with its speech labels (ms, [start, end)).
#[derive(Debug, Clone)]
pub struct Track {
    pub pcm: Vec<i16>,
    pub labels: Vec<(u64, u64)>,
}

impl Track {
    pub fn ms(&self) -> u64 {
        self.pcm.len() as u64 / PER_MS
    }
}

/// Lead-in before the first utterance (noise only).
pub const LEAD_MS: u64 = 1_500;

/// Places every caller utterance (synthetic and real) in seeded order with 0.8-3 s gaps and a
/// -4..+2 dB level spread; returns the clean band-limited speech and the labels.
fn place_speech(seed: u64) -> (Vec<f64>, Vec<(u64, u64)>) {
    let mut rng = Rng::new(seed);
    let mut utts = clips_of(&[ClipKind::Utterance, ClipKind::Real]);
    rng.shuffle(&mut utts);
    let mut placed = Vec::new();
    let mut pos = LEAD_MS;
    for c in &utts {
        placed.push((pos, c));
        pos += c.ms() + (rng.range(800.0, 3_000.0) as u64);
    }
    let mut x = vec![0.0; (pos * PER_MS) as usize];
    let mut labels = Vec::new();
    for (at, c) in placed {
        let gain = 10f64.powf(rng.range(-4.0, 2.0) / 20.0);
        let start = (at * PER_MS) as usize;
        for (k, &s) in c.pcm.iter().enumerate() {
            x[start + k] += gain * f64::from(s);
        }
        labels.push((at, at + c.ms()));
    }
    (x, labels)
}

/// Power of `x` over the labelled spans.
fn active_power(x: &[f64], labels: &[(u64, u64)]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for &(s, e) in labels {
        for v in &x[(s * PER_MS) as usize..(e * PER_MS) as usize] {
            sum += v * v;
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// The line (noise, hum, clicks) of `cond` for `n` samples, with the noise at `noise_rms`.
fn line(cond: &Condition, n: usize, noise_rms: f64, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let mut broadband = noise(cond.noise, n, rng);
    broadband.iter_mut().for_each(|v| *v *= noise_rms);
    let mut after = vec![0.0; n];
    if let Some(every) = cond.clicks_every_s {
        add_clicks(&mut broadband, every, rng);
    }
    if let Some((hz, dbfs)) = cond.hum {
        add_hum(&mut after, hz, dbfs, rng);
    }
    (broadband, after)
}

/// The noise RMS (band-limited) that gives `cond.snr_db` against the corpus speech.
fn noise_rms_for(cond: &Condition) -> f64 {
    static SPEECH_POWER: OnceLock<f64> = OnceLock::new();
    let p = *SPEECH_POWER.get_or_init(|| {
        let (mut x, labels) = place_speech(0);
        band_limit(&mut x);
        active_power(&x, &labels)
    });
    // The band-limited noise: white keeps 3100/4000 of its power; pink, measured.
    let mut probe = noise(cond.noise, 80_000, &mut Rng::new(99));
    band_limit(&mut probe);
    let band_power = probe[4_000..].iter().map(|v| v * v).sum::<f64>() / (probe.len() - 4_000) as f64;
    (p / 10f64.powf(cond.snr_db / 10.0) / band_power).sqrt()
}

/// Speech track of `cond`: every caller utterance over the condition's line.
pub fn speech_track(cond: &Condition) -> Track {
    let (speech, labels) = place_speech(cond.seed);
    let mut rng = Rng::new(cond.seed ^ 0x5EED);
    let (mut x, after) = line(cond, speech.len(), noise_rms_for(cond), &mut rng);
    for (v, s) in x.iter_mut().zip(&speech) {
        *v += s;
    }
    band_limit(&mut x);
    for (v, a) in x.iter_mut().zip(&after) {
        *v += a;
    }
    Track { pcm: to_telephone(&x), labels }
}

/// `minutes` of the condition's line with no speech at all.
pub fn noise_track(cond: &Condition, minutes: u64) -> Track {
    let n = (minutes * 60 * RATE) as usize;
    let mut rng = Rng::new(cond.seed ^ 0x0DD5);
    let (mut x, after) = line(cond, n, noise_rms_for(cond), &mut rng);
    band_limit(&mut x);
    for (v, a) in x.iter_mut().zip(&after) {
        *v += a;
    }
    Track { pcm: to_telephone(&x), labels: Vec::new() }
}

// ---------------------------------------------------------------------------------------------
// Running a detector and scoring it

/// A detected speech segment: onset and end (ms), and the stream time (ms) of the audio delivered
/// when `Started` was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub start: u64,
    pub end: u64,
    pub reported_at: u64,
}

/// Runs `det` over `pcm` in 20 ms chunks; speech still going at the end ends there.
pub fn detect(det: &mut SpeechDetector, pcm: &[i16]) -> Vec<Detected> {
    let mut out: Vec<Detected> = Vec::new();
    let mut open: Option<(u64, u64)> = None;
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let start = (i * 160) as u64;
        let now_ms = (start + chunk.len() as u64) / PER_MS;
        det.process(chunk, start, |t| match t {
            SpeechTransition::Started { at_ms } => open = Some((at_ms, now_ms)),
            SpeechTransition::Stopped { at_ms } => {
                if let Some((s, r)) = open.take() {
                    out.push(Detected { start: s, end: at_ms, reported_at: r });
                }
            }
        });
    }
    if let Some((s, r)) = open {
        out.push(Detected { start: s, end: pcm.len() as u64 / PER_MS, reported_at: r });
    }
    out
}

/// Scores of one detector on one condition.
#[derive(Debug, Clone, Default)]
pub struct Score {
    /// 10 ms frames labelled speech and detected speech, etc.
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
    /// Onset delays (ms): when `Started` was reported minus the true onset, for every utterance
    /// whose first overlapping detection started inside it (or at most 200 ms before).
    pub onset_delays: Vec<u64>,
    /// Utterances with no detected speech overlapping them: their lengths (ms).
    pub missed: Vec<u64>,
    pub utterances: usize,
    /// `Started` events whose segment overlaps no label, and the non-speech time (ms) scanned.
    pub false_starts: u64,
    pub nonspeech_ms: u64,
}

impl Score {
    pub fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fn_).max(1) as f64
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
    /// False starts per 10 minutes of non-speech.
    pub fn false_starts_per_10min(&self) -> f64 {
        self.false_starts as f64 * 600_000.0 / self.nonspeech_ms.max(1) as f64
    }
    pub fn onset_percentile(&self, p: f64) -> Option<u64> {
        percentile(&self.onset_delays, p)
    }
    pub fn longest_missed(&self) -> u64 {
        self.missed.iter().copied().max().unwrap_or(0)
    }
    pub fn add(&mut self, o: &Score) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.onset_delays.extend_from_slice(&o.onset_delays);
        self.missed.extend_from_slice(&o.missed);
        self.utterances += o.utterances;
        self.false_starts += o.false_starts;
        self.nonspeech_ms += o.nonspeech_ms;
    }
}

/// Nearest-rank percentile.
pub fn percentile(v: &[u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

/// Scores `found` against `track`'s labels.
pub fn score(track: &Track, found: &[Detected]) -> Score {
    let frames = track.ms() / 10;
    let mut truth = vec![false; frames as usize];
    let mut said = vec![false; frames as usize];
    let mark = |v: &mut [bool], s: u64, e: u64| {
        // A 10 ms frame counts when its centre is inside [s, e).
        for f in (s / 10)..(e / 10 + 1).min(frames) {
            let centre = f * 10 + 5;
            if centre >= s && centre < e {
                v[f as usize] = true;
            }
        }
    };
    for &(s, e) in &track.labels {
        mark(&mut truth, s, e);
    }
    for d in found {
        mark(&mut said, d.start, d.end);
    }
    let mut sc = Score { utterances: track.labels.len(), ..Score::default() };
    for (&t, &d) in truth.iter().zip(&said) {
        match (t, d) {
            (true, true) => sc.tp += 1,
            (false, true) => sc.fp += 1,
            (true, false) => sc.fn_ += 1,
            _ => {}
        }
    }
    let overlaps = |d: &Detected, s: u64, e: u64| d.start < e && d.end > s;
    for &(s, e) in &track.labels {
        match found.iter().find(|d| overlaps(d, s, e)) {
            None => sc.missed.push(e - s),
            Some(d) if d.start + 200 >= s => sc.onset_delays.push(d.reported_at.saturating_sub(s)),
            // Speech already going since well before (merged with the previous utterance or a
            // false start): no onset to time.
            Some(_) => {}
        }
    }
    sc.false_starts =
        found.iter().filter(|d| !track.labels.iter().any(|&(s, e)| overlaps(d, s, e))).count() as u64;
    let speech_ms: u64 = track.labels.iter().map(|&(s, e)| e - s).sum();
    sc.nonspeech_ms = track.ms() - speech_ms;
    sc
}

/// Runs a fresh detector built from `config` over `track` and scores it.
pub fn evaluate(config: &VadConfig, track: &Track) -> Score {
    let mut det = SpeechDetector::new(config).expect("valid VAD config");
    score(track, &detect(&mut det, &track.pcm))
}

// ---------------------------------------------------------------------------------------------
// Barge-in test set: the bot is talking; the caller interrupts, or only makes a short
// backchannel or a noise.

use base64::Engine as _;

use trunkline::SessionConfig;
use trunkline::event::RawEvent;
use trunkline::pipeline::SessionPipeline;
use trunkline::protocol::{MessageKind, TwilioDialect};

/// What the caller does while the bot talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerAct {
    /// A real interruption (a caller utterance): should barge in.
    Interrupt,
    /// "mm-hm", "yeah" ... under 300 ms: should not.
    Backchannel,
    /// A cough-like noise burst (aperiodic, 150-450 ms): should not.
    Cough,
    /// A burst of typing (clicks): should not.
    Typing,
}

impl CallerAct {
    pub fn should_barge(self) -> bool {
        self == CallerAct::Interrupt
    }
}

/// One simulated call: agent prompt from `AGENT_START_MS`, the caller's act at `act_ms`.
#[derive(Debug, Clone)]
pub struct BargeCall {
    pub act: CallerAct,
    pub name: String,
    /// Caller audio (8 kHz, after the line and G.711).
    pub caller: Vec<i16>,
    /// Agent audio (8 kHz).
    pub agent: &'static [f32],
    /// True onset and end (ms) of the caller's act.
    pub act_ms: (u64, u64),
}

/// The agent starts talking this far into the call.
pub const AGENT_START_MS: u64 = 500;

/// A cough-like burst: noise shaped by a fast-attack, slower-decay envelope, low-passed a little.
fn cough(rng: &mut Rng) -> Vec<f64> {
    let len = (rng.range(150.0, 450.0) * PER_MS as f64) as usize;
    let peak = 10f64.powf(rng.range(-14.0, -6.0) / 20.0);
    let mut lp = 0.0;
    (0..len)
        .map(|k| {
            let t = k as f64 / len as f64;
            let env = (t / 0.08).min(1.0) * (-(t - 0.08).max(0.0) * 4.0).exp();
            lp = 0.6 * lp + 0.4 * rng.gauss();
            peak * env * lp
        })
        .collect()
}

/// The barge-in calls for line condition `cond`: every caller utterance as an interruption, every
/// backchannel, and as many coughs and typing bursts as backchannels.
pub fn barge_calls(cond: &Condition) -> Vec<BargeCall> {
    let agents = clips_of(&[ClipKind::Agent]);
    let noise_rms = noise_rms_for(cond);
    let mut rng = Rng::new(cond.seed ^ 0xBA26E);
    let mut acts: Vec<(CallerAct, String, Vec<f64>)> = Vec::new();
    for c in clips_of(&[ClipKind::Utterance, ClipKind::Real]) {
        acts.push((CallerAct::Interrupt, c.name.clone(), c.pcm.iter().map(|&v| f64::from(v)).collect()));
    }
    let backs = clips_of(&[ClipKind::Backchannel]);
    for c in &backs {
        acts.push((CallerAct::Backchannel, c.name.clone(), c.pcm.iter().map(|&v| f64::from(v)).collect()));
    }
    for i in 0..backs.len() {
        acts.push((CallerAct::Cough, format!("cough{i}"), cough(&mut rng)));
        let mut typing = vec![0.0; (rng.range(600.0, 1_500.0) * PER_MS as f64) as usize];
        add_clicks(&mut typing, 0.3, &mut rng);
        acts.push((CallerAct::Typing, format!("typing{i}"), typing));
    }
    acts.into_iter()
        .enumerate()
        .map(|(i, (act, name, audio))| {
            let agent = &agents[i % agents.len()].pcm;
            // The act starts while the agent is talking, at least 1 s before its prompt ends.
            let agent_ms = agent.len() as u64 / PER_MS;
            let act_at = AGENT_START_MS + rng.range(600.0, (agent_ms - 1_000) as f64) as u64;
            let total_ms = act_at + audio.len() as u64 / PER_MS + 1_500;
            let n = (total_ms * PER_MS) as usize;
            let (mut x, after) = line(cond, n, noise_rms, &mut rng);
            let gain = if act == CallerAct::Interrupt || act == CallerAct::Backchannel {
                10f64.powf(rng.range(-4.0, 2.0) / 20.0)
            } else {
                1.0
            };
            let start = (act_at * PER_MS) as usize;
            for (k, v) in audio.iter().enumerate() {
                x[start + k] += gain * v;
            }
            band_limit(&mut x);
            for (v, a) in x.iter_mut().zip(&after) {
                *v += a;
            }
            BargeCall {
                act,
                name,
                caller: to_telephone(&x),
                agent: agent.as_slice(),
                act_ms: (act_at, act_at + audio.len() as u64 / PER_MS),
            }
        })
        .collect()
}

/// What happened in one call. Times are stream times (ms of caller audio delivered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BargeOutcome {
    /// When the first barge-in fired, if one did.
    pub fired_at_ms: Option<u64>,
    /// When the bot's voice first dropped at the carrier after the caller's onset: the first
    /// 10 ms of agent audio the carrier played at least 10 dB below what the host played there,
    /// or the `clear`, whichever came first.
    pub dropped_at_ms: Option<u64>,
    /// When the first agent audio played lower than the host played it (ducked by any amount)
    /// reached the carrier's output.
    pub ducked_at_ms: Option<u64>,
    /// How long the bot played ducked (at least 3 dB down) in all, ms.
    pub ducked_ms: u64,
    /// When the session decided to duck (its `ducks` counter first rose after the act began).
    pub duck_decided_ms: Option<u64>,
    /// The session's `ducks` and `duck_restores` counters at the end of the call.
    pub ducks: u64,
    pub duck_restores: u64,
    /// Whether the carrier played the host's audio at full level (within 1 dB) again after the
    /// last ducked stretch.
    pub level_restored: bool,
    /// `clear`s the engine sent.
    pub clears: u64,
    /// The first barge-in event.
    pub barge_in: Option<RawEvent>,
    /// From the act on: when (ms) each 10 ms of the host's audio that was not a pause played at
    /// the carrier, and how much lower than the host played it (tenths of a dB).
    pub levels: Vec<(u64, i32)>,
}

/// The carrier's side of a barge-in call: plays the frames the engine sends back to back from
/// their arrival, drops what it holds on `clear`, and compares what it plays with what the host
/// played, 10 ms at a time (the engine's stream of agent audio is the host's, in order, until
/// a `clear`).
struct BargeCarrier {
    /// What the host played, as the carrier's µ-law gives it back.
    reference: Vec<i16>,
    /// Agent samples sent so far.
    sent: usize,
    /// When (µs) the carrier has played all it was sent.
    play_end_us: u64,
    /// Start times (µs) of the 10 ms windows played at least 10 dB down, and 3 dB down.
    dropped: Vec<u64>,
    ducked: Vec<u64>,
    /// Start time (µs) of the last window played at full level.
    last_full_us: Option<u64>,
    /// (start µs, tenths of a dB) of every window played.
    levels: Vec<(u64, i32)>,
    clear_us: Option<u64>,
}

/// A window this quiet in the host's audio (a pause) says nothing about the gain.
const LEVEL_FLOOR: f64 = 100.0;

impl BargeCarrier {
    fn new(agent: &[i16]) -> Self {
        let reference = agent.iter().map(|&v| ulaw_to_linear(linear_to_ulaw(v))).collect();
        Self {
            reference,
            sent: 0,
            play_end_us: 0,
            dropped: vec![],
            ducked: vec![],
            last_full_us: None,
            levels: vec![],
            clear_us: None,
        }
    }

    fn on_message(&mut self, bytes: &[u8], now_us: u64) {
        let v: serde_json::Value = serde_json::from_slice(bytes).expect("outbound JSON");
        match v["event"].as_str() {
            Some("media") => {
                let payload = base64::engine::general_purpose::STANDARD
                    .decode(v["media"]["payload"].as_str().unwrap())
                    .unwrap();
                let at = self.play_end_us.max(now_us);
                self.play_end_us = at + payload.len() as u64 * 1_000 / PER_MS;
                if self.clear_us.is_some() {
                    return;
                }
                for (w, codes) in payload.chunks(80).enumerate() {
                    let from = self.sent + w * 80;
                    let Some(reference) = self.reference.get(from..from + codes.len()) else { break };
                    let played: Vec<i16> = codes.iter().map(|&c| ulaw_to_linear(c)).collect();
                    let (e_ref, e_out) = (rms_i16(reference), rms_i16(&played));
                    if e_ref < LEVEL_FLOOR {
                        continue;
                    }
                    let db = 20.0 * (e_out.max(1.0) / e_ref).log10();
                    let t = at + (w * 10_000) as u64;
                    if db <= -10.0 {
                        self.dropped.push(t);
                    }
                    if db <= -3.0 {
                        self.ducked.push(t);
                    }
                    if db > -1.0 {
                        self.last_full_us = Some(t);
                    }
                    self.levels.push((t, (db * 10.0).round() as i32));
                }
                self.sent += payload.len();
            }
            Some("clear") => {
                self.clear_us.get_or_insert(now_us);
                self.play_end_us = now_us;
            }
            _ => {}
        }
    }
}

fn rms_i16(x: &[i16]) -> f64 {
    (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

struct CallSink {
    events: Vec<RawEvent>,
    carrier: BargeCarrier,
}

impl CallSink {
    /// Takes every event and every message due, as the runtime does after each call.
    fn drain(&mut self, p: &mut SessionPipeline, now_us: u64) {
        while let Some(event) = p.poll_event() {
            self.events.push(event);
        }
        while let Some((_, bytes)) = p.poll_transmit(now_us) {
            self.carrier.on_message(bytes, now_us);
        }
    }
}

fn start_message() -> String {
    r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#.to_owned()
}

/// Runs `call` through a session pipeline on a simulated clock: caller media every 20 ms, the
/// agent prompt played from `AGENT_START_MS` as the pacer makes room.
pub fn run_barge_call(config: &SessionConfig, call: &BargeCall) -> BargeOutcome {
    let mut p = SessionPipeline::new(config, Box::new(TwilioDialect::new())).expect("pipeline");
    let agent: Vec<i16> = call.agent.iter().map(|&v| (v * 32_767.0) as i16).collect();
    let mut sink = CallSink { events: vec![], carrier: BargeCarrier::new(&agent) };
    p.handle_message(start_message().as_bytes(), MessageKind::Text, 0, 0, &mut |_| {});
    sink.drain(&mut p, 0);
    let mut played = 0;
    let mut ulaw = [0u8; 160];
    let mut fired_at_ms = None;
    let mut duck_decided_ms = None;
    let mut barge_in = None;
    let mut ducks_seen = 0;
    for (i, frame) in call.caller.chunks_exact(160).enumerate() {
        let now_ms = i as u64 * 20;
        let now_us = now_ms * 1_000;
        if now_ms >= AGENT_START_MS && fired_at_ms.is_none() {
            while played < agent.len() {
                let n = (agent.len() - played).min(800);
                if !p.play_fits(n, 8_000) || !p.play(&agent[played..played + n], 8_000).unwrap() {
                    break;
                }
                sink.drain(&mut p, now_us);
                played += n;
            }
        }
        for (u, &s) in ulaw.iter_mut().zip(frame) {
            *u = linear_to_ulaw(s);
        }
        let msg = format!(
            r#"{{"event":"media","sequenceNumber":"{}","streamSid":"MZ1","media":{{"track":"inbound","chunk":"{}","timestamp":"{now_ms}","payload":"{}"}}}}"#,
            i + 2,
            i + 1,
            base64::engine::general_purpose::STANDARD.encode(ulaw)
        );
        p.handle_message(msg.as_bytes(), MessageKind::Text, now_us, now_us, &mut |_| {});
        sink.drain(&mut p, now_us);
        p.handle_timeout(now_us, true, &mut |_| {});
        sink.drain(&mut p, now_us);
        if let Some(e) = sink.events.iter().find(|e| matches!(e, RawEvent::BargeIn { .. }))
            && fired_at_ms.is_none()
        {
            fired_at_ms = Some(now_ms + 20);
            barge_in = Some(e.clone());
        }
        let ducks = p.counters().ducks;
        if duck_decided_ms.is_none() && now_ms + 20 > call.act_ms.0 && ducks > ducks_seen {
            duck_decided_ms = Some(now_ms + 20);
        }
        ducks_seen = ducks;
        sink.events.clear();
    }
    // Caller frame i reaches the engine at stream time 20 i + 20, handled here at 20 i: the
    // engine's clock runs 20 ms behind the stream's.
    let stream_ms = |us: u64| us / 1_000 + 20;
    let onset_us = (call.act_ms.0 * 1_000).saturating_sub(20_000);
    let after = |v: &[u64]| v.iter().copied().find(|&t| t >= onset_us);
    let c = &sink.carrier;
    let dropped = [after(&c.dropped), c.clear_us].into_iter().flatten().min();
    let counters = p.counters();
    BargeOutcome {
        fired_at_ms,
        dropped_at_ms: dropped.map(stream_ms),
        ducked_at_ms: after(&c.ducked).map(stream_ms),
        ducked_ms: c.ducked.iter().filter(|&&t| t >= onset_us).count() as u64 * 10,
        duck_decided_ms,
        ducks: counters.ducks,
        duck_restores: counters.duck_restores,
        level_restored: c.ducked.last().is_none_or(|&d| c.last_full_us.is_some_and(|f| f > d)),
        clears: counters.clears_sent,
        barge_in,
        levels: c.levels.iter().filter(|l| l.0 >= onset_us).map(|&(t, db)| (stream_ms(t), db)).collect(),
    }
}

/// Barge-in scores over a set of calls.
#[derive(Debug, Clone, Default)]
pub struct BargeScore {
    pub true_pos: u64,
    pub false_pos: u64,
    pub false_neg: u64,
    pub true_neg: u64,
    /// Reaction times (ms) of true positives: barge-in minus the caller's true onset.
    pub reactions: Vec<u64>,
    /// Of true positives: from the caller's true onset to the bot's voice dropping at the
    /// carrier (ducked 10 dB, or cleared), ms.
    pub drops: Vec<u64>,
    /// For each act that should not barge in, in order: how long the bot played ducked, ms (0
    /// when it was not ducked).
    pub dips: Vec<u64>,
    /// False positives per act.
    pub false_by_act: Vec<(CallerAct, String)>,
    /// Interruptions that never barged in.
    pub missed: Vec<String>,
}

impl BargeScore {
    pub fn precision(&self) -> f64 {
        self.true_pos as f64 / (self.true_pos + self.false_pos).max(1) as f64
    }
    pub fn recall(&self) -> f64 {
        self.true_pos as f64 / (self.true_pos + self.false_neg).max(1) as f64
    }
}

/// Runs every call and scores the barge-ins. A barge-in before the caller's act (on line noise)
/// is a false positive even in an interruption call.
pub fn score_barge_in(config: &SessionConfig, calls: &[BargeCall]) -> BargeScore {
    let mut s = BargeScore::default();
    for call in calls {
        let out = run_barge_call(config, call);
        let (onset, _) = call.act_ms;
        match (call.act.should_barge(), out.fired_at_ms) {
            (true, Some(t)) if t > onset => {
                s.true_pos += 1;
                s.reactions.push(t - onset);
                if let Some(d) = out.dropped_at_ms {
                    s.drops.push(d.saturating_sub(onset));
                }
            }
            (true, Some(_)) => {
                s.false_pos += 1;
                s.false_neg += 1;
                s.false_by_act.push((call.act, format!("{} (before the act)", call.name)));
            }
            (true, None) => {
                s.false_neg += 1;
                s.missed.push(call.name.clone());
            }
            (false, Some(_)) => {
                s.false_pos += 1;
                s.false_by_act.push((call.act, call.name.clone()));
                s.dips.push(out.ducked_ms);
            }
            (false, None) => {
                s.true_neg += 1;
                s.dips.push(out.ducked_ms);
            }
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Whole calls through the engine's public API: echo of the bot's voice, multi-sentence turns.

pub mod call;
pub mod echo;
pub mod turns;
