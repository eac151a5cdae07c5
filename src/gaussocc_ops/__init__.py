"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras
from gaussocc_ops._ext import build_info
from gaussocc_ops.confidence import hybrid_confidence
from gaussocc_ops.memory import GaussianMemory, InsertResult
from gaussocc_ops.radius import RadiusNeighbors, radius_neighbors
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "GaussianMemory",
    "Gaussians",
    "InsertResult",
    "RadiusNeighbors",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "hybrid_confidence",
    "radius_neighbors",
    "splat",
]
