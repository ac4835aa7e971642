#if !NET5_0_OR_GREATER
using nuint = System.UIntPtr; // see Native.cs
#endif

using System;
using System.Collections.Generic;

namespace Trunkline
{
    /// <summary>Library-wide facts: version, result and protocol-error texts, counter names.</summary>
    public static class Library
    {
        /// <summary>The version this binding was written against (TRUNKLINE_VERSION).</summary>
        public const string HeaderVersion = "0.1.0";

        static string[] statNames;
        static string[] serverStatNames;

        /// <summary>The loaded library's version (trunkline_version), e.g. "0.1.0".</summary>
        public static string Version { get { return Native.StaticString(Native.trunkline_version()); } }

        /// <summary>trunkline_result_message's text for <paramref name="code"/>.</summary>
        public static string ResultMessage(ResultCode code) { return Native.ResultMessage(code); }

        /// <summary>trunkline_protocol_error_message's text for <paramref name="code"/>.</summary>
        public static string ProtocolErrorMessage(uint code)
        {
            return Native.StaticString(Native.trunkline_protocol_error_message(code));
        }

        /// <summary>The session counters' names, in trunkline_session_stats_name order.</summary>
        public static IReadOnlyList<string> StatNames
        {
            get
            {
                var names = statNames;
                if (names == null)
                {
                    int n = Native.I(Native.trunkline_session_stats_count());
                    names = new string[n];
                    for (int i = 0; i < n; i++) names[i] = Native.StaticString(Native.trunkline_session_stats_name(Native.N(i)));
                    statNames = names;
                }
                return names;
            }
        }

        /// <summary>The offload server's counter names, in trunkline_server_stats_name order.</summary>
        public static IReadOnlyList<string> ServerStatNames
        {
            get
            {
                var names = serverStatNames;
                if (names == null)
                {
                    int n = Native.I(Native.trunkline_server_stats_count());
                    names = new string[n];
                    for (int i = 0; i < n; i++) names[i] = Native.StaticString(Native.trunkline_server_stats_name(Native.N(i)));
                    serverStatNames = names;
                }
                return names;
            }
        }
    }

    /// <summary>Stateless G.711 codecs (trunkline_ulaw_*, trunkline_alaw_*).</summary>
    public static unsafe class G711
    {
        /// <summary>Decodes µ-law bytes into s16 samples.</summary>
        public static short[] UlawDecode(byte[] input) { return Decode(input, true); }

        /// <summary>Encodes s16 samples into µ-law bytes.</summary>
        public static byte[] UlawEncode(short[] input) { return Encode(input, true); }

        /// <summary>Decodes A-law bytes into s16 samples.</summary>
        public static short[] AlawDecode(byte[] input) { return Decode(input, false); }

        /// <summary>Encodes s16 samples into A-law bytes.</summary>
        public static byte[] AlawEncode(short[] input) { return Encode(input, false); }

        static short[] Decode(byte[] input, bool ulaw)
        {
            if (input == null) throw new ArgumentNullException("input");
            var output = new short[input.Length];
            if (input.Length == 0) return output;
            fixed (byte* i = input)
            fixed (short* o = output)
            {
                var n = Native.N(input.Length);
                if (ulaw) Native.Check(Native.trunkline_ulaw_decode(i, n, o, n), "trunkline_ulaw_decode");
                else Native.Check(Native.trunkline_alaw_decode(i, n, o, n), "trunkline_alaw_decode");
            }
            return output;
        }

        static byte[] Encode(short[] input, bool ulaw)
        {
            if (input == null) throw new ArgumentNullException("input");
            var output = new byte[input.Length];
            if (input.Length == 0) return output;
            fixed (short* i = input)
            fixed (byte* o = output)
            {
                var n = Native.N(input.Length);
                if (ulaw) Native.Check(Native.trunkline_ulaw_encode(i, n, o, n), "trunkline_ulaw_encode");
                else Native.Check(Native.trunkline_alaw_encode(i, n, o, n), "trunkline_alaw_encode");
            }
            return output;
        }
    }
}
