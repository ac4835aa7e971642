#!/usr/bin/env bash
# The Pipecat integration (trunkline.pipecat): its tests in a pinned venv under target/pipecat-env
# holding exactly bindings/python/requirements-pipecat.txt, rebuilt whenever that file changes
# (its hash is kept beside the venv, as scripts/pyenv.sh does for the binding's own tests). The
# tests import the binding from the source tree, which loads target/release/libtrunkline.so, and
# call the pipelines with target/release/callsim.
set -euo pipefail
cd "$(dirname "$0")/.."

req=bindings/python/requirements-pipecat.txt
env_dir=target/pipecat-env
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $env_dir/bin/python || "$(cat "$env_dir/.requirements-hash" 2>/dev/null)" != "$want" ]]; then
  echo "== creating $env_dir ($req)"
  rm -rf "$env_dir"
  python3 -m venv "$env_dir"
  # --no-compile: Python compiles what the tests import when they first do; compiling every
  # module of every package at install time costs more on a fresh machine.
  "$env_dir/bin/pip" install -q --disable-pip-version-check --no-compile --no-deps -r "$req"
  # --no-deps: every package is in the pins; one missing from them fails here, not at first use.
  if ! problems=$("$env_dir/bin/pip" check --disable-pip-version-check); then
    echo "$problems" >&2
    exit 1
  fi
  echo "$want" >"$env_dir/.requirements-hash"
fi

cargo build --release -q -p trunkline-ffi
cargo build --release -q -p trunkline-callsim

echo "== pipecat integration tests"
cd bindings/python
# Three at a time: its three calls wait on real time far more than they compute.
"../../$env_dir/bin/python" -m pytest -q -n 3 tests_pipecat
