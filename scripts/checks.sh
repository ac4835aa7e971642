# Sourced by the test stages that count their checks (scripts/test_c.sh, scripts/test_packages.sh):
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
