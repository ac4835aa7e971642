"""Engine and Session: the Python face of the C ABI."""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import threading
import weakref
from ctypes import byref, c_int32, c_size_t, c_uint32, c_uint64, c_void_p, sizeof
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional, Union

from ._handle import OwnedHandle
from ._errors import Result, TrunklineError, check
from ._ffi import (
    METRICS_OPENMETRICS,
    METRICS_PROMETHEUS,
    SEGMENT_TAG_CAPACITY,
    CEvent,
    EngineConfig,
    SessionConfig,
    StartInfo,
    StreamStart,
    c_enum,
    lib,
    unconverted,
)

EVENT_KINDS = {
    1: "connected",
    2: "started",
    3: "speech_started",
    4: "speech_stopped",
    5: "barge_in",
    6: "interrupted",
    7: "mark_played",
    8: "mark_cleared",
    9: "dtmf",
    10: "stopped",
    11: "protocol_error",
    12: "end_of_turn",
}
# trunkline_start_field: the strings of the `start` message, by meaning.
START_FIELDS = {"call_id": 0, "stream_id": 1, "account_id": 2}
# trunkline_audio_encoding: the carrier's audio encoding, by name.
ENCODINGS = {0: "mulaw", 1: "alaw", 2: "l16", 3: "g722", 4: "opus"}
# trunkline_agent_format: the agent's audio format, by name (with the names speech services use).
AGENT_FORMATS = {"pcm": 0, "ulaw": 1, "mulaw": 1, "g711_ulaw": 1, "pcmu": 1, "alaw": 2, "g711_alaw": 2, "pcma": 2}
# The codecs of play_encoded (TRUNKLINE_CODEC_*), by name.
CODECS = {"ogg_opus": 0, "opus": 1}
_FORMAT_NAMES = {0: "pcm", 1: "ulaw", 2: "alaw"}
_TEXT, _BINARY = 0, 1
_EMPTY, _BUFFER_TOO_SMALL = int(Result.EMPTY), int(Result.BUFFER_TOO_SMALL)

# The per-frame calls, without per-call argument conversion (see _ffi.unconverted).
_push = unconverted("trunkline_session_push")
_read_audio = unconverted("trunkline_session_read_audio")
_play = unconverted("trunkline_session_play")
_read_audio_bytes = unconverted("trunkline_session_read_audio_bytes")
_play_bytes = unconverted("trunkline_session_play_bytes")
_AUDIO_BYTES = c_size_t(2 * 8192)
_next_outbound = unconverted("trunkline_session_next_outbound")
_poll_event = unconverted("trunkline_session_poll_event")

_AUDIO_SAMPLES = 8192
_AUDIO_CAPACITY = c_size_t(_AUDIO_SAMPLES)
_OUT_BYTES = 4096  # always holds a media message (the header's promise)


class _Scratch:
    """The buffers and out-parameters of one per-frame call: a session keeps a pool of them
    (one, plus one for each further thread that ever called it at the same time)."""

    __slots__ = ("audio", "audio_bytes", "count", "count_ref", "samples", "out", "out_bytes",
                 "out_capacity", "length", "length_ref", "kind", "kind_ref", "event", "event_ref")

    def __init__(self) -> None:
        self.audio = (ctypes.c_int16 * _AUDIO_SAMPLES)()
        self.audio_bytes = memoryview(self.audio).cast("B")
        self.count = c_size_t()  # samples read / samples taken
        self.count_ref = byref(self.count)
        self.samples = c_size_t()  # an input: the samples passed to play
        self.length = c_size_t()
        self.length_ref = byref(self.length)
        self.kind = c_enum()
        self.kind_ref = byref(self.kind)
        self.event = CEvent()
        self.event.struct_size = sizeof(CEvent)  # kept by the library: set once
        self.event_ref = byref(self.event)
        self.grow_out(_OUT_BYTES)

    def grow_out(self, size: int) -> None:
        self.out = ctypes.create_string_buffer(size)
        self.out_bytes = memoryview(self.out).cast("B")
        self.out_capacity = c_size_t(size)


@dataclass
class Event:
    """Something that happened in a call.

    `kind` is one of: connected, started, speech_started, speech_stopped, barge_in, interrupted,
    mark_played, mark_cleared, dtmf, stopped, protocol_error, end_of_turn. Fields that do not
    apply are 0/"" (or None where noted).
    """

    kind: str
    stream_ms: int = 0
    played_ms: int = 0
    digit: str = ""
    # `dtmf` only: how long the key was held, ms, on carriers that say (Vonage, Exotel,
    # SignalWire, jambonz); None on the others.
    duration_ms: Optional[int] = None
    # `end_of_turn` only (vad_end_of_turn_enabled): the silence waited after the speech that
    # ended at `stream_ms`, ms, and how finished the phrase sounded, 0-100; None on the others.
    silence_ms: Optional[int] = None
    confidence: Optional[int] = None
    name: str = ""
    error_code: int = 0
    error_message: str = ""
    # `started` only, whichever carrier it is: the call's, the stream's and the account's
    # identifiers (Twilio's callSid, streamSid, accountSid; "" when the carrier sends none), the
    # custom parameters in the order sent, the tracks, and the media format: `encoding` ("mulaw",
    # "alaw" or "l16"), `sample_rate` (Hz) and `channels`.
    # `barge_in` and `interrupted` only: the tag of the segment the caller was hearing (see
    # Session.begin_segment; when nothing queued had been heard yet, the first one queued; None
    # when no segment was queued), how much of it was heard, ms (None: nothing of it yet, unlike
    # 0), and the tags of the later segments of which nothing was heard, in the order begun.
    segment: Optional[str] = None
    segment_played_ms: Optional[int] = None
    unheard_segments: list = field(default_factory=list)
    call_id: str = ""
    stream_id: str = ""
    account_id: str = ""
    custom_parameters: dict = field(default_factory=dict)
    tracks: list = field(default_factory=list)
    encoding: str = ""
    sample_rate: int = 0
    channels: int = 0


