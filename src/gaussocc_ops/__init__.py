"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras
from gaussocc_ops._ext import build_info
from gaussocc_ops.confidence import hybrid_confidence
from gaussocc_ops.memory import GaussianMemory, InsertResult
from gaussocc_ops.patches import PatchPixels, patch_pixels, patch_rays
from gaussocc_ops.radius import RadiusNeighbors, radius_neighbors
from gaussocc_ops.snog import SnogSamples, snog_sample
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "GaussianMemory",
    "Gaussians",
    "InsertResult",
    "PatchPixels",
    "RadiusNeighbors",
    "SnogSamples",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "hybrid_confidence",
    "patch_pixels",
    "patch_rays",
    "radius_neighbors",
    "snog_sample",
    "splat",
]
