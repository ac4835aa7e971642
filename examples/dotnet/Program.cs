// A Trunkline call in C#: the session flow an ASP.NET Twilio Media Streams bot uses, with the
// WebSocket replaced by an in-process caller and carrier so that it runs anywhere.
//
//   TrunklineExample                 a call generated from the speech fixture: the caller speaks,
//                                    the bot echoes the caller's utterance back, marks it, and
//                                    hangs up once the caller has heard it
//   TrunklineExample call.jsonl      replays a recorded Twilio call (one message per line)
//   --speed N                        caller audio N times faster than real time (agent audio is
//                                    always paced in real time by the engine)
//
// In a real bot: Push every frame the WebSocket receives, send every Outbound() message back on
// it, hand ReadAudio() to your speech recognizer, and Play your TTS output.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;
using System.Threading;
using System.Threading.Tasks;
using Trunkline;

namespace TrunklineExample
{
    /// <summary>The bot: reacts to events (on the event-stream task) and to caller audio.</summary>
    sealed class EchoBot
    {
        readonly Session call;
        readonly object gate = new object();
        readonly List<short> heard = new List<short>(); // caller audio at 16 kHz, from stream time 0
        ulong speechStart;
        short[] reply;
        int replyOffset;

        public volatile bool ReplyHeard;
        public volatile bool Stopped;

        public EchoBot(Session call) { this.call = call; }

        public void OnCallerAudio(short[] pcm)
        {
            lock (gate) heard.AddRange(pcm);
        }

        public void OnEvent(Event e, TimeSpan at)
        {
            Console.WriteLine("  {0,6:F0} ms  {1}", at.TotalMilliseconds, e);
            switch (e.Kind)
            {
                case EventKind.SpeechStarted:
                    speechStart = e.StreamMs;
                    break;
                case EventKind.SpeechStopped:
                    // "Transcribe" the utterance and answer: here, echo (up to 1.5 s of) it back.
                    lock (gate)
                    {
                        int from = (int)Math.Min((long)speechStart * 16, heard.Count);
                        int to = (int)Math.Min((long)e.StreamMs * 16, heard.Count);
                        reply = heard.Skip(from).Take(Math.Min(to - from, 24000)).ToArray();
                        replyOffset = 0;
                    }
                    Console.WriteLine("              bot: replying with {0} ms of audio", reply.Length / 16);
                    FeedReply();
                    break;
                case EventKind.BargeIn:
                    lock (gate) reply = null; // the caller interrupted: stop feeding the answer
                    break;
                case EventKind.MarkPlayed:
                    if (e.Name == "reply-1") ReplyHeard = true;
                    break;
                case EventKind.Stopped:
                    Stopped = true;
                    break;
            }
        }

        /// <summary>Plays what the engine takes of the reply; the rest on a later call. The mark
        /// goes in after the last sample.</summary>
        public void FeedReply()
        {
            lock (gate)
            {
                if (reply == null) return;
                if (replyOffset < reply.Length)
                    replyOffset += call.Play(reply, replyOffset, reply.Length - replyOffset, 16000);
                if (replyOffset == reply.Length)
                {
                    call.Mark("reply-1");
                    reply = null;
                }
            }
        }
    }

    /// <summary>Stands in for Twilio: plays agent media in real time after a 60 ms jitter
    /// buffer, echoes each mark once the audio before it has played, and echoes pending marks at
    /// once on <c>clear</c>.</summary>
    sealed class FakeCarrier
    {
        static readonly Regex EventRe = new Regex("\"event\":\"(\\w+)\"");
        static readonly Regex NameRe = new Regex("\"name\":\"([^\"]*)\"");
        readonly Session call;
        readonly System.Diagnostics.Stopwatch clock;
        readonly Queue<KeyValuePair<double, string>> marks = new Queue<KeyValuePair<double, string>>();
        double playEnd;
        int seq = 100000;
        public int MediaFrames, Clears;

