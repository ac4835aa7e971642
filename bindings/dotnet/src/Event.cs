using System.Collections.Generic;
using System.Text;

namespace Trunkline
{
    /// <summary>How the carrier encodes its audio (from the <c>start</c> message).</summary>
    public enum MediaEncoding
    {
        /// <summary>G.711 µ-law.</summary>
        Mulaw = 0,
        /// <summary>G.711 A-law.</summary>
        Alaw = 1,
        /// <summary>16-bit linear PCM.</summary>
        L16 = 2,
    }

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
        }

        /// <summary>What happened.</summary>
        public EventKind Kind { get; private set; }
        /// <summary>Stream time, ms (speech, barge-in, DTMF).</summary>
        public ulong StreamMs { get; private set; }
        /// <summary>Played position in the current utterance, ms (barge-in, interrupt, mark played).</summary>
        public ulong PlayedMs { get; private set; }
        /// <summary>The DTMF digit ('0'-'9', '*', '#', 'A'-'D').</summary>
        public char Digit { get; private set; }
        /// <summary>Mark name, callSid (started) or the offending field (protocol error).</summary>
        public string Name { get; private set; }
        /// <summary>Protocol error code (1..).</summary>
        public uint ErrorCode { get; private set; }
        /// <summary>Protocol error description (trunkline_protocol_error_message).</summary>
        public string ErrorMessage { get; internal set; }

        /// <summary>Started: the call's SID.</summary>
        public string CallSid { get; internal set; }
        /// <summary>Started: the stream's SID (every outbound message names it).</summary>
        public string StreamSid { get; internal set; }
        /// <summary>Started: the account's SID.</summary>
        public string AccountSid { get; internal set; }
        /// <summary>Started: the custom parameters, in the order the carrier sent them.</summary>
        public IReadOnlyList<KeyValuePair<string, string>> CustomParameters { get; internal set; }
        /// <summary>Started: the carrier's audio encoding.</summary>
        public MediaEncoding Encoding { get; internal set; }
        /// <summary>Started: the carrier's sample rate, Hz.</summary>
        public uint SampleRate { get; internal set; }
        /// <summary>Started: channels.</summary>
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
                    sb.Append(" call=").Append(CallSid).Append(" stream=").Append(StreamSid);
                    if (CustomParameters != null)
                        foreach (var kv in CustomParameters) sb.Append(' ').Append(kv.Key).Append('=').Append(kv.Value);
                    break;
                case EventKind.SpeechStarted:
                case EventKind.SpeechStopped:
                    sb.Append(" stream_ms=").Append(StreamMs);
                    break;
                case EventKind.BargeIn:
                    sb.Append(" stream_ms=").Append(StreamMs).Append(" played_ms=").Append(PlayedMs);
                    break;
                case EventKind.Interrupted:
                    sb.Append(" played_ms=").Append(PlayedMs);
                    break;
                case EventKind.MarkPlayed:
                    sb.Append(" name=").Append(Name).Append(" played_ms=").Append(PlayedMs);
                    break;
                case EventKind.MarkCleared:
                    sb.Append(" name=").Append(Name);
                    break;
                case EventKind.Dtmf:
                    sb.Append(" digit=").Append(Digit).Append(" stream_ms=").Append(StreamMs);
                    break;
                case EventKind.ProtocolError:
                    sb.Append(" code=").Append(ErrorCode).Append(" (").Append(ErrorMessage).Append(')');
                    if (Name.Length > 0) sb.Append(" field=").Append(Name);
                    break;
            }
            return sb.ToString();
        }
    }
}
