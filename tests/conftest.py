import pytest
import torch

import gaussocc_ops as go

HAS_CUDA = torch.cuda.is_available()
HAS_CUDA_KERNELS = HAS_CUDA and go.build_info()["cuda_kernels"]

requires_cuda = pytest.mark.skipif(not HAS_CUDA_KERNELS, reason="needs CUDA and the CUDA kernels")


def pytest_report_header(config):
    info = go.build_info()
    return (
        f"gaussocc_ops: extension={info['extension']} cuda_kernels={info['cuda_kernels']} "
        f"ops={len(info['ops'])} error={info['error']}"
    )
