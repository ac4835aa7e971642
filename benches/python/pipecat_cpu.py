#!/usr/bin/env python3
"""CPU per 20 ms caller frame of a Pipecat pipeline on a telephone call, two transports.

  A  Pipecat's default telephony path: `FastAPIWebsocketTransport` + `TwilioFrameSerializer`
     (µ-law, base64, JSON and soxr resampling in Python, output paced by a sleep per 40 ms chunk),
     with `SileroVADAnalyzer` (ONNX, 512-sample windows at 16 kHz: every 32 ms) in the user
     aggregator and Pipecat's default turn start strategies.
  B  `trunkline.pipecat.TrunklineTransport` on the same FastAPI WebSocket: Trunkline decodes,
     resamples, detects speech and paces natively (engine worker threads in the same process);
     the transport pushes its speech events, so there is no VAD analyzer.

Everything else is the same in both: uvicorn on loopback, a pipeline at 16 kHz in and 24 kHz out,
a user aggregator ending turns 0.2 s after speech stops, and a scripted bot in place of
STT -> LLM -> TTS that answers each turn with 1.5 s of 24 kHz audio (as TTSAudioRawFrames of
100 ms). Pipecat logs errors only (its per-frame DEBUG logging would dominate both arms).

callsim calls each arm with the same script (common.py): N concurrent Twilio calls of T seconds,
a turn every 5 s, the bot's reply played in full before the next. The server process's CPU over
the calls (all threads) is divided by the caller frames sent.

    benches/python/run.sh pipecat [--calls 6] [--seconds 30] [--repeat 1] [--json]
"""

import argparse
import asyncio
import math
import struct
import sys
import tempfile
from pathlib import Path

import common

IN_RATE, OUT_RATE = 16000, 24000
ARMS = {
    "A": "A  FastAPI + TwilioFrameSerializer + Silero",
    "B": "B  TrunklineTransport (FastAPI socket)",
}


def reply_audio() -> bytes:
    n = OUT_RATE * common.REPLY_MS // 1000
    return struct.pack(f"<{n}h", *(int(6000 * math.sin(2 * math.pi * 440 * i / OUT_RATE)) for i in range(n)))


def build_app(arm: str):
    # FastAPI reads the endpoint's annotations: WebSocket must be the class itself (hence no
    # `from __future__ import annotations` in this module).
    from fastapi import FastAPI, WebSocket
    from pipecat.frames.frames import InputAudioRawFrame, TTSAudioRawFrame, TTSStartedFrame, TTSStoppedFrame, UserStoppedSpeakingFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineParams, PipelineWorker
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair, LLMUserAggregatorParams
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy
    from pipecat.turns.user_turn_strategies import UserTurnStrategies
    from pipecat.workers.runner import WorkerRunner

    reply = reply_audio()
    chunk = OUT_RATE // 10 * 2  # 100 ms

    class Bot(FrameProcessor):
        """Stands in for STT -> LLM -> TTS: drops the caller's audio, answers each end of turn."""

        def __init__(self):
            super().__init__()
            self.turn = 0

        async def process_frame(self, frame, direction):
            await super().process_frame(frame, direction)
            if isinstance(frame, InputAudioRawFrame):
                return
            await self.push_frame(frame, direction)
            if isinstance(frame, UserStoppedSpeakingFrame):
                self.turn += 1
                ctx = f"reply-{self.turn}"
                await self.push_frame(TTSStartedFrame(context_id=ctx))
                for i in range(0, len(reply), chunk):
                    await self.push_frame(TTSAudioRawFrame(reply[i : i + chunk], OUT_RATE, 1, context_id=ctx))
                await self.push_frame(TTSStoppedFrame(context_id=ctx))

    def stop_strategies():
        return [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=0.2, wait_for_transcript=False)]

    app = FastAPI()
    engine = None
    if arm == "B":
        import trunkline

        engine = trunkline.Engine()  # one per process, as documented

    @app.websocket("/media")
    async def media(websocket: WebSocket):
        await websocket.accept()
        if arm == "A":
            from pipecat.audio.vad.silero import SileroVADAnalyzer
            from pipecat.runner.utils import parse_telephony_websocket
            from pipecat.serializers.twilio import TwilioFrameSerializer
            from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport

            _, call_data = await parse_telephony_websocket(websocket)
            serializer = TwilioFrameSerializer(
                stream_sid=call_data["stream_id"],
                call_sid=call_data["call_id"],
                params=TwilioFrameSerializer.InputParams(auto_hang_up=False),  # no REST call here
            )
            transport = FastAPIWebsocketTransport(
                websocket,
                FastAPIWebsocketParams(audio_in_enabled=True, audio_out_enabled=True, add_wav_header=False, serializer=serializer),
            )
            user_params = LLMUserAggregatorParams(
                vad_analyzer=SileroVADAnalyzer(), user_turn_strategies=UserTurnStrategies(stop=stop_strategies())
            )
        else:
            from trunkline.pipecat import TrunklineParams, TrunklineTransport, user_turn_strategies

            transport = TrunklineTransport(websocket, engine, params=TrunklineParams())
            user_params = LLMUserAggregatorParams(user_turn_strategies=user_turn_strategies(stop=stop_strategies()))
        user = LLMContextAggregatorPair(LLMContext(), user_params=user_params).user()
        worker = PipelineWorker(
            Pipeline([transport.input(), user, Bot(), transport.output()]),
            params=PipelineParams(audio_in_sample_rate=IN_RATE, audio_out_sample_rate=OUT_RATE),
            idle_timeout_secs=None,
            enable_rtvi=False,
        )

        @transport.event_handler("on_client_disconnected")
        async def on_hang_up(*_):
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app


async def serve(arm: str) -> None:
    import uvicorn
    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    server = uvicorn.Server(
        uvicorn.Config(build_app(arm), host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    print(f"PORT {server.servers[0].sockets[0].getsockname()[1]}", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6, help="concurrent calls per arm")
    parser.add_argument("--seconds", type=int, default=30, help="length of each call's audio")
    parser.add_argument("--repeat", type=int, default=1, help="runs per arm (alternating arms)")
    parser.add_argument("--arms", default="AB", help="which arms to run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", choices=sorted(ARMS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    common.require_built()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = common.write_caller(Path(tmp), common.CYCLE_MS // 1000, "warm")
        audio = common.write_caller(Path(tmp), args.seconds)
        for _ in range(args.repeat):
            for arm in args.arms:
                server = common.Server([sys.executable, __file__, "--serve", arm])
                try:
                    runs.append(common.measure(ARMS[arm], server, warm, audio, args.calls))
                finally:
                    server.close()
                print(f"# {ARMS[arm]}: {runs[-1].us_per_frame:.0f} µs/frame", file=sys.stderr, flush=True)
    title = f"Pipecat on a Twilio call: {args.calls} concurrent calls of {args.seconds} s, server process CPU per caller frame"
    common.report(title, runs, ARMS[args.arms[0]], args.json)


if __name__ == "__main__":
    main()
