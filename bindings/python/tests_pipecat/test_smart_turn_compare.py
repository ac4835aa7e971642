"""tools/smart_turn_compare.py, the comparison of Trunkline's end of turn with Pipecat's Smart
Turn, drives Pipecat's real analyzer as it says: on the recorded speech fixture (four utterances
labelled by hand) taken as one turn."""

import asyncio
import importlib.util
from pathlib import Path

import numpy as np
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

from twilio_messages import reference_ulaw_decode, speech

ROOT = Path(__file__).resolve().parents[3]


def load_compare():
    spec = importlib.util.spec_from_file_location("smart_turn_compare", ROOT / "tools" / "smart_turn_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_boundary_gets_the_models_verdict_at_its_time():
    compare = load_compare()
    audio, labels = speech()
    pcm = np.array([reference_ulaw_decode(c) for c in audio], dtype=np.int16)
    # Room after the turn for the analyzer's own 3 s of silence.
    pcm = np.concatenate([pcm, np.zeros(4 * compare.RATE, dtype=np.int16)])
    pieces = [(start, end, False) for start, end in labels]

    analyzer = LocalSmartTurnAnalyzerV3(sample_rate=compare.RATE)
    analyzer.set_sample_rate(compare.RATE)
    fallback_ms = int(analyzer.params.stop_secs * 1000)

    boundaries, latency, inference = asyncio.run(compare.run_turn(analyzer, pcm, pieces, fallback_ms))

    assert [kind for kind, _, _ in boundaries] == ["between"] * 3 + ["end"]
    # Asked once per pause and at the end, each at 200 ms of silence, unless a complete verdict
    # ended the turn early and the next utterance began a new one (asked at its end again).
    assert len(inference) == 4
    for kind, complete, prob in boundaries:
        assert prob is not None and 0.0 <= prob <= 1.0, (kind, prob)
        if kind != "end":
            # The model's own decision (complete above one half) cuts the pause or not.
            assert complete == (prob > 0.5), (kind, complete, prob)
    # At the end: the model's complete verdict 200 ms after the speech, or else the analyzer's
    # own 3 s of silence (counted from the 20 ms frame the speech ends in).
    _, end_complete, end_prob = boundaries[-1]
    assert end_complete
    wait_ms = compare.STOP_MS if end_prob > 0.5 else fallback_ms
    assert wait_ms <= latency < wait_ms + 20, (latency, end_prob)

    # The first verdict is the model's on exactly the audio claimed: from 500 ms before the turn
    # to 200 ms of silence into the first pause, whole 20 ms frames after the one the speech ends
    # in (the model run directly, without the analyzer's buffering).
    first_silent_ms = -(-labels[0][1] // 20) * 20
    start = labels[0][0] - compare.PRE_SPEECH_MS
    segment = pcm[start * 8 : (first_silent_ms + compare.STOP_MS) * 8].astype(np.float32) / 32768.0
    direct = analyzer._predict_endpoint(segment)["probability"]
    assert abs(direct - boundaries[0][2]) < 1e-4, (direct, boundaries[0][2])
    asyncio.run(analyzer.cleanup())


def test_auc_is_the_share_of_pairs_ranked_right():
    compare = load_compare()
    assert compare.auc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert compare.auc([0.1], [0.9]) == 0.0
    # Pairs (0.5, 0.5) tie and count half, (0.5, 0.6) is ranked wrong, both pairs of 0.7 right.
    assert compare.auc([0.5, 0.7], [0.5, 0.6]) == (0.5 + 0 + 1 + 1) / 4
