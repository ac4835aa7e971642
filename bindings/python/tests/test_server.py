"""The offload server from Python: errors, and a real call over loopback."""

import asyncio
import ssl
import time
from pathlib import Path

import pytest

import trunkline
from twilio_messages import ACCOUNT_SID, CALL_SID, STREAM_SID, connected, media, speech, start, stop

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402


def test_server_errors():
    with trunkline.Engine(workers=0) as inline:
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(inline)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    with trunkline.Engine(workers=1) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, bind="not an address")
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            trunkline.Server(engine, no_such_limit=1)
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, send_timeout_ms=0)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, session={"dialect": "no-such-dialect"})
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            trunkline.Server(engine, session={"no_such_setting": 1})
        server = trunkline.Server(engine, path="/media", send_timeout_ms=2000)
        assert server.port > 0 and server.accept() is None
        assert server.stats()["connections"] == 0
        assert server.stats()["send_timeouts"] == 0
        server.shutdown(0)
        with pytest.raises(trunkline.TrunklineError) as e:
            server.shutdown(0)
        assert e.value.code == trunkline.Result.CLOSED
        server.close()


def test_tls_files_are_strings_and_a_server_closes_with_its_engine():
    with trunkline.Engine(workers=1) as engine:
        # Paths as str, as every other string setting: the files do not exist, so the library
        # answers (IO or INVALID_ARGUMENT, as built), not ctypes with a TypeError.
        with pytest.raises(trunkline.TrunklineError):
            trunkline.Server(engine, tls_cert_pem="/no/such/cert.pem", tls_key_pem="/no/such/key.pem")
        server = trunkline.Server(engine, path="/media")
        assert server.port > 0
    # The engine closed its server before freeing itself: the server's calls say CLOSED.
    with pytest.raises(trunkline.TrunklineError) as e:
        server.accept()
    assert e.value.code == trunkline.Result.CLOSED
    server.close()  # harmless once closed


@pytest.mark.parametrize(
    "session",
    [
        {"barge_in_rejoin_within_ms": 5000},
        {"vad_end_of_turn_threshold": 0},
        {"vad_end_of_turn_threshold": 100},
        {"vad_hangover_ms": 20_000},
        {"vad_end_of_turn_max_silence_ms": 20_000},
        {"echo_reduction": True},
    ],
)
def test_session_settings_no_call_could_open_with_refuse_the_start(session):
    with trunkline.Engine(workers=1) as engine:
        # A session opened with them is refused, so every call would be.
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(**session)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, path="/media", session=session)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "setting, value",
    [
        ("vad_end_of_turn_threshold", 2**32 + 35),
        ("barge_in_rejoin_within_ms", 2**32),
        ("vad_end_of_turn_max_silence_ms", 2**32 + 500),
        ("barge_in_duck_db", 2**32 + 18),
        ("vad_end_of_turn_min_silence_ms", -1),
        ("inbound_ring_bytes", 2**64 + 65_536),
    ],
)
def test_a_value_its_field_cannot_hold_is_refused_not_wrapped(setting, value):
    # ctypes would keep the low bits: 2**32 + 35 would pass for 35, -1 for 2**32 - 1.
    with trunkline.Engine(workers=1) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(**{setting: value})
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, path="/media", session={setting: value})
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            engine.session(**{setting: 1.5})
    with trunkline.Engine(workers=1) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, path="/media", max_sessions=2**32 + 1)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT


def until_stopped(engine, call):
    """The call's events and caller audio until its `stopped` (or 5 s). A drain ends once the
    server has handed the call's last message to the engine; its worker may take that message a
    moment later."""
    events, pcm = [], b""
    deadline = time.monotonic() + 5
    while not any(e.kind == "stopped" for e in events) and time.monotonic() < deadline:
        events += call.events()
        pcm += call.read_audio()
        engine.wait(0.05)
    return events, pcm + call.read_audio()


