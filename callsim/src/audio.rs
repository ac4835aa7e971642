//! The caller's audio: 8 kHz µ-law clips with the stretches where the caller speaks.
//!
//! A clip comes from a raw µ-law file (what Twilio sends, no header), a WAV file (16-bit PCM at
//! any rate Trunkline resamples from, or G.711 µ-law), or PCM in memory. The speech segments (when
//! the caller talks, in ms from the clip's start) come from a labels file, from the caller of the
//! API, or default to the whole clip; they are what response latency and barge-in are measured
//! from, so they should be exact.

use super::rng::SplitMix64;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use trunkline::codec::{ULAW_SILENCE, encode_ulaw, linear_to_ulaw};
use trunkline::resample::StreamResampler;

/// The carrier's sample rate.
pub const SAMPLE_RATE: u32 = 8_000;
/// Media frame length, ms (what Twilio sends).
pub const FRAME_MS: u64 = 20;
/// Bytes in one 20 ms µ-law frame.
pub const FRAME_BYTES: usize = 160;

/// Why audio or labels could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A WAV file Trunkline cannot use.
    #[error("WAV: {0}")]
    Wav(String),
    /// A sample rate the resampler does not convert to 8 kHz.
    #[error("WAV at {0} Hz: supported rates are 8000, 16000, 22050, 24000, 44100 and 48000")]
    UnsupportedRate(u32),
    /// A line of a labels file that is not `start end`.
    #[error("labels line {line}: {text:?} (expected `start end`, in ms, or in seconds with a decimal point)")]
    Labels {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Where the caller speaks inside a clip, ms from the clip's start (`start_ms < end_ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SpeechSegment {
    /// Onset, ms.
    pub start_ms: u64,
    /// End of speech, ms.
    pub end_ms: u64,
}

/// A clip of caller audio (8 kHz µ-law) and its speech segments. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CallerAudio {
    ulaw: Arc<[u8]>,
    speech: Vec<SpeechSegment>,
}

impl CallerAudio {
    /// Raw 8 kHz µ-law; the whole clip counts as one utterance (see [`Self::with_speech`]).
    pub fn from_ulaw(ulaw: Vec<u8>) -> Self {
        let whole = whole(ulaw.len());
        Self { ulaw: ulaw.into(), speech: whole }
    }

    /// Mono s16 PCM at `rate` Hz, resampled to 8 kHz and µ-law encoded; the whole clip counts as
    /// one utterance.
    pub fn from_pcm(pcm: &[i16], rate: u32) -> Result<Self, AudioError> {
        let pcm8k = to_8k(pcm, rate)?;
        let mut ulaw = vec![0u8; pcm8k.len()];
        encode_ulaw(&pcm8k, &mut ulaw);
        Ok(Self::from_ulaw(ulaw))
    }

    /// A WAV file's bytes: PCM 16-bit (mono, or several channels averaged) at a supported rate,
    /// or 8 kHz G.711 µ-law. The whole clip counts as one utterance.
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Self, AudioError> {
        let wav = parse_wav(bytes)?;
        match wav.format {
            WavFormat::Ulaw => {
                if wav.rate != SAMPLE_RATE || wav.channels != 1 {
                    return Err(AudioError::Wav("µ-law WAV must be 8 kHz mono".into()));
                }
                Ok(Self::from_ulaw(wav.data.to_vec()))
            }
            WavFormat::Pcm16 => {
                let channels = usize::from(wav.channels);
                let pcm: Vec<i16> = wav
                    .data
                    .chunks_exact(2 * channels)
                    .map(|frame| {
                        let sum: i32 =
                            frame.chunks_exact(2).map(|b| i32::from(i16::from_le_bytes([b[0], b[1]]))).sum();
                        (sum / channels as i32) as i16
                    })
                    .collect();
                Self::from_pcm(&pcm, wav.rate)
            }
        }
    }

