"""`TrunklineTransport`: a Pipecat transport whose carrier side is a Trunkline session.

Trunkline decodes, reorders and resamples the caller's audio, detects speech and barge-ins, and
paces the bot's audio to the carrier itself; the transport turns that into Pipecat frames and
hands the pipeline's audio, interruptions and marks back to it.
"""

from __future__ import annotations

import time
from typing import Any, Literal, Optional

from loguru import logger
from pydantic import Field, field_validator

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    CancelFrame,
    CancelWorkerFrame,
    ClientConnectedFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    TTSStoppedFrame,
    UserSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.utils.utils import obj_id

from .._core import Engine, Event, Session, session_config, stream_start
from .._errors import Result, TrunklineError
from ._link import END_MARK, CallLink
from .frames import (
    TrunklineBargeInFrame,
    TrunklineMarkClearedFrame,
    TrunklineMarkFrame,
    TrunklineMarkPlayedFrame,
    TrunklinePlayedPositionFrame,
)

BargeIn = Literal["trunkline", "pipecat"]

# Session settings the transport sets from the pipeline and `barge_in`.
_SET_BY_TRANSPORT = ("agent_rate", "play_rate", "barge_in_enabled")
# How often UserSpeakingFrame is broadcast while the caller speaks (as Pipecat's VAD does).
_USER_SPEAKING_PERIOD_SECS = 0.2
# Longest wait for the session to take more of a frame before trying again.
_PLAY_RETRY_SECS = 0.02


class TrunklineParams(TransportParams):
    """Settings of a `TrunklineTransport`: Pipecat's transport parameters, with defaults for a
    telephone call, plus Trunkline's.

    Parameters:
        barge_in: Who decides that the caller interrupts the bot; never both.
            ``"trunkline"`` (default): Trunkline's barge-in detector (caller speech voiced for
            `barge_in_min_speech_ms` over the bot's audio). It drops the queued audio and clears
            the carrier at once, and the transport broadcasts a `TrunklineBargeInFrame` (an
            `InterruptionFrame`) so that the LLM and TTS stop too. Pipecat's turn strategies must
            then start turns without interrupting: give the user aggregator
            `trunkline.pipecat.user_turn_strategies()`.
            ``"pipecat"``: Trunkline's barge-in is off; Pipecat's turn strategies decide, and
            every `InterruptionFrame` reaching the output transport makes Trunkline drop the
            queued audio and clear the carrier.
        speech_events: Broadcast Trunkline's speech detection as `VADUserStartedSpeakingFrame` /
            `VADUserStoppedSpeakingFrame` (and `UserSpeakingFrame` while the caller speaks), so
            no VAD analyzer is needed in the pipeline. Turn it off to run a VAD analyzer of your
            own in the user aggregator.
        session: Further Trunkline session settings (`dialect`, `vad_min_speech_ms`,
            `vad_hangover_ms`, `barge_in_min_speech_ms`, `lead_ms`, `agent_ring_ms`, ...). The
            transport sets `agent_rate` (the pipeline's input rate), `play_rate` (its output
            rate) and `barge_in_enabled` (from `barge_in`) itself. A call handed over by
            `trunkline.Server` was opened with the server's settings: there these only give the
            VAD frames' `start_secs` / `stop_secs`. `start` (a dict as `engine.session`'s) opens
            the session already started, for a host whose handler read the carrier's `start`
            message before handing the socket over (Pipecat's `parse_telephony_websocket`): the
            stream's ids, format and custom parameters from that message; then the transport
            reads the socket from the next message on.
        end_timeout_secs: At an `EndFrame`, how long the output transport waits for the caller to
            hear everything queued before it before it closes the call anyway.
    """

    audio_in_enabled: bool = True
    audio_out_enabled: bool = True
    # Trunkline takes audio in any amount; 20 ms is its frame, and the least audio Pipecat pads
    # with silence at the end of a reply.
    audio_out_10ms_chunks: int = 2
    # Trunkline knows when the caller heard the end (a mark), so no trailing silence is needed.
    audio_out_end_silence_secs: int = 0
    barge_in: BargeIn = "trunkline"
    speech_events: bool = True
    session: dict[str, Any] = Field(default_factory=dict)
    end_timeout_secs: float = 10.0

    @field_validator("session")
    @classmethod
    def _check_session(cls, settings: dict[str, Any]) -> dict[str, Any]:
        taken = [key for key in _SET_BY_TRANSPORT if key in settings]
        if taken:
            raise ValueError(
                f"{taken} are set by the transport (from the pipeline's sample rates and "
                "`barge_in`); leave them out of `session`"
            )
        if settings.get("agent_format", "pcm") != "pcm":
            raise ValueError("Pipecat's frames carry 16-bit PCM: the transport needs agent_format 'pcm'")
        try:
            # Unknown names and bad types fail here, not at the call (values out of range fail
            # as the session opens, and end the pipeline then).
            session_config(_config_only(settings))
            if settings.get("start") is not None:
                stream_start(settings["start"])
        except (TypeError, TrunklineError) as e:
            raise ValueError(str(e)) from None
        return settings


