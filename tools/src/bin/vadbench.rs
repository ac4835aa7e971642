//! VAD evaluation: frame precision/recall/F1 against exact labels, onset delay, false starts on
//! noise-only audio, missed utterances and CPU per 20 ms frame, per line condition; then the
//! barge-in test set (precision, recall, reaction time).
//!
//! ```text
//! cargo run --release -p trunkline-tools --bin vadbench               # default settings and the baselines
//! cargo run --release -p trunkline-tools --bin vadbench -- --quick    # 2 min of noise-only audio, not 10
//! ```
//!
//! The corpus is described in `tests/vad_corpus/mod.rs` (clips from `scripts/make_vad_corpus.sh`,
//! built on first use into `target/vad-corpus`).

#[path = "../../../engine/tests/vad_corpus/mod.rs"]
mod vad_corpus;

use std::time::Instant;

use trunkline::SessionConfig;
use trunkline::vad::{SpeechDetector, VadBackend, VadConfig};
use vad_corpus::*;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let noise_minutes = if quick { 2 } else { 10 };
    let mut detectors: Vec<(String, VadConfig)> = vec![("default".into(), VadConfig::default())];
    for mode in [2u8, 3] {
        detectors.push((
            format!("webrtc mode {mode}"),
            VadConfig { aggressiveness: mode, backend: VadBackend::WebRtc, ..VadConfig::default() },
        ));
    }
    if std::env::args().any(|a| a == "--features") {
        feature_stats();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--debug-call") {
        debug_call(&args[i + 1]);
        return;
    }
    if std::env::args().any(|a| a == "--barge-in") {
        barge_in_report();
        return;
    }
    let clips = clips();
    println!(
        "corpus: {} caller utterances ({} human recordings), {} backchannels, {} agent prompts; \
         {noise_minutes} min of noise-only audio per condition",
        clips.iter().filter(|c| matches!(c.kind, ClipKind::Utterance | ClipKind::Real)).count(),
        clips.iter().filter(|c| c.kind == ClipKind::Real).count(),
        clips.iter().filter(|c| c.kind == ClipKind::Backchannel).count(),
        clips.iter().filter(|c| c.kind == ClipKind::Agent).count(),
    );
    println!();
    println!(
        "| condition | detector | precision | recall | F1 | onset p50 / p90 (ms) | false starts / 10 min | missed (longest ms) | µs / 20 ms frame |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for cond in conditions() {
        let speech = speech_track(&cond);
        let noise = noise_track(&cond, noise_minutes);
        for (name, config) in &detectors {
            let mut det = SpeechDetector::new(config).unwrap();
            let t = Instant::now();
            let found = detect(&mut det, &speech.pcm);
            let mut det = SpeechDetector::new(config).unwrap();
            let found_noise = detect(&mut det, &noise.pcm);
            let elapsed = t.elapsed();
            let frames = (speech.pcm.len() + noise.pcm.len()) / 160;
            let mut s = score(&speech, &found);
            let n = score(&noise, &found_noise);
            s.false_starts += n.false_starts;
            s.nonspeech_ms += n.nonspeech_ms;
            println!(
                "| {} | {name} | {:.3} | {:.3} | {:.3} | {} / {} | {:.2} ({} in {:.1} min) | {} ({}) | {:.2} |",
                cond.name,
                s.precision(),
                s.recall(),
                s.f1(),
                fmt_opt(s.onset_percentile(50.0)),
                fmt_opt(s.onset_percentile(90.0)),
                s.false_starts_per_10min(),
                s.false_starts,
                s.nonspeech_ms as f64 / 60_000.0,
                s.missed.len(),
                s.longest_missed(),
                elapsed.as_secs_f64() * 1e6 / frames as f64,
            );
        }
    }
}

