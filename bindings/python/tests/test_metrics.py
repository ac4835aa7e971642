"""End to end: the offload server's /metrics while callsim (the simulated carrier) calls it, first
on a clean line, then with loss and jitter. Scraped over HTTP, read back with the reference parser
(prometheus_client), and compared with the sessions' stats(), the server's stats() and what
callsim reports it did; the line-quality histograms must rate the impaired call lower."""

import json
import math
import subprocess
import time
import urllib.request

import pytest

import trunkline
from twilio_messages import REPO, callsim_binary, speech

from prometheus_client.parser import text_string_to_metric_families

CALLER_MS = 2500  # the caller's audio: the start of the speech fixture, its first words at 1 s
REPLY_MS = 600  # the bot's reply, played as soon as the call is taken (before the caller speaks)
IMPAIRED = ["--gap-every", "10", "--jitter-ms", "40", "--seed", "7"]


@pytest.fixture(scope="module")
def callsim():
    return callsim_binary()


@pytest.fixture(scope="module")
def caller_audio(tmp_path_factory):
    audio, labels = speech()
    path = tmp_path_factory.mktemp("callsim") / "caller.ulaw"
    path.write_bytes(audio[: CALLER_MS * 8])
    return path, labels[0][0]


def scrape(port):
    """{(sample name, sorted labels): value} of one GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def g107_mos(stats):
    """The E-model (ITU-T G.107) MOS of one call, worked here from the call's counters and the
    standard's equations, independently of the engine's code: G.711 without concealment (G.113:
    Ie 0, Bpl 4.3), random loss (BurstR 1), the default R0 - Is of 93.2, echo cancelled (only
    Idd), and the documented mouth-to-ear delay: 80 ms outside the engine plus the engine's mean
    wait per message plus the mean time frames were held for reordering."""
    delay_ms = 80 + stats["message_wait_us"] / stats["messages_in"] / 1000
    delay_ms += stats["reorder_wait_us"] / stats["media_frames_in"] / 1000
    idd = 0.0
    if delay_ms > 100:
        x = math.log2(delay_ms / 100)
        idd = 25 * ((1 + x**6) ** (1 / 6) - 3 * (1 + (x / 3) ** 6) ** (1 / 6) + 2)
    ppl = 100 * min(stats["gap_fill_samples"], stats["inbound_samples"]) / stats["inbound_samples"]
    ie_eff = 0 + (95 - 0) * ppl / (ppl / 1 + 4.3)
    r = 93.2 - idd - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6


def get(values, name, **labels):
    return values[(name, tuple(sorted(labels.items())))]


def buckets(values, name):
    """A histogram's cumulative buckets: {upper bound: count}."""
    return {float(dict(labels)["le"]): v for (n, labels), v in values.items() if n == f"{name}_bucket"}


def session_series(name):
    """The sample a session counter is summed into: counters of µs in seconds."""
    return f"trunkline_session_{name[:-3]}_seconds_total" if name.endswith("_us") else f"trunkline_session_{name}_total"


