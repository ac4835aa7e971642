#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr; // see Native.cs
#endif

using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline
{
    /// <summary>
    /// An offload server (trunkline_server): Trunkline as the carrier's WebSocket endpoint (Twilio
    /// Media Streams, or several carriers on paths of their own: <see cref="ServerOptions.Routes"/>;
    /// Asterisk AudioSocket: <see cref="ListenAudioSocket"/>). It answers connections on its own
    /// network threads, checks the path and (with an auth token) the carrier's request
    /// authentication, and runs each call on the engine. Calls whose
    /// stream has started come out of <see cref="Accept"/> as Sessions with the usual agent-side
    /// API (ReadAudio, Play, Mark, Interrupt, Events, Stats); the server drives their carrier side,
    /// so their Push throws TrunklineException(InvalidArgument). Every member may be called from
    /// any thread; Dispose frees the server once in-flight calls (such as a Shutdown) return.
    /// </summary>
    public sealed class Server : IDisposable
    {
        readonly Engine engine;
        readonly ServerHandle handle;
        readonly int port;
        /// <summary>Drains running now (under <see cref="drainGate"/>): Dispose cuts their calls
        /// rather than waiting out their grace, and no drain starts once Dispose has looked.</summary>
        int draining;
        bool disposing;
        readonly object drainGate = new object();

        /// <summary>Starts an offload server on <paramref name="engine"/>, which needs worker
        /// threads. Throws TrunklineException: InvalidArgument (an inline engine, a bad setting or
        /// address, a dialect the library does not speak, TLS without the library's `tls` feature
        /// or with unreadable PEM files), Io (the address could not be bound); ArgumentException
        /// for a string containing NUL; ObjectDisposedException once the engine is disposed.</summary>
        public Server(Engine engine, ServerOptions options = null)
        {
            if (engine == null) throw new ArgumentNullException("engine");
            options = options ?? new ServerOptions();
            // Started under the engine's servers' lock: an engine disposed meanwhile either closes
            // this server or refuses it, never leaves it running.
            lock (engine.ServersLock)
            {
                engine.CheckServersOpen();
                var engineHandle = engine.CheckedHandle();
                // The strings and the session config only need to live for the start call: the
                // library copies them.
                var memory = new NativeAllocations();
                bool engineRef = false;
                ServerHandle h = null;
                try
                {
                    var config = options.ToNative(memory);
                    // The server holds a reference on the engine's handle until it is freed.
                    engineHandle.DangerousAddRef(ref engineRef);
                    var r = Native.trunkline_server_start(engineHandle, ref config, out h);
                    if (r != ResultCode.Ok)
                    {
                        if (h != null) h.SetHandleAsInvalid();
                        throw new TrunklineException(r, "trunkline_server_start");
                    }
                    h.AdoptEngineReference(engineHandle);
                    engineRef = false;
                }
                finally
                {
                    memory.Dispose();
                    if (engineRef) engineHandle.DangerousRelease();
                }
                this.engine = engine;
                handle = h;
                ushort p16;
                var pr = Native.trunkline_server_local_port(handle, out p16);
                if (pr != ResultCode.Ok)
                {
                    handle.Dispose(); // unregistered: nothing else would stop it
                    throw new TrunklineException(pr, "trunkline_server_local_port");
                }
                port = p16;
                engine.AddServer(this);
            }
        }

        /// <summary>The engine the calls run on.</summary>
        public Engine Engine { get { return engine; } }

        /// <summary>The native handle (for advanced interop).</summary>
        public ServerHandle Handle { get { return handle; } }

        /// <summary>The TCP port the server listens on (the one picked when Bind asked for port 0).</summary>
        public int Port { get { return port; } }

        ServerHandle H()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Server");
            return handle;
        }

        /// <summary>The next call whose stream has started, as a Session you own (dispose it when
        /// the call ends), or null when there is none. Throws TrunklineException(Closed) after
        /// Shutdown.</summary>
        public Session Accept()
        {
            SessionHandle h;
            var r = Native.trunkline_server_accept(H(), out h);
            if (r == ResultCode.Ok) return new Session(engine, h);
            if (h != null) h.SetHandleAsInvalid();
            if (r == ResultCode.Empty) return null;
            throw new TrunklineException(r, "trunkline_server_accept");
        }

        /// <summary>Waits for the next call: polls <see cref="Accept"/>, and between polls waits for
        /// the engine's next signal (a new call, a shutdown; at most <paramref name="waitMs"/>:
        /// positive, or -1 for no limit; 0 would spin and is refused with
        /// ArgumentOutOfRangeException), sharing the engine's one blocking wait with its other async
        /// waiters (see <see cref="Session.EventsAsync"/>). Throws OperationCanceledException when
        /// cancelled and TrunklineException(Closed) once the server is shut down.</summary>
        public async Task<Session> AcceptAsync(CancellationToken cancellationToken = default(CancellationToken), int waitMs = 20)
        {
            if (waitMs == 0 || waitMs < -1) throw new ArgumentOutOfRangeException("waitMs", "positive, or -1 for no limit");
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Taken before polling: a call that comes after the poll completes it.
                var signal = engine.NextSignal();
                var call = Accept();
                if (call != null) return call;
                await Engine.SignalOrTimeout(signal, waitMs, cancellationToken, CancellationToken.None).ConfigureAwait(false);
            }
        }

        /// <summary>Also listens for Asterisk AudioSocket on <paramref name="bind"/> (plain TCP,
        /// e.g. "0.0.0.0:9092"; port 0: any free one) and returns the port. Its calls speak the
        /// `audiosocket` dialect with the server's other session settings and come out of
        /// <see cref="Accept"/> like the others, once their first audio arrives. AudioSocket has no
        /// authentication: a connection is taken only if its first message names an allowed call
        /// UUID (<paramref name="allowedCalls"/>, and <see cref="AllowAudioSocketCall"/>); the
        /// others are closed and counted in rejected_audiosocket_call. Throws
        /// TrunklineException: InvalidArgument (a bad address, a string that is not a UUID: then
        /// nothing is allowed or bound), Io (the address could not be bound), Closed (after
        /// Shutdown).</summary>
        public unsafe int ListenAudioSocket(string bind = "127.0.0.1:0", IList<string> allowedCalls = null)
        {
            if (bind == null) throw new ArgumentNullException("bind");
            allowedCalls = allowedCalls ?? new string[0];
            using (var memory = new NativeAllocations())
            {
                var b = memory.Utf8Z(bind, "bind");
                var uuids = memory.Utf8ZArray(allowedCalls, "allowedCalls");
                ushort p16;
                var r = Native.trunkline_server_listen_audiosocket(H(), b, uuids, Native.N(allowedCalls.Count), out p16);
                Native.Check(r, "trunkline_server_listen_audiosocket");
                return p16;
            }
        }

        /// <summary>Allows AudioSocket connections for call <paramref name="uuid"/> (e.g.
        /// "40325ec2-5efd-4bd3-805f-53576e581d13", any case, hyphens optional) until revoked:
        /// register a call before handing it to Asterisk. Throws
        /// TrunklineException(InvalidArgument) for a string that is not a UUID.</summary>
        public unsafe void AllowAudioSocketCall(string uuid)
        {
            if (uuid == null) throw new ArgumentNullException("uuid");
            using (var memory = new NativeAllocations())
            {
                var u = memory.Utf8Z(uuid, "uuid");
                Native.Check(Native.trunkline_server_allow_audiosocket_call(H(), u), "trunkline_server_allow_audiosocket_call");
            }
        }

        /// <summary>Stops allowing new AudioSocket connections for call <paramref name="uuid"/> (a
        /// live one goes on); returns whether it was allowed.</summary>
        public unsafe bool RevokeAudioSocketCall(string uuid)
        {
            if (uuid == null) throw new ArgumentNullException("uuid");
            using (var memory = new NativeAllocations())
            {
                var u = memory.Utf8Z(uuid, "uuid");
                byte was = 0;
                var r = Native.trunkline_server_revoke_audiosocket_call(H(), u, (IntPtr)(&was));
                Native.Check(r, "trunkline_server_revoke_audiosocket_call");
                return was != 0;
            }
        }

        /// <summary>The server's counters by name (<see cref="Library.ServerStatNames"/>:
        /// connections, accepted, the refusals by reason, failures and timeouts, calls opened and
        /// refused, closed, active).
        /// Throws TrunklineException(Closed) after Shutdown.</summary>
        public unsafe Dictionary<string, ulong> Stats()
        {
            var names = Library.ServerStatNames;
            var values = new ulong[names.Count];
            nuint n;
            ResultCode r;
            fixed (ulong* p = values) r = Native.trunkline_server_stats(H(), p, Native.N(values.Length), out n);
            Native.Check(r, "trunkline_server_stats");
            var d = new Dictionary<string, ulong>(names.Count);
            for (int i = 0; i < Native.I(n); i++) d[names[i]] = values[i];
            return d;
        }

        /// <summary>Whether the server takes new calls now, as its <c>/readyz</c> answers (200 when
        /// true): not draining, and below MaxSessions. Throws TrunklineException(Closed) after
        /// Shutdown.</summary>
        public unsafe bool Ready
        {
            get
            {
                byte ready = 0;
                Native.Check(Native.trunkline_server_ready(H(), (IntPtr)(&ready)), "trunkline_server_ready");
                return ready != 0;
            }
        }

        /// <summary>Drains the server, e.g. on SIGTERM before a restart: at once it takes no new
        /// calls (<c>/readyz</c> answers 503, a WebSocket upgrade gets 503) while <c>/metrics</c>
        /// and <c>/healthz</c> go on; live calls go on for up to <paramref name="grace"/> (until
        /// their stream stops or the carrier hangs up), then those left are ended (their sessions
        /// get Stopped). Blocks until every call has ended, or the grace plus 2 s; returns whether
        /// they all did (calls ended at the grace count as ended). Other threads go on serving the
        /// live calls meanwhile, and may call Accept, Stats and Ready. Cannot be undone: Shutdown
        /// and/or Dispose afterwards (Dispose waits for the drain to return). Throws
        /// ArgumentOutOfRangeException for a negative grace, TrunklineException(Closed) after
        /// Shutdown.</summary>
        public unsafe bool Drain(TimeSpan grace)
        {
            uint ms = GraceMs(grace);
            byte allEnded = 0;
            lock (drainGate)
            {
                if (disposing) throw new ObjectDisposedException("Server");
                draining++;
            }
            try
            {
                var result = Native.trunkline_server_drain(H(), ms, (IntPtr)(&allEnded));
                // Dispose shut the server down before this drain began: that ended every call.
                if (result == ResultCode.Closed && Volatile.Read(ref disposing)) return true;
                Native.Check(result, "trunkline_server_drain");
            }
            finally
            {
                lock (drainGate) draining--;
            }
            return allEnded != 0;
        }

        /// <summary>Runs the blocking <see cref="Drain"/> on a thread-pool thread.</summary>
        public Task<bool> DrainAsync(TimeSpan grace)
        {
            return Task.Run(() => Drain(grace));
        }

        static uint GraceMs(TimeSpan grace)
        {
            if (grace < TimeSpan.Zero) throw new ArgumentOutOfRangeException("grace", "must not be negative");
            return checked((uint)Math.Ceiling(grace.TotalMilliseconds));
        }

        /// <summary>Stops accepting, lets live calls go on for up to <paramref name="grace"/> (until
        /// their stream stops or the carrier hangs up), then closes the rest. Blocks until done
        /// (during a <see cref="Drain"/> on another thread, until it has returned too).
        /// Throws TrunklineException(Closed) if already shut down. Dispose the server afterwards.</summary>
        public void Shutdown(TimeSpan grace)
        {
            Native.Check(Native.trunkline_server_shutdown(H(), GraceMs(grace)), "trunkline_server_shutdown");
        }

        /// <summary>Runs the blocking <see cref="Shutdown"/> on a thread-pool thread.</summary>
        public Task ShutdownAsync(TimeSpan grace)
        {
            return Task.Run(() => Shutdown(grace));
        }

        /// <summary>Shuts the server down at once if still running (live calls are cut, a running
        /// Drain's too, without waiting for its grace: Dispose then waits for the drain to return,
        /// which it does once those connections have closed; a Shutdown already running keeps its
        /// grace) and frees it, after in-flight calls return. Sessions already accepted stay
        /// yours. Safe to call twice.</summary>
        public void Dispose()
        {
            engine.RemoveServer(this);
            bool cut;
            lock (drainGate)
            {
                disposing = true;
                cut = draining > 0;
            }
            if (cut && !handle.IsClosed)
            {
                // Closed if a shutdown runs already, or the handle went meanwhile: nothing to cut.
                try { Native.trunkline_server_shutdown(handle, 0); }
                catch (ObjectDisposedException) { }
            }
            handle.Dispose();
        }
    }
}
