#!/usr/bin/env bash
# Idempotent machine setup for building and testing Fullscript Lab Notifier on
# Debian/Ubuntu. Installs only what is missing, so a second run takes seconds.
#
#   scripts/setup.sh            build + test prerequisites
#   scripts/setup.sh --bundle   also tauri-cli (for .deb / AppImage bundles)
set -euo pipefail

want_bundle=0
for arg in "$@"; do
  case "$arg" in
    --bundle) want_bundle=1 ;;
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Tauri 2 build prerequisites, then what the test suite's desktop session needs
# (virtual X server, D-Bus session, notification daemons, Secret Service,
# WebDriver for WebKitGTK).
packages=(
  libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev
  libayatana-appindicator3-dev librsvg2-dev pkg-config
  xvfb xauth dbus-x11 dunst libnotify-bin imagemagick x11-utils x11-apps xdotool
  webkit2gtk-driver fonts-dejavu-core
  python3-dbusmock python3-xlib gnome-keyring libsecret-tools jq procps curl
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  . "$HOME/.cargo/env"
fi

if ! command -v tauri-driver >/dev/null 2>&1; then
  echo "setup: installing tauri-driver (WebDriver bridge for the end-to-end suite)"
  cargo install tauri-driver --locked --quiet
else
  echo "setup: tauri-driver already installed"
fi

# tauri-cli builds the .deb (the test suite installs one); --bundle is kept
# for scripts that only bundle.
if [ "$want_bundle" -eq 1 ] || [ "${FSN_SETUP_NO_TAURI_CLI:-0}" != 1 ]; then
  if ! cargo tauri --version >/dev/null 2>&1; then
    echo "setup: installing tauri-cli (bundler)"
    cargo install tauri-cli --version '^2' --locked --quiet
  else
    echo "setup: tauri-cli already installed"
  fi
fi
echo "setup: done"
