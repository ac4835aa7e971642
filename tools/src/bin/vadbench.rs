//! VAD evaluation: frame precision/recall/F1 against exact labels, onset delay, false starts on
//! noise-only audio, missed utterances and CPU per 20 ms frame, per line condition; then the
//! barge-in test set (precision, recall, reaction time).
//!
//! ```text
//! cargo run --release -p trunkline-tools --bin vadbench               # default settings and the baselines
//! cargo run --release -p trunkline-tools --bin vadbench -- --quick    # 2 min of noise-only audio, not 10
//! cargo run --release -p trunkline-tools --bin vadbench -- --barge-in # the barge-in set
//! cargo run --release -p trunkline-tools --bin vadbench -- --echo     # the bot's voice echoed back
//! cargo run --release -p trunkline-tools --bin vadbench -- --echo --echo-aware=false  # the same, gate off
//! cargo run --release -p trunkline-tools --bin vadbench -- --echo-reduction  # the echo the host reads
//! cargo run --release -p trunkline-tools --bin vadbench -- --turns    # multi-sentence turns
//! cargo run --release -p trunkline-tools --bin vadbench -- --turns --paused  # paused sentences only
//! cargo run --release -p trunkline-tools --bin vadbench -- --turns --turn-features  # per-pause cues
//! cargo run --release -p trunkline-tools --bin vadbench -- --turns --export DIR  # tracks for other detectors
//! ```
//!
//! The corpus is described in `tests/vad_corpus/mod.rs` (clips from `scripts/make_vad_corpus.sh`,
//! built on first use into `target/vad-corpus`).

#[path = "../../../engine/tests/vad_corpus/mod.rs"]
mod vad_corpus;

use std::time::Instant;

use trunkline::vad::{SpeechDetector, VadBackend, VadConfig};
use trunkline::{BargeInConfig, SessionConfig};
use vad_corpus::echo::{
    ERLS_DB, echo_only_calls, echo_reduction_db, interruption_calls, score_echo_only, score_echo_only_from,
    score_interruptions,
};

use vad_corpus::turns::{
    TurnScore, paused_turn_track, run_turns, score_turns, split_turn_track, turn_signals, turn_track,
};
use vad_corpus::*;

/// When the echo path opens in the mid-call rows of `--echo`, ms into the call (after several
/// prompts without echo).
const MID_CALL_ONSET_MS: u64 = 10_000;

