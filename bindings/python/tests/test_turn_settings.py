"""The VAD's turn settings through the C session config: end-of-turn events (their fields, their
place before speech_stopped or, with a maximum silence, after it, their settings refused out of
range) and echo-aware detection."""

import array
import base64
import json
import math

import pytest

import trunkline
from twilio_messages import connected, media, reference_ulaw_decode, speech, start, stop

HANGOVER_MS = 400


def run_call(**settings):
    """Feeds the whole speech fixture to an inline session; returns the speech events, each with
    the stream time (ms of caller audio pushed) when it came out, and the fixture's labels."""
    audio, labels = speech()
    events = []
    with trunkline.Engine(workers=0) as engine, engine.session(vad_hangover_ms=HANGOVER_MS, **settings) as call:
        call.push(connected())
        call.push(start())
        frames = len(audio) // 160
        for i in range(frames):
            call.push(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
            call.read_audio()  # keeps the caller PCM ring from filling
            events += [(e, (i + 1) * 20) for e in call.events()]
        call.push(stop(frames + 2))
        events += [(e, frames * 20) for e in call.events()]
    speech_kinds = ("speech_started", "speech_stopped", "end_of_turn")
    return [(e, at) for e, at in events if e.kind in speech_kinds], labels


def test_end_of_turn_comes_once_per_pause_before_speech_stopped_with_sane_fields():
    threshold, min_silence = 35, 140
    events, labels = run_call(
        vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=threshold, vad_end_of_turn_min_silence_ms=min_silence
    )
    kinds = [e.kind for e, _ in events]
    stops = [i for i, k in enumerate(kinds) if k == "speech_stopped"]
    assert len(stops) == len(labels), kinds
    early = 0
    for i in stops:
        stopped, stopped_at = events[i]
        # The pause's last end_of_turn comes just before its speech_stopped, at the same end of
        # speech; never after it.
        turn, turn_at = events[i - 1]
        assert turn.kind == "end_of_turn", kinds
        assert turn.stream_ms == stopped.stream_ms
        assert 0 <= turn.confidence <= 100
        if turn.silence_ms < HANGOVER_MS:
            # Early: the phrase sounded finished enough, after the minimum silence, and it came
            # out that much sooner in the stream than speech_stopped did.
            early += 1
            assert turn.confidence >= threshold
            assert turn.silence_ms == min_silence
            assert turn_at < stopped_at
            assert turn_at - turn.stream_ms >= min_silence
        else:
            assert turn.silence_ms == HANGOVER_MS
            assert turn.confidence < threshold
    # Each ends where the fixture's utterance ends (within the VAD's frame and onset tolerance).
    ends = [events[i][0].stream_ms for i in stops]
    assert all(abs(end - label[1]) <= 60 for end, label in zip(ends, labels)), (ends, labels)
    assert early >= 1, "no early end of turn on the whole fixture"
    # Every end_of_turn falls inside a turn: after its speech_started (or an earlier end_of_turn
    # of the same turn, when the caller spoke on after a pause), never after speech_stopped.
    last = None
    for e, _ in events:
        if e.kind == "end_of_turn":
            assert last in ("speech_started", "end_of_turn"), kinds
        last = e.kind


def test_a_call_ending_mid_phrase_ends_the_turn_just_before_speech_stopped():
    audio, labels = speech()
    start_ms, _ = labels[0]
    cut = (start_ms + 1200) // 20  # frames: the middle of the first utterance
    with trunkline.Engine(workers=0) as engine, engine.session(vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=99) as call:
        call.push(connected())
        call.push(start())
        events = []
        for i in range(cut):
            call.push(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
            call.read_audio()
            events += call.events()
        assert [e.kind for e in events if e.kind.startswith("speech")] == ["speech_started"]
        call.push(stop(cut + 2))
        events = [e for e in call.events() if e.kind in ("end_of_turn", "speech_stopped")]
    # The hang-up ends the caller's turn as it ends their speech: one end_of_turn, just before
    # speech_stopped, at the same time, with no silence waited.
    assert [e.kind for e in events] == ["end_of_turn", "speech_stopped"]
    turn, stopped = events
    assert turn.stream_ms == stopped.stream_ms
    assert turn.silence_ms == 0 and 0 <= turn.confidence <= 100


def test_the_threshold_and_min_silence_change_the_decision():
    # At the top threshold no phrase is confident enough: every end of turn waits for the hangover.
    events, _ = run_call(vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=99)
    turns = [e for e, _ in events if e.kind == "end_of_turn"]
    assert turns and all(t.silence_ms == HANGOVER_MS and t.confidence < 99 for t in turns)
    # A longer minimum silence delays the early ones by as much (200 ms: whole frames).
    events, _ = run_call(vad_end_of_turn_enabled=True, vad_end_of_turn_min_silence_ms=200)
    early = [e for e, _ in events if e.kind == "end_of_turn" and e.silence_ms < HANGOVER_MS]
    assert early and all(t.silence_ms == 200 for t in early)


def test_end_of_turn_is_off_by_default():
    events, _ = run_call()
    kinds = [e.kind for e, _ in events]
    assert "end_of_turn" not in kinds and "speech_stopped" in kinds
    for e, _ in events:
        assert e.silence_ms is None and e.confidence is None


def test_a_max_silence_longer_than_the_hangover_ends_the_turn_after_speech_stopped():
    # At the top threshold no phrase sounds finished enough: without a maximum silence each
    # pause's end_of_turn comes with its speech_stopped (the test above); with one between the
    # hangover and the fixture's shortest pause (800 ms) it comes that much silence after the
    # speech, later in the stream than speech_stopped, at the same end of speech.
    max_silence = 600
    events, labels = run_call(
        vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=99, vad_end_of_turn_max_silence_ms=max_silence
    )
    kinds = [e.kind for e, _ in events]
    turns = [i for i, k in enumerate(kinds) if k == "end_of_turn"]
    assert len(turns) == len(labels), kinds
    for i in turns:
        (turn, turn_at), (stopped, stopped_at) = events[i], events[i - 1]
        assert stopped.kind == "speech_stopped", kinds
        assert turn.stream_ms == stopped.stream_ms
        assert turn.silence_ms == max_silence and turn.confidence < 99
        assert turn_at > stopped_at and turn_at - turn.stream_ms >= max_silence
    # Longer than every pause of the fixture: no pause ends the turn, speech still stops, and
    # the call's end ends the turn still waiting for its maximum silence (with the silence since).
    events, _ = run_call(vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=99, vad_end_of_turn_max_silence_ms=2000)
    kinds = [e.kind for e, _ in events]
    assert kinds.count("end_of_turn") == 1 and kinds[-1] == "end_of_turn", kinds
    assert kinds.count("speech_stopped") == len(labels), kinds
    (last_stop, _), (turn, turn_at) = events[-2], events[-1]
    assert turn.stream_ms == last_stop.stream_ms and turn.silence_ms < 2000
    assert turn.stream_ms + turn.silence_ms == turn_at


def test_the_max_silence_defaults_to_0_and_above_10_s_is_refused():
    from trunkline._core import session_config

    assert session_config({}).vad_end_of_turn_max_silence_ms == 0
    with trunkline.Engine(workers=0) as engine:
        for bad in (10_001, 2**32 - 1):
            with pytest.raises(trunkline.TrunklineError) as e:
                engine.session(vad_end_of_turn_enabled=True, vad_end_of_turn_max_silence_ms=bad)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        # Not whole frames: accepted (rounded up to 20 ms, like the minimum silence).
        for good in (10_000, 1, 1010):
            engine.session(vad_end_of_turn_enabled=True, vad_end_of_turn_max_silence_ms=good).close()


@pytest.mark.parametrize("bad", [0, 100, 255, 256, 2**32 - 1])
def test_a_threshold_out_of_range_is_refused(bad):
    with trunkline.Engine(workers=0) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=bad)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        # Checked even while end of turn is off: the setting is wrong either way.
        with pytest.raises(trunkline.TrunklineError):
            engine.session(vad_end_of_turn_threshold=bad)
        for good in (1, 99):
            engine.session(vad_end_of_turn_enabled=True, vad_end_of_turn_threshold=good).close()


def test_echo_aware_is_accepted_and_changes_nothing_while_the_agent_is_silent():
    # The echo gate only acts on the agent's played audio: with none, the caller's speech is
    # detected exactly as without it.
    plain, _ = run_call()
    echo_aware, _ = run_call(vad_echo_aware=True)
    assert [(e.kind, e.stream_ms) for e, _ in echo_aware] == [(e.kind, e.stream_ms) for e, _ in plain]
    assert any(e.kind == "speech_started" for e, _ in echo_aware)


def agent_echo_call(echo_aware, **settings):
    """The agent speaks (the speech fixture's first 2.5 s) and the line carries its voice back:
    each frame the carrier plays returns as caller audio 100 ms later, 10 dB down. On a manual
    clock, so the carrier plays exactly a frame per 20 ms. Returns the barge-in and speech
    events, and with `sent=True` also every media payload sent (in order) and the counters."""
    want_sent = settings.pop("sent", False)
    sent = []
    audio, _ = speech()
    agent = array.array("h", [reference_ulaw_decode(c) for c in audio[: 20_000]]).tobytes()
    silence = b"\xff" * 160
    events = []
    with trunkline.Engine(workers=0, manual_clock=True) as engine:
        call = engine.session(agent_rate=8000, vad_echo_aware=echo_aware, **settings)
        call.push(connected())
        call.push(start())
        assert call.play(agent, 8000) == len(agent) // 2
        queued, played = [], []
        for i in range(200):
            for m in map(json.loads, call.outbound()):
                if m["event"] == "media":
                    queued.append(base64.b64decode(m["media"]["payload"]))
                    sent.append(queued[-1])
                elif m["event"] == "clear":
                    queued.clear()
            played.append(queued.pop(0) if queued else silence)
            heard = played[i - 5] if i >= 5 else silence
            echo = array.array("h", (int(reference_ulaw_decode(c) * 0.316) for c in heard)).tobytes()
            call.push(media(i + 2, i + 1, i * 20, trunkline.ulaw_encode(echo)))
            engine.advance(ms=20)
            call.read_audio()
            events += [e.kind for e in call.events() if e.kind in ("speech_started", "barge_in")]
        stats = call.stats()
    return (events, sent, stats) if want_sent else events


def test_echo_aware_keeps_the_agent_from_barging_in_on_its_own_echo():
    # Without it the echo passes for the caller's speech and cuts the agent off; with it, the
    # echo the agent's played audio explains is not speech.
    assert "barge_in" in agent_echo_call(echo_aware=False)
    assert agent_echo_call(echo_aware=True) == []


def level_db(payload):
    samples = [reference_ulaw_decode(c) for c in payload]
    return 10 * math.log10(sum(x * x for x in samples) / len(samples) + 1e-9)


def test_ducking_turns_the_agent_down_before_the_barge_in_and_zero_turns_it_off():
    # The same deterministic call twice: the line's echo passes for caller speech and barges in.
    # With ducking (the default, 18 dB) the frames sent between the speech's confirmation and
    # the barge-in are the same audio 18 dB down; with barge_in_duck_db=0 nothing is turned down.
    # (The ducked agent's echo is quieter too, so the barge-in may come a frame apart.)
    events, ducked, ducked_stats = agent_echo_call(False, sent=True)
    plain_events, plain, plain_stats = agent_echo_call(False, sent=True, barge_in_duck_db=0)
    assert events == plain_events and "barge_in" in events
    assert (ducked_stats["ducks"], plain_stats["ducks"]) == (1, 0)
    assert abs(len(ducked) - len(plain)) <= 1
    differ = [i for i, (a, b) in enumerate(zip(ducked, plain)) if a != b]
    assert len(differ) >= 3, differ
    assert differ == list(range(differ[0], min(len(ducked), len(plain)))), "ducked up to the clear"
    # The first ducked frame holds the 10 ms ramp; the others are the full 18 dB (µ-law steps).
    drops = [level_db(plain[i]) - level_db(ducked[i]) for i in differ[1:] if level_db(plain[i]) > 30]
    assert drops and all(16.5 <= d <= 19.5 for d in drops), drops
    with trunkline.Engine(workers=0) as engine, pytest.raises(trunkline.TrunklineError):
        engine.session(barge_in_duck_db=256)


def test_rejoining_defaults_to_800_ms_and_above_2_s_is_refused():
    # Only the engine checks the maximum: a refused 2001 next to an accepted 2000 shows the
    # field reaches it through the struct, at its place in the layout.
    from trunkline._core import session_config

    assert session_config({}).barge_in_rejoin_within_ms == 800
    with trunkline.Engine(workers=0) as engine:
        for good in (0, 2000):
            engine.session(barge_in_rejoin_within_ms=good).close()
        for bad in (2001, 2**32 - 1):
            with pytest.raises(trunkline.TrunklineError) as e:
                engine.session(barge_in_rejoin_within_ms=bad)
            assert e.value.code == trunkline.Result.INVALID_ARGUMENT


def caller_audio(**settings):
    """Pushes the speech fixture's first 3 s (its first utterance) to an inline session on a
    manual clock, the agent silent; returns all the caller audio read back and the counters."""
    audio, _ = speech()
    frames = 150
    read = []
    with trunkline.Engine(workers=0, manual_clock=True) as engine:
        with engine.session(agent_rate=8000, **settings) as call:
            call.push(connected())
            call.push(start())
            for i in range(frames):
                call.push(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
                engine.advance(ms=20)
                read.append(call.read_audio())
            # The stop flushes any part frame the canceller holds.
            call.push(stop(frames + 2))
            read.append(call.read_audio())
            return b"".join(read), call.stats()


def test_echo_reduction_is_off_by_default_needs_echo_aware_and_passes_audio_while_the_agent_is_silent():
    from trunkline._core import session_config

    assert session_config({}).echo_reduction is False
    plain, _ = caller_audio(vad_echo_aware=True)
    reduced, stats = caller_audio(vad_echo_aware=True, echo_reduction=True)
    # With no agent audio there is no echo to remove: the same samples come out, none held back.
    assert len(plain) == 150 * 160 * 2
    assert len(reduced) == len(plain)
    assert reduced == plain
    assert stats["echo_reduction_unavailable"] == 0
    # Only the engine checks the pairing: refused with the flag on shows the field reaches it,
    # at its place in the layout.
    with trunkline.Engine(workers=0) as engine:
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(echo_reduction=True)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(echo_reduction=True, vad_echo_aware=False)
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        engine.session(echo_reduction=False, vad_echo_aware=False).close()


def test_the_library_defaults_fill_the_new_settings():
    from trunkline._core import session_config

    c = session_config({})
    assert (c.vad_echo_aware, c.vad_end_of_turn_enabled) == (False, False)
    assert 1 <= c.vad_end_of_turn_threshold <= 99
    assert c.record_path is None
    c = session_config({"vad_echo_aware": True, "vad_end_of_turn_threshold": 60})
    assert c.vad_echo_aware and c.vad_end_of_turn_threshold == 60
