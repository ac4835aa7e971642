#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/reliability.md: "Fuzzing"): each for SECONDS (default 4), on
# the stable toolchain (RUSTC_BOOTSTRAP=1 lets it take the sanitizer flags cargo-fuzz passes),
# with AddressSanitizer, debug assertions and overflow checks. Installs cargo-fuzz when missing.
#
#   scripts/fuzz.sh                 every target, 4 s each (the test command's short run)
#   scripts/fuzz.sh 600             every target, 10 minutes each
#   scripts/fuzz.sh 3600 session    one target for an hour
#
# Each target's corpus grows in fuzz/corpus/TARGET (kept between runs, not committed), seeded from
# fuzz/seeds/TARGET where there is one (the session target's are written and checked by
# fuzz/make_seeds.py). A crash stops the run: libFuzzer writes the input to
# fuzz/artifacts/TARGET/ and prints how to replay it (`cargo fuzz run TARGET ARTIFACT`); turn it
# into a regression test in engine/tests before fixing it.
# Closes with "fuzz: N passed, M failed" and one line per target with its executions.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/checks.sh
source scripts/checks.sh

seconds=${1:-4}
shift || true
all=(twilio_bytes twilio_json session backpressure reorder resample vad telnyx signalwire plivo exotel vonage jambonz audiosocket)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

if ! command -v cargo-fuzz >/dev/null; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cd fuzz
echo "== fuzz: building ${#targets[@]} targets (ASan, debug assertions)"
cargo fuzz build

# The session seeds are calls a short run does not reach by chance (an echo-aware session
# holding a speech start back); a change to the target's input layout would turn them into noise.
seeds=skipped
if [[ " ${targets[*]} " == *" session "* ]]; then
  echo "== fuzz: the session seeds still make the calls they are for (make_seeds.py --check)"
  if python3 make_seeds.py --check; then seeds=ok; else seeds=failed; fi
fi

# One target per core at a time: each still has a core to itself for its SECONDS.
jobs_max=$(nproc 2>/dev/null || echo 2)
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
for t in "${targets[@]}"; do
  corpus=corpus/$t
  mkdir -p "$corpus" "artifacts/$t"
  dirs=("$corpus")
  [[ -d seeds/$t ]] && dirs+=("seeds/$t")
  while (($(jobs -rp | wc -l) >= jobs_max)); do wait -n || true; done
  echo "== fuzz: $t for ${seconds} s"
  in_background "$logs" "$t" cargo fuzz run "$t" "${dirs[@]}" -- -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -print_final_stats=1
done
wait

passed=0
failed=0
summary=()
for t in "${targets[@]}"; do
  log=$logs/$t.log
  if [[ $(exit_code "$logs" "$t") == 0 ]]; then
    passed=$((passed + 1))
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
    size=$(find "corpus/$t" -type f | wc -l)
    summary+=("ok   $t: ${execs:-?} executions in ${seconds} s, coverage ${cov:-?} edges, corpus $size inputs")
  else
    failed=$((failed + 1))
    summary+=("FAIL $t (log below)")
    tail -60 "$log" | sed 's/^/    /'
  fi
done
case $seeds in
  ok) passed=$((passed + 1)) && summary+=("ok   session seeds: each ends with the counters it is for") ;;
  failed) failed=$((failed + 1)) && summary+=("FAIL session seeds (make_seeds.py --check above)") ;;
esac
printf '%s\n' "${summary[@]}"
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
