"""Monocular depth metrics (Eigen et al. protocol, as evaluated by Monodepth2)."""

from __future__ import annotations

from typing import Any, Literal

import torch

from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.metrics.base import CountMetric, safe_ratio

NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")

# (top, bottom, left, right) fractions of the GT image: rows [int(top H), int(bottom H)) and
# columns [int(left W), int(right W)) are evaluated. Garg et al. (ECCV 2016), the crop of
# Monodepth2's eigen split; Eigen et al. (NIPS 2014), as reproduced by Monodepth.
CROPS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


def median(values: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor as ``numpy.median`` defines it: the middle value, or the mean of
    the two middle values for an even count (``torch.median`` returns the lower one).

    Args:
        values: ``[N]``, ``N >= 1``.

    Returns:
        scalar tensor of ``values``' dtype.

    Example:
        >>> median(torch.tensor([4.0, 1.0, 3.0, 2.0])).item()
        2.5
    """
    ordered = values.sort().values
    n = ordered.numel()
    return (ordered[(n - 1) // 2] + ordered[n // 2]) / 2


def crop_mask(
    height: int,
    width: int,
    crop: Literal["garg", "eigen"],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``[H, W]`` bool mask of the Garg or Eigen evaluation crop of an ``H x W`` GT depth map.

    Example:
        >>> m = crop_mask(375, 1242, "garg")  # a KITTI GT map
        >>> m.nonzero().amin(0).tolist(), m.nonzero().amax(0).tolist()
        ([153, 44], [370, 1196])
    """
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {sorted(CROPS)} or None, got {crop!r}")
    top, bottom, left, right = CROPS[crop]
    mask = torch.zeros(height, width, dtype=torch.bool, device=device)
    mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    return mask


class DepthMetrics(CountMetric):
    """AbsRel, SqRel, RMSE, RMSE log and the ``delta < 1.25^i`` accuracies, per image, averaged
    over images: the evaluation of Eigen et al. as Monodepth2's ``evaluate_depth.py`` runs it.

    Per image, over the valid pixels (``min_depth < g < max_depth``, finite, inside ``crop``,
    and ``mask``):

    1. with ``median_scaling``, ``p <- p * median(g) / median(p)``, the median of an even count
       being the mean of its two middle values (``numpy.median``);
    2. ``p <- clamp(p, min_depth, max_depth)`` (a NaN prediction becomes ``min_depth``);
    3. ``abs_rel = mean |p - g| / g``, ``sq_rel = mean (p - g)^2 / g``,
       ``rmse = sqrt(mean (p - g)^2)``, ``rmse_log = sqrt(mean (log p - log g)^2)``,
       ``a_i = mean[max(p/g, g/p) < 1.25^i]``.

    The dataset value is the mean over images (images without a valid pixel are skipped).
    Monodepth2's monocular evaluation on the KITTI Eigen split is
    ``DepthMetrics(min_depth=1e-3, max_depth=80.0, median_scaling=True, crop="garg")``
    (its defaults: caps 1e-3 and 80 m, Garg crop); ``crop="eigen"`` is the crop of Eigen et al.

    Args:
        min_depth, max_depth: the GT validity range and the clamp of the prediction (metres).
        median_scaling: per-image median scaling (monocular, scale-ambiguous predictions).
        crop: ``None``, ``"garg"`` or ``"eigen"``: evaluate only the crop of each ``H x W`` map
            (the last two dims of the inputs).
        kwargs: torchmetrics' options (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> m = DepthMetrics(max_depth=80.0)
        >>> gt = torch.full((1, 4, 4), 10.0)
        >>> m.update(gt * 1.1, gt); round(m.compute()["abs_rel"].item(), 6)
        0.1
    """

    higher_is_better = None  # lower errors, higher accuracies

    def __init__(
        self,
        *,
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
        median_scaling: bool = False,
        crop: Literal["garg", "eigen"] | None = None,
        **kwargs: Any,
    ) -> None:
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth}, {max_depth}")
        if crop is not None and crop not in CROPS:
            raise ValueError(f"crop must be one of {sorted(CROPS)} or None, got {crop!r}")
        super().__init__(**kwargs)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.median_scaling = bool(median_scaling)
        self.crop = crop
        self.add_count("sums", (len(NAMES),))
        self.add_count("images", ())

    def extra_repr(self) -> str:
        return (
            f"min_depth={self.min_depth}, max_depth={self.max_depth}, "
            f"median_scaling={self.median_scaling}, crop={self.crop!r}"
        )

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            pred, target: ``[B, ...]`` depth maps (dim 0 indexes images; with ``crop``,
                ``[B, ..., H, W]``).
            mask: optional bool mask of the same shape.
        """
        check_tensor("pred", pred, min_dim=3 if self.crop else 1)
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
        valid = torch.isfinite(target) & (target > self.min_depth) & (target < self.max_depth)
        if self.crop is not None:
            valid &= crop_mask(*target.shape[-2:], self.crop, device=target.device)
        if mask is not None:
            valid &= mask
        B = pred.shape[0]
        p_all = pred.detach().double().reshape(B, -1)
        g_all = target.detach().double().reshape(B, -1)
        for p, g, keep in zip(p_all, g_all, valid.reshape(B, -1), strict=True):
            if not bool(keep.any()):
                continue
            p, g = p[keep], g[keep]
            if self.median_scaling:
                p = p * safe_ratio(median(g), median(p))
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
            self.accumulate("sums", values)
            self.accumulate("images", torch.ones((), dtype=torch.float64))

    def compute(self) -> dict[str, torch.Tensor]:
        """The seven metrics (0 before any valid image) and ``images`` (how many counted)."""
        means = safe_ratio(self.sums, self.images.expand_as(self.sums))
        return {**dict(zip(NAMES, means, strict=True)), "images": self.images}
