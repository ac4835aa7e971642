"""The integration's settings and constructors: what they refuse, and why."""

import asyncio

import pytest
from pydantic import ValidationError
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.workers.runner import WorkerRunner

import trunkline
from trunkline.pipecat import TrunklineParams, TrunklineTransport, offload_session, user_turn_strategies


def test_params_refuse_what_the_transport_sets_and_unknown_settings():
    params = TrunklineParams(session={"dialect": "telnyx", "vad_hangover_ms": 600})
    assert params.barge_in == "trunkline" and params.audio_out_10ms_chunks == 2
    assert params.audio_in_enabled and params.audio_out_enabled and params.audio_out_end_silence_secs == 0
    for taken in ("agent_rate", "play_rate", "barge_in_enabled"):
        with pytest.raises(ValidationError, match=taken):
            TrunklineParams(session={taken: 8000})
    with pytest.raises(ValidationError, match="no_such_setting"):
        TrunklineParams(session={"no_such_setting": 1})
    with pytest.raises(ValidationError):
        TrunklineParams(barge_in="both")


def test_params_take_the_start_a_handler_already_read_and_check_it():
    start = {"stream_id": "MZ1", "call_id": "CA1", "custom_parameters": {"lang": "en"}}
    params = TrunklineParams(session={"dialect": "twilio", "start": start})
    # What the transport's link does with them: a session already started, with those ids.
    with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=16000, **params.session) as call:
        first = next(iter(call.events()))
        assert (first.kind, first.call_id, first.custom_parameters) == ("started", "CA1", {"lang": "en"})
    with pytest.raises(ValidationError, match="stream_sid"):
        TrunklineParams(session={"start": {"stream_sid": "MZ1"}})


def test_the_transport_takes_a_websocket_with_its_engine_or_a_call():
    with trunkline.Engine(workers=0) as engine, engine.session() as call:
        with pytest.raises(ValueError, match="either"):
            TrunklineTransport()
        with pytest.raises(ValueError, match="either"):
            TrunklineTransport(object(), engine, call=call)
        with pytest.raises(ValueError, match="(?i)engine"):
            TrunklineTransport(object())
        with pytest.raises(ValueError, match="(?i)engine"):
            TrunklineTransport(engine=engine, call=call)
        with pytest.raises(ValueError, match="mono"):
            TrunklineTransport(call=call, params=TrunklineParams(audio_out_channels=2))
        transport = TrunklineTransport(call=call)
        assert transport.session is call and transport.call_info is None


@pytest.mark.parametrize(
    "in_rate, out_rate, message",
    [
        (8000, 24000, "audio_in_sample_rate=16000"),  # the call's rate is not the pipeline's
        (11025, 24000, "input rate is 11025 Hz"),
        (16000, 32000, "output rate is 32000 Hz"),
    ],
)
def test_rates_trunkline_cannot_serve_stop_the_pipeline_with_a_clear_error(in_rate, out_rate, message):
    errors = pipeline_errors(lambda engine: engine.session(agent_rate=16000), in_rate, out_rate)
    assert len(errors) == 1 and message in errors[0], errors


def pipeline_errors(open_call, in_rate: int, out_rate: int) -> list:
    """The errors a bare pipeline at these rates, on the call `open_call(engine)` opens (as a
    server hands one over), stops with. It must stop by itself (the handler only records), and
    close the call."""
    errors = []

    async def run():
        with trunkline.Engine(workers=0) as engine, open_call(engine) as call:
            errors.extend(await run_until_it_stops(TrunklineTransport(call=call), in_rate, out_rate))
            with pytest.raises(trunkline.TrunklineError, match="(?i)closed"):
                call.push('{"event":"connected"}')

    asyncio.run(run())
    return errors


async def run_until_it_stops(transport: TrunklineTransport, in_rate: int, out_rate: int) -> list:
    """Runs a bare pipeline on `transport` at these rates; the errors it reported."""
    errors = []
    worker = PipelineWorker(
        Pipeline([transport.input(), transport.output()]),
        params=PipelineParams(audio_in_sample_rate=in_rate, audio_out_sample_rate=out_rate),
        idle_timeout_secs=None,
        enable_rtvi=False,
    )

    @worker.event_handler("on_pipeline_error")
    async def on_error(_worker, frame):
        errors.append(frame.error)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    running = asyncio.ensure_future(runner.run())
    # Not wait_for: the runner takes a cancel as a request to stop, and returns normally.
    done, _ = await asyncio.wait({running}, timeout=10)
    if not done:
        await worker.cancel()
        await running
    assert done, f"the pipeline kept running; errors: {errors}"
    return errors


