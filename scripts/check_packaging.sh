#!/usr/bin/env bash
# Packaging as users meet it (a CI step):
#   1. `python -m build --sdist` with build isolation on;
#   2. the sdist holds every tracked file of src/, csrc/ and tests/ (what the package compiles
#      and what its tests need) and no build products;
#   3. `pip install <sdist>` with build isolation on, into a fresh virtual environment that
#      already has the pinned torch;
#   4. from a folder outside the checkout, three processes started together call every compiled
#      op once (scripts/smoke_installed.py): the kernels are compiled once, on first use, by one
#      of them, and agree with the reference; a fourth process loads them from the cache;
#   5. the sdist's own tests pass against that installation (GAUSSOCC_PKG_TESTS=0 skips them).
# $PYTHON (default python3) builds the sdist and makes the fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
case $PY in */*) PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;; esac  # absolute: we cd
TORCH_PIN=${GAUSSOCC_TORCH_VERSION:-2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/gaussocc-packaging.XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { echo "[packaging] $*"; }
mkdir -p "$work/run"

# 1. the sdist (run from another folder: a ./build folder would shadow the `build` package)
if ! (cd "$work/run" && "$PY" -c "import build") 2>/dev/null; then
  say "installing the sdist builder (pip install build)"
  "$PY" -m pip install --quiet build
fi
say "python -m build --sdist (build isolation on)"
t0=$SECONDS
(cd "$work/run" && "$PY" -m build --sdist --outdir "$work/dist" "$ROOT" >"$work/build.log" 2>&1) \
  || { cat "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/*.tar.gz)
say "built $(basename "$sdist") ($(du -k "$sdist" | cut -f1) KiB) in $((SECONDS - t0)) s"

# 2. its contents
tracked=$(git ls-files src csrc tests pyproject.toml setup.py MANIFEST.in README.md 2>/dev/null || true)
"$PY" - "$sdist" "$tracked" <<'PYEOF'
import re
import sys
import tarfile

sdist, tracked = sys.argv[1], sys.argv[2].split()
with tarfile.open(sdist) as tar:
    names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
files = set(names)
missing = sorted(t for t in tracked if t not in files)
product = re.compile(r"(\.(so|o|pyd|dll|pyc)$)|(^|/)(build|dist|__pycache__|\.venv)/|_build_config\.py$")
products = sorted(n for n in names if product.search(n))
needed = ["tests/conftest.py", "pyproject.toml", "setup.py", "README.md", "csrc/extension.cpp"]
absent = [n for n in needed if n not in files]
print(f"[packaging] sdist: {len(files)} entries; tracked files checked: {len(tracked)}")
if missing or products or absent:
    for n in missing + absent:
        print(f"[packaging] MISSING from the sdist: {n}")
    for n in products:
        print(f"[packaging] build product in the sdist: {n}")
    sys.exit(1)
print("[packaging] sdist holds every tracked file of src/, csrc/, tests/ and no build products")
PYEOF

# 3. a fresh virtual environment with the pinned torch, then the sdist with build isolation on
say "fresh virtual environment with torch==$TORCH_PIN (about 30 s from a local cache)"
t0=$SECONDS
"$PY" -m venv "$work/venv"
VPY=$work/venv/bin/python
"$VPY" -m pip install --quiet "torch==$TORCH_PIN"
say "venv ready in $((SECONDS - t0)) s"
say "pip install $(basename "$sdist") (build isolation on)"
t0=$SECONDS
"$VPY" -m pip install --quiet "$sdist"
say "installed in $((SECONDS - t0)) s"
(cd "$work/run" && "$VPY" - <<'PYEOF'
import importlib.util
from pathlib import Path

spec = importlib.util.find_spec("gaussocc_ops")
pkg = Path(spec.origin).parent
prebuilt = sorted(p.name for p in pkg.glob("_C*"))
assert not prebuilt, f"an isolated build must not ship a prebuilt _C: {prebuilt}"
assert (pkg / "_csrc" / "extension.cpp").is_file(), "the wheel lacks the C++ sources (_csrc)"
print(f"[packaging] installed at {pkg}: no prebuilt _C, C++ sources in _csrc")
PYEOF
)

# 4. first use from outside the checkout: three processes at once, then one more
export GAUSSOCC_CACHE_DIR=$work/cache
say "first use: 3 processes started together call every compiled op (one compiles, about 30 s on 2 idle cores)"
t0=$SECONDS
pids=()
for i in 1 2 3; do
  (cd "$work/run" && exec "$VPY" "$ROOT/scripts/smoke_installed.py" --expect-source jit) \
    >"$work/smoke$i.out" 2>"$work/smoke$i.err" &
  pids+=($!)
done
status=0
for i in 1 2 3; do
  if ! wait "${pids[$((i - 1))]}"; then status=1; fi
done
for i in 1 2 3; do
  echo "-- process $i"
  cat "$work/smoke$i.out"
  grep '^gaussocc_ops:' "$work/smoke$i.err" || true
done
if [ $status -ne 0 ]; then
  for i in 1 2 3; do tail -n 30 "$work/smoke$i.err"; done
  say "FAILED: a first-use process failed"; exit 1
fi
compiles=$(cat "$work"/smoke*.err | grep -c '^gaussocc_ops: compiling the' || true)
if [ "$compiles" -ne 1 ]; then
  say "FAILED: $compiles processes compiled the kernels (expected exactly 1)"; exit 1
fi
say "3 processes: 1 compiled, the others waited and loaded ($((SECONDS - t0)) s)"
t0=$SECONDS
(cd "$work/run" && "$VPY" "$ROOT/scripts/smoke_installed.py" --expect-source jit) >"$work/smoke4.out" 2>"$work/smoke4.err" \
  || { cat "$work/smoke4.out" "$work/smoke4.err"; exit 1; }
if grep -q '^gaussocc_ops: compiling the' "$work/smoke4.err"; then say "FAILED: the cached kernels were compiled again"; exit 1; fi
say "a later process loads the cached kernels: $(head -n 1 "$work/smoke4.out")"

# 5. the sdist's own tests, against the installed package
if [ "${GAUSSOCC_PKG_TESTS:-1}" = 1 ]; then
  say "the sdist's tests against the installed package (pytest; about 1 minute on 2 idle cores)"
  t0=$SECONDS
  tar -xzf "$sdist" -C "$work"
  src_dir=$(ls -d "$work"/gaussocc_ops-*/)
  # the test extra of the installed package (pytest, hypothesis, the examples' rich, matplotlib
  # and Pillow): pip keeps the installed gaussocc-ops and adds what the extra needs
  "$VPY" -m pip install --quiet "gaussocc-ops[test]"
  (cd "$src_dir" && "$VPY" -m pytest -q -p no:cacheprovider tests)
  say "sdist tests passed in $((SECONDS - t0)) s"
fi
say "ok"
