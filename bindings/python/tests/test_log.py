"""trunkline.log_to_stderr(): installs the library's logger once per process, refuses a bad
filter, and the offload server's drain then shows on stderr. Each case runs in a process of its
own, since the logger is process-wide."""

import os
import subprocess
import sys

from twilio_messages import REPO


def run(code, **env):
    """Runs `code` in a fresh interpreter that imports this checkout's binding."""
    environ = {k: v for k, v in os.environ.items() if k != "TRUNKLINE_LOG"}
    environ.update(env)
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "bindings" / "python"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60)


def test_installs_once_and_the_server_logs_its_drain():
    done = run(
        """
import trunkline
for bad in ("trunkline=nonsense", "[unclosed"):
    try:
        trunkline.log_to_stderr(bad)
        raise SystemExit("accepted " + bad)
    except trunkline.TrunklineError as e:
        assert e.code == trunkline.Result.INVALID_ARGUMENT, e
try:
    trunkline.log_to_stderr("a\\0b")
    raise SystemExit("accepted a NUL")
except ValueError:
    pass
assert trunkline.log_to_stderr("trunkline=info") is True
assert trunkline.log_to_stderr("trunkline=debug") is False  # already installed: nothing changes
with trunkline.Engine(workers=1) as engine, trunkline.Server(engine) as server:
    assert server.drain(0) is True
"""
    )
    assert done.returncode == 0, done.stderr
    assert "drain started" in done.stderr and "drain finished" in done.stderr, done.stderr
    assert "nonsense" in done.stderr  # why the filter was refused


def test_none_reads_trunkline_log():
    bad = run("import trunkline\ntrunkline.log_to_stderr()", TRUNKLINE_LOG="[unclosed")
    assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stderr and "TRUNKLINE_LOG" in bad.stderr
    # A filter that lets nothing of the server through: installed, and the drain is not logged.
    quiet = run(
        "import trunkline\nassert trunkline.log_to_stderr() is True\n"
        "with trunkline.Engine(workers=1) as e, trunkline.Server(e) as s:\n    s.drain(0)",
        TRUNKLINE_LOG="off",
    )
    assert quiet.returncode == 0, quiet.stderr
    assert "drain" not in quiet.stderr


def test_nothing_is_logged_without_it():
    silent = run("import trunkline\nwith trunkline.Engine(workers=1) as e, trunkline.Server(e) as s:\n    s.drain(0)")
    assert silent.returncode == 0 and silent.stderr == "", silent.stderr
