//! The end-to-end call demo (the README's main command):
//!
//!     cargo run --release -p trunkline-tools --bin call_demo [--dialect NAME]
//!
//! In one process: Trunkline's offload server with a small demo bot behind it, and `callsim`
//! playing the caller against it over a real WebSocket on loopback. The caller (a committed
//! espeak-ng recording) asks a question and waits; when Trunkline detects the end of their speech
//! the bot plays its reply (a committed recording); 1.2 s into the reply the caller interrupts,
//! Trunkline detects the barge-in, drops the queued audio, sends `clear` and tells the bot how much
//! of the reply the caller heard. The demo prints both sides' timelines and the latency table, and
//! exits 0 only if the call went as expected. `--dialect` (default `twilio`) picks the carrier
//! callsim plays; the server then takes that carrier's calls on the path `/<dialect>` (AudioSocket:
//! on a TCP listener of its own, for the one call UUID it allows).
//!
//! On SIGTERM the demo drains its offload server as a deployed bot would: no new calls from then
//! on (`/readyz` answers 503), the live call goes on for up to the grace (`--drain-grace SECONDS`,
//! else `$TRUNKLINE_DRAIN_GRACE_S`, else 30 s), then the demo prints what it has and exits 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use trunkline::{Engine, EngineConfig, Event, SessionConfig};
use trunkline_callsim::{self as callsim, CallEvent, CallOptions, CallerAudio, Dialect, Report, Script};
use trunkline_server::{AudioSocketListener, OffloadConfig, OffloadServer, Route};

const REPLY_WAV: &[u8] = include_bytes!("../../assets/reply_8k.wav");
const INTERRUPT_AFTER: Duration = Duration::from_millis(1200);

/// The samples of a 16-bit mono PCM WAV file.
fn wav_samples(wav: &[u8]) -> Vec<i16> {
    let mut pos = 12;
    while pos + 8 <= wav.len() {
        let id = &wav[pos..pos + 4];
        let len = u32::from_le_bytes([wav[pos + 4], wav[pos + 5], wav[pos + 6], wav[pos + 7]]) as usize;
        if id == b"data" {
            let data = &wav[pos + 8..(pos + 8 + len).min(wav.len())];
            return data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        }
        pos += 8 + len + (len & 1);
    }
    Vec::new()
}

/// What the bot saw, for the timeline and the final checks.
#[derive(Default, Debug)]
struct BotLog {
    lines: Vec<(Duration, String)>,
    replied: bool,
    barge_in_played_ms: Option<u64>,
    reply_mark_cleared: bool,
    stopped: bool,
}

/// The demo bot: on the caller's end of speech it plays the reply and a mark; on barge-in it
/// drops what it had not handed over yet (Trunkline already dropped the rest and sent `clear`).
fn run_bot(engine: Arc<Engine>, server: Arc<OffloadServer>, t0: Instant, done: Arc<AtomicBool>) -> BotLog {
    let reply = wav_samples(REPLY_WAV);
    let mut log = BotLog::default();
    let mut calls = Vec::new();
    let mut pending: &[i16] = &[];
    let mut mark_after_pending = false;
    while !done.load(Ordering::Acquire) {
        engine.wait(Some(Duration::from_millis(5)));
        while let Some(call) = server.accept() {
            let s = &call.start;
            log.lines.push((
                t0.elapsed(),
                format!("bot: call {} started, parameters {:?}", s.call_id, s.custom_parameters),
            ));
            calls.push(call);
        }
        for call in &mut calls {
            let session = &mut call.session;
            let mut pcm = [0i16; 2048];
            while session.read_audio(&mut pcm) > 0 {} // a real bot feeds its STT here
            while let Some(event) = session.poll_event() {
                let now = t0.elapsed();
                let line = match &event {
                    Event::SpeechStarted { stream_ms } => {
                        format!("bot: caller started speaking (stream {stream_ms} ms)")
                    }
                    Event::SpeechStopped { stream_ms } => {
                        if !log.replied {
                            log.replied = true;
                            pending = &reply;
                            mark_after_pending = true;
                            format!(
                                "bot: caller stopped (stream {stream_ms} ms) -> playing the {:.1} s reply",
                                reply.len() as f64 / 8000.0
                            )
                        } else {
                            format!("bot: caller stopped (stream {stream_ms} ms)")
                        }
                    }
                    Event::BargeIn { stream_ms, played_ms } => {
                        log.barge_in_played_ms = Some(*played_ms);
                        pending = &[];
                        mark_after_pending = false;
                        format!(
                            "bot: BARGE-IN at stream {stream_ms} ms: the caller heard {played_ms} ms of the reply; Trunkline sent clear"
                        )
                    }
                    Event::MarkCleared { name } => {
                        log.reply_mark_cleared |= name == "reply-end";
                        format!("bot: mark '{name}' cleared (never heard)")
                    }
                    Event::MarkPlayed { name, played_ms } => {
                        format!("bot: mark '{name}' played at {played_ms} ms")
                    }
                    Event::Stopped => {
                        log.stopped = true;
                        "bot: stream stopped".to_owned()
                    }
                    Event::ProtocolError { error } => format!("bot: dropped a bad message: {error}"),
                    Event::Connected
                    | Event::Started(_)
                    | Event::Dtmf { .. }
                    | Event::Interrupted { .. }
                    | Event::EndOfTurn { .. } => {
                        continue;
                    }
                };
                log.lines.push((now, line));
            }
            // Hand the reply over as the engine takes it (like a streaming TTS would).
            while !pending.is_empty() {
                match session.play(pending, 8_000) {
                    Ok(n) => pending = &pending[n..],
                    Err(_) => break,
                }
            }
            if pending.is_empty() && mark_after_pending {
                mark_after_pending = session.mark("reply-end").is_err();
            }
        }
    }
    log
}

