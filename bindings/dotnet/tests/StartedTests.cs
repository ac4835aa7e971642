// A session opened with the parameters of a `start` its host already read behaves as the session
// that parsed that `start` itself.
using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline.Tests
{
    public static class StartedTests
    {
        static readonly KeyValuePair<string, string>[] Params =
        {
            new KeyValuePair<string, string>("caller", "+15550100"),
            new KeyValuePair<string, string>("lang", "en"),
        };

        // What Twilio.Start() says, as a host's own handler would have read it.
        static StreamStart Given()
        {
            return new StreamStart
            {
                StreamId = Twilio.StreamSid,
                CallId = Twilio.CallSid,
                AccountId = Twilio.AccountSid,
                Encoding = AudioEncoding.Mulaw,
                SampleRate = 8000,
                Channels = 1,
                CustomParameters = Params,
            };
        }

        static string Describe(Event e)
        {
            return e + " account=" + e.AccountId + " stream_ms=" + e.StreamMs + " played_ms=" + e.PlayedMs;
        }

        public static void TestASessionOpenedStartedIsTheSessionThatParsedTheStart()
        {
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            using (var parsed = engine.OpenSession(new SessionOptions { AgentRate = 16000 }))
            using (var given = engine.OpenSessionStarted(Given(), new SessionOptions { AgentRate = 16000 }))
            {
                parsed.Push(Twilio.Start());
                // The same caller audio and the same reply to both, on one manual clock.
                List<long[]> labels;
                var caller = Twilio.Speech(out labels);
                var reply = Enumerable.Range(0, 4000).Select(i => (short)(((i * 37 % 2000) - 1000) * 8)).ToArray();
                var calls = new[] { parsed, given };
                var heard = new[] { new List<short>(), new List<short>() };
                var outs = new[] { new List<string>(), new List<string>() };
                var events = new[] { new List<Event>(), new List<Event>() };
                for (int k = 0; k < 100; k++)
                {
                    for (int i = 0; i < 2; i++)
                    {
                        var s = calls[i];
                        s.Push(Twilio.Media(k + 2, k + 1, k * 20, caller, k * 160, 160));
                        if (k == 10)
                        {
                            Assert.Equal(4000, s.Play(reply, 8000), "reply taken");
                            s.Mark("end");
                        }
                        heard[i].AddRange(s.ReadAudio());
                        outs[i].AddRange(s.Outbound().Select(m => (string)m));
                        events[i].AddRange(s.Events());
                    }
                    engine.Advance(TimeSpan.FromMilliseconds(20));
                }

                var first = events[1][0];
                Assert.Equal(EventKind.Started, first.Kind, "first event");
                Assert.Equal(Twilio.StreamSid, first.StreamId, "stream id");
                Assert.Equal(Twilio.CallSid, first.CallId, "call id");
                Assert.Equal(Twilio.AccountSid, first.AccountId, "account id");
                Assert.SequenceEqual(Params, first.CustomParameters, "custom parameters");
                Assert.Equal(AudioEncoding.Mulaw, first.Encoding, "encoding");
                Assert.Equal(8000u, first.SampleRate, "sample rate");
                Assert.Equal(1u, first.Channels, "channels");
                Assert.SequenceEqual(events[0].Select(Describe), events[1].Select(Describe), "the same events");

                Assert.True(heard[1].Count > 8000, "caller audio came through: " + heard[1].Count + " samples");
                Assert.SequenceEqual(heard[0], heard[1], "the same caller audio");
                Assert.True(outs[1].Count > 0, "messages to the carrier");
                Assert.SequenceEqual(outs[0], outs[1], "the same messages to the carrier");
                var sent = outs[1].Select(m => Twilio.Parse(m)).ToList();
                Assert.True(sent.All(o => o.StreamSid == Twilio.StreamSid), "every message names the stream");
                Assert.Equal(25, sent.Count(o => o.Event == "media"), "the 500 ms reply");
                Assert.Equal("end", sent.Last().MarkName, "the mark after it");

                given.Push(Twilio.Start());
                var dup = given.Events();
                Assert.Equal(1, dup.Count, "one event for the second start");
                Assert.Equal(EventKind.ProtocolError, dup[0].Kind, "kind");
                Assert.Equal((uint)ProtocolErrorCode.DuplicateStart, dup[0].ErrorCode, "duplicate start");
            }
        }

        public static void TestStartDefaultsAndBadParameters()
        {
            using (var engine = new Engine(0))
            {
                // Only what the dialect needs: Twilio echoes the stream id; µ-law at 8 kHz mono is the default.
                using (var s = engine.OpenSessionStarted(new StreamStart { StreamId = Twilio.StreamSid }))
                {
                    var ev = s.Events().Single();
                    Assert.Equal(EventKind.Started, ev.Kind, "kind");
                    Assert.Equal(Twilio.StreamSid, ev.StreamId, "stream id");
                    Assert.Equal("", ev.CallId, "call id");
                    Assert.Equal(0, ev.CustomParameters.Count, "custom parameters");
                    Assert.Equal(AudioEncoding.Mulaw, ev.Encoding, "encoding");
                    Assert.Equal(8000u, ev.SampleRate, "sample rate");
                }
                using (var s = engine.OpenSessionStarted(new StreamStart { StreamId = Twilio.StreamSid, Encoding = AudioEncoding.Alaw }))
                    Assert.Equal(AudioEncoding.Alaw, s.Events()[0].Encoding, "alaw");

                var odd = Given();
                odd.Encoding = AudioEncoding.L16;
                odd.SampleRate = 44100;
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => engine.OpenSessionStarted(odd), "L16 at 44.1 kHz").Code, "code");
                var bad = Given();
                bad.Encoding = (AudioEncoding)7;
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => engine.OpenSessionStarted(bad), "no such encoding").Code, "code");
                var nul = Given();
                nul.CallId = "CA\0x";
                Assert.Throws<ArgumentException>(() => engine.OpenSessionStarted(nul), "NUL in an id");
                Assert.Throws<ArgumentNullException>(() => engine.OpenSessionStarted(null), "no start");
                // The refusals left the engine as it was.
                using (var s = engine.OpenSessionStarted(Given()))
                    Assert.Equal(EventKind.Started, s.Events()[0].Kind, "opened after the refusals");
            }
        }
    }
}
