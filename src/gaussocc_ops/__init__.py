"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras
from gaussocc_ops._ext import build_info
from gaussocc_ops.accumulate import OccupancyOutput, gaussians_to_occupancy
from gaussocc_ops.prune import PrunedGaussians, prune_by_opacity
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "Gaussians",
    "OccupancyOutput",
    "PrunedGaussians",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "gaussians_to_occupancy",
    "prune_by_opacity",
    "splat",
]