fn fmt_opt(v: Option<u64>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Distribution of the spectral features in labelled speech and in noise, per condition.
fn feature_stats() {
    for cond in conditions() {
        let speech = speech_track(&cond);
        let noise = noise_track(&cond, 2);
        let mut inside: Vec<(f32, f32, f32)> = Vec::new();
        let mut outside: Vec<(f32, f32, f32)> = Vec::new();
        for (track, is_noise) in [(&speech, false), (&noise, true)] {
            let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
            for (i, chunk) in track.pcm.chunks(160).enumerate() {
                det.process(chunk, (i * 160) as u64, |_| {});
                let f = det.last_frame_features().unwrap();
                let ms = i as u64 * 20 + 10;
                let lab = !is_noise && track.labels.iter().any(|&(s, e)| ms >= s && ms < e);
                if lab {
                    inside.push(f);
                } else if is_noise || !track.labels.iter().any(|&(s, e)| ms + 200 >= s && ms < e + 200) {
                    outside.push(f);
                }
            }
        }
        let pct = |v: &mut Vec<f32>| {
            v.sort_by(f32::total_cmp);
            [10, 25, 50, 75, 90, 99]
                .iter()
                .map(|p| format!("{:.2}", v[(v.len() - 1) * p / 100]))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut hi: Vec<f32> = inside.iter().map(|f| f.0).collect();
        let mut si: Vec<f32> = inside.iter().map(|f| f.1).collect();
        let mut ii: Vec<f32> = inside.iter().map(|f| f.2).collect();
        let mut ho: Vec<f32> = outside.iter().map(|f| f.0).collect();
        let mut so: Vec<f32> = outside.iter().map(|f| f.1).collect();
        let mut io: Vec<f32> = outside.iter().filter(|f| f.0 > 0.45 && f.1 > 3.0).map(|f| f.2).collect();
        io.push(0.0);
        println!("{}: p10 p25 p50 p75 p90 p99", cond.name);
        println!("  harmonicity speech {}   noise {}", pct(&mut hi), pct(&mut ho));
        println!("  snr dB      speech {}   noise {}", pct(&mut si), pct(&mut so));
        println!("  impulsive   speech {}   noise (voiced-looking) {}", pct(&mut ii), pct(&mut io));
    }
}

/// The barge-in test set under default settings, per line condition.
fn barge_in_report() {
    println!();
    println!(
        "| condition | calls (interrupt / backchannel / cough / typing) | precision | recall | reaction p50 / p90 (ms) | false barge-ins |"
    );
    println!("|---|---|---|---|---|---|");
    let config = SessionConfig::default();
    for cond in conditions() {
        if !["quiet", "pink-5dB", "noisy-mix"].contains(&cond.name) {
            continue;
        }
        let calls = barge_calls(&cond);
        let count = |a: CallerAct| calls.iter().filter(|c| c.act == a).count();
        let s = score_barge_in(&config, &calls);
        println!(
            "| {} | {} / {} / {} / {} | {:.3} | {:.3} | {} / {} | {} |",
            cond.name,
            count(CallerAct::Interrupt),
            count(CallerAct::Backchannel),
            count(CallerAct::Cough),
            count(CallerAct::Typing),
            s.precision(),
            s.recall(),
            fmt_opt(percentile(&s.reactions, 50.0)),
            fmt_opt(percentile(&s.reactions, 90.0)),
            if s.false_by_act.is_empty() {
                "none".to_owned()
            } else {
                s.false_by_act.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
            },
        );
        if std::env::args().any(|a| a == "--verbose") {
            println!("missed: {:?}", s.missed);
        }
    }
}

/// Prints the detector's view of one barge-in call (`--debug-call NAME`) in the noisy mix.
fn debug_call(name: &str) {
    let cond = conditions().into_iter().find(|c| c.name == "noisy-mix").unwrap();
    let call = barge_calls(&cond).into_iter().find(|c| c.name == name).unwrap();
    println!("act {:?} at {:?}", call.act, call.act_ms);
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    for (i, chunk) in call.caller.chunks(160).enumerate() {
        let ms = i as u64 * 20;
        det.process(chunk, (i * 160) as u64, |t| println!("{ms}: {t:?}"));
        if ms + 300 >= call.act_ms.0 && ms <= call.act_ms.1 + 200 {
            let f = det.last_frame_features().unwrap();
            println!("{ms}: h {:.2} snr {:.1} imp {:.2} voiced_ms {:?}", f.0, f.1, f.2, det.voiced_ms());
        }
    }
}
