"""Reference of the radius index ops, with their signatures: what is filed, not how.

The kernels keep a cell hash table (``table_keys``, ``table_heads``) of linked node lists
(``node_slot``, ``node_next``) as a search structure. The oracle keeps only what defines the
index's contents, in the same arrays: ``slot_node[s] >= 0`` iff slot ``s`` is filed, under the node
``slot_node[s]`` whose ``node_slot`` is ``s``, with ``slot_cell[s]`` its cell key, nodes numbered
in filing order by ``node_count``. The table arrays are taken and left untouched; the query is a
brute-force search over the filed slots.
"""

from __future__ import annotations

import torch

from gaussocc_ops.reference.radius import radius_neighbors

CELL_BITS = 21
CELL_BIAS = 1 << (CELL_BITS - 1)  # cell coordinates are clamped to [-2^20, 2^20)


def cell_keys(points: torch.Tensor, cell_size: float) -> torch.Tensor:
    """The int64 cell key of each point ``[m, 3]``: cell ``floor(x / cell_size)`` per axis
    (computed in float64), clamped to ``[-2^20, 2^20 - 1]``, biased by ``2^20`` and packed into
    21 bits per axis, x highest."""
    c = torch.floor(points.double() / cell_size).clamp(-CELL_BIAS, CELL_BIAS - 1).long() + CELL_BIAS
    return (c[:, 0] << (2 * CELL_BITS)) | (c[:, 1] << CELL_BITS) | c[:, 2]


def radius_index_insert(
    table_keys: torch.Tensor,
    table_heads: torch.Tensor,
    node_slot: torch.Tensor,
    node_next: torch.Tensor,
    slot_node: torch.Tensor,
    slot_cell: torch.Tensor,
    node_count: torch.Tensor,
    points: torch.Tensor,
    slots: torch.Tensor,
    cell_size: float,
    moved_only: bool,
) -> None:
    """The op ``radius_index_insert`` on the contents: files ``slots [m]`` (in order) at the cells
    of ``points[slots]``, each under a new node ``node_count, node_count + 1, ...``; with
    ``moved_only``, a filed slot that is still in its cell keeps its node. The table arrays and
    ``node_next`` are not used."""
    if slots.numel() == 0:
        return
    keys = cell_keys(points[slots], cell_size)
    if moved_only:
        stays = (slot_node[slots] >= 0) & (slot_cell[slots] == keys)
        slots, keys = slots[~stays], keys[~stays]
    nodes = node_count + torch.arange(slots.numel(), device=slots.device)
    node_slot[nodes] = slots
    slot_node[slots] = nodes
    slot_cell[slots] = keys
    node_count += slots.numel()


def radius_index_query(
    table_keys: torch.Tensor,
    table_heads: torch.Tensor,
    node_slot: torch.Tensor,
    node_next: torch.Tensor,
    slot_node: torch.Tensor,
    points: torch.Tensor,
    queries: torch.Tensor,
    cell_size: float,
    radius: float,
    max_neighbors: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The op ``radius_index_query``: the nearest ``<= max_neighbors`` filed slots
    (``slot_node >= 0``) of ``points [P, 3]`` within ``radius`` of each query ``[M, 3]``:
    ``(slots [M, K] int64, -1 padded; distances [M, K], inf padded)``, nearest first, ties by the
    smaller slot. Only ``slot_node`` and ``points`` are read."""
    filed = (slot_node[: points.shape[0]] >= 0).nonzero().squeeze(1)
    idx, dist = radius_neighbors(queries[None], points[filed][None], radius, max_neighbors)
    idx, dist = idx[0], dist[0]
    slots = torch.where(idx >= 0, filed[idx.clamp_min(0)], idx) if filed.numel() else idx
    return slots, dist