def test_a_session_the_engine_cannot_open_ends_the_pipeline_and_closes_the_carriers_socket():
    class Socket:
        closed = False

        async def receive(self):
            await asyncio.Event().wait()  # a carrier that sends nothing more

        async def send_text(self, _text):
            pass

        async def close(self):
            self.closed = True

    async def run():
        # The engine's one session is taken: the call's cannot open.
        with trunkline.Engine(workers=1, max_sessions=1) as engine, engine.session():
            socket = Socket()
            errors = await run_until_it_stops(TrunklineTransport(socket, engine), 16000, 24000)
            return socket, errors

    socket, errors = asyncio.run(run())
    assert socket.closed
    assert len(errors) == 1 and "session" in errors[0].lower(), errors


def test_offload_session_matches_the_barge_in_setting():
    assert offload_session(agent_rate=8000, lead_ms=80) == {
        "agent_rate": 8000,
        "play_rate": 24000,
        "barge_in_enabled": True,
        "lead_ms": 80,
    }
    assert offload_session("pipecat")["barge_in_enabled"] is False
    with pytest.raises(ValueError):
        offload_session("both")
    with pytest.raises(ValueError):
        user_turn_strategies("both")
    # The settings open a server (an unknown one would be refused).
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, session=offload_session("pipecat", agent_rate=8000)) as server:
        assert server.agent_rate == 8000


def test_g711_agent_audio_is_refused_since_pipecat_frames_carry_pcm():
    with pytest.raises(ValidationError, match="agent_format"):
        TrunklineParams(session={"agent_format": "ulaw"})
    assert TrunklineParams(session={"agent_format": "pcm"}).session == {"agent_format": "pcm"}
    # A call handed over by a server whose sessions deliver µ-law codes.
    errors = pipeline_errors(lambda engine: engine.session(agent_rate=8000, agent_format="ulaw"), 8000, 8000)
    assert len(errors) == 1 and "agent_format" in errors[0], errors


def test_a_session_that_ends_without_a_stop_ends_the_call_for_the_pipeline():
    # The engine shuts down under a live call: no `stopped` comes from the carrier, yet the
    # pipeline hears that the call is over (on_client_disconnected), as when the carrier hangs up.
    # The handler takes the client as Pipecat's own transports pass it (`(transport, client)`,
    # as Pipecat's project templates write it): without it, it never ran.
    disconnected = []

    async def run():
        engine = trunkline.Engine(workers=1)
        call = engine.session(agent_rate=16000)
        transport = TrunklineTransport(call=call)
        worker = PipelineWorker(
            Pipeline([transport.input(), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=16000, audio_out_sample_rate=24000),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport, client):
            disconnected.append(client)
            await worker.cancel()

        async def shut_down():
            await asyncio.sleep(0.5)
            engine.close()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        closing = asyncio.ensure_future(shut_down())
        await asyncio.wait_for(runner.run(), 10)
        await closing

    asyncio.run(run())
    assert disconnected == [None], "no stream started: no client"


def test_a_close_cancelled_midway_still_closes_the_session():
    # A CancelFrame can cancel the output's task while an EndFrame's close waits on the carrier's
    # socket: the session must be closed all the same (later closes return at once).
    from trunkline.pipecat._link import CallLink

    class SlowSocket:
        async def close(self):
            await asyncio.sleep(5)

    async def run():
        with trunkline.Engine(workers=0) as engine:
            link = CallLink(websocket=SlowSocket(), engine=engine)
            link.open(16000, 24000, True)
            session = link.session
            closing = asyncio.ensure_future(link.close())
            await asyncio.sleep(0.1)
            closing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await closing
            await link.close()
            assert link.closed
            with pytest.raises(trunkline.TrunklineError) as e:
                session.read_audio()
            assert e.value.code == trunkline.Result.CLOSED

    asyncio.run(run())


def test_the_bots_audio_counts_as_outstanding_until_the_mark_after_the_last_write_is_played():
    # A name placed again before the first one played (one "sentence" mark per sentence), and
    # audio written after an interrupt was asked for: the link must not think the bot is
    # silent while audio is queued, or the next interruption would not stop it.
    from trunkline.pipecat._link import CallLink

    async def run():
        with trunkline.Engine(workers=0) as engine:
            link = CallLink(engine=engine)
            link.open(16000, 24000, True)
            link.wrote_audio()
            link.mark("sentence")
            link.wrote_audio()
            link.mark("sentence")
            link._track(trunkline.Event(kind="mark_played", name="sentence"))
            assert link.audio_outstanding, "the second sentence is still queued"
            link._track(trunkline.Event(kind="mark_played", name="sentence"))
            assert not link.audio_outstanding
            link.wrote_audio()
            link.interrupt()
            link.wrote_audio()  # the next answer, before the interrupt's event was polled
            link._track(trunkline.Event(kind="interrupted"))
            assert link.audio_outstanding, "written after the interrupt"
            link.mark("end")
            link._track(trunkline.Event(kind="mark_cleared", name="end"))
            assert link.audio_outstanding, "a cleared mark says nothing was heard"
            await link.close()

    asyncio.run(run())
