"""Builds gaussocc-ops, with or without its compiled kernels.

``pip install gaussocc-ops`` / ``pip install .`` (pip's default build isolation): the isolated
build environment has no torch, so this builds a pure-Python wheel that carries the C++/CUDA
sources (as ``gaussocc_ops/_csrc``). The kernels are compiled on first use for the torch that is
installed, and cached (``gaussocc_ops/_jit.py``).

``pip install --no-build-isolation .`` (or ``-e .``) with torch installed: also compiles
``gaussocc_ops._C`` against that torch now (ahead of time): the CPU kernels always, the CUDA
kernels when torch has CUDA and nvcc exists. It is used while it matches the running torch;
after a torch upgrade the kernels are compiled again on first use.

Environment switches:
  GAUSSOCC_FORCE_CPU=1      build only the CPU kernels even where CUDA is available
  GAUSSOCC_NO_PREBUILT=1    build the pure-Python wheel even where torch is importable
  TORCH_CUDA_ARCH_LIST      CUDA architectures (default "8.0;9.0")
  MAX_JOBS                  parallel compile jobs (ninja)
"""

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent.resolve()
CSRC = ROOT / "csrc"
BUILD_PY = ROOT / "src" / "gaussocc_ops" / "_build.py"

# The build description shared with the just-in-time build (standard library only).
_spec = importlib.util.spec_from_file_location("_gaussocc_build", BUILD_PY)
B = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = B  # dataclasses looks the module up while building the class
_spec.loader.exec_module(B)


class BuildPyWithSources(build_py):
    """Ships ``csrc/`` inside the package (``gaussocc_ops/_csrc``) for the just-in-time build,
    and never a ``_build_config.py`` left in the source tree by an earlier in-place build."""

    def find_package_modules(self, package, package_dir):
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if m[:2] != ("gaussocc_ops", "_build_config")]

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install compiles from the checkout's csrc/
        dest = Path(self.build_lib) / "gaussocc_ops" / "_csrc"
        if dest.exists():
            shutil.rmtree(dest)
        for f in B.source_files(CSRC, with_cuda=True):
            target = dest / f.relative_to(CSRC)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)


def _torch():
    if os.environ.get("GAUSSOCC_NO_PREBUILT", "0") == "1":
        return None
    try:
        import torch  # noqa: F401
        import torch.utils.cpp_extension  # noqa: F401
    except ImportError:
        return None
    return torch


def _pure_python_setup():
    print(
        "gaussocc-ops: torch is not importable here (pip's build isolation, or "
        "GAUSSOCC_NO_PREBUILT=1): building without prebuilt kernels; they are compiled for the "
        "installed torch on first use. To compile them now: pip install --no-build-isolation .",
        file=sys.stderr,
    )
    setup(cmdclass={"build_py": BuildPyWithSources})


def _compiled_setup(torch):
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    with_cuda = (
        os.environ.get("GAUSSOCC_FORCE_CPU", "0") != "1"
        and torch.version.cuda is not None
        and CUDA_HOME is not None
    )
    archs = B.split_archs(B.cuda_arch_list()) if with_cuda else ()
    if with_cuda:
        os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs)

    src = B.find_sources(CSRC)
    units = B.write_unity_sources(src, ROOT / "build" / "gaussocc_unity", with_cuda)
    cxx_flags = list(B.CXX_FLAGS)
    if with_cuda:
        cxx_flags += B.cuda_library_include_flags(Path(torch.__file__).parent)
    kwargs = dict(
        include_dirs=[str(d) for d in src.include_dirs],
        extra_compile_args={"cxx": cxx_flags, "nvcc": list(B.NVCC_FLAGS)},
    )
    if with_cuda:
        ext = CUDAExtension(
            "gaussocc_ops._C",
            _rel(units + src.cuda_kernels),
            define_macros=[("GAUSSOCC_WITH_CUDA", "1")],
            **kwargs,
        )
    else:
        ext = CppExtension("gaussocc_ops._C", _rel(units), **kwargs)

    class BuildExtWithConfig(BuildExtension.with_options(use_ninja=True)):
        """Writes ``_build_config.py`` next to the built ``_C``: what it was built against, so
        that it is never loaded into another torch."""

        def build_extensions(self):
            start = time.perf_counter()
            what = "CPU + CUDA (" + ";".join(archs) + ")" if with_cuda else "CPU"
            print(
                f"gaussocc-ops: compiling the {what} kernels against torch {torch.__version__}",
                file=sys.stderr,
            )
            super().build_extensions()
            print(
                f"gaussocc-ops: kernels compiled in {time.perf_counter() - start:.0f} s",
                file=sys.stderr,
            )
            for e in self.extensions:
                self._write_config(Path(self.get_ext_fullpath(e.name)))

        def copy_extensions_to_source(self):
            # in-place and editable builds: _C is copied into src/gaussocc_ops/, and so is its
            # description
            super().copy_extensions_to_source()
            build_py_cmd = self.get_finalized_command("build_py")
            package_dir = Path(build_py_cmd.get_package_dir("gaussocc_ops"))
            for e in self.extensions:
                name = Path(self.get_ext_filename(self.get_ext_fullname(e.name))).name
                self._write_config(package_dir / name)

        def _write_config(self, ext_path):
            text = B.build_config_text(
                ext_file=ext_path.name,
                with_cuda=with_cuda,
                cuda_archs=archs,
                torch_version=torch.__version__,
                torch_git_version=getattr(torch.version, "git_version", ""),
                torch_cuda_version=torch.version.cuda,
                source_hash=B.source_hash(CSRC, with_cuda),
                compiler=B.compiler_version(os.environ.get("CXX", "c++")),
            )
            (ext_path.parent / "_build_config.py").write_text(text)

    setup(
        ext_modules=[ext],
        cmdclass={"build_ext": BuildExtWithConfig, "build_py": BuildPyWithSources},
    )


def _rel(paths):
    return [os.path.relpath(p, ROOT) for p in paths]


_torch_module = _torch()
if _torch_module is None:
    _pure_python_setup()
else:
    _compiled_setup(_torch_module)
