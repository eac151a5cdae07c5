"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras, losses, metrics
from gaussocc_ops._ext import build_info
from gaussocc_ops.metrics import RayIoU, SSCMetrics
from gaussocc_ops.raycast import RaycastOutput, raycast
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "Gaussians",
    "RayIoU",
    "RaycastOutput",
    "SSCMetrics",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "losses",
    "metrics",
    "raycast",
    "splat",
]
