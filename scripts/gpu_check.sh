#!/usr/bin/env bash
# One-command check of the CUDA kernels on a machine with an NVIDIA GPU, a CUDA build of torch and
# nvcc. Needs no network: nothing is installed (gsplat, if wanted for the gsplat comparison, is
# installed beforehand from a wheel).
#
#   scripts/gpu_check.sh OUTDIR     run every step; logs and a summary (summary.md, summary.json)
#                                   under OUTDIR
#   scripts/gpu_check.sh --plan     print the steps, their time limits and commands (no GPU needed)
#
# Steps: build the extension with its CUDA kernels for this GPU's architecture (in place, into
# src/), the CUDA tests (CUDA == CPU for every op, CUDA == gsplat when gsplat imports),
# compute-sanitizer memcheck, racecheck and synccheck over scripts/cuda_kernels_once.py (every CUDA
# kernel once, checked against the CPU kernel), then every benchmark with --device cuda at small
# repeat counts. Each step has its own time limit, and the whole run stops starting steps when
# its budget (GPU_CHECK_BUDGET seconds, default 470: under 8 minutes) is spent; a step left out
# for time is reported as such. Exit status: 0 when every step passed, 1 otherwise, 2 without CUDA.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-470}
NPROC=$(nproc 2>/dev/null || echo 4)

# name | time limit (s) | command (run with bash -c from the repository root)
STEPS=(
  "build|240|GAUSSOCC_FORCE_CPU=0 TORCH_CUDA_ARCH_LIST=\$GPU_ARCH MAX_JOBS=$NPROC \$PY setup.py -q build_ext --inplace && \$PY -c 'import gaussocc_ops as g, sys; i = g.build_info(); print(i); sys.exit(0 if i[\"cuda_kernels\"] else \"no CUDA kernels in the build\")'"
  "cuda-tests|150|\$PY -m pytest -q -rs -p no:cacheprovider tests -k 'cuda or gsplat' --junitxml=\$OUT/cuda_tests.xml"
  "memcheck|120|PYTORCH_NO_CUDA_MEMORY_CACHING=1 \$SANITIZER --tool memcheck --error-exitcode 99 --print-limit 50 \$PY scripts/cuda_kernels_once.py"
  "racecheck|150|\$SANITIZER --tool racecheck --error-exitcode 99 --print-limit 50 \$PY scripts/cuda_kernels_once.py"
  "synccheck|120|\$SANITIZER --tool synccheck --error-exitcode 99 --print-limit 50 \$PY scripts/cuda_kernels_once.py"
  "bench-splat|60|\$PY -m benchmarks splat --device cuda --repeat 2 --json \$OUT/bench_splat.json"
  "bench-accumulate|60|\$PY -m benchmarks accumulate --device cuda --workloads a b --repeat 2 --json \$OUT/bench_accumulate.json"
  "bench-lift|60|\$PY -m benchmarks lift --device cuda --repeat 2 --json \$OUT/bench_lift.json"
  "bench-radius|45|\$PY -m benchmarks radius --device cuda --repeat 2 --json \$OUT/bench_radius.json"
  "bench-raycast|45|\$PY -m benchmarks raycast --device cuda --repeat 2 --no-reference --json \$OUT/bench_raycast.json"
  "bench-snog|45|\$PY -m benchmarks snog --device cuda --repeat 2 --json \$OUT/bench_snog.json"
  "bench-metrics|60|\$PY -m benchmarks metrics --device cuda --repeat 2 --loss-repeat 2 --json \$OUT/bench_metrics.json"
  "bench-memory|45|\$PY -m benchmarks memory --device cuda --frames 10 --json \$OUT/bench_memory.json"
  "bench-gaussrender|60|\$PY -m benchmarks gaussrender --device cuda --batch 1 --repeat 2 --json \$OUT/bench_gaussrender.json"
)

if [[ ${1:-} == --plan ]]; then
  echo "scripts/gpu_check.sh OUTDIR: ${#STEPS[@]} steps after the environment check, budget $BUDGET s"
  echo "  0. env (20 s): nvidia-smi, nvcc --version, torch and gsplat versions; stops here without CUDA"
  i=1
  for s in "${STEPS[@]}"; do
    IFS='|' read -r name limit cmd <<<"$s"
    printf '  %d. %s (%s s): %s\n' "$i" "$name" "$limit" "$cmd"
    i=$((i + 1))
  done
  exit 0
