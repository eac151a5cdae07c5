"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras, losses, metrics
from gaussocc_ops._checks import set_value_checks, value_checks
from gaussocc_ops._ext import build_info
from gaussocc_ops.accumulate import OccupancyOutput, gaussians_to_occupancy
from gaussocc_ops.confidence import hybrid_confidence
from gaussocc_ops.depth import (
    GaussianDepthGate,
    IdentityInitFusion,
    InverseDepthAlignment,
    gaussian_depth_gate,
    inverse_depth_align,
)
from gaussocc_ops.gaussrender import GaussRenderLoss, GaussRenderTargets
from gaussocc_ops.lift import SoftGatingLifter, soft_gated_lift
from gaussocc_ops.memory import GaussianMemory, InsertResult
from gaussocc_ops.metrics import RayIoU, SSCMetrics
from gaussocc_ops.patches import PatchPixels, patch_pixels, patch_rays
from gaussocc_ops.prune import PrunedGaussians, prune_by_opacity
from gaussocc_ops.radius import RadiusNeighbors, radius_neighbors
from gaussocc_ops.raycast import RaycastOutput, raycast
from gaussocc_ops.rays import ray_constrained_refine, ray_directions, ray_volumetric_sample
from gaussocc_ops.snog import SnogSamples, snog_sample
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid
from gaussocc_ops.visibility import visibility_pool_mask
from gaussocc_ops.voxelize import labels_to_gaussians, voxels_to_gaussians

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "GaussRenderLoss",
    "GaussRenderTargets",
    "GaussianDepthGate",
    "GaussianMemory",
    "Gaussians",
    "IdentityInitFusion",
    "InsertResult",
    "InverseDepthAlignment",
    "OccupancyOutput",
    "PatchPixels",
    "PrunedGaussians",
    "RadiusNeighbors",
    "RayIoU",
    "RaycastOutput",
    "SSCMetrics",
    "SnogSamples",
    "SoftGatingLifter",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "gaussian_depth_gate",
    "gaussians_to_occupancy",
    "hybrid_confidence",
    "inverse_depth_align",
    "labels_to_gaussians",
    "losses",
    "metrics",
    "patch_pixels",
    "patch_rays",
    "prune_by_opacity",
    "radius_neighbors",
    "ray_constrained_refine",
    "ray_directions",
    "ray_volumetric_sample",
    "raycast",
    "set_value_checks",
    "snog_sample",
    "soft_gated_lift",
    "splat",
    "value_checks",
    "visibility_pool_mask",
    "voxels_to_gaussians",
]
