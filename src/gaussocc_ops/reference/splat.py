"""Reference of Gaussian splatting, stage by stage, with the signatures and outputs of the ops.

* :func:`project_gaussians` = ``torch.ops.gaussocc.project_gaussians``: EWA projection and
  culling, returning the pixel radii the rasterizer bins with;
* :func:`bin_gaussians`: the binning stage of ``rasterize`` (tile lists sorted front to back);
* :func:`rasterize` = ``torch.ops.gaussocc.rasterize``: every pixel against every Gaussian (not
  tile by tile), plus the bookkeeping outputs of the op (last contributing list entry per pixel,
  the tile lists).

Autograd gives the gradients (the ops' backward ops are held to them). Numeric conventions
(shared with the CPU/CUDA kernels, see ``csrc/include/gaussocc/splat_math.h``; the constants are
:mod:`gaussocc_ops.constants`):

* ``Sigma3D = R S S^T R^T``, ``Sigma_cam = W Sigma3D W^T`` (W: rotation of the view matrix),
  ``Sigma2D = J Sigma_cam J^T + eps2d I``. Pinhole ``J`` uses the camera-frame ``x/z, y/z``
  clamped to 1.3x the field of view (as 3DGS / gsplat do); ortho ``J = diag(fx, fy)``.
* A Gaussian is culled (radii 0, zero mean2d and conic) with depth ``z < near`` or ``z > far``,
  ``z <= 0`` for a pinhole camera, ``det(Sigma2D) <= 0``, opacity ``< 1/255``, or a pixel box
  ``(x +- r_x, y +- r_y)`` that misses the image, with
  ``r = ceil(sqrt(2 log(255 o)) sqrt(diag Sigma2D))``: every pixel where alpha can reach 1/255.
* ``alpha_i(p) = min(0.999, o_i exp(-sigma_i(p)))`` with
  ``sigma = 0.5 (a dx^2 + c dy^2) + b dx dy`` (``(a, b, c)`` = conic = ``Sigma2D^{-1}``),
  evaluated at pixel centres; a Gaussian with ``alpha < 1/255`` skips the pixel.
* Front-to-back in depth order (ties by index): ``T_i = prod_{j<i} (1 - alpha_j)``; compositing
  stops before the first Gaussian that would bring ``T`` to ``<= 1e-4``.
"""

from __future__ import annotations

import math

import torch

from gaussocc_ops.constants import ALPHA_MAX, ALPHA_THRESHOLD, FOV_CLAMP, TRANSMITTANCE_MIN
from gaussocc_ops.geometry import quat_to_rotmat


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    height: int,
    width: int,
    near: float,
    far: float,
    eps2d: float,
    ortho: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project ``[B, N]`` Gaussians into ``[B, V]`` cameras (the op ``project_gaussians``).

    Args: means ``[B, N, 3]``, quats ``[B, N, 4]``, scales ``[B, N, 3]``, opacities ``[B, N]``,
    viewmats ``[B, V, 4, 4]``, Ks ``[B, V, 3, 3]``; an image of ``height x width`` pixels.

    Returns:
        ``means2d [B, V, N, 2]``, ``conics [B, V, N, 3]`` (``(a, b, c)`` of ``Sigma2D^{-1}``),
        ``depths [B, V, N]`` (camera-frame z, culled or not) and ``radii [B, V, N, 2]`` int32
        (half-extents of the pixel box in pixels; ``(0, 0)`` and zero mean2d and conic for a
        culled Gaussian).
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
    means2d = torch.stack([u, v], -1)

    # pixel radii: every pixel where alpha can reach the threshold lies in the box
    opac = opacities[:, None, :].expand_as(z).detach()
    visible = valid & (opac >= ALPHA_THRESHOLD)
    extent = torch.sqrt(2 * torch.log(torch.where(visible, opac, 1.0) / ALPHA_THRESHOLD))
    diag = torch.stack([a, c], -1).detach()
    radii = torch.ceil(extent[..., None] * torch.sqrt(torch.where(visible[..., None], diag, 0.0)))
    radii = radii.to(torch.int32)
    m2 = means2d.detach()
    size = torch.tensor([width, height], dtype=m2.dtype, device=m2.device)
    on_screen = ((m2 + radii > 0) & (m2 - radii < size)).all(-1)
    keep = visible & (radii > 0).any(-1) & on_screen
    radii = torch.where(keep[..., None], radii, 0)
    means2d = torch.where(keep[..., None], means2d, 0.0)
    conics = torch.where(keep[..., None], conics, 0.0)
    return means2d, conics, z, radii


