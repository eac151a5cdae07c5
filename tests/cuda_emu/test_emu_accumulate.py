"""accumulate_gaussians (forward and backward, the three modes): the CUDA kernels (emulated)
against the CPU kernels. num_opaque bit-identical, floats within the stated tolerance.

Kernel paths (csrc/cuda/accumulate.cu, one warp per Gaussian, 8 warps per block):
* several blocks and a last block with idle warps (B * N not a multiple of 8);
* B > 1 with invalid (padded) Gaussians, Gaussians of opacity 0 (skipped by the forward, not by
  the backward) and Gaussians whose box misses the grid or is clipped by it;
* boxes of fewer than 32 voxels (idle lanes) and of several 32-voxel strides;
* channels across the lane width: C in 1, 3, 18, 19, 32, 33, 40, 64 (lanes own channels c,
  c + 32, ...);
* probabilistic modes with opaque factors (alpha = 1 exactly: num_opaque 1 and 2) and the
  "transmittance of the others" branches in the backward; the finishing kernel (probabilities in
  place, the empty channel first, inside and last) and the per-voxel backward factors, including
  voxels where the class mixture is undefined (probabilistic: W = 0; gaussianformer2: W <= 1e-9,
  the fill of 1/C or 1/(C+1));
* gaussianformer2: cube supports (every voxel of the box, no ellipsoid test), Gaussians of
  opacity 0 that still add to the occupancy, means outside the grid (truncated voxel index);
* output gradients read through their strides: contiguous, permuted ([B, C + 1, V] memory, as a
  loss over probs [B, C + 1, X, Y, Z] produces) and zero-stride (an unused output);
* empty inputs.
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_outputs

FWD_NAMES = ("occupancy", "probs", "weight", "log_transmittance", "num_opaque")
MODES = {"sum": 0, "prob": 1, "gf2": 2}
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


def grads_like(probs, g, layout):
    """An output gradient of probs [B, V, K] in the given memory layout."""
    B, V, K = probs.shape
    if layout == "zero":
        return probs.new_zeros(()).expand(B, V, K)
    full = torch.randn(B, K, V, generator=g, dtype=torch.float64).to(probs.dtype)
    if layout == "permuted":
        return full.transpose(1, 2)
    return full.transpose(1, 2).contiguous()


def run_both(
    cpu, emu, B, N, C, dtype, mode, seed=0, radius=3.0, empty=None, fill=0.25, layout="contiguous"
):
    g = torch.Generator().manual_seed(seed)
    means, quats, scales, opac, feats, valid = scene(B, N, C, dtype, g)
    m = MODES[mode]
    empty = C if empty is None else empty
    cfg = (radius, m, empty if m else 0, fill)
    args = (means, quats, scales, opac, feats, valid, ORIGIN, VOXEL, SHAPE, *cfg)
    want = cpu.accumulate_gaussians(*args)
    got = emu.accumulate_gaussians(*args)
    assert_outputs(got, want, FWD_NAMES, ("num_opaque",))
    V = SHAPE[0] * SHAPE[1] * SHAPE[2]
    g_occ = torch.randn(B, V, generator=g, dtype=torch.float64).to(dtype)
    g_probs = grads_like(want[1], g, layout)
    bargs = (
        means, quats, scales, opac, feats, valid, *want[1:], g_occ, g_probs,
        ORIGIN, VOXEL, SHAPE, *cfg,
    )  # fmt: skip
    bwant = cpu.accumulate_gaussians_backward(*bargs)
    bgot = emu.accumulate_gaussians_backward(*bargs)
    assert_outputs(bgot, bwant, BWD_NAMES)
    return want, bwant


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mode", ["sum", "prob", "gf2"])
def test_accumulate_batched_paths(cpu, emu, dtype, mode):
    B, N, C = 3, 27, 5  # 81 Gaussians: 11 blocks, the last with one live warp
    radius = 1.0 if mode == "gf2" else 3.0
    want, bwant = run_both(cpu, emu, B, N, C, dtype, mode, seed=1, radius=radius, empty=2)
    if mode != "sum":
        n_opaque = want[4]
        assert (n_opaque == 2).any() and (n_opaque == 1).any()
        assert ((want[0] > 0) & (want[0] < 1)).any()
    if mode == "gf2":
        # voxels outside every cube: the mixture is the fill, times o = 0
        assert (want[2] == 0).any() and (want[2] > 1e-9).any()
    # opacity-0 Gaussians still get a gradient for their opacity from the backward
    assert (bwant[3][:, 1] != 0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("layout", ["contiguous", "permuted", "zero"])
@pytest.mark.parametrize("mode", ["prob", "gf2"])
def test_accumulate_gradient_layouts(cpu, emu, dtype, layout, mode):
    run_both(cpu, emu, 2, 10, 4, dtype, mode, seed=3, radius=2.0, empty=0, layout=layout)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_accumulate_gf2_undefined_mixture(cpu, emu, dtype):
    """Tiny opacities put most voxels' summed weight below GaussianFormer-2's 1e-9 while their
    occupancy stays large: the fill 1/(C+1) times o, and its gradient, on both kernels."""
    B, N, C = 2, 9, 3
    g = torch.Generator().manual_seed(5)
    means, quats, scales, opac, feats, valid = scene(B, N, C, dtype, g)
    opac = torch.full_like(opac, 1e-12)
    cfg = (2.0, 2, 1, 1.0 / (C + 1))
    args = (means, quats, scales, opac, feats, valid, ORIGIN, VOXEL, SHAPE, *cfg)
    want = cpu.accumulate_gaussians(*args)
    assert ((want[2] > 0) & (want[2] <= 1e-9) & (want[0] > 0.1)).any()
    assert_outputs(emu.accumulate_gaussians(*args), want, FWD_NAMES, ("num_opaque",))
    V = SHAPE[0] * SHAPE[1] * SHAPE[2]
    bargs = (
        means, quats, scales, opac, feats, valid, *want[1:],
        torch.randn(B, V, generator=g, dtype=torch.float64).to(dtype),
        grads_like(want[1], g, "permuted"), ORIGIN, VOXEL, SHAPE, *cfg,
    )  # fmt: skip
    assert_outputs(
        emu.accumulate_gaussians_backward(*bargs),
        cpu.accumulate_gaussians_backward(*bargs),
        BWD_NAMES,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [1, 3, 18, 19, 32, 33, 40, 64])
def test_accumulate_channels(cpu, emu, dtype, C):
    mode = ("sum", "prob", "gf2")[C % 3]
    run_both(
        cpu, emu, 1, 12, C, dtype, mode, seed=C, radius=1.0 if mode == "gf2" else 3.0, empty=C // 2
    )


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
    for m in (0, 1, 2):
        cfg = (3.0, m, 0, 0.5)
        args = (means, quats, scales, opac, feats, valid, ORIGIN, VOXEL, SHAPE, *cfg)
        want = cpu.accumulate_gaussians(*args)
        got = emu.accumulate_gaussians(*args)
        assert_outputs(got, want, FWD_NAMES, ("num_opaque",))
        V = SHAPE[0] * SHAPE[1] * SHAPE[2]
        grads = [torch.randn(B, V, dtype=dtype), torch.randn(want[1].shape, dtype=dtype)]
        bargs = (
            means, quats, scales, opac, feats, valid, *want[1:], *grads,
            ORIGIN, VOXEL, SHAPE, *cfg,
        )  # fmt: skip
        assert_outputs(
            emu.accumulate_gaussians_backward(*bargs),
            cpu.accumulate_gaussians_backward(*bargs),
            BWD_NAMES,
        )