# ctypes keeps the low bits of an int too large for an unsigned field (2**32 + 35 as 35, -1 as
# the largest value): the C settings structs' unsigned fields are checked here instead.
_UNSIGNED = (ctypes.c_ubyte, ctypes.c_ushort, ctypes.c_uint, ctypes.c_ulong, ctypes.c_ulonglong)


def _wakeup_fd(handle: int) -> int:
    fd = c_int32()
    check(lib.trunkline_engine_wakeup_fd(handle, byref(fd)), "wakeup_fd")
    return fd.value


def unsigned_setting(struct: type, key: str, value):
    """`value` for field `key` of the C settings struct `struct`, checked if the field is an
    unsigned integer: TypeError if not an int, TrunklineError INVALID_ARGUMENT if the field cannot
    hold it (as the library answers a value out of the setting's range)."""
    ctype = dict(struct._fields_)[key]
    if not (isinstance(ctype, type) and issubclass(ctype, _UNSIGNED)):
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{key} must be an int, got {type(value).__name__}")
    if not 0 <= value < 2 ** (8 * ctypes.sizeof(ctype)):
        raise TrunklineError(Result.INVALID_ARGUMENT, f"{key} = {value} does not fit its field")
    return value


def session_config(settings: dict) -> SessionConfig:
    """The C session config: the library's defaults, then `settings` (the C fields by name;
    `dialect` a str). Keeps the encoded dialect alive as long as the struct."""
    config = SessionConfig()
    check(lib.trunkline_session_config_default(byref(config), sizeof(config)), "session config")
    for key, value in settings.items():
        if key not in dict(SessionConfig._fields_) or key == "struct_size":
            raise TypeError(f"unknown session setting {key!r}")
        if key == "agent_format" and isinstance(value, str):
            if value.lower() not in AGENT_FORMATS:
                raise ValueError(f"unknown agent_format {value!r}: one of 'pcm', 'ulaw', 'alaw'")
            value = AGENT_FORMATS[value.lower()]
        if key == "dialect":
            if value is not None and not isinstance(value, str):
                raise TypeError(f"dialect must be a str or None, got {type(value).__name__}")
            if value is not None and "\0" in value:
                raise TrunklineError(Result.INVALID_ARGUMENT, "dialect contains NUL")
            value = value.encode() if value is not None else None
        if key == "record_path" and value is not None:
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"record_path must be a str, a path or None, got {type(value).__name__}")
            value = os.fsencode(value)
            if b"\0" in value:
                raise TrunklineError(Result.INVALID_ARGUMENT, "record_path contains NUL")
        setattr(config, key, unsigned_setting(SessionConfig, key, value))
    return config


# The keys of Engine.session's `start`, and the encodings it names (those of the `started`
# event, "ulaw" also taken for "mulaw" as AGENT_FORMATS does).
START_KEYS = ("stream_id", "call_id", "account_id", "encoding", "sample_rate", "channels", "custom_parameters")
_START_ENCODINGS = {name: code for code, name in ENCODINGS.items()}
_START_ENCODINGS["ulaw"] = _START_ENCODINGS["mulaw"]


