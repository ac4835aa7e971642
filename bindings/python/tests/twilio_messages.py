"""Twilio Media Streams messages built from the committed speech fixture (test support)."""

import asyncio
import base64
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "engine" / "tests" / "fixtures"
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"


def callsim_binary():
    """The callsim binary (release), built first when cargo is at hand (quick when up to date);
    scripts/test_python.sh builds it before the tests."""
    binary = REPO / "target" / "release" / "callsim"
    cargo = shutil.which("cargo")
    if cargo:
        subprocess.run([cargo, "build", "--release", "-q", "-p", "trunkline-callsim"], cwd=REPO, check=True, timeout=1800)
    assert binary.exists(), "no callsim binary: cargo build --release -p trunkline-callsim"
    return binary


def speech():
    audio = (FIXTURES / "speech_8k.ulaw").read_bytes()
    labels = [tuple(int(v) for v in line.split()) for line in (FIXTURES / "speech_8k.labels").read_text().splitlines() if line.strip()]
    return audio, labels


def connected():
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def start(params=None, call_sid=CALL_SID):
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM_SID,
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": STREAM_SID,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "customParameters": params or {"caller": "+15550100", "lang": "en"},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }
    )


def media(seq, chunk, timestamp_ms, payload):
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "streamSid": STREAM_SID,
            "media": {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(payload).decode(),
            },
        }
    )


def dtmf(seq, digit):
    return json.dumps({"event": "dtmf", "streamSid": STREAM_SID, "sequenceNumber": str(seq), "dtmf": {"track": "inbound_track", "digit": digit}})


def mark_echo(seq, name):
    return json.dumps({"event": "mark", "sequenceNumber": str(seq), "streamSid": STREAM_SID, "mark": {"name": name}})


def stop(seq):
    return json.dumps({"event": "stop", "sequenceNumber": str(seq), "streamSid": STREAM_SID, "stop": {"accountSid": "AC0", "callSid": CALL_SID}})


def reference_ulaw_decode(code):
    """ITU-T G.711 µ-law expansion, written independently of the engine."""
    u = ~code & 0xFF
    sign, exponent, mantissa = u & 0x80, (u >> 4) & 7, u & 0x0F
    v = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -v if sign else v


def scripted_caller(directory, utterances, total_ms, fill):
    """The caller callsim plays: `total_ms` of 8 kHz µ-law filled with the code `fill`, the speech
    fixture's pieces placed at their times (`utterances`: (at_ms, (from_ms, to_ms))), and the
    labels file callsim reads beside it. Returns the audio file's path."""
    audio, _ = speech()
    out = bytearray(bytes([fill]) * (total_ms * 8))
    labels = []
    for at, (start, end) in utterances:
        piece = audio[start * 8 : end * 8]
        out[at * 8 : at * 8 + len(piece)] = piece
        labels.append(f"{at} {at + end - start}")
    (directory / "caller.ulaw").write_bytes(bytes(out))
    (directory / "caller.labels").write_text("\n".join(labels) + "\n")
    return directory / "caller.ulaw"


def load_example(name):
    """The example program examples/python/`name`.py, imported as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "examples" / "python" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def call_bridge(callsim, port, caller_audio):
    """callsim calling a bridge on `port` with `caller_audio` (digital silence between its
    utterances, 150 ms carrier playout delay), as the bridge tests do: its exit code, its JSON
    report's metrics and its timeline as (stream ms, event text)."""
    proc = await asyncio.create_subprocess_exec(
        str(callsim), "--url", f"ws://127.0.0.1:{port}/media", "--audio", str(caller_audio),
        "--digital-silence", "--playout-delay-ms", "150", "--wait-ms", "3000", "--json", "--timeline", "--quiet",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    timeline = [(int(m.group(1)), m.group(2)) for m in
                (re.match(r"^\s*(-?\d+) ms  (.*)$", line) for line in err.decode().splitlines()) if m]
    metrics = json.loads(out)["per_call"][0]["metrics"] if proc.returncode == 0 else None
    return proc.returncode, err.decode(), metrics, timeline
