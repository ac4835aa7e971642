//! Ducking (`BargeInConfig::duck_db`) on the barge-in test set: the bot's voice drops at the
//! carrier within the pacer's lead of the first voiced frame of possible caller speech; a
//! backchannel brings it back and never clears; a confirmed interruption clears exactly as it
//! does without ducking. The carrier is the barge-in set's (`crate::vad_corpus::BargeCarrier`): it
//! compares what it plays with what the host played, 10 ms at a time.

use crate::vad_corpus::*;
use trunkline::event::RawEvent;
use trunkline::pipeline::SessionPipeline;
use trunkline::protocol::{MessageKind, TwilioDialect};
use trunkline::vad::{SpeechDetector, VadConfig};
use trunkline::{BargeInConfig, SessionConfig};

fn condition(name: &str) -> Condition {
    conditions().into_iter().find(|c| c.name == name).unwrap()
}

fn with_duck(duck_db: u8) -> SessionConfig {
    SessionConfig { barge_in: BargeInConfig { duck_db, ..BargeInConfig::default() }, ..Default::default() }
}

/// Stream time (ms, at the end of the frame that holds it) when the speech detector, run on its
/// own over the caller's track, first has confirmed speech with a voiced frame in it at or after
/// the act began: the earliest the session can know a possible interruption is there.
fn first_voiced_ms(call: &BargeCall) -> Option<u64> {
    let mut det = SpeechDetector::new(&VadConfig::default()).unwrap();
    for (i, frame) in call.caller.chunks_exact(160).enumerate() {
        det.process(frame, (i * 160) as u64, |_| {});
        let end = i as u64 * 20 + 20;
        if end > call.act_ms.0 && det.onset_ms().is_some() && det.voiced_ms().unwrap_or(0) > 0 {
            return Some(end);
        }
    }
    None
}

#[test]
fn the_voice_drops_at_the_carrier_within_the_lead_and_a_frame_of_the_first_voiced_frame() {
    let config = with_duck(18);
    let (lead_ms, frame_ms) = (u64::from(config.lead_ms), 20);
    let calls = barge_calls(&condition("quiet"));
    let mut checked = 0;
    for call in calls.iter().filter(|c| matches!(c.act, CallerAct::Interrupt | CallerAct::Backchannel)) {
        let out = run_barge_call(&config, call);
        let Some(voiced) = first_voiced_ms(call) else { continue };
        // Nothing ducked before it; the first of the host's audio (a pause in it says nothing)
        // that plays from the lead and a frame after it is at least 10 dB down.
        let before = out.levels.iter().find(|&&(t, db)| t + 10 <= voiced && db <= -30);
        assert_eq!(before, None, "{}: ducked before the first voiced frame ({voiced} ms)", call.name);
        let due = voiced + lead_ms + frame_ms;
        // A duck lasts at least 160 ms of caller audio (the restore delay): past that, a
        // backchannel may have been let go already.
        let Some(&(t, db)) = out.levels.iter().find(|&&(t, _)| t >= due).filter(|l| l.0 < due + 140) else {
            continue;
        };
        assert!(
            db <= -100,
            "{}: first voiced frame at {voiced} ms; at {t} ms the carrier played {:.1} dB; levels {:?}",
            call.name,
            f64::from(db) / 10.0,
            &out.levels[..out.levels.len().min(40)]
        );
        // Decided as the frame was delivered.
        assert_eq!(out.duck_decided_ms, Some(voiced), "{}", call.name);
        checked += 1;
    }
    assert!(checked >= 50, "{checked} calls checked");
}

#[test]
fn a_backchannel_restores_the_level_and_never_clears() {
    let config = with_duck(18);
    for cond in ["quiet", "noisy-mix"] {
        let calls = barge_calls(&condition(cond));
        let mut ducked = 0;
        for call in calls.iter().filter(|c| !c.act.should_barge()) {
            let out = run_barge_call(&config, call);
            assert_eq!(out.fired_at_ms, None, "{cond} {}: {out:?}", call.name);
            assert_eq!(out.clears, 0, "{cond} {}: {out:?}", call.name);
            assert_eq!(out.ducks, out.duck_restores, "{cond} {}: every duck restored: {out:?}", call.name);
            assert!(
                out.level_restored,
                "{cond} {}: the carrier plays at full level again: {out:?}",
                call.name
            );
            if out.ducks > 0 {
                ducked += 1;
                // Short: the act and the restore delay, within the lead.
                assert!(out.ducked_ms <= 500, "{cond} {}: ducked for {} ms", call.name, out.ducked_ms);
            }
        }
        // Most backchannels are voiced: they do duck.
        assert!(ducked >= 15, "{cond}: {ducked} acts ducked");
    }
}

