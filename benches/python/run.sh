#!/usr/bin/env bash
# The Python CPU benchmarks: Pipecat's default telephony path against trunkline.pipecat
# (pipecat_cpu.py), and a sample-style OpenAI Realtime bridge against the Trunkline example
# (bridge_cpu.py). They run in a pinned venv of their own, target/bench-env, holding
# requirements-bench.txt (the Pipecat integration's pins, with what Silero needs), rebuilt
# whenever that file or the pins it includes change, so the test suite's venv stays as it is.
#
#   benches/python/run.sh [pipecat|bridge|all] [options of the script, e.g. --calls 6 --seconds 30]
set -euo pipefail
cd "$(dirname "$0")/../.."

env_dir=target/bench-env
want=$(cat benches/python/requirements-bench.txt bindings/python/requirements-pipecat.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x $env_dir/bin/python || "$(cat "$env_dir/.requirements-hash" 2>/dev/null)" != "$want" ]]; then
  echo "== creating $env_dir (benches/python/requirements-bench.txt)"
  rm -rf "$env_dir"
  python3 -m venv "$env_dir"
  (cd benches/python && "../../$env_dir/bin/pip" install -q --disable-pip-version-check -r requirements-bench.txt)
  echo "$want" >"$env_dir/.requirements-hash"
fi

cargo build --release -q -p trunkline-ffi
cargo build --release -q -p trunkline-callsim

mode=${1:-all}
[[ $# -gt 0 ]] && shift
case $mode in
  pipecat) "$env_dir/bin/python" benches/python/pipecat_cpu.py "$@" ;;
  bridge) "$env_dir/bin/python" benches/python/bridge_cpu.py "$@" ;;
  all)
    "$env_dir/bin/python" benches/python/pipecat_cpu.py "$@"
    echo
    "$env_dir/bin/python" benches/python/bridge_cpu.py "$@"
    ;;
  *) echo "usage: $0 [pipecat|bridge|all] [--calls N] [--seconds T] [--repeat R] [--json]" >&2; exit 2 ;;
esac
