#!/usr/bin/env bash
# Node stage of the test command: installs the npm packages pinned by the lockfiles (bindings/node,
# examples/node) when node_modules is missing or older than its lockfile, builds the release
# library and callsim (no-ops when up to date; the examples' tests call through callsim), then
# runs the binding's tests and the examples' self-tests with node's test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { echo "node (20+) and npm are required for the Node binding" >&2; exit 1; }
cargo build --release -q -p trunkline-ffi -p trunkline-callsim

# bindings/node first: examples/node links to it and uses its koffi.
for dir in bindings/node examples/node; do
  if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    echo "== npm ci ($dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

echo "== node binding tests and example bot self-test (node --test)"
# Six files at a time: the calls wait on real time far more than they compute.
node --test --test-concurrency=6 --test-timeout=60000 bindings/node/test/*.test.js examples/node/test/*.test.js
