"""The offload server: Trunkline as the carrier's Media Streams WebSocket endpoint."""

from __future__ import annotations


import threading
from ctypes import byref, c_bool, c_size_t, c_uint16, c_uint64, c_void_p, pointer, sizeof
from typing import Optional

from ._core import Engine, Session, session_config
from ._handle import OwnedHandle
from ._errors import Result, TrunklineError, check
from ._ffi import SERVER_FUNCTIONS, ServerConfig, lib


class Server(OwnedHandle):
    """Accepts Twilio (or compatible) Media Streams connections itself and hands each call to you
    as a Session once its stream started: you read audio, play, mark, interrupt and poll events;
    the server sends the paced messages. The engine must have worker threads.

        with trunkline.Engine() as engine, trunkline.Server(engine, bind="0.0.0.0:8080",
                path="/media", auth_token=TOKEN) as server:
            while True:
                engine.wait(0.1)
                call = server.accept()      # Session or None
    """

    def __init__(
        self,
        engine: Engine,
        bind: str = "127.0.0.1:0",
        path: Optional[str] = None,
        auth_token: Optional[str] = None,
        public_url: Optional[str] = None,
        session: Optional[dict] = None,
        **limits: int,
    ) -> None:
        if not all(hasattr(lib, name) for name in SERVER_FUNCTIONS):
            raise NotImplementedError("this libtrunkline was built without the offload server (cargo feature `server`)")
        config = ServerConfig()
        check(lib.trunkline_server_config_default(byref(config), sizeof(config)), "server config")
        # Keep the encoded strings alive until the start call returns.
        strings = {k: (v.encode() if v is not None else None) for k, v in
                   {"bind": bind, "path": path, "auth_token": auth_token, "public_url": public_url}.items()}
        for key, value in strings.items():
            setattr(config, key, value)
        # The session config is a struct of its own that the server config points to (NULL: the
        # defaults); the pointer keeps it alive as long as `config`.
        settings = session or {}
        self.agent_rate = int(settings.get("agent_rate", 16000))
        if settings:
            config.session = pointer(session_config(settings))
        for key, value in limits.items():
            if key not in dict(ServerConfig._fields_) or key in strings or key in ("session", "struct_size"):
                raise TypeError(f"unknown server setting {key!r}")
            setattr(config, key, value)
        handle = c_void_p()
        check(lib.trunkline_server_start(engine._h(), byref(config), byref(handle)), "server")
        self._engine = engine
        self._handle: Optional[int] = handle.value
        # Blocking calls in flight (drain, shutdown): close() waits for them before the free.
        self._blocking = 0
        self._idle = threading.Condition()
        self._count = lib.trunkline_server_stats_count()
        self._names = [lib.trunkline_server_stats_name(i).decode() for i in range(self._count)]

    def _h(self) -> int:
        if self._handle is None:
            raise TrunklineError(Result.CLOSED, "server")
        return self._handle

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        port = c_uint16()
        check(lib.trunkline_server_local_port(self._h(), byref(port)), "port")
        return port.value

    def accept(self) -> Optional[Session]:
        """The next call whose stream has started, or None."""
        handle = c_void_p()
        code = lib.trunkline_server_accept(self._h(), byref(handle))
        if code == Result.EMPTY:
            return None
        check(code, "accept")
        return Session(self._engine, handle.value, self.agent_rate)

    def stats(self) -> dict:
        """Connections, accepted, rejected (signature, path, capacity), timeouts, failures, active."""
        values = (c_uint64 * self._count)()
        n = c_size_t()
        check(lib.trunkline_server_stats(self._h(), values, self._count, byref(n)), "server stats")
        return dict(zip(self._names, values[: n.value]))

    @property
    def ready(self) -> bool:
        """Whether the server takes new calls now, as its `/readyz` answers (200 when True):
        not draining, and below `max_sessions`."""
        out = c_bool()
        check(lib.trunkline_server_ready(self._h(), byref(out)), "ready")
        return out.value

    def drain(self, grace: float) -> bool:
        """Drains the server, e.g. on SIGTERM before a restart: at once it takes no new calls
        (`/readyz` answers 503, a WebSocket upgrade gets 503) while `/metrics` and `/healthz` go
        on; live calls go on for up to `grace` seconds (until their stream stops or the carrier
        hangs up), then those left are ended (their sessions get `stopped`). Blocks until every
        call has ended, or `grace` plus 2 s; returns whether they all did (calls ended at the
        grace count as ended). Releases the GIL meanwhile: other threads go on serving the live
        calls and may call accept(), stats() and ready. Cannot be undone; shutdown() or close()
        afterwards. Raises ValueError for a negative grace (or one of 2**32 ms or more),
        TrunklineError CLOSED after shutdown()."""
        return self._blocking_call("drain", grace)

    def shutdown(self, grace: float = 0.0) -> None:
        """Stops accepting; live calls get up to `grace` seconds to finish. Blocks until done
        (during a drain() on another thread, until it has returned too)."""
        self._blocking_call("shutdown", grace)

    def _blocking_call(self, what: str, grace: float) -> bool:
        ms = round(grace * 1000)
        if not 0 <= ms < 2**32:
            raise ValueError(f"{what}: grace must be 0 .. 4294967 s, got {grace!r}")
        with self._idle:
            handle = self._h()
            self._blocking += 1
        try:
            if what == "drain":
                ended = c_bool()
                check(lib.trunkline_server_drain(handle, ms, byref(ended)), what)
                return ended.value
            check(lib.trunkline_server_shutdown(handle, ms), what)
            return True
        finally:
            with self._idle:
                self._blocking -= 1
                self._idle.notify_all()

    def close(self) -> None:
        """Shuts down at once (if running) and frees the server. While a drain() or shutdown()
        runs on another thread, waits for it to return first."""
        with self._idle:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            # New calls raise CLOSED from here; blocking ones already in the library must
            # return before the free (a drain ends by its grace plus 2 s).
            while self._blocking:
                self._idle.wait()
        lib.trunkline_server_free(handle)
