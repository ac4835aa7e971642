"""Result codes and the exception that carries them."""

from __future__ import annotations

import enum

from ._ffi import lib


class Result(enum.IntEnum):
    """trunkline_result values (checked against the header by the drift test)."""

    OK = 0
    NULL_PARAMETER = 1
    INVALID_ARGUMENT = 2
    PANIC = 3
    FULL = 4
    CLOSED = 5
    EMPTY = 6
    BUFFER_TOO_SMALL = 7
    FAILED = 8
    TOO_MANY_SESSIONS = 9
    IO = 10
    TIMEOUT = 11
    BAD_AUDIO = 12
    RECORD = 13


class TrunklineError(Exception):
    """A call into Trunkline failed. `code` is the Result; `message` its description."""

    def __init__(self, code: int, context: str = "") -> None:
        self.code = Result(code) if code in Result._value2member_map_ else code
        self.message = lib.trunkline_result_message(code).decode()
        prefix = f"{context}: " if context else ""
        super().__init__(f"{prefix}{self.message} ({getattr(self.code, 'name', code)})")


def check(code: int, context: str) -> int:
    """Raises TrunklineError unless `code` is OK; returns it."""
    if code != Result.OK:
        raise TrunklineError(code, context)
    return code
