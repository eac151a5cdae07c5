import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go

F64 = torch.float64


def random_Ks(batch, g, dtype=F64, skew=True):
    Ks = torch.zeros(*batch, 3, 3, dtype=dtype)
    Ks[..., 0, 0] = 20 + 80 * torch.rand(batch, generator=g, dtype=dtype)
    Ks[..., 1, 1] = 20 + 80 * torch.rand(batch, generator=g, dtype=dtype)
    Ks[..., 0, 2] = 10 * torch.rand(batch, generator=g, dtype=dtype)
    Ks[..., 1, 2] = 8 * torch.rand(batch, generator=g, dtype=dtype)
    if skew:
        Ks[..., 0, 1] = torch.randn(batch, generator=g, dtype=dtype)
    Ks[..., 2, 2] = 1.0
    return Ks


def random_rigid(batch, g):
    q = torch.nn.functional.normalize(torch.randn(*batch, 4, generator=g, dtype=F64), dim=-1)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        -1,
    ).reshape(*batch, 3, 3)
    T = torch.eye(4, dtype=F64).repeat(*batch, 1, 1)
    T[..., :3, :3] = R
    T[..., :3, 3] = torch.randn(*batch, 3, generator=g, dtype=F64)
    return T


@settings(max_examples=20, deadline=None)
@given(
    H=st.integers(1, 6),
    W=st.integers(1, 6),
    B=st.integers(1, 3),
    center=st.sampled_from([0.0, 0.5, 1.0]),
    seed=st.integers(0, 1000),
)
def test_ray_directions_against_inverse_intrinsics(H, W, B, center, seed):
    Ks = random_Ks((B,), torch.Generator().manual_seed(seed))
    dirs = go.ray_directions(Ks, H, W, normalize=False, pixel_center=center)
    assert dirs.shape == (B, H, W, 3)
    for b in range(B):
        for row in range(H):
            for col in range(W):
                pixel = torch.tensor([col + center, row + center, 1.0], dtype=F64)
                expected = torch.linalg.solve(Ks[b], pixel)
                torch.testing.assert_close(dirs[b, row, col], expected)
    unit = go.ray_directions(Ks, H, W, pixel_center=center)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(B, H, W, dtype=F64))
    torch.testing.assert_close(unit, dirs / dirs.norm(dim=-1, keepdim=True))


def test_ray_directions_of_downsampled_feature_map():
    Ks = random_Ks((2,), torch.Generator().manual_seed(0))
    full = go.ray_directions(Ks, 48, 64, pixel_center=0.0)
    small = go.ray_directions(Ks, 12, 16, image_size=(48, 64))
    # The centre of feature pixel (i, j) is the image point (4 j + 2, 4 i + 2).
    torch.testing.assert_close(small, full[:, 2::4, 2::4])
    anisotropic = go.ray_directions(Ks, 24, 16, image_size=(48, 64))
    torch.testing.assert_close(anisotropic, full[:, 1::2, 2::4])


def test_ray_directions_bad_inputs():
    with pytest.raises(ValueError, match=r"Ks must have shape \[\.\.\., 3, 3\]"):
        go.ray_directions(torch.eye(4), 4, 4)
    with pytest.raises(ValueError, match="height must be an int >= 1"):
        go.ray_directions(torch.eye(3), 0, 4)
    with pytest.raises(ValueError, match="non-zero fx and fy"):
        go.ray_directions(torch.zeros(3, 3), 2, 2)
    with pytest.raises(TypeError, match="Ks must be a floating-point"):
        go.ray_directions(torch.eye(3, dtype=torch.int64), 2, 2)


def project(Ks, points):
    pix = torch.einsum("...ij,...j->...i", Ks, points)
    return pix[..., :2] / pix[..., 2:]


@pytest.mark.parametrize("depth_type", ["distance", "z"])
def test_volumetric_samples_project_back_to_their_pixel(depth_type):
    g = torch.Generator().manual_seed(1)
    Ks = random_Ks((2,), g, skew=False)
    H, W, K = 5, 7, 6
    dirs = go.ray_directions(Ks, H, W, normalize=False)  # normalised inside
    depth = 1 + 4 * torch.rand(2, H, W, generator=g, dtype=F64)
    extent = 0.5 + torch.rand(2, H, W, generator=g, dtype=F64)
    pts = go.ray_volumetric_sample(depth, dirs, extent, K, depth_type=depth_type)
    assert pts.shape == (2, H, W, K, 3)
    cols = torch.arange(W, dtype=F64) + 0.5
    rows = torch.arange(H, dtype=F64) + 0.5
    centres = torch.stack(torch.meshgrid(rows, cols, indexing="ij")[::-1], dim=-1)
    pix = project(Ks[:, None, None, None], pts)
    torch.testing.assert_close(pix, centres[None, :, :, None].expand_as(pix))
    surface = pts[..., 0, :]
    measured = surface.norm(dim=-1) if depth_type == "distance" else surface[..., 2]
    torch.testing.assert_close(measured, depth)
    # Consecutive samples are extent / (K - 1) apart along the ray, moving away from the camera.
    steps = (pts[..., 1:, :] - pts[..., :-1, :]).norm(dim=-1)
    torch.testing.assert_close(steps, (extent / (K - 1))[..., None].expand_as(steps))
    assert bool((pts[..., 1:, :].norm(dim=-1) > pts[..., :-1, :].norm(dim=-1)).all())


