#!/usr/bin/env bash
# Set up, build and start Fullscript Lab Notifier.
# With no Fullscript credentials configured it starts the demo (a built-in
# simulator with invented patients); otherwise the real app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
echo "==> building (the first build takes a few minutes)"
cargo build --release -p fullscript-notifier -p fsn-cli --features fullscript-notifier/custom-protocol
bin=target/release/fullscript-notifier

configured=$("$bin" status --json 2>/dev/null | grep -c '"configured": true' || true)
if [ "$configured" = "1" ]; then cmd=("$bin" "$@"); else
  echo "==> no Fullscript credentials configured: starting the demo (see README, 'Connect your Fullscript account')"
  cmd=("$bin" demo "$@")
fi

if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  echo "==> no display found: running on a virtual display (xvfb); use a desktop session to see the window"
  exec xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- "${cmd[@]}"
fi
exec "${cmd[@]}"
