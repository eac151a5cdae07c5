import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

import gaussocc_ops as go

HAS_CUDA = torch.cuda.is_available()
HAS_CUDA_KERNELS = HAS_CUDA and go.build_info()["cuda_kernels"]

# CI runs the same hypothesis examples every time (reproducible); local runs explore new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

requires_cuda = pytest.mark.skipif(not HAS_CUDA_KERNELS, reason="needs CUDA and the CUDA kernels")


def pytest_report_header(config):
    info = go.build_info()
    return (
        f"gaussocc_ops: extension={info['extension']} cuda_kernels={info['cuda_kernels']} "
        f"ops={len(info['ops'])} error={info['error']}"
    )


_EMU_TESTS = Path(__file__).parent / "cuda_emu"


def pytest_ignore_collect(collection_path, config):
    """tests/cuda_emu runs only when named on the command line (scripts/test_cuda_emu.sh runs it
    once per emulator schedule): a CUDA rule violation there aborts the whole process."""
    if collection_path != _EMU_TESTS:
        return None
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not any(p == _EMU_TESTS or _EMU_TESTS in p.parents for p in named)
