"""Monocular depth metrics (Eigen et al. protocol)."""

from __future__ import annotations

import torch

from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.metrics.base import Metric, safe_ratio

NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")


class DepthMetrics(Metric):
    """AbsRel, SqRel, RMSE, RMSE log and the ``delta < 1.25^i`` accuracies.

    Per image, over valid pixels (``min_depth < gt < max_depth``, finite, and ``mask``):
    optionally median scaling ``pred <- pred * median(gt) / median(pred)``, then
    ``pred`` is clamped to ``[min_depth, max_depth]`` and
    ``abs_rel = mean |p - g| / g``, ``sq_rel = mean (p - g)^2 / g``,
    ``rmse = sqrt(mean (p - g)^2)``,
    ``rmse_log = sqrt(mean (log p - log g)^2)``, ``a_i = mean[max(p/g, g/p) < 1.25^i]``.
    The dataset value is the mean over images (images without valid pixels are skipped), as
    in the Eigen / Monodepth2 evaluation.

    Example:
        >>> m = DepthMetrics(max_depth=80.0)
        >>> gt = torch.full((1, 4, 4), 10.0)
        >>> m.update(gt * 1.1, gt); round(m.compute()["abs_rel"].item(), 6)
        0.1
    """

    def __init__(
        self,
        *,
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
        median_scaling: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        super().__init__(device)
        self.min_depth = min_depth
        self.max_depth = max_depth
        self.median_scaling = median_scaling
        self.add_state("sums", (len(NAMES),))
        self.add_state("images", ())

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch: ``pred``, ``target`` ``[B, ...]`` depth maps (dim 0 indexes images),
        optional bool ``mask`` of the same shape."""
        check_tensor("pred", pred, min_dim=1)
        check_tensor("target", target, min_dim=1)
        check_float("pred", pred)
        check_float("target", target)
        if pred.shape != target.shape:
            raise ValueError(
                f"target must have the shape of pred {tuple(pred.shape)}, got {describe(target)}"
            )
        if mask is not None and (mask.dtype != torch.bool or mask.shape != target.shape):
            raise ValueError(
                f"mask must be bool with shape {tuple(target.shape)}, got {describe(mask)}"
            )
        p_all = pred.detach().double().reshape(pred.shape[0], -1)
        g_all = target.detach().double().reshape(target.shape[0], -1)
        valid_all = torch.isfinite(g_all) & (g_all > self.min_depth) & (g_all < self.max_depth)
        if mask is not None:
            valid_all &= mask.reshape(mask.shape[0], -1)
        for p, g, valid in zip(p_all, g_all, valid_all, strict=True):
            if not bool(valid.any()):
                continue
            p, g = p[valid], g[valid]
            if self.median_scaling:
                p = p * safe_ratio(g.median(), p.median())
            p = p.nan_to_num(nan=self.min_depth).clamp(self.min_depth, self.max_depth)
            ratio = torch.maximum(p / g, g / p)
            values = torch.stack(
                [
                    ((p - g).abs() / g).mean(),
                    ((p - g) ** 2 / g).mean(),
                    ((p - g) ** 2).mean().sqrt(),
                    ((p.log() - g.log()) ** 2).mean().sqrt(),
                    (ratio < 1.25).double().mean(),
                    (ratio < 1.25**2).double().mean(),
                    (ratio < 1.25**3).double().mean(),
                ]
            )
            self._add("sums", values)
            self._add("images", torch.ones((), dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        """The seven metrics (0 before any valid image) and ``images`` (how many counted)."""
        s = self.states()
        means = safe_ratio(s["sums"], s["images"].expand_as(s["sums"]))
        return {**dict(zip(NAMES, means, strict=True)), "images": s["images"]}
