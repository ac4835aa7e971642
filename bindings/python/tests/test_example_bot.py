"""The example bot (examples/python/bot.py) answers a call over a real WebSocket on loopback."""

import asyncio
import base64
import importlib.util
import json

import pytest

from twilio_messages import REPO, connected, mark_echo, media, speech, start, stop

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402


def load_bot():
    spec = importlib.util.spec_from_file_location("bot", REPO / "examples" / "python" / "bot.py")
    bot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bot)
    return bot


def test_bot_echoes_the_callers_utterance_as_paced_frames():
    audio, labels = speech()
    first = labels[0]
    frames = 200  # 4 s: the first utterance and its end

    async def run():
        bot = load_bot()
        ready = asyncio.get_running_loop().create_future()
        server = asyncio.ensure_future(bot.main("127.0.0.1", 0, ready))
        port = await asyncio.wait_for(ready, 10)
        received = []
        async with connect(f"ws://127.0.0.1:{port}") as ws:
            await ws.send(connected())
            await ws.send(start())
            for i in range(frames):
                await ws.send(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
            # Behave like Twilio: echo each mark once the audio before it has arrived.
            async def receive():
                async for raw in ws:
                    msg = json.loads(raw)
                    received.append(msg)
                    if msg["event"] == "mark":
                        await ws.send(mark_echo(5000 + len(received), msg["mark"]["name"]))
                        if msg["mark"]["name"] == "reply-1":
                            return

            await asyncio.wait_for(receive(), 15)
            await ws.send(stop(9999))
        server.cancel()
        return received

    received = asyncio.run(run())
    media_frames = [m for m in received if m["event"] == "media"]
    payloads = [base64.b64decode(m["media"]["payload"]) for m in media_frames]
    assert all(len(p) == 160 for p in payloads)
    # The reply is the caller's utterance: its length in 20 ms frames, within the VAD's accuracy.
    expected = (first[1] - first[0]) / 20
    assert abs(len(media_frames) - expected) <= 10, (len(media_frames), expected)
    assert [m["mark"]["name"] for m in received if m["event"] == "mark" and not m["mark"]["name"].startswith("trunkline-sync-")] == ["reply-1"]
