using System.Collections.Generic;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline
{
    // IAsyncEnumerable<Event> written by hand instead of as an `async IAsyncEnumerable` iterator:
    // Mono 6.8's corlib has IAsyncEnumerable, IAsyncEnumerator, IAsyncDisposable and ValueTask (so
    // no shim types are needed), but its C# compiler (mcs, C# 7.x) cannot compile async iterators
    // or `await foreach`. This class compiles with mcs and with C# 12 alike, and .NET 8 callers
    // consume it with `await foreach` (and `.WithCancellation(token)`) as usual.
    sealed class EventStream : IAsyncEnumerable<Event>
    {
        readonly Session session;
        readonly CancellationToken token;
        readonly int waitMs;

        public EventStream(Session session, CancellationToken token, int waitMs)
        {
            this.session = session;
            this.token = token;
            this.waitMs = waitMs;
        }

        public IAsyncEnumerator<Event> GetAsyncEnumerator(CancellationToken cancellationToken = default(CancellationToken))
        {
            return new Enumerator(session, token, cancellationToken, waitMs);
        }

        sealed class Enumerator : IAsyncEnumerator<Event>
        {
            readonly Session session;
            readonly CancellationToken token;
            readonly CancellationToken token2;
            readonly int waitMs;
            bool finished;

            public Enumerator(Session session, CancellationToken token, CancellationToken token2, int waitMs)
            {
                this.session = session;
                this.token = token;
                this.token2 = token2;
                this.waitMs = waitMs;
            }

            public Event Current { get; private set; }

            public ValueTask<bool> MoveNextAsync()
            {
                return new ValueTask<bool>(MoveNext());
            }

            async Task<bool> MoveNext()
            {
                while (true)
                {
                    token.ThrowIfCancellationRequested();
                    token2.ThrowIfCancellationRequested();
                    if (finished) return false;
                    // Taken before polling: output that comes after the poll completes it.
                    var signal = session.Engine.NextSignal();
                    // One event taken from the library per step: a consumer that stops early
                    // leaves the rest there for the next Events() or EventsAsync().
                    Event next;
                    try
                    {
                        next = session.PollEvent();
                    }
                    catch (TrunklineException ex)
                    {
                        if (ex.Code != ResultCode.Closed) throw;
                        return false;
                    }
                    if (next != null)
                    {
                        Current = next;
                        if (next.Kind == EventKind.Stopped) finished = true;
                        return true;
                    }
                    // The engine's blocking wait runs on the thread pool, shared by every async
                    // waiter, never on the caller's thread and never as a callback from an engine
                    // thread. A cancellation ends this wait at once (the next pass throws).
                    await Engine.SignalOrTimeout(signal, waitMs, token, token2).ConfigureAwait(false);
                }
            }

            public ValueTask DisposeAsync()
            {
                return default(ValueTask);
            }
        }
    }
}
