"""Every ctypes declaration must match include/trunkline.h, and every header function must be
declared, so the binding and the library cannot drift apart."""

import ctypes
import re
from ctypes import POINTER, c_bool, c_char, c_char_p, c_float, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p

from trunkline import Result, _ffi
from twilio_messages import REPO

HEADER = (REPO / "include" / "trunkline.h").read_text()
# Declared only with the C tests' `test-hooks` build.
UNBOUND = {"trunkline_test_panic", "trunkline_test_fail_session"}
ENUMS = {"trunkline_result", "trunkline_message_kind", "trunkline_start_field", "trunkline_event_kind", "trunkline_protocol_error", "trunkline_audio_encoding", "trunkline_agent_format"}
STRUCTS = {
    "trunkline_engine_config": _ffi.EngineConfig,
    "trunkline_session_config": _ffi.SessionConfig,
    "trunkline_event": _ffi.CEvent,
    "trunkline_start_info": _ffi.StartInfo,
    "trunkline_server_config": _ffi.ServerConfig,
    "trunkline_route": _ffi.Route,
    "trunkline_vad_config": _ffi.VadConfig,
    "trunkline_stream_start": _ffi.StreamStart,
}
# How each C spelling must appear in ctypes (an independent table, not the binding's).
SCALARS = {"size_t": c_size_t, "uint16_t": ctypes.c_uint16, "uint32_t": c_uint32, "int32_t": c_int32, "int64_t": c_int64, "uint64_t": c_uint64, "bool": c_bool, "char": c_char, "float": c_float, "void": None}


def ctype_of(c: str):
    c = " ".join(c.replace("*", " * ").split())
    base = c.replace("const ", "").replace(" *", "").strip()
    stars = c.count("*")
    if stars == 0:
        if base in STRUCTS:
            return STRUCTS[base]  # a nested struct field
        return c_uint32 if base in ENUMS else SCALARS[base]  # enums are uint32_t (checked below)
    if stars == 2:
        return POINTER(c_void_p)  # an out-parameter for a new handle
    if base in ("trunkline_engine", "trunkline_session", "trunkline_server", "trunkline_vad"):
        return c_void_p
    if base in STRUCTS:
        return POINTER(STRUCTS[base])
    if base == "char":
        return c_char_p if c.startswith("const") else c_void_p
    if base in ("uint8_t", "int16_t"):
        return c_void_p  # data buffers
    if base in ENUMS:
        return POINTER(c_uint32)
    return POINTER({"size_t": c_size_t, "uint64_t": c_uint64, "uint32_t": c_uint32, "int32_t": c_int32, "uint16_t": ctypes.c_uint16, "float": c_float, "bool": c_bool}[base])


