//! Echo conditions: the bot's own voice coming back on the caller's line, simulated call by call
//! against what the engine actually sent (see [`super::call`]). The echo path is callsim's
//! (`callsim/src/echo.rs`, copied here because tests cannot reach callsim's private module): the
//! return loss (ERL) is the energy of the path's impulse response, a direct reflection `delay_ms`
//! after the carrier plays a sample then a seeded decaying tail, mixed into the caller's line
//! and re-quantised by its µ-law. Same path, same seed: the same taps as callsim's.
//!
//! Two sets:
//! - echo only: the bot plays its prompts back to back with short pauses and the caller says
//!   nothing: every `SpeechStarted` and every `BargeIn` is false;
//! - interruptions over echo: every caller utterance of the barge-in set
//!   ([`super::barge_calls`]) spoken over the prompt and its echo.

use super::call::{AfterBargeIn, CallSpec, CallTrace, EchoSetup, Prompt, Wire, run_call};
use super::{
    AGENT_START_MS, CallerAct, ClipKind, Condition, PER_MS, Rng, band_limit, barge_calls, clips_of, line,
    noise_rms_for, percentile, to_telephone,
};
use trunkline::codec::mulaw::{linear_to_ulaw, ulaw_to_linear};
use trunkline::{Event, SessionConfig};

/// Samples per ms of the line (8 kHz).
const SAMPLES_PER_MS: usize = PER_MS as usize;

/// The echo path of a call, as callsim's `EchoPath`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EchoPath {
    /// Echo return loss: how much quieter the echo's energy is than what was played, dB (≥ 0).
    pub erl_db: f64,
    /// Delay from the carrier playing a sample to its echo on the caller's line, ms.
    pub delay_ms: u32,
    /// Length of the decaying tail after the direct echo, ms (0: a single reflection).
    pub tail_ms: u32,
}

/// callsim's generator (SplitMix64), so the taps are the same as callsim's for the same seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl EchoPath {
    /// The path's impulse response at 8 kHz: the direct reflection then a seeded, exponentially
    /// decaying diffuse tail (about 30 dB down at its end), scaled so that its energy is the
    /// return loss (as callsim's `EchoPath::taps`).
    pub fn taps(&self, seed: u64) -> Vec<f32> {
        self.taps_at(seed, SAMPLES_PER_MS)
    }

    /// [`Self::taps`] for a line of `per_ms` samples per ms (the same shape, the same loss).
    pub fn taps_at(&self, seed: u64, per_ms: usize) -> Vec<f32> {
        let tail = self.tail_ms as usize * per_ms;
        let mut rng = SplitMix64(seed ^ 0xEC40);
        let mut taps = vec![1.0f64];
        for j in 1..=tail {
            let envelope = 0.5 * (-3.45 * j as f64 / tail as f64).exp();
            let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            taps.push(sign * envelope * (0.5 + (rng.next_u64() % 1000) as f64 / 2000.0));
        }
        let energy: f64 = taps.iter().map(|t| t * t).sum();
        let scale = 10f64.powf(-self.erl_db / 20.0) / energy.sqrt();
        taps.into_iter().map(|t| (t * scale) as f32).collect()
    }
}

/// What the carrier played, by sample of stream time, and its echo on the caller's line.
pub struct EchoLine {
    delay: usize,
    taps: Vec<f32>,
    played: Vec<f32>,
}

impl EchoLine {
    pub fn new(path: EchoPath, seed: u64) -> Self {
        Self::at_rate(path, seed, SAMPLES_PER_MS)
    }

    /// A line of `per_ms` samples per ms.
    pub fn at_rate(path: EchoPath, seed: u64, per_ms: usize) -> Self {
        Self { delay: path.delay_ms as usize * per_ms, taps: path.taps_at(seed, per_ms), played: Vec::new() }
    }

    /// The carrier plays `pcm` from sample `at` on.
    pub fn play(&mut self, at: usize, pcm: &[i16]) {
        if self.played.len() < at + pcm.len() {
            self.played.resize(at + pcm.len(), 0.0);
        }
        for (p, &s) in self.played[at..].iter_mut().zip(pcm) {
            *p += f32::from(s);
        }
    }

    /// A `clear` at sample `at`: what had not played yet never reaches the line.
    pub fn clear(&mut self, at: usize) {
        self.played.truncate(at);
    }

    /// The echo at caller sample `n`.
    pub fn at(&self, n: usize) -> f32 {
        let Some(last) = n.checked_sub(self.delay) else { return 0.0 };
        let first = last.saturating_sub(self.taps.len() - 1);
        let mut e = 0.0;
        for k in first..(last + 1).min(self.played.len()) {
            e += self.taps[last - k] * self.played[k];
        }
        e
    }
}

