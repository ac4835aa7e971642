//! The engine: worker threads, the wakeup handle, and session creation.

use super::clock::{EngineClock, ManualClock};
use super::latency::{LatencyHistogram, LatencyRecorder};
use super::priority;
use super::recorder::{self, Recorder};
use super::records;
use super::session::{Session, play_reserve};
use super::shared::SessionShared;
use super::totals::{self, MetricsSnapshot, SessionTotals};
use super::wakeup::Wakeup;
use super::worker::{self, Control};
use super::worker_session::{HoldPolicy, WorkerSession};
use crate::config::{EngineConfig, SessionConfig};
use crate::pipeline::PLAY_PIECE;
use crate::pipeline::PipelineError;
use crate::pipeline::SessionPipeline;
use crate::protocol::{Dialect, ProtocolError, StreamStart, dialect_by_name};
use crossbeam_channel::{Receiver, Sender};
use ringbuf::HeapRb;
use ringbuf::traits::Split;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// Why the engine could not do something.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A worker thread or the wakeup fd could not be created.
    #[error("engine start-up failed: {0}")]
    Io(#[from] std::io::Error),
    /// The session settings are invalid.
    #[error(transparent)]
    Config(#[from] PipelineError),
    /// `SessionConfig::dialect` names no dialect this build speaks, or an option it cannot take.
    #[error(transparent)]
    Dialect(crate::protocol::DialectError),
    /// The start parameters of a session opened already started were refused (a format the
    /// engine cannot take, or one the dialect refuses).
    #[error("the stream's start was refused: {0}")]
    Start(ProtocolError),
    /// `max_sessions` sessions are already open.
    #[error("too many sessions (limit {0})")]
    TooManySessions(usize),
    /// The engine is shutting down.
    #[error("engine is shut down")]
    Shutdown,
    /// `SessionConfig::record_path` cannot be recorded to: an unknown extension, or a file that
    /// cannot be created.
    #[error("cannot record to {}: {reason}", path.display())]
    Record {
        /// The path asked for.
        path: std::path::PathBuf,
        /// Why not.
        reason: String,
    },
}

pub(crate) struct WorkerHandle {
    pub(crate) thread: Thread,
    pub(crate) control: Sender<Control>,
    pub(crate) load: AtomicUsize,
    /// One flag per session slot: set by the host when it gave that session work (a message, agent
    /// audio, a mark, an interrupt, room in a stalled outbound ring, a close); the worker steps
    /// only flagged sessions and those whose timer is due.
    pub(crate) ready: Box<[AtomicBool]>,
    /// What the worker is doing, so that hosts wake it only when it waits for work (see
    /// [`worker::State`]).
    pub(crate) state: AtomicU8,
    /// Slots not in use (host side: taken at open, given back when the retired session is freed).
    free_slots: Mutex<Vec<usize>>,
    /// Engine-added latency of the messages this worker processed.
    pub(crate) latency: LatencyRecorder,
}

impl WorkerHandle {
    /// The slot shared by sessions opened when no other was free (the last one).
    pub(crate) fn overflow_slot(&self) -> usize {
        self.ready.len() - 1
    }

    /// Tells the worker that session `slot` has work, waking it if it is idle. Lock-free; a
    /// syscall (futex wake) only when the worker was parked waiting for work.
    pub(crate) fn wake(&self, slot: usize) {
        self.ready[slot].store(true, Ordering::SeqCst);
        // why SeqCst on both: the worker stores `Idle` and then re-reads every flag before it
        // parks, so either it sees this flag or this load sees `Idle` (and the unpark token
        // makes a park right after it return at once).
        if self.state.load(Ordering::SeqCst) == worker::State::Idle as u8 {
            self.thread.unpark();
        }
    }
}

/// Where a threaded session runs: its worker and its slot there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WorkerRef {
    pub(crate) index: usize,
    pub(crate) slot: usize,
}

/// What sessions and workers share with the engine.
pub(crate) struct EngineShared {
    pub(crate) config: EngineConfig,
    pub(crate) clock: EngineClock,
    pub(crate) wakeup: Wakeup,
    pub(crate) workers: Vec<WorkerHandle>,
    pub(crate) retired_tx: Sender<Box<WorkerSession>>,
    retired_rx: Receiver<Box<WorkerSession>>,
    pub(crate) open_sessions: AtomicUsize,
    pub(crate) shutdown: AtomicBool,
    /// Every session's counters, live and freed (for [`Engine::metrics_snapshot`]).
    totals: Arc<SessionTotals>,
    /// The worker threads, to read their CPU clocks; emptied before they are joined (a joined
    /// thread's id must not be used), under the lock that readers hold.
    worker_threads: Mutex<Vec<libc::pthread_t>>,
    /// The recorder thread, started with the first recording session.
    recorder: Mutex<Option<Recorder>>,
}

