"""A session opened with the parameters of a `start` its host already read behaves as the
session that parsed that `start` itself."""

import array
import json

import pytest

import trunkline
from twilio_messages import ACCOUNT_SID, CALL_SID, STREAM_SID, media, speech, start

PARAMS = {"caller": "+15550100", "lang": "en"}
# What start() says, as a host's own handler would have read it.
GIVEN = {
    "stream_id": STREAM_SID,
    "call_id": CALL_SID,
    "account_id": ACCOUNT_SID,
    "encoding": "ulaw",
    "sample_rate": 8000,
    "channels": 1,
    "custom_parameters": PARAMS,
}


def run_call(engine, calls):
    """Pushes the same caller audio to each call, plays the same reply, on one manual clock;
    returns each call's caller audio, outbound messages and events."""
    audio, _ = speech()
    reply = array.array("h", (((i * 37 % 2000) - 1000) * 8 for i in range(4000))).tobytes()
    heard, outs, events = ([[] for _ in calls] for _ in range(3))
    for k in range(100):
        for i, call in enumerate(calls):
            call.push(media(k + 2, k + 1, k * 20, audio[k * 160 : (k + 1) * 160]))
            if k == 10:
                assert call.play(reply, 8000) == 4000
                call.mark("end")
            heard[i].append(call.read_audio())
            outs[i] += call.outbound()
            events[i] += call.events()
        engine.advance(20)
    return [b"".join(h) for h in heard], outs, events


def test_a_session_opened_started_is_the_session_that_parsed_the_start():
    with trunkline.Engine(workers=0, manual_clock=True) as engine:
        with engine.session(agent_rate=16000) as parsed, engine.session(agent_rate=16000, start=GIVEN) as given:
            parsed.push(start())
            heard, outs, events = run_call(engine, [parsed, given])

            first = events[1][0]
            assert first.kind == "started"
            assert (first.stream_id, first.call_id, first.account_id) == (STREAM_SID, CALL_SID, ACCOUNT_SID)
            assert first.custom_parameters == PARAMS
            assert (first.encoding, first.sample_rate, first.channels) == ("mulaw", 8000, 1)
            assert events[0] == events[1]

            assert len(heard[1]) > 16000, "caller audio came through"
            assert heard[0] == heard[1]
            assert outs[1] and outs[0] == outs[1], "the same messages to the carrier"
            assert json.loads(outs[1][0])["streamSid"] == STREAM_SID
            assert [json.loads(m)["event"] for m in outs[1]].count("media") == 25  # the 500 ms reply
            assert json.loads(outs[1][-1])["event"] == "mark"

            given.push(start())
            (dup,) = given.events()
            assert dup.kind == "protocol_error" and dup.error_code == 10  # DUPLICATE_START


def test_defaults_and_bad_start_parameters():
    with trunkline.Engine(workers=0) as engine:
        # Only what the dialect needs: Twilio echoes the stream id; mulaw at 8 kHz mono is the default.
        with engine.session(start={"stream_id": STREAM_SID}) as call:
            (ev,) = call.events()
            assert (ev.kind, ev.stream_id, ev.call_id, ev.custom_parameters) == ("started", STREAM_SID, "", {})
            assert (ev.encoding, ev.sample_rate, ev.channels) == ("mulaw", 8000, 1)
        with engine.session(start={"stream_id": STREAM_SID, "encoding": "alaw"}) as call:
            assert call.events()[0].encoding == "alaw"

        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(start=dict(GIVEN, encoding="l16", sample_rate=44100))
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        with pytest.raises(ValueError, match="streamSid"):
            engine.session(start=dict(GIVEN, streamSid=STREAM_SID))
        with pytest.raises(ValueError, match="amr-wb"):
            engine.session(start=dict(GIVEN, encoding="amr-wb"))
        with pytest.raises(TypeError):
            engine.session(start=dict(GIVEN, custom_parameters=[("caller", "x")]))
        with pytest.raises(trunkline.TrunklineError) as e:
            engine.session(start=dict(GIVEN, call_id="CA\0x"))
        assert e.value.code == trunkline.Result.INVALID_ARGUMENT
        # Nothing was left open by the refusals.
        assert engine.session(start=GIVEN).events()[0].kind == "started"
