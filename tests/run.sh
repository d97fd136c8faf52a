#!/usr/bin/env bash
# Runs every check and test of the project: the README's test command, and what CI runs.
# The AWS adapters are tested against moto's server, which this script installs into
# .venv when missing, starts on a free loopback port and stops on exit.
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."

# Each step's header carries the minutes:seconds since the start, so a CI log shows where
# the time goes.
start=$SECONDS
step() { printf '== [%02d:%02d] %s\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$*"; }

# A clean build takes about 6 GiB under target/ (without incremental caches, as CI builds);
# a full disk otherwise shows up minutes later as a compiler error.
mkdir -p "${CARGO_TARGET_DIR:-target}"
free_kib=$(df -Pk "${CARGO_TARGET_DIR:-target}" | awk 'NR == 2 { print $4 }')
step "disk: $((free_kib / 1024 / 1024)) GiB free for ${CARGO_TARGET_DIR:-target}/"
if [ "$free_kib" -lt $((8 * 1024 * 1024)) ]; then
  echo "warning: under 8 GiB free; the build may run out of space (cargo clean frees it)" >&2
fi

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

source tests/venv.sh
source tests/emulator.sh

step "cfn-lint infra/template.yaml"
cfn-lint infra/template.yaml

# checkov pins an older boto3 than the AWS CLI: its own venv. Zero failures; every skip in
# the template says why (tests/tests/template.rs holds that).
ckv=.tools/checkov
ensure_venv "$ckv" tests/requirements-checkov.txt
step "checkov infra/template.yaml"
"$ckv/bin/checkov" -f infra/template.yaml --framework cloudformation --compact --quiet --skip-download

# Dependencies: licenses, banned or duplicated crates, sources (deny.toml). The advisory
# check needs the advisory database from the internet, which this machine cannot reach.
deny_version=0.20.2
if [ "$(.tools/bin/cargo-deny --version 2>/dev/null)" != "cargo-deny $deny_version" ]; then
  step "installing cargo-deny $deny_version into .tools"
  # A debug build: it compiles in half the time and checks this workspace in about a second.
  cargo install --quiet --locked --debug cargo-deny --version "$deny_version" --root .tools
fi
step "cargo deny check licenses bans sources (offline)"
.tools/bin/cargo-deny --offline check licenses bans sources 2> target/deny.log || { cat target/deny.log; exit 1; }

log=target/test-output.log
step "cargo test (embedded backend, and the emulator tests)"
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
step "cargo test, again on the AWS backend (moto at $MOTO_URL)"
# The whole workspace again, not `-p pipeline-tests`: selecting one package resolves other
# features and rebuilds half the dependency graph. The other packages' tests take seconds.
IMAGE_REQUEST_TEST_BACKEND=aws cargo test --workspace --all-targets --locked 2>&1 | tee -a "$log"
step "the HTTP API against infra/openapi.json (Schemathesis, tests/api.sh)"
tests/api.sh 2>&1 | tee -a "$log"
step "the approval page in chromium (playwright-core, tests/browser.sh)"
tests/browser.sh 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
step "done"
