"""gaussocc-ops: fast, differentiable PyTorch ops and losses for Gaussian-based 3D semantic
occupancy prediction.

    import gaussocc_ops as go
    out = go.splat(gaussians, cameras)            # features, depth, alpha
"""

from gaussocc_ops import cameras
from gaussocc_ops._ext import build_info
from gaussocc_ops.depth import (
    GaussianDepthGate,
    IdentityInitFusion,
    InverseDepthAlignment,
    gaussian_depth_gate,
    inverse_depth_align,
)
from gaussocc_ops.lift import SoftGatingLifter, soft_gated_lift
from gaussocc_ops.rays import ray_constrained_refine, ray_directions, ray_volumetric_sample
from gaussocc_ops.splat import SplatOutput, splat
from gaussocc_ops.types import Cameras, Gaussians, VoxelGrid

__version__ = "0.1.0"

__all__ = [
    "Cameras",
    "GaussianDepthGate",
    "Gaussians",
    "IdentityInitFusion",
    "InverseDepthAlignment",
    "SoftGatingLifter",
    "SplatOutput",
    "VoxelGrid",
    "build_info",
    "cameras",
    "gaussian_depth_gate",
    "inverse_depth_align",
    "ray_constrained_refine",
    "ray_directions",
    "ray_volumetric_sample",
    "soft_gated_lift",
    "splat",
]
