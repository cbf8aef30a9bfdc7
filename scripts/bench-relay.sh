#!/usr/bin/env bash
# Benchmark of the relay (figures printed, nothing asserted; the README's
# "Relay" table comes from here):
#  1. load: DESKTOPS (2,000) connected SSE desktops, RATE (200) signed
#     webhooks per second for SECS (60) seconds against the relay's release
#     binary and a real nats-server: webhook-to-desktop latency p50/p99, the
#     relay's and NATS's RSS and CPU, events lost (must be 0);
#  2. requests per practitioner per hour for a clinic of 1,000 lab orders
#     over a simulated day, polling (today's defaults) vs with the relay,
#     counted by the simulator, and how many practitioners one registration
#     serves under Fullscript's 5,000 requests per 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
command -v nats-server >/dev/null || scripts/setup.sh
cargo build --release --quiet -p fsn-relay --bin fullscript-notifier-relay --example load
cargo build --release --quiet -p fsn-core --example requests_per_day
# 2,000 streams at each end need more descriptors than the usual 1,024.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "==> relay load: ${DESKTOPS:-2000} desktops, ${RATE:-200} webhooks/s for ${SECS:-60} s ($(nproc) cores)"
FSN_RELAY_BIN=$PWD/target/release/fullscript-notifier-relay target/release/examples/load
echo "==> requests per practitioner (a simulated day; takes a few minutes)"
target/release/examples/requests_per_day
