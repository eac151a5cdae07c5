#!/usr/bin/env bash
# The CUDA kernels, run on the CPU by cuda-emu, against the CPU kernels (tests/cuda_emu), once per
# thread schedule of the emulator, each in its own process: a CUDA rule violation aborts the
# process it is found in.
#
#   scripts/test_cuda_emu.sh [--asan] [--orders "fwd rev rand:7"] [--no-selftest] [pytest args]
#
#   --asan         the AddressSanitizer build of the emulated kernels (python runs with the ASan
#                  runtime preloaded); any ASan report fails the run
#   --orders LIST  EMU_ORDER values, one process each          [fwd rev rand:$EMU_SEED, seed 7]
#   --no-selftest  skip the emulator's own selftest
#
# The emulator is $CUDA_EMU_DIR, by default ../shared/tools/cuda-emu (beside this repository's
# folder). Where it does not exist the script says so and exits 0: there is nothing to run. Where
# it exists, a failed selftest, a failed build or a failed test fails the script. The python is
# $PYTHON (default python3), with this package installed (scripts/setup_env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EMU=${CUDA_EMU_DIR:-../shared/tools/cuda-emu}
ASAN=0
SELFTEST=1
ORDERS="fwd rev rand:${EMU_SEED:-7}"
while (($#)); do
  case $1 in
    --asan) ASAN=1 ;;
    --orders) ORDERS=$2; shift ;;
    --no-selftest) SELFTEST=0 ;;
    *) break ;;
  esac
  shift
done

if [[ ! -x $EMU/build && ! -f $EMU/build ]]; then
  echo "cuda-emu not found at $EMU (set CUDA_EMU_DIR): the emulated CUDA tests cannot run here"
  exit 0
fi
JOBS=${EMU_JOBS:-${MAX_JOBS:-2}}

if ((SELFTEST)); then
  echo "-- cuda-emu selftest"
  t0=$SECONDS
  bash "$EMU/selftest" --python "$PY"
  echo "-- selftest: $((SECONDS - t0)) s"
fi

echo "-- cuda-emu build (from csrc/)"
t0=$SECONDS
bargs=(--python "$PY" --jobs "$JOBS")
((ASAN)) && bargs+=(--asan)
bash "$EMU/build" "${bargs[@]}"
echo "-- build: $((SECONDS - t0)) s"
if ((ASAN)); then
  export GAUSSOCC_EMU_LIB=$PWD/build/cuda_emu/gaussocc_emu_asan.so
  preload="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
  # halt_on_error: the first report ends the process with a non-zero status
  export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86
else
  export GAUSSOCC_EMU_LIB=$PWD/build/cuda_emu/gaussocc_emu.so
  preload=
fi

status=0
for order in $ORDERS; do
  echo "-- EMU_ORDER=$order$( ((ASAN)) && echo ' (AddressSanitizer)')"
  t0=$SECONDS
  envs=(EMU_ORDER="$order")
  # rand: one OS thread, so that a failure reproduces exactly with the same seed
  if [[ -n ${EMU_THREADS:-} ]]; then envs+=(EMU_THREADS="$EMU_THREADS")
  elif [[ $order == rand* ]]; then envs+=(EMU_THREADS=1); fi
  [[ -n $preload ]] && envs+=(LD_PRELOAD="$preload")
  # --capture=sys: the emulator's diagnostic (C++ stderr) of a rule violation reaches the log
  # before abort() ends the process
  if env "${envs[@]}" "$PY" -m pytest -q -p no:cacheprovider --capture=sys tests/cuda_emu "$@"; then
    echo "-- EMU_ORDER=$order: passed in $((SECONDS - t0)) s"
  else
    rc=$?
    echo "-- EMU_ORDER=$order: FAILED (exit $rc) after $((SECONDS - t0)) s"
    status=1
  fi
done
exit $status
