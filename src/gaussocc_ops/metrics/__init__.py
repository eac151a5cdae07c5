"""Stateful evaluation metrics (``update() / compute() / reset() / sync()``), DDP-ready."""

from gaussocc_ops.metrics.base import Metric
from gaussocc_ops.metrics.bev import BEVIoU
from gaussocc_ops.metrics.boundary import BoundaryF1, occupancy_boundary
from gaussocc_ops.metrics.depth import DepthMetrics
from gaussocc_ops.metrics.rayiou import RayIoU, ray_pattern
from gaussocc_ops.metrics.ssc import SSCMetrics

__all__ = [
    "BEVIoU",
    "BoundaryF1",
    "DepthMetrics",
    "Metric",
    "RayIoU",
    "SSCMetrics",
    "occupancy_boundary",
    "ray_pattern",
]