    /// Loads a `.wav` (recognised by its RIFF header) or raw µ-law file. If `<file>.labels`
    /// (e.g. `speech_8k.labels` next to `speech_8k.ulaw`) exists, it gives the speech segments;
    /// otherwise the whole clip counts as one utterance.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let audio =
            if bytes.starts_with(b"RIFF") { Self::from_wav_bytes(&bytes)? } else { Self::from_ulaw(bytes) };
        let labels = path.with_extension("labels");
        if labels.is_file() { audio.with_labels_file(&labels) } else { Ok(audio) }
    }

    /// `duration` of µ-law silence, with no speech in it.
    pub fn silence(duration: Duration) -> Self {
        let len = (duration.as_millis() as usize) * (SAMPLE_RATE as usize / 1000);
        Self { ulaw: vec![ULAW_SILENCE; len].into(), speech: vec![] }
    }

    /// Replaces the speech segments (ms from the clip's start; clipped to the clip, sorted, empty
    /// ones dropped). An empty list means the clip holds no speech.
    pub fn with_speech(mut self, segments: impl IntoIterator<Item = SpeechSegment>) -> Self {
        let len = self.duration_ms();
        let mut speech: Vec<SpeechSegment> = segments
            .into_iter()
            .map(|s| SpeechSegment { start_ms: s.start_ms.min(len), end_ms: s.end_ms.min(len) })
            .filter(|s| s.start_ms < s.end_ms)
            .collect();
        speech.sort_by_key(|s| s.start_ms);
        self.speech = speech;
        self
    }

    /// Takes the speech segments from a labels file (see [`parse_labels`]).
    pub fn with_labels_file(self, path: impl AsRef<Path>) -> Result<Self, AudioError> {
        let path = path.as_ref();
        let text = String::from_utf8_lossy(&read(path)?).into_owned();
        Ok(self.with_speech(parse_labels(&text)?))
    }

    /// The µ-law bytes.
    pub fn ulaw(&self) -> &[u8] {
        &self.ulaw
    }

    /// The speech segments, ms from the clip's start, in order.
    pub fn speech(&self) -> &[SpeechSegment] {
        &self.speech
    }

    /// Length in ms.
    pub fn duration_ms(&self) -> u64 {
        self.ulaw.len() as u64 * 1000 / u64::from(SAMPLE_RATE)
    }

    /// The part from `from_ms` to `to_ms` (clamped to the clip), with its speech segments cut to
    /// it and shifted to start at 0.
    pub fn slice_ms(&self, from_ms: u64, to_ms: u64) -> Self {
        let per_ms = u64::from(SAMPLE_RATE) / 1000;
        let len = self.ulaw.len() as u64;
        let (a, b) = ((from_ms * per_ms).min(len), (to_ms * per_ms).min(len));
        let b = b.max(a);
        let (from, to) = (a / per_ms, b / per_ms);
        let speech = self.speech.iter().filter(|s| s.end_ms > from && s.start_ms < to).map(|s| {
            SpeechSegment { start_ms: s.start_ms.max(from) - from, end_ms: s.end_ms.min(to) - from }
        });
        Self { ulaw: self.ulaw[a as usize..b as usize].into(), speech: vec![] }
            .with_speech(speech.collect::<Vec<_>>())
    }

    /// Utterance `index` on its own: from its onset, rounded down to a 20 ms frame, to its end
    /// plus `tail_ms` (so the speech starts within the clip's first frame).
    pub fn utterance(&self, index: usize, tail_ms: u64) -> Option<Self> {
        let s = self.speech.get(index)?;
        let from = s.start_ms / FRAME_MS * FRAME_MS;
        Some(self.slice_ms(from, s.end_ms + tail_ms))
    }
}

/// What the caller's line carries when the script plays no audio: low white noise, like a real
/// line's idle noise, or digital silence.
pub(crate) struct LineNoise {
    rng: SplitMix64,
    /// Peak of the uniform noise (its RMS times √3), 0 for digital silence.
    peak: f64,
}

impl LineNoise {
    /// Noise at `dbfs` (RMS relative to full scale), `None` for digital silence.
    pub(crate) fn new(dbfs: Option<f64>, seed: u64) -> Self {
        let peak = dbfs.map_or(0.0, |db| 32_768.0 * 10f64.powf(db / 20.0) * 3f64.sqrt());
        Self { rng: SplitMix64::new(seed), peak }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        if self.peak < 0.5 {
            out.fill(ULAW_SILENCE);
            return;
        }
        for b in out {
            let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
            *b = linear_to_ulaw((u * self.peak).round().clamp(-32_768.0, 32_767.0) as i16);
        }
    }
}

fn whole(len_bytes: usize) -> Vec<SpeechSegment> {
    let end_ms = len_bytes as u64 * 1000 / u64::from(SAMPLE_RATE);
    if end_ms == 0 { vec![] } else { vec![SpeechSegment { start_ms: 0, end_ms }] }
}

fn read(path: &Path) -> Result<Vec<u8>, AudioError> {
    std::fs::read(path).map_err(|source| AudioError::Io { path: path.display().to_string(), source })
}

