import array
import asyncio
import base64
import ctypes
import inspect
import json
import math
import time

import pytest

import trunkline
from twilio_messages import (
    ACCOUNT_SID,
    CALL_SID,
    STREAM_SID,
    connected,
    dtmf,
    media,
    reference_ulaw_decode,
    speech,
    start,
    stop,
)

FRAMES = 200  # 4 s of caller audio
GAP, DUP = 60, 30


def call_messages():
    audio, labels = speech()
    msgs = [connected(), start()]
    for i in range(FRAMES):
        if i == GAP:
            continue
        m = media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160])
        msgs.append(m)
        if i == DUP:
            msgs.append(m)
    msgs += [dtmf(900, "7"), stop(901)]
    return msgs, labels


def tone(rate, seconds, freq, amplitude):
    n = int(rate * seconds)
    return array.array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))).tobytes()


def test_full_call_inline_gives_aligned_audio_events_and_counters():
    msgs, labels = call_messages()
    with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=16000) as call:
        audio = bytearray()
        events = []
        for m in msgs:
            call.push(m)
            audio += call.read_audio()
            events += call.events()
        kinds = [e.kind for e in events]
        assert kinds == ["connected", "started", "speech_started", "speech_stopped", "dtmf", "stopped"]
        started = events[1]
        assert (started.call_id, started.stream_id, started.account_id) == (CALL_SID, STREAM_SID, ACCOUNT_SID)
        assert started.name == CALL_SID
        assert started.custom_parameters == {"caller": "+15550100", "lang": "en"}
        assert started.tracks == ["inbound"]
        # What the start message announced: 8000 Hz µ-law, mono.
        assert (started.encoding, started.sample_rate, started.channels) == ("mulaw", 8000, 1)
        assert not hasattr(started, "call_sid") and not hasattr(started, "media_format")
        assert abs(events[2].stream_ms - labels[0][0]) <= 60
        assert events[4].digit == "7"
        # Exactly the stream time at 16 kHz, the lost frame filled with silence.
        assert len(audio) == FRAMES * 20 * 16 * 2
        stats = call.stats()
        assert stats["frames_duplicate"] == 1
        assert stats["gap_fill_samples"] == 160
        assert stats["media_frames_in"] == FRAMES


def media_frames(call):
    """The media messages among those ready now."""
    return [m for m in (json.loads(raw) for raw in call.outbound()) if m["event"] == "media"]


def test_agent_audio_is_paced_into_20ms_frames_and_marks_follow():
    # On a manual clock: the counts depend on the time set, never on how long the test takes.
    with trunkline.Engine(workers=0, manual_clock=True) as engine, engine.session(lead_ms=100) as call:
        call.push(start())
        call.events()
        pcm = tone(24000, 1.0, 440, 8000)
        assert call.play(pcm, 24000) == 24000
        call.mark("greeting")
        frames = media_frames(call)
        assert len(frames) == 5  # the 100 ms lead, at t = 0
        for f in frames:
            assert f["streamSid"] == STREAM_SID
            payload = base64.b64decode(f["media"]["payload"])
            assert len(payload) == 160
        # The level survives resampling and µ-law: RMS of a 8000-amplitude sine is 5657.
        decoded = [reference_ulaw_decode(c) for c in base64.b64decode(frames[3]["media"]["payload"])]
        rms = math.sqrt(sum(s * s for s in decoded) / len(decoded))
        assert abs(20 * math.log10(rms / (8000 / math.sqrt(2)))) < 0.5

        time.sleep(0.05)
        assert media_frames(call) == [], "wall time does not move a manual clock"
        # Exactly one frame per 20 ms set on the clock.
        for _ in range(10):
            engine.advance(ms=20)
            assert len(media_frames(call)) == 1
        engine.advance(ms=60)
        assert len(media_frames(call)) == 3
        engine.advance(ms=0)
        assert media_frames(call) == []

        # At t = 260 ms, the caller has heard exactly 260 ms of it.
        call.interrupt()
        events = call.events()
        assert [e.kind for e in events] == ["interrupted", "mark_cleared"]
        assert events[0].played_ms == 260
        assert events[1].name == "greeting"
        assert any(json.loads(m)["event"] == "clear" for m in call.outbound())

        # A reply within the lead goes out at once, its mark right after its last frame.
        call.play(tone(24000, 0.1, 440, 8000), 24000)
        call.mark("short")
        out = [json.loads(m) for m in call.outbound()]
        assert [m["event"] for m in out] == ["media"] * 5 + ["mark"]
        assert out[-1]["mark"]["name"] == "short"


