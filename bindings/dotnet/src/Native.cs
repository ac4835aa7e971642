// P/Invoke declarations mirroring include/trunkline.h, one for one. Tests compare these with the
// header by reflection (tests/HeaderDrift.cs): names, parameter and return types, struct fields in
// order, enum values. Keep the parameter names and field names as the header spells them. Every
// C enum type is a uint32_t, so every C# mirror is an enum : uint. Where the header passes an enum
// value as a plain uint32_t (so that any value is defined), so does this file: the C# enums are
// cast at the call.
//
// Mono / .NET 8 compatibility: this file builds unchanged on .NET 8 (C# 12), where `nuint` is the
// native-sized unsigned integer and the same runtime type as System.UIntPtr. Debian's Mono 6.8
// compiler (mcs) stops at C# 7.x and has no `nuint` keyword, so for targets before .NET 5 (mcs
// defines none of the NETx_0_OR_GREATER symbols) `nuint` is an alias of System.UIntPtr: the same
// type, so the IL and the marshalling are identical. Only conversions differ (UIntPtr has no
// arithmetic), which is why the code converts through the `N` helpers and `(ulong)` casts only.
#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr;
#endif

using System;
using System.Runtime.InteropServices;

namespace Trunkline
{
    /// <summary>The result of a native call (<c>trunkline_result</c>).</summary>
    [CName("trunkline_result")]
    public enum ResultCode : uint
    {
        /// <summary>Success.</summary>
        Ok = 0,
        /// <summary>A required pointer argument was NULL.</summary>
        NullParameter = 1,
        /// <summary>An argument is out of range (a rate, a setting, a name too long or not UTF-8).</summary>
        InvalidArgument = 2,
        /// <summary>A bug inside Trunkline was caught at the boundary.</summary>
        Panic = 3,
        /// <summary>A bounded queue is full; nothing was taken. Retry later.</summary>
        Full = 4,
        /// <summary>The session was closed (or its engine freed).</summary>
        Closed = 5,
        /// <summary>Nothing to return right now.</summary>
        Empty = 6,
        /// <summary>The buffer is too small for the item; nothing was taken.</summary>
        BufferTooSmall = 7,
        /// <summary>The session hit an internal error and was shut down.</summary>
        Failed = 8,
        /// <summary>The engine already has its maximum number of sessions.</summary>
        TooManySessions = 9,
        /// <summary>The operating system refused a resource.</summary>
        Io = 10,
        /// <summary>A wait timed out.</summary>
        Timeout = 11,
        /// <summary>Encoded audio (Session.PlayEncoded) is corrupt, truncated or not supported: the
        /// stream was dropped and counted (encoded_audio_errors); the next bytes start a new one.</summary>
        BadAudio = 12,
        /// <summary>The call's recording (SessionOptions.RecordPath) could not be started: the file
        /// cannot be created, or its extension is not .wav, .opus or .ogg. No session was opened.</summary>
        Record = 13,
    }

    /// <summary>Whether a WebSocket message is text or binary (<c>trunkline_message_kind</c>).</summary>
    [CName("trunkline_message_kind")]
    public enum MessageKind : uint
    {
        /// <summary>A text frame (the JSON messages of most carriers).</summary>
        Text = 0,
        /// <summary>A binary frame.</summary>
        Binary = 1,
    }

    /// <summary>What an event is (<c>trunkline_event_kind</c>). Values are stable.</summary>
    [CName("trunkline_event_kind")]
    public enum EventKind : uint
    {
        /// <summary>The carrier's transport is up.</summary>
        Connected = 1,
        /// <summary>The stream started (CallId, StreamId, AccountId, CustomParameters and the media
        /// format are set).</summary>
        Started = 2,
        /// <summary>The caller started speaking at StreamMs (the onset).</summary>
        SpeechStarted = 3,
        /// <summary>The caller stopped speaking at StreamMs.</summary>
        SpeechStopped = 4,
        /// <summary>The caller spoke over the agent (onset at StreamMs); they heard PlayedMs.</summary>
        BargeIn = 5,
        /// <summary>Session.Interrupt took effect; the caller heard PlayedMs.</summary>
        Interrupted = 6,
        /// <summary>The caller heard everything before mark Name (at PlayedMs of its utterance).</summary>
        MarkPlayed = 7,
        /// <summary>Mark Name was flushed before the caller heard it.</summary>
        MarkCleared = 8,
        /// <summary>The caller pressed Digit at StreamMs.</summary>
        Dtmf = 9,
        /// <summary>The stream ended.</summary>
        Stopped = 10,
        /// <summary>A message was dropped: ErrorCode, and Name is the offending field if any.</summary>
        ProtocolError = 11,
        /// <summary>The caller's turn seems over (SessionOptions.VadEndOfTurnEnabled): the speech
        /// that ended at StreamMs sounded finished (Confidence) and SilenceMs of silence followed, or
        /// the hangover passed (then just before SpeechStopped).</summary>
        EndOfTurn = 12,
    }

