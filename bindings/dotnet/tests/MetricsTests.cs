// Engine.Metrics(): the engine's Prometheus / OpenMetrics text after a call, read back line by line
// and compared with the session's own counters; and Logging.ToStderr.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace Trunkline.Tests
{
    public static class MetricsTests
    {
        /// <summary>{ "name{labels}": value } of every sample line of a text exposition.</summary>
        static Dictionary<string, double> Samples(string text)
        {
            var d = new Dictionary<string, double>();
            foreach (var line in text.Split('\n'))
            {
                if (line.Length == 0 || line[0] == '#') continue;
                int cut = line.LastIndexOf(' ');
                d[line.Substring(0, cut)] = double.Parse(line.Substring(cut + 1), CultureInfo.InvariantCulture);
            }
            return d;
        }

        static double Sample(Dictionary<string, double> samples, string series)
        {
            double v;
            if (!samples.TryGetValue(series, out v)) throw new AssertionException("no series " + series);
            return v;
        }

        public static void TestMetricsAreTheSessionCounters()
        {
            List<long[]> labels;
            var audio = Twilio.Speech(out labels);
            const int Frames = 100, Lost = 40;
            using (var engine = new Engine(0))
            {
                var call = engine.OpenSession(new SessionOptions { AgentRate = 8000 });
                call.Push(Twilio.Connected());
                call.Push(Twilio.Start());
                for (int i = 0; i < Frames; i++)
                {
                    if (i != Lost) call.Push(Twilio.Media(2 + i, i + 1, i * 20, audio, i * 160, 160));
                    call.ReadAudio();
                }
                call.Push("not json");
                call.Push(Twilio.Stop(Frames + 2));
                call.ReadAudio();
                Assert.True(call.Events().Last().Kind == EventKind.Stopped, "the call stopped");
                var stats = call.Stats();
                Assert.Equal((ulong)(Frames - 1), stats["media_frames_in"], "media_frames_in");
                Assert.Equal(1ul, stats["protocol_errors"], "protocol_errors");

                var text = engine.Metrics();
                Assert.True(text.StartsWith("# HELP ", StringComparison.Ordinal) && !text.Contains("# EOF"), "Prometheus text");
                var got = Samples(text);
                int compared = 0;
                foreach (var kv in stats)
                {
                    if (kv.Key == "jitter_us") continue; // an estimate per call, not a counter
                    bool micro = kv.Key.EndsWith("_us", StringComparison.Ordinal);
                    var series = micro ? "trunkline_session_" + kv.Key.Substring(0, kv.Key.Length - 3) + "_seconds_total" : "trunkline_session_" + kv.Key + "_total";
                    Assert.Equal(micro ? kv.Value / 1e6 : kv.Value, Sample(got, series), series);
                    compared++;
                }
                Assert.Equal(stats.Count - 1, compared, "counters compared");
                Assert.Equal(1.0, Sample(got, "trunkline_calls_active"), "calls active");
                Assert.Equal(1.0, Sample(got, "trunkline_calls_opened_total"), "calls opened");
                Assert.Equal((double)(Frames - 1), Sample(got, "trunkline_media_frames_total{direction=\"in\"}"), "frames in");

                // A disposed session's counts stay, and it is counted by how it ended.
                call.Dispose();
                var open = engine.Metrics(true);
                Assert.True(open.EndsWith("# EOF\n", StringComparison.Ordinal), "OpenMetrics ends with # EOF");
                var after = Samples(open);
                Assert.Equal(0.0, Sample(after, "trunkline_calls_active"), "calls active after Dispose");
                Assert.Equal(1.0, Sample(after, "trunkline_calls_total{outcome=\"stopped\"}"), "calls stopped");
                Assert.Equal((double)(Frames - 1), Sample(after, "trunkline_session_media_frames_in_total"), "frames in after Dispose");
            }
        }

        public static void TestMetricsOfAThreadedEngine()
        {
            var engine = new Engine(2);
            var got = Samples(engine.Metrics());
            Assert.True(Sample(got, "trunkline_worker_cpu_seconds_total{worker=\"0\"}") >= 0, "worker 0");
            Assert.True(Sample(got, "trunkline_worker_cpu_seconds_total{worker=\"1\"}") >= 0, "worker 1");
            Assert.True(!got.ContainsKey("trunkline_worker_cpu_seconds_total{worker=\"2\"}"), "two workers only");
            engine.Dispose();
            Assert.Throws<ObjectDisposedException>(() => engine.Metrics(), "metrics after Dispose");
        }

        public static void TestLoggingInstallsOnce()
        {
            // The logger is process-wide: a filter that lets nothing through keeps the other tests'
            // output as it was.
            var bad = Assert.Throws<TrunklineException>(() => Logging.ToStderr("trunkline=nonsense"), "a bad filter");
            Assert.Equal(ResultCode.InvalidArgument, bad.Code, "bad filter");
            Assert.Throws<ArgumentException>(() => Logging.ToStderr("a\0b"), "NUL in the filter");
            Assert.True(Logging.ToStderr("off"), "installed");
            Assert.True(!Logging.ToStderr("trunkline=info"), "already installed");
            Assert.True(!Logging.ToStderr(), "already installed (TRUNKLINE_LOG)");
        }
    }
}
