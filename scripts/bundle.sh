#!/usr/bin/env bash
# Build the installable bundles: cargo builds the binaries, the Tauri CLI's
# `bundle` packages them (so a bundle never compiles anything twice).
#   scripts/bundle.sh              release .deb (target/release/bundle/deb/)
#   scripts/bundle.sh --appimage   also the AppImage (the bundler downloads
#                                  linuxdeploy from GitHub: needs that access)
#   scripts/bundle.sh --debug      a debug .deb (what the package test installs)
#   scripts/bundle.sh --prebuilt   package the binaries already in target/
#                                  (the test script's workspace build) as they are
# macOS .dmg and Windows installers are configured in src-tauri/tauri.conf.json;
# the Windows NSIS installer is built here by scripts/windows.sh.
#
# Update signatures: with TAURI_SIGNING_PRIVATE_KEY (and
# TAURI_SIGNING_PRIVATE_KEY_PASSWORD) set, each package gets its `.sig` for
# the updater (scripts/release.sh); without a key, packages are built
# unsigned (fine for installing by hand).
#
# A package for one clinic, its Fullscript registration baked in (the first
# screen is then one button; a defaults file on the computer still wins):
#   FSN_BUILD_CLIENT_ID=... FSN_BUILD_ENVIRONMENT=us-production scripts/bundle.sh
# (FSN_BUILD_CLIENT_SECRET too, only if Fullscript approved shipping the
# secret inside the app). Cargo rebuilds whatever reads them when they change.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release; flag=--release; tauri_flag=; bundles=deb; features=--features=fullscript-notifier/custom-protocol
prebuilt=0
for a in "$@"; do
  case "$a" in
    --debug) profile=debug; flag=; tauri_flag=--debug; features= ;;
    --prebuilt) prebuilt=1 ;;
    --appimage) bundles=deb,appimage ;;
    *) echo "bundle: unknown argument $a" >&2; exit 2 ;;
  esac
done
scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if [ "$prebuilt" -eq 0 ]; then
  # shellcheck disable=SC2086
  cargo build $flag -p fullscript-notifier -p fsn-cli $features --locked
fi
# The headless build goes into the package beside the app (see tauri.conf.json).
mkdir -p target/bundle-extra
cp "target/$profile/fullscript-notifier-headless" target/bundle-extra/
config=()
if [ -z "${TAURI_SIGNING_PRIVATE_KEY:-}" ]; then
  config=(--config '{"bundle":{"createUpdaterArtifacts":false}}')
fi
(cd src-tauri && ../scripts/tauri bundle $tauri_flag --bundles "$bundles" --ci "${config[@]}")
ls -l "target/$profile/bundle/"*/* 2>/dev/null || true
