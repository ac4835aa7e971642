// Opus agent audio through the .NET binding, and the agent format of offloaded calls.
//
// PlayEncoded takes an Ogg Opus stream (made here by opusenc from a tone) in chunks of any size;
// the carrier's µ-law must decode to that tone, its length kept. Corrupt input throws BadAudio and
// leaves the session playing PCM. A call accepted from a server whose sessions speak µ-law reads
// the caller's bytes exactly as callsim sent them.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.RegularExpressions;

namespace Trunkline.Tests
{
    public static class OpusTests
    {
        const double ToneHz = 1000;
        const double Seconds = 0.8;
        const int CarrierRate = 8000;

        static byte[] oggTone;

        static string Run(string file, params string[] args)
        {
            var info = new ProcessStartInfo(file, string.Join(" ", args.Select(a => "\"" + a + "\"")))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            using (var p = Process.Start(info))
            {
                var stderr = p.StandardError.ReadToEndAsync();
                var stdout = p.StandardOutput.ReadToEnd();
                p.WaitForExit();
                Assert.Equal(0, p.ExitCode, file + " exit status (" + stderr.Result + ")");
                return stdout;
            }
        }

        /// <summary>An Ogg Opus file of the tone, recorded at 48 kHz mono with 20 ms frames, by
        /// opusenc (Debian: opus-tools).</summary>
        static byte[] OggTone()
        {
            if (oggTone != null) return oggTone;
            var dir = Path.Combine(Path.GetTempPath(), "trunkline-opus-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            try
            {
                var pcm = Twilio.Tone(48000, Seconds, ToneHz, 16383);
                var wav = new MemoryStream();
                var w = new BinaryWriter(wav);
                w.Write(Encoding.ASCII.GetBytes("RIFF"));
                w.Write(36 + 2 * pcm.Length);
                w.Write(Encoding.ASCII.GetBytes("WAVEfmt "));
                w.Write(16);
                w.Write((short)1); // PCM
                w.Write((short)1); // mono
                w.Write(48000);
                w.Write(96000);
                w.Write((short)2);
                w.Write((short)16);
                w.Write(Encoding.ASCII.GetBytes("data"));
                w.Write(2 * pcm.Length);
                foreach (var s in pcm) w.Write(s);
                w.Flush();
                File.WriteAllBytes(Path.Combine(dir, "tone.wav"), wav.ToArray());
                Run("opusenc", "--quiet", "--bitrate", "48", "--framesize", "20", Path.Combine(dir, "tone.wav"), Path.Combine(dir, "tone.opus"));
                return oggTone = File.ReadAllBytes(Path.Combine(dir, "tone.opus"));
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        /// <summary>An inline Twilio call on the manual clock; Heard is the decoded µ-law its carrier received.</summary>
        sealed class Carrier : IDisposable
        {
            public readonly Engine Engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true });
            public readonly Session Session;
            public List<short> Heard = new List<short>();

            public Carrier()
            {
                Session = Engine.OpenSession(new SessionOptions { AgentRate = 16000 });
                Session.Push(Twilio.Start());
                Assert.True(Session.Events().Any(e => e.Kind == EventKind.Started), "started");
            }

            public void Tick()
            {
                foreach (var message in Session.Outbound())
                {
                    var o = Twilio.Parse(message);
                    if (o.Event == "media") Heard.AddRange(o.Payload.Select(Twilio.ReferenceUlawDecode));
                }
                Engine.Advance(TimeSpan.FromMilliseconds(20));
            }

            /// <summary>Feeds `data` in `chunk`-byte pieces, letting the carrier play while the queue is full.</summary>
            public void Feed(byte[] data, int chunk)
            {
                int stuck = 0;
                for (int pos = 0; pos < data.Length;)
                {
                    // Half the chunks as arrays, half as spans of the whole stream (no copy).
                    int n = Math.Min(chunk, data.Length - pos);
                    int taken = (pos / chunk) % 2 == 0
                        ? Session.PlayEncoded(new ReadOnlySpan<byte>(data, pos, n))
                        : Session.PlayEncoded(data.Skip(pos).Take(n).ToArray(), EncodedCodec.OggOpus, 48000);
                    pos += taken;
                    if (taken == 0)
                    {
                        Assert.True(++stuck < 1000, "the play queue never had room");
                        Tick();
                    }
                }
            }

            public void End()
            {
                for (int i = 0; !Session.EndEncoded(); i++)
                {
                    Assert.True(i < 1000, "the play queue never had room");
                    Tick();
                }
            }

            public void PlayOut()
            {
                for (int i = 0; i < Seconds * 50 + 60; i++) Tick();
            }

            public void Dispose()
            {
                Session.Dispose();
                Engine.Dispose();
            }
        }

        static double Goertzel(IList<short> x, double rate, double freq)
        {
            double coeff = 2 * Math.Cos(2 * Math.PI * freq / rate), s1 = 0, s2 = 0;
            foreach (var v in x)
            {
                var s = v + coeff * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / ((double)x.Count * x.Count);
        }

        static void AssertIsTheTone(List<short> heard, double seconds)
        {
            // Without the silence that pads the carrier's frames.
            int first = heard.FindIndex(s => Math.Abs((int)s) > 64), last = heard.FindLastIndex(s => Math.Abs((int)s) > 64);
            Assert.True(first >= 0, "no audio heard");
            var audio = heard.GetRange(first, last - first + 1);
            // Pre-skip dropped, end trimmed by the granule position: the source's length, give or
            // take the codec's fade at either end.
            Assert.True(Math.Abs(audio.Count - CarrierRate * seconds) <= 40, audio.Count + " samples heard");
            var mid = audio.GetRange(audio.Count / 4, audio.Count / 2);
            var p = Goertzel(mid, CarrierRate, ToneHz);
            foreach (var off in new[] { 400.0, 700.0, 1500.0, 2500.0 })
                Assert.True(p > 100 * Goertzel(mid, CarrierRate, off), off + " Hz not 20 dB under the tone");
            // An independent count: a 1 kHz tone crosses zero 2000 times a second.
            int crossings = 0;
            for (int i = 1; i < mid.Count; i++) if ((mid[i - 1] < 0) != (mid[i] < 0)) crossings++;
            Assert.True(Math.Abs(crossings - 2 * ToneHz * mid.Count / CarrierRate) <= 4, crossings + " zero crossings");
        }

        public static void TestAnOggOpusStreamInChunksPlaysTheTone()
        {
            var ogg = OggTone();
            foreach (var chunk in new[] { 1, 7, 100, 4096 })
            {
                using (var call = new Carrier())
                {
                    call.Feed(ogg, chunk);
                    call.End();
                    call.PlayOut();
                    Assert.Equal(0UL, call.Session.Stats()["encoded_audio_errors"], "errors, chunks of " + chunk);
                    AssertIsTheTone(call.Heard, Seconds);
                }
            }
        }

        public static void TestACorruptStreamThrowsBadAudioAndTheSessionStillPlays()
        {
            var ogg = OggTone();
            var bad = (byte[])ogg.Clone();
            bad[bad.Length / 2] ^= 0x40; // fails the page's CRC
            using (var call = new Carrier())
            {
                var e = Assert.Throws<TrunklineException>(() => call.Feed(bad, 4096), "corrupt stream");
                Assert.Equal(ResultCode.BadAudio, e.Code, "code");
                Assert.Equal(12u, (uint)e.Code, "BAD_AUDIO's value");
                Assert.Equal(1UL, call.Session.Stats()["encoded_audio_errors"], "errors");
                call.PlayOut();
                call.Heard.Clear();
                var pcm = Twilio.Tone(CarrierRate, 0.5, ToneHz, 16383);
                Assert.Equal(pcm.Length, call.Session.Play(pcm, CarrierRate), "PCM taken");
                call.PlayOut();
                AssertIsTheTone(call.Heard, 0.5);
                // A stream cut mid-page: EndEncoded says so.
                call.Feed(ogg.Take(ogg.Length - 25).ToArray(), 100);
                Assert.Equal(ResultCode.BadAudio, Assert.Throws<TrunklineException>(() => call.End(), "cut stream").Code, "cut stream");
                Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(() => call.Session.PlayEncoded(ogg, EncodedCodec.Opus, 44100), "44.1 kHz Opus").Code, "44.1 kHz Opus");
                Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(() => call.Session.PlayEncoded(ogg, (EncodedCodec)7), "codec 7").Code, "codec 7");
            }
        }

