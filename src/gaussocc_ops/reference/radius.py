"""Brute-force reference of radius neighbour search: every query against every point."""

from __future__ import annotations

import torch


def radius_neighbors(
    queries: torch.Tensor,
    points: torch.Tensor,
    radius: float,
    max_neighbors: int,
    cell_size: float = 0.0,
    *,
    chunk_elems: int = 1 << 24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest ``<= max_neighbors`` points within ``radius`` (inclusive) of each query, by brute
    force (the op ``radius_neighbors``; ``cell_size``, the kernels' grid cell, changes nothing
    in the result and is not used).

    Args:
        queries ``[B, M, 3]``, points ``[B, N, 3]`` (same float dtype).

    Returns:
        indices ``[B, M, K]`` int64 (``-1`` padded) and distances ``[B, M, K]`` (``inf`` padded),
        sorted by distance, ties by index. Squared distances are ``(dx² + dy²) + dz²`` in the input
        dtype and compared against ``radius²`` rounded to it, as the kernels do.
    """
    B, M, _ = queries.shape
    N = points.shape[1]
    K = max_neighbors
    idx = torch.full((B, M, K), -1, dtype=torch.long, device=queries.device)
    dist = torch.full((B, M, K), float("inf"), dtype=queries.dtype, device=queries.device)
    if B * M * N * K == 0:
        return idx, dist
    r2 = torch.tensor(radius * radius, dtype=queries.dtype, device=queries.device)
    step = max(1, chunk_elems // max(1, B * N))
    for start in range(0, M, step):
        q = queries[:, start : start + step]
        diff = q[:, :, None, :] - points[:, None, :, :]
        dx, dy, dz = diff.unbind(-1)
        d2 = (dx * dx + dy * dy) + dz * dz
        inside = d2 <= r2
        # points outside sort last; the stable sort keeps index order among equal distances
        key = torch.where(inside, d2, torch.full_like(d2, float("inf")))
        order = torch.sort(key, dim=-1, stable=True).indices[..., :K]
        k = order.shape[-1]
        found = torch.gather(inside, -1, order)
        d = torch.gather(d2, -1, order).sqrt()
        idx[:, start : start + step, :k] = torch.where(found, order, torch.full_like(order, -1))
        dist[:, start : start + step, :k] = torch.where(found, d, torch.full_like(d, float("inf")))
    return idx, dist
