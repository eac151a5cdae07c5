"""Which implementation runs a compiled op, and the tensor plumbing every op shares.

Every public op

1. resolves its ``backend=`` argument with :func:`resolve` (one set of names and errors for all
   ops: ``"auto"`` takes the compiled kernel of the input's device and falls back to the
   reference, with one warning, where there is none);
2. flattens its batch dimensions with :func:`flatten` (broadcast, reshape to ``[B, ...]``, cast
   to the compute dtype, contiguous: the layout every kernel requires);
3. calls the op through :func:`kernel`: ``torch.ops.gaussocc.<name>`` for ``"cpu"``/``"cuda"``,
   and for ``"reference"`` the pure-PyTorch oracle of the same name and signature in
   :mod:`gaussocc_ops.reference`.

This is the only production module that reaches :mod:`gaussocc_ops.reference`, and importing it
registers the autograd formulas and fake kernels of the compiled ops
(:mod:`gaussocc_ops._autograd`, applied when the kernels are loaded).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from gaussocc_ops import _autograd, _ext  # noqa: F401  (_autograd: registrations on load)

Backend = Literal["auto", "reference", "cpu", "cuda"]
BACKENDS: tuple[str, ...] = ("auto", "reference", "cpu", "cuda")

# The oracle module (gaussocc_ops.reference.<module>) of each compiled op that has one: a
# function of the op's name and signature.
REFERENCE_MODULES = {
    "accumulate_gaussians": "accumulate",
    "project_gaussians": "splat",
    "rasterize": "splat",
    "radius_neighbors": "radius",
    "radius_index_insert": "radius_index",
    "radius_index_query": "radius_index",
    "raycast": "raycast",
    "snog_accept": "snog",
    "soft_gated_lift": "lift",
    "memory_fuse": "memory",
}


@torch.compiler.assume_constant_result
def _kernel_available(op: str, device_type: str) -> bool:
    # evaluated once when torch.compile traces a call: the loaded kernels do not change
    return _ext.kernel_available(op, torch.device(device_type))


def resolve(
    backend: str,
    device: torch.device,
    op: str,
    *,
    name: str | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The backend that runs the compiled op ``op`` on ``device``.

    Args:
        backend: ``"auto"`` (the compiled kernel of ``device`` if there is one, else
            ``"reference"`` after one warning), ``"reference"``, ``"cpu"``, ``"cuda"`` or one of
            ``extra`` (passed through, e.g. splatting's ``"gsplat"``).
        device: where the op's inputs are.
        op: the compiled op (``torch.ops.gaussocc.<op>``) whose availability decides.
        name: the public name used in the fallback warning (default ``op``).
        extra: further backend names the caller accepts.

    Returns:
        ``"reference"``, ``"cpu"``, ``"cuda"`` or one of ``extra``.

    Raises:
        ValueError: an unknown ``backend``, or ``"cpu"``/``"cuda"`` for tensors elsewhere.
        RuntimeError: ``"cpu"``/``"cuda"`` when that kernel was not compiled.
    """
    choices = (*BACKENDS, *extra)
    if backend not in choices:
        names = ", ".join(repr(c) for c in choices)
        raise ValueError(f"backend must be one of {names}, got {backend!r}")
    if backend == "auto":
        if device.type in ("cpu", "cuda") and _kernel_available(op, device.type):
            return device.type
        if not torch.compiler.is_compiling():
            _ext.warn_fallback(name or op)
        return "reference"
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _kernel_available(op, device.type):
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernel of {op} was "
                "not compiled (gaussocc_ops.build_info(): "
                f"{_ext.build_info()['error'] or 'no such kernel in this build'})"
            )
    return backend


def kernel(op: str, backend: str) -> Callable:
    """The function that runs ``op`` on a resolved ``backend``: ``torch.ops.gaussocc.<op>`` for
    ``"cpu"`` and ``"cuda"``, ``gaussocc_ops.reference.<module>.<op>`` for ``"reference"`` (the
    same signature and outputs)."""
    if backend == "reference":
        module = importlib.import_module(f"gaussocc_ops.reference.{REFERENCE_MODULES[op]}")
        return getattr(module, op)
    return getattr(torch.ops.gaussocc, op)


def flatten(
    t: torch.Tensor, batch: Sequence[int], tail: Sequence[int], dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``t`` broadcast to ``[*batch, *tail]``, reshaped to ``[B, *tail]`` (``B`` the product of
    ``batch``), cast to ``dtype`` (if given) and contiguous: the layout of every kernel."""
    if dtype is not None:
        t = t.to(dtype)
    B = 1
    for b in batch:
        B *= b
    return t.expand(*batch, *tail).reshape(B, *tail).contiguous()


def constant(values, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    """A small tensor of Python numbers on ``device``, copied there without blocking: a blocking
    host→device copy (``torch.tensor(values, device=...)``) waits for the GPU work queued before
    it, a synchronisation in the middle of a step."""
    t = torch.tensor(values, dtype=dtype)
    if device is None or torch.device(device).type == "cpu":
        return t
    return t.to(device, non_blocking=True)


def broadcast_batch(what: str, shape: Sequence[int], to: Sequence[int], to_what: str) -> torch.Size:
    """``torch.Size(to)`` when the batch shape ``shape`` broadcasts to it (expands to it without
    enlarging it); else a ValueError naming both."""
    try:
        out = torch.broadcast_shapes(tuple(shape), tuple(to))
    except RuntimeError:
        out = None
    if out != torch.Size(to):
        raise ValueError(
            f"{what} batch shape {tuple(shape)} does not broadcast to the {to_what} batch shape "
            f"{tuple(to)}"
        )
    return out
