#!/usr/bin/env bash
# Compiles every csrc/**/*.cu with plain nvcc for sm_80 and sm_90. The .cu files include no
# torch headers, so this needs only the CUDA toolkit, not a CUDA build of torch.
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-nvcc}
out=$(mktemp -d)
mapfile -t files < <(find csrc -name '*.cu' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "no .cu files"; exit 0; fi
"$NVCC" --version | tail -n 1
status=0
printf '%s\n' "${files[@]}" | xargs -P "${JOBS:-2}" -I{} sh -c '
  f="$1"; o="$2/$(echo "$f" | tr / _).o"
  if "$3" -c -std=c++17 -O3 -Icsrc/include -Icsrc \
      -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 "$f" -o "$o"; then
    echo "nvcc ok: $f"
  else
    echo "nvcc FAILED: $f"; exit 255
  fi' _ {} "$out" "$NVCC" || status=1
rm -rf "$out"
exit $status
