import math

import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go


def random_scene(
    seed, B=2, N=40, C=5, V=2, ortho=False, dtype=torch.float64, device="cpu", size=(24, 32)
):
    """Gaussians in front of V cameras looking at them from different places."""
    g = torch.Generator().manual_seed(seed)
    H, W = size

    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=dtype)

    means = (r(B, N, 3) - 0.5) * torch.tensor([3.0, 3.0, 2.0], dtype=dtype) + torch.tensor(
        [0, 0, 6.0], dtype=dtype
    )
    scales = r(B, N, 3) * 0.35 + 0.05
    quats = torch.randn(B, N, 4, generator=g, dtype=dtype)
    opacities = r(B, N) * 0.9 + 0.05
    features = r(B, N, C)
    eyes = torch.stack(
        [
            torch.tensor([0.0, 0.0, 0.0]),
            torch.tensor([1.5, -0.7, 0.5]),
            torch.tensor([-1.0, 1.0, -0.5]),
        ]
    )[:V].to(dtype)
    eyes = eyes[None].expand(B, V, 3) + 0.2 * (r(B, V, 3) - 0.5)
    vm = go.cameras.look_at(
        eyes, torch.tensor([0.0, 0.0, 6.0], dtype=dtype).expand(B, V, 3), up=(0, -1, 0)
    )
    if ortho:
        K = torch.tensor([[W / 4.0, 0, W / 2], [0, H / 4.0, H / 2], [0, 0, 1]], dtype=dtype)
    else:
        K = torch.tensor([[1.2 * W, 0, W / 2], [0, 1.2 * W, H / 2], [0, 0, 1]], dtype=dtype)
    cams = go.Cameras(
        vm, K.expand(B, V, 3, 3).clone(), width=W, height=H, model="ortho" if ortho else "pinhole"
    )
    tensors = [t.to(device) for t in (means, scales, quats, opacities, features)]
    return tensors, cams.to(device)


def render_and_grads(tensors, cams, backend, seed=0, **kw):
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = go.splat(go.Gaussians(*leaves), cams, backend=backend, **kw)
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(o.shape, generator=g, dtype=o.dtype).to(o.device) for o in out]
    loss = sum((o * w).sum() for o, w in zip(out, weights))
    grads = torch.autograd.grad(loss, leaves)
    return [o.detach() for o in out], grads


def assert_close_all(a, b, rtol, atol):
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), C=st.sampled_from([1, 3, 18, 19, 40]), ortho=st.booleans())
def test_cpu_kernel_matches_reference_values_and_gradients(seed, C, ortho):
    tensors, cams = random_scene(seed, C=C, ortho=ortho)
    ref_out, ref_grads = render_and_grads(tensors, cams, "reference")
    cpu_out, cpu_grads = render_and_grads(tensors, cams, "cpu")
    assert ref_out[2].max() > 0.5  # the scene is visible
    assert_close_all(cpu_out, ref_out, rtol=1e-9, atol=1e-9)
    assert_close_all(cpu_grads, ref_grads, rtol=1e-7, atol=1e-8)


def test_cpu_kernel_matches_reference_in_float32():
    tensors, cams = random_scene(3, C=19, dtype=torch.float32, N=80)
    ref_out, ref_grads = render_and_grads(tensors, cams, "reference")
    cpu_out, cpu_grads = render_and_grads(tensors, cams, "cpu")
    assert_close_all(cpu_out, ref_out, rtol=1e-4, atol=1e-5)
    for name, x, y in zip(
        ["means", "scales", "quats", "opacities", "features"], cpu_grads, ref_grads
    ):
        err = (x - y).abs().max() / y.abs().max()
        assert err < 2e-3, name