        public FakeCarrier(Session call, System.Diagnostics.Stopwatch clock)
        {
            this.call = call;
            this.clock = clock;
        }

        public void Receive(object message)
        {
            var text = message as string;
            if (text == null) return; // Twilio speaks text frames only
            double now = clock.Elapsed.TotalMilliseconds;
            switch (EventRe.Match(text).Groups[1].Value)
            {
                case "media":
                    MediaFrames++;
                    playEnd = Math.Max(playEnd, now + 60) + 20;
                    break;
                case "mark":
                    marks.Enqueue(new KeyValuePair<double, string>(Math.Max(playEnd, now), NameRe.Match(text).Groups[1].Value));
                    break;
                case "clear":
                    Clears++;
                    playEnd = now;
                    while (marks.Count > 0) Echo(marks.Dequeue().Value);
                    break;
            }
        }

        public void Tick()
        {
            double now = clock.Elapsed.TotalMilliseconds;
            while (marks.Count > 0 && marks.Peek().Key <= now) Echo(marks.Dequeue().Value);
        }

        void Echo(string name)
        {
            call.Push("{\"event\":\"mark\",\"sequenceNumber\":\"" + (seq++) + "\",\"streamSid\":\"" + Program.StreamSid
                + "\",\"mark\":{\"name\":\"" + name + "\"}}");
        }
    }

    static class Program
    {
        public const string StreamSid = "MZ18ad3ab5a668481ce02b83e7395059f0";
        const string CallSid = "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f";

        static int Main(string[] args)
        {
            try
            {
                return Run(args).GetAwaiter().GetResult();
            }
            catch (TrunklineException e)
            {
                Console.Error.WriteLine("trunkline error " + e.Code + ": " + e.Message);
                return 1;
            }
        }

        static async Task<int> Run(string[] args)
        {
            double speed = 1;
            string jsonl = null;
            for (int i = 0; i < args.Length; i++)
            {
                if (args[i] == "--speed" && i + 1 < args.Length) speed = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture);
                else jsonl = args[i];
            }
            Console.WriteLine("Trunkline " + Library.Version + (jsonl != null ? ", replaying " + jsonl : ", a generated call") + ", caller at " + speed + "x");

            using (var engine = new Engine(1))
            using (var call = engine.OpenSession(new SessionOptions { AgentRate = 16000 }))
            using (var done = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
            {
                var clock = System.Diagnostics.Stopwatch.StartNew();
                var bot = new EchoBot(call);
                var carrier = new FakeCarrier(call, clock);

                // Events: an async stream; the blocking wait runs on the thread pool.
                var events = Task.Run(async () =>
                {
#if NET5_0_OR_GREATER
                    await foreach (var e in call.EventsAsync(done.Token))
                        bot.OnEvent(e, clock.Elapsed);
#else
                    // Mono's mcs (C# 7) has no `await foreach`: the same loop, spelled out.
                    var e = call.EventsAsync(done.Token).GetAsyncEnumerator();
                    try
                    {
                        while (await e.MoveNextAsync()) bot.OnEvent(e.Current, clock.Elapsed);
                    }
                    finally
                    {
                        await e.DisposeAsync();
                    }
#endif
                });

                // The WebSocket loop: caller messages in on their schedule, audio to the bot,
                // outbound messages to the carrier.
                var incoming = jsonl != null ? File.ReadAllLines(jsonl).Where(l => l.Trim().Length > 0).Select(l => Tuple.Create(l, false)) : GeneratedCall(bot);
                long audioSamples = 0;
                int n = 0;
                foreach (var item in incoming)
                {
                    var due = TimeSpan.FromMilliseconds(n++ * 20 / speed);
                    while (clock.Elapsed < due) await Pump(call, bot, carrier, engine, s => audioSamples += s);
                    call.Push(item.Item1);
                    if (item.Item2) break; // stop sent
                }
                while (!bot.Stopped && !done.IsCancellationRequested) await Pump(call, bot, carrier, engine, s => audioSamples += s);
                await events;
                await Pump(call, bot, carrier, engine, s => audioSamples += s);

                Console.WriteLine("caller audio read: {0} samples at 16 kHz ({1} ms); agent frames sent: {2}, clears: {3}",
                    audioSamples, audioSamples / 16, carrier.MediaFrames, carrier.Clears);
                Console.WriteLine("counters: " + string.Join(", ", call.Stats().Where(kv => kv.Value != 0).Select(kv => kv.Key + "=" + kv.Value)));
                if (jsonl == null && !bot.ReplyHeard)
                {
                    Console.Error.WriteLine("the caller never heard the reply");
                    return 1;
                }
                return 0;
            }
        }

