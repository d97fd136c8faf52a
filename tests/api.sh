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

export SLACK_SIGNING_SECRET
SLACK_SIGNING_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
source tests/serve.sh
start_serve target/api-serve.log
SCHEMATHESIS_EXAMPLES="$examples" "$venv/bin/pytest" -q -p no:cacheprovider tests/api