impl EngineShared {
    /// Monotonic microseconds since the engine started.
    pub(crate) fn now_us(&self) -> u64 {
        self.clock.now_us()
    }

    /// Wakes the worker of `at` for that session (see [`WorkerHandle::wake`]).
    pub(crate) fn wake(&self, at: WorkerRef) {
        self.workers[at.index].wake(at.slot);
    }

    /// Opens a session speaking `dialect` (from any thread), its stream already started with
    /// `start` if given.
    pub(crate) fn open_session(
        self: &Arc<Self>,
        config: &SessionConfig,
        dialect: Box<dyn Dialect>,
        start: Option<StreamStart>,
    ) -> Result<Session, EngineError> {
        self.reap();
        if self.shutdown.load(Ordering::Acquire) {
            return Err(EngineError::Shutdown);
        }
        let limit = self.config.max_sessions;
        if self.open_sessions.fetch_add(1, Ordering::AcqRel) >= limit {
            self.open_sessions.fetch_sub(1, Ordering::AcqRel);
            return Err(EngineError::TooManySessions(limit));
        }
        match self.build(config, dialect, start) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.open_sessions.fetch_sub(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    fn build(
        self: &Arc<Self>,
        config: &SessionConfig,
        dialect: Box<dyn Dialect>,
        start: Option<StreamStart>,
    ) -> Result<Session, EngineError> {
        let config = &checked(config, dialect.as_ref())?;
        let mut pipeline = SessionPipeline::new(config, dialect)?;
        // The worker hands a message out only with room for the largest one in the ring.
        pipeline.limit_outbound_messages(config.outbound_ring_bytes.saturating_sub(records::HEADER));
        // The tap goes in before the stream can start (it learns the formats); the file is
        // created once the start is taken, on the host's thread: a path that cannot be recorded
        // to refuses the open, and an open refused otherwise leaves the path as it was.
        let pending = match config.record_path.as_deref().map(recorder::open).transpose()? {
            Some((tap, pending)) => {
                pipeline.set_tap(Box::new(tap));
                Some(pending)
            }
            None => None,
        };
        if let Some(start) = start {
            // Here, on the host's thread, before any worker sees the session (it allocates).
            pipeline.start_with(start).map_err(EngineError::Start)?;
        }
        if let Some(pending) = pending {
            let mut recorder = self.recorder.lock().unwrap_or_else(|e| e.into_inner());
            if recorder.is_none() {
                *recorder = Some(Recorder::start()?);
            }
            // Only once the start is taken and the recorder runs is a file at the path replaced.
            let opened = pending.create()?;
            if let Some(recorder) = recorder.as_ref() {
                recorder.add(opened);
            }
        }
        let shared = SessionShared::new(config.event_capacity, self.now_us());
        let registration = self.totals.register(shared.counters.clone());
        let session_shared = Arc::new(shared.with_registration(registration));
        let (in_prod, in_cons) = HeapRb::<u8>::new(config.inbound_ring_bytes).split();
        let (play_prod, play_cons) = HeapRb::<u8>::new(config.play_ring_bytes).split();
        let (pcm_prod, pcm_cons) = super::agent_ring::agent_ring(config);
        let (out_prod, out_cons) = HeapRb::<u8>::new(config.outbound_ring_bytes).split();
        let mut worker_side = Box::new(WorkerSession::new(
            pipeline,
            session_shared.clone(),
            in_cons,
            play_cons,
            pcm_prod,
            out_prod,
            HoldPolicy::new(config),
        ));
        let placement = if self.workers.is_empty() {
            super::session::Placement::Inline(worker_side)
        } else {
            let (index, worker) = self
                .workers
                .iter()
                .enumerate()
                .min_by_key(|(_, w)| w.load.load(Ordering::Relaxed))
                .expect("at least one worker");
            // Each worker has two slots for every session the engine allows (closed sessions
            // keep theirs until the worker has retired them and a host call reaped them), so one
            // is nearly always free; if not, the session shares the overflow slot, whose
            // sessions the worker also polls on a short timer.
            let slot = worker.free_slots.lock().ok().and_then(|mut free| free.pop());
            let slot = slot.unwrap_or_else(|| worker.overflow_slot());
            let at = WorkerRef { index, slot };
            if slot != worker.overflow_slot() {
                worker.ready[slot].store(false, Ordering::SeqCst);
            }
            worker_side.set_worker(at);
            worker.load.fetch_add(1, Ordering::Relaxed);
            if worker.control.send(Control::Open(worker_side)).is_err() {
                self.release_slot(at);
                return Err(EngineError::Shutdown);
            }
            worker.thread.unpark();
            super::session::Placement::Worker(at)
        };
        Ok(Session::new(
            self.clone(),
            session_shared,
            placement,
            config,
            in_prod,
            play_prod,
            pcm_cons,
            out_cons,
        ))
    }

    /// Frees sessions the workers have finished with (on the host's thread), and gives their
    /// slots back.
    pub(crate) fn reap(&self) {
        while let Ok(session) = self.retired_rx.try_recv() {
            if let Some(at) = session.worker() {
                self.release_slot(at);
            }
        }
    }

    /// See [`Engine::metrics_snapshot`].
    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        // Sessions the workers have finished with are freed first, so their final counts are in.
        self.reap();
        let mut latency = LatencyHistogram::default();
        for worker in &self.workers {
            worker.latency.add_to(&mut latency);
        }
        let worker_cpu = {
            let threads = self.worker_threads.lock().unwrap_or_else(|e| e.into_inner());
            threads.iter().map(|&t| totals::thread_cpu_time(t)).collect()
        };
        let sums = self.totals.sum();
        MetricsSnapshot {
            sessions: sums.sessions,
            active: self.open_sessions.load(Ordering::Acquire),
            opened: sums.opened,
            ended: sums.ended,
            live_jitter_max_us: sums.live_jitter_max_us,
            call_quality: sums.call_quality,
            barge_in_reaction: sums.barge_in_reaction,
            protocol_errors: sums.protocol_errors,
            latency,
            worker_cpu,
            process_cpu: totals::process_cpu_time(),
        }
    }

    pub(crate) fn release_slot(&self, at: WorkerRef) {
        let worker = &self.workers[at.index];
        if at.slot != worker.overflow_slot()
            && let Ok(mut free) = worker.free_slots.lock()
        {
            free.push(at.slot);
        }
    }
}

/// `config` sized for `dialect` ([`sized_for`]), once it is known to open: its rings and the
/// pipeline's settings checked.
fn checked<'a>(
    config: &'a SessionConfig,
    dialect: &dyn Dialect,
) -> Result<Cow<'a, SessionConfig>, PipelineError> {
    let config = sized_for(config, dialect);
    check_rings(&config)?;
    SessionPipeline::check(&config, dialect)?;
    Ok(config)
}