def clamp_scene():
    """Float64 pinhole scene in which the field-of-view clamp of J and the alpha clamp are active:
    centres beyond the clamp box whose footprints reach the image, and Gaussians of opacity 1
    centred on pixel centres (alpha = 1 there, clamped to 0.999)."""
    W, H, f = 32, 24, 30.0
    dt = torch.float64
    g = torch.Generator().manual_seed(21)
    lim_x, lim_y = (W / 2) / f * 1.3, (H / 2) / f * 1.3  # clamp box of x/z and y/z
    z = 4.0
    means = [
        [(5.5 - W / 2) / f * z, (6.5 - H / 2) / f * z, z],  # on pixel (5, 6): alpha clamp
        [(20.5 - W / 2) / f * z, (12.5 - H / 2) / f * z, z + 0.5],  # behind the first ones
        [1.1 * lim_x * z, 0.2, z],  # x/z beyond the clamp box, footprint on screen
        [-1.25 * lim_x * z, -0.3, z],
        [0.1, 1.15 * lim_y * z, z],
        [0.3, -1.2 * lim_y * (z + 1.0), z + 1.0],
    ]
    N0 = len(means)
    means = torch.tensor(means, dtype=dt)
    more = torch.rand(10, 3, generator=g, dtype=dt) * torch.tensor([4.0, 3.0, 2.0]) - torch.tensor(
        [2.0, 1.5, -3.0]
    )
    means = torch.cat([means, more])[None]
    N = means.shape[1]
    scales = torch.full((1, N, 3), 0.25, dtype=dt)
    scales[0, 2:N0] = torch.tensor([1.1, 0.9, 1.0], dtype=dt)
    quats = torch.randn(1, N, 4, generator=g, dtype=dt)
    quats[0, :2] = torch.tensor([1.0, 0, 0, 0], dtype=dt)
    opacities = torch.rand(1, N, generator=g, dtype=dt) * 0.5 + 0.4
    opacities[0, :2] = 1.0
    opacities[0, 2:N0] = 0.95
    features = torch.randn(1, N, 3, generator=g, dtype=dt)
    K = torch.tensor([[[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]], dtype=dt)
    cams = go.Cameras(torch.eye(4, dtype=dt)[None], K, width=W, height=H)
    return [means, scales, quats, opacities, features], cams


def test_cpu_kernel_matches_reference_to_1e12_with_fov_and_alpha_clamps_active():
    """The kernels' constants (alpha threshold and clamp, transmittance stop, FOV clamp) are exact
    in float64: the CPU kernel equals the float64 reference to 1e-12 where the clamps act."""
    tensors, cams = clamp_scene()
    means, scales, quats, opacities, features = tensors
    # the clamps are active: centres beyond the clamp box that survive culling, and alpha
    m2, conics, depths, valid = go.reference.splat.project_gaussians(
        means,
        quats,
        scales,
        cams.viewmats[None],
        cams.Ks[None],
        cams.width,
        cams.height,
        0.01,
        1e10,
        0.3,
        False,
    )
    radii = torch.ops.gaussocc.project_gaussians(
        means,
        quats,
        scales,
        opacities,
        cams.viewmats[None],
        cams.Ks[None],
        cams.width,
        cams.height,
        0.01,
        1e10,
        0.3,
        False,
    )[3]
    ux = means[0, :, 0] / means[0, :, 2]
    uy = means[0, :, 1] / means[0, :, 2]
    beyond = (ux.abs() > 16 / 30 * 1.3) | (uy.abs() > 12 / 30 * 1.3)
    assert (beyond & (radii[0, 0] > 0).all(-1)).sum() >= 4
    ref_out, ref_grads = render_and_grads(tensors, cams, "reference")
    cpu_out, cpu_grads = render_and_grads(tensors, cams, "cpu")
    assert (ref_out[2] >= 0.999).any()  # alpha clamped (to 0.999) on the first Gaussians' pixels
    for x, y in zip(cpu_out, ref_out):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-12)
    for name, x, y in zip(
        ["means", "scales", "quats", "opacities", "features"], cpu_grads, ref_grads
    ):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("ortho", [False, True])
