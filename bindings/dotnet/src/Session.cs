#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr; // see Native.cs
#endif

using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline
{
    /// <summary>
    /// One call (trunkline_session). Push every carrier message, read caller audio, play agent
    /// audio, send every outbound message, handle events. Every member may be called from any
    /// thread, also concurrently (the library serializes calls on one session). Dispose frees the
    /// native session once in-flight calls have returned; using it afterwards throws
    /// ObjectDisposedException.
    /// </summary>
    public sealed unsafe class Session : IDisposable
    {
        const int OutboundInitial = 4096; // always holds a media message (header)
        const int StackPushBytes = 4096;

        readonly Engine engine;
        readonly SessionHandle handle;
        readonly object readLock = new object();
        readonly object outboundLock = new object();
        // Held from poll_event to the last unheard_segment read, so that a concurrent poll cannot
        // replace the tags of the barge-in/interrupted event being read.
        readonly object eventLock = new object();
        short[] readBuffer = new short[4096];
        byte[] outboundBuffer = new byte[OutboundInitial];

        internal Session(Engine engine, SessionHandle handle)
        {
            this.engine = engine;
            this.handle = handle;
        }

        /// <summary>The engine this session runs on.</summary>
        public Engine Engine { get { return engine; } }

        /// <summary>The native handle (for advanced interop).</summary>
        public SessionHandle Handle { get { return handle; } }

        /// <summary>The agent's audio format, as the session's options set it (a server's for an
        /// accepted call): what ReadAudioBytes returns and PlayBytes takes.</summary>
        public AgentFormat AgentFormat
        {
            get
            {
                AgentFormat format;
                Native.Check(Native.trunkline_session_agent_format(H(), out format), "trunkline_session_agent_format");
                return format;
            }
        }

        SessionHandle H()
        {
            if (handle.IsClosed) throw new ObjectDisposedException("Session");
            return handle;
        }

        // ---- carrier → engine

        /// <summary>Hands a text message (JSON, for most carriers) received from the carrier to the engine.
        /// Bad input is not an exception: it is dropped and reported as a ProtocolError event.
        /// Throws TrunklineException with Code Full when the inbound ring is full (retry later).</summary>
        public void Push(string message)
        {
            if (message == null) throw new ArgumentNullException("message");
            int max = Encoding.UTF8.GetMaxByteCount(message.Length);
            if (max <= StackPushBytes)
            {
                byte* buf = stackalloc byte[max];
                int n;
                fixed (char* c = message) n = Encoding.UTF8.GetBytes(c, message.Length, buf, max);
                Native.Check(Native.trunkline_session_push(H(), buf, Native.N(n), (uint)MessageKind.Text), "trunkline_session_push");
            }
            else
            {
                var bytes = Encoding.UTF8.GetBytes(message);
                Push(bytes, 0, bytes.Length, MessageKind.Text);
            }
        }

        /// <summary>Hands a binary message received from the carrier to the engine.</summary>
        public void Push(byte[] message)
        {
            if (message == null) throw new ArgumentNullException("message");
            Push(message, 0, message.Length, MessageKind.Binary);
        }

        /// <summary>Hands <paramref name="count"/> bytes of a message of kind <paramref name="kind"/>
        /// (as a WebSocket receive gives them) to the engine; the bytes are copied.</summary>
        public void Push(byte[] buffer, int offset, int count, MessageKind kind)
        {
            CheckRange(buffer, offset, count);
            fixed (byte* p = buffer)
            {
                Native.Check(Native.trunkline_session_push(H(), count == 0 ? null : p + offset, Native.N(count), (uint)kind), "trunkline_session_push");
            }
        }

        /// <summary>Push for async code: when the engine is behind (the inbound ring is full after a
        /// burst), waits for it to catch up instead of throwing, for at most
        /// <paramref name="timeout"/> (2 s when null); then throws TrunklineException with Code Full.
        /// The burst waits in the carrier's socket meanwhile, which is the backpressure wanted.</summary>
        public Task PushAsync(string message, TimeSpan? timeout = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (message == null) throw new ArgumentNullException("message");
            return Backpressure.WhenTaken(() => Push(message), timeout, cancellationToken);
        }

        /// <summary>PushAsync for a binary message (see the text one).</summary>
        public Task PushAsync(byte[] message, TimeSpan? timeout = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            if (message == null) throw new ArgumentNullException("message");
            return Backpressure.WhenTaken(() => Push(message, 0, message.Length, MessageKind.Binary), timeout, cancellationToken);
        }

        /// <summary>PushAsync for <paramref name="count"/> bytes of a message of kind
        /// <paramref name="kind"/> (see the text one). The bytes are read when the push is taken:
        /// leave the buffer alone until the task completes.</summary>
        public Task PushAsync(byte[] buffer, int offset, int count, MessageKind kind, TimeSpan? timeout = null, CancellationToken cancellationToken = default(CancellationToken))
        {
            CheckRange(buffer, offset, count);
            return Backpressure.WhenTaken(() => Push(buffer, offset, count, kind), timeout, cancellationToken);
        }

        // ---- caller audio

        /// <summary>All caller audio ready now: mono s16 at the session's agent rate (empty if none).</summary>
        public short[] ReadAudio()
        {
            lock (readLock)
            {
                var all = new List<short[]>();
                int total = 0;
                while (true)
                {
                    int n = ReadAudio(readBuffer, 0, readBuffer.Length);
                    if (n == 0) break;
                    var chunk = new short[n];
                    Array.Copy(readBuffer, chunk, n);
                    all.Add(chunk);
                    total += n;
                }
                if (all.Count == 1) return all[0];
                var result = new short[total];
                int at = 0;
                foreach (var c in all)
                {
                    Array.Copy(c, 0, result, at, c.Length);
                    at += c.Length;
                }
                return result;
            }
        }

        /// <summary>Reads up to <paramref name="count"/> samples of caller audio into
        /// <paramref name="buffer"/> without allocating; returns how many (0: none ready).</summary>
        public int ReadAudio(short[] buffer, int offset, int count)
        {
            CheckRange(buffer, offset, count);
            if (count == 0) throw new ArgumentOutOfRangeException("count", "count must be positive");
            nuint n;
            ResultCode r;
            fixed (short* p = buffer) r = Native.trunkline_session_read_audio(H(), p + offset, Native.N(count), out n);
            if (r == ResultCode.Empty) return 0;
            Native.Check(r, "trunkline_session_read_audio");
            return Native.I(n);
        }

        /// <summary>All caller audio ready now as bytes in the agent's format (SessionOptions.AgentFormat):
        /// 8 kHz G.711 codes, exactly the carrier's when it speaks the same law; s16le for PCM.</summary>
        public byte[] ReadAudioBytes()
        {
            var all = new List<byte>();
            var buffer = new byte[4096];
            while (true)
            {
                nuint n;
                ResultCode r;
                fixed (byte* p = buffer) r = Native.trunkline_session_read_audio_bytes(H(), p, Native.N(buffer.Length), out n);
                if (r == ResultCode.Empty) break;
                Native.Check(r, "trunkline_session_read_audio_bytes");
                int count = Native.I(n);
                for (int i = 0; i < count; i++) all.Add(buffer[i]);
            }
            return all.ToArray();
        }

        // ---- agent audio

        /// <summary>Queues agent audio as bytes in the agent's format: G.711 codes at
        /// <paramref name="rate"/> 8000 (sent to the carrier untouched when it takes the same law),
        /// or s16le for a PCM agent. Returns the bytes taken (0 when the queue is full).</summary>
        public int PlayBytes(byte[] data, int rate)
        {
            if (data == null) throw new ArgumentNullException("data");
            if (rate <= 0) throw new ArgumentOutOfRangeException("rate");
            nuint taken;
            ResultCode r;
            fixed (byte* p = data) r = Native.trunkline_session_play_bytes(H(), data.Length == 0 ? null : p, Native.N(data.Length), (uint)rate, out taken);
            if (r == ResultCode.Full) return 0;
            Native.Check(r, "trunkline_session_play_bytes");
            return Native.I(taken);
        }

        /// <summary>Queues encoded agent audio, decoded on the calling thread and then played as
        /// Play plays PCM: an Ogg Opus stream in chunks of any size as it arrives
        /// (<see cref="EncodedCodec.OggOpus"/>, <paramref name="rate"/> ignored) or one raw Opus packet
        /// per call (<see cref="EncodedCodec.Opus"/>, <paramref name="rate"/> its stream's encoding
        /// rate). Returns the bytes taken (0 when the play queue is full): keep the rest and retry
        /// later. Throws TrunklineException with Code BadAudio for corrupt, truncated or unsupported
        /// input (the stream is dropped; the next bytes start a new one).</summary>
        public int PlayEncoded(byte[] data, EncodedCodec codec = EncodedCodec.OggOpus, int rate = 48000)
        {
            if (data == null) throw new ArgumentNullException("data");
            return PlayEncoded(new ReadOnlySpan<byte>(data), codec, rate);
        }

        /// <summary>PlayEncoded from a span (a slice of a receive buffer, without a copy).</summary>
        public int PlayEncoded(ReadOnlySpan<byte> data, EncodedCodec codec = EncodedCodec.OggOpus, int rate = 48000)
        {
            if (rate <= 0) throw new ArgumentOutOfRangeException("rate");
            nuint taken;
            ResultCode r;
            // Pinned through its first element (what `fixed` on a span does, in a form C# 7.0 takes).
            fixed (byte* p = &System.Runtime.InteropServices.MemoryMarshal.GetReference(data))
                r = Native.trunkline_session_play_encoded(H(), (uint)codec, data.Length == 0 ? null : p, Native.N(data.Length), (uint)rate, out taken);
            if (r == ResultCode.Full) return 0;
            Native.Check(r, "trunkline_session_play_encoded");
            return Native.I(taken);
        }

        /// <summary>The encoded input is over (a reply's stream ended): plays what PlayEncoded still
        /// holds; the next bytes start a new stream. Returns false while decoded audio waits for room
        /// in the play queue (call again later). Throws TrunklineException with Code BadAudio if the
        /// stream was cut mid-page.</summary>
        public bool EndEncoded()
        {
            var r = Native.trunkline_session_end_encoded(H());
            if (r == ResultCode.Full) return false;
            Native.Check(r, "trunkline_session_end_encoded");
            return true;
        }

        /// <summary>Queues agent audio (mono s16 at <paramref name="rate"/> Hz: 8000, 16000, 22050,
        /// 24000, 44100 or 48000). Returns how many samples were taken (0 when the queue is full):
        /// keep the rest and play it later.</summary>
        public int Play(short[] pcm, int rate)
        {
            if (pcm == null) throw new ArgumentNullException("pcm");
            return Play(pcm, 0, pcm.Length, rate);
        }

        /// <summary>Queues <paramref name="count"/> samples from <paramref name="offset"/>; see
        /// <see cref="Play(short[], int)"/>.</summary>
        public int Play(short[] pcm, int offset, int count, int rate)
        {
            CheckRange(pcm, offset, count);
            if (rate <= 0) throw new ArgumentOutOfRangeException("rate");
            nuint taken;
            ResultCode r;
            fixed (short* p = pcm) r = Native.trunkline_session_play(H(), count == 0 ? null : p + offset, Native.N(count), (uint)rate, out taken);
            if (r == ResultCode.Full) return 0;
            Native.Check(r, "trunkline_session_play");
            return Native.I(taken);
        }

        /// <summary>Places mark <paramref name="name"/> after the audio played so far: a MarkPlayed
        /// event follows when the caller has heard everything before it (MarkCleared if flushed).</summary>
        public void Mark(string name)
        {
            if (name == null) throw new ArgumentNullException("name");
            if (name.IndexOf('\0') >= 0) throw new ArgumentException("a mark name cannot contain NUL", "name");
            var bytes = new byte[Encoding.UTF8.GetByteCount(name) + 1];
            Encoding.UTF8.GetBytes(name, 0, name.Length, bytes, 0);
            fixed (byte* p = bytes) Native.Check(Native.trunkline_session_mark(H(), p), "trunkline_session_mark");
        }

        /// <summary>Stops the agent: queued audio is dropped, <c>clear</c> is sent, and an
        /// Interrupted event reports how much the caller heard.</summary>
        public void Interrupt()
        {
            Native.Check(Native.trunkline_session_interrupt(H()), "trunkline_session_interrupt");
        }

        /// <summary>Begins a segment tagged <paramref name="tag"/> (1 to 63 bytes of UTF-8): the
        /// agent audio played after this call belongs to it, until the next BeginSegment.
        /// BargeIn and Interrupted events then say which segment the caller was hearing
        /// (<see cref="Event.Segment"/>), how much of it (<see cref="Event.SegmentPlayedMs"/>)
        /// and which later ones went unheard (<see cref="Event.UnheardSegments"/>); they end every
        /// segment. Throws TrunklineException InvalidArgument for a bad tag, Full when 32 segments
        /// are queued that the caller has not got past yet (nothing taken: retry once playout has
        /// moved on).</summary>
        public void BeginSegment(string tag)
        {
            if (tag == null) throw new ArgumentNullException("tag");
            if (tag.IndexOf('\0') >= 0) throw new ArgumentException("a segment tag cannot contain NUL", "tag");
            var bytes = new byte[Encoding.UTF8.GetByteCount(tag) + 1];
            Encoding.UTF8.GetBytes(tag, 0, tag.Length, bytes, 0);
            fixed (byte* p = bytes) Native.Check(Native.trunkline_session_begin_segment(H(), p), "trunkline_session_begin_segment");
        }

        /// <summary>Agent audio accepted by Play that the caller has not heard yet, ms: waiting in
        /// the engine and at the carrier (by the engine's playout model, corrected with the
        /// carrier's echoes where it sends them).</summary>
        public ulong QueuedMs
        {
            get
            {
                ulong ms;
                Native.Check(Native.trunkline_session_queued_ms(H(), out ms), "trunkline_session_queued_ms");
                return ms;
            }
        }

        /// <summary>The carrier's connection closed: the stream ends as with a stop message (marks
        /// resolved, then Stopped). Carriers that send no stop (Plivo, Vonage, jambonz, AudioSocket
        /// without its hang-up) end this way. Does nothing once the stream has ended.</summary>
        public void EndStream()
        {
            Native.Check(Native.trunkline_session_end_stream(H()), "trunkline_session_end_stream");
        }

        // ---- engine → carrier

        /// <summary>Every message to send to the carrier now, in order: a string for a text frame,
        /// a byte[] for a binary frame. Send each right away: the engine paces them.</summary>
        public List<object> Outbound()
        {
            var list = new List<object>();
            lock (outboundLock)
            {
                while (true)
                {
                    int len;
                    MessageKind kind;
                    if (!TryNextOutbound(outboundBuffer, out len, out kind))
                    {
                        int need = NextOutboundLength();
                        if (need < 0) break;
                        if (need > outboundBuffer.Length)
                        {
                            outboundBuffer = new byte[need];
                            continue;
                        }
                        break;
                    }
                    if (kind == MessageKind.Text) list.Add(Encoding.UTF8.GetString(outboundBuffer, 0, len));
                    else
                    {
                        var b = new byte[len];
                        Array.Copy(outboundBuffer, b, len);
                        list.Add(b);
                    }
                }
            }
            return list;
        }

        /// <summary>Size of the next outbound message in bytes, or -1 if there is none.</summary>
        public int NextOutboundLength()
        {
            nuint n;
            var r = Native.trunkline_session_outbound_len(H(), out n);
            if (r == ResultCode.Empty) return -1;
            Native.Check(r, "trunkline_session_outbound_len");
            return Native.I(n);
        }

        /// <summary>Takes the next outbound message into <paramref name="buffer"/> without
        /// allocating. False when there is none, or when it does not fit (nothing is taken then:
        /// see <see cref="NextOutboundLength"/>; 4096 bytes always hold a media message).</summary>
        public bool TryNextOutbound(byte[] buffer, out int length, out MessageKind kind)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            nuint n;
            ResultCode r;
            fixed (byte* p = buffer) r = Native.trunkline_session_next_outbound(H(), p, Native.N(buffer.Length), out n, out kind);
            length = 0;
            if (r == ResultCode.Empty || r == ResultCode.BufferTooSmall) return false;
            Native.Check(r, "trunkline_session_next_outbound");
            length = Native.I(n);
            return true;
        }

        // ---- events

        /// <summary>Every event ready now, in order (empty if none).</summary>
        public List<Event> Events()
        {
            var list = new List<Event>();
            Event e;
            while ((e = PollEvent()) != null) list.Add(e);
            return list;
        }

        // The output structs' struct_size: their size as declared here (the header's VERSIONED OUTPUTS).
        static readonly nuint EventSize = Native.SizeOf(typeof(NativeEvent));
        static readonly nuint StartInfoSize = Native.SizeOf(typeof(NativeStartInfo));

        /// <summary>The next event, or null if none is ready.</summary>
        public Event PollEvent()
        {
            var ne = new NativeEvent { struct_size = EventSize };
            lock (eventLock)
            {
                var r = Native.trunkline_session_poll_event(H(), ref ne);
                if (r == ResultCode.Empty) return null;
                Native.Check(r, "trunkline_session_poll_event");
                var e = new Event(ne.kind, ne.stream_ms, ne.played_ms, (char)ne.digit, CString(ne.name, NativeEvent.NameCapacity), ne.error);
                if (ne.kind == EventKind.ProtocolError) e.ErrorMessage = Library.ProtocolErrorMessage(ne.error);
                if (ne.kind == EventKind.Dtmf && ne.duration_ms >= 0) e.DurationMs = ne.duration_ms;
                if (ne.kind == EventKind.EndOfTurn)
                {
                    e.SilenceMs = ne.duration_ms;
                    e.Confidence = (int)ne.confidence;
                }
                if (ne.kind == EventKind.Started) FillStart(e);
                if (ne.kind == EventKind.BargeIn || ne.kind == EventKind.Interrupted)
                {
                    var segment = CString(ne.segment, NativeEvent.SegmentTagCapacity);
                    e.Segment = segment.Length == 0 ? null : segment;
                    if (ne.segment_played_ms >= 0) e.SegmentPlayedMs = ne.segment_played_ms;
                    // Read now: the library keeps these tags only until the next such event is polled.
                    e.UnheardSegments = UnheardSegments(ne.unheard_segments);
                }
                return e;
            }
        }

        static string CString(byte* b, int capacity)
        {
            int len = 0;
            while (len < capacity && b[len] != 0) len++;
            return Native.Utf8(b, len);
        }

        IReadOnlyList<string> UnheardSegments(uint count)
        {
            var tags = new List<string>((int)count);
            byte* buf = stackalloc byte[NativeEvent.SegmentTagCapacity];
            for (uint i = 0; i < count; i++)
            {
                nuint n;
                Native.Check(Native.trunkline_session_unheard_segment(H(), (nuint)i, buf, Native.N(NativeEvent.SegmentTagCapacity), out n), "trunkline_session_unheard_segment");
                tags.Add(Native.Utf8(buf, Native.I(n)));
            }
            return tags.AsReadOnly();
        }

        void FillStart(Event e)
        {
            var info = new NativeStartInfo { struct_size = StartInfoSize };
            Native.Check(Native.trunkline_session_start_info(H(), ref info), "trunkline_session_start_info");
            e.Tracks = info.tracks;
            e.Encoding = info.encoding;
            e.SampleRate = info.sample_rate;
            e.Channels = info.channels;
            e.CallId = StartString(StartField.CallId);
            e.StreamId = StartString(StartField.StreamId);
            e.AccountId = StartString(StartField.AccountId);
            int count = Native.I(info.custom_parameter_count);
            var parameters = new List<KeyValuePair<string, string>>(count);
            for (int i = 0; i < count; i++) parameters.Add(CustomParameter(i));
            e.CustomParameters = parameters.AsReadOnly();
        }

        string StartString(StartField field)
        {
            for (int capacity = 256; ; capacity *= 4)
            {
                var buf = new byte[capacity];
                nuint n;
                ResultCode r;
                fixed (byte* p = buf) r = Native.trunkline_session_start_string(H(), (uint)field, p, Native.N(capacity), out n);
                if (r == ResultCode.BufferTooSmall && capacity < (1 << 24)) continue;
                Native.Check(r, "trunkline_session_start_string");
                return Encoding.UTF8.GetString(buf, 0, Native.I(n));
            }
        }

        KeyValuePair<string, string> CustomParameter(int index)
        {
            for (int capacity = 256; ; capacity *= 4)
            {
                var key = new byte[capacity];
                var value = new byte[capacity];
                nuint kn, vn;
                ResultCode r;
                fixed (byte* k = key)
                fixed (byte* v = value)
                {
                    var cap = Native.N(capacity);
                    r = Native.trunkline_session_custom_parameter(H(), Native.N(index), k, cap, out kn, v, cap, out vn);
                }
                if (r == ResultCode.BufferTooSmall && capacity < (1 << 24)) continue;
                Native.Check(r, "trunkline_session_custom_parameter");
                return new KeyValuePair<string, string>(
                    Encoding.UTF8.GetString(key, 0, Native.I(kn)), Encoding.UTF8.GetString(value, 0, Native.I(vn)));
            }
        }

        /// <summary>
        /// The session's events as an async stream, for threaded engines: it polls, and when
        /// nothing is ready it waits (at most <paramref name="waitMs"/>) for the engine's next
        /// signal. Every async waiter of the engine shares one blocking trunkline_engine_wait on a
        /// thread-pool thread, and each signal releases them all; no engine thread ever calls into
        /// .NET. (A thread of yours in <see cref="Engine.Wait"/> competes with them for signals.)
        /// The stream ends after the Stopped event or when the session is closed, and throws
        /// OperationCanceledException when cancelled (ObjectDisposedException if the session or
        /// engine is disposed under it). waitMs is positive, or -1 for no limit (a cancellation
        /// still ends the wait at once); 0 would spin and is refused (ArgumentOutOfRangeException).
        /// </summary>
        public IAsyncEnumerable<Event> EventsAsync(CancellationToken cancellationToken = default(CancellationToken), int waitMs = 20)
        {
            if (waitMs == 0 || waitMs < -1) throw new ArgumentOutOfRangeException("waitMs", "positive, or -1 for no limit");
            return new EventStream(this, cancellationToken, waitMs);
        }

        // ---- counters, lifetime

        /// <summary>Every counter by name (trunkline_session_stats_name order). Works on closed sessions.</summary>
        public Dictionary<string, ulong> Stats()
        {
            var names = Library.StatNames;
            var values = new ulong[names.Count];
            nuint n;
            ResultCode r;
            fixed (ulong* p = values) r = Native.trunkline_session_stats(H(), p, Native.N(values.Length), out n);
            Native.Check(r, "trunkline_session_stats");
            var d = new Dictionary<string, ulong>(names.Count);
            for (int i = 0; i < Native.I(n); i++) d[names[i]] = values[i];
            return d;
        }

        /// <summary>Closes the call: the engine stops working on it; later calls throw
        /// TrunklineException(Closed), Stats still works. Closing twice is fine.</summary>
        public void Close()
        {
            Native.Check(Native.trunkline_session_close(H()), "trunkline_session_close");
        }

        /// <summary>Closes and frees the session (after in-flight calls return). Safe to call twice.</summary>
        public void Dispose()
        {
            handle.Dispose();
        }

        static void CheckRange(Array buffer, int offset, int count)
        {
            if (buffer == null) throw new ArgumentNullException("buffer");
            if (offset < 0 || count < 0 || offset > buffer.Length - count)
                throw new ArgumentOutOfRangeException("offset", "offset and count do not fit the buffer");
        }
    }
}
