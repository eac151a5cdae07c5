"""Streaming Gaussian memory: training-free incremental fusion of per-frame Gaussians (GPOcc)
with optional hybrid-confidence updates (SGR-OCC Eq. 6-8) and SGR-OCC's visibility-aware pool
(§3.3; the pool's test is :mod:`gaussocc_ops.visibility`)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _dispatch, _ext
from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.confidence import hybrid_confidence
from gaussocc_ops.geometry import quat_multiply, rotmat_to_quat
from gaussocc_ops.radius import RadiusNeighbors
from gaussocc_ops.radius_index import RadiusIndex
from gaussocc_ops.types import Cameras, Gaussians
from gaussocc_ops.visibility import (
    check_single_camera,
    check_view_camera,
    project_to_view,
    visibility_pool_mask,
)

FusionMode = Literal["gpocc", "sgr"]
Backend = Literal["auto", "reference"]
_FLOAT_STATE = ("means", "scales", "quats", "opacities", "features", "confidence")
_STATE = (*_FLOAT_STATE, "observations", "last_seen", "tags")
_CONFIG = (
    "radius",
    "gamma",
    "max_neighbors",
    "max_size",
    "cell_size",
    "mode",
    "sigma_geo",
    "temperature",
    "tau_min",
    "tau_max",
    "min_confidence",
    "visibility_pool",
    "pool_tolerance",
)
# configuration keys that older states lack, with the value they had implicitly
_CONFIG_DEFAULTS = {"visibility_pool": False, "pool_tolerance": None}


class InsertResult(NamedTuple):
    """What one :meth:`GaussianMemory.insert` did: memory Gaussians updated by the frame, new
    Gaussians appended, memory Gaussians evicted by the ``max_size`` bound, and memory Gaussians
    dropped by the visibility-aware pool (``visibility_pool=True``) before the frame was fused."""

    fused: int
    inserted: int
    evicted: int
    dropped: int = 0


def _state_property(name: str, doc: str) -> property:
    """A read-only per-Gaussian tensor of the memory: a copy of its live rows, made on the first
    access after a change (None before any insert)."""
    return property(lambda self: self._snapshot(name), doc=doc)


class GaussianMemory:
    """A world-frame Gaussian map fused incrementally from posed per-frame Gaussians.

    Each :meth:`insert` moves the frame's Gaussians to the world frame (``mu_w = R mu + t``,
    ``q_w = q_R q``, so ``Sigma_w = R Sigma R^T``), finds for every new Gaussian ``j`` its
    ``max_neighbors`` nearest memory Gaussians within ``radius`` (inclusive; ties by the older
    Gaussian), and updates every memory Gaussian ``i`` matched by a set ``J(i)`` of new ones
    (GPOcc):

        theta_i <- (gamma p_i theta_i + (1 - gamma) sum_j p_j theta_j)
                   / (gamma p_i + (1 - gamma) sum_j p_j)

    for ``theta`` in {mean, covariance, opacity, features, confidence}; ``p`` is the top-1 class
    confidence and ``gamma < 0.5`` favours the new frame. New Gaussians that match nothing are
    appended. In ``mode="sgr"`` the update is SGR-OCC's instead:
    ``theta_i <- C_i theta_i + (1 - C_i) theta_bar_i`` with ``theta_bar_i`` the ``p``-weighted mean
    of ``J(i)`` and ``C_i`` the :func:`hybrid_confidence` of the memory Gaussian in the current
    view (update ratio ``lambda = 1 - C``): verified anchors stay, contradicted ones move.

    Covariances, not quaternions, are averaged: ``Sigma = R S^2 R^T`` is fused (a positive
    combination of SPD matrices stays SPD, and ``q``/``-q`` give the same ``Sigma``) and
    re-decomposed into scales and a unit quaternion with ``w >= 0`` by an eigen-decomposition
    (scales come out sorted ascending, which describes the same Gaussian).

    Bookkeeping per memory Gaussian: ``confidence`` (fused like the other attributes, so
    repeating an identical observation leaves it unchanged), ``observations`` (frames that
    inserted or updated it), ``last_seen`` (index of the last such frame) and ``tags`` (SGR-OCC's
    source tag: True for a predicted anchor, False for a randomly initialised one; a memory
    Gaussian becomes predicted when a predicted Gaussian is fused into it). With ``max_size`` the
    memory keeps at most that many Gaussians: after each insert the lowest-confidence ones are
    evicted, ties broken by oldest ``last_seen``, then by lowest index. With
    ``visibility_pool=True`` each insert first applies SGR-OCC's visibility-aware pool
    (:func:`visibility_pool_mask`) to the memory.

    Cost: an insert costs O(new Gaussians + the memory Gaussians they match + the cells they
    touch), not O(memory): the neighbour index (:class:`~gaussocc_ops.radius_index.RadiusIndex`)
    is updated in place, the per-Gaussian state lives in capacity-doubling buffers, evicted
    Gaussians are removed lazily (compacted once they outnumber the live ones), and eviction
    picks from a heap (CPU; on CUDA a device sort over the memory). The tensors returned by
    :attr:`means`, :attr:`gaussians` etc. are copies made on first access after a change.

    One memory holds one stream; for a batch of streams keep one memory per stream (they share
    nothing). Features are class probabilities ``[N, C]`` (``C`` fixed by the first insert).

    Args:
        radius: fusion radius ``epsilon > 0`` (metres).
        gamma: weight of the memory in ``(0, 1)``; ``< 0.5`` favours the incoming frame.
        max_neighbors: memory Gaussians each new Gaussian may update (nearest first).
        max_size: optional bound on the number of memory Gaussians.
        cell_size: cell edge of the neighbour index (default ``radius``; at least
            ``radius / 31``). Only speed depends on it.
        mode: ``"gpocc"`` (weighted average above) or ``"sgr"`` (hybrid-confidence update;
            :meth:`insert` then needs ``depth``).
        sigma_geo, temperature, tau_min, tau_max: parameters of :func:`hybrid_confidence`
            (``mode="sgr"``); the memory's features are its semantic probabilities, so
            ``log(features)`` serve as logits.
        min_confidence: lower clamp of ``p`` so that weights never vanish.
        visibility_pool: apply SGR-OCC's visibility-aware pool at every insert (needs ``depth``).
        pool_tolerance: depth-consistency threshold of the pool (metres; default
            ``3 * sigma_geo``).
        device, dtype: where and in what precision the memory lives.
        backend: ``"auto"`` (the compiled kernels where available) or ``"reference"`` (pure
            PyTorch: brute-force neighbour search, ``torch.linalg.eigh``; slow, for testing).

    Example:
        >>> mem = GaussianMemory(radius=0.1, gamma=0.3)
        >>> g = Gaussians.isotropic(torch.rand(100, 3), 0.05, torch.ones(100),
        ...                         torch.softmax(torch.randn(100, 5), -1))
        >>> K = torch.tensor([[[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]])
        >>> camera = Cameras.from_cam2world(torch.eye(4)[None], K, height=48, width=64)
        >>> mem.insert(g, camera).inserted
        100
        >>> mem.insert(g, camera).inserted, len(mem)
        (0, 100)
    """

    def __init__(
        self,
        radius: float,
        *,
        gamma: float = 0.3,
        max_neighbors: int = 3,
        max_size: int | None = None,
        cell_size: float | None = None,
        mode: FusionMode = "gpocc",
        sigma_geo: float = 0.1,
        temperature: float = 0.5,
        tau_min: float = 0.2,
        tau_max: float = 0.8,
        min_confidence: float = 1e-6,
        visibility_pool: bool = False,
        pool_tolerance: float | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        backend: Backend = "auto",
    ) -> None:
        if not 0 < float(radius) < float("inf"):
            raise ValueError(f"radius must be finite and > 0, got {radius}")
        if not 0 < float(gamma) < 1:
            raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
        if (
            isinstance(max_neighbors, bool)
            or not isinstance(max_neighbors, int)
            or max_neighbors < 1
        ):
            raise ValueError(f"max_neighbors must be an int >= 1, got {max_neighbors!r}")
        if max_size is not None and (
            isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1
        ):
            raise ValueError(f"max_size must be None or an int >= 1, got {max_size!r}")
        if cell_size is not None and not 0 < float(cell_size) < float("inf"):
            raise ValueError(f"cell_size must be None or finite and > 0, got {cell_size}")
        if cell_size is not None and float(radius) > 31 * float(cell_size):
            raise ValueError(f"cell_size must be >= radius / 31, got {cell_size} for {radius}")
        if mode not in ("gpocc", "sgr"):
            raise ValueError(f"mode must be 'gpocc' or 'sgr', got {mode!r}")
        if not 0 < float(min_confidence) <= 1:
            raise ValueError(f"min_confidence must lie in (0, 1], got {min_confidence}")
        if not isinstance(visibility_pool, bool):
            raise TypeError(f"visibility_pool must be a bool, got {visibility_pool!r}")
        if pool_tolerance is not None and not 0 < float(pool_tolerance) < float("inf"):
            raise ValueError(f"pool_tolerance must be None or finite and > 0, got {pool_tolerance}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if backend not in ("auto", "reference"):
            raise ValueError(f"backend must be 'auto' or 'reference', got {backend!r}")
        # checks the hybrid-confidence parameters once, on a dummy input
        hybrid_confidence(
            torch.zeros(1),
            torch.zeros(1),
            torch.zeros(1, 1),
            sigma_geo=sigma_geo,
            temperature=temperature,
            tau_min=tau_min,
            tau_max=tau_max,
        )
        self.radius = float(radius)
        self.gamma = float(gamma)
        self.max_neighbors = max_neighbors
        self.max_size = max_size
        self.cell_size = None if cell_size is None else float(cell_size)
        self.mode = mode
        self.sigma_geo = float(sigma_geo)
        self.temperature = float(temperature)
        self.tau_min = float(tau_min)
        self.tau_max = float(tau_max)
        self.min_confidence = float(min_confidence)
        self.visibility_pool = visibility_pool
        self.pool_tolerance = None if pool_tolerance is None else float(pool_tolerance)
        self.device = torch.device(device)
        self.dtype = dtype
        self.backend = backend
        # compiled fusion where the extension has it; the eviction heap is a CPU kernel
        compiled = backend == "auto"
        # the pure-PyTorch fusion is the fallback where the kernel is missing
        fuse_backend = (
            _dispatch.resolve("auto", self.device, "memory_fuse") if compiled else "reference"
        )
        self._fuse_op = _dispatch.kernel("memory_fuse", fuse_backend)
        self._use_heap = (
            compiled
            and max_size is not None
            and self.device.type == "cpu"
            and _ext.has_op("memory_evict_heap")
        )
        self._index = RadiusIndex(
            self.radius if cell_size is None else float(cell_size),
            device=self.device,
            backend="reference" if backend == "reference" else "auto",
        )
        self.reset()

    # ---- public state ----------------------------------------------------------------------

    def reset(self) -> None:
        """Empty the memory (the channel count is fixed again by the next insert)."""
        self._buf: dict[str, torch.Tensor] | None = None
        self._used = 0  # slots handed out (live or evicted)
        self._count = 0  # live Gaussians
        self._alive = torch.zeros(0, dtype=torch.bool, device=self.device)
        self._index.clear()
        self._reset_heap(0)
        self._frame = 0
        self._snapshots: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self._count

    @property
    def frame_index(self) -> int:
        """Number of frames inserted so far (the ``last_seen`` value of the next frame)."""
        return self._frame

    means = _state_property("means", "``[N, 3]`` world-frame means (None before any insert).")
    scales = _state_property("scales", "``[N, 3]`` scales.")
    quats = _state_property("quats", "``[N, 4]`` unit quaternions ``(w, x, y, z)``, world frame.")
    opacities = _state_property("opacities", "``[N]`` opacities.")
    features = _state_property("features", "``[N, C]`` class probabilities.")
    confidence = _state_property("confidence", "``[N]`` fused confidences ``p``.")
    observations = _state_property(
        "observations", "``[N]`` int64 number of frames that inserted or updated each Gaussian."
    )
    last_seen = _state_property(
        "last_seen", "``[N]`` int64 index of the last frame that inserted or updated each one."
    )
    tags = _state_property("tags", "``[N]`` bool source tags (True = predicted, ``tau = 1``).")

    @property
    def gaussians(self) -> Gaussians | None:
        """The memory as unbatched :class:`Gaussians` ``[N, ...]`` (None before any insert)."""
        if self._buf is None:
            return None
        return Gaussians(self.means, self.scales, self.quats, self.opacities, self.features)

    # ---- insert ----------------------------------------------------------------------------

    def insert(
        self,
        gaussians_cam: Gaussians,
        camera: Cameras,
        confidence: torch.Tensor | None = None,
        *,
        depth: torch.Tensor | None = None,
        tags: torch.Tensor | None = None,
    ) -> InsertResult:
        """Fuse one frame's Gaussians into the memory.

        Args:
            gaussians_cam: unbatched :class:`Gaussians` (means ``[N, 3]``) in the camera frame;
                ``valid=False`` entries are ignored. Inputs are detached.
            camera: the frame's camera as a single-view :class:`Cameras`: ``viewmats [1, 4, 4]``
                (rigid world-to-camera; e.g. ``Cameras.from_cam2world(cam2world[None],
                K[None], height=H, width=W)``) and ``Ks [1, 3, 3]``, no batch dimensions. The
                intrinsics and image size are used by ``mode="sgr"`` and ``visibility_pool``
                only (pinhole).
            confidence: optional ``[N]`` weights ``p >= 0``; default the top-1 feature
                probability ``max_c features[:, c]``.
            depth: ``[H, W]`` predicted depth of the frame (``mode="sgr"`` or
                ``visibility_pool=True`` only; ``<= 0`` = no depth, such pixels verify nothing).
            tags: optional ``[N]`` source tags, bool or 0/1 (SGR-OCC's ``tau``: True/1 for a
                predicted anchor, False/0 for a randomly initialised one); default all True.

        Returns:
            :class:`InsertResult` ``(fused, inserted, evicted, dropped)``.
        """
        new = self._prepare(gaussians_cam, camera, confidence, tags)
        if self.mode == "sgr" or self.visibility_pool:
            if depth is None:
                raise ValueError(
                    "mode='sgr' (and visibility_pool=True) needs depth [H, W] at every insert"
                )
            check_view_camera(camera, depth, self.device)
        elif depth is not None:
            raise ValueError("depth is only used with mode='sgr' or visibility_pool=True")
        self._snapshots = {}
        dropped = self._apply_visibility_pool(camera, depth) if self.visibility_pool else 0
        frame = self._frame
        n = new["means"].shape[0]
        fused = 0
        targets = torch.zeros(0, dtype=torch.long, device=self.device)
        unmatched = torch.ones(n, dtype=torch.bool, device=self.device)
        if self._count and n:
            idx = self._index.query(
                new["means"], self._buf["means"][: self._used], self.radius, self.max_neighbors
            ).indices
            unmatched = idx[:, 0] < 0
            targets = self._fuse(new, idx, camera, depth)
            fused = targets.numel()
        rows = unmatched.nonzero().squeeze(1)
        count = rows.numel()
        added = self._append(new, rows, frame)
        evicted = self._evict(touched=torch.cat([targets, added]))
        self._frame = frame + 1
        self._maybe_compact()
        return InsertResult(fused, count, evicted, dropped)

    def neighbors(self, queries: torch.Tensor) -> RadiusNeighbors:
        """The memory Gaussians a Gaussian at each query position would be fused with: the
        ``max_neighbors`` nearest within ``radius`` (inclusive), nearest first, ties by the
        smaller index, from the memory's incrementally maintained index.

        Args:
            queries: ``[M, 3]`` world-frame positions (the memory's dtype and device).

        Returns:
            :class:`~gaussocc_ops.RadiusNeighbors` ``(indices [M, K] into the rows of
            :attr:`means`, -1 padded; distances [M, K], inf padded)``: the same as
            ``radius_neighbors(queries, memory.means, radius, max_neighbors)``.
        """
        check_tensor("queries", queries, last=(3,))
        if queries.dim() != 2 or queries.dtype != self.dtype or queries.device != self.device:
            raise ValueError(
                f"queries must be [M, 3] {self.dtype} on {self.device}, got {describe(queries)}"
            )
        if self._buf is None:
            return RadiusNeighbors(
                torch.full((len(queries), self.max_neighbors), -1, device=self.device),
                queries.new_full((len(queries), self.max_neighbors), float("inf")),
            )
        slots, dist = self._index.query(
            queries, self._buf["means"][: self._used], self.radius, self.max_neighbors
        )
        rank = torch.cumsum(self._alive[: self._used], 0) - 1  # slot -> row of `means`
        return RadiusNeighbors(torch.where(slots >= 0, rank[slots.clamp_min(0)], slots), dist)

    def prune_by_visibility(self, camera: Cameras, depth: torch.Tensor) -> int:
        """Apply SGR-OCC's visibility-aware pool (:func:`visibility_pool_mask`) to the memory
        now, with threshold ``pool_tolerance``; returns the number of Gaussians dropped."""
        check_view_camera(camera, depth, self.device)
        self._snapshots = {}
        dropped = self._apply_visibility_pool(camera, depth)
        self._maybe_compact()
        return dropped

    def to_occupancy(self, grid, **kwargs):
        """:func:`gaussocc_ops.gaussians_to_occupancy` of the memory's Gaussians on ``grid``
        (keyword arguments are passed through)."""
        from gaussocc_ops.accumulate import gaussians_to_occupancy

        if self._buf is None:
            raise ValueError("the memory is empty: insert a frame before to_occupancy")
        return gaussians_to_occupancy(self.gaussians, grid, **kwargs)

    # ---- state_dict ------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Configuration, frame counter and every per-Gaussian tensor (cloned), for torch.save."""
        state = {
            "config": {k: getattr(self, k) for k in _CONFIG},
            "frame": self._frame,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
        state.update({k: self._snapshot(k) for k in _STATE})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output exactly (tensors are moved to this memory's device).

        The stored configuration must equal this memory's (use :meth:`from_state_dict` to build
        a memory from a state). States saved before ``tags`` existed load with every Gaussian
        tagged as a predicted anchor."""
        missing = [k for k in ("config", "frame", *_STATE) if k not in state and k != "tags"]
        if missing:
            raise ValueError(f"state is missing {missing}")
        for k in _CONFIG:
            stored = state["config"].get(k, _CONFIG_DEFAULTS.get(k))
            if stored != getattr(self, k):
                raise ValueError(
                    f"state has {k}={stored!r} but this memory has {k}={getattr(self, k)!r}"
                )
        tensors = {k: state.get(k) for k in _STATE}
        tensors = {k: None if t is None else t.to(self.device) for k, t in tensors.items()}
        self.reset()
        self._frame = int(state["frame"])
        if tensors["means"] is None:
            return
        n = tensors["means"].shape[0]
        if tensors["tags"] is None:
            tensors["tags"] = torch.ones(n, dtype=torch.bool, device=self.device)
        for k, t in tensors.items():
            if t is None or t.shape[0] != n:
                raise ValueError(
                    f"state tensor {k} must have {n} rows, got {None if t is None else describe(t)}"
                )
        tensors.update({k: tensors[k].to(self.dtype) for k in _FLOAT_STATE})
        tensors["tags"] = tensors["tags"].bool()
        self._allocate(tensors["features"].shape[1], n)
        for k, t in tensors.items():
            self._buf[k][:n] = t
        self._alive[:n] = True
        self._used = self._count = n
        self._rebuild()

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> GaussianMemory:
        """A memory with the configuration and contents of ``state``."""
        config = {**_CONFIG_DEFAULTS, **state["config"]}
        memory = cls(**config, device=device, dtype=getattr(torch, state.get("dtype", "float32")))
        memory.load_state_dict(state)
        return memory

    # ---- internals: storage ----------------------------------------------------------------

    def _snapshot(self, name: str) -> torch.Tensor | None:
        if self._buf is None:
            return None
        if name not in self._snapshots:
            rows = self._buf[name][: self._used]
            if self._count == self._used:
                self._snapshots[name] = rows.clone()
            else:
                self._snapshots[name] = rows[self._alive[: self._used]]
        return self._snapshots[name]

    def _allocate(self, channels: int, capacity: int) -> None:
        """Empty buffers for ``capacity`` Gaussians with ``channels`` feature channels."""
        capacity = max(capacity, 64)
        f = {"dtype": self.dtype, "device": self.device}
        i = {"dtype": torch.long, "device": self.device}
        self._buf = {
            "means": torch.zeros(capacity, 3, **f),
            "scales": torch.zeros(capacity, 3, **f),
            "quats": torch.zeros(capacity, 4, **f),
            "opacities": torch.zeros(capacity, **f),
            "features": torch.zeros(capacity, channels, **f),
            "confidence": torch.zeros(capacity, **f),
            "observations": torch.zeros(capacity, **i),
            "last_seen": torch.zeros(capacity, **i),
            "tags": torch.zeros(capacity, dtype=torch.bool, device=self.device),
        }
        self._alive = torch.zeros(capacity, dtype=torch.bool, device=self.device)
        self._reset_heap(capacity)

    def _reserve(self, extra: int, channels: int) -> None:
        """Room for ``extra`` more slots (capacity doubling: amortised O(1) per Gaussian)."""
        if self._buf is None:
            self._allocate(channels, extra)
            return
        capacity = self._alive.numel()
        if self._used + extra <= capacity:
            return
        size = max(2 * capacity, self._used + extra)
        for k, buf in self._buf.items():
            grown = buf.new_empty(size, *buf.shape[1:])  # rows >= used are never read
            grown[: self._used] = buf[: self._used]
            self._buf[k] = grown
        alive = self._alive.new_zeros(size)
        alive[: self._used] = self._alive[: self._used]
        self._alive = alive
        if self._use_heap:
            self._grow_heap(size)

    def _append(self, new: dict, rows: torch.Tensor, frame: int) -> torch.Tensor:
        """Append the frame's Gaussians ``rows``; returns their slots."""
        count = rows.numel()
        self._reserve(count, new["features"].shape[1])
        start, stop = self._used, self._used + count
        slots = torch.arange(start, stop, device=self.device)
        for k in (*_FLOAT_STATE, "tags"):
            torch.index_select(new[k], 0, rows, out=self._buf[k][start:stop])
        self._buf["observations"][start:stop] = 1
        self._buf["last_seen"][start:stop] = frame
        self._alive[start:stop] = True
        self._used, self._count = stop, self._count + count
        self._index.insert(self._buf["means"][:stop], slots, check=False)
        return slots

    def _remove(self, slots: torch.Tensor) -> None:
        self._index.remove(slots, check=False)
        self._alive[slots] = False
        self._count -= slots.numel()

    def _maybe_compact(self) -> None:
        """Compact when the evicted slots outnumber the live ones (amortised O(1) each)."""
        dead = self._used - self._count
        if dead <= max(self._count, 1024):
            return
        keep = self._alive[: self._used].nonzero().squeeze(1)
        for buf in self._buf.values():
            buf[: self._count] = buf[keep]
        self._alive.zero_()
        self._alive[: self._count] = True
        self._used = self._count
        self._rebuild()

    def _rebuild(self) -> None:
        """Index and heap from scratch over slots ``[0, used)`` (all live)."""
        slots = torch.arange(self._used, device=self.device)
        self._index.clear()
        self._index.insert(self._buf["means"][: self._used], slots, check=False)
        self._reset_heap(self._alive.numel())
        if self._use_heap:
            self._heap_op(torch.zeros(0, dtype=torch.long), slots, 0)

    # ---- internals: eviction ---------------------------------------------------------------

    def _reset_heap(self, capacity: int) -> None:
        if not self._use_heap:
            return
        self._heap = torch.zeros(capacity, dtype=torch.long)
        self._heap_pos = torch.full((capacity,), -1, dtype=torch.long)
        self._heap_size = torch.zeros(1, dtype=torch.long)

    def _grow_heap(self, capacity: int) -> None:
        have = self._heap.numel()
        self._heap = torch.cat([self._heap, self._heap.new_zeros(capacity - have)])
        self._heap_pos = torch.cat(
            [self._heap_pos, self._heap_pos.new_full((capacity - have,), -1)]
        )

    def _heap_op(self, removed: torch.Tensor, added: torch.Tensor, pop: int) -> torch.Tensor:
        return torch.ops.gaussocc.memory_evict_heap(
            self._heap,
            self._heap_pos,
            self._heap_size,
            self._buf["confidence"],
            self._buf["last_seen"],
            removed,
            added,
            pop,
        )

    def _evict(self, touched: torch.Tensor) -> int:
        """Evict down to ``max_size``; ``touched`` are the slots fused (taken out of the heap
        before their keys changed) or appended by this insert."""
        if self.max_size is None:
            return 0
        excess = max(0, self._count - self.max_size)
        if self._use_heap:
            evicted = self._heap_op(touched[:0], touched, excess)
        elif excess:
            live = self._alive[: self._used].nonzero().squeeze(1)
            order = eviction_order(self._buf["confidence"][live], self._buf["last_seen"][live])
            evicted = live[order[:excess]]
        else:
            return 0
        if excess:
            self._remove(evicted)
        return excess

    # ---- internals: one frame --------------------------------------------------------------

    def _prepare(self, gaussians, camera, confidence, tags) -> dict:
        if not isinstance(gaussians, Gaussians):
            raise TypeError(
                f"gaussians_cam must be gaussocc_ops.Gaussians, got {type(gaussians).__name__}"
            )
        if gaussians.batch_shape != ():
            raise ValueError(
                "gaussians_cam must be unbatched (means [N, 3]), got means "
                f"{describe(gaussians.means)}; use one GaussianMemory per stream"
            )
        if gaussians.device != self.device:
            raise ValueError(
                f"gaussians_cam is on {gaussians.device} but the memory is on {self.device}"
            )
        if self._buf is not None and gaussians.num_channels != self._buf["features"].shape[1]:
            raise ValueError(
                f"gaussians_cam has {gaussians.num_channels} feature channels but the "
                f"memory holds {self._buf['features'].shape[1]}"
            )
        check_single_camera(camera, self.device)
        viewmat = camera.viewmats[0].to(self.dtype)
        R, t = viewmat[:3, :3].T, -(viewmat[:3, :3].T @ viewmat[:3, 3])  # camera to world
        eye = torch.eye(3, dtype=self.dtype, device=self.device)
        if not torch.allclose(R @ R.T, eye, atol=1e-4) or not float(torch.linalg.det(R)) > 0:
            raise ValueError(
                "camera.viewmats must be rigid: its 3x3 block must be a rotation (R R^T = I, det 1)"
            )

        # the fields are validated: take them as they are (no new Gaussians, no second check)
        def field(t):
            return t.detach().to(self.dtype)

        n = gaussians.num_gaussians
        features = field(gaussians.features)
        if confidence is None:
            p = features.amax(-1)
        else:
            check_tensor("confidence", confidence)
            check_float("confidence", confidence)
            if confidence.shape != (n,) or confidence.device != self.device:
                raise ValueError(
                    f"confidence must be [{n}] on {self.device}, got {describe(confidence)}"
                )
            if confidence.numel() and not bool((confidence >= 0).all()):
                raise ValueError("confidence must be >= 0")
            p = field(confidence)
        if tags is None:
            tags = torch.ones(n, dtype=torch.bool, device=self.device)
        else:
            check_tensor("tags", tags)
            if tags.shape != (n,) or tags.device != self.device:
                raise ValueError(f"tags must be [{n}] on {self.device}, got {describe(tags)}")
            if tags.dtype != torch.bool:
                if tags.numel() and not bool(((tags == 0) | (tags == 1)).all()):
                    raise ValueError("tags must be bool or 0/1 values")
                tags = tags != 0
        # mu_w = R mu + t, written out (a 3 x 3 matmul is not worth a BLAS call)
        x, y, z = field(gaussians.means).unbind(-1)
        means = torch.stack([R[a, 0] * x + R[a, 1] * y + R[a, 2] * z + t[a] for a in range(3)], -1)
        quats = quat_multiply(
            rotmat_to_quat(R), torch.nn.functional.normalize(field(gaussians.quats), dim=-1)
        )
        new = {
            "means": means,
            "scales": field(gaussians.scales),
            "quats": quats,
            "opacities": field(gaussians.opacities),
            "features": features,
            "confidence": p.clamp_min(self.min_confidence),
            "tags": tags,
        }
        if gaussians.valid is not None:
            keep = gaussians.valid.nonzero().squeeze(1)
            new = {k: v.index_select(0, keep) for k, v in new.items()}
        return {k: v.contiguous() for k, v in new.items()}

    def _fuse(self, new, idx, camera, depth) -> torch.Tensor:
        """Fuse the matched memory Gaussians in place; returns their slots."""
        pair_new, k = (idx >= 0).nonzero(as_tuple=True)
        if pair_new.numel() == 0:
            return pair_new
        pair_mem = idx[pair_new, k]
        targets, inverse, counts = torch.unique(pair_mem, return_inverse=True, return_counts=True)
        pair_new = pair_new[torch.argsort(inverse, stable=True)]
        offsets = torch.zeros(targets.numel() + 1, dtype=torch.long, device=self.device)
        torch.cumsum(counts, 0, out=offsets[1:])
        if self.mode == "sgr":
            coef = self._sgr_confidence(targets, camera, depth)
        else:
            coef = new["means"].new_zeros(0)
        b = self._buf
        if self._use_heap:  # their keys change: out of the heap now, back in at the eviction
            self._heap_op(targets, targets[:0], 0)
        self._fuse_op(
            b["means"],
            b["scales"],
            b["quats"],
            b["opacities"],
            b["features"],
            b["confidence"],
            b["observations"],
            b["last_seen"],
            b["tags"],
            new["means"],
            new["scales"],
            new["quats"],
            new["opacities"],
            new["features"],
            new["confidence"],
            new["tags"],
            targets,
            offsets,
            pair_new,
            coef,
            self.gamma,
            self._frame,
        )
        self._index.update(b["means"][: self._used], targets, check=False)
        return targets

    def _sgr_confidence(self, targets, camera, depth) -> torch.Tensor:
        """Hybrid confidence C of memory Gaussians in the current view (projection of means)."""
        z, d_pred, visible = project_to_view(self._buf["means"][targets], camera, depth)
        logits = self._buf["features"][targets].clamp_min(1e-12).log()
        return hybrid_confidence(
            z,
            d_pred,
            logits,
            visible=visible,
            sigma_geo=self.sigma_geo,
            temperature=self.temperature,
            tau_min=self.tau_min,
            tau_max=self.tau_max,
        ).contiguous()

    def _apply_visibility_pool(self, camera, depth) -> int:
        if not self._count:
            return 0
        live = self._alive[: self._used].nonzero().squeeze(1)
        tolerance = 3 * self.sigma_geo if self.pool_tolerance is None else self.pool_tolerance
        keep = visibility_pool_mask(
            self._buf["means"][live], self._buf["tags"][live], camera, depth, tolerance=tolerance
        )
        dropped = live[~keep]
        if dropped.numel():
            self._remove(dropped)
            if self._use_heap:
                self._heap_op(dropped, dropped[:0], 0)
        return dropped.numel()


def eviction_order(confidence: torch.Tensor, last_seen: torch.Tensor) -> torch.Tensor:
    """Rows ``[N]`` in the order :class:`GaussianMemory` evicts them: lowest ``confidence``
    first, ties by oldest ``last_seen``, then by lowest row (two stable sorts; the eviction of
    the CUDA and reference memories, and the order the CPU heap ``memory_evict_heap`` follows).

    Example:
        >>> eviction_order(torch.tensor([0.5, 0.2, 0.5, 0.2]), torch.tensor([3, 1, 2, 1])).tolist()
        [1, 3, 2, 0]
    """
    order = torch.sort(last_seen, stable=True).indices
    return order[torch.sort(confidence[order], stable=True).indices]
