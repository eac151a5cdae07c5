"""How long the CPU kernels take to compile from clean, and where the time goes.

Copies the working tree (or ``--ref REV``, a git revision) into a temporary folder and runs the
ahead-of-time build there, as ``scripts/setup_env.sh`` does after a change::

    MAX_JOBS=<jobs> GAUSSOCC_FORCE_CPU=1 python setup.py -q build_ext --inplace

``--repeat`` times from clean. Reports per run the wall time, the CPU time of the compiler
processes, the load average before and after, and each translation unit's compile time from
ninja's log. The machine is usually shared: compare runs measured back to back, and look at the
minimum.

    python -m benchmarks build [--ref REV] [--repeat 3] [--jobs 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _copy_tree(dest: Path, ref: str | None) -> None:
    if ref:
        archive = subprocess.run(
            ["git", "archive", ref], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def _units(build_dir: Path) -> list[tuple[str, float]]:
    logs = list(build_dir.rglob(".ninja_log"))
    out = []
    for line in logs[0].read_text().splitlines()[1:] if logs else []:
        start, end, _, target, _ = line.split("\t")
        name = target.split("/temp.")[-1].split("/", 1)[-1]
        out.append((name, (int(end) - int(start)) / 1000.0))
    return sorted(out, key=lambda u: -u[1])


def build_once(ref: str | None, jobs: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="gaussocc-build-bench-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree, ref)
        env = {**os.environ, "MAX_JOBS": str(jobs), "GAUSSOCC_FORCE_CPU": "1"}
        load_before = os.getloadavg()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise RuntimeError(f"build failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
        cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (
            cpu_after.ru_stime - cpu_before.ru_stime
        )
        return {
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "units": _units(tree / "build"),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks build", description=__doc__)
    parser.add_argument("--ref", help="a git revision to build instead of the working tree")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="MAX_JOBS (default 2)")
    parser.add_argument("--json", help="write the runs to this file")
    args = parser.parse_args(argv)
    what = args.ref or "working tree"
    print(f"CPU kernels from clean ({what}), MAX_JOBS={args.jobs}, {os.cpu_count()} CPUs")
    runs = []
    for i in range(args.repeat):
        r = build_once(args.ref, args.jobs)
        runs.append(r)
        print(
            f"run {i + 1}: wall {r['wall_s']:6.1f} s  cpu {r['cpu_s']:6.1f} s  "
            f"load {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f}"
        )
        for name, seconds in r["units"]:
            print(f"    {seconds:6.1f} s  {name}")
    best = min(runs, key=lambda r: r["wall_s"])
    print(f"min wall {best['wall_s']} s (cpu {best['cpu_s']} s, load {best['load_before'][0]})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"ref": what, "jobs": args.jobs, "runs": runs}))
    return 0