def stream_start(start: dict) -> tuple:
    """The C stream start from `start` (START_KEYS; the others raise ValueError), and what must
    stay alive as long as it (the encoded strings and their address arrays)."""
    if not isinstance(start, dict):
        raise TypeError(f"start must be a dict, got {type(start).__name__}")
    unknown = [key for key in start if key not in START_KEYS]
    if unknown:
        raise ValueError(f"unknown start key {unknown[0]!r}: one of {', '.join(START_KEYS)}")
    c = StreamStart()
    check(lib.trunkline_stream_start_default(byref(c), sizeof(c)), "stream start")

    def text(key: str, value: object) -> bytes:
        if not isinstance(value, str):
            raise TypeError(f"start {key} must be a str, got {type(value).__name__}")
        if "\0" in value:
            raise TrunklineError(Result.INVALID_ARGUMENT, f"start {key} contains NUL")
        return value.encode()

    for key in ("stream_id", "call_id", "account_id"):
        if start.get(key) is not None:
            setattr(c, key, text(key, start[key]))
    encoding = start.get("encoding")
    if encoding is not None:
        if not isinstance(encoding, str) or encoding.lower() not in _START_ENCODINGS:
            raise ValueError(f"unknown start encoding {encoding!r}: one of 'mulaw' ('ulaw'), 'alaw', 'l16', 'g722', 'opus'")
        c.encoding = _START_ENCODINGS[encoding.lower()]
    for key in ("sample_rate", "channels"):
        value = start.get(key)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
                raise ValueError(f"start {key} must be an int in [0, 2**32), got {value!r}")
            setattr(c, key, value)
    params = start.get("custom_parameters") or {}
    if not isinstance(params, dict):
        raise TypeError(f"start custom_parameters must be a dict, got {type(params).__name__}")
    buffers = [ctypes.create_string_buffer(text("custom parameter", k)) for k in params]
    buffers += [ctypes.create_string_buffer(text("custom parameter", v)) for v in params.values()]
    n = len(params)
    names = (c_void_p * max(n, 1))(*[ctypes.addressof(b) for b in buffers[:n]])
    values = (c_void_p * max(n, 1))(*[ctypes.addressof(b) for b in buffers[n:]])
    c.custom_parameter_names = ctypes.cast(names, ctypes.POINTER(c_void_p))
    c.custom_parameter_values = ctypes.cast(values, ctypes.POINTER(c_void_p))
    c.custom_parameter_count = n
    return c, (buffers, names, values)