    /// <summary>The agent's audio format (<c>trunkline_agent_format</c>; SessionOptions.AgentFormat
    /// by name: "pcm", "ulaw", "alaw").</summary>
    [CName("trunkline_agent_format")]
    public enum AgentFormat : uint
    {
        /// <summary>Signed 16-bit samples at the agent rate.</summary>
        Pcm = 0,
        /// <summary>G.711 µ-law at 8 kHz, a byte per sample.</summary>
        Mulaw = 1,
        /// <summary>G.711 A-law at 8 kHz, a byte per sample.</summary>
        Alaw = 2,
    }

    /// <summary>What Session.PlayEncoded is given (the header's <c>TRUNKLINE_CODEC_*</c>).</summary>
    public enum EncodedCodec : uint
    {
        /// <summary>An Ogg Opus stream, in chunks of any size as it arrives (the rate is ignored).</summary>
        OggOpus = 0,
        /// <summary>One raw Opus packet per call, from a stream encoded at the given rate.</summary>
        Opus = 1,
    }

    /// <summary>How the carrier encodes its audio, from its <c>start</c> message
    /// (<c>trunkline_audio_encoding</c>; Event.Encoding).</summary>
    [CName("trunkline_audio_encoding")]
    public enum AudioEncoding : uint
    {
        /// <summary>G.711 µ-law.</summary>
        Mulaw = 0,
        /// <summary>G.711 A-law.</summary>
        Alaw = 1,
        /// <summary>Signed 16-bit linear PCM.</summary>
        L16 = 2,
        /// <summary>G.722 (16 kHz audio).</summary>
        G722 = 3,
        /// <summary>Opus, one frame per message.</summary>
        Opus = 4,
    }

    /// <summary>A string of the <c>start</c> message, by what it means whatever the carrier calls it
    /// (<c>trunkline_start_field</c>).</summary>
    [CName("trunkline_start_field")]
    internal enum StartField : uint
    {
        CallId = 0,
        StreamId = 1,
        AccountId = 2,
    }

    /// <summary>The code of a ProtocolError event (<c>trunkline_protocol_error</c>; Event.ErrorCode).
    /// Values are stable; new codes may be added, so keep a default branch.</summary>
    [CName("trunkline_protocol_error")]
    public enum ProtocolErrorCode : uint
    {
        /// <summary>Not valid JSON.</summary>
        MalformedJson = 1,
        /// <summary>A required field is missing (Event.Name holds it).</summary>
        MissingField = 2,
        /// <summary>A field has the wrong type or value (Event.Name holds it).</summary>
        WrongType = 3,
        /// <summary>Unknown <c>event</c>.</summary>
        UnknownEvent = 4,
        /// <summary>The media payload is not valid base64.</summary>
        InvalidBase64 = 5,
        /// <summary>The media payload is over MaxPayloadBytes.</summary>
        PayloadTooLarge = 6,
        /// <summary>The message is over MaxMessageBytes.</summary>
        MessageTooLarge = 7,
        /// <summary>A binary frame where text is expected.</summary>
        UnexpectedFrameKind = 8,
        /// <summary>Media before <c>start</c>.</summary>
        MediaBeforeStart = 9,
        /// <summary>A second <c>start</c>.</summary>
        DuplicateStart = 10,
        /// <summary>A message after <c>stop</c>.</summary>
        AfterStop = 11,
        /// <summary>A media format the engine does not handle.</summary>
        UnsupportedFormat = 12,
        /// <summary>A payload that is not a whole number of samples.</summary>
        OddPayloadLength = 13,
        /// <summary>A media timestamp discontinuity.</summary>
        TimestampJump = 14,
        /// <summary>The echo of a mark that was never sent.</summary>
        UnknownMark = 15,
        /// <summary>A <c>media</c>, <c>mark</c>, <c>dtmf</c> or <c>stop</c> naming another stream than <c>start</c> did.</summary>
        ForeignStream = 16,
        /// <summary>The carrier reported an error of its own (Telnyx <c>error</c>, Plivo <c>error</c> or
        /// <c>playFailed</c>; Name holds the event). The call goes on.</summary>
        CarrierReported = 17,
    }

