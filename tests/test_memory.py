import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.geometry import covariance, quat_to_rotmat


def _rotation(seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def _pose(seed, dtype=torch.float32):
    T = torch.eye(4, dtype=dtype)
    T[:3, :3] = _rotation(seed, dtype)
    T[:3, 3] = torch.tensor([1.0, -2.0, 0.5], dtype=dtype) * (seed % 5)
    return T


K64 = torch.tensor([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]])


def _camera(cam2world=None, K=K64):
    """A single-view 64 x 64 camera at the pose ``cam2world [4, 4]`` (default the identity)."""
    cam2world = torch.eye(4) if cam2world is None else cam2world
    return go.Cameras.from_cam2world(cam2world[None], K[None].to(cam2world), height=64, width=64)


def _to_camera(means_world, cam2world):
    R, t = cam2world[:3, :3], cam2world[:3, 3]
    return (means_world - t) @ R


def _gaussians(means, *, scales=None, quats=None, opacities=None, features=None):
    n = means.shape[0]
    return go.Gaussians(
        means,
        torch.full((n, 3), 0.05) if scales is None else scales,
        torch.tensor([1.0, 0, 0, 0]).expand(n, 4).clone() if quats is None else quats,
        torch.full((n,), 0.5) if opacities is None else opacities,
        torch.full((n, 3), 1 / 3) if features is None else features,
    )


def _lattice(n_side=5, spacing=1.0):
    ax = torch.arange(n_side, dtype=torch.float32) * spacing
    return torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)


# ---- world transform and fusion ---------------------------------------------------------------


def test_insert_moves_gaussians_to_world():
    g = torch.Generator().manual_seed(0)
    T = _pose(3)
    n = 20
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.1 + 0.01
    cam = _gaussians(torch.randn(n, 3, generator=g), scales=scales, quats=quats)
    mem = go.GaussianMemory(radius=1e-3)
    assert mem.insert(cam, _camera(T)) == go.InsertResult(0, n, 0)
    R, t = T[:3, :3], T[:3, 3]
    torch.testing.assert_close(mem.means, cam.means @ R.T + t)
    rot = quat_to_rotmat(quats)
    cov_cam = rot @ torch.diag_embed(scales**2) @ rot.transpose(-1, -2)
    torch.testing.assert_close(
        covariance(mem.scales, mem.quats), R @ cov_cam @ R.T, atol=1e-6, rtol=1e-5
    )


def test_fusion_formula_against_hand_computation():
    gamma = 0.3
    mem = go.GaussianMemory(radius=0.5, gamma=gamma, max_neighbors=2)
    eye = _camera()
    first = _gaussians(
        torch.tensor([[0.0, 0.0, 0.0]]),
        scales=torch.tensor([[0.1, 0.2, 0.3]]),
        opacities=torch.tensor([0.4]),
        features=torch.tensor([[0.6, 0.3, 0.1]]),
    )
    mem.insert(first, eye)  # p_1 = 0.6 (top-1 probability)
    # rotated 90 degrees about z: scales (0.1, 0.2, 0.3) -> covariance diag(0.04, 0.01, 0.09)
    rz = torch.tensor([math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)])
    second = _gaussians(
        torch.tensor([[0.2, 0.0, 0.0], [0.0, -0.3, 0.1], [5.0, 5.0, 5.0]]),
        scales=torch.tensor([[0.1, 0.2, 0.3], [0.2, 0.2, 0.2], [0.1, 0.1, 0.1]]),
        quats=torch.stack([rz, torch.tensor([1.0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0])]),
        opacities=torch.tensor([0.9, 0.2, 0.5]),
        features=torch.tensor([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [1.0, 0.0, 0.0]]),
    )
    result = mem.insert(second, eye, confidence=torch.tensor([0.8, 0.5, 1.0]))
    assert result == go.InsertResult(fused=1, inserted=1, evicted=0)
    w_old, w = gamma * 0.6, [(1 - gamma) * 0.8, (1 - gamma) * 0.5]
    norm = w_old + sum(w)

    def hand(old, a, b):
        return (w_old * old + w[0] * a + w[1] * b) / norm

    torch.testing.assert_close(
        mem.means[0], hand(torch.zeros(3), torch.tensor([0.2, 0, 0]), torch.tensor([0, -0.3, 0.1]))
    )
    torch.testing.assert_close(mem.opacities[0], torch.tensor(hand(0.4, 0.9, 0.2)))
    torch.testing.assert_close(
        mem.features[0],
        hand(
            torch.tensor([0.6, 0.3, 0.1]),
            torch.tensor([0.1, 0.8, 0.1]),
            torch.tensor([0.2, 0.2, 0.6]),
        ),
    )
    torch.testing.assert_close(mem.confidence[0], torch.tensor(hand(0.6, 0.8, 0.5)))
    cov = torch.diag(
        torch.tensor(
            hand(
                torch.tensor([0.01, 0.04, 0.09]),
                torch.tensor([0.04, 0.01, 0.09]),
                torch.tensor([0.04, 0.04, 0.04]),
            )
        )
    )
    torch.testing.assert_close(
        covariance(mem.scales[:1], mem.quats[:1])[0], cov, atol=1e-6, rtol=1e-5
    )
    torch.testing.assert_close(mem.means[1], torch.tensor([5.0, 5.0, 5.0]))
    assert mem.observations.tolist() == [2, 1] and mem.last_seen.tolist() == [1, 1]