#[test]
fn a_confirmed_interruption_clears_exactly_as_without_ducking() {
    for cond in ["quiet", "noisy-mix"] {
        let calls = barge_calls(&condition(cond));
        for call in calls.iter().filter(|c| c.act.should_barge()) {
            let plain = run_barge_call(&with_duck(0), call);
            let ducked = run_barge_call(&with_duck(18), call);
            assert_eq!(plain.ducks, 0);
            // Same decision at the same time, the same position heard and segment cut, and the
            // voice no later than the clear.
            assert_eq!(ducked.fired_at_ms, plain.fired_at_ms, "{cond} {}", call.name);
            assert_eq!(ducked.barge_in, plain.barge_in, "{cond} {}", call.name);
            assert_eq!(ducked.clears, plain.clears, "{cond} {}", call.name);
            if let (Some(d), Some(p)) = (ducked.dropped_at_ms, plain.dropped_at_ms) {
                assert!(d <= p, "{cond} {}: {d} ms with ducking, {p} without", call.name);
            }
        }
    }
}

/// One call through a pipeline with host marks every 200 ms of agent audio; returns every event
/// and the session's counters.
fn call_with_marks(
    config: &SessionConfig,
    call: &BargeCall,
) -> (Vec<RawEvent>, u32, trunkline::SessionStats) {
    let mut p = SessionPipeline::new(config, Box::new(TwilioDialect::new())).unwrap();
    let start = r#"{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"customParameters":{},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}"#;
    p.handle_message(start.as_bytes(), MessageKind::Text, 0, 0, &mut |_| {});
    let agent: Vec<i16> = call.agent.iter().map(|&v| (v * 32_767.0) as i16).collect();
    let mut events = Vec::new();
    let (mut played, mut marks) = (0, 0u32);
    let mut sent_marks: Vec<String> = Vec::new();
    let mut barged = false;
    for (i, frame) in call.caller.chunks_exact(160).enumerate() {
        let now_us = i as u64 * 20_000;
        if now_us >= AGENT_START_MS * 1_000 && !barged {
            while played < agent.len() && p.play_fits(1_600, 8_000) {
                let n = (agent.len() - played).min(1_600);
                assert!(p.play(&agent[played..played + n], 8_000).unwrap());
                played += n;
                marks += 1;
                p.mark(marks, format!("m{marks}").as_bytes());
            }
        }
        // The carrier echoes each mark as soon as it is sent (its audio played at once).
        for name in sent_marks.drain(..) {
            let echo = format!(
                r#"{{"event":"mark","sequenceNumber":"{}","streamSid":"MZ1","mark":{{"name":"{name}"}}}}"#,
                i + 100_000
            );
            p.handle_message(echo.as_bytes(), MessageKind::Text, now_us, now_us, &mut |_| {});
        }
        let ulaw: Vec<u8> = frame.iter().map(|&s| trunkline::codec::linear_to_ulaw(s)).collect();
        let msg = format!(
            r#"{{"event":"media","sequenceNumber":"{}","streamSid":"MZ1","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}}}}"#,
            i + 2,
            i + 1,
            i * 20,
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &ulaw)
        );
        p.handle_message(msg.as_bytes(), MessageKind::Text, now_us, now_us, &mut |_| {});
        p.handle_timeout(now_us, true, &mut |_| {});
        while let Some((_, bytes)) = p.poll_transmit(now_us) {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            if v["event"] == "mark" {
                let name = v["mark"]["name"].as_str().unwrap();
                if !name.starts_with("trunkline-sync") {
                    sent_marks.push(name.to_owned());
                }
            }
        }
        while let Some(e) = p.poll_event() {
            barged |= matches!(e, RawEvent::BargeIn { .. });
            events.push(e);
        }
    }
    (events, marks, p.counters())
}

