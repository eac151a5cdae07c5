"""Loads the compiled extension and reports what it provides.

``import gaussocc_ops`` never fails because of the extension: when it is missing or broken,
every op falls back to its pure-PyTorch reference implementation (slow, but correct), and
:func:`build_info` says why.
"""

from __future__ import annotations

import warnings

import torch

try:
    from gaussocc_ops import _C  # noqa: F401  (loading registers torch.ops.gaussocc.*)

    _LOAD_ERROR: str | None = None
except (ImportError, OSError) as exc:  # no compiler at install time, ABI mismatch, ...
    _C = None
    _LOAD_ERROR = f"{type(exc).__name__}: {exc}"

try:
    from gaussocc_ops import _build_config
except ImportError:
    _build_config = None

_warned: set[str] = set()


def extension_loaded() -> bool:
    """True when ``gaussocc_ops._C`` was imported."""
    return _C is not None


def has_op(name: str) -> bool:
    """True when the compiled op ``torch.ops.gaussocc.<name>`` exists."""
    if _C is None:
        return False
    return hasattr(torch.ops.gaussocc, name)


def has_cuda_kernels() -> bool:
    """True when the extension was compiled with its CUDA kernels."""
    return _C is not None and bool(getattr(_C, "with_cuda", 0))


def kernel_available(name: str, device: torch.device) -> bool:
    """True when op ``name`` has a compiled kernel for ``device``'s type."""
    if not has_op(name):
        return False
    if device.type == "cuda":
        return has_cuda_kernels()
    return device.type == "cpu"


def warn_fallback(name: str) -> None:
    """Warn once per op that it runs on the slow reference path."""
    if name in _warned:
        return
    _warned.add(name)
    reason = _LOAD_ERROR or "the extension was built without this kernel"
    warnings.warn(
        f"gaussocc_ops: no compiled kernel for '{name}' ({reason}); "
        "using the pure-PyTorch reference implementation, which is slow.",
        stacklevel=3,
    )


def build_info() -> dict:
    """What was compiled.

    Returns a dict with keys ``extension`` (bool), ``error`` (why loading failed, or None),
    ``cpu_kernels`` (bool), ``cuda_kernels`` (bool), ``cuda_archs`` (tuple of str),
    ``ops`` (sorted names of the registered ops), ``torch`` and ``torch_cuda`` (versions the
    extension was built against) and ``cuda_available`` (a CUDA device is usable now).

    Example:
        >>> info = build_info()
        >>> sorted(info)[:3], "rasterize" in info["ops"] or not info["extension"]
        (['cpu_kernels', 'cuda_archs', 'cuda_available'], True)
    """
    ops: list[str] = []
    if _C is not None:
        ops = sorted(
            name.split("::", 1)[1]
            for name in torch._C._dispatch_get_all_op_names()
            if name.startswith("gaussocc::")
        )
    return {
        "extension": _C is not None,
        "error": _LOAD_ERROR,
        "cpu_kernels": _C is not None,
        "cuda_kernels": has_cuda_kernels(),
        "cuda_archs": tuple(getattr(_build_config, "CUDA_ARCHS", ())) if has_cuda_kernels() else (),
        "ops": ops,
        "torch": getattr(_build_config, "TORCH_VERSION", None),
        "torch_cuda": getattr(_build_config, "TORCH_CUDA_VERSION", None),
        "cuda_available": torch.cuda.is_available(),
    }
