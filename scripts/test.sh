#!/usr/bin/env bash
# The tests on a fresh machine: installs what is missing (scripts/setup_env.sh; a current build is
# reused, not rebuilt), then pytest on tests/ plus the docstring examples.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
echo "[test] python -m pytest -q tests src/gaussocc_ops --doctest-modules (about 1 minute on 2 idle cores)"
exec "${PYTHON:-python3}" -m pytest -q tests src/gaussocc_ops --doctest-modules "$@"