    /// <summary>Names the C type a C# declaration mirrors (read by the header-drift test).</summary>
    [AttributeUsage(AttributeTargets.Enum | AttributeTargets.Struct | AttributeTargets.Class)]
    internal sealed class CNameAttribute : Attribute
    {
        public CNameAttribute(string name) { Name = name; }
        public string Name { get; private set; }
    }

    // The structs: sequential, field for field as in the header, C names kept so that the drift
    // test can compare them. `bool` fields are marshalled as one byte (C's `bool`), explicitly.
    // The configs begin with struct_size: the _default functions are passed Marshal.SizeOf of the
    // struct as declared here, and the library reads no further than that (see the header's
    // VERSIONED CONFIGS), so these mirrors keep working with a newer library that grew a struct.

    [CName("trunkline_engine_config")]
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeEngineConfig
    {
        public nuint struct_size;
        public uint workers;
        [MarshalAs(UnmanagedType.U1)] public bool workers_per_core;
        public uint max_sessions;
        public uint tick_ms;
        public int worker_nice;
    }

    [CName("trunkline_vad_config")]
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeVadConfig
    {
        public nuint struct_size;
        public uint vad_aggressiveness;
        public uint vad_min_speech_ms;
        public uint vad_hangover_ms;
    }

    // `dialect` and `record_path` point to NUL-terminated UTF-8 that the caller keeps alive for the
    // call it is passed to (NativeAllocations), or are NULL (the default dialect; no recording).
    [CName("trunkline_session_config")]
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeSessionConfig
    {
        public nuint struct_size;
        public uint agent_rate;
        public uint play_rate;
        public uint vad_aggressiveness;
        public uint vad_min_speech_ms;
        public uint vad_hangover_ms;
        [MarshalAs(UnmanagedType.U1)] public bool barge_in_enabled;
        public uint barge_in_min_speech_ms;
        public uint lead_ms;
        public uint sync_mark_interval_ms;
        public uint utterance_gap_ms;
        public nuint max_message_bytes;
        public nuint max_payload_bytes;
        public uint reorder_window_ms;
        public uint max_gap_fill_ms;
        public nuint inbound_ring_bytes;
        public nuint play_ring_bytes;
        public uint outbound_buffer_ms;
        public uint agent_ring_ms;
        public nuint outbound_ring_bytes;
        public nuint event_capacity;
        public nuint max_mark_name_bytes;
        public nuint max_pending_marks;
        public uint read_hold_ms;
        public byte* dialect;
        public uint agent_format;
        public byte* record_path;
        [MarshalAs(UnmanagedType.U1)] public bool vad_echo_aware;
        [MarshalAs(UnmanagedType.U1)] public bool vad_end_of_turn_enabled;
        public uint vad_end_of_turn_min_silence_ms;
        public uint vad_end_of_turn_threshold;
        public uint barge_in_duck_db;
        public uint vad_end_of_turn_max_silence_ms;
        public uint barge_in_rejoin_within_ms;
        [MarshalAs(UnmanagedType.U1)] public bool echo_reduction;
    }

    // The `const char *` fields and `session` point to memory that the caller keeps alive for the
    // duration of trunkline_server_start (Server allocates and frees it around the call:
    // NativeAllocations). `session` is a session config in its marshalled form (NULL: defaults).
    [CName("trunkline_server_config")]
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeServerConfig
    {
        public nuint struct_size;
        public byte* bind;
        public byte* path;
        public byte* auth_token;
        public byte* public_url;
        public NativeSessionConfig* session;
        public uint max_sessions;
        public nuint max_message_bytes;
        public uint handshake_timeout_ms;
        public uint idle_timeout_ms;
        public uint send_timeout_ms;
        public uint ping_interval_ms;
        public uint threads;
        public byte* tls_cert_pem;
        public byte* tls_key_pem;
        public NativeRoute* routes;
        public nuint route_count;
    }

    // One of trunkline_server_config.routes: its strings live as the server config's do.
    [CName("trunkline_route")]
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeRoute
    {
        public nuint struct_size;
        public byte* path;
        public byte* dialect;
        public byte* auth_token;
        public byte* auth;
    }

