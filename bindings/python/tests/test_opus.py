"""Opus agent audio through the Python binding, and the agent format of offloaded calls.

play_encoded() takes an Ogg Opus stream (made here by opusenc from a tone) in chunks of any size,
or raw packets; the carrier's µ-law must decode to that tone, its length kept. Corrupt input
raises BAD_AUDIO and leaves the session playing. A call accepted from a server whose sessions
speak µ-law reads the caller's bytes exactly as callsim sent them."""

import base64
import json
import math
import shutil
import struct
import subprocess
import time

import pytest

import trunkline
from trunkline import Result, TrunklineError
from trunkline._ffi import lib
from twilio_messages import callsim_binary, reference_ulaw_decode, speech, start

TONE_HZ = 1000.0
SECONDS = 0.8
CARRIER_RATE = 8000

def tone(rate, seconds=SECONDS):
    n = int(rate * seconds)
    return [round(0.5 * 32767 * math.sin(2 * math.pi * TONE_HZ * i / rate)) for i in range(n)]


@pytest.fixture(scope="module")
def ogg(tmp_path_factory):
    """An Ogg Opus file of the tone, recorded at 48 kHz mono, 20 ms frames."""
    d = tmp_path_factory.mktemp("opus")
    pcm = struct.pack(f"<{int(48000 * SECONDS)}h", *tone(48000))
    wav = d / "tone.wav"
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, 48000, 96000, 2, 16)
    wav.write_bytes(header + b"data" + struct.pack("<I", len(pcm)) + pcm)
    out = d / "tone.opus"
    assert shutil.which("opusenc"), "opusenc must be installed (Debian: opus-tools; scripts/test.sh installs it)"
    subprocess.run(["opusenc", "--quiet", "--bitrate", "48", "--framesize", "20", str(wav), str(out)], check=True)
    return out.read_bytes()


def ogg_packets(data):
    """The packets of an Ogg stream (an independent reading of RFC 3533's lacing)."""
    packets, current, pos = [], b"", 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"OggS"
        nseg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + nseg]
        body = pos + 27 + nseg
        for lace in lacing:
            current += data[body : body + lace]
            body += lace
            if lace < 255:
                packets.append(current)
                current = b""
        pos = body
    return packets


class Carrier:
    """An inline Twilio call on the manual clock; `heard` is the decoded µ-law it received."""

    def __init__(self):
        self.engine = trunkline.Engine(workers=0, manual_clock=True)
        self.session = self.engine.session(agent_rate=16000)
        self.session.push(start())
        assert "started" in [e.kind for e in self.session.events()]
        self.heard = []

    def tick(self):
        for message in self.session.outbound():
            m = json.loads(message)
            if m["event"] == "media":
                self.heard += [reference_ulaw_decode(c) for c in base64.b64decode(m["media"]["payload"])]
        self.engine.advance(20)

    def retry(self, call):
        """`call()` until the play path has room (FULL: let the carrier play some)."""
        for _ in range(1000):
            try:
                return call()
            except TrunklineError as e:
                if e.code != Result.FULL:
                    raise
            self.tick()
        raise AssertionError("the play path never had room")

    def feed(self, data, chunk, **codec):
        pos = 0
        while pos < len(data):
            pos += self.retry(lambda: self.session.play_encoded(data[pos : pos + chunk], **codec))

    def play_out(self):
        for _ in range(int(SECONDS * 50) + 60):
            self.tick()

    def close(self):
        self.session.close()
        self.engine.close()


def trimmed(heard):
    """The carrier's audio with the silence padding its frames cut off."""
    loud = [i for i, s in enumerate(heard) if abs(s) > 64]
    return heard[loud[0] : loud[-1] + 1] if loud else []


