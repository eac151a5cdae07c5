#!/usr/bin/env bash
# Runs the main demo on a fresh machine: installs what is missing, then the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec "${PYTHON:-python3}" -m gaussocc_ops.examples.demo "$@"