def test_same_frame_twice_keeps_positions_and_confidences():
    g = torch.Generator().manual_seed(1)
    world = _lattice(4, 1.0) + 0.1 * torch.rand(64, 3, generator=g)
    T = _pose(7)
    probs = torch.softmax(torch.randn(64, 4, generator=g), -1)
    quats = torch.randn(64, 4, generator=g)
    cam = _gaussians(
        _to_camera(world, T),
        quats=quats,
        features=probs,
        scales=torch.rand(64, 3, generator=g) * 0.1 + 0.02,
    )
    mem = go.GaussianMemory(radius=0.3, gamma=0.2)
    mem.insert(cam, _camera(T))
    before = {k: getattr(mem, k).clone() for k in ("means", "opacities", "features", "confidence")}
    cov_before = covariance(mem.scales, mem.quats)
    assert mem.insert(cam, _camera(T)) == go.InsertResult(fused=64, inserted=0, evicted=0)
    for k, v in before.items():
        torch.testing.assert_close(getattr(mem, k), v)
    torch.testing.assert_close(before["confidence"], probs.amax(-1))
    torch.testing.assert_close(covariance(mem.scales, mem.quats), cov_before, atol=1e-6, rtol=1e-5)
    assert mem.observations.tolist() == [2] * 64 and mem.last_seen.tolist() == [1] * 64
    assert mem.frame_index == 2


