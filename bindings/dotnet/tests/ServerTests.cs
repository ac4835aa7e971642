// The offload server through the .NET binding: lifecycle and errors, and real calls over loopback
// with System.Net.WebSockets.ClientWebSocket as the carrier (it works on Mono 6.8 too).
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline.Tests
{
    /// <summary>A carrier's WebSocket: sends text frames, collects every text message it receives.</summary>
    sealed class Carrier : IDisposable
    {
        public readonly ClientWebSocket Ws = new ClientWebSocket();
        readonly List<string> received = new List<string>();
        Task receiving;

        public static Carrier Connect(int port, string path)
        {
            var c = new Carrier();
            using (var cts = new CancellationTokenSource(5000))
                c.Ws.ConnectAsync(new Uri("ws://127.0.0.1:" + port + path), cts.Token).Wait();
            c.receiving = Task.Run(() => c.Receive());
            return c;
        }

        async Task Receive()
        {
            var buf = new byte[16384];
            var message = new List<byte>();
            try
            {
                while (Ws.State == WebSocketState.Open)
                {
                    var r = await Ws.ReceiveAsync(new ArraySegment<byte>(buf), CancellationToken.None).ConfigureAwait(false);
                    if (r.MessageType == WebSocketMessageType.Close) break;
                    message.AddRange(new ArraySegment<byte>(buf, 0, r.Count));
                    if (!r.EndOfMessage) continue;
                    var text = Encoding.UTF8.GetString(message.ToArray());
                    message.Clear();
                    lock (received) received.Add(text);
                }
            }
            // The socket went away, or Dispose aborted the pending receive.
            catch (WebSocketException) { }
            catch (OperationCanceledException) { }
            catch (ObjectDisposedException) { }
        }

        public void Send(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            using (var cts = new CancellationTokenSource(5000))
                Ws.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, cts.Token).Wait();
        }

        public List<string> Received
        {
            get { lock (received) return received.ToList(); }
        }

        /// <summary>A close handshake, as a carrier that hangs up without `stop`.</summary>
        public void HangUp()
        {
            using (var cts = new CancellationTokenSource(5000))
                Ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token).Wait();
        }

        public void Dispose()
        {
            Ws.Abort();
            Ws.Dispose();
            if (receiving != null) receiving.Wait(2000);
        }
    }

    public static class ServerTests
    {
        /// <summary>Calls <paramref name="f"/> (after an engine wait of at most 20 ms each time)
        /// until it returns non-null, within 5 s.</summary>
        static T Until<T>(Engine engine, Func<T> f, string what) where T : class
        {
            var sw = Stopwatch.StartNew();
            while (true)
            {
                var v = f();
                if (v != null) return v;
                if (sw.ElapsedMilliseconds > 5000) throw new AssertionException("timed out waiting for " + what);
                engine.Wait(20);
            }
        }

        /// <summary>The carrier's call on <paramref name="server"/>, its stream started, accepted
        /// within 5 s.</summary>
        static Session StartedCall(Server server, Carrier carrier)
        {
            carrier.Send(Twilio.Connected());
            carrier.Send(Twilio.Start());
            using (var cts = new CancellationTokenSource(5000))
                return server.AcceptAsync(cts.Token).Result;
        }

        static ResultCode CodeOf(Action action, string what)
        {
            return Assert.Throws<TrunklineException>(action, what).Code;
        }

        public static void TestServerLifecycleAndErrors()
        {
            using (var inline = new Engine(0))
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => inline.Serve(), "server on an inline engine"), "inline engine");
            Assert.Throws<ArgumentNullException>(() => new Server(null), "no engine");
            using (var engine = new Engine(1))
            {
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { Bind = "not an address" }), "bad bind"), "bad bind");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { MaxSessions = 0 }), "max sessions"), "MaxSessions 0");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { Threads = 0 }), "threads"), "Threads 0");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { TlsCertPem = "/nonexistent/cert.pem", TlsKeyPem = "/nonexistent/key.pem" }), "tls"), "unreadable TLS files");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { Session = new SessionOptions { MaxMarkNameBytes = 256 } }), "session"), "bad session setting");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { Session = new SessionOptions { Dialect = "no-such-dialect" } }), "session"), "unknown dialect");
                Assert.Throws<ArgumentException>(() => engine.Serve(new ServerOptions { Path = "/a\0b" }), "NUL in a string");
                Assert.Throws<ArgumentOutOfRangeException>(() => engine.Serve(new ServerOptions { IdleTimeout = TimeSpan.FromSeconds(-1) }), "negative timeout");
                Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => engine.Serve(new ServerOptions { SendTimeout = TimeSpan.Zero }), "send timeout"), "SendTimeout 0");

                // A time under a millisecond rounds up to one (it was cut to 0, refused here).
                engine.Serve(new ServerOptions { SendTimeout = TimeSpan.FromTicks(9000), PingInterval = TimeSpan.FromTicks(5000) }).Dispose();

                var server = engine.Serve();
                Assert.True(server.Port > 0 && server.Port < 65536, "port " + server.Port);
                Assert.True(server.Engine == engine, "Engine");
                Assert.True(server.Accept() == null, "no call yet");
                var stats = server.Stats();
                Assert.SequenceEqual(Library.ServerStatNames, stats.Keys, "server counter names");
                Assert.True(Library.ServerStatNames.Count >= 11, "at least 11 server counters");
                Assert.True(stats.Values.All(v => v == 0), "fresh counters are 0");
                // A second server cannot bind a port that is taken.
                Assert.Equal(ResultCode.Io, CodeOf(() => engine.Serve(new ServerOptions { Bind = "127.0.0.1:" + server.Port }), "taken port"), "taken port");

                server.Shutdown(TimeSpan.Zero);
                Assert.Equal(ResultCode.Closed, CodeOf(() => server.Shutdown(TimeSpan.Zero), "second shutdown"), "second shutdown");
                Assert.Equal(ResultCode.Closed, CodeOf(() => server.Accept(), "accept after shutdown"), "accept after shutdown");
                Assert.Equal(ResultCode.Closed, CodeOf(() => server.Stats(), "stats after shutdown"), "stats after shutdown");
                server.Dispose();
                server.Dispose();
                Assert.Throws<ObjectDisposedException>(() => server.Accept(), "accept after Dispose");

                // The server keeps its engine's native handle: disposing only the handle defers the
                // engine's free until the server is freed, and the server still works meanwhile.
                var other = new Engine(1);
                var held = other.Serve();
                other.Handle.Dispose();
                Assert.True(held.Accept() == null, "the server works on while it holds the engine");
                held.Dispose();
                other.Dispose();

                // Disposing an engine disposes the servers still running on it first.
                var third = new Engine(1);
                var running = third.Serve(new ServerOptions { Path = "/x", MaxSessions = 2, PingInterval = TimeSpan.Zero });
                third.Dispose();
                Assert.True(running.Handle.IsClosed, "the engine disposed its server");
                Assert.Throws<ObjectDisposedException>(() => running.Accept(), "accept on a server of a disposed engine");
                Assert.Throws<ObjectDisposedException>(() => third.Serve(), "serve on a disposed engine");
            }
        }

        public static void TestAServerStartedWhileItsEngineIsDisposedIsClosedOrRefused()
        {
            // Dispose closes the servers it finds, then frees the engine once they are freed: a
            // server whose start raced it must not be left running on an engine that is gone.
            for (int i = 0; i < 40; i++)
            {
                var engine = new Engine(1);
                var first = engine.Serve(new ServerOptions { Bind = "127.0.0.1:0" });
                var go = new ManualResetEventSlim();
                var starting = Task.Run(() =>
                {
                    go.Wait();
                    try
                    {
                        return engine.Serve(new ServerOptions { Bind = "127.0.0.1:0" });
                    }
                    catch (ObjectDisposedException)
                    {
                        return null;
                    }
                });
                go.Set();
                engine.Dispose();
                var late = starting.Result;
                Assert.True(first.Handle.IsClosed, "the first server was closed");
                if (late != null) Assert.True(late.Handle.IsClosed, "a server started during Dispose was closed (round " + i + ")");
            }
        }

        public static void TestRealCallOverLoopback()
        {
            List<long[]> labels;
            var audio = Twilio.Speech(out labels);
            const int Frames = 50; // 1 s of the speech fixture
            using (var engine = new Engine(1))
            // The caller's second of audio arrives in one burst before the host reads any: more
            // than the default 500 ms of caller PCM the engine holds for a host that is not reading.
            using (var server = engine.Serve(new ServerOptions { Path = "/media", Session = new SessionOptions { AgentRate = 16000, AgentRingMs = 2000, Dialect = "twilio" } }))
            {
                // A path the server does not serve is refused (404): the upgrade fails.
                using (var refused = new ClientWebSocket())
                using (var cts = new CancellationTokenSource(5000))
                {
                    Assert.Throws<Exception>(() => refused.ConnectAsync(new Uri("ws://127.0.0.1:" + server.Port + "/elsewhere"), cts.Token).Wait(), "wrong path");
                }

                using (var carrier = Carrier.Connect(server.Port, "/media"))
                {
                    carrier.Send(Twilio.Connected());
                    carrier.Send(Twilio.Start());
                    for (int i = 0; i < Frames; i++) carrier.Send(Twilio.Media(2 + i, i + 1, i * 20, audio, i * 160, 160));

                    Session call;
                    using (var cts = new CancellationTokenSource(5000))
                        call = server.AcceptAsync(cts.Token).Result;
                    using (call)
                    {
                        var events = new List<Event>();
                        Until(engine, () => { events.AddRange(call.Events()); return events.Count >= 2 ? events : null; }, "connected + started");
                        Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started }, events.Take(2).Select(e => e.Kind), "first events");
                        var started = events[1];
                        Assert.Equal(Twilio.CallSid, started.CallId, "CallId");
                        Assert.Equal(Twilio.CallSid, started.Name, "Name");
                        Assert.Equal(Twilio.StreamSid, started.StreamId, "StreamId");
                        Assert.Equal(Twilio.AccountSid, started.AccountId, "AccountId");
                        Assert.SequenceEqual(new[] { "caller=+15550100", "lang=en" }, started.CustomParameters.Select(kv => kv.Key + "=" + kv.Value), "custom parameters");
                        Assert.Equal(1u, started.Tracks, "inbound track");
                        Assert.Equal(AudioEncoding.Mulaw, started.Encoding, "encoding");
                        Assert.Equal(8000u, started.SampleRate, "sample rate");
                        Assert.Equal(1u, started.Channels, "channels");

                        // The server drives the carrier side: the host cannot push into the call, and
                        // never has an outbound message to send (the header documents INVALID_ARGUMENT
                        // for next_outbound, the library answers EMPTY: nothing is taken either way).
                        Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => call.Push(Twilio.Dtmf(900, '1')), "push"), "push into an offloaded call");
                        Assert.Equal(ResultCode.InvalidArgument, CodeOf(() => call.Push(new byte[] { 1, 2 }), "push binary"), "binary push");
                        try
                        {
                            Assert.Equal(0, call.Outbound().Count, "outbound messages for the host");
                        }
                        catch (TrunklineException e)
                        {
                            Assert.Equal(ResultCode.InvalidArgument, e.Code, "outbound on an offloaded call");
                        }

                        // Caller audio at the agent rate; the agent's reply and mark reach the carrier.
                        int samples = 0;
                        Until(engine, () => (samples += call.ReadAudio().Length) >= (Frames - 10) * 320 ? "" : null, "caller audio");
                        Assert.True(samples <= Frames * 320, samples + " samples for " + Frames + " frames");
                        Assert.Equal(3200, call.Play(Twilio.Tone(16000, 0.2, 440, 8000), 16000), "samples taken");
                        call.Mark("reply-1");
                        var outbound = Until(engine, () =>
                        {
                            var got = carrier.Received.Select(m => Twilio.Parse(m)).ToList();
                            return got.Any(o => o.Event == "mark" && o.MarkName == "reply-1") ? got : null;
                        }, "the mark at the carrier");
                        var media = outbound.Where(o => o.Event == "media").ToList();
                        Assert.Equal(10, media.Count, "200 ms of agent audio as 20 ms frames");
                        Assert.True(media.All(o => o.Payload.Length == 160 && o.StreamSid == Twilio.StreamSid), "media frames of the stream");
                        Assert.True(outbound.FindIndex(o => o.MarkName == "reply-1") > outbound.FindLastIndex(o => o.Event == "media"), "the mark follows its audio");

                        // The carrier hangs up without `stop`: the call still reports Stopped.
                        carrier.HangUp();
                        Until(engine, () => call.Events().Any(e => e.Kind == EventKind.Stopped) ? "" : null, "Stopped");
                        var stats = Until(engine, () =>
                        {
                            var s = server.Stats();
                            return s["active"] == 0 && s["closed"] >= 1 ? s : null;
                        }, "the connection to close");
                        Assert.Equal(1ul, stats["accepted"], "accepted");
                        Assert.Equal(1ul, stats["rejected_path"], "rejected_path");
                        Assert.Equal(1ul, stats["calls_opened"], "calls_opened");
                        Assert.True(call.Stats()["media_frames_in"] >= Frames - 10, "media frames in");
                    }
                }
                server.Shutdown(TimeSpan.Zero);
            }
        }

        public static void TestShutdownWithGraceLetsALiveCallFinish()
        {
            using (var engine = new Engine(1))
            using (var server = engine.Serve())
            using (var carrier = Carrier.Connect(server.Port, "/any/path"))
            {
                Session call = StartedCall(server, carrier);
                using (call)
                {
                    var sw = Stopwatch.StartNew();
                    var shutdown = server.ShutdownAsync(TimeSpan.FromSeconds(5));
                    Thread.Sleep(100);
                    Assert.True(!shutdown.IsCompleted, "shutdown waits for the live call");
                    Assert.Equal(160, call.Play(new short[160], 8000), "the call is still served");
                    carrier.HangUp();
                    Assert.True(shutdown.Wait(5000), "shutdown returned");
                    Assert.True(sw.ElapsedMilliseconds >= 90 && sw.ElapsedMilliseconds < 3000, "shutdown took " + sw.ElapsedMilliseconds + " ms");
                    Until(engine, () => call.Events().Any(e => e.Kind == EventKind.Stopped) ? "" : null, "Stopped");
                    Assert.Equal(ResultCode.Closed, CodeOf(() => server.AcceptAsync().GetAwaiter().GetResult(), "accept after shutdown"), "AcceptAsync after shutdown");
                }
            }
        }

        public static void TestAcceptAsyncWithoutALimitEndsWhenTheServerShutsDown()
        {
            using (var engine = new Engine(1))
            using (var server = engine.Serve())
            {
                Assert.Throws<ArgumentOutOfRangeException>(() => server.AcceptAsync(CancellationToken.None, 0).GetAwaiter().GetResult(), "a wait of 0 would spin");
                var accepting = server.AcceptAsync(CancellationToken.None, -1);
                Thread.Sleep(100);
                Assert.True(!accepting.IsCompleted, "waiting for a call");
                server.Shutdown(TimeSpan.Zero);
                // At once: the engine's waits also end every second, which must not be what ends it.
                Assert.True(((IAsyncResult)accepting).AsyncWaitHandle.WaitOne(700), "the shutdown ended the wait");
                Assert.Equal(ResultCode.Closed, CodeOf(() => accepting.GetAwaiter().GetResult(), "accept across the shutdown"), "what it threw");
            }
        }

        /// <summary>The status code of a plain HTTP GET of <paramref name="path"/>.</summary>
        static int HttpStatus(int port, string path)
        {
            using (var tcp = new System.Net.Sockets.TcpClient("127.0.0.1", port))
            {
                tcp.ReceiveTimeout = 5000;
                var stream = tcp.GetStream();
                var request = Encoding.ASCII.GetBytes("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
                stream.Write(request, 0, request.Length);
                var buf = new byte[64];
                int n = stream.Read(buf, 0, buf.Length);
                var status = Encoding.ASCII.GetString(buf, 0, n).Split(' ');
                return status.Length > 1 ? int.Parse(status[1]) : 0;
            }
        }

        public static void TestDisposeDuringALongDrainCutsTheLiveCallsAtOnce()
        {
            using (var engine = new Engine(1))
            {
                var server = engine.Serve(new ServerOptions { Path = "/media" });
                using (var carrier = Carrier.Connect(server.Port, "/media"))
                {
                    Session call = StartedCall(server, carrier);
                    using (call)
                    {
                        var drain = server.DrainAsync(TimeSpan.FromSeconds(60));
                        Until(engine, () => server.Ready ? null : "", "the drain to start");
                        // The call is cut now, not after the drain's minute.
                        server.Dispose();
                        var kinds = new List<EventKind>();
                        Until(engine, () =>
                        {
                            kinds.AddRange(call.Events().Select(e => e.Kind));
                            return kinds.Contains(EventKind.Stopped) ? "" : null;
                        }, "Stopped");
                        Assert.True(drain.Wait(10000), "the drain returned");
                        Assert.True(drain.Result, "every call ended");
                    }
                }
            }
        }

        public static void TestDrainRefusesNewCallsAndLetsTheLiveCallFinish()
        {
            List<long[]> labels;
            var audio = Twilio.Speech(out labels);
            const int Frames = 50;
            using (var engine = new Engine(1))
            using (var server = engine.Serve(new ServerOptions { Path = "/media", Session = new SessionOptions { AgentRate = 8000, AgentRingMs = 5000 } }))
            using (var carrier = Carrier.Connect(server.Port, "/media"))
            {
                Assert.True(server.Ready, "ready before the drain");
                Assert.Equal(200, HttpStatus(server.Port, "/readyz"), "/readyz before the drain");
                Session call = StartedCall(server, carrier);
                using (call)
                {
                    // A grace far longer than the rest of the call: the drain ends because the call does.
                    var drain = server.DrainAsync(TimeSpan.FromSeconds(30));
                    Until(engine, () => server.Ready ? null : "", "the server to stop being ready");
                    Assert.Equal(503, HttpStatus(server.Port, "/readyz"), "/readyz while draining");
                    Assert.Equal(200, HttpStatus(server.Port, "/healthz"), "/healthz while draining");
                    using (var refused = new ClientWebSocket())
                    using (var cts = new CancellationTokenSource(5000))
                        Assert.Throws<Exception>(() => refused.ConnectAsync(new Uri("ws://127.0.0.1:" + server.Port + "/media"), cts.Token).Wait(), "a new call while draining");

                    // The live call goes on: every frame it sends now reaches the host, then it stops.
                    for (int i = 0; i < Frames; i++) carrier.Send(Twilio.Media(2 + i, i + 1, i * 20, audio, i * 160, 160));
                    carrier.Send(Twilio.Stop(Frames + 2));
                    int samples = 0;
                    var kinds = new List<EventKind>();
                    Until(engine, () =>
                    {
                        samples += call.ReadAudio().Length;
                        kinds.AddRange(call.Events().Select(e => e.Kind));
                        return kinds.Contains(EventKind.Stopped) ? "" : null;
                    }, "Stopped");
                    samples += call.ReadAudio().Length;
                    Assert.Equal(Frames * 160, samples, "caller samples read during the drain");
                    Assert.True(!drain.IsCompleted, "the drain waits for the carrier to hang up");
                    carrier.HangUp();
                    Assert.True(drain.Wait(10000), "the drain returned");
                    Assert.True(drain.Result, "every call ended");
                    var stats = server.Stats();
                    Assert.Equal(1ul, stats["rejected_draining"], "rejected_draining");
                    Assert.Equal(1ul, stats["calls_opened"], "calls_opened");
                    Assert.Equal(0ul, stats["active"], "active");
                    // Nothing live: a second drain returns at once; draining cannot be undone.
                    Assert.True(server.Drain(TimeSpan.Zero), "a drain with nothing live");
                    Assert.True(!server.Ready, "still draining");
                    Assert.Throws<ArgumentOutOfRangeException>(() => server.Drain(TimeSpan.FromSeconds(-1)), "negative grace");
                    server.Shutdown(TimeSpan.Zero);
                    Assert.Equal(ResultCode.Closed, CodeOf(() => server.Drain(TimeSpan.Zero), "drain after shutdown"), "drain after shutdown");
                    Assert.Equal(ResultCode.Closed, CodeOf(() => { var r = server.Ready; }, "ready after shutdown"), "Ready after shutdown");
                }
            }
        }
    }
}
