#!/usr/bin/env python3
"""CPU per 20 ms caller frame of a Twilio <-> OpenAI Realtime bridge in Python, two designs.

  C  examples/python/openai_realtime_bridge.py as shipped: Trunkline's offload server owns the
     carrier's socket (native threads in the same process); per call, Python reads the caller's
     audio as 24 kHz PCM, sends it base64 in `input_audio_buffer.append`, and hands the model's
     24 kHz PCM deltas to `session.play()`, which Trunkline resamples, encodes and paces.
  D  sample_bridge.py: the sample-style baseline (FastAPI/uvicorn WebSocket; each Twilio `media`
     payload forwarded as-is to `input_audio_buffer.append` in µ-law, each delta sent back at once
     as a `media` message plus a `mark`; JSON in Python both ways, no decoding or resampling).

The model is a fake Realtime server (fake_realtime.py) in a process of its own, answering each
turn with 1.5 s of audio; callsim calls each arm with the same script (common.py): N concurrent
Twilio calls of T seconds, a turn every 5 s. The bridge process's CPU over the calls (all
threads) is divided by the caller frames sent.

The two do not move the same bytes: C carries 24 kHz PCM to and from the model (6x the bytes of
µ-law at 8 kHz), because the example has no µ-law pass-through; D forwards µ-law untouched.

    benches/python/run.sh bridge [--calls 6] [--seconds 30] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
from pathlib import Path

import common

ARMS = {
    "C": "C  Trunkline example bridge (offload server)",
    "D": "D  sample-style bridge (FastAPI, µ-law as-is)",
}


async def serve(arm: str, realtime_url: str) -> None:
    if arm == "C":
        spec = importlib.util.spec_from_file_location(
            "openai_realtime_bridge", common.REPO / "examples" / "python" / "openai_realtime_bridge.py"
        )
        bridge = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bridge)
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(bridge.main("127.0.0.1:0", realtime_url, "bench-key", ready=ready, pcm=True))
        port = await asyncio.wait_for(ready, 30)
    else:
        import uvicorn

        import sample_bridge

        server = uvicorn.Server(
            uvicorn.Config(
                sample_bridge.make_app(realtime_url, "bench-key"),
                host="127.0.0.1", port=0, log_level="warning", ws="websockets-sansio", lifespan="off",
            )
        )  # fmt: skip
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=6, help="concurrent calls per arm")
    parser.add_argument("--seconds", type=int, default=30, help="length of each call's audio")
    parser.add_argument("--repeat", type=int, default=1, help="runs per arm (alternating arms)")
    parser.add_argument("--arms", default="DC", help="which arms to run (the first is the baseline)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", choices=sorted(ARMS), help=argparse.SUPPRESS)
    parser.add_argument("--realtime-url", help=argparse.SUPPRESS)
    parser.add_argument("--fake-realtime", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fake_realtime:
        import fake_realtime

        asyncio.run(fake_realtime.run(common.REPLY_MS))
        return
    if args.serve:
        asyncio.run(serve(args.serve, args.realtime_url))
        return
    common.require_built()
    runs = []
    fake = common.Server([sys.executable, __file__, "--fake-realtime"])
    url = f"ws://127.0.0.1:{fake.port}/v1/realtime?model=bench"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            warm = common.write_caller(Path(tmp), common.CYCLE_MS // 1000, "warm")
            audio = common.write_caller(Path(tmp), args.seconds)
            for _ in range(args.repeat):
                for arm in args.arms:
                    server = common.Server([sys.executable, __file__, "--serve", arm, "--realtime-url", url])
                    try:
                        runs.append(common.measure(ARMS[arm], server, warm, audio, args.calls))
                    finally:
                        server.close()
                    print(f"# {ARMS[arm]}: {runs[-1].us_per_frame:.0f} µs/frame", file=sys.stderr, flush=True)
    finally:
        fake.close()
    title = f"OpenAI Realtime bridges: {args.calls} concurrent calls of {args.seconds} s, bridge process CPU per caller frame"
    common.report(title, runs, ARMS[args.arms[0]], args.json)


if __name__ == "__main__":
    main()
