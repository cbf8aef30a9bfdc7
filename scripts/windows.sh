#!/usr/bin/env bash
# Windows (x86_64-pc-windows-gnu) on Linux: the whole workspace cross-built
# with MinGW-w64 (the Tauri app included), the core's tests and a command-line
# journey run under Wine, and the installer and a zip built. One timed line
# per step. Run by scripts/test.sh; on its own:
#   scripts/windows.sh            all of it
#   scripts/windows.sh --build    only the build and the packages
set -euo pipefail
cd "$(dirname "$0")/.."
only_build=0
[ "${1:-}" = "--build" ] && only_build=1
scripts/setup.sh --windows
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

target=x86_64-pc-windows-gnu
out="target/$target/debug"
wine=/usr/lib/wine/wine64
step() {
  local name=$1; shift
  local t0; t0=$(date +%s)
  if "$@"; then echo "windows: $name ok ($(( $(date +%s) - t0 ))s)"
  else local rc=$?; echo "windows: $name FAILED ($(( $(date +%s) - t0 ))s)"; exit $rc; fi
}
# Warnings in this project's code are errors for Windows too (dependencies' are capped).
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings"

# One build for everything below: every binary, and the test harnesses of
# every package but the Linux desktop suite and the relay (a Linux server)
# (one feature set, compiled once).
step build cargo build --workspace --exclude fsn-e2e --exclude fsn-relay --target "$target" --all-targets --locked

# Wine 8 lacks bcryptprimitives.dll (ProcessPrng); a one-function stand-in
# beside each .exe lets it start. Tests only: never packaged.
shim() {
  x86_64-w64-mingw32-gcc -shared -O2 -o "$out/bcryptprimitives.dll" \
    scripts/windows/bcryptprimitives.c scripts/windows/bcryptprimitives.def -ladvapi32
  cp "$out/bcryptprimitives.dll" "$out/deps/"
  x86_64-w64-mingw32-gcc -O2 -o "$out/browser-stub.exe" scripts/windows/browser-stub.c
}
step shim shim

package() {
  local version dist
  version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
  dist="target/windows"
  rm -rf "$dist" && mkdir -p "$dist/Fullscript Lab Notifier"
  cp "$out/fullscript-notifier.exe" "$out/fullscript-notifier-headless.exe" \
     "$out/WebView2Loader.dll" "$dist/Fullscript Lab Notifier/"
  cp scripts/windows/README-windows.txt "$dist/Fullscript Lab Notifier/README.txt"
  (cd "$dist" && zip -qr "Fullscript-Lab-Notifier_${version}_x64.zip" "Fullscript Lab Notifier")
  makensis -V2 -DVERSION="$version" -DSRC="$PWD/$dist/Fullscript Lab Notifier" \
    -DICON="$PWD/icons/icon.ico" -DOUTFILE="$PWD/$dist/Fullscript-Lab-Notifier_${version}_x64-setup.exe" \
    scripts/windows/installer.nsi
  ls -l "$dist"/*.zip "$dist"/*.exe
}
step package package
[ "$only_build" -eq 1 ] && exit 0

# The installer under Wine: a silent per-user install, the installed app
# answers, a silent uninstall leaves nothing behind.
installer() {
  local prefix; prefix=$(mktemp -d)
  local setup; setup=$(ls target/windows/*-setup.exe)
  WINEPREFIX="$prefix" WINEDEBUG=-all "$wine" "$setup" /S
  local dir; dir=$(find "$prefix/drive_c/users" -maxdepth 7 -type d -name "Fullscript Lab Notifier" -path "*Programs*" | head -1)
  [ -n "$dir" ] || { echo "not installed"; return 1; }
  cp "$out/bcryptprimitives.dll" "$dir/"
  WINEPREFIX="$prefix" WINEDEBUG=-all "$wine" "$dir/fullscript-notifier.exe" --version | grep -q "fullscript-notifier "
  find "$prefix/drive_c/users" -name "Fullscript Lab Notifier.lnk" | grep -q .
  rm "$dir/bcryptprimitives.dll"
  WINEPREFIX="$prefix" WINEDEBUG=-all "$wine" "$dir/uninstall.exe" /S "_?=$(printf '%s' "$dir" | sed 's#.*/drive_c#C:#; s#/#\\#g')"
  # Wine may return before the uninstaller has finished: give it a moment.
  for _ in $(seq 1 60); do [ -e "$dir/fullscript-notifier.exe" ] || break; sleep 0.5; done
  [ ! -e "$dir/fullscript-notifier.exe" ] || { echo "not uninstalled"; return 1; }
  ! find "$prefix/drive_c/users" -name "Fullscript Lab Notifier.lnk" | grep -q .
  rm -rf "$prefix"
}
step installer-under-wine installer

# The core's and the agent's unit tests and the simulator-backed integration tests, as
# Windows programs under Wine (the simulator inside each; loopback only).
# The keychain tests need a Linux Secret Service and stay on Linux.
core_tests() {
  local prefix; prefix=$(mktemp -d)
  local list; list=$(cargo test --workspace --exclude fsn-e2e --exclude fsn-relay --target "$target" --locked --no-run \
    --message-format=json 2>/dev/null | jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and (.package_id | test("crates/(core|agent)"))) | "\(.target.name) \(.executable)"')
  local failed=0 name exe
  while read -r name exe; do
    # (keychains need a Linux Secret Service; the controller test a notification service)
    case "$name" in keychain|keychain_refusing|keychain_absent|log_redaction|controller) continue ;; esac
    if WINEPREFIX="$prefix" WINEDEBUG=-all "$wine" "$exe" -q >"$prefix/$name.log" 2>&1; then
      echo "windows: $name: $(grep -E '^test result' "$prefix/$name.log" | tail -1)"
    else
      echo "windows: $name FAILED under Wine:"; tail -40 "$prefix/$name.log"; failed=1
    fi
  done <<<"$list"
  rm -rf "$prefix"
  return $failed
}
step core-tests-under-wine core_tests

# The command line's journey under Wine against the simulator on Linux.
step cli-journey-under-wine env FSN_WINDOWS_BIN_DIR="$PWD/$out" \
  cargo test --workspace --locked --test windows -- --nocapture