fi
if [[ $# -ne 1 || $1 == -* ]]; then
  echo "usage: scripts/gpu_check.sh OUTDIR | --plan" >&2
  exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
START=$SECONDS

# ---- environment: stop at once without a usable GPU, CUDA torch and nvcc -----------------------
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  nvidia-smi 2>&1 || true
  echo "nvcc: $(command -v nvcc || echo missing)"
  nvcc --version 2>&1 | tail -n 2 || true
  "$PY" - <<'PYEOF' 2>&1
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
try:
    import gsplat
    print("gsplat", gsplat.__version__)
except Exception as exc:  # gsplat is optional here
    print("gsplat not importable:", type(exc).__name__, exc)
PYEOF
} >"$OUT/env.log" 2>&1
why=
if ! nvidia-smi -L >/dev/null 2>&1; then why="nvidia-smi finds no NVIDIA GPU"
elif ! "$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda and torch.cuda.is_available() else 1)" 2>/dev/null; then
  why="$PY has no CUDA build of torch that sees a GPU (torch.cuda.is_available() is False)"
elif ! command -v nvcc >/dev/null 2>&1 && [[ ! -x ${CUDA_HOME:-/usr/local/cuda}/bin/nvcc ]]; then
  why="no nvcc (neither on PATH nor in \$CUDA_HOME/bin)"
fi
if [[ -n $why ]]; then
  echo "gpu_check: cannot run: $why. This check needs an NVIDIA GPU, a CUDA build of torch and nvcc (see $OUT/env.log)." | tee "$OUT/summary.md" >&2
  exit 2
fi
export PATH=$PATH:${CUDA_HOME:-/usr/local/cuda}/bin
GPU_ARCH=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability(0))")
SANITIZER=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
export PY OUT GPU_ARCH SANITIZER
export PYTHONPATH=$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}  # the in-place build, benchmarks/
echo "gpu_check: GPU arch $GPU_ARCH, logs in $OUT, budget $BUDGET s"

# ---- steps ---------------------------------------------------------------------------------------
results=$OUT/results.tsv
: >"$results"
failed=0
for s in "${STEPS[@]}"; do
  IFS='|' read -r name limit cmd <<<"$s"
  log=$OUT/$name.log
  left=$((BUDGET - (SECONDS - START)))
  if [[ $name == memcheck || $name == racecheck || $name == synccheck ]] && [[ ! -x $SANITIZER ]]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "not run: no compute-sanitizer" "-" 0 "$limit" "$cmd" >>"$results"
    failed=1; echo "-- $name: no compute-sanitizer"; continue
  fi
  if ((left < 15)); then
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "not run: time budget spent" "-" 0 "$limit" "$cmd" >>"$results"
    failed=1; echo "-- $name: not run (time budget spent)"; continue
  fi
  ((limit > left)) && limit=$left
  t0=$SECONDS
  echo "-- $name (limit $limit s)"
  echo "\$ $cmd" >"$log"
  timeout --kill-after=10 "$limit" bash -c "$cmd" >>"$log" 2>&1
  rc=$?
  dt=$((SECONDS - t0))
  if ((rc == 0)); then status=passed
  elif ((rc == 124 || rc == 137)); then status="timed out"; failed=1
  else status=failed; failed=1; fi
  echo "   $status in $dt s ($log)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$dt" "$limit" "$cmd" >>"$results"
  if [[ $name == build && $status != passed ]]; then
    echo "-- the build failed: the other steps need it"
    break
  fi
done

# ---- summary --------------------------------------------------------------------------------------
"$PY" - "$OUT" "$((SECONDS - START))" <<'PYEOF'
import json, pathlib, sys
out, total = pathlib.Path(sys.argv[1]), int(sys.argv[2])
rows = []
for line in (out / "results.tsv").read_text().splitlines():
    name, status, rc, secs, limit, cmd = line.split("\t")
    log = out / f"{name}.log"
    tail = log.read_text(errors="replace").splitlines()[-3:] if log.exists() else []
    rows.append(dict(step=name, status=status, exit_code=rc, seconds=int(secs), limit_s=int(limit),
                     command=cmd, log=str(log) if log.exists() else None, last_lines=tail))
env = (out / "env.log").read_text(errors="replace")
ok = all(r["status"] == "passed" for r in rows)
(out / "summary.json").write_text(json.dumps(
    dict(passed=ok, total_seconds=total, steps=rows, environment=env), indent=2))
md = [f"# GPU check: {'PASSED' if ok else 'FAILED'} in {total} s", "", "```", env.strip(), "```", "",
      "| step | status | seconds (limit) | last line of the log |", "|---|---|---|---|"]
for r in rows:
    last = (r["last_lines"][-1] if r["last_lines"] else "").replace("|", "\\|")[:120]
    md.append(f"| {r['step']} | {r['status']} | {r['seconds']} ({r['limit_s']}) | {last} |")
(out / "summary.md").write_text("\n".join(md) + "\n")
print("\n".join(md[len(md) - len(rows) - 2:]))
PYEOF
echo "gpu_check: $( ((failed)) && echo FAILED || echo passed) in $((SECONDS - START)) s; summary: $OUT/summary.md, $OUT/summary.json"
exit $failed