def _config_only(settings: dict[str, Any]) -> dict[str, Any]:
    """The session settings without `start`, which opens the session rather than configuring it."""
    return {key: value for key, value in settings.items() if key != "start"}


class TrunklineInputTransport(BaseInputTransport):
    """The caller's side: audio, speech events, barge-ins, DTMF and marks, as frames."""

    def __init__(self, transport: "TrunklineTransport", link: CallLink, params: TrunklineParams, **kwargs):
        super().__init__(params, **kwargs)
        self._transport = transport
        self._link = link
        self._params = params
        defaults = session_config(_config_only(params.session))
        self._start_secs = defaults.vad_min_speech_ms / 1000
        self._stop_secs = defaults.vad_hangover_ms / 1000
        self._frame_bytes = 0
        self._pending = bytearray()
        # Between StartFrame and this half's EndFrame/CancelFrame. The link keeps running after
        # that: the output may still be waiting for the caller to hear the end.
        self._open = False
        self._caller_speaking = False
        self._speaking_frame_time = 0.0
        self._warned_barge_in = False

    def _pushing(self) -> bool:
        # Frames go into the pipeline from StartFrame until an EndFrame or CancelFrame reaches
        # either transport; event handlers still run after that.
        return self._open and not self._link.ending

    async def setup(self, setup: FrameProcessorSetup):
        await super().setup(setup)
        play_rate = self._params.audio_out_sample_rate or setup.audio_out_sample_rate
        self._link.open(self.sample_rate, play_rate, self._params.barge_in == "trunkline")
        self._frame_bytes = self.sample_rate // 50 * 2

    async def start(self, frame: StartFrame):
        await super().start(frame)
        if not self._link.opened:
            # setup() could not open the session or refused the call (Pipecat reported why and
            # goes on by default): no audio can flow, so the call ends now, its carrier
            # connection too, instead of leaving the caller on dead air.
            await self._link.close()
            await self.push_frame(
                CancelWorkerFrame(reason="trunkline: the call's session could not be opened"), FrameDirection.UPSTREAM
            )
            return
        self._open = True
        self._link.start(self, self._on_audio, self._on_event)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame):
        await super().stop(frame)
        self._open = False

    async def cancel(self, frame: CancelFrame):
        await super().cancel(frame)
        self._open = False
        await self._link.close()

    async def cleanup(self):
        await super().cleanup()
        await self._link.close()
        await self._transport.cleanup()

    async def push_audio_frame(self, frame: InputAudioRawFrame):
        # Straight downstream, in order with the speech events the same task pushes (the base
        # class's queue would let an event overtake the audio before it).
        if not (self._params.audio_in_enabled and self._pushing()) or self._paused:
            return
        if self._params.audio_in_filter:
            frame.audio = await self._params.audio_in_filter.filter(frame.audio)
            if not frame.audio:
                return
        if self._params.audio_in_passthrough:
            await self.push_frame(frame)
        if self._caller_speaking and self._params.speech_events:
            now = time.monotonic()
            if now - self._speaking_frame_time >= _USER_SPEAKING_PERIOD_SECS:
                self._speaking_frame_time = now
                await self.broadcast_frame(UserSpeakingFrame)

    async def mark_cleared(self, name: str, context: Optional[str]) -> None:
        """Reports a mark cleared (Trunkline's event, or one the output dropped unplaced)."""
        if self._pushing():
            await self.push_frame(TrunklineMarkClearedFrame(mark=name, context_id=context))

    async def _on_audio(self, pcm: bytes) -> None:
        # 20 ms frames, Trunkline's unit and what VADs and STTs expect.
        pending = self._pending
        pending += pcm
        size = self._frame_bytes
        whole = len(pending) - len(pending) % size
        for i in range(0, whole, size):
            audio = bytes(pending[i : i + size])
            await self.push_audio_frame(InputAudioRawFrame(audio=audio, sample_rate=self.sample_rate, num_channels=1))
        del pending[:whole]

    async def _on_event(self, event: Event) -> None:
        kind = event.kind
        transport = self._transport
        if kind == "started":
            transport.call_info = event
            if self._pushing():
                await self.push_frame(ClientConnectedFrame())
            await transport._call_event_handler("on_client_connected", event)
        elif kind == "speech_started":
            self._caller_speaking = True
            if self._pushing() and self._params.speech_events:
                await self.broadcast_frame(VADUserStartedSpeakingFrame, start_secs=self._start_secs)
        elif kind == "speech_stopped":
            self._caller_speaking = False
            if self._pushing() and self._params.speech_events:
                await self.broadcast_frame(VADUserStoppedSpeakingFrame, stop_secs=self._stop_secs)
        elif kind == "barge_in":
            if self._params.barge_in == "pipecat" and not self._warned_barge_in:
                # A handed-over call whose server left Trunkline's barge-in on. The audio is
                # already cut, so the pipeline is interrupted too, to stay consistent.
                self._warned_barge_in = True
                logger.warning(
                    f"{self}: Trunkline detected a barge-in although barge_in='pipecat': open the "
                    "server's sessions with barge_in_enabled=False (trunkline.pipecat.offload_session())"
                )
            if self._pushing():
                await self.broadcast_frame(TrunklineBargeInFrame, played_ms=event.played_ms, stream_ms=event.stream_ms)
                await self.push_frame(TrunklinePlayedPositionFrame(played_ms=event.played_ms, reason="barge_in"))
            else:
                self._link.stale_until = 0.0  # nothing will come to clear it
            await transport._call_event_handler("on_barge_in", event.played_ms)
        elif kind == "interrupted":
            if self._pushing():
                await self.push_frame(TrunklinePlayedPositionFrame(played_ms=event.played_ms, reason="interrupted"))
        elif kind in ("mark_played", "mark_cleared") and event.name == END_MARK:
            pass  # the link's own, placed at the EndFrame
        elif kind == "mark_played":
            context = self._link.mark_contexts.pop(event.name, None)
            if self._pushing():
                await self.push_frame(TrunklineMarkPlayedFrame(mark=event.name, played_ms=event.played_ms, context_id=context))
            await transport._call_event_handler("on_mark_played", event.name, event.played_ms)
        elif kind == "mark_cleared":
            await self.mark_cleared(event.name, self._link.mark_contexts.pop(event.name, None))
        elif kind == "dtmf":
            try:
                button = KeypadEntry(event.digit)
            except ValueError:
                # A-D: Pipecat's keypad has no such keys.
                logger.info(f"{self}: the caller pressed {event.digit!r}, which Pipecat's keypad lacks; not passed on")
                return
            if self._pushing():
                await self.push_frame(InputDTMFFrame(button=button))
        elif kind == "stopped":
            self._caller_speaking = False
            if not self._link.closed:
                # With the client as Pipecat's transports pass it (handlers take two arguments).
                await transport._call_event_handler("on_client_disconnected", transport.call_info)
        elif kind == "protocol_error":
            logger.warning(f"{self}: dropped a bad carrier message: {event.error_message}")


