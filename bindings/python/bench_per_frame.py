#!/usr/bin/env python3
"""CPU per 20 ms frame of one call through the Python binding.

The per-frame cycle of a bot's media handler: push one Twilio `media` message, read the caller
audio, poll the events, play 20 ms of agent audio (24 kHz) and take the outbound messages.
The caller is the committed speech fixture (engine/tests/fixtures/speech_8k.ulaw) as Twilio
messages; the agent talks all the time, so the caller's speech barges in on it.

Modes:
  inline    Engine(workers=0): the engine's work runs inside these calls, on this thread.
  threaded  Engine(workers=1): the calls only touch the session's rings; a worker thread does the
            audio work (its CPU is in the process figure).
Both run at real time (one frame every 20 ms, as a call does) and report the process's CPU per
frame (getrusage: everything, the engine's threads included), this thread's CPU per frame, and
the wall time of one cycle. `--fast` also runs the cycle back to back with no pacing (lead_ms
raised so that every frame played goes out at once): the same per-frame work with the CPU kept
busy. On a shared or virtual machine, a thread that sleeps 20 ms between frames wakes up to cold
caches and a slow core, and the paced figures can be several times the back-to-back ones; the
back-to-back figures are the cost of the work itself.

    cargo build --release -p trunkline-ffi
    python3 bindings/python/bench_per_frame.py [--frames 500] [--mode inline|threaded|both] [--fast] [--json]

Uses bindings/python/trunkline and target/release/libtrunkline.so (TRUNKLINE_LIB overrides).
"""

import argparse
import base64
import json
import math
import os
import resource
import statistics
import struct
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
if "TRUNKLINE_LIB" not in os.environ:
    built = ROOT / "target" / "release" / "libtrunkline.so"
    if built.exists():
        os.environ["TRUNKLINE_LIB"] = str(built)

import trunkline  # noqa: E402

FIXTURE = ROOT / "engine" / "tests" / "fixtures" / "speech_8k.ulaw"
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CONNECTED = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}, separators=(",", ":"))
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC0123456789abcdef0123456789abcdef",
            "streamSid": STREAM_SID,
            "callSid": "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f",
            "tracks": ["inbound"],
            "customParameters": {"caller": "+15550100"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": STREAM_SID,
    },
    separators=(",", ":"),
)


def media_messages(frames):
    audio = FIXTURE.read_bytes()
    per_pass = len(audio) // 160
    out = []
    for k in range(frames):
        chunk = audio[(k % per_pass) * 160 : (k % per_pass + 1) * 160]
        media = {"track": "inbound", "chunk": str(k + 1), "timestamp": str(k * 20),
                 "payload": base64.b64encode(chunk).decode()}
        out.append(json.dumps({"event": "media", "sequenceNumber": str(k + 2), "media": media,
                               "streamSid": STREAM_SID}, separators=(",", ":")))
    return out


# 20 ms of agent audio at 24 kHz: a soft tone.
REPLY = struct.pack("<480h", *(int(math.sin(i * 0.13) * 4000) for i in range(480)))


def cpu_process():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def run(mode, messages, paced):
    workers = 0 if mode == "inline" else 1
    settings = {} if paced else {"lead_ms": 2**31 - 1}
    with trunkline.Engine(workers=workers) as engine, engine.session(agent_rate=16000, **settings) as call:
        call.push(CONNECTED)
        call.push(START)
        engine.wait(0.05)
        call.events()
        read = sent = events = 0
        cycles = []
        cpu0, thread0, wall0 = cpu_process(), time.thread_time(), time.perf_counter()
        next_due = time.perf_counter()
        for msg in messages:
            if paced:
                delay = next_due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_due += 0.020
            t = time.perf_counter()
            while True:
                try:
                    call.push(msg)
                    break
                except trunkline.TrunklineError:
                    engine.wait(0.001)  # back to back, threaded: the worker is behind
            read += len(call.read_audio())
            events += len(call.events())
            try:
                call.play(REPLY, 24000)
            except trunkline.TrunklineError:
                pass  # full: the agent is ahead of real time
            sent += len(call.outbound())
            cycles.append(time.perf_counter() - t)
        cpu, thread, wall = cpu_process() - cpu0, time.thread_time() - thread0, time.perf_counter() - wall0
        stats = call.stats()
    n = len(messages)
    return {
        "mode": mode + ("" if paced else " (back to back)"),
        "frames": n,
        "process_cpu_us_per_frame": cpu / n * 1e6,
        "thread_cpu_us_per_frame": thread / n * 1e6,
        "cycle_wall_us_median": statistics.median(cycles) * 1e6,
        "cycle_wall_us_p99": sorted(cycles)[int(0.99 * (n - 1))] * 1e6,
        "seconds": wall,
        "audio_bytes_read": read,
        "outbound_messages": sent,
        "events": events,
        "frames_out": stats.get("frames_out"),
        "barge_ins": stats.get("barge_ins"),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=500, help="frames per mode (500 = 10 s at real time)")
    ap.add_argument("--mode", choices=["inline", "threaded", "both"], default="both")
    ap.add_argument("--fast", action="store_true", help="also run inline back to back, unpaced")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    messages = media_messages(args.frames)
    modes = ["inline", "threaded"] if args.mode == "both" else [args.mode]
    results = [run(m, messages, paced=True) for m in modes]
    if args.fast:
        fast = media_messages(max(args.frames, 5000))
        results += [run(m, fast, paced=False) for m in modes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Python {sys.version.split()[0]}, trunkline {trunkline.__version__}: "
          "push + read_audio + events + play 20 ms + outbound, per 20 ms frame")
    for r in results:
        print(f"  {r['mode']:<24} process CPU {r['process_cpu_us_per_frame']:6.1f} µs/frame, "
              f"this thread {r['thread_cpu_us_per_frame']:6.1f} µs/frame, cycle wall median "
              f"{r['cycle_wall_us_median']:6.1f} µs (p99 {r['cycle_wall_us_p99']:.1f}); "
              f"{r['frames_out']} frames out, {r['barge_ins']} barge-ins")


if __name__ == "__main__":
    main()
