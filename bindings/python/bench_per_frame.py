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

`--fast` also builds bench_per_frame.c (with `cc`, against include/trunkline.h and the same
library) and runs the same inline cycle on the same messages from C: the engine's and the C ABI's
own cost. The binding's overhead is the inline back-to-back Python figure minus the C figure; the
back-to-back runs and the C run alternate `--repeat` times (default 3) and each figure is the
median, so a busy neighbour affects both sides alike. Without a C compiler that line is skipped.
With `--json` the C run is an entry of its own ("C, inline (back to back)") and the inline
back-to-back entry carries `binding_overhead_us_per_frame`.

`--calls N` serves N calls per 20 ms tick in the paced runs, one after the other, as a bot process
with N concurrent calls does: the thread stays busier, but N sessions' state no longer fits in the
caches, so the per-frame figure then also shows what a cache miss per stage costs.

    cargo build --release -p trunkline-ffi
    python3 bindings/python/bench_per_frame.py [--frames 500] [--mode inline|threaded|both] [--fast]
                                               [--repeat 3] [--calls 1] [--json]

Uses bindings/python/trunkline and target/release/libtrunkline.so (TRUNKLINE_LIB overrides).
"""

import argparse
import base64
import contextlib
import json
import math
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
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


def run(mode, messages, paced, calls=1):
    workers = 0 if mode == "inline" else 1
    settings = {} if paced else {"lead_ms": 2**31 - 1}
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(trunkline.Engine(workers=workers))
        sessions = [stack.enter_context(engine.session(agent_rate=16000, **settings)) for _ in range(calls)]
        for call in sessions:
            call.push(CONNECTED)
            call.push(START)
        engine.wait(0.05)
        for call in sessions:
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
            # One tick serves every call, the way a bot's event loop serves its calls' sockets.
            for call in sessions:
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
        stats = [call.stats() for call in sessions]
    n = len(messages) * calls
    cycles.sort()
    return {
        "mode": mode + ("" if paced else " (back to back)") + (f", {calls} calls" if calls > 1 else ""),
        "calls": calls,
        "frames": n,
        "process_cpu_us_per_frame": cpu / n * 1e6,
        "thread_cpu_us_per_frame": thread / n * 1e6,
        "cycle_wall_us_median": statistics.median(cycles) * 1e6,
        "cycle_wall_us_p99": cycles[int(0.99 * (n - 1))] * 1e6,
        "seconds": wall,
        "audio_bytes_read": read,
        "outbound_messages": sent,
        "events": events,
        "frames_out": sum(st.get("frames_out") or 0 for st in stats),
        "barge_ins": sum(st.get("barge_ins") or 0 for st in stats),
    }


def build_c_baseline(tmp):
    """Builds bench_per_frame.c against the library the binding loaded; None without a compiler."""
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        return None
    from trunkline import _ffi

    lib = Path(_ffi._library_path()).resolve()
    exe = tmp / "bench_per_frame"
    subprocess.run([cc, "-O2", "-I", str(ROOT / "include"), str(HERE / "bench_per_frame.c"), "-o", str(exe),
                    f"-L{lib.parent}", f"-l:{lib.name}", f"-Wl,-rpath,{lib.parent}"], check=True)
    return exe


def run_c(exe, messages, tmp):
    lines, reply, out = tmp / "messages.txt", tmp / "reply.raw", tmp / "result.json"
    if not lines.exists():
        lines.write_text("\n".join([CONNECTED, START, *messages]) + "\n")
        reply.write_bytes(REPLY)
    subprocess.run([str(exe), str(lines), str(reply), str(out)], check=True)
    r = json.loads(out.read_text())
    return {"mode": "C, inline (back to back)", "frames": r["frames"],
            "process_cpu_us_per_frame": r["process_cpu_us_per_frame"],
            "thread_cpu_us_per_frame": r["process_cpu_us_per_frame"], "frames_out": r["frames_out"]}


def median_run(runs):
    """The runs of one mode as one result: the median of every figure."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if key.endswith(("_per_frame", "_median", "_p99")):
            out[key] = statistics.median(r[key] for r in runs)
    out["repeats"] = len(runs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=500, help="frames per mode (500 = 10 s at real time)")
    ap.add_argument("--mode", choices=["inline", "threaded", "both"], default="both")
    ap.add_argument("--fast", action="store_true",
                    help="also run back to back, unpaced, and the same cycle from C (the binding's overhead)")
    ap.add_argument("--repeat", type=int, default=3, help="back-to-back runs per mode (medians)")
    ap.add_argument("--calls", type=int, default=1,
                    help="concurrent calls in the paced runs, served one after the other each 20 ms tick "
                         "(a busy bot process; with 1 the thread sleeps between frames and wakes cold)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    messages = media_messages(args.frames)
    modes = ["inline", "threaded"] if args.mode == "both" else [args.mode]
    results = [run(m, messages, paced=True, calls=max(args.calls, 1)) for m in modes]
    overhead = None
    if args.fast:
        fast = media_messages(max(args.frames, 5000))
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            exe = build_c_baseline(tmp) if "inline" in modes else None
            runs = {}
            for _ in range(max(args.repeat, 1)):
                for m in modes:
                    runs.setdefault(m, []).append(run(m, fast, paced=False))
                if exe is not None:
                    runs.setdefault("c", []).append(run_c(exe, fast, tmp))
        results += [median_run(runs[m]) for m in modes]
        if exe is not None:
            c = median_run(runs["c"])
            results.append(c)
            py = next(r for r in results if r["mode"] == "inline (back to back)")
            overhead = py["process_cpu_us_per_frame"] - c["process_cpu_us_per_frame"]
            py["binding_overhead_us_per_frame"] = overhead
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"Python {sys.version.split()[0]}, trunkline {trunkline.__version__}: "
          "push + read_audio + events + play 20 ms + outbound, per 20 ms frame")
    for r in results:
        if r["mode"].startswith("C"):
            print(f"  {r['mode']:<26} process CPU {r['process_cpu_us_per_frame']:6.1f} µs/frame "
                  f"(the engine and the C ABI alone); {r['frames_out']} frames out")
            continue
        print(f"  {r['mode']:<26} process CPU {r['process_cpu_us_per_frame']:6.1f} µs/frame, "
              f"this thread {r['thread_cpu_us_per_frame']:6.1f} µs/frame, cycle wall median "
              f"{r['cycle_wall_us_median']:6.1f} µs (p99 {r['cycle_wall_us_p99']:.1f}); "
              f"{r['frames_out']} frames out, {r['barge_ins']} barge-ins")
    if overhead is not None:
        print(f"  binding overhead (inline back to back, Python minus C): {overhead:.1f} µs/frame"
              f" (medians of {args.repeat} alternating runs)")
    elif args.fast and "inline" in modes:
        print("  (no C compiler: the binding's overhead was not measured)")


if __name__ == "__main__":
    main()
