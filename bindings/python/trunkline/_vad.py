"""The speech detector on its own: Trunkline's VAD for audio that does not come through a session."""

from __future__ import annotations

import array
import threading
from ctypes import byref, c_bool, c_float, c_size_t, c_void_p, sizeof
from typing import Iterable, Optional, Union

from ._core import unsigned_setting
from ._errors import Result, TrunklineError, check
from ._ffi import VadConfig, lib
from ._handle import OwnedHandle

#: The sample rates Vad accepts, Hz.
VAD_RATES = (8000, 16000, 24000, 48000)

Pcm = Union[bytes, bytearray, memoryview, "array.array[int]", Iterable[int]]


def vad_config(settings: dict) -> VadConfig:
    """The C VAD config: the library's defaults, then `settings` (the session's VAD settings by
    their names: vad_aggressiveness, vad_min_speech_ms, vad_hangover_ms)."""
    config = VadConfig()
    check(lib.trunkline_vad_config_default(byref(config), sizeof(config)), "vad config")
    for key, value in settings.items():
        if key not in dict(VadConfig._fields_) or key == "struct_size":
            raise TypeError(f"unknown VAD setting {key!r}")
        setattr(config, key, unsigned_setting(VadConfig, key, value))
    return config


def _samples(pcm: Pcm) -> bytes:
    """`pcm` as native-endian s16 bytes: bytes-like data is taken as s16le as it is; a buffer of
    16-bit ints (array('h'), a numpy int16 array) as its samples; anything else as a sequence of
    ints in -32768..32767."""
    try:
        view = memoryview(pcm)  # type: ignore[arg-type]
    except TypeError:
        view = None
    if view is not None:
        if view.format in ("B", "b", "c"):
            if view.nbytes % 2:
                raise ValueError("PCM bytes must be a whole number of 16-bit samples")
            return view.tobytes()
        if view.format == "h":
            return view.tobytes()
    try:
        return array.array("h", pcm).tobytes()  # type: ignore[arg-type]
    except OverflowError as e:
        raise ValueError(f"PCM samples must be in -32768..32767: {e}") from None


class Vad(OwnedHandle):
    """Trunkline's voice activity detector on its own: the classifier and speech state machine a
    session runs, fed one 20 ms frame at a time.

        with trunkline.Vad(sample_rate=16000) as vad:
            p = vad.process(frame)      # 20 ms: 320 samples at 16 kHz (640 bytes of s16le)
            if vad.speaking: ...

    `sample_rate` is 8000, 16000, 24000 or 48000 (the others are resampled to the detector's
    8 kHz as a session does). Settings are the session's VAD settings, by the same names:
    `vad_aggressiveness` (0..3, default 2), `vad_min_speech_ms` (default 120: voiced speech needed
    before `speaking` turns on), `vad_hangover_ms` (default 400: non-speech needed before it turns
    off). A bad rate or setting raises TrunklineError (INVALID_ARGUMENT).

    Methods may be called from any thread (the C handle serializes them). Use as a context
    manager or call close().
    """

    def __init__(self, sample_rate: int = 8000, **settings: int) -> None:
        self._handle: Optional[int] = None
        config = vad_config(settings)
        if not isinstance(sample_rate, int) or not 0 <= sample_rate < 2**32:
            raise TrunklineError(Result.INVALID_ARGUMENT, f"sample_rate = {sample_rate!r}")
        handle = c_void_p()
        check(lib.trunkline_vad_new(byref(config), sample_rate, byref(handle)), "Vad")
        self._handle = handle.value
        self._lock = threading.Lock()
        self.sample_rate = sample_rate
        #: Samples in one frame (20 ms at the sample rate).
        self.frame_samples = sample_rate // 50
        self._speaking = False
        self._probability = c_float()
        self._speaking_out = c_bool()

    @property
    def speaking(self) -> bool:
        """True while speech is confirmed (after the last frame): what a session reports between
        speech_started and speech_stopped."""
        return self._speaking

    def process(self, pcm: Pcm) -> float:
        """Takes the next 20 ms frame (`frame_samples` samples: bytes of s16le, an array('h'), or a
        sequence of ints) and returns its speech probability: 1.0 if the classifier called the
        frame speech, else 0.0 (it decides on thresholds; it has no calibrated score). Updates
        `speaking`. Another length raises TrunklineError (INVALID_ARGUMENT); nothing is taken."""
        data = _samples(pcm)
        with self._lock:
            if self._handle is None:
                raise TrunklineError(Result.CLOSED, "Vad.process")
            check(
                lib.trunkline_vad_process(
                    self._handle,
                    data,
                    c_size_t(len(data) // 2),
                    byref(self._probability),
                    byref(self._speaking_out),
                ),
                "Vad.process",
            )
            self._speaking = bool(self._speaking_out.value)
            return float(self._probability.value)

    def reset(self) -> None:
        """Forgets everything (speech state, noise floor): the next frame starts a new stream."""
        with self._lock:
            if self._handle is None:
                raise TrunklineError(Result.CLOSED, "Vad.reset")
            check(lib.trunkline_vad_reset(self._handle), "Vad.reset")
            self._speaking = False

    def close(self) -> None:
        """Frees the detector (idempotent); later calls raise TrunklineError (CLOSED)."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            if self._handle is not None:
                handle, self._handle = self._handle, None
                lib.trunkline_vad_free(handle)
