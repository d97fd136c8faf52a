#!/usr/bin/env bash
# Runs the benchmarks (never part of the test command: machines here are shared and noisy).
#   tests/bench.sh micro       criterion micro benchmarks (cargo bench)
#   tests/bench.sh coldstart   release bootstraps and the Python/boto3 baseline, cold, on a local runtime API
#   tests/bench.sh load        intake under fixed-rate open-loop load, then the pipeline's overhead
#   tests/bench.sh costs       AWS calls per request, counted through a proxy in front of moto
#   tests/bench.sh schemathesis  the HTTP API against its OpenAPI document, 1,000 examples per operation
#   tests/bench.sh soak        2,000 requests on the emulator, Chainguard failing 10%, consumers crashing
#   tests/bench.sh all
# Figures land in target/bench/*.json and on stdout; BENCHMARKS.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"

if [[ "$what" == micro || "$what" == all ]]; then
  cargo bench -p image-request-embedded --bench micro
fi
if [[ "$what" == coldstart || "$what" == all ]]; then
  [ -n "${MOTO_URL:-}" ] || source tests/emulator.sh
  cargo build --release --locked -p intake -p validate -p approval -p provision
  # The harness only starts processes and times them: its own build profile does not matter.
  cargo run --locked -p pipeline-tests --bin coldstart -- "${CARGO_TARGET_DIR:-target}/release"
fi
if [[ "$what" == costs || "$what" == all ]]; then
  [ -n "${MOTO_URL:-}" ] || source tests/emulator.sh
  cargo run --locked -p pipeline-tests --bin costs
fi
if [[ "$what" == soak || "$what" == all ]]; then
  [ -n "${MOTO_URL:-}" ] || source tests/emulator.sh
  IMAGE_REQUEST_TEST_BACKEND="${IMAGE_REQUEST_TEST_BACKEND:-aws}" cargo run --locked -p pipeline-tests --bin soak
fi
if [[ "$what" == schemathesis || "$what" == all ]]; then
  tests/api.sh 1000
fi
if [[ "$what" == load || "$what" == all ]]; then
  cargo run --release --locked -p pipeline-tests --bin load
fi
