#!/usr/bin/env bash
# Installs what a fresh machine lacks: a pinned torch (never an unpinned one, which would pull
# several GB of CUDA packages), then this package with its test extras, built against that torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install --quiet "torch==${GAUSSOCC_TORCH_VERSION:-2.13.0}"
fi
if ! "$PY" -c "import gaussocc_ops, sys; sys.exit(0 if gaussocc_ops.build_info()['extension'] else 1)" 2>/dev/null \
   || [ "${GAUSSOCC_REBUILD:-0}" = 1 ]; then
  "$PY" -m pip install --quiet --no-build-isolation -e ".[test]"
fi
