//! Load benchmark: N concurrent calls in one threaded engine, at real-time pacing.
//!
//! ```text
//! cargo run --release -p trunkline-tools --bin loadbench -- [--calls N] [--seconds S] [--workers W]
//!     [--feeders F] [--agent-rate HZ] [--json] [--max]
//! ```
//!
//! Every call plays the committed Twilio call `tools/fixtures/call_10s.jsonl`
//! (`scripts/make_call_jsonl.py`: the speech fixture as Twilio `media` messages) in a loop, its
//! numbers (`sequenceNumber`, `chunk`, `timestamp`) continued across loops, one message every
//! 20 ms. Feeder threads push each call's messages on its own 20 ms grid, the calls' grids
//! staggered evenly over the 20 ms. One agent thread waits on the engine's wakeup, and for every
//! call reads the caller audio, polls events, plays 20 ms of reply audio (24 kHz) per frame
//! received, so both directions run all the time (the caller's speech barges in on it), and
//! takes the paced outbound messages, as a carrier connection would.
//!
//! Reported:
//! - CPU per call-second and per 20 ms frame, from `getrusage` (the whole process) and from the
//!   engine's worker threads alone (`/proc/self/task/*/schedstat`); the process figure includes
//!   the harness's own work (formatting messages, the host calls), so it is an upper bound;
//! - real-time calls per core these imply (one core = 1 s of CPU per second);
//! - engine-added latency: a `media` message pushed → its audio in the agent ring, as the engine
//!   measures it (`Engine::latency`), p50/p99/p99.9/max; and the same as the agent thread sees it
//!   (through the wakeup fd, so including the agent's own delay in getting to that call);
//! - outbound pacing error: how far the interval between two consecutive `media` frames of one
//!   call, as the agent takes them, is from 20 ms (after the lead burst at each new utterance),
//!   timed on about 100 of the calls, which the agent looks at from 0.3 ms before each frame is
//!   due (a frame more than 0.3 ms early reads as 0.3 ms early);
//! - per-session memory: bytes allocated by `open_session` (a counting allocator), per session
//!   (`engine/tests/session_memory.rs` holds the default session to at most 128 KiB);
//! - every drop counter, summed over the calls (plus the feeders' lateness, which says whether
//!   the harness itself kept up).
//!
//! `--max` runs trials of `--seconds` (default 5 there) at increasing N (doubling, then bisecting)
//! and reports the largest N that kept real time: no drops, latency p99 ≤ 20 ms (one frame),
//! feeders on time (p99 lateness ≤ 5 ms) and pacing p99 ≤ 20 ms.

use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trunkline::runtime::LatencyHistogram;
use trunkline::{Engine, EngineConfig, Event, MessageKind, Session, SessionConfig, SessionStats};

// ---------------------------------------------------------------------------------------------
// A counting allocator: live bytes and allocation count, for the per-session memory figure.

struct Counting;
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Settings and the fixture.

#[derive(Clone)]
struct Options {
    calls: usize,
    seconds: f64,
    workers: Option<usize>,
    feeders: usize,
    agent_rate: u32,
    /// `EngineConfig::worker_nice` (the engine's default unless given).
    worker_nice: i32,
    json: bool,
    max: bool,
}

fn parse_args() -> Options {
    let mut o = Options {
        calls: 200,
        seconds: 10.0,
        workers: None,
        feeders: 2,
        agent_rate: 16_000,
        worker_nice: EngineConfig::default().worker_nice,
        json: false,
        max: false,
    };
    let mut seconds_set = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{a} needs a value")));
        match a.as_str() {
            "--calls" => o.calls = value().parse().unwrap_or_else(|_| usage("--calls N")),
            "--seconds" => {
                o.seconds = value().parse().unwrap_or_else(|_| usage("--seconds S"));
                seconds_set = true;
            }
            "--workers" => o.workers = Some(value().parse().unwrap_or_else(|_| usage("--workers W"))),
            "--feeders" => o.feeders = value().parse().unwrap_or_else(|_| usage("--feeders F")),
            "--agent-rate" => o.agent_rate = value().parse().unwrap_or_else(|_| usage("--agent-rate HZ")),
            "--worker-nice" => {
                o.worker_nice = value().parse().unwrap_or_else(|_| usage("--worker-nice N"));
            }
            "--json" => o.json = true,
            "--max" => o.max = true,
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !seconds_set && o.max {
        o.seconds = 5.0;
    }
    o.feeders = o.feeders.max(1);
    o
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("loadbench: {error}");
    }
    eprintln!(
        "usage: loadbench [--calls N (200)] [--seconds S (10)] [--workers W (cores)] [--feeders F (2)] \
         [--agent-rate HZ (16000)] [--worker-nice N (-10; 0 = default priority)] [--json] [--max]"
    );
    std::process::exit(2)
}

