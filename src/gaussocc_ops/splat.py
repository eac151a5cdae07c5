"""Differentiable semantic/depth splatting of 3D Gaussians (GaussRender Eq. 2-3)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _dispatch
from gaussocc_ops._checks import check_tensor, compute_dtype, describe
from gaussocc_ops.constants import TILE_SIZE
from gaussocc_ops.types import Cameras, Gaussians

Backend = Literal["auto", "reference", "cpu", "cuda", "gsplat"]
DepthMode = Literal["accumulated", "expected"]


class SplatOutput(NamedTuple):
    """Rendered images, all ``float`` of the input dtype (half inputs give float32).

    features: ``[..., V, H, W, C]`` composited features (plus ``(1 - alpha) * background``).
    depth: ``[..., V, H, W, 1]`` accumulated ``sum T_i alpha_i z_i`` or, for
        ``depth_mode="expected"``, that divided by alpha (0 where alpha is 0).
    alpha: ``[..., V, H, W, 1]`` ``1 - prod (1 - alpha_i)``.
    """

    features: torch.Tensor
    depth: torch.Tensor
    alpha: torch.Tensor


def splat(
    gaussians: Gaussians,
    cameras: Cameras,
    *,
    depth_mode: DepthMode = "accumulated",
    background: torch.Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    backend: Backend = "auto",
) -> SplatOutput:
    """Render features, depth and alpha of Gaussians into every camera.

    Each Gaussian is projected with the EWA approximation
    ``Sigma2D = J W (R S S^T R^T) W^T J^T + eps2d I`` (J: Jacobian of the pinhole or
    orthographic projection) and composited front to back in depth order:
    ``C_p = sum_i T_i alpha_i c_i``, ``D_p = sum_i T_i alpha_i z_i``,
    ``A_p = 1 - prod_i (1 - alpha_i)``
    with ``T_i = prod_{j<i} (1 - alpha_j)`` (GaussRender Eq. 2-3). The numeric conventions
    (alpha clamp 0.999, skip below 1/255, stop at T <= 1e-4, FOV clamp of J) are those of
    3DGS/gsplat and are listed in ``docs/splatting.md``.

    Args:
        gaussians: batch shape ``[...]`` with ``N`` Gaussians and ``C`` feature channels.
        cameras: ``V`` views; its batch shape must broadcast to the Gaussians' (cameras without
            batch dims are shared by every scene).
        depth_mode: ``"accumulated"`` or ``"expected"`` (accumulated / alpha).
        background: optional ``[C]``, ``[V, C]`` or ``[..., V, C]`` features behind the
            Gaussians, added as ``(1 - alpha) * background``.
        near, far: camera-frame depth range; Gaussians whose centre lies outside are culled.
        eps2d: added to the diagonal of every 2D covariance (pixels^2), a low-pass filter.
        backend: ``"reference"`` (pure PyTorch), ``"cpu"``, ``"cuda"`` (our kernels),
            ``"gsplat"`` (gsplat's rasterizer, CUDA only) or ``"auto"`` (our kernel for the
            input's device, the reference if the extension is missing).

    Returns:
        :class:`SplatOutput` ``(features [..., V, H, W, C], depth [..., V, H, W, 1],
        alpha [..., V, H, W, 1])``. Differentiable w.r.t. means, scales, quats, opacities,
        features and background; cameras are constants.

    Example:
        >>> mean = torch.tensor([[0.0, 0.0, 5.0]])
        >>> g = Gaussians.isotropic(mean, 0.5, torch.ones(1), torch.ones(1, 3))
        >>> K = torch.tensor([[[50., 0, 32], [0, 50., 32], [0, 0, 1]]])
        >>> cams = Cameras(torch.eye(4)[None], K, height=64, width=64)
        >>> out = splat(g, cams)
        >>> out.features.shape, round(out.alpha.max().item(), 3)
        (torch.Size([1, 64, 64, 3]), 0.99)
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be gaussocc_ops.Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras):
        raise TypeError(f"cameras must be gaussocc_ops.Cameras, got {type(cameras).__name__}")
    if depth_mode not in ("accumulated", "expected"):
        raise ValueError(f"depth_mode must be 'accumulated' or 'expected', got {depth_mode!r}")
    if not (0 <= near < far):
        raise ValueError(f"need 0 <= near < far, got near={near}, far={far}")
    if not eps2d >= 0:
        raise ValueError(f"eps2d must be >= 0, got {eps2d}")
    if cameras.device != gaussians.device:
        raise ValueError(f"cameras are on {cameras.device} but gaussians are on {gaussians.device}")
    batch = _dispatch.broadcast_batch(
        "camera", cameras.batch_shape, gaussians.batch_shape, "Gaussians'"
    )
    device = gaussians.device
    backend = _dispatch.resolve(backend, device, "rasterize", name="splat", extra=("gsplat",))
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError(f"backend='gsplat' needs CUDA tensors, got {device}")

    N, C, V = gaussians.num_gaussians, gaussians.num_channels, cameras.num_views
    H, W = cameras.image_size
    B = batch.numel()
    dtype = compute_dtype(gaussians.means, gaussians.features, cameras.viewmats)

    def flat(t, tail):
        return _dispatch.flatten(t, batch, tail, dtype)

    means = flat(gaussians.means, (N, 3))
    quats = flat(gaussians.quats, (N, 4))
    scales = flat(gaussians.scales, (N, 3))
    opacities = flat(gaussians.effective_opacities(), (N,))
    features = flat(gaussians.features, (N, C))
    viewmats = flat(cameras.viewmats, (V, 4, 4))
    Ks = flat(cameras.Ks, (V, 3, 3))
    args = (means, quats, scales, opacities, features, viewmats, Ks)
    cfg = (H, W, float(near), float(far), float(eps2d), cameras.model == "ortho")

    if B == 0 or V == 0:
        feats = features.new_zeros(B, V, H, W, C)
        depth = features.new_zeros(B, V, H, W)
        alpha = features.new_zeros(B, V, H, W)
    elif backend == "gsplat":
        from gaussocc_ops import _gsplat

        feats, depth, alpha = _gsplat.splat(*args, *cfg)
    else:
        feats, depth, alpha = _render(backend, *args, *cfg)

    depth = depth.unsqueeze(-1)
    alpha = alpha.unsqueeze(-1)
    if depth_mode == "expected":
        depth = torch.where(alpha > 0, depth / alpha.clamp(min=1e-10), torch.zeros_like(depth))
    if background is not None:
        bg = _broadcast_background(background, batch, V, C, dtype, device)
        feats = feats + (1 - alpha) * bg[:, :, None, None, :]
    shape = (*batch, V, H, W)
    return SplatOutput(
        feats.reshape(*shape, C), depth.reshape(*shape, 1), alpha.reshape(*shape, 1)
    )


