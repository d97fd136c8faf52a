#!/usr/bin/env bash
# Sourced by the test scripts: `ensure_venv DIR REQUIREMENTS` makes DIR a Python venv
# holding exactly the pinned REQUIREMENTS, installing them the first time and whenever the
# file changes (the installed copy is kept beside the venv to compare).

declare -F step > /dev/null || step() { echo "== $*"; }

ensure_venv() {
  local dir=$1 requirements=$2
  if ! cmp -s "$requirements" "$dir/installed-requirements.txt"; then
    step "installing $requirements into $dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$dir/installed-requirements.txt"
  fi
}
