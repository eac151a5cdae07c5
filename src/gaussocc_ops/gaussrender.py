"""GaussRender: a 2D rendering loss for any voxel occupancy model (GaussRender §3, Eq. 4-6).

The predicted and the ground-truth voxels are turned into Gaussians (:mod:`voxelize`), splatted
into virtual cameras and an orthographic BEV camera, and the renders are compared with L1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from gaussocc_ops import cameras as camlib
from gaussocc_ops._checks import check_tensor, describe
from gaussocc_ops._dispatch import constant
from gaussocc_ops.splat import splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid
from gaussocc_ops.voxelize import _labels_to_gaussians, check_label_range, voxels_to_gaussians

STRATEGIES = ("sensor", "elevated", "elevated_around", "random", "dynamic")
GT_VALID_ALPHA = 0.5  # depth is compared where the ground-truth render is at least this opaque

Strategy = Callable[..., Cameras]


@dataclass
class ViewRenders:
    """Renders of one group of views: ``features [B, V, H, W, C]`` (background included),
    ``depth [B, V, H, W]``, ``alpha [B, V, H, W]``."""

    features: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor


@dataclass
class GaussRenderTargets:
    """Ground-truth renders and the cameras they were made with (``cam`` and/or ``bev``)."""

    cameras: dict[str, Cameras]
    renders: dict[str, ViewRenders]


class GaussRenderLoss(torch.nn.Module):
    """L1 between renders of the predicted and the ground-truth occupancy (GaussRender Eq. 4-6).

    For every view ``*`` (the camera views and, with ``bev=True``, one orthographic BEV view)::

        L_sem*   = mean over pixels p and classes c of |I_sem(p, c) - I~_sem(p, c)|
        L_depth* = mean_{p: A~(p) > 0.5} |I_depth(p) - I~_depth(p)| / d_range*
        L_2D     = mean_cam (L_sem + w_d L_depth) + (L_sem + w_d L_depth)_bev
        loss     = weight * mean_batch L_2D

    Renders follow GaussRender Eq. 3 (``C_p = sum T_i a_i c_i``, accumulated depth
    ``D_p = sum T_i a_i d_i``) with the empty class as background colour; ``d_range*`` is the
    largest depth any grid corner has in that view (or ``depth_range`` if given). Ground truth:
    occupied voxels, opacity 1, one-hot colours; prediction: colours ``p(class | occupied)``
    (see ``colors``) and opacity ``1 - p_empty`` (or the given ``opacity``). Voxels labelled
    ``ignore_index`` (or outside the call's ``mask``) are dropped from both renders.

    Args:
        cams: sensor/virtual cameras (batch shape ``[]`` or ``[B]``, pinhole), or None for BEV only.
        grid: voxel grid of the predictions.
        num_classes: ``C``; empty_class: index of the empty class; ignore_index: unlabelled voxels.
        weight: ``lambda`` of ``L = L_3D + lambda L_2D`` (default 15, GaussRender App. E.2).
        depth_weight: ``w_d`` (default 1: Eq. 5 adds the terms unweighted).
        colors: colours of the predicted Gaussians, ``"occupied"`` (``p(class | occupied)``) or
            ``"all"`` (the full softmax), see :func:`gaussocc_ops.voxels_to_gaussians`.
        bev: add the orthographic BEV view (GaussRender §3.2 always does).
        bev_resolution: BEV image ``(H, W)`` or an int; default one pixel per voxel column.
        strategy: None (render ``cams`` as given), one of ``"sensor"``, ``"elevated"``,
            ``"elevated_around"``, ``"random"``, ``"dynamic"`` (the :mod:`gaussocc_ops.cameras`
            function of that name, called each step with ``strategy_kwargs``), or a callable
            ``f(cams, grid, *, pred_logits, gt_labels, generator) -> Cameras``.
        strategy_kwargs: keyword arguments of the named strategy (e.g. ``{"num_views": 1}``).
        render_size: ``(H, W)`` to render the camera views at (intrinsics rescaled).
        scale: Gaussian standard deviation (default ``voxel_size / 2``, App. E.1).
        depth_range: fixed ``d_range`` in metres for every view (default: per view, from the grid).
        cache_gt: with fixed cameras, reuse the ground-truth renders while the labels (and mask)
            are unchanged. The comparison reads back to the host each call (on a GPU, a
            synchronisation) and is skipped under ``torch.compile``; with ``cache_gt=False``
            (or ``targets=``) and value checks off, a step makes no synchronisation outside the
            CUDA rasterizer (see ``docs/design.md``).
        generator: random source of the camera strategy.
        backend: passed to :func:`gaussocc_ops.splat`.

    Call: ``loss_fn(pred_logits [B, C, X, Y, Z], gt_labels [B, X, Y, Z], opacity=None, *,
    mask=None, cams=None, targets=None, return_terms=False)`` returns a scalar (float32, or
    float64 for float64 logits), or ``(loss, terms)`` with ``terms`` a dict of detached per-sample
    ``[B]`` tensors ``sem_cam, depth_cam, sem_bev, depth_bev, total`` (``total`` is weighted).
    ``cams`` overrides the constructor's cameras for this call; ``targets`` are ground-truth
    renders from :meth:`render_targets` (they carry their cameras).

    Example:
        >>> grid = VoxelGrid((-3., -3., 0.), 0.5, (12, 12, 4))
        >>> K = camlib.pinhole_intrinsics(90.0, height=16, width=24)[None]
        >>> eye, target = torch.tensor([[-3.5, 0., 3.]]), torch.tensor([[0., 0, 0]])
        >>> cams = Cameras(camlib.look_at(eye, target), K, width=24, height=16)
        >>> loss_fn = GaussRenderLoss(cams, grid=grid, num_classes=4, empty_class=3)
        >>> gt = torch.full((2, 12, 12, 4), 3); gt[:, :, :, 0] = 0
        >>> pred = torch.randn(2, 4, 12, 12, 4, requires_grad=True)
        >>> loss = loss_fn(pred, gt); loss.backward()
        >>> loss.dim(), bool(pred.grad.abs().sum() > 0)
        (0, True)
    """

    def __init__(
        self,
        cams: Cameras | None = None,
        *,
        grid: VoxelGrid,
        num_classes: int,
        empty_class: int,
        ignore_index: int = 255,
        weight: float = 15.0,
        depth_weight: float = 1.0,
        colors: str = "occupied",
        bev: bool = True,
        bev_resolution: int | tuple[int, int] | None = None,
        strategy: str | Strategy | None = None,
        strategy_kwargs: dict | None = None,
        render_size: tuple[int, int] | None = None,
        scale: float | tuple[float, float, float] | None = None,
        depth_range: float | None = None,
        cache_gt: bool = True,
        generator: torch.Generator | None = None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(grid, VoxelGrid):
            raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if (
            isinstance(empty_class, bool)
            or not isinstance(empty_class, int)
            or not 0 <= empty_class < num_classes
        ):
            raise ValueError(
                f"empty_class must be an int in [0, {num_classes}), got {empty_class!r}"
            )
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index={ignore_index} collides with a class in [0, {num_classes})"
            )
        if cams is not None and not isinstance(cams, Cameras):
            raise TypeError(f"cams must be gaussocc_ops.Cameras or None, got {type(cams).__name__}")
        if isinstance(strategy, str) and strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {STRATEGIES}, a callable or None, got {strategy!r}"
            )
        if strategy is not None and not isinstance(strategy, str) and not callable(strategy):
            raise TypeError(
                f"strategy must be a str, a callable or None, got {type(strategy).__name__}"
            )
        if strategy is not None and cams is None:
            raise ValueError("a camera strategy needs base cameras: pass cams")
        if cams is None and not bev:
            raise ValueError("nothing to render: pass cams or set bev=True")
        if colors not in ("occupied", "all"):
            raise ValueError(f"colors must be 'occupied' or 'all', got {colors!r}")
        if weight < 0 or depth_weight < 0:
            raise ValueError(f"weight and depth_weight must be >= 0, got {weight}, {depth_weight}")
        if depth_range is not None and not depth_range > 0:
            raise ValueError(f"depth_range must be positive, got {depth_range}")
        self.grid = grid
        self.num_classes = num_classes
        self.empty_class = empty_class
        self.ignore_index = ignore_index
        self.weight = float(weight)
        self.depth_weight = float(depth_weight)
        self.colors = colors
        self.cams = cams
        self.strategy = strategy
        self.strategy_kwargs = dict(strategy_kwargs or {})
        self.render_size = render_size
        self.scale = scale
        self.depth_range = depth_range
        self.cache_gt = cache_gt
        self.generator = generator
        self.backend = backend
        self.bev_cams = None
        if bev:
            X, Y, _ = grid.shape
            self.bev_cams = camlib.bev(
                grid, bev_resolution if bev_resolution is not None else (Y, X)
            )
        self._cache: tuple | None = None
        self._moved: dict[tuple[str, torch.device], tuple[Cameras, Cameras]] = {}

    # -- cameras ---------------------------------------------------------------------------------

    def sample_cameras(
        self, pred_logits: torch.Tensor, gt_labels: torch.Tensor, cams: Cameras | None = None
    ) -> dict[str, Cameras]:
        """The views of this step: ``{"cam": ..., "bev": ...}`` (each when present)."""
        base = cams if cams is not None else self.cams
        if base is not None and self.strategy is not None:
            base = self._apply_strategy(
                self._to_device(base, pred_logits.device), pred_logits, gt_labels
            )
        return self._fixed_cameras(base, pred_logits.device)

    def _fixed_cameras(self, base: Cameras | None, device) -> dict[str, Cameras]:
        out: dict[str, Cameras] = {}
        if base is not None:
            base = self._to_device(base, device)
            if self.render_size is not None:
                base = camlib.resized(base, *self.render_size)
            out["cam"] = base
        if self.bev_cams is not None:
            out["bev"] = self._to_device(self.bev_cams, device)
        return out

    def _to_device(self, cams: Cameras, device: torch.device) -> Cameras:
        """``cams`` on ``device``. The loss's own cameras are moved once per device and kept: a
        host→device copy waits for the GPU work queued before it (a synchronisation)."""
        if cams.device == device:
            return cams
        if cams is not self.cams and cams is not self.bev_cams:
            return cams.to(device)
        key = ("cam" if cams is self.cams else "bev", device)
        hit = self._moved.get(key)
        if hit is None or hit[0] is not cams:  # (the attribute may have been reassigned)
            hit = self._moved[key] = (cams, cams.to(device))
        return hit[1]

    def _apply_strategy(self, base, pred_logits, gt_labels) -> Cameras:
        B = pred_logits.shape[0]
        kw = dict(self.strategy_kwargs)
        gen = self.generator
        name = self.strategy
        if callable(name):
            return name(
                base, self.grid, pred_logits=pred_logits, gt_labels=gt_labels, generator=gen
            )
        if name == "dynamic":
            error = voxel_cross_entropy(pred_logits, gt_labels, self.ignore_index)
            return camlib.dynamic(base, self.grid, error, generator=gen, **kw)
        if name in ("sensor", "elevated"):
            return getattr(camlib, name)(base, batch_size=B, generator=gen, **kw)
        return getattr(camlib, name)(base, self.grid, batch_size=B, generator=gen, **kw)

    # -- ground truth ----------------------------------------------------------------------------

    def render_targets(
        self,
        gt_labels: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        cameras: dict[str, Cameras] | None = None,
    ) -> GaussRenderTargets:
        """Ground-truth renders for ``gt_labels [B, X, Y, Z]``.

        With fixed cameras, compute them once (e.g. in the data pipeline) and pass them to the
        call as ``targets=``. ``cameras`` defaults to the fixed views of this loss.
        """
        self._check_labels(gt_labels)
        if cameras is None:
            if self.strategy is not None:
                raise ValueError("render_targets needs explicit cameras when a strategy is used")
            cameras = self._fixed_cameras(self.cams, gt_labels.device)
        return self._render_targets(gt_labels, mask, cameras)

    def _render_targets(self, gt_labels, mask, cameras) -> GaussRenderTargets:
        """:meth:`render_targets` on checked labels: no value check, no host synchronisation."""
        keep = self._keep_mask(gt_labels, mask)
        with torch.no_grad():
            g = _labels_to_gaussians(
                gt_labels,
                self.grid,
                self.num_classes,
                self.empty_class,
                self.ignore_index,
                self.scale,
                keep,
                torch.float32,
                compact=False,
            )
            renders = {name: self._render(g, c) for name, c in cameras.items()}
        return GaussRenderTargets(cameras, renders)

    def _cached_targets(self, gt_labels, mask) -> GaussRenderTargets:
        cache = self._cache
        if cache is not None and _same(cache[0], gt_labels) and _same(cache[1], mask):
            return cache[2]
        targets = self.render_targets(gt_labels, mask=mask)
        self._cache = (gt_labels.detach().clone(), None if mask is None else mask.clone(), targets)
        return targets

    # -- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        pred_logits: torch.Tensor,
        gt_labels: torch.Tensor,
        opacity: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        cams: Cameras | None = None,
        targets: GaussRenderTargets | None = None,
        return_terms: bool = False,
    ):
        self._check_pred(pred_logits)
        self._check_labels(gt_labels, values=False)
        if gt_labels.shape[0] != pred_logits.shape[0] or gt_labels.device != pred_logits.device:
            raise ValueError(
                f"gt_labels ({describe(gt_labels)}) must match pred_logits "
                f"({describe(pred_logits)}) in batch size and device"
            )
        if cams is not None and not isinstance(cams, Cameras):
            raise TypeError(f"cams must be gaussocc_ops.Cameras or None, got {type(cams).__name__}")
        if targets is not None and not isinstance(targets, GaussRenderTargets):
            raise TypeError(f"targets must be GaussRenderTargets, got {type(targets).__name__}")
        # the cache compares the labels with the cached ones: a host synchronisation, and a
        # data-dependent branch that torch.compile cannot trace
        cached = (
            targets is None
            and self.strategy is None
            and cams is None
            and self.cache_gt
            and not torch.compiler.is_compiling()
        )
        if not cached:  # (a cache miss checks them in render_targets: once per call either way)
            check_label_range(gt_labels, self.num_classes, self.ignore_index)
        with torch.autocast(pred_logits.device.type, enabled=False):
            if targets is None:
                if cached:
                    targets = self._cached_targets(gt_labels, mask)
                else:
                    views = self.sample_cameras(pred_logits, gt_labels, cams)
                    targets = self._render_targets(gt_labels, mask, views)
            pred = voxels_to_gaussians(
                pred_logits,
                self.grid,
                empty_class=self.empty_class,
                opacity="empty" if opacity is None else opacity,
                colors=self.colors,
                scale=self.scale,
                valid_mask=self._keep_mask(gt_labels, mask),
                compact=False,
            )
            terms = self._terms(pred, targets)
        if return_terms:
            return terms.pop("loss"), {k: v.detach() for k, v in terms.items()}
        return terms["loss"]

    def _terms(self, pred: Gaussians, targets: GaussRenderTargets) -> dict[str, torch.Tensor]:
        B = pred.batch_shape[0]
        zero = pred.features.sum((-1, -2)) * 0  # [B], attached to the graph even with no views
        terms = {"sem_cam": zero, "depth_cam": zero, "sem_bev": zero, "depth_bev": zero}
        for name, cams in targets.cameras.items():
            gt = targets.renders[name]
            if gt.features.shape[0] not in (B,):
                raise ValueError(
                    f"targets were rendered for batch size {gt.features.shape[0]}, "
                    f"the prediction has {B}"
                )
            out = self._render(pred, cams)
            sem = (out.features - gt.features.to(out.features.dtype)).abs().mean((-1, -2, -3))
            d_range = self._depth_range(cams, out.depth)
            valid = gt.alpha > GT_VALID_ALPHA
            err = (out.depth - gt.depth.to(out.depth.dtype)).abs() / d_range[..., None, None]
            err = torch.where(valid, err, torch.zeros_like(err)).sum((-1, -2))
            depth = err / valid.sum((-1, -2)).clamp(min=1)
            terms["sem_" + name] = sem.mean(-1)
            terms["depth_" + name] = depth.mean(-1)
        w = self.depth_weight
        total = (
            terms["sem_cam"] + w * terms["depth_cam"] + terms["sem_bev"] + w * terms["depth_bev"]
        )
        terms["total"] = self.weight * total
        terms["loss"] = terms["total"].mean() if B else terms["total"].sum()
        return terms

    def _render(self, g: Gaussians, cams: Cameras) -> ViewRenders:
        classes = torch.arange(self.num_classes, device=g.device)
        background = (classes == self.empty_class).to(g.features.dtype)  # one-hot empty class
        out = splat(g, cams, depth_mode="accumulated", background=background, backend=self.backend)
        return ViewRenders(out.features, out.depth[..., 0], out.alpha[..., 0])

    def _depth_range(self, cams: Cameras, like: torch.Tensor) -> torch.Tensor:
        """``d_range`` per (sample, view): ``[B, V]``."""
        B, V = like.shape[:2]
        if self.depth_range is not None:
            return like.new_full((B, V), self.depth_range)
        lo, hi = self.grid.origin, self.grid.upper
        corners = constant(
            [[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])],
            like.dtype,
            like.device,
        )
        vm = cams.viewmats.to(like.dtype)
        z = corners @ vm[..., 2, :3].transpose(-1, -2) + vm[..., 2, 3].unsqueeze(-2)  # [..., 8, V]
        return z.amax(-2).expand(B, V).clamp(min=1e-3)

    # -- validation ------------------------------------------------------------------------------

    def _keep_mask(self, gt_labels, mask) -> torch.Tensor:
        keep = gt_labels != self.ignore_index
        if mask is not None:
            check_tensor("mask", mask)
            if mask.dtype != torch.bool or mask.shape != gt_labels.shape:
                raise ValueError(
                    f"mask must be a bool tensor of shape {tuple(gt_labels.shape)}, "
                    f"got {describe(mask)}"
                )
            keep = keep & mask.to(keep.device)
        return keep

    def _check_pred(self, pred_logits) -> None:
        check_tensor("pred_logits", pred_logits)
        expected = ("B", self.num_classes, *self.grid.shape)
        if (
            pred_logits.dim() != 5
            or pred_logits.shape[1] != self.num_classes
            or tuple(pred_logits.shape[2:]) != self.grid.shape
        ):
            raise ValueError(
                f"pred_logits must have shape {list(expected)} (num_classes and "
                f"grid.shape), got {describe(pred_logits)}"
            )
        if not pred_logits.is_floating_point():
            raise TypeError(f"pred_logits must be floating point, got {describe(pred_logits)}")

    def _check_labels(self, gt_labels, values: bool = True) -> None:
        check_tensor("gt_labels", gt_labels)
        if gt_labels.dim() != 4 or tuple(gt_labels.shape[1:]) != self.grid.shape:
            raise ValueError(
                f"gt_labels must have shape [B, *{self.grid.shape}], got {describe(gt_labels)}"
            )
        if gt_labels.is_floating_point() or gt_labels.dtype == torch.bool:
            raise TypeError(f"gt_labels must be an integer tensor, got {describe(gt_labels)}")
        if values:
            check_label_range(gt_labels, self.num_classes, self.ignore_index)


def voxel_cross_entropy(
    pred_logits: torch.Tensor, gt_labels: torch.Tensor, ignore_index: int = 255
) -> torch.Tensor:
    """Per-voxel cross-entropy ``[B, X, Y, Z]`` of ``pred_logits [B, C, X, Y, Z]`` against
    ``gt_labels [B, X, Y, Z]`` (0 at ignored voxels), without gradient: the error map of the
    ``"dynamic"`` camera strategy."""
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(
            pred_logits.float(), gt_labels.long(), ignore_index=ignore_index, reduction="none"
        )


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and a.device == b.device and a.dtype == b.dtype and torch.equal(a, b)
