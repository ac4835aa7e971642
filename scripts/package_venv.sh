#!/usr/bin/env bash
# Prints the path of a Python venv holding exactly the pinned packages given, creating it first when
# missing or when the pins changed (their hash is kept beside it), like scripts/pyenv.sh does for
# the test environment. The packaging scripts keep theirs under target/, so a second run (and CI's
# cached target/) reuses them and nothing goes into the system Python.
#
# Usage: scripts/package_venv.sh DIR NAME==VERSION...
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 2)) || { echo "usage: $0 DIR NAME==VERSION..." >&2; exit 2; }
env_dir=$1
shift
want=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
if [[ ! -x $env_dir/bin/python || "$(cat "$env_dir/.pins-hash" 2>/dev/null)" != "$want" ]]; then
  rm -rf "$env_dir"
  python3 -m venv "$env_dir" >&2
  # --no-deps: every package it needs is in the pins, so nothing unpinned slips in.
  "$env_dir/bin/pip" install -q --disable-pip-version-check --no-deps "$@" >&2
  # A dependency missing from the pins fails here rather than at first use.
  if ! problems=$("$env_dir/bin/pip" check --disable-pip-version-check); then
    echo "$problems" >&2
    exit 1
  fi
  echo "$want" >"$env_dir/.pins-hash"
fi
cd "$env_dir" && pwd
