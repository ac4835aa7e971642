"""TrunklineTransport on a call handed over by Trunkline's offload server, Pipecat deciding barge-in
(its default turn strategies in the user aggregator): callsim calls the server, the pipeline
gets the call."""

import asyncio
import time

from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import InputDTMFFrame, InterruptionFrame, UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.workers.runner import WorkerRunner

import trunkline
from conftest import trunkline_problems
from helpers import ANSWER_MS, GOODBYE_MS, QUESTION_MS, Handlers, ScriptedBot, run_callsim, tone, write_question
from twilio_messages import reference_ulaw_decode
from trunkline.pipecat import (
    TrunklineBargeInFrame,
    TrunklineMarkClearedFrame,
    TrunklineMarkPlayedFrame,
    TrunklineParams,
    TrunklinePlayedPositionFrame,
    TrunklineTransport,
    accept_calls,
    offload_session,
    user_turn_strategies,
)

IN_RATE = 8000


def test_a_call_from_the_offload_server_with_pipecat_deciding_barge_in(tmp_path, log_records):
    question = write_question(tmp_path)
    bot = ScriptedBot([tone(440, ANSWER_MS), tone(660, GOODBYE_MS)], UserStoppedSpeakingFrame)
    handlers = Handlers()
    finished = {}

    async def run_call(call):
        transport = TrunklineTransport(call=call, params=TrunklineParams(barge_in="pipecat"))
        handlers.attach(transport)
        user = LLMContextAggregatorPair(
            LLMContext(),
            user_params=LLMUserAggregatorParams(
                user_turn_strategies=user_turn_strategies(
                    "pipecat", stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2, wait_for_transcript=False)]
                )
            ),
        ).user()
        worker = PipelineWorker(
            Pipeline([transport.input(), user, bot, transport.output()]),
            params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=24000),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        @transport.event_handler("on_client_disconnected")
        async def on_hang_up(_transport, _client):
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()
        finished["at"] = time.monotonic()
        finished["stats"] = transport.stats()

    async def run():
        with trunkline.Engine(workers=1) as engine, trunkline.Server(
            engine, path="/media", session=offload_session(barge_in="pipecat", agent_rate=IN_RATE)
        ) as server:

            async def answer():
                async for call in accept_calls(server):
                    await run_call(call)
                    return

            answering = asyncio.create_task(answer())
            result = await run_callsim(f"ws://127.0.0.1:{server.port}/media", question)
            await asyncio.wait_for(answering, 10)
            return result

    call = asyncio.run(run())
    m = call.metrics
    assert call.returncode == 0, call.call["error"]
    assert handlers.connected and handlers.connected[0].call_id == call.call["call_sid"]
    assert len(handlers.disconnected) == 1 and "at" in finished
    assert handlers.disconnected_clients == handlers.connected, "the client that connected"

    # Every sample the caller sent reached the pipeline, in order and unchanged: at 8 kHz
    # Trunkline only decodes G.711, so the audio is the reference decoding of the µ-law sent.
    assert bot.audio_rates == {IN_RATE}
    assert len(bot.audio) == m["frames_sent"] * 160 * 2
    expected = b"".join(reference_ulaw_decode(b).to_bytes(2, "little", signed=True) for b in question.read_bytes())
    assert bytes(bot.audio[: QUESTION_MS * 16]) == expected

    assert [s.frame.button for s in bot.frames(InputDTMFFrame)] == [KeypadEntry.SEVEN]

    # Pipecat's turn strategies interrupted at both turn starts; only the one over the bot's
    # answer reached the carrier (a single clear); Trunkline's own barge-in stayed off.
    interruptions = bot.frames(InterruptionFrame)
    assert len(bot.frames(UserStartedSpeakingFrame)) == 2 and len(interruptions) == 2
    assert not any(isinstance(s.frame, TrunklineBargeInFrame) for s in interruptions)
    assert finished["stats"]["barge_ins"] == 0 and finished["stats"]["interrupts"] == 1
    assert m["clears"] == 1 and m["clears_unprompted"] == 0 and m["barge_ins_without_clear"] == 0, m
    assert handlers.barge_ins == []

    # The played position after Pipecat's interruption is what callsim heard.
    [(_, cut)] = call.find(r"caller heard (\d+) ms of the reply")
    heard_ms = int(cut.group(1))
    assert heard_ms < ANSWER_MS - 500
    [position] = bot.frames(TrunklinePlayedPositionFrame)
    assert position.frame.reason == "interrupted"
    assert abs(position.frame.played_ms - heard_ms) <= 40, (position.frame.played_ms, heard_ms)
    assert [s.frame.mark for s in bot.frames(TrunklineMarkClearedFrame)] == ["tts-1"]

    # The goodbye played in full, paced, and its mark came back as a frame once callsim had
    # played it.
    assert m["replies"] == 2 and m["underruns"] == 0 and m["framing_violations"] == 0, m
    [(goodbye_end_ms, played)] = call.find(r"bot reply ends \((\d+) ms played\)")
    assert int(played.group(1)) == GOODBYE_MS
    [(echo_ms, _)] = call.find(r"mark 'tts-2' echoed \(played\)")
    assert echo_ms >= goodbye_end_ms
    [played_frame] = bot.frames(TrunklineMarkPlayedFrame)
    assert (played_frame.frame.mark, played_frame.frame.played_ms, played_frame.frame.context_id) == ("tts-2", GOODBYE_MS, "reply-2")
    assert played_frame.at - bot.reply_sent_at[1] >= GOODBYE_MS / 1000
    assert trunkline_problems(log_records) == []