def test_quaternion_sign_does_not_matter():
    g = torch.Generator().manual_seed(2)
    q = torch.nn.functional.normalize(torch.randn(1, 4, generator=g), dim=-1)
    scales = torch.tensor([[0.05, 0.1, 0.3]])
    mem = go.GaussianMemory(radius=0.1)
    mem.insert(_gaussians(torch.zeros(1, 3), scales=scales, quats=q), _camera())
    mem.insert(_gaussians(torch.zeros(1, 3), scales=scales, quats=-q), _camera())
    torch.testing.assert_close(
        covariance(mem.scales, mem.quats), covariance(scales, q), atol=1e-6, rtol=1e-5
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_fused_covariances_stay_spd_under_rotations(seed):
    g = torch.Generator().manual_seed(seed)
    n = 30
    mem = go.GaussianMemory(radius=0.4, max_neighbors=4, dtype=torch.float64)
    centre = torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3
    for f in range(4):
        T = _pose(seed + f, torch.float64)
        cam = go.Gaussians(
            _to_camera(centre, T),
            torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.2 + 1e-3,
            torch.randn(n, 4, generator=g, dtype=torch.float64),
            torch.rand(n, generator=g, dtype=torch.float64),
            torch.softmax(torch.randn(n, 3, generator=g, dtype=torch.float64), -1),
        )
        mem.insert(cam, _camera(T))
    cov = covariance(mem.scales, mem.quats)
    assert (torch.linalg.eigvalsh(cov) > 0).all()
    torch.testing.assert_close(mem.quats.norm(dim=-1), torch.ones(len(mem), dtype=torch.float64))
    assert (mem.quats[:, 0] >= 0).all()


def test_static_scene_converges_and_stays_bounded():
    g = torch.Generator().manual_seed(3)
    scene = _lattice(6, 0.5)  # 216 Gaussians, 0.5 m apart
    mem = go.GaussianMemory(radius=0.2, gamma=0.3, max_neighbors=1)
    sizes, single_view_error = [], []
    for f in range(30):
        T = _pose(100 + f)
        seen = torch.rand(len(scene), generator=g) < 0.6
        noise = 0.03 * torch.randn(int(seen.sum()), 3, generator=g)
        mem.insert(_gaussians(_to_camera(scene[seen] + noise, T)), _camera(T))
        sizes.append(len(mem))
        single_view_error.append(noise.norm(dim=-1).mean())
    assert sizes[-1] == len(scene) and max(sizes) <= len(scene)
    nearest = torch.cdist(mem.means, scene).min(dim=1)
    assert nearest.indices.unique().numel() == len(scene)
    # with equal confidences the fusion is an exponential average with weight 0.7 on the new
    # view: the stationary error std is sqrt(0.7 / 1.3) ~ 0.73 of one view's
    ratio = nearest.values.mean() / torch.stack(single_view_error).mean()
    assert 0.6 < ratio < 0.85


def test_max_size_evicts_lowest_confidence_then_oldest():
    mem = go.GaussianMemory(radius=0.1, max_size=4)
    eye = _camera()
    mem.insert(
        _gaussians(torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])),
        eye,
        confidence=torch.tensor([0.5, 0.2, 0.9]),
    )
    result = mem.insert(
        _gaussians(torch.tensor([[3.0, 0, 0], [4, 0, 0], [5, 0, 0]])),
        eye,
        confidence=torch.tensor([0.2, 0.7, 0.5]),
    )
    # confidences 0.5 0.2 0.9 | 0.2 0.7 0.5: the two 0.2 go, then the older 0.5
    assert result == go.InsertResult(fused=0, inserted=3, evicted=2)
    assert mem.means[:, 0].tolist() == [0.0, 2.0, 4.0, 5.0]
    result = mem.insert(
        _gaussians(torch.tensor([[9.0, 0, 0]])), eye, confidence=torch.tensor([0.6])
    )
    assert result.evicted == 1 and mem.means[:, 0].tolist() == [2.0, 4.0, 5.0, 9.0]


def test_long_stream_with_max_size_never_grows_past_it():
    g = torch.Generator().manual_seed(4)
    mem = go.GaussianMemory(radius=0.05, max_size=300)
    for _ in range(12):
        pts = torch.rand(100, 3, generator=g) * 10
        mem.insert(
            _gaussians(pts, features=torch.softmax(torch.randn(100, 3, generator=g), -1)),
            _camera(),
        )
        assert len(mem) <= 300
    assert len(mem) == 300


def test_valid_mask_and_empty_frames():
    mem = go.GaussianMemory(radius=0.1)
    g = _gaussians(torch.tensor([[0.0, 0, 0], [1, 0, 0]]))
    g.valid = torch.tensor([True, False])
    assert mem.insert(g, _camera()).inserted == 1
    assert mem.insert(_gaussians(torch.zeros(0, 3)), _camera()) == go.InsertResult(0, 0, 0)
    assert len(mem) == 1 and mem.frame_index == 2


# ---- SGR-OCC mode -----------------------------------------------------------------------------


def _sgr_setup(depth_value):
    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 32], [0, 0, 1]])
    mem = go.GaussianMemory(radius=0.5, mode="sgr", sigma_geo=0.1)
    features = torch.tensor([[0.98, 0.01, 0.01], [0.98, 0.01, 0.01]])
    first = _gaussians(
        torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 2.0]]) + torch.tensor([[0.0, 0, 0], [9, 0, 0]]),
        features=features,
    )
    depth = torch.full((64, 64), depth_value)
    mem.insert(first, _camera(K=K), depth=depth)
    second = _gaussians(
        torch.tensor([[0.2, 0.0, 2.0], [9.2, 0.0, 2.0]]),
        features=features,
        opacities=torch.tensor([0.9, 0.9]),
    )
    mem.insert(second, _camera(K=K), depth=depth)
    return mem


def test_sgr_verified_anchor_is_protected_and_invisible_one_is_replaced():
    mem = _sgr_setup(2.0)  # depth agrees with the anchor
    top = 1 / (1 + 2 * math.exp(math.log(0.01 / 0.98) / 0.5))
    c = min(1.0, (top - 0.2) / 0.6)
    assert c == 1.0
    torch.testing.assert_close(mem.means[0], torch.tensor([0.0, 0.0, 2.0]))  # frozen
    torch.testing.assert_close(mem.opacities[0], torch.tensor(0.5))
    # the second anchor projects outside the 64x64 image: not verifiable, fully updated
    torch.testing.assert_close(mem.means[1], torch.tensor([9.2, 0.0, 2.0]))
    torch.testing.assert_close(mem.opacities[1], torch.tensor(0.9))


