"""Brute-force reference of the radius index query: every query against every filed slot."""

from __future__ import annotations

import torch

from gaussocc_ops.reference.radius import radius_neighbors


def radius_index_query(
    slot_node: torch.Tensor,
    points: torch.Tensor,
    queries: torch.Tensor,
    radius: float,
    max_neighbors: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest ``<= max_neighbors`` filed slots (``slot_node >= 0``) of ``points [P, 3]``
    within ``radius`` of each query ``[M, 3]``: ``(slots [M, K] int64, -1 padded; distances
    [M, K], inf padded)``, nearest first, ties by the smaller slot."""
    filed = (slot_node[: points.shape[0]] >= 0).nonzero().squeeze(1)
    idx, dist = radius_neighbors(queries[None], points[filed][None], radius, max_neighbors)
    idx, dist = idx[0], dist[0]
    slots = torch.where(idx >= 0, filed[idx.clamp_min(0)], idx) if filed.numel() else idx
    return slots, dist