class TrunklineOutputTransport(BaseOutputTransport):
    """The bot's side: its audio, interruptions and marks, handed to Trunkline, which paces the
    audio to the carrier."""

    def __init__(self, transport: "TrunklineTransport", link: CallLink, params: TrunklineParams, **kwargs):
        super().__init__(params, **kwargs)
        self._transport = transport
        self._link = link
        self._params = params
        self._tts_marks = 0
        self._warned_interruption = False
        self._first_fresh_frame_id = 0

    async def start(self, frame: StartFrame):
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame):
        # The base class returns once every chunk queued before the EndFrame was written, that
        # is handed to Trunkline; the caller hears the end up to a few seconds later.
        self._link.ending = True
        await super().stop(frame)
        await self._link.finish(self._params.end_timeout_secs)
        await self._link.close()

    async def cancel(self, frame: CancelFrame):
        self._link.ending = True
        await super().cancel(frame)
        await self._link.close()

    async def cleanup(self):
        await super().cleanup()
        await self._link.close()
        await self._transport.cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        if isinstance(frame, InterruptionFrame):
            await self._interrupt(frame, direction)
            return
        if isinstance(frame, TrunklineMarkFrame) and direction == FrameDirection.DOWNSTREAM:
            self._link.unplaced.setdefault(frame.mark, None)
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSStoppedFrame) and direction == FrameDirection.DOWNSTREAM:
            # Behind the TTS audio (and the tail the base class flushed for it) in the sender's
            # queue: placed once all of it has been handed over.
            self._tts_marks += 1
            name = f"tts-{self._tts_marks}"
            self._link.unplaced[name] = frame.context_id
            await self._handle_frame(TrunklineMarkFrame(mark=name))

    async def _interrupt(self, frame: InterruptionFrame, direction: FrameDirection) -> None:
        link = self._link
        # Until the base class has reset its queue, chunks of the interrupted answer may still
        # be written: drop them.
        link.stale_until = float("inf")
        try:
            if not isinstance(frame, TrunklineBargeInFrame):
                # Trunkline drops its queued audio and clears the carrier; the played position
                # comes back as an `interrupted` event (TrunklinePlayedPositionFrame).
                if self._params.barge_in == "trunkline" and self._transport._input._caller_speaking:
                    self._warn_double_decision()
                link.epoch += 1
                session = link.session
                # With none of the bot's audio left there is nothing to stop: the carrier gets
                # no `clear` (Pipecat interrupts at every turn start, bot speaking or not).
                if session is not None and link.audio_outstanding and not (link.closed or link.stream_ended):
                    try:
                        link.interrupt()
                    except TrunklineError as e:
                        logger.warning(f"{self}: interrupt failed: {e}")
            await super().process_frame(frame, direction)
            # The sender's audio task may hold a chunk it took from the queue before the reset:
            # frames are numbered in creation order, so every chunk made so far is the old
            # answer's.
            self._first_fresh_frame_id = obj_id()
        finally:
            link.stale_until = 0.0
        # The reset dropped the marks still queued behind the audio: they will never be placed,
        # so they are reported cleared, like the placed ones Trunkline flushed.
        dropped, link.unplaced = link.unplaced, {}
        for name, context in dropped.items():
            await self._transport._input.mark_cleared(name, context)

    def _warn_double_decision(self) -> None:
        if self._warned_interruption:
            return
        self._warned_interruption = True
        logger.warning(
            f"{self}: an InterruptionFrame came while the caller was speaking, but not from "
            "Trunkline's barge-in: Pipecat's turn strategies are interrupting too (barge_in="
            "'trunkline'). Give the user aggregator trunkline.pipecat.user_turn_strategies(), "
            "or set barge_in='pipecat'."
        )

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        link = self._link
        session = link.session
        if session is None or link.closed or link.stream_ended:
            return False
        if frame.num_channels != 1:
            logger.error(f"{self}: Trunkline plays mono audio; got {frame.num_channels} channels")
            return False
        if frame.interruptible and frame.id < self._first_fresh_frame_id:
            return True  # made before the last interruption: the answer it belongs to was cut
        epoch = link.epoch
        data = memoryview(frame.audio)
        # Trunkline paces the audio itself: hand it over as fast as it takes it. It takes a
        # few seconds ahead, then less as the carrier plays: wait for room, never for a clock.
        while data:
            if link.audio_is_stale() or link.epoch != epoch:
                return True  # the answer was interrupted: the rest must not play
            try:
                taken = session.play(data, frame.sample_rate)
            except TrunklineError as e:
                if e.code == Result.FULL:
                    taken = 0
                elif e.code == Result.CLOSED:
                    return False
                else:
                    logger.error(f"{self}: play failed: {e}")
                    return False
            if taken:
                link.wrote_audio()
            data = data[2 * taken :]
            if data:
                await link.room(_PLAY_RETRY_SECS)
                if link.closed or link.stream_ended:
                    return False
        return True

    async def write_transport_frame(self, frame: Frame):
        if isinstance(frame, TrunklineMarkFrame):
            link = self._link
            if link.audio_is_stale() or link.session is None or link.closed or link.stream_ended:
                # Behind an interrupted answer: placed now it would count as played at once.
                # The interruption reports it cleared.
                return
            context = link.unplaced.pop(frame.mark, None)
            try:
                link.mark(frame.mark)
            except TrunklineError as e:
                logger.error(f"{self}: cannot place mark {frame.mark!r}: {e}")
                return
            link.mark_contexts[frame.mark] = context