def test_a_manual_clock_is_inline_only_and_moves_only_when_advanced():
    for workers in (None, 1):
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Engine(workers=workers, manual_clock=True)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    with trunkline.Engine(workers=0) as real:
        assert not real.manual_clock
        with pytest.raises(trunkline.TrunklineError) as e:
            real.advance(ms=20)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    with trunkline.Engine(workers=0, manual_clock=True) as engine, engine.session(lead_ms=40) as call:
        assert engine.manual_clock and engine.inline
        call.push(start())
        assert call.play(b"\0\0" * 4800, 24000) == 4800  # 200 ms
        assert len(media_frames(call)) == 2  # the 40 ms lead
        # Fractions of a millisecond add up: 20 ms in four steps is one frame.
        for step in (5, 7.5, 2.5, 4.999):
            engine.advance(step)
            assert media_frames(call) == []
        engine.advance(0.001)
        assert len(media_frames(call)) == 1
        for bad in (-1, -0.01, float("nan"), float("inf")):
            with pytest.raises(ValueError):
                engine.advance(bad)
        # Past the clock's end (2**62 - 1 µs): refused by the library, or before it when the
        # step does not even fit its 64-bit argument.
        for too_far in (2**62 // 1000 + 1, 2**70):
            with pytest.raises(trunkline.TrunklineError) as e:
                engine.advance(too_far)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        assert media_frames(call) == [], "a refused step does not move the clock"
        engine.advance(20)
        assert len(media_frames(call)) == 1
    with pytest.raises(trunkline.TrunklineError) as e:
        engine.advance(20)
    assert e.value.code == trunkline.Result.CLOSED


def test_errors_raise_with_the_result_code():
    with trunkline.Engine(workers=0, max_sessions=1) as engine:
        call = engine.session()
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session()
        assert e.value.code == trunkline.Result.TOO_MANY_SESSIONS
        with pytest.raises(trunkline.TrunklineError) as e:
            call.play(b"\0\0" * 10, 11025)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            engine.session(no_such_setting=1)
        call.close()
        with pytest.raises(trunkline.TrunklineError) as e:
            call.push(connected())
        assert e.value.code == trunkline.Result.CLOSED
    # Bad input is an event, not an exception.
    with trunkline.Engine(workers=0) as engine, engine.session() as call:
        call.push("{not json")
        (ev,) = call.events()
        assert ev.kind == "protocol_error" and ev.error_code == 1 and "JSON" in ev.error_message


def test_the_dialect_is_chosen_by_name():
    for dialect in (None, "", "twilio"):
        with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=16000, dialect=dialect) as call:
            call.push(connected())
            call.push(start())
            assert [e.kind for e in call.events()] == ["connected", "started"]
    with trunkline.Engine(workers=0) as engine:
        for bad in ("no-such-dialect", "Twilio", "twilio\0x"):
            with pytest.raises(trunkline.TrunklineError) as e:
                engine.session(dialect=bad)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT, bad
        with pytest.raises(TypeError):
            engine.session(dialect=1)
        with pytest.raises(TypeError):
            engine.session(struct_size=8)


def test_a_message_for_another_stream_is_reported_and_does_not_end_the_call():
    with trunkline.Engine(workers=0) as engine, engine.session() as call:
        call.push(start())
        call.push(stop(5).replace(STREAM_SID, "MZ-another-stream"))
        call.push(dtmf(6, "4"))
        events = call.events()
        assert [e.kind for e in events] == ["started", "protocol_error", "dtmf"]
        assert events[1].error_code == 16
        assert events[1].error_message == "message for another stream (its stream id differs from the start's)"
        assert call.stats()["protocol_errors"] == 1


