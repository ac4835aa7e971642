"""Trunkline: a real-time media engine for telephone voice bots (Python binding).

    import trunkline
    with trunkline.Engine() as engine, engine.session(agent_rate=16000) as call:
        call.push(message_from_twilio)          # every message the carrier sends
        pcm = call.read_audio()                 # caller audio, s16le at 16 kHz
        call.play(tts_pcm, 24000)               # agent audio at any supported rate
        for msg in call.outbound():             # paced messages to send back
            await websocket.send(msg)
        for ev in call.events():                # speech, barge-in, marks, dtmf, errors
            ...
"""

from ._codec import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from ._core import Engine, Event, Session
from ._errors import Result, TrunklineError
from ._log import log_to_stderr
from ._server import Server
from ._vad import VAD_RATES, Vad
from ._ffi import lib as _lib

__version__ = _lib.trunkline_version().decode()

__all__ = [
    "Engine",
    "Session",
    "Server",
    "Vad",
    "VAD_RATES",
    "Event",
    "Result",
    "TrunklineError",
    "ulaw_decode",
    "ulaw_encode",
    "alaw_decode",
    "alaw_encode",
    "log_to_stderr",
    "__version__",
]
