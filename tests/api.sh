#!/usr/bin/env bash
# The HTTP API against its OpenAPI document (infra/openapi.json): starts `cgr-request serve`
# on a free loopback port with a fresh data folder, and runs Schemathesis (tests/api/) with
# every call signed as a client or Slack signs it.
#   tests/api.sh          25 examples per operation (what the test command runs)
#   tests/api.sh 500      a deeper run (tests/bench.sh schemathesis)
# Schemathesis and pytest live in their own venv (.tools/api), at the versions
# tests/requirements-api.txt pins.
set -euo pipefail
cd "$(dirname "$0")/.."
examples="${1:-25}"

source tests/venv.sh
venv=.tools/api
ensure_venv "$venv" tests/requirements-api.txt

# The binary as the test command builds it (`--workspace`, test features): built there
# already, so nothing to rebuild; `cargo build -p cgr-request` would resolve other features
# and rebuild half the graph.
cargo test --quiet --workspace --locked --no-run --test cli 2> /dev/null
bin="${CARGO_TARGET_DIR:-target}/debug/cgr-request"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export IMAGE_REQUEST_URL="http://127.0.0.1:$port" IMAGE_REQUEST_DATA_DIR="$data"
export SLACK_SIGNING_SECRET
SLACK_SIGNING_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
mkdir -p target
"$bin" serve --listen "127.0.0.1:$port" > target/api-serve.log 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fs "$IMAGE_REQUEST_URL/openapi.json" > /dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "$IMAGE_REQUEST_URL/openapi.json" > /dev/null || { echo "serve did not start; see target/api-serve.log"; exit 1; }
SCHEMATHESIS_EXAMPLES="$examples" "$venv/bin/pytest" -q -p no:cacheprovider tests/api
