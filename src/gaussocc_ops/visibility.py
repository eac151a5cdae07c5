"""SGR-OCC's visibility-aware Gaussian pool (§3.3) and the single-view projection it shares with
:class:`~gaussocc_ops.GaussianMemory`'s hybrid-confidence update: which Gaussians a posed view
with a predicted depth sees, and whether they agree with that depth."""

from __future__ import annotations

import torch

from gaussocc_ops._checks import check_float, check_tensor, describe
from gaussocc_ops.types import Cameras


def visibility_pool_mask(
    means: torch.Tensor,
    tags: torch.Tensor,
    camera: Cameras,
    depth: torch.Tensor,
    *,
    tolerance: float,
) -> torch.Tensor:
    """Which history Gaussians SGR-OCC's visibility-aware pool keeps in the current view.

    SGR-OCC §3.3 ("Visibility-Aware Gaussian Pool Management"): every Gaussian carries a source
    tag ``tau`` (1 = a predicted anchor, 0 = a randomly initialised one); at each step a
    visibility check with the current pose keeps "historical anchors that are visible and
    geometrically consistent" and discards "occluded or invalid random anchors". Concretely
    (the paper gives no formulas; the choices below are ours and marked so):

    * a Gaussian is *in view* when its mean projects in front of the camera (``z > 0``) into
      the image onto a pixel ``(floor(u), floor(v))`` with a valid predicted depth ``D > 0``
      (the pixel rule of :func:`hybrid_confidence`'s ``I_old`` in
      :class:`~gaussocc_ops.GaussianMemory`, :func:`project_to_view`);
    * an in-view Gaussian is *consistent* when ``|z - D| <= tolerance`` (our choice of test and
      threshold), *occluded* when ``z > D + tolerance`` (behind the observed surface) and
      *invalid* when ``z < D - tolerance`` (in the free space the camera sees through);
    * random anchors (``tau = 0``) in view are kept only when consistent: occluded and invalid
      ones are dropped (the paper);
    * predicted anchors (``tau = 1``) are kept (our reading: the paper discards only random
      anchors; an inconsistent predicted anchor is corrected by the hybrid-confidence update,
      SGR-OCC §3.4, ``mode="sgr"``, rather than dropped);
    * Gaussians not in view (behind the camera, outside the image, or on a pixel without depth)
      are kept untouched: nothing in the current view can verify or refute them (our choice).

    Args:
        means: ``[N, 3]`` world-frame means.
        tags: ``[N]`` bool source tags (True = predicted anchor, ``tau = 1``).
        camera: single-view pinhole :class:`Cameras` (``viewmats [1, 4, 4]``, ``Ks [1, 3, 3]``).
        depth: ``[H, W]`` predicted depth of the view (``H, W = camera.height, camera.width``;
            ``<= 0`` = no depth).
        tolerance: depth-consistency threshold (metres, ``> 0``).

    Returns:
        ``[N]`` bool, True for the Gaussians the pool keeps.

    Example:
        >>> K = torch.tensor([[[10.0, 0, 5], [0, 10.0, 5], [0, 0, 1]]])
        >>> cam = Cameras(torch.eye(4)[None], K, width=10, height=10)
        >>> wall = torch.full((10, 10), 2.0)  # a wall 2 m in front of the camera
        >>> means = torch.tensor([[0.0, 0, 2.05], [0.0, 0, 4.0], [0.0, 0, 4.0], [0, 0, -1.0]])
        >>> tags = torch.tensor([False, False, True, False])
        >>> visibility_pool_mask(means, tags, cam, wall, tolerance=0.3).tolist()
        [True, False, True, True]
    """
    check_tensor("means", means, last=(3,))
    check_tensor("tags", tags)
    if means.dim() != 2 or tags.shape != means.shape[:1] or tags.dtype != torch.bool:
        raise ValueError(
            f"means must be [N, 3] and tags [N] bool, got means {describe(means)} and tags "
            f"{describe(tags)}"
        )
    if not 0 < float(tolerance) < float("inf"):
        raise ValueError(f"tolerance must be finite and > 0, got {tolerance}")
    check_view_camera(camera, depth, means.device)
    z, d_pred, in_view = project_to_view(means, camera, depth)
    consistent = (z - d_pred).abs() <= tolerance
    return ~in_view | consistent | tags


def check_single_camera(camera: Cameras, device: torch.device) -> None:
    """``camera`` is a single-view :class:`Cameras` on ``device`` (else a TypeError or
    ValueError naming it)."""
    if not isinstance(camera, Cameras):
        raise TypeError(
            "camera must be gaussocc_ops.Cameras (e.g. Cameras.from_cam2world(cam2world[None], "
            f"K[None], height=H, width=W)), got {type(camera).__name__}"
        )
    if camera.batch_shape != () or camera.num_views != 1 or camera.device != device:
        raise ValueError(
            f"camera must be a single view on {device} (viewmats [1, 4, 4], Ks [1, 3, 3]), got "
            f"viewmats {describe(camera.viewmats)}"
        )


def check_view_camera(camera: Cameras, depth: torch.Tensor, device: torch.device) -> None:
    """A single pinhole view and its depth [H, W] on ``device``."""
    check_single_camera(camera, device)
    if camera.model != "pinhole":
        raise ValueError(f"camera must be a pinhole camera here, got model={camera.model!r}")
    check_tensor("depth", depth)
    check_float("depth", depth)
    H, W = camera.height, camera.width
    if depth.shape != (H, W) or depth.device != device:
        raise ValueError(
            f"depth must be [H, W] = [{H}, {W}] (the camera's image) on {device}, "
            f"got {describe(depth)}"
        )


def project_to_view(
    means: torch.Tensor, camera: Cameras, depth: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera depth ``z [N]``, the predicted depth at the pixel ``[N]`` and the in-view mask
    ``[N]`` bool of ``means [N, 3]`` in a checked single view (:func:`check_view_camera`).

    In view: in front of the camera (``z > 0``), inside the image at pixel
    ``(floor(u), floor(v))``, with a predicted depth ``> 0`` there."""
    dtype = means.dtype
    viewmat = camera.viewmats[0].to(dtype)
    cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    K = camera.Ks[0].to(dtype)
    zs = torch.where(z > 0, z, torch.ones_like(z))
    u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
    v = K[1, 1] * cam[:, 1] / zs + K[1, 2]
    H, W = depth.shape
    col = torch.floor(u).clamp(-1, W).long()
    row = torch.floor(v).clamp(-1, H).long()
    inside = (z > 0) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    d_pred = depth.to(dtype)[row.clamp(0, H - 1), col.clamp(0, W - 1)]
    return z, d_pred, inside & (d_pred > 0)