def prototypes():
    text = re.sub(r"/\*.*?\*/", "", HEADER, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    out = {}
    pattern = r"^((?:const )?[A-Za-z_]\w*(?: \*)?)\s*\b(trunkline_\w+)\(([^;]*?)\);"
    for ret, name, params in re.findall(pattern, text, re.M | re.S):
        ps = [] if params.strip() in ("", "void") else [" ".join(p.split()) for p in params.split(",")]
        out[name] = (ret.strip(), [re.sub(r"\s*\b\w+$", "", p) for p in ps])
    return out


def test_every_function_matches_the_header():
    protos = prototypes()
    assert len(protos) >= 30
    declared = set(_ffi.FUNCTIONS)
    assert set(protos) - UNBOUND == declared, "header and binding declare different functions"
    for name, (ret, params) in protos.items():
        if name in UNBOUND:
            continue
        restype, argtypes = _ffi.FUNCTIONS[name]
        assert restype == ctype_of(ret), f"{name} returns {ret}"
        assert list(argtypes) == [ctype_of(p) for p in params], f"{name}({', '.join(params)})"


def test_structs_match_the_header():
    for cname, cls in STRUCTS.items():
        body = re.search(r"typedef struct \{((?:(?!typedef struct).)*?)\} " + cname + ";", HEADER, re.S).group(1)
        body = re.sub(r"//[^\n]*", "", body)
        # `const char *const *name`: an array of string addresses.
        fields = re.findall(r"^\s*([\w ]+?(?: \*(?:const \*)?)?)\s*\b(\w+)(\[\w+\])?;", body, re.M)
        expected = []
        for ctype, fname, array in fields:
            t = ctype_of(ctype)
            if array:
                size = int(re.search(r"#define " + array[1:-1] + r" (\d+)", HEADER).group(1)) if not array[1:-1].isdigit() else int(array[1:-1])
                t = t * size
            expected.append((fname, t))
        got = [(n, t) for n, t in cls._fields_]
        assert [n for n, _ in got] == [n for n, _ in expected], cname
        for (n, t), (_, e) in zip(got, expected):
            if isinstance(e, type) and issubclass(e, ctypes.Array):
                assert issubclass(t, ctypes.Array) and t._type_ == e._type_ and t._length_ == e._length_, f"{cname}.{n}"
            else:
                assert t == e, f"{cname}.{n}: {t} vs {e}"
        assert ctypes.sizeof(cls) > 0


def test_every_struct_begins_with_its_size():
    # Configs (read by the library) and outputs (written by it) alike: struct_size first, a size_t.
    for cname, cls in STRUCTS.items():
        body = re.search(r"typedef struct \{((?:(?!typedef struct).)*?)\} " + cname + ";", HEADER, re.S).group(1)
        first = re.findall(r"^\s*([\w ]+?)\s+(\w+);", re.sub(r"//[^\n]*", "", body), re.M)[0]
        assert first == ("size_t", "struct_size"), cname
        assert cls._fields_[0] == ("struct_size", c_size_t), cname


def test_every_enum_is_a_uint32_t():
    # Before C23 each enum type is `typedef uint32_t NAME;` next to `enum NAME { ... };`.
    enums = set(re.findall(r"^enum (trunkline_\w+)", HEADER, re.M))
    assert enums == ENUMS
    for name in ENUMS:
        assert re.search(r"^typedef uint32_t " + name + ";$", HEADER, re.M), name
        assert re.search(r"^typedef enum " + name + " " + name + ";$", HEADER, re.M), name  # C23


def test_enum_values_match_the_header():
    values = dict((k, int(v)) for k, v in re.findall(r"(TRUNKLINE_RESULT_\w+) = (\d+)", HEADER))
    assert {f"TRUNKLINE_RESULT_{r.name}": r.value for r in Result} == values
    from trunkline._core import EVENT_KINDS

    kinds = dict((int(v), k) for k, v in re.findall(r"TRUNKLINE_EVENT_KIND_(\w+) = (\d+)", HEADER))
    assert {v: k.lower() for v, k in kinds.items()} == EVENT_KINDS
    assert re.search(r"#define TRUNKLINE_EVENT_NAME_CAPACITY (\d+)", HEADER).group(1) == str(_ffi.EVENT_NAME_CAPACITY)
    from trunkline._core import ENCODINGS, START_FIELDS

    fields = dict((k.lower(), int(v)) for k, v in re.findall(r"TRUNKLINE_START_FIELD_(\w+) = (\d+)", HEADER))
    assert fields == START_FIELDS
    encodings = dict((int(v), k.lower()) for k, v in re.findall(r"TRUNKLINE_AUDIO_ENCODING_(\w+) = (\d+)", HEADER))
    assert encodings == ENCODINGS
    from trunkline._core import AGENT_FORMATS

    formats = dict((k.lower(), int(v)) for k, v in re.findall(r"TRUNKLINE_AGENT_FORMAT_(\w+) = (\d+)", HEADER))
    assert formats == {"pcm": AGENT_FORMATS["pcm"], "mulaw": AGENT_FORMATS["ulaw"], "alaw": AGENT_FORMATS["alaw"]}


def test_metrics_formats_match_the_header():
    defines = dict((k, int(v)) for k, v in re.findall(r"#define TRUNKLINE_METRICS_(\w+) (\d+)", HEADER))
    assert defines == {"PROMETHEUS": _ffi.METRICS_PROMETHEUS, "OPENMETRICS": _ffi.METRICS_OPENMETRICS}