/// The return losses measured.
pub const ERLS_DB: [f64; 4] = [6.0, 10.0, 15.0, 25.0];

/// One echo call: the caller's side, the bot's prompts and the echo path.
#[derive(Debug, Clone)]
pub struct EchoCall {
    pub name: String,
    pub caller: Vec<i16>,
    pub prompts: Vec<Prompt>,
    pub echo: EchoSetup,
    pub carrier_delay_ms: u64,
    /// The caller's interruption (true onset and end, ms), if any.
    pub act: Option<(u64, u64)>,
}

impl EchoCall {
    pub fn spec(&self, config: &SessionConfig, after: AfterBargeIn) -> CallSpec<'_> {
        CallSpec {
            config: config.clone(),
            caller: &self.caller,
            prompts: self.prompts.clone(),
            after_barge_in: after,
            carrier_delay_ms: self.carrier_delay_ms,
            echo: Some(self.echo),
            end_stream: false,
            outage_ms: None,
            wire: Wire::Twilio,
        }
    }
}

/// A seeded echo path for one call: delay 20-400 ms, tail 0-100 ms, a quarter of the calls
/// soft-clipped (an overdriven handset); and the carrier's playout delay, 60-100 ms.
fn random_path(erl_db: f64, rng: &mut Rng) -> (EchoSetup, u64) {
    let path =
        EchoPath { erl_db, delay_ms: rng.range(20.0, 400.0) as u32, tail_ms: rng.range(0.0, 100.0) as u32 };
    let seed = rng.next_u64();
    // The clipping follows from the seed, so the other draws stay as they were.
    (EchoSetup { path, seed, soft_clip: seed.is_multiple_of(4), from_ms: 0 }, rng.range(60.0, 100.0) as u64)
}

/// Runs `call` with `config`, with its echo path and without it: the same agent audio and
/// caller side, so the audio the host reads differs by the echo, or what is left of it.
pub fn with_and_without_echo(
    call: &EchoCall,
    config: &SessionConfig,
    after: AfterBargeIn,
) -> (CallTrace, CallTrace) {
    let with = run_call(&call.spec(config, after));
    let mut spec = call.spec(config, after);
    spec.echo = None;
    (with, run_call(&spec))
}

/// Echo reduction (`SessionConfig::echo_reduction`) on one echo call: the echo that came against
/// what it changed in the audio the host read (the call with the echo less the call without, so
/// the line's own noise is not counted), from `from_ms` of the call on, dB. About 0 with the
/// setting off (µ-law rounding aside). Panics if the audio read without the echo is not the
/// caller's line at its level (within 1 dB): output muted would otherwise read as echo removed.
pub fn echo_reduction_db(call: &EchoCall, config: &SessionConfig, from_ms: u64) -> f64 {
    let (with, without) = with_and_without_echo(call, config, AfterBargeIn::NextPrompt);
    let from = (from_ms * PER_MS) as usize;
    let end = with.received.len().min(without.received.len());
    let level = |x: &[i16]| x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>();
    let kept_db = 10.0 * (level(&without.received[from..end]) / level(&call.caller[from..end])).log10();
    assert!(kept_db.abs() < 1.0, "{}: the line's own audio changed by {kept_db:+.1} dB", call.name);
    let echo: f64 = with.echo[from..end].iter().map(|&e| f64::from(e).powi(2)).sum();
    let left: f64 =
        (from..end).map(|i| (f64::from(with.received[i]) - f64::from(without.received[i])).powi(2)).sum();
    10.0 * (echo / left).log10()
}

/// Echo-only calls: each plays every agent prompt once, in seeded order, with 300-1000 ms
/// pauses; the caller is silent (only the line of `cond`). As many calls as give at least
/// `bot_minutes` of prompts.
pub fn echo_only_calls(cond: &Condition, erl_db: f64, bot_minutes: f64) -> Vec<EchoCall> {
    let agents = clips_of(&[ClipKind::Agent]);
    let mut rng = Rng::new(cond.seed ^ 0xEC0 ^ ((erl_db as u64) << 8));
    let noise_rms = noise_rms_for(cond);
    let mut calls = Vec::new();
    let mut bot_ms = 0;
    while (bot_ms as f64) < bot_minutes * 60_000.0 {
        let mut order = agents.clone();
        rng.shuffle(&mut order);
        let mut at = AGENT_START_MS;
        let mut prompts = Vec::new();
        for c in order {
            prompts.push(Prompt { at_ms: at, pcm: &c.pcm });
            bot_ms += c.ms();
            at += c.ms() + rng.range(300.0, 1_000.0) as u64;
        }
        let total_ms = (at + 1_500) / 20 * 20;
        let (mut x, after) = line(cond, (total_ms * PER_MS) as usize, noise_rms, &mut rng);
        band_limit(&mut x);
        for (v, a) in x.iter_mut().zip(&after) {
            *v += a;
        }
        let (echo, carrier_delay_ms) = random_path(erl_db, &mut rng);
        calls.push(EchoCall {
            name: format!("echo{}", calls.len()),
            caller: to_telephone(&x),
            prompts,
            echo,
            carrier_delay_ms,
            act: None,
        });
    }
    calls
}

