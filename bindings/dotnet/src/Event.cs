using System.Collections.Generic;
using System.Text;

namespace Trunkline
{
    /// <summary>One event of a session. Fields that do not apply to its kind are 0, '\0', "" or null.</summary>
    public sealed class Event
    {
        internal Event(EventKind kind, ulong streamMs, ulong playedMs, char digit, string name, uint errorCode)
        {
            Kind = kind;
            StreamMs = streamMs;
            PlayedMs = playedMs;
            Digit = digit;
            Name = name;
            ErrorCode = errorCode;
            UnheardSegments = NoSegments;
        }

        static readonly IReadOnlyList<string> NoSegments = new List<string>().AsReadOnly();

        /// <summary>What happened.</summary>
        public EventKind Kind { get; private set; }
        /// <summary>Stream time, ms (speech, barge-in, DTMF).</summary>
        public ulong StreamMs { get; private set; }
        /// <summary>Played position in the current utterance, ms (barge-in, interrupt, mark played).</summary>
        public ulong PlayedMs { get; private set; }
        /// <summary>The DTMF digit ('0'-'9', '*', '#', 'A'-'D').</summary>
        public char Digit { get; private set; }
        /// <summary>DTMF: how long the key was held, ms, on carriers that say (Vonage, Exotel,
        /// SignalWire, jambonz); null on the others and for other events.</summary>
        public long? DurationMs { get; internal set; }
        /// <summary>EndOfTurn: the silence waited after the speech that ended at StreamMs, ms; null
        /// for other events.</summary>
        public long? SilenceMs { get; internal set; }
        /// <summary>EndOfTurn: how finished the phrase sounded, 0..100; null for other events.</summary>
        public int? Confidence { get; internal set; }
        /// <summary>Mark name, call id (started) or the offending field (protocol error).</summary>
        public string Name { get; private set; }
        /// <summary>Protocol error code (1..).</summary>
        public uint ErrorCode { get; private set; }
        /// <summary>Protocol error description (trunkline_protocol_error_message).</summary>
        public string ErrorMessage { get; internal set; }

        /// <summary>BargeIn, Interrupted: the tag of the segment the caller was hearing (see
        /// <see cref="Session.BeginSegment"/>), or, when nothing queued had been heard yet, of the
        /// first one queued; null when no segment was queued, and for other events.</summary>
        public string Segment { get; internal set; }
        /// <summary>BargeIn, Interrupted: how much of <see cref="Segment"/> the caller heard, ms
        /// (0: under a millisecond); null when nothing of it was heard yet, and for other events.</summary>
        public long? SegmentPlayedMs { get; internal set; }
        /// <summary>BargeIn, Interrupted: the tags of the later segments the caller heard nothing
        /// of, in the order begun; empty for other events.</summary>
        public IReadOnlyList<string> UnheardSegments { get; internal set; }

        /// <summary>Started: the carrier's call identifier (Twilio callSid); "" when the carrier
        /// sends none.</summary>
        public string CallId { get; internal set; }
        /// <summary>Started: the carrier's stream identifier (Twilio streamSid).</summary>
        public string StreamId { get; internal set; }
        /// <summary>Started: the carrier's account identifier (Twilio accountSid); "" when the
        /// carrier sends none.</summary>
        public string AccountId { get; internal set; }
        /// <summary>Started: the custom parameters, in the order the carrier sent them.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> CustomParameters { get; internal set; }
        /// <summary>Started: the carrier's audio encoding.</summary>
        public AudioEncoding Encoding { get; internal set; }
        /// <summary>Started: the carrier's sample rate, Hz.</summary>
        public uint SampleRate { get; internal set; }
        /// <summary>Started: the carrier's channels.</summary>
        public uint Channels { get; internal set; }
        /// <summary>Started: bit 0 inbound track, bit 1 outbound track.</summary>
        public uint Tracks { get; internal set; }

        /// <inheritdoc/>
        public override string ToString()
        {
            var sb = new StringBuilder(Kind.ToString());
            switch (Kind)
            {
                case EventKind.Started:
                    sb.Append(" call=").Append(CallId).Append(" stream=").Append(StreamId)
                        .Append(" format=").Append(Encoding.ToString().ToLowerInvariant()).Append('/').Append(SampleRate)
                        .Append('/').Append(Channels);
                    if (CustomParameters != null)
                        foreach (var kv in CustomParameters) sb.Append(' ').Append(kv.Key).Append('=').Append(kv.Value);
                    break;
                case EventKind.SpeechStarted:
                case EventKind.SpeechStopped:
                    sb.Append(" stream_ms=").Append(StreamMs);
                    break;
                case EventKind.BargeIn:
                    sb.Append(" stream_ms=").Append(StreamMs).Append(" played_ms=").Append(PlayedMs);
                    AppendSegments(sb);
                    break;
                case EventKind.Interrupted:
                    sb.Append(" played_ms=").Append(PlayedMs);
                    AppendSegments(sb);
                    break;
                case EventKind.MarkPlayed:
                    sb.Append(" name=").Append(Name).Append(" played_ms=").Append(PlayedMs);
                    break;
                case EventKind.MarkCleared:
                    sb.Append(" name=").Append(Name);
                    break;
                case EventKind.Dtmf:
                    sb.Append(" digit=").Append(Digit).Append(" stream_ms=").Append(StreamMs);
                    if (DurationMs.HasValue) sb.Append(" duration_ms=").Append(DurationMs.Value);
                    break;
                case EventKind.EndOfTurn:
                    sb.Append(" stream_ms=").Append(StreamMs).Append(" silence_ms=").Append(SilenceMs).Append(" confidence=").Append(Confidence);
                    break;
                case EventKind.ProtocolError:
                    sb.Append(" code=").Append(ErrorCode).Append(" (").Append(ErrorMessage).Append(')');
                    if (Name.Length > 0) sb.Append(" field=").Append(Name);
                    break;
            }
            return sb.ToString();
        }

        void AppendSegments(StringBuilder sb)
        {
            if (Segment == null) return;
            sb.Append(" segment=").Append(Segment);
            if (SegmentPlayedMs.HasValue) sb.Append(" segment_played_ms=").Append(SegmentPlayedMs.Value);
            if (UnheardSegments.Count > 0) sb.Append(" unheard=").Append(string.Join(",", UnheardSegments));
        }
    }
}