def test_sgr_depth_conflict_moves_the_anchor_by_one_minus_c():
    mem = _sgr_setup(2.15)  # predicted depth 15 cm behind the anchor
    c = math.exp(-(0.15**2) / (2 * 0.1**2))
    torch.testing.assert_close(mem.means[0], torch.tensor([0.2 * (1 - c), 0.0, 2.0]))
    torch.testing.assert_close(mem.opacities[0], torch.tensor(0.5 * c + 0.9 * (1 - c)))


def test_sgr_needs_depth_and_intrinsics():
    mem = go.GaussianMemory(radius=0.5, mode="sgr")
    with pytest.raises(ValueError, match="needs depth"):
        mem.insert(_gaussians(torch.zeros(1, 3)), _camera())


# ---- state -----------------------------------------------------------------------------------


def test_state_dict_round_trip_through_a_file(tmp_path):
    g = torch.Generator().manual_seed(5)
    mem = go.GaussianMemory(radius=0.2, gamma=0.25, max_size=500, max_neighbors=2)
    frames = []
    for f in range(4):
        T = _pose(20 + f)
        pts = torch.rand(150, 3, generator=g) * 3
        frames.append(
            (
                _gaussians(
                    _to_camera(pts, T),
                    quats=torch.randn(150, 4, generator=g),
                    features=torch.softmax(torch.randn(150, 3, generator=g), -1),
                ),
                _camera(T),
            )
        )
    for cam, camera in frames[:3]:
        mem.insert(cam, camera)
    path = tmp_path / "memory.pt"
    torch.save(mem.state_dict(), path)
    state = torch.load(path)
    restored = go.GaussianMemory.from_state_dict(state)
    other = go.GaussianMemory(radius=0.2, gamma=0.25, max_size=500, max_neighbors=2)
    other.load_state_dict(state)
    for m in (restored, other):
        assert m.frame_index == mem.frame_index
        for k in (
            "means",
            "scales",
            "quats",
            "opacities",
            "features",
            "confidence",
            "observations",
            "last_seen",
        ):
            assert torch.equal(getattr(m, k), getattr(mem, k)), k
    # and it continues the stream identically
    assert restored.insert(*frames[3]) == mem.insert(*frames[3])
    assert torch.equal(restored.means, mem.means) and torch.equal(restored.quats, mem.quats)


def test_load_state_dict_rejects_other_config():
    mem = go.GaussianMemory(radius=0.2)
    mem.insert(_gaussians(torch.zeros(2, 3)), _camera())
    with pytest.raises(ValueError, match="radius"):
        go.GaussianMemory(radius=0.3).load_state_dict(mem.state_dict())


