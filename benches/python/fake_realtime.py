"""A fake OpenAI Realtime server for the bridge benchmark (bridge_cpu.py), run as a process of its
own so that its CPU is not counted in the bridge's.

Its minimal logic follows the fake in bindings/python/tests/test_openai_bridge.py: it takes
`session.update` and `input_audio_buffer.append`, runs an energy VAD over the appended audio
(`input_audio_buffer.speech_started` / `speech_stopped`), and answers each end of turn with a
response of REPLY_MS of audio streamed twice as fast as real time in 100 ms deltas. It speaks
both formats the two bridges ask for:

- GA `audio/pcm` at 24 kHz (the Trunkline example), deltas named `response.output_audio.delta`;
- beta `g711_ulaw` (the sample bridge), deltas named `response.audio.delta`.

`response.cancel` stops the response; `conversation.item.truncate` is acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import warnings

import numpy as np
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the fake only (Python < 3.13); the bridges under test never use it

CHUNK_MS = 100
SPEEDUP = 2


class Connection:
    def __init__(self, ws, reply_ms: int) -> None:
        self.ws = ws
        self.reply_ms = reply_ms
        self.ulaw = False
        self.rate = 24000
        self.delta_name = "response.output_audio.delta"
        self.pending = b""  # appended s16 audio not yet scanned
        self.speaking = False
        self.voiced = self.quiet = 0
        self.responses = 0
        self.cancelled = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def send(self, event: dict) -> None:
        await self.ws.send(json.dumps(event))

    async def run(self) -> None:
        try:
            async for message in self.ws:
                event = json.loads(message)
                kind = event.get("type")
                if kind == "session.update":
                    session = event["session"]
                    if session.get("input_audio_format") == "g711_ulaw":
                        self.ulaw, self.rate, self.delta_name = True, 8000, "response.audio.delta"
                elif kind == "input_audio_buffer.append":
                    audio = base64.b64decode(event["audio"])
                    self.pending += audioop.ulaw2lin(audio, 2) if self.ulaw else audio
                    await self.vad()
                elif kind == "response.cancel":
                    self.cancelled.set()
                elif kind == "conversation.item.truncate":
                    await self.send({"type": "conversation.item.truncated", "item_id": event["item_id"],
                                     "content_index": 0, "audio_end_ms": event["audio_end_ms"]})
        except ConnectionClosed:
            pass
        finally:
            if self.task is not None:
                self.task.cancel()

    async def vad(self) -> None:
        """Speech: 3 blocks of 20 ms above the threshold; its end: 500 ms below."""
        block = self.rate // 50 * 2
        while len(self.pending) >= block:
            samples = np.frombuffer(self.pending[:block], dtype="<i2").astype(np.float64)
            self.pending = self.pending[block:]
            loud = math.sqrt(float(np.mean(samples * samples))) > 600
            if not self.speaking:
                self.voiced = self.voiced + 1 if loud else 0
                if self.voiced == 3:
                    self.speaking, self.quiet = True, 0
                    await self.send({"type": "input_audio_buffer.speech_started"})
            else:
                self.quiet = 0 if loud else self.quiet + 1
                if self.quiet * 20 >= 500:
                    self.speaking, self.voiced = False, 0
                    await self.send({"type": "input_audio_buffer.speech_stopped"})
                    self.task = asyncio.create_task(self.respond())

    def reply(self, n: int) -> bytes:
        count = self.rate * self.reply_ms // 1000
        t = np.arange(count) / self.rate
        pcm = (6000 * np.sin(2 * math.pi * (300 + 100 * (n % 4)) * t)).astype("<i2").tobytes()
        return audioop.lin2ulaw(pcm, 2) if self.ulaw else pcm

    async def respond(self) -> None:
        self.responses += 1
        response, item = f"resp_{self.responses}", f"item_{self.responses}"
        self.cancelled.clear()
        await self.send({"type": "response.created", "response": {"id": response, "status": "in_progress"}})
        await self.send({"type": "response.output_item.added", "response_id": response,
                         "item": {"id": item, "type": "message", "role": "assistant"}})
        audio = self.reply(self.responses)
        chunk = self.rate * CHUNK_MS // 1000 * (1 if self.ulaw else 2)
        status = "completed"
        for i in range(0, len(audio), chunk):
            if self.cancelled.is_set():
                status = "cancelled"
                break
            await self.send({"type": self.delta_name, "response_id": response, "item_id": item, "output_index": 0,
                             "content_index": 0, "delta": base64.b64encode(audio[i : i + chunk]).decode()})
            await asyncio.sleep(CHUNK_MS / 1000 / SPEEDUP)
        await self.send({"type": "response.done", "response": {"id": response, "status": status}})


async def run(reply_ms: int) -> None:
    async def handle(ws):
        await Connection(ws, reply_ms).run()

    async with serve(handle, "127.0.0.1", 0, max_size=None) as server:
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()
