//! The speech detector (pre-filter, classifier, state machine) with arbitrary audio, settings,
//! chunkings and stream gaps: transitions alternate (started, stopped, started, ...), their times
//! never go back and never run ahead of the audio fed, and the same audio gives the same
//! transitions however it is cut into calls.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use trunkline::vad::{SpeechDetector, SpeechTransition, VadBackend, VadConfig};

#[derive(Arbitrary, Debug)]
enum Piece {
    /// Raw samples.
    Samples(Vec<i16>),
    /// A loud periodic buzz (voiced-looking): period, amplitude, length in 20 ms frames.
    Buzz(u8, i16, u8),
    /// A jump forward in stream position (a gap), in samples.
    Gap(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    webrtc: bool,
    end_of_turn: bool,
    aggressiveness: u8,
    min_speech_ms: u16,
    hangover_ms: u16,
    pieces: Vec<Piece>,
    chunks: Vec<u16>,
}

/// The stream as (start position, samples) runs.
fn stream(pieces: &[Piece]) -> Vec<(u64, Vec<i16>)> {
    let mut runs = Vec::new();
    let mut pos = 0u64;
    for p in pieces.iter().take(64) {
        let samples = match p {
            Piece::Samples(s) => s.clone(),
            Piece::Buzz(period, amp, frames) => {
                let period = usize::from(*period).max(20);
                (0..usize::from(*frames) * 160)
                    .map(|i| if i % period < period / 3 { *amp } else { amp.saturating_neg() / 2 })
                    .collect()
            }
            Piece::Gap(n) => {
                pos += u64::from(*n);
                continue;
            }
        };
        let len = samples.len() as u64;
        runs.push((pos, samples));
        pos += len;
    }
    runs
}

fn detect(
    config: &VadConfig,
    runs: &[(u64, Vec<i16>)],
    chunks: &mut dyn Iterator<Item = usize>,
) -> Vec<SpeechTransition> {
    let mut vad = SpeechDetector::new(config).unwrap();
    let mut out = Vec::new();
    for (start, samples) in runs {
        let mut pos = *start;
        let mut rest = &samples[..];
        while !rest.is_empty() {
            let n = chunks.next().unwrap_or(rest.len()).clamp(1, rest.len());
            let (chunk, tail) = rest.split_at(n);
            let end_ms = (pos + n as u64) / 8;
            let before = out.len();
            vad.process(chunk, pos, |t| out.push(t));
            for t in &out[before..] {
                let at = match *t {
                    SpeechTransition::Started { at_ms } | SpeechTransition::Stopped { at_ms } => at_ms,
                };
                assert!(at <= end_ms + 1, "transition at {at} ms after the audio fed ({end_ms} ms)");
            }
            assert_eq!(vad.is_speaking(), vad.onset_ms().is_some());
            pos += n as u64;
            rest = tail;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let config = VadConfig {
        backend: if input.webrtc { VadBackend::WebRtc } else { VadBackend::Spectral },
        aggressiveness: input.aggressiveness % 4,
        min_speech_ms: u32::from(input.min_speech_ms % 5001),
        hangover_ms: u32::from(input.hangover_ms % 10_001),
        // End of turn needs the spectral backend (the webrtc one is refused with it).
        end_of_turn_enabled: input.end_of_turn && !input.webrtc,
        ..VadConfig::default()
    };
    let runs = stream(&input.pieces);
    let whole = detect(&config, &runs, &mut std::iter::empty());
    let mut sizes = input.chunks.iter().map(|&c| usize::from(c % 1000)).chain(std::iter::repeat(160));
    let chunked = detect(&config, &runs, &mut sizes);
    assert_eq!(whole, chunked, "chunking changed the transitions");
    let mut speaking = false;
    let mut last = 0;
    for t in &whole {
        let at = match *t {
            SpeechTransition::Started { at_ms } => {
                assert!(!speaking, "two starts in a row: {whole:?}");
                speaking = true;
                at_ms
            }
            SpeechTransition::Stopped { at_ms } => {
                assert!(speaking, "a stop without a start: {whole:?}");
                speaking = false;
                at_ms
            }
        };
        assert!(at >= last, "transition times went back: {whole:?}");
        last = at;
    }
});
