#!/usr/bin/env bash
# Do the emulated parity tests catch broken CUDA kernels? Applies one-line mutations, one at a time,
# to a scratch copy of csrc/ (never to the checkout), builds each mutant with cuda-emu and runs
# tests/cuda_emu against it under EMU_ORDER=fwd, rev and rand:7. Prints one table row per mutation:
# "caught" (a test failed), "ABORT" (the emulator found a CUDA rule violation and aborted), or
# "missed". The mutations are listed below by file, line and the text expected on that line, so a
# stale line number stops the script instead of mutating the wrong line.
#
#   scripts/emu_mutations.sh [SCRATCH_DIR]      (default /tmp/gaussocc-emu-mutants)
#   ONLY="M5 M6" scripts/emu_mutations.sh       (some of them)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EMU=${CUDA_EMU_DIR:-../shared/tools/cuda-emu}
SCRATCH=${1:-/tmp/gaussocc-emu-mutants}
ORDERS=${ORDERS:-fwd rev rand:7}
[[ -f $EMU/build ]] || { echo "cuda-emu not found at $EMU (set CUDA_EMU_DIR)"; exit 1; }

# id | file | line | text expected on the line | replacement ("" deletes the statement)
MUTATIONS=(
  "M1|cuda/splat.cu|272|__syncthreads();|"
  "M2|cuda/splat.cu|274|__syncthreads();|"
  "M3|cuda/splat.cu|187|__syncthreads();|"
  "M4|cuda/splat.cu|264|__syncthreads();|"
  "M5|cuda/accumulate.cu|23|__shfl_xor_sync(kFullMask, v, offset)|__shfl_xor_sync(0x0000ffffu, v, offset)"
  "M6|cuda/snog.cu|35|__syncwarp();|"
  "M7|cuda/lift.cu|47|offset = kWarp / 2|offset = kWarp / 4"
  "M8|cuda/accumulate.cu|100|__shfl_sync(kFullMask, v, src)|__shfl_sync(kFullMask, v, 0)"
)

mkdir -p "$SCRATCH"
rm -rf "$SCRATCH/csrc"
cp -r csrc "$SCRATCH/csrc"
log=$SCRATCH/log
mkdir -p "$log"
printf '| id | mutation | %s |\n' "$(sed 's/ / | /g' <<<"$ORDERS")"
printf '|%s\n' "$(printf -- '---|%.0s' $(seq 1 $(( $(wc -w <<<"$ORDERS") + 2 ))))"
for m in "${MUTATIONS[@]}"; do
  IFS='|' read -r id file line text repl <<<"$m"
  [[ -z ${ONLY:-} || " $ONLY " == *" $id "* ]] || continue
  cp "csrc/$file" "$SCRATCH/csrc/$file"  # the others stay original
  for other in "${MUTATIONS[@]}"; do
    f=$(cut -d'|' -f2 <<<"$other"); cp "csrc/$f" "$SCRATCH/csrc/$f"
  done
  "$PY" - "$SCRATCH/csrc/$file" "$line" "$text" "$repl" <<'PYEOF'
import sys
path, line, text, repl = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(path).read().split("\n")
if text not in lines[line - 1]:
    sys.exit(f"{path}:{line} does not contain {text!r}: {lines[line - 1]!r} (stale mutation)")
lines[line - 1] = lines[line - 1].replace(text, repl, 1)
open(path, "w").write("\n".join(lines))
PYEOF
  desc="$file:$line \`$text\` -> ${repl:+\`$repl\`}"; [[ -n $repl ]] || desc+="(deleted)"
  if ! bash "$EMU/build" --python "$PY" --csrc "$SCRATCH/csrc" --build-dir "$SCRATCH/build" \
      --out "$SCRATCH/build/$id.so" >"$log/$id.build" 2>&1; then
    echo "| $id | $desc | build failed ($log/$id.build) |"
    continue
  fi
  row="| $id | $desc |"
  for order in $ORDERS; do
    out=$log/$id.${order//:/_}
    set +e
    GAUSSOCC_EMU_LIB=$SCRATCH/build/$id.so EMU_ORDER=$order EMU_THREADS=1 \
      "$PY" -m pytest -q -x -p no:cacheprovider --capture=sys tests/cuda_emu >"$out" 2>&1
    rc=$?
    set -e
    if ((rc == 0)); then
      row+=" missed |"
    elif grep -q "^cuda-emu: " "$out"; then
      # "cuda-emu: kernel K (launched at F:L), block (x,y,z): <what>"
      what=$(grep -m1 "^cuda-emu: " "$out" | sed -e 's/^cuda-emu: kernel \([^ ]*\).*block ([0-9,]*): /\1: /' | cut -c1-110 || true)
      row+=" ABORT \`$what\` |"
    else
      t=$(grep -m1 -o '^FAILED [^ ]*' "$out" | sed 's/^FAILED tests\/cuda_emu\///')
      row+=" caught: \`${t:-exit $rc}\` |"
    fi
  done
  echo "$row"
done
