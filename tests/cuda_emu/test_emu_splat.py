"""Splatting: the CUDA kernels (emulated) against the CPU kernels.

project_gaussians, project_gaussians_backward, rasterize (binning + tile rasterizer) and
rasterize_backward. Radii, tile offsets, flat ids and last ids bit-identical; floats within the
stated tolerance (emu_helpers). Each stage gets the same inputs on both sides (the CPU kernel's
outputs of the stage before), so a difference points at one kernel.

Kernel paths (csrc/cuda/splat.cu):
* projection: several blocks with a partial last one; B > 1, V > 1; pinhole and orthographic;
  culled by near/far, behind the camera, by a degenerate covariance (eps2d = 0, zero scale), by
  opacity below 1/255 and off screen; the field-of-view clamp of J active (centre outside the
  clamp box, footprint on screen).
* binning: Gaussians covering many tiles (and tiles of several images); equal depths (ties by
  index) and, in float64, depths equal in float32 but not in float64; all culled (no
  intersection); no Gaussians.
* rasterizer: more than 256 Gaussians in one tile (several shared-memory batches, forward and
  backward); pixels that reach the transmittance stop, and tiles where every pixel does (the
  block-wide early exit); partial tiles (image sizes not multiples of 16); channel counts that
  need one to three register passes of every width (C in 0, 1, 3, 12, 18, 19, 32, 33, 40, 64).
"""

import math

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_outputs

TILE = 16
RASTER_INT = ("last_ids", "tile_offsets", "flat_ids")
RASTER_NAMES = ("features", "depth", "alpha") + RASTER_INT
RASTER_GRAD_NAMES = ("g_means2d", "g_conics", "g_depths", "g_opacities", "g_features")


def _rotation(axis, angle, dtype):
    c, s = math.cos(angle), math.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = torch.eye(3, dtype=dtype)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def make_cameras(B, V, W, H, ortho, dtype):
    """World -> camera view matrices looking down +z at the origin region, slightly rotated."""
    viewmats = torch.zeros(B, V, 4, 4, dtype=dtype)
    Ks = torch.zeros(B, V, 3, 3, dtype=dtype)
    for b in range(B):
        for v in range(V):
            R = _rotation(1, 0.05 * v - 0.03 * b, dtype) @ _rotation(0, 0.04 * v, dtype)
            viewmats[b, v, :3, :3] = R
            viewmats[b, v, :3, 3] = torch.tensor([0.1 * v, -0.05 * b, 0.0], dtype=dtype)
            viewmats[b, v, 3, 3] = 1
            f = (W / 5.0) if ortho else (0.9 * W)
            Ks[b, v] = torch.tensor(
                [[f, 0, W / 2 + 0.3 * v], [0, f * 1.05, H / 2 - 0.2 * b], [0, 0, 1]], dtype=dtype
            )
    return viewmats, Ks


def make_gaussians(
    B, N, C, dtype, g, depth=(3.0, 6.0), spread=(2.2, 1.4), scale=(0.05, 0.4), opacity=(0.1, 0.95)
):
    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    z = depth[0] + (depth[1] - depth[0]) * r(B, N)
    means = torch.stack(
        [(r(B, N) - 0.5) * spread[0] * z / 3, (r(B, N) - 0.5) * spread[1] * z / 3, z], -1
    )
    quats = torch.randn(B, N, 4, generator=g, dtype=torch.float64)
    scales = scale[0] + (scale[1] - scale[0]) * r(B, N, 3)
    opac = opacity[0] + (opacity[1] - opacity[0]) * r(B, N)
    feats = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    return [t.to(dtype) for t in (means, quats, scales, opac, feats)]