class TrunklineTransport(BaseTransport):
    """A Pipecat transport for a telephone call carried by Trunkline. Two ways to make one:

    * The host owns the carrier's WebSocket (FastAPI / Starlette), already accepted:
      ``TrunklineTransport(websocket, engine, params=TrunklineParams(...))``. The transport
      opens a session on `engine` at the pipeline's sample rates, pushes every message the
      carrier sends into it and sends every message Trunkline produces.
    * Trunkline's offload server owns the socket and hands over the call:
      ``TrunklineTransport(call=session, params=...)`` with a session from `trunkline.Server`
      (see `trunkline.pipecat.accept_calls`). The server's `agent_rate` must be the pipeline's
      input rate.

    Event handlers:

    - on_client_connected(transport, started): the stream started; `started` is the
      `trunkline.Event` with the call's ids and custom parameters (also `transport.call_info`).
    - on_client_disconnected(transport, client): the stream ended (the carrier's stop, a
      hang-up, the socket closed); `client` is the `started` event (None if the stream never
      started). End or cancel the pipeline here.
    - on_barge_in(transport, played_ms): Trunkline cut the bot off.
    - on_mark_played(transport, name, played_ms): the caller heard everything before a mark.
    """

    def __init__(
        self,
        websocket: Any = None,
        engine: Optional[Engine] = None,
        *,
        call: Optional[Session] = None,
        params: Optional[TrunklineParams] = None,
        input_name: Optional[str] = None,
        output_name: Optional[str] = None,
    ):
        if (websocket is None) == (call is None):
            raise ValueError("give either a websocket (with its engine) or a call from trunkline.Server")
        if websocket is not None and engine is None:
            raise ValueError("a websocket needs the trunkline.Engine to open its session on")
        if call is not None and engine is not None:
            raise ValueError("a call from trunkline.Server already has its engine; pass no engine")
        params = params or TrunklineParams()
        if params.audio_in_channels != 1 or params.audio_out_channels != 1:
            raise ValueError("telephone audio is mono: audio_in_channels and audio_out_channels must be 1")
        super().__init__(input_name=input_name, output_name=output_name)
        self._params = params
        #: The `started` event of the call (ids, custom parameters, media format), once it came.
        self.call_info: Optional[Event] = None
        self._link = CallLink(websocket=websocket, engine=engine, call=call, settings=params.session if websocket is not None else None)
        self._input = TrunklineInputTransport(self, self._link, params, name=self._input_name)
        self._output = TrunklineOutputTransport(self, self._link, params, name=self._output_name)
        for event in ("on_client_connected", "on_client_disconnected", "on_barge_in", "on_mark_played"):
            self._register_event_handler(event)

    @property
    def session(self) -> Optional[Session]:
        """The call's Trunkline session (None until the pipeline is set up in WebSocket mode):
        for `stats()`, or anything the transport does not do for you."""
        return self._link.session

    def stats(self) -> dict[str, int]:
        """The session's counters (`trunkline.Session.stats()`): live during the call, as they
        were at its end afterwards ({} before the session opened)."""
        link = self._link
        if link.session is None:
            return {}
        if link.closed:
            return dict(link.final_stats)
        return link.session.stats()

    def input(self) -> TrunklineInputTransport:
        return self._input

    def output(self) -> TrunklineOutputTransport:
        return self._output
