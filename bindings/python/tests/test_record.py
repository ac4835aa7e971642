"""Call recordings (record_path): a short call read back with the standard library's `wave`, and
the paths refused."""

import array
import base64
import json
import math

import pytest

import trunkline
from twilio_messages import connected, media, reference_ulaw_decode, speech, start, stop

FRAMES = 100  # 2 s of caller audio
RATE = 8000


def tone(rate, seconds, freq, amplitude):
    n = int(rate * seconds)
    return array.array("h", (int(amplitude * math.sin(2 * math.pi * freq * i / rate)) for i in range(n))).tobytes()


def rms(samples):
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def test_a_call_is_recorded_in_stereo_caller_left_agent_as_heard_right(tmp_path):
    import wave

    audio, _ = speech()
    path = tmp_path / "call.wav"
    sent = bytearray()  # the agent's µ-law as sent to the carrier
    # A manual clock: the carrier plays (and the recording places) exactly 20 ms per step.
    with trunkline.Engine(workers=0, manual_clock=True) as engine:
        call = engine.session(agent_rate=RATE, record_path=path, barge_in_enabled=False)
        assert path.exists(), "created when the session opens"
        call.push(connected())
        call.push(start())
        call.play(tone(RATE, 1.0, 440, 8000), RATE)
        for i in range(FRAMES):
            call.push(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
            engine.advance(ms=20)
            for m in map(json.loads, call.outbound()):
                if m["event"] == "media":
                    sent += base64.b64decode(m["media"]["payload"])
            call.read_audio()
            call.events()
        call.push(stop(FRAMES + 2))
        call.close()
    # The engine is closed: the recording is finished.
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, RATE, 2)
        assert w.getnframes() == FRAMES * 160, "as long as the call"
        data = array.array("h", w.readframes(w.getnframes()))
    caller, agent = data[0::2], data[1::2]
    # Left: the caller's µ-law as delivered, decoded by an independent G.711 expansion.
    assert list(caller) == [reference_ulaw_decode(c) for c in audio[: FRAMES * 160]]
    # Right: the agent's 1 s as it went to the carrier, from the start, then silence.
    assert len(sent) == RATE
    assert list(agent[:RATE]) == [reference_ulaw_decode(c) for c in sent]
    assert abs(20 * math.log10(rms(agent[:RATE]) / (8000 / math.sqrt(2)))) < 0.5
    assert not any(agent[RATE:])


@pytest.mark.parametrize("name", ["call.mp3", "call", "call.wav.txt"])
def test_an_unknown_extension_is_refused_and_nothing_created(tmp_path, name):
    with trunkline.Engine(workers=0) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(record_path=str(tmp_path / name))
        assert e.value.code == trunkline.Result.RECORD
        assert "recording" in str(e.value) and ".wav" in str(e.value)
        assert list(tmp_path.iterdir()) == []
        engine.session().close()  # the engine goes on


def test_an_uncreatable_file_is_refused(tmp_path):
    with trunkline.Engine(workers=0) as engine:
        for path in (tmp_path / "no" / "such" / "dir" / "call.wav", tmp_path):
            with pytest.raises(trunkline.TrunklineError) as e:
                engine.session(record_path=path)
            assert e.value.code == trunkline.Result.RECORD
        with pytest.raises(TypeError):
            engine.session(record_path=42)
        # None and "" record nothing.
        engine.session(record_path=None).close()
        engine.session(record_path="").close()
    assert list(tmp_path.iterdir()) == []
