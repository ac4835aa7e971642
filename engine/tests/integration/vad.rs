//! Speech detector tests on a synthetic telephone fixture (see `scripts/make_speech_fixture.sh`)
//! and on synthetic hum, noise and bursts. The per-frame CPU cost is measured by the `vad` group
//! of the criterion benches (`cargo bench -p trunkline-benches --bench stages -- vad`).

use crate::thread_allocations::allocations_in;
use trunkline::vad::{
    EndOfTurn, FRAME_MS, MAX_HANGOVER_MS, MAX_MIN_SPEECH_MS, SpeechDetector, SpeechTransition, VadBackend,
    VadConfig, VadError, VadEvent,
};

// ---------------------------------------------------------------------------------------------
// Fixture

const FIXTURE_ULAW: &[u8] = include_bytes!("../fixtures/speech_8k.ulaw");
const FIXTURE_LABELS: &str = include_str!("../fixtures/speech_8k.labels");

/// Onsets must be reported within this of the label (the brief: ±60 ms).
const ONSET_TOLERANCE_MS: i64 = 60;
/// Ends (end of the last voiced frame) must be within this of the label.
const END_TOLERANCE_MS: i64 = 100;

/// ITU-T G.711 µ-law decoding, written out here so these tests do not depend on the codec module.
fn reference_ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = i32::from(u & 0x0F);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let sample = if u & 0x80 != 0 { -magnitude } else { magnitude };
    sample as i16
}

fn fixture_pcm() -> Vec<i16> {
    FIXTURE_ULAW.iter().map(|&c| reference_ulaw_to_linear(c)).collect()
}

