import math

import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.accumulate import OccupancyOutput

SETTINGS = settings(max_examples=25, deadline=None)


def random_gaussians(
    seed,
    B=2,
    N=10,
    C=4,
    dtype=torch.float32,
    extent=(3.0, 3.0, 2.0),
    padded=True,
    scale_range=(0.15, 0.6),
):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = scale_range
    means = torch.rand(B, N, 3, generator=gen, dtype=dtype) * torch.tensor(extent, dtype=dtype)
    means = means - 0.3  # some Gaussians stick out of the grid
    scales = lo + (hi - lo) * torch.rand(B, N, 3, generator=gen, dtype=dtype)
    quats = torch.randn(B, N, 4, generator=gen, dtype=dtype)
    opacities = torch.rand(B, N, generator=gen, dtype=dtype)
    features = torch.rand(B, N, C, generator=gen, dtype=dtype).softmax(-1)
    valid = torch.rand(B, N, generator=gen) > 0.2 if padded else None
    return go.Gaussians(means, scales, quats, opacities, features, valid)


GRID = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=(0.4, 0.3, 0.5), shape=(7, 9, 4))


def with_grad(g: go.Gaussians) -> go.Gaussians:
    return go.Gaussians(
        *(
            t.detach().clone().requires_grad_()
            for t in (g.means, g.scales, g.quats, g.opacities, g.features)
        ),
        g.valid,
    )


def params(g: go.Gaussians):
    return [g.means, g.scales, g.quats, g.opacities, g.features]


def test_extension_has_the_cpu_kernels():
    info = go.build_info()
    assert info["extension"], info["error"]
    assert {"accumulate_gaussians", "accumulate_gaussians_backward"} <= set(info["ops"])


# --- values against independent computations ---------------------------------------------------


@pytest.mark.parametrize("mode", ["probabilistic", "additive"])
def test_single_isotropic_gaussian_matches_the_analytic_value(mode):
    grid = go.VoxelGrid(origin=(-1.0, -2.0, 0.5), voxel_size=(0.25, 0.4, 0.3), shape=(12, 10, 9))
    mean = torch.tensor([0.3, -0.1, 1.7], dtype=torch.float64)
    s, a, k = 0.45, 0.8, 2.5
    g = go.Gaussians.isotropic(
        mean[None],
        s,
        torch.tensor([a], dtype=torch.float64),
        torch.tensor([[0.25, 0.75]], dtype=torch.float64),
    )
    out = go.gaussians_to_occupancy(g, grid, mode=mode, radius_sigma=k, backend="cpu")
    d2 = ((grid.centers(dtype=torch.float64) - mean) ** 2).sum(-1) / s**2
    expected = torch.where(d2 <= k * k, a * torch.exp(-0.5 * d2), torch.zeros_like(d2))
    assert (d2 > k * k).any() and (d2 <= k * k).sum() > 20
    torch.testing.assert_close(out.occupancy, expected, rtol=1e-12, atol=1e-15)
    assert bool((out.occupancy[d2 > k * k] == 0).all())
    if mode == "additive":
        torch.testing.assert_close(
            out.probs, expected * torch.tensor([0.25, 0.75]).double()[:, None, None, None]
        )


def test_rotation_by_90_degrees_about_z_swaps_the_x_and_y_scales():
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.2, shape=(10, 10, 6))
    mean = torch.tensor([[1.0, 1.1, 0.6]], dtype=torch.float64)
    half = math.sqrt(0.5)
    quats = torch.tensor([[half, 0.0, 0.0, half]], dtype=torch.float64)
    scales = torch.tensor([[0.5, 0.2, 0.3]], dtype=torch.float64)
    g = go.Gaussians(
        mean,
        scales,
        quats,
        torch.ones(1, dtype=torch.float64),
        torch.ones(1, 1, dtype=torch.float64),
    )
    out = go.gaussians_to_occupancy(g, grid, mode="additive", radius_sigma=3.0, backend="cpu")
    d = grid.centers(dtype=torch.float64) - mean[0]
    d2 = (d[..., 0] / 0.2) ** 2 + (d[..., 1] / 0.5) ** 2 + (d[..., 2] / 0.3) ** 2
    expected = torch.where(d2 <= 9, torch.exp(-0.5 * d2), torch.zeros_like(d2))
    torch.testing.assert_close(out.occupancy, expected)


