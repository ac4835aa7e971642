using System;

namespace Trunkline
{
    /// <summary>
    /// Trunkline's voice activity detector on its own: the classifier and speech state machine a
    /// session runs, fed one 20 ms frame at a time (<see cref="FrameSamples"/> samples: 160 at
    /// 8 kHz, 320 at 16 kHz, 480 at 24 kHz, 960 at 48 kHz), for audio that does not come through a
    /// session. Methods may be called from any thread (the library serializes calls on one VAD).
    /// Dispose frees it; using it afterwards throws ObjectDisposedException.
    /// </summary>
    public sealed unsafe class Vad : IDisposable
    {
        readonly VadHandle handle;
        volatile bool speaking;

        /// <summary>A VAD for s16 mono audio at <paramref name="sampleRate"/> Hz: 8000, 16000, 24000 or
        /// 48000 (the last three are resampled to the detector's 8 kHz, as a session does). A bad
        /// rate or setting throws TrunklineException (InvalidArgument).</summary>
        public Vad(int sampleRate = 8000, VadOptions options = null)
        {
            var config = (options ?? new VadOptions()).ToNative();
            if (sampleRate < 0) throw new TrunklineException(ResultCode.InvalidArgument, "trunkline_vad_new");
            VadHandle h;
            Native.Check(Native.trunkline_vad_new(ref config, (uint)sampleRate, out h), "trunkline_vad_new");
            handle = h;
            SampleRate = sampleRate;
            FrameSamples = sampleRate / 50;
        }

        /// <summary>The sample rate, Hz.</summary>
        public int SampleRate { get; private set; }

        /// <summary>Samples in one frame: 20 ms at the sample rate.</summary>
        public int FrameSamples { get; private set; }

        /// <summary>True while speech is confirmed (after the last frame): what a session reports
        /// between SpeechStarted and SpeechStopped.</summary>
        public bool Speaking { get { return speaking; } }

        /// <summary>The native handle (for advanced interop).</summary>
        public VadHandle Handle { get { return handle; } }

        VadHandle H()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Vad");
            return handle;
        }

        /// <summary>Takes the next 20 ms frame and returns its speech probability: 1 if the
        /// classifier called the frame speech, else 0 (it decides on thresholds; it has no
        /// calibrated score). Updates <see cref="Speaking"/>. Another length throws
        /// TrunklineException (InvalidArgument); nothing is taken.</summary>
        public float Process(short[] pcm)
        {
            if (pcm == null) throw new ArgumentNullException("pcm");
            float probability;
            byte on;
            fixed (short* p = pcm)
            {
                Native.Check(Native.trunkline_vad_process(H(), p, Native.N(pcm.Length), (IntPtr)(&probability), (IntPtr)(&on)), "trunkline_vad_process");
            }
            speaking = on != 0;
            return probability;
        }

        /// <summary>Forgets everything (speech state, noise floor): the next frame starts a new
        /// stream.</summary>
        public void Reset()
        {
            Native.Check(Native.trunkline_vad_reset(H()), "trunkline_vad_reset");
            speaking = false;
        }

        /// <summary>Frees the native VAD (idempotent).</summary>
        public void Dispose()
        {
            handle.Dispose();
        }
    }
}
