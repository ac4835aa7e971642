"""The offload server: Trunkline as the carrier's Media Streams WebSocket endpoint."""

from __future__ import annotations


import asyncio
import threading
from contextlib import contextmanager
from ctypes import POINTER, addressof, byref, c_bool, c_size_t, c_uint16, c_uint64, c_void_p, cast, create_string_buffer, pointer, sizeof
from typing import AsyncIterator, Iterable, Mapping, Optional, Sequence

from ._core import Engine, Session, session_config, unsigned_setting
from ._handle import OwnedHandle
from ._errors import Result, TrunklineError, check
from ._ffi import SERVER_FUNCTIONS, Route, ServerConfig, lib


class Server(OwnedHandle):
    """Accepts Twilio (or compatible) Media Streams connections itself and hands each call to you
    as a Session once its stream started: you read audio, play, mark, interrupt and poll events;
    the server sends the paced messages. The engine must have worker threads.

        with trunkline.Engine() as engine, trunkline.Server(engine, bind="0.0.0.0:8080",
                path="/media", auth_token=TOKEN) as server:
            while True:
                engine.wait(0.1)
                call = server.accept()      # Session or None

    One server can take several carriers, each on its own path with its own secret (`routes`,
    instead of `path` and `auth_token`), and Asterisk AudioSocket on a TCP port of its own
    (`listen_audiosocket`); all their calls come out of `accept()` / `calls()`:

        server = trunkline.Server(engine, bind="0.0.0.0:8080", routes=[
            {"path": "/twilio", "dialect": "twilio", "auth_token": TWILIO_TOKEN},
            {"path": "/vonage", "dialect": "vonage", "auth_token": SECRET, "auth": "vonage_jwt"},
        ])
        port = server.listen_audiosocket("0.0.0.0:9092", allowed_calls=[uuid])
        async for call in server.calls():
            asyncio.create_task(handle(call))
    """

    # The keys of a route (trunkline_route's fields).
    ROUTE_KEYS = ("path", "dialect", "auth_token", "auth")

    def __init__(
        self,
        engine: Engine,
        bind: str = "127.0.0.1:0",
        path: Optional[str] = None,
        auth_token: Optional[str] = None,
        public_url: Optional[str] = None,
        session: Optional[dict] = None,
        routes: Optional[Sequence[Mapping[str, Optional[str]]]] = None,
        **limits: int,
    ) -> None:
        """`routes`: request paths bound to dialects, each a dict with "path" (e.g. "/telnyx"),
        "dialect" (e.g. "telnyx"), and optionally "auth_token" (the carrier account's secret:
        requests on the path must then be authenticated with it) and "auth" (how, when not the
        carrier's default way: "vonage_jwt"). With routes, a call speaks its route's dialect
        whatever `session` says, and `path` and `auth_token` must be None. Raises
        TrunklineError INVALID_ARGUMENT for an unknown dialect or auth, a path given twice or
        not starting with "/"; TypeError for an unknown key."""
        if not all(hasattr(lib, name) for name in SERVER_FUNCTIONS):
            raise NotImplementedError("this libtrunkline was built without the offload server (cargo feature `server`)")
        config = ServerConfig()
        check(lib.trunkline_server_config_default(byref(config), sizeof(config)), "server config")
        # Keep the encoded strings alive until the start call returns.
        named = {"bind": bind, "path": path, "auth_token": auth_token, "public_url": public_url}
        # TLS files (`tls_cert_pem`, `tls_key_pem`) are strings too.
        for key in ("tls_cert_pem", "tls_key_pem"):
            if key in limits:
                named[key] = limits.pop(key)
        strings = {k: (v.encode() if v is not None else None) for k, v in named.items()}
        for key, value in strings.items():
            setattr(config, key, value)
        # The session config is a struct of its own that the server config points to (NULL: the
        # defaults); the pointer keeps it alive as long as `config`.
        settings = session or {}
        self.agent_rate = int(settings.get("agent_rate", 16000))
        if settings:
            config.session = pointer(session_config(settings))
        # The array (and the strings its routes point to) lives until the start call returns.
        route_array, _route_strings = _route_array(routes or ())
        if route_array is not None:
            config.routes = cast(route_array, POINTER(Route))
            config.route_count = len(route_array)
        for key, value in limits.items():
            not_limits = ("session", "struct_size", "routes", "route_count")
            if key not in dict(ServerConfig._fields_) or key in strings or key in not_limits:
                raise TypeError(f"unknown server setting {key!r}")
            setattr(config, key, unsigned_setting(ServerConfig, key, value))
        self._engine = engine
        self._handle: Optional[int] = None
        # Calls in flight (drain and shutdown block): close() waits for them before the free.
        self._blocking = 0
        self._idle = threading.Condition()
        handle = c_void_p()
        # Under the engine's lock: its close() cannot free it meanwhile, and closes this server
        # before it does from now on.
        with engine._lock:
            code = lib.trunkline_server_start(engine._h(), byref(config), byref(handle))
            if code == Result.OK:
                self._handle = handle.value
                engine._servers.add(self)
        check(code, "server")
        self._count = lib.trunkline_server_stats_count()
        self._names = [lib.trunkline_server_stats_name(i).decode() for i in range(self._count)]
        # calls() iterators waiting for a call: shutdown() and close() wake them.
        self._waiters: set = set()

    def _h(self) -> int:
        if self._handle is None:
            raise TrunklineError(Result.CLOSED, "server")
        return self._handle

    @contextmanager
    def _using(self):
        """The handle for one call: close() from another thread waits for the call to return
        before the free."""
        with self._idle:
            handle = self._h()
            self._blocking += 1
        try:
            yield handle
        finally:
            with self._idle:
                self._blocking -= 1
                self._idle.notify_all()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        port = c_uint16()
        with self._using() as handle:
            check(lib.trunkline_server_local_port(handle, byref(port)), "port")
        return port.value

    def accept(self) -> Optional[Session]:
        """The next call whose stream has started, or None."""
        handle = c_void_p()
        with self._using() as server:
            code = lib.trunkline_server_accept(server, byref(handle))
        if code == Result.EMPTY:
            return None
        check(code, "accept")
        return Session(self._engine, handle.value, self.agent_rate)

    async def calls(self) -> AsyncIterator[Session]:
        """Calls as they arrive, for asyncio code: `async for call in server.calls():`. Waits on
        the engine's wakeup fd on the running loop (new calls signal it), so the loop goes on
        meanwhile; ends once the server is shut down or closed. Hand each call to a task of its
        own (its `wakeups()` / `aevents()`) to take the next one at once."""
        loop = asyncio.get_running_loop()
        flag = asyncio.Event()
        waiter = (loop, flag)
        self._engine._subscribe(loop, flag)
        self._waiters.add(waiter)
        try:
            while self._handle is not None and self._engine._handle is not None:
                # Cleared before looking: a call arriving after the look sets it again.
                flag.clear()
                try:
                    call = self.accept()
                except TrunklineError as e:
                    if e.code == Result.CLOSED:
                        return
                    raise
                if call is not None:
                    yield call
                    continue
                try:
                    # A wakeup taken by another reader of the fd reaches this flag too; the
                    # timeout only bounds how late a shutdown from another thread is seen.
                    await asyncio.wait_for(flag.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._waiters.discard(waiter)
            self._engine._unsubscribe(loop, flag)

    def _wake_waiters(self) -> None:
        for loop, flag in list(self._waiters):
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)

    def listen_audiosocket(self, bind: str = "127.0.0.1:0", allowed_calls: Iterable[str] = ()) -> int:
        """Also listens for Asterisk AudioSocket on `bind` (plain TCP; port 0: any free one) and
        returns the port. Its calls speak the `audiosocket` dialect with the server's other
        session settings and come out of accept() / calls() like the others, once their first
        audio arrives. AudioSocket has no authentication: a connection is taken only if its
        first message names an allowed call UUID (`allowed_calls`, and allow_audiosocket_call()),
        others are closed and counted in stats()["rejected_audiosocket_call"]. Raises
        TrunklineError INVALID_ARGUMENT for a bad address or a string that is not a UUID (then
        nothing is allowed or bound), IO if the address cannot be bound."""
        uuids = [create_string_buffer(uuid.encode()) for uuid in allowed_calls]
        array = (c_void_p * max(len(uuids), 1))(*[addressof(u) for u in uuids])
        port = c_uint16()
        with self._using() as handle:
            code = lib.trunkline_server_listen_audiosocket(handle, bind.encode(), array, len(uuids), byref(port))
        check(code, "listen_audiosocket")
        return port.value

    def allow_audiosocket_call(self, uuid: str) -> None:
        """Allows AudioSocket connections for call `uuid` (e.g.
        "40325ec2-5efd-4bd3-805f-53576e581d13", any case, hyphens optional) until revoked:
        register a call before handing it to Asterisk. Raises TrunklineError INVALID_ARGUMENT for
        a string that is not a UUID."""
        with self._using() as handle:
            check(lib.trunkline_server_allow_audiosocket_call(handle, uuid.encode()), "allow_audiosocket_call")

    def revoke_audiosocket_call(self, uuid: str) -> bool:
        """Stops allowing new AudioSocket connections for call `uuid` (a live one goes on);
        returns whether it was allowed."""
        was = c_bool()
        with self._using() as handle:
            check(lib.trunkline_server_revoke_audiosocket_call(handle, uuid.encode(), byref(was)), "revoke_audiosocket_call")
        return was.value

    def stats(self) -> dict:
        """Connections, accepted, rejected (signature, path, capacity), timeouts, failures, active."""
        values = (c_uint64 * self._count)()
        n = c_size_t()
        with self._using() as handle:
            check(lib.trunkline_server_stats(handle, values, self._count, byref(n)), "server stats")
        return dict(zip(self._names, values[: n.value]))

    @property
    def ready(self) -> bool:
        """Whether the server takes new calls now, as its `/readyz` answers (200 when True):
        not draining, and below `max_sessions`."""
        out = c_bool()
        with self._using() as handle:
            check(lib.trunkline_server_ready(handle, byref(out)), "ready")
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
        (during a drain() on another thread, until it has returned too). Ends calls()."""
        try:
            self._blocking_call("shutdown", grace)
        finally:
            self._wake_waiters()

    def _blocking_call(self, what: str, grace: float) -> bool:
        ms = round(grace * 1000)
        if not 0 <= ms < 2**32:
            raise ValueError(f"{what}: grace must be 0 .. 4294967 s, got {grace!r}")
        with self._using() as handle:
            if what == "drain":
                ended = c_bool()
                code = lib.trunkline_server_drain(handle, ms, byref(ended))
                if code == Result.CLOSED and self._handle is None:
                    return True  # close() shut the server down before this drain began: every call ended
                check(code, what)
                return ended.value
            check(lib.trunkline_server_shutdown(handle, ms), what)
            return True

    def close(self) -> None:
        """Shuts down at once (if running: live calls are cut, a running drain()'s too, without
        waiting for its grace; a shutdown() already running keeps its grace) and frees the
        server. While a drain() or shutdown() runs on another thread, waits for it to return
        first."""
        with self._idle:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            busy = self._blocking > 0
        if busy:
            # A drain on another thread: its calls end now, not at its grace (a shutdown may run
            # alongside it and returns once the drain has; CLOSED if a shutdown runs already).
            lib.trunkline_server_shutdown(handle, 0)
        with self._idle:
            # New calls raise CLOSED from here; blocking ones already in the library must
            # return before the free.
            while self._blocking:
                self._idle.wait()
        lib.trunkline_server_free(handle)
        self._wake_waiters()


def _route_array(routes: Sequence[Mapping[str, Optional[str]]]):
    """The trunkline_route array for `routes` (None when empty), and the encoded strings it points
    to (to keep alive with it)."""
    if isinstance(routes, Mapping):
        raise TypeError("routes must be a list of dicts")
    if not routes:
        return None, []
    array = (Route * len(routes))()
    strings = []
    for route, spec in zip(array, routes):
        unknown = set(spec) - set(Server.ROUTE_KEYS)
        if unknown:
            raise TypeError(f"unknown route key(s) {sorted(unknown)!r}")
        route.struct_size = sizeof(Route)
        for key in Server.ROUTE_KEYS:
            value = spec.get(key)
            if value is not None:
                encoded = value.encode()
                strings.append(encoded)
                setattr(route, key, encoded)
    return array, strings
