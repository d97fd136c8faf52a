#!/usr/bin/env bash
# Fuzzes every parser of outside input that has a target (tests/fuzz/fuzz_targets), each
# for a given time, on the nightly toolchain; never part of the test command.
#   tests/fuzz.sh              every target, 600 s each
#   tests/fuzz.sh 60 image_ref one target, 60 s
# Findings land in tests/fuzz/artifacts/<target>/; the corpus grows in target/fuzz-corpus
# (seeded from tests/fuzz/corpus). FUZZING.md records the runs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
if [ ! -x .tools/bin/cargo-fuzz ]; then
  echo "== installing cargo-fuzz into .tools"
  cargo install --quiet --locked cargo-fuzz --root .tools
fi
export PATH="$PWD/.tools/bin:$PATH"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir tests/fuzz)
for t in "${targets[@]}"; do
  corpus="target/fuzz-corpus/$t"
  mkdir -p "$corpus"
  cp -n tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  echo "== $t for ${secs}s"
  cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" "$corpus" -- -max_total_time="$secs" 2>&1 \
    | grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)|^Done|SUMMARY|panicked|ERROR' || true
done
