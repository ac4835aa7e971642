"""Trunkline's own logs on stderr (the offload server's calls, refusals and drains)."""

from __future__ import annotations

from typing import Optional

from ._errors import Result, check
from ._ffi import lib


def log_to_stderr(filter: Optional[str] = None) -> bool:
    """Writes Trunkline's logs to stderr, one line per event, filtered by `filter` in the
    RUST_LOG syntax (e.g. "trunkline=info", "trunkline=debug", "warn,trunkline_server=info");
    None: the TRUNKLINE_LOG environment variable, else "trunkline=info". Logged: the offload
    server's calls (start, and end with the call's summary), refusals and failed calls with their
    reason, drains; never a line per audio frame. Nothing is logged until this is called.

    Installs a logger for the whole process, once: returns True when it did, False when one was
    already installed (by an earlier call, or by Rust code in the process; nothing changes).
    Raises TrunklineError INVALID_ARGUMENT for a filter that does not parse (the reason is
    written to stderr), ValueError for one containing NUL. Any thread."""
    if filter is not None and "\0" in filter:
        raise ValueError("log_to_stderr: the filter contains NUL")
    code = lib.trunkline_log_to_stderr(None if filter is None else filter.encode())
    if code == Result.FULL:
        return False
    check(code, "log_to_stderr")
    return True
