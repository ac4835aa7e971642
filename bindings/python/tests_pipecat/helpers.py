"""What the Pipecat tests share: the caller's script for callsim, a scripted bot standing in for
STT -> LLM -> TTS, and a loopback FastAPI server."""

from __future__ import annotations

import asyncio
import json
import math
import re
import struct
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from twilio_messages import REPO

CALLSIM = REPO / "target" / "release" / "callsim"
# The caller says the fixture's first utterance (1000-3421 ms of its first 4 s).
QUESTION_MS = 4000
QUESTION_LABEL = (1000, 3421)
# The bot's replies: an answer longer than Trunkline buffers (so the barge-in comes while the
# transport is still handing it over), then a short goodbye.
ANSWER_MS, GOODBYE_MS = 6000, 1000
TTS_RATE = 24000
# callsim talks over the answer this far into it.
BARGE_IN_AFTER_MS = 1200
DTMF_AT_MS, DTMF_DIGIT = 2000, "7"


def tone(freq: float, ms: int, rate: int = TTS_RATE) -> bytes:
    n = rate * ms // 1000
    return struct.pack(f"<{n}h", *(int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)))


def write_question(directory: Path) -> Path:
    """The caller's audio for callsim: the fixture's first 4 s, with its one utterance labelled
    (callsim reads `<name>.labels` beside `<name>.ulaw`)."""
    audio = (REPO / "engine" / "tests" / "fixtures" / "speech_8k.ulaw").read_bytes()[: QUESTION_MS * 8]
    path = directory / "question.ulaw"
    path.write_bytes(audio)
    (directory / "question.labels").write_text(f"{QUESTION_LABEL[0]} {QUESTION_LABEL[1]}\n")
    return path


@dataclass
class CallsimRun:
    returncode: int
    report: dict
    timeline: list  # (stream ms, what), in order

    @property
    def call(self) -> dict:
        return self.report["per_call"][0]

    @property
    def metrics(self) -> dict:
        return self.call["metrics"]

    def find(self, pattern: str) -> list:
        """(stream ms, match) of every timeline line matching `pattern`."""
        out = []
        for ms, what in self.timeline:
            m = re.search(pattern, what)
            if m:
                out.append((ms, m))
        return out


async def run_callsim(url: str, audio: Path, timeout: float = 40) -> CallsimRun:
    """One call by callsim: the question, a key press, then talking over the bot's answer
    BARGE_IN_AFTER_MS into it; then it waits for the next reply to end and hangs up."""
    args = [
        str(CALLSIM), "--url", url, "--audio", str(audio),
        "--dtmf", f"{DTMF_AT_MS}:{DTMF_DIGIT}", "--barge-in-after", str(BARGE_IN_AFTER_MS),
        "--digital-silence", "--json", "--timeline", "--quiet",
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    timeline = []
    for line in err.decode().splitlines():
        m = re.match(r"^\s*(-?\d+) ms  (.*)$", line)
        if m:
            timeline.append((int(m.group(1)), m.group(2)))
    return CallsimRun(proc.returncode, json.loads(out), timeline)


@dataclass
class Seen:
    """A frame the bot saw, and when (time.monotonic())."""

    frame: Frame
    at: float


class ScriptedBot(FrameProcessor):
    """Stands in for STT -> LLM -> TTS: keeps the caller's audio, notes every other frame coming
    down, and answers each `trigger` frame with the next reply (as a TTS service would: started,
    audio in 100 ms pieces, stopped). After the last reply it ends the pipeline if `end` is set."""

    def __init__(self, replies: list, trigger: type, end: bool = False):
        super().__init__()
        self.replies = replies
        self.trigger = trigger
        self.end = end
        self.audio = bytearray()
        self.audio_rates: set = set()
        self.seen: list = []
        self.reply_sent_at: list = []  # time.monotonic() of each reply's first audio

    def frames(self, cls: type) -> list:
        return [s for s in self.seen if isinstance(s.frame, cls)]

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.audio += frame.audio
            self.audio_rates.add(frame.sample_rate)
            return
        if direction == FrameDirection.DOWNSTREAM:
            self.seen.append(Seen(frame, time.monotonic()))
        await self.push_frame(frame, direction)
        turn = len(self.reply_sent_at)
        if isinstance(frame, self.trigger) and turn < len(self.replies):
            pcm = self.replies[turn]
            self.reply_sent_at.append(time.monotonic())
            await self.push_frame(TTSStartedFrame(context_id=f"reply-{turn + 1}"))
            for i in range(0, len(pcm), TTS_RATE // 10 * 2):
                await self.push_frame(TTSAudioRawFrame(pcm[i : i + TTS_RATE // 10 * 2], TTS_RATE, 1, context_id=f"reply-{turn + 1}"))
            await self.push_frame(TTSStoppedFrame(context_id=f"reply-{turn + 1}"))
            if self.end and turn + 1 == len(self.replies):
                await self.push_frame(EndWorkerFrame())


@asynccontextmanager
async def loopback_server(app):
    """Serves `app` with uvicorn on 127.0.0.1 (any free port); yields the port."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 5)
        except asyncio.TimeoutError:
            server.force_exit = True


def envelope(pcm: bytes, rate: int) -> list:
    """RMS of each 20 ms frame of s16le audio."""
    n = rate // 50
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2])
    return [math.sqrt(sum(s * s for s in samples[i : i + n]) / n) for i in range(0, len(samples) - n + 1, n)]


def correlation(a: list, b: list) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a)
    vb = sum((y - mb) ** 2 for y in b)
    return cov / math.sqrt(va * vb)


@dataclass
class Handlers:
    """What the transport's event handlers reported, with when."""

    connected: list = field(default_factory=list)
    disconnected: list = field(default_factory=list)
    disconnected_clients: list = field(default_factory=list)
    barge_ins: list = field(default_factory=list)
    marks_played: list = field(default_factory=list)  # (name, played_ms, time.monotonic())

    def attach(self, transport) -> None:
        @transport.event_handler("on_client_connected")
        async def on_connected(_transport, started):
            self.connected.append(started)

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, client):
            self.disconnected.append(time.monotonic())
            self.disconnected_clients.append(client)

        @transport.event_handler("on_barge_in")
        async def on_barge_in(_transport, played_ms):
            self.barge_ins.append(played_ms)

        @transport.event_handler("on_mark_played")
        async def on_mark_played(_transport, name, played_ms):
            self.marks_played.append((name, played_ms, time.monotonic()))
