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
stage end-to-end cargo test -p fsn-e2e --locked -- --test-threads=1
echo "==> all stages passed in $(( $(date +%s) - start ))s"
