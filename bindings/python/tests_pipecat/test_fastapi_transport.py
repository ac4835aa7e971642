"""TrunklineTransport on the host's FastAPI WebSocket, Trunkline deciding barge-in: a real Pipecat
pipeline served by uvicorn on loopback, called by callsim."""

import asyncio
import time

from fastapi import FastAPI, WebSocket
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.frames.frames import (
    InputDTMFFrame,
    InterruptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
from pipecat.workers.runner import WorkerRunner

import trunkline
from conftest import trunkline_problems
from helpers import (
    ANSWER_MS,
    GOODBYE_MS,
    QUESTION_MS,
    Handlers,
    ScriptedBot,
    correlation,
    envelope,
    loopback_server,
    run_callsim,
    tone,
    write_question,
)
from trunkline.pipecat import (
    TrunklineBargeInFrame,
    TrunklineMarkClearedFrame,
    TrunklineMarkPlayedFrame,
    TrunklineParams,
    TrunklinePlayedPositionFrame,
    TrunklineTransport,
    user_turn_strategies,
)

IN_RATE, OUT_RATE = 16000, 24000


def test_a_call_through_fastapi_with_trunkline_deciding_barge_in(tmp_path, log_records):
    question = write_question(tmp_path)
    bot = ScriptedBot([tone(440, ANSWER_MS), tone(660, GOODBYE_MS)], UserStoppedSpeakingFrame, end=True)
    handlers = Handlers()
    finished = {}

    async def run():
        engine = trunkline.Engine(workers=1)
        app = FastAPI()

        @app.websocket("/media")
        async def media(websocket: WebSocket):
            await websocket.accept()
            transport = TrunklineTransport(websocket, engine, params=TrunklineParams())
            handlers.attach(transport)
            # The user aggregator starts turns on Trunkline's speech events without interrupting:
            # only Trunkline's barge-in does.
            user = LLMContextAggregatorPair(
                LLMContext(),
                user_params=LLMUserAggregatorParams(
                    user_turn_strategies=user_turn_strategies(
                        stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2, wait_for_transcript=False)]
                    )
                ),
            ).user()
            worker = PipelineWorker(
                Pipeline([transport.input(), user, bot, transport.output()]),
                params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE),
                idle_timeout_secs=None,
                enable_rtvi=False,
            )
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(worker)
            await runner.run()
            finished["at"] = time.monotonic()
            finished["stats"] = transport.stats()

        async with loopback_server(app) as port:
            result = await run_callsim(f"ws://127.0.0.1:{port}/media", question)
            for _ in range(100):  # the pipeline ends right after the bot closed the call
                if "at" in finished:
                    break
                await asyncio.sleep(0.05)
        engine.close()
        return result

    call = asyncio.run(run())
    m = call.metrics
    assert "at" in finished, "the pipeline did not end after its EndFrame"
    assert handlers.connected and handlers.connected[0].stream_id == call.call["stream_sid"]

    # The caller's audio reached the pipeline at its input rate, resampled by Trunkline: 20 ms
    # frames whose loudness follows the question's, frame by frame.
    assert bot.audio_rates == {IN_RATE}
    assert len(bot.audio) % (IN_RATE // 50 * 2) == 0 and len(bot.audio) >= QUESTION_MS * IN_RATE // 1000 * 2
    reference = trunkline.ulaw_decode(question.read_bytes())
    heard, sent = envelope(bytes(bot.audio[: QUESTION_MS * IN_RATE // 1000 * 2]), IN_RATE), envelope(reference, 8000)
    assert len(heard) == len(sent) == QUESTION_MS // 20
    assert correlation(heard, sent) > 0.99, correlation(heard, sent)
    assert 0.9 < sum(heard) / sum(sent) < 1.1, sum(heard) / sum(sent)

    # The key press, as Pipecat's DTMF frame.
    assert [s.frame.button for s in bot.frames(InputDTMFFrame)] == [KeypadEntry.SEVEN]

    # Speech events drove the aggregator's turns (the question, the interruption), but the one
    # interruption the pipeline saw was Trunkline's barge-in.
    assert len(bot.frames(VADUserStartedSpeakingFrame)) == 2
    assert len(bot.frames(UserStartedSpeakingFrame)) == 2
    interruptions = bot.frames(InterruptionFrame)
    assert len(interruptions) == 1 and isinstance(interruptions[0].frame, TrunklineBargeInFrame), interruptions
    assert finished["stats"]["barge_ins"] == 1 and finished["stats"]["interrupts"] == 0

    # Both replies reached callsim paced by Trunkline: nothing late, nothing malformed.
    assert call.returncode == 1 and "the bot closed the connection" in call.call["error"]
    assert m["replies"] == 2 and m["underruns"] == 0, m
    assert m["framing_violations"] == 0 and m["bad_messages"] == 0

    # The barge-in cut the answer at the carrier (one clear, for the barge-in), and the played
    # position the pipeline got is what callsim heard of it.
    assert m["barge_ins"] == 1 and m["clears"] == 1 and m["barge_ins_without_clear"] == 0, m
    [(_, cut)] = call.find(r"caller heard (\d+) ms of the reply")
    heard_ms = int(cut.group(1))
    assert heard_ms < ANSWER_MS - 500
    [position] = bot.frames(TrunklinePlayedPositionFrame)
    assert position.frame.reason == "barge_in"
    assert abs(position.frame.played_ms - heard_ms) <= 40, (position.frame.played_ms, heard_ms)
    assert interruptions[0].frame.played_ms == position.frame.played_ms == handlers.barge_ins[0]
    # The answer's own mark went with it.
    assert [s.frame.mark for s in bot.frames(TrunklineMarkClearedFrame)] == ["tts-1"]
    assert not bot.frames(TrunklineMarkPlayedFrame) or all(s.frame.mark != "tts-1" for s in bot.frames(TrunklineMarkPlayedFrame))

    # The goodbye: played in full, its mark reported only once the caller heard the end, and
    # the EndFrame behind it closed the call only after that.
    [(goodbye_end_ms, played)] = call.find(r"bot reply ends \((\d+) ms played\)")
    assert int(played.group(1)) == GOODBYE_MS
    [(echo_ms, _)] = call.find(r"mark 'tts-2' echoed \(played\)")
    [(closed_ms, _)] = call.find(r"connection closed by the bot")
    assert goodbye_end_ms <= echo_ms <= closed_ms, (goodbye_end_ms, echo_ms, closed_ms)
    [(name, mark_played_ms, heard_at)] = [p for p in handlers.marks_played if p[0] == "tts-2"]
    assert mark_played_ms == GOODBYE_MS
    # Trunkline paces at real time, so the caller cannot have heard the goodbye's end before it
    # had been playing for its whole length (the bot handed all of it over at once).
    assert heard_at - bot.reply_sent_at[1] >= GOODBYE_MS / 1000, heard_at - bot.reply_sent_at[1]
    assert finished["at"] >= heard_at
    assert trunkline_problems(log_records) == []
