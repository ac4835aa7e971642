"""The offload server from Python: errors, and a real call over loopback."""

import asyncio
import time

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


def test_a_call_through_the_server():
    audio, labels = speech()

    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, path="/media", session={"agent_rate": 8000, "agent_ring_ms": 5000, "dialect": "twilio"}) as server:

        async def carrier():
            async with connect(f"ws://127.0.0.1:{server.port}/media") as ws:
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
        events, pcm = [], b""
        while time.monotonic() < deadline and not any(e.kind == "stopped" for e in events):
            engine.wait(0.05)
            events += call.events()
            pcm += call.read_audio()
        pcm += call.read_audio()
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
        call.close()
