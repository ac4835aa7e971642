"""One call as the transport's two halves share it: the Trunkline session, the task that drains it,
and (when the host owns the carrier's WebSocket) the socket's two directions."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Awaitable, Callable, Optional

from loguru import logger

from .._core import Engine, Event, Session
from .._errors import Result, TrunklineError

# The mark the output transport places at an EndFrame, to learn when the caller has heard
# everything queued before it.
END_MARK = "pipecat-end"
# The rates Trunkline delivers the caller's audio at (agent_rate), and plays the bot's at.
AGENT_RATES = (8000, 16000, 24000, 48000)
PLAY_RATES = (8000, 16000, 22050, 24000, 44100, 48000)
# How long writes stay muted after a barge-in if its interruption never reaches the output
# transport (a processor that swallows InterruptionFrames): the bot must not stay silent forever.
STALE_AUDIO_LIMIT_SECS = 2.0

AudioHandler = Callable[[bytes], Awaitable[None]]
EventHandler = Callable[[Event], Awaitable[None]]


async def _guarded(handler: Callable[[Any], Awaitable[None]], arg: Any) -> None:
    # A failure passing one thing on must not stop the call's audio and events.
    try:
        await handler(arg)
    except Exception as e:
        logger.exception(f"trunkline: passing the call's audio or events on failed: {e}")


class CallLink:
    """The session behind a `TrunklineTransport`, and everything that moves its data.

    With a WebSocket (the host owns the carrier's socket) the link opens the session itself,
    pushes every message the carrier sends into it and sends every message it produces. With a
    call handed over by `trunkline.Server`, the server does both and the link only drains audio
    and events.
    """

    def __init__(
        self,
        *,
        websocket: Any = None,
        engine: Optional[Engine] = None,
        call: Optional[Session] = None,
        settings: Optional[dict] = None,
    ) -> None:
        self._ws = websocket
        self._engine = engine
        self._settings = dict(settings or {})
        self.session: Optional[Session] = call
        self.agent_rate = 0
        self.closed = False
        #: The stream ended (the carrier's stop, a hang-up or the socket's close).
        self.stream_ended = False
        #: The output transport has its EndFrame: no more frames go into the pipeline.
        self.ending = False
        # Incremented whenever Trunkline drops the queued audio (a barge-in seen, an interrupt
        # asked for): a write in progress stops handing over the rest of its frame.
        self.epoch = 0
        # Loop time until which writes are dropped: set when a barge-in is polled and cleared once
        # its interruption has reset the output's queue, so the chunks Pipecat still holds from
        # the interrupted answer never reach the caller.
        self.stale_until = 0.0
        # Whether bot audio may still be queued or playing: set by every write, cleared when a
        # mark placed after the last write was played, or when Trunkline dropped the audio. An
        # interruption with nothing outstanding sends the carrier no needless `clear`.
        self.audio_outstanding = False
        self._writes = 0
        # The marks placed and not yet played or cleared, in the order placed (Trunkline retires
        # them in that order; a name may be placed again before the last one played), each with
        # the writes before it.
        self._mark_writes: deque[tuple[str, int]] = deque()
        # The writes before the last interrupt asked for: audio written after it is not dropped.
        self._interrupt_writes = 0
        #: The session's counters when the link closed it.
        self.final_stats: dict[str, int] = {}
        #: Marks queued in the output behind audio, not yet placed: name -> TTS context (for
        #: the marks placed at a TTSStoppedFrame; None for yours).
        self.unplaced: dict[str, Optional[str]] = {}
        #: The same for the marks placed, until played or cleared.
        self.mark_contexts: dict[str, Optional[str]] = {}
        self._room = asyncio.Event()
        self._end_heard = asyncio.Event()
        self._owner: Any = None
        self._pump_task: Optional[asyncio.Task] = None
        self._receive_task: Optional[asyncio.Task] = None
        self._ws_open = websocket is not None
        self._closing = False

    # --- opening and running ---

    def open(self, agent_rate: int, play_rate: int, barge_in_enabled: bool) -> None:
        """Opens the session (WebSocket mode) or checks the handed-over one against the pipeline.
        Idempotent."""
        if self.agent_rate:
            return
        if agent_rate not in AGENT_RATES:
            raise ValueError(f"Trunkline delivers caller audio at {AGENT_RATES} Hz; the pipeline's input rate is {agent_rate} Hz")
        if play_rate not in PLAY_RATES:
            raise ValueError(f"Trunkline plays audio at {PLAY_RATES} Hz; the pipeline's output rate is {play_rate} Hz")
        if self._engine is not None:
            self.session = self._engine.session(
                agent_rate=agent_rate,
                play_rate=play_rate,
                barge_in_enabled=barge_in_enabled,
                **self._settings,
            )
        elif self.session is not None and self.session.agent_format != "pcm":
            raise ValueError(
                f"the call's audio comes as {self.session.agent_format} codes (the server's session "
                "agent_format) but Pipecat's frames carry 16-bit PCM: open the server's sessions "
                "with agent_format 'pcm'"
            )
        elif self.session is not None and self.session.agent_rate != agent_rate:
            # The server fixed the caller audio's rate when it opened the session; Trunkline
            # resamples to exactly one rate per call, so the pipeline must take that one.
            raise ValueError(
                f"the call's audio comes at {self.session.agent_rate} Hz (the server's session "
                f"agent_rate) but the pipeline's input rate is {agent_rate} Hz: set "
                f"PipelineParams(audio_in_sample_rate={self.session.agent_rate}) or the server's "
                f"agent_rate to {agent_rate}"
            )
        self.agent_rate = agent_rate

    @property
    def opened(self) -> bool:
        """Whether `open` succeeded: the session is there and takes the pipeline's rates."""
        return self.agent_rate != 0 and self.session is not None

    def start(self, owner: Any, on_audio: AudioHandler, on_event: EventHandler) -> None:
        """Starts draining the session (and reading the socket) in tasks of `owner` (the input
        transport). Idempotent."""
        if self._pump_task is not None or self.closed:
            return
        self._owner = owner
        self._pump_task = owner.create_task(self._pump(on_audio, on_event), "trunkline_pump")
        if self._ws is not None:
            self._receive_task = owner.create_task(self._receive(), "trunkline_receive")

    async def _pump(self, on_audio: AudioHandler, on_event: EventHandler) -> None:
        session = self.session
        assert session is not None
        try:
            async for _ in session.wakeups():
                if self._ws is not None:
                    for message in session.outbound():
                        await self._send(message)
                # Audio before events: the caller audio up to a speech event reaches the
                # pipeline before the event does.
                pcm = session.read_audio()
                if pcm:
                    await _guarded(on_audio, pcm)
                for event in session.events():
                    self._track(event)
                    await _guarded(on_event, event)
                self._room.set()
                if self.stream_ended:
                    return
        except TrunklineError as e:
            if e.code not in (Result.CLOSED, Result.FAILED):
                raise
            why = str(e)
        else:
            why = "the session was closed"
        if self.closed or self._closing or self.stream_ended:
            return
        # Closed under the call (its engine or server shut down, or other code closed it) or
        # failed (a bug the engine caught): no `stopped` will come, and the pipeline must still
        # learn that the call is over, as when the carrier hangs up.
        logger.error(f"trunkline: the call's session ended without a stop: {why}")
        stopped = Event(kind="stopped")
        self._track(stopped)
        await _guarded(on_event, stopped)

    def _track(self, event: Event) -> None:
        kind = event.kind
        if kind == "barge_in":
            self.epoch += 1
            self.stale_until = asyncio.get_running_loop().time() + STALE_AUDIO_LIMIT_SECS
            self.audio_outstanding = False
        elif kind == "interrupted":
            if self._interrupt_writes == self._writes:
                self.audio_outstanding = False
        elif kind in ("mark_played", "mark_cleared"):
            placed = next((i for i, (name, _) in enumerate(self._mark_writes) if name == event.name), None)
            if placed is not None:
                writes = self._mark_writes[placed][1]
                del self._mark_writes[placed]
                if kind == "mark_played" and writes == self._writes:
                    self.audio_outstanding = False
            if event.name == END_MARK:
                self._end_heard.set()
        elif kind == "stopped":
            self.stream_ended = True
            self._end_heard.set()
            self._room.set()

    async def _receive(self) -> None:
        """The carrier's messages, from the host's WebSocket into the session."""
        session = self.session
        assert session is not None
        try:
            while True:
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("text")
                if data is None:
                    data = message.get("bytes")
                if data is None:
                    continue
                try:
                    await session.apush(data)
                except TrunklineError as e:
                    if e.code == Result.CLOSED:
                        return
                    # Still full after apush's wait: the engine is far behind. The message is
                    # lost (Trunkline counts the refusal); the call goes on.
                    logger.warning(f"trunkline: dropped a carrier message ({e})")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a socket error is the carrier going away
            logger.debug(f"trunkline: carrier socket closed: {e.__class__.__name__} ({e})")
        self._ws_open = False
        if not self.closed:
            try:
                session.end_stream()
            except TrunklineError:
                pass

    async def _send(self, message: Any) -> None:
        if not self._ws_open:
            return
        try:
            if isinstance(message, str):
                await self._ws.send_text(message)
            else:
                await self._ws.send_bytes(message)
        except Exception as e:
            # The socket is gone; the receive side ends the stream.
            self._ws_open = False
            logger.debug(f"trunkline: carrier socket send failed: {e.__class__.__name__} ({e})")

    # --- what the output transport uses ---

    def wrote_audio(self) -> None:
        self._writes += 1
        self.audio_outstanding = True

    def mark(self, name: str) -> None:
        """Places a mark (raises TrunklineError), noting the audio written before it."""
        assert self.session is not None
        self.session.mark(name)
        self._mark_writes.append((name, self._writes))

    def interrupt(self) -> None:
        """Asks Trunkline to drop the queued audio (raises TrunklineError)."""
        assert self.session is not None
        self.session.interrupt()
        self._interrupt_writes = self._writes

    def audio_is_stale(self) -> bool:
        return self.stale_until > 0 and asyncio.get_running_loop().time() < self.stale_until

    async def room(self, timeout: float) -> None:
        """Waits until the session may take more audio: its next wakeup, or `timeout`."""
        self._room.clear()
        try:
            await asyncio.wait_for(self._room.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    async def finish(self, timeout: float) -> bool:
        """Places a mark after everything queued and waits until the caller has heard it (or it
        was cleared, or the stream ended). False if `timeout` seconds passed first."""
        session = self.session
        if session is None or self.closed or self.stream_ended:
            return True
        try:
            self.mark(END_MARK)
        except TrunklineError as e:
            logger.warning(f"trunkline: cannot wait for the end of the bot's audio ({e})")
            return False
        try:
            await asyncio.wait_for(self._end_heard.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            logger.warning(f"trunkline: the caller had not heard the bot's last audio after {timeout} s")
            return False

    # --- closing ---

    async def close(self) -> None:
        """Ends the call: stops the tasks, closes the WebSocket (if ours) and the session. The
        carrier's connection closes with it (the offload server closes it when the session
        goes). Idempotent."""
        if self.closed or self._closing:
            return
        self._closing = True
        try:
            current = asyncio.current_task()
            for task in (self._receive_task, self._pump_task):
                if task is not None and task is not current and self._owner is not None:
                    await self._owner.cancel_task(task)
            self._receive_task = self._pump_task = None
            if self._ws is not None and self._ws_open:
                self._ws_open = False
                try:
                    await asyncio.wait_for(self._ws.close(), 1.0)
                except Exception as e:  # already closed by the peer, or a dead peer
                    logger.debug(f"trunkline: closing the carrier socket: {e.__class__.__name__} ({e})")
        finally:
            # Also when cancelled while waiting above (a CancelFrame during an EndFrame's close):
            # the session is closed all the same, or nothing later would (`_closing` is set).
            if self.session is not None:
                try:
                    self.final_stats = self.session.stats()
                except TrunklineError:
                    pass
                self.session.close()
            self.closed = True
            self._end_heard.set()
            self._room.set()
