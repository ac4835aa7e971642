//! The bot's own voice coming back on the caller's line, as speakerphones, cheap handsets and
//! line hybrids send it: what the carrier plays to the caller, `erl_db` quieter (echo return
//! loss), `delay_ms` later, through a decaying tail, mixed into what the caller says and
//! re-quantised by the line's µ-law (the mild non-linearity every real echo path has).
//!
//! The echo is of what the caller *heard*: audio is placed on the line when the simulated
//! carrier plays it (after its playout delay and whatever it still held), and a `clear` takes
//! back what had not played. So a bot that cuts its reply cuts its echo too, as on a real call.

use super::rng::SplitMix64;
use std::collections::VecDeque;
use std::time::Instant;
use trunkline::codec::{linear_to_ulaw, ulaw_to_linear};

/// Samples per ms of the line (8 kHz).
const PER_MS: usize = 8;

/// The echo path of a call (`--echo-erl-db`, `--echo-delay-ms`, `--echo-tail-ms`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct EchoPath {
    /// Echo return loss: how much quieter the echo's energy is than what was played, dB (≥ 0).
    pub erl_db: f64,
    /// Delay from the carrier playing a sample to its echo on the caller's line, ms.
    pub delay_ms: u32,
    /// Length of the decaying tail after the direct echo, ms (0: a single reflection).
    pub tail_ms: u32,
}

impl EchoPath {
    /// The path's impulse response at 8 kHz: the direct reflection then a seeded, exponentially
    /// decaying diffuse tail (about 30 dB down at its end), scaled so that its energy is the
    /// return loss: an echo of a signal of power P has power P·10^(−erl/10).
    /// `engine/tests/vad_corpus/echo.rs` holds a copy (the VAD corpus's echo conditions): change
    /// both together.
    fn taps(&self, seed: u64) -> Vec<f32> {
        let tail = self.tail_ms as usize * PER_MS;
        let mut rng = SplitMix64::new(seed ^ 0xEC40);
        let mut taps = vec![1.0f64];
        for j in 1..=tail {
            let envelope = 0.5 * (-3.45 * j as f64 / tail as f64).exp();
            let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            taps.push(sign * envelope * (0.5 + (rng.next_u64() % 1000) as f64 / 2000.0));
        }
        let energy: f64 = taps.iter().map(|t| t * t).sum();
        let scale = 10f64.powf(-self.erl_db / 20.0) / energy.sqrt();
        taps.into_iter().map(|t| (t * scale) as f32).collect()
    }
}

/// The line of one call: what the carrier played, by sample since the stream's start, for as long
/// as its echo can still reach the caller's microphone.
#[derive(Debug)]
pub(crate) struct EchoLine {
    delay: usize,
    taps: Vec<f32>,
    t0: Instant,
    /// Sample index of `played[0]`.
    base: usize,
    /// The carrier's output, 8 kHz, from `base` on (zeros where nothing played).
    played: VecDeque<f32>,
}

impl EchoLine {
    pub(crate) fn new(path: EchoPath, seed: u64, t0: Instant) -> Self {
        Self {
            delay: path.delay_ms as usize * PER_MS,
            taps: path.taps(seed),
            t0,
            base: 0,
            played: VecDeque::new(),
        }
    }

    /// The stream's start moved (it is set when the stream really starts).
    pub(crate) fn set_origin(&mut self, t0: Instant) {
        self.t0 = t0;
    }

    fn index(&self, at: Instant) -> usize {
        let d = at.saturating_duration_since(self.t0);
        (d.as_nanos() * PER_MS as u128 / 1_000_000) as usize
    }

    /// The carrier plays `pcm` (8 kHz) from `start` on.
    pub(crate) fn played(&mut self, start: Instant, pcm: &[i16]) {
        let at = self.index(start).max(self.base);
        let end = at + pcm.len();
        if self.base + self.played.len() < end {
            self.played.resize(end - self.base, 0.0);
        }
        for (i, &s) in pcm.iter().enumerate() {
            self.played[at - self.base + i] += f32::from(s);
        }
    }

