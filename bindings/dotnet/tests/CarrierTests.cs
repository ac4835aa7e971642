// One offload server for several carriers through the .NET binding: routes binding request paths
// to dialects (a Twilio and a Telnyx carrier over ClientWebSocket, sending each carrier's documented
// messages), and an Asterisk AudioSocket call over a raw TCP connection.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Threading;

namespace Trunkline.Tests
{
    public static class CarrierTests
    {
        const string TelnyxToken = "telnyx-streaming-secret";
        const string TelnyxStream = "32de0dea-53cb-4b21-89a4-9610f5d91a9b";
        const string TelnyxCall = "v2:T02llQxIyaRkhfRKxgAP8nY511EhFLizdvdUKJiSw8d6A9BborherQ";
        const string Allowed = "40325ec2-5efd-4bd3-805f-53576e581d13";
        const string Refused = "00000000-1111-2222-3333-444444444444";

        static Session NextCall(Engine engine, Server server)
        {
            var sw = Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 5000)
            {
                var call = server.Accept();
                if (call != null) return call;
                engine.Wait(20);
            }
            throw new AssertionException("timed out waiting for a call");
        }

        static Event Started(Engine engine, Session call)
        {
            var sw = Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 5000)
            {
                foreach (var e in call.Events())
                    if (e.Kind == EventKind.Started) return e;
                engine.Wait(20);
            }
            throw new AssertionException("timed out waiting for started");
        }

        static void SendText(ClientWebSocket ws, string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            using (var cts = new CancellationTokenSource(5000))
                ws.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, cts.Token).Wait();
        }

        static ClientWebSocket Connect(int port, string path, string telnyxToken)
        {
            var ws = new ClientWebSocket();
            if (telnyxToken != null) ws.Options.SetRequestHeader("x-telnyx-streaming-auth-token", telnyxToken);
            using (var cts = new CancellationTokenSource(5000))
                ws.ConnectAsync(new Uri("ws://127.0.0.1:" + port + path), cts.Token).Wait();
            return ws;
        }

        public static void TestRoutesTakeEachCarrierOnItsPath()
        {
            using (var engine = new Engine(1))
            {
                var bad = Assert.Throws<TrunklineException>(() => engine.Serve(new ServerOptions
                {
                    Routes = new[] { new Route { Path = "/a", Dialect = "twilio" }, new Route { Path = "/a", Dialect = "telnyx" } },
                }), "a path twice");
                Assert.Equal(ResultCode.InvalidArgument, bad.Code, "a path twice");
                bad = Assert.Throws<TrunklineException>(() => engine.Serve(new ServerOptions
                {
                    Routes = new[] { new Route { Path = "/a", Dialect = "no-such-dialect" } },
                }), "an unknown dialect");
                Assert.Equal(ResultCode.InvalidArgument, bad.Code, "an unknown dialect");

                var options = new ServerOptions
                {
                    Routes = new List<Route>
                    {
                        new Route { Path = "/twilio", Dialect = "twilio" },
                        new Route { Path = "/telnyx", Dialect = "telnyx", AuthToken = TelnyxToken },
                    },
                };
                using (var server = engine.Serve(options))
                {
                    // Telnyx without its token: refused (403), the upgrade fails.
                    Assert.Throws<Exception>(() => Connect(server.Port, "/telnyx", null).Dispose(), "no token");

                    using (var telnyx = Connect(server.Port, "/telnyx", TelnyxToken))
                    using (var twilio = Connect(server.Port, "/twilio", null))
                    {
                        SendText(telnyx, "{\"event\":\"connected\",\"version\":\"1.0.0\"}");
                        SendText(telnyx, "{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_id\":\"" + TelnyxStream + "\"," +
                            "\"start\":{\"user_id\":\"3e6f995f-85f7-4705-9741-53b116d28237\",\"call_control_id\":\"" + TelnyxCall + "\"," +
                            "\"media_format\":{\"encoding\":\"PCMU\",\"sample_rate\":8000,\"channels\":1}}}");
                        using (var call = NextCall(engine, server))
                        {
                            var started = Started(engine, call);
                            Assert.Equal(TelnyxCall, started.CallId, "the Telnyx call's id (call_control_id)");
                            Assert.Equal(TelnyxStream, started.StreamId, "the Telnyx stream id");
                        }
                        SendText(twilio, Twilio.Connected());
                        SendText(twilio, Twilio.Start());
                        using (var call = NextCall(engine, server))
                        {
                            var started = Started(engine, call);
                            Assert.Equal(Twilio.CallSid, started.CallId, "the Twilio call's id (callSid)");
                            Assert.Equal(Twilio.StreamSid, started.StreamId, "the Twilio stream id");
                        }
                        var stats = server.Stats();
                        Assert.Equal(2UL, stats["calls_opened"], "calls opened");
                        Assert.Equal(1UL, stats["rejected_signature"], "refused without the token");
                        telnyx.Abort();
                        twilio.Abort();
                    }
                }
            }
        }

        /// <summary>An AudioSocket connection: the UUID message (0x01, 16 bytes), then one 20 ms audio
        /// message (0x10, 320 bytes of 8 kHz s16le).</summary>
        static TcpClient AudioSocketCall(int port, string uuid)
        {
            var tcp = new TcpClient("127.0.0.1", port);
            tcp.ReceiveTimeout = 5000;
            var hex = uuid.Replace("-", "");
            var message = new List<byte> { 0x01, 0, 16 };
            for (int i = 0; i < 16; i++) message.Add(Convert.ToByte(hex.Substring(2 * i, 2), 16));
            message.AddRange(new byte[] { 0x10, 320 >> 8, 320 & 0xFF });
            for (int i = 0; i < 160; i++)
            {
                short s = (short)(i % 20 < 10 ? 4000 : -4000);
                message.Add((byte)(s & 0xFF));
                message.Add((byte)((s >> 8) & 0xFF));
            }
            tcp.GetStream().Write(message.ToArray(), 0, message.Count);
            return tcp;
        }

        public static void TestAudioSocketCall()
        {
            using (var engine = new Engine(1))
            using (var server = engine.Serve())
            {
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => server.ListenAudioSocket("127.0.0.1:0", new[] { "not-a-uuid" }), "bad UUID").Code, "bad UUID");
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => server.AllowAudioSocketCall("not-a-uuid"), "bad UUID").Code, "bad UUID");
                int port = server.ListenAudioSocket();
                Assert.True(port > 0 && port != server.Port, "AudioSocket port " + port);
                server.AllowAudioSocketCall(Allowed);

                using (var refused = AudioSocketCall(port, Refused))
                {
                    // The server closes it: the read ends (0 bytes, or a reset).
                    int n;
                    try { n = refused.GetStream().Read(new byte[1], 0, 1); }
                    catch (System.IO.IOException) { n = 0; }
                    Assert.Equal(0, n, "refused connection closed");
                }
                using (var tcp = AudioSocketCall(port, Allowed))
                using (var call = NextCall(engine, server))
                {
                    var started = Started(engine, call);
                    Assert.Equal(Allowed, started.CallId, "the call's id is its UUID");
                    Assert.Equal(AudioEncoding.L16, started.Encoding, "encoding");
                    Assert.Equal(8000u, started.SampleRate, "sample rate");
                }
                var stats = server.Stats();
                Assert.Equal(1UL, stats["rejected_audiosocket_call"], "refused UUID counted");
                Assert.Equal(1UL, stats["calls_opened"], "calls opened");
                Assert.True(server.RevokeAudioSocketCall(Allowed), "was allowed");
                Assert.True(!server.RevokeAudioSocketCall(Allowed), "no longer allowed");
            }
        }
    }
}
