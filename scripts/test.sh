#!/usr/bin/env bash
# The full test command (README: "Run every test"). CI runs exactly this via .ci/run.
# Installs the Debian packages it needs when they are missing, then runs formatting, lints and
# every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
# Nothing in the engine suite needs extra Debian packages yet; later suites (C under valgrind,
# Mono, libopus) add theirs here.
if ((${#need_pkgs[@]})); then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