/// The interruptions of the barge-in set on `cond` ([`super::barge_calls`]: the same acts at the
/// same times), now over the echo of the prompt at `erl_db`.
pub fn interruption_calls(cond: &Condition, erl_db: f64) -> Vec<EchoCall> {
    let mut rng = Rng::new(cond.seed ^ 0x1E70 ^ ((erl_db as u64) << 8));
    barge_calls(cond)
        .into_iter()
        .filter(|c| c.act == CallerAct::Interrupt)
        .map(|mut c| {
            let (echo, carrier_delay_ms) = random_path(erl_db, &mut rng);
            c.caller.truncate(c.caller.len() / 160 * 160);
            EchoCall {
                name: c.name,
                caller: c.caller,
                prompts: vec![Prompt { at_ms: AGENT_START_MS, pcm: c.agent }],
                echo,
                carrier_delay_ms,
                act: Some(c.act_ms),
            }
        })
        .collect()
}

/// Echo-only scores: every speech start and barge-in is false.
#[derive(Debug, Clone, Default)]
pub struct EchoOnlyScore {
    pub calls: usize,
    /// Agent audio sent, ms.
    pub bot_ms: u64,
    pub false_starts: u64,
    pub false_barge_ins: u64,
    /// Over whole calls.
    pub held: HeldCounts,
}

/// Speech starts the sessions held back while the echo match suspected an echo, and of those the
/// ones dropped as the echo (their `speech_starts_held` and `speech_starts_dropped_as_echo`
/// counters, summed over calls). Shown as "held (dropped)".
#[derive(Debug, Default, Clone, Copy)]
pub struct HeldCounts {
    pub held: u64,
    pub dropped: u64,
}

impl HeldCounts {
    /// Adds one call's counters.
    pub fn take(&mut self, t: &CallTrace) {
        self.held += t.stats.speech_starts_held;
        self.dropped += t.stats.speech_starts_dropped_as_echo;
    }

    pub fn add(&mut self, o: &HeldCounts) {
        self.held += o.held;
        self.dropped += o.dropped;
    }
}

impl std::fmt::Display for HeldCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.held, self.dropped)
    }
}

impl EchoOnlyScore {
    fn per_10min(&self, n: u64) -> f64 {
        n as f64 * 600_000.0 / self.bot_ms.max(1) as f64
    }
    pub fn false_starts_per_10min(&self) -> f64 {
        self.per_10min(self.false_starts)
    }
    pub fn false_barge_ins_per_10min(&self) -> f64 {
        self.per_10min(self.false_barge_ins)
    }
    pub fn add(&mut self, o: &EchoOnlyScore) {
        self.calls += o.calls;
        self.bot_ms += o.bot_ms;
        self.false_starts += o.false_starts;
        self.false_barge_ins += o.false_barge_ins;
        self.held.add(&o.held);
    }
    /// Scores one echo-only call's trace from stream time `from_ms` on.
    pub fn take(&mut self, t: &CallTrace, from_ms: u64) {
        self.calls += 1;
        self.bot_ms += t.bot_ms_from(from_ms);
        self.false_starts += t.count_from(from_ms, |e| matches!(e, Event::SpeechStarted { .. })) as u64;
        self.false_barge_ins += t.count_from(from_ms, |e| matches!(e, Event::BargeIn { .. })) as u64;
        self.held.take(t);
    }
}

/// Runs echo-only calls (a false barge-in drops the rest of that prompt; the next one plays).
pub fn score_echo_only(config: &SessionConfig, calls: &[EchoCall]) -> EchoOnlyScore {
    score_echo_only_from(config, calls, 0)
}

/// [`score_echo_only`] counting only what happens from stream time `from_ms` on: the events
/// taken then and the agent audio sent then (for a path that opens mid-call).
pub fn score_echo_only_from(config: &SessionConfig, calls: &[EchoCall], from_ms: u64) -> EchoOnlyScore {
    let mut s = EchoOnlyScore::default();
    for call in calls {
        s.take(&run_call(&call.spec(config, AfterBargeIn::NextPrompt)), from_ms);
    }
    s
}

