#!/usr/bin/env bash
# Builds the four Lambda bootstraps as SAM would (cargo lambda, release profile), installing
# cargo-lambda (which brings zig) into the project's .venv when missing.
#   infra/build.sh            arm64 (the template's default)
#   infra/build.sh x86_64     where the aarch64 standard library cannot be installed
set -euo pipefail
cd "$(dirname "$0")/.."
arch="${1:-arm64}"
venv="$PWD/.venv"
if [ ! -x "$venv/bin/cargo-lambda" ]; then
  echo "== installing cargo-lambda into .venv"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'cargo-lambda>=1,<2'
fi
export PATH="$venv/bin:$PATH"
case "$arch" in
  arm64)
    rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || {
      echo "the aarch64 standard library is not installable here: use 'infra/build.sh x86_64' and Architecture=x86_64"
      exit 1
    }
    flag=--arm64 ;;
  # On an x86_64 machine the system linker builds smaller bootstraps than zig (measured:
  # 7.15 against 8.37 MiB for approval); zig stays the cross-linker for arm64.
  x86_64) flag="--x86-64"; [ "$(uname -m)" = x86_64 ] && flag="--x86-64 --compiler cargo" ;;
  *) echo "usage: infra/build.sh [arm64|x86_64]"; exit 2 ;;
esac
# shellcheck disable=SC2086 # $flag is one or more flags
cargo lambda build --release $flag -p intake -p validate -p approval -p provision -p archive
for f in intake validate approval provision archive; do
  ls -l "target/lambda/$f/bootstrap" | awk -v f="$f" '{ printf "%-10s %6.2f MB\n", f, $5 / 1048576 }'
done
