"""A phone line to the OpenAI Realtime API, with Trunkline between the carrier and the model.

Trunkline's offload server is the carrier's Media Streams endpoint (Twilio by default; any other
Trunkline dialect with `--dialect`). For each call the bridge opens a Realtime WebSocket and:

- sends the caller's audio as `input_audio_buffer.append` (base64);
- plays the model's audio deltas (`response.output_audio.delta`, or the beta name
  `response.audio.delta`) through `session.play()`, which paces them to the carrier. Each response
  item's audio is a segment of its own (`session.begin_segment(item_id)`), so when the caller
  interrupts, Trunkline says which item they were hearing and how much of it;
- on every interruption sends `response.cancel` (if a response is in progress) and
  `conversation.item.truncate` with that item and the milliseconds the caller actually heard,
  never more than the audio received for it. Deltas of the cut response that arrive after the
  cut are dropped, so no stale audio is played once the caller has taken the turn.

Who decides that the caller interrupts:

- by default Trunkline, locally (its barge-in: voiced speech over the agent's audio, so a cough
  does not cut the agent off, and no round trip to the model first). The model's server VAD still
  ends the caller's turns, but it is told neither to cancel a response itself
  (`interrupt_response: false`) nor to start one (`create_response: false`): the bridge cancels
  and truncates when Trunkline reports the barge-in, and asks for a response
  (`response.create`) when the server commits a speech that was a turn, not for a cough or an
  "mm-hm" over the agent, which would otherwise queue a second reply;
- with `--server-vad`, the model: its `input_audio_buffer.speech_started` while the agent is
  talking makes the bridge call `session.interrupt()`, and the `interrupted` event that follows is
  handled as above. Trunkline's own barge-in is off then.

Audio is 8 kHz G.711 µ-law both ways by default (`audio/pcmu`, the beta API's `g711_ulaw`), passed
through: the session's `agent_format="ulaw"` makes `read_audio()` return the carrier's µ-law bytes
exactly as they arrived, which go to the model base64-encoded as they are, and the model's delta
bytes go to `play(data, 8000)` as they are, out in the carrier's frames untouched. The bridge
decodes, encodes and resamples nothing, and neither does Trunkline on a µ-law carrier (Twilio,
and the other carriers' µ-law streams); on another codec Trunkline converts at the edge. With
`--pcm`, audio is 16-bit PCM at 24 kHz both ways (`audio/pcm`) and Trunkline converts to and from
the carrier's codec. Barge-in, segments, truncation and the dropping of stale deltas work the
same in both; only the truncate's ceiling counts at the format's rate (a µ-law byte is 1/8 ms).

    OPENAI_API_KEY=... python examples/python/openai_realtime_bridge.py --bind 0.0.0.0:8080 \
        [--path /media] [--auth-token TOKEN] [--dialect twilio] [--server-vad] [--pcm] [--url WSS_URL]

The carrier's stream URL is then `wss://your-host/media` (e.g. a Twilio
`<Connect><Stream url="wss://your-host/media"/>`). The offload server also answers `GET /healthz`,
`GET /readyz` and `GET /metrics`. On SIGTERM it drains: new calls are refused at once, live ones go
on for up to the grace (`--drain-grace`, else $TRUNKLINE_DRAIN_GRACE_S, else 30 s), then the
bridge exits.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import signal
from typing import NamedTuple

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

import trunkline

RATE = 24000  # the Realtime API's PCM rate, both ways (with --pcm)
DEFAULT_URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
DEFAULT_VOICE = "alloy"
DEFAULT_INSTRUCTIONS = "You are a helpful assistant on a phone call. Keep your answers short."
TRUNKLINE_DRAIN_GRACE_S = float(os.environ.get("TRUNKLINE_DRAIN_GRACE_S", "30"))
# The audio delta's name in the GA API and in the beta one.
AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
# Speech begun over the agent's audio that Trunkline did not call a barge-in is a turn only if
# the agent fell silent and the speech lasted this long (ms, by the server's VAD: more than a
# backchannel's).
TURN_OVER_AGENT_MS = 600
log = logging.getLogger("openai_realtime_bridge")


class AudioFormat(NamedTuple):
    """The audio both ways: the session's agent format and rate, the Realtime API's name for it."""

    agent_format: str
    rate: int
    width: int  # bytes per sample
    realtime: dict


# µ-law passed through untouched (the default), or PCM at 24 kHz that Trunkline converts.
ULAW = AudioFormat("ulaw", 8000, 1, {"type": "audio/pcmu"})
PCM = AudioFormat("pcm", RATE, 2, {"type": "audio/pcm", "rate": RATE})


def session_update(voice: str, instructions: str, audio: AudioFormat = ULAW, server_vad: bool = False) -> dict:
    """The Realtime session: `audio` both ways; the server's VAD ends turns, but never cancels
    a response by itself (the bridge does, see the module's docstring). With `server_vad` it also
    starts the responses; else the bridge does, for the speech that was a turn (not a backchannel
    over the agent)."""
    return {
        "type": "session.update",
        "session": {
            "type": "realtime",
            "instructions": instructions,
            "audio": {
                "input": {
                    "format": audio.realtime,
                    "turn_detection": {"type": "server_vad", "create_response": server_vad,
                                       "interrupt_response": False},
                },
                "output": {"format": audio.realtime, "voice": voice},
            },
        },
    }


class Bridge:
    """One call: the Trunkline session on one side, the Realtime WebSocket on the other."""

    def __init__(self, call: trunkline.Session, realtime: ClientConnection, server_vad: bool,
                 audio: AudioFormat = ULAW) -> None:
        self.call = call
        self.realtime = realtime
        self.server_vad = server_vad
        self.audio = audio
        self.response_id: str | None = None  # the response in progress (response.created .. done)
        # Model audio not yet taken by the engine, in order: [item_id, bytes]. play() takes what
        # fits now; the rest waits for the session's next wakeup.
        self.pending: list[list] = []
        self.begun: set[str] = set()  # items whose segment has begun
        self.received: dict[str, int] = {}  # samples received per item: the truncate's ceiling
        # What an interruption cut: their deltas still in flight are dropped when they arrive.
        self.cut_responses: set[str] = set()
        self.cut_items: set[str] = set()
        # The caller's speech the server's VAD is hearing now (speech_started .. committed): where
        # it began (ms of the input audio), whether over the agent's audio, whether Trunkline
        # called it a barge-in, and where it ended.
        self.speech_from = 0
        self.speech_over_agent = False
        self.speech_cut_in = False
        self.speech_to = 0

    async def send(self, event: dict) -> None:
        await self.realtime.send(json.dumps(event))

    # Carrier -> model ---------------------------------------------------------------------------

    async def from_carrier(self) -> None:
        """Caller audio to the model, model audio to the engine, Trunkline's events; until the
        stream stops."""
        async for _ in self.call.wakeups():
            await self.send_caller_audio()
            self.feed()
            for ev in self.call.events():
                if ev.kind == "started":
                    log.info("call %s started (%s, %d Hz)", ev.call_id, ev.encoding, ev.sample_rate)
                elif ev.kind in ("barge_in", "interrupted"):
                    await self.on_cut(ev)
                elif ev.kind == "protocol_error":
                    log.warning("dropped a bad carrier message: %s", ev.error_message)
                elif ev.kind == "stopped":
                    await self.send_caller_audio()  # the last of it
                    return

    async def send_caller_audio(self) -> None:
        audio = self.call.read_audio()  # µ-law: the carrier's bytes as they came
        if audio:
            await self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})

    def feed(self) -> None:
        """Hands the engine as much model audio as it takes now, each item in its own segment."""
        while self.pending:
            item_id, audio = self.pending[0]
            try:
                if item_id not in self.begun:
                    self.call.begin_segment(item_id)
                    self.begun.add(item_id)
                taken = self.call.play(audio, self.audio.rate) * self.audio.width
            except trunkline.TrunklineError as e:
                if e.code != trunkline.Result.FULL:
                    raise
                return  # nothing fits now: the rest goes on the next wakeup
            if taken < len(audio):
                self.pending[0][1] = audio[taken:]
                return
            self.pending.pop(0)

    async def on_committed(self) -> None:
        """The server's VAD ended a speech of the caller's (Trunkline mode): the model answers it
        if it was a turn. Speech over the agent that Trunkline did not call a barge-in (a cough,
        an "mm-hm") is none, unless it outlasted the agent's audio long enough to be one."""
        turn = (not self.speech_over_agent or self.speech_cut_in
                or (not self.agent_talking() and self.speech_to - self.speech_from >= TURN_OVER_AGENT_MS))
        if turn:
            await self.send({"type": "response.create"})
        else:
            log.info("%d ms of speech over the agent, not a barge-in: no reply", self.speech_to - self.speech_from)

    async def on_cut(self, ev: trunkline.Event) -> None:
        """The agent was cut off (Trunkline's barge-in, or our interrupt() on the server's VAD):
        the engine already dropped what it had queued and sent the carrier's clear. Cancel the
        response, drop its audio still to come, and tell the model how much of the item the
        caller heard."""
        self.speech_cut_in = True  # the speech the server is hearing is a turn
        await self.stop_model()
        if ev.segment is not None:
            # None: nothing of it heard yet (the truncate then keeps none of it).
            heard = ev.segment_played_ms or 0
            await self.truncate(ev.segment, heard)
            # Later items queued behind it: the caller heard none of them.
            for item_id in ev.unheard_segments:
                await self.truncate(item_id, 0)
        log.info("%s: caller heard %s ms of item %s", ev.kind, ev.segment_played_ms, ev.segment)

    async def stop_model(self) -> None:
        """Cancels the response in progress and drops its audio, queued here or still to come.
        Items queued here that never reached the engine are truncated at 0: the caller heard none
        of them, and the engine, which never had them, does not name them in the cut."""
        # Everything is dropped before the first await: the carrier side's feed() may run while a
        # send waits, and audio played after interrupt() would play.
        response_id, self.response_id = self.response_id, None
        never_played = [item_id for item_id, _ in self.pending if item_id not in self.begun]
        for item_id, _ in self.pending:
            self.cut_items.add(item_id)
        self.pending.clear()
        if response_id is not None:
            self.cut_responses.add(response_id)
            await self.send({"type": "response.cancel"})
        for item_id in dict.fromkeys(never_played):
            await self.truncate(item_id, 0)

    async def truncate(self, item_id: str, heard_ms: int) -> None:
        self.cut_items.add(item_id)
        # The model refuses a truncate past the audio it sent for the item.
        ceiling = self.received.get(item_id, 0) * 1000 // self.audio.rate
        await self.send({
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": min(heard_ms, ceiling),
        })

    # Model -> carrier ---------------------------------------------------------------------------

    async def from_model(self) -> None:
        async for message in self.realtime:
            event = json.loads(message)
            kind = event.get("type", "")
            if kind in AUDIO_DELTAS:
                self.on_audio(event)
            elif kind == "response.created":
                self.response_id = event["response"]["id"]
            elif kind == "response.done":
                if self.response_id == event["response"]["id"]:
                    self.response_id = None
            elif kind == "input_audio_buffer.speech_started":
                self.speech_from = self.speech_to = event.get("audio_start_ms", 0)
                self.speech_over_agent, self.speech_cut_in = self.agent_talking(), False
                if self.server_vad and self.speech_over_agent:
                    # The engine reports `interrupted`, which on_cut handles like a barge-in.
                    # Audio played after interrupt() would play, so the response stops here, not
                    # when the event is read.
                    self.call.interrupt()
                    await self.stop_model()
            elif kind == "input_audio_buffer.speech_stopped":
                self.speech_to = event.get("audio_end_ms", self.speech_from)
            elif kind == "input_audio_buffer.committed" and not self.server_vad:
                await self.on_committed()
            elif kind == "error":
                log.warning("Realtime API error: %s", event.get("error"))

    def on_audio(self, event: dict) -> None:
        item_id = event["item_id"]
        if item_id in self.cut_items or event.get("response_id") in self.cut_responses:
            return  # in flight when the caller cut the response off: never play it
        audio = base64.b64decode(event["delta"])  # µ-law: played as it is
        self.received[item_id] = self.received.get(item_id, 0) + len(audio) // self.audio.width
        if self.pending and self.pending[-1][0] == item_id:
            self.pending[-1][1] += audio
        else:
            self.pending.append([item_id, audio])
        self.feed()

    def agent_talking(self) -> bool:
        return self.response_id is not None or bool(self.pending) or self.call.queued_ms > 0


def log_failure(task: asyncio.Task) -> None:
    """A call that ended by an error the bridge did not expect (the model's socket closing during
    the session.update, say): said at once, not when the task is collected."""
    if not task.cancelled() and task.exception() is not None:
        log.error("call failed", exc_info=task.exception())


async def bridge_call(call: trunkline.Session, url: str, api_key: str, server_vad: bool,
                      voice: str = DEFAULT_VOICE, instructions: str = DEFAULT_INSTRUCTIONS,
                      audio: AudioFormat = ULAW) -> None:
    with call:
        try:
            realtime = await connect(url, additional_headers={"Authorization": f"Bearer {api_key}"}, max_size=None)
        except (OSError, WebSocketException, asyncio.TimeoutError) as e:
            # Closing the session makes the offload server hang up on the carrier.
            log.error("cannot reach the Realtime API at %s: %s", url, e)
            return
        async with realtime:
            await realtime.send(json.dumps(session_update(voice, instructions, audio, server_vad)))
            bridge = Bridge(call, realtime, server_vad, audio)
            model = asyncio.create_task(bridge.from_model())
            carrier = asyncio.create_task(bridge.from_carrier())
            # Either side ending ends the call: the carrier's stop, or the model's socket closing.
            done, _ = await asyncio.wait({model, carrier}, return_when=asyncio.FIRST_COMPLETED)
            for task in (model, carrier):
                task.cancel()
            await asyncio.gather(model, carrier, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), ConnectionClosed):
                    log.error("call ended by an error", exc_info=task.exception())
            if model in done:
                log.warning("the Realtime API closed the connection: ending the call")


