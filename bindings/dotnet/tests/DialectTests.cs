// Sessions on other carriers' dialects, chosen by name: a JSON text carrier (Telnyx), a binary
// framed one (Vonage) and a TCP byte stream pushed in arbitrary chunks (Asterisk AudioSocket).
// The messages are written here from the carriers' documented shapes; caller audio is checked
// against an independent decoding, agent audio as the carrier reads it back, on a manual clock so
// that the frames due at each step are exact.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;

namespace Trunkline.Tests
{
    public static class DialectTests
    {
        const string SyncPrefix = "trunkline-sync-";
        static readonly TimeSpan Frame = TimeSpan.FromMilliseconds(20);
        static readonly Regex EventRe = new Regex("\"event\"\\s*:\\s*\"([a-z:]+)\"");
        static readonly Regex ActionRe = new Regex("\"action\"\\s*:\\s*\"([a-z]+)\"");
        static readonly Regex PayloadRe = new Regex("\"payload\"\\s*:\\s*\"([^\"]*)\"");
        static readonly Regex NameRe = new Regex("\"(?:name|mark)\"\\s*:\\s*\"([^\"]*)\"");

        /// <summary>A sawtooth: every value differs from its neighbours, none is silence.</summary>
        static short[] Ramp(int n, int step)
        {
            return Enumerable.Range(0, n).Select(i => (short)((i * step) % 20000 - 10000)).ToArray();
        }

        /// <summary>s16le bytes of <paramref name="pcm"/>.</summary>
        static byte[] Le(short[] pcm)
        {
            var b = new byte[pcm.Length * 2];
            for (int i = 0; i < pcm.Length; i++)
            {
                b[2 * i] = (byte)pcm[i];
                b[2 * i + 1] = (byte)(pcm[i] >> 8);
            }
            return b;
        }

        static Session Open(Engine engine, string dialect, int rate)
        {
            return engine.OpenSession(new SessionOptions { AgentRate = rate, PlayRate = rate, Dialect = dialect });
        }

        static EngineOptions ManualClock()
        {
            return new EngineOptions { Workers = 0, ManualClock = true };
        }

        static IEnumerable<EventKind> Kinds(IEnumerable<Event> events)
        {
            return events.Select(e => e.Kind);
        }

        /// <summary>A JSON text frame's string field.</summary>
        static string Field(Regex re, string json)
        {
            var m = re.Match(json);
            if (!m.Success) throw new AssertionException("no " + re + " in " + json);
            return m.Groups[1].Value;
        }

        public static void TestTelnyxJsonTextMulawStartDtmfMediaMarkStop()
        {
            using (var engine = new Engine(ManualClock()))
            using (var s = Open(engine, "telnyx", 8000))
            {
                var codes = Enumerable.Range(0, 160).Select(i => (byte)(i * 7 % 256)).ToArray();
                s.Push("{\"event\":\"connected\",\"version\":\"1.0.0\"}");
                s.Push("{\"event\":\"start\",\"sequence_number\":\"1\",\"stream_id\":\"stream-1\",\"start\":{\"call_control_id\":\"v3:call-1\","
                    + "\"custom_parameters\":{\"customer_id\":\"c-42\"},\"media_format\":{\"encoding\":\"PCMU\",\"sample_rate\":8000,\"channels\":1}}}");
                s.Push("{\"event\":\"media\",\"sequence_number\":\"2\",\"stream_id\":\"stream-1\",\"media\":{\"track\":\"inbound\",\"chunk\":\"1\","
                    + "\"timestamp\":\"0\",\"payload\":\"" + Convert.ToBase64String(codes) + "\"}}");
                Assert.SequenceEqual(codes.Select(Twilio.ReferenceUlawDecode), s.ReadAudio(), "caller audio");
                s.Push("{\"event\":\"dtmf\",\"sequence_number\":\"3\",\"stream_id\":\"stream-1\",\"dtmf\":{\"digit\":\"7\"}}");
                var events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started, EventKind.Dtmf }, Kinds(events), "events");
                var started = events[1];
                Assert.Equal("v3:call-1", started.CallId, "call id");
                Assert.Equal("stream-1", started.StreamId, "stream id");
                Assert.SequenceEqual(new[] { new KeyValuePair<string, string>("customer_id", "c-42") }, started.CustomParameters, "custom parameters");
                Assert.Equal(AudioEncoding.Mulaw, started.Encoding, "encoding");
                Assert.Equal(8000u, started.SampleRate, "rate");
                Assert.Equal(1u, started.Channels, "channels");
                Assert.Equal('7', events[2].Digit, "digit");

