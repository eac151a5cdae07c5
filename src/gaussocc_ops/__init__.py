"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras
from gaussocc_ops._ext import build_info
from gaussocc_ops.gaussrender import GaussRenderLoss, GaussRenderTargets
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid
from gaussocc_ops.voxelize import labels_to_gaussians, voxels_to_gaussians

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "GaussRenderLoss",
    "GaussRenderTargets",
    "Gaussians",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "labels_to_gaussians",
    "splat",
    "voxels_to_gaussians",
]
