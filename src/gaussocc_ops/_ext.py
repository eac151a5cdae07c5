"""Finds, loads (compiling if needed) and reports the compiled kernels.

``import gaussocc_ops`` loads nothing and never fails because of the kernels. The first call
that needs one (any op, :func:`has_op`, :func:`build_info`) loads them, in this order:

1. the prebuilt ``gaussocc_ops._C`` (``pip install --no-build-isolation``), if the
   ``_build_config.py`` written next to it says it was built for exactly the running torch; a
   prebuilt ``_C`` built for another torch is never loaded;
2. otherwise the just-in-time build for the running torch (:mod:`gaussocc_ops._jit`), from the
   cache or compiled now (announced on stderr);
3. otherwise nothing: every op runs its pure-PyTorch reference implementation (slow, correct),
   after one warning naming what is missing.

``GAUSSOCC_KERNELS`` chooses: ``auto`` (the above, default), ``prebuilt`` (1 or 3: never compile
at run time), ``jit`` (2 or 3: ignore a prebuilt ``_C``), ``reference`` (3).
"""

from __future__ import annotations

import importlib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gaussocc_ops import _build, _jit

MODES = ("auto", "prebuilt", "jit", "reference")


@dataclass
class _State:
    attempted: bool = False
    source: str | None = None  # "prebuilt" or "jit" once loaded
    library: str | None = None  # path of the loaded shared library
    with_cuda: bool = False
    cuda_archs: tuple[str, ...] = ()
    no_cuda_reason: str | None = None
    built_torch: str | None = None
    built_torch_cuda: str | None = None
    error: str | None = None  # why no compiled kernels are loaded
    notes: list[str] = field(default_factory=list)  # e.g. why the prebuilt _C was not used
    jit_dir: str | None = None
    compile_seconds: float | None = None


_state = _State()
_C = None  # the prebuilt module, when that is what was loaded
_lock = threading.RLock()
_on_load: list[tuple[str, Callable[[], None]]] = []
_warned: set[str] = set()


def mode() -> str:
    """The value of ``GAUSSOCC_KERNELS`` (default ``"auto"``)."""
    value = os.environ.get("GAUSSOCC_KERNELS", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"GAUSSOCC_KERNELS must be one of {', '.join(MODES)}, got {value!r}")
    return value


def _torch_desc(version: str | None, cuda: str | None) -> str:
    return f"torch {version}" + (f" (CUDA {cuda})" if cuda else "")


def prebuilt_status() -> tuple[bool, str, object | None]:
    """Whether the prebuilt ``_C`` may be loaded into this torch, without loading it.

    Returns ``(usable, why not, build config module or None)``.
    """
    try:
        cfg = importlib.import_module("gaussocc_ops._build_config")
    except ImportError:
        return False, "no prebuilt kernels were installed", None
    ext = getattr(cfg, "EXT_FILE", None)
    if ext is None:
        return False, "gaussocc_ops/_build_config.py is from an older build (rebuild it)", cfg
    if not (Path(__file__).parent / ext).is_file():
        return False, f"the prebuilt kernels gaussocc_ops/{ext} are missing", cfg
    built = (cfg.TORCH_VERSION, cfg.TORCH_GIT_VERSION, cfg.TORCH_CUDA_VERSION)
    running = (torch.__version__, getattr(torch.version, "git_version", ""), torch.version.cuda)
    if built != running:
        return (
            False,
            f"the prebuilt kernels (gaussocc_ops/{ext}) were built for "
            f"{_torch_desc(cfg.TORCH_VERSION, cfg.TORCH_CUDA_VERSION)} and are not loaded into "
            f"{_torch_desc(torch.__version__, torch.version.cuda)}",
            cfg,
        )
    return True, "", cfg


def _load_prebuilt(cfg) -> bool:
    global _C
    try:
        _C = importlib.import_module("gaussocc_ops._C")  # registers torch.ops.gaussocc.*
    except (ImportError, OSError) as exc:  # e.g. a missing system library
        _state.notes.append(f"the prebuilt kernels failed to load: {type(exc).__name__}: {exc}")
        return False
    _state.source = "prebuilt"
    _state.library = str(Path(_C.__file__).resolve())
    _state.with_cuda = bool(getattr(_C, "with_cuda", 0))
    _state.cuda_archs = tuple(cfg.CUDA_ARCHS) if _state.with_cuda else ()
    if not _state.with_cuda:
        _state.no_cuda_reason = (
            "torch is a CPU-only build"
            if torch.version.cuda is None
            else "the prebuilt kernels were compiled without CUDA (no nvcc at install time?)"
        )
    _state.built_torch, _state.built_torch_cuda = cfg.TORCH_VERSION, cfg.TORCH_CUDA_VERSION
    _warn_if_stale(cfg)
    return True


def _warn_if_stale(cfg) -> None:
    """In a checkout, say when csrc/ changed after ``_C`` was built (rebuild to use the change)."""
    csrc = _jit.csrc_dir()
    if csrc is None or csrc.name != "csrc":
        return
    if _build.source_hash(csrc, cfg.WITH_CUDA) != getattr(cfg, "SOURCE_HASH", None):
        warnings.warn(
            "gaussocc_ops: csrc/ changed after gaussocc_ops._C was built; the loaded kernels are "
            "the old ones. Rebuild: pip install --no-build-isolation -e . "
            "(or bash scripts/setup_env.sh)",
            stacklevel=4,
        )


