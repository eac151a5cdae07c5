"""``python -m gaussocc_ops``: what a bug report needs to know about this installation.

Loads the kernels (compiling them first if this torch has none yet, as any first use would)
and prints the package, Python, torch, CUDA and compiler versions, which kernels are compiled
(CPU / CUDA and its architectures), where they came from (the prebuilt ``_C`` of the install or
the just-in-time cache) and where that cache is.

Options:
  --ext-path   print only the path of the loaded kernel library (for example for the CUDA
               emulator's ``--link-ext``); exit status 1 when none is loaded
  --json       print ``gaussocc_ops.build_info()`` plus the versions as JSON
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path


def _first_line(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if lines else None


def _nvcc_version() -> str | None:
    try:
        from torch.utils.cpp_extension import CUDA_HOME
    except ImportError:  # no setuptools
        CUDA_HOME = None  # noqa: N806
    candidates = [str(Path(CUDA_HOME) / "bin" / "nvcc")] if CUDA_HOME else []
    candidates.append("nvcc")
    for nvcc in candidates:
        if shutil.which(nvcc):
            try:
                out = subprocess.run(
                    [nvcc, "--version"], capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.SubprocessError):
                continue
            release = [line for line in out.stdout.splitlines() if "release" in line]
            return f"{release[-1].strip() if release else 'unknown'} ({shutil.which(nvcc)})"
    return None


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect() -> dict:
    """Everything :func:`main` prints, as a dict."""
    import torch

    import gaussocc_ops
    from gaussocc_ops import _ext

    info = _ext.build_info()
    cxx = os.environ.get("CXX", "c++")
    gpus = []
    if info["cuda_available"]:
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            gpus.append(f"{torch.cuda.get_device_name(i)} (sm_{major}{minor})")
    return {
        "gaussocc_ops": gaussocc_ops.__version__,
        "package_dir": str(Path(gaussocc_ops.__file__).resolve().parent),
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "torch_version": torch.__version__,
        "torch_cuda_version": torch.version.cuda,
        "torch_git_version": getattr(torch.version, "git_version", ""),
        "gpus": gpus,
        "cxx": f"{_first_line([cxx, '--version']) or 'NOT FOUND'} ({cxx})",
        "nvcc": _nvcc_version(),
        "ninja": _first_line(["ninja", "--version"]) or _dist_version("ninja"),
        "gsplat": _dist_version("gsplat"),
        "build": info,
    }


NO_GSPLAT = "not installed (backend='gsplat' needs it: pip install 'gaussocc-ops[gsplat]')"


def _report(r: dict) -> str:
    b = r["build"]
    lines = [
        f"gaussocc-ops {r['gaussocc_ops']}  ({r['package_dir']})",
        f"python       {r['python']}",
        f"platform     {r['platform']}",
        f"torch        {r['torch_version']}  CUDA {r['torch_cuda_version'] or 'none (CPU build)'}"
        f"  git {r['torch_git_version'][:12]}",
        f"GPUs         {', '.join(r['gpus']) if r['gpus'] else 'none usable'}",
        f"C++ compiler {r['cxx']}",
        f"nvcc         {r['nvcc'] or 'not found'}",
        f"ninja        {r['ninja'] or 'not found'}",
        f"gsplat       {r['gsplat'] or NO_GSPLAT}",
        "",
    ]
    if b["extension"]:
        origin = {
            "prebuilt": "prebuilt at install (gaussocc_ops._C)",
            "jit": "compiled on first use (just-in-time cache)",
        }[b["source"]]
        cuda = (
            "yes, " + ", ".join("sm_" + a.replace(".", "") for a in b["cuda_archs"])
            if b["cuda_kernels"]
            else f"no ({b['no_cuda_reason'] or 'not compiled'})"
        )
        built = f"torch {b['torch']}" + (f", CUDA {b['torch_cuda']}" if b["torch_cuda"] else "")
        lines += [
            f"kernels      {origin}, built for {built}",
            "  CPU        yes",
            f"  CUDA       {cuda}",
            f"  library    {b['library']}",
            f"  ops        {len(b['ops'])}: {', '.join(b['ops'])}",
        ]
    else:
        lines += [
            "kernels      NONE: every op runs its pure-PyTorch reference implementation (slow)",
            f"  why        {b['error']}",
        ]
    for note in b["notes"]:
        lines.append(f"  note       {note}")
    lines += [
        f"  mode       GAUSSOCC_KERNELS={b['mode']}",
        f"JIT cache    {b['cache_dir']}"
        + ("" if os.environ.get("GAUSSOCC_CACHE_DIR") else "  (set GAUSSOCC_CACHE_DIR to move it)"),
    ]
    if b["jit_dir"]:
        lines.append(f"  in use     {b['jit_dir']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gaussocc_ops",
        description="Report the gaussocc-ops installation (for bug reports).",
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--ext-path", action="store_true", help="print only the path of the loaded kernel library"
    )
    group.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.ext_path:
        from gaussocc_ops import _ext

        path = _ext.library_path()
        if path is None:
            print(f"no compiled kernels: {_ext.build_info()['error']}", file=sys.stderr)
            return 1
        print(path)
        return 0
    report = collect()
    print(json.dumps(report, indent=1, default=list) if args.json else _report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