/// Checks that the host-facing rings of `config` (sized for its dialect) can carry what they must.
fn check_rings(config: &SessionConfig) -> Result<(), PipelineError> {
    // Host → worker records are written in one piece (the worker reads them where they lie),
    // which guarantees room only for records up to half the ring (see `records`).
    let fits = |ring: usize, reserve: usize, body: usize| {
        records::contiguous_capacity(ring, reserve) >= records::HEADER + body
    };
    if !fits(config.inbound_ring_bytes, 0, config.max_message_bytes) {
        return Err(PipelineError::Invalid(
            "inbound_ring_bytes must hold two maximal messages (2 x (max_message_bytes + 13))",
        ));
    }
    if config.outbound_ring_bytes < 6 * config.max_mark_name_bytes + 2048 {
        // The largest mark message (a fully escaped name) plus a media frame must fit.
        return Err(PipelineError::Invalid("outbound_ring_bytes must hold a maximal mark message"));
    }
    if !fits(config.play_ring_bytes, play_reserve(config.max_mark_name_bytes), 2 * PLAY_PIECE) {
        return Err(PipelineError::Invalid("play_ring_bytes is too small"));
    }
    Ok(())
}

/// `config` with limits large enough for the largest messages `dialect`'s carrier sends (see
/// [`Dialect::inbound_sizes`]): a message or payload limit below them is raised, and the inbound
/// ring with it, so that it holds two such messages.
fn sized_for<'a>(config: &'a SessionConfig, dialect: &dyn Dialect) -> Cow<'a, SessionConfig> {
    let sizes = config.inbound_limits(dialect);
    if (sizes.message_bytes, sizes.payload_bytes) == (config.max_message_bytes, config.max_payload_bytes) {
        return Cow::Borrowed(config);
    }
    // A record takes at most half the ring (see `records`): room for two, rounded up to 1 KiB.
    let ring = (2 * (records::HEADER + sizes.message_bytes)).div_ceil(1024) * 1024;
    Cow::Owned(SessionConfig {
        max_message_bytes: sizes.message_bytes,
        max_payload_bytes: sizes.payload_bytes,
        inbound_ring_bytes: config.inbound_ring_bytes.max(ring),
        ..config.clone()
    })
}