/// The committed call: its `connected` and `start` messages verbatim, and the base64 payloads of
/// its `media` messages (re-sent with continued numbers).
struct Fixture {
    connected: String,
    start: String,
    stream_sid: String,
    payloads: Vec<String>,
}

fn load_fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/call_10s.jsonl");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (mut connected, mut start, mut stream_sid, mut payloads) = (None, None, None, Vec::new());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("fixture line is JSON");
        match v["event"].as_str() {
            Some("connected") => connected = Some(line.to_owned()),
            Some("start") => {
                start = Some(line.to_owned());
                stream_sid = v["streamSid"].as_str().map(str::to_owned);
            }
            Some("media") => payloads.push(v["media"]["payload"].as_str().expect("payload").to_owned()),
            _ => {}
        }
    }
    Fixture {
        connected: connected.expect("connected"),
        start: start.expect("start"),
        stream_sid: stream_sid.expect("streamSid"),
        payloads,
    }
}

/// Writes the `media` message for frame `k` exactly as Twilio lays it out.
fn write_media(out: &mut String, fixture: &Fixture, k: u64) {
    out.clear();
    let payload = &fixture.payloads[(k % fixture.payloads.len() as u64) as usize];
    let _ = write!(
        out,
        r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{}"}},"streamSid":"{}"}}"#,
        k + 2,
        k + 1,
        k * 20,
        payload,
        fixture.stream_sid
    );
}

// ---------------------------------------------------------------------------------------------
// Measurement helpers.

/// A histogram with 1 µs buckets up to 1 s (larger values land in the last bucket).
struct Histogram {
    buckets: Vec<u32>,
    count: u64,
    max: u64,
}

impl Histogram {
    const LIMIT: usize = 1_000_000;
    fn new() -> Self {
        Self { buckets: vec![0; Self::LIMIT + 1], count: 0, max: 0 }
    }
    fn record(&mut self, us: u64) {
        self.buckets[(us as usize).min(Self::LIMIT)] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }
    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
    }
    fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (us, &n) in self.buckets.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return us as u64;
            }
        }
        self.max
    }
}

