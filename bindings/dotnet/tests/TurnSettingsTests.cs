using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline.Tests
{
    /// <summary>The VAD's turn settings through the C session config: EndOfTurn events (their
    /// fields, their place before SpeechStopped or, with a maximum silence, after it, their
    /// settings refused out of range) and echo-aware detection.</summary>
    public static class TurnSettingsTests
    {
        const int HangoverMs = 400;

        /// <summary>A speech event and the stream time (ms of caller audio pushed) when it came out.</summary>
        sealed class Seen
        {
            public Event Event;
            public long At;
        }

        /// <summary>Feeds the whole speech fixture to an inline session; returns its speech events.</summary>
        static List<Seen> RunCall(SessionOptions options)
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            options.VadHangoverMs = HangoverMs;
            var seen = new List<Seen>();
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession(options))
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                int frames = caller.Length / 160;
                for (int i = 0; i < frames; i++)
                {
                    s.Push(Twilio.Media(2 + i, i + 1, i * 20, caller, i * 160, 160));
                    s.ReadAudio(); // keeps the caller PCM ring from filling
                    foreach (var e in s.Events()) seen.Add(new Seen { Event = e, At = (i + 1) * 20L });
                }
                s.Push(Twilio.Stop(frames + 2));
                foreach (var e in s.Events()) seen.Add(new Seen { Event = e, At = frames * 20L });
            }
            var speech = new[] { EventKind.SpeechStarted, EventKind.SpeechStopped, EventKind.EndOfTurn };
            return seen.Where(x => speech.Contains(x.Event.Kind)).ToList();
        }

        static string Kinds(List<Seen> seen)
        {
            return string.Join(",", seen.Select(x => x.Event.Kind));
        }

        public static void TestEndOfTurnComesOncePerPauseBeforeSpeechStoppedWithSaneFields()
        {
            const int threshold = 35, minSilence = 140;
            List<long[]> labels;
            Twilio.Speech(out labels);
            var seen = RunCall(new SessionOptions
            {
                VadEndOfTurnEnabled = true,
                VadEndOfTurnThreshold = threshold,
                VadEndOfTurnMinSilenceMs = minSilence,
            });
            var stops = Enumerable.Range(0, seen.Count).Where(i => seen[i].Event.Kind == EventKind.SpeechStopped).ToList();
            Assert.Equal(labels.Count, stops.Count, "speech_stopped per utterance: " + Kinds(seen));
            int early = 0;
            for (int n = 0; n < stops.Count; n++)
            {
                var stopped = seen[stops[n]];
                var turn = seen[stops[n] - 1];
                // The pause's end of turn comes just before its SpeechStopped, at the same end of speech.
                Assert.Equal(EventKind.EndOfTurn, turn.Event.Kind, "before speech_stopped " + n + ": " + Kinds(seen));
                Assert.Equal(stopped.Event.StreamMs, turn.Event.StreamMs, "end of speech " + n);
                Assert.True(Math.Abs((long)stopped.Event.StreamMs - labels[n][1]) <= 60, "end " + stopped.Event.StreamMs + " vs truth " + labels[n][1]);
                int confidence = turn.Event.Confidence.Value;
                long silence = turn.Event.SilenceMs.Value;
                Assert.True(confidence >= 0 && confidence <= 100, "confidence " + confidence);
                if (silence < HangoverMs)
                {
                    // Early: finished-sounding, after the minimum silence, and out that much sooner.
                    early++;
                    Assert.True(confidence >= threshold, "early at confidence " + confidence);
                    Assert.Equal((long)minSilence, silence, "early silence");
                    Assert.True(turn.At < stopped.At, "early end of turn at " + turn.At + " ms, speech stopped at " + stopped.At + " ms");
                    Assert.True(turn.At - (long)turn.Event.StreamMs >= minSilence, "came after the minimum silence");
                }
                else
                {
                    Assert.Equal((long)HangoverMs, silence, "late silence");
                    Assert.True(confidence < threshold, "late at confidence " + confidence);
                }
            }
            Assert.True(early >= 1, "no early end of turn on the whole fixture");
            for (int i = 0; i < seen.Count; i++)
            {
                var e = seen[i].Event;
                if (e.Kind == EventKind.EndOfTurn)
                    Assert.True(seen[i - 1].Event.Kind != EventKind.SpeechStopped, "end of turn after speech stopped: " + Kinds(seen));
                else
                    Assert.True(e.SilenceMs == null && e.Confidence == null, e.Kind + " has end-of-turn fields");
            }
        }

        public static void TestTheTopThresholdWaitsForTheHangoverAndItIsOffByDefault()
        {
            var turns = RunCall(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnThreshold = 99 })
                .Where(x => x.Event.Kind == EventKind.EndOfTurn).ToList();
            Assert.True(turns.Count > 0, "end of turn events");
            foreach (var t in turns)
                Assert.True(t.Event.SilenceMs == HangoverMs && t.Event.Confidence < 99, t.Event.ToString());
            var plain = RunCall(new SessionOptions());
            Assert.True(!plain.Any(x => x.Event.Kind == EventKind.EndOfTurn), "end of turn while off");
            Assert.True(plain.Any(x => x.Event.Kind == EventKind.SpeechStopped), "speech stopped");
        }

        public static void TestAMaxSilenceLongerThanTheHangoverEndsTheTurnAfterSpeechStopped()
        {
            // At the top threshold no phrase sounds finished enough: without a maximum silence each
            // pause's EndOfTurn comes with its SpeechStopped (the test above); with one between the
            // hangover and the fixture's shortest pause (800 ms) it comes that much silence after
            // the speech, later in the stream than SpeechStopped, at the same end of speech.
            const int maxSilence = 600;
            List<long[]> labels;
            Twilio.Speech(out labels);
            var seen = RunCall(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnThreshold = 99, VadEndOfTurnMaxSilenceMs = maxSilence });
            var turns = Enumerable.Range(0, seen.Count).Where(i => seen[i].Event.Kind == EventKind.EndOfTurn).ToList();
            Assert.Equal(labels.Count, turns.Count, "end of turn per pause: " + Kinds(seen));
            foreach (var i in turns)
            {
                var turn = seen[i];
                var stopped = seen[i - 1];
                Assert.Equal(EventKind.SpeechStopped, stopped.Event.Kind, "before end of turn: " + Kinds(seen));
                Assert.Equal(stopped.Event.StreamMs, turn.Event.StreamMs, "end of speech");
                Assert.Equal((long)maxSilence, turn.Event.SilenceMs.Value, "silence");
                Assert.True(turn.Event.Confidence < 99, "confidence " + turn.Event.Confidence);
                Assert.True(turn.At > stopped.At, "end of turn at " + turn.At + " ms, speech stopped at " + stopped.At + " ms");
                Assert.True(turn.At - (long)turn.Event.StreamMs >= maxSilence, "came after the maximum silence");
            }
            // Longer than every pause of the fixture: no pause ends the turn, speech still stops,
            // and the call's end ends the turn still waiting for its maximum silence.
            var longer = RunCall(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnThreshold = 99, VadEndOfTurnMaxSilenceMs = 2000 });
            Assert.Equal(1, longer.Count(x => x.Event.Kind == EventKind.EndOfTurn), "end of turn with 2 s: " + Kinds(longer));
            Assert.True(longer[longer.Count - 1].Event.Kind == EventKind.EndOfTurn, "the call's end ends the turn: " + Kinds(longer));
            Assert.Equal(labels.Count, longer.Count(x => x.Event.Kind == EventKind.SpeechStopped), "speech stopped per utterance");
            Assert.Equal(longer[longer.Count - 2].Event.StreamMs, longer[longer.Count - 1].Event.StreamMs, "at the last speech's end");
        }

        public static void TestAMaxSilenceAbove10SIsRefused()
        {
            using (var engine = new Engine(0))
            {
                foreach (var bad in new[] { 10001, int.MaxValue })
                {
                    var ex = Assert.Throws<TrunklineException>(
                        () => engine.OpenSession(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnMaxSilenceMs = bad }),
                        "max silence " + bad);
                    Assert.Equal(ResultCode.InvalidArgument, ex.Code, "max silence " + bad);
                }
                // Not whole frames: accepted (rounded up to 20 ms, like the minimum silence).
                foreach (var good in new[] { 10000, 1, 1010 })
                    engine.OpenSession(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnMaxSilenceMs = good }).Dispose();
            }
        }

        public static void TestAThresholdOutOf1To99IsRefused()
        {
            using (var engine = new Engine(0))
            {
                foreach (var bad in new[] { 0, 100, 255, 256, int.MaxValue })
                {
                    var ex = Assert.Throws<TrunklineException>(
                        () => engine.OpenSession(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnThreshold = bad }),
                        "threshold " + bad);
                    Assert.Equal(ResultCode.InvalidArgument, ex.Code, "threshold " + bad);
                }
                Assert.Throws<OverflowException>(() => engine.OpenSession(new SessionOptions { VadEndOfTurnThreshold = -1 }), "negative threshold");
                foreach (var good in new[] { 1, 99 })
                    engine.OpenSession(new SessionOptions { VadEndOfTurnEnabled = true, VadEndOfTurnThreshold = good }).Dispose();
            }
        }

        /// <summary>The agent speaks (the speech fixture's first 2.5 s) and the line carries its
        /// voice back: each frame the carrier plays returns as caller audio 100 ms later, 10 dB down.
        /// On a manual clock, so the carrier plays exactly a frame per 20 ms. Returns the speech and
        /// barge-in events.</summary>
        static List<EventKind> AgentEchoCall(bool echoAware)
        {
            List<byte[]> sent;
            Dictionary<string, ulong> stats;
            return AgentEchoCall(new SessionOptions { AgentRate = 8000, VadEchoAware = echoAware }, out sent, out stats);
        }

        /// <summary>The same call with <paramref name="options"/>; also every media payload sent,
        /// in order, and the session's counters.</summary>
        static List<EventKind> AgentEchoCall(SessionOptions options, out List<byte[]> sent, out Dictionary<string, ulong> stats)
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            var agent = caller.Take(20000).Select(Twilio.ReferenceUlawDecode).ToArray();
            var silence = Enumerable.Repeat((byte)0xFF, 160).ToArray();
            var kinds = new List<EventKind>();
            sent = new List<byte[]>();
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            using (var s = engine.OpenSession(options))
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                Assert.Equal(agent.Length, s.Play(agent, 8000), "agent audio taken");
                var queued = new Queue<byte[]>();
                var played = new List<byte[]>();
                for (int i = 0; i < 200; i++)
                {
                    foreach (var o in s.Outbound().Select(Twilio.Parse))
                    {
                        if (o.Event == "media")
                        {
                            queued.Enqueue(o.Payload);
                            sent.Add(o.Payload);
                        }
                        else if (o.Event == "clear") queued.Clear();
                    }
                    played.Add(queued.Count > 0 ? queued.Dequeue() : silence);
                    var heard = i >= 5 ? played[i - 5] : silence;
                    var echo = heard.Select(c => (short)(Twilio.ReferenceUlawDecode(c) * 0.316)).ToArray();
                    var payload = G711.UlawEncode(echo);
                    s.Push(Twilio.Media(2 + i, i + 1, i * 20, payload, 0, payload.Length));
                    engine.Advance(TimeSpan.FromMilliseconds(20));
                    s.ReadAudio();
                    kinds.AddRange(s.Events().Select(e => e.Kind).Where(k => k == EventKind.SpeechStarted || k == EventKind.BargeIn));
                }
                stats = s.Stats();
            }
            return kinds;
        }

        static double LevelDb(byte[] payload)
        {
            double sum = payload.Sum(c => { double x = Twilio.ReferenceUlawDecode(c); return x * x; });
            return 10 * Math.Log10(sum / payload.Length + 1e-9);
        }

        public static void TestDuckingTurnsTheAgentDownBeforeTheBargeInAndZeroTurnsItOff()
        {
            // The same deterministic call twice (the line's echo barges in): with ducking (default
            // 18 dB) the frames sent between the speech's confirmation and the clear are the same
            // audio 18 dB down; with 0 nothing is. The quieter echo may move the barge-in a frame.
            List<byte[]> ducked, plain;
            Dictionary<string, ulong> duckedStats, plainStats;
            var kinds = AgentEchoCall(new SessionOptions { AgentRate = 8000 }, out ducked, out duckedStats);
            var plainKinds = AgentEchoCall(new SessionOptions { AgentRate = 8000, BargeInDuckDb = 0 }, out plain, out plainStats);
            Assert.SequenceEqual(kinds, plainKinds, "the same events");
            Assert.True(kinds.Contains(EventKind.BargeIn), "barge-in");
            Assert.Equal(1UL, duckedStats["ducks"], "ducks");
            Assert.Equal(0UL, plainStats["ducks"], "ducks with 0 dB");
            int n = Math.Min(ducked.Count, plain.Count);
            var differ = Enumerable.Range(0, n).Where(i => !ducked[i].SequenceEqual(plain[i])).ToList();
            Assert.True(differ.Count >= 3, "ducked frames: " + differ.Count);
            Assert.SequenceEqual(Enumerable.Range(differ[0], n - differ[0]), differ, "ducked up to the clear");
            // The first ducked frame holds the 10 ms ramp.
            var drops = differ.Skip(1).Where(i => LevelDb(plain[i]) > 30).Select(i => LevelDb(plain[i]) - LevelDb(ducked[i])).ToList();
            Assert.True(drops.Count > 0 && drops.All(d => d >= 16.5 && d <= 19.5), "drops " + string.Join(", ", drops));
            using (var engine = new Engine(new EngineOptions { Workers = 0 }))
            {
                var ex = Assert.Throws<TrunklineException>(() => engine.OpenSession(new SessionOptions { BargeInDuckDb = 256 }), "256 dB");
                Assert.Equal(ResultCode.InvalidArgument, ex.Code, "256 dB refused");
            }
        }

        public static void TestRejoiningDefaultsTo800MsAndAbove2SIsRefused()
        {
            // Only the engine checks the maximum: a refused 2001 next to an accepted 2000 shows
            // the field reaches it through the struct, at its place in the layout.
            // The library's default, read through the internal struct by reflection.
            var lib = typeof(Engine).Assembly;
            var configType = lib.GetType("Trunkline.NativeSessionConfig", true);
            var args = new object[] { null, new UIntPtr((uint)System.Runtime.InteropServices.Marshal.SizeOf(configType)) };
            var r = lib.GetType("Trunkline.Native", true).GetMethod("trunkline_session_config_default").Invoke(null, args);
            Assert.Equal(ResultCode.Ok, (ResultCode)r, "trunkline_session_config_default");
            Assert.Equal(800u, (uint)configType.GetField("barge_in_rejoin_within_ms").GetValue(args[0]), "default barge_in_rejoin_within_ms");
            using (var engine = new Engine(0))
            {
                foreach (var good in new[] { 0, 2000 })
                    engine.OpenSession(new SessionOptions { BargeInRejoinWithinMs = good }).Dispose();
                foreach (var bad in new[] { 2001, int.MaxValue })
                {
                    var ex = Assert.Throws<TrunklineException>(
                        () => engine.OpenSession(new SessionOptions { BargeInRejoinWithinMs = bad }),
                        "rejoin within " + bad);
                    Assert.Equal(ResultCode.InvalidArgument, ex.Code, "rejoin within " + bad);
                }
            }
        }

        /// <summary>Pushes the speech fixture's first 3 s (its first utterance) to an inline session
        /// on a manual clock, the agent silent; returns all the caller audio read back.</summary>
        static List<short> CallerAudio(SessionOptions options, out Dictionary<string, ulong> stats)
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            const int frames = 150;
            var read = new List<short>();
            options.AgentRate = 8000;
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            using (var s = engine.OpenSession(options))
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                for (int i = 0; i < frames; i++)
                {
                    s.Push(Twilio.Media(2 + i, i + 1, i * 20, caller, i * 160, 160));
                    engine.Advance(TimeSpan.FromMilliseconds(20));
                    read.AddRange(s.ReadAudio());
                }
                // The stop flushes any part frame the canceller holds.
                s.Push(Twilio.Stop(frames + 2));
                read.AddRange(s.ReadAudio());
                stats = s.Stats();
            }
            return read;
        }

        public static void TestEchoReductionIsOffByDefaultNeedsEchoAwareAndPassesAudioWhileTheAgentIsSilent()
        {
            // The library's default, read through the internal struct by reflection.
            var lib = typeof(Engine).Assembly;
            var configType = lib.GetType("Trunkline.NativeSessionConfig", true);
            var args = new object[] { null, new UIntPtr((uint)System.Runtime.InteropServices.Marshal.SizeOf(configType)) };
            var r = lib.GetType("Trunkline.Native", true).GetMethod("trunkline_session_config_default").Invoke(null, args);
            Assert.Equal(ResultCode.Ok, (ResultCode)r, "trunkline_session_config_default");
            Assert.Equal(false, (bool)configType.GetField("echo_reduction").GetValue(args[0]), "default echo_reduction");
            Dictionary<string, ulong> plainStats, stats;
            var plain = CallerAudio(new SessionOptions { VadEchoAware = true }, out plainStats);
            var reduced = CallerAudio(new SessionOptions { VadEchoAware = true, EchoReduction = true }, out stats);
            // With no agent audio there is no echo to remove: the same samples come out, none
            // held back.
            Assert.Equal(150 * 160, plain.Count, "caller samples without echo reduction");
            Assert.Equal(plain.Count, reduced.Count, "caller samples with echo reduction");
            Assert.True(plain.SequenceEqual(reduced), "caller audio changed with the agent silent");
            Assert.Equal(0UL, stats["echo_reduction_unavailable"], "echo_reduction_unavailable");
            // Only the engine checks the pairing: refused with the flag on shows the field reaches
            // it, at its place in the layout.
            using (var engine = new Engine(0))
            {
                foreach (var echoAware in new bool?[] { null, false })
                {
                    var ex = Assert.Throws<TrunklineException>(
                        () => engine.OpenSession(new SessionOptions { EchoReduction = true, VadEchoAware = echoAware }),
                        "echo reduction, echo aware " + echoAware);
                    Assert.Equal(ResultCode.InvalidArgument, ex.Code, "echo reduction, echo aware " + echoAware);
                }
                engine.OpenSession(new SessionOptions { EchoReduction = false, VadEchoAware = false }).Dispose();
            }
        }

        public static void TestEchoAwareKeepsTheAgentFromBargingInOnItsOwnEcho()
        {
            // Without it the echo passes for the caller's speech and cuts the agent off; with it,
            // the echo the agent's played audio explains is not speech.
            Assert.True(AgentEchoCall(false).Contains(EventKind.BargeIn), "barge-in on the echo without echo awareness");
            Assert.SequenceEqual(new EventKind[0], AgentEchoCall(true), "speech events with echo awareness");
        }

        public static void TestEchoAwareIsAcceptedAndChangesNothingWhileTheAgentIsSilent()
        {
            // The echo gate acts on the agent's played audio only: with none, speech is found as
            // without it.
            var plain = RunCall(new SessionOptions());
            var echoAware = RunCall(new SessionOptions { VadEchoAware = true });
            Assert.SequenceEqual(
                plain.Select(x => x.Event.Kind + "@" + x.Event.StreamMs),
                echoAware.Select(x => x.Event.Kind + "@" + x.Event.StreamMs),
                "speech events");
            Assert.True(echoAware.Any(x => x.Event.Kind == EventKind.SpeechStarted), "speech found");
        }
    }
}