async def main(
    bind: str,
    url: str,
    api_key: str,
    path: str | None = "/media",
    auth_token: str | None = None,
    dialect: str = "twilio",
    server_vad: bool = False,
    pcm: bool = False,
    ready: asyncio.Future | None = None,
    stop: asyncio.Event | None = None,
    drain_grace: float = TRUNKLINE_DRAIN_GRACE_S,
) -> bool:
    """Bridges calls until `stop` is set (forever without one), then drains them for up to
    `drain_grace` seconds. `ready` gets the port once listening. Returns whether every call ended
    within the grace. `pcm`: PCM at 24 kHz instead of the µ-law pass-through."""
    audio = PCM if pcm else ULAW
    session = {
        "agent_format": audio.agent_format,
        "agent_rate": audio.rate,
        "dialect": dialect,
        "barge_in_enabled": not server_vad,
        "agent_ring_ms": 2000,  # room for the caller's audio should the loop fall behind
    }
    with trunkline.Engine() as engine, trunkline.Server(
        engine, bind=bind, path=path, auth_token=auth_token, session=session
    ) as server:
        log.info("listening on %s%s (%s, %s)", bind.rsplit(":", 1)[0] + f":{server.port}", path or "", dialect,
                 audio.realtime["type"])
        if ready is not None:
            ready.set_result(server.port)
        calls: set[asyncio.Task] = set()

        def take(call: trunkline.Session) -> None:
            task = asyncio.create_task(bridge_call(call, url, api_key, server_vad, audio=audio))
            calls.add(task)
            task.add_done_callback(calls.discard)
            task.add_done_callback(log_failure)

        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else asyncio.Future()
        # The server has no asyncio notification of new calls: poll, until told to stop; then
        # drain on a thread (it blocks) while this loop keeps bridging the live calls and takes
        # any call whose stream had started just before.
        draining: asyncio.Future | None = None
        while draining is None or not draining.done():
            if draining is None and stopping.done():
                log.info("draining: %d live call(s), up to %.0f s", len(calls), drain_grace)
                draining = asyncio.ensure_future(asyncio.to_thread(server.drain, drain_grace))
            call = server.accept()
            if call is not None:
                take(call)
            else:
                await asyncio.wait({draining or stopping}, timeout=0.02)
        ended = draining.result()
        if calls:
            await asyncio.wait(calls, timeout=5)
        log.info("drained: %s", "every call ended" if ended else "calls cut at the grace")
        return ended


