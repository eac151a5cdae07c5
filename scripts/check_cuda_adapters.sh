#!/usr/bin/env bash
# Type-checks every csrc/cuda/*_launch.cpp (the torch -> CUDA adapters) with g++ -fsyntax-only,
# one by one and together as the builds compile them,
# against the installed torch's headers and the CUDA toolkit's headers. A CPU build of torch
# lacks a few CUDA library headers and one generated c10 header that ATen/cuda includes; this
# script supplies minimal declarations of those for the check only (nothing is linked).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mapfile -t files < <(find csrc/cuda -name '*_launch.cpp' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no CUDA adapters"; exit 0; fi
cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
[ -f "$cuda_home/include/cuda_runtime_api.h" ] || cuda_home=$(ls -d /usr/local/cuda*/ | head -n 1)
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
mkdir -p "$stubs/c10/cuda/impl"
echo '#pragma once' > "$stubs/c10/cuda/impl/cuda_cmake_macros.h"
printf '#pragma once\ntypedef struct cusparseContext* cusparseHandle_t;\ntypedef int cusparseStatus_t;\n' > "$stubs/cusparse.h"
printf '#pragma once\ntypedef struct cublasContext* cublasHandle_t;\ntypedef int cublasStatus_t;\n' > "$stubs/cublas_v2.h"
printf '#pragma once\ntypedef struct cublasLtContext* cublasLtHandle_t;\n' > "$stubs/cublasLt.h"
printf '#pragma once\ntypedef int cusolverStatus_t;\n' > "$stubs/cusolver_common.h"
printf '#pragma once\n#include "cusolver_common.h"\ntypedef struct cusolverDnContext* cusolverDnHandle_t;\n' > "$stubs/cusolverDn.h"
# Real headers win where they exist; the stubs only fill what a CPU torch lacks.
includes=$("$PY" -c "import torch.utils.cpp_extension as c; print(' '.join('-I' + p for p in c.include_paths()))")
status=0
for f in "${files[@]}"; do
  if g++ -std=c++20 -fsyntax-only -w $includes -I"$cuda_home/include" -idirafter "$stubs" \
      -Icsrc/include -Icsrc -DGAUSSOCC_WITH_CUDA "$f"; then
    echo "g++ -fsyntax-only ok: $f"
  else
    echo "g++ -fsyntax-only FAILED: $f"; status=1
  fi
done
# The builds compile the adapters together, as one unity translation unit
# (src/gaussocc_ops/_build.py): names must not clash between them.
"$PY" - "$stubs/unity" <<'PYEOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_gaussocc_build", "src/gaussocc_ops/_build.py")
b = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = b
spec.loader.exec_module(b)
b.write_unity_sources(b.find_sources(b.Path("csrc")), b.Path(sys.argv[1]), with_cuda=True)
PYEOF
unit="$stubs/unity/unity_cuda_adapters_0.cpp"
if g++ -std=c++20 -fsyntax-only -w $includes -I"$cuda_home/include" -idirafter "$stubs" \
    -Icsrc/include -Icsrc -DGAUSSOCC_WITH_CUDA "$unit"; then
  echo "g++ -fsyntax-only ok: the adapters as one unity translation unit"
else
  echo "g++ -fsyntax-only FAILED: the adapters as one unity translation unit ($unit)"; status=1
fi
exit $status
