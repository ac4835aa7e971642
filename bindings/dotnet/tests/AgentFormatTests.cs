// An agent speaking 8 kHz G.711 through the .NET binding: AgentFormat = "ulaw" makes
// ReadAudioBytes return the carrier's µ-law bytes exactly as sent and PlayBytes take µ-law bytes
// that reach the carrier exactly as played (every code, 0x7F included, which a decode and encode
// would turn into 0xFF).
using System;
using System.Collections.Generic;
using System.Linq;

namespace Trunkline.Tests
{
    public static class AgentFormatTests
    {
        const int Frame = 160;

        static byte[] AllCodes(int n)
        {
            return Enumerable.Range(0, n).Select(i => (byte)((i * 97 + i / 256) & 0xFF)).ToArray();
        }

        public static void TestAUlawAgentReadsAndPlaysTheCarriersBytesUntouched()
        {
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            using (var session = engine.OpenSession(new SessionOptions { AgentRate = 8000, AgentFormat = "ulaw" }))
            {
                session.Push(Twilio.Start());
                var caller = AllCodes(8 * Frame);
                for (int i = 0; i < 8; i++) session.Push(Twilio.Media(i + 2, i + 1, i * 20, caller, i * Frame, Frame));
                Assert.SequenceEqual(caller, session.ReadAudioBytes(), "caller codes");

                var agent = Enumerable.Range(0, 10 * Frame).Select(i => (byte)((0x7F + i * 31) & 0xFF)).ToArray();
                Assert.Equal(agent.Length, session.PlayBytes(agent, 8000), "bytes taken");
                var sent = new List<byte>();
                for (int step = 0; step < 20; step++)
                {
                    foreach (var message in session.Outbound())
                    {
                        var o = Twilio.Parse(message);
                        if (o.Event == "media") sent.AddRange(o.Payload);
                    }
                    engine.Advance(TimeSpan.FromMilliseconds(20));
                }
                Assert.SequenceEqual(agent, sent, "agent codes at the carrier");
                Assert.Throws<TrunklineException>(() => session.PlayBytes(agent, 16000), "G.711 plays at 8 kHz");
            }
        }

        public static void TestAG711AgentNeeds8KHzAndAKnownFormat()
        {
            using (var engine = new Engine(new EngineOptions { Workers = 0, ManualClock = true }))
            {
                Assert.Throws<TrunklineException>(() => engine.OpenSession(new SessionOptions { AgentRate = 16000, AgentFormat = "ulaw" }), "16 kHz µ-law");
                Assert.Throws<ArgumentException>(() => engine.OpenSession(new SessionOptions { AgentRate = 8000, AgentFormat = "opus" }), "unknown format");
            }
        }
    }
}