def test_worker_nice_is_passed_and_prioritised_workers_are_reported():
    # A higher nice value is always granted and 0 leaves the workers alone: all 2 count.
    for nice in (5, 0):
        with trunkline.Engine(workers=2, worker_nice=nice) as engine:
            assert engine.prioritised_workers == 2
    config = trunkline._ffi.EngineConfig()
    assert trunkline._ffi.lib.trunkline_engine_config_default(ctypes.byref(config), ctypes.sizeof(config)) == 0
    assert config.worker_nice == -10 and config.struct_size == ctypes.sizeof(config)
    assert inspect.signature(trunkline.Engine).parameters["worker_nice"].default == -10
    with pytest.raises(trunkline.TrunklineError) as e:
        trunkline.Engine(workers=2, worker_nice=20)
    assert e.value.code == trunkline.Result.INVALID_ARGUMENT


def test_codecs_match_the_g711_reference():
    codes = bytes(range(256))
    pcm = array.array("h", trunkline.ulaw_decode(codes))
    assert list(pcm) == [reference_ulaw_decode(c) for c in codes]
    assert trunkline.ulaw_encode(pcm.tobytes()) == bytes(c if c != 0x7F else 0xFF for c in codes)
    alaw = trunkline.alaw_decode(codes)
    assert trunkline.alaw_encode(alaw) == codes


def test_async_events_follow_a_threaded_call():
    msgs, labels = call_messages()

    async def run():
        with trunkline.Engine(workers=1) as engine, engine.session() as call:
            async def feed():
                for m in msgs:
                    await call.apush(m)

            feeder = asyncio.ensure_future(feed())
            kinds = [ev.kind async for ev in call.aevents()]
            await feeder
            return kinds

    kinds = asyncio.run(asyncio.wait_for(run(), 20))
    assert kinds == ["connected", "started", "speech_started", "speech_stopped", "dtmf", "stopped"]



def test_a_consumer_that_leaves_aevents_early_leaves_the_rest_for_the_next_read():
    async def first_of(call):
        async for ev in call.aevents():
            return ev.digit if ev.kind == "dtmf" else ev.kind

    async def run():
        # Inline: each message is handled as it is pushed, so one poll takes all their events.
        with trunkline.Engine(workers=0) as engine, engine.session() as call:
            for message in (connected(), start(), dtmf(2, "5")):
                call.push(message)
            first = await first_of(call)
            # The next stream starts where the first left off, and events() hands out the rest.
            second = await first_of(call)
            return first, second, [ev.digit for ev in call.events()]

    assert asyncio.run(asyncio.wait_for(run(), 5)) == ("connected", "started", ["5"])

def test_aevents_ends_quietly_when_the_call_is_closed_between_two_events():
    # The consumer closes the call on a key press, with events still to come: the iteration
    # ends as its docstring says, rather than raising CLOSED at the next poll.
    async def run():
        with trunkline.Engine(workers=0) as engine, engine.session() as call:
            for message in (connected(), start(), dtmf(2, "5"), dtmf(3, "6")):
                call.push(message)
            seen = []
            async for ev in call.aevents():
                seen.append(ev.kind)
                if ev.kind == "dtmf":
                    call.close()
            return seen

    assert asyncio.run(asyncio.wait_for(run(), 5)) == ["connected", "started", "dtmf"]


def test_engine_settings_are_checked_against_their_fields():
    # ctypes keeps the low bits of a value too large for its field: 2**32 + 8 would be 8.
    for settings in ({"max_sessions": 2**32 + 8}, {"tick_ms": -1}, {"workers": 2**40}, {"worker_nice": 2**31}):
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Engine(**settings)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT, settings
    with pytest.raises(TypeError):
        trunkline.Engine(tick_ms=1.5)

