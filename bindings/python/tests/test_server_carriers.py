"""One offload server for several carriers from Python: routes binding request paths to dialects,
an Asterisk AudioSocket listener with its allow-list of call UUIDs, and `calls()` under asyncio.
callsim plays each carrier (its own implementation of their wire formats)."""

import asyncio
import json
import subprocess
import time

import pytest

import trunkline
from twilio_messages import callsim_binary, speech

CALLER_MS = 1000  # each caller's audio (callsim then sends line noise while it waits to hang up)
TELNYX_TOKEN = "telnyx-streaming-secret"
ALLOWED = "40325ec2-5efd-4bd3-805f-53576e581d13"
ALLOWED_LATER = "9f3c4d2a-0b1e-4c5d-8e6f-7a8b9c0d1e2f"
REFUSED = "00000000-1111-2222-3333-444444444444"
ROUTES = [
    {"path": "/twilio", "dialect": "twilio"},
    {"path": "/telnyx", "dialect": "telnyx", "auth_token": TELNYX_TOKEN},
]


@pytest.fixture(scope="module")
def callsim():
    return callsim_binary()


@pytest.fixture(scope="module")
def caller_audio(tmp_path_factory):
    audio, _ = speech()
    path = tmp_path_factory.mktemp("callsim") / "caller.ulaw"
    path.write_bytes(audio[: CALLER_MS * 8])
    return path


def callsim_command(callsim, audio, url, *extra):
    return [
        str(callsim), "--url", url, "--audio", str(audio), "--speech", f"100-{CALLER_MS - 100}",
        "--wait-ms", "100", "--json", "--quiet", *extra,
    ]


def frames_sent(proc):
    """The caller's media frames (20 ms each), as the callsim that played it reports them."""
    report = json.loads(proc.stdout.read())
    assert report["ok"] == 1, report
    return report["totals"]["frames_sent"]


def serve_until_done(engine, server, procs, calls_expected):
    """Acts as the bot until every callsim has exited and every call taken has stopped: takes the
    calls, reads their audio and events. Returns {call_id: (events, pcm bytes)}."""
    calls = []
    deadline = time.monotonic() + 20
    while True:
        assert time.monotonic() < deadline, "the calls did not end in time"
        engine.wait(0.02)
        while (call := server.accept()) is not None:
            calls.append((call, [], bytearray()))
        for call, events, pcm in calls:
            events += call.events()
            pcm += call.read_audio()
        stopped = all(any(e.kind == "stopped" for e in events) for _, events, _ in calls)
        if len(calls) >= calls_expected and stopped and all(p.poll() is not None for p in procs):
            break
    out = {}
    for call, events, pcm in calls:
        started = next(e for e in events if e.kind == "started")
        out[started.call_id] = (events, bytes(pcm))
        call.close()
    return out


def test_route_errors():
    with trunkline.Engine(workers=1) as engine:
        for routes in (
            [{"path": "/a", "dialect": "no-such-dialect"}],
            [{"path": "/a", "dialect": "twilio"}, {"path": "/a", "dialect": "telnyx"}],
            [{"path": "a", "dialect": "twilio"}],
            [{"path": "/a", "dialect": "vonage", "auth_token": "s", "auth": "jwt"}],
            [{"path": "/a", "dialect": "vonage", "auth": "vonage_jwt"}],  # no secret to check with
        ):
            with pytest.raises(trunkline.TrunklineError) as e:
                trunkline.Server(engine, routes=routes)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT, routes
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Server(engine, path="/media", routes=ROUTES)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            trunkline.Server(engine, routes=[{"path": "/a", "dialect": "twilio", "token": "x"}])
        with pytest.raises(TypeError):
            trunkline.Server(engine, route_count=1)
        with trunkline.Server(engine, routes=ROUTES) as server:
            with pytest.raises(trunkline.TrunklineError) as e:
                server.listen_audiosocket(allowed_calls=[ALLOWED, "not-a-uuid"])
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
            # Nothing of that list was allowed.
            assert server.revoke_audiosocket_call(ALLOWED) is False
            with pytest.raises(trunkline.TrunklineError) as e:
                server.listen_audiosocket("not an address")
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
            with pytest.raises(trunkline.TrunklineError) as e:
                server.allow_audiosocket_call("not-a-uuid")
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
            server.allow_audiosocket_call(ALLOWED.upper().replace("-", ""))
            assert server.revoke_audiosocket_call(ALLOWED) is True
            assert server.revoke_audiosocket_call(ALLOWED) is False
            server.shutdown(0)
            with pytest.raises(trunkline.TrunklineError) as e:
                server.listen_audiosocket()
            assert e.value.code == trunkline.Result.CLOSED


