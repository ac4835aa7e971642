"""SIGTERM drains the example bot (examples/python/bot.py), run as its own process: from the
signal on it is not ready and refuses new calls, the three calls live at that moment go on in
real time until they end, nothing of them is lost, and the process exits 0."""

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from twilio_messages import REPO, connected, mark_echo, media, speech, start, stop

websockets = pytest.importorskip("websockets")
from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import InvalidStatus  # noqa: E402

BOT = REPO / "examples" / "python" / "bot.py"
GRACE_S = 25
CALLS = 3
SPEECH_FRAMES = 200  # 4 s: the fixture's first utterance and its end, then silence
SIGTERM_AFTER_FRAMES = 40  # each call is 0.8 s in when the signal comes
SILENCE = b"\xff" * 160


class BotProcess:
    """The bot as a subprocess, its log collected line by line."""

    def __init__(self) -> None:
        env = dict(os.environ, TRUNKLINE_DRAIN_GRACE_S=str(GRACE_S), PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "bindings" / "python"), env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, str(BOT), "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list = []
        self.port = None
        listening = threading.Event()

        def read() -> None:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                m = re.search(r"listening on ws://[\d.]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    listening.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not listening.wait(30):
            self.proc.kill()
            raise AssertionError("the bot did not start:\n" + "\n".join(self.lines))

    def log(self) -> str:
        return "\n".join(self.lines)


async def http_status(port: int, path: str) -> int:
    """The status of a plain HTTP GET (on the loop: the calls keep their pace meanwhile)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


async def twilio_call(port: int, k: int, audio: bytes, progress: list, signalled: asyncio.Event) -> dict:
    """One caller, as Twilio streams: a frame every 20 ms on an absolute schedule, every mark
    echoed at once; the fixture's first utterance, then silence until the bot's whole reply has
    come (its mark), then stop and hang up. Returns what was sent and received."""
    call_sid = f"CA{k:032x}"
    sent, media_in, marks = 0, 0, []
    async with connect(f"ws://127.0.0.1:{port}/media") as ws:
        await ws.send(connected())
        await ws.send(start(call_sid=call_sid))
        reply_done = asyncio.Event()

        async def receive() -> None:
            nonlocal media_in
            async for raw in ws:
                msg = json.loads(raw)
                if msg["event"] == "media":
                    assert len(base64.b64decode(msg["media"]["payload"])) == 160
                    media_in += 1
                elif msg["event"] == "mark":
                    name = msg["mark"]["name"]
                    marks.append(name)
                    await ws.send(mark_echo(100000 + len(marks), name))
                    if name == "reply-1":
                        reply_done.set()

        receiver = asyncio.create_task(receive())
        t0 = time.monotonic()
        deadline = t0 + 20
        while not (sent >= SPEECH_FRAMES and reply_done.is_set()):
            assert time.monotonic() < deadline, f"call {k}: no reply after {sent} frames"
            payload = audio[sent * 160 : (sent + 1) * 160] if sent < SPEECH_FRAMES else SILENCE
            await ws.send(media(sent + 2, sent + 1, sent * 20, payload))
            sent += 1
            progress[k] = sent
            if sent == SIGTERM_AFTER_FRAMES:
                # Still streaming after the signal: the drain must not have cut this call.
                await signalled.wait()
            await asyncio.sleep(max(0.0, t0 + sent * 0.02 - time.monotonic()))
        await ws.send(stop(sent + 2))
        receiver.cancel()
    return {"call_sid": call_sid, "sent": sent, "media_in": media_in, "marks": marks, "signalled_at": SIGTERM_AFTER_FRAMES}


def test_sigterm_drains_three_live_calls_and_exits_0():
    audio, labels = speech()
    bot = BotProcess()
    try:

        async def run() -> tuple:
            assert await http_status(bot.port, "/readyz") == 200
            progress = [0] * CALLS
            signalled = asyncio.Event()
            calls = [asyncio.create_task(twilio_call(bot.port, k, audio, progress, signalled)) for k in range(CALLS)]
            while min(progress) < SIGTERM_AFTER_FRAMES - 1:
                assert not any(c.done() for c in calls), [c.exception() for c in calls if c.done()]
                await asyncio.sleep(0.005)
            bot.proc.send_signal(signal.SIGTERM)
            # Not ready from the signal on (allowing the loop a moment to run its handler), and
            # a new call is refused.
            deadline = time.monotonic() + 2
            while (status := await http_status(bot.port, "/readyz")) == 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert status == 503
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{bot.port}/media"):
                    pass
            assert refused.value.response.status_code == 503
            assert await http_status(bot.port, "/healthz") == 200
            signalled.set()
            return await asyncio.wait_for(asyncio.gather(*calls), GRACE_S)

        results = asyncio.run(run())
        assert bot.proc.wait(GRACE_S) == 0, bot.log()
    finally:
        if bot.proc.poll() is None:
            bot.proc.kill()
    bot.reader.join(5)
    log = bot.log()
    assert "every call ended" in log, log
    first = labels[0]
    for r in results:
        assert r["sent"] > SPEECH_FRAMES  # streamed well past the signal, to its own end
        assert "reply-1" in r["marks"]
        # The reply is the caller's first utterance, in 20 ms frames (within the VAD's accuracy).
        assert abs(r["media_in"] - (first[1] - first[0]) / 20) <= 10, r
        # What the bot counted at the call's end: every frame the caller sent reached the engine,
        # every frame the engine sent reached the caller, no caller audio was dropped.
        m = re.search(rf"call {r['call_sid']} ended: (\d+) caller frames in, (\d+) agent frames out, (\d+) caller samples dropped", log)
        assert m, log
        assert (int(m.group(1)), int(m.group(2)), int(m.group(3))) == (r["sent"], r["media_in"], 0), log
