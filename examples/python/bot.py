"""A Twilio Media Streams bot that uses Trunkline for all its audio.

Point a `<Connect><Stream url="wss://your-host/media"/>` at it. The bot listens; when the caller
stops speaking it plays their last utterance back to them (a stand-in for STT -> LLM -> TTS), and
it stops talking the moment the caller interrupts (Trunkline detects the barge-in, drops the
queued audio and sends `clear` itself).

    python examples/python/bot.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

import trunkline

AGENT_RATE = 16000
log = logging.getLogger("bot")


class EchoAgent:
    """Keeps the caller's audio since the last onset and speaks it back when they stop."""

    def __init__(self) -> None:
        self.audio = bytearray()  # all caller audio so far, s16le at AGENT_RATE
        self.onset_ms: int | None = None
        self.replies = 0
        # Reply audio not yet taken by the engine (it takes what fits; a TTS stream works the same
        # way), and the mark to place once all of it is queued.
        self.pending = b""
        self.pending_mark: str | None = None

    def on_audio(self, pcm: bytes) -> None:
        self.audio += pcm

    def feed(self, call: trunkline.Session) -> None:
        """Hands the engine as much of the pending reply as it takes now."""
        if self.pending:
            try:
                taken = call.play(self.pending, AGENT_RATE)
            except trunkline.TrunklineError as e:
                if e.code != trunkline.Result.FULL:
                    raise
                return
            self.pending = self.pending[taken * 2 :]
        if not self.pending and self.pending_mark:
            call.mark(self.pending_mark)
            self.pending_mark = None

    def on_event(self, call: trunkline.Session, ev: trunkline.Event) -> None:
        if ev.kind == "started":
            log.info("call %s started (%s, %d Hz; params %s)", ev.call_id, ev.encoding, ev.sample_rate, ev.custom_parameters)
        elif ev.kind == "speech_started":
            self.onset_ms = ev.stream_ms
        elif ev.kind == "speech_stopped" and self.onset_ms is not None:
            # The worker may have delivered more audio between our last read and this event:
            # read again, so the buffer covers the event's stream time.
            self.on_audio(call.read_audio())
            start = self.onset_ms * AGENT_RATE // 1000 * 2
            end = ev.stream_ms * AGENT_RATE // 1000 * 2
            utterance = bytes(self.audio[start:end])
            self.onset_ms = None
            self.replies += 1
            log.info("caller said %.2f s; echoing it", len(utterance) / 2 / AGENT_RATE)
            self.pending = utterance
            self.pending_mark = f"reply-{self.replies}"
            self.feed(call)
        elif ev.kind == "barge_in":
            # Trunkline already dropped what it had queued; drop what we had not handed over.
            self.pending, self.pending_mark = b"", None
            log.info("interrupted: the caller heard %d ms of the reply", ev.played_ms)
        elif ev.kind == "mark_played":
            log.info("reply %s fully heard", ev.name)
        elif ev.kind == "protocol_error":
            log.warning("dropped a bad message: %s", ev.error_message)


async def handle_call(ws: ServerConnection, engine: trunkline.Engine) -> None:
    # Carriers deliver audio in bursts after a network stall; this bot reads audio on the asyncio
    # loop, so it gives Trunkline room for a few seconds of it (beyond it, audio is dropped and
    # counted in stats()["agent_samples_dropped"]).
    with engine.session(agent_rate=AGENT_RATE, agent_ring_ms=5000) as call:
        agent = EchoAgent()

        async def media_out() -> None:
            # Everything Trunkline produces: paced frames to send, caller audio, events.
            async for _ in call.wakeups():
                for message in call.outbound():
                    await ws.send(message)
                agent.on_audio(call.read_audio())
                agent.feed(call)
                for ev in call.events():
                    agent.on_event(call, ev)
                    if ev.kind == "stopped":
                        return

        sender = asyncio.create_task(media_out())
        try:
            async for message in ws:
                await call.apush(message)  # waits out backpressure instead of dropping
        except ConnectionClosed:
            pass
        finally:
            # Let the last frames go out, then end the call.
            await asyncio.wait_for(sender, timeout=5) if not sender.done() else None


async def main(host: str, port: int, ready: asyncio.Future | None = None) -> None:
    with trunkline.Engine() as engine:
        async with serve(lambda ws: handle_call(ws, engine), host, port) as server:
            bound = server.sockets[0].getsockname()[1]
            log.info("listening on ws://%s:%d", host, bound)
            if ready is not None:
                ready.set_result(bound)
            await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(args.host, args.port))
