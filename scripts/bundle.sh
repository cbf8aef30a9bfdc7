#!/usr/bin/env bash
# Build the installable bundles with the Tauri bundler.
#   scripts/bundle.sh              release .deb (target/release/bundle/deb/)
#   scripts/bundle.sh --appimage   also the AppImage (the bundler downloads
#                                  linuxdeploy from GitHub: needs that access)
#   scripts/bundle.sh --debug      a debug .deb, quick (what the tests install)
# macOS .dmg and Windows .msi are configured in src-tauri/tauri.conf.json and
# build with `cargo tauri build` on those systems.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release; flag=--release; tauri_flag=; bundles=deb
for a in "$@"; do
  case "$a" in
    --debug) profile=debug; flag=; tauri_flag=--debug ;;
    --appimage) bundles=deb,appimage ;;
    *) echo "bundle: unknown argument $a" >&2; exit 2 ;;
  esac
done
scripts/setup.sh --bundle
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
# The headless build goes into the package beside the app (see tauri.conf.json).
cargo build $flag -p fsn-cli --locked
mkdir -p target/bundle-extra
cp "target/$profile/fullscript-notifier-headless" target/bundle-extra/
(cd src-tauri && cargo tauri build $tauri_flag --bundles "$bundles" --ci)
ls -l "target/$profile/bundle/"*/* 2>/dev/null || true
