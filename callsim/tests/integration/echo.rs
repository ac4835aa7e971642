//! The bot's own voice echoed back, end to end: callsim calls the offload server as a Twilio
//! caller on a line that returns what the caller heard of the bot 10 dB down and 120 ms late
//! (with a 30 ms tail), and counts the `clear`s nothing asked for. The bot behind the server
//! answers the caller's question with seven seconds of speech and stops on `BargeIn`.
//!
//! The same call against a default session and an echo-aware one (`vad.echo_aware`): the default
//! engine barges in on its own echo; the echo-aware one plays its answer through (on callsim's
//! default line, noise at -70 dBFS, and on a digitally silent one), and still yields to the
//! caller talking over the answer and its echo.

use crate::common::{reference_ulaw_decode, speech};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use trunkline::{Engine, EngineConfig, Event, SessionConfig};
use trunkline_callsim::{
    self as callsim, CallOptions, CallResult, CallerAudio, EchoPath, Script, SpeechSegment,
};
use trunkline_server::{OffloadConfig, OffloadServer};

/// The bot's answer: the speech fixture from 3.6 s on (a human voice, 7 s).
fn answer() -> Vec<i16> {
    let (audio, _) = speech();
    audio[3_600 * 8..].iter().map(|&c| reference_ulaw_decode(c)).collect()
}

/// What the bot saw of one call.
#[derive(Default)]
struct BotCounts {
    barge_ins: AtomicU64,
    speech_starts_while_answering: AtomicU64,
}

/// A bot behind the server: the answer at each end of the caller's speech, silent on barge-in.
fn bot(
    engine: Arc<Engine>,
    server: Arc<OffloadServer>,
    stop: Arc<AtomicBool>,
    counts: Arc<BotCounts>,
) -> std::thread::JoinHandle<()> {
    let answer = answer();
    std::thread::spawn(move || {
        let mut calls = vec![];
        while !stop.load(Ordering::Acquire) {
            engine.wait(Some(Duration::from_millis(2)));
            while let Some(call) = server.accept() {
                calls.push((call.session, answer.len(), false));
            }
            for (session, offset, answering) in &mut calls {
                while let Some(ev) = session.poll_event() {
                    match ev {
                        Event::SpeechStarted { .. } if *answering => {
                            counts.speech_starts_while_answering.fetch_add(1, Ordering::Relaxed);
                        }
                        Event::SpeechStopped { .. } if !*answering => {
                            (*offset, *answering) = (0, true);
                        }
                        Event::BargeIn { .. } => {
                            counts.barge_ins.fetch_add(1, Ordering::Relaxed);
                            *offset = answer.len();
                        }
                        _ => {}
                    }
                }
                while *offset < answer.len() {
                    match session.play(&answer[*offset..], 8_000) {
                        Ok(n) if n > 0 => *offset += n,
                        _ => break,
                    }
                }
                let mut pcm = [0i16; 1024];
                while session.read_audio(&mut pcm) > 0 {}
            }
        }
    })
}

/// callsim's default line: noise at -70 dBFS under the echo.
const NOISY_LINE: Option<f64> = Some(-70.0);
/// A digitally silent line: nothing but the echo between the caller's words.
const SILENT_LINE: Option<f64> = None;

/// One callsim call with `script` over the echoing line (its noise: `line_noise_dbfs`), against
/// an offload server whose sessions are echo-aware or not; the call's result and what the bot saw.
fn echoed_call(
    echo_aware: bool,
    line_noise_dbfs: Option<f64>,
    script: &Script,
) -> (CallResult, Arc<BotCounts>) {
    let engine = Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).unwrap());
    let mut session = SessionConfig { agent_rate: 8_000, play_rate: 8_000, ..Default::default() };
    session.vad.echo_aware = echo_aware;
    let server =
        Arc::new(OffloadServer::start(&engine, OffloadConfig { session, ..Default::default() }).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(BotCounts::default());
    let thread = bot(engine.clone(), server.clone(), stop.clone(), counts.clone());
    let mut options = CallOptions::new(format!("ws://{}/", server.local_addr()));
    options.echo = Some(EchoPath { erl_db: 10.0, delay_ms: 120, tail_ms: 30 });
    options.line_noise_dbfs = line_noise_dbfs;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let r = rt.block_on(callsim::run_call(0, &options, script));
    stop.store(true, Ordering::Release);
    engine.wake();
    thread.join().unwrap();
    (r, counts)
}