/// The call UUID the demo's AudioSocket listener allows.
const AUDIOSOCKET_CALL: &str = "0b4e7c52-7d1f-4a8e-9c3b-5f2d6e8a1c90";

/// The grace a drain gives live calls when neither `--drain-grace` nor `TRUNKLINE_DRAIN_GRACE_S` says.
const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(30);

/// What the command line asks for.
struct Options {
    /// The carrier to play: `--dialect NAME`, Twilio without it.
    dialect: Dialect,
    /// How long the live call may go on after SIGTERM.
    drain_grace: Duration,
}

fn seconds(text: &str, what: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{what} must be a number of seconds, not {text:?}"))
}

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut dialect = Dialect::Twilio;
    let mut drain_grace = match std::env::var("TRUNKLINE_DRAIN_GRACE_S") {
        Ok(text) => seconds(&text, "TRUNKLINE_DRAIN_GRACE_S")?,
        Err(_) => DEFAULT_DRAIN_GRACE,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dialect" => dialect = args.next().ok_or("--dialect needs a value")?.parse()?,
            "--drain-grace" => {
                drain_grace = seconds(&args.next().ok_or("--drain-grace needs a value")?, "--drain-grace")?
            }
            other => {
                return Err(format!(
                    "unknown option {other} (usage: call_demo [--dialect NAME] [--drain-grace SECONDS])"
                ));
            }
        }
    }
    Ok(Options { dialect, drain_grace })
}

/// Set by the SIGTERM handler; the drain thread acts on it. (A store to an atomic is all a signal
/// handler may safely do.)
static TERMINATED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigterm(_: libc::c_int) {
    TERMINATED.store(true, Ordering::SeqCst);
}

