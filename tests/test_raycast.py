import math

import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops import _ext
from gaussocc_ops.reference import raycast as ref


def random_scene(seed, shape=(6, 5, 4), rays=64, batch=2, fill=0.15, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    grid = go.VoxelGrid((-1.0, 0.5, -2.0), (0.7, 0.5, 1.1), shape)
    labels = torch.randint(1, 5, (batch, *shape), generator=g)
    labels[torch.rand(batch, *shape, generator=g) > fill] = 0
    lo, hi = torch.tensor(grid.origin), torch.tensor(grid.upper)
    origins = (lo - 1 + (hi - lo + 2) * torch.rand(batch, rays, 3, generator=g)).to(dtype)
    dirs = torch.randn(batch, rays, 3, generator=g, dtype=dtype)
    return grid, labels, origins, dirs


def test_cpu_kernel_is_compiled():
    assert _ext.has_op("raycast"), go.build_info()["error"]


def test_hand_built_oblique_ray():
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 4, 1))
    labels = torch.zeros(1, 4, 4, 1, dtype=torch.long)
    labels[0, 3, 1, 0] = 7
    origin = torch.tensor([[[0.1, 0.2, 0.5]]])
    direction = torch.tensor([[[1.0, 0.5, 0.0]]])
    # y = 0.2 + 0.5 (x - 0.1) is 1.65 at x = 3: the ray enters voxel (3, 1) through the x = 3 face
    expected = 2.9 * math.sqrt(1.25)
    for backend in ("reference", "cpu"):
        out = go.raycast(labels, grid, origin, direction, empty_class=0, backend=backend)
        assert out.label.item() == 7
        assert out.distance.item() == pytest.approx(expected, rel=1e-6)


def test_hand_built_axis_rays_outside_origin_ignore_and_range():
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 0.5, (8, 1, 1))
    labels = torch.zeros(1, 8, 1, 1, dtype=torch.long)
    labels[0, 2] = 255
    labels[0, 4] = 9
    origins = torch.tensor(
        [[[-1.75, 0.25, 0.25], [0.25, 0.25, 0.25], [0.25, 0.25, 0.25], [2.25, 0.25, 0.25]]]
    )
    dirs = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [0.0, 0, 1.0]]])
    for backend in ("reference", "cpu"):
        out = go.raycast(
            labels, grid, origins, dirs, empty_class=0, ignore_index=255, backend=backend
        )
        # from outside: travels 1.75 to the grid, crosses 4 free/ignored voxels (2 m), hits label 9
        assert out.label.tolist() == [[9, 9, -1, 9]]
        assert out.distance[0, :2].tolist() == pytest.approx([3.75, 1.75])
        assert math.isinf(out.distance[0, 2].item())
        # origin inside the hit voxel: distance 0
        assert out.distance[0, 3].item() == 0.0
        near = go.raycast(
            labels, grid, origins, dirs, empty_class=0, max_distance=2.0, backend=backend
        )
        assert near.label.tolist() == [[-1, 9, -1, 9]]
        # ignored voxels stop the ray when ignore_index is None
        opaque = go.raycast(
            labels, grid, origins, dirs, empty_class=0, ignore_index=None, backend=backend
        )
        assert opaque.label[0, 1].item() == 255 and opaque.distance[0, 1].item() == pytest.approx(
            0.75
        )


def test_origin_on_a_voxel_corner_starts_in_the_voxel_it_moves_into():
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 4, 4))
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 2, 2, 2] = 5  # the octant in front of +d
    labels[0, 0] = 3  # the x = 0 slab
    origin = torch.tensor([[[2.0, 2.0, 2.0], [2.0, 2.0, 2.0]]])
    dirs = torch.tensor([[[-1.0, -0.7, -0.3], [1.0, 0.7, 0.3]]])
    for dtype in (torch.float32, torch.float64):
        for backend in ("reference", "cpu"):
            out = go.raycast(
                labels, grid, origin.to(dtype), dirs.to(dtype), empty_class=0, backend=backend
            )
            assert out.label.tolist() == [[3, 5]]
            # -d reaches the x = 1 face after one unit of x: distance |(1, 0.7, 0.3)|
            assert out.distance[0].tolist() == pytest.approx([math.sqrt(1.58), 0.0], rel=1e-6)


def test_ray_through_voxel_edges_skips_voxels_it_only_touches():
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 4, 1))
    labels = torch.zeros(1, 4, 4, 1, dtype=torch.long)
    labels[0, 2, 1, 0] = labels[0, 1, 2, 0] = 4  # share only an edge with the diagonal path
    labels[0, 3, 3, 0] = 6
    origin = torch.tensor([[[1.0, 1.0, 0.5]]])
    direction = torch.tensor([[[1.0, 1.0, 0.0]]])
    for backend in ("reference", "cpu"):
        out = go.raycast(labels, grid, origin, direction, empty_class=0, backend=backend)
        assert out.label.item() == 6
        assert out.distance.item() == pytest.approx(2 * math.sqrt(2), rel=1e-6)


def brute_force_first_hit(labels, grid, o, d, step=1e-3, t_max=20.0):
    """Dense sampling along one ray: the first sample inside a non-empty voxel."""
    d = d / d.norm()
    t = torch.arange(0, t_max, step, dtype=torch.float64)
    pts = o + t[:, None] * d
    idx = torch.floor(grid.world_to_index(pts)).long()
    inside = ((idx >= 0) & (idx < torch.tensor(grid.shape))).all(-1)
    hit = torch.zeros_like(inside)
    hit[inside] = labels[idx[inside, 0], idx[inside, 1], idx[inside, 2]] != 0
    if not bool(hit.any()):
        return None, -1
    k = int(hit.nonzero()[0])
    return t[k].item(), int(labels[tuple(idx[k])])


