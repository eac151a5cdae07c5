import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops import cameras as camlib

GRID = go.VoxelGrid((-10.0, -8.0, -2.0), 0.5, (40, 32, 8))  # scene range = 10 m
SCENE_RANGE = 10.0


def sensor_rig(batch=None):
    """Three level cameras at 1.5 m looking along +x, +y and -x."""
    eyes = torch.tensor([[0.5, 0.0, 1.5], [0.0, 0.5, 1.5], [-0.5, 0.0, 1.5]])
    targets = eyes + torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [-5.0, 0, 0]])
    viewmats = camlib.look_at(eyes, targets)
    Ks = camlib.pinhole_intrinsics(90.0, height=24, width=32).expand(3, 3, 3)
    if batch is not None:
        viewmats, Ks = viewmats.expand(batch, 3, 4, 4), Ks.expand(batch, 3, 3, 3)
    return go.Cameras(viewmats, Ks, width=32, height=24)


def axes(cams):
    """Camera right, down, forward and centre in world coordinates."""
    R = cams.viewmats[..., :3, :3]
    return R[..., 0, :], R[..., 1, :], R[..., 2, :], cams.centers()


def assert_rotations(cams):
    R = cams.viewmats[..., :3, :3]
    eye = torch.eye(3).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2]), atol=1e-5, rtol=0)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def test_sensor_picks_distinct_original_views_reproducibly():
    base = sensor_rig()
    out = camlib.sensor(base, batch_size=6, num_views=2, generator=gen(0))
    assert out.viewmats.shape == (6, 2, 4, 4)
    for b in range(6):
        matches = [
            int((base.viewmats - out.viewmats[b, v]).abs().amax((-1, -2)).argmin())
            for v in range(2)
        ]
        for v, m in enumerate(matches):
            torch.testing.assert_close(out.viewmats[b, v], base.viewmats[m])
        assert matches[0] != matches[1]
    again = camlib.sensor(base, batch_size=6, num_views=2, generator=gen(0))
    assert torch.equal(out.viewmats, again.viewmats)
    every = camlib.sensor(base)
    assert torch.equal(every.viewmats[0], base.viewmats)


