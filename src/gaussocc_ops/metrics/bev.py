"""Bird's-eye-view IoU: occupancy and semantics collapsed over the height axis."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gaussocc_ops.metrics._inputs import as_labels, check_pair, valid_voxels
from gaussocc_ops.metrics.base import ClassIoUMetric, safe_ratio


class BEVIoU(ClassIoUMetric):
    """IoU of BEV maps obtained by collapsing ``[B, X, Y, Z]`` label volumes over ``Z``.

    Only valid voxels (``target != ignore_index`` and ``mask``) take part; a column is evaluated
    when it has at least one valid voxel. Geometry: a column is occupied when any valid voxel
    in it is non-empty. Semantics: a column carries class ``c`` when any valid voxel in it has
    class ``c`` (a column may carry several classes). IoU per class over columns, counts summed
    over the dataset; ``miou`` over non-empty classes with the ``absent`` rule of
    :class:`SSCMetrics`. A ``torchmetrics.Metric`` (``kwargs``: its options).

    Example:
        >>> m = BEVIoU(num_classes=3, empty_class=0)
        >>> t = torch.zeros(1, 2, 2, 3, dtype=torch.long); t[0, 0, 0, 2] = 1
        >>> p = torch.zeros_like(t); p[0, 0, 0, 0] = 1   # same column, other height
        >>> m.update(p, t); m.compute()["iou"].item()
        1.0
    """

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch: ``pred`` ``[B, X, Y, Z]`` labels or ``[B, C, X, Y, Z]`` scores,
        ``target`` ``[B, X, Y, Z]``, optional bool ``mask`` ``[B, X, Y, Z]``."""
        pred = as_labels("pred", pred, self.num_classes)
        target = as_labels("target", target, self.num_classes)
        check_pair(pred, target, mask, 4)
        C = self.num_classes
        valid = valid_voxels(target, self.ignore_index, mask)
        for name, lab in (("pred", pred), ("target", target)):
            bad = valid & ((lab < 0) | (lab >= C))
            if bool(bad.any()):
                raise ValueError(
                    f"{name} labels must lie in [0, {C}) (or be ignore_index={self.ignore_index})"
                )
        column = valid.any(-1)
        p_occ = (valid & (pred != self.empty_class)).any(-1)
        t_occ = (valid & (target != self.empty_class)).any(-1)
        self.accumulate(
            "geo_counts",
            torch.stack([(p_occ & t_occ).sum(), (p_occ & ~t_occ).sum(), (~p_occ & t_occ).sum()]),
        )

        def columns(lab):
            onehot = F.one_hot(torch.where(valid, lab, C), C + 1)[..., :C]
            return onehot.amax(-2).bool()  # [B, X, Y, C]

        pc, tc = columns(pred), columns(target)
        col = column.unsqueeze(-1)
        dims = tuple(range(pc.dim() - 1))
        tp = (pc & tc & col).sum(dims)
        fp = (pc & ~tc & col).sum(dims)
        fn = (~pc & tc & col).sum(dims)
        self.accumulate("class_counts", torch.stack([tp, fp, fn]))

    def compute(self) -> dict[str, torch.Tensor]:
        """``iou`` (BEV occupancy), ``iou_per_class [C]`` and ``miou``."""
        tp, fp, fn = self.geo_counts
        iou_c, miou = self.class_iou()
        return {
            "iou": safe_ratio(tp, tp + fp + fn),
            "iou_per_class": iou_c,
            "miou": miou,
        }
