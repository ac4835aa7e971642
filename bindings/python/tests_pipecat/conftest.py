"""The Pipecat integration's tests: run in the pinned venv of scripts/test_pipecat.sh
(pipecat-ai, FastAPI, uvicorn), from bindings/python, against target/release/libtrunkline.so
and target/release/callsim."""

import sys
from pathlib import Path

import pytest
from loguru import logger

HERE = Path(__file__).resolve().parent
# The binding's own test helpers (the committed speech fixture, a reference G.711 decoder).
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))


@pytest.fixture
def log_records():
    """Pipecat's and the transport's log records at WARNING and above (Pipecat logs every frame
    at DEBUG otherwise)."""
    records = []
    logger.remove()
    sink = logger.add(lambda message: records.append(message.record), level="WARNING")
    yield records
    logger.remove(sink)
    logger.add(sys.stderr, level="WARNING")


def trunkline_problems(records):
    """Warnings and errors logged by the integration itself, and errors logged by anything."""
    return [
        f"{r['level'].name} {r['name']}: {r['message']}"
        for r in records
        if r["name"].startswith("trunkline") or r["level"].no >= 40
    ]
