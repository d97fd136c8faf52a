#!/usr/bin/env bash
# Sourced by run.sh: makes sure the local AWS emulator (moto's server), the AWS CLI,
# cfn-lint and SAM's translator are installed in the project's venv at the versions
# tests/requirements.txt pins, starts moto on a free loopback port, exports MOTO_URL for
# the tests, and stops it when the calling shell exits.

source tests/venv.sh
venv="$PWD/.venv"
ensure_venv "$venv" tests/requirements.txt
export PATH="$venv/bin:$PATH"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p target
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:$port/moto-api/" > /dev/null 2>&1; then break; fi
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/moto-api/" > /dev/null || { echo "moto did not start; see target/moto.log"; exit 1; }
export MOTO_URL="http://127.0.0.1:$port"
step "moto listening at $MOTO_URL"