#[test]
fn marks_are_retired_and_positions_reported_as_without_ducking() {
    let calls = barge_calls(&condition("quiet"));
    let interrupts: Vec<&BargeCall> = calls.iter().filter(|c| c.act.should_barge()).take(8).collect();
    for call in interrupts {
        let (plain, placed, plain_stats) = call_with_marks(&with_duck(0), call);
        let (ducked, placed_ducked, stats) = call_with_marks(&with_duck(18), call);
        assert_eq!(placed, placed_ducked);
        assert!(stats.ducks >= 1, "{}: {stats:?}", call.name);
        assert_eq!(plain_stats.ducks, 0);
        // Every event the same, in the same order: the barge-in, its played position and
        // segment, each mark played or cleared.
        assert_eq!(ducked, plain, "{}", call.name);
        let retired = ducked
            .iter()
            .filter(|e| matches!(e, RawEvent::MarkPlayed { .. } | RawEvent::MarkCleared { .. }))
            .count();
        assert_eq!(retired as u32, placed, "{}: every mark played or cleared", call.name);
        assert!(ducked.iter().any(|e| matches!(e, RawEvent::BargeIn { .. })), "{}", call.name);
    }
}

/// The restore delay (`barge_in::RESTORE_AFTER_MS`), the gain ramp (`ducking::RAMP_MS`) and the
/// pacer's frame, ms: the stages are not public to these tests.
const RESTORE_AFTER_MS: u64 = 160;
const RAMP_MS: u64 = 10;
const FRAME_MS: u64 = 20;

/// The bot's voice in the tests below: a 400 Hz tone, 8 periods to a 20 ms frame (every frame
/// at full level has the same RMS), sample `n`.
fn tone(n: u64) -> i16 {
    (8_000.0 * (n as f64 * std::f64::consts::TAU / 20.0).sin()) as i16
}

/// A call of the committed caller speech (8 s) with a session ducking 18 dB. Its host plays the
/// tone in pieces of `piece` samples whenever `plays(engine µs, ducked yet)` and less than
/// `queued_us` is queued. The caller's media stops the moment the session ducks (one-way media
/// loss): the speech detector still believes the caller is speaking, nothing confirms an
/// interruption, and the restore comes on the engine clock.
struct ToneCall {
    /// Engine time of the step that ducked.
    ducked_at_us: Option<u64>,
    /// Each piece played: (engine µs, the tone's sample it starts at).
    played: Vec<(u64, u64)>,
    /// Each media frame sent: (engine µs, its µ-law payload).
    sent: Vec<(u64, Vec<u8>)>,
    stats: trunkline::SessionStats,
}

fn tone_call(piece: u64, queued_us: u64, plays: impl Fn(u64, bool) -> bool) -> ToneCall {
    use crate::common::{media, speech, start};
    let (caller, _) = speech();
    let mut p = SessionPipeline::new(&with_duck(18), Box::new(TwilioDialect::new())).unwrap();
    p.handle_message(start().as_bytes(), MessageKind::Text, 0, 0, &mut |_| {});
    let mut call = ToneCall { ducked_at_us: None, played: vec![], sent: vec![], stats: Default::default() };
    let mut next = 0u64;
    for (i, frame) in caller.chunks_exact(160).enumerate().take(400) {
        let now_us = i as u64 * FRAME_MS * 1_000;
        if plays(now_us, call.ducked_at_us.is_some()) && p.queued_outbound_us() < queued_us {
            let chunk: Vec<i16> = (next..next + piece).map(tone).collect();
            assert!(p.play(&chunk, 8_000).unwrap());
            call.played.push((now_us, next));
            next += piece;
        }
        if call.ducked_at_us.is_none() {
            p.handle_message(
                media(i as u64 + 2, i as u64 + 1, i as u64 * 20, frame).as_bytes(),
                MessageKind::Text,
                now_us,
                now_us,
                &mut |_| {},
            );
            if p.counters().ducks > 0 {
                // The voiced frame that ducked is the last caller audio to arrive.
                call.ducked_at_us = Some(now_us);
            }
        }
        p.handle_timeout(now_us, true, &mut |_| {});
        while let Some((_, bytes)) = p.poll_transmit(now_us) {
            let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            if v["event"] == "media" {
                let payload = v["media"]["payload"].as_str().unwrap();
                let codes =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, payload).unwrap();
                call.sent.push((now_us, codes));
            }
        }
        while p.poll_event().is_some() {}
    }
    call.stats = p.counters();
    call
}