def test_reference_agrees_with_dense_sampling():
    grid, labels, origins, dirs = random_scene(3, rays=24, batch=1)
    dist, lab = ref.raycast(
        labels,
        origins,
        dirs / dirs.norm(dim=-1, keepdim=True),
        grid.origin,
        grid.voxel_size,
        0,
        math.inf,
    )
    for r in range(origins.shape[1]):
        t, label = brute_force_first_hit(labels[0], grid, origins[0, r], dirs[0, r])
        assert lab[0, r].item() == label
        if label >= 0:
            assert dist[0, r].item() == pytest.approx(t, abs=2e-3)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    fill=st.floats(0.0, 0.6),
    sx=st.integers(1, 7),
    sy=st.integers(1, 7),
    sz=st.integers(1, 5),
    max_distance=st.sampled_from([math.inf, 1.0, 3.0]),
)
def test_cpu_kernel_matches_reference(seed, fill, sx, sy, sz, max_distance):
    grid, labels, origins, dirs = random_scene(seed, shape=(sx, sy, sz), rays=48, fill=fill)
    kwargs = dict(empty_class=0, max_distance=max_distance)
    a = go.raycast(labels, grid, origins, dirs, backend="cpu", **kwargs)
    b = go.raycast(labels, grid, origins, dirs, backend="reference", **kwargs)
    assert torch.equal(a.label, b.label)
    hit = a.label >= 0
    assert torch.isinf(a.distance[~hit]).all()
    torch.testing.assert_close(a.distance[hit], b.distance[hit], rtol=1e-9, atol=1e-9)


def test_float32_kernel_close_to_float64():
    grid, labels, origins, dirs = random_scene(11, shape=(20, 18, 6), rays=2000)
    a = go.raycast(labels, grid, origins.float(), dirs.float(), empty_class=0)
    b = go.raycast(labels, grid, origins, dirs, empty_class=0)
    assert a.distance.dtype == torch.float32 and b.distance.dtype == torch.float64
    same = a.label == b.label
    assert same.float().mean() > 0.999  # float32 round-off may flip near-grazing rays only
    hit = same & (a.label >= 0)
    torch.testing.assert_close(a.distance[hit].double(), b.distance[hit], rtol=1e-4, atol=1e-4)


def test_batch_broadcast_and_shared_rays():
    grid, labels, origins, dirs = random_scene(5, batch=3)
    shared = go.raycast(labels, grid, origins[0], dirs[0], empty_class=0)
    for b in range(3):
        single = go.raycast(labels[b], grid, origins[0], dirs[0], empty_class=0)
        assert torch.equal(shared.label[b], single.label)
        assert torch.equal(shared.distance[b], single.distance)


def test_empty_inputs_and_empty_grid():
    grid, labels, origins, dirs = random_scene(1)
    out = go.raycast(labels, grid, origins[:, :0], dirs[:, :0], empty_class=0)
    assert out.distance.shape == (2, 0) and out.label.shape == (2, 0)
    free = go.raycast(torch.zeros_like(labels), grid, origins, dirs, empty_class=0)
    assert (free.label == -1).all() and torch.isinf(free.distance).all()


def test_validation_errors():
    grid, labels, origins, dirs = random_scene(1)
    with pytest.raises(ValueError, match="labels"):
        go.raycast(labels[..., :2], grid, origins, dirs, empty_class=0)
    with pytest.raises(TypeError, match="labels"):
        go.raycast(labels.float(), grid, origins, dirs, empty_class=0)
    with pytest.raises(ValueError, match="directions"):
        go.raycast(labels, grid, origins, dirs[:, :3], empty_class=0)
    with pytest.raises(ValueError, match="non-zero"):
        go.raycast(labels, grid, origins, torch.zeros_like(dirs), empty_class=0)
    with pytest.raises(ValueError, match="backend"):
        go.raycast(labels, grid, origins, dirs, empty_class=0, backend="gpu")


def test_opcheck():
    grid, labels, origins, dirs = random_scene(2, rays=16)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    for dtype in (torch.float32, torch.float64):
        torch.library.opcheck(
            torch.ops.gaussocc.raycast.default,
            (
                labels,
                origins.to(dtype),
                dirs.to(dtype),
                list(grid.origin),
                list(grid.voxel_size),
                0,
                10.0,
            ),
        )


@requires_cuda
def test_cuda_kernel_matches_cpu():
    grid, labels, origins, dirs = random_scene(7, shape=(30, 25, 8), rays=4000, batch=3)
    for dtype in (torch.float32, torch.float64):
        a = go.raycast(
            labels, grid, origins.to(dtype), dirs.to(dtype), empty_class=0, backend="cpu"
        )
        b = go.raycast(
            labels.cuda(),
            grid,
            origins.to(dtype).cuda(),
            dirs.to(dtype).cuda(),
            empty_class=0,
            backend="cuda",
        )
        same = a.label == b.label.cpu()
        assert same.float().mean() > 0.999
        hit = same & (a.label >= 0)
        torch.testing.assert_close(b.distance.cpu()[hit], a.distance[hit], rtol=1e-5, atol=1e-5)
    torch.library.opcheck(
        torch.ops.gaussocc.raycast.default,
        (
            labels.cuda(),
            origins.float().cuda()[:, :64],
            torch.nn.functional.normalize(dirs.float().cuda()[:, :64], dim=-1),
            list(grid.origin),
            list(grid.voxel_size),
            0,
            10.0,
        ),
    )
