"""Evaluation metrics on ``torchmetrics.Metric``: ``update() / compute() / forward() / reset()``,
summed over ``torch.distributed`` ranks by ``compute()``."""

from gaussocc_ops.metrics.bev import BEVIoU
from gaussocc_ops.metrics.boundary import BoundaryF1, occupancy_boundary
from gaussocc_ops.metrics.depth import DepthMetrics
from gaussocc_ops.metrics.rayiou import RayIoU, ray_pattern, sparseocc_ray_pattern
from gaussocc_ops.metrics.ssc import SSCMetrics

__all__ = [
    "BEVIoU",
    "BoundaryF1",
    "DepthMetrics",
    "RayIoU",
    "SSCMetrics",
    "occupancy_boundary",
    "ray_pattern",
    "sparseocc_ray_pattern",
]
