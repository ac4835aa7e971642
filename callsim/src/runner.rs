//! Many calls at once: staggered starts, a progress line, and blocking entry points for callers
//! without a tokio runtime of their own.

use super::client::{self, CallOptions};
use super::result::CallResult;
use super::script::Script;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many calls, and how they start.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Concurrent calls.
    pub calls: usize,
    /// Call `i` starts `i × stagger` after the first (real traffic does not arrive all at once).
    pub stagger: Duration,
    /// Print a progress line to stderr while the calls run (at most twice a second on a
    /// terminal, every 5 s otherwise).
    pub progress: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self { calls: 1, stagger: Duration::from_millis(50), progress: false }
    }
}

/// Counters the progress line shows.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    pub(crate) started: AtomicU64,
    pub(crate) finished: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bot_frames: AtomicU64,
}

impl Progress {
    fn line(&self, calls: usize, began: Instant) -> String {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (started, finished, failed) = (get(&self.started), get(&self.finished), get(&self.failed));
        format!(
            "callsim {:>6.1} s: {} running, {finished}/{calls} done ({failed} failed), {} frames sent, {} bot frames",
            began.elapsed().as_secs_f64(),
            started - finished,
            get(&self.frames_sent),
            get(&self.bot_frames),
        )
    }
}

/// Runs `run.calls` calls of `script` concurrently (call `i` as [`client::run_call`] with index
/// `i`) and returns their results in index order. Runs on the caller's tokio runtime.
pub async fn run_calls(options: &CallOptions, script: &Script, run: &RunOptions) -> Vec<CallResult> {
    let options = Arc::new(options.clone());
    let script = Arc::new(script.clone());
    let progress = Arc::new(Progress::default());
    let began = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..run.calls {
        let (options, script, progress) = (options.clone(), script.clone(), progress.clone());
        let delay = run.stagger * i as u32;
        tasks.spawn(async move {
            tokio::time::sleep_until((began + delay).into()).await;
            progress.started.fetch_add(1, Ordering::Relaxed);
            let result = client::run(i, &options, &script, Some(&progress)).await;
            if !result.ok() {
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
            progress.finished.fetch_add(1, Ordering::Relaxed);
            result
        });
    }
    let reporter = run.progress.then(|| {
        let (progress, calls) = (progress.clone(), run.calls);
        tokio::spawn(async move {
            let terminal = std::io::stderr().is_terminal();
            let every = if terminal { Duration::from_millis(500) } else { Duration::from_secs(5) };
            let mut ticker = tokio::time::interval(every);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let line = progress.line(calls, began);
                let mut err = std::io::stderr().lock();
                let _ = if terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
                let _ = err.flush();
            }
        })
    });
    let mut results = Vec::with_capacity(run.calls);
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => results.push(result),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    if let Some(reporter) = reporter {
        reporter.abort();
        let terminal = std::io::stderr().is_terminal();
        let line = progress.line(run.calls, began);
        eprintln!("{}{line}", if terminal { "\r\x1b[2K" } else { "" });
    }
    results.sort_by_key(|r| r.index);
    results
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("trunkline-callsim")
        .enable_all()
        .build()
}

/// [`run_calls`] on a runtime of its own (two threads named `trunkline-callsim`), for callers
/// without one, e.g. a thread next to a bot's event loop.
pub fn run_calls_blocking(
    options: &CallOptions,
    script: &Script,
    run: &RunOptions,
) -> std::io::Result<Vec<CallResult>> {
    Ok(runtime()?.block_on(run_calls(options, script, run)))
}

/// One call ([`client::run_call`] with index 0) on a runtime of its own.
pub fn run_call_blocking(options: &CallOptions, script: &Script) -> std::io::Result<CallResult> {
    Ok(runtime()?.block_on(client::run_call(0, options, script)))
}
