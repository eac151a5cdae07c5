#!/usr/bin/env bash
# The main demo on a fresh machine: installs what is missing (scripts/setup_env.sh), then trains
# the small example model with and without GaussRenderLoss and writes two figures to demo_out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
echo "[demo] python -m gaussocc_ops.examples.demo (two models, 10 epochs each, trained at the same time; it prints its progress)"
exec "${PYTHON:-python3}" -m gaussocc_ops.examples.demo "$@"
