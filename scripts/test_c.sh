#!/usr/bin/env bash
# The C stage of the test command (called by scripts/test.sh; runs on its own too).
#
# Builds libtrunkline three times, all in target/release so that the dependencies are compiled
# once (cargo keeps each feature set's artifacts apart; `test-hooks` touches only the ffi crate,
# so that build recompiles nothing else): first without the offload server
# (--no-default-features), copied to target/ffi-no-server/release, which must have no tokio in it
# and none of the server's functions, while the default library has them (both sizes are
# printed); then with the `test-hooks` feature, which the C tests need to reach the PANIC and
# FAILED results, copied to target/c-tests/lib; then the shipped library (target/release), last,
# so that it is the hook-free one (checked). Then, using nothing but cc, include/trunkline.h and
# the libraries:
#   - the C tests (ffi/tests/c), built with -std=c11 -Wall -Wextra -Werror -pedantic, run
#     (a) plain, (b) under AddressSanitizer + UndefinedBehaviorSanitizer with leak detection,
#     (c) under valgrind (shorter threaded calls: --short), with zero errors and zero bytes
#     definitely lost; the three side by side;
#   - examples/c/twilio_to_wav.c, linked against the shared and the static library, run on
#     examples/c/call.jsonl, its WAV checked byte for byte in the header and in size;
#   - examples/c/twilio_to_wav.c again, against the library without the server, with
#     -DTRUNKLINE_NO_SERVER (which must hide the server's declarations);
#   - the C example in README.md's "C ABI" section, compiled and run.
# Closes with "c tests: N passed, M failed" (N, M count test runs and checks; exit 1 if M > 0).
set -euo pipefail
cd "$(dirname "$0")/.."
stage_start=$SECONDS

out=target/c-tests
hooks_lib=$out/lib
no_server_dir=target/ffi-no-server
CFLAGS=(-std=c11 -Wall -Wextra -Werror -pedantic)
# The expected panic of trunkline_test_panic prints one line, not a backtrace.
export RUST_BACKTRACE=0

echo "== C: libtrunkline without the offload server ($no_server_dir), with test hooks ($hooks_lib), then the shipped one (target/release)"
# With the server's crate built alongside (not linked: the ffi's `server` feature is off), so
# that the engine and its dependencies get the same features as in the other two builds and are
# compiled once for all three.
cargo build --release --locked -p trunkline-ffi -p trunkline-server --no-default-features
mkdir -p "$no_server_dir/release"
cp target/release/libtrunkline.so "$no_server_dir/release/libtrunkline.so"
cargo build --release --locked -p trunkline-ffi --features test-hooks
mkdir -p "$hooks_lib"
cp target/release/libtrunkline.so "$hooks_lib/libtrunkline.so"
cargo build --release --locked -p trunkline-ffi

# shellcheck source=scripts/checks.sh
source scripts/checks.sh

check "shipped library exports no test hooks" \
  bash -c "! nm -D --defined-only target/release/libtrunkline.so | grep -q trunkline_test_"
check "test library exports the test hooks" \
  bash -c "nm -D --defined-only $hooks_lib/libtrunkline.so | grep -q trunkline_test_panic"

echo "== C: the library without the offload server (--no-default-features, $no_server_dir)"
no_server_lib=$no_server_dir/release/libtrunkline.so
# tokio's symbols in the whole symbol table (the dynamic one only ever has trunkline_* exports).
tokio_symbols() { nm "$1" | grep -c tokio || true; }
check "the default library has the server's functions and tokio" bash -c "
  nm -D --defined-only target/release/libtrunkline.so | grep -q ' T trunkline_server_start\$' &&
  test \$(nm target/release/libtrunkline.so | grep -c tokio) -gt 0"
check "the library without the server has no tokio symbol" bash -c "test \$(nm $no_server_lib | grep -c tokio) -eq 0"
check "the library without the server links none of the signature checks (no jsonwebtoken symbol)" \
  bash -c "test \$(nm $no_server_lib | grep -c jsonwebtoken) -eq 0"
