"""`TrunklineVADAnalyzer`: Trunkline's speech classifier as a Pipecat VAD analyzer."""

from __future__ import annotations

from typing import Optional

from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams

from .._vad import VAD_RATES, Vad


def default_vad_params() -> VADParams:
    """The analyzer's defaults: Trunkline's own timing (120 ms of speech to start, 400 ms of
    non-speech to stop), any confidence threshold (the classifier answers 0 or 1), and no
    loudness floor (telephone audio is quiet; the classifier already tells speech from noise)."""
    return VADParams(confidence=0.5, start_secs=0.12, stop_secs=0.4, min_volume=0.0)


class TrunklineVADAnalyzer(VADAnalyzer):
    """Pipecat's VAD analyzer on Trunkline's speech classifier (`trunkline.Vad`): no model to
    download, a few microseconds per 20 ms frame, robust to line noise, hum and clicks.

        LLMUserAggregatorParams(vad_analyzer=TrunklineVADAnalyzer())
        VADProcessor(vad_analyzer=TrunklineVADAnalyzer(vad_aggressiveness=3))

    Works on any transport, at 8, 16, 24 or 48 kHz (the pipeline's input rate unless
    `sample_rate` is given). Each 20 ms frame's confidence is the classifier's decision, 1.0 for
    speech and 0.0 otherwise; Pipecat's state machine then applies `params` (see
    `default_vad_params`). Keyword settings are `trunkline.Vad`'s: `vad_aggressiveness` (0..3,
    default 2); `vad_min_speech_ms` and `vad_hangover_ms` only shape Trunkline's own `speaking`
    state, which Pipecat does not use.
    """

    def __init__(self, *, sample_rate: Optional[int] = None, params: Optional[VADParams] = None, **settings: int):
        # A bad setting fails here rather than when the pipeline starts (the ranges are the
        # library's to check).
        Vad(VAD_RATES[0], **settings).close()
        if sample_rate is not None and sample_rate not in VAD_RATES:
            raise ValueError(f"TrunklineVADAnalyzer: sample_rate must be one of {VAD_RATES}, got {sample_rate}")
        super().__init__(sample_rate=sample_rate, params=params or default_vad_params())
        self._settings = settings
        self._vad: Optional[Vad] = None

    def set_sample_rate(self, sample_rate: int):
        rate = self._init_sample_rate or sample_rate
        if rate not in VAD_RATES:
            raise ValueError(f"TrunklineVADAnalyzer: sample_rate must be one of {VAD_RATES}, got {rate}")
        if self._vad is None or self._vad.sample_rate != rate:
            if self._vad is not None:
                self._vad.close()
            self._vad = Vad(sample_rate=rate, **self._settings)
        else:
            self._vad.reset()  # a new stream
        super().set_sample_rate(sample_rate)

    def num_frames_required(self) -> int:
        # One 20 ms frame: the unit the classifier decides on.
        return self.sample_rate // 50

    def voice_confidence(self, buffer: bytes) -> float:
        if self._vad is None:
            raise RuntimeError("TrunklineVADAnalyzer: set_sample_rate() was not called")
        return self._vad.process(buffer)

    async def cleanup(self):
        await super().cleanup()
        if self._vad is not None:
            self._vad.close()
            self._vad = None