def test_gradcheck_cpu_kernel(ortho):
    tensors, cams = random_scene(7, B=1, N=4, C=2, V=2, ortho=ortho, size=(10, 12))
    tensors[3] = tensors[3].clamp(max=0.6)  # keep alpha away from its 0.999 clamp

    def fn(*leaves):
        out = go.splat(
            go.Gaussians(*leaves),
            cams,
            backend="cpu",
            background=torch.tensor([0.3, -0.2], dtype=torch.float64),
        )
        return out.features, out.depth, out.alpha

    leaves = [t.clone().requires_grad_() for t in tensors]
    assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_registered_ops_pass_opcheck():
    tensors, cams = random_scene(11, B=1, N=12, C=3, V=1, dtype=torch.float32)
    means, scales, quats, opac, feats = tensors
    args = (
        means,
        quats,
        scales,
        opac,
        cams.viewmats.contiguous(),
        cams.Ks.contiguous(),
        32,
        24,
        0.01,
        100.0,
        0.3,
        False,
    )
    torch.library.opcheck(
        torch.ops.gaussocc.project_gaussians.default,
        args,
        test_utils=("test_schema", "test_faketensor"),
    )
    m2, con, dep, rad = torch.ops.gaussocc.project_gaussians(*args)
    raster_args = (m2, con, dep, rad, opac, feats, 32, 24, 16)
    torch.library.opcheck(
        torch.ops.gaussocc.rasterize.default,
        raster_args,
        test_utils=("test_schema", "test_autograd_registration"),
    )
    out = torch.ops.gaussocc.rasterize(*raster_args)
    g = [torch.randn_like(out[0]), torch.randn_like(out[1]), torch.randn_like(out[2])]
    torch.library.opcheck(
        torch.ops.gaussocc.rasterize_backward.default,
        (m2, con, dep, opac, feats, out[2], out[3], out[4], out[5], *g, 32, 24, 16),
        test_utils=("test_schema", "test_faketensor"),
    )
    torch.library.opcheck(
        torch.ops.gaussocc.project_gaussians_backward.default,
        (
            means,
            quats,
            scales,
            cams.viewmats.contiguous(),
            cams.Ks.contiguous(),
            rad,
            torch.randn_like(m2),
            torch.randn_like(con),
            torch.randn_like(dep),
            32,
            24,
            0.3,
            False,
        ),
        test_utils=("test_schema", "test_faketensor"),
    )


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_permuting_gaussians_leaves_image_unchanged(backend):
    tensors, cams = random_scene(5, B=1, N=50, C=4)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    a = go.splat(go.Gaussians(*tensors), cams, backend=backend)
    b = go.splat(go.Gaussians(*[t[:, perm] for t in tensors]), cams, backend=backend)
    assert_close_all(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_zero_opacity_renders_background(backend):
    tensors, cams = random_scene(2, C=3)
    tensors[3] = torch.zeros_like(tensors[3])
    bg = torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64)
    out = go.splat(go.Gaussians(*tensors), cams, backend=backend, background=bg)
    assert torch.equal(out.alpha, torch.zeros_like(out.alpha))
    assert torch.equal(out.depth, torch.zeros_like(out.depth))
    torch.testing.assert_close(out.features, bg.expand_as(out.features))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_zero_gaussians_render_background(backend):
    cams = random_scene(0)[1]
    g = go.Gaussians(
        torch.zeros(2, 0, 3, dtype=torch.float64),
        torch.zeros(2, 0, 3, dtype=torch.float64),
        torch.zeros(2, 0, 4, dtype=torch.float64),
        torch.zeros(2, 0, dtype=torch.float64),
        torch.zeros(2, 0, 2, dtype=torch.float64),
    )
    bg = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out = go.splat(g, cams, backend=backend, background=bg)
    assert out.features.shape == (2, 2, 24, 32, 2)
    assert torch.equal(out.features, bg.expand_as(out.features))
    assert torch.equal(out.alpha, torch.zeros_like(out.alpha))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("ortho", [False, True])
