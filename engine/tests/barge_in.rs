//! Barge-in test set: the bot is talking (an agent prompt paced out by a session pipeline on a
//! simulated clock) and the caller either interrupts (every corpus utterance: should barge in) or
//! only says a backchannel under 300 ms, coughs, or types (should not, with default settings).
//! Checked against the set's labels; reaction times are printed, not asserted (vadbench reports
//! them: `cargo run --release -p trunkline-tools --bin vadbench -- --barge-in`).

#[path = "vad_corpus/mod.rs"]
mod vad_corpus;

use trunkline::{BargeInConfig, SessionConfig};
use vad_corpus::*;

fn report(name: &str, s: &BargeScore) -> String {
    format!(
        "{name}: precision {:.3} recall {:.3}, reaction p50 {:?} p90 {:?}, false barge-ins {:?}, missed {:?}",
        s.precision(),
        s.recall(),
        percentile(&s.reactions, 50.0),
        percentile(&s.reactions, 90.0),
        s.false_by_act,
        s.missed
    )
}

fn condition(name: &str) -> Condition {
    conditions().into_iter().find(|c| c.name == name).unwrap()
}

#[test]
fn quiet_line_every_interruption_barges_in_nothing_else_does() {
    let calls = barge_calls(&condition("quiet"));
    let s = score_barge_in(&SessionConfig::default(), &calls);
    let r = report("quiet", &s);
    println!("{r}");
    assert_eq!(s.false_pos, 0, "{r}");
    assert_eq!(s.false_neg, 0, "{r}");
}

#[test]
fn noisy_line_backchannels_coughs_and_typing_never_barge_in() {
    let calls = barge_calls(&condition("noisy-mix"));
    let s = score_barge_in(&SessionConfig::default(), &calls);
    let r = report("noisy-mix", &s);
    println!("{r}");
    assert_eq!(s.false_pos, 0, "{r}");
    // At 5 dB SNR the shortest interruptions ("Fine.", two-word recordings with a pause) keep
    // under 300 ms of voiced speech and are missed; everything else barges in.
    assert!(s.recall() >= 0.75, "{r}");
}

#[test]
fn backchannels_are_all_shorter_than_300_ms() {
    for c in clips_of(&[ClipKind::Backchannel]) {
        assert!(c.ms() < 300, "{} is {} ms", c.name, c.ms());
    }
}

#[test]
fn a_lower_minimum_lets_backchannels_barge_in() {
    // Configurable: with 120 ms, "mm-hm" and "yeah" interrupt the bot too.
    let calls: Vec<_> =
        barge_calls(&condition("quiet")).into_iter().filter(|c| c.act == CallerAct::Backchannel).collect();
    let config = SessionConfig {
        barge_in: BargeInConfig { min_speech_ms: 120, ..BargeInConfig::default() },
        ..Default::default()
    };
    let s = score_barge_in(&config, &calls);
    println!("{}", report("quiet, min 120 ms, backchannels only", &s));
    assert!(s.false_pos as usize * 2 >= calls.len(), "most backchannels barge in: {s:?}");
}
