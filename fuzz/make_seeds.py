#!/usr/bin/env python3
"""Writes the session target's seeds (fuzz/seeds/session/): calls the fuzzer's short runs do not
reach by chance.

A seed is the bytes `arbitrary` decodes into the target's `Input` (fuzz_targets/session.rs), so
this file mirrors that layout: integers little-endian, a bool one byte (its lowest bit), an enum
variant a u32 scaled onto the variants, and the operations a list in which each is preceded by a
byte 1 (a 0, or the data's end, ends it). Change the two together.

`python3 fuzz/make_seeds.py` writes them; `--check` runs each through the built target (the
fuzz script does, after its build) and compares the session counters it ends with to what the
seed is for. The seeds:
- echo_opens_mid_call: an echo-aware session, the agent speaking in syllables (a voiced pulse
  train), the caller's line silent for 5 s and then carrying the agent's own audio back 6 dB
  down: the echo gate's match recognises the new echo, and a speech start is held back and
  dropped as the echo.
- echo_stream_ends_in_a_hold: the same call, its stream stopped in the echo's first frames, while
  a start is held: the start is reported, then stopped.
"""
import os
import struct
import subprocess
import sys

OPS = ["Connected", "Start", "Media", "Dtmf", "EchoMark", "BogusMark", "Stop", "Raw", "Advance",
       "Play", "Mark", "Interrupt", "TakeOutbound"]
SEQ = ["Next", "Absent", "Repeat", "Back", "Jump"]
TIME = ["Next", "Offset", "Absolute"]
SOUND = ["Silence", "Tone", "Bytes", "Echo"]

# 100 ms of audio per step: the agent plays it, the clock moves on, the caller's line carries it.
STEP_MS = 100
STEP_SAMPLES = 8 * STEP_MS
FRAME_SAMPLES = 160
FRAMES_PER_STEP = STEP_SAMPLES // FRAME_SAMPLES


def variant(names, name):
    """The u32 `arbitrary` maps onto variant `name`: (x * count) >> 32 == index."""
    i, n = names.index(name), len(names)
    return struct.pack("<I", ((2 * i + 1) << 32) // (2 * n))


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def i16(v):
    return struct.pack("<h", v)


def config():
    return b"".join([
        u8(0),  # agent_rate: 8 kHz
        u8(0),  # play_rate: 8 kHz
        u8(0),  # reorder_window_ms
        u16(200),  # max_gap_fill_ms
        u8(60),  # lead_ms: 40 + 60 = 100 ms
        u16(0),  # sync_mark_interval_ms: none
        u16(0),  # utterance_gap_ms
        u8(1),  # barge_in
        u16(300),  # barge_in_min_ms
        u16(4095),  # max_payload_bytes: 4096
        u16(65000),  # max_message_bytes
        u8(0),  # webrtc: the spectral classifier
        u8(2),  # aggressiveness
        u8(30),  # min_speech_ms: 30 x 4 = 120 ms
        u16(400),  # hangover_ms
        u8(1),  # echo: echo-aware
    ])


def op(name, fields=b""):
    return u8(1) + variant(OPS, name) + fields


def start():
    return op("Start", u8(0) + u8(1))  # µ-law, 8 kHz


def play(value):
    # A pulse every 64 samples: a 125 Hz voice.
    return op("Play", u16(STEP_SAMPLES) + u8(0) + i16(value) + u8(64))


def advance():
    return op("Advance", u16(STEP_MS * 10))  # in 100 µs


def media(sound, samples=STEP_SAMPLES):
    return op("Media", variant(SEQ, "Next") + variant(TIME, "Next") + u16(samples) + sound
              + u8(0) + u8(0))


def silence():
    return variant(SOUND, "Silence")


def echo(back, attenuation_db):
    return variant(SOUND, "Echo") + u8(back) + u8(attenuation_db)


def syllables(steps):
    """The agent's level per step: syllables of 200-300 ms between 100 ms pauses."""
    pattern = [16000, 11000, 14000, 0, 9000, 15000, 0, 12000, 16000, 0, 13000, 0]
    return [pattern[i % len(pattern)] for i in range(steps)]


def call(quiet_steps, echo_frames, stop):
    """A call: `quiet_steps` of the agent over a silent line, then `echo_frames` (20 ms each)
    with the agent's echo on it (the frames sent from 10 frames before the newest on, about
    100 ms after they played), then optionally the stream's stop. The echo comes a frame per
    message, so that the stream can stop at any frame of it."""
    ops = [start()]
    steps = quiet_steps + -(-echo_frames // FRAMES_PER_STEP)
    for i, level in enumerate(syllables(steps)):
        ops += [play(level), advance()]
        if i < quiet_steps:
            ops.append(media(silence()))
            continue
        first = (i - quiet_steps) * FRAMES_PER_STEP
        for f in range(first, min(first + FRAMES_PER_STEP, echo_frames)):
            ops.append(media(echo(10 - f % FRAMES_PER_STEP, 6), FRAME_SAMPLES))
    if stop:
        ops.append(op("Stop"))
    return config() + b"".join(ops) + u8(0)


# Each seed, and the session counters a run of it must end with.
SEEDS = {
    "echo_opens_mid_call": (
        call(50, 150, stop=False),
        {"speech_starts_held": 1, "speech_starts_dropped_as_echo": 1, "speech_segments": 0, "barge_ins": 0},
    ),
    "echo_stream_ends_in_a_hold": (
        call(50, 7, stop=True),
        {"speech_starts_held": 1, "speech_starts_dropped_as_echo": 0, "speech_segments": 1, "barge_ins": 0},
    ),
}

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds", "session")


def check():
    """Runs each committed seed once through the built target and compares its counters: a seed
    that no longer decodes into its call (the target's `Input` changed) fails here."""
    failed = 0
    for name, (data, expected) in SEEDS.items():
        path = os.path.join(OUT, name)
        with open(path, "rb") as f:
            if f.read() != data:
                print(f"{name}: differs from what this script writes; run it again", file=sys.stderr)
                failed += 1
                continue
        run = subprocess.run(["cargo", "fuzz", "run", "session", path, "--", "-runs=1"], cwd=HERE,
                             env={**os.environ, "TRUNKLINE_FUZZ_REPORT": "1"}, capture_output=True)
        log = run.stderr.decode(errors="replace")
        lines = [l for l in log.splitlines() if l.startswith("session counters:")]
        got = dict(kv.split("=") for kv in lines[-1].split(":", 1)[1].split()) if lines else {}
        got = {k: int(v) for k, v in got.items()}
        if run.returncode != 0 or got != expected:
            print(f"{name}: expected {expected}, got {got or log[-2000:]}", file=sys.stderr)
            failed += 1
        else:
            print(f"{name}: {got}", file=sys.stderr)
    return failed


def main():
    if sys.argv[1:] == ["--check"]:
        sys.exit(1 if check() else 0)
    os.makedirs(OUT, exist_ok=True)
    for name, (data, _) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
