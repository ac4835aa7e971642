#!/usr/bin/env bash
# The end-to-end call demo (README: "The two commands"): Trunkline's offload server with a demo
# bot, and callsim calling it on loopback. The engine links libopus through pkg-config: on a fresh
# machine they are installed first (Debian or Ubuntu, apt-get), as the test command does. Further
# arguments go to call_demo (e.g. --dialect telnyx).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need_pkgs+=(libopus-dev)
if ((${#need_pkgs[@]})) && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
fi

exec cargo run --release --locked -p trunkline-tools --bin call_demo -- "$@"