def special_gaussians(means, quats, scales, opac, W, H, ortho):
    """Overwrites the first Gaussians of every batch with the culling and clamping cases."""
    f = 0.9 * W
    means[:, 0] = torch.tensor([0.0, 0.0, -2.0])  # behind the camera (culled by near)
    means[:, 1] = torch.tensor([0.0, 0.0, 500.0])  # beyond far
    opac[:, 2] = 0.5 / 255  # below the alpha threshold everywhere: culled
    means[:, 3] = torch.tensor([40.0, 0.0, 4.0])  # far off screen
    if not ortho:
        # centre beyond the FOV clamp box (x/z > (W - cx)/fx + 0.3 tan), footprint on screen
        lim = (W / 2) / f * 1.3
        means[:, 4] = torch.tensor([4.0 * lim * 1.15, 0.1, 4.0])
        scales[:, 4] = torch.tensor([1.2, 0.9, 1.0])
        opac[:, 4] = 0.9
        means[:, 5] = torch.tensor([-0.2, -4.0 * (H / 2) / (0.945 * W) * 1.5, 4.0])
        scales[:, 5] = torch.tensor([0.8, 1.4, 0.8])
        opac[:, 5] = 0.9
    # one big Gaussian over many tiles
    means[:, 6] = torch.tensor([0.0, 0.0, 5.5])
    scales[:, 6] = 1.5
    opac[:, 6] = 0.6
    # equal depths: two Gaussians at the same z in reverse index order of x
    means[:, 7] = torch.tensor([0.3, 0.1, 4.25])
    means[:, 8] = torch.tensor([0.35, 0.12, 4.25])


def project_both(cpu, emu, args):
    want = cpu.project_gaussians(*args)
    got = emu.project_gaussians(*args)
    assert_outputs(got, want, ("means2d", "conics", "depths", "radii"))
    return want


def raster_both(cpu, emu, args):
    want = cpu.rasterize(*args)
    got = emu.rasterize(*args)
    assert_outputs(got, want, RASTER_NAMES, RASTER_INT)
    return want


def raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g):
    means2d, conics, depths, _ = proj
    _, _, alpha, last, offsets, ids = out
    B, V = depths.shape[:2]
    C = feats.shape[-1]
    dtype = feats.dtype
    g_feat = torch.randn(B, V, H, W, C, generator=g, dtype=torch.float64).to(dtype)
    g_depth = torch.randn(B, V, H, W, generator=g, dtype=torch.float64).to(dtype)
    g_alpha = torch.randn(B, V, H, W, generator=g, dtype=torch.float64).to(dtype)
    args = (
        means2d,
        conics,
        depths,
        opac,
        feats,
        alpha,
        last,
        offsets,
        ids,
        g_feat,
        g_depth,
        g_alpha,
        W,
        H,
        TILE,
    )
    want = cpu.rasterize_backward(*args)
    got = emu.rasterize_backward(*args)
    assert_outputs(got, want, RASTER_GRAD_NAMES)
    return want


