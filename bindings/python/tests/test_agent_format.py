"""An agent speaking 8 kHz G.711 through the Python binding: `agent_format="ulaw"` makes
read_audio() return the carrier's µ-law bytes exactly as sent and play() take µ-law bytes that
reach the carrier exactly as played (every code, 0x7F included, which a decode and encode would
turn into 0xFF)."""

import base64
import json

import pytest

import trunkline
from twilio_messages import media, reference_ulaw_decode, start

FRAME = 160


def all_codes(n):
    return bytes((i * 97 + i // 256) & 0xFF for i in range(n))


def test_a_ulaw_agent_reads_and_plays_the_carriers_bytes_untouched():
    engine = trunkline.Engine(workers=0, manual_clock=True)
    session = engine.session(agent_rate=8000, agent_format="ulaw")
    assert session.agent_format == "ulaw"
    session.push(start())
    caller = all_codes(8 * FRAME)
    for i in range(8):
        session.push(media(i + 2, i + 1, i * 20, caller[i * FRAME : (i + 1) * FRAME]))
    assert session.read_audio() == caller

    agent = bytes((0x7F + i * 31) & 0xFF for i in range(10 * FRAME))
    assert session.play(agent, 8000) == len(agent)
    sent = b""
    for _ in range(20):
        for message in session.outbound():
            m = json.loads(message)
            if m["event"] == "media":
                sent += base64.b64decode(m["media"]["payload"])
        engine.advance(20)
    assert sent == agent
    with pytest.raises(trunkline.TrunklineError):
        session.play(agent, 16000)
    session.close()
    engine.close()


def test_a_pcm_agent_still_reads_pcm_and_the_format_is_checked():
    engine = trunkline.Engine(workers=0, manual_clock=True)
    session = engine.session(agent_rate=8000)
    assert session.agent_format == "pcm"
    session.push(start())
    caller = all_codes(2 * FRAME)
    for i in range(2):
        session.push(media(i + 2, i + 1, i * 20, caller[i * FRAME : (i + 1) * FRAME]))
    pcm = session.read_audio()
    expected = b"".join(reference_ulaw_decode(c).to_bytes(2, "little", signed=True) for c in caller)
    assert pcm == expected
    with pytest.raises(trunkline.TrunklineError):
        engine.session(agent_rate=16000, agent_format="ulaw")  # G.711 is 8 kHz
    with pytest.raises(ValueError):
        engine.session(agent_rate=8000, agent_format="opus")
    session.close()
    engine.close()
