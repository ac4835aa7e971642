//! `callsim`: a simulated carrier (Twilio by default; `--dialect` picks Telnyx, Plivo, Vonage,
//! Exotel, SignalWire, jambonz or AudioSocket) for latency benchmarking, against any bot's URL.
//!
//! ```text
//! cargo run --release -p trunkline-callsim -- --url ws://127.0.0.1:8080/media \
//!     --audio engine/tests/fixtures/speech_8k.ulaw --calls 10 [--dialect telnyx] [--json]
//! ```
//!
//! Each call plays the audio (its speech segments from `<audio>.labels` next to it, `--labels`,
//! or `--speech`), optionally interrupts the bot's reply (`--barge-in-after`), waits for the last
//! reply to end, and hangs up. The report gives p50/p90/p99 of response latency, barge-in
//! reaction and the bot's audio continuity. `--help` lists every option.

use std::process::ExitCode;
use std::time::Duration;
use trunkline_callsim::{
    self as callsim, CallOptions, CallerAudio, EchoPath, Impairments, Report, RunOptions, Script,
    SpeechSegment,
};

const HELP: &str = "\
callsim: a simulated carrier calling a voice bot, for latency benchmarking

USAGE: cargo run --release -p trunkline-callsim -- --url ws://HOST:PORT/PATH [OPTIONS]

What each call does:
  --url URL              the bot's URL (ws://, or wss:// when built with --features tls;
                         tcp://HOST:PORT for audiosocket)
  --dialect NAME         the carrier to play: twilio, telnyx, plivo, vonage, exotel, signalwire,
                         jambonz or audiosocket [default: twilio]
  --audio FILE           caller audio: raw 8 kHz µ-law, or WAV (16-bit PCM at 8/16/22.05/24/44.1/48 kHz,
                         or µ-law) [default: engine/tests/fixtures/speech_8k.ulaw]
  --labels FILE          speech segments of the audio, one `start end` per line (ms, or seconds with a
                         decimal point) [default: FILE.labels next to the audio if it exists, else the
                         whole clip is one utterance]
  --speech START-END     a speech segment in ms (repeatable; replaces the labels)
  --dtmf MS:DIGIT        press DIGIT at MS into the call (repeatable)
  --barge-in-after MS    after the audio, wait for the bot's reply and talk over it MS into it
  --barge-in-audio FILE  what to say then [default: the audio's first utterance]
  --wait-ms MS           then wait up to MS for the bot's reply to end before hanging up [default: 8000]
  --param KEY=VALUE      a custom parameter of the call (repeatable): Twilio's customParameters, and
                         wherever each carrier carries its own
  --auth-token TOKEN     authenticate the upgrade request as the carrier does, with this secret
                         (Twilio/Plivo: signature; Telnyx: stream token; SignalWire/Vonage: bearer;
                         Exotel/jambonz: Basic, give USER:PASSWORD)
  --call-id ID           the call's id for every call [default: generated per call]; for audiosocket
                         the UUID the bot expects
  --signed-url URL       the URL to sign, if the bot sees another one (a proxy) [default: --url]
  --ca-file PEM          CA certificates for wss:// [default: SSL_CERT_FILE or the system bundle]

Load and network:
  --calls N              concurrent calls [default: 1]
  --stagger-ms MS        delay between call starts [default: 50]
  --jitter-ms MS         send each caller frame up to MS late (uniform, seeded) [default: 0]
  --burst N              hold N frames and send them together...
  --burst-every M        ...every M frames [default: 50; more than --burst]
  --gap-every N          never send every Nth frame (a timestamp gap)
  --reorder-every N      send every Nth frame after the one that follows it
  --stall-every MS       a network stall every MS of the call: everything the caller sends is held...
  --stall-ms MS          ...for MS, then sent at once, as TCP delivers after a retransmission
                         [default: 1000; less than --stall-every]
  --seed S               seed of the jitter and the generated ids [default: 1]
  --line-noise-dbfs DB   level of the line's idle noise between utterances [default: -70]
  --digital-silence      send µ-law digital silence (0xFF) between utterances instead

The simulated carrier:
  --playout-delay-ms MS  delay before the carrier plays audio that reached an idle buffer [default: 0]
  --echo-erl-db DB       the caller's line returns what it heard of the bot, DB quieter (echo
                         return loss, e.g. 6 to 25) [default: no echo]
  --echo-delay-ms MS     ...MS after the carrier played it [default: 100]
  --echo-tail-ms MS      ...through a decaying tail of MS [default: 0: one reflection]
  --reply-gap-ms MS      bot silence that ends a reply (shorter ones are underruns) [default: 1000]