fn rusage(who: libc::c_int) -> Duration {
    // SAFETY: getrusage writes one rusage struct into the zeroed value we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a live rusage.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Waits for the engine's wakeup fd with a µs timeout (`Engine::wait` counts in ms), then resets it.
fn wait_us(engine: &Engine, timeout_us: u64) {
    let mut pfd = libc::pollfd { fd: engine.wakeup_fd(), events: libc::POLLIN, revents: 0 };
    let ts = libc::timespec {
        tv_sec: (timeout_us / 1_000_000) as _,
        tv_nsec: ((timeout_us % 1_000_000) * 1000) as _,
    };
    // SAFETY: one valid pollfd and a valid timespec; no signal mask.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    engine.clear_wakeup();
}

/// CPU time of the engine's worker threads (named `trunkline-worker-N`), from schedstat.
fn worker_cpu() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("trunkline-work") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

// ---------------------------------------------------------------------------------------------
// One trial.

/// Push timestamps kept per call (a frame's audio is read well within this many frames).
const PUSH_SLOTS: usize = 256;
const FRAME_US: u64 = 20_000;

struct Call {
    session: Mutex<Session>,
    /// Engine-clock µs at which frame `k` was pushed, at `k % PUSH_SLOTS`.
    pushed_at: Vec<AtomicU64>,
    /// Frames pushed so far.
    pushed: AtomicU64,
}

/// The counters of queues that were full (docs/reliability.md: "Nothing is lost silently").
const DROP_COUNTERS: [&str; 5] = [
    "messages_refused_full",
    "play_refused_full",
    "agent_samples_dropped",
    "events_dropped",
    "outbound_stalls",
];

struct Trial {
    calls: usize,
    seconds: f64,
    frames_pushed: u64,
    process_cpu: Duration,
    worker_cpu: Duration,
    harness_cpu: Duration,
    latency: Histogram,
    /// The engine's own figure (`Engine::latency`) over the same frames.
    engine_latency: LatencyHistogram,
    pacing: Histogram,
    feeder_late: Histogram,
    session_bytes: f64,
    allocations_during_run: u64,
    /// Every counter summed over the calls, in `SessionStats::fields` order.
    totals: [u64; SessionStats::COUNT],
    barge_ins: u64,
    workers: usize,
    prioritised_workers: usize,
}

impl Trial {
    fn call_seconds(&self) -> f64 {
        self.calls as f64 * self.seconds
    }
    fn frames(&self) -> f64 {
        self.frames_pushed.max(1) as f64
    }
    fn counter(&self, name: &str) -> u64 {
        let names = SessionStats::default().fields();
        names.iter().zip(self.totals).find(|((n, _), _)| *n == name).map_or(0, |(_, v)| v)
    }
    fn drops(&self) -> u64 {
        DROP_COUNTERS.iter().map(|name| self.counter(name)).sum()
    }
    fn real_time(&self) -> bool {
        self.drops() == 0
            && self.latency.quantile(0.99) <= FRAME_US
            && self.feeder_late.quantile(0.99) <= 5_000
            && self.pacing.quantile(0.99) <= FRAME_US
    }
}

fn run_trial(o: &Options, fixture: &Arc<Fixture>) -> Trial {
    let engine = Arc::new(
        Engine::new(EngineConfig {
            workers: o.workers,
            max_sessions: o.calls.max(1),
            worker_nice: o.worker_nice,
            ..Default::default()
        })
        .expect("engine"),
    );
    let config = SessionConfig { agent_rate: o.agent_rate, ..Default::default() };
    let samples_per_frame = (o.agent_rate / 50) as u64;

    // Open every call; the allocator tells what one costs.
    let live_before = LIVE_BYTES.load(Ordering::SeqCst);
    let mut sessions = Vec::with_capacity(o.calls);
    for _ in 0..o.calls {
        sessions.push(engine.open_session(&config).expect("open_session"));
    }
    let session_bytes = (LIVE_BYTES.load(Ordering::SeqCst) - live_before) as f64 / o.calls.max(1) as f64;
    let calls: Arc<Vec<Call>> = Arc::new(
        sessions
            .into_iter()
            .map(|mut s| {
                s.push_text(&fixture.connected).expect("connected");
                s.push_text(&fixture.start).expect("start");
                Call {
                    session: Mutex::new(s),
                    pushed_at: (0..PUSH_SLOTS).map(|_| AtomicU64::new(0)).collect(),
                    pushed: AtomicU64::new(0),
                }
            })
            .collect(),
    );
    let clock = Instant::now();
    let now_us = move || clock.elapsed().as_micros() as u64;
    std::thread::sleep(Duration::from_millis(50));

    let stop = Arc::new(AtomicBool::new(false));
    let ready: Arc<crossbeam_queue::ArrayQueue<usize>> =
        Arc::new(crossbeam_queue::ArrayQueue::new(o.calls.max(1) * 8));
    let feeders_done = Arc::new(AtomicUsize::new(0));
    let harness_cpu_ns = Arc::new(AtomicU64::new(0));
    let frames_per_call = (o.seconds * 50.0).round() as u64;
    let start_us = now_us() + 20_000;

    let allocations_before = ALLOCATIONS.load(Ordering::SeqCst);
    let cpu_before = rusage(libc::RUSAGE_SELF);
    let workers_before = worker_cpu();
    let engine_latency_before = engine.latency();

    // Feeders: call i belongs to feeder i % F and is pushed at start + k * 20 ms + phase(i).
    let mut feeder_handles = Vec::new();
    for f in 0..o.feeders {
        let (calls, fixture, ready, done, cpu) =
            (calls.clone(), fixture.clone(), ready.clone(), feeders_done.clone(), harness_cpu_ns.clone());
        let (n, step) = (o.calls, o.feeders);
        let handle = std::thread::Builder::new()
            .name(format!("feeder-{f}"))
            .spawn(move || {
                let mine: Vec<usize> = (f..n).step_by(step).collect();
                let phase = |i: usize| i as u64 * FRAME_US / n as u64;
                let mut late = Histogram::new();
                let mut msg = String::with_capacity(1024);
                for k in 0..frames_per_call {
                    for &i in &mine {
                        let due = start_us + k * FRAME_US + phase(i);
                        let mut now = now_us();
                        if due > now + 100 {
                            std::thread::sleep(Duration::from_micros(due - now));
                            now = now_us();
                        }
                        late.record(now.saturating_sub(due));
                        write_media(&mut msg, &fixture, k);
                        let call = &calls[i];
                        let at = now_us();
                        call.pushed_at[(k as usize) % PUSH_SLOTS].store(at, Ordering::Release);
                        let result = call.session.lock().unwrap().push(msg.as_bytes(), MessageKind::Text);
                        if result.is_ok() {
                            call.pushed.store(k + 1, Ordering::Release);
                            let _ = ready.push(i);
                        }
                    }
                }
                cpu.fetch_add(rusage(libc::RUSAGE_THREAD).as_nanos() as u64, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Release);
                late
            })
            .expect("feeder thread");
        feeder_handles.push(handle);
    }

    // The agent.
    let agent = {
        let (calls, engine, stop, ready, cpu) =
            (calls.clone(), engine.clone(), stop.clone(), ready.clone(), harness_cpu_ns.clone());
        std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || {
                let n = calls.len();
                let reply: Vec<i16> = (0..480).map(|i| ((i as f32 * 0.13).sin() * 4000.0) as i16).collect();
                let mut latency = Histogram::new();
                let mut pacing = Histogram::new();
                let mut read_total = vec![0u64; n];
                let mut frames_seen = vec![0u64; n];
                let mut played = vec![0u64; n];
                let mut last_media = vec![0u64; n];
                let mut run_len = vec![0u32; n];
                let mut barge_ins = 0u64;
                let mut pcm = vec![0i16; 8192];
                let mut out = vec![0u8; 16 * 1024];
                // Calls with a frame pushed whose audio has not been read yet, with when to look
                // next and since when it is waited for (looked at now, then after a quarter of the
                // wait so far, 100 µs to 5 ms: the measured latency is at most 25 % high).
                let mut pending: VecDeque<(u64, usize, u64)> = VecDeque::with_capacity(n * 8);
                // Calls whose next outbound frame is due (min-heap on time).
                let mut due: BinaryHeap<std::cmp::Reverse<(u64, usize)>> = BinaryHeap::with_capacity(n * 2);
                let mut in_heap = vec![false; n];
                let mut in_pending = vec![false; n];
                let lead_frames = 5u32;
                // Pacing is timed on about 100 calls, looked at just before each frame is due;
                // the others take their outbound messages when their audio is read.
                let watch_step = (n / 100).max(1);
                // Reads, polls, plays and takes outbound for call `i`; returns when its next
                // outbound frame should be looked for, and whether audio it was pushed is unread.
                let mut visit = |i: usize, now: u64| -> (Option<u64>, bool) {
                    let call = &calls[i];
                    let mut s = call.session.lock().unwrap();
                    loop {
                        let got = s.read_audio(&mut pcm);
                        if got == 0 {
                            break;
                        }
                        read_total[i] += got as u64;
                    }
                    let complete = read_total[i] / samples_per_frame;
                    while frames_seen[i] < complete {
                        let k = frames_seen[i] as usize;
                        let at = call.pushed_at[k % PUSH_SLOTS].load(Ordering::Acquire);
                        latency.record(now.saturating_sub(at));
                        frames_seen[i] += 1;
                    }
                    while let Some(ev) = s.poll_event() {
                        if matches!(ev, Event::BargeIn { .. }) {
                            barge_ins += 1;
                        }
                    }
                    // The agent talks all the time: 20 ms of reply per caller frame received.
                    let pushed = call.pushed.load(Ordering::Acquire);
                    while played[i] < pushed {
                        if s.play(&reply, 24_000).is_err() {
                            break;
                        }
                        played[i] += 1;
                    }
                    let mut media = false;
                    let watched = i.is_multiple_of(watch_step);
                    while let Some((_, len)) = s.next_outbound_into(&mut out) {
                        let msg = &out[..len];
                        if msg.starts_with(br#"{"event":"media""#) {
                            media = true;
                            if watched && run_len[i] >= lead_frames {
                                pacing.record(now.saturating_sub(last_media[i]).abs_diff(FRAME_US));
                            }
                            run_len[i] = run_len[i].saturating_add(1);
                            last_media[i] = now;
                        } else if msg.starts_with(br#"{"event":"clear""#) {
                            run_len[i] = 0;
                        }
                    }
                    drop(s);
                    let next = if !watched {
                        None
                    } else if media {
                        Some(last_media[i] + FRAME_US - 300)
                    } else {
                        (last_media[i] > 0).then_some(now + 100)
                    };
                    (next, frames_seen[i] < pushed)
                };
                loop {
                    let finished = stop.load(Ordering::Acquire);
                    let first =
                        due.peek().map(|r| r.0.0).into_iter().chain(pending.front().map(|p| p.0)).min();
                    let timeout = first.map_or(1_000, |t| t.saturating_sub(now_us()).min(1_000));
                    wait_us(&engine, timeout);
                    let now = now_us();
                    while let Some(i) = ready.pop() {
                        if !in_pending[i] {
                            in_pending[i] = true;
                            pending.push_back((now, i, now));
                        }
                    }
                    for _ in 0..pending.len() {
                        let &(at, i, since) = pending.front().unwrap();
                        if at > now {
                            break;
                        }
                        pending.pop_front();
                        let (next, unread) = visit(i, now);
                        if let Some(t) = next
                            && !in_heap[i]
                        {
                            due.push(std::cmp::Reverse((t, i)));
                            in_heap[i] = true;
                        }
                        if unread {
                            let backoff = ((now - since) / 4).clamp(100, 5_000);
                            pending.push_back((now + backoff, i, since));
                        } else {
                            in_pending[i] = false;
                        }
                    }
                    // Calls whose next outbound frame is about due.
                    while let Some(&std::cmp::Reverse((t, i))) = due.peek() {
                        if t > now {
                            break;
                        }
                        due.pop();
                        in_heap[i] = false;
                        if let (Some(t), _) = visit(i, now) {
                            due.push(std::cmp::Reverse((t, i)));
                            in_heap[i] = true;
                        }
                    }
                    if finished {
                        break;
                    }
                }
                cpu.fetch_add(rusage(libc::RUSAGE_THREAD).as_nanos() as u64, Ordering::Relaxed);
                (latency, pacing, barge_ins)
            })
            .expect("agent thread")
    };

    let mut feeder_late = Histogram::new();
    for h in feeder_handles {
        feeder_late.merge(&h.join().expect("feeder"));
    }
    // Let the last frames through, then stop the agent.
    std::thread::sleep(Duration::from_millis(100));
    let process_cpu = rusage(libc::RUSAGE_SELF) - cpu_before;
    let worker_cpu = worker_cpu() - workers_before;
    stop.store(true, Ordering::Release);
    let (latency, pacing, barge_ins) = agent.join().expect("agent");
    let engine_latency = engine.latency().since(&engine_latency_before);
    let allocations_during_run = ALLOCATIONS.load(Ordering::SeqCst) - allocations_before;

    let mut totals = [0u64; SessionStats::COUNT];
    let mut frames_pushed = 0;
    for call in calls.iter() {
        frames_pushed += call.pushed.load(Ordering::Acquire);
        for (a, b) in totals.iter_mut().zip(call.session.lock().unwrap().stats().values()) {
            *a += b;
        }
    }
    let workers = engine.workers();
    let prioritised_workers = engine.prioritised_workers();
    drop(calls);
    Trial {
        calls: o.calls,
        seconds: frames_per_call as f64 / 50.0,
        frames_pushed,
        process_cpu,
        worker_cpu,
        harness_cpu: Duration::from_nanos(harness_cpu_ns.load(Ordering::Relaxed)),
        latency,
        engine_latency,
        pacing,
        feeder_late,
        session_bytes,
        allocations_during_run,
        totals,
        barge_ins,
        workers,
        prioritised_workers,
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn report_json(t: &Trial) -> serde_json::Value {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let per_cs = |d: Duration| us(d) / t.call_seconds();
    let per_frame = |d: Duration| us(d) / t.frames();
    let drops: serde_json::Map<String, serde_json::Value> =
        DROP_COUNTERS.iter().map(|&k| (k.to_owned(), json!(t.counter(k)))).collect();
    let counters: serde_json::Map<String, serde_json::Value> = SessionStats::default()
        .fields()
        .iter()
        .zip(t.totals)
        .map(|((k, _), v)| ((*k).to_owned(), json!(v)))
        .collect();
    let engine_cpu = t.process_cpu.saturating_sub(t.harness_cpu);
    json!({
        "calls": t.calls,
        "seconds": t.seconds,
        "workers": t.workers,
        "frames_pushed": t.frames_pushed,
        "cpu": {
            "process_us_per_call_second": per_cs(t.process_cpu),
            "process_us_per_frame": per_frame(t.process_cpu),
            "workers_us_per_call_second": per_cs(t.worker_cpu),
            "workers_us_per_frame": per_frame(t.worker_cpu),
            "engine_us_per_frame": per_frame(engine_cpu),
            "harness_threads_us_per_frame": per_frame(t.harness_cpu),
            "calls_per_core_process": 1e6 / per_cs(t.process_cpu),
            "calls_per_core_workers": 1e6 / per_cs(t.worker_cpu),
            "calls_per_core_engine": 1e6 / per_cs(engine_cpu),
        },
        "engine_latency_us": {
            "p50": t.engine_latency.quantile(0.50),
            "p99": t.engine_latency.quantile(0.99),
            "p99_9": t.engine_latency.quantile(0.999),
            "max": t.engine_latency.quantile(1.0),
            "samples": t.engine_latency.count(),
        },
        "prioritised_workers": t.prioritised_workers,
        "latency_us": {
            "p50": t.latency.quantile(0.50),
            "p99": t.latency.quantile(0.99),
            "p99_9": t.latency.quantile(0.999),
            "max": t.latency.max,
            "samples": t.latency.count,
        },
        "pacing_error_us": {
            "p50": t.pacing.quantile(0.50),
            "p99": t.pacing.quantile(0.99),
            "max": t.pacing.max,
            "samples": t.pacing.count,
        },
        "feeder_late_us": { "p99": t.feeder_late.quantile(0.99), "max": t.feeder_late.max },
        "memory": {
            "bytes_per_session": t.session_bytes,
            "kib_per_session": t.session_bytes / 1024.0,
        },
        "allocations_during_run": t.allocations_during_run,
        "drops": drops,
        "drops_total": t.drops(),
        "barge_ins_seen": t.barge_ins,
        "real_time": t.real_time(),
        "counters": counters,
    })
}

fn report_text(t: &Trial) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let engine_cpu = t.process_cpu.saturating_sub(t.harness_cpu);
    println!(
        "{} calls x {:.0} s on {} worker(s): {} frames pushed",
        t.calls, t.seconds, t.workers, t.frames_pushed
    );
    println!(
        "  CPU per call-second: process {:.0} µs, engine (process - harness threads) {:.0} µs, workers {:.0} µs",
        us(t.process_cpu) / t.call_seconds(),
        us(engine_cpu) / t.call_seconds(),
        us(t.worker_cpu) / t.call_seconds()
    );
    println!(
        "  CPU per frame:       process {:.2} µs, engine {:.2} µs, workers {:.2} µs",
        us(t.process_cpu) / t.frames(),
        us(engine_cpu) / t.frames(),
        us(t.worker_cpu) / t.frames()
    );
    println!(
        "  real-time calls per core: {:.0} (process), {:.0} (engine), {:.0} (workers)",
        1e6 * t.call_seconds() / us(t.process_cpu),
        1e6 * t.call_seconds() / us(engine_cpu),
        1e6 * t.call_seconds() / us(t.worker_cpu)
    );
    let q = |x: f64| t.engine_latency.quantile(x).unwrap_or(0);
    println!(
        "  engine-added latency, push → audio in the agent ring (Engine::latency): p50 {} µs, p99 {} µs, \
         p99.9 {} µs, max {} µs ({} messages; workers at the requested priority: {} of {})",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0),
        t.engine_latency.count(),
        t.prioritised_workers,
        t.workers
    );
    println!(
        "  latency push → audio read by the agent thread (harness-observed): p50 {} µs, p99 {} µs, \
         p99.9 {} µs, max {} µs ({} frames)",
        t.latency.quantile(0.5),
        t.latency.quantile(0.99),
        t.latency.quantile(0.999),
        t.latency.max,
        t.latency.count
    );
    println!(
        "  outbound pacing error: p50 {} µs, p99 {} µs, max {} µs ({} intervals)",
        t.pacing.quantile(0.5),
        t.pacing.quantile(0.99),
        t.pacing.max,
        t.pacing.count
    );
    println!(
        "  memory per session: {:.1} KiB allocated by open_session; {} allocations during the run",
        t.session_bytes / 1024.0,
        t.allocations_during_run
    );
    let each: Vec<String> = DROP_COUNTERS.iter().map(|k| format!("{k} {}", t.counter(k))).collect();
    println!("  drops: {} ({})", t.drops(), each.join(", "));
    println!(
        "  also: barge-ins {}, underruns {}, frames out {}, protocol errors {}, feeder lateness p99 {} µs",
        t.counter("barge_ins"),
        t.counter("underruns"),
        t.counter("frames_out"),
        t.counter("protocol_errors"),
        t.feeder_late.quantile(0.99)
    );
    println!("  real time: {}", if t.real_time() { "yes" } else { "NO" });
}

