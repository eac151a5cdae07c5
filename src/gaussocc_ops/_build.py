"""What the compiled kernels are built from, and how: one description shared by ``setup.py``
(the ahead-of-time build) and :mod:`gaussocc_ops._jit` (the build on first use).

This module imports only the standard library: ``setup.py`` loads it by path, before torch or
this package can be imported.

Compile time is dominated by parsing torch's headers (about 5 s of CPU per translation unit for
``torch/library.h`` alone, on the machines this was measured on), so the C++ files are compiled
as a few *unity* translation units that ``#include`` the sources: ``extension.cpp``,
``ops/*.cpp`` and ``cpu/*.cpp`` in :data:`CPU_GROUPS` groups, the CUDA adapters
(``cuda/*_launch.cpp``) in one more. Error messages still name the original files and lines. The
``.cu`` files carry no torch headers and are compiled one by one by nvcc.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

# Bumped whenever the flags or the unity layout change: it is part of the source hash, so that
# kernels cached by the just-in-time build are rebuilt.
BUILD_SCHEME = "2"

CXX_FLAGS = ["-O3", "-g0", "-DNDEBUG", "-std=c++20"]
NVCC_FLAGS = ["-O3", "-std=c++17", "-lineinfo"]
CPU_GROUPS = 2
DEFAULT_CUDA_ARCHS = "8.0;9.0"
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cu", ".cuh")


@dataclass
class Sources:
    """The C++/CUDA sources under one ``csrc`` folder."""

    csrc: Path
    cpu: list[Path] = field(default_factory=list)  # extension.cpp, ops/*.cpp, cpu/*.cpp
    cuda_adapters: list[Path] = field(default_factory=list)  # cuda/*_launch.cpp
    cuda_kernels: list[Path] = field(default_factory=list)  # cuda/*.cu

    @property
    def include_dirs(self) -> list[Path]:
        return [self.csrc / "include", self.csrc]


def find_sources(csrc: Path) -> Sources:
    csrc = Path(csrc)
    return Sources(
        csrc=csrc,
        cpu=[csrc / "extension.cpp"]
        + sorted((csrc / "ops").glob("*.cpp"))
        + sorted((csrc / "cpu").glob("*.cpp")),
        cuda_adapters=sorted((csrc / "cuda").glob("*_launch.cpp")),
        cuda_kernels=sorted((csrc / "cuda").glob("*.cu")),
    )


def is_csrc(path: Path) -> bool:
    """True when ``path`` looks like this project's ``csrc`` folder."""
    return (path / "extension.cpp").is_file() and (path / "cpu").is_dir()


def source_files(csrc: Path, with_cuda: bool) -> list[Path]:
    """Every file a build reads: all of ``csrc`` except ``cuda/`` unless ``with_cuda``."""
    files = []
    for p in sorted(Path(csrc).rglob("*")):
        if not p.is_file() or p.suffix not in SOURCE_SUFFIXES:
            continue
        rel = p.relative_to(csrc)
        if rel.parts[0] == "cuda" and not with_cuda:
            continue
        files.append(p)
    return files


