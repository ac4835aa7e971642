//! Barge-in test set: the bot is talking (an agent prompt paced out by a session pipeline on a
//! simulated clock) and the caller either interrupts (every corpus utterance: should barge in) or
//! only says a backchannel under 300 ms, coughs, or types (should not, with default settings).
//! Checked against the set's labels. Times are stream times on the simulated clock (labels, not
//! machine timings): the barge-in's reaction, and the time from the caller's onset to the bot's
//! voice dropping at the carrier (ducked 10 dB, see `BargeInConfig::duck_db`, or cleared); vadbench
//! reports them per condition: `cargo run --release -p trunkline-tools --bin vadbench -- --barge-in`.

use crate::vad_corpus::*;
use trunkline::config::{MAX_REJOIN_WITHIN_MS, RECOMMENDED_REJOIN_WITHIN_MS};
use trunkline::{BargeInConfig, Engine, EngineConfig, SessionConfig};

fn report(name: &str, s: &BargeScore) -> String {
    format!(
        "{name}: precision {:.3} recall {:.3}, reaction p50 {:?} p90 {:?}, voice drop p50 {:?} p90 {:?}, \
         dips on non-interruptions (ms) {:?}, false barge-ins {:?}, missed {:?}",
        s.precision(),
        s.recall(),
        percentile(&s.reactions, 50.0),
        percentile(&s.reactions, 90.0),
        percentile(&s.drops, 50.0),
        percentile(&s.drops, 90.0),
        s.dips,
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
    // Ducking drops the bot's voice at the carrier well before the clear (measured p50 204 ms,
    // p90 300 ms; the clear alone: 356 / 577 ms).
    assert!(percentile(&s.drops, 50.0).is_some_and(|p| p <= 215), "{r}");
    assert!(percentile(&s.drops, 90.0).is_some_and(|p| p <= 320), "{r}");
}

#[test]
fn without_ducking_the_voice_drops_only_with_the_clear() {
    let calls = barge_calls(&condition("quiet"));
    let config = SessionConfig {
        barge_in: BargeInConfig { duck_db: 0, ..BargeInConfig::default() },
        ..Default::default()
    };
    let s = score_barge_in(&config, &calls);
    let r = report("quiet, no ducking", &s);
    println!("{r}");
    assert_eq!((s.false_pos, s.false_neg), (0, 0), "{r}");
    assert_eq!(s.drops, s.reactions, "{r}");
    assert!(s.dips.iter().all(|&d| d == 0), "{r}");
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
    assert!(s.recall() >= 0.8, "{r}");
    // Measured p50 236 ms (the clear alone: 551 ms).
    assert!(percentile(&s.drops, 50.0).is_some_and(|p| p <= 250), "{r}");
}

#[test]
fn pink_noise_at_5_db_precision_recall_and_voice_drop() {
    let calls = barge_calls(&condition("pink-5dB"));
    let s = score_barge_in(&SessionConfig::default(), &calls);
    let r = report("pink-5dB", &s);
    println!("{r}");
    assert_eq!(s.false_pos, 0, "{r}");
    // Measured 0.875 (42 of 48): the six missed interruptions keep 120-280 ms of voiced speech
    // at this SNR, as much as the backchannels (up to 200 ms), so the voiced time cannot tell
    // them apart; ducking hides the bot meanwhile but does not decide.
    assert!(s.recall() >= 0.87, "{r}");
    // Measured p50 235 ms (the clear alone: 463 ms).
    assert!(percentile(&s.drops, 50.0).is_some_and(|p| p <= 245), "{r}");
}

#[test]
fn backchannels_dip_the_bot_briefly() {
    let calls: Vec<_> =
        barge_calls(&condition("quiet")).into_iter().filter(|c| !c.act.should_barge()).collect();
    let s = score_barge_in(&SessionConfig::default(), &calls);
    let r = report("quiet, non-interruptions", &s);
    println!("{r}");
    // Every backchannel ducks (it is voiced speech over the bot), for about its length plus the
    // restore delay (measured 130-370 ms); coughs and typing, unvoiced, hardly ever do.
    let backchannels = calls.iter().filter(|c| c.act == CallerAct::Backchannel).count();
    let dips: Vec<u64> = s.dips.iter().copied().filter(|&d| d > 0).collect();
    assert!(dips.len() >= backchannels && dips.len() <= backchannels + 2, "{r}");
    assert!(dips.iter().all(|&d| d <= 400), "{r}");
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

/// The backchannel calls of `cond` with a second backchannel `gap_ms` after the first.
fn double_backchannels(cond: &str, gap_ms: u64) -> Vec<BargeCall> {
    let backs = clips_of(&[ClipKind::Backchannel]);
    let calls = barge_calls(&condition(cond)).into_iter().filter(|c| c.act == CallerAct::Backchannel);
    calls
        .enumerate()
        .map(|(i, mut call)| {
            let second = backs[(i + 7) % backs.len()];
            let at = ((call.act_ms.1 + gap_ms) * PER_MS) as usize;
            for (x, &v) in call.caller[at..].iter_mut().zip(&second.pcm) {
                *x = x.saturating_add((v * 26_000.0) as i16);
            }
            call
        })
        .collect()
}

/// Barge-in with rejoining (`BargeInConfig::rejoin_within_ms`) at `rejoin_within_ms`.
fn rejoining(rejoin_within_ms: u32) -> SessionConfig {
    SessionConfig {
        barge_in: BargeInConfig { rejoin_within_ms, ..BargeInConfig::default() },
        ..Default::default()
    }
}

#[test]
fn rejoining_catches_interruptions_a_noisy_line_splits() {
    for cond in conditions() {
        let calls = barge_calls(&cond);
        // Rejoining is on by default.
        assert_eq!(BargeInConfig::default().rejoin_within_ms, RECOMMENDED_REJOIN_WITHIN_MS);
        let s = score_barge_in(&SessionConfig::default(), &calls);
        let r = report(&format!("{}, rejoining", cond.name), &s);
        println!("{r}");
        assert_eq!(s.false_pos, 0, "{r}");
        if matches!(cond.name, "pink-5dB" | "noisy-mix") {
            // Measured 0.958 (46 of 48) on both. The words of the two-word recordings ("Rear ...
            // left") each keep 100-140 ms of voicing at 5 dB SNR and come apart (640-740 ms
            // between voiced frames), but count as one utterance; the two "Fine." (120-260 ms of
            // voicing, as much as the backchannels) are missed.
            assert!(s.recall() >= 0.95, "{r}");
        }
    }
}

#[test]
fn a_session_refuses_rejoining_longer_than_its_maximum() {
    let engine = Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap();
    let with = |ms| SessionConfig {
        barge_in: BargeInConfig { rejoin_within_ms: ms, ..BargeInConfig::default() },
        ..SessionConfig::default()
    };
    assert!(engine.open_session(&with(MAX_REJOIN_WITHIN_MS)).is_ok());
    let refused = engine.open_session(&with(MAX_REJOIN_WITHIN_MS + 1)).err().expect("refused");
    assert!(refused.to_string().contains("rejoin_within_ms"), "{refused}");
}

#[test]
fn backchannels_600_ms_apart_stay_apart_on_a_quiet_line_or_with_rejoining_off() {
    // "Mm-hm ... yeah" 600 ms apart. On a quiet line the first stood clear of the noise and
    // stopped short: a short speech, never joined (without that check, 19 of 20 calls joined).
    // With rejoining off, two short speeches never add up on any line. (On the noisy line,
    // rejoining joins them: the cost of catching the split interruptions, see docs/speech.md.)
    for (cond, config) in
        [("quiet", SessionConfig::default()), ("quiet", rejoining(0)), ("pink-5dB", rejoining(0))]
    {
        let calls = double_backchannels(cond, 600);
        let s = score_barge_in(&config, &calls);
        let r = report(
            &format!("{cond}, rejoin {} ms, two backchannels 600 ms apart", config.barge_in.rejoin_within_ms),
            &s,
        );
        println!("{r}");
        assert_eq!(s.false_pos, 0, "{r}");
    }
}

#[test]
fn backchannels_a_second_apart_never_join_into_an_interruption() {
    // Speech that stopped short is joined only by speech voiced again within `rejoin_within_ms`
    // (800 ms by default): "mm-hm ... yeah" a second apart stays two backchannels, noisy or not.
    for cond in ["quiet", "pink-5dB"] {
        let calls = double_backchannels(cond, 1_000);
        let s = score_barge_in(&SessionConfig::default(), &calls);
        let r = report(&format!("{cond}, two backchannels 1 s apart"), &s);
        println!("{r}");
        assert_eq!(s.false_pos, 0, "{r}");
    }
}

/// A bot that answers while the caller's turn is still confirmed (on an early `EndOfTurn`, or a
/// partial transcript): the caller talking on over that answer interrupts it. Every caller
/// utterance of the set heard as one speech going on for over a second after the answer starts,
/// on a quiet line; the answer starts 700 ms after the speech's onset, when it is confirmed and
/// taken as a turn (voiced 300 ms with the agent quiet).
#[test]
fn an_answer_started_while_the_callers_turn_is_confirmed_is_interrupted_when_they_talk_on() {
    use crate::vad_corpus::call::{AfterBargeIn, CallSpec, Prompt, run_call};
    use trunkline::Event;
    let agent: &'static [f32] = &clips_of(&[ClipKind::Agent])[0].pcm;
    let (mut answered, mut interrupted) = (0, 0);
    for clip in clips_of(&[ClipKind::Utterance, ClipKind::Real]) {
        let mut x = vec![0.0f64; 1_000 * 8];
        x.extend(clip.pcm.iter().map(|&v| f64::from(v)));
        x.resize(x.len().div_ceil(160) * 160 + 1_500 * 8, 0.0);
        let caller = to_telephone(&x);
        // Where the engine hears the speech, without an answer.
        let heard = run_call(&CallSpec::listening(&caller));
        let onset = heard.events.iter().find_map(|(_, e)| match e {
            Event::SpeechStarted { stream_ms } => Some(*stream_ms),
            _ => None,
        });
        let end = heard.events.iter().find_map(|(_, e)| match e {
            Event::SpeechStopped { stream_ms } => Some(*stream_ms),
            _ => None,
        });
        let (Some(onset), Some(end)) = (onset, end) else { continue };
        let answer_at = (onset + 700).div_ceil(20) * 20;
        if end < answer_at + 1_000 {
            continue; // not talking on for a second over the answer
        }
        let t = run_call(&CallSpec {
            prompts: vec![Prompt { at_ms: answer_at, pcm: agent }],
            after_barge_in: AfterBargeIn::Stop,
            ..CallSpec::listening(&caller)
        });
        answered += 1;
        let barge_in = t.events.iter().find_map(|(_, e)| match e {
            Event::BargeIn { stream_ms, .. } => Some(*stream_ms),
            _ => None,
        });
        if let Some(at) = barge_in {
            // Reported from the first voiced frame over the answer, not the turn's onset.
            assert!(
                at + 20 >= answer_at,
                "{}: barge-in onset {at} before the answer at {answer_at}",
                clip.name
            );
            interrupted += 1;
        } else {
            println!("{}: not interrupted", clip.name);
        }
    }
    println!("{interrupted} of {answered} answers interrupted");
    assert!(answered >= 10, "{answered} utterances long enough");
    assert!(interrupted * 10 >= answered * 9, "{interrupted} of {answered} answers interrupted");
}