#[test]
fn caller_media_stopping_after_a_duck_restores_on_the_engine_clock_and_leaves_the_next_utterance_alone() {
    use trunkline::codec::{linear_to_ulaw, ulaw_to_linear};
    // The host keeps about 400 ms queued until 2 s, nothing from 2 s to 6 s (its queue runs
    // dry: the agent is silent), then its next utterance from 6 s.
    let call = tone_call(800, 400_000, |now_us, _| !(2_000_000..6_000_000).contains(&now_us));
    let full: Vec<i16> = (0..160).map(|n| ulaw_to_linear(linear_to_ulaw(tone(n)))).collect();
    let rms = |x: &[i16]| (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
    let full_rms = rms(&full);
    // (engine time sent µs, level against the host's tone dB) of every frame sent.
    let levels: Vec<(u64, f64)> = call
        .sent
        .iter()
        .map(|(t, codes)| {
            let pcm: Vec<i16> = codes.iter().map(|&c| ulaw_to_linear(c)).collect();
            (*t, 20.0 * (rms(&pcm).max(1.0) / full_rms).log10())
        })
        .collect();
    let stalled_at_us = call.ducked_at_us.expect("the caller's speech ducked the bot");
    let stats = call.stats;
    let shown: Vec<(u64, i32)> = levels.iter().map(|&(t, db)| (t / 1_000, db.round() as i32)).collect();
    // Ducked, and held down for the restore delay as on a line whose media goes on: every frame
    // cut from a frame after the decision until the delay has passed.
    let delay_ms = stalled_at_us / 1_000 + 1..stalled_at_us / 1_000 + RESTORE_AFTER_MS;
    let held: Vec<&(u64, i32)> = shown.iter().filter(|&&(t, db)| delay_ms.contains(&t) && db > -10).collect();
    assert!(held.is_empty(), "not ducked for the restore delay: {held:?}; {stats:?} {shown:?}");
    // Restored once no voiced caller frame has come for the restore delay of engine time: from
    // there the decision is at most a frame late and the ramp is done within the frame it starts.
    let restored_by_us = stalled_at_us + (RESTORE_AFTER_MS + RAMP_MS + FRAME_MS) * 1_000;
    let late: Vec<&(u64, f64)> =
        levels.iter().filter(|&&(t, db)| t >= restored_by_us && db <= -1.0).collect();
    assert!(
        late.is_empty(),
        "caller media stopped at {} ms: frames still ducked after {} ms: {late:?}; {stats:?}",
        stalled_at_us / 1_000,
        restored_by_us / 1_000
    );
    // The bot's next utterance plays at full level, every frame of it.
    let next: Vec<&(u64, f64)> = levels.iter().filter(|&&(t, _)| t >= 6_000_000).collect();
    assert!(next.len() >= 50, "{} frames of the next utterance sent", next.len());
    assert!(next.iter().all(|&&(_, db)| db > -1.0), "the next utterance ducked: {stats:?} {shown:?}");
    assert_eq!((stats.ducks, stats.duck_restores), (1, 1), "{stats:?}");
}

#[test]
fn a_reply_that_ends_while_ducked_leaves_the_next_one_at_full_level_from_its_first_sample() {
    use trunkline::codec::linear_to_ulaw;
    // The host keeps only 40 ms queued and stops playing the moment the session ducks: its reply
    // ends at the carrier while ducked, and the restore comes with no frame of it left to ramp
    // up in. Its next reply, from 6 s, must not fade in from the ducked level.
    let call = tone_call(160, 40_000, |now_us, ducked| now_us >= 6_000_000 || !ducked);
    let stats = call.stats;
    let ducked_at_us = call.ducked_at_us.expect("the caller's speech ducked the bot");
    assert!(ducked_at_us < 5_000_000, "ducked at {ducked_at_us} µs");
    assert_eq!((stats.ducks, stats.duck_restores, stats.barge_ins), (1, 1, 0), "{stats:?}");
    // The next reply's first frame is the host's audio untouched (at full level the ducker
    // leaves the bytes alone).
    let &(_, from) = call.played.iter().find(|&&(t, _)| t >= 6_000_000).expect("the next reply was played");
    let expected: Vec<u8> = (from..from + 160).map(|n| linear_to_ulaw(tone(n))).collect();
    let next: Vec<&Vec<u8>> = call.sent.iter().filter(|(t, _)| *t >= 6_000_000).map(|(_, c)| c).collect();
    assert!(next.len() >= 50, "{} frames of the next reply sent", next.len());
    assert_eq!(next[0], &expected, "the next reply's first frame was not at full level: {stats:?}");
}
