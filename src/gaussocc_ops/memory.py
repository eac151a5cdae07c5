"""Streaming Gaussian memory: training-free incremental fusion of per-frame Gaussians (GPOcc)
with optional hybrid-confidence updates (SGR-OCC Eq. 6-8)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.confidence import hybrid_confidence
from gaussocc_ops.geometry import covariance, decompose_covariance, quat_multiply, rotmat_to_quat
from gaussocc_ops.radius import radius_neighbors
from gaussocc_ops.types import Gaussians

FusionMode = Literal["gpocc", "sgr"]
_STATE = (
    "means",
    "scales",
    "quats",
    "opacities",
    "features",
    "confidence",
    "observations",
    "last_seen",
)
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
)


class InsertResult(NamedTuple):
    """What one :meth:`GaussianMemory.insert` did: memory Gaussians updated by the frame,
    new Gaussians appended, memory Gaussians evicted by the ``max_size`` bound."""

    fused: int
    inserted: int
    evicted: int


class GaussianMemory:
    """A world-frame Gaussian map fused incrementally from posed per-frame Gaussians.

    Each :meth:`insert` moves the frame's Gaussians to the world frame (``mu_w = R mu + t``,
    ``q_w = q_R q``, so ``Sigma_w = R Sigma R^T``), finds for every new Gaussian ``j`` its
    ``max_neighbors`` nearest memory Gaussians within ``radius`` (:func:`radius_neighbors`), and
    updates every memory Gaussian ``i`` matched by a set ``J(i)`` of new ones (GPOcc):

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
    inserted or updated it) and ``last_seen`` (index of the last such frame). With ``max_size``
    the memory keeps at most that many Gaussians: after each insert the lowest-confidence ones
    are evicted, ties broken by oldest ``last_seen``, then by lowest index.

    One memory holds one stream; for a batch of streams keep one memory per stream (they share
    nothing). Features are class probabilities ``[N, C]`` (``C`` fixed by the first insert).

    Args:
        radius: fusion radius ``epsilon > 0`` (metres).
        gamma: weight of the memory in ``(0, 1)``; ``< 0.5`` favours the incoming frame.
        max_neighbors: memory Gaussians each new Gaussian may update (nearest first).
        max_size: optional bound on the number of memory Gaussians.
        cell_size: cell edge of the neighbour-search grid (default ``radius``).
        mode: ``"gpocc"`` (weighted average above) or ``"sgr"`` (hybrid-confidence update;
            :meth:`insert` then needs ``depth`` and ``intrinsics``).
        sigma_geo, temperature, tau_min, tau_max: parameters of :func:`hybrid_confidence`
            (``mode="sgr"``); the memory's features are its semantic probabilities, so
            ``log(features)`` serve as logits.
        min_confidence: lower clamp of ``p`` so that weights never vanish.
        device, dtype: where and in what precision the memory lives.

    Example:
        >>> mem = GaussianMemory(radius=0.1, gamma=0.3)
        >>> g = Gaussians.isotropic(torch.rand(100, 3), 0.05, torch.ones(100),
        ...                         torch.softmax(torch.randn(100, 5), -1))
        >>> mem.insert(g, torch.eye(4)).inserted
        100
        >>> mem.insert(g, torch.eye(4)).inserted, len(mem)
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
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
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
        if mode not in ("gpocc", "sgr"):
            raise ValueError(f"mode must be 'gpocc' or 'sgr', got {mode!r}")
        if not 0 < float(min_confidence) <= 1:
            raise ValueError(f"min_confidence must lie in (0, 1], got {min_confidence}")
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
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
        self.device = torch.device(device)
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        """Empty the memory (the channel count is fixed again by the next insert)."""
        self._set_state({name: None for name in _STATE}, frame=0)

    def __len__(self) -> int:
        return 0 if self.means is None else self.means.shape[0]

    @property
    def frame_index(self) -> int:
        """Number of frames inserted so far (the ``last_seen`` value of the next frame)."""
        return self._frame

    @property
    def gaussians(self) -> Gaussians | None:
        """The memory as unbatched :class:`Gaussians` ``[N, ...]`` (None before any insert)."""
        if self.means is None:
            return None
        return Gaussians(self.means, self.scales, self.quats, self.opacities, self.features)

    def insert(
        self,
        gaussians_cam: Gaussians,
        cam2world: torch.Tensor,
        confidence: torch.Tensor | None = None,
        *,
        depth: torch.Tensor | None = None,
        intrinsics: torch.Tensor | None = None,
    ) -> InsertResult:
        """Fuse one frame's Gaussians into the memory.

        Args:
            gaussians_cam: unbatched :class:`Gaussians` (means ``[N, 3]``) in the camera frame;
                ``valid=False`` entries are ignored. Inputs are detached.
            cam2world: ``[4, 4]`` rigid camera-to-world transform of the frame.
            confidence: optional ``[N]`` weights ``p >= 0``; default the top-1 feature
                probability ``max_c features[:, c]``.
            depth: ``[H, W]`` predicted depth of the frame (``mode="sgr"`` only; ``<= 0`` = no
                depth, such pixels verify nothing).
            intrinsics: ``[3, 3]`` pinhole intrinsics of the frame (``mode="sgr"`` only).

        Returns:
            :class:`InsertResult` ``(fused, inserted, evicted)``.
        """
        new = self._prepare(gaussians_cam, cam2world, confidence)
        if self.mode == "sgr":
            self._check_view(depth, intrinsics)
        elif depth is not None or intrinsics is not None:
            raise ValueError("depth and intrinsics are only used with mode='sgr'")
        frame = self._frame
        n = new["means"].shape[0]
        fused = 0
        unmatched = torch.ones(n, dtype=torch.bool, device=self.device)
        if len(self) and n:
            idx = radius_neighbors(
                new["means"], self.means, self.radius, self.max_neighbors, cell_size=self.cell_size
            ).indices
            unmatched = idx[:, 0] < 0
            fused = self._fuse(new, idx, cam2world, depth, intrinsics)
        keep = {k: v[unmatched] for k, v in new.items()}
        count = int(unmatched.sum())
        keep["observations"] = torch.ones(count, dtype=torch.long, device=self.device)
        keep["last_seen"] = torch.full((count,), frame, dtype=torch.long, device=self.device)
        state = {
            k: keep[k] if getattr(self, k) is None else torch.cat([getattr(self, k), keep[k]])
            for k in _STATE
        }
        evicted = self._evict(state)
        self._set_state(state, frame=frame + 1)
        return InsertResult(fused, count, evicted)

    def to_occupancy(self, grid, **kwargs):
        """:func:`gaussocc_ops.gaussians_to_occupancy` of the memory's Gaussians on ``grid``
        (keyword arguments are passed through)."""
        from gaussocc_ops import gaussians_to_occupancy

        if self.means is None:
            raise ValueError("the memory is empty: insert a frame before to_occupancy")
        return gaussians_to_occupancy(self.gaussians, grid, **kwargs)

    def state_dict(self) -> dict:
        """Configuration, frame counter and every per-Gaussian tensor (cloned), for torch.save."""
        state = {
            "config": {k: getattr(self, k) for k in _CONFIG},
            "frame": self._frame,
            "dtype": str(self.dtype).removeprefix("torch."),
        }
        state.update(
            {k: None if getattr(self, k) is None else getattr(self, k).clone() for k in _STATE}
        )
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output exactly (tensors are moved to this memory's device).

        The stored configuration must equal this memory's (use :meth:`from_state_dict` to build
        a memory from a state)."""
        missing = [k for k in ("config", "frame", *_STATE) if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing}")
        for k in _CONFIG:
            if state["config"].get(k) != getattr(self, k):
                raise ValueError(
                    f"state has {k}={state['config'].get(k)!r} but this memory has "
                    f"{k}={getattr(self, k)!r}"
                )
        tensors = {k: None if state[k] is None else state[k].to(self.device) for k in _STATE}
        if tensors["means"] is not None:
            n = tensors["means"].shape[0]
            for k, t in tensors.items():
                if t is None or t.shape[0] != n:
                    raise ValueError(
                        f"state tensor {k} must have {n} rows, got "
                        f"{None if t is None else describe(t)}"
                    )
            tensors.update({k: tensors[k].to(self.dtype) for k in _STATE[:6]})
        self._set_state(tensors, frame=int(state["frame"]))

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str = "cpu") -> GaussianMemory:
        """A memory with the configuration and contents of ``state``."""
        memory = cls(
            **state["config"], device=device, dtype=getattr(torch, state.get("dtype", "float32"))
        )
        memory.load_state_dict(state)
        return memory

    def _set_state(self, state: dict, frame: int) -> None:
        for k in _STATE:
            setattr(self, k, state[k])
        self._frame = frame

    def _prepare(self, gaussians, cam2world, confidence) -> dict:
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
        if self.features is not None and gaussians.num_channels != self.features.shape[1]:
            raise ValueError(
                f"gaussians_cam has {gaussians.num_channels} feature channels but the "
                f"memory holds {self.features.shape[1]}"
            )
        check_tensor("cam2world", cam2world, last=(4, 4))
        check_float("cam2world", cam2world)
        if cam2world.shape != (4, 4) or cam2world.device != self.device:
            raise ValueError(
                f"cam2world must be [4, 4] on {self.device}, got {describe(cam2world)}"
            )
        R, t = cam2world[:3, :3].to(self.dtype), cam2world[:3, 3].to(self.dtype)
        eye = torch.eye(3, dtype=self.dtype, device=self.device)
        if not torch.allclose(R @ R.T, eye, atol=1e-4) or not float(torch.linalg.det(R)) > 0:
            raise ValueError(
                "cam2world must be rigid: its 3x3 block must be a rotation (R R^T = I, det 1)"
            )
        g = gaussians.detach().to(self.dtype)
        features = g.features
        if confidence is None:
            p = features.amax(-1)
        else:
            check_tensor("confidence", confidence)
            check_float("confidence", confidence)
            if confidence.shape != (g.num_gaussians,) or confidence.device != self.device:
                raise ValueError(
                    f"confidence must be [{g.num_gaussians}] on {self.device}, "
                    f"got {describe(confidence)}"
                )
            if confidence.numel() and not bool((confidence >= 0).all()):
                raise ValueError("confidence must be >= 0")
            p = confidence.detach().to(self.dtype)
        keep = slice(None) if g.valid is None else g.valid
        quat_r = rotmat_to_quat(R)
        return {
            "means": (g.means @ R.T + t)[keep],
            "scales": g.scales[keep],
            "quats": quat_multiply(
                quat_r.expand_as(g.quats), torch.nn.functional.normalize(g.quats, dim=-1)
            )[keep],
            "opacities": g.opacities[keep],
            "features": features[keep],
            "confidence": p.clamp_min(self.min_confidence)[keep],
        }

    def _check_view(self, depth, intrinsics) -> None:
        if depth is None or intrinsics is None:
            raise ValueError("mode='sgr' needs depth [H, W] and intrinsics [3, 3] at every insert")
        check_tensor("depth", depth)
        check_float("depth", depth)
        check_tensor("intrinsics", intrinsics)
        check_float("intrinsics", intrinsics)
        if depth.dim() != 2 or depth.device != self.device:
            raise ValueError(f"depth must be [H, W] on {self.device}, got {describe(depth)}")
        if intrinsics.shape != (3, 3) or intrinsics.device != self.device:
            raise ValueError(
                f"intrinsics must be [3, 3] on {self.device}, got {describe(intrinsics)}"
            )

    def _fuse(self, new, idx, cam2world, depth, intrinsics) -> int:
        pair_new, slot = (idx >= 0).nonzero(as_tuple=True)
        if pair_new.numel() == 0:
            return 0
        pair_mem = idx[pair_new, slot]
        targets, inverse = torch.unique(pair_mem, return_inverse=True)
        T = targets.shape[0]
        w = new["confidence"][pair_new]
        weight = torch.zeros(T, dtype=self.dtype, device=self.device).index_add_(0, inverse, w)

        def new_sum(value):  # sum_j p_j theta_j over J(i), one row per target
            flat = value[pair_new].reshape(len(pair_new), -1)
            out = torch.zeros(T, flat.shape[1], dtype=self.dtype, device=self.device)
            return out.index_add_(0, inverse, w[:, None] * flat).reshape(T, *value.shape[1:])

        new_cov = covariance(new["scales"], new["quats"])
        old = {
            "means": self.means[targets],
            "cov": covariance(self.scales[targets], self.quats[targets]),
            "opacities": self.opacities[targets],
            "features": self.features[targets],
            "confidence": self.confidence[targets],
        }
        sums = {
            "means": new_sum(new["means"]),
            "cov": new_sum(new_cov),
            "opacities": new_sum(new["opacities"]),
            "features": new_sum(new["features"]),
            "confidence": new_sum(new["confidence"]),
        }
        if self.mode == "gpocc":
            w_old = self.gamma * old["confidence"]
            norm = w_old + (1 - self.gamma) * weight
            fused = {
                k: (_rows(w_old, v) * v + (1 - self.gamma) * sums[k]) / _rows(norm, v)
                for k, v in old.items()
            }
        else:
            c = self._sgr_confidence(old, cam2world, depth, intrinsics)
            fused = {
                k: _rows(c, v) * v + _rows(1 - c, v) * sums[k] / _rows(weight, v)
                for k, v in old.items()
            }
        scales, quats = decompose_covariance(fused["cov"])
        # out of place, so Gaussians handed out by `gaussians` stay unchanged
        fused["scales"], fused["quats"] = scales, quats
        for k in ("means", "scales", "quats", "opacities", "features", "confidence"):
            setattr(self, k, getattr(self, k).index_copy(0, targets, fused[k]))
        self.observations = self.observations.index_add(0, targets, torch.ones_like(targets))
        self.last_seen = self.last_seen.index_fill(0, targets, self._frame)
        return T

    def _sgr_confidence(self, old, cam2world, depth, intrinsics) -> torch.Tensor:
        """Hybrid confidence C of memory Gaussians in the current view (projection of means)."""
        R = cam2world[:3, :3].to(self.dtype)
        t = cam2world[:3, 3].to(self.dtype)
        cam = (old["means"] - t) @ R  # R^T (x - t)
        z = cam[:, 2]
        K = intrinsics.to(self.dtype)
        zs = torch.where(z > 0, z, torch.ones_like(z))
        u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
        v = K[1, 1] * cam[:, 1] / zs + K[1, 2]
        H, W = depth.shape
        col = torch.floor(u).clamp(-1, W).long()
        row = torch.floor(v).clamp(-1, H).long()
        inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
        d_pred = depth.to(self.dtype)[row.clamp(0, H - 1), col.clamp(0, W - 1)]
        visible = inside & (d_pred > 0)
        logits = old["features"].clamp_min(1e-12).log()
        return hybrid_confidence(
            z,
            d_pred,
            logits,
            visible=visible,
            sigma_geo=self.sigma_geo,
            temperature=self.temperature,
            tau_min=self.tau_min,
            tau_max=self.tau_max,
        )

    def _evict(self, state: dict) -> int:
        n = state["means"].shape[0]
        if self.max_size is None or n <= self.max_size:
            return 0
        order = torch.sort(state["last_seen"], stable=True).indices
        order = order[torch.sort(state["confidence"][order], stable=True).indices]
        keep = torch.sort(order[n - self.max_size :]).values
        for k in _STATE:
            state[k] = state[k][keep]
        return n - self.max_size


def _rows(per_row: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[T]`` values shaped to multiply the rows of ``like [T, ...]``."""
    return per_row.reshape(-1, *([1] * (like.dim() - 1)))