        /// <summary>One turn of the socket loop.</summary>
        static async Task Pump(Session call, EchoBot bot, FakeCarrier carrier, Engine engine, Action<long> audio)
        {
            var pcm = call.ReadAudio();
            if (pcm.Length > 0)
            {
                bot.OnCallerAudio(pcm);
                audio(pcm.Length);
            }
            bot.FeedReply();
            foreach (var m in call.Outbound()) carrier.Receive(m);
            carrier.Tick();
            await Task.Delay(2);
        }

        /// <summary>A Twilio call from the committed speech fixture: the caller's first utterance,
        /// then silence until the bot's reply has been heard, then a key press and hang-up. The
        /// flag marks the last message.</summary>
        static IEnumerable<Tuple<string, bool>> GeneratedCall(EchoBot bot)
        {
            var speech = File.ReadAllBytes(Fixture("speech_8k.ulaw"));
            yield return Tuple.Create("{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}", false);
            yield return Tuple.Create("{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":\"AC0123456789abcdef0123456789abcdef\",\"streamSid\":\""
                + StreamSid + "\",\"callSid\":\"" + CallSid + "\",\"tracks\":[\"inbound\"],\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1},"
                + "\"customParameters\":{\"caller\":\"+15550100\"}},\"streamSid\":\"" + StreamSid + "\"}", false);
            var silence = Enumerable.Repeat((byte)0xFF, 160).ToArray();
            int frame = 0;
            for (; frame < 220 || (!bot.ReplyHeard && frame < 220 + 1000); frame++)
            {
                var payload = frame < 220 ? speech.Skip(frame * 160).Take(160).ToArray() : silence;
                yield return Tuple.Create("{\"event\":\"media\",\"sequenceNumber\":\"" + (frame + 2) + "\",\"media\":{\"track\":\"inbound\",\"chunk\":\""
                    + (frame + 1) + "\",\"timestamp\":\"" + (frame * 20) + "\",\"payload\":\"" + Convert.ToBase64String(payload) + "\"},\"streamSid\":\"" + StreamSid + "\"}", false);
            }
            yield return Tuple.Create("{\"event\":\"dtmf\",\"streamSid\":\"" + StreamSid + "\",\"sequenceNumber\":\"" + (frame + 2)
                + "\",\"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"#\"}}", false);
            yield return Tuple.Create("{\"event\":\"stop\",\"sequenceNumber\":\"" + (frame + 3) + "\",\"streamSid\":\"" + StreamSid
                + "\",\"stop\":{\"accountSid\":\"AC0123456789abcdef0123456789abcdef\",\"callSid\":\"" + CallSid + "\"}}", true);
        }

        static string Fixture(string name)
        {
            var root = Environment.GetEnvironmentVariable("TRUNKLINE_ROOT");
            if (string.IsNullOrEmpty(root))
                for (var d = new DirectoryInfo(Directory.GetCurrentDirectory()); d != null; d = d.Parent)
                    if (Directory.Exists(Path.Combine(d.FullName, "engine", "tests", "fixtures"))) { root = d.FullName; break; }
            if (root == null) throw new FileNotFoundException("run from the repository or set TRUNKLINE_ROOT", name);
            return Path.Combine(root, "engine", "tests", "fixtures", name);
        }
    }
}