# ---- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"radius": 0.0}, "radius must be finite and > 0"),
        ({"gamma": 1.0}, "gamma must lie in"),
        ({"max_neighbors": 0}, "max_neighbors must be an int >= 1"),
        ({"max_size": 0}, "max_size must be None or an int >= 1"),
        ({"mode": "fast"}, "mode must be"),
        ({"tau_min": 0.9}, "tau_min < tau_max"),
    ],
)
def test_constructor_validation(kwargs, match):
    args = {"radius": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        go.GaussianMemory(**args)


def test_insert_validation():
    mem = go.GaussianMemory(radius=0.1)
    batched = go.Gaussians.isotropic(
        torch.zeros(2, 3, 3), 0.1, torch.ones(2, 3), torch.ones(2, 3, 2)
    )
    with pytest.raises(ValueError, match="unbatched"):
        mem.insert(batched, _camera())
    with pytest.raises(ValueError, match="rigid"):
        not_rigid = torch.diag(torch.tensor([2.0, 1, 1, 1]))[None]
        cams = go.Cameras(not_rigid, K64[None], height=64, width=64)
        mem.insert(_gaussians(torch.zeros(1, 3)), cams)
    with pytest.raises(TypeError, match="gaussians_cam must be"):
        mem.insert(torch.zeros(1, 3), _camera())
    mem.insert(_gaussians(torch.zeros(1, 3)), _camera())
    with pytest.raises(ValueError, match="feature channels"):
        mem.insert(_gaussians(torch.zeros(1, 3), features=torch.ones(1, 5)), _camera())
    with pytest.raises(ValueError, match="confidence must be"):
        mem.insert(_gaussians(torch.zeros(2, 3)), _camera(), confidence=torch.ones(3))
    with pytest.raises(ValueError, match="only used with mode='sgr'"):
        mem.insert(_gaussians(torch.zeros(1, 3)), _camera(), depth=torch.ones(4, 4))


def test_to_occupancy_equals_accumulating_the_world_frame_gaussians():
    T = _pose(2)
    world = _lattice(n_side=3, spacing=1.0) + 0.25
    probs = torch.tensor([0.7, 0.2, 0.1]).expand(len(world), 3).clone()
    cam = _gaussians(_to_camera(world, T), scales=torch.full((len(world), 3), 0.2), features=probs)
    mem = go.GaussianMemory(radius=0.1)
    mem.insert(cam, _camera(T))
    grid = go.VoxelGrid(origin=(-0.5, -0.5, -0.5), voxel_size=0.25, shape=(14, 14, 14))
    occ = mem.to_occupancy(grid, empty_class=-1)
    direct = go.gaussians_to_occupancy(
        _gaussians(world, scales=torch.full((len(world), 3), 0.2), features=probs),
        grid,
        empty_class=-1,
    )
    torch.testing.assert_close(occ.occupancy, direct.occupancy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(occ.probs, direct.probs, atol=1e-5, rtol=1e-5)
    idx = ((world - torch.tensor(grid.origin)) / 0.25).long()
    at_means = occ.occupancy[idx[:, 0], idx[:, 1], idx[:, 2]]
    # the voxel centre is 0.125 m off the mean along each axis: o exp(-0.5 * 3 (0.125 / 0.2)^2)
    expected = 0.5 * math.exp(-1.5 * (0.125 / 0.2) ** 2)
    torch.testing.assert_close(at_means, torch.full_like(at_means, expected), rtol=1e-3, atol=0)
    assert occ.occupancy[0, 0, 0] < 1e-3
    class0 = occ.probs[0, idx[:, 0], idx[:, 1], idx[:, 2]]  # occupancy x the class probability
    torch.testing.assert_close(class0, 0.7 * at_means, rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="the memory is empty"):
        go.GaussianMemory(radius=0.1).to_occupancy(grid)


# ---- incremental index, storage and eviction ---------------------------------------------------


def _stream_frame(g, f, n, dtype=torch.float32, channels=4):
    """A frame revisiting a 3 m box from a rotating pose; a fifth of the points are on a
    5 cm lattice (exact distance ties), some repeat the previous frame's points."""
    T = _pose(1000 + f, dtype)
    world = torch.rand(n, 3, generator=g, dtype=dtype) * 3
    world[: n // 5] = torch.round(world[: n // 5] * 20) / 20
    cam = go.Gaussians(
        _to_camera(world, T),
        torch.rand(n, 3, generator=g, dtype=dtype) * 0.05 + 0.01,
        torch.randn(n, 4, generator=g, dtype=dtype),
        torch.rand(n, generator=g, dtype=dtype),
        torch.softmax(2 * torch.randn(n, channels, generator=g, dtype=dtype), -1),
    )
    tags = torch.rand(n, generator=g) < 0.7
    return cam, _camera(T), tags


def test_incremental_index_equals_a_scratch_search_after_every_insert():
    """Over a long stream with evictions and compactions, the memory's incrementally maintained
    index answers exactly what radius_neighbors over the current memory answers."""
    g = torch.Generator().manual_seed(21)
    mem = go.GaussianMemory(radius=0.12, max_size=900, max_neighbors=3)
    compactions, used_before = 0, 0
    for f in range(70):
        cam, camera, tags = _stream_frame(g, f, int(torch.randint(60, 160, (1,), generator=g)))
        mem.insert(cam, camera, tags=tags)
        compactions += mem._used < used_before
        used_before = mem._used
        queries = torch.cat([mem.means[::7], torch.rand(100, 3, generator=g) * 3.2 - 0.1])
        got = mem.neighbors(queries)
        want = go.radius_neighbors(queries, mem.means, 0.12, 3, backend="cpu")
        assert torch.equal(got.indices, want.indices), f
        assert torch.equal(got.distances, want.distances), f
        # evicted slots are compacted once they outnumber the live ones (amortised O(1))
        assert mem._used - len(mem) <= max(len(mem), 1024)
    assert len(mem) == 900 and compactions >= 2


@pytest.mark.parametrize("mode", ["gpocc", "sgr"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_memory_equals_the_reference_memory(mode, dtype):
    """The kernels (cell hash, fusion, eviction heap) against the pure-PyTorch memory
    (brute-force search, torch.linalg.eigh, sorted eviction): the same fusions, insertions and
    evictions; the same bits for every attribute but the re-decomposed covariance."""
    g = torch.Generator().manual_seed(22)
    kwargs = {"radius": 0.1, "max_size": 700, "mode": mode, "dtype": dtype, "sigma_geo": 0.5}
    mems = [go.GaussianMemory(**kwargs), go.GaussianMemory(**kwargs, backend="reference")]
    depth = torch.full((64, 64), 2.0, dtype=dtype)
    extra = {"depth": depth} if mode == "sgr" else {}
    for f in range(25):
        cam, camera, tags = _stream_frame(g, f, 150, dtype)
        results = [m.insert(cam, camera, tags=tags, **extra) for m in mems]
        assert results[0] == results[1], f
        for k in ("means", "opacities", "features", "confidence", "observations", "last_seen"):
            assert torch.equal(getattr(mems[0], k), getattr(mems[1], k)), (f, k)
        assert torch.equal(mems[0].tags, mems[1].tags)
        tol = {"atol": 1e-6, "rtol": 1e-5} if dtype == torch.float32 else {}
        torch.testing.assert_close(
            covariance(mems[0].scales, mems[0].quats),
            covariance(mems[1].scales, mems[1].quats),
            **tol,
        )
    assert sum(r.evicted for r in results) or len(mems[0]) == 700


def test_eviction_heap_follows_changed_confidences():
    """A fused Gaussian's confidence changes its eviction rank: the heap sees the new value."""
    mem = go.GaussianMemory(radius=0.1, max_size=3)
    xs = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    mem.insert(_gaussians(xs), _camera(), confidence=torch.tensor([0.5, 0.6, 0.7]))
    # raise Gaussian 0 to the top: gamma p_0 p_0 + (1 - gamma) 1.0 ... > 0.7
    mem.insert(_gaussians(xs[:1]), _camera(), confidence=torch.tensor([1.0]))
    assert mem.confidence[0] > 0.7
    result = mem.insert(_gaussians(torch.tensor([[5.0, 0, 0]])), _camera(), torch.tensor([0.65]))
    # now 0.6 (Gaussian 1) is the lowest: it goes, not Gaussian 0
    assert result.evicted == 1 and mem.means[:, 0].tolist() == [0.0, 2.0, 5.0]


def test_returned_tensors_do_not_change_with_later_inserts():
    mem = go.GaussianMemory(radius=0.5)
    mem.insert(_gaussians(torch.zeros(1, 3)), _camera())
    means, world = mem.means, mem.gaussians
    mem.insert(_gaussians(torch.full((1, 3), 0.2)), _camera())
    assert means.tolist() == [[0.0, 0.0, 0.0]] and world.means.tolist() == [[0.0, 0.0, 0.0]]
    assert mem.means[0, 0] > 0


# ---- source tags and SGR-OCC's visibility-aware pool -------------------------------------------


def test_tags_are_stored_fused_by_or_and_saved():
    mem = go.GaussianMemory(radius=0.1)
    xs = torch.tensor([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]])
    mem.insert(_gaussians(xs), _camera(), tags=torch.tensor([0, 0, 1]))
    assert mem.tags.tolist() == [False, False, True]
    # a predicted observation fused into a random anchor makes it predicted; a random one
    # fused into a predicted anchor leaves it predicted
    mem.insert(_gaussians(xs), _camera(), tags=torch.tensor([True, False, False]))
    assert mem.tags.tolist() == [True, False, True]
    mem.insert(_gaussians(torch.tensor([[9.0, 0, 0]])), _camera())  # default: predicted
    state = mem.state_dict()
    assert state["tags"].tolist() == [True, False, True, True]
    assert go.GaussianMemory.from_state_dict(state).tags.tolist() == [True, False, True, True]
    del state["tags"]  # a state saved before tags existed: every Gaussian a predicted anchor
    assert go.GaussianMemory.from_state_dict(state).tags.tolist() == [True] * 4
    with pytest.raises(ValueError, match="tags must be bool or 0/1"):
        mem.insert(_gaussians(xs[:1]), _camera(), tags=torch.tensor([2]))


def _wall_scene():
    """Camera at the origin looking down +z (64 x 64, f = 50), a wall 2 m away, a hole in it
    without predicted depth at pixel columns >= 48."""
    depth = torch.full((64, 64), 2.0)
    depth[:, 48:] = 0.0
    anchors = torch.tensor(
        [
            [0.0, 0.0, 4.0],  # 0: behind the wall (occluded)
            [0.0, 0.0, 2.05],  # 1: on the wall (visible, consistent)
            [0.0, 0.0, 1.0],  # 2: in front of the wall, in seen free space (invalid)
            [50.0, 0.0, 2.0],  # 3: outside the image
            [0.0, 0.0, -3.0],  # 4: behind the camera
            [0.7, 0.0, 2.0],  # 5: on the hole, no predicted depth there (u = 49.5)
            [0.1, 0.1, 5.0],  # 6: behind the wall, predicted anchor
            [-0.1, 0.0, 2.3],  # 7: 0.3 m behind the wall: consistent at the tolerance
        ]
    )
    tags = torch.tensor([False, False, False, False, False, False, True, False])
    return anchors, tags, depth


def test_visibility_pool_mask_on_constructed_cases():
    anchors, tags, depth = _wall_scene()
    keep = go.visibility_pool_mask(anchors, tags, _camera(), depth, tolerance=0.3)
    assert keep.tolist() == [False, True, False, True, True, True, True, True]
    # the documented import paths give the same function
    assert go.memory.visibility_pool_mask is go.visibility_pool_mask
    assert go.visibility.visibility_pool_mask is go.visibility_pool_mask
    # the tag rule: as predicted anchors, the occluded and the invalid ones are kept too
    keep_all = go.visibility_pool_mask(
        anchors, torch.ones(8, dtype=torch.bool), _camera(), depth, tolerance=0.3
    )
    assert keep_all.all()
    # a tighter tolerance makes the anchor 0.3 m behind the wall occluded
    tight = go.visibility_pool_mask(anchors, tags, _camera(), depth, tolerance=0.29)
    assert tight.tolist() == [False, True, False, True, True, True, True, False]


def test_visibility_pool_drops_occluded_random_anchors_and_leaves_the_rest_untouched():
    anchors, tags, depth = _wall_scene()
    mem = go.GaussianMemory(radius=0.05, visibility_pool=True, pool_tolerance=0.3)
    first = _gaussians(anchors, opacities=torch.linspace(0.1, 0.8, 8))
    assert mem.insert(first, _camera(), depth=torch.zeros(64, 64), tags=tags).dropped == 0
    before = {k: getattr(mem, k).clone() for k in ("means", "scales", "opacities", "last_seen")}
    # the next frame sees the wall and adds one Gaussian far from every anchor
    result = mem.insert(
        _gaussians(torch.tensor([[0.0, -0.5, 2.0]])), _camera(), depth=depth, tags=None
    )
    assert result == go.InsertResult(fused=0, inserted=1, evicted=0, dropped=2)
    kept = [1, 3, 4, 5, 6, 7]
    for k, v in before.items():
        assert torch.equal(getattr(mem, k)[:6], v[kept]), k  # untouched, in order
    assert mem.tags.tolist() == [False, False, False, False, True, False, True]
    # the index forgot the dropped ones
    assert mem.neighbors(anchors[:1]).indices[0, 0] == -1
    # an explicit pass with another view
    assert mem.prune_by_visibility(_camera(), torch.full((64, 64), 10.0)) == 3  # 1, 5, 7 now


def test_visibility_pool_needs_depth_and_a_pinhole_view():
    mem = go.GaussianMemory(radius=0.1, visibility_pool=True)
    with pytest.raises(ValueError, match="needs depth"):
        mem.insert(_gaussians(torch.zeros(1, 3)), _camera())
    with pytest.raises(ValueError, match=r"depth must be \[H, W\] = \[64, 64\]"):
        mem.insert(_gaussians(torch.zeros(1, 3)), _camera(), depth=torch.ones(48, 64))
    assert go.GaussianMemory(radius=0.1, sigma_geo=0.2, visibility_pool=True).pool_tolerance is None


def test_insert_takes_one_view_of_cameras():
    mem = go.GaussianMemory(radius=0.1)
    two = go.Cameras.from_cam2world(
        torch.eye(4).expand(2, 4, 4), K64.expand(2, 3, 3), height=64, width=64
    )
    with pytest.raises(ValueError, match="single view"):
        mem.insert(_gaussians(torch.zeros(1, 3)), two)
    batched = go.Cameras(
        torch.eye(4).expand(1, 1, 4, 4), K64.expand(1, 1, 3, 3), height=64, width=64
    )
    with pytest.raises(ValueError, match="single view"):
        mem.insert(_gaussians(torch.zeros(1, 3)), batched)
    with pytest.raises(TypeError, match="camera must be gaussocc_ops.Cameras"):
        mem.insert(_gaussians(torch.zeros(1, 3)), torch.eye(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["gpocc", "sgr"])
def test_cuda_memory_matches_cpu(mode):
    """The CUDA index, fusion kernel and sorted eviction against the CPU kernels and heap."""
    g = torch.Generator().manual_seed(23)
    kwargs = {"radius": 0.1, "max_size": 700, "mode": mode, "visibility_pool": mode == "sgr"}
    mems = [go.GaussianMemory(**kwargs), go.GaussianMemory(**kwargs, device="cuda")]
    depth = torch.full((64, 64), 2.0)
    for f in range(20):
        cam, camera, tags = _stream_frame(g, f, 150)
        extra = {"depth": depth} if mode == "sgr" else {}
        want = mems[0].insert(cam, camera, tags=tags, **extra)
        extra = {k: v.cuda() for k, v in extra.items()}
        got = mems[1].insert(cam.to("cuda"), camera.to("cuda"), tags=tags.cuda(), **extra)
        assert got == want, f
        for k in ("means", "opacities", "features", "confidence", "last_seen", "tags"):
            torch.testing.assert_close(getattr(mems[1], k).cpu(), getattr(mems[0], k))
        torch.testing.assert_close(
            covariance(mems[1].scales, mems[1].quats).cpu(),
            covariance(mems[0].scales, mems[0].quats),
            atol=1e-6,
            rtol=1e-5,
        )


@pytest.mark.skipif(
    not go.build_info()["ops"] or "memory_evict_heap" not in go.build_info()["ops"],
    reason="the extension is not built",
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_eviction_heap_op_pops_in_eviction_order(dtype):
    """memory_evict_heap against two stable sorts: rows added, removed (anywhere in the heap),
    re-added with new keys (the memory's protocol for fused rows) and popped, with many ties."""
    from gaussocc_ops.memory import eviction_order

    g = torch.Generator().manual_seed(24)
    cap = 400
    heap, pos = torch.zeros(cap, dtype=torch.long), torch.full((cap,), -1, dtype=torch.long)
    size = torch.zeros(1, dtype=torch.long)
    conf, seen = torch.zeros(cap, dtype=dtype), torch.zeros(cap, dtype=torch.long)
    alive = torch.zeros(cap, dtype=torch.bool)
    used = 0
    for step in range(40):
        live = alive.nonzero().squeeze(1)
        changed = live[torch.rand(len(live), generator=g) < 0.3]
        dropped = live[torch.rand(len(live), generator=g) < 0.05]
        changed = changed[~torch.isin(changed, dropped)]
        empty = torch.zeros(0, dtype=torch.long)
        op = torch.ops.gaussocc.memory_evict_heap
        assert op(heap, pos, size, conf, seen, torch.cat([changed, dropped]), empty, 0).numel() == 0
        alive[dropped] = False
        conf[changed] = torch.randint(0, 4, (len(changed),), generator=g).to(dtype) / 4
        seen[changed] = step
        new = torch.arange(used, used + 8)
        used += 8
        conf[new] = torch.randint(0, 4, (8,), generator=g).to(dtype) / 4
        seen[new] = step
        alive[new] = True
        pop = max(0, int(alive.sum()) - 60)
        live = alive.nonzero().squeeze(1)
        want = live[eviction_order(conf[live], seen[live])[:pop]]
        got = op(heap, pos, size, conf, seen, empty, torch.cat([changed, new]), pop)
        assert torch.equal(got, want), step
        alive[got] = False
        assert int(size) == int(alive.sum())
    with pytest.raises(RuntimeError, match="already in the heap"):
        op(heap, pos, size, conf, seen, empty, alive.nonzero()[:1, 0], 0)
