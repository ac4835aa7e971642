#!/usr/bin/env bash
# .NET binding stage of the test command: builds the release library, then compiles the binding,
# its tests and examples/dotnet with Mono's mcs and runs them with mono
# (bindings/dotnet/test-mono.sh). Needs mono-mcs and mono-runtime (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p trunkline-ffi -p trunkline-callsim
bindings/dotnet/test-mono.sh