def test_probabilities_match_a_brute_force_loop():
    g = random_gaussians(3, B=1, N=5, C=3, dtype=torch.float64, padded=False)
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.6, shape=(4, 4, 3))
    k = 2.0
    out = go.gaussians_to_occupancy(g, grid, radius_sigma=k, empty_class=1, backend="cpu")
    centers = grid.centers(dtype=torch.float64).reshape(-1, 3)
    from gaussocc_ops.geometry import quat_to_rotmat

    rot = quat_to_rotmat(g.quats[0])
    for v, x in enumerate(centers.tolist()):
        transmittance, weight, weighted = 1.0, 0.0, [0.0] * 3
        for i in range(5):
            cov = rot[i] @ torch.diag(g.scales[0, i] ** 2) @ rot[i].T
            delta = torch.tensor(x, dtype=torch.float64) - g.means[0, i]
            d2 = float(delta @ torch.linalg.solve(cov, delta))
            if d2 > k * k:
                continue
            w = float(g.opacities[0, i]) * math.exp(-0.5 * d2)
            transmittance *= 1 - w
            weight += w
            weighted = [s + w * float(c) for s, c in zip(weighted, g.features[0, i], strict=True)]
        occ = 1 - transmittance
        classes = [occ * s / weight if weight > 0 else 0.0 for s in weighted]
        expected = [classes[0], 1 - occ, classes[1], classes[2]]
        idx = tuple(torch.unravel_index(torch.tensor(v), grid.shape))
        assert out.occupancy[0][idx].item() == pytest.approx(occ, abs=1e-12)
        assert out.probs[0][(slice(None), *idx)].tolist() == pytest.approx(expected, abs=1e-12)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 3),
    N=st.integers(0, 12),
    C=st.integers(1, 5),
    mode=st.sampled_from(["probabilistic", "additive", "gaussianformer2"]),
    radius_sigma=st.floats(0.5, 4.0),
    empty_class=st.integers(-2, 1),
    voxel=st.tuples(st.floats(0.15, 0.6), st.floats(0.15, 0.6), st.floats(0.15, 0.6)),
    shape=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 6)),
)
def test_cpu_kernel_matches_reference(seed, B, N, C, mode, radius_sigma, empty_class, voxel, shape):
    g = random_gaussians(seed, B=B, N=N, C=C)
    grid = go.VoxelGrid(origin=(-0.2, 0.1, -0.3), voxel_size=voxel, shape=shape)
    kw = dict(mode=mode, radius_sigma=radius_sigma, empty_class=empty_class)
    ref = go.gaussians_to_occupancy(g, grid, backend="reference", **kw)
    cpu = go.gaussians_to_occupancy(g, grid, backend="cpu", **kw)
    torch.testing.assert_close(cpu.occupancy, ref.occupancy, atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(cpu.probs, ref.probs, atol=2e-6, rtol=1e-5)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    N=st.integers(1, 8),
    C=st.integers(1, 4),
    mode=st.sampled_from(["probabilistic", "additive", "gaussianformer2"]),
)
def test_cpu_gradients_match_reference(seed, N, C, mode):
    g = with_grad(random_gaussians(seed, B=2, N=N, C=C, dtype=torch.float64))
    gen = torch.Generator().manual_seed(seed + 1)

    def grads(backend):
        out = go.gaussians_to_occupancy(g, GRID, mode=mode, backend=backend)
        w_occ = torch.randn(
            out.occupancy.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        w_probs = torch.randn(
            out.probs.shape, generator=gen.manual_seed(seed + 1), dtype=torch.float64
        )
        loss = (out.occupancy * w_occ).sum() + (out.probs * w_probs).sum()
        return torch.autograd.grad(loss, params(g))

    for got, want in zip(grads("cpu"), grads("reference"), strict=True):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("mode", ["probabilistic", "additive", "gaussianformer2"])
def test_gradcheck_float64(mode):
    g = random_gaussians(11, B=2, N=4, C=2, dtype=torch.float64)
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=(0.6, 0.5, 0.7), shape=(5, 6, 3))

    def fn(means, scales, quats, opacities, features):
        gs = go.Gaussians(means, scales, quats, opacities, features, g.valid)
        out = go.gaussians_to_occupancy(gs, grid, mode=mode, backend="cpu", empty_class=0)
        return out.occupancy, out.probs

    inputs = [t.detach().clone().requires_grad_() for t in params(g)]
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_opcheck_on_the_registered_ops():
    g = random_gaussians(5, B=2, N=6, C=3)
    means, scales, quats, opacities, features = params(g)
    valid = g.valid
    grid_args = ([0.0, 0.0, 0.0], [0.4, 0.3, 0.5], [5, 4, 3])
    fwd_args = (means, quats, scales, opacities, features, valid, *grid_args)
    for mode, radius, empty in ((0, 3.0, 0), (1, 3.0, 1), (2, 1.5, 3)):
        cfg = (radius, mode, empty, 1.0 / 3)
        args = tuple(
            t.clone().requires_grad_()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
            else t
            for t in fwd_args
        )
        torch.library.opcheck(torch.ops.gaussocc.accumulate_gaussians, (*args, *cfg))
        out = torch.ops.gaussocc.accumulate_gaussians(*fwd_args, *cfg)
        g_occ = torch.randn_like(out[0])
        # a permuted (non-contiguous) probs gradient, as a loss over [B, C + 1, V] gives it
        g_probs = torch.randn(out[1].shape[0], out[1].shape[2], out[1].shape[1]).transpose(1, 2)
        torch.library.opcheck(
            torch.ops.gaussocc.accumulate_gaussians_backward,
            (*fwd_args[:6], *out[1:], g_occ, g_probs, *grid_args, *cfg),
        )


