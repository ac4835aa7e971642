"""What the Python CPU benchmarks share: the caller's script for callsim, starting a server arm
as a process of its own, and measuring that process's CPU time over the calls.

Each arm is a server process (uvicorn, or Trunkline's offload server) on loopback. callsim, the
real carrier simulator, calls it: the same script for every arm. The figure is the server
process's CPU time (user + system, read from /proc/PID/stat: every thread of the process,
Trunkline's native worker and network threads included) from just before the calls start until
just after they ended (teardown included), divided by the caller's 20 ms frames (callsim's
`frames_sent`, over all calls). One call sends one frame per 20 ms, so `µs per frame / 200` is
the percentage of one core a call costs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CALLSIM = REPO / "target" / "release" / "callsim"
FIXTURE = REPO / "engine" / "tests" / "fixtures" / "speech_8k.ulaw"
# The binding from the source tree (it loads target/release/libtrunkline.so).
sys.path.insert(0, str(REPO / "bindings" / "python"))

# The caller's script: one turn every CYCLE_MS. The caller says one of the fixture's utterances
# (1.0-2.4 s) UTTERANCE_AT_MS into the turn; the bot answers with REPLY_MS of audio, which ends
# before the next turn starts, so the caller never talks over it and every arm does the same
# work in both directions.
CYCLE_MS = 5000
UTTERANCE_AT_MS = 300
REPLY_MS = 1500
WAIT_MS = 4000  # after its audio, callsim waits this long for the last reply to end


def fixture_utterances() -> list:
    audio = FIXTURE.read_bytes()
    labels = FIXTURE.with_suffix(".labels").read_text().split("\n")
    return [audio[int(a) * 8 : int(b) * 8] for a, b in (line.split() for line in labels if line.strip())]


def write_caller(directory: Path, seconds: int, name: str = "caller") -> Path:
    """`seconds` of caller audio (8 kHz µ-law): a turn every CYCLE_MS, labelled for callsim
    (`<name>.labels` beside it). Between utterances callsim puts its line noise (-70 dBFS)."""
    utterances = fixture_utterances()
    turns = max(1, seconds * 1000 // CYCLE_MS)
    out = bytearray(b"\xff" * (turns * CYCLE_MS * 8))
    labels = []
    for turn in range(turns):
        piece = utterances[turn % len(utterances)]
        at = turn * CYCLE_MS + UTTERANCE_AT_MS
        out[at * 8 : at * 8 + len(piece)] = piece
        labels.append(f"{at} {at + len(piece) // 8}")
    path = directory / f"{name}.ulaw"
    path.write_bytes(bytes(out))
    (directory / f"{name}.labels").write_text("\n".join(labels) + "\n")
    return path


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the whole process (all its threads, live and ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def native_cpu_s(pid: int) -> float:
    """CPU seconds of the process's live threads named `trunkline-*` (the engine's workers and
    the offload server's network threads, which live as long as the engine or server)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if not (task / "comm").read_text().startswith("trunkline"):
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Server:
    """A server arm in a process of its own: `argv` must print `PORT <n>` once it listens."""

    def __init__(self, argv: list, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"{argv[-1]}: the server did not start ({line!r})")
        self.port = int(line.split()[1])

    def cpu_s(self) -> float:
        return process_cpu_s(self.proc.pid)

    def native_cpu_s(self) -> float:
        return native_cpu_s(self.proc.pid)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_callsim(port: int, audio: Path, calls: int) -> dict:
    args = [
        str(CALLSIM), "--url", f"ws://127.0.0.1:{port}/media", "--audio", str(audio),
        "--calls", str(calls), "--wait-ms", str(WAIT_MS), "--json", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if not done.stdout.strip():
        raise RuntimeError(f"callsim failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


@dataclass
class Measurement:
    arm: str
    calls: int
    frames: int  # caller frames sent, all calls
    bot_frames: int  # bot media messages received by callsim, all calls
    turns: int
    replies: int
    failed: int
    cpu_s: float
    native_cpu_s: float  # of which Trunkline's native threads
    wall_s: float
    idle_core_pct: float  # the server's CPU while idle before the calls, % of one core

    @property
    def us_per_frame(self) -> float:
        return self.cpu_s * 1e6 / self.frames

    @property
    def native_us_per_frame(self) -> float:
        return self.native_cpu_s * 1e6 / self.frames

    @property
    def core_pct_per_call(self) -> float:
        return self.us_per_frame / 200  # one frame per 20 ms = 20 000 µs


def measure(arm: str, server: Server, warm_audio: Path, audio: Path, calls: int, idle_s: float = 3.0) -> Measurement:
    """One warm-up call (imports, first model loads), the server's idle CPU, then `calls`
    concurrent calls of `audio`, measured."""
    run_callsim(server.port, warm_audio, 1)
    time.sleep(1.0)
    before = server.cpu_s()
    time.sleep(idle_s)
    idle = (server.cpu_s() - before) / idle_s * 100
    start_cpu, start_native, start = server.cpu_s(), server.native_cpu_s(), time.monotonic()
    report = run_callsim(server.port, audio, calls)
    time.sleep(1.0)  # the pipelines' teardown after the last hang-up
    cpu, wall = server.cpu_s() - start_cpu, time.monotonic() - start
    native = server.native_cpu_s() - start_native
    t = report["totals"]
    if not t["frames_sent"]:
        raise RuntimeError(f"{arm}: no call got through ({report['failed']} failed)")
    return Measurement(arm, calls, t["frames_sent"], t["bot_frames"], t["turns"], t["replies"], report["failed"],
                       cpu, native, wall, idle)


def table(title: str, runs: list, baseline: str) -> str:
    """Per arm: the median over its runs; `base/arm` is the baseline arm's µs/frame over this
    arm's; `native` is the part spent on Trunkline's threads; `idle` the server's CPU with no
    call, in % of one core; `replies` / `turns` over all calls (the last run)."""
    arms = list(dict.fromkeys(m.arm for m in runs))
    med = {a: statistics.median(m.us_per_frame for m in runs if m.arm == a) for a in arms}
    lines = [
        title,
        f"{'arm':<48} {'runs':>4} {'µs CPU/frame':>13} {'% core/call':>12} {'base/arm':>9} "
        f"{'native µs':>10} {'frames':>7} {'replies':>8} {'failed':>6} {'idle':>6}",
    ]
    for a in arms:
        ms = [m for m in runs if m.arm == a]
        native = statistics.median(m.native_us_per_frame for m in ms)
        each = ", ".join(f"{m.us_per_frame:.0f}" for m in ms)
        lines.append(
            f"{a:<48} {len(ms):>4} {med[a]:>13.0f} {med[a] / 200:>11.2f}% {med[baseline] / med[a]:>8.2f}x "
            f"{native:>10.0f} {ms[-1].frames:>7} {ms[-1].replies:>4}/{ms[-1].turns:<3} {ms[-1].failed:>6} "
            f"{ms[-1].idle_core_pct:>5.1f}%" + (f"   (runs: {each})" if len(ms) > 1 else "")
        )
    return "\n".join(lines)


def report(title: str, runs: list, baseline: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps([m.__dict__ | {"us_per_frame": m.us_per_frame, "native_us_per_frame": m.native_us_per_frame,
                                        "core_pct_per_call": m.core_pct_per_call} for m in runs], indent=2))
    else:
        print(table(title, runs, baseline))


def require_built() -> None:
    lib = Path(os.environ.get("TRUNKLINE_LIB", REPO / "target" / "release" / "libtrunkline.so"))
    for path, crate in ((lib, "trunkline-ffi"), (CALLSIM, "trunkline-callsim")):
        if not path.exists():
            sys.exit(f"{path} missing: cargo build --release -p {crate}")
