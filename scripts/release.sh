#!/usr/bin/env bash
# Build a signed release and the update feed for it.
#   TAURI_SIGNING_PRIVATE_KEY=... [TAURI_SIGNING_PRIVATE_KEY_PASSWORD=...] \
#     scripts/release.sh BASE_URL [NOTES]
# writes target/release/update/: the .deb, its .sig and latest.json, whose
# download links start with BASE_URL (where these files will be published,
# e.g. https://example.invalid/fullscript-lab-notifier/releases/download/v0.2.0).
# Publish latest.json at the app's `update_url`. The private key is the one
# whose public key is `plugins.updater.pubkey` in src-tauri/tauri.conf.json;
# it is never kept in the repository.
#
# Before anything is built it refuses a release that could never be
# installed: the committed placeholder public key, a signing key that is not
# the one the app trusts, or the placeholder update address. `--check` runs
# only these checks. (FSN_RELEASE_TAURI_CONF and FSN_RELEASE_CORE_CONFIG
# point them at other files, for the tests.)
set -euo pipefail
cd "$(dirname "$0")/.."
check_only=0
if [ "${1:-}" = "--check" ]; then check_only=1; shift; fi
if [ "$check_only" -eq 0 ]; then
  base=${1:?usage: scripts/release.sh [--check] BASE_URL [NOTES]}
fi
notes=${2:-}
if [ -z "${TAURI_SIGNING_PRIVATE_KEY:-}" ]; then
  echo "release: TAURI_SIGNING_PRIVATE_KEY is not set (the updater signing key)" >&2
  exit 2
fi
tauri_conf=${FSN_RELEASE_TAURI_CONF:-src-tauri/tauri.conf.json}
core_config=${FSN_RELEASE_CORE_CONFIG:-crates/core/src/config.rs}
# The placeholder committed with the project: its private key was thrown away.
placeholder="dW50cnVzdGVkIGNvbW1lbnQ6IG1pbmlzaWduIHB1YmxpYyBrZXk6IEE2OUQ3Q0UzRjlCNzU0MzAKUldRd1ZMZjU0M3lkcG1ocXIreG5aVkpxUFpUbkVzZ3BxV0FlY3hicU1FU2hCNy84N1RNRVZ0dzEK"
pubkey=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["plugins"]["updater"]["pubkey"])' "$tauri_conf")
if [ "$pubkey" = "$placeholder" ]; then
  echo "release: plugins.updater.pubkey in $tauri_conf is the committed placeholder; put the release key's public key there (README: Updates)" >&2
  exit 3
fi
if grep -q 'example\.invalid' <(grep -A2 'pub const DEFAULT_UPDATE_URL' "$core_config"); then
  echo "release: DEFAULT_UPDATE_URL in $core_config is still the example.invalid placeholder; set the real publishing address" >&2
  exit 3
fi
# The signing key must be the one whose public key the app trusts: sign a
# probe and compare the key id in the signature with the public key's.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo probe > "$probe/probe"
# (The key and its password come from the environment: never on a command
# line, where other local users could read them.)
export TAURI_SIGNING_PRIVATE_KEY TAURI_SIGNING_PRIVATE_KEY_PASSWORD="${TAURI_SIGNING_PRIVATE_KEY_PASSWORD:-}"
if ! scripts/tauri signer sign "$probe/probe" >/dev/null 2>&1; then
  echo "release: the signing key (TAURI_SIGNING_PRIVATE_KEY) could not sign: wrong password or not a key" >&2
  exit 3
fi
if ! python3 - "$pubkey" "$probe/probe.sig" <<'PY'
import base64, sys
def key_id(text, length):
    line = [l for l in base64.b64decode(text).decode().splitlines() if l and not l.startswith(("untrusted comment:", "trusted comment:"))][0]
    raw = base64.b64decode(line)
    assert len(raw) == length, len(raw)
    return raw[2:10]
pub = key_id(sys.argv[1], 42)
sig = key_id(open(sys.argv[2]).read().strip(), 74)
sys.exit(0 if pub == sig else 1)
PY
then
  echo "release: the signing key does not match plugins.updater.pubkey in $tauri_conf: the app would refuse every update it signs" >&2
  exit 3
fi
echo "release: the public key, the signing key and the update address are release-ready"
if [ "$check_only" -eq 1 ]; then exit 0; fi
scripts/bundle.sh
version=$(awk -F'"' '/^version = / {print $2; exit}' Cargo.toml)
out=target/release/update
rm -rf "$out" && mkdir -p "$out"
deb=$(ls target/release/bundle/deb/*_"$version"_amd64.deb)
name="fullscript-notifier_${version}_amd64.deb"
cp "$deb" "$out/$name"
cp "$deb.sig" "$out/$name.sig"
python3 - "$out" "$version" "$base/$name" "$notes" <<'PY'
import json, sys, datetime
out, version, url, notes = sys.argv[1:]
sig = open(f"{out}/{url.rsplit('/', 1)[1]}.sig").read()
feed = {
    "version": version,
    "notes": notes,
    "pub_date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "platforms": {
        "linux-x86_64-deb": {"signature": sig, "url": url},
    },
}
json.dump(feed, open(f"{out}/latest.json", "w"), indent=2)
PY
ls -l "$out"