/// The most of workers × `max_sessions` an engine takes: its workers' session tables, about 40
/// bytes a slot, then hold at most 40 MiB (16 workers of 65,536 sessions; the default 4096
/// sessions on one worker per core up to 256 cores).
pub const MAX_WORKER_SESSION_SLOTS: usize = 1 << 20;

/// A cloneable, thread-safe handle on an [`Engine`] (see [`Engine::handle`]).
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<EngineShared>,
}

impl EngineHandle {
    /// Opens a session speaking the dialect `config.dialect` names, as [`Engine::open_session`].
    pub fn open_session(&self, config: &SessionConfig) -> Result<Session, EngineError> {
        let dialect = dialect_by_name(&config.dialect).map_err(EngineError::Dialect)?;
        self.open_session_with(config, dialect)
    }

    /// Opens a session speaking `dialect` (one of this crate's or the host's own), as
    /// [`Engine::open_session_with`]; `config.dialect` is then not used.
    pub fn open_session_with(
        &self,
        config: &SessionConfig,
        dialect: Box<dyn Dialect>,
    ) -> Result<Session, EngineError> {
        self.shared.open_session(config, dialect, None)
    }

    /// Opens a session already started, as [`Engine::open_session_started`].
    pub fn open_session_started(
        &self,
        config: &SessionConfig,
        start: StreamStart,
    ) -> Result<Session, EngineError> {
        let dialect = dialect_by_name(&config.dialect).map_err(EngineError::Dialect)?;
        self.shared.open_session(config, dialect, Some(start))
    }

    /// The engine's counters for monitoring, as [`Engine::metrics_snapshot`].
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }

    /// Signals the engine's wakeup (fd and [`Engine::wait`]) as session output does: for a
    /// component that has something new for the host outside any session (a call arrived).
    pub fn notify_host(&self) {
        self.shared.wakeup.notify();
    }
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").field("workers", &self.shared.workers.len()).finish()
    }
}

/// The media engine. Owns the worker threads; cheap to share by reference across host threads
/// (`Engine: Send + Sync`).
pub struct Engine {
    shared: Arc<EngineShared>,
    joins: Mutex<Vec<JoinHandle<()>>>,
    /// Workers that got the requested priority.
    prioritised_workers: usize,
}

impl Engine {
    /// Checks `config` as opening a session would (the dialect it names, rates, formats, limits,
    /// ring sizes, the VAD's, barge-in's and echo settings), without opening one: a server or a
    /// host refuses bad settings when it starts rather than at its first call. A `record_path`
    /// is not tried (that would create the file).
    pub fn check_session_config(config: &SessionConfig) -> Result<(), EngineError> {
        let dialect = dialect_by_name(&config.dialect).map_err(EngineError::Dialect)?;
        checked(config, dialect.as_ref())?;
        Ok(())
    }

    /// An inline engine (`workers` must be `Some(0)`) whose time is `clock`: the host advances
    /// it, so a session's pacing, timeouts and played positions depend only on the calls made
    /// and the time set, never on how long they took (deterministic tests and simulations).
    pub fn with_manual_clock(config: EngineConfig, clock: ManualClock) -> Result<Self, EngineError> {
        if config.workers != Some(0) {
            return Err(EngineError::Config(PipelineError::Invalid(
                "a manual clock needs an inline engine (workers: Some(0))",
            )));
        }
        let mut engine = Self::new(config)?;
        // An inline engine has no worker holding its shared state yet.
        let shared = Arc::get_mut(&mut engine.shared)
            .ok_or(EngineError::Config(PipelineError::Invalid("the engine's state is already shared")))?;
        shared.clock = EngineClock::Manual(clock);
        Ok(engine)
    }

