"""The per-frame methods (push, read_audio, events, play, outbound) skip ctypes' argument
conversion and reuse per-session buffers: their edge cases, and a check that every such call
passes what the header declares."""

import array
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import trunkline
from twilio_messages import connected, media, speech, start


def frames(count, first=0):
    audio, _ = speech()
    return [media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]) for i in range(first, first + count)]


def test_read_audio_returns_more_than_one_buffer_in_one_call():
    msgs = frames(40)  # 0.8 s: 12,800 samples at 16 kHz, more than the 8,192-sample buffer
    with trunkline.Engine(workers=0) as engine:
        # A 2 s caller audio ring, whatever the default: nothing is dropped before the read.
        with engine.session(agent_rate=16000, agent_ring_ms=2000) as a, \
                engine.session(agent_rate=16000, agent_ring_ms=2000) as b:
            a.push(start())
            b.push(start())
            for m in msgs:
                a.push(m)
                b.push(m)
            at_once = a.read_audio()
            assert a.read_audio() == b""
            one_by_one = b"".join(b.read_audio() for _ in range(3))
    assert len(at_once) == 40 * 320 * 2
    assert at_once == one_by_one


def test_per_frame_methods_take_every_buffer_type_and_reject_bad_arguments():
    pcm = array.array("h", [1000, -1000] * 240)
    with trunkline.Engine(workers=0) as engine, engine.session(lead_ms=200) as call:
        call.push(connected().encode())  # bytes: a binary frame, which Twilio never sends
        (ev,) = call.events()
        assert ev.kind == "protocol_error" and ev.error_code == 8
        call.push(bytearray(start().encode()))
        call.push(memoryview(connected().encode()))
        assert [e.kind for e in call.events()] == ["protocol_error", "protocol_error"]
        call.push(start())
        assert [e.kind for e in call.events()] == ["started"]
        for data in (pcm.tobytes(), bytearray(pcm.tobytes()), memoryview(pcm.tobytes()), pcm):
            assert call.play(data, 24000) == 480
        for rate in (11025, -24000, 2**31, 2**40):
            with pytest.raises(trunkline.TrunklineError) as e:
                call.play(pcm, rate)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(ValueError):
            call.play(b"\0\0\0", 24000)
        out = [json.loads(m) for m in call.outbound()]
        assert len(out) == 4 and {m["event"] for m in out} == {"media"}
        call.close()
        for method, args in ((call.push, (start(),)), (call.read_audio, ()), (call.events, ()),
                             (call.play, (pcm, 24000)), (call.outbound, ())):
            with pytest.raises(trunkline.TrunklineError) as e:
                method(*args)
            assert e.value.code == trunkline.Result.CLOSED


def test_outbound_grows_its_buffer_for_a_message_that_does_not_fit():
    with trunkline.Engine(workers=0) as engine, engine.session(lead_ms=100) as call:
        call.push(start())
        call.play(b"\0\0" * 2400, 24000)
        call._scratch[0].grow_out(16)  # smaller than any message
        out = [json.loads(m) for m in call.outbound()]
        assert len(out) == 5 and all(m["event"] == "media" for m in out)


def test_threads_calling_one_session_never_share_a_buffer():
    msgs = frames(45)
    got = {"audio": 0, "frames": 0}
    lock = threading.Lock()
    stop = threading.Event()
    # Rings that hold the whole call, so nothing is dropped however the threads are scheduled.
    settings = dict(agent_rate=16000, lead_ms=10**6, agent_ring_ms=2000, outbound_ring_bytes=64 * 1024)
    with trunkline.Engine(workers=0) as engine, engine.session(**settings) as call:
        call.push(start())

        def drain():
            while True:
                done = stop.is_set()
                audio = call.read_audio()
                sent = [json.loads(m) for m in call.outbound()]  # a torn buffer would not parse
                call.events()
                with lock:
                    got["audio"] += len(audio)
                    got["frames"] += sum(m["event"] == "media" for m in sent)
                if done:
                    return

        threads = [threading.Thread(target=drain) for _ in range(3)]
        for t in threads:
            t.start()
        for m in msgs:
            call.push(m)
            call.play(b"\x10\x00" * 480, 24000)
            time.sleep(0.001)
        stop.set()
        for t in threads:
            t.join()
    assert got["audio"] == 45 * 320 * 2
    assert got["frames"] == 45


@pytest.mark.skipif(os.environ.get("TRUNKLINE_CHECKED_CALLS") == "1", reason="already checked")
def test_every_per_frame_call_passes_the_declared_types():
    """The session tests again with TRUNKLINE_CHECKED_CALLS=1: each unconverted call goes through
    its declared argtypes and a check of what an unconverted call may pass."""
    here = Path(__file__).resolve().parent
    env = dict(os.environ, TRUNKLINE_CHECKED_CALLS="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_per_frame.py", "tests/test_session.py"],
        cwd=here.parent, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_closing_while_other_threads_call_is_safe_and_reports_closed():
    # close() only marks the session closed (safe to race with any call); the memory is freed
    # when the object goes, so a thread already inside a call never touches freed memory.
    msgs = frames(20)
    with trunkline.Engine(workers=1) as engine:
        for _ in range(30):
            call = engine.session(agent_rate=16000)
            call.push(connected())
            call.push(start())
            errors = []
            go = threading.Event()

            def hammer():
                go.wait()
                try:
                    while True:
                        for m in msgs:
                            call.push(m)
                            call.read_audio()
                            call.events()
                            call.play(b"\0\0" * 480, 24000)
                            call.outbound()
                            call.stats()
                except trunkline.TrunklineError as e:
                    errors.append(e.code)
                except Exception as e:  # anything else is a bug
                    errors.append(e)

            threads = [threading.Thread(target=hammer) for _ in range(3)]
            for t in threads:
                t.start()
            go.set()
            time.sleep(0.005)
            call.close()
            for t in threads:
                t.join(timeout=10)
                assert not t.is_alive()
            # FULL may stop a hammer before the close; every other end is CLOSED.
            assert all(c in (trunkline.Result.CLOSED, trunkline.Result.FULL) for c in errors), errors
            assert len(errors) == 3
            with pytest.raises(trunkline.TrunklineError) as closed:
                call.read_audio()
            assert closed.value.code == trunkline.Result.CLOSED
            del call


def test_close_leaves_freeing_to_when_the_session_object_goes(monkeypatch):
    # What makes closing under another thread's call safe: close() does not free the handle (a
    # call that read it before the close still holds valid memory); dropping the object does.
    import gc

    import trunkline._core as core

    # Sessions of earlier tests in this worker that the collector has yet to free would be freed
    # under the patch too: collect them first, and count this session's handle only.
    gc.collect()
    freed = []
    real_free = core.lib.trunkline_session_free
    monkeypatch.setattr(core.lib, "trunkline_session_free", lambda h: (freed.append(h), real_free(h)))
    with trunkline.Engine(workers=1) as engine:
        call = engine.session()
        handle = call._handle
        call.close()
        call.close()
        assert handle not in freed
        del call
        assert freed.count(handle) == 1
