import math

import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.reference import radius as ref


def _cpu(queries, points, radius, k, **kw):
    return go.radius_neighbors(queries, points, radius, k, backend="cpu", **kw)


def _loop(queries, points, radius, k):
    """Independent oracle for exactly representable inputs: Python floats, one pair at a time."""
    out = []
    for q in queries.tolist():
        hits = sorted(
            (math.dist(q, p), j) for j, p in enumerate(points.tolist()) if math.dist(q, p) <= radius
        )
        out.append(hits[:k])
    return out


def _assert_same(a, b):
    # indices exactly; distances to an ulp (torch's vectorised sqrt is not always correctly rounded)
    assert torch.equal(a.indices, b.indices)
    torch.testing.assert_close(a.distances, b.distances, rtol=3e-7, atol=0)


def test_compiled_kernel_is_registered():
    assert go.build_info()["extension"], go.build_info()["error"]
    assert hasattr(torch.ops.gaussocc, "radius_neighbors")


def _cloud(draw_seed, n, kind, dtype=torch.float32):
    g = torch.Generator().manual_seed(draw_seed)
    if kind == "uniform":
        return torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1
    if kind == "clustered":
        centres = torch.rand(3, 3, generator=g, dtype=dtype) * 4 - 2
        pick = torch.randint(0, 3, (n,), generator=g)
        return centres[pick] + 0.05 * torch.randn(n, 3, generator=g, dtype=dtype)
    # lattice: exactly representable coordinates, many on cell borders, duplicates
    return torch.randint(-4, 5, (n, 3), generator=g).to(dtype) * 0.25


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    m=st.integers(0, 25),
    n=st.integers(0, 60),
    k=st.integers(0, 7),
    radius=st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.7, 3.0]),
    kind=st.sampled_from(["uniform", "clustered", "lattice"]),
)
def test_cpu_matches_brute_force(seed, m, n, k, radius, kind):
    points = _cloud(seed, n, kind)
    queries = torch.cat([_cloud(seed + 1, m, kind), points[: m // 2]])
    _assert_same(
        _cpu(queries, points, radius, k),
        go.radius_neighbors(queries, points, radius, k, backend="reference"),
    )


def test_lattice_against_python_loop():
    # neighbours at exactly the radius, on cell borders (cell = radius = 0.5) and duplicates
    points = _cloud(3, 200, "lattice")
    queries = torch.cat([_cloud(4, 40, "lattice"), points[:10] + 0.125])
    for radius, k in [(0.5, 5), (0.25, 30), (0.0, 4), (1.0, 300)]:
        out = _cpu(queries, points, radius, k)
        for row, hits in enumerate(_loop(queries, points, radius, k)):
            want_idx = [j for _, j in hits] + [-1] * (k - len(hits))
            assert out.indices[row].tolist() == want_idx
            torch.testing.assert_close(
                out.distances[row, : len(hits)],
                torch.tensor([d for d, _ in hits]),
                rtol=1e-6,
                atol=0,
            )
            assert torch.isinf(out.distances[row, len(hits) :]).all()


def test_radius_zero_finds_exact_duplicates_in_index_order():
    points = torch.tensor([[1.0, 2, 3], [0, 0, 0], [1.0, 2, 3], [1.0, 2, 3.0000002], [1.0, 2, 3]])
    out = _cpu(torch.tensor([[1.0, 2, 3]]), points, 0.0, 4)
    assert out.indices.tolist() == [[0, 2, 4, -1]]
    assert out.distances[0, :3].tolist() == [0.0, 0.0, 0.0]


def test_nearest_not_first_found():
    # many points in the query's cell in index order far-to-near: the nearest must win
    d = torch.linspace(0.9, 0.1, 9)
    points = torch.stack([d, torch.zeros(9), torch.zeros(9)], -1)
    out = _cpu(torch.zeros(1, 3), points, 1.0, 3)
    assert out.indices.tolist() == [[8, 7, 6]]


@pytest.mark.parametrize("cell_size", [0.05, 0.3, 2.0, 50.0])
def test_cell_size_does_not_change_the_result(cell_size):
    points = _cloud(5, 300, "clustered")
    queries = _cloud(6, 50, "clustered")
    _assert_same(_cpu(queries, points, 0.3, 6, cell_size=cell_size), _cpu(queries, points, 0.3, 6))


def test_wide_extent_tiny_radius_caps_the_grid():
    # 2 km wide cloud, 1 mm radius: needs ~2e6 cells per axis, more than the key range allows
    g = torch.Generator().manual_seed(0)
    points = torch.rand(400, 3, generator=g, dtype=torch.float64) * 2000 - 1000
    queries = torch.cat([points[::7] + 3e-4, torch.rand(20, 3, generator=g, dtype=torch.float64)])
    a = _cpu(queries, points, 1e-3, 2)
    _assert_same(a, go.radius_neighbors(queries, points, 1e-3, 2, backend="reference"))
    assert (a.indices[: len(points[::7]), 0] == torch.arange(0, 400, 7)).all()


def test_far_offset_and_queries_outside_the_grid():
    g = torch.Generator().manual_seed(1)
    points = torch.rand(300, 3, generator=g) * 10 + 5000
    queries = torch.cat([points[:30] + 0.05, torch.full((3, 3), -1e6), torch.full((3, 3), 1e30)])
    out = _cpu(queries, points, 0.4, 4)
    _assert_same(out, go.radius_neighbors(queries, points, 0.4, 4, backend="reference"))
    assert (out.indices[30:] == -1).all()


def test_batches_are_independent_and_broadcast():
    g = torch.Generator().manual_seed(2)
    points = torch.rand(2, 3, 80, 3, generator=g)
    queries = torch.rand(3, 20, 3, generator=g)  # broadcast over the first batch dim
    out = _cpu(queries, points, 0.3, 5)
    assert out.indices.shape == (2, 3, 20, 5)
    for a in range(2):
        for b in range(3):
            _assert_same(
                go.radius_neighbors(queries[b], points[a, b], 0.3, 5, backend="reference"),
                go.RadiusNeighbors(out.indices[a, b], out.distances[a, b]),
            )


@pytest.mark.parametrize("m,n,k,b", [(0, 5, 3, 1), (4, 0, 3, 1), (4, 5, 0, 1), (4, 5, 3, 0)])
def test_empty_inputs(m, n, k, b):
    out = _cpu(torch.rand(b, m, 3), torch.rand(b, n, 3), 1.0, k)
    assert out.indices.shape == (b, m, k) and out.distances.shape == (b, m, k)
    assert (out.indices == -1).all() and torch.isinf(out.distances).all()


def test_float64_and_half_inputs():
    points = _cloud(7, 100, "uniform", torch.float64)
    queries = _cloud(8, 30, "uniform", torch.float64)
    out = _cpu(queries, points, 0.4, 4)
    assert out.distances.dtype == torch.float64
    idx, dist = ref.radius_neighbors(queries[None], points[None], 0.4, 4)
    _assert_same(out, go.RadiusNeighbors(idx[0], dist[0]))
    half = _cpu(queries.half(), points.half(), 0.4, 4)
    assert half.distances.dtype == torch.float32
    _assert_same(half, _cpu(queries.half().float(), points.half().float(), 0.4, 4))


def test_opcheck():
    g = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        q = torch.rand(2, 7, 3, generator=g, dtype=dtype)
        p = torch.rand(2, 30, 3, generator=g, dtype=dtype)
        torch.library.opcheck(torch.ops.gaussocc.radius_neighbors.default, (q, p, 0.3, 4, 0.0))
        torch.library.opcheck(torch.ops.gaussocc.radius_neighbors.default, (q, p, 0.3, 4, 0.1))


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        ({"queries": torch.rand(4, 2)}, ValueError, "queries must have shape"),
        ({"points": torch.rand(4)}, ValueError, "points must have at least 2 dims"),
        ({"queries": torch.zeros(4, 3, dtype=torch.long)}, TypeError, "queries must be a floating"),
        ({"radius": -0.1}, ValueError, "radius must be finite and >= 0"),
        ({"radius": float("inf")}, ValueError, "radius must be finite"),
        ({"max_neighbors": -1}, ValueError, "max_neighbors must be an int >= 0"),
        ({"max_neighbors": 2.0}, ValueError, "max_neighbors must be an int >= 0"),
        ({"cell_size": 0.0}, ValueError, "cell_size must be finite and > 0"),
        (
            {"points": torch.rand(3, 5, 3), "queries": torch.rand(2, 4, 3)},
            ValueError,
            "do not broadcast",
        ),
        ({"points": torch.tensor([[0.0, float("nan"), 0.0]])}, ValueError, "points contains NaN"),
        ({"backend": "gpu"}, ValueError, "backend must be one of"),
        ({"backend": "cuda"}, ValueError, "needs tensors on cuda"),
    ],
)
def test_validation(kwargs, err, match):
    args = {
        "queries": torch.rand(4, 3),
        "points": torch.rand(5, 3),
        "radius": 0.5,
        "max_neighbors": 2,
    }
    args.update(kwargs)
    with pytest.raises(err, match=match):
        go.radius_neighbors(**args)


@requires_cuda
@pytest.mark.parametrize("kind", ["uniform", "clustered", "lattice"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_matches_cpu(kind, dtype):
    points = torch.stack([_cloud(s, 3000, kind, dtype) for s in (10, 11)])
    queries = torch.stack(
        [torch.cat([_cloud(s, 500, kind, dtype), points[i, :100]]) for i, s in enumerate((12, 13))]
    )
    for radius, k in [(0.0, 4), (0.25, 8), (0.5, 32)]:
        cpu = _cpu(queries, points, radius, k)
        cuda = go.radius_neighbors(queries.cuda(), points.cuda(), radius, k, backend="cuda")
        assert torch.equal(cuda.indices.cpu(), cpu.indices)
        assert torch.equal(cuda.distances.cpu(), cpu.distances)
