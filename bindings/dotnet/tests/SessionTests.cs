using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline.Tests
{
    /// <summary>Whole calls through the binding, as the engine's end_to_end test does.</summary>
    public static class CallTests
    {
        const int Frames = 220;  // 4.4 s, ending before the fixture's second utterance
        const int GapFrame = 100; // never sent
        const int DupFrame = 30;  // sent twice
        const int SwapFrame = 110; // sent after SwapFrame + 1
        const int AgentRate = 16000;

        static readonly EventKind[] CallEvents =
        {
            EventKind.Connected, EventKind.Started, EventKind.SpeechStarted, EventKind.SpeechStopped,
            EventKind.Dtmf, EventKind.Stopped,
        };

        /// <summary>Pushes the caller's side of the call: frame i at 20 ms × i, with a lost frame,
        /// a duplicate and a swapped pair; <paramref name="between"/> runs after every frame.</summary>
        static void PushCall(Session s, byte[] caller, Action between)
        {
            s.Push(Twilio.Connected());
            s.Push(Twilio.Start());
            string held = null;
            for (int i = 0; i < Frames; i++)
            {
                var msg = Twilio.Media(2 + i, i + 1, i * 20, caller, i * 160, 160);
                if (i == GapFrame) { }
                else if (i == DupFrame) { PushRetry(s, msg); PushRetry(s, msg); }
                else if (i == SwapFrame) held = msg;
                else
                {
                    PushRetry(s, msg);
                    if (held != null) { PushRetry(s, held); held = null; }
                }
                between();
            }
            PushRetry(s, Twilio.Dtmf(2 + Frames + 1, '5'));
            PushRetry(s, Twilio.Stop(2 + Frames + 2));
        }

        /// <summary>Push, retrying while the inbound ring is full (the documented contract).</summary>
        public static void PushRetry(Session s, string msg)
        {
            for (int attempt = 0; ; attempt++)
            {
                try
                {
                    s.Push(msg);
                    return;
                }
                catch (TrunklineException ex)
                {
                    if (ex.Code != ResultCode.Full || attempt > 1000) throw;
                    Thread.Sleep(1);
                }
            }
        }

        /// <summary>Plays all of <paramref name="pcm"/> as a host does: Play takes what fits (the
        /// play ring is a hand-off that the worker empties into its outbound queue, 2 s of 8 kHz
        /// µ-law by default), and the rest is played once the engine has made room. Returns the
        /// samples taken (fewer than all only if two seconds passed first).</summary>
        public static int PlayAll(Engine engine, Session s, short[] pcm, int rate)
        {
            int played = 0;
            var sw = Stopwatch.StartNew();
            while (played < pcm.Length && sw.ElapsedMilliseconds < 2000)
            {
                played += s.Play(pcm, played, pcm.Length - played, rate);
                if (played < pcm.Length) engine.Wait(5);
            }
            return played;
        }

        public static double Rms(short[] pcm, int from, int count)
        {
            double sum = 0;
            for (int i = from; i < from + count; i++) sum += (double)pcm[i] * pcm[i];
            return Math.Sqrt(sum / count);
        }

        static double Correlation(double[] a, double[] b)
        {
            double ma = a.Average(), mb = b.Average(), cov = 0, va = 0, vb = 0;
            for (int i = 0; i < a.Length; i++)
            {
                cov += (a[i] - ma) * (b[i] - mb);
                va += (a[i] - ma) * (a[i] - ma);
                vb += (b[i] - mb) * (b[i] - mb);
            }
            return cov / Math.Sqrt(va * vb);
        }

        static void CheckCall(byte[] caller, List<Event> events, short[] audio, Dictionary<string, ulong> stats, long onsetTruth)
        {
            Assert.SequenceEqual(CallEvents, events.Select(e => e.Kind), "event order");
            var started = events[1];
            Assert.Equal(Twilio.CallSid, started.CallId, "call id");
            Assert.Equal(Twilio.CallSid, started.Name, "started event name (the call id)");
            Assert.Equal(Twilio.StreamSid, started.StreamId, "stream id");
            Assert.Equal(Twilio.AccountSid, started.AccountId, "account id");
            Assert.SequenceEqual(new[] { "caller=+15550100", "lang=en" }, started.CustomParameters.Select(kv => kv.Key + "=" + kv.Value), "custom parameters, in order");
            // What the start message announced: 8000 Hz µ-law, mono.
            Assert.Equal(AudioEncoding.Mulaw, started.Encoding, "encoding");
            Assert.Equal(8000u, started.SampleRate, "sample rate");
            Assert.Equal(1u, started.Channels, "channels");
            foreach (var twilioName in new[] { "CallSid", "StreamSid", "AccountSid", "MediaFormat" })
                Assert.True(typeof(Event).GetProperty(twilioName) == null, "Event has no " + twilioName);
            Assert.Equal(1u, started.Tracks, "tracks (inbound)");

            var onset = (long)events[2].StreamMs;
            Assert.True(Math.Abs(onset - onsetTruth) <= 60, "speech onset " + onset + " ms vs truth " + onsetTruth + " ms");
            Assert.True(events[3].StreamMs > events[2].StreamMs, "speech stops after it starts");
            Assert.Equal('5', events[4].Digit, "dtmf digit");

            // Exactly the stream time at the agent rate: 4.4 s at 16 kHz.
            Assert.Equal(Frames * 20 * AgentRate / 1000, audio.Length, "agent samples");
            // It is the caller's audio: its 20 ms envelope follows the source's (decoded by an
            // independent µ-law reference, the lost frame as silence), and the lost frame is silent.
            var source = new short[Frames * 160];
            for (int i = 0; i < source.Length; i++)
                source[i] = i / 160 == GapFrame ? (short)0 : Twilio.ReferenceUlawDecode(caller[i]);
            var srcEnv = Enumerable.Range(0, Frames).Select(k => Rms(source, k * 160, 160)).ToArray();
            var agentEnv = Enumerable.Range(0, Frames).Select(k => Rms(audio, k * 320, 320)).ToArray();
            var r = Correlation(srcEnv, agentEnv);
            Assert.True(r > 0.98, "agent audio envelope correlates " + r.ToString("F4") + " with the caller's");
            var gap = Rms(audio, GapFrame * 320 + 100, 120);
            Assert.True(gap < 0.05 * srcEnv[GapFrame - 1], "lost frame rms " + gap + " vs the frame before " + srcEnv[GapFrame - 1]);

            Assert.Equal(1ul, stats["frames_duplicate"], "frames_duplicate");
            Assert.Equal(1ul, stats["frames_reordered"], "frames_reordered");
            Assert.Equal(160ul, stats["gap_fill_samples"], "gap_fill_samples");
            Assert.Equal(0ul, stats["frames_late"], "frames_late");
            Assert.Equal(0ul, stats["protocol_errors"], "protocol_errors");
            Assert.Equal((ulong)Frames, stats["media_frames_in"], "media_frames_in (219 sent + 1 duplicate)");
            Assert.Equal((ulong)(Frames + 4), stats["messages_in"], "messages_in");
            Assert.Equal(1ul, stats["dtmf_digits"], "dtmf_digits");
            Assert.Equal(1ul, stats["speech_segments"], "speech_segments");
            Assert.Equal(0ul, stats["agent_samples_dropped"], "agent_samples_dropped");
            Assert.Equal(0ul, stats["events_dropped"], "events_dropped");
        }

        public static void TestFullCallInlineMode()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            Assert.True(labels[0][0] > 600 && labels[0][1] < Frames * 20, "fixture layout changed");
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession(new SessionOptions { AgentRate = AgentRate }))
            {
                var audio = new List<short>();
                var events = new List<Event>();
                PushCall(s, caller, () =>
                {
                    audio.AddRange(s.ReadAudio());
                    events.AddRange(s.Events());
                });
                audio.AddRange(s.ReadAudio());
                events.AddRange(s.Events());
                CheckCall(caller, events, audio.ToArray(), s.Stats(), labels[0][0]);
            }
        }

        /// <summary>The same call on a worker thread, five times faster than real time, with the
        /// events consumed through the IAsyncEnumerable on another task.</summary>
        public static async Task TestPushAsyncWaitsOutAFullInboundRingInsteadOfThrowing()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            using (var engine = new Engine(1))
            // The ring holds two maximal messages (a message never wraps around its end).
            using (var s = engine.OpenSession(new SessionOptions { InboundRingBytes = 4096, MaxMessageBytes = 2000, AgentRingMs = 10000 }))
            {
                var msgs = new List<string> { Twilio.Connected(), Twilio.Start() };
                // Far more than the ring holds: a worker keeps pace with a few hundred synchronous
                // pushes, not with 2,000. The fixture's audio is reused, so every payload is real.
                const int frames = 2000;
                int inFixture = caller.Length / 160;
                for (int i = 0; i < frames; i++)
                    msgs.Add(Twilio.Media(i + 2, i + 1, i * 20, caller, (i % inFixture) * 160, 160));
                int taken = 0;
                var full = Assert.Throws<TrunklineException>(() =>
                {
                    foreach (var m in msgs) { s.Push(m); taken++; }
                }, "synchronous pushes run into Full");
                Assert.Equal(ResultCode.Full, full.Code, "code");
                for (int i = taken; i < msgs.Count; i++) await s.PushAsync(msgs[i]);
                var sw = Stopwatch.StartNew();
                while (s.Stats()["media_frames_in"] < frames && sw.ElapsedMilliseconds < 10000) engine.Wait(20);
                var stats = s.Stats();
                Assert.True(stats["messages_refused_full"] >= 1, "the ring was full at least once");
                Assert.Equal((ulong)frames, stats["media_frames_in"], "every frame taken");
            }
        }

        public static async Task TestPushAsyncGivesUpWithFullAfterItsTimeout()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            using (var engine = new Engine(1))
            // A host that has just read audio and then stops: the caller PCM ring (40 ms) fills and
            // the carrier's messages wait in the inbound ring for a read that does not come.
            using (var s = engine.OpenSession(new SessionOptions { InboundRingBytes = 4096, MaxMessageBytes = 2000, AgentRingMs = 40, ReadHoldMs = 60000 }))
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                s.ReadAudio();
                int i = 0;
                var filling = Stopwatch.StartNew();
                while (true)
                {
                    try { s.Push(Twilio.Media(i + 2, i + 1, i * 20, caller, i * 160, 160)); i++; }
                    catch (TrunklineException e) when (e.Code == ResultCode.Full) { break; }
                    if (filling.ElapsedMilliseconds > 5000) throw new AssertionException("the ring never filled");
                    engine.Wait(1);
                }
                var next = Twilio.Media(i + 2, i + 1, i * 20, caller, i * 160, 160);
                var sw = Stopwatch.StartNew();
                var ex = await AssertThrowsAsync<TrunklineException>(() => s.PushAsync(next, TimeSpan.FromMilliseconds(50)));
                Assert.Equal(ResultCode.Full, ex.Code, "code");
                Assert.True(sw.ElapsedMilliseconds >= 50, "waited its timeout: " + sw.ElapsedMilliseconds + " ms");
                using (var cts = new CancellationTokenSource(30))
                    await AssertThrowsAsync<OperationCanceledException>(() => s.PushAsync(next, TimeSpan.FromSeconds(10), cts.Token));
                // Reading makes room: the same message is then taken.
                s.ReadAudio();
                await s.PushAsync(next);
            }
        }

        static async Task<T> AssertThrowsAsync<T>(Func<Task> action) where T : Exception
        {
            try
            {
                await action();
            }
            catch (T ex)
            {
                return ex;
            }
            throw new AssertionException("expected " + typeof(T).Name + ", nothing was thrown");
        }

        public static async Task TestFullCallThreadedWithAsyncEventStream()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession(new SessionOptions { AgentRate = AgentRate }))
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
            {
                var events = new List<Event>();
                int callerThread = Thread.CurrentThread.ManagedThreadId;
                var consumer = Task.Run(async () =>
                {
                    var e = s.EventsAsync(cts.Token).GetAsyncEnumerator();
                    try
                    {
                        while (await e.MoveNextAsync()) lock (events) events.Add(e.Current);
                    }
                    finally
                    {
                        await e.DisposeAsync();
                    }
                });
                var audio = new List<short>();
                PushCall(s, caller, () =>
                {
                    audio.AddRange(s.ReadAudio());
                    Thread.Sleep(4);
                });
                // The stream ends by itself after Stopped.
                await consumer;
                // Audio still in flight from the worker after stop.
                var sw = Stopwatch.StartNew();
                while (audio.Count < Frames * 20 * AgentRate / 1000 && sw.ElapsedMilliseconds < 3000)
                {
                    audio.AddRange(s.ReadAudio());
                    engine.Wait(10);
                }
                audio.AddRange(s.ReadAudio());
                CheckCall(caller, events, audio.ToArray(), s.Stats(), labels[0][0]);
            }
        }

        public static async Task TestAsyncEventStreamCancellationAndClose()
        {
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                // Nothing happens on this call: cancellation ends the wait.
                using (var cts = new CancellationTokenSource(100))
                {
                    var e = s.EventsAsync(cts.Token).GetAsyncEnumerator();
                    var sw = Stopwatch.StartNew();
                    bool cancelled = false;
                    try
                    {
                        while (await e.MoveNextAsync()) { }
                    }
                    catch (OperationCanceledException)
                    {
                        cancelled = true;
                    }
                    Assert.True(cancelled, "cancellation throws OperationCanceledException");
                    Assert.True(sw.ElapsedMilliseconds < 2000, "cancelled promptly (" + sw.ElapsedMilliseconds + " ms)");
                }
                // A stream on a session closed from another thread ends after its pending events.
                s.Push(Twilio.Connected());
                var stream = s.EventsAsync().GetAsyncEnumerator();
                var got = new List<EventKind>();
                var closer = Task.Run(() => { Thread.Sleep(100); s.Close(); });
                while (await stream.MoveNextAsync()) got.Add(stream.Current.Kind);
                await closer;
                Assert.SequenceEqual(new[] { EventKind.Connected }, got, "events before the close");
            }
        }

        public static async Task TestAConsumerThatLeavesTheEventStreamEarlyLeavesTheRestForTheNextRead()
        {
            // Inline: each message is handled as it is pushed, so all their events are ready.
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                s.Push(Twilio.Dtmf(2, '5'));
                var first = s.EventsAsync().GetAsyncEnumerator();
                Assert.True(await first.MoveNextAsync(), "a first event");
                Assert.Equal(EventKind.Connected, first.Current.Kind, "the first event");
                await first.DisposeAsync();
                // The next stream starts where the first left off, and Events() hands out the rest.
                var second = s.EventsAsync().GetAsyncEnumerator();
                Assert.True(await second.MoveNextAsync(), "a second event");
                Assert.Equal(EventKind.Started, second.Current.Kind, "the second stream's first event");
                await second.DisposeAsync();
                var rest = s.Events();
                Assert.Equal(1, rest.Count, "events left");
                Assert.Equal('5', rest[0].Digit, "the key press");
            }
        }

        /// <summary>Agent audio out: paced 20 ms media frames for the stream, then the mark, which
        /// the carrier echoes once played.</summary>
        public static void TestPlayMarkAndOutboundFrames()
        {
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                var tone = Twilio.Tone(24000, 0.5, 440, 8000);
                var sw = Stopwatch.StartNew();
                Assert.Equal(tone.Length, PlayAll(engine, s, tone, 24000), "samples taken");
                s.Mark("reply-1");
                var outbound = new List<Twilio.Outbound>();
                var sentAt = new List<long>();
                var events = new List<Event>();
                int seq = 1000;
                while (sw.ElapsedMilliseconds < 5000 && !events.Any(e => e.Kind == EventKind.MarkPlayed && e.Name == "reply-1"))
                {
                    foreach (var m in s.Outbound())
                    {
                        var o = Twilio.Parse(m);
                        outbound.Add(o);
                        sentAt.Add(sw.ElapsedMilliseconds);
                        // A carrier echoes marks once the audio before them has played; this one
                        // has no playout buffer, so it echoes them at once.
                        if (o.Event == "mark") s.Push(Twilio.MarkEcho(seq++, o.MarkName));
                    }
                    events.AddRange(s.Events());
                    engine.Wait(5);
                }
                var played = events.FirstOrDefault(e => e.Kind == EventKind.MarkPlayed && e.Name == "reply-1");
                Assert.True(played != null, "MarkPlayed reply-1; events: " + string.Join(", ", events));
                Assert.Equal(500ul, played.PlayedMs, "mark position in its utterance");

                Assert.True(outbound.All(o => o.StreamSid == Twilio.StreamSid), "every outbound message names the stream");
                var media = Enumerable.Range(0, outbound.Count).Where(i => outbound[i].Event == "media").ToList();
                Assert.Equal(25, media.Count, "0.5 s is 25 frames of 20 ms");
                Assert.True(media.All(i => outbound[i].Payload.Length == 160), "every frame is 160 µ-law bytes");
                int mark = outbound.FindIndex(o => o.Event == "mark" && o.MarkName == "reply-1");
                Assert.True(mark > media.Last(), "the mark follows the audio before it");
                // Paced: never more than the 100 ms lead ahead of real time, so the last frame
                // (480 ms of audio in) cannot be out before 380 ms after the play (a loaded
                // machine only makes it later).
                Assert.True(sentAt[media.Last()] >= 370, "last of 25 frames out " + sentAt[media.Last()] + " ms after the play");
                // The tone arrives at its level (µ-law decoded by the library's codec).
                var pcm = media.Skip(5).Take(15).SelectMany(i => G711.UlawDecode(outbound[i].Payload)).ToArray();
                double rms = Math.Sqrt(pcm.Select(x => (double)x * x).Average());
                double expect = 8000 / Math.Sqrt(2);
                Assert.True(Math.Abs(20 * Math.Log10(rms / expect)) < 0.5, "tone level " + rms + " vs " + expect);

                var stats = s.Stats();
                Assert.Equal(25ul, stats["frames_out"], "frames_out");
                Assert.Equal(1ul, stats["marks_played"], "marks_played");
                Assert.Equal((ulong)tone.Length, stats["play_samples_in"], "play_samples_in");
            }
        }

        /// <summary>On a manual clock the pacing is exact, whatever the wall time: the lead's worth
        /// of frames at t = 0, none while wall time passes, then one per 20 ms advanced.</summary>
        public static void TestManualClockPacesExactlyOneFramePer20Ms()
        {
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            using (var s = engine.OpenSession(new SessionOptions { AgentRate = 8000, LeadMs = 100 }))
            {
                Assert.True(engine.ManualClock, "ManualClock");
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                var sent = new List<Twilio.Outbound>();
                Func<int> mediaReady = () =>
                {
                    var now = s.Outbound().Select(Twilio.Parse).ToList();
                    sent.AddRange(now);
                    return now.Count(o => o.Event == "media");
                };
                Assert.Equal(14400, s.Play(Twilio.Tone(24000, 0.6, 300, 6000), 24000), "600 ms taken (30 frames)");
                s.Mark("reply");
                Assert.Equal(5, mediaReady(), "the 100 ms lead, at t = 0");
                Thread.Sleep(50);
                Assert.Equal(0, mediaReady(), "wall time does not move a manual clock");
                for (int step = 1; step <= 25; step++)
                {
                    engine.Advance(TimeSpan.FromMilliseconds(20));
                    Assert.Equal(1, mediaReady(), "frames after step " + step);
                }
                engine.Advance(TimeSpan.FromMilliseconds(200));
                Assert.Equal(0, mediaReady(), "all 30 frames are out");
                // The mark follows the last frame (hidden sync marks may sit in between); echoed, it
                // played at exactly 600 ms of its utterance.
                var visible = sent.Where(o => o.Event == "media" || !o.MarkName.StartsWith("trunkline-sync-", StringComparison.Ordinal))
                    .Select(o => o.Event == "media" ? "media" : o.MarkName);
                Assert.SequenceEqual(Enumerable.Repeat("media", 30).Concat(new[] { "reply" }), visible, "outbound");
                s.Push(Twilio.MarkEcho(50, "reply"));
                var played = s.Events().Where(e => e.Kind == EventKind.MarkPlayed).ToList();
                Assert.Equal(1, played.Count, "mark_played");
                Assert.Equal(600ul, played[0].PlayedMs, "played position of the mark");
                Assert.Equal(30ul, s.Stats()["frames_out"], "frames_out");
            }

            // Inline only; only a manual clock advances; forward only.
            foreach (var threaded in new[] { new EngineOptions { ManualClock = true }, new EngineOptions { Workers = 1, ManualClock = true } })
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => new Engine(threaded), "a manual clock with workers").Code, "code");
            using (var real = new Engine(0))
            {
                Assert.True(!real.ManualClock, "the real clock");
                Assert.Equal(ResultCode.InvalidArgument,
                    Assert.Throws<TrunklineException>(() => real.Advance(TimeSpan.FromMilliseconds(20)), "advance the real clock").Code, "code");
            }
            var engine2 = new Engine(new EngineOptions { Workers = 0, ManualClock = true });
            engine2.Advance(TimeSpan.Zero);
            engine2.Advance(TimeSpan.MaxValue); // about 29,000 years: within the clock's range
            Assert.Equal(ResultCode.InvalidArgument,
                Assert.Throws<TrunklineException>(() => { for (int i = 0; i < 10; i++) engine2.Advance(TimeSpan.MaxValue); }, "past the clock's end").Code, "code");
            Assert.Throws<ArgumentOutOfRangeException>(() => engine2.Advance(TimeSpan.FromTicks(-1)), "a negative step");
            engine2.Dispose();
            Assert.Throws<ObjectDisposedException>(() => engine2.Advance(TimeSpan.FromMilliseconds(20)), "after Dispose");
        }

        public static void TestInterruptDropsQueuedAudioAndSendsClear()
        {
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                var tone = Twilio.Tone(16000, 2.0, 300, 6000);
                var sw = Stopwatch.StartNew();
                Assert.Equal(tone.Length, PlayAll(engine, s, tone, 16000), "samples taken");
                s.Mark("long");
                var before = new List<Twilio.Outbound>();
                while (sw.ElapsedMilliseconds < 300)
                {
                    before.AddRange(s.Outbound().Select(Twilio.Parse));
                    engine.Wait(5);
                }
                long interruptAt = sw.ElapsedMilliseconds + 20; // + the time the first frame may lead it
                s.Interrupt();
                var after = new List<Twilio.Outbound>();
                var events = new List<Event>();
                sw.Restart();
                while (sw.ElapsedMilliseconds < 400)
                {
                    after.AddRange(s.Outbound().Select(Twilio.Parse));
                    events.AddRange(s.Events());
                    engine.Wait(5);
                }
                Assert.True(before.Count(o => o.Event == "media") >= 10, "audio was playing before the interrupt");
                int clear = after.FindIndex(o => o.Event == "clear");
                Assert.True(clear >= 0, "clear sent; after: " + string.Join(", ", after));
                Assert.Equal(0, after.Skip(clear + 1).Count(o => o.Event == "media"), "media after the clear");
                var kinds = events.Select(e => e.Kind).ToList();
                Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started, EventKind.Interrupted, EventKind.MarkCleared }, kinds, "events");
                var interrupted = events[2];
                // The caller can have heard at most the time since the play (and, with 300 ms of
                // sending, surely more than 100 ms).
                Assert.True(interrupted.PlayedMs >= 100 && (long)interrupted.PlayedMs <= interruptAt,
                    "played " + interrupted.PlayedMs + " ms of the tone by the interrupt at " + interruptAt + " ms");
                Assert.Equal("long", events[3].Name, "the cleared mark");
                var stats = s.Stats();
                Assert.Equal(1ul, stats["interrupts"], "interrupts");
                Assert.Equal(1ul, stats["clears_sent"], "clears_sent");
                Assert.True(stats["flushed_samples"] > 0, "flushed_samples");

                // Audio played after the interrupt is kept.
                Assert.Equal(3200, s.Play(Twilio.Tone(16000, 0.2, 300, 6000), 16000), "taken after the interrupt");
                var later = new List<Twilio.Outbound>();
                sw.Restart();
                while (sw.ElapsedMilliseconds < 2000 && later.Count(o => o.Event == "media") < 10)
                {
                    later.AddRange(s.Outbound().Select(Twilio.Parse));
                    engine.Wait(5);
                }
                Assert.Equal(10, later.Count(o => o.Event == "media"), "frames of the audio played after the interrupt");
            }
        }

        public static void TestBargeInClearsTheGreeting()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                var greeting = Twilio.Tone(24000, 1.2, 440, 8000); // fits the outbound queue at once
                Assert.Equal(greeting.Length, PlayAll(engine, s, greeting, 24000), "greeting taken");
                s.Mark("greeting-done");
                var events = new List<Event>();
                var outbound = new List<Twilio.Outbound>();
                // The caller speaks once the greeting is playing (its first frame is out).
                var sw = Stopwatch.StartNew();
                while (sw.ElapsedMilliseconds < 2000 && !outbound.Any(o => o.Event == "media"))
                {
                    outbound.AddRange(s.Outbound().Select(Twilio.Parse));
                    engine.Wait(5);
                }
                for (int i = 0; i < 90; i++)
                {
                    CallTests.PushRetry(s, Twilio.Media(2 + i, i + 1, i * 20, caller, i * 160, 160));
                    s.ReadAudio();
                    outbound.AddRange(s.Outbound().Select(Twilio.Parse));
                    events.AddRange(s.Events());
                }
                sw.Restart();
                // Events come after the messages and counters that go with them: once the mark's
                // clearing is seen, the clear is there to read (read once more after it: it may
                // have come after this pass read the messages).
                while (sw.ElapsedMilliseconds < 3000 && !events.Any(e => e.Kind == EventKind.MarkCleared))
                {
                    s.ReadAudio();
                    outbound.AddRange(s.Outbound().Select(Twilio.Parse));
                    events.AddRange(s.Events());
                    engine.Wait(5);
                }
                outbound.AddRange(s.Outbound().Select(Twilio.Parse));
                Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started, EventKind.SpeechStarted, EventKind.BargeIn, EventKind.MarkCleared },
                    events.Select(e => e.Kind), "events");
                Assert.Equal(events[2].StreamMs, events[3].StreamMs, "barge-in at the speech onset");
                Assert.True(Math.Abs((long)events[3].StreamMs - labels[0][0]) <= 60, "barge-in onset " + events[3].StreamMs);
                Assert.Equal("greeting-done", events[4].Name, "the greeting's mark is cleared");
                Assert.Equal(1, outbound.Count(o => o.Event == "clear"), "one clear");
                Assert.Equal(1ul, s.Stats()["barge_ins"], "barge_ins");
            }
        }
    }

    public static class ApiTests
    {
        public static void TestTheDialectIsChosenByName()
        {
            using (var engine = new Engine(0))
            {
                foreach (var dialect in new[] { null, "", "twilio" })
                {
                    using (var s = engine.OpenSession(new SessionOptions { AgentRate = 16000, Dialect = dialect }))
                    {
                        s.Push(Twilio.Connected());
                        s.Push(Twilio.Start());
                        Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started }, s.Events().Select(e => e.Kind), "dialect " + (dialect ?? "null"));
                    }
                }
                foreach (var dialect in new[] { "no-such-dialect", "Twilio" })
                {
                    var ex = Assert.Throws<TrunklineException>(() => engine.OpenSession(new SessionOptions { Dialect = dialect }), "dialect " + dialect);
                    Assert.Equal(ResultCode.InvalidArgument, ex.Code, "unknown dialect " + dialect);
                }
                Assert.Throws<ArgumentException>(() => engine.OpenSession(new SessionOptions { Dialect = "twilio\0x" }), "NUL in a dialect");
            }
        }

        public static void TestEnumsAreUint32LikeTheHeaders()
        {
            foreach (var t in new[] { typeof(ResultCode), typeof(MessageKind), typeof(EventKind), typeof(ProtocolErrorCode) })
                Assert.Equal(typeof(uint), Enum.GetUnderlyingType(t), t.Name);
        }

        public static void TestErrorsAreExceptionsWithCodeAndMessage()
        {
            using (var engine = new Engine(0))
            {
                var ex = Assert.Throws<TrunklineException>(() => engine.OpenSession(new SessionOptions { AgentRate = 12345 }), "bad agent rate");
                Assert.Equal(ResultCode.InvalidArgument, ex.Code, "code");
                Assert.Equal("trunkline_session_open", ex.Function, "function");
                Assert.True(ex.Message.Contains(Library.ResultMessage(ResultCode.InvalidArgument)), "message carries trunkline_result_message: " + ex.Message);

                using (var s = engine.OpenSession(new SessionOptions { MaxPendingMarks = 2 }))
                {
                    s.Push(Twilio.Connected());
                    s.Push(Twilio.Start());
                    Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(() => s.Play(new short[160], 12345), "bad play rate").Code, "play rate");
                    Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(() => s.Mark(new string('x', 300)), "long mark").Code, "long mark");
                    Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(() => s.Mark("trunkline-sync-7"), "reserved mark").Code, "reserved mark");
                    Assert.Throws<ArgumentException>(() => s.Mark("a\0b"), "NUL in a mark name");
                    s.Mark("m1");
                    s.Mark("m2");
                    Assert.Equal(ResultCode.Full, Assert.Throws<TrunklineException>(() => s.Mark("m3"), "too many marks").Code, "marks outstanding");

                    // Bad input is an event, not an exception.
                    s.Push("{not json");
                    s.Push(new byte[] { 1, 2, 3 });
                    var errors = s.Events().Where(e => e.Kind == EventKind.ProtocolError).ToList();
                    Assert.Equal(2, errors.Count, "protocol errors");
                    Assert.Equal(1u, errors[0].ErrorCode, "malformed JSON code");
                    Assert.Equal(Library.ProtocolErrorMessage(1), errors[0].ErrorMessage, "error message");
                    Assert.Equal("malformed message: not valid JSON", errors[0].ErrorMessage, "error text");
                    Assert.Equal(ProtocolErrorCode.UnexpectedFrameKind, (ProtocolErrorCode)errors[1].ErrorCode, "a binary frame");
                    Assert.Equal(2ul, s.Stats()["protocol_errors"], "protocol_errors");

                    s.Close();
                    s.Close();
                    Assert.Equal(ResultCode.Closed, Assert.Throws<TrunklineException>(() => s.Push(Twilio.Connected()), "push after close").Code, "push after close");
                    Assert.Equal(ResultCode.Closed, Assert.Throws<TrunklineException>(() => s.ReadAudio(), "read after close").Code, "read after close");
                    Assert.Equal(ResultCode.Closed, Assert.Throws<TrunklineException>(() => s.Events(), "events after close").Code, "events after close");
                    Assert.Equal(2ul, s.Stats()["protocol_errors"], "stats work on a closed session");
                }
            }
            using (var one = new Engine(new EngineOptions { Workers = 0, MaxSessions = 1 }))
            using (one.OpenSession())
            {
                Assert.Equal(ResultCode.TooManySessions, Assert.Throws<TrunklineException>(() => one.OpenSession(), "second session").Code, "max sessions");
            }
            Assert.Equal(ResultCode.InvalidArgument,
                Assert.Throws<TrunklineException>(() => new Engine(new EngineOptions { MaxSessions = 0 }), "max_sessions 0").Code, "engine config");
            var texts = Enum.GetValues(typeof(ResultCode)).Cast<ResultCode>().Select(Library.ResultMessage).ToList();
            Assert.Equal(texts.Count, texts.Distinct().Count(), "every result has its own text");
            Assert.Equal("unknown protocol error code", Library.ProtocolErrorMessage(999), "unknown protocol error");
        }

        public static void TestMessageForAnotherStreamIsReportedAndDoesNotEndTheCall()
        {
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Start());
                s.Push(Twilio.Stop(5).Replace(Twilio.StreamSid, "MZ-another-stream"));
                s.Push(Twilio.Dtmf(6, '4'));
                var events = s.Events().ToList();
                Assert.SequenceEqual(new[] { EventKind.Started, EventKind.ProtocolError, EventKind.Dtmf }, events.Select(e => e.Kind), "events");
                Assert.Equal(ProtocolErrorCode.ForeignStream, (ProtocolErrorCode)events[1].ErrorCode, "error code");
                Assert.Equal(16, (int)ProtocolErrorCode.ForeignStream, "stable code");
                Assert.Equal("message for another stream (its stream id differs from the start's)", events[1].ErrorMessage, "error text");
                Assert.Equal(1ul, s.Stats()["protocol_errors"], "protocol_errors");
            }
        }

        public static void TestBufferOverloads()
        {
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession(new SessionOptions { AgentRate = 8000 }))
            {
                // A text frame as a WebSocket receive hands it over: bytes at an offset.
                var bytes = System.Text.Encoding.UTF8.GetBytes("xx" + Twilio.Connected() + Twilio.Start() + "yy");
                int first = Twilio.Connected().Length, second = Twilio.Start().Length;
                s.Push(bytes, 2, first, MessageKind.Text);
                s.Push(bytes, 2 + first, second, MessageKind.Text);
                Assert.SequenceEqual(new[] { EventKind.Connected, EventKind.Started }, s.Events().Select(e => e.Kind), "events");
                Assert.Throws<ArgumentOutOfRangeException>(() => s.Push(bytes, 1, bytes.Length, MessageKind.Text), "range check");

                var frame = Enumerable.Repeat((byte)0xFF, 160).ToArray();
                s.Push(Twilio.Media(2, 1, 0, frame, 0, 160));
                var pcm = new short[500];
                Assert.Equal(160, s.ReadAudio(pcm, 100, 400), "samples read at an offset");
                Assert.Equal(0, s.ReadAudio(pcm, 0, 500), "nothing more");

                Assert.Equal(160, s.Play(new short[160], 8000), "played");
                var buf = new byte[4096];
                int len;
                MessageKind kind;
                Assert.True(s.NextOutboundLength() > 0, "a frame is ready");
                Assert.True(!s.TryNextOutbound(new byte[10], out len, out kind), "too small: nothing taken");
                Assert.True(s.TryNextOutbound(buf, out len, out kind), "taken");
                Assert.Equal(MessageKind.Text, kind, "kind");
                Assert.Equal("media", Twilio.Parse(System.Text.Encoding.UTF8.GetString(buf, 0, len)).Event, "a media frame");
            }
        }

        public static void TestPlayTakesWhatFits()
        {
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession())
            {
                s.Push(Twilio.Connected());
                s.Push(Twilio.Start());
                var minute = new short[8000 * 60];
                int taken = s.Play(minute, 8000);
                Assert.True(taken > 0 && taken < minute.Length, "took " + taken + " of " + minute.Length);
                int offset = taken;
                int more = s.Play(minute, offset, minute.Length - offset, 8000);
                Assert.True(more >= 0 && offset + more < minute.Length, "then " + more);
                Assert.True(s.Stats()["play_refused_full"] > 0, "play_refused_full counted");
                Assert.Throws<ArgumentOutOfRangeException>(() => s.Play(minute, minute.Length, 1, 8000), "range check");
            }
        }

        public static void TestSafeHandleDisposal()
        {
            var engine = new Engine(0);
            var s = engine.OpenSession();
            s.Push(Twilio.Connected());
            s.Dispose();
            s.Dispose();
            Assert.True(s.Handle.IsClosed, "session handle closed");
            Assert.Throws<ObjectDisposedException>(() => s.Push(Twilio.Connected()), "push after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.ReadAudio(), "read after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Events(), "events after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Outbound(), "outbound after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Stats(), "stats after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Play(new short[10], 8000), "play after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Mark("x"), "mark after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Interrupt(), "interrupt after dispose");
            Assert.Throws<ObjectDisposedException>(() => s.Close(), "close after dispose");

            // The engine freed first: its sessions report Closed, and still free cleanly.
            var s2 = engine.OpenSession();
            engine.Dispose();
            engine.Dispose();
            Assert.Throws<ObjectDisposedException>(() => engine.OpenSession(), "open after dispose");
            Assert.Throws<ObjectDisposedException>(() => engine.Wait(0), "wait after dispose");
            Assert.Throws<ObjectDisposedException>(() => { var fd = engine.WakeupFd; }, "wakeup fd after dispose");
            Assert.Equal(ResultCode.Closed, Assert.Throws<TrunklineException>(() => s2.Push(Twilio.Connected()), "push on a freed engine").Code, "code");
            s2.Stats();
            s2.Dispose();
        }

        public static void TestDisposeDuringBlockingWaitIsDeferred()
        {
            var engine = new Engine(1);
            var wait = Task.Run(() => engine.Wait(3000));
            Thread.Sleep(50);
            var sw = Stopwatch.StartNew();
            engine.Dispose(); // wakes the wait; the SafeHandle frees the engine once it has returned
            Assert.True(sw.ElapsedMilliseconds < 2500, "Dispose does not wait for the wait's timeout");
            Assert.Equal(true, wait.Result, "the wait was woken");
            Assert.True(sw.ElapsedMilliseconds < 2500, "the wait returned before its timeout");
            Assert.True(engine.Handle.IsClosed, "closed");
            Assert.Throws<ObjectDisposedException>(() => engine.Wait(0), "wait after dispose");
        }

        [MethodImpl(MethodImplOptions.NoInlining)]
        static void OpenAndForget(Engine engine, int n)
        {
            for (int i = 0; i < n; i++) engine.OpenSession().Push(Twilio.Connected());
        }

        public static void TestFinalizerFreesForgottenSessions()
        {
            using (var engine = new Engine(new EngineOptions { Workers = 0, MaxSessions = 4 }))
            {
                OpenAndForget(engine, 4);
                Assert.Throws<TrunklineException>(() => engine.OpenSession(), "the engine is full");
                Session again = null;
                for (int attempt = 0; attempt < 50 && again == null; attempt++)
                {
                    GC.Collect();
                    GC.WaitForPendingFinalizers();
                    try { again = engine.OpenSession(); }
                    catch (TrunklineException) { Thread.Sleep(10); }
                }
                Assert.True(again != null, "forgotten sessions were freed by their SafeHandles' finalizers");
                again.Dispose();
            }
        }

        public static void TestEngineWaitAndWakeup()
        {
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                Assert.True(engine.WakeupFd >= 0, "wakeup fd");
                engine.ClearWakeup();
                Assert.Equal(false, engine.Wait(0), "nothing pending");
                s.Push(Twilio.Connected());
                Assert.True(engine.WaitAsync(2000).Result, "woken by the connected event");
                Assert.SequenceEqual(new[] { EventKind.Connected }, s.Events().Select(e => e.Kind), "events");
            }
        }

        public static void TestWorkerNiceAndPrioritisedWorkers()
        {
            // A higher nice value is always granted and 0 leaves the workers alone: both count.
            foreach (var nice in new[] { 5, 0 })
                using (var engine = new Engine(new EngineOptions { Workers = 2, WorkerNice = nice }))
                    Assert.Equal(2, engine.PrioritisedWorkers, "prioritised workers at nice " + nice);

            // The library's default (trunkline_engine_config_default), read through the internal
            // struct by reflection, as the drift test reads the declarations.
            var lib = typeof(Engine).Assembly;
            var configType = lib.GetType("Trunkline.NativeEngineConfig", true);
            var size = new UIntPtr((uint)System.Runtime.InteropServices.Marshal.SizeOf(configType));
            var args = new object[] { null, size };
            var r = lib.GetType("Trunkline.Native", true).GetMethod("trunkline_engine_config_default").Invoke(null, args);
            Assert.Equal(ResultCode.Ok, (ResultCode)r, "trunkline_engine_config_default");
            Assert.Equal(-10, (int)configType.GetField("worker_nice").GetValue(args[0]), "default worker_nice");
            Assert.Equal(size, (UIntPtr)configType.GetField("struct_size").GetValue(args[0]), "struct_size");

            var ex = Assert.Throws<TrunklineException>(() => new Engine(new EngineOptions { Workers = 2, WorkerNice = 20 }), "worker nice 20");
            Assert.Equal(ResultCode.InvalidArgument, ex.Code, "worker nice 20");
        }

        public static void TestStatsNamesAndCodecs()
        {
            using (var engine = new Engine(0))
            using (var s = engine.OpenSession())
            {
                var stats = s.Stats();
                Assert.Equal(Library.StatNames.Count, stats.Count, "every counter");
                Assert.True(Library.StatNames.Contains("barge_ins") && Library.StatNames.Contains("jitter_us"), "names");
            }
            Assert.Equal(Library.HeaderVersion, Library.Version, "library version matches the header the binding was written for");

            var codes = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
            var ulaw = G711.UlawDecode(codes);
            for (int i = 0; i < 256; i++) Assert.Equal(Twilio.ReferenceUlawDecode(codes[i]), ulaw[i], "µ-law " + i);
            var back = G711.UlawEncode(ulaw);
            for (int i = 0; i < 256; i++) if (i != 0x7F) Assert.Equal(codes[i], back[i], "µ-law round trip " + i); // 0x7F is -0
            var alaw = G711.AlawDecode(codes);
            Assert.SequenceEqual(codes, G711.AlawEncode(alaw), "A-law round trip");
            Assert.Equal(0, G711.UlawDecode(new byte[0]).Length, "empty");
        }
    }
}
