#!/usr/bin/env bash
# Sanitizer runs of the compiled code, each in a scratch build that leaves the checkout's build
# alone:
#   cpu  the CPU extension built with -fsanitize=address,undefined (a scratch copy of the sources
#        in SCRATCH, built there, imported from there) running the test suite: every compiled op's
#        tests, with python under the ASan runtime. Any ASan or UBSan report ends the run non-zero.
#   emu  the emulated CUDA kernels built with cuda-emu's --asan, running tests/cuda_emu under the
#        three emulator schedules (scripts/test_cuda_emu.sh --asan).
#
#   scripts/sanitize.sh [cpu] [emu]            (default: both; SCRATCH=/tmp/gaussocc-sanitize)
#
# Takes about 10 minutes on 2 cores (the instrumented CPU build is most of it). Needs g++ with
# libasan and libubsan, and this package's dependencies in $PYTHON (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SCRATCH=${SCRATCH:-/tmp/gaussocc-sanitize}
what=("$@")
((${#what[@]})) || what=(cpu emu)
status=0
preload="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
[[ -f ${preload%% *} ]] || { echo "no libasan.so for g++: install the sanitizer runtimes"; exit 1; }

run_cpu() {
  local t0=$SECONDS src=$PWD
  echo "== CPU extension with -fsanitize=address,undefined (scratch copy in $SCRATCH)"
  mkdir -p "$SCRATCH/src"
  # cp -a keeps the sources' times, so a second run rebuilds only what changed
  rm -rf "$SCRATCH/tests" "$SCRATCH/benchmarks"
  cp -a csrc tests setup.py pyproject.toml "$SCRATCH/"
  [[ -f README.md ]] && cp -a README.md "$SCRATCH/"
  [[ -d benchmarks ]] && cp -a benchmarks "$SCRATCH/"
  (cd src && find gaussocc_ops -name '*.py' -print0 | xargs -0 cp -a --parents -t "$SCRATCH/src")
  (
    cd "$SCRATCH"
    # -fno-sanitize-recover: the first UBSan report aborts (as ASan's does), so it cannot go unseen
    CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g" \
      LDFLAGS="-fsanitize=address,undefined" GAUSSOCC_FORCE_CPU=1 MAX_JOBS=${MAX_JOBS:-2} \
      "$PY" setup.py -q build_ext --inplace >"$SCRATCH/build.log" 2>&1 ||
      { tail -n 30 "$SCRATCH/build.log"; echo "sanitized build FAILED"; exit 1; }
  ) || return 1
  local so
  so=$(ls "$SCRATCH"/src/gaussocc_ops/_C*.so)
  [[ $(ldd "$so") == *libasan* ]] || { echo "$so is not instrumented (no libasan)"; return 1; }
  [[ $(nm -D "$so") == *__ubsan_handle* ]] || { echo "$so has no UBSan checks"; return 1; }
  echo "-- instrumented build: $((SECONDS - t0)) s ($so)"
  t0=$SECONDS
  (
    cd "$SCRATCH"
    export PYTHONPATH=$SCRATCH/src:$src${PYTHONPATH:+:$PYTHONPATH}
    LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:exitcode=86 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$PY" - <<PYEOF || exit 1
import gaussocc_ops, sys
info = gaussocc_ops.build_info()
f = gaussocc_ops._ext._C.__file__
assert f.startswith("$SCRATCH"), f"imported {f}, not the instrumented extension"
print("instrumented extension loaded:", f, "ops:", len(info["ops"]))
PYEOF
    LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:exitcode=86 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "$PY" -m pytest -q -p no:cacheprovider tests src/gaussocc_ops --doctest-modules 2>&1 |
      tee "$SCRATCH/tests.log" | tail -n 5
    exit "${PIPESTATUS[0]}"
  ) || { echo "-- CPU sanitizer run FAILED after $((SECONDS - t0)) s (log: $SCRATCH/tests.log)"; return 1; }
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$SCRATCH/tests.log"; then
    echo "-- sanitizer reports in $SCRATCH/tests.log"; return 1
  fi
  echo "-- CPU sanitizer run: no report, $((SECONDS - t0)) s"
}

run_emu() {
  echo "== emulated CUDA kernels with AddressSanitizer"
  bash scripts/test_cuda_emu.sh --asan --no-selftest
}

for w in "${what[@]}"; do
  case $w in
    cpu) run_cpu || status=1 ;;
    emu) run_emu || status=1 ;;
    *) echo "unknown part '$w' (cpu, emu)"; exit 2 ;;
  esac
done
exit $status