def test_single_gaussian_facing_camera_is_the_analytic_2d_gaussian(backend, ortho):
    s, z, f, eps2d, o = 0.3, 4.0, 40.0, 0.3, 0.8
    H = W = 48
    mean = torch.tensor([[[0.25, -0.1, z]]], dtype=torch.float64)
    g = go.Gaussians.isotropic(
        mean,
        s,
        torch.tensor([[o]], dtype=torch.float64),
        torch.tensor([[[1.0, 2.0]]], dtype=torch.float64),
    )
    f_px = f if not ortho else 20.0
    K = torch.tensor([[[f_px, 0, W / 2], [0, f_px, H / 2], [0, 0, 1]]], dtype=torch.float64)
    cams = go.Cameras(
        torch.eye(4, dtype=torch.float64)[None],
        K,
        width=W,
        height=H,
        model="ortho" if ortho else "pinhole",
    )
    out = go.splat(g, cams, backend=backend, eps2d=eps2d)
    # 2D mean and the variance of the projected sphere (J = diag(f/z) at the centre; the off-axis
    # terms of J are -f x/z^2 and enter the covariance through s^2 as well)
    x, y = 0.25, -0.1
    if ortho:
        u, v = f_px * x + W / 2, f_px * y + H / 2
        cov = torch.tensor(
            [[f_px**2 * s**2 + eps2d, 0.0], [0.0, f_px**2 * s**2 + eps2d]], dtype=torch.float64
        )
    else:
        u, v = f_px * x / z + W / 2, f_px * y / z + H / 2
        J = torch.tensor(
            [[f_px / z, 0, -f_px * x / z**2], [0, f_px / z, -f_px * y / z**2]], dtype=torch.float64
        )
        cov = s**2 * J @ J.T + eps2d * torch.eye(2, dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float64) + 0.5,
        torch.arange(W, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    d = torch.stack([xs - u, ys - v], -1)
    maha = torch.einsum("hwi,ij,hwj->hw", d, torch.linalg.inv(cov), d)
    alpha = o * torch.exp(-0.5 * maha)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    torch.testing.assert_close(out.alpha[0, 0, :, :, 0], alpha, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.features[0, 0, :, :, 1], 2 * alpha, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.depth[0, 0, :, :, 0], z * alpha, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_rigid_motion_of_scene_and_cameras_leaves_images_unchanged(backend):
    tensors, cams = random_scene(9, B=1, N=30, C=3)
    angle = 0.7
    R = torch.tensor(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]],
        dtype=torch.float64,
    )
    t = torch.tensor([3.0, -2.0, 1.5], dtype=torch.float64)
    means, scales, quats, opac, feats = tensors
    # rotate each Gaussian's frame: q' = q_R * q
    qr = torch.tensor([math.cos(angle / 2), 0, 0, math.sin(angle / 2)], dtype=torch.float64)
    w1, x1, y1, z1 = qr
    w2, x2, y2, z2 = quats.unbind(-1)
    quats2 = torch.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )
    moved = [means @ R.T + t, scales, quats2, opac, feats]
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3], T[:3, 3] = R, t
    cams2 = go.Cameras(
        cams.viewmats @ torch.linalg.inv(T), cams.Ks, width=cams.width, height=cams.height
    )
    a = go.splat(go.Gaussians(*tensors), cams, backend=backend)
    b = go.splat(go.Gaussians(*moved), cams2, backend=backend)
    assert_close_all(a, b, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_bev_depth_of_a_flat_layer_is_its_distance_below_the_camera(backend):
    grid = go.VoxelGrid(origin=(-2.0, -2.0, 0.0), voxel_size=0.25, shape=(16, 16, 8))
    xy = grid.centers()[:, :, 2, :].reshape(-1, 3).double()  # the layer at z = 0.625
    g = go.Gaussians.isotropic(
        xy[None],
        0.125,
        torch.ones(1, len(xy), dtype=torch.float64),
        torch.tensor([0.0, 1.0], dtype=torch.float64).expand(1, len(xy), 2),
    )
    cam = go.cameras.bev(grid, 32, height_above=1.0, dtype=torch.float64)
    out = go.splat(g, cam, backend=backend, depth_mode="expected")
    expected = grid.upper[2] + 1.0 - 0.625
    assert out.alpha.min() > 0.5 and out.alpha[:, :, 4:-4, 4:-4].min() > 0.95
    torch.testing.assert_close(out.depth, torch.full_like(out.depth, expected))
    torch.testing.assert_close(out.features[..., 1], out.alpha[..., 0])


def test_expected_depth_is_accumulated_over_alpha():
    tensors, cams = random_scene(4, B=1)
    g = go.Gaussians(*tensors)
    acc = go.splat(g, cams, backend="cpu")
    exp = go.splat(g, cams, backend="cpu", depth_mode="expected")
    covered = acc.alpha > 0
    torch.testing.assert_close(exp.depth[covered], acc.depth[covered] / acc.alpha[covered])
    assert torch.equal(exp.depth[~covered], torch.zeros_like(exp.depth[~covered]))


def test_batch_elements_render_independently_and_cameras_broadcast():
    tensors, cams = random_scene(6, B=3, V=2, C=4)
    g = go.Gaussians(*tensors)
    full = go.splat(g, cams, backend="cpu")
    for b in range(3):
        single = go.splat(g[b : b + 1], cams[b : b + 1], backend="cpu")
        assert_close_all([o[b : b + 1] for o in full], single, rtol=1e-12, atol=1e-12)
    shared = go.splat(g, cams[0], backend="cpu")  # [V] cameras without batch dims
    for b in range(3):
        single = go.splat(g[b : b + 1], cams[0:1], backend="cpu")
        assert_close_all([o[b : b + 1] for o in shared], single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_gaussians_behind_the_camera_are_culled_without_nan(backend):
    tensors = random_scene(8, B=1, V=1, N=20)[0]
    K = torch.tensor([[[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]]], dtype=torch.float64)
    cams = go.Cameras(
        torch.eye(4, dtype=torch.float64)[None], K, width=32, height=24
    )  # at the origin
    means = tensors[0]
    behind = means * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # mirrored behind it
    on_plane = means * torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)  # exactly on its plane
    extra = torch.cat([means, behind, on_plane], 1)
    rep = [torch.cat([t] * 3, 1) for t in tensors[1:]]
    leaves = [extra.requires_grad_(), *[t.requires_grad_() for t in rep]]
    out = go.splat(go.Gaussians(*leaves), cams, backend=backend, near=0.0)
    base = go.splat(go.Gaussians(*tensors), cams, backend=backend, near=0.0)
    assert base.alpha.max() > 0.5
    assert_close_all(out, base, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(sum(o.sum() for o in out), leaves)
    assert all(torch.isfinite(gr).all() for gr in grads)
    assert torch.equal(grads[0][0, 20:], torch.zeros_like(grads[0][0, 20:]))


def test_half_precision_inputs_are_upcast():
    tensors, cams = random_scene(1, B=1, dtype=torch.float32)
    full = go.splat(go.Gaussians(*tensors), cams, backend="cpu")
    half = go.splat(go.Gaussians(*[t.to(torch.bfloat16) for t in tensors]), cams, backend="cpu")
    assert half.features.dtype == torch.float32
    assert (half.alpha - full.alpha).abs().max() < 0.05


def test_bad_inputs_raise_clear_errors():
    tensors, cams = random_scene(0, B=2, V=2, C=3)
    g = go.Gaussians(*tensors)
    three = go.Cameras(
        cams.viewmats[:1].expand(3, 2, 4, 4), cams.Ks[:1].expand(3, 2, 3, 3), width=32, height=24
    )
    with pytest.raises(ValueError, match="does not broadcast"):
        go.splat(g, three)
    with pytest.raises(ValueError, match="background must have 3 channels"):
        go.splat(g, cams, background=torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="depth_mode"):
        go.splat(g, cams, depth_mode="median")
    with pytest.raises(ValueError, match="backend must be one of"):
        go.splat(g, cams, backend="opengl")
    with pytest.raises(ValueError, match="needs tensors on cuda"):
        go.splat(g, cams, backend="cuda")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        go.splat(g, cams, backend="gsplat")
    with pytest.raises(ValueError, match="near < far"):
        go.splat(g, cams, near=5.0, far=1.0)
    with pytest.raises(TypeError, match="gaussians must be gaussocc_ops.Gaussians"):
        go.splat(tensors, cams)


# ------------------------------------------------------------------------------------------------
# GPU: our CUDA kernel against the CPU kernel, and gsplat against our CUDA kernel.


@requires_cuda
@pytest.mark.parametrize("C", [1, 3, 18, 19, 40])
@pytest.mark.parametrize("ortho", [False, True])
def test_cuda_kernel_matches_cpu_kernel(C, ortho):
    for dtype, rtol, atol in ((torch.float64, 1e-9, 1e-9), (torch.float32, 1e-4, 1e-5)):
        tensors, cams = random_scene(21, C=C, ortho=ortho, N=300, dtype=dtype, size=(40, 56))
        cpu_out, cpu_grads = render_and_grads(tensors, cams, "cpu")
        cuda_out, cuda_grads = render_and_grads(
            [t.cuda() for t in tensors], cams.to("cuda"), "cuda"
        )
        assert_close_all([o.cpu() for o in cuda_out], cpu_out, rtol=rtol, atol=atol)
        for x, y in zip(cuda_grads, cpu_grads):
            assert (x.cpu() - y).abs().max() <= 1e-3 * y.abs().max() + atol


@requires_cuda
@pytest.mark.parametrize("ortho", [False, True])
def test_gsplat_backend_matches_our_cuda_kernel(ortho):
    pytest.importorskip("gsplat", reason="gsplat is not installed (a GPU machine without network)")
    tensors, cams = random_scene(31, C=18, ortho=ortho, N=500, dtype=torch.float32, size=(48, 64))
    tensors = [t.cuda() for t in tensors]
    cams = cams.to("cuda")
    ours, our_grads = render_and_grads(tensors, cams, "cuda")
    theirs, their_grads = render_and_grads(tensors, cams, "gsplat")
    assert_close_all(theirs, ours, rtol=1e-4, atol=1e-4)
    for x, y in zip(their_grads, our_grads):
        assert (x - y).abs().max() <= 1e-3 * y.abs().max() + 1e-5
