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
        readonly HashSet<Server> servers = new HashSet<Server>();

        /// <summary>Starts an engine with <paramref name="workers"/> worker threads (0: inline mode,
        /// where your calls do the processing; null: one per core).</summary>
        public Engine(int? workers = null) : this(new EngineOptions { Workers = workers }) { }

        /// <summary>Starts an engine with <paramref name="options"/>.</summary>
        public Engine(EngineOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            var config = options.ToNative();
            EngineHandle h;
            var r = Native.trunkline_engine_new(ref config, out h);
            if (r != ResultCode.Ok)
            {
                if (h != null) h.SetHandleAsInvalid();
                throw new TrunklineException(r, "trunkline_engine_new");
            }
            handle = h;
        }

        /// <summary>The native handle (for advanced interop).</summary>
        public EngineHandle Handle { get { return handle; } }

        internal EngineHandle CheckedHandle()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Engine");
            return handle;
        }

        /// <summary>Opens a session (a call). <paramref name="options"/> null: the defaults.</summary>
        public Session OpenSession(SessionOptions options = null)
        {
            var config = (options ?? new SessionOptions()).ToNative();
            SessionHandle h;
            var r = Native.trunkline_session_open(CheckedHandle(), ref config, out h);
            if (r != ResultCode.Ok)
            {
                if (h != null) h.SetHandleAsInvalid();
                throw new TrunklineException(r, "trunkline_session_open");
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

        internal void AddServer(Server server)
        {
            lock (servers) servers.Add(server);
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

        /// <summary>Blocks until some session has output (true) or <paramref name="timeoutMs"/>
        /// passes (false; negative: no timeout).</summary>
        public bool Wait(int timeoutMs)
        {
            var r = Native.trunkline_engine_wait(CheckedHandle(), timeoutMs);
            if (r == ResultCode.Timeout) return false;
            Native.Check(r, "trunkline_engine_wait");
            return true;
        }

        /// <summary>Runs the blocking <see cref="Wait"/> on a thread-pool thread.</summary>
        public Task<bool> WaitAsync(int timeoutMs, CancellationToken cancellationToken = default(CancellationToken))
        {
            return Task.Run(() => Wait(timeoutMs), cancellationToken);
        }

        /// <summary>Resets the wakeup fd without blocking; true if it was signalled.</summary>
        public bool ClearWakeup()
        {
            var r = Native.trunkline_engine_clear_wakeup(CheckedHandle());
            if (r == ResultCode.Empty) return false;
            Native.Check(r, "trunkline_engine_clear_wakeup");
            return true;
        }

        /// <summary>Disposes the servers still running on this engine (at once, without grace),
        /// then stops the workers and frees the engine (once in-flight calls return, and after
        /// the servers are freed). Safe to call twice.</summary>
        public void Dispose()
        {
            Server[] running;
            lock (servers)
            {
                running = new Server[servers.Count];
                servers.CopyTo(running);
            }
            foreach (var s in running) s.Dispose();
            handle.Dispose();
        }
    }
}
