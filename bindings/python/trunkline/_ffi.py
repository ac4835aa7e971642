"""Loads libtrunkline and declares its C functions (the only place that knows the C ABI).

Every declaration here is checked against include/trunkline.h by tests/test_header_drift.py.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

EVENT_NAME_CAPACITY = 256
# Size of trunkline_event's `segment` (TRUNKLINE_SEGMENT_TAG_CAPACITY): a 63-byte tag and its NUL.
SEGMENT_TAG_CAPACITY = 64
# trunkline_engine_metrics formats (TRUNKLINE_METRICS_*).
METRICS_PROMETHEUS = 0
METRICS_OPENMETRICS = 1

# The C enums are uint32_t (the header's typedefs): results, event kinds, message kinds, audio
# encodings.
c_enum = c_uint32


# The config structs begin with `struct_size`: the _default functions are passed sizeof the
# struct as declared here, and the library reads no further than that (see the header's VERSIONED
# CONFIGS), so this mirror keeps working with a newer library that has grown the struct.
class EngineConfig(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("workers", c_uint32),
        ("workers_per_core", c_bool),
        ("max_sessions", c_uint32),
        ("tick_ms", c_uint32),
        ("worker_nice", c_int32),
    ]


class SessionConfig(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("agent_rate", c_uint32),
        ("play_rate", c_uint32),
        ("vad_aggressiveness", c_uint32),
        ("vad_min_speech_ms", c_uint32),
        ("vad_hangover_ms", c_uint32),
        ("barge_in_enabled", c_bool),
        ("barge_in_min_speech_ms", c_uint32),
        ("lead_ms", c_uint32),
        ("sync_mark_interval_ms", c_uint32),
        ("utterance_gap_ms", c_uint32),
        ("max_message_bytes", c_size_t),
        ("max_payload_bytes", c_size_t),
        ("reorder_window_ms", c_uint32),
        ("max_gap_fill_ms", c_uint32),
        ("inbound_ring_bytes", c_size_t),
        ("play_ring_bytes", c_size_t),
        ("outbound_buffer_ms", c_uint32),
        ("agent_ring_ms", c_uint32),
        ("outbound_ring_bytes", c_size_t),
        ("event_capacity", c_size_t),
        ("max_mark_name_bytes", c_size_t),
        ("max_pending_marks", c_size_t),
        ("read_hold_ms", c_uint32),
        ("dialect", c_char_p),
        ("agent_format", c_uint32),
        ("record_path", c_char_p),
        ("vad_echo_aware", c_bool),
        ("vad_end_of_turn_enabled", c_bool),
        ("vad_end_of_turn_min_silence_ms", c_uint32),
        ("vad_end_of_turn_threshold", c_uint32),
        ("barge_in_duck_db", c_uint32),
        ("vad_end_of_turn_max_silence_ms", c_uint32),
        ("barge_in_rejoin_within_ms", c_uint32),
        ("echo_reduction", c_bool),
    ]


# The output structs begin with `struct_size` too: the binding sets it to sizeof the struct as
# declared here before each call, and the library writes no further than that (see the header's
# VERSIONED OUTPUTS), so these mirrors keep working with a newer library that has grown them.
class CEvent(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("kind", c_enum),
        ("stream_ms", c_uint64),
        ("played_ms", c_uint64),
        ("digit", c_char),
        ("error", c_uint32),
        ("name", c_char * EVENT_NAME_CAPACITY),
        ("duration_ms", c_int64),
        ("segment", c_char * SEGMENT_TAG_CAPACITY),
        ("segment_played_ms", c_int64),
        ("unheard_segments", c_uint32),
        ("confidence", c_int64),
    ]


class Route(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("path", c_char_p),
        ("dialect", c_char_p),
        ("auth_token", c_char_p),
        ("auth", c_char_p),
    ]


class ServerConfig(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("bind", c_char_p),
        ("path", c_char_p),
        ("auth_token", c_char_p),
        ("public_url", c_char_p),
        ("session", POINTER(SessionConfig)),
        ("max_sessions", c_uint32),
        ("max_message_bytes", c_size_t),
        ("handshake_timeout_ms", c_uint32),
        ("idle_timeout_ms", c_uint32),
        ("send_timeout_ms", c_uint32),
        ("ping_interval_ms", c_uint32),
        ("threads", c_uint32),
        ("tls_cert_pem", c_char_p),
        ("tls_key_pem", c_char_p),
        ("routes", POINTER(Route)),
        ("route_count", c_size_t),
    ]


class VadConfig(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("vad_aggressiveness", c_uint32),
        ("vad_min_speech_ms", c_uint32),
        ("vad_hangover_ms", c_uint32),
    ]


# Input of trunkline_session_open_started: what the host's own handler read from `start`.
# The strings are `const char *` and the custom parameters `const char *const *` arrays (passed
# as arrays of string addresses, like the AudioSocket UUID list).
class StreamStart(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("stream_id", c_char_p),
        ("call_id", c_char_p),
        ("account_id", c_char_p),
        ("encoding", c_enum),
        ("sample_rate", c_uint32),
        ("channels", c_uint32),
        ("custom_parameter_names", POINTER(c_void_p)),
        ("custom_parameter_values", POINTER(c_void_p)),
        ("custom_parameter_count", c_size_t),
    ]


class StartInfo(Structure):
    _fields_ = [
        ("struct_size", c_size_t),
        ("tracks", c_uint32),
        ("encoding", c_enum),
        ("sample_rate", c_uint32),
        ("channels", c_uint32),
        ("custom_parameter_count", c_size_t),
    ]


# name -> (restype, argtypes). Handles are opaque pointers (c_void_p); data buffers are c_void_p
# so that bytes, bytearray and ctypes arrays can all be passed. trunkline_result is a c_enum.
FUNCTIONS: dict[str, tuple[object, list[object]]] = {
    "trunkline_engine_config_default": (c_enum, [POINTER(EngineConfig), c_size_t]),
    "trunkline_session_config_default": (c_enum, [POINTER(SessionConfig), c_size_t]),
    "trunkline_engine_new": (c_enum, [POINTER(EngineConfig), POINTER(c_void_p)]),
    "trunkline_engine_new_manual_clock": (c_enum, [POINTER(EngineConfig), POINTER(c_void_p)]),
    "trunkline_engine_advance_clock": (c_enum, [c_void_p, c_uint64]),
    "trunkline_engine_free": (None, [c_void_p]),
    "trunkline_engine_wakeup_fd": (c_enum, [c_void_p, POINTER(c_int32)]),
    "trunkline_engine_prioritised_workers": (c_enum, [c_void_p, POINTER(c_uint32)]),
    "trunkline_engine_wait": (c_enum, [c_void_p, c_int64]),
    "trunkline_engine_wake": (c_enum, [c_void_p]),
    "trunkline_engine_clear_wakeup": (c_enum, [c_void_p]),
    "trunkline_engine_metrics": (c_enum, [c_void_p, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)]),
    "trunkline_protocol_error_message": (c_char_p, [c_uint32]),
    "trunkline_result_message": (c_char_p, [c_uint32]),
    "trunkline_log_to_stderr": (c_enum, [c_char_p]),
    "trunkline_session_open": (c_enum, [c_void_p, POINTER(SessionConfig), POINTER(c_void_p)]),
    "trunkline_stream_start_default": (c_enum, [POINTER(StreamStart), c_size_t]),
    "trunkline_session_open_started": (
        c_enum,
        [c_void_p, POINTER(SessionConfig), POINTER(StreamStart), POINTER(c_void_p)],
    ),
    "trunkline_session_push": (c_enum, [c_void_p, c_void_p, c_size_t, c_uint32]),
    "trunkline_session_read_audio": (c_enum, [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)]),
    "trunkline_session_play": (c_enum, [c_void_p, c_void_p, c_size_t, c_uint32, POINTER(c_size_t)]),
    "trunkline_session_read_audio_bytes": (c_enum, [c_void_p, c_void_p, c_size_t, POINTER(c_size_t)]),
    "trunkline_session_play_bytes": (c_enum, [c_void_p, c_void_p, c_size_t, c_uint32, POINTER(c_size_t)]),
    "trunkline_session_play_encoded": (c_enum, [c_void_p, c_uint32, c_void_p, c_size_t, c_uint32, POINTER(c_size_t)]),
    "trunkline_session_end_encoded": (c_enum, [c_void_p]),
    "trunkline_session_agent_format": (c_enum, [c_void_p, POINTER(c_uint32)]),
    "trunkline_session_mark": (c_enum, [c_void_p, c_char_p]),
    "trunkline_session_interrupt": (c_enum, [c_void_p]),
    "trunkline_session_begin_segment": (c_enum, [c_void_p, c_char_p]),
    "trunkline_session_unheard_segment": (c_enum, [c_void_p, c_size_t, c_void_p, c_size_t, POINTER(c_size_t)]),
    "trunkline_session_queued_ms": (c_enum, [c_void_p, POINTER(c_uint64)]),
    "trunkline_session_end_stream": (c_enum, [c_void_p]),
    "trunkline_session_outbound_len": (c_enum, [c_void_p, POINTER(c_size_t)]),
    "trunkline_session_next_outbound": (
        c_enum,
        [c_void_p, c_void_p, c_size_t, POINTER(c_size_t), POINTER(c_enum)],
    ),
    "trunkline_session_poll_event": (c_enum, [c_void_p, POINTER(CEvent)]),
    "trunkline_session_start_info": (c_enum, [c_void_p, POINTER(StartInfo)]),
    "trunkline_session_start_string": (
        c_enum,
        [c_void_p, c_uint32, c_void_p, c_size_t, POINTER(c_size_t)],
    ),
    "trunkline_session_custom_parameter": (
        c_enum,
        [c_void_p, c_size_t, c_void_p, c_size_t, POINTER(c_size_t), c_void_p, c_size_t, POINTER(c_size_t)],
    ),
    "trunkline_session_stats_count": (c_size_t, []),
    "trunkline_session_stats_name": (c_char_p, [c_size_t]),
    "trunkline_session_stats": (c_enum, [c_void_p, POINTER(c_uint64), c_size_t, POINTER(c_size_t)]),
    "trunkline_session_close": (c_enum, [c_void_p]),
    "trunkline_session_free": (None, [c_void_p]),
    "trunkline_ulaw_decode": (c_enum, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "trunkline_ulaw_encode": (c_enum, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "trunkline_alaw_decode": (c_enum, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "trunkline_alaw_encode": (c_enum, [c_void_p, c_size_t, c_void_p, c_size_t]),
    "trunkline_version": (c_char_p, []),
    "trunkline_server_config_default": (c_enum, [POINTER(ServerConfig), c_size_t]),
    "trunkline_server_start": (c_enum, [c_void_p, POINTER(ServerConfig), POINTER(c_void_p)]),
    "trunkline_server_local_port": (c_enum, [c_void_p, POINTER(ctypes.c_uint16)]),
    "trunkline_server_accept": (c_enum, [c_void_p, POINTER(c_void_p)]),
    "trunkline_server_stats_count": (c_size_t, []),
    "trunkline_server_stats_name": (c_char_p, [c_size_t]),
    "trunkline_server_stats": (c_enum, [c_void_p, POINTER(c_uint64), c_size_t, POINTER(c_size_t)]),
    "trunkline_server_ready": (c_enum, [c_void_p, POINTER(c_bool)]),
    "trunkline_server_drain": (c_enum, [c_void_p, c_uint32, POINTER(c_bool)]),
    "trunkline_server_shutdown": (c_enum, [c_void_p, c_uint32]),
    "trunkline_server_free": (None, [c_void_p]),
    # The UUID list is a `const char *const *`: an array of string addresses.
    "trunkline_server_listen_audiosocket": (
        c_enum,
        [c_void_p, c_char_p, POINTER(c_void_p), c_size_t, POINTER(ctypes.c_uint16)],
    ),
    "trunkline_server_allow_audiosocket_call": (c_enum, [c_void_p, c_char_p]),
    "trunkline_server_revoke_audiosocket_call": (c_enum, [c_void_p, c_char_p, POINTER(c_bool)]),
    "trunkline_vad_config_default": (c_enum, [POINTER(VadConfig), c_size_t]),
    "trunkline_vad_new": (c_enum, [POINTER(VadConfig), c_uint32, POINTER(c_void_p)]),
    "trunkline_vad_process": (c_enum, [c_void_p, c_void_p, c_size_t, POINTER(ctypes.c_float), POINTER(c_bool)]),
    "trunkline_vad_reset": (c_enum, [c_void_p]),
    "trunkline_vad_free": (None, [c_void_p]),
}


def _library_path() -> str:
    override = os.environ.get("TRUNKLINE_LIB")
    if override:
        return override
    here = Path(__file__).resolve().parent
    packaged = here / "libtrunkline.so"
    if packaged.exists():
        return str(packaged)
    # A source checkout: bindings/python/trunkline -> repo/target/release.
    dev = here.parent.parent.parent / "target" / "release" / "libtrunkline.so"
    if dev.exists():
        return str(dev)
    raise OSError(
        "libtrunkline.so not found: install the package with pip (it builds the library), "
        "build it with `cargo build --release -p trunkline-ffi`, or set TRUNKLINE_LIB"
    )


# The offload server's functions: a library built without its `server` feature lacks them (the
# binding still loads; trunkline.Server then raises).
SERVER_FUNCTIONS = frozenset(name for name in FUNCTIONS if name.startswith("trunkline_server_"))


def load() -> ctypes.CDLL:
    lib = ctypes.CDLL(_library_path())
    for name, (restype, argtypes) in FUNCTIONS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            if name in SERVER_FUNCTIONS:
                continue
            raise
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


lib = load()


def _strict(name: str, fn: ctypes._CFuncPtr) -> object:
    """`fn` (converting, as declared) behind a check that each argument already is what an
    unconverted call must receive (see `unconverted`); a wrong one raises TypeError."""
    argtypes = FUNCTIONS[name][1]

    def call(*args: object) -> object:
        if len(args) != len(argtypes):
            raise TypeError(f"{name}: {len(args)} arguments, declared {len(argtypes)}")
        for i, (arg, t) in enumerate(zip(args, argtypes)):
            if t in (c_size_t, c_uint64, c_int64):
                ok = type(arg) is t
            elif t in (c_uint32, c_int, c_int32):
                ok = type(arg) is t or (type(arg) is int and 0 <= arg < 2**31)
            elif t is c_void_p:
                ok = type(arg) is c_void_p if i == 0 else not isinstance(arg, (str, int))
            else:
                ok = True  # pointers: the declared conversion checks them
            if not ok:
                raise TypeError(f"{name} argument {i}: {arg!r} cannot go unconverted as {t.__name__}")
        return fn(*args)

    return call


def unconverted(name: str) -> object:
    """A second function pointer to `name` without argtypes: ctypes then passes the arguments as
    they are instead of converting each one (the conversion is about half the cost of a short
    call). For the per-frame calls. Callers pass exactly what FUNCTIONS declares: the handle as a
    cached c_void_p, size_t and 64-bit values as c_size_t/c_uint64 objects, out-parameters by
    byref() to the declared type, data as bytes or ctypes arrays, 32-bit values as ints in
    [0, 2**31) (passed as a C int: the same 32 bits) or objects of the declared type.
    With TRUNKLINE_CHECKED_CALLS=1 (set by the tests) every call converts as declared and checks
    those rules, so a wrong call site fails there instead of passing garbage."""
    if os.environ.get("TRUNKLINE_CHECKED_CALLS") == "1":
        return _strict(name, getattr(lib, name))
    fn = lib._FuncPtr((name, lib))
    fn.restype = FUNCTIONS[name][0]
    return fn
