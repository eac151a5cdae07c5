"""Radius neighbour search on a sorted cell grid (a spatial hash): O(N log N + M) per batch."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _ext
from gaussocc_ops._checks import (
    check_finite,
    check_float,
    check_same_device,
    check_tensor,
    compute_dtype,
)
from gaussocc_ops.reference import radius as ref

Backend = Literal["auto", "reference", "cpu", "cuda"]


class RadiusNeighbors(NamedTuple):
    """``indices [..., M, K]`` int64 into the points (``-1`` where fewer than K were found) and
    ``distances [..., M, K]`` (Euclidean, ``inf`` at padding), nearest first, ties by index."""

    indices: torch.Tensor
    distances: torch.Tensor


def radius_neighbors(
    queries: torch.Tensor,
    points: torch.Tensor,
    radius: float,
    max_neighbors: int,
    *,
    cell_size: float | None = None,
    backend: Backend = "auto",
) -> RadiusNeighbors:
    """The nearest ``<= max_neighbors`` points within ``radius`` of each query.

    Neighbours of query ``q`` are the points ``p`` with ``|q - p| <= radius`` (inclusive; squared
    distances are compared in the compute dtype). The ``K = max_neighbors`` nearest are returned,
    sorted by distance with ties broken by the smaller point index, so the result is unique and
    independent of the backend. The kernels bin the points into cubic cells (edge ``cell_size``,
    default ``radius``) sorted by cell key and visit only the cells within ``radius`` of a query:
    ``O(N log N)`` to build, ``O(M (log N + neighbours in reach))`` to search, not ``O(N M)``.

    Batches are padded leading dimensions: ``queries [..., M, 3]`` and ``points [..., N, 3]`` with
    broadcastable batch shapes; queries of batch ``b`` only see points of batch ``b``. Ragged
    point sets can be padded with far-away points (further than ``radius`` from every query).

    Args:
        queries: ``[..., M, 3]`` query positions.
        points: ``[..., N, 3]`` point positions.
        radius: search radius ``>= 0`` (metres). ``0`` finds exact duplicates only.
        max_neighbors: ``K >= 0``, the most neighbours kept per query.
        cell_size: cell edge of the grid (default ``radius``; must be > 0 if given). Smaller cells
            visit more, emptier cells. It is enlarged where the point cloud would need more than
            ~2^20 cells per axis.
        backend: ``"cpu"``/``"cuda"`` (our kernels), ``"reference"`` (brute force) or ``"auto"``.

    Returns:
        :class:`RadiusNeighbors` ``(indices [B..., M, K] int64, distances [B..., M, K])`` with
        ``B...`` the broadcast batch shape; distances are float32 (float64 for float64 inputs)
        and not differentiable (gather the points with ``indices`` to differentiate).

    Example:
        >>> pts = torch.tensor([[0., 0, 0], [1., 0, 0], [0.3, 0, 0], [5., 5, 5]])
        >>> idx, dist = radius_neighbors(torch.zeros(1, 3), pts, radius=1.0, max_neighbors=2)
        >>> idx.tolist(), dist.tolist()
        ([[0, 2]], [[0.0, 0.30000001192092896]])
    """
    check_tensor("queries", queries, min_dim=2, last=(3,))
    check_tensor("points", points, min_dim=2, last=(3,))
    check_float("queries", queries)
    check_float("points", points)
    device = check_same_device(queries=queries, points=points)
    check_finite("queries", queries)
    check_finite("points", points)
    radius = _check_number("radius", radius, minimum=0.0, strict=False)
    if isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int) or max_neighbors < 0:
        raise ValueError(f"max_neighbors must be an int >= 0, got {max_neighbors!r}")
    if cell_size is not None:
        cell_size = _check_number("cell_size", cell_size, minimum=0.0, strict=True)
    try:
        batch = torch.broadcast_shapes(queries.shape[:-2], points.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"batch shapes of queries {tuple(queries.shape[:-2])} and points "
            f"{tuple(points.shape[:-2])} do not broadcast"
        ) from None
    backend = _resolve_backend(backend, device)
    dtype = compute_dtype(queries, points)
    M, N, B = queries.shape[-2], points.shape[-2], batch.numel()
    q = queries.detach().to(dtype).expand(*batch, M, 3).reshape(B, M, 3)
    p = points.detach().to(dtype).expand(*batch, N, 3).reshape(B, N, 3)
    if backend == "reference":
        idx, dist = ref.radius_neighbors(q, p, radius, max_neighbors)
    else:
        idx, dist = torch.ops.gaussocc.radius_neighbors(
            q, p, radius, max_neighbors, cell_size or 0.0
        )
    shape = (*batch, M, max_neighbors)
    return RadiusNeighbors(idx.reshape(shape), dist.reshape(shape))


def _check_number(name: str, value, *, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    ok = value > minimum if strict else value >= minimum
    if not ok or value == float("inf"):
        bound = ">" if strict else ">="
        raise ValueError(f"{name} must be finite and {bound} {minimum}, got {value}")
    return value


def _resolve_backend(backend: str, device: torch.device, op: str = "radius_neighbors") -> str:
    """``backend`` of a radius-search op (``radius_neighbors``, ``radius_index_query``) on
    ``device``: ``"auto"`` picks the compiled kernel where there is one, else the reference."""
    if backend not in ("auto", "reference", "cpu", "cuda"):
        raise ValueError(
            f"backend must be one of 'auto', 'reference', 'cpu', 'cuda', got {backend!r}"
        )
    if backend == "auto":
        if _ext.kernel_available(op, device):
            return device.type
        _ext.warn_fallback(op)
        return "reference"
    if backend != "reference":
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available(op, device):
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernel was not "
                f"compiled "
                f"(gaussocc_ops.build_info(): {_ext.build_info()['error'] or 'no such kernel'})"
            )
    return backend


def _register_fake():
    @torch.library.register_fake("gaussocc::radius_neighbors")
    def _(queries, points, radius, max_neighbors, cell_size):
        B, M = queries.shape[:2]
        return (
            queries.new_empty(B, M, max_neighbors, dtype=torch.long),
            queries.new_empty(B, M, max_neighbors),
        )


_ext.on_load("radius_neighbors", _register_fake)