/// The caller's question (the fixture's first 3.6 s, labelled speech).
fn caller() -> CallerAudio {
    let (audio, labels) = speech();
    CallerAudio::from_ulaw(audio)
        .with_speech(labels.into_iter().map(|(s, e)| SpeechSegment { start_ms: s, end_ms: e }))
}

/// The caller asks, then listens to the whole answer saying nothing: whatever the bot hears
/// is its own echo.
fn listening() -> Script {
    Script::new()
        .say(caller().slice_ms(0, 3_600))
        .wait_for_reply(Duration::from_secs(3))
        .silence(Duration::from_secs(8))
}

#[test]
fn a_default_session_barges_in_on_its_own_echo() {
    let (r, counts) = echoed_call(false, NOISY_LINE, &listening());
    assert!(r.ok(), "{:?}\n{}", r.error, callsim::format_timeline(&r, None));
    let m = &r.metrics;
    println!(
        "default: {} clears, {} unprompted, {:.0} ms of the answer played, bot barge-ins {}",
        m.clears,
        m.clears_unprompted,
        m.bot_audio_ms,
        counts.barge_ins.load(Ordering::Relaxed)
    );
    assert!(m.clears_unprompted >= 1, "the echo should have cut the answer: {m:?}");
    assert!(m.bot_audio_ms < 6_000.0, "the answer was cut short: {:.0} ms played", m.bot_audio_ms);
}

/// The answer plays through, on a line with noise or digitally silent, where the echo is all
/// there is to hear.
fn plays_its_answer_through_the_echo(line_noise_dbfs: Option<f64>) {
    let (r, counts) = echoed_call(true, line_noise_dbfs, &listening());
    assert!(r.ok(), "{:?}\n{}", r.error, callsim::format_timeline(&r, None));
    let m = &r.metrics;
    let starts = counts.speech_starts_while_answering.load(Ordering::Relaxed);
    println!(
        "echo-aware, line noise {line_noise_dbfs:?} dBFS: {} clears, {:.0} ms of the answer played, \
         speech starts while answering {starts}",
        m.clears, m.bot_audio_ms
    );
    assert_eq!(
        m.clears,
        0,
        "no clear: the caller never spoke over the answer\n{}",
        callsim::format_timeline(&r, None)
    );
    assert_eq!(counts.barge_ins.load(Ordering::Relaxed), 0);
    assert_eq!(starts, 0, "the echo was taken for the caller's speech");
    let answer_ms = answer().len() as f64 / 8.0;
    assert!(m.bot_audio_ms >= answer_ms - 20.0, "{:.0} of {answer_ms:.0} ms played", m.bot_audio_ms);
}

#[test]
fn an_echo_aware_session_plays_its_answer_through_the_echo() {
    plays_its_answer_through_the_echo(NOISY_LINE);
}

#[test]
fn an_echo_aware_session_plays_its_answer_through_the_echo_on_a_digitally_silent_line() {
    plays_its_answer_through_the_echo(SILENT_LINE);
}

#[test]
fn an_echo_aware_session_still_yields_to_the_caller_talking_over_the_echo() {
    let interruption = caller().utterance(1, 300).unwrap();
    let script = Script::new()
        .say(caller().slice_ms(0, 3_600))
        .wait_for_reply(Duration::from_secs(3))
        .interrupt(Duration::from_millis(2_000), interruption)
        .silence(Duration::from_millis(800));
    let (r, counts) = echoed_call(true, NOISY_LINE, &script);
    assert!(r.ok(), "{:?}\n{}", r.error, callsim::format_timeline(&r, None));
    let m = &r.metrics;
    println!(
        "echo-aware, interrupted: {} clears ({} unprompted), reaction {:?} ms, voice drop {:?} ms",
        m.clears, m.clears_unprompted, m.barge_in_reaction_ms, m.voice_drop_ms
    );
    assert_eq!(m.clears_unprompted, 0, "a clear before the caller spoke: the echo barged in");
    assert_eq!(m.barge_in_reaction_ms.len(), 1, "the interruption was answered by one clear: {m:?}");
    assert_eq!(counts.barge_ins.load(Ordering::Relaxed), 1);
    // The default barge-in rule: 300 ms voiced, so the clear comes within about a second.
    assert!(m.barge_in_reaction_ms[0] < 1_200.0, "onset to clear {:.0} ms", m.barge_in_reaction_ms[0]);
}
