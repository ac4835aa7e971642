"""Pipecat's Smart Turn (an audio model of whether a turn is complete, bundled with pipecat-ai)
on the turn tracks that `vadbench --turns` scores Trunkline's end of turn on.

A second, independent answer to the question the end of turn asks, from a model trained on
speech rather than on three prosodic cues: how often does it let the bot answer 200 ms after a
turn's end, and how often does it end the turn in a pause inside a sentence or between two
sentences of one turn?

It drives the analyzer as a Pipecat pipeline does: it is fed the track's 20 ms frames from half a second
before a turn starts (its `pre_speech_ms`), each marked speech or not by the track's exact
labels (a VAD that never errs), and asked at every 200 ms of silence after speech (the
`VADParams.stop_secs` Pipecat recommends with Smart Turn). A complete verdict ends the turn
there (a cut, if the caller goes on); an incomplete one leaves it to the next pause or to the
analyzer's own 3 s of silence.

    cargo run --release -p trunkline-tools --bin vadbench -- --turns --export target/turn-export
    target/pipecat-env/bin/python tools/smart_turn_compare.py target/turn-export

The tracks are exported as `<name>.wav` (8 kHz, 16-bit mono) and `<name>.csv` (one row per
sentence piece: turn, start_ms, end_ms, and whether the pause after it is inside a sentence).
"""

import asyncio
import csv
import sys
import time
import wave
from pathlib import Path

import numpy as np
from pipecat.audio.turn.base_turn_analyzer import EndOfTurnState
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

RATE = 8000
FRAME = RATE // 50
# What Pipecat recommends with Smart Turn: the VAD stops after 200 ms of silence, and the
# analyzer is asked then.
STOP_MS = 200
# The analyzer's own `pre_speech_ms`: audio kept before the turn's speech.
PRE_SPEECH_MS = 500


def read_track(wav: Path, labels: Path):
    with wave.open(str(wav)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise SystemExit(f"{wav}: expected 8 kHz 16-bit mono")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    turns = {}
    with open(labels, newline="") as f:
        for row in csv.DictReader(f):
            turns.setdefault(int(row["turn"]), []).append(
                (int(row["start_ms"]), int(row["end_ms"]), row["inside_after"] == "1")
            )
    return pcm, [turns[k] for k in sorted(turns)]


async def run_turn(analyzer, pcm, pieces, fallback_ms):
    """Feeds one turn (and the silence after it) as Pipecat would.

    Returns the boundaries after each piece as (kind, complete, probability): kind "inside",
    "between" or "end"; whether a complete verdict came in it; the probability of the first
    verdict the model gave there (None if the analyzer ended the turn on its own silence or was
    not asked). And, for the turn's end, the latency from the labelled end of speech to the
    verdict that ended the turn (None if none came); and the inference times, ms.
    """
    analyzer.clear()
    start = max(0, pieces[0][0] - PRE_SPEECH_MS)
    start -= start % 20
    last_end = pieces[-1][1]
    stop = min(last_end + fallback_ms + 500, len(pcm) * 1000 // RATE - 20)
    spans = [(s, e) for s, e, _ in pieces]
    verdicts, inference = [], []
    silence, asked = 0, False
    for ms in range(start, stop, 20):
        frame = pcm[ms * RATE // 1000 : ms * RATE // 1000 + FRAME]
        speech = any(s <= ms < e for s, e in spans)
        triggered = analyzer.speech_triggered
        state = analyzer.append_audio(frame.tobytes(), speech)
        if speech:
            silence, asked = 0, False
            continue
        if state == EndOfTurnState.COMPLETE:
            verdicts.append((ms + 20, True, None))
            continue
        if not triggered:
            continue
        silence += 20
        if silence >= STOP_MS and not asked:
            asked = True
            t = time.perf_counter()
            state, metrics = await analyzer.analyze_end_of_turn()
            inference.append((time.perf_counter() - t) * 1000)
            verdicts.append((ms + 20, state == EndOfTurnState.COMPLETE, metrics.probability))
    boundaries = []
    for i, (_, end, inside) in enumerate(pieces):
        last = i + 1 == len(pieces)
        until = stop if last else pieces[i + 1][0]
        here = [v for v in verdicts if end < v[0] <= until]
        complete = [v for v in here if v[1]]
        prob = next((v[2] for v in here if v[2] is not None), None)
        kind = "end" if last else ("inside" if inside else "between")
        boundaries.append((kind, bool(complete), prob))
        if last:
            latency = complete[0][0] - end if complete else None
    return boundaries, latency, inference


def auc(pos, neg):
    """Probability that a random `pos` scores above a random `neg` (ties half)."""
    if not pos or not neg:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


async def main(folder: Path):
    analyzer = LocalSmartTurnAnalyzerV3(sample_rate=RATE)
    # What Pipecat's pipeline does when it starts (the rate given above wins).
    analyzer.set_sample_rate(RATE)
    fallback_ms = int(analyzer.params.stop_secs * 1000)
    print(f"Smart Turn: asked at {STOP_MS} ms of silence, the turn ended on its own at {fallback_ms} ms")
    print()
    print(
        "| tracks | turn ends | latency p50 / p90 | cut inside a sentence | cut between sentences "
        "| AUC end vs inside / between | inference p50 |"
    )
    print("|---|---|---|---|---|---|---|")
    groups = {}
    for wav in sorted(folder.glob("*.wav")):
        groups.setdefault(wav.stem.rsplit("-", 1)[0], []).append(wav)
    for group, wavs in groups.items():
        latencies, missed, inference = [], 0, []
        cuts = {"inside": [], "between": []}
        probs = {"inside": [], "between": [], "end": []}
        for wav in wavs:
            pcm, turns = read_track(wav, wav.with_suffix(".csv"))
            for pieces in turns:
                boundaries, latency, inf = await run_turn(analyzer, pcm, pieces, fallback_ms)
                inference += inf
                for kind, complete, prob in boundaries:
                    if kind != "end":
                        cuts[kind].append(complete)
                    if prob is not None:
                        probs[kind].append(prob)
                if latency is None:
                    missed += 1
                else:
                    latencies.append(latency)
        latencies.sort()

        def pct(q):
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

        def rate(v):
            return f"{sum(v) / len(v):.2f} (of {len(v)})" if v else "-"

        end_auc = " / ".join(f"{auc(probs['end'], probs[k]):.2f}" for k in ("inside", "between"))
        print(
            f"| {group} ({len(wavs)}) | {len(latencies) + missed} | {pct(0.5)} / {pct(0.9)} ms | "
            f"{rate(cuts['inside'])} | {rate(cuts['between'])} | {end_auc} | {np.median(inference):.0f} ms |"
        )
    await analyzer.cleanup()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    asyncio.run(main(Path(sys.argv[1])))
