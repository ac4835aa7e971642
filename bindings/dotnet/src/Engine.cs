#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr; // see Native.cs
#endif

using System;
using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline
{
    /// <summary>
    /// An engine: worker threads and a wakeup fd (trunkline_engine). Dispose it after its sessions;
    /// sessions left open then throw TrunklineException(Closed) and still need disposing.
    /// Every member may be called from any thread.
    /// </summary>
    public sealed class Engine : IDisposable
    {
        readonly EngineHandle handle;
        readonly bool manualClock;
        readonly HashSet<Server> servers = new HashSet<Server>();
        // Set by Dispose under the servers' lock: a server starts under that lock too, so Dispose
        // either finds it among the servers it closes or the start is refused.
        bool serversClosed;
        // Threads inside Wait, and whether Dispose has begun: Dispose wakes the waits in flight
        // (the SafeHandle would otherwise keep the engine until each one's timeout).
        int waiting;
        int disposing;
        // The async waits' shared blocking wait (see NextSignal): the round its next signal
        // completes, and whether its loop runs.
        readonly object signalLock = new object();
        TaskCompletionSource<bool> nextSignal;
        bool signalLoopRunning;
        // A signal the loop took while no round waited: kept for the next waiter, as the wakeup
        // fd keeps a signal for the next wait (the waiter may have been reading its sessions).
        bool signalKept;

        /// <summary>Starts an engine with <paramref name="workers"/> worker threads (0: inline mode,
        /// where your calls do the processing; null: one per core).</summary>
        public Engine(int? workers = null) : this(new EngineOptions { Workers = workers }) { }

        /// <summary>Starts an engine with <paramref name="options"/> (with
        /// <see cref="EngineOptions.ManualClock"/>: an inline engine whose time moves only with
        /// <see cref="Advance"/>).</summary>
        public Engine(EngineOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            var config = options.ToNative();
            EngineHandle h;
            manualClock = options.ManualClock;
            var r = manualClock
                ? Native.trunkline_engine_new_manual_clock(ref config, out h)
                : Native.trunkline_engine_new(ref config, out h);
            if (r != ResultCode.Ok)
            {
                if (h != null) h.SetHandleAsInvalid();
                throw new TrunklineException(r, manualClock ? "trunkline_engine_new_manual_clock" : "trunkline_engine_new");
            }
            handle = h;
        }

        /// <summary>Whether the engine's time is set by <see cref="Advance"/>
        /// (<see cref="EngineOptions.ManualClock"/>).</summary>
        public bool ManualClock { get { return manualClock; } }

        /// <summary>Moves a manual clock forward by <paramref name="by"/>, rounded to the nearest
        /// microsecond. Sessions see the new time at their next call, so drain them after
        /// advancing: with agent audio queued, each 20 ms releases exactly one more media frame from
        /// <see cref="Session.Outbound"/> (a step of the lead or more releases only the lead's worth,
        /// as after a carrier that ran dry). Nothing is signalled: <see cref="Wait"/> timeouts stay
        /// wall time. Throws ArgumentOutOfRangeException for a negative step, TrunklineException
        /// InvalidArgument on an engine with the real clock or for a step past the clock's end
        /// (2^62 - 1 µs; the clock then does not move). Any thread, also while others call the
        /// engine's sessions.</summary>
        public void Advance(TimeSpan by)
        {
            if (by < TimeSpan.Zero) throw new ArgumentOutOfRangeException("by", by, "the clock only moves forward");
            // A tick is 100 ns: ten to the microsecond.
            ulong us = (ulong)(by.Ticks / 10) + (by.Ticks % 10 >= 5 ? 1ul : 0ul);
            Native.Check(Native.trunkline_engine_advance_clock(CheckedHandle(), us), "trunkline_engine_advance_clock");
        }

        /// <summary>The native handle (for advanced interop).</summary>
        public EngineHandle Handle { get { return handle; } }

        internal EngineHandle CheckedHandle()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Engine");
            return handle;
        }

        /// <summary>Opens a session (a call). <paramref name="options"/> null: the defaults. Throws
        /// TrunklineException: InvalidArgument (a setting out of range, a dialect the library does
        /// not speak), TooManySessions, Closed; ArgumentException for a Dialect containing NUL.</summary>
        public Session OpenSession(SessionOptions options = null)
        {
            SessionHandle h;
            ResultCode r;
            // The dialect's string only needs to live for the open call: the library copies it.
            using (var memory = new NativeAllocations())
            {
                var config = (options ?? new SessionOptions()).ToNative(memory);
                r = Native.trunkline_session_open(CheckedHandle(), ref config, out h);
            }
            if (r != ResultCode.Ok)
            {
                if (h != null) h.SetHandleAsInvalid();
                throw new TrunklineException(r, "trunkline_session_open");
            }
            return new Session(this, h);
        }

        /// <summary>Opens a session whose stream has already started, for a host that read the
        /// carrier's <c>start</c> message itself (its framework parsed it to route the call): the
        /// session behaves as one that parsed <paramref name="start"/>. Its first event is Started,
        /// the stream id is echoed to the carrier, and a <c>start</c> pushed again is a protocol
        /// error (duplicate); push the carrier's messages that follow. Throws TrunklineException:
        /// InvalidArgument (also a format the dialect or the engine cannot take), TooManySessions,
        /// Closed; ArgumentException for a string containing NUL or a null custom parameter.</summary>
        public Session OpenSessionStarted(StreamStart start, SessionOptions options = null)
        {
            if (start == null) throw new ArgumentNullException("start");
            SessionHandle h;
            ResultCode r;
            // The strings only need to live for the open call: the library copies them.
            using (var memory = new NativeAllocations())
            {
                var config = (options ?? new SessionOptions()).ToNative(memory);
                var native = start.ToNative(memory);
                r = Native.trunkline_session_open_started(CheckedHandle(), ref config, ref native, out h);
            }
            if (r != ResultCode.Ok)
            {
                if (h != null) h.SetHandleAsInvalid();
                throw new TrunklineException(r, "trunkline_session_open_started");
            }
            return new Session(this, h);
        }

        /// <summary>Starts an offload server on this engine (which needs worker threads): Trunkline
        /// answers the carrier's WebSocket itself and hands you each call as a Session. Same as
        /// <c>new Server(engine, options)</c>.</summary>
        public Server Serve(ServerOptions options = null)
        {
            return new Server(this, options);
        }

        /// <summary>The lock a server starts under (see <see cref="AddServer"/>).</summary>
        internal object ServersLock { get { return servers; } }

        /// <summary>Registers a server just started; call it holding <see cref="ServersLock"/>
        /// since before <see cref="CheckServersOpen"/> and the start, so Dispose cannot have begun
        /// in between.</summary>
        internal void AddServer(Server server)
        {
            lock (servers) servers.Add(server);
        }

        /// <summary>Throws ObjectDisposedException once Dispose has begun closing the servers.</summary>
        internal void CheckServersOpen()
        {
            lock (servers)
            {
                if (serversClosed) throw new ObjectDisposedException("Engine");
            }
        }

        internal void RemoveServer(Server server)
        {
            lock (servers) servers.Remove(server);
        }

        /// <summary>The wakeup fd: readable when some session has output. The engine owns it.</summary>
        public int WakeupFd
        {
            get
            {
                int fd;
                Native.Check(Native.trunkline_engine_wakeup_fd(CheckedHandle(), out fd), "trunkline_engine_wakeup_fd");
                return fd;
            }
        }

        /// <summary>How many workers run at the requested <see cref="EngineOptions.WorkerNice"/> (all
        /// of them when it is 0; fewer when the system refused it, e.g. without CAP_SYS_NICE; 0 for
        /// an inline engine).</summary>
        public int PrioritisedWorkers
        {
            get
            {
                uint count;
                Native.Check(Native.trunkline_engine_prioritised_workers(CheckedHandle(), out count), "trunkline_engine_prioritised_workers");
                return checked((int)count);
            }
        }

        /// <summary>Blocks until some session has output or <see cref="Wake"/> is called (true), or
        /// <paramref name="timeoutMs"/> passes (false; negative: no timeout). Dispose from another
        /// thread also ends it (true; the next call throws ObjectDisposedException).</summary>
        public bool Wait(int timeoutMs)
        {
            var h = CheckedHandle();
            Interlocked.Increment(ref waiting);
            try
            {
                // Dispose sets `disposing`, then counts the waiters; this counted itself, then reads
                // `disposing` (both with full fences): either Dispose sees this wait and wakes it,
                // or this sees Dispose and starts no wait that nothing would end.
                if (Interlocked.CompareExchange(ref disposing, 0, 0) != 0) throw new ObjectDisposedException("Engine");
                var r = Native.trunkline_engine_wait(h, timeoutMs);
                if (r == ResultCode.Timeout) return false;
                Native.Check(r, "trunkline_engine_wait");
                return true;
            }
            finally
            {
                Interlocked.Decrement(ref waiting);
            }
        }

        /// <summary>Makes a <see cref="Wait"/> return true: the one blocked now in another thread,
        /// or else the next one (a wake before the wait is kept for it). The waiter cannot tell it
        /// from output: it drains its sessions and finds nothing new, so set your own stop flag
        /// before waking and check it after every wait. One wake releases one wait; wakes before
        /// that count as one. Never blocks; any thread. (Dispose wakes every waiter itself.)</summary>
        public void Wake()
        {
            Native.Check(Native.trunkline_engine_wake(CheckedHandle()), "trunkline_engine_wake");
        }

        /// <summary><see cref="Wait"/> without blocking the caller: true at the engine's next signal
        /// (output, a Wake, Dispose), false once <paramref name="timeoutMs"/> passed (-1: no
        /// limit); ObjectDisposedException once the engine is disposed, as for Wait. Every async waiter of the engine (this, Session.EventsAsync,
        /// Server.AcceptAsync) shares one blocking wait on a thread-pool thread, and each signal
        /// releases them all. Cancelling ends the wait at once and throws
        /// OperationCanceledException, also with no timeout.</summary>
        public async Task<bool> WaitAsync(int timeoutMs, CancellationToken cancellationToken = default(CancellationToken))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var signal = NextSignal();
            // Any negative timeout is none, as for Wait.
            await SignalOrTimeout(signal, timeoutMs < 0 ? -1 : timeoutMs, cancellationToken, CancellationToken.None).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            return signal.IsCompleted;
        }

        /// <summary>A task that completes at the engine's next signal after this call (output of
        /// any session, a Wake, Dispose). Every async waiter
        /// (Session.EventsAsync, Server.AcceptAsync) shares one blocking wait on a pool thread: with
        /// a wait of its own each, one signal would release only one of them, and the session it
        /// was for could wait on.</summary>
        internal Task NextSignal()
        {
            // A disposed engine has no signal to wait for: without this, each call started a
            // round that its failed wait completed at once, and a waiting loop spun.
            CheckedHandle();
            lock (signalLock)
            {
                if (signalKept)
                {
                    signalKept = false;
                    return Task.FromResult(true);
                }
                if (nextSignal == null)
                    nextSignal = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
                var round = nextSignal.Task;
                if (!signalLoopRunning)
                {
                    signalLoopRunning = true;
                    Task.Run((Action)RunSignalLoop);
                }
                return round;
            }
        }

        void RunSignalLoop()
        {
            while (true)
            {
                bool woken, disposed = false;
                Exception failure = null;
                try
                {
                    // Bounded, to look every second whether anyone still waits.
                    woken = Wait(1000);
                }
                catch (ObjectDisposedException)
                {
                    woken = disposed = true;
                }
                catch (Exception ex)
                {
                    // A failure of the library's wait: the waiters get it (rather than a signal
                    // that sends them round again at once) and the loop ends, so that the next
                    // waiter starts a new one rather than wait for a loop that is gone.
                    woken = disposed = true;
                    failure = ex;
                }
                TaskCompletionSource<bool> round;
                bool more;
                lock (signalLock)
                {
                    round = woken ? nextSignal : null;
                    if (woken) nextSignal = null;
                    if (woken && round == null && !disposed) signalKept = true;
                    // On while there are waiters: a round released now (they will most likely
                    // wait again), or one waiting (a waiter that gave up leaves its round to the
                    // next signal). Off after a second with none, or once the engine is gone.
                    more = (round != null || nextSignal != null) && !disposed;
                    signalLoopRunning = more;
                }
                if (round != null)
                {
                    if (failure != null) round.TrySetException(failure);
                    else round.TrySetResult(true);
                }
                if (!more) return;
            }
        }

        /// <summary>Waits for <paramref name="signal"/> (from <see cref="NextSignal"/>), at most
        /// <paramref name="waitMs"/> (-1: no limit); returns early, without throwing, when a token
        /// is cancelled; throws what the library's wait threw when it failed.</summary>
        internal static async Task SignalOrTimeout(Task signal, int waitMs, CancellationToken token, CancellationToken token2)
        {
            using (var stop = CancellationTokenSource.CreateLinkedTokenSource(token, token2))
            {
                var delay = Task.Delay(waitMs, stop.Token);
                await Task.WhenAny(signal, delay).ConfigureAwait(false);
                // Ends the delay's timer when the signal came first.
                stop.Cancel();
            }
            // Its exception, rather than a signal that would send the waiter round again at once.
            if (signal.IsFaulted) await signal.ConfigureAwait(false);
        }

        /// <summary><see cref="Wake"/> for a cancellation: a disposed engine has no wait to end.</summary>
        internal void WakeIfOpen()
        {
            try
            {
                Wake();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        /// <summary>Resets the wakeup fd without blocking; true if it was signalled.</summary>
        public bool ClearWakeup()
        {
            var r = Native.trunkline_engine_clear_wakeup(CheckedHandle());
            if (r == ResultCode.Empty) return false;
            Native.Check(r, "trunkline_engine_clear_wakeup");
            return true;
        }

        /// <summary>The engine's counters as Prometheus text (the exposition format 0.0.4), or
        /// OpenMetrics 1.0 text (ending with <c># EOF</c>) with <paramref name="openMetrics"/>,
        /// built now from counters the engine keeps anyway: calls active, opened and ended by
        /// outcome, media frames, protocol errors, every session counter summed over all sessions
        /// (disposed ones included) as <c>trunkline_session_&lt;name&gt;_total</c> (µs counters in
        /// seconds, as <c>..._seconds_total</c>), the engine's latency histogram, CPU time per
        /// worker. Serve it on your own <c>/metrics</c> (Content-Type <c>text/plain;
        /// version=0.0.4</c>, or <c>application/openmetrics-text; version=1.0.0</c>). With a
        /// <see cref="Server"/> on this engine, scrape the server's own <c>/metrics</c> instead: it
        /// serves this plus the server's counters. A few kilobytes built per call: for a scrape,
        /// not for every frame. Any thread.</summary>
        public unsafe string Metrics(bool openMetrics = false)
        {
            uint format = openMetrics ? Native.MetricsOpenMetrics : Native.MetricsPrometheus;
            var h = CheckedHandle();
            nuint length;
            var r = Native.trunkline_engine_metrics(h, format, null, Native.N(0), out length);
            byte[] buffer = null;
            while (r == ResultCode.BufferTooSmall)
            {
                // Room to spare: the text may grow between the two calls.
                int n = Native.I(length);
                buffer = new byte[n + n / 4 + 256];
                fixed (byte* p = buffer) r = Native.trunkline_engine_metrics(h, format, p, Native.N(buffer.Length), out length);
            }
            Native.Check(r, "trunkline_engine_metrics");
            return System.Text.Encoding.UTF8.GetString(buffer, 0, Native.I(length));
        }

        /// <summary>Disposes the servers still running on this engine (at once, without grace),
        /// then stops the workers and frees the engine (once in-flight calls return, and after
        /// the servers are freed). A <see cref="Wait"/> blocked in another thread is woken and
        /// returns true first. Safe to call twice.</summary>
        public void Dispose()
        {
            Server[] running;
            lock (servers)
            {
                serversClosed = true;
                running = new Server[servers.Count];
                servers.CopyTo(running);
            }
            foreach (var s in running) s.Dispose();
            Interlocked.Exchange(ref disposing, 1);
            // One wake releases one wait, and wakes before its reset count as one: wake until no
            // wait is left (each released waiter leaves promptly; new ones throw).
            while (Interlocked.CompareExchange(ref waiting, 0, 0) > 0)
            {
                try
                {
                    Native.trunkline_engine_wake(handle);
                }
                catch (ObjectDisposedException)
                {
                    break; // a concurrent Dispose got there first
                }
                Thread.Sleep(1);
            }
            handle.Dispose();
        }
    }
}