    // Input of trunkline_session_open_started: its strings and the custom parameters' arrays live
    // as the server config's do (NativeAllocations, for the call; the library copies them).
    [CName("trunkline_stream_start")]
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeStreamStart
    {
        public nuint struct_size;
        public byte* stream_id;
        public byte* call_id;
        public byte* account_id;
        public uint encoding;
        public uint sample_rate;
        public uint channels;
        public byte** custom_parameter_names;
        public byte** custom_parameter_values;
        public nuint custom_parameter_count;
    }

    // The output structs begin with struct_size too: the binding sets it to Marshal.SizeOf of the
    // struct as declared here before each call (so they are passed `ref`, never `out`), and the
    // library writes no further (see the header's VERSIONED OUTPUTS).
    [CName("trunkline_start_info")]
    [StructLayout(LayoutKind.Sequential)]
    internal struct NativeStartInfo
    {
        public nuint struct_size;
        public uint tracks;
        public AudioEncoding encoding;
        public uint sample_rate;
        public uint channels;
        public nuint custom_parameter_count;
    }

    // Blittable (no bool, a fixed buffer for the name): poll_event writes straight into it.
    [CName("trunkline_event")]
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct NativeEvent
    {
        public const int NameCapacity = 256; // TRUNKLINE_EVENT_NAME_CAPACITY
        public const int SegmentTagCapacity = 64; // TRUNKLINE_SEGMENT_TAG_CAPACITY

        public nuint struct_size;
        public EventKind kind;
        public ulong stream_ms;
        public ulong played_ms;
        public byte digit;
        public uint error;
        public fixed byte name[NameCapacity];
        public long duration_ms;
        public fixed byte segment[SegmentTagCapacity];
        public long segment_played_ms;
        public uint unheard_segments;
        public long confidence;
    }

    internal static unsafe class Native
    {
        public const string Lib = "trunkline";

        /// <summary>TRUNKLINE_MAX_NAME_BYTES: the longest mark name the C ABI carries.</summary>
        public const int MaxNameBytes = 255;

        // size_t conversions that compile both where nuint is a keyword and where it is UIntPtr.
        public static nuint N(int value)
        {
            if (value < 0) throw new ArgumentOutOfRangeException("value");
            return (nuint)(uint)value;
        }

        public static int I(nuint value)
        {
            return checked((int)(ulong)value);
        }

