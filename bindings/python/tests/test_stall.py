"""Bursts after a network stall, as a Python host meets them: frames held for 0.5, 1 and 2 s arrive
at once; the host reads audio every 20 ms and retries FULL pushes on its next turn. No sample may be
lost: what it reads equals the µ-law decode of what was sent (decoded in Python from the G.711
formula), and the refusals are counted."""

import array
import random
import time

import trunkline
from twilio_messages import media, reference_ulaw_decode, speech, start

# (arrival of the burst in ms since the call started, frames in it): 0.5, 1 and 2 s of audio.
BURSTS = [(0, 25), (500, 50), (1500, 100)]


def frames():
    rng = random.Random(7)
    n = sum(count for _, count in BURSTS)
    return [bytes(rng.randrange(256) for _ in range(160)) for _ in range(n)]


def test_stall_bursts_lose_no_caller_audio():
    sent = frames()
    with trunkline.Engine(workers=1) as engine, engine.session(agent_rate=8000) as s:
        s.push(start())
        msgs = [media(i + 2, i + 1, i * 20, f) for i, f in enumerate(sent)]
        got = bytearray()
        nxt, refusals, t0, turn = 0, 0, time.monotonic(), 0
        while len(got) < 2 * 160 * len(sent):
            time.sleep(max(0.0, t0 + 0.02 * turn - time.monotonic()))
            turn += 1
            now_ms = (time.monotonic() - t0) * 1000
            arrived = sum(count for at, count in BURSTS if now_ms >= at)
            while nxt < arrived:
                try:
                    s.push(msgs[nxt])
                    nxt += 1
                except trunkline.TrunklineError as e:
                    assert e.code == trunkline.Result.FULL
                    refusals += 1
                    break
            got += s.read_audio()
            s.events()
            assert time.monotonic() - t0 < 20, f"{len(got) // 2} samples arrived"
        stats = s.stats()
    pcm = array.array("h")
    pcm.frombytes(bytes(got))
    want = [reference_ulaw_decode(b) for f in sent for b in f]
    assert list(pcm) == want
    assert stats["agent_samples_dropped"] == 0
    assert refusals > 0 and stats["messages_refused_full"] == refusals


def test_a_replay_pushed_as_fast_as_accepted_loses_nothing():
    audio, _ = speech()
    n = len(audio) // 160
    with trunkline.Engine(workers=1) as engine, engine.session(agent_rate=16000) as s:
        s.push(start())
        got = bytearray()
        for i in range(n):
            m = media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160])
            while True:
                try:
                    s.push(m)
                    break
                except trunkline.TrunklineError as e:
                    assert e.code == trunkline.Result.FULL
                    engine.wait(0.001)
                got += s.read_audio()
                s.events()
            got += s.read_audio()
            s.events()
        deadline = time.monotonic() + 10
        while len(got) < 2 * 320 * n and time.monotonic() < deadline:
            engine.wait(0.005)
            got += s.read_audio()
        stats = s.stats()
    assert stats["agent_samples_dropped"] == 0 and stats["events_dropped"] == 0
    assert len(got) == 2 * 320 * n
