"""trunkline.Vad: the session's speech detector on its own, frame by frame."""

import array
import math

import pytest

import trunkline
from twilio_messages import speech

# The defaults' minimum speech and hangover (docs/settings.md), ms.
MIN_SPEECH_MS = 120
HANGOVER_MS = 400


def speaking_changes(vad, pcm: bytes):
    """(ms at the end of the frame, speaking) at every change, and every probability."""
    frame = vad.frame_samples * 2
    changes, probabilities, was = [], [], False
    for i in range(0, len(pcm) - frame + 1, frame):
        probabilities.append(vad.process(pcm[i : i + frame]))
        if vad.speaking != was:
            was = vad.speaking
            changes.append(((i + frame) // 2 * 1000 // vad.sample_rate, was))
    return changes, probabilities


def test_speaking_follows_the_labelled_utterances():
    audio, labels = speech()
    with trunkline.Vad(sample_rate=8000) as vad:
        changes, probabilities = speaking_changes(vad, trunkline.ulaw_decode(audio))
    assert set(probabilities) == {0.0, 1.0}
    # On inside each utterance, at most the minimum speech + 200 ms after its start; off once the
    # hangover has passed after its end (± 200 ms); no other change.
    assert len(changes) == 2 * len(labels), changes
    for (on, off), (start, end) in zip(zip(changes[::2], changes[1::2]), labels):
        assert on[1] and start < on[0] <= start + MIN_SPEECH_MS + 200, (on, start)
        assert not off[1] and abs(off[0] - (end + HANGOVER_MS)) <= 200, (off, end)


def test_settings_are_the_sessions_vad_settings():
    audio, labels = speech()
    pcm = trunkline.ulaw_decode(audio)
    # A hangover longer than every pause between utterances (at most 1 s) joins them into one
    # (2 s of silence appended, so that it can end).
    with trunkline.Vad(8000, vad_hangover_ms=1500) as vad:
        changes, _ = speaking_changes(vad, pcm + bytes(32000))
    assert [c[1] for c in changes] == [True, False]
    assert abs(changes[1][0] - (labels[-1][1] + 1500)) <= 200
    # A minimum longer than any utterance: never speaking.
    with trunkline.Vad(8000, vad_min_speech_ms=5000) as vad:
        assert speaking_changes(vad, pcm)[0] == []


def test_silence_is_zero_at_every_rate_and_a_voiced_signal_starts_speech():
    for rate in trunkline.VAD_RATES:
        with trunkline.Vad(sample_rate=rate) as vad:
            n = rate // 50
            assert vad.frame_samples == n
            for _ in range(20):
                assert vad.process(bytes(2 * n)) == 0.0
                assert not vad.speaking
            # A 150 Hz pulse train of decaying harmonics, as an array('h') and as a list.
            period = rate / 150
            voiced = [int(6000 * math.exp(-6 * (i % period) / period) * math.cos(10 * math.pi * (i % period) / period)) for i in range(30 * n)]
            states = []
            for k in range(30):
                frame = voiced[k * n : (k + 1) * n]
                vad.process(array.array("h", frame) if k % 2 else frame)
                states.append(vad.speaking)
            on = states.index(True)
            assert MIN_SPEECH_MS // 20 - 1 <= on <= MIN_SPEECH_MS // 20 + 3, (rate, on)
            vad.reset()
            assert not vad.speaking
            assert vad.process([0] * n) == 0.0


def test_bad_input_raises():
    with pytest.raises(trunkline.TrunklineError) as e:
        trunkline.Vad(sample_rate=44100)
    assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    for bad in ({"vad_aggressiveness": 4}, {"vad_min_speech_ms": 5001}, {"vad_hangover_ms": 10001}, {"vad_hangover_ms": -1}):
        with pytest.raises(trunkline.TrunklineError) as e:
            trunkline.Vad(8000, **bad)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT, bad
    with pytest.raises(TypeError):
        trunkline.Vad(8000, hangover=3)
    vad = trunkline.Vad(16000)
    for wrong in (b"", bytes(318), bytes(642), bytes(1280), [0] * 160):
        with pytest.raises(trunkline.TrunklineError) as e:
            vad.process(wrong)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
    with pytest.raises(ValueError):
        vad.process(bytes(639))
    with pytest.raises(ValueError):
        vad.process([40000] * 320)
    assert vad.process(bytes(640)) == 0.0
    vad.close()
    vad.close()
    with pytest.raises(trunkline.TrunklineError) as e:
        vad.process(bytes(640))
    assert e.value.code == trunkline.Result.CLOSED
