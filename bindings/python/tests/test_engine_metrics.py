"""Engine.metrics(): the engine's Prometheus / OpenMetrics text, read back with the reference
parser (prometheus_client) and compared with the sessions' own counters."""

import pytest

import trunkline
from twilio_messages import connected, media, speech, start, stop

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

FRAMES = 150  # 3 s of the speech fixture
LOST = 40  # a frame the carrier never delivers: the engine fills it


def samples(families):
    """{(sample name, sorted labels): value} of every sample."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def run_call(engine, lost=LOST):
    """An inline Twilio call: FRAMES media frames (one lost), one bad message, stop. Every event
    and all audio read; returns the session, still open."""
    audio, _ = speech()
    call = engine.session(agent_rate=8000)
    call.push(connected())
    call.push(start())
    for i in range(FRAMES):
        if i != lost:
            call.push(media(i + 2, i + 1, i * 20, audio[i * 160 : (i + 1) * 160]))
        call.read_audio()
    call.push("not json")
    call.push(stop(FRAMES + 2))
    call.read_audio()
    assert call.events()[-1].kind == "stopped"
    return call


def session_series(name):
    """The metric sample a session counter appears as: µs counters in seconds."""
    if name.endswith("_us"):
        return f"trunkline_session_{name[:-3]}_seconds_total"
    return f"trunkline_session_{name}_total"


def expected_value(name, value):
    return value / 1e6 if name.endswith("_us") else value


def test_the_metrics_are_the_sessions_counters():
    with trunkline.Engine(workers=0) as engine:
        first = run_call(engine)
        second = run_call(engine, lost=None)
        stats = [first.stats(), second.stats()]
        assert stats[0]["media_frames_in"] == FRAMES - 1 and stats[1]["media_frames_in"] == FRAMES
        assert stats[0]["protocol_errors"] == 1

        got = samples(parse_prometheus(engine.metrics()))
        compared = 0
        for name in stats[0]:
            if name == "jitter_us":  # an estimate per call, not a counter: not summed
                assert (session_series(name), ()) not in got
                continue
            want = expected_value(name, stats[0][name] + stats[1][name])
            assert got[(session_series(name), ())] == pytest.approx(want, rel=1e-12), name
            compared += 1
        assert compared == len(stats[0]) - 1
        assert got[("trunkline_calls_active", ())] == 2
        assert got[("trunkline_calls_opened_total", ())] == 2
        assert got[("trunkline_media_frames_total", (("direction", "in"),))] == 2 * FRAMES - 1
        assert got[("trunkline_protocol_errors_total", ())] == 2

        # Closed sessions keep their counts, and are counted by how they ended.
        first.close()
        del first
        second.close()
        del second
        text = engine.metrics(openmetrics=True)
        assert text.endswith("# EOF\n")
        got = samples(parse_openmetrics(text))
        assert got[("trunkline_calls_active", ())] == 0
        assert got[("trunkline_calls_total", (("outcome", "stopped"),))] == 2
        assert got[("trunkline_session_media_frames_in_total", ())] == 2 * FRAMES - 1


def test_a_threaded_engine_reports_each_worker():
    with trunkline.Engine(workers=2) as engine:
        families = {f.name: f for f in parse_prometheus(engine.metrics())}
        workers = sorted(s.labels["worker"] for s in families["trunkline_worker_cpu_seconds"].samples)
        assert workers == ["0", "1"]
        assert families["trunkline_engine_latency_seconds"].type == "histogram"


def test_metrics_after_close_raise_closed():
    engine = trunkline.Engine(workers=0)
    engine.close()
    with pytest.raises(trunkline.TrunklineError) as e:
        engine.metrics()
    assert e.value.code == trunkline.Result.CLOSED
