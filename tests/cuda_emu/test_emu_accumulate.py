"""accumulate_gaussians (forward and backward, both modes): the CUDA kernels (emulated) against
the CPU kernels. num_opaque bit-identical, floats within the stated tolerance.

Kernel paths (csrc/cuda/accumulate.cu, one warp per Gaussian, 8 warps per block):
* several blocks and a last block with idle warps (B * N not a multiple of 8);
* B > 1 with invalid (padded) Gaussians, Gaussians of opacity 0 (skipped by the forward, not by
  the backward) and Gaussians whose box misses the grid or is clipped by it;
* boxes of fewer than 32 voxels (idle lanes) and of several 32-voxel strides;
* channels across the lane width: C in 1, 3, 18, 19, 32, 33, 40, 64 (lanes own channels c,
  c + 32, ...);
* probabilistic mode with opaque factors (alpha = 1 exactly: num_opaque 1 and 2) and the
  "transmittance of the others" branches in the backward; empty inputs.
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_outputs

FWD_NAMES = ("occupancy", "weight", "weighted_features", "log_transmittance", "num_opaque")
BWD_NAMES = ("g_means", "g_quats", "g_scales", "g_opacities", "g_features")
ORIGIN = [-1.0, -0.5, 0.0]
VOXEL = [0.25, 0.25, 0.5]
SHAPE = [8, 6, 4]


def scene(B, N, C, dtype, g):
    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    lo = torch.tensor(ORIGIN, dtype=torch.float64)
    size = torch.tensor(VOXEL, dtype=torch.float64) * torch.tensor(SHAPE, dtype=torch.float64)
    means = lo - 0.2 + (size + 0.4) * r(B, N, 3)
    quats = torch.randn(B, N, 4, generator=g, dtype=torch.float64)
    scales = 0.05 + 0.3 * r(B, N, 3)
    opac = 0.1 + 0.8 * r(B, N)
    feats = torch.randn(B, N, C, generator=g, dtype=torch.float64)
    valid = r(B, N) > 0.15
    # special Gaussians (each batch element)
    means[:, 0] = lo - 3.0  # box misses the grid
    opac[:, 1] = 0.0  # opacity 0
    valid[:, 1] = True
    scales[:, 2] = 0.02  # a box of one voxel (31 idle lanes)
    scales[:, 3] = torch.tensor([0.6, 0.5, 0.9])  # a box of many 32-voxel strides, clipped
    valid[:, 2:4] = True
    # opaque at a voxel centre: alpha = opacity * exp(0) = 1 exactly, twice in one voxel
    centre = lo + (torch.tensor([3, 2, 1], dtype=torch.float64) + 0.5) * torch.tensor(VOXEL)
    for n in (4, 5):
        means[:, n] = centre
        opac[:, n] = 1.0
        scales[:, n] = 0.1
        valid[:, n] = True
    centre2 = lo + (torch.tensor([6, 4, 2], dtype=torch.float64) + 0.5) * torch.tensor(VOXEL)
    means[:, 6] = centre2  # one opaque factor in another voxel
    opac[:, 6] = 1.0
    scales[:, 6] = 0.2
    valid[:, 6] = True
    valid[-1, N // 2 :] = False  # padding of the last batch element
    return [t.to(dtype) for t in (means, quats, scales, opac, feats)] + [valid]


def run_both(cpu, emu, B, N, C, dtype, probabilistic, seed=0, radius_sigma=3.0):
    g = torch.Generator().manual_seed(seed)
    means, quats, scales, opac, feats, valid = scene(B, N, C, dtype, g)
    args = (
        means,
        quats,
        scales,
        opac,
        feats,
        valid,
        ORIGIN,
        VOXEL,
        SHAPE,
        radius_sigma,
        probabilistic,
    )
    want = cpu.accumulate_gaussians(*args)
    got = emu.accumulate_gaussians(*args)
    assert_outputs(got, want, FWD_NAMES, ("num_opaque",))
    V = SHAPE[0] * SHAPE[1] * SHAPE[2]
    g_occ = torch.randn(B, V, generator=g, dtype=torch.float64).to(dtype)
    g_w = torch.randn(B, V, generator=g, dtype=torch.float64).to(dtype)
    g_wf = torch.randn(B, V, C, generator=g, dtype=torch.float64).to(dtype)
    bargs = (
        means,
        quats,
        scales,
        opac,
        feats,
        valid,
        want[3],
        want[4],
        g_occ,
        g_w,
        g_wf,
        ORIGIN,
        VOXEL,
        SHAPE,
        radius_sigma,
        probabilistic,
    )
    bwant = cpu.accumulate_gaussians_backward(*bargs)
    bgot = emu.accumulate_gaussians_backward(*bargs)
    assert_outputs(bgot, bwant, BWD_NAMES)
    return want, bwant


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("probabilistic", [False, True], ids=["sum", "prob"])
def test_accumulate_batched_paths(cpu, emu, dtype, probabilistic):
    B, N, C = 3, 27, 5  # 81 Gaussians: 11 blocks, the last with one live warp
    want, bwant = run_both(cpu, emu, B, N, C, dtype, probabilistic, seed=1)
    if probabilistic:
        n_opaque = want[4]
        assert (n_opaque == 2).any() and (n_opaque == 1).any()
        assert ((want[0] > 0) & (want[0] < 1)).any()
    # opacity-0 Gaussians still get a gradient for their opacity from the backward
    assert (bwant[3][:, 1] != 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [1, 3, 18, 19, 32, 33, 40, 64])
def test_accumulate_channels(cpu, emu, dtype, C):
    run_both(cpu, emu, 1, 12, C, dtype, probabilistic=C % 2 == 1, seed=C)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("sizes", [(2, 0, 3), (0, 4, 3), (2, 4, 0)], ids=["N0", "B0", "C0"])
def test_accumulate_empty(cpu, emu, dtype, sizes):
    B, N, C = sizes
    g = torch.Generator().manual_seed(0)
    means = torch.rand(B, N, 3, generator=g, dtype=dtype)
    quats = torch.randn(B, N, 4, generator=g, dtype=dtype)
    scales = torch.full((B, N, 3), 0.2, dtype=dtype)
    opac = torch.full((B, N), 0.5, dtype=dtype)
    feats = torch.randn(B, N, C, generator=g, dtype=dtype)
    valid = torch.ones(B, N, dtype=torch.bool)
    for prob in (False, True):
        args = (means, quats, scales, opac, feats, valid, ORIGIN, VOXEL, SHAPE, 3.0, prob)
        want = cpu.accumulate_gaussians(*args)
        got = emu.accumulate_gaussians(*args)
        assert_outputs(got, want, FWD_NAMES, ("num_opaque",))
        V = SHAPE[0] * SHAPE[1] * SHAPE[2]
        grads = [
            torch.randn(B, V, dtype=dtype),
            torch.randn(B, V, dtype=dtype),
            torch.randn(B, V, C, dtype=dtype),
        ]
        bargs = (
            means,
            quats,
            scales,
            opac,
            feats,
            valid,
            want[3],
            want[4],
            *grads,
            ORIGIN,
            VOXEL,
            SHAPE,
            3.0,
            prob,
        )
        assert_outputs(
            emu.accumulate_gaussians_backward(*bargs),
            cpu.accumulate_gaussians_backward(*bargs),
            BWD_NAMES,
        )