# --- GaussianFormer-2 / GPOcc mode against their formula, written out ---------------------------


def gf2_rotation(q):
    """Rotation matrix of the normalised quaternion (w, x, y, z): v -> q v q*."""
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def gf2_written_out(means, scales, quats, opac, sem, origin, voxel, shape, k, fill):
    """GaussianFormer-2's localagg_prob + combine_geosem for one scene, written out densely.

    Their head: M = S R(q), Sigma = M^T M = R^T S^2 R, CovInv = Sigma^{-1}; voxel centres
    origin + idx * voxel + voxel / 2; mean cell int((mu - origin) / voxel) (truncation); cube
    radius ceil(max(s) k / voxel) (at least 1); power = exp(-1/2 d^T CovInv d),
    prob = (2 pi)^(-3/2) sqrt(det CovInv) power opacity; bin = prod (1 - power);
    logits = sum sem prob / sum prob where sum prob > 1e-9, else `fill` per class;
    output [logits * (1 - bin), bin] (empty last).
    """
    N, C = sem.shape
    R = gf2_rotation(quats)
    S = torch.diag_embed(scales)
    M = S @ R
    cov_inv = torch.linalg.inv(M.transpose(-1, -2) @ M)
    axes = [torch.arange(n, dtype=means.dtype) for n in shape]
    idx = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)  # [V, 3]
    pts = idx * voxel + 0.5 * voxel + torch.tensor(origin, dtype=means.dtype)
    cell = torch.trunc((means.detach() - torch.tensor(origin, dtype=means.dtype)) / voxel)
    radius = torch.ceil(scales.detach().amax(-1) * k / voxel).clamp(min=1)
    in_cube = ((idx[:, None, :] - cell[None]).abs() <= radius[None, :, None]).all(-1)  # [V, N]
    d = means[None] - pts[:, None]  # [V, N, 3]
    power = torch.exp(-0.5 * torch.einsum("vni,nij,vnj->vn", d, cov_inv, d))
    power = torch.where(in_cube, power, torch.zeros_like(power))
    prob = (2 * math.pi) ** -1.5 * torch.linalg.det(cov_inv).sqrt() * power * opac
    bin_logit = torch.prod(1 - power, dim=-1)
    prob_sum = prob.sum(-1)
    covered = prob_sum > 1e-9
    logits = torch.where(
        covered[:, None],
        (prob @ sem) / torch.where(covered, prob_sum, torch.ones_like(prob_sum))[:, None],
        torch.full((idx.shape[0], C), fill, dtype=means.dtype),
    )
    out = torch.cat([logits * (1 - bin_logit)[:, None], bin_logit[:, None]], -1)
    return 1 - bin_logit, out  # occupancy [V], channels [V, C + 1]


def gf2_scene(dtype=torch.float64, opacity_scale=1.0):
    gen = torch.Generator().manual_seed(42)
    N, C = 7, 4
    origin, voxel, shape = (-1.0, -0.6, 0.2), 0.4, (8, 7, 5)
    lower = torch.tensor(origin, dtype=torch.float64)
    size = voxel * torch.tensor(shape, dtype=torch.float64)
    means = lower + torch.rand(N, 3, generator=gen, dtype=torch.float64) * size
    means[0] = lower + torch.tensor([-0.15, 1.0, 0.5], dtype=torch.float64)  # int() of -0.37 is 0
    scales = 0.08 + 0.3 * torch.rand(N, 3, generator=gen, dtype=torch.float64)
    quats = torch.randn(N, 4, generator=gen, dtype=torch.float64)
    opac = opacity_scale * torch.rand(N, generator=gen, dtype=torch.float64)
    opac[1] = 0.0  # adds to the occupancy, not to the classes
    sem = torch.rand(N, C, generator=gen, dtype=torch.float64).softmax(-1)
    grid = go.VoxelGrid(origin=origin, voxel_size=voxel, shape=shape)
    tensors = [t.to(dtype) for t in (means, scales, quats, opac, sem)]
    return tensors, grid


