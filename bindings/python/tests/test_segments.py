"""Segments through the Python binding: the played position per host-named segment, checked
against a simulated carrier on the manual clock. The carrier plays what it receives in real time
after a jitter delay, echoes marks (the engine's hidden sync marks) once the audio before them has
played, and drops its buffer on `clear`. Segments A, B and C have their own levels, so the carrier
knows from the samples at its playhead which segment is heard and how much of it."""

import base64
import json

import pytest

import trunkline
from twilio_messages import mark_echo, reference_ulaw_decode, start

TICK_MS = 5
JITTER_US = 60_000
LEVELS = {"A": 1000, "B": 3000, "C": 6000}
LENGTHS_MS = {"A": 500, "B": 300, "C": 400}


class Carrier:
    def __init__(self):
        self.play_end_us = 0
        self.frames = []  # [play start µs, decoded samples]
        self.marks = []  # (due µs, name)
        self.seq = 1000

    def receive(self, message, now_us):
        m = json.loads(message)
        if m["event"] == "media":
            samples = [reference_ulaw_decode(b) for b in base64.b64decode(m["media"]["payload"])]
            begin = max(self.play_end_us, now_us + JITTER_US)
            self.frames.append([begin, samples])
            self.play_end_us = begin + len(samples) * 125
        elif m["event"] == "mark":
            self.marks.append((max(self.play_end_us, now_us), m["mark"]["name"]))
        elif m["event"] == "clear":
            for f in self.frames:
                f[1] = f[1][: max(0, (now_us - f[0]) // 125)]
            self.play_end_us = now_us
            self.marks = [(now_us, name) for _, name in self.marks]

    def due_echoes(self, now_us):
        due = [name for at, name in self.marks if at <= now_us]
        self.marks = [(at, name) for at, name in self.marks if at > now_us]
        return due

    def truth(self, now_us):
        """The segment heard last by `now_us` and its ms heard, from the samples played."""
        heard = []
        for begin, samples in self.frames:
            n = min(len(samples), max(0, (now_us - begin) // 125))
            for v in samples[:n]:
                seg = next((t for t, level in LEVELS.items() if abs(v - level) < level / 8), None)
                if seg:
                    heard.append(seg)
        if not heard:
            return None, 0
        return heard[-1], heard.count(heard[-1]) // 8


class Call:
    def __init__(self):
        self.engine = trunkline.Engine(workers=0, manual_clock=True)
        self.session = self.engine.session(agent_rate=8000)
        self.carrier = Carrier()
        self.now_us = 0
        self.session.push(start())
        self.session.events()

    def exchange(self):
        for message in self.session.outbound():
            self.carrier.receive(message, self.now_us)
        for name in self.carrier.due_echoes(self.now_us):
            self.carrier.seq += 1
            self.session.push(mark_echo(self.carrier.seq, name))
        self.session.read_audio()
        return self.session.events()

    def tick(self):
        self.engine.advance(TICK_MS)
        self.now_us += TICK_MS * 1000
        return self.exchange()

    def play_abc(self):
        for tag, level in LEVELS.items():
            self.session.begin_segment(tag)
            n = LENGTHS_MS[tag] * 8
            assert self.session.play(level.to_bytes(2, "little", signed=True) * n, 8000) == n

    def interrupt(self):
        self.session.interrupt()
        evs = [e for e in self.exchange() if e.kind == "interrupted"]
        assert len(evs) == 1
        return evs[0]


def test_an_interrupt_mid_segment_reports_the_segment_its_played_time_and_the_unheard_rest():
    call = Call()
    call.play_abc()
    assert call.session.queued_ms == 1200
    while True:
        seg, ms = call.carrier.truth(call.now_us)
        if seg == "B" and ms >= 120:
            break
        assert call.now_us < 2_000_000
        call.tick()
    ev = call.interrupt()
    assert ev.segment == "B"
    assert abs(ev.segment_played_ms - ms) <= 20, f"reported {ev.segment_played_ms} ms, heard {ms} ms"
    assert ev.segment_played_ms <= LENGTHS_MS["B"]
    assert ev.unheard_segments == ["C"]
    assert call.session.queued_ms == 0


def test_nothing_heard_yet_is_none_not_zero():
    call = Call()
    call.play_abc()
    call.exchange()
    assert call.carrier.truth(call.now_us) == (None, 0)
    ev = call.interrupt()
    assert (ev.segment, ev.segment_played_ms, ev.unheard_segments) == ("A", None, ["B", "C"])
    # Every segment ended with it: the next interrupt names none.
    ev = call.interrupt()
    assert (ev.segment, ev.segment_played_ms, ev.unheard_segments) == (None, None, [])


def test_bad_tags_and_a_full_table_are_refused():
    call = Call()
    for bad in ("", "x" * 64):
        with pytest.raises(trunkline.TrunklineError) as e:
            call.session.begin_segment(bad)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    for i in range(32):
        call.session.begin_segment(f"s{i}")
    with pytest.raises(trunkline.TrunklineError) as e:
        call.session.begin_segment("one-too-many")
    assert e.value.code == trunkline.Result.FULL