    /// Starts an engine (spawning its workers unless `workers == Some(0)`).
    pub fn new(config: EngineConfig) -> Result<Self, EngineError> {
        let n = config.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        // Each worker's tables have room for every session (any of them may be placed on it), all
        // allocated here: bounded, so that settings each in range cannot together ask for
        // gigabytes (1024 workers of 65,536 sessions would) and abort the process.
        // An inline engine (no workers) still allocates its hand-back channel for them all.
        if n.max(1).saturating_mul(config.max_sessions) > MAX_WORKER_SESSION_SLOTS {
            return Err(EngineError::Config(PipelineError::Invalid(
                "workers × max_sessions is over 2^20 (each worker has room for every session)",
            )));
        }
        // Sessions that can exist at once: up to `max_sessions` live ones, and as many closed ones
        // the host has not reaped yet (see `open_session`). Each worker has a slot for every one
        // (plus the shared overflow slot), and the hand-back channel room for every one: full, a
        // worker would free a session itself, taking locks and running the allocator.
        let sessions = 2 * config.max_sessions.max(1);
        let (retired_tx, retired_rx) = crossbeam_channel::bounded(sessions);
        let mut controls = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = crossbeam_channel::bounded(config.max_sessions.max(1) + 1);
            controls.push(tx);
            receivers.push(rx);
        }
        // Threads need the shared state and the shared state needs their handles: spawn them
        // parked on a start signal, then publish.
        let (start_tx, start_rx) = crossbeam_channel::bounded::<Arc<EngineShared>>(n);
        // Each worker sets its own priority (a per-thread setting) and says whether it could.
        let (priority_tx, priority_rx) = crossbeam_channel::bounded::<bool>(n);
        let nice = config.worker_nice;
        let mut joins = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        let mut pthreads = Vec::with_capacity(n);
        for (i, rx) in receivers.into_iter().enumerate() {
            let (start_rx, priority_tx) = (start_rx.clone(), priority_tx.clone());
            let join =
                std::thread::Builder::new().name(format!("trunkline-worker-{i}")).spawn(move || {
                    let _ = priority_tx.send(priority::set_current_thread_nice(nice).is_ok());
                    drop(priority_tx);
                    if let Ok(shared) = start_rx.recv() {
                        worker::run(shared, rx, i);
                    }
                })?;
            threads.push(join.thread().clone());
            pthreads.push(std::os::unix::thread::JoinHandleExt::as_pthread_t(&join));
            joins.push(join);
        }
        let slots = sessions + 1;
        let workers = threads
            .into_iter()
            .zip(controls)
            .map(|(thread, control)| WorkerHandle {
                thread,
                control,
                load: AtomicUsize::new(0),
                ready: (0..slots).map(|_| AtomicBool::new(false)).collect(),
                state: AtomicU8::new(worker::State::Running as u8),
                // Popped from the end: the lowest slots first.
                free_slots: Mutex::new((0..slots - 1).rev().collect()),
                latency: LatencyRecorder::new(),
            })
            .collect();
        let shared = Arc::new(EngineShared {
            config,
            clock: EngineClock::Monotonic(Instant::now()),
            wakeup: Wakeup::new()?,
            workers,
            retired_tx,
            retired_rx,
            open_sessions: AtomicUsize::new(0),
            shutdown: AtomicBool::new(false),
            totals: Arc::default(),
            worker_threads: Mutex::new(pthreads),
            recorder: Mutex::new(None),
        });
        for _ in 0..n {
            let _ = start_tx.send(shared.clone());
        }
        drop(priority_tx);
        let prioritised_workers = priority_rx.iter().filter(|&ok| ok).count();
        Ok(Self { shared, joins: Mutex::new(joins), prioritised_workers })
    }

    /// Engine-added latency so far: each carrier message from its push to its audio being in the
    /// agent ring, over all workers (inline sessions are not counted). Take two snapshots and
    /// [`LatencyHistogram::since`] for an interval.
    pub fn latency(&self) -> LatencyHistogram {
        let mut histogram = LatencyHistogram::default();
        for worker in &self.shared.workers {
            worker.latency.add_to(&mut histogram);
        }
        histogram
    }

    /// How many workers run at the requested [`EngineConfig::worker_nice`] (all of them when it
    /// is 0; none when the system refused it, e.g. without `CAP_SYS_NICE`).
    pub fn prioritised_workers(&self) -> usize {
        self.prioritised_workers
    }

    /// Number of worker threads (0: inline mode).
    pub fn workers(&self) -> usize {
        self.shared.workers.len()
    }

    /// Opens a session speaking the dialect `config.dialect` names (Twilio by default).
    pub fn open_session(&self, config: &SessionConfig) -> Result<Session, EngineError> {
        self.handle().open_session(config)
    }

    /// Opens a session speaking `dialect`.
    pub fn open_session_with(
        &self,
        config: &SessionConfig,
        dialect: Box<dyn Dialect>,
    ) -> Result<Session, EngineError> {
        self.shared.open_session(config, dialect, None)
    }

    /// Opens a session whose stream has already started: for a host whose framework read the
    /// carrier's `start` itself (Pipecat's `parse_telephony_websocket`, a hand-written
    /// handshake) and knows the stream's ids and format. The dialect takes `start` as if it had
    /// parsed it (its stream id is what the dialect echoes back), `Started` is reported as usual,
    /// and the carrier messages pushed next are the stream's media, marks and stop; a `start`
    /// pushed again is refused as a duplicate. [`EngineError::Start`] if the dialect or the engine
    /// cannot take its format.
    pub fn open_session_started(
        &self,
        config: &SessionConfig,
        start: StreamStart,
    ) -> Result<Session, EngineError> {
        self.handle().open_session_started(config, start)
    }

    /// A handle that opens sessions and signals the host from other threads (the offload server's
    /// network threads). It does not keep the workers running: once the engine is dropped, opening
    /// a session through it fails with [`EngineError::Shutdown`].
    pub fn handle(&self) -> EngineHandle {
        EngineHandle { shared: self.shared.clone() }
    }

    /// The wakeup fd: readable when some session has new audio, events or outbound messages, or
    /// was closed.
    /// Put it in the host's event loop (asyncio `add_reader`, libuv, epoll), then call
    /// [`Engine::wait`] with a zero timeout (or [`Engine::clear_wakeup`]) to reset it.
    pub fn wakeup_fd(&self) -> std::os::fd::RawFd {
        self.shared.wakeup.fd()
    }

    /// Blocks until some session has output, [`Engine::wake`] is called, or `timeout` passes.
    /// Returns true if woken (and resets the wakeup).
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        self.shared.reap();
        self.shared.wakeup.wait(timeout)
    }

    /// Makes a [`Engine::wait`] return, for a host that stops a thread blocked in it (e.g. with
    /// no timeout) from another thread.
    ///
    /// It raises the same signal as output does, so the waiter cannot tell the two apart: `wait`
    /// returns true, draining the sessions then finds nothing new, and the wakeup fd is readable
    /// until reset. A host that wakes its waiter to stop it sets its own stop flag first and
    /// checks it after every wait. The signal stays set until a wait (or
    /// [`Engine::clear_wakeup`]) resets it, so a wake issued before the wait starts is not lost:
    /// the next wait returns at once. Wakes and output before that reset count as one, and one
    /// reset releases one wait: with several threads waiting, one returns true (another may
    /// return false early, as it may on output), so wake again for each thread still waiting.
    ///
    /// Any thread, any time (also concurrently with `wait` and with the workers); never blocks.
    pub fn wake(&self) {
        self.shared.wakeup.notify();
    }

    /// Resets the wakeup fd without blocking.
    pub fn clear_wakeup(&self) -> bool {
        self.shared.wakeup.drain()
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.shared.open_sessions.load(Ordering::Acquire)
    }

    /// The engine's counters for monitoring, built now from what the engine counts anyway
    /// (nothing is added to the workers' path): every session's counters summed, live ones as
    /// they stand and freed ones' final counts, sessions open, opened and ended by outcome,
    /// the latency histogram and the workers' CPU time. Any thread; takes the lock the engine
    /// takes to open and free a session, and reads each live session's counters (a few µs per
    /// hundred sessions). Render it with `trunkline::metrics::render` (feature `metrics`).
    pub fn metrics_snapshot(&self) -> MetricsSnapshot {
        self.shared.metrics_snapshot()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.worker_threads.lock().unwrap_or_else(|e| e.into_inner()).clear();
        for w in &self.shared.workers {
            let _ = w.control.send(Control::Shutdown);
            w.thread.unpark();
        }
        if let Ok(mut joins) = self.joins.lock() {
            for j in joins.drain(..) {
                let _ = j.join();
            }
        }
        self.shared.reap();
        // Closes every recording (sessions the host still holds record no more).
        drop(self.shared.recorder.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn inline_engine() -> Arc<Engine> {
        Arc::new(Engine::new(EngineConfig { workers: Some(0), ..Default::default() }).unwrap())
    }

    #[test]
    fn workers_and_sessions_that_together_would_take_gigabytes_are_refused() {
        // Each in its own range, together 2^26 slots (about 2.6 GiB of tables): refused at once.
        let too_many = EngineConfig { workers: Some(1024), max_sessions: 65_536, ..Default::default() };
        assert!(matches!(Engine::new(too_many), Err(EngineError::Config(PipelineError::Invalid(_)))));
        let just_over = EngineConfig { workers: Some(2), max_sessions: (1 << 19) + 1, ..Default::default() };
        assert!(matches!(Engine::new(just_over), Err(EngineError::Config(_))));
        // At the bound, it starts.
        let at_bound = EngineConfig { workers: Some(2), max_sessions: 1 << 19, ..Default::default() };
        drop(Engine::new(at_bound).unwrap());
        // An inline engine has no worker tables but allocates a channel for every session: with
        // no workers the product was 0 and 2^40 sessions went on to allocate terabytes.
        let inline = EngineConfig { workers: Some(0), max_sessions: 1 << 40, ..Default::default() };
        assert!(matches!(Engine::new(inline), Err(EngineError::Config(_))));
        let inline_max = EngineConfig { workers: Some(0), max_sessions: usize::MAX, ..Default::default() };
        assert!(matches!(Engine::new(inline_max), Err(EngineError::Config(_))));
    }

    #[test]
    fn wake_releases_a_thread_blocked_in_wait_without_timeout() {
        let engine = inline_engine();
        let (tx, rx) = mpsc::channel();
        let waiter = engine.clone();
        // Detached (not scoped): if wake were broken the test fails instead of hanging on a join.
        std::thread::spawn(move || {
            let _ = tx.send(waiter.wait(None));
        });
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(100)),
            Err(mpsc::RecvTimeoutError::Timeout),
            "wait(None) returned with nothing to wake it"
        );
        engine.wake();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true), "wake did not release wait(None)");
        // The wake was consumed by that wait.
        assert!(!engine.wait(Some(Duration::ZERO)));
    }

    #[test]
    fn closing_a_session_signals_the_engines_wakeup() {
        // A host's async stream of one session's events waits on the engine's wakeup: closing
        // the session must end that wait, though the session produces nothing more.
        for workers in [0, 1] {
            let engine = Engine::new(EngineConfig { workers: Some(workers), ..Default::default() }).unwrap();
            let mut session = engine.open_session(&SessionConfig::default()).unwrap();
            engine.clear_wakeup();
            assert!(!engine.wait(Some(Duration::ZERO)), "{workers} workers: nothing yet");
            session.close();
            assert!(engine.wait(Some(Duration::ZERO)), "{workers} workers: the close signalled");
        }
    }

    #[test]
    fn a_wake_before_the_wait_is_kept_for_it() {
        let engine = inline_engine();
        engine.wake();
        engine.wake();
        let t0 = Instant::now();
        assert!(engine.wait(Some(Duration::from_secs(10))));
        assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
        // Two wakes before one reset release one wait.
        assert!(!engine.wait(Some(Duration::ZERO)));
        // A wake also makes the fd readable for an event loop, and clear_wakeup resets it.
        engine.wake();
        assert!(engine.clear_wakeup());
        assert!(!engine.clear_wakeup());
    }

    #[test]
    fn wake_from_another_thread_releases_each_of_several_waiters() {
        let engine = inline_engine();
        let (tx, rx) = mpsc::channel();
        for _ in 0..3 {
            let (waiter, tx) = (engine.clone(), tx.clone());
            std::thread::spawn(move || {
                // As the C ABI does: a false return with no timeout means another waiter took
                // the signal, so wait on.
                while !waiter.wait(None) {}
                let _ = tx.send(());
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        // One wake per waiter, each once the previous one is out (wakes before a reset coalesce).
        for i in 0..3 {
            engine.wake();
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(()), "waiter {i} not released");
        }
    }
}