def gf2_ours(means, scales, quats, opac, sem, grid, *, k=2.0, backend="cpu", **kw):
    g = go.Gaussians(means, scales, quats, opac, sem)
    return go.gaussians_to_occupancy(
        g, grid, mode="gaussianformer2", radius_sigma=k, quat_convention="gaussianformer2",
        backend=backend, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("uncovered", ["gaussianformer2", "gpocc"])
def test_gaussianformer2_mode_equals_their_formula(backend, uncovered):
    (means, scales, quats, opac, sem), grid = gf2_scene()
    C = sem.shape[1]
    fill = 1 / C if uncovered == "gaussianformer2" else 1 / (C + 1)
    occ_want, want = gf2_written_out(
        means, scales, quats, opac, sem, grid.origin, 0.4, grid.shape, 2.0, fill
    )
    out = gf2_ours(means, scales, quats, opac, sem, grid, backend=backend, uncovered=uncovered)
    got = out.probs.reshape(C + 1, -1).T
    torch.testing.assert_close(out.occupancy.reshape(-1), occ_want, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    # the scene has every case: voxels outside every cube (o = 0: classes 0, empty 1), voxels
    # with a mixture, and voxels where o > 0 but the summed density is <= 1e-9 (the fill)
    prob_sum_zero = occ_want == 0
    assert prob_sum_zero.any() and (~prob_sum_zero).sum() > 50
    ratio = got[:, :C] / occ_want[:, None].clamp(min=1e-300)
    filled = (occ_want > 0) & (ratio - fill).abs().amax(-1).lt(1e-12)
    assert filled.any()


def test_gaussianformer2_mode_fill_where_the_density_is_tiny():
    (means, scales, quats, opac, sem), grid = gf2_scene(opacity_scale=1e-12)
    C = sem.shape[1]
    for uncovered, fill in (("gaussianformer2", 1 / C), ("gpocc", 1 / (C + 1))):
        occ_want, want = gf2_written_out(
            means, scales, quats, opac, sem, grid.origin, 0.4, grid.shape, 2.0, fill
        )
        out = gf2_ours(means, scales, quats, opac, sem, grid, uncovered=uncovered)
        got = out.probs.reshape(C + 1, -1).T
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
        filled = occ_want > 0.05
        assert filled.sum() > 20
        torch.testing.assert_close(got[filled, :C], fill * occ_want[filled, None].expand(-1, C))


def test_gaussianformer2_mode_gradients_equal_autograd_of_their_formula():
    (means, scales, quats, opac, sem), grid = gf2_scene()
    C = sem.shape[1]
    leaves = [t.clone().requires_grad_() for t in (means, scales, quats, opac, sem)]
    gen = torch.Generator().manual_seed(1)
    w_probs = torch.randn(C + 1, *grid.shape, generator=gen, dtype=torch.float64)
    w_occ = torch.randn(grid.shape, generator=gen, dtype=torch.float64)
    out = gf2_ours(*leaves, grid)
    loss = (out.probs * w_probs).sum() + (out.occupancy * w_occ).sum()
    got = torch.autograd.grad(loss, leaves)
    occ, want_probs = gf2_written_out(*leaves, grid.origin, 0.4, grid.shape, 2.0, 1 / C)
    loss_w = (want_probs.T.reshape(C + 1, *grid.shape) * w_probs).sum()
    loss_w = loss_w + (occ.reshape(grid.shape) * w_occ).sum()
    want = torch.autograd.grad(loss_w, leaves)
    for name, a, b in zip(("means", "scales", "quats", "opacities", "features"), got, want):
        assert bool(b.abs().gt(1e-6).any()), name
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=name)


def test_gaussianformer2_mode_float32_stays_close_to_the_float64_formula():
    (means, scales, quats, opac, sem), grid = gf2_scene(torch.float32)
    C = sem.shape[1]
    _, want = gf2_written_out(
        *(t.double() for t in (means, scales, quats, opac, sem)),
        grid.origin, 0.4, grid.shape, 2.0, 1 / C,
    )  # fmt: skip
    got = gf2_ours(means, scales, quats, opac, sem, grid).probs.reshape(C + 1, -1).T
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


def test_gaussianformer2_quaternions_are_the_conjugate_of_ours():
    (means, scales, quats, opac, sem), grid = gf2_scene()
    g = go.Gaussians(means, scales, quats, opac, sem)
    conj = go.Gaussians(means, scales, quats * torch.tensor([1.0, -1, -1, -1]).double(), opac, sem)
    for mode in ("probabilistic", "gaussianformer2"):
        theirs = go.gaussians_to_occupancy(g, grid, mode=mode, quat_convention="gaussianformer2")
        ours = go.gaussians_to_occupancy(conj, grid, mode=mode)
        assert torch.equal(theirs.probs, ours.probs)
        plain = go.gaussians_to_occupancy(g, grid, mode=mode)
        assert not torch.allclose(plain.probs, ours.probs)  # the convention matters here


def test_gaussianformer2_mode_empty_class_position_and_default_k():
    (means, scales, quats, opac, sem), grid = gf2_scene()
    C = sem.shape[1]
    last = gf2_ours(means, scales, quats, opac, sem, grid, k=4.0)
    default = go.gaussians_to_occupancy(
        go.Gaussians(means, scales, quats, opac, sem), grid, mode="gaussianformer2",
        quat_convention="gaussianformer2",
    )  # fmt: skip
    assert torch.equal(last.probs, default.probs)  # k = 4 (their nuScenes config) by default
    first = gf2_ours(means, scales, quats, opac, sem, grid, k=4.0, empty_class=0)
    assert torch.equal(first.probs[0], last.probs[C])
    assert torch.equal(first.probs[1:], last.probs[:C])
    torch.testing.assert_close(last.probs.sum(0), torch.ones(grid.shape, dtype=torch.float64))


def test_gaussianformer2_occupancy_leaves_the_opacity_out():
    (means, scales, quats, opac, sem), grid = gf2_scene()
    C = sem.shape[1]
    with_opac = gf2_ours(means, scales, quats, opac, sem, grid)
    ones = gf2_ours(means, scales, quats, torch.ones_like(opac), sem, grid)
    assert torch.equal(with_opac.occupancy, ones.occupancy)
    assert torch.equal(with_opac.probs[C], ones.probs[C])
    assert not torch.allclose(with_opac.probs[:C], ones.probs[:C])  # the mixture uses it


# --- numerical stability -------------------------------------------------------------------------


def test_opaque_gaussian_on_a_voxel_centre_has_finite_correct_gradients():
    dt = torch.float64
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.5, shape=(4, 4, 4))
    centre = grid.centers(dtype=dt)[1, 2, 1]
    offset = torch.tensor([0.3, 0.1, 0.0], dtype=dt)
    s, a2 = 0.4, 0.7
    means = torch.stack([centre, centre + offset])[None].requires_grad_()
    opac = torch.tensor([[1.0, a2]], dtype=dt, requires_grad=True)
    feats = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=dt, requires_grad=True)
    g = go.Gaussians.isotropic(means, s, opac, feats)
    out = go.gaussians_to_occupancy(g, grid, backend="cpu")
    assert out.occupancy[0, 1, 2, 1].item() == 1.0
    g_means, g_opac = torch.autograd.grad(out.occupancy[0, 1, 2, 1], [means, opac])
    g2 = math.exp(-0.5 * float(offset @ offset) / s**2)
    # d o / d a_1 = g_1 (1 - a_2 g_2) with g_1 = 1; d o / d a_2 = g_2 (1 - a_1 g_1) = 0
    assert g_opac[0].tolist() == pytest.approx([1 - a2 * g2, 0.0], abs=1e-12)
    assert bool(torch.isfinite(g_means).all()) and g_means.abs().max().item() == 0.0

    weights = torch.randn(out.probs.shape, dtype=dt, generator=torch.Generator().manual_seed(0))

    def loss(backend):
        return (go.gaussians_to_occupancy(g, grid, backend=backend).probs * weights).sum()  # noqa: E731

    got = torch.autograd.grad(loss("cpu"), [means, opac, feats])
    want = torch.autograd.grad(loss("reference"), [means, opac, feats])
    for x, y in zip(got, want, strict=True):
        assert bool(torch.isfinite(x).all())
        torch.testing.assert_close(x, y)


