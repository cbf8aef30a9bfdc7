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
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/release.sh BASE_URL [NOTES]}
notes=${2:-}
if [ -z "${TAURI_SIGNING_PRIVATE_KEY:-}" ]; then
  echo "release: TAURI_SIGNING_PRIVATE_KEY is not set (the updater signing key)" >&2
  exit 2
fi
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
