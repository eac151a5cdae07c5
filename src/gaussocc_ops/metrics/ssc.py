"""Semantic scene completion metrics: SC-IoU (geometry) and per-class IoU / mIoU."""

from __future__ import annotations

import torch

from gaussocc_ops.metrics._inputs import as_labels, check_pair, valid_voxels
from gaussocc_ops.metrics.base import ClassIoUMetric, safe_ratio


class SSCMetrics(ClassIoUMetric):
    """SC-IoU and mIoU accumulated over a dataset (SSC protocol of MonoScene / SemanticKITTI).

    Over valid voxels (``target != ignore_index`` and ``mask``):

    * geometry: occupied = label ``!= empty_class``; ``precision = TP / (TP + FP)``,
      ``recall = TP / (TP + FN)``, ``iou = TP / (TP + FP + FN)``;
    * semantics: per class ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; ``miou`` averages the
      non-empty classes. Counts are summed over the whole dataset before dividing.

    A class with ``TP + FP + FN = 0`` over the dataset (absent from GT and never predicted) has
    IoU 0; ``absent="zero"`` (MonoScene) keeps it in the mean as 0, ``absent="exclude"`` leaves
    it out. Ratios with a zero denominator are 0, never NaN.

    A ``torchmetrics.Metric``: ``compute()`` sums the counts over the distributed ranks,
    ``forward(pred, target)`` returns the batch's values and accumulates them; ``kwargs`` are
    torchmetrics' options (``sync_on_compute``, ``process_group``, ...).

    Example:
        >>> m = SSCMetrics(num_classes=3, empty_class=0)
        >>> t = torch.tensor([[[[0, 1], [2, 255]]]])
        >>> m.update(t.clone(), t)
        >>> round(m.compute()["miou"].item(), 3), m.compute()["iou"].item()
        (1.0, 1.0)
    """

    def update(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            pred: ``[B, X, Y, Z]`` int labels or ``[B, C, X, Y, Z]`` scores (argmax is taken).
            target: ``[B, X, Y, Z]`` int labels (``ignore_index`` skipped).
            mask: optional ``[B, X, Y, Z]`` bool (e.g. camera frustum / visibility): only true
                voxels are evaluated.
        """
        pred = as_labels("pred", pred, self.num_classes)
        target = as_labels("target", target, self.num_classes)
        check_pair(pred, target, mask, 1)
        valid = valid_voxels(target, self.ignore_index, mask)
        p, t = pred[valid], target[valid]
        C = self.num_classes
        if bool(((p < 0) | (p >= C)).any() | ((t < 0) | (t >= C)).any()):
            raise ValueError(
                f"labels must lie in [0, {C}) (or be ignore_index={self.ignore_index})"
            )
        p_occ, t_occ = p != self.empty_class, t != self.empty_class
        self.accumulate(
            "geo_counts",
            torch.stack([(p_occ & t_occ).sum(), (p_occ & ~t_occ).sum(), (~p_occ & t_occ).sum()]),
        )
        tp = torch.bincount(t[p == t], minlength=C)
        pred_count = torch.bincount(p, minlength=C)
        true_count = torch.bincount(t, minlength=C)
        self.accumulate("class_counts", torch.stack([tp, pred_count - tp, true_count - tp]))

    def compute(self) -> dict[str, torch.Tensor]:
        """``precision``, ``recall``, ``iou`` (geometry), ``iou_per_class [C]`` (the empty class's
        entry is its own IoU, not used in the mean) and ``miou``."""
        tp, fp, fn = self.geo_counts
        iou_c, miou = self.class_iou()
        return {
            "precision": safe_ratio(tp, tp + fp),
            "recall": safe_ratio(tp, tp + fn),
            "iou": safe_ratio(tp, tp + fp + fn),
            "iou_per_class": iou_c,
            "miou": miou,
        }