fn main() {
    let o = parse_args();
    let fixture = Arc::new(load_fixture());
    if !o.max {
        let t = run_trial(&o, &fixture);
        if o.json {
            println!("{}", serde_json::to_string_pretty(&report_json(&t)).unwrap());
        } else {
            report_text(&t);
        }
        return;
    }
    // --max: double until real time is lost, then bisect to within 5 %.
    let mut trials = Vec::new();
    let try_n = |n: usize, trials: &mut Vec<serde_json::Value>| {
        let t = run_trial(&Options { calls: n, ..o.clone() }, &fixture);
        if !o.json {
            report_text(&t);
        }
        trials.push(report_json(&t));
        t.real_time()
    };
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut n = o.calls.max(50);
    while bad.is_none() {
        if try_n(n, &mut trials) {
            good = n;
            n *= 2;
            if n > 8192 {
                break;
            }
        } else {
            bad = Some(n);
        }
    }
    if let Some(mut hi) = bad {
        let mut lo = good;
        while hi - lo > (hi / 20).max(10) {
            let mid = (lo + hi) / 2;
            if try_n(mid, &mut trials) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        good = lo;
    }
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "max_real_time_calls": good, "trials": trials })).unwrap()
        );
    } else {
        println!("largest N that kept real time: {good}");
    }
}