                // 200 ms of agent audio and a mark: the 100 ms lead at once, then a frame per 20 ms.
                var reply = Ramp(1600, 211);
                Assert.Equal(1600, s.Play(reply, 8000), "taken");
                s.Mark("reply");
                var media = new List<byte>();
                var marks = new List<string>();
                Func<int> take = () =>
                {
                    int frames = 0;
                    foreach (var m in s.Outbound())
                    {
                        var text = m as string;
                        Assert.True(text != null, "Telnyx takes text frames");
                        var ev = Field(EventRe, text);
                        if (ev == "media")
                        {
                            Assert.True(text.StartsWith("{\"event\":\"media\",\"media\":{\"payload\":\"", StringComparison.Ordinal) && text.EndsWith("\"}}", StringComparison.Ordinal), "media shape: " + text);
                            var payload = Convert.FromBase64String(Field(PayloadRe, text));
                            Assert.Equal(160, payload.Length, "20 ms of 8 kHz µ-law");
                            media.AddRange(payload);
                            frames++;
                        }
                        else
                        {
                            Assert.Equal("mark", ev, "event of " + text);
                            var name = Field(NameRe, text);
                            if (!name.StartsWith(SyncPrefix, StringComparison.Ordinal)) marks.Add(name);
                        }
                    }
                    return frames;
                };
                Assert.Equal(5, take(), "the lead at t = 0");
                for (int step = 1; step <= 5; step++)
                {
                    engine.Advance(Frame);
                    Assert.Equal(1, take(), "frames after step " + step);
                }
                Assert.SequenceEqual(new[] { "reply" }, marks, "marks sent");
                Assert.Equal(reply.Length, media.Count, "samples sent");
                for (int i = 0; i < reply.Length; i++)
                {
                    // µ-law keeps about 4 significant bits: each sample within its quantisation step.
                    int heard = Twilio.ReferenceUlawDecode(media[i]);
                    Assert.True(Math.Abs(heard - reply[i]) <= Math.Abs(reply[i]) / 16 + 16, "sample " + i + ": " + heard + " vs " + reply[i]);
                }