        public static void TestAnOffloadedUlawCallReadsTheCallersBytes()
        {
            var callsim = Repo.PathOf("target", "release", "callsim");
            Assert.True(File.Exists(callsim), "no callsim binary: cargo build --release -p trunkline-callsim");
            List<long[]> labels;
            var audio = Twilio.Speech(out labels).Take(8000).ToArray();
            var file = Path.GetTempFileName();
            File.WriteAllBytes(file, audio);
            try
            {
                using (var engine = new Engine(1))
                using (var server = engine.Serve(new ServerOptions { Session = new SessionOptions { AgentRate = 8000, AgentFormat = "ulaw" } }))
                {
                    var info = new ProcessStartInfo(callsim, "--url ws://127.0.0.1:" + server.Port + "/ --audio \"" + file + "\" --speech 100-900 --wait-ms 100 --digital-silence --json --quiet")
                    {
                        UseShellExecute = false,
                        RedirectStandardOutput = true,
                        RedirectStandardError = true,
                    };
                    using (var proc = Process.Start(info))
                    {
                        var stdout = proc.StandardOutput.ReadToEndAsync();
                        var stderr = proc.StandardError.ReadToEndAsync();
                        Session call = null;
                        var events = new List<Event>();
                        var heard = new List<byte>();
                        var sw = Stopwatch.StartNew();
                        try
                        {
                            while (!proc.HasExited || !events.Any(e => e.Kind == EventKind.Stopped))
                            {
                                Assert.True(sw.ElapsedMilliseconds < 20000, "the call did not end in time");
                                engine.Wait(20);
                                if (call == null)
                                {
                                    call = server.Accept();
                                    if (call != null) Assert.Equal(AgentFormat.Mulaw, call.AgentFormat, "the server's agent format");
                                }
                                if (call != null)
                                {
                                    events.AddRange(call.Events());
                                    heard.AddRange(call.ReadAudioBytes());
                                }
                            }
                        }
                        finally
                        {
                            if (!proc.HasExited) proc.Kill();
                        }
                        proc.WaitForExit();
                        Assert.Equal(0, proc.ExitCode, "callsim (" + stderr.Result + ")");
                        call.Dispose();
                        var frames = int.Parse(Regex.Match(stdout.Result, "\"frames_sent\"\\s*:\\s*(\\d+)").Groups[1].Value);
                        // A µ-law byte per sample for every frame callsim sent, the caller's audio
                        // first and untouched (then the digital silence it sends while it waits).
                        Assert.Equal(frames * 160, heard.Count, "bytes read");
                        Assert.SequenceEqual(audio, heard.Take(audio.Length), "the caller's bytes");
                        Assert.True(heard.Skip(audio.Length).All(b => b == 0xFF), "digital silence after");
                    }
                }
            }
            finally
            {
                File.Delete(file);
            }
        }
    }
}