/// (start_ms, end_ms) of every utterance.
fn labels() -> Vec<(u64, u64)> {
    FIXTURE_LABELS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace().map(|v| v.parse::<u64>().expect("label number"));
            (f.next().expect("start"), f.next().expect("end"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// xorshift64: deterministic chunk sizes without the rand crate.
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

/// Random chunk sizes in 1..=max from `seed`.
fn random_chunks(seed: u64, max: u64) -> impl FnMut() -> usize {
    let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    move || (1 + rng.below(max)) as usize
}

/// Feeds `pcm` (stream sample 0 onwards) in chunks from `next_chunk`; returns the transitions.
fn run_chunked(
    det: &mut SpeechDetector,
    pcm: &[i16],
    mut next_chunk: impl FnMut() -> usize,
) -> Vec<SpeechTransition> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < pcm.len() {
        let n = next_chunk().min(pcm.len() - pos);
        det.process(&pcm[pos..pos + n], pos as u64, |t| out.push(t));
        pos += n;
    }
    out
}

fn detect(pcm: &[i16], next_chunk: impl FnMut() -> usize) -> Vec<SpeechTransition> {
    let mut det = SpeechDetector::new(&VadConfig::default()).expect("default config");
    run_chunked(&mut det, pcm, next_chunk)
}

/// Pairs transitions into (start_ms, end_ms), asserting they alternate Started/Stopped.
fn pairs(ts: &[SpeechTransition]) -> Vec<(u64, u64)> {
    assert_eq!(ts.len() % 2, 0, "unpaired transitions: {ts:?}");
    ts.chunks(2)
        .map(|p| match p {
            [SpeechTransition::Started { at_ms: s }, SpeechTransition::Stopped { at_ms: e }] => (*s, *e),
            _ => panic!("transitions do not alternate: {ts:?}"),
        })
        .collect()
}

fn assert_matches_labels(ts: &[SpeechTransition]) {
    let found = pairs(ts);
    let want = labels();
    assert_eq!(found.len(), want.len(), "found {found:?}, labels {want:?}");
    for (&(s, e), &(ls, le)) in found.iter().zip(&want) {
        let (ds, de) = (s as i64 - ls as i64, e as i64 - le as i64);
        assert!(ds.abs() <= ONSET_TOLERANCE_MS, "onset {s} vs label {ls} ({ds:+} ms): {found:?}");
        assert!(de.abs() <= END_TOLERANCE_MS, "end {e} vs label {le} ({de:+} ms): {found:?}");
    }
}

/// Tiny deterministic white noise in [-amp, amp].
fn white_noise(rng: &mut XorShift, amp: f64) -> f64 {
    (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * amp - amp
}

/// `seconds` of mains hum (fundamental `mains_hz` at `hum_amp` with harmonics 2–5 at falling
/// levels), a DC offset and white noise.
fn hum_dc_noise(seconds: f64, mains_hz: f64, hum_amp: f64, dc: f64, noise_amp: f64) -> Vec<i16> {
    let mut rng = XorShift(0xC0FFEE);
    let n = (seconds * 8_000.0) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / 8_000.0;
            let hum: f64 = (1..=5)
                .map(|h| {
                    let a = hum_amp / f64::from(h * h);
                    a * (2.0 * std::f64::consts::PI * mains_hz * f64::from(h) * t).sin()
                })
                .sum();
            (dc + hum + white_noise(&mut rng, noise_amp)).round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

fn ms_to_samples(ms: u64) -> usize {
    (ms * 8) as usize
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn fixture_is_consistent() {
    let l = labels();
    assert!(l.len() >= 3, "{l:?}");
    let total_ms = FIXTURE_ULAW.len() as u64 / 8;
    assert!(l.windows(2).all(|w| w[0].1 < w[1].0), "labels overlap: {l:?}");
    assert!(l.iter().all(|&(s, e)| s < e && e <= total_ms), "{l:?}");
    assert!(l.iter().any(|&(s, e)| e - s >= 1_000), "need one utterance ≥ 1 s: {l:?}");
}

#[test]
fn one_pair_per_utterance_at_the_labels() {
    let pcm = fixture_pcm();
    let ts = detect(&pcm, || 160);
    println!("transitions: {ts:?}\nlabels: {:?}", labels());
    assert_matches_labels(&ts);
}

#[test]
fn random_chunking_gives_the_same_transitions() {
    let pcm = fixture_pcm();
    let reference = detect(&pcm, || pcm.len());
    assert_matches_labels(&reference);
    for seed in 1..=8 {
        let ts = detect(&pcm, random_chunks(seed, 700));
        assert_eq!(ts, reference, "seed {seed}");
    }
    assert_eq!(detect(&pcm, || 1), reference, "1-sample chunks");
    assert_eq!(detect(&pcm, || 80), reference, "10 ms chunks");
    assert_eq!(detect(&pcm, || 167), reference, "odd chunks");
}

#[test]
fn nothing_in_the_leading_silence() {
    let pcm = fixture_pcm();
    let first_onset = labels()[0].0;
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let ts = run_chunked(&mut det, &pcm[..ms_to_samples(first_onset)], random_chunks(3, 500));
    assert!(ts.is_empty(), "{ts:?}");
    assert!(!det.is_speaking());
    assert_eq!(det.onset_ms(), None);
}

#[test]
fn speaking_state_and_onset_follow_transitions() {
    let pcm = fixture_pcm();
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut seen = 0;
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let mut last = None;
        det.process(chunk, (i * 160) as u64, |t| last = Some(t));
        match last {
            Some(SpeechTransition::Started { at_ms }) => {
                assert!(det.is_speaking());
                assert_eq!(det.onset_ms(), Some(at_ms));
                seen += 1;
            }
            Some(SpeechTransition::Stopped { .. }) => {
                assert!(!det.is_speaking());
                assert_eq!(det.onset_ms(), None);
                seen += 1;
            }
            None => assert_eq!(det.is_speaking(), det.onset_ms().is_some()),
        }
    }
    assert_eq!(seen, 2 * labels().len());
}

#[test]
fn speech_is_confirmed_soon_after_onset() {
    // Barge-in latency: Started must be reported within 200 ms (stream time) of the labelled onset.
    let pcm = fixture_pcm();
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut reported_at = Vec::new();
    for (i, chunk) in pcm.chunks(160).enumerate() {
        let end_ms = ((i + 1) * 160 / 8) as u64;
        det.process(chunk, (i * 160) as u64, |t| {
            if let SpeechTransition::Started { .. } = t {
                reported_at.push(end_ms);
            }
        });
    }
    for (&at, &(start, _)) in reported_at.iter().zip(&labels()) {
        assert!(at <= start + 200, "confirmed at {at} ms for onset {start} ms");
    }
}

#[test]
fn reset_forgets_everything() {
    let pcm = fixture_pcm();
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let first = run_chunked(&mut det, &pcm, || 160);
    // Stop in the middle of the first utterance, reset, replay from stream sample 0.
    let mut det2 = SpeechDetector::new(&VadConfig::default()).unwrap();
    run_chunked(&mut det2, &pcm[..ms_to_samples(labels()[0].0 + 500)], || 160);
    assert!(det2.is_speaking());
    det2.reset();
    assert!(!det2.is_speaking());
    assert_eq!(run_chunked(&mut det2, &pcm, || 160), first);
}

#[test]
fn a_gap_counts_as_silence_and_an_overlap_is_ignored() {
    let pcm = fixture_pcm();
    let (start, end) = labels()[0];
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut ts = Vec::new();
    // Up to the middle of a word of the first utterance.
    let cut = ms_to_samples(start + 1_200) + 37;
    det.process(&pcm[..cut], 0, |t| ts.push(t));
    assert!(det.is_speaking());
    // Overlap: already-seen audio again changes nothing.
    det.process(&pcm[cut - 500..cut], (cut - 500) as u64, |t| ts.push(t));
    assert_eq!(ts.len(), 1);
    // Skip 2 s forward (longer than the hangover): speech stops at (or just before) the gap.
    let resume = cut + ms_to_samples(2_000);
    let silence = vec![0i16; 160];
    det.process(&silence, resume as u64, |t| ts.push(t));
    assert!(!det.is_speaking());
    match ts[..] {
        [SpeechTransition::Started { .. }, SpeechTransition::Stopped { at_ms }] => {
            let gap_ms = cut as u64 / 8;
            assert!(at_ms <= gap_ms && at_ms + 2 * u64::from(FRAME_MS) >= gap_ms, "{ts:?}");
        }
        _ => panic!("{ts:?}"),
    }
    // Time after the gap continues from the new position: the rest of the stream is detected
    // with onsets in shifted stream time.
    let shift = (resume + 160 - end as usize * 8) as u64;
    let mut rest = Vec::new();
    let from = ms_to_samples(end + 300);
    for (i, chunk) in pcm[from..].chunks(160).enumerate() {
        let at = (from + i * 160) as u64 + shift;
        det.process(chunk, at, |t| rest.push(t));
    }
    let found = pairs(&rest);
    assert_eq!(found.len(), labels().len() - 1, "{found:?}");
    for (&(s, _), &(ls, _)) in found.iter().zip(&labels()[1..]) {
        let ls = ls + shift / 8;
        assert!((s as i64 - ls as i64).abs() <= ONSET_TOLERANCE_MS, "{s} vs {ls}");
    }
}

#[test]
fn a_short_gap_inside_speech_does_not_stop_it() {
    let pcm = fixture_pcm();
    let (start, _) = labels()[0];
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut ts = Vec::new();
    let cut = ms_to_samples(start + 600);
    det.process(&pcm[..cut], 0, |t| ts.push(t));
    // 40 ms of audio lost, then the utterance goes on.
    let resume = cut + ms_to_samples(40);
    det.process(&pcm[resume..ms_to_samples(start + 1_000)], resume as u64, |t| ts.push(t));
    assert!(det.is_speaking(), "{ts:?}");
    assert_eq!(ts.len(), 1, "{ts:?}");
}

#[test]
fn hum_dc_and_noise_alone_are_not_speech() {
    for mains in [50.0, 60.0] {
        for (hum, dc) in [(300.0, 0.0), (3_000.0, 1_500.0), (8_000.0, -4_000.0)] {
            let pcm = hum_dc_noise(10.0, mains, hum, dc, 30.0);
            for seed in [1, 2] {
                let ts = detect(&pcm, random_chunks(seed, 400));
                assert!(ts.is_empty(), "{mains} Hz hum {hum}, dc {dc}: {ts:?}");
            }
        }
    }
}

#[test]
fn hum_does_not_hide_speech() {
    // The fixture's utterances over strong 50 Hz hum + DC are still found at the labels.
    let pcm = fixture_pcm();
    let hum = hum_dc_noise(pcm.len() as f64 / 8_000.0, 50.0, 3_000.0, 1_000.0, 0.0);
    let mixed: Vec<i16> = pcm.iter().zip(&hum).map(|(&a, &b)| a.saturating_add(b)).collect();
    assert_matches_labels(&detect(&mixed, random_chunks(9, 300)));
}

/// 2 s of quiet noise, `burst`, then 2 s of quiet noise.
fn with_burst(burst: &[i16]) -> Vec<i16> {
    let mut rng = XorShift(77);
    let mut quiet = || (0..16_000).map(|_| white_noise(&mut rng, 30.0) as i16).collect::<Vec<_>>();
    let mut v = quiet();
    v.extend_from_slice(burst);
    v.extend(quiet());
    v
}

#[test]
fn bursts_shorter_than_min_speech_are_not_speech() {
    let pcm = fixture_pcm();
    let (start, end) = labels()[0];
    // Every 60 ms cut from the loudest part of the first utterance: real speech, too short.
    for offset_ms in (start + 100..end - 100).step_by(50) {
        let from = ms_to_samples(offset_ms);
        let burst = &pcm[from..from + ms_to_samples(60)];
        let ts = detect(&with_burst(burst), || 160);
        assert!(ts.is_empty(), "60 ms of speech at {offset_ms} ms: {ts:?}");
    }
    // 60 ms bursts of loud noise, at every alignment against the frame grid.
    for amp in [2_000.0, 8_000.0, 30_000.0] {
        let mut rng = XorShift(5);
        let noise: Vec<i16> = (0..480).map(|_| white_noise(&mut rng, amp) as i16).collect();
        for shift in (0..160).step_by(20) {
            let mut burst = vec![0i16; shift];
            burst.extend_from_slice(&noise);
            let ts = detect(&with_burst(&burst), || 160);
            assert!(ts.is_empty(), "60 ms noise burst ±{amp}, shift {shift}: {ts:?}");
        }
    }
    // Control: 400 ms of the same speech is speech.
    let from = ms_to_samples(start + 100);
    let ts = detect(&with_burst(&pcm[from..from + ms_to_samples(400)]), || 160);
    assert_eq!(ts.len(), 2, "{ts:?}");
}

#[test]
fn config_is_validated() {
    assert_eq!(VadConfig::default().validate(), Ok(()));
    let bad = |f: fn(&mut VadConfig)| {
        let mut c = VadConfig::default();
        f(&mut c);
        SpeechDetector::new(&c).map(|_| ()).unwrap_err()
    };
    assert_eq!(bad(|c| c.aggressiveness = 4), VadError::BadAggressiveness(4));
    assert_eq!(
        bad(|c| c.min_speech_ms = MAX_MIN_SPEECH_MS + 1),
        VadError::MinSpeechTooLong(MAX_MIN_SPEECH_MS + 1)
    );
    assert_eq!(bad(|c| c.hangover_ms = MAX_HANGOVER_MS + 1), VadError::HangoverTooLong(MAX_HANGOVER_MS + 1));
    assert_eq!(
        bad(|c| c.end_of_turn_max_silence_ms = MAX_HANGOVER_MS + 1),
        VadError::MaxSilenceTooLong(MAX_HANGOVER_MS + 1)
    );
    // Its pitch cues come from the spectral classifier.
    assert_eq!(
        bad(|c| (c.end_of_turn_enabled, c.backend) = (true, VadBackend::WebRtc)),
        VadError::EndOfTurnNeedsSpectral
    );
    // So does the echo gate.
    assert_eq!(
        bad(|c| (c.echo_aware, c.backend) = (true, VadBackend::WebRtc)),
        VadError::EchoAwareNeedsSpectral
    );
    assert_eq!(VadError::BadAggressiveness(9).to_string(), "VAD aggressiveness 9 is outside 0..=3");
    for aggressiveness in 0..=3 {
        let c = VadConfig {
            aggressiveness,
            min_speech_ms: 0,
            hangover_ms: MAX_HANGOVER_MS,
            ..VadConfig::default()
        };
        assert!(SpeechDetector::new(&c).is_ok());
    }
}

#[test]
fn every_aggressiveness_finds_the_utterances() {
    let pcm = fixture_pcm();
    for aggressiveness in 0..=3 {
        let c = VadConfig { aggressiveness, ..VadConfig::default() };
        let mut det = SpeechDetector::new(&c).unwrap();
        let found = pairs(&run_chunked(&mut det, &pcm, || 160));
        println!("aggressiveness {aggressiveness}: {found:?}");
        assert_eq!(found.len(), labels().len(), "aggressiveness {aggressiveness}: {found:?}");
    }
}

#[test]
fn process_does_not_allocate() {
    let pcm = fixture_pcm();
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut transitions = 0;
    let mut next = random_chunks(11, 500);
    let sizes: Vec<usize> = (0..2_000).map(|_| next()).collect();
    let (allocations, ()) = allocations_in(|| {
        let mut pos = 0;
        for &n in &sizes {
            if pos >= pcm.len() {
                break;
            }
            let n = n.min(pcm.len() - pos);
            det.process(&pcm[pos..pos + n], pos as u64, |_| transitions += 1);
            pos += n;
        }
        // A gap, an overlap and a reset must not allocate either.
        det.process(&pcm[..800], pcm.len() as u64 + 80_000, |_| transitions += 1);
        det.process(&pcm[..800], pcm.len() as u64 + 80_000, |_| transitions += 1);
        det.reset();
        det.process(&pcm[..800], 0, |_| transitions += 1);
    });
    assert_eq!(allocations, 0);
    assert_eq!(transitions, 2 * labels().len());
}

#[test]
fn detector_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<SpeechDetector>();
    // And really usable from another thread.
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let pcm = fixture_pcm();
    let n = std::thread::spawn(move || run_chunked(&mut det, &pcm, || 160).len()).join().unwrap();
    assert_eq!(n, 2 * labels().len());
}

#[test]
fn codec_decoder_agrees_with_the_reference() {
    // The fixture is decoded with the test's own reference decoder; the engine's codec must give
    // the same samples for every one of the 256 codes (a panic here is a failure, not a skip).
    let codes: Vec<u8> = (0..=255).collect();
    let mut decoded = [0i16; 256];
    let n = trunkline::codec::decode_ulaw(&codes, &mut decoded);
    assert_eq!(n, 256, "every code is decoded");
    for (code, &d) in codes.iter().zip(&decoded) {
        assert_eq!(d, reference_ulaw_to_linear(*code), "code {code:#04x}");
    }
}

/// Regression: digital silence (µ-law 0xFF, decoded to exact zeros: a muted caller, the start of a
/// call) must not leave the detector deaf to the speech that follows. Found by callsim.
#[test]
fn speech_after_digital_silence_is_detected() {
    let pcm = fixture_pcm();
    let (second_start, second_end) = labels()[1];
    // The first utterance, 1.5 s of digital silence, then the second utterance.
    let mut stream: Vec<i16> = pcm[..3_600 * 8].to_vec();
    stream.extend(std::iter::repeat_n(0i16, 1_500 * 8));
    let silence_end_ms = stream.len() as u64 / 8;
    stream.extend_from_slice(&pcm[(second_start as usize - 100) * 8..(second_end as usize + 600) * 8]);
    let expected_onset = silence_end_ms + 100;
    let mut detector = SpeechDetector::new(&VadConfig::default()).unwrap();
    let mut starts = vec![];
    for (i, chunk) in stream.chunks(160).enumerate() {
        detector.process(chunk, i as u64 * 160, |t| {
            if let SpeechTransition::Started { at_ms } = t {
                starts.push(at_ms);
            }
        });
    }
    assert_eq!(starts.len(), 2, "both utterances are detected: {starts:?}");
    assert!(starts[1].abs_diff(expected_onset) <= 60, "onset {} vs {expected_onset}", starts[1]);
}

// ---------------------------------------------------------------------------------------------
// End of turn around speech stopping, gaps and the end of the stream

fn turn_config(threshold: u8, max_silence_ms: u32) -> VadConfig {
    VadConfig {
        end_of_turn_enabled: true,
        end_of_turn_threshold: threshold,
        end_of_turn_max_silence_ms: max_silence_ms,
        ..VadConfig::default()
    }
}

/// Feeds `pieces` (stream sample, audio) in 20 ms chunks; returns every event in order.
fn events_of(det: &mut SpeechDetector, pieces: &[(usize, &[i16])]) -> Vec<VadEvent> {
    let mut out = Vec::new();
    for &(at, pcm) in pieces {
        for (i, chunk) in pcm.chunks(160).enumerate() {
            det.process_events(chunk, (at + i * 160) as u64, |e| out.push(e));
        }
    }
    out
}

#[test]
fn a_maximum_silence_no_longer_than_the_hangover_ends_the_turn_before_speech_stopped() {
    let pcm = fixture_pcm();
    // Threshold 99: no phrase sounds finished enough, so the maximum silence decides each pause.
    for max_silence_ms in [300, 400] {
        let mut det = SpeechDetector::new(&turn_config(99, max_silence_ms)).unwrap();
        let events = events_of(&mut det, &[(0, &pcm)]);
        let mut turn_ended = false;
        let mut stops = 0;
        for e in &events {
            match e {
                VadEvent::EndOfTurn(_) => {
                    assert!(
                        det_speaking_before(&events, e),
                        "max {max_silence_ms}: after Stopped: {events:?}"
                    );
                    turn_ended = true;
                }
                VadEvent::Transition(SpeechTransition::Stopped { .. }) => {
                    assert!(turn_ended, "max {max_silence_ms}: Stopped with no end of turn: {events:?}");
                    stops += 1;
                }
                VadEvent::Transition(SpeechTransition::Started { .. }) => turn_ended = false,
            }
        }
        assert_eq!(stops, labels().len(), "{events:?}");
    }
}

#[test]
fn a_gap_of_days_after_speech_ends_the_turn_with_its_silence_saturated_not_overflowed() {
    // A host that numbers samples from a clock may jump far ahead: the turn waiting for the
    // maximum silence after the speech the gap stopped ends on the next frame.
    let pcm = fixture_pcm();
    let mut det = SpeechDetector::new(&turn_config(99, 1_000)).unwrap();
    let mut events = Vec::new();
    let mut next = 0;
    for chunk in pcm.chunks_exact(160) {
        det.process_events(chunk, next, |e| events.push(e));
        next += 160;
        if events.iter().any(|e| matches!(e, VadEvent::Transition(SpeechTransition::Started { .. }))) {
            break;
        }
    }
    let later = next + (1 << 36);
    for i in 0..3 {
        det.process_events(&[0; 160], later + i * 160, |e| events.push(e));
    }
    let ends: Vec<&EndOfTurn> =
        events.iter().filter_map(|e| if let VadEvent::EndOfTurn(t) = e { Some(t) } else { None }).collect();
    assert_eq!(ends.len(), 1, "{events:?}");
    assert_eq!(ends[0].silence_ms, u32::MAX, "{events:?}");
}

/// Whether `e` comes while speech is under way (after a `Started`, before its `Stopped`).
fn det_speaking_before(events: &[VadEvent], e: &VadEvent) -> bool {
    let at = events.iter().position(|x| std::ptr::eq(x, e)).expect("an event of the list");
    let last = events[..at].iter().rev().find_map(|x| match x {
        VadEvent::Transition(t) => Some(*t),
        VadEvent::EndOfTurn(_) => None,
    });
    matches!(last, Some(SpeechTransition::Started { .. }))
}

#[test]
fn a_gap_that_stops_speech_ends_the_turn_with_its_silence_scored_on_the_speech_before_it() {
    let pcm = fixture_pcm();
    let (start, _) = labels()[0];
    // The audio stops mid-phrase, on a frame boundary, and resumes 600 ms later (silence).
    let cut = ms_to_samples(start + 1_200);
    let resume = cut + ms_to_samples(600);
    let silence = vec![0i16; ms_to_samples(200)];
    let mut det = SpeechDetector::new(&turn_config(35, 0)).unwrap();
    let events = events_of(&mut det, &[(0, &pcm[..cut]), (resume, &silence)]);
    let turns: Vec<EndOfTurn> = events
        .iter()
        .filter_map(|e| match e {
            VadEvent::EndOfTurn(t) => Some(*t),
            VadEvent::Transition(_) => None,
        })
        .collect();
    let stopped = events.iter().find_map(|e| match e {
        VadEvent::Transition(SpeechTransition::Stopped { at_ms }) => Some(*at_ms),
        _ => None,
    });
    // The last is the gap's (a pause inside the phrase may have sounded finished before it).
    let &turn = turns.last().expect("an end of turn");
    // The same end of speech as its Stopped, and the gap counted in the silence.
    assert_eq!(Some(turn.at_ms), stopped, "{events:?}");
    assert!(turn.silence_ms >= 600, "{turn:?}");
    // Scored on how the speech before the gap ended: as a stream ending at the cut scores it.
    let mut ended = SpeechDetector::new(&turn_config(35, 0)).unwrap();
    events_of(&mut ended, &[(0, &pcm[..cut])]);
    assert!(ended.is_speaking());
    let at_end = ended.end_turn(Some(cut as u64 / 8)).expect("a turn under way");
    assert_eq!(turn.confidence, at_end.confidence, "{turn:?} vs {at_end:?}");
}

#[test]
fn the_stream_ending_ends_the_turn_under_way_once() {
    let pcm = fixture_pcm();
    let (start, end) = labels()[0];
    // Mid-phrase: the end of turn carries the stop's time and no silence.
    let cut = ms_to_samples(start + 1_200);
    let mut det = SpeechDetector::new(&turn_config(35, 0)).unwrap();
    events_of(&mut det, &[(0, &pcm[..cut])]);
    let turn = det.end_turn(Some(cut as u64 / 8)).expect("a turn under way");
    assert_eq!((turn.at_ms, turn.silence_ms, turn.early), (cut as u64 / 8, 0, false));
    assert_eq!(det.end_turn(Some(cut as u64 / 8)), None, "once");
    // Waiting for a maximum silence after Stopped: it ends with the stream, at the speech's end.
    let cut = ms_to_samples(end + 700) / 160 * 160;
    let mut det = SpeechDetector::new(&turn_config(99, 2_000)).unwrap();
    let events = events_of(&mut det, &[(0, &pcm[..cut])]);
    let stopped = events.iter().find_map(|e| match e {
        VadEvent::Transition(SpeechTransition::Stopped { at_ms }) => Some(*at_ms),
        _ => None,
    });
    assert!(!events.iter().any(|e| matches!(e, VadEvent::EndOfTurn(_))), "{events:?}");
    let turn = det.end_turn(None).expect("the turn waiting for its maximum silence");
    assert!(
        stopped.is_some_and(|s| s.abs_diff(turn.at_ms) <= u64::from(FRAME_MS)),
        "{turn:?} vs {stopped:?}"
    );
    assert_eq!(turn.at_ms + u64::from(turn.silence_ms), cut as u64 / 8, "{turn:?}");
    // Off, or no turn: nothing.
    let mut off = SpeechDetector::new(&VadConfig::default()).unwrap();
    events_of(&mut off, &[(0, &pcm[..cut])]);
    assert_eq!(off.end_turn(None), None);
}