Output:
  --json                 print the report as JSON (stdout) instead of a table
  --timeline             print each call's timeline (to stderr with --json)
  --quiet                no progress line
  -h, --help             this help

Exit status: 0 if every call completed its script, 1 if one failed, 2 on a usage error.";

/// The echo flags as given (checked together once all are read).
#[derive(Default)]
struct EchoFlags {
    erl_db: Option<f64>,
    delay_ms: Option<u32>,
    tail_ms: Option<u32>,
}

struct Args {
    url: String,
    audio: String,
    labels: Option<String>,
    speech: Vec<SpeechSegment>,
    dtmf: Vec<(u64, char)>,
    barge_in_after: Option<u64>,
    barge_in_audio: Option<String>,
    wait_ms: u64,
    json: bool,
    timeline: bool,
    quiet: bool,
    run: RunOptions,
    options: CallOptions,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let default_audio = concat!(env!("CARGO_MANIFEST_DIR"), "/../engine/tests/fixtures/speech_8k.ulaw");
    let mut a = Args {
        url: String::new(),
        audio: default_audio.to_owned(),
        labels: None,
        speech: vec![],
        dtmf: vec![],
        barge_in_after: None,
        barge_in_audio: None,
        wait_ms: 8_000,
        json: false,
        timeline: false,
        quiet: false,
        run: RunOptions { calls: 1, stagger: Duration::from_millis(50), progress: true },
        options: CallOptions::new(""),
    };
    let mut burst_every = None;
    let mut stall_ms = None;
    let mut echo = EchoFlags::default();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        let imp = &mut a.options.impairments;
        match flag.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--url" => a.url = value()?,
            "--dialect" => a.options.dialect = value()?.parse()?,
            "--audio" => a.audio = value()?,
            "--labels" => a.labels = Some(value()?),
            "--speech" => {
                let v = value()?;
                let (s, e) =
                    v.split_once('-').ok_or_else(|| format!("--speech: expected START-END, got {v}"))?;
                a.speech
                    .push(SpeechSegment { start_ms: num(&flag, s.into())?, end_ms: num(&flag, e.into())? });
            }
            "--dtmf" => {
                let v = value()?;
                let (t, d) =
                    v.split_once(':').ok_or_else(|| format!("--dtmf: expected MS:DIGIT, got {v}"))?;
                let digit = d
                    .chars()
                    .next()
                    .filter(|c| d.len() == 1 && (c.is_ascii_digit() || "*#ABCD".contains(*c)));
                a.dtmf.push((num(&flag, t.into())?, digit.ok_or_else(|| format!("--dtmf: bad digit {d}"))?));
            }
            "--barge-in-after" => a.barge_in_after = Some(num(&flag, value()?)?),
            "--barge-in-audio" => a.barge_in_audio = Some(value()?),
            "--wait-ms" => a.wait_ms = num(&flag, value()?)?,
            "--param" => {
                let v = value()?;
                let (k, val) =
                    v.split_once('=').ok_or_else(|| format!("--param: expected KEY=VALUE, got {v}"))?;
                a.options.custom_parameters.push((k.to_owned(), val.to_owned()));
            }
            "--auth-token" => a.options.auth_token = Some(value()?),
            "--signed-url" => a.options.signed_url = Some(value()?),
            "--call-id" => a.options.call_id = Some(value()?),
            "--ca-file" => a.options.ca_file = Some(value()?.into()),
            "--calls" => a.run.calls = num(&flag, value()?)?,
            "--stagger-ms" => a.run.stagger = Duration::from_millis(num(&flag, value()?)?),
            "--jitter-ms" => imp.jitter_ms = num(&flag, value()?)?,
            "--burst" => imp.burst_frames = num(&flag, value()?)?,
            "--burst-every" => burst_every = Some(num(&flag, value()?)?),
            "--gap-every" => imp.gap_every = num(&flag, value()?)?,
            "--reorder-every" => imp.reorder_every = num(&flag, value()?)?,
            "--stall-every" => imp.stall_every_ms = num(&flag, value()?)?,
            "--stall-ms" => stall_ms = Some(num(&flag, value()?)?),
            "--seed" => {
                let seed = num(&flag, value()?)?;
                imp.seed = seed;
                a.options.seed = seed;
            }
            "--line-noise-dbfs" => a.options.line_noise_dbfs = Some(num(&flag, value()?)?),
            "--digital-silence" => a.options.line_noise_dbfs = None,
            "--playout-delay-ms" => a.options.playout.delay = Duration::from_millis(num(&flag, value()?)?),
            "--echo-erl-db" => echo.erl_db = Some(num(&flag, value()?)?),
            "--echo-delay-ms" => echo.delay_ms = Some(num(&flag, value()?)?),
            "--echo-tail-ms" => echo.tail_ms = Some(num(&flag, value()?)?),
            "--reply-gap-ms" => a.options.playout.reply_gap = Duration::from_millis(num(&flag, value()?)?),
            "--json" => a.json = true,
            "--timeline" => a.timeline = true,
            "--quiet" => a.quiet = true,
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required (see --help)".into());
    }
    if a.run.calls == 0 {
        return Err("--calls must be at least 1".into());
    }
    a.options.impairments.burst_every = burst_every.unwrap_or(0);
    let burst = a.options.impairments.burst_frames;
    let every = burst_every.unwrap_or(Impairments::DEFAULT_BURST_EVERY);
    if burst > 0 && burst >= every {
        return Err(format!(
            "--burst ({burst}) must be less than --burst-every ({every}): a burst as long as its period \
             holds every frame until the hang-up"
        ));
    }
    a.options.echo = match echo {
        EchoFlags { erl_db: None, delay_ms: None, tail_ms: None } => None,
        EchoFlags { erl_db: None, .. } => {
            return Err("--echo-delay-ms and --echo-tail-ms need --echo-erl-db".into());
        }
        EchoFlags { erl_db: Some(erl_db), delay_ms, tail_ms } => {
            if !(0.0..=60.0).contains(&erl_db) {
                return Err(format!("--echo-erl-db {erl_db}: from 0 to 60 dB"));
            }
            let (delay_ms, tail_ms) = (delay_ms.unwrap_or(100), tail_ms.unwrap_or(0));
            if delay_ms > 2_000 || tail_ms > 500 {
                return Err("--echo-delay-ms is at most 2000, --echo-tail-ms at most 500".into());
            }
            Some(EchoPath { erl_db, delay_ms, tail_ms })
        }
    };
    let imp = &mut a.options.impairments;
    match (imp.stall_every_ms, stall_ms) {
        (0, None) => {}
        (0, Some(_)) => return Err("--stall-ms needs --stall-every".into()),
        (every, ms) => {
            let ms = ms.unwrap_or(1_000);
            if ms == 0 || ms >= every {
                return Err(format!(
                    "--stall-ms ({ms}) must be positive and less than --stall-every ({every})"
                ));
            }
            imp.stall_ms = ms;
        }
    }
    a.options.url = a.url.clone();
    a.run.progress = !a.quiet;
    Ok(a)
}

