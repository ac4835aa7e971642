using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline
{
    /// <summary>Waiting out a Full result (the engine behind after a burst) for the async pushes.
    /// Apart from Session because an unsafe class cannot await.</summary>
    static class Backpressure
    {
        /// <summary>Runs <paramref name="push"/> until it does not throw Full, waiting between tries;
        /// after <paramref name="timeout"/> (2 s when null) the Full is thrown.</summary>
        public static async Task WhenTaken(Action push, TimeSpan? timeout, CancellationToken cancellationToken)
        {
            var limit = timeout ?? TimeSpan.FromSeconds(2);
            if (limit < TimeSpan.Zero) throw new ArgumentOutOfRangeException("timeout", "must not be negative");
            var waited = Stopwatch.StartNew();
            // From the shortest delay a timer gives, doubling to 20 ms: a burst is usually taken
            // within a few worker passes, and a long stall should not spin.
            int delayMs = 1;
            while (true)
            {
                try
                {
                    push();
                    return;
                }
                catch (TrunklineException e)
                {
                    if (e.Code != ResultCode.Full || waited.Elapsed >= limit) throw;
                }
                await Task.Delay(delayMs, cancellationToken).ConfigureAwait(false);
                delayMs = Math.Min(delayMs * 2, 20);
            }
        }
    }
}
