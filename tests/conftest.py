import os

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
