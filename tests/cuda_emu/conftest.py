"""Emulated-CUDA parity tests: the CUDA kernels, run on the CPU by cuda-emu, against the CPU ones.

These tests run only when ``tests/cuda_emu`` is named on the pytest command line (see
``tests/conftest.py``), one process per schedule, because a CUDA rule violation found by the
emulator aborts the process. ``scripts/test_cuda_emu.sh`` builds the library and runs them under
``EMU_ORDER=fwd``, ``rev`` and ``rand:<seed>``.

Which library is loaded:

* ``GAUSSOCC_EMU_LIB=FILE``: that file (for example the ``--asan`` build); it must exist.
* otherwise, when the emulator exists (``$CUDA_EMU_DIR``, default ``../shared/tools/cuda-emu``
  from the repository root), it is built from this checkout's ``csrc`` into
  ``build/cuda_emu/gaussocc_emu.so`` first (incremental, a few seconds when nothing changed); a
  failed build fails every test.
* without the emulator the tests are skipped, with the path that was looked up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gaussocc_ops  # noqa: F401  (registers torch.ops.gaussocc, the CPU kernels)

ROOT = Path(__file__).resolve().parents[2]


def emulator_dir() -> str:
    """The emulator's folder as the build scripts spell it, relative to the repository root unless
    CUDA_EMU_DIR is absolute. The spelling matters: it is part of the compile commands, and the
    incremental build recompiles everything when they change."""
    return os.environ.get("CUDA_EMU_DIR") or "../shared/tools/cuda-emu"


def _build_library() -> Path:
    cmd = ["bash", f"{emulator_dir()}/build", "--python", sys.executable]
    jobs = os.environ.get("EMU_JOBS") or os.environ.get("MAX_JOBS")
    if jobs:
        cmd += ["--jobs", jobs]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        raise RuntimeError(f"cuda-emu build failed ({' '.join(cmd)}):\n{tail}")
    return ROOT / "build" / "cuda_emu" / "gaussocc_emu.so"


_STATE: dict = {}


def _load() -> None:
    """Loads the emulated library once per process; records the failure or skip reason."""
    if _STATE:
        return
    lib = os.environ.get("GAUSSOCC_EMU_LIB")
    try:
        if lib:
            path = Path(lib)
            if not path.is_file():
                raise RuntimeError(f"GAUSSOCC_EMU_LIB={lib} does not exist")
        elif not (ROOT / emulator_dir() / "build").is_file():
            _STATE["skip"] = (
                f"cuda-emu not found at {(ROOT / emulator_dir()).resolve()} (set CUDA_EMU_DIR to "
                "its folder); "
                "the emulated CUDA kernels cannot be built here"
            )
            return
        else:
            path = _build_library()
        torch.ops.load_library(str(path))
        _STATE["lib"] = path
    except Exception as exc:  # reported by every test
        _STATE["error"] = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def emu():
    """``torch.ops.gaussocc_emu``: the CUDA kernels, emulated (CPU tensors in and out)."""
    _load()
    if "skip" in _STATE:
        pytest.skip(_STATE["skip"])
    if "error" in _STATE:
        pytest.fail(_STATE["error"], pytrace=False)
    return torch.ops.gaussocc_emu


@pytest.fixture(scope="session")
def cpu():
    """``torch.ops.gaussocc``: the CPU kernels."""
    return torch.ops.gaussocc


def pytest_report_header(config):
    _load()
    order = os.environ.get("EMU_ORDER", "fwd")
    where = _STATE.get("lib") or _STATE.get("skip") or _STATE.get("error")
    return f"cuda-emu: EMU_ORDER={order} EMU_THREADS={os.environ.get('EMU_THREADS', 'all')} {where}"