def test_volumetric_samples_world_frame_and_batch_broadcast():
    g = torch.Generator().manual_seed(2)
    Ks = random_Ks((), g)
    dirs = go.ray_directions(Ks, 3, 4)  # shared by the batch
    dist = 1 + torch.rand(2, 3, 3, 4, generator=g, dtype=F64)
    cam2world = random_rigid((2, 3), g)
    pts_cam = go.ray_volumetric_sample(dist, dirs, 0.7, 4)
    pts_world = go.ray_volumetric_sample(dist, dirs, 0.7, 4, cam2world=cam2world)
    homog = torch.cat([pts_cam, torch.ones_like(pts_cam[..., :1])], dim=-1)
    expected = torch.einsum("bvij,bvhwkj->bvhwki", cam2world, homog)[..., :3]
    torch.testing.assert_close(pts_world, expected)
    one = go.ray_volumetric_sample(dist, dirs, 0.7, 1)
    torch.testing.assert_close(one[..., 0, :], pts_cam[..., 0, :])


def test_volumetric_sample_gradcheck():
    g = torch.Generator().manual_seed(3)
    dirs = (go.ray_directions(random_Ks((), g), 2, 3) + 0.0).requires_grad_()
    dist = (1 + torch.rand(2, 3, generator=g, dtype=F64)).requires_grad_()
    extent = torch.rand(2, 3, generator=g, dtype=F64).requires_grad_()
    cam2world = random_rigid((), g).requires_grad_()
    for depth_type in ("distance", "z"):
        fn = lambda d, r, e, T, kind=depth_type: go.ray_volumetric_sample(  # noqa: E731
            d, r, e, 3, depth_type=kind, cam2world=T
        )
        assert torch.autograd.gradcheck(fn, (dist, dirs, extent, cam2world))


def test_volumetric_sample_bad_inputs():
    dirs = go.ray_directions(torch.eye(3), 2, 2)
    with pytest.raises(ValueError, match="num_samples must be an int >= 1"):
        go.ray_volumetric_sample(torch.ones(2, 2), dirs, 1.0, 0)
    with pytest.raises(ValueError, match="must broadcast with distance"):
        go.ray_volumetric_sample(torch.ones(3, 2), dirs, 1.0, 2)
    with pytest.raises(ValueError, match="extent"):
        go.ray_volumetric_sample(torch.ones(2, 2), dirs, torch.ones(3, 2), 2)
    with pytest.raises(ValueError, match="positive z"):
        go.ray_volumetric_sample(torch.ones(2, 2), -dirs, 1.0, 2, depth_type="z")
    with pytest.raises(ValueError, match="depth_type"):
        go.ray_volumetric_sample(torch.ones(2, 2), dirs, 1.0, 2, depth_type="range")
    with pytest.raises(ValueError, match="cam2world batch shape"):
        go.ray_volumetric_sample(
            torch.ones(2, 2, 2), dirs, 1.0, 2, cam2world=torch.eye(4).repeat(3, 1, 1)
        )


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), max_delta=st.sampled_from([None, 0.3, 2.0]))
def test_refine_keeps_points_on_their_ray(seed, max_delta):
    g = torch.Generator().manual_seed(seed)
    points = 3 * torch.randn(4, 5, 3, generator=g, dtype=F64)
    centers = torch.randn(4, 1, 3, generator=g, dtype=F64)
    delta = torch.randn(4, 5, generator=g, dtype=F64)
    out = go.ray_constrained_refine(points, delta, centers, max_delta=max_delta)
    before, after = points - centers, out - centers
    # Parallel to the original ray ...
    torch.testing.assert_close(
        torch.linalg.cross(before, after), torch.zeros_like(before), atol=1e-9, rtol=0
    )
    # ... moved by exactly the (bounded) residual along it.
    applied = delta if max_delta is None else max_delta * torch.tanh(delta / max_delta)
    moved = ((after - before) * before).sum(-1) / before.norm(dim=-1)
    torch.testing.assert_close(moved, applied)
    if max_delta is not None:
        assert bool(((out - points).norm(dim=-1) < max_delta).all())


def test_refine_hand_values_and_bounds():
    p = torch.tensor([[0.0, 3.0, 4.0], [1.0, 1.0, 1.0]])
    o = torch.tensor([0.0, 0.0, 0.0])
    out = go.ray_constrained_refine(p, torch.tensor([-2.5, 0.0]), o)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.5, 2.0], [1.0, 1.0, 1.0]]))
    huge = go.ray_constrained_refine(p[:1], torch.tensor([1e6]), o, max_delta=0.5)
    torch.testing.assert_close(huge, torch.tensor([[0.0, 3.3, 4.4]]))
    small = go.ray_constrained_refine(p[:1], torch.tensor([1e-3]), o, max_delta=0.5)
    torch.testing.assert_close(
        small, p[:1] + 1e-3 * torch.tensor([0.0, 0.6, 0.8]), atol=1e-8, rtol=0
    )


