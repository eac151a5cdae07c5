"""Splatting stage by stage: projection, binning and rasterization of the CPU kernels against the
oracle of each stage (gaussocc_ops.reference.splat, same signatures and outputs as the ops).

The end-to-end tests (test_splat.py) compare whole renders; here a wrong stage is named by the
test that fails, and the bookkeeping outputs (radii, tile lists, last ids) are held exactly."""

import pytest
import torch
from test_splat import random_scene

from gaussocc_ops import _ext
from gaussocc_ops.constants import TILE_SIZE
from gaussocc_ops.reference import splat as ref


def _kernel_or_skip():
    assert _ext.has_op("rasterize"), "the CPU splatting kernels are not built"
    return torch.ops.gaussocc


def _project_args(seed, ortho, size=(24, 32), B=2, V=2, N=40):
    tensors, cams = random_scene(seed, B=B, N=N, V=V, ortho=ortho, size=size)
    means, scales, quats, opacities, _ = tensors
    H, W = size
    near, far = (-10.0, 10.0) if ortho else (0.01, 1e10)
    return (means, quats, scales, opacities, cams.viewmats.contiguous(), cams.Ks.contiguous(),
            H, W, near, far, 0.3, ortho), tensors


@pytest.mark.parametrize("ortho", [False, True])
def test_projection_stage_matches_oracle(ortho):
    ops = _kernel_or_skip()
    args, _ = _project_args(3, ortho)
    got = ops.project_gaussians(*args)
    want = ref.project_gaussians(*args)
    names = ["means2d", "conics", "depths"]
    for name, x, y in zip(names, got[:3], want[:3]):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)
    assert torch.equal(got[3], want[3]), "radii"
    assert (got[3] > 0).any(-1).float().mean() > 0.5  # most Gaussians are kept


def test_projection_radii_follow_opacity():
    """A Gaussian whose opacity is below the alpha threshold can reach no pixel: radius 0 in both
    the kernel and the oracle; a more opaque one reaches further."""
    ops = _kernel_or_skip()
    args, _ = _project_args(5, False)
    means, quats, scales, opacities = args[:4]
    faint = opacities.clone()
    faint[:, ::2] = 1.0 / 255.0 / 2
    dense = opacities.clone().fill_(0.99)
    r_faint = ops.project_gaussians(means, quats, scales, faint, *args[4:])[3]
    r_dense = ops.project_gaussians(means, quats, scales, dense, *args[4:])[3]
    assert torch.equal(r_faint, ref.project_gaussians(means, quats, scales, faint, *args[4:])[3])
    assert (r_faint[:, :, ::2] == 0).all()
    assert (r_dense >= r_faint).all() and (r_dense > r_faint).any()


@pytest.mark.parametrize("size", [(24, 32), (17, 45)])
def test_binning_stage_matches_oracle(size):
    """tile_offsets and flat_ids of the CPU rasterizer are the oracle's binning, exactly; every
    tile list is sorted front to back and holds exactly the Gaussians whose box touches it."""
    ops = _kernel_or_skip()
    args, tensors = _project_args(7, False, size=size)
    features = tensors[4]
    m2, conics, depths, radii = ops.project_gaussians(*args)
    H, W = size
    out = ops.rasterize(m2, conics, depths, radii, args[3], features, H, W, TILE_SIZE)
    offsets, flat_ids = ref.bin_gaussians(m2, radii, depths, H, W, TILE_SIZE)
    assert torch.equal(out[4], offsets)
    assert torch.equal(out[5], flat_ids)
    assert flat_ids.numel() > 0
    # independent check of one image: the tile lists from the pixel boxes, brute force
    tiles_x, tiles_y = -(-W // TILE_SIZE), -(-H // TILE_SIZE)
    b, v = 1, 0
    image = b * depths.shape[1] + v
    for ty in range(tiles_y):
        for tx in range(tiles_x):
            t = image * tiles_x * tiles_y + ty * tiles_x + tx
            ids = flat_ids[offsets[t] : offsets[t + 1]].long()
            d = depths[b, v, ids]
            assert (d[1:] >= d[:-1]).all()
            # the tile covers pixels [x0, x1) x [y0, y1); a Gaussian's box [m - r, m + r],
            # widened by half a pixel (pixel centres), must overlap it
            x0, y0 = tx * TILE_SIZE, ty * TILE_SIZE
            x1, y1 = x0 + TILE_SIZE, y0 + TILE_SIZE
            expect = []
            for n in range(depths.shape[2]):
                rx, ry = radii[b, v, n].tolist()
                if rx == 0 and ry == 0:
                    continue
                mx, my = m2[b, v, n].tolist()
                overlaps_x = mx + rx + 0.5 >= x0 and mx - rx - 0.5 < x1
                overlaps_y = my + ry + 0.5 >= y0 and my - ry - 0.5 < y1
                if overlaps_x and overlaps_y:
                    expect.append(n)
            assert sorted(ids.tolist()) == expect


def test_rasterization_stage_matches_oracle():
    """Given the same projected Gaussians, the CPU rasterizer's images and last ids are the
    oracle's."""
    ops = _kernel_or_skip()
    args, tensors = _project_args(11, False)
    features = tensors[4]
    proj = [t.contiguous() for t in ref.project_gaussians(*args)]
    H, W = args[6], args[7]
    got = ops.rasterize(*proj, args[3], features, H, W, TILE_SIZE)
    want = ref.rasterize(*proj, args[3], features, H, W, TILE_SIZE)
    for name, x, y in zip(["features", "depth", "alpha"], got[:3], want[:3]):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)
    assert torch.equal(got[3], want[3]), "last_ids"
    assert want[2].max() > 0.5  # something was drawn