        /// <summary>sizeof a struct as the library sees it (its marshalled form): the struct_size
        /// a _default function is passed.</summary>
        public static nuint SizeOf(Type t)
        {
            return N(Marshal.SizeOf(t));
        }

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_config_default(out NativeEngineConfig @out, nuint struct_size);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_config_default(out NativeSessionConfig @out, nuint struct_size);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_new(ref NativeEngineConfig config, out EngineHandle @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_new_manual_clock(ref NativeEngineConfig config, out EngineHandle @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_advance_clock(EngineHandle engine, ulong us);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern void trunkline_engine_free(IntPtr engine);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_wakeup_fd(EngineHandle engine, out int out_fd);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_prioritised_workers(EngineHandle engine, out uint @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_wait(EngineHandle engine, long timeout_ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_wake(EngineHandle engine);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_clear_wakeup(EngineHandle engine);

        /// <summary>TRUNKLINE_METRICS_PROMETHEUS and TRUNKLINE_METRICS_OPENMETRICS: the formats of
        /// trunkline_engine_metrics.</summary>
        public const uint MetricsPrometheus = 0;
        public const uint MetricsOpenMetrics = 1;

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_engine_metrics(EngineHandle engine, uint format, byte* buf, nuint capacity, out nuint out_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr trunkline_protocol_error_message(uint code);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr trunkline_result_message(uint result);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_log_to_stderr(byte* filter);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_config_default(out NativeServerConfig @out, nuint struct_size);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_start(EngineHandle engine, ref NativeServerConfig config, out ServerHandle @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_local_port(ServerHandle server, out ushort out_port);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_accept(ServerHandle server, out SessionHandle @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern nuint trunkline_server_stats_count();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr trunkline_server_stats_name(nuint index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_stats(ServerHandle server, ulong* values, nuint capacity, out nuint out_count);

        // The outputs are one-byte C bools: passed as pointers to a local byte (IntPtr).
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_ready(ServerHandle server, IntPtr out_ready);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_drain(ServerHandle server, uint grace_ms, IntPtr out_all_ended);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_shutdown(ServerHandle server, uint grace_ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern void trunkline_server_free(IntPtr server);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_listen_audiosocket(ServerHandle server, byte* bind, byte** allowed_calls, nuint allowed_count, out ushort out_port);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_allow_audiosocket_call(ServerHandle server, byte* uuid);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_server_revoke_audiosocket_call(ServerHandle server, byte* uuid, IntPtr out_was_allowed);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_open(EngineHandle engine, ref NativeSessionConfig config, out SessionHandle @out);

        // Writes the whole struct: `ref`, sized by the binding's struct_size as the outputs are.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_stream_start_default(ref NativeStreamStart @out, nuint struct_size);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_open_started(EngineHandle engine, ref NativeSessionConfig config, ref NativeStreamStart start, out SessionHandle @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_push(SessionHandle session, byte* data, nuint len, uint kind);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_read_audio(SessionHandle session, short* @out, nuint capacity, out nuint out_samples);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_play(SessionHandle session, short* pcm, nuint samples, uint rate, out nuint out_taken);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_read_audio_bytes(SessionHandle session, byte* @out, nuint capacity, out nuint out_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_play_bytes(SessionHandle session, byte* data, nuint len, uint rate, out nuint out_taken);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_play_encoded(SessionHandle session, uint codec, byte* data, nuint len, uint rate, out nuint out_taken);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_end_encoded(SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_agent_format(SessionHandle session, out AgentFormat @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_mark(SessionHandle session, byte* name);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_interrupt(SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_begin_segment(SessionHandle session, byte* tag);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_unheard_segment(SessionHandle session, nuint index, byte* buf, nuint capacity, out nuint out_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_queued_ms(SessionHandle session, out ulong out_ms);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_end_stream(SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_outbound_len(SessionHandle session, out nuint out_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_next_outbound(SessionHandle session, byte* buf, nuint capacity, out nuint out_len, out MessageKind out_kind);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_poll_event(SessionHandle session, ref NativeEvent @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_start_info(SessionHandle session, ref NativeStartInfo @out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_start_string(SessionHandle session, uint field, byte* buf, nuint capacity, out nuint out_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_custom_parameter(SessionHandle session, nuint index, byte* key, nuint key_capacity, out nuint out_key_len, byte* value, nuint value_capacity, out nuint out_value_len);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern nuint trunkline_session_stats_count();

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr trunkline_session_stats_name(nuint index);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_stats(SessionHandle session, ulong* values, nuint capacity, out nuint out_count);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_session_close(SessionHandle session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern void trunkline_session_free(IntPtr session);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_vad_config_default(out NativeVadConfig @out, nuint struct_size);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_vad_new(ref NativeVadConfig config, uint sample_rate, out VadHandle @out);

        // The outputs are a float and a one-byte C bool: passed as pointers to locals (IntPtr), so
        // that nothing is marshalled per frame and the bool is exactly one byte.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_vad_process(VadHandle vad, short* pcm, nuint n_samples, IntPtr probability_out, IntPtr speaking_out);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_vad_reset(VadHandle vad);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern void trunkline_vad_free(IntPtr vad);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern IntPtr trunkline_version();

        // G.711 helpers.
        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_ulaw_decode(byte* input, nuint len, short* output, nuint output_capacity);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_ulaw_encode(short* input, nuint len, byte* output, nuint output_capacity);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_alaw_decode(byte* input, nuint len, short* output, nuint output_capacity);

        [DllImport(Lib, CallingConvention = CallingConvention.Cdecl, ExactSpelling = true)]
        public static extern ResultCode trunkline_alaw_encode(short* input, nuint len, byte* output, nuint output_capacity);

        /// <summary>A static NUL-terminated UTF-8 string from the library (NULL → null).</summary>
        public static string StaticString(IntPtr p)
        {
            if (p == IntPtr.Zero) return null;
            byte* b = (byte*)p;
            int n = 0;
            while (b[n] != 0) n++;
            return Utf8(b, n);
        }

        public static string Utf8(byte* b, int n)
        {
            return n == 0 ? "" : System.Text.Encoding.UTF8.GetString(b, n);
        }

        public static string ResultMessage(ResultCode code)
        {
            return StaticString(trunkline_result_message((uint)code));
        }

        /// <summary>Throws a TrunklineException unless <paramref name="r"/> is OK.</summary>
        public static void Check(ResultCode r, string function)
        {
            if (r != ResultCode.Ok) throw new TrunklineException(r, function);
        }
    }
}
