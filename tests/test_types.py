import math

import pytest
import torch

import gaussocc_ops as go


def make_gaussians(B=2, N=4, C=3):
    return dict(
        means=torch.randn(B, N, 3),
        scales=torch.rand(B, N, 3) + 0.1,
        quats=torch.randn(B, N, 4),
        opacities=torch.rand(B, N),
        features=torch.rand(B, N, C),
    )


def test_gaussians_properties_and_indexing():
    g = go.Gaussians(**make_gaussians(B=3, N=5, C=7))
    assert (g.batch_shape, g.num_gaussians, g.num_channels) == (torch.Size([3]), 5, 7)
    assert torch.equal(g[1].means, g.means[1])
    assert torch.equal(g[1:].features, g.features[1:])
    assert g.to(torch.float64).scales.dtype == torch.float64
    with pytest.raises(IndexError):
        g[:, 0]


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("scales", torch.rand(2, 3, 3), "scales must have shape"),
        ("quats", torch.rand(2, 4, 3), r"quats must have shape \[\.\.\., 4\]"),
        ("opacities", torch.rand(2, 5), "opacities must have shape"),
        ("features", torch.rand(2, 4, 0), "at least one channel"),
        ("means", torch.full((2, 4, 3), float("nan")), "means contains NaN"),
        ("scales", -torch.ones(2, 4, 3), "scales must be >= 0"),
        ("quats", torch.zeros(2, 4, 4), "non-zero quaternions"),
    ],
)
def test_gaussians_validation(field, value, match):
    kwargs = make_gaussians()
    kwargs[field] = value
    with pytest.raises(ValueError, match=match):
        go.Gaussians(**kwargs)


def test_gaussians_type_errors():
    kwargs = make_gaussians()
    kwargs["features"] = torch.ones(2, 4, 3, dtype=torch.long)
    with pytest.raises(TypeError, match="features must be a floating-point tensor"):
        go.Gaussians(**kwargs)
    kwargs = make_gaussians()
    kwargs["means"] = kwargs["means"].numpy()
    with pytest.raises(TypeError, match="means must be a torch.Tensor"):
        go.Gaussians(**kwargs)


def test_valid_mask_zeroes_effective_opacity():
    kwargs = make_gaussians()
    valid = torch.tensor([[True, False, True, True], [False, False, True, True]])
    g = go.Gaussians(**kwargs, valid=valid)
    assert torch.equal(g.effective_opacities(), kwargs["opacities"] * valid)
    with pytest.raises(ValueError, match="valid must be a bool tensor"):
        go.Gaussians(**kwargs, valid=valid.float())


def test_cameras_validation():
    K = torch.tensor([[[10.0, 0, 5], [0, 10, 5], [0, 0, 1]]])
    go.Cameras(torch.eye(4)[None], K, width=10, height=10)
    with pytest.raises(ValueError, match="fx and fy must be non-zero"):
        go.Cameras(torch.eye(4)[None], K * torch.tensor([0.0, 1, 1])[:, None], width=10, height=10)
    with pytest.raises(ValueError, match="width must be a positive int"):
        go.Cameras(torch.eye(4)[None], K, width=0, height=10)
    with pytest.raises(ValueError, match="model must be"):
        go.Cameras(torch.eye(4)[None], K, width=10, height=10, model="fisheye")
    with pytest.raises(ValueError, match="share their leading"):
        go.Cameras(torch.eye(4).expand(2, 4, 4), K, width=10, height=10)
    with pytest.raises(ValueError, match=r"viewmats must have shape \[\.\.\., 4, 4\]"):
        go.Cameras(torch.eye(3)[None], K, width=10, height=10)


def test_camera_centers_invert_viewmats():
    eye = torch.tensor([[1.0, 2.0, 3.0], [-4.0, 0.5, 2.0]])
    vm = go.cameras.look_at(eye, torch.zeros(2, 3))
    K = go.cameras.pinhole_intrinsics(60.0, height=24, width=32).expand(2, 3, 3)
    cams = go.Cameras(vm, K, width=32, height=24)
    torch.testing.assert_close(cams.centers(), eye, atol=1e-6, rtol=0)


