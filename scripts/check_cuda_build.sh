#!/usr/bin/env bash
# Shows that the full CUDA build compiles, links and imports against a CUDA build of torch, on a
# machine with nvcc but without a GPU, both ways the package builds its kernels:
#   1. a virtual environment with a CUDA torch (torch==$CUDA_TORCH_VERSION, about 5.5 GB; kept
#      for the next run);
#   2. ahead of time: `pip install --no-build-isolation <copy of this checkout>` compiles _C
#      with the CPU and CUDA kernels; it must import (no GPU needed), report its CUDA kernels and
#      carry device code for every architecture asked for (cuobjdump);
#   3. the CPU tests (tests/) against that build (the CUDA tests skip without a GPU);
#   4. just in time: GAUSSOCC_KERNELS=jit compiles the same kernels into an empty cache, loads
#      them and runs every compiled op (scripts/smoke_installed.py).
# Not part of CI (the download and the CUDA compile take a while). Each step prints its time.
#
#   scripts/check_cuda_build.sh
# Environment: CUDA_TORCH_VERSION (2.14.1), CUDA_CHECK_DIR (build/cuda-check: venv, copy, cache),
# TORCH_CUDA_ARCH_LIST (8.0;9.0), CUDA_HOME (default: /usr/local/cuda, else from nvcc),
# MAX_JOBS (2), PYTHON (python3: makes the venv).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
TORCH_VERSION=${CUDA_TORCH_VERSION:-2.14.1}
DIR=${CUDA_CHECK_DIR:-$ROOT/build/cuda-check}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-8.0;9.0}
export MAX_JOBS=${MAX_JOBS:-2}
say() { echo "[cuda-build] $*"; }
T_ALL=$SECONDS

if [ -z "${CUDA_HOME:-}" ]; then
  if [ -x /usr/local/cuda/bin/nvcc ]; then
    CUDA_HOME=/usr/local/cuda
  else
    nvcc_path=$(command -v nvcc) || { say "nvcc not found: nothing to check"; exit 1; }
    CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$nvcc_path")")")
  fi
fi
export CUDA_HOME
export PATH=$CUDA_HOME/bin:$PATH
say "nvcc: $("$CUDA_HOME/bin/nvcc" --version | grep release) (CUDA_HOME=$CUDA_HOME); archs $TORCH_CUDA_ARCH_LIST"

# 1. a CUDA torch in a virtual environment of its own
VENV=$DIR/venv
VPY=$VENV/bin/python
if ! "$VPY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION' or torch.version.cuda is None)" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION (CUDA build, about 5.5 GB) into $VENV"
  t0=$SECONDS
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VPY" -m pip install --quiet "torch==$TORCH_VERSION"
  say "torch installed in $((SECONDS - t0)) s"
fi
# the package's dependencies and test extra as pyproject.toml lists them, except torch (pinned above)
mapfile -t DEPS < <("$VPY" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["test"]:
    if not req.replace(" ", "").startswith("torch") or req.startswith("torchmetrics"):
        print(req)
PYEOF
)
"$VPY" -m pip install --quiet "setuptools>=77" wheel ninja "${DEPS[@]}"
say "torch $("$VPY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "GPU available:", torch.cuda.is_available())')"

# 2. ahead of time, from a copy of this working tree (the checkout's own build stays as it is)
COPY=$DIR/src
rm -rf "$COPY" "$DIR/cache" "$DIR/run"
mkdir -p "$COPY" "$DIR/run"
git ls-files -z --cached --others --exclude-standard | (cd "$ROOT" && xargs -0 cp --parents -t "$COPY")
say "ahead of time: pip install --no-build-isolation (CPU + CUDA kernels for $TORCH_CUDA_ARCH_LIST)"
t0=$SECONDS
"$VPY" -m pip install --quiet --no-build-isolation --force-reinstall --no-deps "$COPY"
say "compiled and installed in $((SECONDS - t0)) s"
check_lib() {  # $1 = expected source (prebuilt or jit)
  (cd "$DIR/run" && "$VPY" - "$1" <<'PYEOF'
import shutil, subprocess, sys
from pathlib import Path
import torch
import gaussocc_ops as go

info = go.build_info()
assert info["extension"], info["error"]
assert info["source"] == sys.argv[1], (info["source"], info["notes"])
assert info["cuda_kernels"], info
assert not torch.cuda.is_available()  # loading needs no GPU
archs = {"sm_" + a.replace(".", "") for a in info["cuda_archs"]}
# cuobjdump: the toolkit's, else the copy triton ships with a pip CUDA torch
tool = shutil.which("cuobjdump") or next(
    (str(p) for p in Path(torch.__file__).parents[1].glob("triton/backends/nvidia/bin/cuobjdump")),
    None)
assert tool, "cuobjdump not found"
elf = subprocess.run([tool, "--list-elf", info["library"]], capture_output=True, text=True)
from gaussocc_ops import _jit

kernels = {p.stem for p in (_jit.csrc_dir() / "cuda").glob("*.cu")}
want = {f"{k}.{a}.cubin" for k in kernels for a in archs}
missing = {w for w in want if w not in elf.stdout}
assert kernels and not missing, (missing, elf.stdout, elf.stderr)
cuda_ops = [op for op in info["ops"]
            if torch._C._dispatch_has_kernel_for_dispatch_key(f"gaussocc::{op}", "CUDA")]
# the eviction heap of GaussianMemory runs on the host by design (docs/memory.md)
CPU_ONLY = {"memory_evict_heap"}
assert set(cuda_ops) == set(info["ops"]) - CPU_ONLY, (cuda_ops, info["ops"])
print(f"[cuda-build] {info['source']}: {info['library']} imports; device code of "
      f"{len(kernels)} .cu files x {sorted(archs)} (cuobjdump); all {len(cuda_ops)} ops but "
      f"{sorted(CPU_ONLY)} (CPU only) have a CUDA kernel registered")
PYEOF
  )
}
check_lib prebuilt

# 3. the CPU tests against that build
say "tests/ against the CUDA build (CPU kernels; CUDA tests skip without a GPU)"
t0=$SECONDS
(cd "$COPY" && "$VPY" -m pytest -q -p no:cacheprovider tests)
say "tests passed in $((SECONDS - t0)) s"

# 4. just in time, into an empty cache
say "just in time: GAUSSOCC_KERNELS=jit into an empty cache"
export GAUSSOCC_KERNELS=jit GAUSSOCC_CACHE_DIR=$DIR/cache
t0=$SECONDS
(cd "$DIR/run" && "$VPY" "$ROOT/scripts/smoke_installed.py" --expect-source jit)
say "compiled, loaded and ran in $((SECONDS - t0)) s"
check_lib jit
say "ok in $((SECONDS - T_ALL)) s"