def test_every_backend_takes_the_one_tile_size():
    ops = _kernel_or_skip()
    args, tensors = _project_args(2, False, B=1, V=1, N=5)
    proj = ops.project_gaussians(*args)
    with pytest.raises(RuntimeError, match="tile_size must be 16"):
        ops.rasterize(*proj, args[3], tensors[4], args[6], args[7], 8)


def _screen_gaussians(seed, H, W, N, B=1, V=1, boundary=0):
    """Projected Gaussians drawn directly in screen space: anisotropic, rotated, opacities from
    below the alpha threshold to 1, radii as the projection computes them. ``boundary`` more
    Gaussians are placed so that at one pixel centre their alpha is the alpha threshold times
    ``1 +- 1e-9``: the cases a pixel-block cull must decide exactly."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    M = N + boundary
    ang = torch.rand(B, V, M, generator=g, dtype=dt) * torch.pi
    ang[..., N + boundary // 2 :] = 0  # axis-aligned: a block's bound is exact along an axis
    s1 = 0.4 + 6 * torch.rand(B, V, M, generator=g, dtype=dt)
    s2 = s1 / (1 + 19 * torch.rand(B, V, M, generator=g, dtype=dt))  # up to 1:20
    c, s = torch.cos(ang), torch.sin(ang)
    cov = torch.stack([c * c * s1**2 + s * s * s2**2, c * s * (s1**2 - s2**2),
                       s * s * s1**2 + c * c * s2**2], -1)
    det = cov[..., 0] * cov[..., 2] - cov[..., 1] ** 2
    conics = torch.stack([cov[..., 2], -cov[..., 1], cov[..., 0]], -1) / det[..., None]
    opac = 10 ** (-2.6 + 2.6 * torch.rand(B, M, generator=g, dtype=dt))  # 0.0025 .. 1
    means2d = torch.rand(B, V, M, 2, generator=g, dtype=dt) * torch.tensor([W, H], dtype=dt)
    if boundary:
        # a pixel centre p and a direction u; the mean sits where sigma(p - mean) = L (1 +- 1e-9)
        k = slice(N, M)
        p = torch.stack([torch.randint(0, W, (B, V, boundary), generator=g),
                         torch.randint(0, H, (B, V, boundary), generator=g)], -1).to(dt) + 0.5
        t = torch.rand(B, V, boundary, generator=g, dtype=dt) * 2 * torch.pi
        quarter = torch.randint(0, 4, (B, V, boundary), generator=g).to(dt) * torch.pi / 2
        t[..., boundary // 2 :] = quarter[..., boundary // 2 :]  # along an axis of the pixel grid
        u = torch.stack([torch.cos(t), torch.sin(t)], -1)
        a, b, cc = conics[..., k, 0], conics[..., k, 1], conics[..., k, 2]
        q = 0.5 * (a * u[..., 0] ** 2 + cc * u[..., 1] ** 2) + b * u[..., 0] * u[..., 1]
        opac[:, k] = opac[:, k].clamp_min(0.05)
        L = torch.log(opac[:, None, k].expand(B, V, boundary) * 255.0)
        side = 1 + 1e-9 * torch.where(torch.rand(B, V, boundary, generator=g) < 0.5, -1.0, 1.0)
        r = torch.sqrt(L * side / q)
        means2d[..., k, :] = p - r[..., None] * u
    extent = torch.sqrt(2 * torch.log(opac[:, None] * 255.0).clamp_min(0))
    radii = torch.stack([torch.ceil(extent * cov[..., 0].sqrt()),
                         torch.ceil(extent * cov[..., 2].sqrt())], -1).to(torch.int32)
    radii = torch.where(opac[:, None, :, None] >= 1 / 255, radii, torch.zeros_like(radii))
    depths = 1 + 9 * torch.rand(B, V, M, generator=g, dtype=dt)
    features = torch.rand(B, M, 3, generator=g, dtype=dt)
    return means2d, conics, depths, radii, opac, features


@pytest.mark.parametrize("seed", [0, 1])
def test_rasterizer_pixel_blocks_keep_every_contribution(seed):
    """The CPU rasterizer visits, per block of pixels, only the entries that can reach the block;
    Gaussians whose alpha sits at the threshold (to 1e-9) at a pixel centre, thin rotated ones
    and faint ones still give the oracle's images, last ids and gradients."""
    ops = _kernel_or_skip()
    H, W = 37, 45
    proj = _screen_gaussians(seed, H, W, N=300, B=2, V=2, boundary=200)
    got = ops.rasterize(*proj, H, W, TILE_SIZE)
    want = ref.rasterize(*proj, H, W, TILE_SIZE)
    for name, x, y in zip(["features", "depth", "alpha"], got[:3], want[:3]):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)
    assert torch.equal(got[3], want[3]), "last_ids"
    # gradients of the kernel's backward against autograd through the oracle
    g = torch.Generator().manual_seed(seed + 10)
    cot = [torch.randn(x.shape, generator=g, dtype=x.dtype) for x in want[:3]]
    grads = ops.rasterize_backward(proj[0], proj[1], proj[2], proj[4], proj[5], got[2], got[3],
                                   got[4], got[5], *cot, H, W, TILE_SIZE)
    leaves = [t.clone().requires_grad_() for t in (proj[0], proj[1], proj[2], proj[4], proj[5])]
    out = ref.rasterize(leaves[0], leaves[1], leaves[2], proj[3], leaves[3], leaves[4],
                        H, W, TILE_SIZE)
    want_g = torch.autograd.grad(sum((o * c).sum() for o, c in zip(out[:3], cot)), leaves)
    for name, x, y in zip(["means2d", "conics", "depths", "opacities", "features"], grads, want_g):
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-9, msg=name)
