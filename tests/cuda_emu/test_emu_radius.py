"""radius_neighbors: the CUDA kernel (emulated) against the CPU kernel. Neighbour indices
bit-identical, distances within the stated tolerance (the same search, radius_math.h).

Kernel paths (csrc/cuda/radius.cu, one thread per query, 128 per block): several blocks with a
partial last one; B > 1 (a grid per batch); queries with no neighbour, with fewer than K and
with more than K (the sorted list replaces its last entry); equal distances (ties by index);
queries outside the points' grid; radius 0; K = 0, N = 0 and M = 0 (no launch).
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_close, assert_equal


def _run_both(cpu, emu, q, p, radius, k, cell):
    want = cpu.radius_neighbors(q, p, radius, k, cell)
    got = emu.radius_neighbors(q, p, radius, k, cell)
    assert_equal(got[0], want[0], "neighbour index")
    assert_close(got[1], want[1], "distance")
    return want


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("cell", [0.0, 0.13])
def test_radius_paths(cpu, emu, dtype, cell):
    g = torch.Generator().manual_seed(5)
    B, N, M, K = 2, 400, 150, 6
    p = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
    # a lattice block of points: many exactly equal distances from a lattice query
    lattice = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1).reshape(
        -1, 3
    )
    p[:, :64] = 0.1 * lattice + 0.2
    q = torch.rand(B, M, 3, generator=g, dtype=torch.float64) * 1.6 - 0.3  # some outside
    q[:, 0] = 0.1 * torch.tensor([1.0, 1.0, 1.0]) + 0.2  # on the lattice: 6 ties at 0.1
    q[:, 1] = torch.tensor([5.0, 5.0, 5.0])  # far outside the grid
    p, q = p.to(dtype), q.to(dtype)
    want = _run_both(cpu, emu, q, p, 0.1 + 1e-6, K, cell)
    found = (want[0] >= 0).sum(-1)
    assert (found == 0).any() and ((found > 0) & (found < K)).any() and (found == K).any()
    assert B * M > 128
    # more than K within the radius somewhere (the replacement path)
    d = torch.cdist(q.double(), p.double())
    assert ((d <= 0.1).sum(-1) > K).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_radius_zero_and_coincident(cpu, emu, dtype):
    p = torch.tensor([[[0.5, 0.5, 0.5]] * 5 + [[0.7, 0.5, 0.5]]], dtype=dtype)
    q = torch.tensor([[[0.5, 0.5, 0.5], [0.7, 0.5, 0.5], [0.6, 0.5, 0.5]]], dtype=dtype)
    want = _run_both(cpu, emu, q, p, 0.0, 3, 0.0)
    assert want[0][0, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    "sizes", [(2, 0, 5, 3), (2, 7, 0, 3), (2, 7, 5, 0)], ids=["M0", "N0", "K0"]
)
def test_radius_empty(cpu, emu, sizes):
    B, M, N, K = sizes
    q = torch.rand(B, M, 3)
    p = torch.rand(B, N, 3)
    _run_both(cpu, emu, q, p, 0.3, K, 0.0)
