"""Trunkline for Pipecat: a transport for telephone calls, and a VAD analyzer.

    from trunkline.pipecat import TrunklineTransport, TrunklineParams

    @app.websocket("/media")
    async def media(websocket: WebSocket):
        await websocket.accept()
        transport = TrunklineTransport(websocket, engine, params=TrunklineParams())
        pipeline = Pipeline([transport.input(), stt, user_aggregator, llm, tts, transport.output(),
                             assistant_aggregator])
        ...

Needs pipecat-ai (the `pipecat` extra). See docs/integrations.md.
"""

from .frames import (
    TrunklineBargeInFrame,
    TrunklineMarkClearedFrame,
    TrunklineMarkFrame,
    TrunklineMarkPlayedFrame,
    TrunklinePlayedPositionFrame,
)
from .offload import accept_calls, offload_session
from .transport import TrunklineInputTransport, TrunklineOutputTransport, TrunklineParams, TrunklineTransport
from .turns import user_turn_strategies
from .vad import TrunklineVADAnalyzer, default_vad_params

__all__ = [
    "TrunklineTransport",
    "TrunklineParams",
    "TrunklineInputTransport",
    "TrunklineOutputTransport",
    "TrunklineVADAnalyzer",
    "default_vad_params",
    "TrunklineBargeInFrame",
    "TrunklinePlayedPositionFrame",
    "TrunklineMarkFrame",
    "TrunklineMarkPlayedFrame",
    "TrunklineMarkClearedFrame",
    "user_turn_strategies",
    "offload_session",
    "accept_calls",
]
