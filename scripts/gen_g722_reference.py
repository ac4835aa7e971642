#!/usr/bin/env python3
"""Writes engine/tests/fixtures/g722/ from the `G722` package (PyPI `g722` 1.2.8, a binding of a
bit-exact C implementation of ITU-T G.722 that passes the ITU test vectors): the reference that
Trunkline's own G.722 (`engine/src/codec/g722.rs`) is checked against by `engine/tests/integration/g722.rs`.

Run once, and again only if the signals below change; the outputs are committed:

    python3 -m venv target/g722-env && target/g722-env/bin/pip install g722==1.2.8
    target/g722-env/bin/python scripts/gen_g722_reference.py

Files (raw, little-endian; 16 kHz, 64 kbit/s mode):
  input.s16le           0.25 s: a 100 Hz to 7.5 kHz chirp over noise, then a loud burst that clips
  codes.g722            the reference encoder's codes for input.s16le
  decoded.s16le         the reference decoder's samples for codes.g722
  random.g722           1000 arbitrary codes (every bit pattern reaches the decoder)
  random_decoded.s16le  the reference decoder's samples for random.g722
"""

import array
import math
import os
import random
import sys

import G722

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "engine", "tests", "fixtures", "g722")
RATE = 16000


def signal():
    rng = random.Random(722)
    samples = []
    n_chirp = 3200
    for n in range(n_chirp):
        t = n / RATE
        duration = n_chirp / RATE
        # Linear chirp 100 Hz -> 7500 Hz.
        phase = 2 * math.pi * (100 * t + (7400 / (2 * duration)) * t * t)
        samples.append(int(9000 * math.sin(phase) + rng.gauss(0, 300)))
    for n in range(800):
        samples.append(int(40000 * math.sin(2 * math.pi * 1234 * n / RATE)))
    return array.array("h", [max(-32768, min(32767, s)) for s in samples])


def le(a):
    if sys.byteorder != "little":
        a = array.array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def main():
    os.makedirs(OUT, exist_ok=True)
    pcm = signal()
    codes = bytes(G722.G722(RATE, 64000).encode(pcm))
    decoded = G722.G722(RATE, 64000).decode(codes)
    rng = random.Random(9)
    arbitrary = bytes(rng.randrange(256) for _ in range(1000))
    arbitrary_decoded = G722.G722(RATE, 64000).decode(arbitrary)
    for name, data in [
        ("input.s16le", le(pcm)),
        ("codes.g722", codes),
        ("decoded.s16le", le(array.array("h", decoded))),
        ("random.g722", arbitrary),
        ("random_decoded.s16le", le(array.array("h", arbitrary_decoded))),
    ]:
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