@settings(max_examples=20, deadline=None)
@given(lift=st.floats(0.0, 20.0), tilt=st.floats(-60.0, 60.0))
def test_elevated_lifts_and_tilts_about_the_camera_x_axis(lift, tilt):
    base = sensor_rig()
    out = camlib.elevated(base, lift=lift, tilt_deg=tilt)
    assert_rotations(out)
    r0, d0, f0, c0 = axes(base)
    r1, _, f1, c1 = axes(out)
    torch.testing.assert_close(c1[0], c0 + torch.tensor([0.0, 0.0, lift]), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(r1[0], r0, atol=1e-5, rtol=0)
    t = math.radians(tilt)
    torch.testing.assert_close(f1[0], math.cos(t) * f0 + math.sin(t) * d0, atol=1e-5, rtol=0)
    # level sensors: the forward axis now points sin(tilt) downwards
    torch.testing.assert_close(f1[0, :, 2], torch.full((3,), -math.sin(t)), atol=1e-5, rtol=0)


def test_elevated_around_shifts_within_half_the_scene_range():
    base = sensor_rig()
    out = camlib.elevated_around(
        base, GRID, lift=3.0, tilt_deg=15.0, batch_size=64, generator=gen(3)
    )
    ref = camlib.elevated(base, lift=3.0, tilt_deg=15.0, batch_size=64)
    assert_rotations(out)
    torch.testing.assert_close(out.viewmats[..., :3, :3], ref.viewmats[..., :3, :3])
    shift = out.centers() - ref.centers()
    torch.testing.assert_close(shift[..., 2], torch.zeros(64, 3), atol=1e-5, rtol=0)
    r = shift[..., :2].norm(dim=-1)
    assert float(r.max()) <= 0.5 * SCENE_RANGE + 1e-4
    assert float(r.max()) > 0.3 * SCENE_RANGE  # the disc is actually explored
    assert not torch.equal(
        out.viewmats, camlib.elevated_around(base, GRID, batch_size=64, generator=gen(4)).viewmats
    )


def test_random_poses_respect_their_bounds():
    base = sensor_rig(batch=1)
    out = camlib.random(
        base,
        GRID,
        max_distance=0.8,
        height=(1.0, 2.0),
        yaw_deg=30.0,
        pitch_deg=10.0,
        batch_size=50,
        generator=gen(5),
    )
    assert_rotations(out)
    shift = out.centers() - base.centers()
    assert float(shift[..., :2].norm(dim=-1).max()) <= 0.8 * SCENE_RANGE + 1e-4
    assert float(shift[..., 2].min()) >= 1.0 - 1e-5 and float(shift[..., 2].max()) <= 2.0 + 1e-5
    _, _, f0, _ = axes(base)
    _, _, f1, _ = axes(out)
    pitch = torch.asin(-f1[..., 2])  # the sensors are level
    assert float(pitch.abs().max()) <= math.radians(10.0) + 1e-5
    yaw0 = torch.atan2(f0[..., 1], f0[..., 0])
    yaw1 = torch.atan2(f1[..., 1], f1[..., 0])
    dyaw = torch.remainder(yaw1 - yaw0 + math.pi, 2 * math.pi) - math.pi
    assert float(dyaw.abs().max()) <= math.radians(30.0) + 1e-4
    assert float(dyaw.abs().max()) > math.radians(15.0)
    still = camlib.random(
        base,
        GRID,
        max_distance=0.0,
        height=(0.0, 0.0),
        yaw_deg=0.0,
        pitch_deg=0.0,
        batch_size=2,
        generator=gen(5),
    )
    torch.testing.assert_close(still.viewmats, base.viewmats.expand(2, 3, 4, 4), atol=1e-5, rtol=0)


@settings(max_examples=20, deadline=None)
@given(i=st.integers(0, 39), j=st.integers(0, 31), k=st.integers(0, 7), seed=st.integers(0, 999))
def test_dynamic_looks_at_the_worst_voxel(i, j, k, seed):
    base = sensor_rig()
    error = torch.rand(2, *GRID.shape, generator=gen(seed)) * 0.5
    error[1, i, j, k] = 2.0
    out = camlib.dynamic(base, GRID, error, lift=4.0, radius=(0.2, 0.6), generator=gen(seed))
    assert out.batch_shape == (2,) and out.num_views == 3
    worst = GRID.centers()[i, j, k]
    p = out.viewmats[1, :, :3, :3] @ worst + out.viewmats[1, :, :3, 3]
    assert (p[:, 2] > 0).all()
    uv = (out.Ks[1] @ (p / p[:, 2:]).unsqueeze(-1)).squeeze(-1)[:, :2]
    torch.testing.assert_close(uv, torch.tensor([16.0, 12.0]).expand(3, 2), atol=1e-3, rtol=0)
    ego = base.centers().mean(0)
    rel = out.centers()[1] - ego
    torch.testing.assert_close(rel[:, 2], torch.full((3,), 4.0), atol=1e-4, rtol=0)
    d = rel[:, :2].norm(dim=-1)
    assert float(d.min()) >= 0.2 * SCENE_RANGE - 1e-4 and float(d.max()) <= 0.6 * SCENE_RANGE + 1e-4


def test_dynamic_region_averaging_prefers_a_cluster_over_a_spike():
    error = torch.zeros(1, *GRID.shape)
    error[0, 5, 5, 3] = 1.0
    error[0, 29:32, 19:22, 2:5] = 0.6
    for region, target in ((1, (5, 5, 3)), (3, (30, 20, 3))):
        out = camlib.dynamic(sensor_rig(), GRID, error, region=region, generator=gen(0))
        p = out.viewmats[0, 0, :3, :3] @ GRID.centers()[target] + out.viewmats[0, 0, :3, 3]
        assert abs(float(p[0])) < 1e-3 and abs(float(p[1])) < 1e-3


def test_resized_scales_pixel_coordinates():
    cams = sensor_rig()
    small = camlib.resized(cams, 12, 8)
    point = torch.tensor([6.0, 1.0, 2.0])

    def project(c):
        p = c.viewmats[0, :3, :3] @ point + c.viewmats[0, :3, 3]
        return (c.Ks[0] @ (p / p[2]))[:2]

    torch.testing.assert_close(project(small), project(cams) * torch.tensor([8 / 32, 12 / 24]))
    assert (small.width, small.height) == (8, 12)


def test_strategy_errors():
    base = sensor_rig()
    with pytest.raises(ValueError, match="num_views"):
        camlib.sensor(base, num_views=4)
    with pytest.raises(ValueError, match="region"):
        camlib.dynamic(base, GRID, torch.zeros(1, *GRID.shape), region=2)
    with pytest.raises(ValueError, match="error"):
        camlib.dynamic(base, GRID, torch.zeros(1, 3, 3, 3))
    two_dims = go.Cameras(
        base.viewmats.expand(2, 2, 3, 4, 4), base.Ks.expand(2, 2, 3, 3, 3), height=24, width=32
    )
    with pytest.raises(ValueError, match="batch shape"):
        camlib.elevated(two_dims)
    with pytest.raises(ValueError, match="batch_size"):
        camlib.elevated(sensor_rig(batch=3), batch_size=2)
