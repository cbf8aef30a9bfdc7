#!/usr/bin/env bash
# Set up and run every test: formatting, lints, unit and integration tests,
# and the end-to-end suite in a virtual desktop. One line per stage, timed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
stage() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  echo "==> [$name] started"
  if "$@"; then echo "==> [$name] ok ($(( $(date +%s) - t0 ))s)"
  else local rc=$?; echo "==> [$name] FAILED ($(( $(date +%s) - t0 ))s)"; exit $rc; fi
}
stage setup scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TERM_COLOR=never NO_AT_BRIDGE=1
stage format cargo fmt --all -- --check
stage build cargo build --workspace --all-targets --locked
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# Unit and integration tests (the e2e crate's desktop scenarios run below).
stage unit-and-integration cargo test --workspace --locked --exclude fsn-e2e
# A debug .deb (quick), installed into a scratch root by the package test below.
stage package scripts/bundle.sh --debug
# The desktop scenarios print a line each; a failure prints the app's log and
# the notification daemon's history. Screenshots land in tests/artifacts/.
e2e() {
  local log; log=$(mktemp)
  local rc=0
  cargo test -p fsn-e2e --locked -- --test-threads=1 --nocapture 2>&1 | tee "$log" || rc=$?
  local passed failed
  passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
  failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
  echo "==> end-to-end: ${passed} passed, ${failed} failed"
  rm -f "$log"
  return $rc
}
stage end-to-end e2e
echo "==> all stages passed in $(( $(date +%s) - start ))s"
