#!/usr/bin/env bash
# Prints the path of the Python test environment, creating it first when missing or stale:
# a venv under target/py-env holding exactly bindings/python/requirements-test.txt (pinned).
# It is rebuilt whenever that file changes (its hash is kept beside the venv), so CI's cached
# target/ reuses it and a fresh machine builds it once. Nothing is installed into the system Python.
set -euo pipefail
cd "$(dirname "$0")/.."
req=bindings/python/requirements-test.txt
env_dir=target/py-env
want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $env_dir/bin/python || "$(cat "$env_dir/.requirements-hash" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$env_dir"
  python3 -m venv "$env_dir" >&2
  # --no-compile: Python compiles what the tests import when they first do; compiling every
  # module of every package at install time costs more on a fresh machine.
  "$env_dir/bin/pip" install -q --disable-pip-version-check --no-compile --no-deps -r "$req" >&2
  # --no-deps: every package is in the pins; one missing from them fails here, not at first use.
  if ! problems=$("$env_dir/bin/pip" check --disable-pip-version-check); then
    echo "$problems" >&2
    exit 1
  fi
  echo "$want" >"$env_dir/.requirements-hash"
fi
echo "$PWD/$env_dir"