def goertzel(x, rate, freq):
    """Power of `x` at `freq` Hz, normalised by its length."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / len(x) ** 2


def assert_is_the_tone(heard, seconds=SECONDS):
    audio = trimmed(heard)
    # Pre-skip dropped, end trimmed by the granule position: the source's length, give or take
    # the codec's fade at either end.
    assert abs(len(audio) - CARRIER_RATE * seconds) <= 40, len(audio)
    mid = audio[len(audio) // 4 : len(audio) * 3 // 4]
    p = goertzel(mid, CARRIER_RATE, TONE_HZ)
    for off in (400.0, 700.0, 1500.0, 2500.0):
        assert p > 100 * goertzel(mid, CARRIER_RATE, off), f"{off} Hz not 20 dB under the tone"
    # An independent count: a 1 kHz tone crosses zero 2000 times a second.
    crossings = sum(1 for a, b in zip(mid, mid[1:]) if (a < 0) != (b < 0))
    assert abs(crossings - 2 * TONE_HZ * len(mid) / CARRIER_RATE) <= 4, crossings


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096])
def test_an_ogg_opus_stream_in_chunks_plays_the_tone(ogg, chunk):
    call = Carrier()
    call.feed(ogg, chunk, codec="ogg_opus")
    call.retry(call.session.end_encoded)
    call.play_out()
    assert call.session.stats()["encoded_audio_errors"] == 0
    assert_is_the_tone(call.heard)
    call.close()


def test_raw_opus_packets_play_the_tone(ogg):
    packets = ogg_packets(ogg)
    assert packets[0].startswith(b"OpusHead") and packets[1].startswith(b"OpusTags")
    call = Carrier()
    for packet in packets[2:]:
        assert call.retry(lambda: call.session.play_encoded(packet, codec="opus", rate=48000)) == len(packet)
    call.retry(call.session.end_encoded)
    call.play_out()
    # Raw packets carry no pre-skip or end trim: the codec's delay and the last frame's padding
    # may add up to a frame.
    audio = trimmed(call.heard)
    assert CARRIER_RATE * SECONDS - 40 <= len(audio) <= CARRIER_RATE * (SECONDS + 0.03), len(audio)
    mid = audio[len(audio) // 4 : len(audio) * 3 // 4]
    assert goertzel(mid, CARRIER_RATE, TONE_HZ) > 100 * goertzel(mid, CARRIER_RATE, 1500.0)
    with pytest.raises(ValueError):
        call.session.play_encoded(packets[2], codec="mp3")
    with pytest.raises(TrunklineError) as e:
        call.session.play_encoded(packets[2], codec="opus", rate=44100)
    assert e.value.code == Result.INVALID_ARGUMENT
    call.close()


def test_a_corrupt_stream_raises_bad_audio_and_pcm_still_plays(ogg):
    bad = bytearray(ogg)
    bad[len(bad) // 2] ^= 0x40  # fails the page's CRC
    call = Carrier()
    with pytest.raises(TrunklineError) as e:
        call.feed(bytes(bad), 4096, codec="ogg_opus")
    assert e.value.code == Result.BAD_AUDIO == 12
    assert e.value.message == lib.trunkline_result_message(12).decode()
    assert call.session.stats()["encoded_audio_errors"] == 1
    # The session goes on: PCM plays, and so does a good stream after it.
    call.play_out()
    call.heard = []
    pcm = struct.pack(f"<{CARRIER_RATE // 2}h", *tone(CARRIER_RATE, 0.5))
    assert call.retry(lambda: call.session.play(pcm, CARRIER_RATE)) == CARRIER_RATE // 2
    call.play_out()
    assert_is_the_tone(call.heard, 0.5)
    call.heard = []
    call.feed(ogg, 4096, codec="ogg_opus")
    call.retry(call.session.end_encoded)
    call.play_out()
    assert_is_the_tone(call.heard)
    # A stream cut mid-page is truncated: end_encoded says so.
    call.feed(ogg[:-25], 100, codec="ogg_opus")
    with pytest.raises(TrunklineError) as e:
        call.retry(call.session.end_encoded)
    assert e.value.code == Result.BAD_AUDIO
    assert call.session.stats()["encoded_audio_errors"] == 2
    call.close()


def test_an_offloaded_ulaw_call_reads_the_callers_bytes(tmp_path):
    callsim = callsim_binary()
    audio, _ = speech()
    audio = audio[: 8 * 1000]
    path = tmp_path / "caller.ulaw"
    path.write_bytes(audio)
    session = {"agent_rate": 8000, "agent_format": "ulaw"}
    with trunkline.Engine(workers=1) as engine, trunkline.Server(engine, session=session) as server:
        command = [
            str(callsim), "--url", f"ws://127.0.0.1:{server.port}/", "--audio", str(path), "--speech", "100-900",
            "--wait-ms", "100", "--digital-silence", "--json", "--quiet",
        ]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            call, events, heard = None, [], bytearray()
            deadline = time.monotonic() + 20
            while not any(e.kind == "stopped" for e in events) or proc.poll() is None:
                assert time.monotonic() < deadline, "the call did not end in time"
                engine.wait(0.02)
                if call is None:
                    call = server.accept()
                    if call is not None:
                        assert call.agent_format == "ulaw"
                if call is not None:
                    events += call.events()
                    heard += call.read_audio()
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.wait() == 0, proc.stderr.read().decode()
        report = json.loads(proc.stdout.read())
        call.close()
    frames = report["totals"]["frames_sent"]
    # A µ-law byte per sample, every frame callsim sent, the caller's audio first and untouched
    # (then the digital silence callsim sends while it waits to hang up).
    assert len(heard) == frames * 160
    assert bytes(heard[: len(audio)]) == audio
    assert set(heard[len(audio) :]) <= {0xFF}
