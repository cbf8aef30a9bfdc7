#!/usr/bin/env bash
# Benchmark of the headless watcher: 10,000 orders, 1,000 cycles run back to
# back against the simulator (a separate process, so its memory is not
# counted). Prints resident memory every 100 cycles and the requests per cycle.
# Targets: median requests per idle cycle <= 1; RSS under 30 MB and flat.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
orders=${ORDERS:-10000}
cycles=${CYCLES:-1000}
cargo build --release -p fullscript-notifier -p fsn-cli --features fullscript-notifier/custom-protocol --quiet
bin=$PWD/target/release/fullscript-notifier
work=$(mktemp -d)
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cb=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$bin" simulate --port "$port" --scenario empty --auto-approve --rate-limit 100000 \
  --redirect-uri "http://127.0.0.1:$cb/callback" > "$work/sim.log" 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
curl -s -X POST -H 'content-type: application/json' -d "{\"count\": $orders, \"state\": \"processing\"}" \
  "http://127.0.0.1:$port/_sim/orders/bulk" > /dev/null
cat > "$work/config.toml" <<CONF
environment = "custom"
api_base = "http://127.0.0.1:$port/api"
authorize_url = "http://127.0.0.1:$port/api/oauth/authorize"
token_url = "http://127.0.0.1:$port/api/oauth/token"
revoke_url = "http://127.0.0.1:$port/api/oauth/revoke"
results_url = "http://127.0.0.1:$port/labs/orders/{id}"
client_id = "fsn-demo-client"
client_secret = "fsn-demo-secret"
redirect_uri = "http://127.0.0.1:$cb/callback"
token_storage = "file"
sweep_every = 100
request_budget_per_5min = 4000
CONF
printf '#!/bin/sh\ncurl -s -L -o /dev/null "$1"\n' > "$work/browser.sh"; chmod +x "$work/browser.sh"
export FSN_CONFIG=$work/config.toml FSN_DATA_DIR=$work/data BROWSER=$work/browser.sh
"$bin" login > /dev/null
echo "watcher benchmark: $orders orders, $cycles cycles back to back (a full sweep every 100th)"
"$bin" watch --cycles "$cycles"