/// Parses a labels file: one segment per line, `start end`, in ms (integers, as in
/// `engine/tests/fixtures/speech_8k.labels`) or in seconds when a value has a decimal point (as
/// in Audacity's label export, whose third column, the label text, is ignored). Blank lines and
/// lines starting with `#` are skipped.
pub fn parse_labels(text: &str) -> Result<Vec<SpeechSegment>, AudioError> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = || AudioError::Labels { line: i + 1, text: line.to_owned() };
        let mut fields = trimmed.split_whitespace();
        let mut value = || -> Result<u64, AudioError> {
            let f = fields.next().ok_or_else(bad)?;
            if f.contains('.') {
                let secs: f64 = f.parse().map_err(|_| bad())?;
                if !(secs >= 0.0 && secs.is_finite()) {
                    return Err(bad());
                }
                Ok((secs * 1000.0).round() as u64)
            } else {
                f.parse().map_err(|_| bad())
            }
        };
        let (start_ms, end_ms) = (value()?, value()?);
        if end_ms <= start_ms {
            return Err(bad());
        }
        out.push(SpeechSegment { start_ms, end_ms });
    }
    Ok(out)
}

fn to_8k(pcm: &[i16], rate: u32) -> Result<Vec<i16>, AudioError> {
    let mut resampler =
        StreamResampler::new(rate, SAMPLE_RATE).map_err(|_| AudioError::UnsupportedRate(rate))?;
    if rate == SAMPLE_RATE {
        return Ok(pcm.to_vec());
    }
    // Feed the filter's delay worth of zeros after the audio and drop as many output samples at
    // the start, so that the 8 kHz clip lines up with the original (and with its labels).
    let delay_out = (resampler.delay_ms() * f64::from(SAMPLE_RATE) / 1000.0).round() as usize;
    let delay_in = (resampler.delay_ms() * f64::from(rate) / 1000.0).ceil() as usize + 1;
    let mut input = pcm.to_vec();
    input.resize(pcm.len() + delay_in, 0);
    let mut out = vec![0i16; resampler.max_output_len(input.len())];
    let n = resampler.process(&input, &mut out).expect("sized by max_output_len");
    out.truncate(n);
    let want = (pcm.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(rate)) as usize;
    let start = delay_out.min(out.len());
    let mut aligned = out.split_off(start);
    aligned.resize(want, 0);
    Ok(aligned)
}

#[derive(Clone, Copy)]
enum WavFormat {
    Pcm16,
    Ulaw,
}

struct Wav<'a> {
    format: WavFormat,
    channels: u16,
    rate: u32,
    data: &'a [u8],
}

