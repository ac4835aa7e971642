"""A phone line to Google's Gemini Live API, with Trunkline between the carrier and the model.

Trunkline's offload server is the carrier's Media Streams endpoint (Twilio by default; any other
Trunkline dialect with `--dialect`). For each call the bridge opens a Live API WebSocket
(BidiGenerateContent), sends the `setup` message (audio replies; the model's own activity
detection off), and once the model answers `setupComplete`:

- sends the caller's audio as `realtimeInput.audio` (16-bit PCM at 16 kHz, base64);
- marks the caller's turns itself, from Trunkline's speech detection: `activityStart` at the
  onset of their speech, `activityEnd` when they stop. The audio is held back a little while
  nobody speaks, so that `activityStart` goes out ahead of the onset's own audio and the model
  hears the turn from its first syllable;
- plays the model's audio (`serverContent.modelTurn` parts, 16-bit PCM at 24 kHz) through
  `session.play()`, which paces it to the carrier. Each model turn is a segment of its own
  (`session.begin_segment("turn-N")`), so when the caller cuts in Trunkline says how much of
  that turn they heard (logged: the Live API has no message to truncate a turn).

A Live connection lasts about 10 minutes: the bridge asks for session resumption handles, and
when the server says `goAway` (or the connection drops) it goes on in a new connection that
resumes the session, at the next boundary between the model's turns, while the carrier's call
goes on; a sliding context window keeps a long call past the 15 minutes of an uncompressed audio
session.

Barge-in is local. Speech over the agent's audio is not a turn yet: Trunkline's barge-in decides
(voiced speech for `barge_in_min_speech_ms`, so a cough or an "mm-hm" does not cut the agent
off). On a barge-in Trunkline has already dropped the queued reply and cleared the carrier; the
bridge then sends `activityStart` (from the speech's onset), which makes the model stop the turn
and answer `serverContent.interrupted`. Audio of the cut turn still arriving is dropped, never
played. A short noise over the agent simply goes to the model as audio outside any turn.

    GEMINI_API_KEY=... python examples/python/gemini_live_bridge.py --bind 0.0.0.0:8080 \
        [--path /media] [--auth-token TOKEN] [--dialect twilio] [--model MODEL] [--voice NAME] \
        [--live-url WSS_URL]

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
import re
import signal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

import trunkline

IN_RATE = 16000  # the caller's audio to the model
OUT_RATE = 24000  # the model's audio (its parts say their rate; this is what it sends)
IN_MIME = f"audio/pcm;rate={IN_RATE}"
DEFAULT_URL = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
DEFAULT_MODEL = "models/gemini-2.5-flash-native-audio-preview-09-2025"
DEFAULT_INSTRUCTIONS = "You are a helpful assistant on a phone call. Keep your answers short."
TRUNKLINE_DRAIN_GRACE_S = float(os.environ.get("TRUNKLINE_DRAIN_GRACE_S", "30"))
# Where the activity marks go in the caller's audio: this far before the onset Trunkline reports,
# and this far after the end of the speech (Trunkline's default vad_hangover_ms: the audio up to
# there has been read, and mostly sent, when speech_stopped comes). Audio read later, when the loop
# runs late, stays outside the turn.
ACTIVITY_LEAD_MS = 100
ACTIVITY_TAIL_MS = 400
# Caller audio held back while nobody speaks: more than Trunkline takes to confirm an onset, so
# the onset's audio is still here when speech_started comes.
IDLE_HOLD_MS = 1000
# The most held back while speech over the agent waits for Trunkline's barge-in decision.
PENDING_HOLD_MS = 3000
# Speech begun over the agent's audio that outlasts it becomes a turn once this much has been
# read since its onset without its speech_stopped: Trunkline's barge-in minimum (300 ms of voiced
# speech, by default) and hangover. A backchannel or a cough over the end of a reply has had its
# speech_stopped by then, and stays no turn, as it would over the middle of one.
TURN_OVER_AGENT_MS = 300 + ACTIVITY_TAIL_MS
log = logging.getLogger("gemini_live_bridge")


def setup_message(model: str, voice: str | None, instructions: str, resume: str | None = None) -> dict:
    """Audio replies; the model's automatic activity detection off, so the bridge's
    activityStart / activityEnd (Trunkline's speech events) mark the caller's turns. An
    activityStart while the model speaks interrupts it (the default activity handling).

    A Live connection lasts about 10 minutes (the server says `goAway` first), and an audio
    session without compression about 15: the setup asks for resumption handles (the server
    sends `sessionResumptionUpdate`), so the bridge can go on in a new connection (`resume`: the
    latest handle), and for a sliding context window, so a long call is not cut at 15 minutes."""
    generation: dict = {"responseModalities": ["AUDIO"]}
    if voice:
        generation["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}
    return {
        "setup": {
            "model": model,
            "generationConfig": generation,
            "systemInstruction": {"parts": [{"text": instructions}]},
            "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}},
            "sessionResumption": {"handle": resume} if resume else {},
            "contextWindowCompression": {"slidingWindow": {}},
        }
    }


class SetupRefused(Exception):
    """The Live API did not accept the setup."""


async def open_live(url: str, api_key: str, setup: dict) -> ClientConnection:
    """A Live API connection whose setup the model has accepted (`setupComplete`)."""
    live = await connect(url, additional_headers={"x-goog-api-key": api_key}, max_size=None)
    try:
        await live.send(json.dumps(setup))
        # Nothing else may be sent before the model accepts the setup; the caller's audio waits in
        # the session meanwhile.
        first = json.loads(await asyncio.wait_for(live.recv(), 10))
    except (ConnectionClosed, asyncio.TimeoutError) as e:
        await live.close()
        raise SetupRefused(getattr(e, "rcvd", None) or e) from e
    if "setupComplete" not in first:
        await live.close()
        raise SetupRefused(f"expected setupComplete, got {first}")
    return live


def pcm_rate(mime_type: str) -> int:
    m = re.search(r"rate=(\d+)", mime_type)
    return int(m.group(1)) if m else OUT_RATE


class Bridge:
    """One call: the Trunkline session on one side, the Live API WebSocket on the other."""

    def __init__(self, call: trunkline.Session, live: ClientConnection, reopen) -> None:
        self.call = call
        self.live = live
        # reopen(handle): a new connection resuming the session (see `setup_message`); the latest
        # resumable handle the server gave.
        self.reopen = reopen
        self.resume_handle: str | None = None
        self.going_away = False  # the server said goAway: resume at the next turn boundary
        # Caller audio read from the session but not sent yet; `held_from` is the sample (at
        # IN_RATE, from the stream's start, the clock of Trunkline's stream_ms) it begins at.
        self.held = bytearray()
        self.held_from = 0
        self.dropped = 0  # the session's agent_samples_dropped so far
        self.in_activity = False  # activityStart sent, activityEnd not yet
        # Onset (stream ms) of speech over the agent's audio that Trunkline has not called a
        # barge-in (yet): not a turn unless it becomes one.
        self.pending_onset: int | None = None
        # The model's turn now arriving ("turn-N", None between turns), and whether the caller
        # cut it off: its audio is then dropped until the model ends it.
        self.turns = 0
        self.turn: str | None = None
        self.turn_cut = False
        # Model audio not yet taken by the engine, in order: [turn, pcm, rate]. play() takes what
        # fits now; the rest waits for the session's next wakeup.
        self.pending: list[list] = []
        self.begun: set[str] = set()  # turns whose segment has begun
        self.received_ms: dict[str, float] = {}  # audio received per turn
        self.dropped_ms = 0.0  # audio of cut turns that came after the cut

    async def send_input(self, body: dict) -> None:
        await self.live.send(json.dumps({"realtimeInput": body}))

    # Carrier -> model ---------------------------------------------------------------------------

    async def from_carrier(self) -> None:
        """Caller audio and turns to the model, model audio to the engine, Trunkline's events;
        until the stream stops."""
        async for _ in self.call.wakeups():
            self.read_caller_audio()
            self.feed()
            for ev in self.call.events():
                if ev.kind in ("speech_started", "speech_stopped", "barge_in"):
                    log.debug("%s at %d ms", ev.kind, ev.stream_ms)
                if ev.kind == "started":
                    log.info("call %s started (%s, %d Hz)", ev.call_id, ev.encoding, ev.sample_rate)
                elif ev.kind == "speech_started":
                    if self.agent_talking():
                        self.pending_onset = ev.stream_ms  # Trunkline's barge-in decides
                    elif not self.in_activity:
                        await self.start_activity(ev.stream_ms)
                elif ev.kind == "barge_in":
                    self.on_cut(ev)
                    if not self.in_activity:
                        onset = self.pending_onset if self.pending_onset is not None else ev.stream_ms
                        await self.start_activity(onset)
                elif ev.kind == "interrupted":
                    self.on_cut(ev)
                elif ev.kind == "speech_stopped":
                    if self.in_activity:
                        await self.end_activity(ev.stream_ms)
                    self.pending_onset = None  # noise or a backchannel over the agent: no turn
                elif ev.kind == "protocol_error":
                    log.warning("dropped a bad carrier message: %s", ev.error_message)
                elif ev.kind == "stopped":
                    self.read_caller_audio()
                    await self.send_audio_until(None)  # the last of it
                    return
            if (self.pending_onset is not None and not self.agent_talking()
                    and self.read_ms() - self.pending_onset >= TURN_OVER_AGENT_MS):
                # The agent finished while the caller talked over its end, and they went on long
                # enough for a turn (a shorter sound has had its speech_stopped by now): their turn.
                await self.start_activity(self.pending_onset)
            await self.send_held()

    def read_caller_audio(self) -> None:
        """Takes the caller's audio the session has. Audio the session dropped because nobody
        read it (its ring full: a slow setup, a stalled loop) is held as silence in its place,
        so the audio after it keeps its stream time, the clock the activity marks are placed on."""
        self.held += self.call.read_audio()
        dropped = self.call.stats()["agent_samples_dropped"]
        if dropped > self.dropped:
            self.held += bytes(2 * (dropped - self.dropped))
            self.dropped = dropped

    def read_ms(self) -> int:
        """Stream ms of the caller's audio read so far."""
        return (self.held_from + len(self.held) // 2) * 1000 // IN_RATE

    async def send_audio_until(self, sample: int | None) -> None:
        """Sends the held audio before `sample` (all of it for None)."""
        n = len(self.held) // 2 if sample is None else max(0, min(len(self.held) // 2, sample - self.held_from))
        if n:
            chunk = bytes(self.held[: 2 * n])
            del self.held[: 2 * n]
            self.held_from += n
            await self.send_input({"audio": {"data": base64.b64encode(chunk).decode(), "mimeType": IN_MIME}})

    async def send_held(self) -> None:
        """Sends what need not be held back: everything in a turn; outside one, all but the
        last IDLE_HOLD_MS (PENDING_HOLD_MS, and nothing after the onset, while a barge-in may
        still come)."""
        if self.in_activity:
            await self.send_audio_until(None)
            return
        end = self.held_from + len(self.held) // 2
        keep_from = end - ms_to_samples(IDLE_HOLD_MS)
        if self.pending_onset is not None:
            keep_from = max(end - ms_to_samples(PENDING_HOLD_MS),
                            min(keep_from, ms_to_samples(self.pending_onset - ACTIVITY_LEAD_MS)))
        await self.send_audio_until(keep_from)

    async def start_activity(self, onset_ms: int) -> None:
        await self.send_audio_until(ms_to_samples(onset_ms - ACTIVITY_LEAD_MS))
        await self.send_input({"activityStart": {}})
        self.in_activity = True
        self.pending_onset = None
        await self.send_audio_until(None)

    async def end_activity(self, end_ms: int) -> None:
        self.read_caller_audio()
        await self.send_audio_until(ms_to_samples(end_ms + ACTIVITY_TAIL_MS))
        await self.send_input({"activityEnd": {}})
        self.in_activity = False

    def feed(self) -> None:
        """Hands the engine as much model audio as it takes now, each turn in its own segment."""
        while self.pending:
            turn, pcm, rate = self.pending[0]
            try:
                if turn not in self.begun:
                    self.call.begin_segment(turn)
                    self.begun.add(turn)
                taken = self.call.play(pcm, rate)
            except trunkline.TrunklineError as e:
                if e.code != trunkline.Result.FULL:
                    raise
                return  # nothing fits now: the rest goes on the next wakeup
            if taken * 2 < len(pcm):
                self.pending[0][1] = pcm[taken * 2 :]
                return
            self.pending.pop(0)

    def on_cut(self, ev: trunkline.Event) -> None:
        """The agent was cut off: the engine already dropped what it had queued and sent the
        carrier's clear. On a barge-in the turn the model is still sending is over for the caller
        (the activityStart that follows makes the model stop it)."""
        if ev.kind == "barge_in" and self.turn is not None:
            self.turn_cut = True
        self.pending.clear()
        if ev.segment is not None:
            log.info("%s: the caller heard %s ms of %s (%.0f ms received)%s", ev.kind, ev.segment_played_ms or 0,
                     ev.segment, self.received_ms.get(ev.segment, 0),
                     f", none of {', '.join(ev.unheard_segments)}" if ev.unheard_segments else "")

    # Model -> carrier ---------------------------------------------------------------------------

    async def from_model(self) -> None:
        """The model's messages, over as many connections as the call takes; returns when the
        connection ends and cannot be resumed."""
        while True:
            live = self.live
            try:
                async for message in live:
                    msg = json.loads(message)
                    if "serverContent" in msg:
                        self.on_content(msg["serverContent"])
                    elif "sessionResumptionUpdate" in msg:
                        update = msg["sessionResumptionUpdate"]
                        if update.get("resumable") and update.get("newHandle"):
                            self.resume_handle = update["newHandle"]
                    elif "goAway" in msg:
                        log.info("the Live API will close the connection in %s: resuming in a new one",
                                 msg["goAway"].get("timeLeft"))
                        self.going_away = True
                    elif "toolCall" in msg:
                        log.warning("tool calls are not handled by this bridge: %s", msg["toolCall"])
                    # Moved between the model's turns, so that the rest of one still arriving on
                    # this connection is not lost with it.
                    if self.going_away and self.turn is None and await self.resume():
                        break  # on to the new connection; the old one is closed
            except ConnectionClosed:
                pass
            if self.live is not live:
                continue
            # The connection ended without a goAway (or its resumption failed): try once more.
            if not await self.resume():
                return

    async def resume(self) -> bool:
        """Goes on in a new connection that resumes the session; whether it could. The old one is
        closed once the new one has taken over: what the caller says meanwhile goes to the old."""
        # Tried once per goAway: a failure leaves the call on this connection until it ends.
        self.going_away = False
        if self.resume_handle is None:
            return False
        try:
            live = await self.reopen(self.resume_handle)
        except (OSError, WebSocketException, SetupRefused) as e:
            log.error("could not resume the Live session: %s", e)
            return False
        old, self.live = self.live, live
        await old.close()
        return True

    def on_content(self, content: dict) -> None:
        if content.get("interrupted"):
            # The model stopped the turn (our activityStart). Had the caller not cut it yet, what
            # is still queued of it must not play on either.
            if not self.turn_cut and (self.pending or self.call.queued_ms > 0):
                self.call.interrupt()
            self.pending.clear()  # not yet taken by the engine: it must not play after the cut
            self.end_turn()
            return
        for part in content.get("modelTurn", {}).get("parts", []):
            blob = part.get("inlineData")
            if blob and blob.get("mimeType", "").startswith("audio/pcm"):
                self.on_audio(base64.b64decode(blob["data"]), pcm_rate(blob["mimeType"]))
        if content.get("turnComplete"):
            self.end_turn()

    def on_audio(self, pcm: bytes, rate: int) -> None:
        if self.turn_cut:
            self.dropped_ms += len(pcm) / 2 * 1000 / rate  # in flight at the cut: never play it
            return
        if self.turn is None:
            self.turns += 1
            self.turn = f"turn-{self.turns}"
            self.received_ms[self.turn] = 0
        self.received_ms[self.turn] += len(pcm) / 2 * 1000 / rate
        if self.pending and self.pending[-1][0] == self.turn and self.pending[-1][2] == rate:
            self.pending[-1][1] += pcm
        else:
            self.pending.append([self.turn, pcm, rate])
        self.feed()

    def end_turn(self) -> None:
        if self.turn_cut and self.dropped_ms:
            log.info("dropped %.0f ms of %s that came after the cut", self.dropped_ms, self.turn)
        self.turn, self.turn_cut, self.dropped_ms = None, False, 0.0

    def agent_talking(self) -> bool:
        return (self.turn is not None and not self.turn_cut) or bool(self.pending) or self.call.queued_ms > 0


def log_failure(task: asyncio.Task) -> None:
    """A call that ended by an error the bridge did not expect: said at once, not when the task
    is collected."""
    if not task.cancelled() and task.exception() is not None:
        log.error("call failed", exc_info=task.exception())


def ms_to_samples(ms: int) -> int:
    return max(0, ms) * IN_RATE // 1000


async def bridge_call(call: trunkline.Session, url: str, api_key: str, model: str = DEFAULT_MODEL,
                      voice: str | None = None, instructions: str = DEFAULT_INSTRUCTIONS) -> None:
    with call:
        try:
            live = await open_live(url, api_key, setup_message(model, voice, instructions))
        except (OSError, WebSocketException, asyncio.TimeoutError) as e:
            # Closing the session makes the offload server hang up on the carrier.
            log.error("cannot reach the Live API at %s: %s", url, e)
            return
        except SetupRefused as e:
            log.error("the Live API refused the setup: %s", e)
            return

        async def reopen(handle: str) -> ClientConnection:
            return await open_live(url, api_key, setup_message(model, voice, instructions, resume=handle))

        bridge = Bridge(call, live, reopen)
        try:
            model_task = asyncio.create_task(bridge.from_model())
            carrier = asyncio.create_task(bridge.from_carrier())
            # Either side ending ends the call: the carrier's stop, or the model's socket closing
            # for good (not resumed).
            done, _ = await asyncio.wait({model_task, carrier}, return_when=asyncio.FIRST_COMPLETED)
            for task in (model_task, carrier):
                task.cancel()
            await asyncio.gather(model_task, carrier, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None and not isinstance(task.exception(), ConnectionClosed):
                    log.error("call ended by an error", exc_info=task.exception())
            if model_task in done:
                log.warning("the Live API closed the connection: ending the call")
        finally:
            await bridge.live.close()  # the connection in use now (a resumed one, maybe)


async def main(
    bind: str,
    url: str,
    api_key: str,
    path: str | None = "/media",
    auth_token: str | None = None,
    dialect: str = "twilio",
    model: str = DEFAULT_MODEL,
    voice: str | None = None,
    ready: asyncio.Future | None = None,
    stop: asyncio.Event | None = None,
    drain_grace: float = TRUNKLINE_DRAIN_GRACE_S,
) -> bool:
    """Bridges calls until `stop` is set (forever without one), then drains them for up to
    `drain_grace` seconds. `ready` gets the port once listening. Returns whether every call ended
    within the grace."""
    session = {
        "agent_rate": IN_RATE,
        "play_rate": OUT_RATE,
        "dialect": dialect,
        "barge_in_enabled": True,
        "agent_ring_ms": 2000,  # room for the caller's audio until setupComplete, or a late loop
    }
    with trunkline.Engine() as engine, trunkline.Server(
        engine, bind=bind, path=path, auth_token=auth_token, session=session
    ) as server:
        log.info("listening on %s%s (%s)", bind.rsplit(":", 1)[0] + f":{server.port}", path or "", dialect)
        if ready is not None:
            ready.set_result(server.port)
        calls: set[asyncio.Task] = set()

        def take(call: trunkline.Session) -> None:
            task = asyncio.create_task(bridge_call(call, url, api_key, model, voice))
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
    await main(args.bind, args.live_url, api_key, path=args.path, auth_token=args.auth_token, dialect=args.dialect,
               model=args.model, voice=args.voice, stop=stop, drain_grace=args.drain_grace)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1:8080", help="address:port of the carrier's endpoint")
    parser.add_argument("--path", default="/media", help="the stream's URL path")
    parser.add_argument("--auth-token", help="check the carrier's signature with this secret")
    parser.add_argument("--dialect", default="twilio", help="the carrier: twilio, telnyx, plivo, vonage, ...")
    parser.add_argument("--live-url", default=DEFAULT_URL, help="the Live API WebSocket URL")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the Live model (models/...)")
    parser.add_argument("--voice", help="a prebuilt voice name (default: the model's)")
    parser.add_argument("--drain-grace", type=float, default=TRUNKLINE_DRAIN_GRACE_S, metavar="SECONDS",
                        help="on SIGTERM, how long live calls may go on (default: $TRUNKLINE_DRAIN_GRACE_S or 30)")
    args = parser.parse_args()
    key = os.environ.get("GEMINI_API_KEY")
    if not key:
        parser.error("set GEMINI_API_KEY")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(serve_until_sigterm(args, key))
