"""Brute-force reference of Gaussian splatting: every pixel against every Gaussian.

Numeric conventions (shared with the CPU/CUDA kernels, see ``csrc/include/gaussocc/splat_math.h``):

* ``Sigma3D = R S S^T R^T``, ``Sigma_cam = W Sigma3D W^T`` (W: rotation of the view matrix),
  ``Sigma2D = J Sigma_cam J^T + eps2d I``. Pinhole ``J`` uses the camera-frame ``x/z, y/z``
  clamped to 1.3x the field of view (as 3DGS / gsplat do); ortho ``J = diag(fx, fy)``.
* Gaussians with depth ``z < near`` or ``z > far`` or ``det(Sigma2D) <= 0`` are culled.
* ``alpha_i(p) = min(0.999, o_i exp(-sigma_i(p)))`` with
  ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` (``(a, b, c)`` = conic = ``Sigma2D^{-1}``),
  evaluated at pixel centres; a Gaussian with ``alpha < 1/255`` skips the pixel.
* Front-to-back in depth order (ties by index): ``T_i = prod_{j<i} (1 - alpha_j)``; compositing
  stops before the first Gaussian that would bring ``T`` to ``<= 1e-4``.
"""

from __future__ import annotations

import torch

from gaussocc_ops.geometry import quat_to_rotmat

ALPHA_THRESHOLD = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
FOV_CLAMP = 0.3  # x/z is clamped to the image half-width plus 30% of tan(fov_x / 2)


def project_gaussians(means, quats, scales, viewmats, Ks, width, height, near, far, eps2d, ortho):
    """Project ``[B, N]`` Gaussians into ``[B, V]`` cameras.

    Returns ``means2d [B, V, N, 2]``, ``conics [B, V, N, 3]``, ``depths [B, V, N]`` and
    ``valid [B, V, N]`` (not culled by near/far/degenerate covariance).
    """
    R_v = viewmats[..., :3, :3]
    t_v = viewmats[..., :3, 3]
    p = torch.einsum("bvij,bnj->bvni", R_v, means) + t_v[:, :, None]
    x, y, z = p.unbind(-1)
    rot = quat_to_rotmat(quats)
    M = rot * scales[..., None, :]
    cov3d = M @ M.transpose(-1, -2)
    cov_cam = torch.einsum("bvij,bnjk,bvlk->bvnil", R_v, cov3d, R_v)
    fx, fy = Ks[..., 0, 0][..., None], Ks[..., 1, 1][..., None]
    cx, cy = Ks[..., 0, 2][..., None], Ks[..., 1, 2][..., None]
    in_range = (z >= near) & (z <= far)
    zeros = torch.zeros_like(z)
    if ortho:
        u, v = fx * x + cx, fy * y + cy
        J = torch.stack([fx.expand_as(z), zeros, zeros, zeros, fy.expand_as(z), zeros], -1)
    else:
        zs = torch.where(in_range & (z > 0), z, torch.ones_like(z))
        tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
        lim_xp, lim_xn = (width - cx) / fx + FOV_CLAMP * tan_x, cx / fx + FOV_CLAMP * tan_x
        lim_yp, lim_yn = (height - cy) / fy + FOV_CLAMP * tan_y, cy / fy + FOV_CLAMP * tan_y
        tx = zs * torch.minimum(lim_xp, torch.maximum(-lim_xn, x / zs))
        ty = zs * torch.minimum(lim_yp, torch.maximum(-lim_yn, y / zs))
        u, v = fx * x / zs + cx, fy * y / zs + cy
        J = torch.stack([fx / zs, zeros, -fx * tx / zs**2, zeros, fy / zs, -fy * ty / zs**2], -1)
    J = J.reshape(*z.shape, 2, 3)
    cov2d = J @ cov_cam @ J.transpose(-1, -2)
    a = cov2d[..., 0, 0] + eps2d
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + eps2d
    det = a * c - b * b
    valid = in_range & (det > 0)
    if not ortho:
        valid = valid & (z > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    return torch.stack([u, v], -1), conics, z, valid


def rasterize(
    means2d, conics, depths, valid, opacities, features, width, height, chunk_elems=1 << 22
):
    """Composite projected Gaussians front to back.

    Args:
        means2d ``[B, V, N, 2]``, conics ``[B, V, N, 3]``, depths ``[B, V, N]``,
        valid ``[B, V, N]`` bool, opacities ``[B, N]``, features ``[B, N, C]``.

    Returns:
        features ``[B, V, H, W, C]``, accumulated depth ``[B, V, H, W]``, alpha ``[B, V, H, W]``.
    """
    B, V, N = depths.shape
    C = features.shape[-1]
    dtype, device = means2d.dtype, means2d.device
    order = torch.sort(depths.detach(), dim=-1, stable=True).indices  # [B, V, N]
    take = lambda t: torch.gather(t, 2, order[..., None].expand(*order.shape, t.shape[-1]))  # noqa: E731
    m2 = take(means2d)
    con = take(conics)
    dep = torch.gather(depths, 2, order)
    ok = torch.gather(valid, 2, order)
    op = torch.gather(opacities[:, None].expand(B, V, N), 2, order)
    feat = torch.gather(
        features[:, None].expand(B, V, N, C), 2, order[..., None].expand(B, V, N, C)
    )

    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    pix = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)  # [P, 2]
    P = pix.shape[0]
    step = max(1, chunk_elems // max(1, B * V * N))
    out_f, out_d, out_a = [], [], []
    for start in range(0, P, step):
        p = pix[start : start + step]
        dx = p[None, None, :, None, 0] - m2[:, :, None, :, 0]  # [B, V, P, N]
        dy = p[None, None, :, None, 1] - m2[:, :, None, :, 1]
        a, b, c = con[:, :, None, :, 0], con[:, :, None, :, 1], con[:, :, None, :, 2]
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        alpha = torch.clamp(op[:, :, None] * torch.exp(-sigma), max=ALPHA_MAX)
        keep = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD) & ok[:, :, None]
        alpha = torch.where(keep, alpha, torch.zeros_like(alpha))
        t_after = torch.cumprod(1 - alpha, dim=-1)
        t_before = torch.cat([torch.ones_like(t_after[..., :1]), t_after[..., :-1]], -1)
        w = torch.where(t_after > TRANSMITTANCE_MIN, t_before * alpha, torch.zeros_like(alpha))
        out_f.append(torch.einsum("bvpn,bvnc->bvpc", w, feat))
        out_d.append((w * dep[:, :, None]).sum(-1))
        out_a.append(w.sum(-1))
    f = torch.cat(out_f, 2).reshape(B, V, height, width, C)
    d = torch.cat(out_d, 2).reshape(B, V, height, width)
    al = torch.cat(out_a, 2).reshape(B, V, height, width)
    return f, d, al


def splat(
    means, quats, scales, opacities, features, viewmats, Ks, width, height, near, far, eps2d, ortho
):
    """Reference splatting on flattened inputs; returns (features, accumulated depth, alpha)."""
    means2d, conics, depths, valid = project_gaussians(
        means, quats, scales, viewmats, Ks, width, height, near, far, eps2d, ortho
    )
    return rasterize(means2d, conics, depths, valid, opacities, features, width, height)
