//! The speech detector's default settings against the noisy telephone corpus
//! (`tests/vad_corpus/mod.rs`, clips from `scripts/make_vad_corpus.sh`), checked against the
//! corpus labels against these targets:
//! - noisy conditions (pink or white noise at 5 dB SNR; the mix with hum and clicks): frame F1 at
//!   least 0.90, at most 1 false start in 10 minutes of noise-only audio, onset detection delay
//!   p50 at most 150 ms, no missed utterance longer than 400 ms;
//! - the other conditions (quiet, hum, clicks): frame F1 at least 0.93, same false-start bound.
//!
//! Figures (and CPU per frame) are printed by `cargo run --release -p trunkline-tools --bin vadbench`; nothing
//! here measures time.

use crate::vad_corpus::*;
use trunkline::vad::{SpeechDetector, VadBackend, VadConfig};

fn check(name: &str) {
    let cond = conditions().into_iter().find(|c| c.name == name).expect("condition");
    let speech = speech_track(&cond);
    let noise = noise_track(&cond, 10);
    let config = VadConfig::default();
    let s = evaluate(&config, &speech);
    let n = evaluate(&config, &noise);
    let summary = format!(
        "{name}: P {:.3} R {:.3} F1 {:.3}, onset p50 {:?} p90 {:?}, missed {:?}, false starts {} in speech track, {} in 10 min of noise",
        s.precision(),
        s.recall(),
        s.f1(),
        s.onset_percentile(50.0),
        s.onset_percentile(90.0),
        s.missed,
        s.false_starts,
        n.false_starts
    );
    println!("{summary}");
    assert_eq!(s.utterances, speech.labels.len());
    assert!(n.false_starts <= 1, "{summary}");
    assert!(s.false_starts <= 1, "{summary}");
    assert!(s.missed.iter().all(|&ms| ms <= 400), "{summary}");
    if cond.noisy {
        assert!(s.f1() >= 0.90, "{summary}");
        assert!(s.onset_percentile(50.0).unwrap() <= 150, "{summary}");
    } else {
        assert!(s.f1() >= 0.93, "{summary}");
    }
}

#[test]
fn quiet() {
    check("quiet");
}

#[test]
fn strong_hum() {
    check("hum");
}

#[test]
fn clicks() {
    check("clicks");
}

#[test]
fn pink_noise_at_5_db() {
    check("pink-5dB");
}

#[test]
fn white_noise_at_5_db() {
    check("white-5dB");
}

#[test]
fn noise_hum_and_clicks_together() {
    check("noisy-mix");
}

#[test]
fn corpus_labels_are_exact_and_deterministic() {
    let cond = &conditions()[4];
    let a = speech_track(cond);
    let b = speech_track(cond);
    assert_eq!(a.labels, b.labels);
    assert!(a.pcm == b.pcm, "the same seed gives the same audio");
    // Every label is one clip, placed where the label says: the clean clip correlates with the
    // track exactly there (G.711 and noise aside) and not 40 ms off.
    let clips = clips_of(&[ClipKind::Utterance, ClipKind::Real]);
    assert_eq!(a.labels.len(), clips.len());
    let total: u64 = clips.iter().map(|c| c.ms()).sum();
    assert_eq!(a.labels.iter().map(|(s, e)| e - s).sum::<u64>(), total);
    for w in a.labels.windows(2) {
        assert!(w[1].0 >= w[0].1 + 800, "gaps of at least 800 ms: {w:?}");
    }
    // Noise-only audio has no labels and the condition's level.
    let n = noise_track(cond, 1);
    assert!(n.labels.is_empty());
    assert_eq!(n.pcm.len(), 60 * 8_000);
}

#[test]
fn webrtc_backend_is_still_available_and_worse_in_noise() {
    // The baseline the spectral backend replaces: webrtc-vad mode 3 on 5 dB pink noise.
    let cond = conditions().into_iter().find(|c| c.name == "pink-5dB").unwrap();
    let speech = speech_track(&cond);
    let webrtc = evaluate(
        &VadConfig { aggressiveness: 3, backend: VadBackend::WebRtc, ..VadConfig::default() },
        &speech,
    );
    let spectral = evaluate(&VadConfig::default(), &speech);
    println!("pink 5 dB: webrtc mode 3 F1 {:.3}, spectral F1 {:.3}", webrtc.f1(), spectral.f1());
    assert!(webrtc.f1() < spectral.f1());
}

/// The band SNR of each speech's voiced frames as it ends (`SpeechDetector::voiced_snr_db`, the
/// last value seen while speaking), over every corpus utterance on `cond`'s line.
fn voiced_snr_at_speech_ends(cond: &Condition) -> Vec<f32> {
    let track = speech_track(cond);
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    let (mut ends, mut last) = (Vec::new(), None);
    for (i, chunk) in track.pcm.chunks(160).enumerate() {
        det.process(chunk, (i * 160) as u64, |_| {});
        if det.is_speaking() {
            last = det.voiced_snr_db().or(last);
        } else if let Some(snr) = last.take() {
            ends.push(snr);
        }
    }
    ends
}

#[test]
fn the_voiced_snr_tells_a_quiet_line_from_a_noisy_one() {
    // Rejoining trusts it to say whether the line's noise can have split a speech: every speech
    // on the quiet line (35 dB SNR) measures at or over the threshold, every one at 5 dB under it.
    // The 25 dB lines fall between (printed only).
    let threshold = trunkline::config::REJOIN_BELOW_SNR_DB;
    let lines = [
        ("quiet", Some(true)),
        ("hum", None),
        ("clicks", None),
        ("pink-5dB", Some(false)),
        ("white-5dB", Some(false)),
    ];
    for (name, clear) in lines {
        let cond = conditions().into_iter().find(|c| c.name == name).unwrap();
        let snrs = voiced_snr_at_speech_ends(&cond);
        let (lo, hi) = snrs.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &s| (lo.min(s), hi.max(s)));
        println!("{name}: {} speeches, voiced SNR {lo:.1}-{hi:.1} dB", snrs.len());
        assert!(snrs.len() >= 40, "{name}: {} speeches", snrs.len());
        match clear {
            Some(true) => assert!(lo >= threshold, "{name}: a speech at {lo:.1} dB"),
            Some(false) => assert!(hi < threshold, "{name}: a speech at {hi:.1} dB"),
            None => {}
        }
    }
}