# The offload server's test certificates: a CA the client trusts, and the server's certificate
# (for localhost and 127.0.0.1) and key.
TLS_FIXTURES = Path(__file__).resolve().parents[3] / "server" / "tests" / "fixtures" / "tls"


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_a_call_through_the_server(tls):
    audio, labels = speech()
    settings = {"path": "/media", "session": {"agent_rate": 8000, "agent_ring_ms": 5000, "dialect": "twilio"}}
    client = {}
    if tls:
        # The shipped library serves wss:// itself; a client trusting the test CA alone connects.
        settings.update(tls_cert_pem=str(TLS_FIXTURES / "cert.pem"), tls_key_pem=str(TLS_FIXTURES / "key.pem"))
        client["ssl"] = ssl.create_default_context(cafile=str(TLS_FIXTURES / "ca.pem"))

    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, **settings) as server:
        if tls:
            # A plain client on the TLS port gets no call.
            async def plain():
                with pytest.raises(Exception):
                    async with connect(f"ws://127.0.0.1:{server.port}/media", open_timeout=5):
                        pass

            asyncio.run(plain())

        async def carrier():
            async with connect(f"{'wss' if tls else 'ws'}://127.0.0.1:{server.port}/media", **client) as ws:
                await ws.send(connected())
                await ws.send(start())
                for i in range(100):
                    await ws.send(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
                await ws.send(stop(500))

        asyncio.run(asyncio.wait_for(carrier(), 10))
        call = None
        deadline = time.monotonic() + 5
        while call is None and time.monotonic() < deadline:
            engine.wait(0.05)
            call = server.accept()
        assert call is not None
        events, pcm = until_stopped(engine, call)
        kinds = [e.kind for e in events]
        assert kinds[:2] == ["connected", "started"] and kinds[-1] == "stopped"
        started = events[1]
        assert (started.call_id, started.stream_id, started.account_id) == (CALL_SID, STREAM_SID, ACCOUNT_SID)
        assert (started.encoding, started.sample_rate, started.channels) == ("mulaw", 8000, 1)
        assert len(pcm) == 100 * 20 * 8 * 2  # 2 s at 8 kHz, s16
        with pytest.raises(trunkline.TrunklineError) as e:
            call.push(connected())
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        assert call.stats()["agent_samples_dropped"] == 0
        assert server.stats()["calls_opened"] == 1
        assert server.stats()["handshake_failures"] == (1 if tls else 0)
        call.close()


def http_status(port, path):
    """The status of a plain GET of `path` on the server's port."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_drain_refuses_new_calls_and_lets_the_live_one_finish():
    import threading

    from websockets.exceptions import InvalidStatus

    audio, _ = speech()
    frames = 100
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, path="/media", session={"agent_rate": 8000, "agent_ring_ms": 5000}) as server:
        assert server.ready and http_status(server.port, "/readyz") == 200
        drained = {}
        draining = threading.Event()

        async def carrier():
            async with connect(f"ws://127.0.0.1:{server.port}/media") as ws:
                await ws.send(connected())
                await ws.send(start())
                # The host has the call: drain on another thread, with a grace far longer than
                # the rest of the call, which then goes on.
                while not draining.is_set():
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.05)
                assert not server.ready
                assert http_status(server.port, "/readyz") == 503
                assert http_status(server.port, "/healthz") == 200
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{server.port}/media"):
                        pass
                assert refused.value.response.status_code == 503
                for i in range(frames):
                    await ws.send(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
                    await asyncio.sleep(0.002)
                await ws.send(stop(500))
            # Hung up, as Twilio does after stop: the server's last call has ended.

        def drain_when_called():
            call = None
            while call is None:
                engine.wait(0.05)
                call = server.accept()
            drained["call"] = call
            draining.set()
            drained["all_ended"] = server.drain(30)

        drainer = threading.Thread(target=drain_when_called)
        drainer.start()
        asyncio.run(asyncio.wait_for(carrier(), 20))
        drainer.join(35)
        assert not drainer.is_alive() and drained["all_ended"] is True
        call = drained["call"]
        events, pcm = until_stopped(engine, call)
        assert events[-1].kind == "stopped"
        assert len(pcm) == frames * 160 * 2  # every frame sent during the drain reached the host
        stats = server.stats()
        assert (stats["rejected_draining"], stats["calls_opened"], stats["active"]) == (1, 1, 0)
        assert server.drain(0) is True and not server.ready  # nothing live; cannot be undone
        with pytest.raises(ValueError):
            server.drain(-1)
        server.shutdown(0)
        with pytest.raises(trunkline.TrunklineError) as e:
            server.drain(0)
        assert e.value.code == trunkline.Result.CLOSED
        call.close()


def _call_held_open(engine, server):
    """A carrier's call on another thread that stays open until the server closes it, accepted:
    the caller's thread, the call, and a dict that gets the close code."""
    import threading

    closed = {}

    async def hold_a_call():
        async with connect(f"ws://127.0.0.1:{server.port}/media") as ws:
            await ws.send(connected())
            await ws.send(start())
            await ws.wait_closed()
            closed["code"] = ws.close_code

    caller = threading.Thread(target=lambda: asyncio.run(asyncio.wait_for(hold_a_call(), 20)))
    caller.start()
    call = None
    while call is None:
        engine.wait(0.05)
        call = server.accept()
    return caller, call, closed


def _drain_on_another_thread(server, grace):
    """Starts `server.drain(grace)` on another thread, and waits until it has begun: the thread,
    and a dict that gets its result."""
    import threading

    result = {}
    drainer = threading.Thread(target=lambda: result.setdefault("all_ended", server.drain(grace)))
    drainer.start()
    while server.ready:
        time.sleep(0.01)
    return drainer, result


def test_close_waits_for_a_drain_in_another_thread():
    with trunkline.Engine(workers=1) as engine:
        server = trunkline.Server(engine, path="/media")
        caller, call, _ = _call_held_open(engine, server)
        drainer, result = _drain_on_another_thread(server, 0.3)
        server.close()  # waits for the drain, which ends the call at its grace
        assert result == {"all_ended": True}
        drainer.join()
        caller.join(20)
        assert until_stopped(engine, call)[0][-1].kind == "stopped"
        call.close()


def test_close_during_a_long_drain_cuts_the_live_calls_at_once():
    with trunkline.Engine(workers=1) as engine:
        server = trunkline.Server(engine, path="/media")
        caller, call, closed = _call_held_open(engine, server)
        drainer, result = _drain_on_another_thread(server, 60)
        began = time.monotonic()
        server.close()  # cuts the call now, not after the drain's minute
        assert time.monotonic() - began < 10
        drainer.join(10)
        assert result == {"all_ended": True}
        caller.join(10)
        assert closed == {"code": 1001}
        assert until_stopped(engine, call)[0][-1].kind == "stopped"
        call.close()
