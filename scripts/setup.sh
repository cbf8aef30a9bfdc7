#!/usr/bin/env bash
# Idempotent machine setup for building and testing Fullscript Lab Notifier on
# Debian/Ubuntu. Installs only what is missing, so a second run takes seconds.
#
#   scripts/setup.sh            build + test prerequisites, the Tauri CLI (bundler)
#   scripts/setup.sh --windows  also the Windows cross toolchain (MinGW-w64, Wine, the Rust target)
#   scripts/setup.sh --macos    also the macOS type-check toolchain (Rust targets, Zig from PyPI)
#
# The Tauri CLI is the official prebuilt one from the npm registry, pinned to
# the version of the `tauri` crate in Cargo.lock and installed into
# `.tools/` (git-ignored); `scripts/tauri` runs it. Compiling it with
# `cargo install tauri-cli` took about 13 minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."

want_windows=0
want_macos=0
for arg in "$@"; do
  case "$arg" in
    --windows) want_windows=1 ;;
    --macos) want_macos=1 ;;
    --bundle) ;; # kept for older scripts: the bundler is always installed now
    *) echo "setup: unknown argument $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Tauri 2 build prerequisites, then what the test suite's desktop session needs
# (virtual X server, D-Bus session, notification daemons, Secret Service,
# WebDriver for WebKitGTK), the NATS server (JetStream) the relay tests start,
# then Node for the Tauri CLI.
packages=(
  libwebkit2gtk-4.1-dev build-essential curl wget file libxdo-dev libssl-dev
  libayatana-appindicator3-dev librsvg2-dev pkg-config
  xvfb xauth dbus-x11 dunst libnotify-bin imagemagick x11-utils x11-apps xdotool
  webkit2gtk-driver fonts-dejavu-core
  python3-dbusmock python3-xlib gnome-keyring libsecret-tools jq procps curl
  nats-server
)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
if [ "$want_windows" -eq 1 ]; then
  packages+=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine64 nsis zip)
fi

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

# The Tauri CLI (bundler): the npm package of the same version as the crate.
tauri_version=$(awk '/^name = "tauri"$/ {getline; gsub(/[^0-9.]/, "", $0); print; exit}' Cargo.lock)
if [ -z "$tauri_version" ]; then
  echo "setup: cannot read the tauri version from Cargo.lock" >&2
  exit 1
fi
have=$(scripts/tauri --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$tauri_version" ]; then
  echo "setup: installing the Tauri CLI $tauri_version from the npm registry"
  mkdir -p .tools
  (cd .tools && npm install --silent --no-audit --no-fund --no-save \
    "@tauri-apps/cli@$tauri_version" >/dev/null)
  scripts/tauri --version >/dev/null
else
  echo "setup: Tauri CLI $tauri_version already installed"
fi

if [ "$want_windows" -eq 1 ]; then
  if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    echo "setup: adding the Rust target x86_64-pc-windows-gnu"
    rustup target add x86_64-pc-windows-gnu >/dev/null
  fi
fi
if [ "$want_macos" -eq 1 ]; then
  for t in aarch64-apple-darwin x86_64-apple-darwin; do
    if ! rustup target list --installed | grep -qx "$t"; then
      echo "setup: adding the Rust target $t"
      rustup target add "$t" >/dev/null
    fi
  done
  if ! python3 -c 'import ziglang' >/dev/null 2>&1; then
    echo "setup: installing Zig (C compiler with macOS headers) from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check ziglang
  fi
fi
echo "setup: done"
