"""The frames Trunkline adds to a Pipecat pipeline.

The input transport pushes the notifications (played position, marks played or cleared)
downstream, so every processor after it sees them; `TrunklineMarkFrame` goes the other way: you
push it towards the output transport to place a mark behind the audio before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipecat.frames.frames import ControlFrame, InterruptionFrame, SystemFrame

# Every frame already has a `name` (its class and a count), hence `mark` for a mark's name.


@dataclass
class TrunklineBargeInFrame(InterruptionFrame):
    """The interruption the transport broadcasts when Trunkline detected a barge-in.

    It is an `InterruptionFrame` (processors cancel their work as for any other); the output
    transport recognises it and does not interrupt Trunkline again, since Trunkline already
    dropped the queued audio and sent the carrier its `clear`.

    Parameters:
        played_ms: How much of the interrupted utterance the caller heard, ms.
        stream_ms: Stream time of the caller's onset, ms.
    """

    played_ms: int = 0
    stream_ms: int = 0


@dataclass
class TrunklinePlayedPositionFrame(SystemFrame):
    """How much of the bot's current utterance the caller heard when it was cut.

    Pushed downstream after a barge-in (`reason="barge_in"`) and after an interruption the
    pipeline asked for (`reason="interrupted"`). Use it to truncate the assistant's context to
    what the caller actually heard.

    Parameters:
        played_ms: Played position in the utterance, ms (an utterance starts after a pause in the
            bot's audio of at least the session's `utterance_gap_ms`, 1 s by default).
        reason: "barge_in" or "interrupted".
    """

    played_ms: int
    reason: str


@dataclass
class TrunklineMarkFrame(ControlFrame):
    """Asks the output transport to place a Trunkline mark after the audio queued before it.

    The transport places one itself for every `TTSStoppedFrame`; push your own to learn when the
    caller has heard a given point. An interruption drops it with the audio around it.

    Parameters:
        mark: The mark's name (at most the session's `max_mark_name_bytes`; names starting with
            "trunkline-sync-" are reserved).
    """

    mark: str


@dataclass
class TrunklineMarkPlayedFrame(SystemFrame):
    """The caller has heard everything before a mark (the carrier acknowledged it).

    Parameters:
        mark: The mark's name (`tts-N` for the mark placed at the N-th `TTSStoppedFrame`).
        played_ms: Position of the mark in its utterance, ms.
        context_id: The TTS context of the `TTSStoppedFrame` that placed it, if any.
    """

    mark: str
    played_ms: int
    context_id: str | None = None


@dataclass
class TrunklineMarkClearedFrame(SystemFrame):
    """A mark was flushed by a barge-in or interruption before the caller heard it.

    Parameters:
        mark: The mark's name.
        context_id: The TTS context of the `TTSStoppedFrame` that placed it, if any.
    """

    mark: str
    context_id: str | None = None