/// Interruption scores. A barge-in before the caller's onset (on the echo) pre-empts the call:
/// the bot stops and the interruption is not recognised as one.
#[derive(Debug, Clone, Default)]
pub struct InterruptScore {
    pub true_pos: u64,
    /// Barge-ins on the echo before the caller spoke.
    pub pre_empted: Vec<String>,
    /// No barge-in at all.
    pub missed: Vec<String>,
    /// Onset to the `BargeIn` event, ms.
    pub reactions: Vec<u64>,
    /// Onset to the `clear` leaving the engine, ms.
    pub clear_reactions: Vec<u64>,
    pub held: HeldCounts,
}

impl InterruptScore {
    pub fn calls(&self) -> usize {
        self.true_pos as usize + self.pre_empted.len() + self.missed.len()
    }
    pub fn recall(&self) -> f64 {
        self.true_pos as f64 / self.calls().max(1) as f64
    }
}

/// How far before the first sound the engine may place an onset: the detector takes in up to 4
/// frames of soft start before a run's first voiced frame, plus the frame the sound starts in.
/// A barge-in on speech that began earlier than the caller's act, less this, was on the echo.
pub const ONSET_SLACK_MS: u64 = 100;

/// Scores one interruption call's trace: the first barge-in counts if the speech it reports
/// began with the caller's act.
pub fn score_interruption(s: &mut InterruptScore, call: &EchoCall, t: &CallTrace) {
    let (onset, _) = call.act.expect("an interruption call");
    s.held.take(t);
    let barge = |e: &Event| match e {
        Event::BargeIn { stream_ms, .. } => Some(*stream_ms),
        _ => None,
    };
    match t.first(barge) {
        Some((at, began)) if began + ONSET_SLACK_MS >= onset => {
            s.true_pos += 1;
            s.reactions.push(at - onset);
            if let Some(&c) = t.clears.iter().find(|&&c| c >= at) {
                s.clear_reactions.push(c - onset);
            }
        }
        Some(_) => s.pre_empted.push(call.name.clone()),
        None => s.missed.push(call.name.clone()),
    }
}

/// Runs interruption calls (the host stops playing at a barge-in).
pub fn score_interruptions(config: &SessionConfig, calls: &[EchoCall]) -> InterruptScore {
    let mut s = InterruptScore::default();
    for call in calls {
        let t = run_call(&call.spec(config, AfterBargeIn::Stop));
        score_interruption(&mut s, call, &t);
    }
    s
}

/// One line of report for an interruption score.
pub fn interrupt_report(s: &InterruptScore) -> String {
    format!(
        "recall {:.3} ({} of {}), pre-empted by the echo {}, missed {}, reaction p50 {:?} p90 {:?} ms, to clear p50 {:?} ms, \
         starts held back (dropped as the echo) {}",
        s.recall(),
        s.true_pos,
        s.calls(),
        s.pre_empted.len(),
        s.missed.len(),
        percentile(&s.reactions, 50.0),
        percentile(&s.reactions, 90.0),
        percentile(&s.clear_reactions, 50.0),
        s.held,
    )
}

/// The agent's prompts back to back (seeded order, 300-1000 ms pauses), `ms` long: audio the
/// echo estimator can follow, as PCM.
pub fn agent_talk(ms: u64, seed: u64) -> Vec<i16> {
    let mut order = clips_of(&[ClipKind::Agent]);
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut order);
    let mut out = Vec::new();
    for c in order.iter().cycle() {
        if out.len() as u64 >= ms * PER_MS {
            break;
        }
        out.extend(c.pcm.iter().map(|&v| (f64::from(v) * 32_767.0).round() as i16));
        out.resize(out.len() + (rng.range(300.0, 1_000.0) as u64 * PER_MS) as usize, 0);
    }
    out.truncate((ms * PER_MS) as usize);
    out
}

/// The caller's line of `cond` with nobody speaking, carrying the echo through `echo` of
/// `played` (audio the carrier plays from stream sample `at`; soft-clipped as in
/// [`super::call`] if the setup says so), µ-law re-quantised: `len` samples.
pub fn echo_over_line(cond: &Condition, echo: EchoSetup, played: &[i16], at: usize, len: usize) -> Vec<i16> {
    let mut rng = Rng::new(cond.seed ^ echo.seed);
    let (mut x, after) = line(cond, len, noise_rms_for(cond), &mut rng);
    band_limit(&mut x);
    let mut line = EchoLine::new(echo.path, echo.seed);
    line.play(at, played);
    x.iter()
        .zip(&after)
        .enumerate()
        .map(|(n, (v, a))| {
            let mut v = ((v + a) * 32_768.0) as f32 + line.at(n);
            if echo.soft_clip {
                v = super::call::soft_clip(v);
            }
            ulaw_to_linear(linear_to_ulaw(v.round().clamp(-32_768.0, 32_767.0) as i16))
        })
        .collect()
}