                s.Push("{\"event\":\"mark\",\"sequence_number\":\"4\",\"stream_id\":\"stream-1\",\"mark\":{\"name\":\"reply\"}}");
                s.Push("{\"event\":\"stop\",\"sequence_number\":\"5\",\"stream_id\":\"stream-1\",\"stop\":{}}");
                events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.MarkPlayed, EventKind.Stopped }, Kinds(events), "events at the end");
                Assert.Equal("reply", events[0].Name, "mark played");
                Assert.Equal(200ul, events[0].PlayedMs, "its position");
                Assert.Equal(0ul, s.Stats()["protocol_errors"], "protocol_errors");
            }
        }

        public static void TestVonageBinaryFramesInAndOutJsonControl()
        {
            using (var engine = new Engine(ManualClock()))
            using (var s = Open(engine, "vonage", 16000))
            {
                const string uuid = "aaaaaaaa-bbbb-cccc-dddd-0123456789ab";
                s.Push("{\"event\":\"websocket:connected\",\"content-type\":\"audio/l16;rate=16000\",\"uuid\":\"" + uuid + "\",\"lang\":\"en\"}");
                var audio = Ramp(320 * 5, 37);
                for (int i = 0; i < 5; i++) s.Push(Le(audio.Skip(i * 320).Take(320).ToArray())); // byte[]: a binary frame
                Assert.SequenceEqual(audio, s.ReadAudio(), "caller audio");
                s.Push("{\"event\":\"websocket:dtmf\",\"digit\":\"5\",\"duration\":260}");
                var events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.Started, EventKind.Dtmf }, Kinds(events), "events");
                var started = events[0];
                Assert.Equal(AudioEncoding.L16, started.Encoding, "encoding");
                Assert.Equal(16000u, started.SampleRate, "rate");
                Assert.Equal(uuid, started.CallId, "call id");
                Assert.SequenceEqual(
                    new[] { new KeyValuePair<string, string>("uuid", uuid), new KeyValuePair<string, string>("lang", "en") },
                    started.CustomParameters, "custom parameters");
                Assert.Equal('5', events[1].Digit, "digit");
                Assert.Equal(260L, events[1].DurationMs, "Vonage says how long the key was held");

                var reply = Ramp(3200, 113); // 200 ms
                Assert.Equal(3200, s.Play(reply, 16000), "taken");
                s.Mark("reply");
                var frames = new List<byte>();
                var marks = new List<string>();
                Func<int> take = () =>
                {
                    int n = 0;
                    foreach (var m in s.Outbound())
                    {
                        var text = m as string;
                        if (text != null)
                        {
                            Assert.Equal("notify", Field(ActionRe, text), "action of " + text);
                            var name = Field(NameRe, text);
                            if (!name.StartsWith(SyncPrefix, StringComparison.Ordinal)) marks.Add(name);
                            continue;
                        }
                        var frame = (byte[])m;
                        Assert.Equal(640, frame.Length, "a binary frame of exactly 20 ms at 16 kHz");
                        frames.AddRange(frame);
                        n++;
                    }
                    return n;
                };
                Assert.Equal(5, take(), "the lead at t = 0");
                for (int step = 1; step <= 5; step++)
                {
                    engine.Advance(Frame);
                    Assert.Equal(1, take(), "frames after step " + step);
                }
                Assert.SequenceEqual(Le(reply), frames, "the agent audio, untouched");
                Assert.SequenceEqual(new[] { "reply" }, marks, "marks sent");
                s.Push("{\"event\":\"websocket:notify\",\"payload\":{\"mark\":\"reply\"}}");
                events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.MarkPlayed }, Kinds(events), "events at the end");
                Assert.Equal("reply", events[0].Name, "mark played");
                Assert.Equal(200ul, events[0].PlayedMs, "its position");
                Assert.Equal(0ul, s.Stats()["protocol_errors"], "protocol_errors");
                // Vonage sends no stop: the socket closing ends the stream.
                s.EndStream();
                Assert.SequenceEqual(new[] { EventKind.Stopped }, Kinds(s.Events()), "after EndStream");
                s.EndStream(); // harmless once ended
                Assert.Equal(0, s.Events().Count, "nothing more");
            }
        }

        /// <summary>An AudioSocket message: type, big-endian length, value.</summary>
        static byte[] Tlv(byte kind, byte[] value)
        {
            return new[] { kind, (byte)(value.Length >> 8), (byte)value.Length }.Concat(value).ToArray();
        }

        public static void TestAudioSocketStreamInAnyChunksAndMessagesOut()
        {
            using (var engine = new Engine(ManualClock()))
            using (var s = Open(engine, "audiosocket", 8000))
            {
                Func<byte[], List<short>> pushCut = stream =>
                {
                    var heard = new List<short>();
                    for (int at = 0; at < stream.Length; at += 7) // through headers and values alike
                    {
                        var chunk = new byte[Math.Min(7, stream.Length - at)];
                        Array.Copy(stream, at, chunk, 0, chunk.Length);
                        s.Push(chunk);
                        heard.AddRange(s.ReadAudio());
                    }
                    return heard;
                };
                var audio = Ramp(160 * 10, 53);
                var parts = new List<byte>(Tlv(0x01, Enumerable.Range(0, 16).Select(i => (byte)i).ToArray())); // the call's UUID
                for (int i = 0; i < 10; i++) parts.AddRange(Tlv(0x10, Le(audio.Skip(i * 160).Take(160).ToArray()))); // 20 ms of slin
                parts.AddRange(Tlv(0x03, Encoding.ASCII.GetBytes("4")));
                Assert.SequenceEqual(audio, pushCut(parts.ToArray()), "caller audio");
                var events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started, EventKind.Dtmf }, Kinds(events), "events");
                const string uuid = "00010203-0405-0607-0809-0a0b0c0d0e0f";
                Assert.Equal(uuid, events[1].CallId, "call id");
                Assert.Equal(uuid, events[1].StreamId, "stream id");
                Assert.Equal(AudioEncoding.L16, events[1].Encoding, "encoding");
                Assert.Equal(8000u, events[1].SampleRate, "rate");
                Assert.Equal('4', events[2].Digit, "digit");

                // Asterisk plays what it gets at once: the engine keeps it 40 ms ahead, no more.
                var reply = Ramp(1600, 97); // 200 ms
                Assert.Equal(1600, s.Play(reply, 8000), "taken");
                s.Mark("reply");
                var payloads = new List<byte>();
                Func<int> take = () =>
                {
                    var out_ = s.Outbound();
                    foreach (var m in out_)
                    {
                        var msg = m as byte[];
                        Assert.True(msg != null, "AudioSocket messages are binary");
                        Assert.Equal(323, msg.Length, "a 0x10 message of 20 ms");
                        Assert.SequenceEqual(new byte[] { 0x10, 0x01, 0x40 }, msg.Take(3), "its header");
                        payloads.AddRange(msg.Skip(3));
                    }
                    return out_.Count;
                };
                Assert.Equal(2, take(), "two frames ahead at t = 0");
                for (int step = 1; step <= 8; step++)
                {
                    engine.Advance(Frame);
                    Assert.Equal(1, take(), "frames after step " + step);
                }
                Assert.SequenceEqual(Le(reply), payloads, "the agent audio, untouched");
                // No confirmation from Asterisk: the engine's clock says when the mark's audio has played.
                Assert.Equal(0, s.Events().Count, "nothing played yet");
                engine.Advance(TimeSpan.FromMilliseconds(40));
                events = s.Events();
                Assert.SequenceEqual(new[] { EventKind.MarkPlayed }, Kinds(events), "once played");
                Assert.Equal("reply", events[0].Name, "mark played");
                Assert.Equal(200ul, events[0].PlayedMs, "its position");

                Assert.Equal(0, pushCut(Tlv(0x00, new byte[0])).Count, "no audio in a hang-up");
                Assert.SequenceEqual(new[] { EventKind.Stopped }, Kinds(s.Events()), "hang-up");
                Assert.Equal(0ul, s.Stats()["protocol_errors"], "protocol_errors");
            }
        }
    }
}