def test_cameras_from_cam2world_inverts_the_pose():
    g = torch.Generator().manual_seed(0)
    q, r = torch.linalg.qr(torch.randn(2, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[torch.linalg.det(q) < 0, :, 0] *= -1  # proper rotations
    pose = torch.eye(4, dtype=torch.float64).repeat(3, 2, 1, 1)  # [B=3, V=2, 4, 4]
    pose[:, :, :3, :3] = q
    pose[:, :, :3, 3] = torch.randn(3, 2, 3, generator=g, dtype=torch.float64)
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]], dtype=torch.float64)
    cams = go.Cameras.from_cam2world(pose, K.expand(3, 2, 3, 3), height=24, width=32)
    assert (cams.height, cams.width, cams.model) == (24, 32, "pinhole")
    eye = torch.eye(4, dtype=torch.float64).expand(3, 2, 4, 4)
    torch.testing.assert_close(cams.viewmats @ pose, eye)  # world->camera after camera->world
    torch.testing.assert_close(cams.centers(), pose[..., :3, 3])
    torch.testing.assert_close(cams.cam2world(), pose)
    # a point in front of the camera: cam2world maps its camera coordinates to the world
    x_cam = torch.tensor([0.1, -0.2, 2.0, 1.0], dtype=torch.float64)
    x_world = pose[1, 0] @ x_cam
    torch.testing.assert_close(cams.viewmats[1, 0] @ x_world, x_cam)


def test_cameras_from_cam2world_validation():
    K = torch.tensor([[[10.0, 0, 5], [0, 10, 5], [0, 0, 1]]])
    scaled = torch.diag(torch.tensor([2.0, 1, 1, 1]))[None]
    with pytest.raises(ValueError, match="cam2world must be rigid"):
        go.Cameras.from_cam2world(scaled, K, height=10, width=10)
    mirrored = torch.diag(torch.tensor([-1.0, 1, 1, 1]))[None]  # det -1
    with pytest.raises(ValueError, match="cam2world must be rigid"):
        go.Cameras.from_cam2world(mirrored, K, height=10, width=10)
    bottom = torch.eye(4)[None].clone()
    bottom[0, 3, 0] = 1.0
    with pytest.raises(ValueError, match="cam2world must be rigid"):
        go.Cameras.from_cam2world(bottom, K, height=10, width=10)
    with pytest.raises(ValueError, match=r"cam2world must have shape \[\.\.\., 4, 4\]"):
        go.Cameras.from_cam2world(torch.eye(3)[None], K, height=10, width=10)
    with pytest.raises(ValueError, match="height must be a positive int"):
        go.Cameras.from_cam2world(torch.eye(4)[None], K, height=0, width=10)
    with pytest.raises(TypeError):
        go.Cameras.from_cam2world(torch.eye(4)[None], K, 10, 10)  # sizes are keywords


def test_look_at_puts_target_on_optical_axis_with_up_at_top():
    eye = torch.tensor([2.0, -3.0, 1.5])
    target = torch.tensor([0.5, 1.0, 0.2])
    vm = go.cameras.look_at(eye, target)
    R = vm[:3, :3]
    torch.testing.assert_close(R @ R.T, torch.eye(3), atol=1e-6, rtol=0)
    assert torch.linalg.det(R) == pytest.approx(1.0, abs=1e-6)
    p = vm @ torch.cat([target, torch.ones(1)])
    assert p[0].abs() < 1e-5 and p[1].abs() < 1e-5
    assert p[2] == pytest.approx(float((target - eye).norm()), rel=1e-5)
    above = vm @ torch.tensor(
        [0.5, 1.0, 5.0, 1.0]
    )  # a point above the target is higher in the image
    assert above[1] < 0


def test_voxel_grid_centers_and_index():
    grid = go.VoxelGrid(origin=(-1.0, 2.0, 0.5), voxel_size=(0.5, 0.25, 1.0), shape=(4, 3, 2))
    c = grid.centers()
    assert c.shape == (4, 3, 2, 3)
    i, j, k = 3, 1, 1
    expected = torch.tensor([-1.0 + 3.5 * 0.5, 2.0 + 1.5 * 0.25, 0.5 + 1.5 * 1.0])
    torch.testing.assert_close(c[i, j, k], expected)
    idx = grid.world_to_index(c)
    torch.testing.assert_close(idx[i, j, k], torch.tensor([3.5, 1.5, 1.5]))
    assert grid.upper == pytest.approx((1.0, 2.75, 2.5))
    assert grid.num_voxels == 24


