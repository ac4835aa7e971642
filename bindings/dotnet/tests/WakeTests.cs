using System;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace Trunkline.Tests
{
    /// <summary>Engine.Wake releases a thread blocked in Engine.Wait, and Dispose does not leave
    /// one blocked.</summary>
    public static class WakeTests
    {
        sealed class Waiter
        {
            public readonly Thread Thread;
            public object Result; // the bool Wait returned, or the exception it threw

            public Waiter(Engine engine, int timeoutMs)
            {
                var entered = new ManualResetEventSlim();
                // A background thread: a failing test must not keep the process alive.
                Thread = new Thread(() =>
                {
                    entered.Set();
                    try
                    {
                        Result = engine.Wait(timeoutMs);
                    }
                    catch (Exception ex)
                    {
                        Result = ex;
                    }
                }) { IsBackground = true };
                Thread.Start();
                entered.Wait(5000);
                Thread.Sleep(100); // into the native wait
            }
        }

        public static void TestWakeReleasesAWaitWithoutTimeout()
        {
            foreach (var workers in new[] { 0, 1 })
            {
                using (var engine = new Engine(workers))
                {
                    var w = new Waiter(engine, -1);
                    Assert.True(w.Thread.IsAlive, "workers " + workers + ": Wait(-1) returned with nothing to wake it");
                    engine.Wake();
                    Assert.True(w.Thread.Join(5000), "workers " + workers + ": Wake released Wait(-1)");
                    Assert.Equal((object)true, w.Result, "what the woken Wait returned");
                    // The released wait took the signal.
                    Assert.Equal(false, engine.Wait(0), "a second wait");
                }
            }
        }

        public static void TestAWakeBeforeTheWaitIsKeptForIt()
        {
            using (var engine = new Engine(1))
            {
                engine.Wake();
                engine.Wake();
                var sw = Stopwatch.StartNew();
                Assert.True(engine.Wait(30000), "the wait after a wake returns true");
                Assert.True(sw.ElapsedMilliseconds < 2000, "at once (" + sw.ElapsedMilliseconds + " ms)");
                Assert.Equal(false, engine.Wait(0), "two wakes before a wait count as one");
            }
        }

        public static void TestDisposeReleasesEveryBlockedWaiter()
        {
            var engine = new Engine(1);
            var waiters = new[] { new Waiter(engine, -1), new Waiter(engine, -1), new Waiter(engine, 60000) };
            var sw = Stopwatch.StartNew();
            engine.Dispose();
            Assert.True(sw.ElapsedMilliseconds < 5000, "Dispose returned promptly (" + sw.ElapsedMilliseconds + " ms)");
            for (int i = 0; i < waiters.Length; i++)
            {
                Assert.True(waiters[i].Thread.Join(5000), "waiter " + i + " released");
                Assert.Equal((object)true, waiters[i].Result, "waiter " + i + " returned");
            }
            Assert.Throws<ObjectDisposedException>(() => engine.Wait(0), "Wait after Dispose");
            Assert.Throws<ObjectDisposedException>(() => engine.Wake(), "Wake after Dispose");
            engine.Dispose();
        }

        public static async Task TestCancellingEndsAnEventStreamAndAWaitWithoutTimeout()
        {
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                using (var cts = new CancellationTokenSource())
                {
                    var stream = s.EventsAsync(cts.Token, -1).GetAsyncEnumerator();
                    var moving = stream.MoveNextAsync().AsTask();
                    await Task.Delay(100);
                    Assert.True(!moving.IsCompleted, "the stream is waiting");
                    cts.Cancel();
                    var done = await Task.WhenAny(moving, Task.Delay(5000));
                    Assert.True(done == moving, "the stream ended when cancelled");
                    Assert.True(moving.IsCanceled || moving.Exception?.InnerException is OperationCanceledException, "cancelled: " + moving.Status);
                }
                using (var cts = new CancellationTokenSource())
                {
                    var waiting = engine.WaitAsync(-1, cts.Token);
                    await Task.Delay(100);
                    Assert.True(!waiting.IsCompleted, "the wait is waiting");
                    cts.Cancel();
                    var done = await Task.WhenAny(waiting, Task.Delay(5000));
                    Assert.True(done == waiting, "the wait ended when cancelled");
                    Assert.True(waiting.IsCanceled || waiting.Exception?.InnerException is OperationCanceledException, "cancelled: " + waiting.Status);
                }
                Assert.Throws<ArgumentOutOfRangeException>(() => s.EventsAsync(CancellationToken.None, 0), "a wait of 0 would spin");
            }
        }

        public static async Task TestOneSignalReleasesEveryAsyncWaiterOfTheEngine()
        {
            // Two calls' event streams wait without a limit on one engine. One message to b makes
            // one event and one signal: b's stream must have it though a's waits too, and a's
            // cancellation must end a's wait though b's waits too (each is one signal at most).
            using (var engine = new Engine(1))
            using (var a = engine.OpenSession())
            using (var b = engine.OpenSession())
            {
                for (int round = 0; round < 10; round++)
                {
                    using (var ctsA = new CancellationTokenSource())
                    {
                        var waitingA = a.EventsAsync(ctsA.Token, -1).GetAsyncEnumerator().MoveNextAsync().AsTask();
                        var streamB = b.EventsAsync(CancellationToken.None, -1).GetAsyncEnumerator();
                        var waitingB = streamB.MoveNextAsync().AsTask();
                        await Task.Delay(50);
                        Assert.True(!waitingA.IsCompleted && !waitingB.IsCompleted, "round " + round + ": both wait");
                        b.Push("not json");
                        var done = await Task.WhenAny(waitingB, Task.Delay(3000));
                        Assert.True(done == waitingB, "round " + round + ": b's stream had its event");
                        Assert.Equal(EventKind.ProtocolError, streamB.Current.Kind, "round " + round + ": b's event");
                        Assert.True(!waitingA.IsCompleted, "round " + round + ": a's stream waits on");
                        ctsA.Cancel();
                        done = await Task.WhenAny(waitingA, Task.Delay(3000));
                        Assert.True(done == waitingA, "round " + round + ": a's stream ended when cancelled");
                        Assert.True(waitingA.IsCanceled || waitingA.Exception?.InnerException is OperationCanceledException, "cancelled: " + waitingA.Status);
                    }
                }
            }
        }

        public static async Task TestASignalBetweenTwoAsyncWaitsIsKeptForTheSecond()
        {
            // A host's loop: WaitAsync, read its sessions, WaitAsync again. Output that comes
            // while it reads must end the next wait, as the wakeup fd keeps a signal for the next
            // Wait.
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                for (int round = 0; round < 5; round++)
                {
                    engine.Wake();
                    Assert.Equal(true, await engine.WaitAsync(5000), "round " + round + ": the wake");
                    // Read between the waits: the shared wait is waiting again meanwhile.
                    await Task.Delay(50);
                    s.Push("not json");
                    await Task.Delay(100);
                    var woken = engine.WaitAsync(-1);
                    var done = await Task.WhenAny(woken, Task.Delay(3000));
                    Assert.True(done == woken, "round " + round + ": the output that came between the waits ended the second");
                    while (s.PollEvent() != null) { }
                }
            }
        }

        public static async Task TestClosingTheSessionEndsItsEventStreamWithoutTimeout()
        {
            // waitMs -1 and nothing happening on the call: the host's handler closes the call
            // (its socket dropped) while another task still reads its events. The close signals
            // the engine, so the stream looks again and ends; it waited for an unrelated signal.
            using (var engine = new Engine(1))
            using (var s = engine.OpenSession())
            {
                var stream = s.EventsAsync(CancellationToken.None, -1).GetAsyncEnumerator();
                var moving = stream.MoveNextAsync().AsTask();
                await Task.Delay(150);
                Assert.True(!moving.IsCompleted, "the stream is waiting");
                s.Close();
                var done = await Task.WhenAny(moving, Task.Delay(5000));
                Assert.True(done == moving, "the stream ended after Close");
                Assert.Equal(false, await moving, "no event, then the end");
            }
        }

        public static async Task TestWaitAsyncAfterDisposeThrowsAsWaitDoes()
        {
            // It returned true at once, every time: a host loop `while (await WaitAsync(-1))`
            // spun.
            var engine = new Engine(1);
            engine.Dispose();
            Assert.Throws<ObjectDisposedException>(() => engine.Wait(10), "Wait after Dispose");
            try
            {
                await engine.WaitAsync(-1);
                throw new Exception("WaitAsync after Dispose returned");
            }
            catch (ObjectDisposedException)
            {
            }
        }

        public static async Task TestDisposingTheEngineEndsAnEventStreamWithoutTimeout()
        {
            // waitMs -1: the stream's wait on the thread pool has no timeout; only the engine's
            // Dispose (which wakes it) can end it here, nothing happening on the call.
            var engine = new Engine(1);
            using (var s = engine.OpenSession())
            {
                var stream = s.EventsAsync(CancellationToken.None, -1).GetAsyncEnumerator();
                var moving = stream.MoveNextAsync().AsTask();
                await Task.Delay(150);
                Assert.True(!moving.IsCompleted, "the stream is waiting");
                engine.Dispose();
                var done = await Task.WhenAny(moving, Task.Delay(5000));
                Assert.True(done == moving, "the stream ended after Dispose");
                // As documented: the end of the stream (the session answered CLOSED), or
                // ObjectDisposedException (it waited again before the engine was freed).
                try
                {
                    Assert.Equal(false, await moving, "no event, then the end");
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }
    }
}