check "the library without the server exports no trunkline_server_ function, and the rest" bash -c "
  ! nm -D --defined-only $no_server_lib | grep -q trunkline_server_ &&
  nm -D --defined-only $no_server_lib | grep -q ' T trunkline_session_open\$'"
echo "   libtrunkline.so: $(stat -c %s target/release/libtrunkline.so) bytes with the server" \
  "($(tokio_symbols target/release/libtrunkline.so) tokio symbols)," \
  "$(stat -c %s "$no_server_lib") bytes without ($(tokio_symbols "$no_server_lib"))"

echo "== C: compile the tests"
# test_opus.c encodes its Ogg Opus fixture at run time.
command -v opusenc >/dev/null || fail "opusenc is not installed (scripts/test.sh installs opus-tools)"
srcs=(ffi/tests/c/*.c)
link=(-L"$hooks_lib" -ltrunkline -lpthread -lm -Wl,-rpath,"$PWD/$hooks_lib")
cc "${CFLAGS[@]}" -O1 -g -DTRUNKLINE_TEST_HOOKS -Iinclude "${srcs[@]}" "${link[@]}" -o "$out/trunkline_c_tests"
cc "${CFLAGS[@]}" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -DTRUNKLINE_TEST_HOOKS -Iinclude "${srcs[@]}" "${link[@]}" -o "$out/trunkline_c_tests_asan"

# The three runs of the C test binary go side by side: most of their time is real-time calls,
# not CPU, and they share nothing but the read-only libraries (each has its own log).
# suite_start NAME COMMAND...: starts one run in the background.
declare -A suite_pid suite_t0
suite_start() {
  local name=$1
  shift
  echo "== C tests: $name (started)"
  suite_t0[$name]=$SECONDS
  in_background "$out" "$name" "$@"
  suite_pid[$name]=$!
}
# suite_end NAME: waits for it and adds its counts. A run whose tests all passed but that exited
# non-zero (a sanitizer or valgrind error) counts as one more failure.
suite_end() {
  local name=$1
  local log=$out/$name.log
  wait "${suite_pid[$name]}" || true
  local rc
  rc=$(exit_code "$out" "$name")
  local counts
  counts=$(grep -E '^c tests: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
  local p=0 f=0
  if [[ $counts =~ ^c\ tests:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    p=${BASH_REMATCH[1]}
    f=${BASH_REMATCH[2]}
  fi
  if ((rc != 0 && f == 0)); then f=1; fi
  passed=$((passed + p))
  failed=$((failed + f))
  echo "== C tests: $name"
  if ((rc != 0 || f != 0)); then
    sed 's/^/    /' "$log"
  else
    grep -E '^(FAIL|==[0-9]+== (ERROR SUMMARY|All heap blocks were freed| +(definitely|indirectly|possibly) lost))' "$log" ||
      true
  fi
  echo "   $name: $p passed, $f failed (done $((SECONDS - suite_t0[$name])) s after its start; log: $log)"
}

suite_start plain "$out/trunkline_c_tests"
suite_start asan-ubsan env ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/trunkline_c_tests_asan"
if command -v valgrind >/dev/null; then
  suite_start valgrind valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite "$out/trunkline_c_tests" --short
fi
suite_end plain
suite_end asan-ubsan
if command -v valgrind >/dev/null; then
  suite_end valgrind
else
  fail "valgrind is not installed (scripts/test.sh installs it)"
fi

echo "== C: examples/c/twilio_to_wav.c and the README's C example"
example=examples/c/twilio_to_wav.c
check "twilio_to_wav builds against the shared library" \
  cc "${CFLAGS[@]}" -Iinclude "$example" -Ltarget/release -ltrunkline -Wl,-rpath,"$PWD/target/release" \
  -o "$out/twilio_to_wav"
check "twilio_to_wav builds against the static library" \
  cc "${CFLAGS[@]}" -Iinclude "$example" target/release/libtrunkline.a -lopus -lgcc_s -lutil -lrt -lpthread -lm -ldl \
  -o "$out/twilio_to_wav_static"

# The WAV of the committed call: 4 s of caller audio at 16 kHz, 16-bit mono.
data_bytes=$((4 * 16000 * 2))
le16() { printf '\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)); }
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
# shellcheck disable=SC2059 # the format is the header, built from escapes
printf "RIFF$(le32 $((36 + data_bytes)))WAVEfmt $(le32 16)$(le16 1)$(le16 1)$(le32 16000)$(le32 32000)$(le16 2)$(le16 16)data$(le32 $data_bytes)" \
  >"$out/expected_wav_header.bin"
check_example() {
  local bin=$1
  # (Run inside `check`, i.e. in an `if`: set -e does not apply, so every step returns on failure.)
  rm -f "$out/call.wav"
  "$bin" examples/c/call.jsonl "$out/call.wav" >"$out/call.txt" || return 1
  cat "$out/call.txt"
  local size
  size=$(stat -c %s "$out/call.wav") || return 1
  if ((size != 44 + data_bytes)); then
    echo "WAV size $size, want $((44 + data_bytes))"
    return 1
  fi
  cmp <(head -c 44 "$out/call.wav") "$out/expected_wav_header.bin" || return 1
  grep -q '^started  *call CA4c5f6b7a8e9d0c1b2a3f4e5d6c7b8a9f (mulaw, 8000 Hz, 1 channel)$' "$out/call.txt" || return 1
  grep -q '^speech started  *at [0-9]* ms$' "$out/call.txt" || return 1
  grep -q "^dtmf  *'5' at 4000 ms$" "$out/call.txt" || return 1
  grep -q '^stopped$' "$out/call.txt" || return 1
  grep -q "^wrote $out/call.wav: 64000 samples at 16000 Hz" "$out/call.txt"
}
check "twilio_to_wav (shared) writes the call's WAV and prints its events" check_example "$out/twilio_to_wav"
check "twilio_to_wav (static) writes the call's WAV and prints its events" check_example "$out/twilio_to_wav_static"
check "twilio_to_wav builds against the library without the server (-DTRUNKLINE_NO_SERVER)" \
  cc "${CFLAGS[@]}" -DTRUNKLINE_NO_SERVER -Iinclude "$example" -L"$no_server_dir/release" -ltrunkline \
  -Wl,-rpath,"$PWD/$no_server_dir/release" -o "$out/twilio_to_wav_no_server"
check "twilio_to_wav (without the server) writes the call's WAV and prints its events" \
  check_example "$out/twilio_to_wav_no_server"
printf '#include "trunkline.h"\nint main(void) { return (int)sizeof(trunkline_server_config); }\n' >"$out/uses_server.c"
check "the header declares the server by default, and not with -DTRUNKLINE_NO_SERVER" bash -c "
  cc ${CFLAGS[*]} -Iinclude -c $out/uses_server.c -o $out/uses_server.o &&
  ! cc ${CFLAGS[*]} -DTRUNKLINE_NO_SERVER -Iinclude -c $out/uses_server.c -o $out/uses_server.o 2>/dev/null"
if command -v python3 >/dev/null; then
  check "examples/c/call.jsonl is what scripts/make_call_jsonl.py makes" \
    bash -c "python3 scripts/make_call_jsonl.py $out/call.jsonl && cmp $out/call.jsonl examples/c/call.jsonl"
else
  echo "skip examples/c/call.jsonl regeneration check (no python3)"
fi

# The first ```c block of README.md's "C ABI" section.
awk '/^## /{in_section = ($0 == "## C ABI")} in_section && /^```c$/{code = 1; next} code && /^```$/{exit} code' \
  README.md >"$out/readme_example.c"
check "README's C example compiles and runs" bash -c "
  test -s $out/readme_example.c &&
  cc ${CFLAGS[*]} -Iinclude $out/readme_example.c -Ltarget/release -ltrunkline -Wl,-rpath,$PWD/target/release \
    -o $out/readme_example &&
  $out/readme_example | grep -q 'event 1'"

echo "== C stage: $((SECONDS - stage_start)) s"
echo "c tests: $passed passed, $failed failed"
((failed == 0))
