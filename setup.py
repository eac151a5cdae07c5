"""Builds ``gaussocc_ops._C``: CPU kernels always, CUDA kernels when nvcc and a CUDA torch exist.

Environment switches:
  GAUSSOCC_FORCE_CPU=1      build only the CPU kernels even where CUDA is available
  TORCH_CUDA_ARCH_LIST      CUDA architectures (default "8.0;9.0")
  MAX_JOBS                  parallel compile jobs (ninja)
"""

import glob
import os
import sys
from pathlib import Path

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError:
    sys.exit(
        "gaussocc-ops builds against the torch that is already installed.\n"
        "Install torch first, then: pip install --no-build-isolation -e '.[test]'"
    )

ROOT = Path(__file__).parent.resolve()


def _with_cuda() -> bool:
    if os.environ.get("GAUSSOCC_FORCE_CPU", "0") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def _rel(paths):
    return sorted(os.path.relpath(p, ROOT) for p in paths)


def _extension():
    cpu_sources = _rel(
        [ROOT / "csrc" / "extension.cpp"]
        + glob.glob(str(ROOT / "csrc" / "ops" / "*.cpp"))
        + glob.glob(str(ROOT / "csrc" / "cpu" / "*.cpp"))
    )
    include_dirs = [str(ROOT / "csrc" / "include"), str(ROOT / "csrc")]
    cxx_flags = ["-O3", "-std=c++20"]
    if not _with_cuda():
        return CppExtension(
            "gaussocc_ops._C",
            cpu_sources,
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags},
        ), []
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    archs = os.environ["TORCH_CUDA_ARCH_LIST"].replace(" ", ";").split(";")
    cuda_sources = _rel(
        glob.glob(str(ROOT / "csrc" / "cuda" / "*.cu"))
        + glob.glob(str(ROOT / "csrc" / "cuda" / "*_launch.cpp"))
    )
    return CUDAExtension(
        "gaussocc_ops._C",
        cpu_sources + cuda_sources,
        include_dirs=include_dirs,
        define_macros=[("GAUSSOCC_WITH_CUDA", "1")],
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-std=c++17", "-lineinfo"]},
    ), [a for a in archs if a]


def _write_build_config(with_cuda: bool, archs) -> None:
    text = (
        "# Written by setup.py at build time.\n"
        f"WITH_CUDA = {with_cuda!r}\n"
        f"CUDA_ARCHS = {tuple(archs)!r}\n"
        f"TORCH_VERSION = {torch.__version__!r}\n"
        f"TORCH_CUDA_VERSION = {torch.version.cuda!r}\n"
    )
    (ROOT / "src" / "gaussocc_ops" / "_build_config.py").write_text(text)


ext, archs = _extension()
_write_build_config(_with_cuda(), archs)

setup(
    ext_modules=[ext],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