fn script(a: &Args) -> Result<Script, String> {
    let mut audio = CallerAudio::load(&a.audio).map_err(|e| e.to_string())?;
    if let Some(labels) = &a.labels {
        audio = audio.with_labels_file(labels).map_err(|e| e.to_string())?;
    }
    if !a.speech.is_empty() {
        audio = audio.with_speech(a.speech.clone());
    }
    let mut script = Script::new().say(audio.clone());
    for &(at, digit) in &a.dtmf {
        script = script.dtmf_at(at, digit);
    }
    if let Some(after) = a.barge_in_after {
        let interruption = match &a.barge_in_audio {
            Some(path) => CallerAudio::load(path).map_err(|e| e.to_string())?,
            None => audio.utterance(0, 200).ok_or("--barge-in-after: the audio has no speech segment")?,
        };
        script = script.interrupt(Duration::from_millis(after), interruption);
    }
    Ok(script.wait_for_reply_end(Duration::from_millis(a.wait_ms)))
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("callsim: {e}");
            return ExitCode::from(2);
        }
    };
    let script = match script(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("callsim: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.quiet {
        eprintln!(
            "callsim: {} {} call(s) to {}, each up to {:.1} s",
            args.run.calls,
            args.options.dialect,
            args.url,
            script.max_duration_ms() as f64 / 1000.0
        );
    }
    let results = match callsim::run_calls_blocking(&args.options, &script, &args.run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("callsim: {e}");
            return ExitCode::from(2);
        }
    };
    if args.timeline {
        for r in &results {
            let text = format!("call {} ({}):\n{}", r.index, r.call_sid, callsim::format_timeline(r, None));
            if args.json { eprintln!("{text}") } else { println!("{text}") }
        }
    }
    let report = Report::new(&results);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    if report.failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
