# Sourced by the scripts that drive a running system (tests/api.sh, tests/browser.sh):
# `start_serve LOG` builds nothing new (the test command's `--workspace` build has the
# binary; `cargo build -p cgr-request` would resolve other features and rebuild half the
# graph), starts `cgr-request serve` on a free loopback port with a fresh data folder,
# waits until it answers, and stops it on exit. It sets `bin`, `IMAGE_REQUEST_URL` and
# `IMAGE_REQUEST_DATA_DIR`, and `CGR_REQUEST_URL` (so that `"$bin" add …` talks to it).
start_serve() {
  local log="$1"
  cargo test --quiet --workspace --locked --no-run --test cli 2> /dev/null
  bin="${CARGO_TARGET_DIR:-target}/debug/cgr-request"
  local data port
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export IMAGE_REQUEST_URL="http://127.0.0.1:$port" IMAGE_REQUEST_DATA_DIR="$data"
  export CGR_REQUEST_URL="$IMAGE_REQUEST_URL"
  mkdir -p target
  "$bin" serve --listen "127.0.0.1:$port" > "$log" 2>&1 &
  serve_pid=$!
  # shellcheck disable=SC2064 # expand now: these are this run's
  trap "kill $serve_pid 2>/dev/null || true; rm -rf '$data'" EXIT
  for _ in $(seq 1 100); do
    curl -fs "$IMAGE_REQUEST_URL/openapi.json" > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "serve did not start; see $log"
  return 1
}
