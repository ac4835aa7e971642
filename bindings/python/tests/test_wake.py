"""Engine.wake() releases a thread blocked in Engine.wait(), and close() does not hang one."""

import threading
import time

import pytest

import trunkline


def blocked_waiter(engine, timeout=None):
    """Starts a thread in engine.wait(timeout); returns (thread, results) once it is blocked."""
    results = []
    entered = threading.Event()

    def run():
        entered.set()
        try:
            results.append(engine.wait(timeout))
        except trunkline.TrunklineError as e:
            results.append(e)

    thread = threading.Thread(target=run, daemon=True)  # daemon: a failure must not hang pytest
    thread.start()
    entered.wait(5)
    time.sleep(0.1)
    return thread, results


@pytest.mark.parametrize("workers", [0, 1])
def test_wake_releases_a_wait_without_timeout(workers):
    with trunkline.Engine(workers=workers) as engine:
        thread, results = blocked_waiter(engine)
        assert results == [], "wait() returned with nothing to wake it"
        engine.wake()
        thread.join(5)
        assert not thread.is_alive(), "wake() did not release wait()"
        assert results == [True]
        # The released wait took the signal.
        assert engine.wait(0) is False


def test_a_wake_before_the_wait_is_kept_for_it():
    with trunkline.Engine(workers=0) as engine:
        engine.wake()
        engine.wake()
        t0 = time.monotonic()
        assert engine.wait(30) is True
        assert time.monotonic() - t0 < 2
        assert engine.wait(0) is False  # two wakes before a wait count as one


def test_close_releases_every_blocked_waiter():
    engine = trunkline.Engine(workers=1)
    waiters = [blocked_waiter(engine) for _ in range(3)]
    t0 = time.monotonic()
    engine.close()
    assert time.monotonic() - t0 < 5
    for thread, results in waiters:
        thread.join(5)
        assert not thread.is_alive()
        assert results == [True]
    with pytest.raises(trunkline.TrunklineError) as e:
        engine.wait(0)
    assert e.value.code == trunkline.Result.CLOSED
    with pytest.raises(trunkline.TrunklineError):
        engine.wake()
    engine.close()  # idempotent


def test_wake_stops_a_host_loop_on_its_own_flag():
    # The documented shutdown pattern: set a flag, wake, and the loop sees the flag after the wait.
    with trunkline.Engine(workers=1) as engine:
        stop = threading.Event()
        rounds = []

        def loop():
            while not stop.is_set():
                rounds.append(engine.wait())

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        time.sleep(0.1)
        stop.set()
        engine.wake()
        thread.join(5)
        assert not thread.is_alive()
        assert rounds == [True]
