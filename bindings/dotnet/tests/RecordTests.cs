using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;

namespace Trunkline.Tests
{
    /// <summary>Call recordings (SessionOptions.RecordPath): a short call's WAV read back by a RIFF
    /// parser of this test's own, and the paths refused.</summary>
    public static class RecordTests
    {
        const int Frames = 100; // 2 s of caller audio
        const int Rate = 8000;

        sealed class Wav
        {
            public int Format, Channels, SampleRate, ByteRate, BlockAlign, Bits;
            public short[] Samples;
        }

        /// <summary>Walks the RIFF chunks of a PCM WAV file (fmt, data).</summary>
        static Wav ReadWav(string file)
        {
            var b = File.ReadAllBytes(file);
            Assert.Equal("RIFF", Encoding.ASCII.GetString(b, 0, 4), "RIFF tag");
            Assert.Equal("WAVE", Encoding.ASCII.GetString(b, 8, 4), "WAVE tag");
            Assert.Equal((uint)(b.Length - 8), BitConverter.ToUInt32(b, 4), "RIFF size");
            Wav wav = null;
            short[] data = null;
            for (int at = 12; at + 8 <= b.Length;)
            {
                var id = Encoding.ASCII.GetString(b, at, 4);
                int size = (int)BitConverter.ToUInt32(b, at + 4);
                int body = at + 8;
                if (id == "fmt ")
                {
                    wav = new Wav
                    {
                        Format = BitConverter.ToUInt16(b, body),
                        Channels = BitConverter.ToUInt16(b, body + 2),
                        SampleRate = (int)BitConverter.ToUInt32(b, body + 4),
                        ByteRate = (int)BitConverter.ToUInt32(b, body + 8),
                        BlockAlign = BitConverter.ToUInt16(b, body + 12),
                        Bits = BitConverter.ToUInt16(b, body + 14),
                    };
                }
                else if (id == "data")
                {
                    data = new short[size / 2];
                    Buffer.BlockCopy(b, body, data, 0, size);
                }
                at = body + size + (size & 1);
            }
            Assert.True(wav != null && data != null, "fmt and data chunks");
            wav.Samples = data;
            return wav;
        }

        static string TempDir()
        {
            var dir = Path.Combine(Path.GetTempPath(), "trunkline-record-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(dir);
            return dir;
        }

        public static void TestACallIsRecordedInStereoCallerLeftAgentAsHeardRight()
        {
            List<long[]> labels;
            var caller = Twilio.Speech(out labels);
            var dir = TempDir();
            try
            {
                var file = Path.Combine(dir, "call.wav");
                var sent = new List<byte>(); // the agent's µ-law as sent to the carrier
                // A manual clock: the carrier plays (and the recording places) exactly 20 ms per step.
                using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
                {
                    using (var s = engine.OpenSession(new SessionOptions { AgentRate = Rate, RecordPath = file, BargeInEnabled = false }))
                    {
                        Assert.True(File.Exists(file), "created when the session opens");
                        s.Push(Twilio.Connected());
                        s.Push(Twilio.Start());
                        s.Play(Twilio.Tone(Rate, 1.0, 440, 8000), Rate);
                        for (int i = 0; i < Frames; i++)
                        {
                            s.Push(Twilio.Media(2 + i, i + 1, i * 20, caller, i * 160, 160));
                            engine.Advance(TimeSpan.FromMilliseconds(20));
                            foreach (var o in s.Outbound().Select(Twilio.Parse))
                                if (o.Event == "media") sent.AddRange(o.Payload);
                            s.ReadAudio();
                            s.Events();
                        }
                        s.Push(Twilio.Stop(Frames + 2));
                    }
                } // the engine is closed: the recording is finished

                var wav = ReadWav(file);
                Assert.Equal(1, wav.Format, "PCM");
                Assert.Equal(2, wav.Channels, "channels");
                Assert.Equal(Rate, wav.SampleRate, "rate");
                Assert.Equal(16, wav.Bits, "bits");
                Assert.Equal(4, wav.BlockAlign, "block align");
                Assert.Equal(Rate * 4, wav.ByteRate, "byte rate");
                Assert.Equal(Frames * 160, wav.Samples.Length / 2, "as long as the call");
                var left = wav.Samples.Where((_, i) => i % 2 == 0).ToArray();
                var right = wav.Samples.Where((_, i) => i % 2 == 1).ToArray();
                // Left: the caller's µ-law as delivered, decoded by an independent G.711 expansion.
                Assert.SequenceEqual(caller.Take(Frames * 160).Select(Twilio.ReferenceUlawDecode), left, "caller channel");
                // Right: the agent's 1 s as it went to the carrier, from the start, then silence.
                Assert.Equal(Rate, sent.Count, "agent bytes sent");
                Assert.SequenceEqual(sent.Select(Twilio.ReferenceUlawDecode), right.Take(Rate), "agent channel");
                double rms = Math.Sqrt(right.Take(Rate).Average(v => (double)v * v));
                double level = 20 * Math.Log10(rms / (8000 / Math.Sqrt(2)));
                Assert.True(Math.Abs(level) < 0.5, "agent level " + level + " dB");
                Assert.True(right.Skip(Rate).All(v => v == 0), "silence after the agent");
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }

        public static void TestAnUnknownExtensionOrAFileThatCannotBeCreatedIsRefused()
        {
            var dir = TempDir();
            try
            {
                using (var engine = new Engine(0))
                {
                    var bad = new[] { "call.mp3", "call", "call.wav.txt", Path.Combine("no", "such", "dir", "call.wav"), "." };
                    foreach (var name in bad)
                    {
                        var ex = Assert.Throws<TrunklineException>(
                            () => engine.OpenSession(new SessionOptions { RecordPath = Path.Combine(dir, name) }), name);
                        Assert.Equal(ResultCode.Record, ex.Code, name);
                        Assert.Equal("trunkline_session_open", ex.Function, "function");
                        Assert.True(ex.Message.Contains(".wav"), "the message says what is accepted: " + ex.Message);
                    }
                    Assert.Equal(0, Directory.GetFileSystemEntries(dir).Length, "nothing created");
                    Assert.Throws<ArgumentException>(() => engine.OpenSession(new SessionOptions { RecordPath = "a\0.wav" }), "NUL in the path");
                    // "" records nothing; the engine goes on.
                    engine.OpenSession(new SessionOptions { RecordPath = "" }).Dispose();
                    engine.OpenSession(new SessionOptions()).Dispose();
                }
            }
            finally
            {
                Directory.Delete(dir, true);
            }
        }
    }
}
