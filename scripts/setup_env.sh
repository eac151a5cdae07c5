#!/usr/bin/env bash
# Makes this checkout usable with $PYTHON (default python3; use a virtual environment):
#   1. torch: a pinned CPU torch, only if torch is missing (never an unpinned one, which would
#      pull several GB of CUDA packages);
#   2. this package, editable, with its test extras, and its kernels compiled now against that
#      torch (gaussocc_ops._C, `pip install --no-build-isolation -e ".[test]"`).
# Each step is skipped when it is already done: the kernels are rebuilt only when torch or csrc/
# changed since they were built (GAUSSOCC_REBUILD=1 forces it). Steps that take longer than a few
# seconds say what they do and how long they took.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_PIN=${GAUSSOCC_TORCH_VERSION:-2.13.0}
say() { echo "[setup] $*"; }

if ! "$PY" -c "import sys; sys.exit(sys.prefix == sys.base_prefix)"; then
  say "note: $PY is not in a virtual environment; installing into $("$PY" -c 'import sys; print(sys.prefix)')"
fi

if ! "$PY" -c "import torch" 2>/dev/null; then
  say "installing torch==$TORCH_PIN (CPU build, about 200 MB: 30 s from a local cache, a few minutes from the network)"
  t0=$SECONDS
  "$PY" -m pip install --quiet "torch==$TORCH_PIN"
  say "torch installed in $((SECONDS - t0)) s"
fi

# What is missing: prints "current", or what has to be done and why.
state=$("$PY" - <<'EOF'
import importlib.util
import sys
from pathlib import Path

try:
    import gaussocc_ops
except ImportError:
    print("install: gaussocc-ops is not installed")
    sys.exit()
pkg = Path(gaussocc_ops.__file__).resolve().parent
if pkg != (Path.cwd() / "src" / "gaussocc_ops").resolve():
    print(f"install: gaussocc_ops is imported from {pkg}, not from this checkout")
    sys.exit()
missing = [m for m in ("pytest", "hypothesis", "ninja", "rich", "matplotlib", "PIL") if importlib.util.find_spec(m) is None]
if missing:
    print(f"install: {', '.join(missing)} not installed")
    sys.exit()
from gaussocc_ops import _build, _ext

usable, why, cfg = _ext.prebuilt_status()
if not usable:
    print(f"build: {why}")
elif cfg.SOURCE_HASH != _build.source_hash(Path("csrc"), cfg.WITH_CUDA):
    print("build: csrc/ changed since the kernels were built")
else:
    print("current")
EOF
)
if [ "${GAUSSOCC_REBUILD:-0}" = 1 ] && [ "$state" = current ]; then
  state="build: GAUSSOCC_REBUILD=1"
fi

case $state in
  current)
    say "gaussocc-ops is installed from this checkout and its kernels are current: nothing to do" ;;
  build:*)
    say "compiling the C++ kernels against torch $("$PY" -c 'import torch; print(torch.__version__)') (${state#build: }; about 30 s on 2 idle cores)"
    t0=$SECONDS
    # incremental: ninja recompiles only what changed since the last in-place build
    "$PY" setup.py --quiet build_ext --inplace >/dev/null
    say "kernels compiled in $((SECONDS - t0)) s" ;;
  install:*)
    say "${state#install: }"
    if ! "$PY" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" 2>/dev/null; then
      say "installing the build tools (setuptools>=77, wheel)"
      "$PY" -m pip install --quiet "setuptools>=77" wheel
    fi
    say "installing gaussocc-ops (editable) with its test extras, compiling its C++ kernels against torch $("$PY" -c 'import torch; print(torch.__version__)') (about 40 s on 2 idle cores)"
    t0=$SECONDS
    "$PY" -m pip install --quiet --no-build-isolation -e ".[test]"
    say "installed in $((SECONDS - t0)) s" ;;
  *)
    echo "$state"; exit 1 ;;
esac
