#!/usr/bin/env bash
# Try the relay on this computer: NATS (JetStream, a temporary store), the
# relay, and the Fullscript simulator delivering signed webhooks to it, wired
# together. Prints how to watch a clinic's events and how to cause one.
# Installs nats-server with apt when it is missing. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
if ! command -v nats-server >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "==> installing nats-server"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nats-server >/dev/null
fi
echo "==> building the relay and the headless app"
cargo build -q -p fsn-relay -p fsn-cli
bin=target/debug

work=$(mktemp -d -t fsn-relay-dev.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

nats_port=$(free_port); relay_port=$(free_port); sim_port=$(free_port)
secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
challenge=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')

nats-server -js -a 127.0.0.1 -p "$nats_port" -sd "$work/nats" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$nats_port"

# (The secret goes by the environment, not the command line other users can read.)
FSN_SIM_WEBHOOK_SECRET="$secret" "$bin/fullscript-notifier-headless" simulate --port "$sim_port" \
  --scenario demo --auto-approve --webhook-url "http://127.0.0.1:$relay_port/webhooks/fullscript" \
  >"$work/simulator.log" 2>&1 & pids+=($!)
wait_port "$sim_port"

FSN_RELAY_LISTEN="127.0.0.1:$relay_port" FSN_RELAY_NATS_URL="nats://127.0.0.1:$nats_port" \
FSN_RELAY_ENVIRONMENT=custom FSN_RELAY_API_BASE="http://127.0.0.1:$sim_port/api" \
FSN_RELAY_TOKEN_URL="http://127.0.0.1:$sim_port/api/oauth/token" \
FSN_RELAY_REVOKE_URL="http://127.0.0.1:$sim_port/api/oauth/revoke" \
FSN_RELAY_CLIENT_ID=fsn-demo-client FSN_RELAY_CLIENT_SECRET=fsn-demo-secret \
FSN_RELAY_WEBHOOK_SECRET="$secret" FSN_RELAY_WEBHOOK_CHALLENGE="$challenge" \
  "$bin/fullscript-notifier-relay" >"$work/relay.log" 2>&1 & pids+=($!)
wait_port "$relay_port"

# The app as a clinic configures it: the client id and the relay, no secret.
cat > "$work/app.toml" <<CONF
environment = "custom"
api_base = "http://127.0.0.1:$sim_port/api"
authorize_url = "http://127.0.0.1:$sim_port/api/oauth/authorize"
results_url = "http://127.0.0.1:$sim_port/labs/orders/{id}"
token_url = "http://127.0.0.1:$sim_port/api/oauth/token"
revoke_url = "http://127.0.0.1:$sim_port/api/oauth/revoke"
client_id = "fsn-demo-client"
relay_url = "http://127.0.0.1:$relay_port"
token_storage = "file"
CONF

token=$(curl -s -X POST "http://127.0.0.1:$sim_port/_sim/tokens/issue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
cat <<INFO
==> running (logs in $work)
  NATS        nats://127.0.0.1:$nats_port (JetStream)
  relay       http://127.0.0.1:$relay_port   (/healthz /readyz /metrics)
  simulator   http://127.0.0.1:$sim_port     (demo scenario: results change every few seconds)

Watch the clinic's events as a desktop would (Server-Sent Events):
  curl -N -H "Authorization: Bearer $token" http://127.0.0.1:$relay_port/v1/events

The relay's counters:
  curl -s http://127.0.0.1:$relay_port/metrics | grep ^fsn_relay

The app through the relay (token calls and push; its config: $work/app.toml):
  export FSN_CONFIG=$work/app.toml FSN_DATA_DIR=$work/app-data
  $bin/fullscript-notifier-headless login     # signs in (the simulator approves at once)
  $bin/fullscript-notifier-headless watch     # watches; results arrive as pushes
  $bin/fullscript-notifier-headless status    # "Push: connected (Live)"
Ctrl-C stops everything.
INFO
wait
