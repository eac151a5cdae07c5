"""An incrementally updated radius-search index over a caller-owned point buffer."""

from __future__ import annotations

import torch

from gaussocc_ops import _dispatch
from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops._dispatch import Backend
from gaussocc_ops.constants import MAX_RADIUS_IN_CELLS
from gaussocc_ops.radius import RadiusNeighbors

__all__ = ["MAX_RADIUS_IN_CELLS", "RadiusIndex"]


class RadiusIndex:
    """Radius search over a point buffer whose rows ("slots") come, go and move, with every
    change costing O(changed points) instead of a rebuild over all of them.

    The index does not own the points: every call takes the caller's buffer ``points [P, 3]``
    and the ``slots`` (row numbers) it concerns. :meth:`insert` files slots, :meth:`update`
    re-files slots whose point moved, :meth:`remove` drops slots, and :meth:`query` returns, for
    each query, the ``max_neighbors`` nearest filed slots within ``radius`` (inclusive), nearest
    first, ties by the smaller slot: exactly :func:`gaussocc_ops.radius_neighbors` on the filed
    points, with slots for indices.

    Structure (compiled backends): space is cut into cubes of edge ``cell_size`` anchored at the
    world origin (cell ``floor(x / cell_size)`` per axis, clamped to ``±2^20``); an open-addressing
    hash table (at most half full) maps each occupied cell to a linked list of nodes, one node
    per filing of a slot. Removing or moving a slot only marks its old node stale; stale nodes are
    skipped by queries and dropped when they outnumber the live ones (a rebuild, amortised
    O(1) per change). Costs: filing O(1) per slot; a query visits the
    ``ceil(2 radius / cell_size + 1)^3`` cells around it (27 or 64 with the default
    ``cell_size = radius``) and their points; memory: 16 bytes per slot, 16 per node of capacity
    and 16 per table entry (2-4 entries per node of capacity). ``backend="reference"`` answers
    queries by brute force over the filed slots.

    Args:
        cell_size: cell edge (> 0); a query radius may be at most ``31 * cell_size``.
        device: where the index lives (the points must be there too).
        backend: ``"cpu"``/``"cuda"`` (the compiled kernels), ``"reference"`` or ``"auto"``.

    Example:
        >>> pts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.3, 0, 0], [5, 5, 5]])
        >>> index = RadiusIndex(cell_size=1.0)
        >>> index.insert(pts, torch.arange(4))
        >>> index.query(torch.zeros(1, 3), pts, radius=1.0, max_neighbors=2).indices.tolist()
        [[0, 2]]
        >>> index.remove(torch.tensor([0]))
        >>> pts[2] = torch.tensor([4.9, 5, 5])  # slot 2 moves next to slot 3
        >>> index.update(pts, torch.tensor([2]))
        >>> index.query(torch.zeros(1, 3), pts, radius=1.0, max_neighbors=2).indices.tolist()
        [[1, -1]]
    """

    def __init__(
        self,
        cell_size: float,
        *,
        device: torch.device | str = "cpu",
        backend: Backend = "auto",
    ) -> None:
        if isinstance(cell_size, bool) or not isinstance(cell_size, (int, float)):
            raise TypeError(f"cell_size must be a float, got {type(cell_size).__name__}")
        if not 0 < float(cell_size) < float("inf"):
            raise ValueError(f"cell_size must be finite and > 0, got {cell_size}")
        self.cell_size = float(cell_size)
        self.device = torch.device(device)
        self.backend = _dispatch.resolve(backend, self.device, "radius_index_query")
        self.clear()

    def clear(self) -> None:
        """Remove every slot (capacities are kept)."""
        long = {"dtype": torch.long, "device": self.device}
        if not hasattr(self, "slot_node"):
            self.slot_node = torch.empty(0, **long)
            self.slot_cell = torch.empty(0, **long)
            self._allocate_nodes(0)
        self.slot_node.fill_(-1)
        self._reset_table()
        self._live = 0

    def __len__(self) -> int:
        """Number of filed slots."""
        return self._live

    @property
    def num_nodes(self) -> int:
        """Nodes in use, live and stale (every backend numbers the nodes alike)."""
        return self._nodes

    def contains(self, slots: torch.Tensor) -> torch.Tensor:
        """``[m]`` bool: which of ``slots [m]`` are filed."""
        slots = self._check_slots(slots, None)
        inside = slots < self.slot_node.numel()
        filed = torch.zeros_like(slots, dtype=torch.bool)
        filed[inside] = self.slot_node[slots[inside]] >= 0
        return filed

    def insert(self, points: torch.Tensor, slots: torch.Tensor, *, check: bool = True) -> None:
        """File ``slots [m]`` (distinct, not filed yet) at their points ``points[slots]``.

        ``check=False`` skips the validation of ``points`` and ``slots`` (a few device syncs),
        for callers that guarantee it."""
        if check:
            self._check_points(points)
            slots = self._check_slots(slots, points.shape[0])
            if slots.numel() and bool(self.contains(slots).any()):
                raise ValueError("insert: some slots are already filed (use update to move them)")
        self._file(points, slots, moved_only=False)
        self._live += slots.numel()

    def update(self, points: torch.Tensor, slots: torch.Tensor, *, check: bool = True) -> None:
        """Re-file filed ``slots [m]`` (distinct) whose points moved; a slot that stays in its
        cell costs one key comparison."""
        if check:
            self._check_points(points)
            slots = self._check_slots(slots, points.shape[0])
            if slots.numel() and not bool(self.contains(slots).all()):
                raise ValueError("update: some slots are not filed (use insert)")
        self._file(points, slots, moved_only=True)

    def remove(self, slots: torch.Tensor, *, check: bool = True) -> None:
        """Drop filed ``slots [m]`` (distinct)."""
        if check:
            slots = self._check_slots(slots, None)
            if slots.numel() and not bool(self.contains(slots).all()):
                raise ValueError("remove: some slots are not filed")
        self.slot_node.index_fill_(0, slots, -1)
        self._live -= slots.numel()

    def rebuild(self, points: torch.Tensor) -> None:
        """Drop the stale nodes: re-file every filed slot from scratch (O(filed slots))."""
        self._check_points(points)
        self._rebuild(points, self._nodes_capacity)

    def query(
        self, queries: torch.Tensor, points: torch.Tensor, radius: float, max_neighbors: int
    ) -> RadiusNeighbors:
        """The nearest ``<= max_neighbors`` filed slots within ``radius`` of each query.

        Args:
            queries: ``[M, 3]`` in the dtype and on the device of ``points``.
            points: ``[P, 3]`` the buffer the slots index (float32 or float64, contiguous).
            radius: ``0 <= radius <= 31 * cell_size``.
            max_neighbors: ``K >= 0``.

        Returns:
            :class:`RadiusNeighbors` ``(indices [M, K] int64 slots, -1 padded; distances
            [M, K], inf padded)``, nearest first, ties by the smaller slot.
        """
        self._check_points(points)
        check_tensor("queries", queries, min_dim=2, last=(3,))
        if queries.dim() != 2 or queries.dtype != points.dtype or queries.device != self.device:
            raise ValueError(
                f"queries must be [M, 3] {points.dtype} on {self.device}, got {describe(queries)}"
            )
        if isinstance(radius, bool) or not isinstance(radius, (int, float)):
            raise TypeError(f"radius must be a float, got {type(radius).__name__}")
        if not 0 <= float(radius) <= MAX_RADIUS_IN_CELLS * self.cell_size:
            raise ValueError(
                f"radius must lie in [0, {MAX_RADIUS_IN_CELLS:g} * cell_size = "
                f"{MAX_RADIUS_IN_CELLS * self.cell_size:g}], got {radius}"
            )
        if (
            isinstance(max_neighbors, bool)
            or not isinstance(max_neighbors, int)
            or max_neighbors < 0
        ):
            raise ValueError(f"max_neighbors must be an int >= 0, got {max_neighbors!r}")
        self._cover(points.shape[0])
        idx, dist = _dispatch.kernel("radius_index_query", self.backend)(
            self.table_keys,
            self.table_heads,
            self.node_slot,
            self.node_next,
            self.slot_node,
            points,
            queries.contiguous(),
            self.cell_size,
            float(radius),
            max_neighbors,
        )
        return RadiusNeighbors(idx, dist)

    # ---- internals -------------------------------------------------------------------------

    def _check_points(self, points: torch.Tensor) -> None:
        check_tensor("points", points, last=(3,))
        check_float("points", points)
        if (
            points.dim() != 2
            or points.dtype not in (torch.float32, torch.float64)
            or points.device != self.device
            or not points.is_contiguous()
        ):
            raise ValueError(
                f"points must be a contiguous [P, 3] float32/float64 tensor on {self.device}, "
                f"got {describe(points)}"
            )

    def _check_slots(self, slots: torch.Tensor, num_points: int | None) -> torch.Tensor:
        check_tensor("slots", slots)
        if slots.dim() != 1 or slots.dtype != torch.long or slots.device != self.device:
            raise ValueError(f"slots must be [m] int64 on {self.device}, got {describe(slots)}")
        if slots.numel():
            if bool(slots.min() < 0) or (
                num_points is not None and bool(slots.max() >= num_points)
            ):
                bound = "" if num_points is None else f" and < {num_points} (the points' rows)"
                raise ValueError(f"slots must be >= 0{bound}")
            if torch.unique(slots).numel() != slots.numel():
                raise ValueError("slots must be distinct")
        return slots.contiguous()

    def _cover(self, num_points: int) -> None:
        """Per-slot arrays cover ``num_points`` slots (grown by doubling)."""
        have = self.slot_node.numel()
        if num_points <= have:
            return
        size = max(num_points, 2 * have, 64)
        grow = {"dtype": torch.long, "device": self.device}
        self.slot_node = torch.cat([self.slot_node, torch.full((size - have,), -1, **grow)])
        self.slot_cell = torch.cat([self.slot_cell, torch.zeros(size - have, **grow)])

    def _allocate_nodes(self, capacity: int) -> None:
        long = {"dtype": torch.long, "device": self.device}
        self._nodes_capacity = capacity
        table = 1
        while table < 2 * max(capacity, 1):
            table *= 2
        self.node_slot = torch.empty(capacity, **long)
        self.node_next = torch.empty(capacity, **long)
        self.table_keys = torch.empty(table, **long)
        self.table_heads = torch.empty(table, **long)
        self.node_count = torch.zeros(1, **long)

    def _reset_table(self) -> None:
        self.table_keys.fill_(-1)
        self.table_heads.fill_(-1)
        self.node_count.zero_()
        self._nodes = 0

    def _rebuild(self, points: torch.Tensor, capacity: int) -> None:
        self._cover(points.shape[0])
        filed = (self.slot_node >= 0).nonzero().squeeze(1)
        if capacity != self._nodes_capacity:
            self._allocate_nodes(capacity)
        self._reset_table()
        self.slot_node.fill_(-1)
        self._file(points, filed, moved_only=False, rebuilding=True)

    def _file(
        self, points: torch.Tensor, slots: torch.Tensor, *, moved_only: bool, rebuilding=False
    ) -> None:
        self._cover(points.shape[0])
        m = slots.numel()
        if m == 0:
            return
        if not rebuilding and self._nodes + m > self._nodes_capacity:
            live = self._live
            # drop the stale nodes, and grow so that the next rebuild is O(1) amortised away
            self._rebuild(points, max(2 * (live + m), 1024))
        _dispatch.kernel("radius_index_insert", self.backend)(
            self.table_keys,
            self.table_heads,
            self.node_slot,
            self.node_next,
            self.slot_node,
            self.slot_cell,
            self.node_count,
            points,
            slots,
            self.cell_size,
            moved_only,
        )
        self._nodes = self._nodes + m if not moved_only else int(self.node_count.item())