async def serve_until_sigterm(args: argparse.Namespace, api_key: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await main(args.bind, args.url, api_key, path=args.path, auth_token=args.auth_token, dialect=args.dialect,
               server_vad=args.server_vad, pcm=args.pcm, stop=stop, drain_grace=args.drain_grace)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8080", help="address:port of the carrier's endpoint")
    parser.add_argument("--path", default="/media", help="the stream's URL path")
    parser.add_argument("--auth-token", help="check the carrier's signature with this secret")
    parser.add_argument("--dialect", default="twilio", help="the carrier: twilio, telnyx, plivo, vonage, ...")
    parser.add_argument("--url", default=DEFAULT_URL, help="the Realtime WebSocket URL")
    parser.add_argument("--server-vad", action="store_true",
                        help="interrupt on the model's speech_started instead of Trunkline's barge-in")
    parser.add_argument("--pcm", action="store_true",
                        help="16-bit PCM at 24 kHz to and from the model instead of µ-law passed through")
    parser.add_argument("--drain-grace", type=float, default=TRUNKLINE_DRAIN_GRACE_S, metavar="SECONDS",
                        help="on SIGTERM, how long live calls may go on (default: $TRUNKLINE_DRAIN_GRACE_S or 30)")
    args = parser.parse_args()
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        parser.error("set OPENAI_API_KEY")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve_until_sigterm(args, key))
