#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr; // see Native.cs
#endif

using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline
{
    /// <summary>Engine settings. Unset (null) properties keep the library's defaults
    /// (trunkline_engine_config_default: one worker per core).</summary>
    public sealed class EngineOptions
    {
        /// <summary>Worker threads; 0 = inline mode (your calls do the processing).</summary>
        public int? Workers { get; set; }
        /// <summary>Most sessions open at once.</summary>
        public int? MaxSessions { get; set; }
        /// <summary>Longest a worker sleeps while it has sessions, ms.</summary>
        public int? TickMs { get; set; }
        /// <summary>Nice value the worker threads ask for, -20..19 (library default -10); 0 leaves
        /// them alone. Without CAP_SYS_NICE it may be refused, which is not an error: see
        /// <see cref="Engine.PrioritisedWorkers"/>.</summary>
        public int? WorkerNice { get; set; }
        /// <summary>An inline engine (<see cref="Workers"/> = 0, else TrunklineException
        /// InvalidArgument) on a clock of its own, for deterministic tests and simulations: its
        /// time starts at 0 and moves only with <see cref="Engine.Advance"/>, so pacing, reorder
        /// waits, played positions and holds follow the time set, never the time your calls
        /// take.</summary>
        public bool ManualClock { get; set; }

        internal NativeEngineConfig ToNative()
        {
            NativeEngineConfig c;
            Native.Check(Native.trunkline_engine_config_default(out c, Native.SizeOf(typeof(NativeEngineConfig))), "trunkline_engine_config_default");
            if (Workers.HasValue)
            {
                c.workers = checked((uint)Workers.Value);
                c.workers_per_core = false;
            }
            if (MaxSessions.HasValue) c.max_sessions = checked((uint)MaxSessions.Value);
            if (TickMs.HasValue) c.tick_ms = checked((uint)TickMs.Value);
            if (WorkerNice.HasValue) c.worker_nice = WorkerNice.Value;
            return c;
        }
    }

    /// <summary>Session settings (docs/settings.md has meanings and defaults). Unset
    /// (null) properties keep the library's defaults (trunkline_session_config_default).</summary>
    public sealed class SessionOptions
    {
        /// <summary>Rate of the caller PCM you read: 8000, 16000, 24000 or 48000.</summary>
        public int? AgentRate { get; set; }
        /// <summary>The agent's audio format, both ways: "pcm" (default), or 8 kHz G.711 "ulaw" /
        /// "alaw" (with AgentRate 8000): Session.ReadAudioBytes returns the codes and
        /// Session.PlayBytes takes them, passed through untouched when the carrier speaks the same
        /// law. ArgumentException for another name.</summary>
        public string AgentFormat { get; set; }
        /// <summary>The rate you usually play at.</summary>
        public int? PlayRate { get; set; }
        /// <summary>Speech detection's strictness, 0 (calls most audio speech) ..3 (the spectral classifier's thresholds).</summary>
        public int? VadAggressiveness { get; set; }
        /// <summary>Voiced audio needed to confirm speech, ms.</summary>
        public int? VadMinSpeechMs { get; set; }
        /// <summary>Non-speech needed to end speech, ms.</summary>
        public int? VadHangoverMs { get; set; }
        /// <summary>Whether caller speech interrupts agent audio.</summary>
        public bool? BargeInEnabled { get; set; }
        /// <summary>Voiced caller speech over agent audio needed to interrupt it (from its first voiced frame to its last, not from its onset), ms.</summary>
        public int? BargeInMinSpeechMs { get; set; }
        /// <summary>Most agent audio the carrier holds unplayed, ms (at least 40).</summary>
        public int? LeadMs { get; set; }
        /// <summary>Interval between hidden sync marks, ms of audio (0: off).</summary>
        public int? SyncMarkIntervalMs { get; set; }
        /// <summary>A pause in agent audio this long starts a new utterance, ms.</summary>
        public int? UtteranceGapMs { get; set; }
        /// <summary>Largest message accepted, bytes.</summary>
        public int? MaxMessageBytes { get; set; }
        /// <summary>Largest decoded media payload accepted, bytes.</summary>
        public int? MaxPayloadBytes { get; set; }
        /// <summary>How long a media gap is waited for before silence fills it, ms.</summary>
        public int? ReorderWindowMs { get; set; }
        /// <summary>Larger timestamp gaps re-anchor the stream, ms.</summary>
        public int? MaxGapFillMs { get; set; }
        /// <summary>Host → engine message ring, bytes.</summary>
        public int? InboundRingBytes { get; set; }
        /// <summary>Host → engine agent-audio ring, bytes.</summary>
        public int? PlayRingBytes { get; set; }
        /// <summary>Agent audio held for pacing, ms (at least 260).</summary>
        public int? OutboundBufferMs { get; set; }
        /// <summary>Caller PCM waiting to be read, ms.</summary>
        public int? AgentRingMs { get; set; }
        /// <summary>Engine → host outbound message ring, bytes.</summary>
        public int? OutboundRingBytes { get; set; }
        /// <summary>Events waiting to be polled.</summary>
        public int? EventCapacity { get; set; }
        /// <summary>Longest mark name, bytes (at most 255).</summary>
        public int? MaxMarkNameBytes { get; set; }
        /// <summary>Most marks outstanding at once.</summary>
        public int? MaxPendingMarks { get; set; }
        /// <summary>How long after your last ReadAudio (event poll) you count as reading, ms: while
        /// you do, a full caller PCM ring (event queue) holds the carrier's messages back (Push then
        /// reports Full) instead of dropping; 0 drops at once.</summary>
        public int? ReadHoldMs { get; set; }
        /// <summary>The carrier's protocol, by name: "twilio" (the default; also null or ""). A
        /// name the library does not speak makes opening the session throw
        /// TrunklineException(InvalidArgument).</summary>
        public string Dialect { get; set; }
        /// <summary>A file the call is recorded to, in stereo (the caller on the first channel, the
        /// agent as the caller heard it on the second), closed when the session is: ".wav" (16-bit
        /// PCM at the rate the caller's audio is delivered at: the carrier's, 16 kHz for G.722, the
        /// decoding rate for Opus), ".opus" or ".ogg" (Ogg Opus). Null or "": none. A file that cannot be
        /// created or another extension makes opening the session throw
        /// TrunklineException(Record).</summary>
        public string RecordPath { get; set; }
        /// <summary>While caller speech over the agent is not yet long enough to barge in, the agent
        /// audio not yet sent is turned down this many dB, and back up if the speech stops short
        /// (default 18; 0: off; above 255 makes opening the session throw
        /// TrunklineException(InvalidArgument)).</summary>
        public int? BargeInDuckDb { get; set; }
        /// <summary>On a noisy line, speech over the agent that stopped short of BargeInMinSpeechMs
        /// and speech voiced again within this long of its last voiced frame count as one utterance,
        /// so an interruption whose words the noise splits still barges in; ms (default 800; 0:
        /// off). Speech heard clearly is never joined. Above 2000 makes opening the session throw
        /// TrunklineException(InvalidArgument).</summary>
        public int? BargeInRejoinWithinMs { get; set; }
        /// <summary>Echo-aware speech detection, for lines that echo the agent's voice back:
        /// caller audio the agent's echo explains is not taken for speech (default false).</summary>
        public bool? VadEchoAware { get; set; }
        /// <summary>Deliver the caller's audio (ReadAudio) with the agent's own voice, echoed back on
        /// the line, removed by an adaptive echo canceller (default false). Needs VadEchoAware =
        /// true, else opening the session throws TrunklineException(InvalidArgument). The canceller
        /// works at 8 kHz: from a wider carrier stream the agent then gets the band up to 3.9 kHz.
        /// Speech detection hears the audio as received.</summary>
        public bool? EchoReduction { get; set; }
        /// <summary>Report EndOfTurn events: early when the speech ended like a finished phrase,
        /// else with SpeechStopped (default false).</summary>
        public bool? VadEndOfTurnEnabled { get; set; }
        /// <summary>Silence after a finished-sounding phrase before its EndOfTurn, ms (default 140;
        /// capped by the hangover).</summary>
        public int? VadEndOfTurnMinSilenceMs { get; set; }
        /// <summary>Confidence, percent 1..99 (default 35), the prosody needs for an early EndOfTurn;
        /// out of range makes opening the session throw TrunklineException(InvalidArgument).</summary>
        public int? VadEndOfTurnThreshold { get; set; }
        /// <summary>Silence after an unfinished-sounding phrase before its EndOfTurn, ms (whole 20 ms
        /// frames, rounded up); 0 (default): the hangover, the EndOfTurn coming with SpeechStopped.
        /// Longer than the hangover, it comes after SpeechStopped, so a shorter pause inside a
        /// sentence does not end the turn. Above 10000 makes opening the session throw
        /// TrunklineException(InvalidArgument).</summary>
        public int? VadEndOfTurnMaxSilenceMs { get; set; }

        static uint U(int? v, uint dflt) { return v.HasValue ? checked((uint)v.Value) : dflt; }

        static nuint Z(int? v, nuint dflt) { return v.HasValue ? Native.N(v.Value) : dflt; }

        /// <summary>The format named <paramref name="name"/> (also the names speech services use).</summary>
        internal static Trunkline.AgentFormat ParseAgentFormat(string name)
        {
            switch (name.ToLowerInvariant())
            {
                case "pcm": return Trunkline.AgentFormat.Pcm;
                case "ulaw": case "mulaw": case "g711_ulaw": case "pcmu": return Trunkline.AgentFormat.Mulaw;
                case "alaw": case "g711_alaw": case "pcma": return Trunkline.AgentFormat.Alaw;
                default: throw new ArgumentException("unknown AgentFormat \"" + name + "\": pcm, ulaw or alaw", "AgentFormat");
            }
        }

        /// <summary>The native config; its strings are allocated in <paramref name="memory"/>, which
        /// must outlive the call it is passed to.</summary>
        internal unsafe NativeSessionConfig ToNative(NativeAllocations memory)
        {
            NativeSessionConfig c;
            Native.Check(Native.trunkline_session_config_default(out c, Native.SizeOf(typeof(NativeSessionConfig))), "trunkline_session_config_default");
            c.agent_rate = U(AgentRate, c.agent_rate);
            if (AgentFormat != null) c.agent_format = (uint)ParseAgentFormat(AgentFormat);
            c.play_rate = U(PlayRate, c.play_rate);
            c.vad_aggressiveness = U(VadAggressiveness, c.vad_aggressiveness);
            c.vad_min_speech_ms = U(VadMinSpeechMs, c.vad_min_speech_ms);
            c.vad_hangover_ms = U(VadHangoverMs, c.vad_hangover_ms);
            if (BargeInEnabled.HasValue) c.barge_in_enabled = BargeInEnabled.Value;
            c.barge_in_min_speech_ms = U(BargeInMinSpeechMs, c.barge_in_min_speech_ms);
            c.lead_ms = U(LeadMs, c.lead_ms);
            c.sync_mark_interval_ms = U(SyncMarkIntervalMs, c.sync_mark_interval_ms);
            c.utterance_gap_ms = U(UtteranceGapMs, c.utterance_gap_ms);
            c.max_message_bytes = Z(MaxMessageBytes, c.max_message_bytes);
            c.max_payload_bytes = Z(MaxPayloadBytes, c.max_payload_bytes);
            c.reorder_window_ms = U(ReorderWindowMs, c.reorder_window_ms);
            c.max_gap_fill_ms = U(MaxGapFillMs, c.max_gap_fill_ms);
            c.inbound_ring_bytes = Z(InboundRingBytes, c.inbound_ring_bytes);
            c.play_ring_bytes = Z(PlayRingBytes, c.play_ring_bytes);
            c.outbound_buffer_ms = U(OutboundBufferMs, c.outbound_buffer_ms);
            c.agent_ring_ms = U(AgentRingMs, c.agent_ring_ms);
            c.outbound_ring_bytes = Z(OutboundRingBytes, c.outbound_ring_bytes);
            c.event_capacity = Z(EventCapacity, c.event_capacity);
            c.max_mark_name_bytes = Z(MaxMarkNameBytes, c.max_mark_name_bytes);
            c.max_pending_marks = Z(MaxPendingMarks, c.max_pending_marks);
            c.read_hold_ms = U(ReadHoldMs, c.read_hold_ms);
            if (Dialect != null) c.dialect = memory.Utf8Z(Dialect, "Dialect");
            if (RecordPath != null) c.record_path = memory.Utf8Z(RecordPath, "RecordPath");
            if (VadEchoAware.HasValue) c.vad_echo_aware = VadEchoAware.Value;
            if (VadEndOfTurnEnabled.HasValue) c.vad_end_of_turn_enabled = VadEndOfTurnEnabled.Value;
            c.vad_end_of_turn_min_silence_ms = U(VadEndOfTurnMinSilenceMs, c.vad_end_of_turn_min_silence_ms);
            c.vad_end_of_turn_threshold = U(VadEndOfTurnThreshold, c.vad_end_of_turn_threshold);
            c.barge_in_duck_db = U(BargeInDuckDb, c.barge_in_duck_db);
            c.vad_end_of_turn_max_silence_ms = U(VadEndOfTurnMaxSilenceMs, c.vad_end_of_turn_max_silence_ms);
            c.barge_in_rejoin_within_ms = U(BargeInRejoinWithinMs, c.barge_in_rejoin_within_ms);
            if (EchoReduction.HasValue) c.echo_reduction = EchoReduction.Value;
            return c;
        }
    }

    /// <summary>What a host that already read the carrier's <c>start</c> message (its framework
    /// parsed it to route the call) learned from it, for Engine.OpenSessionStarted. Unset (null)
    /// properties keep the library's defaults (trunkline_stream_start_default): empty ids, µ-law
    /// at 8000 Hz, one channel, no custom parameters.</summary>
    public sealed class StreamStart
    {
        /// <summary>The carrier's stream identifier (Twilio streamSid): echoed in what goes back
        /// to it, so it must be the carrier's.</summary>
        public string StreamId { get; set; }
        /// <summary>The carrier's call identifier (Twilio callSid).</summary>
        public string CallId { get; set; }
        /// <summary>The carrier's account identifier (Twilio accountSid).</summary>
        public string AccountId { get; set; }
        /// <summary>Encoding of the carrier's audio (default Mulaw).</summary>
        public AudioEncoding? Encoding { get; set; }
        /// <summary>Sample rate of the carrier's audio, Hz (default 8000).</summary>
        public int? SampleRate { get; set; }
        /// <summary>Channels of the carrier's audio (default 1).</summary>
        public int? Channels { get; set; }
        /// <summary>The call's custom parameters, in order (a Dictionary will do).</summary>
        public IEnumerable<KeyValuePair<string, string>> CustomParameters { get; set; }

        /// <summary>The native struct; its strings are allocated in <paramref name="memory"/>,
        /// which must outlive the call it is passed to.</summary>
        internal unsafe NativeStreamStart ToNative(NativeAllocations memory)
        {
            var c = new NativeStreamStart { struct_size = Native.SizeOf(typeof(NativeStreamStart)) };
            Native.Check(Native.trunkline_stream_start_default(ref c, c.struct_size), "trunkline_stream_start_default");
            if (StreamId != null) c.stream_id = memory.Utf8Z(StreamId, "StreamId");
            if (CallId != null) c.call_id = memory.Utf8Z(CallId, "CallId");
            if (AccountId != null) c.account_id = memory.Utf8Z(AccountId, "AccountId");
            if (Encoding.HasValue) c.encoding = (uint)Encoding.Value;
            if (SampleRate.HasValue) c.sample_rate = checked((uint)SampleRate.Value);
            if (Channels.HasValue) c.channels = checked((uint)Channels.Value);
            if (CustomParameters != null)
            {
                var ps = CustomParameters.ToList();
                c.custom_parameter_names = memory.Utf8ZArray(ps.Select(kv => kv.Key).ToList(), "CustomParameters");
                c.custom_parameter_values = memory.Utf8ZArray(ps.Select(kv => kv.Value).ToList(), "CustomParameters");
                c.custom_parameter_count = Native.N(ps.Count);
            }
            return c;
        }
    }

    /// <summary>Offload server settings. Unset (null) properties keep the library's defaults
    /// (trunkline_server_config_default: bind 127.0.0.1:0, any path, no signature check).</summary>
    public sealed class ServerOptions
    {
        /// <summary>Address to listen on, e.g. "0.0.0.0:8080" (default "127.0.0.1:0": any free port).</summary>
        public string Bind { get; set; }
        /// <summary>The one request path served, e.g. "/media" (null: any path; others get 404).</summary>
        public string Path { get; set; }
        /// <summary>The account's auth token: when set, the carrier's request authentication is required and checked (Twilio: X-Twilio-Signature; 403 else).</summary>
        public string AuthToken { get; set; }
        /// <summary>Public URL base Twilio connects to (e.g. "wss://bot.example.com"), for the
        /// signature behind a proxy (null: rebuilt from the request).</summary>
        public string PublicUrl { get; set; }
        /// <summary>Settings of every session (call) the server opens (null: the defaults).</summary>
        public SessionOptions Session { get; set; }
        /// <summary>Most concurrent calls; more are refused with 503.</summary>
        public int? MaxSessions { get; set; }
        /// <summary>Largest WebSocket message accepted, bytes: 1 to 16 MiB.</summary>
        public int? MaxMessageBytes { get; set; }
        /// <summary>Time allowed for the WebSocket handshake.</summary>
        public TimeSpan? HandshakeTimeout { get; set; }
        /// <summary>A connection that sends nothing for this long, or has not started its stream this long after connecting, is closed.</summary>
        public TimeSpan? IdleTimeout { get; set; }
        /// <summary>Longest one send to the carrier may take (must be positive): a carrier that
        /// stops reading is closed after it (counted in send_timeouts).</summary>
        public TimeSpan? SendTimeout { get; set; }
        /// <summary>Interval of pings to the carrier (TimeSpan.Zero: none).</summary>
        public TimeSpan? PingInterval { get; set; }
        /// <summary>Network threads.</summary>
        public int? Threads { get; set; }
        /// <summary>TLS certificate chain (PEM file path): the server takes wss:// (and https://
        /// for its health checks and metrics) only; null: plain ws://. Set both or
        /// neither.</summary>
        public string TlsCertPem { get; set; }
        /// <summary>TLS private key (PEM file path).</summary>
        public string TlsKeyPem { get; set; }
        /// <summary>Request paths bound to dialects, for one server that takes several carriers
        /// (e.g. "/twilio" and "/telnyx"). With routes, a request is accepted only on a route's
        /// path and its call speaks the route's dialect (whatever Session.Dialect says); Path and
        /// AuthToken must then be null. TrunklineException(InvalidArgument) for an unknown dialect
        /// or auth, a path given twice or without its leading '/'.</summary>
        public IList<Route> Routes { get; set; }

        static uint Ms(TimeSpan? v, uint dflt, string name)
        {
            if (!v.HasValue) return dflt;
            if (v.Value < TimeSpan.Zero) throw new ArgumentOutOfRangeException(name, "must not be negative");
            // Rounded up, as Drain and Shutdown round their grace: a positive time under a
            // millisecond is not 0 (which would turn pings off, or be refused).
            return checked((uint)Math.Ceiling(v.Value.TotalMilliseconds));
        }

        /// <summary>The native config; its strings and session config are allocated in
        /// <paramref name="memory"/>, which must outlive the start call.</summary>
        internal unsafe NativeServerConfig ToNative(NativeAllocations memory)
        {
            NativeServerConfig c;
            Native.Check(Native.trunkline_server_config_default(out c, Native.SizeOf(typeof(NativeServerConfig))), "trunkline_server_config_default");
            if (Bind != null) c.bind = memory.Utf8Z(Bind, "Bind");
            c.path = memory.Utf8Z(Path, "Path");
            c.auth_token = memory.Utf8Z(AuthToken, "AuthToken");
            c.public_url = memory.Utf8Z(PublicUrl, "PublicUrl");
            c.tls_cert_pem = memory.Utf8Z(TlsCertPem, "TlsCertPem");
            c.tls_key_pem = memory.Utf8Z(TlsKeyPem, "TlsKeyPem");
            // A session config of its own, pointed to (NULL: the defaults).
            if (Session != null) c.session = memory.SessionConfig(Session.ToNative(memory));
            if (MaxSessions.HasValue) c.max_sessions = checked((uint)MaxSessions.Value);
            if (MaxMessageBytes.HasValue) c.max_message_bytes = Native.N(MaxMessageBytes.Value);
            c.handshake_timeout_ms = Ms(HandshakeTimeout, c.handshake_timeout_ms, "HandshakeTimeout");
            c.idle_timeout_ms = Ms(IdleTimeout, c.idle_timeout_ms, "IdleTimeout");
            c.send_timeout_ms = Ms(SendTimeout, c.send_timeout_ms, "SendTimeout");
            c.ping_interval_ms = Ms(PingInterval, c.ping_interval_ms, "PingInterval");
            if (Threads.HasValue) c.threads = checked((uint)Threads.Value);
            if (Routes != null && Routes.Count > 0)
            {
                var routes = new NativeRoute[Routes.Count];
                for (int i = 0; i < routes.Length; i++)
                {
                    var r = Routes[i];
                    if (r == null) throw new ArgumentException("Routes cannot hold null", "Routes");
                    routes[i].struct_size = Native.SizeOf(typeof(NativeRoute));
                    routes[i].path = memory.Utf8Z(r.Path, "Route.Path");
                    routes[i].dialect = memory.Utf8Z(r.Dialect, "Route.Dialect");
                    routes[i].auth_token = memory.Utf8Z(r.AuthToken, "Route.AuthToken");
                    routes[i].auth = memory.Utf8Z(r.Auth, "Route.Auth");
                }
                c.routes = memory.Routes(routes);
                c.route_count = Native.N(routes.Length);
            }
            return c;
        }
    }

    /// <summary>A request path bound to a dialect (<see cref="ServerOptions.Routes"/>).</summary>
    public sealed class Route
    {
        /// <summary>The request path, e.g. "/telnyx".</summary>
        public string Path { get; set; }
        /// <summary>The dialect of the calls on this path, e.g. "telnyx".</summary>
        public string Dialect { get; set; }
        /// <summary>The carrier account's secret: when set, requests on this path must be
        /// authenticated with it (403 else).</summary>
        public string AuthToken { get; set; }
        /// <summary>How requests authenticate when not the carrier's default way: "vonage_jwt"
        /// (Vonage's signed JWT) needs AuthToken. Null: the default.</summary>
        public string Auth { get; set; }
    }

    /// <summary>Settings of a standalone <see cref="Vad"/>: the session's VAD settings, by the same
    /// names. Unset (null) properties keep the library's defaults (trunkline_vad_config_default).</summary>
    public sealed class VadOptions
    {
        /// <summary>Aggressiveness 0..3 (default 2).</summary>
        public int? VadAggressiveness { get; set; }
        /// <summary>Voiced speech needed before <see cref="Vad.Speaking"/> turns on, ms (default 120).</summary>
        public int? VadMinSpeechMs { get; set; }
        /// <summary>Non-speech needed before <see cref="Vad.Speaking"/> turns off, ms (default 400).</summary>
        public int? VadHangoverMs { get; set; }

        static uint U(int? v, uint dflt) { return v.HasValue ? checked((uint)v.Value) : dflt; }

        internal NativeVadConfig ToNative()
        {
            NativeVadConfig c;
            Native.Check(Native.trunkline_vad_config_default(out c, Native.SizeOf(typeof(NativeVadConfig))), "trunkline_vad_config_default");
            c.vad_aggressiveness = U(VadAggressiveness, c.vad_aggressiveness);
            c.vad_min_speech_ms = U(VadMinSpeechMs, c.vad_min_speech_ms);
            c.vad_hangover_ms = U(VadHangoverMs, c.vad_hangover_ms);
            return c;
        }
    }
}