def one_call(engine, server, callsim, audio, speech_start_ms, impairments):
    """Runs callsim for one call while acting as the bot: take the call, play a short reply with a
    mark after it, read everything until `stopped`. Returns callsim's report and the session's
    final stats (the session is closed)."""
    command = [
        str(callsim), "--url", f"ws://127.0.0.1:{server.port}/media", "--audio", str(audio),
        "--speech", f"{speech_start_ms}-{CALLER_MS - 100}", "--wait-ms", "300", "--json", "--quiet", *impairments,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reply = b"".join(((i % 16 - 8) * 1500).to_bytes(2, "little", signed=True) for i in range(REPLY_MS * 8))
    call, stopped = None, False
    deadline = time.monotonic() + 15
    try:
        while not (stopped and proc.poll() is not None):
            assert time.monotonic() < deadline, "the call did not end in time"
            engine.wait(0.01)
            if call is None:
                call = server.accept()
                if call is not None:
                    assert call.play(reply, 8000) == len(reply) // 2
                    call.mark("reply-end")
            if call is not None:
                call.read_audio()
                stopped |= any(e.kind == "stopped" for e in call.events())
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    stats = call.stats()
    call.close()
    return json.loads(out), stats


def until_ended(port, calls):
    """Scrapes until `calls` calls have ended and been freed (the worker retires a closed session
    on its next pass)."""
    deadline = time.monotonic() + 5
    while True:
        values = scrape(port)
        if get(values, "trunkline_calls_total", outcome="stopped") == calls or time.monotonic() > deadline:
            return values
        time.sleep(0.02)


def test_metrics_of_a_clean_and_an_impaired_line(callsim, caller_audio):
    audio, speech_start_ms = caller_audio
    with trunkline.Engine(workers=1) as engine, trunkline.Server(
        engine, path="/media", session={"agent_rate": 8000, "dialect": "twilio"}
    ) as server:
        clean_report, clean = one_call(engine, server, callsim, audio, speech_start_ms, [])
        first = until_ended(server.port, 1)
        impaired_report, impaired = one_call(engine, server, callsim, audio, speech_start_ms, IMPAIRED)
        second = until_ended(server.port, 2)
        server_stats = server.stats()

    # What callsim did and what the engine counted, call by call and in the scrapes.
    for report, stats in [(clean_report, clean), (impaired_report, impaired)]:
        totals = report["totals"]
        assert report["ok"] == 1, report
        assert stats["media_frames_in"] == totals["frames_sent"] > 100
        assert stats["frames_out"] == totals["bot_frames"] == REPLY_MS // 20
        assert stats["mark_messages_sent"] == totals["marks"] >= 1
        assert stats["clears_sent"] == totals["clears"] == 0
    assert clean_report["totals"]["frames_dropped"] == 0
    dropped = impaired_report["totals"]["frames_dropped"]
    assert dropped >= 10

    for values, calls in [(first, [clean]), (second, [clean, impaired])]:
        assert get(values, "trunkline_calls_opened_total") == len(calls)
        assert get(values, "trunkline_calls_active") == 0
        for name in clean:
            if name != "jitter_us":
                expected = sum(c[name] for c in calls)
                expected = expected / 1e6 if name.endswith("_us") else expected
                assert get(values, session_series(name)) == pytest.approx(expected, rel=1e-12, abs=1e-9), name
        assert get(values, "trunkline_media_frames_total", direction="in") == sum(c["media_frames_in"] for c in calls)
        for kind, counter in [("media", "frames_out"), ("mark", "mark_messages_sent"), ("clear", "clears_sent"), ("reply", "replies_sent")]:
            assert get(values, "trunkline_messages_out_total", kind=kind) == sum(c[counter] for c in calls), kind
        assert get(values, "trunkline_call_mos_count") == len(calls)
        assert get(values, "trunkline_call_jitter_seconds_sum") == pytest.approx(sum(c["jitter_us"] for c in calls) / 1e6)
        assert get(values, "trunkline_barge_in_reaction_seconds_count") == 0
    # The server's own counters, as it gives them.
    assert server_stats["calls_opened"] == 2
    for name in ["accepted", "calls_opened", "rejected_path", "rejected_capacity", "protocol_failures"]:
        assert get(second, f"trunkline_server_{name}_total") == server_stats[name], name

    # The clean line: nothing lost, MOS of a clean G.711 call (4.41).
    assert get(first, "trunkline_call_loss_ratio_sum") == 0
    clean_mos = get(first, "trunkline_call_mos_sum")
    assert clean_mos == pytest.approx(4.409, abs=0.01)
    assert clean_mos == pytest.approx(g107_mos(clean), abs=1e-9)
    mos = buckets(first, "trunkline_call_mos")
    assert (mos[4.3], mos[4.5]) == (0, 1)

    # The impaired line: what callsim dropped was lost and filled with silence (but for a last
    # frame dropped: no audio after it, no gap), the jitter rose, the MOS fell.
    frames = impaired_report["totals"]["frames_sent"] + dropped
    filled = dropped - (1 if frames % 10 == 0 else 0)
    assert impaired["gap_fill_samples"] == 160 * filled
    assert impaired["inbound_samples"] == 160 * (frames - (dropped - filled))
    loss = get(second, "trunkline_call_loss_ratio_sum")
    assert loss == pytest.approx(filled / (frames - (dropped - filled)), rel=1e-12)
    assert impaired["jitter_us"] > clean["jitter_us"] + 2000
    impaired_mos = get(second, "trunkline_call_mos_sum") - clean_mos
    assert impaired_mos < clean_mos - 1
    assert impaired_mos == pytest.approx(g107_mos(impaired), abs=1e-9)
    mos = buckets(second, "trunkline_call_mos")
    assert mos[2.5] == 1 and mos[4.5] == 2
    assert buckets(second, "trunkline_call_loss_ratio")[0.0] == 1
