"""Stateless G.711 helpers: bytes of s16le PCM <-> bytes of µ-law / A-law."""

from __future__ import annotations

import ctypes

from ._errors import check
from ._ffi import lib


def _convert(fn, data: bytes, out_size: int, count: int, name: str) -> bytes:
    out = ctypes.create_string_buffer(out_size)
    check(fn(data, count, out, count), name)
    return out.raw


def ulaw_decode(data: bytes) -> bytes:
    """µ-law bytes -> s16le PCM (two bytes per input byte)."""
    data = bytes(data)
    return _convert(lib.trunkline_ulaw_decode, data, 2 * len(data), len(data), "ulaw_decode")


def ulaw_encode(pcm: bytes) -> bytes:
    """s16le PCM -> µ-law bytes (one per sample)."""
    pcm = bytes(pcm)
    if len(pcm) % 2:
        raise ValueError("PCM must be a whole number of 16-bit samples")
    return _convert(lib.trunkline_ulaw_encode, pcm, len(pcm) // 2, len(pcm) // 2, "ulaw_encode")


def alaw_decode(data: bytes) -> bytes:
    """A-law bytes -> s16le PCM (two bytes per input byte)."""
    data = bytes(data)
    return _convert(lib.trunkline_alaw_decode, data, 2 * len(data), len(data), "alaw_decode")


def alaw_encode(pcm: bytes) -> bytes:
    """s16le PCM -> A-law bytes (one per sample)."""
    pcm = bytes(pcm)
    if len(pcm) % 2:
        raise ValueError("PCM must be a whole number of 16-bit samples")
    return _convert(lib.trunkline_alaw_encode, pcm, len(pcm) // 2, len(pcm) // 2, "alaw_encode")