def _broadcast_background(background, batch, V, C, dtype, device):
    check_tensor("background", background, min_dim=1)
    if background.shape[-1] != C:
        raise ValueError(
            f"background must have {C} channels in its last dim, got {describe(background)}"
        )
    if background.device != device:
        raise ValueError(f"background is on {background.device} but gaussians are on {device}")
    bg = background.to(dtype)
    if bg.dim() == 1:
        bg = bg.expand(V, C)
    try:
        bg = bg.expand(*batch, V, C)
    except RuntimeError:
        raise ValueError(
            f"background of shape {tuple(background.shape)} does not broadcast to {(*batch, V, C)}"
        ) from None
    return bg.reshape(-1, V, C)


def _render(
    backend, means, quats, scales, opacities, features, viewmats, Ks, H, W, near, far, eps2d, ortho
):
    """The two ops of splatting on flattened inputs: projection (with culling), then binning and
    rasterization; returns (features, accumulated depth, alpha)."""
    project = _dispatch.kernel("project_gaussians", backend)
    rasterize = _dispatch.kernel("rasterize", backend)
    means2d, conics, depths, radii = project(
        means, quats, scales, opacities, viewmats, Ks, H, W, near, far, eps2d, ortho
    )
    return rasterize(means2d, conics, depths, radii, opacities, features, H, W, TILE_SIZE)[:3]
