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
    mode=st.sampled_from(["probabilistic", "additive"]),
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
    mode=st.sampled_from(["probabilistic", "additive"]),
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


@pytest.mark.parametrize("mode", ["probabilistic", "additive"])
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
    grid_args = ([0.0, 0.0, 0.0], [0.4, 0.3, 0.5], [5, 4, 3], 3.0)
    fwd_args = (means, quats, scales, opacities, features, valid, *grid_args)
    for probabilistic in (True, False):
        args = tuple(
            t.clone().requires_grad_()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
            else t
            for t in fwd_args
        )
        torch.library.opcheck(torch.ops.gaussocc.accumulate_gaussians, (*args, probabilistic))
        out = torch.ops.gaussocc.accumulate_gaussians(*fwd_args, probabilistic)
        grads = (torch.randn_like(out[0]), torch.randn_like(out[1]), torch.randn_like(out[2]))
        torch.library.opcheck(
            torch.ops.gaussocc.accumulate_gaussians_backward,
            (*fwd_args[:6], out[3], out[4], *grads, *grid_args, probabilistic),
        )


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
    grid_args = ([0.0, 0.0, 0.0], [0.4, 0.3, 0.5], [5, 4, 3], 3.0, True)
    with pytest.raises(RuntimeError, match="quats must have shape"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats[..., :3].contiguous(), scales, opacities, features, g.valid, *grid_args
        )
    with pytest.raises(RuntimeError, match="valid must have dtype"):
        torch.ops.gaussocc.accumulate_gaussians(
            means, quats, scales, opacities, features, g.valid.float(), *grid_args
        )


# --- CUDA ----------------------------------------------------------------------------------------


@requires_cuda
@pytest.mark.parametrize("mode", ["probabilistic", "additive"])
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
