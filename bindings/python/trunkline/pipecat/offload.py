"""Calls from Trunkline's offload server (`trunkline.Server`) for Pipecat pipelines."""

from __future__ import annotations

from typing import Any, AsyncIterator, Optional

from .._core import Session
from .._server import Server


def offload_session(
    barge_in: str = "trunkline",
    agent_rate: int = 16000,
    play_rate: int = 24000,
    **settings: Any,
) -> dict:
    """The `session` settings of a `trunkline.Server` whose calls go to Pipecat pipelines:
    `agent_rate` is the pipelines' input rate (`PipelineParams.audio_in_sample_rate`),
    `play_rate` their output rate, and Trunkline's barge-in is on exactly when the transports'
    `barge_in` is "trunkline". Further keyword settings are any other session settings.

        server = trunkline.Server(engine, path="/media", session=offload_session(agent_rate=16000))
    """
    if barge_in not in ("trunkline", "pipecat"):
        raise ValueError(f"barge_in must be 'trunkline' or 'pipecat', got {barge_in!r}")
    return dict(settings, agent_rate=agent_rate, play_rate=play_rate, barge_in_enabled=barge_in == "trunkline")


async def accept_calls(server: Server, poll_interval: Optional[float] = None) -> AsyncIterator[Session]:
    """Yields each call the server accepts (its stream has started), for as long as the server
    runs: `Server.calls()`, which waits on the engine's wakeup fd (a new call signals it) rather
    than polling. `poll_interval` is ignored (kept for callers that pass it).

        async for call in accept_calls(server):
            asyncio.create_task(run_bot(TrunklineTransport(call=call)))
    """
    del poll_interval
    async for call in server.calls():
        yield call