def project_backward_both(cpu, emu, pargs, proj, g):
    means, quats, scales, _, viewmats, Ks, W, H, _, _, eps2d, ortho = pargs
    radii = proj[3]
    gm2 = torch.randn(proj[0].shape, generator=g, dtype=torch.float64).to(means.dtype)
    gc = torch.randn(proj[1].shape, generator=g, dtype=torch.float64).to(means.dtype)
    gd = torch.randn(proj[2].shape, generator=g, dtype=torch.float64).to(means.dtype)
    args = (means, quats, scales, viewmats, Ks, radii, gm2, gc, gd, W, H, eps2d, ortho)
    want = cpu.project_gaussians_backward(*args)
    got = emu.project_gaussians_backward(*args)
    assert_outputs(got, want, ("g_means", "g_quats", "g_scales"))
    return want


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("ortho", [False, True], ids=["pinhole", "ortho"])
def test_splat_batched_views_all_stages(cpu, emu, dtype, ortho):
    """B = 2, V = 2, culled and clamped Gaussians, partial tiles, every stage fwd and bwd."""
    g = torch.Generator().manual_seed(11 + ortho)
    B, V, N, C, W, H = 2, 2, 70, 3, 40, 24
    means, quats, scales, opac, feats = make_gaussians(B, N, C, torch.float64, g)
    special_gaussians(means, quats, scales, opac, W, H, ortho)
    means, quats, scales, opac, feats = [t.to(dtype) for t in (means, quats, scales, opac, feats)]
    viewmats, Ks = make_cameras(B, V, W, H, ortho, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, ortho)
    proj = project_both(cpu, emu, pargs)
    radii = proj[3]
    culled = (radii == 0).all(-1)
    assert culled[:, :, :4].all() and not culled.all()
    assert B * V * N > 256  # several projection blocks
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], radii, opac, feats, W, H, TILE))
    tiles = math.ceil(W / TILE) * math.ceil(H / TILE)
    assert out[4].numel() == B * V * tiles + 1
    assert (radii[..., 0] > TILE).any()  # a Gaussian over many tiles
    project_backward_both(cpu, emu, pargs, proj, g)
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_splat_fov_clamp_is_active(cpu, emu, dtype):
    """Pinhole Gaussians whose centres lie beyond the clamp box but reach the image."""
    g = torch.Generator().manual_seed(2)
    B, V, N, C, W, H = 1, 1, 12, 2, 40, 24
    means, quats, scales, opac, feats = make_gaussians(B, N, C, torch.float64, g)
    special_gaussians(means, quats, scales, opac, W, H, False)
    means, quats, scales, opac, feats = [t.to(dtype) for t in (means, quats, scales, opac, feats)]
    viewmats, Ks = make_cameras(B, V, W, H, False, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    m2, radii = proj[0][0, 0], proj[3][0, 0]
    # Gaussians 4 and 5 survive with centres outside the image: the clamp shaped their conic
    assert (radii[4] > 0).all() and m2[4, 0] > W * 1.15
    assert (radii[5] > 0).all() and m2[5, 1] < -H * 0.15
    project_backward_both(cpu, emu, pargs, proj, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_splat_degenerate_and_all_culled(cpu, emu, dtype):
    """eps2d = 0 with zero scales (det = 0, culled); then every Gaussian culled: no intersection."""
    g = torch.Generator().manual_seed(3)
    B, V, N, C, W, H = 2, 1, 9, 4, 24, 20
    means, quats, scales, opac, feats = make_gaussians(B, N, C, dtype, g)
    scales[:, :4] = 0.0
    viewmats, Ks = make_cameras(B, V, W, H, False, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.0, False)
    proj = project_both(cpu, emu, pargs)
    assert (proj[3][:, :, :4] == 0).all() and (proj[3][:, :, 4:] > 0).any()
    # all culled: far plane before every Gaussian
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 1.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    assert (proj[3] == 0).all()
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    assert out[5].numel() == 0 and (out[2] == 0).all()
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "sizes", [(1, 1, 0, 3), (0, 1, 5, 3), (1, 0, 5, 3)], ids=["N0", "B0", "V0"]
)
def test_splat_empty(cpu, emu, dtype, sizes):
    B, V, N, C = sizes
    W, H = 20, 18
    g = torch.Generator().manual_seed(4)
    means, quats, scales, opac, feats = make_gaussians(B, N, C, dtype, g)
    viewmats, Ks = make_cameras(B, V, W, H, False, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    project_backward_both(cpu, emu, pargs, proj, g)
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)


def _one_tile_scene(N, C, dtype, opacity, g, W=20, H=18):
    """N Gaussians whose centres project into the first tile of a small image (footprints of a
    few pixels, so most of them cover most of that tile and some reach the next tiles)."""
    B, V = 1, 1
    means, quats, scales, opac, feats = make_gaussians(
        B, N, C, torch.float64, g, spread=(0.0, 0.0), scale=(0.15, 0.5), opacity=opacity
    )
    f = 60.0
    z = means[..., 2]
    means[..., 0] = (torch.rand(B, N, generator=g, dtype=torch.float64) * 16 - 8) * z / f
    means[..., 1] = (torch.rand(B, N, generator=g, dtype=torch.float64) * 16 - 8) * z / f
    viewmats = torch.eye(4, dtype=dtype).expand(B, V, 4, 4).contiguous()
    Ks = torch.tensor([[f, 0, 8.0], [0, f, 8.0], [0, 0, 1]], dtype=dtype).expand(B, V, 3, 3)
    Ks = Ks.contiguous()
    return [t.to(dtype) for t in (means, quats, scales, opac, feats)] + [viewmats, Ks]


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("opacity", [(0.004, 0.02), (0.3, 0.9)], ids=["faint", "opaque"])
def test_splat_more_gaussians_per_tile_than_one_batch(cpu, emu, dtype, opacity):
    """600 Gaussians on one tile: three shared-memory batches. Faint ones keep every pixel
    compositing through all batches; opaque ones make pixels (and whole tiles) stop early."""
    g = torch.Generator().manual_seed(5)
    N, C, W, H = 600, 3, 20, 18
    means, quats, scales, opac, feats, viewmats, Ks = _one_tile_scene(N, C, dtype, opacity, g, W, H)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    offsets, last = out[4], out[3]
    assert offsets[1] - offsets[0] > 2 * 256  # three batches on tile 0
    if opacity[0] < 0.01:
        assert last[0, 0, :16, :16].max() > 256  # pixels composite past the first batch
        assert (out[2] < 1 - 1e-4).all()  # no transmittance stop
    else:
        assert (out[2][0, 0, :16, :16] > 1 - 1e-3).all()  # tile 0: every pixel stopped early
        assert last[0, 0, :16, :16].max() < 256
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [0, 1, 3, 12, 18, 19, 32, 33, 40, 64])
def test_splat_channel_passes(cpu, emu, dtype, C):
    """Every register pass width (4, 8, 16, 32) and one to two passes, forward and backward;
    C = 0 still writes depth, alpha and last ids and still gives geometry gradients."""
    g = torch.Generator().manual_seed(100 + C)
    B, V, N, W, H = 1, 1, 30, 24, 20
    means, quats, scales, opac, feats = make_gaussians(B, N, C, dtype, g)
    viewmats, Ks = make_cameras(B, V, W, H, False, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    assert out[2].max() > 0.5
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_splat_depth_order_ties(cpu, emu, dtype):
    """Overlapping Gaussians at equal depths (ties by index) and, in float64, at depths that
    differ by less than float32 resolution: the flat ids follow the depths of the input dtype."""
    B, V, N, C, W, H = 1, 1, 6, 2, 16, 16
    means = torch.tensor(
        [
            [0.0, 0.0, 4.0 + 3e-9],
            [0.01, 0.0, 4.0],
            [0.0, 0.01, 4.0 - 2e-9],
            [0.02, 0.02, 4.0],
            [0.0, -0.01, 4.5],
            [0.0, 0.0, 4.0 + 1e-12],
        ],
        dtype=torch.float64,
    )[None]
    quats = torch.tensor([[1.0, 0, 0, 0]] * N, dtype=torch.float64)[None]
    scales = torch.full((B, N, 3), 0.3, dtype=torch.float64)
    opac = torch.full((B, N), 0.3, dtype=torch.float64)
    feats = torch.arange(N * C, dtype=torch.float64).reshape(B, N, C)
    means, quats, scales, opac, feats = [t.to(dtype) for t in (means, quats, scales, opac, feats)]
    viewmats, Ks = make_cameras(B, V, W, H, False, dtype)
    viewmats[:] = torch.eye(4, dtype=dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, 0.1, 100.0, 0.3, False)
    proj = project_both(cpu, emu, pargs)
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    expected = [2, 1, 3, 5, 0, 4] if dtype == torch.float64 else [0, 1, 2, 3, 5, 4]
    assert out[5].tolist() == expected
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_splat_negative_depths_ortho(cpu, emu, dtype):
    """The raw ops accept a negative near plane for orthographic cameras: Gaussians behind the
    camera plane are sorted by their (negative) depth like the others."""
    g = torch.Generator().manual_seed(8)
    B, V, N, C, W, H = 1, 1, 20, 2, 20, 16
    means, quats, scales, opac, feats = make_gaussians(B, N, C, dtype, g, depth=(-2.0, 2.0))
    viewmats, Ks = make_cameras(B, V, W, H, True, dtype)
    pargs = (means, quats, scales, opac, viewmats, Ks, W, H, -5.0, 5.0, 0.3, True)
    proj = project_both(cpu, emu, pargs)
    assert ((proj[2] < 0) & (proj[3][..., 0] > 0)).any()
    out = raster_both(cpu, emu, (proj[0], proj[1], proj[2], proj[3], opac, feats, W, H, TILE))
    raster_backward_both(cpu, emu, proj, opac, feats, out, W, H, g)
