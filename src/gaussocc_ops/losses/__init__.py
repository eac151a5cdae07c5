"""Losses for occupancy and depth training: functional forms and ``nn.Module`` wrappers."""

from gaussocc_ops.losses.depth import DepthHuberLoss, depth_huber_loss
from gaussocc_ops.losses.focal import FocalLoss, focal_loss
from gaussocc_ops.losses.lovasz import LovaszSoftmaxLoss, lovasz_softmax
from gaussocc_ops.losses.photometric import (
    PhotometricAlignmentLoss,
    ReconstructionConsistencyLoss,
    depth_reconstruction_consistency_loss,
    photometric_alignment_loss,
    rgb_reconstruction_loss,
    warp_to_target,
)
from gaussocc_ops.losses.planar import PlanarRegularizationLoss, planar_regularization_loss
from gaussocc_ops.losses.scal import GeoScalLoss, SemScalLoss, geo_scal_loss, sem_scal_loss
from gaussocc_ops.losses.ssim import ssim

__all__ = [
    "DepthHuberLoss",
    "FocalLoss",
    "GeoScalLoss",
    "LovaszSoftmaxLoss",
    "PhotometricAlignmentLoss",
    "PlanarRegularizationLoss",
    "ReconstructionConsistencyLoss",
    "SemScalLoss",
    "depth_huber_loss",
    "depth_reconstruction_consistency_loss",
    "focal_loss",
    "geo_scal_loss",
    "lovasz_softmax",
    "photometric_alignment_loss",
    "planar_regularization_loss",
    "rgb_reconstruction_loss",
    "sem_scal_loss",
    "ssim",
    "warp_to_target",
]
