// Twilio Media Streams messages for the tests (the same shapes as engine/tests/common), and a
// minimal reader for what the engine sends back.
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.RegularExpressions;

namespace Trunkline.Tests
{
    public static class Twilio
    {
        public const string StreamSid = "MZ18ad3ab5a668481ce02b83e7395059f0";
        public const string CallSid = "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f";
        public const string AccountSid = "AC0123456789abcdef0123456789abcdef";

        public static string Connected()
        {
            return "{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}";
        }

        public static string Start()
        {
            return "{\"event\":\"start\",\"sequenceNumber\":\"1\",\"start\":{\"accountSid\":\"" + AccountSid + "\",\"streamSid\":\"" + StreamSid
                + "\",\"callSid\":\"" + CallSid + "\",\"tracks\":[\"inbound\"],\"mediaFormat\":{\"encoding\":\"audio/x-mulaw\",\"sampleRate\":8000,\"channels\":1},"
                + "\"customParameters\":{\"caller\":\"+15550100\",\"lang\":\"en\"}},\"streamSid\":\"" + StreamSid + "\"}";
        }

        public static string Media(long seq, long chunk, long timestampMs, byte[] payload, int offset, int count)
        {
            return "{\"event\":\"media\",\"sequenceNumber\":\"" + seq + "\",\"media\":{\"track\":\"inbound\",\"chunk\":\"" + chunk
                + "\",\"timestamp\":\"" + timestampMs + "\",\"payload\":\"" + Convert.ToBase64String(payload, offset, count)
                + "\"},\"streamSid\":\"" + StreamSid + "\"}";
        }

        public static string Dtmf(long seq, char digit)
        {
            return "{\"event\":\"dtmf\",\"streamSid\":\"" + StreamSid + "\",\"sequenceNumber\":\"" + seq
                + "\",\"dtmf\":{\"track\":\"inbound_track\",\"digit\":\"" + digit + "\"}}";
        }

        public static string MarkEcho(long seq, string name)
        {
            return "{\"event\":\"mark\",\"sequenceNumber\":\"" + seq + "\",\"streamSid\":\"" + StreamSid + "\",\"mark\":{\"name\":\"" + name + "\"}}";
        }

        public static string Stop(long seq)
        {
            return "{\"event\":\"stop\",\"sequenceNumber\":\"" + seq + "\",\"streamSid\":\"" + StreamSid
                + "\",\"stop\":{\"accountSid\":\"" + AccountSid + "\",\"callSid\":\"" + CallSid + "\"}}";
        }

        /// <summary>The committed caller speech (8 kHz µ-law) and its labelled utterances (ms).</summary>
        public static byte[] Speech(out List<long[]> labels)
        {
            var dir = Repo.PathOf("engine", "tests", "fixtures");
            labels = File.ReadAllLines(Path.Combine(dir, "speech_8k.labels"))
                .Where(l => l.Trim().Length > 0)
                .Select(l => l.Split(new[] { ' ', '\t' }, StringSplitOptions.RemoveEmptyEntries).Select(long.Parse).ToArray())
                .ToList();
            return File.ReadAllBytes(Path.Combine(dir, "speech_8k.ulaw"));
        }

        static readonly Regex EventRe = new Regex("\"event\"\\s*:\\s*\"([a-z]+)\"");
        static readonly Regex StreamRe = new Regex("\"streamSid\"\\s*:\\s*\"([^\"]*)\"");
        static readonly Regex PayloadRe = new Regex("\"payload\"\\s*:\\s*\"([^\"]*)\"");
        static readonly Regex NameRe = new Regex("\"name\"\\s*:\\s*\"([^\"]*)\"");

        /// <summary>An outbound message as the carrier reads it: (event, stream SID, media payload
        /// or mark name).</summary>
        public sealed class Outbound
        {
            public string Event;
            public string StreamSid;
            public byte[] Payload;
            public string MarkName;

            public override string ToString()
            {
                return Event + (MarkName != null ? "(" + MarkName + ")" : "");
            }
        }

        public static Outbound Parse(object message)
        {
            var text = message as string;
            if (text == null) throw new AssertionException("outbound message is not text: " + message);
            var ev = EventRe.Match(text);
            if (!ev.Success) throw new AssertionException("outbound message has no event: " + text);
            var o = new Outbound { Event = ev.Groups[1].Value };
            var sid = StreamRe.Match(text);
            o.StreamSid = sid.Success ? sid.Groups[1].Value : null;
            if (o.Event == "media") o.Payload = Convert.FromBase64String(PayloadRe.Match(text).Groups[1].Value);
            if (o.Event == "mark") o.MarkName = NameRe.Match(text).Groups[1].Value;
            return o;
        }

        /// <summary>A sine tone.</summary>
        public static short[] Tone(int rate, double seconds, double freq, double amplitude)
        {
            var n = (int)(rate * seconds);
            var pcm = new short[n];
            for (int i = 0; i < n; i++) pcm[i] = (short)(amplitude * Math.Sin(2 * Math.PI * freq * i / rate));
            return pcm;
        }

        /// <summary>G.711 µ-law decode from the ITU-T formula, independent of the library.</summary>
        public static short ReferenceUlawDecode(byte code)
        {
            int u = ~code & 0xFF;
            int sign = u & 0x80;
            int exponent = (u >> 4) & 0x07;
            int mantissa = u & 0x0F;
            int magnitude = ((mantissa << 3) + 0x84) << exponent;
            int v = magnitude - 0x84;
            return (short)(sign != 0 ? -v : v);
        }
    }
}
