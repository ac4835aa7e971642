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


class PlayingCall:
    """What the echo agent uses of a session: nothing left to read, everything played (kept)."""

    def __init__(self) -> None:
        self.played = bytearray()

    def read_audio(self):
        return b""

    def play(self, audio, rate):
        self.played.extend(audio)
        return len(audio) // 2

    def mark(self, name):
        pass


def test_the_echo_agent_keeps_a_bounded_window_of_audio_and_still_echoes_the_utterance():
    bot = load_bot()
    agent = bot.EchoAgent()
    rate = bot.AGENT_RATE

    call = PlayingCall()
    # A minute of silence in 20 ms reads: only a window of it is kept.
    frame = b"\0\0" * (rate // 50)
    for _ in range(3000):
        agent.on_audio(frame)
        agent.trim()  # as the bot does once the events of what it read are taken
    assert len(agent.audio) <= bot.KEEP_BYTES
    # Then one second of "speech" (a ramp), its onset reported a little late as Trunkline does.
    onset_ms = 60_000
    speech = b"".join(int(i % 1000).to_bytes(2, "little") for i in range(rate))
    agent.on_audio(speech[: rate // 5 * 2])  # 200 ms before the onset is reported
    agent.on_event(call, bot.trunkline.Event(kind="speech_started", stream_ms=onset_ms))
    agent.on_audio(speech[rate // 5 * 2 :])
    agent.trim()  # an utterance under way is kept whole
    agent.on_event(call, bot.trunkline.Event(kind="speech_stopped", stream_ms=onset_ms + 1000))
    assert agent.replies == 1
    assert bytes(call.played) == speech, "the echo is the utterance, from its onset"


def test_the_echo_agent_keeps_an_utterance_read_in_one_burst_with_its_onset_reported_after():
    # A carrier's burst after a stall: four seconds read at once, the utterance 1 s into it, its
    # events taken after the read.
    bot = load_bot()
    agent = bot.EchoAgent()
    rate = bot.AGENT_RATE
    speech = b"".join(int(i % 1000 + 1).to_bytes(2, "little") for i in range(rate))
    silence = b"\0\0" * rate
    call = PlayingCall()
    agent.on_audio(silence + speech + silence * 2)
    agent.on_event(call, bot.trunkline.Event(kind="speech_started", stream_ms=1000))
    agent.on_event(call, bot.trunkline.Event(kind="speech_stopped", stream_ms=2000))
    agent.trim()
    assert bytes(call.played) == speech