/// The lines the barge-in, echo and echo-reduction tables report: quiet, 5 dB pink noise, and
/// pink noise with hum and clicks.
fn three_lines() -> impl Iterator<Item = Condition> {
    conditions().into_iter().filter(|c| ["quiet", "pink-5dB", "noisy-mix"].contains(&c.name))
}

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
    if std::env::args().any(|a| a == "--echo-reduction") {
        echo_reduction_report();
        return;
    }
    if std::env::args().any(|a| a == "--echo") {
        // The session's default unless `--echo-aware=true|false` chooses.
        let echo_aware = args.iter().find_map(|a| a.strip_prefix("--echo-aware=")).map(|v| v == "true");
        echo_report(if quick { 2.0 } else { 10.0 }, echo_aware);
        return;
    }
    if std::env::args().any(|a| a == "--turns") {
        turns_report();
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

/// The barge-in test set under default settings (and with ducking off), per line condition:
/// precision and recall, the barge-in's reaction (onset → `BargeIn`), the time from the caller's
/// onset to the bot's voice dropping at the carrier (ducked 10 dB or cleared), and how long the
/// bot played ducked on each backchannel (stream times on the simulated clock).
fn barge_in_report() {
    println!();
    println!(
        "| condition | ducking (dB) | calls (interrupt / backchannel / cough / typing) | precision | recall | reaction p50 / p90 (ms) | voice drop p50 / p90 (ms) | backchannel dips p50 / max (ms) | false barge-ins |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for cond in three_lines() {
        let calls = barge_calls(&cond);
        let count = |a: CallerAct| calls.iter().filter(|c| c.act == a).count();
        let default_db = BargeInConfig::default().duck_db;
        for duck_db in [default_db, 0] {
            let config = SessionConfig {
                barge_in: BargeInConfig { duck_db, ..BargeInConfig::default() },
                ..SessionConfig::default()
            };
            let s = score_barge_in(&config, &calls);
            // The dips of the backchannels (true negatives in the order of the calls).
            let dips: Vec<u64> = calls
                .iter()
                .filter(|c| !c.act.should_barge())
                .zip(&s.dips)
                .filter(|(c, _)| c.act == CallerAct::Backchannel)
                .map(|(_, &d)| d)
                .collect();
            println!(
                "| {} | {} | {} / {} / {} / {} | {:.3} | {:.3} | {} / {} | {} / {} | {} / {} | {} |",
                cond.name,
                if duck_db == 0 { "off".to_owned() } else { duck_db.to_string() },
                count(CallerAct::Interrupt),
                count(CallerAct::Backchannel),
                count(CallerAct::Cough),
                count(CallerAct::Typing),
                s.precision(),
                s.recall(),
                fmt_opt(percentile(&s.reactions, 50.0)),
                fmt_opt(percentile(&s.reactions, 90.0)),
                fmt_opt(percentile(&s.drops, 50.0)),
                fmt_opt(percentile(&s.drops, 90.0)),
                fmt_opt(percentile(&dips, 50.0)),
                fmt_opt(dips.iter().copied().max()),
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

/// Echo reduction (`SessionConfig::echo_reduction`): how much of the echo the host no longer
/// reads, on the echo-only calls of each line and return loss, after each call's first 3 s.
fn echo_reduction_report() {
    let config = SessionConfig {
        agent_rate: 8_000,
        vad: VadConfig { echo_aware: true, ..VadConfig::default() },
        echo_reduction: true,
        ..SessionConfig::default()
    };
    println!("Echo reduction: echo removed from the audio the host reads (2 min of bot speech per row), dB");
    println!();
    println!("| condition | ERL | calls | median | worst |");
    println!("|---|---|---|---|---|");
    for cond in three_lines() {
        for erl in ERLS_DB {
            let calls = echo_only_calls(&cond, erl, 2.0);
            let mut db: Vec<f64> =
                calls.iter().map(|c| echo_reduction_db(c, &config, AGENT_START_MS + 3_000)).collect();
            db.sort_by(f64::total_cmp);
            println!("| {} | {erl} dB | {} | {:.1} | {:.1} |", cond.name, db.len(), db[db.len() / 2], db[0]);
        }
    }
}

/// The bot's voice echoed into the caller's track (`tests/vad_corpus/echo.rs`), per line
/// condition and return loss: echo alone (the caller silent), then real interruptions over it.
fn echo_report(bot_minutes: f64, echo_aware: Option<bool>) {
    let mut config = SessionConfig { agent_rate: 8_000, ..SessionConfig::default() };
    if let Some(on) = echo_aware {
        config.vad.echo_aware = on;
    }
    println!("echo_aware: {}", config.vad.echo_aware);
    // What the gate costs on a line without echo: the plain barge-in set, gate on and off.
    println!();
    println!(
        "Barge-in set, no echo on the line (precision / recall; reaction p50: onset → `BargeIn`, and the bot's voice \
         dropping, ms):"
    );
    println!();
    println!(
        "| condition | not echo-aware | echo-aware | reaction p50, not / echo-aware | voice drop p50, not / echo-aware |"
    );
    println!("|---|---|---|---|---|");
    for cond in three_lines() {
        let calls = barge_calls(&cond);
        let [off, on] = [false, true].map(|echo_aware| {
            let mut c = SessionConfig::default();
            c.vad.echo_aware = echo_aware;
            score_barge_in(&c, &calls)
        });
        let prf = |s: &BargeScore| format!("{:.3} / {:.3}", s.precision(), s.recall());
        let p50 = |v: &[u64]| fmt_opt(percentile(v, 50.0));
        println!(
            "| {} | {} | {} | {} / {} | {} / {} |",
            cond.name,
            prf(&off),
            prf(&on),
            p50(&off.reactions),
            p50(&on.reactions),
            p50(&off.drops),
            p50(&on.drops)
        );
    }
    if std::env::args().any(|a| a == "--plain-only") {
        return;
    }
    let vad_only = SessionConfig {
        barge_in: BargeInConfig { enabled: false, ..BargeInConfig::default() },
        ..config.clone()
    };
    println!();
    println!(
        "Echo only: the bot plays its prompts ({bot_minutes} min per row, delay 20-400 ms, tail 0-100 ms, \
         carrier playout 60-100 ms), the caller says nothing."
    );
    println!();
    println!(
        "| condition | ERL | calls | bot speech sent (min) | false `SpeechStarted` / 10 min | false `BargeIn` / 10 min | barge-in off: false `SpeechStarted` / 10 min |"
    );
    println!("|---|---|---|---|---|---|---|");
    for cond in three_lines() {
        for erl in ERLS_DB {
            let calls = echo_only_calls(&cond, erl, bot_minutes);
            let s = score_echo_only(&config, &calls);
            let v = score_echo_only(&vad_only, &calls);
            println!(
                "| {} | {erl} dB | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
                cond.name,
                s.calls,
                s.bot_ms as f64 / 60_000.0,
                s.false_starts_per_10min(),
                s.false_barge_ins_per_10min(),
                v.false_starts_per_10min(),
            );
        }
    }
    println!();
    println!(
        "Echo that opens mid-call (a caller switching to speakerphone): the same calls, the path silent for the \
         first {MID_CALL_ONSET_MS} ms of each; false starts per 10 min of agent audio sent after it opens."
    );
    println!();
    println!(
        "| condition | ERL | calls | bot speech sent after the onset (min) | false `SpeechStarted` / 10 min | false `BargeIn` / 10 min | starts held back (dropped as the echo) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for cond in three_lines() {
        for erl in ERLS_DB {
            let mut calls = echo_only_calls(&cond, erl, bot_minutes);
            for c in &mut calls {
                c.echo.from_ms = MID_CALL_ONSET_MS;
            }
            let s = score_echo_only_from(&config, &calls, MID_CALL_ONSET_MS);
            println!(
                "| {} | {erl} dB | {} | {:.2} | {:.1} | {:.1} | {} |",
                cond.name,
                s.calls,
                s.bot_ms as f64 / 60_000.0,
                s.false_starts_per_10min(),
                s.false_barge_ins_per_10min(),
                s.held,
            );
        }
    }
    println!();
    println!(
        "Interruptions over the echo (every caller utterance of the barge-in set, spoken over the prompt and its echo):"
    );
    println!();
    println!(
        "| condition | ERL | calls | recall | pre-empted (barge-in on the echo first) | missed | reaction p50 / p90 (onset → `BargeIn`, ms) | onset → `clear` p50 (ms) | starts held back (dropped as the echo) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for cond in three_lines() {
        for erl in ERLS_DB {
            let calls = interruption_calls(&cond, erl);
            let s = score_interruptions(&config, &calls);
            println!(
                "| {} | {erl} dB | {} | {:.3} | {} | {} | {} / {} | {} | {} |",
                cond.name,
                s.calls(),
                s.recall(),
                s.pre_empted.len(),
                s.missed.len(),
                fmt_opt(percentile(&s.reactions, 50.0)),
                fmt_opt(percentile(&s.reactions, 90.0)),
                fmt_opt(percentile(&s.clear_reactions, 50.0)),
                s.held,
            );
        }
    }
}

/// Multi-sentence turns (`tests/vad_corpus/turns.rs`) per line condition and turn signal:
/// response latency at turn ends and the early-cut rate of in-turn pauses.
fn turns_report() {
    if std::env::args().any(|a| a == "--turn-features") {
        turn_features();
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--export") {
        let Some(dir) = args.get(i + 1) else {
            eprintln!("--export needs a folder");
            std::process::exit(2);
        };
        if let Err(e) = export_turns(std::path::Path::new(dir)) {
            eprintln!("export to {dir}: {e}");
            std::process::exit(1);
        }
        return;
    }
    paused_turns_report();
    if std::env::args().any(|a| a == "--paused") {
        return;
    }
    let mut config = SessionConfig { agent_rate: 8_000, ..SessionConfig::default() };
    config.vad.end_of_turn_enabled = true;
    println!();
    println!(
        "Turns of 2-4 sentences with 300-800 ms pauses inside, 2-3 s between turns (3 seeded tracks per condition):"
    );
    println!();
    println!(
        "| condition | signal | turns | in-turn pauses | response latency p50 / p90 (ms) | early-cut rate | pauses < 400 / ≥ 400 ms cut | turn ends missed | signals inside a sentence |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for cond in conditions() {
        for signal in turn_signals() {
            let mut all = TurnScore::default();
            let mut turns = 0;
            for seed in 0..3 {
                let track = turn_track(&cond, seed);
                turns += track.turns.len();
                all.add(&score_turns(&track, &run_turns(&config, &track), signal));
            }
            let rate = |keep: &dyn Fn(u64) -> bool| {
                let v: Vec<bool> = all.pauses.iter().filter(|p| keep(p.0)).map(|p| p.1).collect();
                format!("{:.2}", v.iter().filter(|&&c| c).count() as f64 / v.len().max(1) as f64)
            };
            println!(
                "| {} | `{}` | {turns} | {} | {} / {} | {:.3} | {} / {} | {} | {} |",
                cond.name,
                signal.name,
                all.pauses.len(),
                fmt_opt(all.latency_percentile(50.0)),
                fmt_opt(all.latency_percentile(90.0)),
                all.early_cut_rate(),
                rate(&|l| l < 400),
                rate(&|l| l >= 400),
                all.missed_ends,
                all.inside_speech,
            );
        }
    }
    end_of_turn_report();
}

/// Writes the quiet line's turn tracks, seeds 0-2, for other turn detectors to be scored on the
/// same audio and labels (`tools/smart_turn_compare.py`): the paused-sentence tracks
/// (`paused-quiet-<seed>`) and the split-sentence ones (`split-quiet-<seed>`), each as a WAV (8
/// kHz, 16-bit mono) and a CSV with a row per sentence piece: its turn, start and end (ms), and
/// whether the pause after it is inside a sentence.
fn export_turns(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let cond = conditions().into_iter().find(|c| c.name == "quiet").ok_or("no quiet line")?;
    for seed in 0..3 {
        for (kind, track) in
            [("paused", paused_turn_track(&cond, seed)), ("split", split_turn_track(&cond, seed))]
        {
            let name = format!("{kind}-{}-{seed}", cond.name);
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8_000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut wav = hound::WavWriter::create(dir.join(format!("{name}.wav")), spec)?;
            for &s in &track.pcm {
                wav.write_sample(s)?;
            }
            wav.finalize()?;
            let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join(format!("{name}.csv")))?);
            writeln!(csv, "turn,start_ms,end_ms,inside_after")?;
            for (t, turn) in track.turns.iter().enumerate() {
                for (i, &(start, end)) in turn.sentences.iter().enumerate() {
                    let inside = turn.splits.get(i).copied().unwrap_or(false);
                    writeln!(csv, "{t},{start},{end},{}", u8::from(inside))?;
                }
            }
            csv.flush()?;
            println!("{name}: {} turns, {:.1} min", track.turns.len(), track.pcm.len() as f64 / 480_000.0);
        }
    }
    Ok(())
}

/// For tuning the end-of-turn score: per pause of the paused-turn tracks (every line condition,
/// seeds 0-5), the features the detector scored it on and its label (`end`: turn end, `mid`:
/// inside a sentence, `between`: between sentences), one line each.
fn turn_features() {
    let config = VadConfig { end_of_turn_enabled: true, ..VadConfig::default() };
    println!("cond seed label pause_ms fall decay lengthen slope");
    for cond in conditions() {
        for seed in 0..6 {
            let track = paused_turn_track(&cond, seed);
            let mut det = SpeechDetector::new(&config).unwrap();
            let mut scored = Vec::new();
            let mut last = [0.0f32; 4];
            for (i, frame) in track.pcm.chunks_exact(160).enumerate() {
                det.process_events(frame, i as u64 * 160, |_| {});
                let f = det.last_turn_features().unwrap();
                if f != last {
                    scored.push(((i as u64 + 1) * 20, f));
                    last = f;
                }
            }
            for turn in &track.turns {
                let pauses = turn.pauses();
                for (k, &(_, end)) in turn.sentences.iter().enumerate() {
                    let (label, len) = match pauses.get(k) {
                        Some(p) if turn.splits[k] => ("mid", p.1 - p.0),
                        Some(p) => ("between", p.1 - p.0),
                        None => ("end", 0),
                    };
                    // Scored at the detector's first silent frame: within 200 ms of the end.
                    if let Some((_, f)) = scored.iter().find(|(t, _)| *t + 100 >= end && *t <= end + 200) {
                        println!("{} {seed} {label} {len} {} {} {} {}", cond.name, f[0], f[1], f[2], f[3]);
                    }
                }
            }
        }
    }
}

/// `EndOfTurn` on turns mixing whole sentences and sentences paused mid-phrase
/// (`paused_turn_track`): the early-cut rate per pause type and the response latency, against the
/// threshold (the trade-off curve) and per line condition at the default. Seeds 0-2 and 3-5.
fn paused_turns_report() {
    println!();
    println!(
        "Turns of 1-3 sentences, some paused mid-phrase; 300-800 ms pauses inside and between sentences (early-cut rate per pause type):"
    );
    println!();
    println!(
        "| line | seeds | threshold | min / max silence (ms) | latency p50 / p90 (ms) | turn ends (missed) | cut: inside a sentence (n) | cut: between sentences (n) | `SpeechStopped` cut inside / between |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    // The maximum silence an unfinished-sounding pause waits: longer than the corpus's pauses.
    const MAX_SILENCE_MS: u32 = 1_000;
    let default = VadConfig::default();
    let min = default.end_of_turn_min_silence_ms;
    let mut runs: Vec<(&str, u8, u32, u32)> = vec![("quiet", default.end_of_turn_threshold, min, 0)];
    for threshold in [20, 35, 50, 55, 60, 65, 80, 90] {
        runs.push(("quiet", threshold, min, MAX_SILENCE_MS));
    }
    for min_silence in [100, 200, 300] {
        runs.push(("quiet", 50, min_silence, MAX_SILENCE_MS));
    }
    for cond in conditions() {
        if cond.name != "quiet" {
            for threshold in [35, 50, 60] {
                runs.push((cond.name, threshold, min, MAX_SILENCE_MS));
            }
        }
    }
    for (name, threshold, min_silence, max_silence) in runs {
        let cond = conditions().into_iter().find(|c| c.name == name).unwrap();
        for seeds in [0..3u64, 3..6] {
            let mut config = SessionConfig { agent_rate: 8_000, ..SessionConfig::default() };
            config.vad.end_of_turn_enabled = true;
            config.vad.end_of_turn_threshold = threshold;
            config.vad.end_of_turn_min_silence_ms = min_silence;
            config.vad.end_of_turn_max_silence_ms = max_silence;
            let (mut eot, mut stopped) = (TurnScore::default(), TurnScore::default());
            for seed in seeds.clone() {
                let track = paused_turn_track(&cond, seed);
                let trace = run_turns(&config, &track);
                eot.add(&score_turns(&track, &trace, turn_signals()[1]));
                stopped.add(&score_turns(&track, &trace, turn_signals()[0]));
            }
            let n = |w: bool| eot.within.iter().filter(|&&x| x == w).count();
            println!(
                "| {name} | {seeds:?} | {threshold} | {min_silence} / {max_silence} | {} / {} | {} ({}) | {:.3} ({}) | {:.3} ({}) | {:.2} / {:.2} |",
                fmt_opt(eot.latency_percentile(50.0)),
                fmt_opt(eot.latency_percentile(90.0)),
                eot.latencies.len() + eot.missed_ends,
                eot.missed_ends,
                eot.early_cut_rate_of(true),
                n(true),
                eot.early_cut_rate_of(false),
                n(false),
                stopped.early_cut_rate_of(true),
                stopped.early_cut_rate_of(false),
            );
        }
    }
}

/// `EndOfTurn` against `SpeechStopped` per pause type, on turns whose long sentences are also cut
/// mid-phrase (`split_turn_track`), at a few thresholds and hangovers: seeds 0-2 (the end-of-turn
/// weights were fitted on them) and 3-5 (held out).
fn end_of_turn_report() {
    println!();
    println!(
        "Turns with sentences also cut mid-phrase (quiet and pink 5 dB lines; early-cut rate per pause type):"
    );
    println!();
    println!(
        "| line | seeds | hangover | signal | threshold | latency p50 / p90 (ms) | cut: inside a sentence | cut: between sentences |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let conds: Vec<_> =
        conditions().into_iter().filter(|c| c.name == "quiet" || c.name == "pink-5dB").collect();
    for cond in &conds {
        for seeds in [0..3u64, 3..6] {
            let tracks: Vec<_> = seeds.clone().map(|seed| split_turn_track(cond, seed)).collect();
            for hangover in [400, 900] {
                for threshold in [35, 50, 60] {
                    let mut config = SessionConfig { agent_rate: 8_000, ..SessionConfig::default() };
                    config.vad.hangover_ms = hangover;
                    config.vad.end_of_turn_enabled = true;
                    config.vad.end_of_turn_threshold = threshold;
                    let (mut eot, mut stopped) = (TurnScore::default(), TurnScore::default());
                    for track in &tracks {
                        let trace = run_turns(&config, track);
                        eot.add(&score_turns(track, &trace, turn_signals()[1]));
                        stopped.add(&score_turns(track, &trace, turn_signals()[0]));
                    }
                    let rows: Vec<(&str, String, &TurnScore)> = if threshold == 35 {
                        vec![
                            ("SpeechStopped", "-".into(), &stopped),
                            ("EndOfTurn", threshold.to_string(), &eot),
                        ]
                    } else {
                        vec![("EndOfTurn", threshold.to_string(), &eot)]
                    };
                    for (name, t, s) in rows {
                        println!(
                            "| {} | {seeds:?} | {hangover} | `{name}` | {t} | {} / {} | {:.2} | {:.2} |",
                            cond.name,
                            fmt_opt(s.latency_percentile(50.0)),
                            fmt_opt(s.latency_percentile(90.0)),
                            s.early_cut_rate_of(true),
                            s.early_cut_rate_of(false),
                        );
                    }
                }
            }
        }
    }
}