def test_refine_point_at_camera_centre_is_finite_and_fixed():
    p = torch.zeros(1, 3, dtype=F64, requires_grad=True)
    delta = torch.ones(1, dtype=F64, requires_grad=True)
    out = go.ray_constrained_refine(p, delta, torch.zeros(3, dtype=F64))
    assert torch.equal(out.detach(), torch.zeros(1, 3, dtype=F64))
    out.sum().backward()
    assert torch.isfinite(p.grad).all() and torch.isfinite(delta.grad).all()


def test_refine_gradcheck():
    g = torch.Generator().manual_seed(4)
    p = torch.randn(3, 3, generator=g, dtype=F64).requires_grad_()
    o = torch.randn(3, generator=g, dtype=F64).requires_grad_()
    d = torch.randn(3, generator=g, dtype=F64).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, c: go.ray_constrained_refine(a, b, c), (p, d, o))
    assert torch.autograd.gradcheck(
        lambda a, b, c: go.ray_constrained_refine(a, b, c, max_delta=0.4), (p, d, o)
    )


def test_refine_bad_inputs():
    p = torch.rand(4, 3)
    with pytest.raises(ValueError, match="delta .* must broadcast to points.shape"):
        go.ray_constrained_refine(p, torch.rand(4, 1), torch.zeros(3))
    with pytest.raises(ValueError, match="cam_centers"):
        go.ray_constrained_refine(p, torch.rand(4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="max_delta must be > 0"):
        go.ray_constrained_refine(p, torch.rand(4), torch.zeros(3), max_delta=0.0)
    with pytest.raises(ValueError, match=r"points must have shape \[\.\.\., 3\]"):
        go.ray_constrained_refine(torch.rand(4, 2), torch.rand(4), torch.zeros(3))


def _cams(Ks, viewmats, H, W):
    return go.Cameras(viewmats, Ks, height=H, width=W)


def test_camera_form_of_ray_directions_is_inverse_intrinsics():
    """ray_directions(cams) casts K^-1 [u, v, 1] through every pixel of every view; size=(h, w)
    uses the intrinsics rescaled to the h x w grid; the deprecated Ks form agrees and warns."""
    g = torch.Generator().manual_seed(4)
    B, V, H, W = 2, 3, 6, 8
    Ks = random_Ks((B, V), g, skew=False)
    cams = _cams(Ks, random_rigid((B, V), g), H, W)
    dirs = go.ray_directions(cams, normalize=False)
    assert dirs.shape == (B, V, H, W, 3)
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    pix = torch.stack([u + 0.5, v + 0.5, torch.ones_like(u)], -1)
    torch.testing.assert_close(torch.einsum("bvij,bvhwj->bvhwi", Ks, dirs), pix.expand_as(dirs))
    small = go.ray_directions(cams, size=(3, 2))  # a 1/2 x 1/4 feature map
    scale = torch.tensor([2 / W, 3 / H, 1.0], dtype=F64)[:, None]
    want = go.ray_directions(_cams(Ks * scale, cams.viewmats, 3, 2))
    torch.testing.assert_close(small, want)
    with pytest.warns(DeprecationWarning, match="ray_directions"):
        legacy = go.ray_directions(Ks, 3, 2, image_size=(H, W))
    torch.testing.assert_close(legacy, small)
    with pytest.raises(TypeError, match="cameras"):
        go.ray_directions(cams, 3, 2)


def test_camera_form_of_volumetric_sampling_is_the_pose():
    """cameras= returns the world points cam2world @ x; the deprecated cam2world= agrees and
    warns; gradients reach the cameras' view matrices."""
    g = torch.Generator().manual_seed(5)
    B, V, H, W = 2, 1, 3, 4
    Ks = random_Ks((B, V), g, skew=False)
    viewmats = random_rigid((B, V), g).requires_grad_()
    cams = _cams(Ks, viewmats, H, W)
    dirs = go.ray_directions(cams)
    dist = 1 + torch.rand(B, V, H, W, generator=g, dtype=F64)
    local = go.ray_volumetric_sample(dist, dirs, 0.5, 3)
    world = go.ray_volumetric_sample(dist, dirs, 0.5, 3, cameras=cams)
    c2w = torch.linalg.inv(viewmats.detach())
    want = (
        torch.einsum("bvij,bvhwkj->bvhwki", c2w[..., :3, :3], local)
        + c2w[:, :, None, None, None, :3, 3]
    )
    torch.testing.assert_close(world, want)
    with pytest.warns(DeprecationWarning, match="cam2world"):
        legacy = go.ray_volumetric_sample(dist, dirs, 0.5, 3, cam2world=c2w)
    torch.testing.assert_close(legacy, world)
    world.sum().backward()
    assert viewmats.grad is not None and viewmats.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="not both"):
        go.ray_volumetric_sample(dist, dirs, 0.5, 3, cameras=cams, cam2world=c2w)