class Engine(OwnedHandle):
    """A Trunkline engine: worker threads plus a wakeup fd.

    `workers=None` starts one worker per core; `workers=0` runs inline (your calls do the work).
    `worker_nice` is the nice value the workers ask for, -20..=19 (0 leaves them alone); without
    CAP_SYS_NICE a negative one may be refused, which is not an error (see prioritised_workers).

    `manual_clock=True` (inline only: `workers=0`, else TrunklineError INVALID_ARGUMENT) gives
    the engine a clock of its own for deterministic tests and simulations: its time starts at 0
    and moves only with `advance(ms)`, so pacing, reorder waits, played positions and holds
    depend on the time you set, never on how long your calls take.

    Thread-safe. Use as a context manager or call close().
    """

    def __init__(
        self,
        workers: Optional[int] = None,
        max_sessions: int = 4096,
        tick_ms: int = 10,
        worker_nice: int = -10,
        manual_clock: bool = False,
    ) -> None:
        config = EngineConfig()
        check(lib.trunkline_engine_config_default(byref(config), sizeof(config)), "engine config")
        config.workers_per_core = workers is None
        # Checked against their C fields, as every setting is: ctypes would keep the low bits.
        config.workers = unsigned_setting(EngineConfig, "workers", workers or 0)
        config.max_sessions = unsigned_setting(EngineConfig, "max_sessions", max_sessions)
        config.tick_ms = unsigned_setting(EngineConfig, "tick_ms", tick_ms)
        if not isinstance(worker_nice, int) or isinstance(worker_nice, bool):
            raise TypeError(f"worker_nice must be an int, got {type(worker_nice).__name__}")
        if not -(2**31) <= worker_nice < 2**31:
            raise TrunklineError(Result.INVALID_ARGUMENT, f"worker_nice = {worker_nice} does not fit its field")
        config.worker_nice = worker_nice
        handle = c_void_p()
        if manual_clock:
            check(lib.trunkline_engine_new_manual_clock(byref(config), byref(handle)), "engine")
        else:
            check(lib.trunkline_engine_new(byref(config), byref(handle)), "engine")
        self._handle: Optional[int] = handle.value
        self.inline = workers == 0
        #: Whether the engine's time is set by advance() (Engine(workers=0, manual_clock=True)).
        self.manual_clock = bool(manual_clock)
        self._lock = threading.Lock()
        # Threads inside trunkline_engine_wait: close() must not free the engine under them.
        self._waiting = 0
        self._idle = threading.Condition(self._lock)
        self._readers: dict[asyncio.AbstractEventLoop, set[asyncio.Event]] = {}
        # Servers started on this engine: close() frees them first, as the library requires.
        self._servers: "weakref.WeakSet" = weakref.WeakSet()

    def _h(self) -> int:
        if self._handle is None:
            raise TrunklineError(Result.CLOSED, "engine")
        return self._handle

    @property
    def wakeup_fd(self) -> int:
        """An fd that becomes readable when some session has output (for your event loop)."""
        # Under the lock, as every call on the handle: close() cannot free the engine meanwhile.
        with self._lock:
            return _wakeup_fd(self._h())

    @property
    def prioritised_workers(self) -> int:
        """How many workers run at the requested `worker_nice` (all of them when it is 0; fewer
        when the system refused it, e.g. without CAP_SYS_NICE; 0 for an inline engine)."""
        count = c_uint32()
        with self._lock:
            check(lib.trunkline_engine_prioritised_workers(self._h(), byref(count)), "prioritised_workers")
        return count.value

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until some session has output, `wake()` is called, or `timeout` seconds pass;
        True if woken. close() from another thread also ends it (True; the next call raises
        CLOSED).

        Releases the GIL while waiting (ctypes does), so other Python threads keep running.

        The engine has one wakeup signal, and each waiter takes it: wait() and `wakeups()`,
        `aevents()`, `Server.calls()` or the Pipecat transport on an asyncio loop (or on two
        loops) waiting on the same engine take each other's wakeups, the loser waiting out its
        timeout. Wait one way per engine: one engine per asyncio loop, or wait() in one thread.
        """
        ms = -1 if timeout is None else int(timeout * 1000)
        with self._lock:
            handle = self._h()
            self._waiting += 1
        try:
            code = lib.trunkline_engine_wait(handle, ms)
        finally:
            with self._lock:
                self._waiting -= 1
                self._idle.notify_all()
        if code == Result.TIMEOUT:
            return False
        check(code, "wait")
        return True

    def wake(self) -> None:
        """Makes a `wait()` return True: the one blocked now in another thread, or else the next
        one (a wake before the wait is kept for it). The waiter cannot tell it from output: it
        drains its sessions and finds nothing new, so set your own stop flag before waking and
        check it after every wait. One wake releases one wait; wakes before that count as one.
        Never blocks; any thread. (close() wakes every waiter itself.)"""
        # Under the lock: close() cannot free the engine between the handle check and the call.
        with self._lock:
            check(lib.trunkline_engine_wake(self._h()), "wake")

    def advance(self, ms: float) -> None:
        """Moves a manual clock (`Engine(workers=0, manual_clock=True)`) forward by `ms`
        milliseconds: an int, or a float rounded to the nearest microsecond. Sessions see the new
        time at their next call, so drain them after advancing: with agent audio queued, each
        20 ms releases exactly one more media frame from outbound() (a step of the lead or more
        releases only the lead's worth, as after a carrier that ran dry). Nothing is signalled:
        wait() timeouts stay wall time.

        Raises ValueError for a negative or non-finite step, TrunklineError INVALID_ARGUMENT on
        an engine with the real clock or for a step past the clock's end (2**62 - 1 µs; the
        clock then does not move). Any thread, also while others call the engine's sessions.
        """
        if isinstance(ms, float) and not math.isfinite(ms):
            raise ValueError(f"advance: ms must be finite, got {ms!r}")
        us = round(ms * 1000)
        if us < 0:
            raise ValueError(f"advance: ms must not be negative, got {ms!r}")
        if us >= 1 << 64:
            raise TrunklineError(Result.INVALID_ARGUMENT, "advance")
        # Under the lock: close() cannot free the engine between the handle check and the call.
        with self._lock:
            check(lib.trunkline_engine_advance_clock(self._h(), us), "advance")

    def metrics(self, openmetrics: bool = False) -> str:
        """The engine's counters as Prometheus text (the exposition format 0.0.4; OpenMetrics
        1.0 with `openmetrics=True`, ending with `# EOF`), built now from counters the engine
        keeps anyway: calls active, opened and ended by outcome, media frames, protocol errors,
        every session counter summed over all sessions (freed ones included) as
        `trunkline_session_<name>_total` (µs counters in seconds, as `..._seconds_total`), the
        engine's latency histogram, CPU time per worker. Serve it on your own `/metrics`
        (Content-Type `text/plain; version=0.0.4`, or `application/openmetrics-text;
        version=1.0.0` for OpenMetrics). With a Server on this engine, scrape the server's own
        `/metrics` instead: it serves this plus the server's counters. Any thread; a few
        kilobytes built per call, so not for every frame."""
        fmt = METRICS_OPENMETRICS if openmetrics else METRICS_PROMETHEUS
        length = c_size_t()
        # Under the lock: close() cannot free the engine during the call.
        with self._lock:
            handle = self._h()
            code = lib.trunkline_engine_metrics(handle, fmt, None, 0, byref(length))
            while code == Result.BUFFER_TOO_SMALL:
                # Room to spare: the text may have grown since its length was given.
                size = length.value + length.value // 4 + 256
                buf = ctypes.create_string_buffer(size)
                code = lib.trunkline_engine_metrics(handle, fmt, buf, size, byref(length))
            check(code, "metrics")
        return buf.raw[: length.value].decode()

    def session(self, agent_rate: int = 16000, start: Optional[dict] = None, **settings: object) -> "Session":
        """Opens a session (a call). Keyword settings are the C session config's fields
        (play_rate, lead_ms, vad_aggressiveness, barge_in_enabled, barge_in_min_speech_ms, ...);
        `dialect` names the carrier's protocol ("twilio", the default). `agent_format="ulaw"`
        (or "alaw", with agent_rate=8000) makes the agent speak 8 kHz G.711 both ways:
        read_audio() returns the codes and play(data, 8000) takes them, passed through untouched
        when the carrier speaks the same law. `vad_end_of_turn_enabled=True` adds `end_of_turn`
        events (tuned by vad_end_of_turn_min_silence_ms, vad_end_of_turn_threshold, a percent
        1..=99, and vad_end_of_turn_max_silence_ms, 0..=10000: longer than the hangover, an
        unfinished-sounding pause ends the turn only after that much silence, after
        speech_stopped); `vad_echo_aware=True` keeps the agent's echo from passing for caller
        speech; `barge_in_duck_db` (default 18, 0 off) turns the agent down while an
        interruption is being confirmed; `barge_in_rejoin_within_ms` (default 800, 0 off, at most
        2000) counts short speeches over the agent voiced again within that long as one, so a
        noisy line that splits an interruption's words does not lose it;
        `echo_reduction=True` (needs `vad_echo_aware=True`, else TrunklineError(INVALID_ARGUMENT))
        delivers the caller's audio with the agent's own echo removed (the canceller works at
        8 kHz: from a wider carrier stream the agent then gets the band up to 3.9 kHz).
        `record_path` ("call.wav", ".opus" or ".ogg"; a str or a path) records the call in stereo
        (caller left, agent as heard right), closed when the session is; a file that cannot be
        created or another extension raises TrunklineError(RECORD).

        `start`, for a host that already read the carrier's `start` message itself (its
        framework parsed it to route the call): what it said, as {"stream_id", "call_id",
        "account_id", "encoding" ("mulaw"/"ulaw", "alaw", "l16"; default "mulaw"), "sample_rate"
        (default 8000), "channels" (default 1), "custom_parameters" (a dict)}. The session then
        behaves as one that parsed that message: its first event is `started`, the stream id is
        echoed to the carrier, and a `start` pushed again is a protocol error (duplicate); push
        what follows it. Unknown keys raise ValueError; a format the dialect or the engine cannot
        take raises TrunklineError(INVALID_ARGUMENT)."""
        config = session_config(dict(settings, agent_rate=agent_rate))
        handle = c_void_p()
        if start is not None:
            c_start, keep = stream_start(start)
            with self._lock:
                code = lib.trunkline_session_open_started(self._h(), byref(config), byref(c_start), byref(handle))
            del keep  # read by the call only
            check(code, "session")
        else:
            with self._lock:
                code = lib.trunkline_session_open(self._h(), byref(config), byref(handle))
            check(code, "session")
        session = Session(self, handle.value, agent_rate)
        return session

    # asyncio: one reader per loop on the wakeup fd, fanning out to the sessions waiting on it.
    def _subscribe(self, loop: asyncio.AbstractEventLoop, flag: asyncio.Event) -> None:
        flags = self._readers.get(loop)
        if flags is None:
            flags = self._readers[loop] = set()
            loop.add_reader(self.wakeup_fd, self._on_wakeup, loop)
        flags.add(flag)

    def _unsubscribe(self, loop: asyncio.AbstractEventLoop, flag: asyncio.Event) -> None:
        flags = self._readers.get(loop)
        if flags is None:
            return
        flags.discard(flag)
        if not flags:
            del self._readers[loop]
            if self._handle is not None and not loop.is_closed():
                loop.remove_reader(self.wakeup_fd)

    def _on_wakeup(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            if self._handle is None:
                return
            lib.trunkline_engine_clear_wakeup(self._handle)
        for flag in list(self._readers.get(loop, ())):
            flag.set()

    def close(self) -> None:
        """Stops the workers. Servers started on it are closed first (their calls end); sessions
        still open then raise CLOSED; a `wait()` blocked in another thread returns (True) first."""
        with self._lock:
            if self._handle is not None:
                # Under the lock, so that no server starts meanwhile (a server's close() does not
                # take it).
                for server in list(self._servers):
                    server.close()
                fd = _wakeup_fd(self._handle)
                for loop in list(self._readers):
                    if not loop.is_closed():
                        loop.remove_reader(fd)
                self._readers.clear()
                # New calls raise CLOSED from here; waits already inside the library must return
                # before the free. One wake releases one wait, so wake until none is left (the
                # timeout only re-wakes if some other reset of the signal took a wake).
                handle, self._handle = self._handle, None
                while self._waiting:
                    lib.trunkline_engine_wake(handle)
                    self._idle.wait(0.05)
                lib.trunkline_engine_free(handle)



class Session(OwnedHandle):
    """One call. Methods may be called from any thread (the C handle serializes them)."""

    def __init__(self, engine: Engine, handle: int, agent_rate: int) -> None:
        self._engine = engine  # keeps the engine alive as long as the session
        self._handle: Optional[int] = handle
        self._ptr: Optional[c_void_p] = c_void_p(handle)  # the handle as the per-frame calls pass it
        self.agent_rate = agent_rate
        # "pcm", "ulaw" or "alaw", as the session's config set it (a server's for accepted calls).
        fmt = c_uint32()
        check(lib.trunkline_session_agent_format(handle, byref(fmt)), "agent_format")
        self.agent_format = _FORMAT_NAMES.get(fmt.value, "pcm")
        self._scratch = [_Scratch()]
        self._events_lock = threading.Lock()
        self._count = lib.trunkline_session_stats_count()
        self._stat_names = [lib.trunkline_session_stats_name(i).decode() for i in range(self._count)]

    def _h(self) -> int:
        if self._ptr is None:
            raise TrunklineError(Result.CLOSED, "session")
        return self._handle

    # The per-frame methods below are written for speed (each is called about 50 times a second
    # per call): the C handle and the buffers are bound once, the calls skip ctypes' argument
    # conversion, and results are sliced out of preallocated buffers. A thread takes a _Scratch
    # from the pool for the length of a call (list.pop and append are atomic), so threads calling
    # the same session at once never share a buffer. That checkout is written out in each method
    # rather than in a helper on purpose: a Python call costs about 0.07 µs, paid three times a
    # frame, out of a 10 µs budget for the whole cycle.

    def _closed(self) -> TrunklineError:
        return TrunklineError(Result.CLOSED, "session")

    def push(self, message: Union[str, bytes, bytearray]) -> None:
        """Hands one message received from the carrier to the engine (str: text frame, bytes:
        binary frame). Bad input is reported as a protocol_error event, not raised. Raises
        TrunklineError(FULL) if the engine is behind (retry later)."""
        ptr = self._ptr
        if ptr is None:
            raise self._closed()
        if message.__class__ is str or isinstance(message, str):
            data = message.encode()
            code = _push(ptr, data, c_size_t(len(data)), _TEXT)
        else:
            data = bytes(message)
            code = _push(ptr, data, c_size_t(len(data)), _BINARY)
        if code:
            raise TrunklineError(code, "push")

    async def apush(self, message: Union[str, bytes, bytearray], timeout: float = 2.0) -> None:
        """`push` for asyncio code: when the engine is behind (FULL), waits for it to catch up
        instead of raising, for at most `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        delay = 0.0005
        while True:
            try:
                return self.push(message)
            except TrunklineError as e:
                if e.code != Result.FULL or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    def read_audio(self) -> bytes:
        """All caller audio ready now: s16le mono at the agent rate (b"" if none); for a G.711
        agent (agent_format "ulaw" or "alaw") its 8 kHz codes, a byte per sample."""
        ptr = self._ptr
        if ptr is None:
            raise self._closed()
        if self.agent_format != "pcm":
            return self._read_codes(ptr)
        pool = self._scratch
        try:
            s = pool.pop()
        except IndexError:
            s = _Scratch()
        try:
            code = _read_audio(ptr, s.audio, _AUDIO_CAPACITY, s.count_ref)
            if code:
                if code == _EMPTY:
                    return b""
                raise TrunklineError(code, "read_audio")
            n = s.count.value
            if n < _AUDIO_SAMPLES:
                return s.audio_bytes[: 2 * n].tobytes()  # a short read emptied the ring: done
            chunks = [s.audio_bytes.tobytes()]
            while True:
                code = _read_audio(ptr, s.audio, _AUDIO_CAPACITY, s.count_ref)
                if code:
                    if code == _EMPTY:
                        return b"".join(chunks)
                    raise TrunklineError(code, "read_audio")
                n = s.count.value
                chunks.append(s.audio_bytes[: 2 * n].tobytes())
                if n < _AUDIO_SAMPLES:
                    return b"".join(chunks)
        finally:
            pool.append(s)

    def _read_codes(self, ptr: c_void_p) -> bytes:
        chunks = []
        pool = self._scratch
        try:
            s = pool.pop()
        except IndexError:
            s = _Scratch()
        try:
            while True:
                code = _read_audio_bytes(ptr, s.audio, _AUDIO_BYTES, s.count_ref)
                if code:
                    if code == _EMPTY:
                        return b"".join(chunks)
                    raise TrunklineError(code, "read_audio")
                n = s.count.value
                chunks.append(s.audio_bytes[:n].tobytes())
                if n < _AUDIO_BYTES.value:
                    return b"".join(chunks)
        finally:
            pool.append(s)

    def play(self, pcm: Union[bytes, bytearray, memoryview], rate: int) -> int:
        """Queues agent audio (s16le mono at `rate` Hz; for a G.711 agent its codes, `rate`
        8000). Returns the samples taken: keep the rest and retry later. Raises
        TrunklineError(FULL) if nothing fit."""
        ptr = self._ptr
        if ptr is None:
            raise self._closed()
        if self.agent_format != "pcm":
            data = bytes(pcm)
            taken = c_size_t()
            code = _play_bytes(ptr, data, c_size_t(len(data)), c_uint32(rate), byref(taken))
            if code:
                raise TrunklineError(code, "play")
            return taken.value
        data = pcm if pcm.__class__ is bytes else bytes(pcm)
        size = len(data)
        if size & 1:
            raise ValueError("PCM must be a whole number of 16-bit samples")
        if rate.__class__ is not int or rate >> 31:
            rate = c_uint32(rate)  # outside [0, 2**31): converted as the declaration does
        pool = self._scratch
        try:
            s = pool.pop()
        except IndexError:
            s = _Scratch()
        try:
            s.samples.value = size >> 1
            code = _play(ptr, data, s.samples, rate, s.count_ref)
            if code:
                raise TrunklineError(code, "play")
            return s.count.value
        finally:
            pool.append(s)

    def play_encoded(self, data: Union[bytes, bytearray, memoryview], codec: str = "ogg_opus", rate: int = 48000) -> int:
        """Queues encoded agent audio, decoded here (on the calling thread) and then played as
        `play` plays PCM. codec "ogg_opus": an Ogg Opus stream in chunks of any size as it arrives
        (`rate` ignored); "opus": one raw Opus packet per call from a stream encoded at `rate` Hz.
        Returns the bytes taken: keep the rest and retry later. Raises TrunklineError(FULL) if
        nothing was taken, TrunklineError(BAD_AUDIO) for corrupt or unsupported input (the stream
        is dropped; the next bytes start a new one)."""
        try:
            c = CODECS[codec]
        except KeyError:
            raise ValueError(f"unknown codec {codec!r}: one of 'ogg_opus', 'opus'") from None
        data = bytes(data)
        taken = c_size_t()
        check(lib.trunkline_session_play_encoded(self._h(), c, data, len(data), rate, byref(taken)), "play_encoded")
        return taken.value

    def end_encoded(self) -> None:
        """The encoded input is over (a reply's stream ended): plays what play_encoded still
        holds and starts the next bytes as a new stream. Raises TrunklineError(FULL) while decoded
        audio waits for room (call again), TrunklineError(BAD_AUDIO) if the stream was cut."""
        check(lib.trunkline_session_end_encoded(self._h()), "end_encoded")

    def mark(self, name: str) -> None:
        """Places a mark after the audio played so far (mark_played / mark_cleared follows)."""
        check(lib.trunkline_session_mark(self._h(), name.encode()), "mark")

    def interrupt(self) -> None:
        """Stops the agent: drops queued audio, sends clear, reports `interrupted`."""
        check(lib.trunkline_session_interrupt(self._h()), "interrupt")

    def begin_segment(self, tag: str) -> None:
        """Begins a segment named `tag` (1 to 63 bytes of UTF-8): agent audio played after this
        belongs to it until the next begin_segment. `barge_in` and `interrupted` events then say
        which segment the caller was hearing, how much of it, and which later ones went unheard;
        they end every segment. Raises TrunklineError(FULL) when 32 segments are queued that the
        caller has not got past yet (nothing taken), INVALID_ARGUMENT for a bad tag."""
        check(lib.trunkline_session_begin_segment(self._h(), tag.encode()), "begin_segment")

    @property
    def queued_ms(self) -> int:
        """Agent audio accepted by play() that the caller has not heard yet, ms: waiting in the
        engine and at the carrier (by the engine's playout model)."""
        out = c_uint64()
        check(lib.trunkline_session_queued_ms(self._h(), byref(out)), "queued_ms")
        return out.value

    def _unheard_segments(self, count: int) -> list:
        buf = ctypes.create_string_buffer(SEGMENT_TAG_CAPACITY)
        length = c_size_t()
        out = []
        for i in range(count):
            check(
                lib.trunkline_session_unheard_segment(self._h(), i, buf, SEGMENT_TAG_CAPACITY, byref(length)),
                "unheard_segment",
            )
            out.append(buf.raw[: length.value].decode())
        return out

    def end_stream(self) -> None:
        """The carrier's connection closed: the stream ends as with a stop message (marks
        resolved, then `stopped`). Carriers that send no stop (Plivo, Vonage, jambonz, AudioSocket
        without its hang-up) end this way. Does nothing once the stream has ended."""
        check(lib.trunkline_session_end_stream(self._h()), "end_stream")

    def outbound(self) -> list:
        """Every message to send to the carrier now, in order (str: text frame, bytes: binary).
        Send them right away: the engine paces them."""
        ptr = self._ptr
        if ptr is None:
            raise self._closed()
        pool = self._scratch
        try:
            s = pool.pop()
        except IndexError:
            s = _Scratch()
        try:
            out = []
            while True:
                code = _next_outbound(ptr, s.out, s.out_capacity, s.length_ref, s.kind_ref)
                if code:
                    if code == _EMPTY:
                        return out
                    if code == _BUFFER_TOO_SMALL:
                        check(lib.trunkline_session_outbound_len(self._h(), byref(s.length)), "outbound")
                        s.grow_out(s.length.value)
                        continue
                    raise TrunklineError(code, "outbound")
                raw = s.out_bytes[: s.length.value].tobytes()
                out.append(raw.decode() if s.kind.value == _TEXT else raw)
        finally:
            pool.append(s)

    def events(self) -> list:
        """Every event that happened since the last call, in order."""
        return self._poll_events(None)

    def _poll_events(self, limit) -> list:
        """The events ready in the library, in order: all of them, or at most `limit`."""
        ptr = self._ptr
        if ptr is None:
            raise self._closed()
        pool = self._scratch
        try:
            s = pool.pop()
        except IndexError:
            s = _Scratch()
        # One thread at a time: a barge-in's unheard segment tags are read after its event is
        # polled, and the library keeps them only until the next such event is.
        try:
            with self._events_lock:
                out = []
                while limit is None or len(out) < limit:
                    code = _poll_event(ptr, s.event_ref)
                    if code:
                        if code == _EMPTY:
                            return out
                        raise TrunklineError(code, "events")
                    out.append(self._event(s.event))
                return out
        finally:
            pool.append(s)

    def _event(self, ev: CEvent) -> Event:
        kind = EVENT_KINDS.get(ev.kind, f"unknown({ev.kind})")
        e = Event(kind=kind, stream_ms=ev.stream_ms, played_ms=ev.played_ms)
        if kind == "dtmf":
            e.digit = ev.digit.decode()
            e.duration_ms = ev.duration_ms if ev.duration_ms >= 0 else None
        elif kind in ("mark_played", "mark_cleared"):
            e.name = ev.name.decode()
        elif kind == "protocol_error":
            e.error_code = ev.error
            e.error_message = lib.trunkline_protocol_error_message(ev.error).decode()
            e.name = ev.name.decode()
        elif kind == "started":
            e.name = ev.name.decode()  # the call id, as in the C event
            self._fill_start(e)
        elif kind == "end_of_turn":
            e.silence_ms = ev.duration_ms
            e.confidence = ev.confidence
        elif kind in ("barge_in", "interrupted"):
            e.segment = ev.segment.decode() or None
            e.segment_played_ms = ev.segment_played_ms if ev.segment_played_ms >= 0 else None
            e.unheard_segments = self._unheard_segments(ev.unheard_segments)
        return e

    def _fill_start(self, e: Event) -> None:
        info = StartInfo(struct_size=sizeof(StartInfo))
        check(lib.trunkline_session_start_info(self._h(), byref(info)), "start_info")
        e.tracks = [t for bit, t in ((1, "inbound"), (2, "outbound")) if info.tracks & bit]
        e.encoding = ENCODINGS.get(info.encoding, f"unknown({info.encoding})")
        e.sample_rate = info.sample_rate
        e.channels = info.channels
        e.call_id = self._start_string(START_FIELDS["call_id"])
        e.stream_id = self._start_string(START_FIELDS["stream_id"])
        e.account_id = self._start_string(START_FIELDS["account_id"])
        for i in range(info.custom_parameter_count):
            key, value = self._custom_parameter(i)
            e.custom_parameters[key] = value

    def _start_string(self, which: int) -> str:
        size = 64
        n = c_size_t()
        while True:
            buf = ctypes.create_string_buffer(size)
            code = lib.trunkline_session_start_string(self._h(), which, buf, size, byref(n))
            if code != Result.BUFFER_TOO_SMALL:
                check(code, "start_string")
                return buf.raw[: n.value].decode()
            size *= 4

    def _custom_parameter(self, index: int) -> tuple:
        size = 256
        kn, vn = c_size_t(), c_size_t()
        while True:
            k, v = ctypes.create_string_buffer(size), ctypes.create_string_buffer(size)
            code = lib.trunkline_session_custom_parameter(self._h(), index, k, size, byref(kn), v, size, byref(vn))
            if code != Result.BUFFER_TOO_SMALL:
                check(code, "custom_parameter")
                return k.raw[: kn.value].decode(), v.raw[: vn.value].decode()
            size *= 4

    def stats(self) -> dict:
        """Every counter (received, dropped, late, filled, stalled, ...) by name."""
        values = (c_uint64 * self._count)()
        n = c_size_t()
        check(lib.trunkline_session_stats(self._h(), values, self._count, byref(n)), "stats")
        return dict(zip(self._stat_names, values[: n.value]))

    async def wakeups(self, poll_interval: float = 0.02) -> AsyncIterator[None]:
        """Yields whenever the engine may have output for this session (audio, events, outbound
        messages), driven by the engine's wakeup fd on the running asyncio loop; ends when the
        session is closed. Drain everything you need at each step. (In inline mode, where no
        worker signals the fd, it yields every `poll_interval` seconds so pacing goes on.)"""
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        self._engine._subscribe(loop, flag)
        try:
            while self._ptr is not None:
                # Cleared before the caller drains: a wakeup landing after the drain sets it again.
                flag.clear()
                yield None
                try:
                    await asyncio.wait_for(flag.wait(), poll_interval if self._engine.inline else 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._engine._unsubscribe(loop, flag)

    async def aevents(self, poll_interval: float = 0.02) -> AsyncIterator[Event]:
        """Yields events as they happen (see `wakeups`); ends after `stopped` or on close."""
        async for _ in self.wakeups(poll_interval):
            # One event taken from the library per step: a consumer that leaves the loop early
            # leaves the rest there for the next `events()` or `aevents()`.
            while taken := self._events_unless_closed():
                yield taken[0]
                if taken[0].kind == "stopped":
                    return

    def _events_unless_closed(self) -> list:
        """The next event, or none once the session is closed (by the consumer of `aevents`
        between two events, or by another thread or task): the iteration then just ends."""
        try:
            return self._poll_events(1)
        except TrunklineError as e:
            if e.code == Result.CLOSED:
                return []
            raise

    def close(self) -> None:
        """Ends the session. Further calls raise TrunklineError(CLOSED). Its memory is freed when
        this object goes (at once in CPython when the last reference does)."""
        # why not free here: another thread may be inside a call with the handle right now (the
        # per-frame methods read it before releasing the GIL for the C call). Closing is safe to
        # race with any call (the C side then answers CLOSED); freeing is not, so it waits until
        # no reference to this object, hence no call on it, is left.
        if self._ptr is not None:
            self._ptr = None
            lib.trunkline_session_close(self._handle)

    def __del__(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                lib.trunkline_session_close(handle)
                lib.trunkline_session_free(handle)
            except Exception:
                pass
