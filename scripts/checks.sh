# Sourced by the test stages (scripts/test.sh, scripts/fuzz.sh, scripts/test_c.sh,
# scripts/test_packages.sh):
# `passed`/`failed` counters, `pass NAME`, `fail NAME`, and `check NAME COMMAND...`.
# shellcheck shell=bash
passed=0
failed=0
pass() {
  passed=$((passed + 1))
  echo "ok   $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL $1"
}
# check NAME COMMAND...: one check, its output shown only when it fails.
check() {
  local name=$1
  shift
  local log
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/    /' "$log"
  fi
  rm -f "$log"
}

# For stages that run independent steps side by side:
# in_background DIR NAME COMMAND...: starts COMMAND as a background job (its pid in `$!`), its
# output in DIR/NAME.log and its exit code, once it ends, in DIR/NAME.rc.
in_background() {
  local dir=$1 name=$2
  shift 2
  (
    rc=0
    "$@" >"$dir/$name.log" 2>&1 || rc=$?
    echo "$rc" >"$dir/$name.rc"
  ) &
}
# exit_code DIR NAME: the exit code of that job (after `wait`), or 1 if it left none.
exit_code() {
  cat "$1/$2.rc" 2>/dev/null || echo 1
}