def test_two_opaque_gaussians_on_the_same_centre():
    dt = torch.float64
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.5, shape=(3, 3, 3))
    centre = grid.centers(dtype=dt)[1, 1, 1]
    means = torch.stack([centre, centre])[None].requires_grad_()
    opac = torch.ones(1, 2, dtype=dt, requires_grad=True)
    g = go.Gaussians.isotropic(means, 0.3, opac, torch.ones(1, 2, 1, dtype=dt))
    out = go.gaussians_to_occupancy(g, grid, backend="cpu")
    (g_opac,) = torch.autograd.grad(out.occupancy[0, 1, 1, 1], [opac])
    assert g_opac.tolist() == [[0.0, 0.0]]  # each factor is zero without the other one


def test_float32_gradients_stay_finite_near_opaque_voxels():
    g = with_grad(random_gaussians(2, B=1, N=6, C=3, padded=False))
    with torch.no_grad():
        g.opacities.fill_(1.0)
        g.means[0, :3] = GRID.centers()[2, 3, 1]
    out = go.gaussians_to_occupancy(g, GRID, backend="cpu")
    loss = out.occupancy.sum() + out.probs.pow(2).sum()
    grads = torch.autograd.grad(loss, params(g))
    assert all(bool(torch.isfinite(x).all()) for x in grads)


