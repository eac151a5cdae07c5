"""Pieces the example models share: the cameras of a batch and the voxel objective of GPOcc and
SGR-OCC."""

from __future__ import annotations

import torch

from gaussocc_ops import losses
from gaussocc_ops.examples.models.backbone import resize_depth
from gaussocc_ops.types import Cameras


def sensor_cameras(K: torch.Tensor, cam2world: torch.Tensor, image_size) -> Cameras:
    """The batch's own cameras as :class:`Cameras` of batch shape ``[B]`` with one view:
    ``K [B, 3, 3]``, ``cam2world [B, 4, 4]``, ``image_size = (H, W)``."""
    H, W = image_size
    return Cameras(torch.linalg.inv(cam2world)[:, None], K[:, None], width=W, height=H)


def camera_frame(Ks: torch.Tensor, image_size) -> Cameras:
    """Cameras at the world origin with identity view matrices, so that their rays and points
    stay in the camera frame: ``Ks [..., V, 3, 3]`` (batch shape and views as in ``Ks``),
    ``image_size = (H, W)``.

    Example:
        >>> K = torch.tensor([[[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]]]).expand(2, 1, 3, 3)
        >>> cams = camera_frame(K, (12, 16))
        >>> tuple(cams.batch_shape), cams.num_views, cams.centers().abs().max().item()
        ((2,), 1, 0.0)
    """
    H, W = image_size
    eye = torch.eye(4, dtype=Ks.dtype, device=Ks.device).expand(*Ks.shape[:-2], 4, 4)
    return Cameras(eye, Ks, height=H, width=W)


def voxel_and_depth_terms(
    logits: torch.Tensor,
    labels: torch.Tensor,
    depth: torch.Tensor,
    gt_depth: torch.Tensor,
    *,
    empty_class: int,
    depth_weight: float = 1.0,
    probs: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """The objective GPOcc and SGR-OCC share (EmbodiedOcc's voxel losses): focal (``gamma = 2``)
    + Lovász-softmax + the scene-class affinity terms on ``logits [B, C, X, Y, Z]`` against
    ``labels [B, X, Y, Z]``, and ``depth_weight`` times a Huber loss of ``depth [B, 1, h, w]``
    against ``gt_depth [B, 1, H, W]`` area-averaged to ``h x w`` (pixels without depth left out).

    The Lovász term takes ``probs [B, C, X, Y, Z]`` (``from_logits=False``) when given.
    Returns the named terms and their sum ``"total"``.

    Example:
        >>> logits, labels = torch.randn(1, 3, 4, 4, 2), torch.randint(0, 3, (1, 4, 4, 2))
        >>> depth, gt = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 4, 4), 3.0)
        >>> terms = voxel_and_depth_terms(logits, labels, depth, gt, empty_class=0)
        >>> sorted(terms)
        ['depth', 'focal', 'geo_scal', 'lovasz', 'sem_scal', 'total']
        >>> terms["depth"].item()  # Huber(1) of a 1 m error
        0.5
    """
    gt_depth = resize_depth(gt_depth, depth.shape[-2:])
    if probs is None:
        lovasz = losses.lovasz_softmax(logits, labels)
    else:
        lovasz = losses.lovasz_softmax(probs, labels, from_logits=False)
    terms = {
        "focal": losses.focal_loss(logits, labels, gamma=2.0),
        "lovasz": lovasz,
        "geo_scal": losses.geo_scal_loss(logits, labels, empty_class=empty_class),
        "sem_scal": losses.sem_scal_loss(logits, labels),
        "depth": depth_weight * losses.depth_huber_loss(depth, gt_depth, gt_depth > 0),
    }
    terms["total"] = sum(terms.values())
    return terms
