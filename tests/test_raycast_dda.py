"""The NumPy DDA ray caster (baseline of the metrics benchmark) against a hand computation, the
sorted-crossings reference and the CPU kernel."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.reference import raycast as ref
from gaussocc_ops.reference.raycast_dda import raycast_dda


def random_rays(seed, shape=(6, 5, 4), rays=48, batch=2, fill=0.15, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    grid = go.VoxelGrid((-1.0, 0.5, -2.0), (0.7, 0.5, 1.1), shape)
    labels = torch.randint(1, 5, (batch, *shape), generator=g)
    labels[torch.rand(batch, *shape, generator=g) > fill] = 0
    lo, hi = torch.tensor(grid.origin), torch.tensor(grid.upper)
    origins = (lo - 1 + (hi - lo + 2) * torch.rand(batch, rays, 3, generator=g)).to(dtype)
    dirs = torch.randn(batch, rays, 3, generator=g, dtype=dtype)
    dirs[:, ::5, 0] = 0  # some rays parallel to the x faces
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    return grid, labels, origins, dirs


def dda(grid, labels, origins, dirs, max_distance=math.inf):
    return raycast_dda(
        labels.numpy(),
        origins.numpy(),
        dirs.numpy(),
        grid.origin,
        grid.voxel_size,
        0,
        max_distance,
    )


def test_hand_built_rays():
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 4, 1))
    labels = torch.zeros(1, 4, 4, 1, dtype=torch.long)
    labels[0, 3, 1, 0] = 7
    labels[0, 0, 3, 0] = 2
    s = 1 / math.sqrt(1.25)
    origins = torch.tensor([[[0.1, 0.2, 0.5], [-2.0, 3.5, 0.5], [0.5, 0.5, 0.5], [0.5, 3.0, 0.5]]])
    dirs = torch.tensor([[[s, 0.5 * s, 0.0], [1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]])
    distance, label = dda(grid, labels, origins.double(), dirs.double())
    # ray 0: y = 0.2 + 0.5 (x - 0.1) is 1.65 at x = 3, entering voxel (3, 1) through x = 3;
    # ray 1: enters the grid at x = 0 (t = 2) straight into voxel (0, 3);
    # ray 2: leaves through the top face without a hit; ray 3 starts on the face between the
    # occupied voxel (0, 3) and the free (0, 2) and moves into the free column: no hit.
    assert label.tolist() == [[7, 2, -1, -1]]
    assert distance[0, :2] == pytest.approx([2.9 / s, 2.0])
    assert np.isinf(distance[0, 2:]).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_matches_sorted_crossings_reference(seed):
    grid, labels, origins, dirs = random_rays(seed)
    distance, label = dda(grid, labels, origins, dirs)
    args = (list(grid.origin), list(grid.voxel_size), 0, math.inf)
    ref_distance, ref_label = ref.raycast(labels, origins, dirs, *args)
    np.testing.assert_array_equal(label, ref_label.numpy())
    np.testing.assert_allclose(distance, ref_distance.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("max_distance", [math.inf, 2.5])
def test_matches_cpu_kernel(dtype, max_distance):
    grid, labels, origins, dirs = random_rays(7, rays=200, fill=0.4, dtype=dtype)
    distance, label = dda(grid, labels, origins, dirs, max_distance)
    # the registered op itself: go.raycast would normalise the directions again
    out_distance, out_label = torch.ops.gaussocc.raycast(
        labels, origins, dirs, list(grid.origin), list(grid.voxel_size), 0, max_distance
    )
    assert 0.25 < (label >= 0).mean() < 1
    np.testing.assert_array_equal(label, out_label.numpy())
    np.testing.assert_array_equal(distance, out_distance.numpy())


def test_empty_ray_set():
    grid, labels, origins, dirs = random_rays(0, rays=0)
    distance, label = dda(grid, labels, origins, dirs)
    assert distance.shape == label.shape == (2, 0)
