#!/usr/bin/env bash
# Set up and run every test: formatting, lints, unit and integration tests,
# the package, the Windows and macOS builds, and the end-to-end suite in a
# virtual desktop. One line per stage, timed.
#
# Dependencies compile as few times as cargo allows: every cargo call below
# selects the whole workspace (selecting a subset changes which features are
# unified and recompiles what depends on them); the desktop scenarios are in
# the same build and skip themselves unless FSN_E2E=1; the .deb packages the
# binaries this build made.
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
stage setup scripts/setup.sh --windows --macos
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export CARGO_TERM_COLOR=never NO_AT_BRIDGE=1
stage format cargo fmt --all -- --check
stage build cargo build --workspace --all-targets --locked
stage clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# Unit and integration tests (the desktop scenarios skip themselves here).
stage unit-and-integration cargo test --workspace --locked
# A debug .deb of the binaries just built, signed for the updater with a key
# made for this run (never one from the repository): the package test
# installs it, the update test serves it as a newer version.
package() {
  local dir=target/update-test-key
  mkdir -p "$dir"
  scripts/tauri signer generate --ci --force -w "$dir/key" -p "" >/dev/null
  TAURI_SIGNING_PRIVATE_KEY="$(cat "$dir/key")" TAURI_SIGNING_PRIVATE_KEY_PASSWORD="" \
    scripts/bundle.sh --debug --prebuilt
}
stage package package
# Windows: cross-built (the Tauri app included), the core's tests and a
# command-line journey under Wine, the installer installed and removed.
stage windows scripts/windows.sh
# macOS: type-checked for both architectures (linking needs Apple's SDK).
stage macos scripts/macos.sh
# The desktop scenarios print a line each; a failure prints the app's log and
# the notification daemon's history. Screenshots land in tests/artifacts/.
e2e() {
  local log; log=$(mktemp)
  local rc=0
  FSN_E2E=1 cargo test --workspace --locked \
    --test agent --test app --test cli --test day --test kill_restart --test notifier_daemon --test package --test relay --test update \
    -- --test-threads=1 --nocapture 2>&1 | tee "$log" || rc=$?
  local passed failed
  passed=$(grep -oE '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
  failed=$(grep -oE '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
  echo "==> end-to-end: ${passed} passed, ${failed} failed"
  rm -f "$log"
  return $rc
}
stage end-to-end e2e
echo "==> all stages passed in $(( $(date +%s) - start ))s"