def test_routes_take_each_carrier_on_its_path(callsim, caller_audio):
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, routes=ROUTES, session={"agent_rate": 8000}) as server:
        base = f"ws://127.0.0.1:{server.port}"
        commands = [
            callsim_command(callsim, caller_audio, f"{base}/twilio", "--call-id", "CAtwilio0001"),
            callsim_command(callsim, caller_audio, f"{base}/telnyx", "--dialect", "telnyx", "--auth-token", TELNYX_TOKEN, "--call-id", "telnyx-0001"),
            # Telnyx without its token: refused (403).
            callsim_command(callsim, caller_audio, f"{base}/telnyx", "--dialect", "telnyx"),
        ]
        procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
        try:
            calls = serve_until_done(engine, server, procs, 2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        codes = [p.wait() for p in procs]
        assert codes[:2] == [0, 0], [p.stderr.read().decode() for p in procs[:2]]
        assert codes[2] == 1  # the refused call
        # Each call spoke its route's dialect: the call id is where that carrier puts it (Telnyx's
        # call_control_id is "v2:" and the call's id).
        assert set(calls) == {"CAtwilio0001", "v2:telnyx-0001"}
        sent = {"CAtwilio0001": frames_sent(procs[0]), "v2:telnyx-0001": frames_sent(procs[1])}
        for call_id, (events, pcm) in calls.items():
            kinds = [e.kind for e in events]
            assert kinds[:2] == ["connected", "started"] and kinds[-1] == "stopped"
            started = events[1]
            assert (started.encoding, started.sample_rate) == ("mulaw", 8000)
            assert len(pcm) == sent[call_id] * 160 * 2  # every frame, at 8 kHz s16
        stats = server.stats()
        assert (stats["accepted"], stats["calls_opened"]) == (2, 2)
        assert (stats["rejected_signature"], stats["rejected_signature_missing"]) == (1, 1)


def test_an_audiosocket_call_and_a_refused_uuid(callsim, caller_audio):
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, session={"agent_rate": 8000}) as server:
        port = server.listen_audiosocket("127.0.0.1:0", allowed_calls=[ALLOWED])
        assert port > 0 and port != server.port
        server.allow_audiosocket_call(ALLOWED_LATER)
        url = f"tcp://127.0.0.1:{port}"
        procs = [
            subprocess.Popen(callsim_command(callsim, caller_audio, url, "--dialect", "audiosocket", "--call-id", uuid), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for uuid in (ALLOWED, ALLOWED_LATER, REFUSED)
        ]
        try:
            calls = serve_until_done(engine, server, procs, 2)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        codes = [p.wait() for p in procs]
        assert codes[:2] == [0, 0], [p.stderr.read().decode() for p in procs[:2]]
        assert codes[2] == 1  # closed by the server
        assert set(calls) == {ALLOWED, ALLOWED_LATER}
        sent = {ALLOWED: frames_sent(procs[0]), ALLOWED_LATER: frames_sent(procs[1])}
        for call_id, (events, pcm) in calls.items():
            started = next(e for e in events if e.kind == "started")
            assert (started.encoding, started.sample_rate) == ("l16", 8000)
            assert events[-1].kind == "stopped"
            assert len(pcm) == sent[call_id] * 160 * 2
        stats = server.stats()
        assert stats["rejected_audiosocket_call"] == 1
        assert stats["calls_opened"] == 2


def test_calls_yields_calls_without_blocking_the_loop(callsim, caller_audio):
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, routes=ROUTES, session={"agent_rate": 8000}) as server:
        base = f"ws://127.0.0.1:{server.port}"

        async def bot():
            ticks = 0
            stop_ticking = asyncio.Event()

            async def ticker():
                nonlocal ticks
                while not stop_ticking.is_set():
                    ticks += 1
                    await asyncio.sleep(0.01)

            ticking = asyncio.create_task(ticker())
            commands = [
                callsim_command(callsim, caller_audio, f"{base}/twilio", "--call-id", "CAasync0001"),
                callsim_command(callsim, caller_audio, f"{base}/telnyx", "--dialect", "telnyx", "--auth-token", TELNYX_TOKEN, "--call-id", "async-0002"),
            ]
            procs = [await asyncio.create_subprocess_exec(*c, stdout=asyncio.subprocess.DEVNULL) for c in commands]

            async def handle(call):
                async for ev in call.aevents():
                    if ev.kind == "started":
                        started = ev
                call.close()
                return started.call_id

            tasks = []
            async for call in server.calls():
                tasks.append(asyncio.create_task(handle(call)))
                if len(tasks) == 2:
                    break
            ticks_while_waiting = ticks
            ids = await asyncio.gather(*tasks)
            codes = [await p.wait() for p in procs]
            stop_ticking.set()
            await ticking
            return set(ids), codes, ticks_while_waiting

        ids, codes, ticks = asyncio.run(asyncio.wait_for(bot(), 20))
        assert ids == {"CAasync0001", "v2:async-0002"}
        assert codes == [0, 0]
        # The loop ran other tasks while calls() waited for the calls to arrive.
        assert ticks > 0

        # calls() ends once the server is shut down.
        async def after_shutdown():
            server.shutdown(0)
            return [call async for call in server.calls()]

        assert asyncio.run(asyncio.wait_for(after_shutdown(), 5)) == []
