"""raycast: the CUDA kernel (emulated) against the CPU kernel. Hit labels bit-identical,
distances within the stated tolerance (the same Amanatides-Woo walk, raycast_math.h).

Kernel paths (csrc/cuda/raycast.cu, one thread per ray, 256 per block): several blocks with a
partial last one; B > 1 with different grids; origins inside the grid (a hit at distance 0 or
after a walk), outside (clipped to the box first) and exactly on a voxel face (moving in the
negative direction: the voxel behind the face); axis-parallel rays (zero direction components,
inside, outside and on the box boundary); rays through voxel edges and corners (faces crossed at
the same t); misses, hits cut by max_distance; a non-zero empty label; empty inputs.
"""

import math

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_close, assert_equal

SHAPE = (5, 4, 3)
ORIGIN = [-1.0, 0.5, -0.25]
VOXEL = [0.5, 1.0, 0.75]


def _run_both(cpu, emu, labels, o, d, origin, voxel, empty, max_dist):
    want = cpu.raycast(labels, o, d, origin, voxel, empty, max_dist)
    got = emu.raycast(labels, o, d, origin, voxel, empty, max_dist)
    assert_equal(got[1], want[1], "hit label")
    assert_close(got[0], want[0], "distance")
    return want


def _rays(dtype, g):
    lo = torch.tensor(ORIGIN, dtype=torch.float64)
    size = torch.tensor(VOXEL, dtype=torch.float64) * torch.tensor(SHAPE, dtype=torch.float64)
    rays_o, rays_d = [], []
    # random rays from inside and around the box
    o = lo - 1.0 + (size + 2.0) * torch.rand(300, 3, generator=g, dtype=torch.float64)
    d = torch.nn.functional.normalize(torch.randn(300, 3, generator=g, dtype=torch.float64), dim=1)
    rays_o.append(o)
    rays_d.append(d)
    # axis-parallel rays: inside, outside, on the lower and upper boundary of the box
    for axis in range(3):
        for sign in (1.0, -1.0):
            for start in ("inside", "outside", "lower", "upper"):
                o = lo + size * torch.tensor([0.37, 0.61, 0.45], dtype=torch.float64)
                if start == "outside":
                    o[(axis + 1) % 3] = lo[(axis + 1) % 3] - 0.5
                elif start == "lower":
                    o[(axis + 1) % 3] = lo[(axis + 1) % 3]
                elif start == "upper":
                    o[(axis + 1) % 3] = lo[(axis + 1) % 3] + size[(axis + 1) % 3]
                d = torch.zeros(3, dtype=torch.float64)
                d[axis] = sign
                rays_o.append(o[None])
                rays_d.append(d[None])
    # origins exactly on inner voxel faces, moving either way along that axis
    for axis in range(3):
        for sign in (1.0, -1.0):
            o = lo + size * torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64)
            o[axis] = lo[axis] + 2 * VOXEL[axis]
            d = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
            d[axis] = sign
            rays_o.append(o[None])
            rays_d.append(torch.nn.functional.normalize(d, dim=0)[None])
    # through voxel corners and edges (several faces crossed at the same t)
    corner = lo + torch.tensor(VOXEL, dtype=torch.float64)
    step = torch.tensor(VOXEL, dtype=torch.float64)
    for k in range(3):
        o = corner - step * 0.5
        d = step.clone()
        d[k] = 0.0
        rays_o.append(o[None])
        rays_d.append(torch.nn.functional.normalize(d, dim=0)[None])
    rays_o.append((lo - step)[None])
    rays_d.append(torch.nn.functional.normalize(step, dim=0)[None])
    o = torch.cat(rays_o).to(dtype)
    d = torch.cat(rays_d).to(dtype)
    return o, d


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("max_dist", [math.inf, 2.0])
def test_raycast_paths(cpu, emu, dtype, max_dist):
    g = torch.Generator().manual_seed(3)
    o, d = _rays(dtype, g)
    R = o.shape[0]
    B = 2
    labels = torch.randint(0, 6, (B, *SHAPE), generator=g)
    labels = torch.where(torch.rand(B, *SHAPE, generator=g) < 0.75, 17, labels)  # 17: empty
    labels[1, 2, 1, 1] = 17
    o = torch.stack([o, o.flip(0)])
    d = torch.stack([d, d.flip(0)])
    want = _run_both(cpu, emu, labels, o, d, ORIGIN, VOXEL, 17, max_dist)
    assert R > 256
    hits = want[1] >= 0
    assert hits.any() and (~hits).any()
    assert (want[0][hits] == 0).any() and (want[0][hits] > 0).any()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_raycast_all_empty_and_all_full(cpu, emu, dtype):
    g = torch.Generator().manual_seed(4)
    o, d = _rays(dtype, g)
    labels = torch.stack(
        [torch.zeros(SHAPE, dtype=torch.long), torch.ones(SHAPE, dtype=torch.long)]
    )
    o = torch.stack([o, o])
    d = torch.stack([d, d])
    want = _run_both(cpu, emu, labels, o, d, ORIGIN, VOXEL, 0, math.inf)
    assert (want[1][0] == -1).all() and (want[1][1] == 1).any()


def test_raycast_empty(cpu, emu):
    labels = torch.zeros(2, *SHAPE, dtype=torch.long)
    o = torch.zeros(2, 0, 3)
    _run_both(cpu, emu, labels, o, o.clone(), ORIGIN, VOXEL, 0, 10.0)
