#!/usr/bin/env bash
# The full test command (README: "The two commands"). CI runs exactly this via .ci/run.
# Installs the Debian packages it needs when they are missing, then runs formatting, lints and
# every test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
# The VAD/barge-in corpus (scripts/make_vad_corpus.sh) synthesises speech with espeak-ng and sox,
# and adds the real voice recordings alsa-utils ships (/usr/share/sounds/alsa).
command -v espeak-ng >/dev/null || need_pkgs+=(espeak-ng)
command -v sox >/dev/null || need_pkgs+=(sox)
[[ -f /usr/share/sounds/alsa/Front_Center.wav ]] || need_pkgs+=(alsa-utils)
# The .NET binding is compiled with Mono's C# compiler and run with mono (scripts/test_dotnet.sh).
command -v mcs >/dev/null || need_pkgs+=(mono-mcs)
command -v mono >/dev/null || need_pkgs+=(mono-runtime)
# The C tests (scripts/test_c.sh) also run under valgrind.
command -v valgrind >/dev/null || need_pkgs+=(valgrind)
# The packages stage (scripts/test_packages.sh) builds against an installed prefix with pkg-config
# and looks inside the packages it builds.
command -v pkg-config >/dev/null || need_pkgs+=(pkg-config)
command -v unzip >/dev/null || need_pkgs+=(unzip)
# Opus (the engine links libopus through pkg-config; its tests encode fixtures with opusenc).
pkg-config --exists opus 2>/dev/null || need_pkgs+=(libopus-dev)
command -v opusenc >/dev/null || need_pkgs+=(opus-tools)
if ((${#need_pkgs[@]})); then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"
  fi
fi

# stage TITLE: announces a stage with the time the suite has taken so far (where CI time goes).
stage() { echo "== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }

stage "cargo fmt --check"
cargo fmt --all -- --check
stage "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
stage "cargo test"
# Four tests at a time on two cores: the real-time calls (callsim, the server) wait far more than
# they compute, and the CPU-bound corpus tests take as long either way.
cargo test --workspace --locked -- --test-threads 4
stage "fuzz: a short run of every cargo-fuzz target (scripts/fuzz.sh; installs cargo-fuzz if missing)"
./scripts/fuzz.sh 4
stage "C ABI: C tests (plain, ASan+UBSan, valgrind), examples/c, the README's C example"
./scripts/test_c.sh
stage "python binding"
./scripts/test_python.sh
stage "pipecat integration (trunkline.pipecat behind callsim; pinned venv target/pipecat-env)"
./scripts/test_pipecat.sh
stage "docs/deploy.md: its Kubernetes YAML hangs together"
"$(scripts/pyenv.sh)/bin/python" scripts/check_deploy_doc.py
stage ".NET binding (Mono)"
./scripts/test_dotnet.sh
stage "node binding"
./scripts/test_node.sh
stage "packages: wheel, npm, NuGet, C prefix (each installed away from the checkout, a call through each)"
./scripts/test_packages.sh
stage "the end-to-end call demo (offload server + bot + callsim; fails unless the call goes as expected)"
# The README's demo command, as a fresh machine runs it.
./scripts/demo.sh
# The same call on every other carrier (AudioSocket over TCP), in brief: the last line says how it
# went. All at once (each call is a few seconds of real time, each on its own ports), reported in
# order.
dialects=(telnyx plivo vonage exotel signalwire audiosocket jambonz)
# shellcheck source=scripts/checks.sh
source scripts/checks.sh
demo_dir=$(mktemp -d)
for dialect in "${dialects[@]}"; do
  in_background "$demo_dir" "$dialect" ./target/release/call_demo --dialect "$dialect"
done
wait
demos=1
demos_failed=0
for dialect in "${dialects[@]}"; do
  echo "-- call demo --dialect $dialect"
  if [[ $(exit_code "$demo_dir" "$dialect") == 0 ]]; then
    tail -n 1 "$demo_dir/$dialect.log"
    demos=$((demos + 1))
  else
    cat "$demo_dir/$dialect.log"
    demos_failed=$((demos_failed + 1))
  fi
done
rm -rf "$demo_dir"
echo "call demo: $demos passed, $demos_failed failed"
((demos_failed == 0))
echo "== test command: $((SECONDS / 60))m$((SECONDS % 60))s in all"