# --- invariants ----------------------------------------------------------------------------------


def test_gaussian_outside_the_grid_contributes_nothing():
    g = random_gaussians(4, B=1, N=6, C=2, padded=False)
    far = go.Gaussians.isotropic(
        torch.tensor([[10.0, -5.0, 1.0]]), 0.5, torch.ones(1), torch.tensor([[0.9, 0.1]])
    )
    pairs = zip(params(g), params(far), strict=True)
    both = go.Gaussians(*(torch.cat([a, b[None]], dim=1) for a, b in pairs))
    for mode in ("probabilistic", "additive"):
        alone = go.gaussians_to_occupancy(far, GRID, mode=mode, backend="cpu")
        assert alone.occupancy.abs().max().item() == 0.0
        a = go.gaussians_to_occupancy(g, GRID, mode=mode, backend="cpu")
        b = go.gaussians_to_occupancy(both, GRID, mode=mode, backend="cpu")
        assert torch.equal(a.occupancy, b.occupancy) and torch.equal(a.probs, b.probs)


def test_a_sub_grid_is_the_crop_of_a_larger_grid():
    g = random_gaussians(6, B=2, N=10, C=3)
    big = go.VoxelGrid(origin=(-0.8, -0.6, -1.0), voxel_size=(0.4, 0.3, 0.5), shape=(11, 14, 8))
    small = go.VoxelGrid(origin=(0.4, 0.3, 0.0), voxel_size=(0.4, 0.3, 0.5), shape=(5, 6, 3))
    a = go.gaussians_to_occupancy(g, big, backend="cpu")
    b = go.gaussians_to_occupancy(g, small, backend="cpu")
    crop = (slice(3, 8), slice(3, 9), slice(2, 5))
    torch.testing.assert_close(b.occupancy, a.occupancy[(slice(None), *crop)])
    torch.testing.assert_close(b.probs, a.probs[(slice(None), slice(None), *crop)])


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), N=st.integers(1, 12))
def test_probabilistic_occupancy_is_a_probability_and_monotone(seed, N):
    g = random_gaussians(seed, B=1, N=N, C=3, padded=False)
    out = go.gaussians_to_occupancy(g, GRID, backend="cpu")
    assert out.occupancy.min() >= 0 and out.occupancy.max() <= 1
    torch.testing.assert_close(out.probs.sum(1), torch.ones_like(out.occupancy))
    extra = random_gaussians(seed + 1, B=1, N=1, C=3, padded=False)
    pairs = zip(params(g), params(extra), strict=True)
    more = go.Gaussians(*(torch.cat([a, b], dim=1) for a, b in pairs))
    out_more = go.gaussians_to_occupancy(more, GRID, backend="cpu")
    assert bool((out_more.occupancy >= out.occupancy - 1e-6).all())
    perm = torch.randperm(N + 1, generator=torch.Generator().manual_seed(seed))
    shuffled = go.Gaussians(*(t[:, perm] for t in params(more)))
    out_perm = go.gaussians_to_occupancy(shuffled, GRID, backend="cpu")
    torch.testing.assert_close(out_perm.occupancy, out_more.occupancy)
    torch.testing.assert_close(out_perm.probs, out_more.probs)


def test_argmax_picks_the_dominant_class_and_empty_far_away():
    g = go.Gaussians.isotropic(
        torch.tensor([[1.0, 1.0, 1.0], [3.0, 3.0, 1.0]]),
        0.4,
        torch.ones(2),
        torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.2, 0.8]]),
    )
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.5, shape=(10, 10, 4))
    labels = go.gaussians_to_occupancy(g, grid, empty_class=2, backend="cpu").probs.argmax(0)
    assert (
        labels[2, 2, 2].item() == 1 and labels[6, 6, 2].item() == 3 and labels[0, 9, 0].item() == 2
    )


