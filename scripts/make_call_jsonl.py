#!/usr/bin/env python3
"""Writes examples/c/call.jsonl: a Twilio Media Streams call, one JSON message per line.

The caller's audio is the first 4 s of the committed speech fixture
(engine/tests/fixtures/speech_8k.ulaw, 8 kHz mu-law; its first utterance runs from 1000 to
3421 ms), sent as Twilio does: `connected`, `start` (with custom parameters), one `media` message
per 20 ms frame, then a DTMF digit and `stop`. Deterministic; python3 stdlib only.

    python3 scripts/make_call_jsonl.py [OUTPUT [SECONDS]]   # default: examples/c/call.jsonl, 4 s

tools/fixtures/call_10s.jsonl (the load benchmark's call) is the first 10 s:
    python3 scripts/make_call_jsonl.py tools/fixtures/call_10s.jsonl 10
"""

import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "engine/tests/fixtures/speech_8k.ulaw"
SECONDS = 4
FRAME = 160  # 20 ms of 8 kHz mu-law
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"
STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f"


def dump(message):
    return json.dumps(message, separators=(",", ":"))


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples/c/call.jsonl"
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else SECONDS
    audio = FIXTURE.read_bytes()[: seconds * 8000]
    lines = [
        dump({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
        dump(
            {
                "event": "start",
                "sequenceNumber": "1",
                "start": {
                    "accountSid": ACCOUNT_SID,
                    "streamSid": STREAM_SID,
                    "callSid": CALL_SID,
                    "tracks": ["inbound"],
                    "customParameters": {"caller": "+15550100", "lang": "en-GB"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": STREAM_SID,
            }
        ),
    ]
    seq = 2
    for i in range(len(audio) // FRAME):
        payload = base64.b64encode(audio[i * FRAME : (i + 1) * FRAME]).decode("ascii")
        media = {"track": "inbound", "chunk": str(i + 1), "timestamp": str(i * 20), "payload": payload}
        lines.append(dump({"event": "media", "sequenceNumber": str(seq), "media": media, "streamSid": STREAM_SID}))
        seq += 1
    dtmf = {"track": "inbound_track", "digit": "5"}
    lines.append(dump({"event": "dtmf", "streamSid": STREAM_SID, "sequenceNumber": str(seq), "dtmf": dtmf}))
    seq += 1
    stop = {"accountSid": ACCOUNT_SID, "callSid": CALL_SID}
    lines.append(dump({"event": "stop", "sequenceNumber": str(seq), "stop": stop, "streamSid": STREAM_SID}))
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
