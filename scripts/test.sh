#!/usr/bin/env bash
# Runs the test suite on a fresh machine: installs what is missing, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
GAUSSOCC_REBUILD=${GAUSSOCC_REBUILD:-1} bash scripts/setup_env.sh
exec "${PYTHON:-python3}" -m pytest -q tests src/gaussocc_ops --doctest-modules "$@"
