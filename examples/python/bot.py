"""A Twilio Media Streams bot that uses Trunkline for all its audio.

Point a `<Connect><Stream url="wss://your-host/media"/>` at it. The bot listens; when the caller
stops speaking it plays their last utterance back to them (a stand-in for STT -> LLM -> TTS), and
it stops talking the moment the caller interrupts (Trunkline detects the barge-in, drops the
queued audio and sends `clear` itself).

    python examples/python/bot.py --port 8765 [--drain-grace SECONDS]

On the same port it answers `GET /healthz` (200 while the process runs), `GET /readyz` (200, or
503 once draining) and `GET /metrics` (the engine's counters as Prometheus text).

On SIGTERM (a deploy or scale-down) it drains: at once `/readyz` answers 503 and new calls are
refused with 503, so the load balancer sends the next calls elsewhere; the live calls go on until
they end, for up to the grace (`--drain-grace`, else $TRUNKLINE_DRAIN_GRACE_S, else 30 s); calls still live
then are closed (1001, going away); then the bot exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

import trunkline

AGENT_RATE = 16000
TRUNKLINE_DRAIN_GRACE_S = float(os.environ.get("TRUNKLINE_DRAIN_GRACE_S", "30"))
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
log = logging.getLogger("bot")


# Caller audio kept while nobody speaks: an onset is reported a little after it happened.
KEEP_BYTES = 2 * AGENT_RATE * 2


class EchoAgent:
    """Keeps the caller's audio since the last onset and speaks it back when they stop."""

    def __init__(self) -> None:
        self.call_id = ""
        # Caller audio, s16le at AGENT_RATE: from the current utterance's onset, or the last
        # KEEP_BYTES while nobody speaks (a call's whole audio would grow by 115 MB an hour).
        # `audio_from` is the stream byte offset of its first byte.
        self.audio = bytearray()
        self.audio_from = 0
        self.onset_ms: int | None = None
        self.replies = 0
        # Reply audio not yet taken by the engine (it takes what fits; a TTS stream works the same
        # way), and the mark to place once all of it is queued.
        self.pending = b""
        self.pending_mark: str | None = None

    def on_audio(self, pcm: bytes) -> None:
        self.audio += pcm

    def trim(self) -> None:
        """Drops audio no utterance can need. Called once the events of the audio read so far
        are taken: an onset is reported after the audio it lies in was delivered, so trimming as
        audio arrives (a burst can bring seconds at once) could drop the start of an utterance."""
        if self.onset_ms is None and len(self.audio) > KEEP_BYTES:
            excess = len(self.audio) - KEEP_BYTES
            del self.audio[:excess]
            self.audio_from += excess

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
            self.call_id = ev.call_id
            log.info("call %s started (%s, %d Hz; params %s)", ev.call_id, ev.encoding, ev.sample_rate, ev.custom_parameters)
        elif ev.kind == "speech_started":
            self.onset_ms = ev.stream_ms
        elif ev.kind == "speech_stopped" and self.onset_ms is not None:
            # The worker may have delivered more audio between our last read and this event:
            # read again, so the buffer covers the event's stream time.
            self.on_audio(call.read_audio())
            start = max(0, self.onset_ms * AGENT_RATE // 1000 * 2 - self.audio_from)
            end = max(0, ev.stream_ms * AGENT_RATE // 1000 * 2 - self.audio_from)
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
                agent.trim()

        sender = asyncio.create_task(media_out())
        try:
            async for message in ws:
                await call.apush(message)  # waits out backpressure instead of dropping
        except ConnectionClosed:
            pass
        finally:
            # The carrier hung up (after its stop, or without one): the stream ends as with a
            # stop, so `stopped` comes. Let the last frames go out, then end the call.
            call.end_stream()
            try:
                await asyncio.wait_for(sender, timeout=5)
            except (asyncio.TimeoutError, ConnectionClosed) as e:
                # The carrier's socket was gone, or the last frames did not go out in time: the
                # call's figures are still worth the log line.
                log.warning("call %s: its last frames did not all go out (%r)", agent.call_id, e)
            stats = call.stats()
            log.info(
                "call %s ended: %d caller frames in, %d agent frames out, %d caller samples dropped",
                agent.call_id or "(not started)",
                stats["media_frames_in"],
                stats["frames_out"],
                stats["agent_samples_dropped"],
            )


class Bot:
    """The WebSocket endpoint: the calls, the health endpoints, and the drain."""

    def __init__(self, engine: trunkline.Engine) -> None:
        self.engine = engine
        self.draining = False
        # The live calls: each handler's task and its connection.
        self.calls: dict[asyncio.Task, ServerConnection] = {}

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answers the plain HTTP endpoints; refuses new calls while draining; lets the other
        requests go on to the WebSocket handshake."""
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(200, "ok\n")
        if path == "/readyz":
            return connection.respond(503, "draining\n") if self.draining else connection.respond(200, "ready\n")
        if path == "/metrics":
            response = connection.respond(200, self.engine.metrics())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = PROMETHEUS_TEXT
            return response
        if self.draining:
            return connection.respond(503, "draining: no new calls\n")
        return None

    async def handle(self, ws: ServerConnection) -> None:
        task = asyncio.current_task()
        self.calls[task] = ws
        try:
            await handle_call(ws, self.engine)
        finally:
            del self.calls[task]

    async def drain(self, grace: float) -> bool:
        """Takes no new calls from now on, waits up to `grace` seconds for the live ones to end,
        then closes those left. Whether every call ended by itself."""
        self.draining = True
        live = set(self.calls)
        log.info("draining: %d live call(s), up to %.0f s", len(live), grace)
        pending = (await asyncio.wait(live, timeout=grace))[1] if live else set()
        for task in pending:
            ws = self.calls.get(task)
            if ws is not None:
                await ws.close(1001, "server shutting down")
        if pending:
            await asyncio.wait(pending, timeout=10)
        log.info("drained: %s", f"{len(pending)} call(s) cut at the grace" if pending else "every call ended")
        return not pending


async def main(
    host: str,
    port: int,
    ready: asyncio.Future | None = None,
    stop: asyncio.Event | None = None,
    drain_grace: float = TRUNKLINE_DRAIN_GRACE_S,
) -> bool:
    """Serves calls until `stop` is set (forever without one), then drains them for up to
    `drain_grace` seconds. Returns whether every call ended within the grace."""
    with trunkline.Engine() as engine:
        bot = Bot(engine)
        async with serve(bot.handle, host, port, process_request=bot.process_request) as server:
            bound = server.sockets[0].getsockname()[1]
            log.info("listening on ws://%s:%d", host, bound)
            if ready is not None:
                ready.set_result(bound)
            await (stop.wait() if stop is not None else asyncio.Future())
            return await bot.drain(drain_grace)


async def serve_until_sigterm(host: str, port: int, drain_grace: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await main(host, port, stop=stop, drain_grace=drain_grace)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--drain-grace", type=float, default=TRUNKLINE_DRAIN_GRACE_S, metavar="SECONDS",
                        help="on SIGTERM, how long live calls may go on (default: $TRUNKLINE_DRAIN_GRACE_S or 30)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve_until_sigterm(args.host, args.port, args.drain_grace))