    /// A `clear` at `now`: what had not played yet never reaches the line.
    pub(crate) fn cleared(&mut self, now: Instant) {
        let keep = self.index(now).saturating_sub(self.base);
        self.played.truncate(keep);
    }

    /// Adds the echo to the caller's µ-law frame that starts at `stream_ms`, then forgets what
    /// no later frame's echo can reach.
    pub(crate) fn mix(&mut self, stream_ms: u64, frame: &mut [u8]) {
        let n0 = stream_ms as usize * PER_MS;
        for (i, code) in frame.iter_mut().enumerate() {
            let n = n0 + i;
            let mut echo = 0.0f32;
            for (j, tap) in self.taps.iter().enumerate() {
                let Some(k) = n.checked_sub(self.delay + j) else { break };
                if let Some(s) = k.checked_sub(self.base).and_then(|k| self.played.get(k)) {
                    echo += tap * s;
                }
            }
            if echo != 0.0 {
                let mixed = f32::from(ulaw_to_linear(*code)) + echo;
                *code = linear_to_ulaw(mixed.round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        let oldest_needed = (n0 + frame.len()).saturating_sub(self.delay + self.taps.len());
        let gone = oldest_needed.saturating_sub(self.base).min(self.played.len());
        self.played.drain(..gone);
        self.base += gone;
        if self.played.is_empty() {
            self.base = self.base.max(oldest_needed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn energy(x: &[f64]) -> f64 {
        x.iter().map(|v| v * v).sum::<f64>()
    }

    #[test]
    fn the_tail_carries_the_return_loss() {
        for erl in [6.0, 10.0, 15.0, 25.0] {
            for tail_ms in [0, 40, 100] {
                let taps = EchoPath { erl_db: erl, delay_ms: 100, tail_ms }.taps(7);
                let e: f64 = taps.iter().map(|&t| f64::from(t) * f64::from(t)).sum();
                let measured = -10.0 * e.log10();
                assert!((measured - erl).abs() < 0.01, "ERL {erl} dB, tail {tail_ms} ms: {measured:.3}");
                assert_eq!(taps.len(), 1 + tail_ms as usize * 8);
            }
        }
    }

    /// A tone played by the carrier comes back delayed and at the return loss (measured on the
    /// µ-law the caller sends, against the tone itself).
    #[test]
    fn a_played_tone_returns_delayed_by_the_path_at_its_loss() {
        let t0 = Instant::now();
        let path = EchoPath { erl_db: 10.0, delay_ms: 120, tail_ms: 0 };
        let mut line = EchoLine::new(path, 1, t0);
        let tone: Vec<i16> = (0..8000).map(|n| (8000.0 * (n as f64 * 0.3).sin()) as i16).collect();
        line.played(t0 + Duration::from_millis(200), &tone);
        let mut caller = vec![];
        for k in 0..100u64 {
            let mut frame = [0xFFu8; 160];
            line.mix(k * 20, &mut frame);
            caller.extend(frame.iter().map(|&c| f64::from(ulaw_to_linear(c))));
        }
        let onset = caller.iter().position(|s| s.abs() > 100.0).unwrap();
        assert!((onset as i64 - 2560).abs() <= 8, "echo starts at sample {onset}, want 2560 (320 ms)");
        let played: Vec<f64> = tone.iter().map(|&s| f64::from(s)).collect();
        let echo = &caller[2560..2560 + 8000];
        let loss = 10.0 * (energy(&played) / energy(echo)).log10();
        assert!((loss - 10.0).abs() < 0.3, "measured ERL {loss:.2} dB");
    }

    #[test]
    fn a_clear_takes_back_what_had_not_played() {
        let t0 = Instant::now();
        let mut line = EchoLine::new(EchoPath { erl_db: 6.0, delay_ms: 20, tail_ms: 0 }, 1, t0);
        line.played(t0, &vec![10_000; 8000]);
        line.cleared(t0 + Duration::from_millis(500));
        let mut loud = 0;
        for k in 0..60u64 {
            let mut frame = [0xFFu8; 160];
            line.mix(k * 20, &mut frame);
            loud += frame.iter().filter(|&&c| ulaw_to_linear(c).abs() > 1000).count();
        }
        assert_eq!(loud, 4000, "500 ms of echo, then none");
    }
}