def tile_grid(height: int, width: int, tile_size: int) -> tuple[int, int]:
    """``(tiles_x, tiles_y)``: the tiles of ``tile_size`` pixels covering the image."""
    return math.ceil(width / tile_size), math.ceil(height / tile_size)


def tile_rects(
    means2d: torch.Tensor, radii: torch.Tensor, height: int, width: int, tile_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tile range ``[x0, x1) x [y0, y1)`` touched by each Gaussian's pixel box (pixel
    centres at ``+0.5``), ``rects [..., 4]`` int64 ``(x0, x1, y0, y1)``, and whether it touches
    any tile, ``[...]`` bool (culled Gaussians, radii 0, touch none)."""
    tiles_x, tiles_y = tile_grid(height, width, tile_size)
    m2 = means2d.detach()
    r = radii.to(m2.dtype)
    lo = torch.floor((m2 - r - 0.5) / tile_size).long().clamp(min=0)
    hi = torch.floor((m2 + r + 0.5) / tile_size).long() + 1
    hi = torch.minimum(hi, torch.tensor([tiles_x, tiles_y], device=hi.device))
    rects = torch.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], -1)
    touches = (radii != 0).any(-1) & (lo < hi).all(-1)
    return rects, touches


def bin_gaussians(
    means2d: torch.Tensor,
    radii: torch.Tensor,
    depths: torch.Tensor,
    height: int,
    width: int,
    tile_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The binning stage of ``rasterize``: for every image and tile, the Gaussians whose pixel
    box touches the tile, front to back (by depth, ties by index).

    Args: means2d ``[B, V, N, 2]``, radii ``[B, V, N, 2]`` int32, depths ``[B, V, N]``.

    Returns:
        ``tile_offsets [B * V * tiles + 1]`` int64 (the list of tile ``t`` of image ``i`` is
        ``flat_ids[offsets[i * tiles + t] : offsets[i * tiles + t + 1]]``; tiles row-major,
        ``tiles = ceil(W / tile_size) * ceil(H / tile_size)``) and ``flat_ids [n]`` int32
        (Gaussian indices).
    """
    B, V, N = depths.shape
    tiles_x, tiles_y = tile_grid(height, width, tile_size)
    tiles = tiles_x * tiles_y
    images = B * V
    device = depths.device
    rects, touches = tile_rects(means2d, radii, height, width, tile_size)
    rects, touches = rects.reshape(images * N, 4), touches.reshape(images * N)
    w = rects[:, 1] - rects[:, 0]
    counts = torch.where(touches, w * (rects[:, 3] - rects[:, 2]), 0)
    entry = torch.repeat_interleave(torch.arange(images * N, device=device), counts)
    k = torch.arange(entry.numel(), device=device) - (counts.cumsum(0) - counts)[entry]
    tx = rects[entry, 0] + k % w[entry]
    ty = rects[entry, 2] + k // w[entry]
    tile = (entry // N) * tiles + ty * tiles_x + tx
    # entries are in (image, index) order: a stable sort by depth, then by tile, orders each
    # tile's list by depth with ties by index
    order = torch.sort(depths.detach().reshape(-1)[entry], stable=True).indices
    order = order[torch.sort(tile[order], stable=True).indices]
    offsets = torch.zeros(images * tiles + 1, dtype=torch.int64, device=device)
    offsets[1:] = torch.bincount(tile, minlength=images * tiles).cumsum(0)
    return offsets, (entry[order] % max(N, 1)).to(torch.int32)


def rasterize(
    means2d: torch.Tensor,
    conics: torch.Tensor,
    depths: torch.Tensor,
    radii: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    height: int,
    width: int,
    tile_size: int,
    chunk_elems: int = 1 << 22,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite projected Gaussians front to back (the op ``rasterize``).

    Every pixel is composited against every Gaussian that is not culled (``radii != 0``), in
    depth order; the tile lists of :func:`bin_gaussians` only enter the bookkeeping outputs.

    Args:
        means2d ``[B, V, N, 2]``, conics ``[B, V, N, 3]``, depths ``[B, V, N]``,
        radii ``[B, V, N, 2]`` int32, opacities ``[B, N]``, features ``[B, N, C]``.

    Returns:
        features ``[B, V, H, W, C]``, accumulated depth ``[B, V, H, W]``, alpha ``[B, V, H, W]``,
        last_ids ``[B, V, H, W]`` int32 (one past the position, in its tile's list, of the last
        Gaussian that contributed to the pixel; 0 for none), and the ``tile_offsets`` and
        ``flat_ids`` of :func:`bin_gaussians`.
    """
    B, V, N = depths.shape
    C = features.shape[-1]
    dtype, device = means2d.dtype, means2d.device
    offsets, flat_ids = bin_gaussians(means2d, radii, depths, height, width, tile_size)
    rects, _ = tile_rects(means2d, radii, height, width, tile_size)

    order = torch.sort(depths.detach(), dim=-1, stable=True).indices  # [B, V, N]

    def take(t):
        return torch.gather(t, 2, order[..., None].expand(*order.shape, t.shape[-1]))

    m2, con, rect = take(means2d), take(conics), take(rects)
    dep = torch.gather(depths, 2, order)
    ok = torch.gather((radii != 0).any(-1), 2, order)
    op = torch.gather(opacities[:, None].expand(B, V, N), 2, order)
    feat = torch.gather(
        features[:, None].expand(B, V, N, C), 2, order[..., None].expand(B, V, N, C)
    )

    ys, xs = torch.meshgrid(
        torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij"
    )
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    pix = torch.stack([xs, ys], -1).to(dtype) + 0.5  # [P, 2] pixel centres
    ptx, pty = xs // tile_size, ys // tile_size  # the pixel's tile
    P = pix.shape[0]
    step = max(1, chunk_elems // max(1, B * V * N))
    out_f, out_d, out_a, out_last = [], [], [], []
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
        contributes = keep & (t_after > TRANSMITTANCE_MIN)
        w = torch.where(contributes, t_before * alpha, torch.zeros_like(alpha))
        out_f.append(torch.einsum("bvpn,bvnc->bvpc", w, feat))
        out_d.append((w * dep[:, :, None]).sum(-1))
        out_a.append(w.sum(-1))
        # position of each Gaussian in the list of the pixel's tile (1-based)
        tx, ty = ptx[start : start + step, None], pty[start : start + step, None]
        in_tile = ok[:, :, None] & (
            (rect[:, :, None, :, 0] <= tx)
            & (tx < rect[:, :, None, :, 1])
            & (rect[:, :, None, :, 2] <= ty)
            & (ty < rect[:, :, None, :, 3])
        )
        position = torch.cumsum(in_tile.to(torch.int32), -1)
        position = torch.where(contributes, position, torch.zeros_like(position))
        out_last.append(position.amax(-1) if N else position.new_zeros(B, V, p.shape[0]))
    shape = (B, V, height, width)
    f = torch.cat(out_f, 2).reshape(*shape, C)
    d = torch.cat(out_d, 2).reshape(shape)
    al = torch.cat(out_a, 2).reshape(shape)
    last_ids = torch.cat(out_last, 2).reshape(shape).to(torch.int32)
    return f, d, al, last_ids, offsets, flat_ids
