"""Sessions on other carriers' dialects, chosen by name: a JSON text carrier (Telnyx), a binary
framed one (Vonage) and a TCP byte stream pushed in arbitrary chunks (Asterisk AudioSocket). The
messages are written here from the carriers' documented shapes, and the audio checked against an
independent decoding."""

import array
import base64
import json
import struct

import trunkline
from twilio_messages import reference_ulaw_decode


def pcm(samples):
    return array.array("h", samples).tobytes()


def ramp(n, step=37):
    return [((i * step) % 20000) - 10000 for i in range(n)]


def test_telnyx_json_with_mulaw_reaches_the_agent():
    codes = bytes((i * 7) % 256 for i in range(160))
    start = {
        "event": "start",
        "sequence_number": "1",
        "stream_id": "stream-1",
        "start": {
            "call_control_id": "v3:call-1",
            "custom_parameters": {"customer_id": "c-42"},
            "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
        },
    }
    media = {
        "event": "media",
        "sequence_number": "2",
        "stream_id": "stream-1",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": base64.b64encode(codes).decode()},
    }
    with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=8000, dialect="telnyx") as call:
        call.push(json.dumps({"event": "connected", "version": "1.0.0"}))
        call.push(json.dumps(start))
        call.push(json.dumps(media))
        assert call.read_audio() == pcm([reference_ulaw_decode(c) for c in codes])
        started = [e for e in call.events() if e.kind == "started"]
        assert len(started) == 1
        ev = started[0]
        assert (ev.call_id, ev.stream_id) == ("v3:call-1", "stream-1")
        assert ev.custom_parameters == {"customer_id": "c-42"}
        assert (ev.encoding, ev.sample_rate, ev.channels) == ("mulaw", 8000, 1)
        # Telnyx says which key, not for how long.
        call.push(json.dumps({"event": "dtmf", "stream_id": "stream-1", "dtmf": {"digit": "7"}}))
        (key,) = [e for e in call.events() if e.kind == "dtmf"]
        assert (key.digit, key.stream_ms, key.duration_ms) == ("7", 20, None)


def test_vonage_binary_frames_reach_a_16_khz_agent_untouched():
    audio = ramp(320 * 5)
    with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=16000, dialect="vonage") as call:
        call.push(json.dumps({"event": "websocket:connected", "content-type": "audio/l16;rate=16000", "lang": "en"}))
        for i in range(5):
            call.push(pcm(audio[i * 320:(i + 1) * 320]))  # bytes: a binary frame
        assert call.read_audio() == pcm(audio)
        (ev,) = [e for e in call.events() if e.kind == "started"]
        assert (ev.encoding, ev.sample_rate) == ("l16", 16000)
        assert ev.custom_parameters == {"lang": "en"}
        # Vonage says for how long the key was held, in ms.
        call.push(json.dumps({"event": "websocket:dtmf", "digit": "5", "duration": 260}))
        (key,) = [e for e in call.events() if e.kind == "dtmf"]
        assert (key.digit, key.stream_ms, key.duration_ms) == ("5", 100, 260)
        # Vonage sends no stop: the socket closing ends the stream.
        call.end_stream()
        assert [e.kind for e in call.events()] == ["stopped"]
        call.end_stream()  # harmless once ended
        assert call.events() == []


def test_audiosocket_stream_in_any_chunks_delivers_the_call():
    def tlv(kind, value):
        return struct.pack(">BH", kind, len(value)) + value

    audio = ramp(160 * 10, step=53)
    stream = tlv(0x01, bytes(range(16)))  # the call's UUID
    for i in range(10):
        stream += tlv(0x10, pcm(audio[i * 160:(i + 1) * 160]))  # 20 ms of 8 kHz slin
    stream += tlv(0x00, b"")  # hang-up
    received = b""
    with trunkline.Engine(workers=0) as engine, engine.session(agent_rate=8000, dialect="audiosocket") as call:
        for at in range(0, len(stream), 7):  # cut through headers and values alike
            call.push(stream[at:at + 7])
            received += call.read_audio()
        received += call.read_audio()
        assert received == pcm(audio)
        kinds = [e.kind for e in call.events()]
        assert "started" in kinds and kinds[-1] == "stopped", kinds
        assert "protocol_error" not in kinds


def test_a_dialect_with_options_sends_the_codec_the_stream_was_requested_with():
    # Telnyx sends back what the stream request asked for, which its messages do not say: here
    # L16 at 16 kHz, given as options in the dialect's name.
    start = {
        "event": "start",
        "sequence_number": "1",
        "stream_id": "stream-2",
        "start": {
            "call_control_id": "v3:call-2",
            "media_format": {"encoding": "L16", "sample_rate": 16000, "channels": 1},
        },
    }
    reply = ramp(320, step=41)
    settings = {"agent_rate": 16000, "dialect": "telnyx;codec=L16;rate=16000"}
    with trunkline.Engine(workers=0) as engine, engine.session(**settings) as call:
        call.push(json.dumps(start))
        assert [e.kind for e in call.events()] == ["started"]
        call.play(pcm(reply), 16000)
        (message,) = [json.loads(m) for m in call.outbound() if '"media"' in m]
        payload = base64.b64decode(message["media"]["payload"])
        # 20 ms of 16 kHz L16, big-endian as Telnyx carries it.
        assert payload == struct.pack(">320h", *reply)