def source_hash(csrc: Path, with_cuda: bool) -> str:
    """SHA-256 over the build scheme, the flags and every source file a build reads."""
    csrc = Path(csrc)
    h = hashlib.sha256()
    h.update(f"scheme={BUILD_SCHEME} cxx={CXX_FLAGS} nvcc={NVCC_FLAGS} cuda={with_cuda}\n".encode())
    for p in source_files(csrc, with_cuda):
        h.update(p.relative_to(csrc).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def _weight(path: Path) -> int:
    # Lines of code approximate the code-generation cost; every file shares the header cost.
    return 200 + sum(1 for _ in path.open(encoding="utf-8", errors="replace"))


def unity_groups(files: list[Path], groups: int) -> list[list[Path]]:
    """Splits ``files`` into at most ``groups`` lists of similar weight (deterministic)."""
    bins: list[list[Path]] = [[] for _ in range(max(1, min(groups, len(files))))]
    load = [0] * len(bins)
    for f in sorted(files, key=lambda p: (-_weight(p), p.as_posix())):
        i = load.index(min(load))
        bins[i].append(f)
        load[i] += _weight(f)
    order = {f: k for k, f in enumerate(files)}
    return [sorted(b, key=order.__getitem__) for b in bins if b]


def _write_if_changed(path: Path, text: str) -> None:
    # An unchanged file keeps its mtime, so ninja does not recompile it.
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_unity_sources(src: Sources, out_dir: Path, with_cuda: bool) -> list[Path]:
    """Writes the unity translation units into ``out_dir``; returns them (``.cu`` not included).

    Each unit only ``#include``s files of ``csrc`` by their path relative to it (``csrc`` is on
    the include path), so the units stay valid wherever ``csrc`` lives.
    """
    out_dir = Path(out_dir)
    units = []
    parts = [("cpu", g) for g in unity_groups(src.cpu, CPU_GROUPS)]
    if with_cuda and src.cuda_adapters:
        parts.append(("cuda_adapters", src.cuda_adapters))
    counts: dict[str, int] = {}
    for kind, files in parts:
        k = counts.get(kind, 0)
        counts[kind] = k + 1
        lines = [
            "// Generated by gaussocc_ops/_build.py: one translation unit for several sources,",
            "// so that torch's headers are parsed once for all of them. Do not edit.",
        ]
        lines += [f'#include "{f.relative_to(src.csrc).as_posix()}"' for f in files]
        unit = out_dir / f"unity_{kind}_{k}.cpp"
        _write_if_changed(unit, "\n".join(lines) + "\n")
        units.append(unit)
    return units


def cuda_library_include_flags(torch_dir: Path) -> list[str]:
    """``-idirafter`` flags for the CUDA library headers of a pip-installed CUDA torch.

    torch's ``ATen/cuda`` headers include cuBLAS, cuSPARSE and cuSOLVER headers. A pip CUDA torch
    brings them in its ``nvidia-*`` wheels (``site-packages/nvidia/*/include``), while the CUDA
    toolkit that provides nvcc may lack them (a minimal toolkit). Searched after every other
    folder, so a complete toolkit's own headers win. For the C++ compiler only: the ``.cu``
    files include no torch headers.
    """
    nvidia = Path(torch_dir).parent / "nvidia"
    flags = []
    for d in sorted(nvidia.glob("*/include")):
        flags += ["-idirafter", str(d)]
    return flags


def cuda_arch_list(env: dict | None = None) -> str:
    """``TORCH_CUDA_ARCH_LIST`` if set, else :data:`DEFAULT_CUDA_ARCHS` (ahead-of-time builds)."""
    env = os.environ if env is None else env
    archs = env.get("TORCH_CUDA_ARCH_LIST", "").strip()
    return archs or DEFAULT_CUDA_ARCHS


def split_archs(archs: str) -> tuple[str, ...]:
    return tuple(a for a in archs.replace(" ", ";").split(";") if a)


def build_config_text(
    *,
    ext_file: str,
    with_cuda: bool,
    cuda_archs: tuple[str, ...],
    torch_version: str,
    torch_git_version: str,
    torch_cuda_version: str | None,
    source_hash: str,
    compiler: str,
) -> str:
    """The ``_build_config.py`` written next to an ahead-of-time built ``_C``."""
    return (
        "# Written by setup.py when it built the extension next to this file.\n"
        f"EXT_FILE = {ext_file!r}\n"
        f"WITH_CUDA = {with_cuda!r}\n"
        f"CUDA_ARCHS = {tuple(cuda_archs)!r}\n"
        f"TORCH_VERSION = {torch_version!r}\n"
        f"TORCH_GIT_VERSION = {torch_git_version!r}\n"
        f"TORCH_CUDA_VERSION = {torch_cuda_version!r}\n"
        f"SOURCE_HASH = {source_hash!r}\n"
        f"COMPILER = {compiler!r}\n"
    )


def compiler_version(cxx: str) -> str:
    """First line of ``cxx --version``, or '' when it cannot be run."""
    import subprocess

    try:
        out = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.splitlines()[0].strip() if out else ""
