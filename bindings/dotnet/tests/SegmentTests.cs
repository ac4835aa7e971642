// Segments through the .NET binding: the played position per host-named segment, checked against a
// simulated carrier on the manual clock. The carrier plays what it receives in real time after a
// jitter delay, echoes marks (the engine's hidden sync marks) once the audio before them has
// played, and drops its buffer on `clear`. Segments A, B and C have levels of their own, so the
// carrier knows from the samples at its playhead which segment is heard and how much of it.
using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline.Tests
{
    public static class SegmentTests
    {
        const int TickMs = 5;
        const long JitterUs = 60000;
        const long UsPerSample = 125; // 8 kHz
        static readonly string[] Tags = { "A", "B", "C" };
        static readonly Dictionary<string, short> Levels = new Dictionary<string, short> { { "A", 1000 }, { "B", 3000 }, { "C", 6000 } };
        static readonly Dictionary<string, int> LengthsMs = new Dictionary<string, int> { { "A", 500 }, { "B", 300 }, { "C", 400 } };
        const int TotalMs = 1200;

        sealed class Frame
        {
            public long Begin; // play start, µs
            public short[] Samples; // decoded
        }

        sealed class PendingMark
        {
            public long At; // µs
            public string Name;
        }

        sealed class Carrier
        {
            long playEndUs;
            public readonly List<Frame> Frames = new List<Frame>();
            List<PendingMark> marks = new List<PendingMark>();
            public long Seq = 1000;

            public void Receive(object message, long nowUs)
            {
                var o = Twilio.Parse(message);
                if (o.Event == "media")
                {
                    var samples = o.Payload.Select(Twilio.ReferenceUlawDecode).ToArray();
                    long begin = Math.Max(playEndUs, nowUs + JitterUs);
                    Frames.Add(new Frame { Begin = begin, Samples = samples });
                    playEndUs = begin + samples.Length * UsPerSample;
                }
                else if (o.Event == "mark")
                {
                    marks.Add(new PendingMark { At = Math.Max(playEndUs, nowUs), Name = o.MarkName });
                }
                else if (o.Event == "clear")
                {
                    foreach (var f in Frames)
                        f.Samples = f.Samples.Take((int)Math.Max(0, (nowUs - f.Begin) / UsPerSample)).ToArray();
                    playEndUs = nowUs;
                    foreach (var m in marks) m.At = nowUs;
                }
            }

            public List<string> DueEchoes(long nowUs)
            {
                var due = marks.Where(m => m.At <= nowUs).Select(m => m.Name).ToList();
                marks = marks.Where(m => m.At > nowUs).ToList();
                return due;
            }

            IEnumerable<short> Played(long nowUs)
            {
                foreach (var f in Frames)
                {
                    long n = Math.Min(f.Samples.Length, Math.Max(0, (nowUs - f.Begin) / UsPerSample));
                    for (int i = 0; i < n; i++) yield return f.Samples[i];
                }
            }

            /// <summary>Ms of audio heard by <paramref name="nowUs"/>.</summary>
            public double HeardMs(long nowUs)
            {
                return Played(nowUs).Count() / 8.0;
            }

            /// <summary>The segment heard last by <paramref name="nowUs"/> (null: none yet) and the
            /// ms of it heard, from the samples played.</summary>
            public string Truth(long nowUs, out int ms)
            {
                var heard = new List<string>();
                foreach (var v in Played(nowUs))
                {
                    var seg = Tags.FirstOrDefault(t => Math.Abs(v - Levels[t]) < Levels[t] / 8);
                    if (seg != null) heard.Add(seg);
                }
                ms = 0;
                if (heard.Count == 0) return null;
                var last = heard[heard.Count - 1];
                ms = heard.Count(s => s == last) / 8;
                return last;
            }
        }

        sealed class Call : IDisposable
        {
            public readonly Engine Engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true });
            public readonly Session Session;
            public readonly Carrier Carrier = new Carrier();
            public long NowUs;

            public Call()
            {
                Session = Engine.OpenSession(new SessionOptions { AgentRate = 8000 });
                Session.Push(Twilio.Start());
                Session.Events();
            }

            public List<Event> Exchange()
            {
                foreach (var message in Session.Outbound()) Carrier.Receive(message, NowUs);
                foreach (var name in Carrier.DueEchoes(NowUs)) Session.Push(Twilio.MarkEcho(++Carrier.Seq, name));
                Session.ReadAudio();
                return Session.Events();
            }

            public List<Event> Tick()
            {
                Engine.Advance(TimeSpan.FromMilliseconds(TickMs));
                NowUs += TickMs * 1000;
                return Exchange();
            }

            public void PlayAbc()
            {
                foreach (var tag in Tags)
                {
                    Session.BeginSegment(tag);
                    int n = LengthsMs[tag] * 8;
                    Assert.Equal(n, Session.Play(Enumerable.Repeat(Levels[tag], n).ToArray(), 8000), "samples of " + tag + " taken");
                }
            }

            public Event Interrupt()
            {
                Session.Interrupt();
                var evs = Exchange().Where(e => e.Kind == EventKind.Interrupted).ToList();
                Assert.Equal(1, evs.Count, "interrupted events");
                return evs[0];
            }

            public void Dispose()
            {
                Session.Dispose();
                Engine.Dispose();
            }
        }

        /// <summary>Interrupted while B plays: the event names B, how much of it the carrier played
        /// (within 20 ms), and C as unheard; QueuedMs follows the audio the carrier has yet to play.</summary>
        public static void TestInterruptMidSegmentReportsTheSegmentItsPlayedTimeAndTheUnheardRest()
        {
            using (var call = new Call())
            {
                call.PlayAbc();
                Assert.Equal((ulong)TotalMs, call.Session.QueuedMs, "queued before playout");
                var queued = new List<double[]>(); // [reported, the carrier's unheard ms]
                int ms;
                while (true)
                {
                    var seg = call.Carrier.Truth(call.NowUs, out ms);
                    if (seg == "B" && ms >= 120) break;
                    Assert.True(call.NowUs < 2000000, "B never got 120 ms heard");
                    call.Tick();
                    queued.Add(new[] { (double)call.Session.QueuedMs, TotalMs - call.Carrier.HeardMs(call.NowUs) });
                }
                // By the engine's model QueuedMs is ahead by up to the carrier's jitter (plus a tick)
                // until the carrier's echoes correct it, then exact to a tick. It shrinks: A and part
                // of B have been heard.
                foreach (var q in queued)
                    Assert.True(Math.Abs(q[0] - q[1]) <= JitterUs / 1000 + TickMs, "QueuedMs " + q[0] + ", the carrier has " + q[1] + " ms left");
                var last = queued[queued.Count - 1];
                Assert.True(Math.Abs(last[0] - last[1]) <= TickMs, "QueuedMs " + last[0] + ", the carrier has " + last[1] + " ms left");
                Assert.True(last[0] < TotalMs - LengthsMs["A"], "QueuedMs " + last[0] + " once A was heard");

                var ev = call.Interrupt();
                Assert.Equal("B", ev.Segment, "segment");
                Assert.True(ev.SegmentPlayedMs.HasValue && Math.Abs(ev.SegmentPlayedMs.Value - ms) <= 20,
                    "reported " + ev.SegmentPlayedMs + " ms, heard " + ms + " ms");
                Assert.True(ev.SegmentPlayedMs.Value <= LengthsMs["B"], "at most B's length");
                Assert.SequenceEqual(new[] { "C" }, ev.UnheardSegments, "unheard");
                Assert.Equal(0ul, call.Session.QueuedMs, "queued after the interrupt");
            }
        }

        /// <summary>Nothing heard yet: the first segment, no played time (null, not 0), the rest
        /// unheard; the interrupt ended every segment, so the next one names none.</summary>
        public static void TestNothingHeardYetIsNullNotZero()
        {
            using (var call = new Call())
            {
                call.PlayAbc();
                call.Exchange();
                int ms;
                Assert.Equal(null, call.Carrier.Truth(call.NowUs, out ms), "heard before any tick");
                var ev = call.Interrupt();
                Assert.Equal("A", ev.Segment, "segment");
                Assert.Equal(null, ev.SegmentPlayedMs, "segment played");
                Assert.SequenceEqual(new[] { "B", "C" }, ev.UnheardSegments, "unheard");
                ev = call.Interrupt();
                Assert.Equal(null, ev.Segment, "segment after");
                Assert.Equal(null, ev.SegmentPlayedMs, "segment played after");
                Assert.Equal(0, ev.UnheardSegments.Count, "unheard after");
            }
        }

        /// <summary>Other events carry no segment.</summary>
        public static void TestOtherEventsCarryNoSegment()
        {
            using (var call = new Call())
            {
                call.PlayAbc();
                call.Session.Mark("after-c");
                List<Event> played;
                do
                {
                    Assert.True(call.NowUs < 3000000, "the mark was never played");
                    played = call.Tick().Where(e => e.Kind == EventKind.MarkPlayed).ToList();
                } while (played.Count == 0);
                Assert.Equal(null, played[0].Segment, "segment");
                Assert.Equal(null, played[0].SegmentPlayedMs, "segment played");
                Assert.Equal(0, played[0].UnheardSegments.Count, "unheard");
            }
        }

        /// <summary>Empty, too long (in bytes) or NUL-holding tags are refused, a 63-byte tag is
        /// taken, and a 33rd segment queued finds the table full.</summary>
        public static void TestBadTagsAndAFullTableAreRefused()
        {
            using (var call = new Call())
            {
                foreach (var bad in new[] { "", new string('x', 64), string.Concat(Enumerable.Repeat("é", 32)) })
                {
                    var e = Assert.Throws<TrunklineException>(() => call.Session.BeginSegment(bad), "tag of " + bad.Length + " chars");
                    Assert.Equal(ResultCode.InvalidArgument, e.Code, "code");
                }
                Assert.Throws<ArgumentException>(() => call.Session.BeginSegment("a\0b"), "a NUL");
                Assert.Throws<ArgumentNullException>(() => call.Session.BeginSegment(null), "null");
                call.Session.BeginSegment(new string('x', 63)); // the longest tag
                for (int i = 1; i < 32; i++) call.Session.BeginSegment("s" + i);
                Assert.Equal(ResultCode.Full, Assert.Throws<TrunklineException>(() => call.Session.BeginSegment("one-too-many"), "33rd").Code, "code");
            }
        }
    }
}
