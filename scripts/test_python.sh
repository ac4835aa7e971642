#!/usr/bin/env bash
# Python binding stage of the test command: checks that `pip install ./bindings/python` builds a
# working package in a fresh venv, then runs the tests in the pinned test environment
# (scripts/pyenv.sh: target/py-env).
set -euo pipefail
cd "$(dirname "$0")/.."

py_env=$(./scripts/pyenv.sh)
# The library, and callsim (the simulated carrier some tests call the offload server with).
cargo build --release -q -p trunkline-ffi
cargo build --release -q -p trunkline-callsim

echo "== pip install ./bindings/python (fresh venv)"
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check ./bindings/python
(cd "$venv" && "$venv/bin/python" -c '
import trunkline, os
assert os.path.exists(os.path.join(os.path.dirname(trunkline.__file__), "libtrunkline.so"))
with trunkline.Engine(workers=0) as e, e.session() as s:
    s.push("{\"event\":\"connected\",\"protocol\":\"Call\",\"version\":\"1.0.0\"}")
    assert [ev.kind for ev in s.events()] == ["connected"]
print("installed package works:", trunkline.__version__)
')

echo "== python binding tests"
cd bindings/python
# Eight at a time: the tests wait on real-time calls far more than they compute.
"$py_env/bin/python" -m pytest -q -n 8 tests
