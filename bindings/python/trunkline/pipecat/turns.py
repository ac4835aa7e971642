"""Pipecat turn strategies that leave the barge-in decision to whichever side owns it."""

from __future__ import annotations

from typing import Optional

from pipecat.turns.user_start import TranscriptionUserTurnStartStrategy, VADUserTurnStartStrategy
from pipecat.turns.user_stop import BaseUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies


def user_turn_strategies(
    barge_in: str = "trunkline",
    stop: Optional[list[BaseUserTurnStopStrategy]] = None,
) -> UserTurnStrategies:
    """The user aggregator's turn strategies for a pipeline behind a `TrunklineTransport`.

    With ``barge_in="trunkline"`` (the transport's default) turns start on speech or a
    transcription as usual, but without broadcasting an interruption: Trunkline decides when the
    caller interrupts the bot (speech voiced long enough over the bot's audio; a short "mm-hm"
    does not) and the transport broadcasts that interruption itself. With ``"pipecat"`` these are
    Pipecat's default strategies, which interrupt at every turn start.

    `stop` are the stop strategies (None: Pipecat's default).
    """
    if barge_in == "trunkline":
        start = [
            VADUserTurnStartStrategy(enable_interruptions=False),
            TranscriptionUserTurnStartStrategy(enable_interruptions=False),
        ]
    elif barge_in == "pipecat":
        start = None
    else:
        raise ValueError(f"barge_in must be 'trunkline' or 'pipecat', got {barge_in!r}")
    return UserTurnStrategies(start=start, stop=stop)