def test_invalid_gaussians_equal_removed_ones_and_batches_are_independent():
    g = random_gaussians(8, B=3, N=9, C=2)
    out = go.gaussians_to_occupancy(g, GRID, backend="cpu")
    for b in range(3):
        keep = g.valid[b]
        alone = go.Gaussians(*(t[b : b + 1, keep] for t in params(g)))
        one = go.gaussians_to_occupancy(alone, GRID, backend="cpu")
        torch.testing.assert_close(out.occupancy[b], one.occupancy[0])
        torch.testing.assert_close(out.probs[b], one.probs[0])


def test_leading_batch_dims_and_no_batch_dims():
    g = random_gaussians(9, B=6, N=5, C=2, padded=False)
    flat = go.gaussians_to_occupancy(g, GRID, backend="cpu")
    nested = go.Gaussians(*(t.reshape(2, 3, *t.shape[1:]) for t in params(g)))
    out = go.gaussians_to_occupancy(nested, GRID, backend="cpu")
    assert out.occupancy.shape == (2, 3, *GRID.shape) and out.probs.shape == (2, 3, 3, *GRID.shape)
    torch.testing.assert_close(out.occupancy.reshape(flat.occupancy.shape), flat.occupancy)
    single = go.gaussians_to_occupancy(g[4], GRID, backend="cpu")
    torch.testing.assert_close(single.probs, flat.probs[4])


def test_empty_inputs_give_an_empty_scene():
    g = go.Gaussians.isotropic(torch.zeros(2, 0, 3), 0.5, torch.zeros(2, 0), torch.zeros(2, 0, 3))
    out = go.gaussians_to_occupancy(g, GRID, empty_class=1, backend="cpu")
    assert isinstance(out, OccupancyOutput)
    assert out.occupancy.abs().max().item() == 0.0
    assert bool((out.probs[:, 1] == 1).all()) and out.probs[:, [0, 2, 3]].abs().max().item() == 0.0
    none = go.Gaussians.isotropic(
        torch.zeros(0, 4, 3), 0.5, torch.zeros(0, 4), torch.zeros(0, 4, 3)
    )
    assert go.gaussians_to_occupancy(none, GRID, backend="cpu").probs.shape == (0, 4, *GRID.shape)


def test_half_precision_inputs_are_upcast():
    g = random_gaussians(10, B=1, N=6, C=3, padded=False)
    half = g.to(torch.float16)
    out = go.gaussians_to_occupancy(half, GRID, backend="cpu")
    want = go.gaussians_to_occupancy(half.to(torch.float32), GRID, backend="cpu")
    assert out.occupancy.dtype == torch.float32
    torch.testing.assert_close(out.probs, want.probs)


def test_auto_backend_uses_the_cpu_kernel():
    g = random_gaussians(12, B=1, N=4, C=2)
    auto = go.gaussians_to_occupancy(g, GRID)
    cpu = go.gaussians_to_occupancy(g, GRID, backend="cpu")
    assert torch.equal(auto.probs, cpu.probs)


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    g = random_gaussians(0, B=1, N=3, C=2)
    with pytest.raises(TypeError, match="gaussians"):
        go.gaussians_to_occupancy(g.means, GRID)
    with pytest.raises(TypeError, match="grid"):
        go.gaussians_to_occupancy(g, (0, 0, 0))
    with pytest.raises(ValueError, match="mode"):
        go.gaussians_to_occupancy(g, GRID, mode="max")
    with pytest.raises(ValueError, match="radius_sigma"):
        go.gaussians_to_occupancy(g, GRID, radius_sigma=0.0)
    with pytest.raises(ValueError, match="radius_sigma"):
        go.gaussians_to_occupancy(g, GRID, radius_sigma=float("inf"))
    with pytest.raises(ValueError, match="empty_class.*C = 2"):
        go.gaussians_to_occupancy(g, GRID, empty_class=3)
    with pytest.raises(TypeError, match="empty_class"):
        go.gaussians_to_occupancy(g, GRID, empty_class=1.0)
    with pytest.raises(ValueError, match="backend"):
        go.gaussians_to_occupancy(g, GRID, backend="gsplat")
    with pytest.raises(ValueError, match="backend='cuda' needs tensors on cuda"):
        go.gaussians_to_occupancy(g, GRID, backend="cuda")

    def modified(**changes):
        fields = dict(
            means=g.means,
            scales=g.scales,
            quats=g.quats,
            opacities=g.opacities,
            features=g.features,
            valid=None,
        )
        fields.update(changes)
        return go.Gaussians(**fields)

    with pytest.raises(ValueError, match="opacities must lie in \\[0, 1\\]"):
        go.gaussians_to_occupancy(modified(opacities=g.opacities + 1.5), GRID)
    with pytest.raises(ValueError, match="opacities contains NaN"):
        go.gaussians_to_occupancy(
            modified(opacities=torch.full_like(g.opacities, float("nan"))), GRID
        )
    with pytest.raises(ValueError, match="features contains NaN"):
        go.gaussians_to_occupancy(
            modified(features=torch.full_like(g.features, float("inf"))), GRID
        )
    with pytest.raises(ValueError, match="scales must be > 0"):
        go.gaussians_to_occupancy(modified(scales=torch.zeros_like(g.scales)), GRID)
    with pytest.raises(ValueError, match="features must have shape"):
        modified(features=torch.rand(1, 4, 2))  # C per Gaussian must match N
    # zero scales of padding entries are fine
    padded = modified(scales=torch.zeros_like(g.scales), valid=torch.zeros(1, 3, dtype=torch.bool))
    assert go.gaussians_to_occupancy(padded, GRID).occupancy.abs().max().item() == 0.0