def test_voxel_grid_from_bounds_and_validation():
    grid = go.VoxelGrid.from_bounds((-50, -50, -5), (50, 50, 3), (200, 200, 16))
    assert grid.voxel_size == (0.5, 0.5, 0.5)
    assert go.VoxelGrid((0, 0, 0), 0.2, (2, 2, 2)).voxel_size == (0.2, 0.2, 0.2)
    with pytest.raises(ValueError, match="voxel_size must be positive"):
        go.VoxelGrid((0, 0, 0), (0.1, 0.0, 0.1), (2, 2, 2))
    with pytest.raises(ValueError, match="shape must be 3 positive ints"):
        go.VoxelGrid((0, 0, 0), 0.1, (2, 0, 2))


def test_bev_camera_maps_grid_corners_to_image_corners():
    grid = go.VoxelGrid(origin=(-4.0, -2.0, -1.0), voxel_size=(0.5, 0.25, 0.5), shape=(16, 16, 4))
    cam = go.cameras.bev(grid, (64, 128))
    assert cam.model == "ortho" and (cam.height, cam.width) == (64, 128)
    K, vm = cam.Ks[0], cam.viewmats[0]

    def pixel(x, y, z):
        p = vm @ torch.tensor([x, y, z, 1.0])
        return (K @ torch.cat([p[:2], torch.ones(1)]))[:2], p[2]

    uv, depth = pixel(-4.0, 2.0, 1.0)  # min x, max y: top-left corner
    torch.testing.assert_close(uv, torch.tensor([0.0, 0.0]))
    uv, depth_bottom = pixel(4.0, -2.0, -1.0)  # max x, min y: bottom-right
    torch.testing.assert_close(uv, torch.tensor([128.0, 64.0]))
    assert depth_bottom - depth == pytest.approx(2.0)  # depth grows downwards
    assert not math.isnan(float(depth))


def test_value_checks_switch_skips_only_value_checks():
    """With the value checks off, values that would need a read-back (NaN means, zero focal
    length) pass construction; structure checks (shapes) still raise; the switch is restored."""
    nan_means = torch.tensor([[float("nan"), 0.0, 1.0]])
    bad_K = torch.tensor([[[0.0, 0, 8], [0, 10.0, 6], [0, 0, 1]]])
    assert go._checks.value_checks_enabled()
    with pytest.raises(ValueError, match="NaN"):
        go.Gaussians.isotropic(nan_means, 0.1, torch.ones(1), torch.ones(1, 2))
    with pytest.raises(ValueError, match="fx and fy"):
        go.Cameras(torch.eye(4)[None], bad_K, height=12, width=16)
    with go.value_checks(False):
        g = go.Gaussians.isotropic(nan_means, 0.1, torch.ones(1), torch.ones(1, 2))
        assert torch.isnan(g.means).any()
        go.Cameras(torch.eye(4)[None], bad_K, height=12, width=16)
        with pytest.raises(ValueError):
            go.Cameras(torch.eye(4)[None], bad_K[..., :2], height=12, width=16)
    assert go._checks.value_checks_enabled()
    go.set_value_checks(False)
    try:
        assert not go._checks.value_checks_enabled()
    finally:
        go.set_value_checks(True)


def test_pinhole_intrinsics_forms():
    """f = W / (2 tan(fov / 2)), principal point at the centre; the deprecated width-first form
    gives the same matrix with a warning."""
    K = go.cameras.pinhole_intrinsics(60.0, height=24, width=32)
    f = 16 / math.tan(math.radians(30))
    torch.testing.assert_close(K, torch.tensor([[f, 0, 16], [0, f, 12], [0, 0, 1.0]]))
    for legacy in [(32, 24, 60.0), (32, 24)]:
        kwargs = {} if len(legacy) == 3 else {"fov_x_deg": 60.0}
        with pytest.warns(DeprecationWarning, match="pinhole_intrinsics"):
            torch.testing.assert_close(go.cameras.pinhole_intrinsics(*legacy, **kwargs), K)
    with pytest.raises(TypeError, match="height= and width="):
        go.cameras.pinhole_intrinsics(60.0)
    with pytest.raises(ValueError, match="fov_x_deg"):
        go.cameras.pinhole_intrinsics(180.0, height=24, width=32)
