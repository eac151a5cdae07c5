"""Compiles the kernels on first use, for the running torch, and caches them.

Used by :mod:`gaussocc_ops._ext` when no prebuilt ``gaussocc_ops._C`` matches the running torch
(pip's default build isolation installs none). The sources are the checkout's ``csrc/`` or the
copy a wheel carries as ``gaussocc_ops/_csrc``. ``torch.utils.cpp_extension.load`` compiles them
with ninja: the CPU kernels always, the CUDA kernels too when torch is a CUDA build and nvcc is
found. The library lands in ``<cache>/<key>/``, where the key names the torch version and git
hash, its CUDA version, the Python version, the CUDA architectures and a hash of the sources
and flags, so a changed torch or changed sources compile again and everything else loads in
milliseconds.

``<cache>`` is ``$GAUSSOCC_CACHE_DIR``, by default the user cache folder
(``$XDG_CACHE_HOME/gaussocc_ops`` or ``~/.cache/gaussocc_ops`` on Linux). A file lock per key
makes concurrent first uses (say eight DDP ranks) compile once: the others wait and load.
Compiling is announced on stderr, with the time it took. A failed compile is remembered (its log
is kept) so that later processes do not repeat it; delete the key's folder to try again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gaussocc_ops import _build

LIB_NAME = "gaussocc_ops_C"
LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"


class JitUnavailable(RuntimeError):
    """The kernels cannot be compiled here; the message names what is missing."""


@dataclass
class JitResult:
    library: str
    with_cuda: bool
    cuda_archs: tuple[str, ...]
    no_cuda_reason: str | None
    build_dir: str
    compiled_now: bool
    seconds: float | None  # compile time, when compiled by this process


def _say(msg: str) -> None:
    print(f"gaussocc_ops: {msg}", file=sys.stderr, flush=True)


def csrc_dir() -> Path | None:
    """The C++/CUDA sources: the wheel's ``gaussocc_ops/_csrc`` or the checkout's ``csrc``."""
    pkg = Path(__file__).resolve().parent
    for cand in (pkg / "_csrc", pkg.parents[1] / "csrc"):
        if _build.is_csrc(cand):
            return cand
    return None


def cache_root() -> Path:
    """``$GAUSSOCC_CACHE_DIR``, else the platform's user cache folder + ``gaussocc_ops``."""
    env = os.environ.get("GAUSSOCC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "gaussocc_ops"


def _ninja_dir() -> str | None:
    """Folder of a ninja executable: PATH first, then the ``ninja`` Python package."""
    found = shutil.which("ninja")
    if found:
        return str(Path(found).parent)
    try:
        import ninja  # the PyPI package; its binary is not on PATH unless the venv is active
    except ImportError:
        return None
    path = Path(ninja.BIN_DIR)
    return str(path) if (path / "ninja").exists() or (path / "ninja.exe").exists() else None


def _cuda_plan() -> tuple[bool, tuple[str, ...], str | None]:
    """(build the CUDA kernels?, architectures, why not)."""
    if torch.version.cuda is None:
        return False, (), "torch is a CPU-only build"
    if os.environ.get("GAUSSOCC_FORCE_CPU", "0") == "1":
        return False, (), "GAUSSOCC_FORCE_CPU=1"
    from torch.utils.cpp_extension import CUDA_HOME

    if not CUDA_HOME:
        return False, (), "nvcc was not found (put it on PATH or set CUDA_HOME)"
    home = Path(CUDA_HOME)
    nvcc = home / "bin" / ("nvcc.exe" if sys.platform == "win32" else "nvcc")
    if not nvcc.exists():
        return False, (), f"CUDA_HOME={CUDA_HOME} has no bin/nvcc (set CUDA_HOME)"
    if not (home / "include" / "cuda_runtime.h").exists():
        return False, (), f"CUDA_HOME={CUDA_HOME} has no include/cuda_runtime.h (set CUDA_HOME)"
    return True, _cuda_archs(), None


def _cuda_archs() -> tuple[str, ...]:
    """``TORCH_CUDA_ARCH_LIST`` if set; else the visible GPUs' architectures; else the default."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env and env != "native":
        return _build.split_archs(env)
    archs = set()
    try:
        if not torch.cuda._is_in_bad_fork() and torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                major, minor = torch.cuda.get_device_capability(i)
                archs.add(f"{major}.{minor}")
    except Exception:  # no driver, or CUDA unusable in this process: build the default set
        archs = set()
    if not archs:
        return _build.split_archs(_build.DEFAULT_CUDA_ARCHS)
    return tuple(sorted(archs, key=lambda a: tuple(int(x) for x in a.split("."))))


def _key(with_cuda: bool, archs: tuple[str, ...], digest: str) -> str:
    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    if with_cuda:
        variant = f"cuda{torch.version.cuda}-sm" + "_".join(a.replace(".", "") for a in archs)
    else:
        variant = "cpu"
    # the git hash tells apart torch builds that share a version string (source builds)
    git = (getattr(torch.version, "git_version", "") or "nogit")[:8]
    key = f"torch{torch.__version__}-{git}-{py}-{variant}-{digest[:16]}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", key)


def _load_library(path: Path) -> None:
    try:
        torch.ops.load_library(str(path))
    except (OSError, RuntimeError) as exc:  # a damaged file, or a torch it was not built for
        raise JitUnavailable(
            f"loading the cached kernels {path} failed ({type(exc).__name__}: {exc}); "
            f"delete {path.parent} to compile them again"
        ) from exc


def _read_meta(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load(reasons: list[str]) -> JitResult:
    """Loads the cached kernels for this torch, compiling them first if needed.

    ``reasons``: why the prebuilt kernels are not used (announced with the compile).
    Raises :class:`JitUnavailable` naming what is missing when nothing can be compiled.
    """
    csrc = csrc_dir()
    if csrc is None:
        raise JitUnavailable(
            "the C++ sources are not installed (neither gaussocc_ops/_csrc nor a checkout's "
            "csrc/ was found), so the kernels cannot be compiled"
        )
    with_cuda, archs, no_cuda = _cuda_plan()
    digest = _build.source_hash(csrc, with_cuda)
    build_dir = cache_root() / _key(with_cuda, archs, digest)
    lib = build_dir / (LIB_NAME + LIB_EXT)
    meta_path = build_dir / "build.json"

    def result(compiled_now: bool, seconds: float | None) -> JitResult:
        return JitResult(str(lib), with_cuda, archs, no_cuda, str(build_dir), compiled_now, seconds)

    if _read_meta(meta_path) is not None and lib.is_file():  # built before: no lock needed
        _load_library(lib)
        return result(False, None)

    _check_tools()
    from filelock import FileLock, Timeout  # a dependency of torch

    try:
        build_dir.parent.mkdir(parents=True, exist_ok=True)
        probe = build_dir.parent / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise JitUnavailable(
            f"the kernel cache {build_dir.parent} is not writable ({exc}); set "
            "GAUSSOCC_CACHE_DIR to a writable folder"
        ) from exc
    lock = FileLock(str(build_dir) + ".lock")
    try:
        lock.acquire(timeout=1)
    except Timeout:
        _say(f"waiting for another process that is compiling the kernels into {build_dir}")
        lock.acquire()
    try:
        if _read_meta(meta_path) is not None and lib.is_file():  # the other process built it
            _load_library(lib)
            return result(False, None)
        failed = build_dir / "failed.txt"
        if failed.is_file():
            raise JitUnavailable(
                f"compiling the kernels failed before ({failed.read_text().strip()}); "
                f"delete {build_dir} to try again"
            )
        seconds = _compile(csrc, build_dir, with_cuda, archs, no_cuda, reasons)
        meta = {
            "torch": torch.__version__,
            "torch_git_version": getattr(torch.version, "git_version", ""),
            "torch_cuda": torch.version.cuda,
            "with_cuda": with_cuda,
            "cuda_archs": list(archs),
            "no_cuda_reason": no_cuda,
            "source_hash": digest,
            "compiler": _build.compiler_version(os.environ.get("CXX", "c++")),
            "seconds": round(seconds, 1),
            "library": lib.name,
        }
        tmp = meta_path.with_name(f"build.json.tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, meta_path)
    finally:
        lock.release()
    _load_library(lib)
    return result(True, seconds)


def _check_tools() -> None:
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise JitUnavailable(
            f"no C++ compiler: {cxx!r} is not on PATH (install g++ or clang++, or set CXX), so "
            "the kernels cannot be compiled"
        )
    if _ninja_dir() is None:
        raise JitUnavailable("ninja is not installed (pip install ninja)")
    try:
        import setuptools  # noqa: F401  (torch.utils.cpp_extension imports it)
    except ImportError as exc:
        raise JitUnavailable(
            "setuptools is not installed (pip install setuptools); torch.utils.cpp_extension "
            "needs it to compile the kernels"
        ) from exc


def _compile(csrc, build_dir, with_cuda, archs, no_cuda, reasons) -> float:
    from torch.utils import cpp_extension

    src = _build.find_sources(csrc)
    build_dir.mkdir(parents=True, exist_ok=True)
    # A lock file left by torch's own build lock when a process was killed mid-build would make
    # the next build wait forever; we hold our lock, so nobody else is building here.
    stale = build_dir / "lock"
    if stale.exists():
        stale.unlink()
    units = _build.write_unity_sources(src, build_dir / "src", with_cuda)
    sources = [str(u) for u in units] + ([str(f) for f in src.cuda_kernels] if with_cuda else [])
    defines = ["-DGAUSSOCC_NO_PYTHON_MODULE"] + (["-DGAUSSOCC_WITH_CUDA=1"] if with_cuda else [])
    torch_dir = Path(torch.__file__).parent
    cuda_headers = _build.cuda_library_include_flags(torch_dir) if with_cuda else []

    sms = ", ".join("sm_" + a.replace(".", "") for a in archs)
    what = f"CPU + CUDA ({sms})" if with_cuda else "CPU"
    why = "; ".join(reasons) if reasons else "no prebuilt kernels for this torch"
    _say(f"{why}.")
    estimate = "a few minutes" if with_cuda else "about 30 s on 2 idle cores"
    _say(
        f"compiling the {what} kernels for torch {torch.__version__} now, once ({estimate}); "
        f"cached in {build_dir}"
    )
    if no_cuda and torch.version.cuda is not None:
        _say(f"no CUDA kernels: {no_cuda}")

    env_saved = {k: os.environ.get(k) for k in ("PATH", "TORCH_CUDA_ARCH_LIST")}
    ninja_dir = _ninja_dir()
    if ninja_dir and shutil.which("ninja") is None:
        os.environ["PATH"] = ninja_dir + os.pathsep + os.environ.get("PATH", "")
    if with_cuda:
        os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(archs)
    start = time.perf_counter()
    try:
        cpp_extension.load(
            name=LIB_NAME,
            sources=sources,
            extra_cflags=list(_build.CXX_FLAGS) + defines + cuda_headers,
            extra_cuda_cflags=list(_build.NVCC_FLAGS) + defines,
            extra_include_paths=[str(d) for d in src.include_dirs],
            build_directory=str(build_dir),
            with_cuda=with_cuda,
            is_python_module=False,
            verbose=os.environ.get("GAUSSOCC_VERBOSE", "0") == "1",
        )
    except Exception as exc:
        log = build_dir / "build.log"
        log.write_text(f"{type(exc).__name__}: {exc}\n")
        (build_dir / "failed.txt").write_text(f"{type(exc).__name__}; log: {log}\n")
        _say(f"compiling the kernels FAILED after {time.perf_counter() - start:.0f} s; log: {log}")
        raise JitUnavailable(f"compiling the kernels failed (log: {log})") from exc
    finally:
        for k, v in env_saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    _say(f"kernels compiled in {seconds:.0f} s")
    return seconds