def test_raw_op_rejects_bad_shapes():
    g = random_gaussians(0, B=1, N=3, C=2)
    means, scales, quats, opacities, features = params(g)
    grid_args = ([0.0, 0.0, 0.0], [0.4, 0.3, 0.5], [5, 4, 3], 3.0, 1, 2, 0.5)
    with pytest.raises(RuntimeError, match="quats must have shape"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats[..., :3].contiguous(), scales, opacities, features, g.valid, *grid_args
        )
    with pytest.raises(RuntimeError, match="valid must have dtype"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats, scales, opacities, features, g.valid.float(), *grid_args
        )
    with pytest.raises(RuntimeError, match="mode must be"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats, scales, opacities, features, g.valid, *grid_args[:4], 3, 2, 0.5
        )
    with pytest.raises(RuntimeError, match="empty_index must be in"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats, scales, opacities, features, g.valid, *grid_args[:4], 1, 3, 0.5
        )


# --- CUDA ----------------------------------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("mode", ["probabilistic", "additive", "gaussianformer2"])
def test_cuda_matches_cpu(mode):
    g = with_grad(random_gaussians(21, B=2, N=64, C=19, extent=(6.0, 5.0, 3.0)))
    grid = go.VoxelGrid(origin=(-0.5, -0.5, -0.5), voxel_size=(0.3, 0.25, 0.4), shape=(22, 23, 9))
    gen = torch.Generator().manual_seed(0)
    out = go.gaussians_to_occupancy(g, grid, mode=mode, backend="cpu")
    w_occ, w_probs = (
        torch.randn(out.occupancy.shape, generator=gen),
        torch.randn(out.probs.shape, generator=gen),
    )
    cpu_grads = torch.autograd.grad(
        (out.occupancy * w_occ).sum() + (out.probs * w_probs).sum(), params(g)
    )
    gc = with_grad(g.to("cuda"))
    out_c = go.gaussians_to_occupancy(gc, grid, mode=mode, backend="cuda")
    loss_c = (out_c.occupancy * w_occ.cuda()).sum() + (out_c.probs * w_probs.cuda()).sum()
    cuda_grads = torch.autograd.grad(loss_c, params(gc))
    torch.testing.assert_close(out_c.occupancy.cpu(), out.occupancy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_c.probs.cpu(), out.probs, atol=1e-5, rtol=1e-5)
    for got, want in zip(cuda_grads, cpu_grads, strict=True):
        torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)


@requires_cuda
def test_cuda_float64_and_opaque_centre():
    dt = torch.float64
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.5, shape=(4, 4, 4))
    centre = grid.centers(dtype=dt)[1, 2, 1]
    means = torch.stack([centre, centre + torch.tensor([0.3, 0.1, 0.0], dtype=dt)])[None]
    results = []
    for device in ("cpu", "cuda"):
        m = means.to(device).requires_grad_()
        opac = torch.tensor([[1.0, 0.7]], dtype=dt, device=device, requires_grad=True)
        g = go.Gaussians.isotropic(m, 0.4, opac, torch.eye(2, dtype=dt, device=device)[None])
        out = go.gaussians_to_occupancy(g, grid, backend=device)
        loss = out.occupancy.sum() + out.probs[:, 0].pow(2).sum()
        results.append([t.cpu() for t in (out.occupancy, *torch.autograd.grad(loss, [m, opac]))])
    for got, want in zip(results[1], results[0], strict=True):
        torch.testing.assert_close(got, want)