fn parse_wav(bytes: &[u8]) -> Result<Wav<'_>, AudioError> {
    let err = |m: &str| AudioError::Wav(m.to_owned());
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(err("not a RIFF/WAVE file"));
    }
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut fmt = None;
    let mut pos = 12;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let size = u32_at(bytes, pos + 4) as usize;
        let body_start = pos + 8;
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(err("short fmt chunk"));
                }
                let mut tag = u16_at(body, 0);
                if tag == 0xFFFE && body.len() >= 26 {
                    // WAVE_FORMAT_EXTENSIBLE: the real format is the sub-format GUID's first two bytes.
                    tag = u16_at(body, 24);
                }
                let (channels, rate, bits) = (u16_at(body, 2), u32_at(body, 4), u16_at(body, 14));
                let format = match (tag, bits) {
                    (1, 16) => WavFormat::Pcm16,
                    (7, 8) => WavFormat::Ulaw,
                    _ => {
                        return Err(AudioError::Wav(format!(
                            "format {tag} with {bits}-bit samples: use 16-bit PCM or µ-law"
                        )));
                    }
                };
                if channels == 0 {
                    return Err(err("zero channels"));
                }
                fmt = Some((format, channels, rate));
            }
            b"data" => {
                let (format, channels, rate) = fmt.ok_or_else(|| err("data before fmt"))?;
                return Ok(Wav { format, channels, rate, data: body });
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        pos = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(err("no data chunk"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use trunkline::codec::ulaw_to_linear;

    fn wav(rate: u32, channels: u16, samples: &[i16]) -> Vec<u8> {
        let data_len = (samples.len() * 2) as u32;
        let mut w = Vec::new();
        w.extend_from_slice(b"RIFF");
        w.extend_from_slice(&(36 + data_len).to_le_bytes());
        w.extend_from_slice(b"WAVEfmt ");
        w.extend_from_slice(&16u32.to_le_bytes());
        w.extend_from_slice(&1u16.to_le_bytes());
        w.extend_from_slice(&channels.to_le_bytes());
        w.extend_from_slice(&rate.to_le_bytes());
        w.extend_from_slice(&(rate * 2 * u32::from(channels)).to_le_bytes());
        w.extend_from_slice(&(2 * channels).to_le_bytes());
        w.extend_from_slice(&16u16.to_le_bytes());
        w.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00"); // an odd-sized chunk to skip
        w.extend_from_slice(b"data");
        w.extend_from_slice(&data_len.to_le_bytes());
        for s in samples {
            w.extend_from_slice(&s.to_le_bytes());
        }
        w
    }

    #[test]
    fn a_16k_wav_becomes_aligned_8k_ulaw() {
        // 500 ms at 16 kHz: silence, then a 1 kHz tone from 250 ms.
        let pcm: Vec<i16> = (0..8000)
            .map(|i| {
                if i < 4000 {
                    0
                } else {
                    (8000.0 * (i as f64 * 2.0 * std::f64::consts::PI / 16.0).sin()) as i16
                }
            })
            .collect();
        let audio = CallerAudio::from_wav_bytes(&wav(16_000, 1, &pcm)).unwrap();
        assert_eq!(audio.ulaw().len(), 4000);
        assert_eq!(audio.duration_ms(), 500);
        assert_eq!(audio.speech(), &[SpeechSegment { start_ms: 0, end_ms: 500 }]);
        let level = |from: usize, to: usize| {
            audio.ulaw()[from..to].iter().map(|&c| i32::from(ulaw_to_linear(c)).abs()).max().unwrap()
        };
        // The onset stays at 250 ms (2000 samples) within the filter's few samples.
        assert!(level(0, 1980) < 200, "silence before the tone");
        assert!(level(2020, 4000) > 4000, "the tone after it");
    }

    #[test]
    fn stereo_is_averaged_and_bad_files_are_refused() {
        let audio = CallerAudio::from_wav_bytes(&wav(8_000, 2, &[1000, 3000, -1000, -3000])).unwrap();
        assert_eq!(audio.ulaw().len(), 2);
        assert!((i32::from(ulaw_to_linear(audio.ulaw()[0])) - 2000).abs() < 100);
        assert!(matches!(CallerAudio::from_wav_bytes(b"RIFF...."), Err(AudioError::Wav(_))));
        assert!(matches!(
            CallerAudio::from_wav_bytes(&wav(11_025, 1, &[0; 10])),
            Err(AudioError::UnsupportedRate(11_025))
        ));
    }

    #[test]
    fn line_noise_has_the_requested_level() {
        let mut buf = vec![0u8; 8000];
        LineNoise::new(Some(-60.0), 1).fill(&mut buf);
        let rms = (buf.iter().map(|&c| f64::from(ulaw_to_linear(c)).powi(2)).sum::<f64>() / 8000.0).sqrt();
        let db = 20.0 * (rms / 32_768.0).log10();
        assert!((db + 60.0).abs() < 1.0, "{db} dBFS");
        LineNoise::new(None, 1).fill(&mut buf);
        assert!(buf.iter().all(|&c| c == ULAW_SILENCE));
    }

    #[test]
    fn labels_in_ms_or_seconds_and_slices_keep_them() {
        let labels = parse_labels("1000 3421\n\n# comment\n4.421000\t5.435000\tsecond\n").unwrap();
        assert_eq!(
            labels,
            [SpeechSegment { start_ms: 1000, end_ms: 3421 }, SpeechSegment { start_ms: 4421, end_ms: 5435 }]
        );
        assert!(parse_labels("10").is_err());
        assert!(parse_labels("20 10").is_err());
        let audio = CallerAudio::from_ulaw(vec![0x55; 8 * 6000]).with_speech(labels);
        let mid = audio.slice_ms(3000, 5000);
        assert_eq!(mid.duration_ms(), 2000);
        assert_eq!(
            mid.speech(),
            [SpeechSegment { start_ms: 0, end_ms: 421 }, SpeechSegment { start_ms: 1421, end_ms: 2000 }]
        );
        let second = audio.utterance(1, 100).unwrap();
        assert_eq!(second.speech(), [SpeechSegment { start_ms: 1, end_ms: 1015 }]);
        assert_eq!(second.duration_ms(), 1115);
        assert!(CallerAudio::silence(Duration::from_millis(40)).speech().is_empty());
    }
}
