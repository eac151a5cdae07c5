import pytest
import torch

import gaussocc_ops as go
from gaussocc_ops.radius_index import RadiusIndex

BACKENDS = ["cpu", "reference"]


def _scratch(index_points, filed, queries, radius, k):
    """radius_neighbors over the filed slots only, built from scratch, with slots for indices."""
    slots = filed.nonzero().squeeze(1)
    idx, dist = go.radius_neighbors(queries, index_points[slots], radius, k, backend="cpu")
    return torch.where(idx >= 0, slots[idx.clamp_min(0)], idx), dist


def _assert_same(got, want, exact=True):
    assert torch.equal(got.indices, want[0])
    if exact:
        assert torch.equal(got.distances, want[1])
    else:  # torch's vectorised sqrt (the reference) is not always correctly rounded
        torch.testing.assert_close(got.distances, want[1], rtol=3e-7, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_incremental_index_equals_a_scratch_build_after_every_step(backend, dtype):
    """A long stream of inserts, moves and removals: after every step the incrementally
    maintained index answers exactly what radius_neighbors over the filed points answers."""
    g = torch.Generator().manual_seed(11)
    radius, k = 0.25, 4
    index = RadiusIndex(cell_size=radius, backend=backend)
    points = torch.empty(0, 3, dtype=dtype)
    filed = torch.zeros(0, dtype=torch.bool)
    for step in range(60):
        # new slots: a random cloud plus exact duplicates and lattice points (distance ties)
        n = int(torch.randint(0, 80, (1,), generator=g))
        new = torch.rand(n, 3, generator=g, dtype=dtype) * 3 - 1.5
        if len(points) and n > 4:
            new[:4] = points[torch.randint(0, len(points), (4,), generator=g)]
        new[: n // 5] = torch.round(new[: n // 5] * 8) / 8
        first = len(points)
        points = torch.cat([points, new])
        filed = torch.cat([filed, torch.zeros(n, dtype=torch.bool)])
        # insert a random subset of the new slots now; the rest stay unfiled (holes)
        take = torch.arange(first, first + n)[torch.rand(n, generator=g) < 0.85]
        index.insert(points, take[torch.randperm(len(take), generator=g)])
        filed[take] = True
        live = filed.nonzero().squeeze(1)
        # move some filed slots: most by a little (often the same cell), some across the box
        moved = live[torch.rand(len(live), generator=g) < 0.15]
        step_size = torch.where(torch.rand(len(moved), 1, generator=g) < 0.7, 0.05, 1.0).to(dtype)
        points[moved] += step_size * torch.randn(len(moved), 3, generator=g, dtype=dtype)
        index.update(points, moved)
        # remove some (evictions)
        gone = live[torch.rand(len(live), generator=g) < 0.1]
        index.remove(gone)
        filed[gone] = False
        assert len(index) == int(filed.sum())
        queries = torch.rand(50, 3, generator=g, dtype=dtype) * 3.4 - 1.7
        if filed.any():
            queries[:10] = points[filed][torch.randint(0, int(filed.sum()), (10,), generator=g)]
        got = index.query(queries, points, radius, k)
        exact = backend != "reference"
        _assert_same(got, _scratch(points, filed, queries, radius, k), exact)
        if step % 20 == 19:
            index.rebuild(points)
            want = _scratch(points, filed, queries, radius, k)
            _assert_same(index.query(queries, points, radius, k), want, exact)
    if backend != "reference":
        # the stale nodes were dropped along the way: they never outgrow the capacity
        assert index.num_nodes <= index._nodes_capacity


def test_ties_go_to_the_smaller_slot_and_radius_is_inclusive():
    pts = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0], [0.5, 0, 0]])
    index = RadiusIndex(cell_size=0.3)
    index.insert(pts, torch.tensor([3, 2, 1, 0, 4]))
    out = index.query(torch.zeros(1, 3), pts, radius=1.0, max_neighbors=3)
    assert out.indices.tolist() == [[4, 0, 1]]
    assert out.distances.tolist() == [[0.5, 1.0, 1.0]]


def test_far_away_points_share_clamped_cells_and_are_still_exact():
    # with a 1 cm cell, |x| = 1e5 m is far outside the +-2^20 cells: the cells clamp
    g = torch.Generator().manual_seed(3)
    pts = torch.cat(
        [
            torch.tensor([[1e5, 0, 0], [1e5 + 0.005, 0, 0], [-3e5, 2e5, 0], [-3e5, 2e5, 0.0]]),
            torch.rand(40, 3, generator=g, dtype=torch.float64).float() * 0.05,
        ]
    )
    index = RadiusIndex(cell_size=0.01)
    index.insert(pts, torch.arange(len(pts)))
    queries = torch.cat([pts[:4], torch.rand(10, 3, generator=g) * 0.05])
    filed = torch.ones(len(pts), dtype=torch.bool)
    _assert_same(index.query(queries, pts, 0.012, 3), _scratch(pts, filed, queries, 0.012, 3))


def test_capacity_growth_and_rebuild_keep_the_answers():
    g = torch.Generator().manual_seed(5)
    pts = torch.rand(3000, 3, generator=g)
    index = RadiusIndex(cell_size=0.05)
    for start in range(0, 3000, 100):  # grows from nothing in steps
        index.insert(pts, torch.arange(start, start + 100))
        index.update(pts, torch.arange(0, start + 100, 7))  # nothing moved: no new nodes
    assert index.num_nodes == 3000
    filed = torch.ones(3000, dtype=torch.bool)
    q = torch.rand(200, 3, generator=g)
    _assert_same(index.query(q, pts, 0.05, 5), _scratch(pts, filed, q, 0.05, 5))


def test_validation():
    index = RadiusIndex(cell_size=0.1)
    pts = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="cell_size must be finite and > 0"):
        RadiusIndex(cell_size=0.0)
    with pytest.raises(ValueError, match="slots must be distinct"):
        index.insert(pts, torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="slots must be >= 0 and < 4"):
        index.insert(pts, torch.tensor([4]))
    index.insert(pts, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="already filed"):
        index.insert(pts, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="not filed"):
        index.remove(torch.tensor([2]))
    with pytest.raises(ValueError, match="not filed"):
        index.update(pts, torch.tensor([3]))
    with pytest.raises(ValueError, match="radius must lie in"):
        index.query(torch.zeros(1, 3), pts, 3.2, 1)
    with pytest.raises(ValueError, match="queries must be"):
        index.query(torch.zeros(1, 3, dtype=torch.float64), pts, 0.1, 1)
    with pytest.raises(ValueError, match="points must be a contiguous"):
        index.query(torch.zeros(1, 3), torch.zeros(3, 4)[:, :3], 0.1, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_index_matches_cpu():
    g = torch.Generator().manual_seed(7)
    pts = torch.rand(5000, 3, generator=g)
    q = torch.rand(500, 3, generator=g)
    out = []
    for device in ("cpu", "cuda"):
        index = RadiusIndex(cell_size=0.04, device=device)
        p = pts.to(device)
        index.insert(p, torch.arange(4000, device=device))
        p[:100] += 0.1
        index.update(p, torch.arange(100, device=device))
        index.remove(torch.arange(100, 200, device=device))
        index.insert(p, torch.arange(4000, 5000, device=device))
        out.append(index.query(q.to(device), p, 0.04, 6))
    assert torch.equal(out[0].indices, out[1].indices.cpu())
    assert torch.equal(out[0].distances, out[1].distances.cpu())