/// Drains `server` once SIGTERM arrives, unless `done` is set first. Its result: whether it
/// drained.
fn drain_on_sigterm(server: Arc<OffloadServer>, grace: Duration, done: Arc<AtomicBool>) -> JoinHandle<bool> {
    // SAFETY: `on_sigterm` only stores to an atomic, which is async-signal-safe; the handler is
    // installed once, before the threads that could receive the signal do anything.
    unsafe { libc::signal(libc::SIGTERM, on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t) };
    std::thread::Builder::new()
        .name("demo-drain".into())
        .spawn(move || {
            while !done.load(Ordering::Acquire) {
                if TERMINATED.load(Ordering::SeqCst) {
                    println!(
                        "SIGTERM: draining the offload server (no new calls; the live one may go on for {:.1} s)",
                        grace.as_secs_f64()
                    );
                    let all_ended = server.drain(grace);
                    println!("drained: {}", if all_ended { "every call ended" } else { "a call was still open" });
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
        .expect("drain thread")
}

fn main() {
    let Options { dialect, drain_grace } = options().unwrap_or_else(|e| {
        eprintln!("call_demo: {e}");
        std::process::exit(2);
    });
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/tests/fixtures/speech_8k.ulaw");
    let caller =
        CallerAudio::load(fixtures).expect("caller recording (engine/tests/fixtures/speech_8k.ulaw)");
    let interruption = caller.utterance(1, 200).expect("a second utterance to interrupt with");

    let engine =
        Arc::new(Engine::new(EngineConfig { workers: Some(1), ..Default::default() }).expect("engine"));
    let mut config = OffloadConfig {
        paths: vec!["/media".into()],
        session: SessionConfig { agent_rate: 16_000, ..Default::default() },
        ..Default::default()
    };
    let mut path = "/media".to_owned();
    if dialect != Dialect::Twilio {
        path = format!("/{dialect}");
        config.routes =
            vec![Route { path: path.clone(), dialect: dialect.name().into(), ..Default::default() }];
    }
    let server = Arc::new(OffloadServer::start(&engine, config).expect("offload server"));
    let mut url = format!("ws://{}{path}", server.local_addr());
    if dialect.is_tcp() {
        // AudioSocket is raw TCP: its own listener, taking the call whose UUID the host allowed.
        let listener = AudioSocketListener {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            allowed_calls: vec![AUDIOSOCKET_CALL.into()],
        };
        url = format!("tcp://{}", server.listen_audiosocket(listener).expect("AudioSocket listener"));
    }
    if dialect == Dialect::Twilio {
        println!(
            "Trunkline call demo: offload server on {url}, demo bot in-process, callsim as the caller\n"
        );
    } else {
        println!(
            "Trunkline call demo ({dialect}): offload server on {url}, demo bot in-process, callsim as the caller\n"
        );
    }

    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let drainer = drain_on_sigterm(server.clone(), drain_grace, done.clone());
    let bot = {
        let (engine, server, done) = (engine.clone(), server.clone(), done.clone());
        std::thread::Builder::new()
            .name("demo-bot".into())
            .spawn(move || run_bot(engine, server, t0, done))
            .expect("bot")
    };

    // The caller: asks (the first 4 s of the recording), waits for the reply, interrupts it.
    let script = Script::new()
        .say(caller.slice_ms(0, 4_000))
        .wait_for_reply(Duration::from_secs(5))
        .interrupt(INTERRUPT_AFTER, interruption)
        .wait_for_reply_end(Duration::from_millis(1500));
    let mut options = CallOptions::new(&url);
    options.dialect = dialect;
    if dialect.is_tcp() {
        options.call_id = Some(AUDIOSOCKET_CALL.into());
    }
    options.custom_parameters = vec![("demo".into(), "true".into())];
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(callsim::run_call_blocking(&options, &script));
    });
    let result = rx.recv_timeout(Duration::from_secs(50)).ok().and_then(Result::ok);
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Release);
    let log = bot.join().expect("bot thread");
    let drained = drainer.join().expect("drain thread");

    let Some(result) = result else {
        if drained {
            println!("Drained on SIGTERM: the call was ended before callsim completed it.");
            return;
        }
        eprintln!("the call did not complete within 50 s");
        std::process::exit(1);
    };
    println!("Caller side (callsim), times from the start of the stream:");
    print!("{}", callsim::format_timeline(&result, Some("trunkline-sync-")));
    println!("\nBot side (Trunkline events), times since the demo started:");
    for (t, line) in &log.lines {
        println!("  {:>6} ms  {line}", t.as_millis());
    }
    println!("\nLatency (callsim's measurements):");
    print!("{}", Report::new(std::slice::from_ref(&result)).table());
    let stats = server.stats();
    println!(
        "\nServer: {} connection(s), {} call(s), {} rejected, {} active",
        stats.connections,
        stats.calls_opened,
        stats.rejected_signature + stats.rejected_path + stats.rejected_capacity,
        stats.active
    );

    // Did the call go as expected?
    let m = &result.metrics;
    let mut problems = Vec::new();
    if let Some(e) = &result.error {
        problems.push(format!("callsim error: {e:?}"));
    }
    if !log.replied || m.response_ms.is_empty() {
        problems.push("the bot never replied".into());
    }
    match log.barge_in_played_ms {
        // The caller spoke 1.2 s into the reply; Trunkline needs ~0.3 s of voiced speech to call
        // it a barge-in, so the caller heard roughly 1.2 to 2.2 s of the reply.
        Some(p) if (1_000..=2_600).contains(&p) => {}
        Some(p) => problems.push(format!("barge-in at an unexpected position: {p} ms")),
        None => problems.push("no barge-in".into()),
    }
    if dialect.is_tcp() {
        // AudioSocket has no clear: the engine stops sending, and what the caller heard of the
        // reply is what callsim played before its audio stopped coming.
        let heard = result.timeline.iter().find_map(|e| match e.event {
            CallEvent::BotReplyEnded { played_ms, .. } => Some(played_ms),
            _ => None,
        });
        match (heard, log.barge_in_played_ms) {
            (Some(heard), Some(p)) if (heard - p as f64).abs() <= 60.0 => {}
            other => {
                problems.push(format!("the reply did not stop where the bot says (heard, bot): {other:?}"))
            }
        }
    } else if m.clears == 0 || m.barge_in_reaction_ms.is_empty() {
        problems.push("the caller never received clear for its interruption".into());
    }
    if !log.reply_mark_cleared {
        problems.push("the reply's mark was not reported cleared".into());
    }
    if !log.stopped {
        problems.push("the bot never saw the stream stop".into());
    }
    if drained {
        // Stopped on purpose: what the call did up to the drain is printed above.
        for p in &problems {
            println!("after SIGTERM: {p}");
        }
        println!("\nDrained on SIGTERM.");
    } else if problems.is_empty() {
        let stop = if dialect.is_tcp() { "the reply stopped" } else { "clear" };
        println!("\nThe call went as expected: reply on end of speech, barge-in, {stop}, played position.");
    } else {
        for p in &problems {
            eprintln!("UNEXPECTED: {p}");
        }
        std::process::exit(1);
    }
}