def _load() -> None:
    m = mode()
    if m == "reference":
        _state.error = "GAUSSOCC_KERNELS=reference"
        return
    if m in ("auto", "prebuilt"):
        usable, why, cfg = prebuilt_status()
        if usable and _load_prebuilt(cfg):
            return
        if why:
            _state.notes.append(why)
        if m == "prebuilt":
            _state.error = "; ".join(_state.notes) + " (GAUSSOCC_KERNELS=prebuilt)"
            return
    else:
        _state.notes.append("GAUSSOCC_KERNELS=jit")
    try:
        res = _jit.load(_state.notes)
    except _jit.JitUnavailable as exc:
        _state.error = "; ".join([*_state.notes, str(exc)])
        return
    except Exception as exc:  # never let the kernels break an op: fall back, and say why
        _state.error = "; ".join(
            [*_state.notes, f"building the kernels failed: {type(exc).__name__}: {exc}"]
        )
        return
    _state.source = "jit"
    _state.library = res.library
    _state.with_cuda = res.with_cuda
    _state.cuda_archs = res.cuda_archs
    _state.no_cuda_reason = res.no_cuda_reason
    _state.built_torch, _state.built_torch_cuda = torch.__version__, torch.version.cuda
    _state.jit_dir = res.build_dir
    _state.compile_seconds = res.seconds


def ensure_loaded() -> bool:
    """Loads the kernels on the first call (see the module docstring); True when loaded."""
    if not _state.attempted:
        with _lock:
            if not _state.attempted:
                _load()  # raises only for an invalid GAUSSOCC_KERNELS (then it raises again)
                _state.attempted = True
                for op, fn in _on_load:
                    if _has_registered_op(op):
                        fn()
    return _state.source is not None


def on_load(op: str, fn: Callable[[], None]) -> None:
    """Runs ``fn`` (autograd / fake registrations of ``op``) once the kernels providing
    ``torch.ops.gaussocc.<op>`` are loaded: now if they are, else when they get loaded."""
    with _lock:
        if _state.attempted:
            if _has_registered_op(op):
                fn()
        else:
            _on_load.append((op, fn))


def _has_registered_op(name: str) -> bool:
    return _state.source is not None and hasattr(torch.ops.gaussocc, name)


def extension_loaded() -> bool:
    """True when compiled kernels are loaded (loading them if needed)."""
    return ensure_loaded()


def has_op(name: str) -> bool:
    """True when the compiled op ``torch.ops.gaussocc.<name>`` exists (loading if needed)."""
    return ensure_loaded() and _has_registered_op(name)


def has_cuda_kernels() -> bool:
    """True when the loaded kernels include the CUDA ones."""
    return ensure_loaded() and _state.with_cuda


def kernel_available(name: str, device: torch.device) -> bool:
    """True when op ``name`` has a compiled kernel for ``device``'s type."""
    if not has_op(name):
        return False
    if device.type == "cuda":
        return _state.with_cuda
    return device.type == "cpu"


def _fallback_reason() -> str:
    if _state.error:
        return _state.error
    if not _state.with_cuda and _state.no_cuda_reason:
        return f"the kernels have no CUDA part: {_state.no_cuda_reason}"
    return "the compiled kernels have no kernel for this op on this device"


def warn_fallback(name: str) -> None:
    """Warn once per cause that ops run on the slow reference path (the first one is named)."""
    ensure_loaded()
    reason = _fallback_reason()
    if reason in _warned:
        return
    _warned.add(reason)
    warnings.warn(
        f"gaussocc_ops: no compiled kernel for '{name}' ({reason}); using the pure-PyTorch "
        "reference implementation, which is slow. This warning is shown once; "
        "`python -m gaussocc_ops` reports the setup.",
        stacklevel=3,
    )


def library_path() -> str | None:
    """Path of the loaded kernel library (the prebuilt ``_C`` or the just-in-time build)."""
    ensure_loaded()
    return _state.library


def build_info() -> dict:
    """What compiled kernels are loaded, from where, and why not (loads them if needed).

    Returns a dict with keys ``extension`` (bool: compiled kernels loaded), ``source``
    (``"prebuilt"``, ``"jit"`` or None), ``library`` (path of the loaded shared library),
    ``error`` (why none are loaded, or None), ``notes`` (e.g. why a prebuilt ``_C`` was not
    used), ``cpu_kernels``, ``cuda_kernels`` (bool), ``cuda_archs`` (tuple of str),
    ``no_cuda_reason``, ``ops`` (sorted names of the registered ops), ``torch`` and
    ``torch_cuda`` (versions the kernels were built against), ``cuda_available`` (a CUDA device
    is usable now), ``mode`` (``GAUSSOCC_KERNELS``), ``cache_dir`` (the just-in-time cache) and
    ``jit_dir`` (the cache entry in use, or None).

    Example:
        >>> info = build_info()
        >>> info["source"] in ("prebuilt", "jit", None)
        True
        >>> "rasterize" in info["ops"] or not info["extension"]
        True
    """
    loaded = ensure_loaded()
    ops: list[str] = []
    if loaded:
        ops = sorted(
            name.split("::", 1)[1]
            for name in torch._C._dispatch_get_all_op_names()
            if name.startswith("gaussocc::")
        )
    return {
        "extension": loaded,
        "source": _state.source,
        "library": _state.library,
        "error": _state.error,
        "notes": list(_state.notes),
        "cpu_kernels": loaded,
        "cuda_kernels": loaded and _state.with_cuda,
        "cuda_archs": _state.cuda_archs,
        "no_cuda_reason": _state.no_cuda_reason,
        "ops": ops,
        "torch": _state.built_torch,
        "torch_cuda": _state.built_torch_cuda,
        "cuda_available": torch.cuda.is_available(),
        "mode": mode(),
        "cache_dir": str(_jit.cache_root()),
        "jit_dir": _state.jit_dir,
    }
