// Vad: the session's speech detector on its own, frame by frame.
using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline.Tests
{
    public static class VadTests
    {
        // The defaults' minimum speech and hangover (docs/settings.md), ms.
        const int MinSpeechMs = 120;
        const int HangoverMs = 400;
        static readonly int[] Rates = { 8000, 16000, 24000, 48000 };

        /// <summary>Every change of Speaking as (ms at the end of the frame, speaking), and the set
        /// of probabilities seen.</summary>
        static List<KeyValuePair<long, bool>> Changes(Vad vad, short[] pcm, ISet<float> probabilities)
        {
            var changes = new List<KeyValuePair<long, bool>>();
            int n = vad.FrameSamples;
            var frame = new short[n];
            bool was = false;
            for (int i = 0; i + n <= pcm.Length; i += n)
            {
                Array.Copy(pcm, i, frame, 0, n);
                probabilities.Add(vad.Process(frame));
                if (vad.Speaking != was)
                {
                    was = vad.Speaking;
                    changes.Add(new KeyValuePair<long, bool>((long)(i + n) * 1000 / vad.SampleRate, was));
                }
            }
            return changes;
        }

        static short[] Fixture(out List<long[]> labels)
        {
            return G711.UlawDecode(Twilio.Speech(out labels));
        }

        /// <summary>A 150 Hz pulse train of decaying harmonics (a crude vowel).</summary>
        static short[] PulseTrain(int rate, int frames)
        {
            double period = rate / 150.0;
            var pcm = new short[frames * rate / 50];
            for (int i = 0; i < pcm.Length; i++)
            {
                double phase = (i % period) / period;
                pcm[i] = (short)(6000 * Math.Exp(-6 * phase) * Math.Cos(10 * Math.PI * phase));
            }
            return pcm;
        }

        public static void TestSpeakingFollowsTheLabelledUtterances()
        {
            List<long[]> labels;
            var pcm = Fixture(out labels);
            var probabilities = new HashSet<float>();
            List<KeyValuePair<long, bool>> changes;
            using (var vad = new Vad(8000)) changes = Changes(vad, pcm, probabilities);
            Assert.SequenceEqual(new[] { 0f, 1f }, probabilities.OrderBy(p => p), "probabilities");
            // On inside each utterance, at most the minimum speech + 200 ms after its start; off
            // once the hangover has passed after its end (± 200 ms); no other change.
            Assert.Equal(2 * labels.Count, changes.Count, "changes: " + string.Join(", ", changes));
            for (int k = 0; k < labels.Count; k++)
            {
                long start = labels[k][0], end = labels[k][1];
                var on = changes[2 * k];
                var off = changes[2 * k + 1];
                Assert.True(on.Value && on.Key > start && on.Key <= start + MinSpeechMs + 200, "on at " + on.Key + ", utterance " + start);
                Assert.True(!off.Value && Math.Abs(off.Key - (end + HangoverMs)) <= 200, "off at " + off.Key + ", utterance end " + end);
            }
        }

        public static void TestOptionsAreTheSessionVadSettings()
        {
            List<long[]> labels;
            var pcm = Fixture(out labels);
            // A hangover longer than every pause between utterances (at most 1 s) joins them into
            // one (2 s of silence appended, so that it can end).
            var padded = new short[pcm.Length + 16000];
            Array.Copy(pcm, padded, pcm.Length);
            List<KeyValuePair<long, bool>> changes;
            using (var vad = new Vad(8000, new VadOptions { VadHangoverMs = 1500 })) changes = Changes(vad, padded, new HashSet<float>());
            Assert.SequenceEqual(new[] { true, false }, changes.Select(c => c.Value), "one long speech");
            Assert.True(Math.Abs(changes[1].Key - (labels[labels.Count - 1][1] + 1500)) <= 200, "ends after the last utterance + 1.5 s: " + changes[1].Key);
            using (var vad = new Vad(8000, new VadOptions { VadMinSpeechMs = 5000, VadAggressiveness = 3 }))
                Assert.Equal(0, Changes(vad, pcm, new HashSet<float>()).Count, "no speech that long");
        }

        public static void TestSilenceIsZeroAndAVoicedSignalStartsSpeech()
        {
            foreach (var rate in Rates)
            {
                using (var vad = new Vad(rate))
                {
                    Assert.Equal(rate / 50, vad.FrameSamples, "frame samples");
                    var silence = new short[vad.FrameSamples];
                    for (int i = 0; i < 20; i++)
                    {
                        Assert.Equal(0f, vad.Process(silence), "silence");
                        Assert.True(!vad.Speaking, "not speaking in silence");
                    }
                    var voiced = PulseTrain(rate, 30);
                    var frame = new short[vad.FrameSamples];
                    int on = -1;
                    for (int k = 0; k < 30; k++)
                    {
                        Array.Copy(voiced, k * vad.FrameSamples, frame, 0, vad.FrameSamples);
                        vad.Process(frame);
                        if (vad.Speaking && on < 0) on = k;
                    }
                    Assert.True(on >= MinSpeechMs / 20 - 1 && on <= MinSpeechMs / 20 + 3, rate + " Hz: speaking from frame " + on);
                    vad.Reset();
                    Assert.True(!vad.Speaking, "reset");
                    Assert.Equal(0f, vad.Process(silence), "silence after reset");
                }
            }
        }

        public static void TestBadInputThrows()
        {
            Action<Action, string> invalid = (a, what) =>
                Assert.Equal(ResultCode.InvalidArgument, Assert.Throws<TrunklineException>(a, what).Code, what);
            invalid(() => new Vad(44100), "44.1 kHz");
            invalid(() => new Vad(-8000), "a negative rate");
            invalid(() => new Vad(8000, new VadOptions { VadAggressiveness = 4 }), "aggressiveness 4");
            invalid(() => new Vad(8000, new VadOptions { VadMinSpeechMs = 5001 }), "min speech 5001");
            invalid(() => new Vad(8000, new VadOptions { VadHangoverMs = 10001 }), "hangover 10001");
            var vad = new Vad(16000);
            foreach (var n in new[] { 0, 1, 160, 319, 321, 640 })
                invalid(() => vad.Process(new short[n]), n + " samples at 16 kHz");
            Assert.Throws<ArgumentNullException>(() => vad.Process(null), "null");
            Assert.Equal(0f, vad.Process(new short[320]), "a right frame");
            vad.Dispose();
            vad.Dispose();
            Assert.Throws<ObjectDisposedException>(() => vad.Process(new short[320]), "after Dispose");
        }
    }
}
