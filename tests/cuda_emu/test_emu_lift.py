"""soft_gated_lift (forward and backward): the CUDA kernels (emulated) against the CPU kernels,
within the stated tolerance.

Kernel paths (csrc/cuda/lift.cu): forward, one thread per output element (b, q, c), 256 per
block: several blocks with a partial last one, invalid queries (no write), samples whose four
taps are all inside, partly outside (map edges) and all outside (far away, or NaN-free but
beyond the map), K = 0 (no launch). Backward, one warp per sample, 8 per block: a last block
with idle warps, invalid queries (whole warps leave), channels across the lane width (C in 1, 3,
18, 19, 32, 33, 40, 64: lanes stride over channels, then warp reductions), map gradients by
atomics from many samples onto the same pixels.
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_close, assert_outputs

BWD_NAMES = ("g_features", "g_depth", "g_d_proj", "g_offsets", "g_attn", "g_alpha", "g_sigma")


def inputs(B, H, W, C, Q, K, dtype, g):
    def r(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    features = torch.randn(B, H, W, C, generator=g, dtype=torch.float64)
    depth = 2.0 + 3.0 * r(B, H, W)
    ref = torch.stack([r(B, Q) * W, r(B, Q) * H], -1)
    d_proj = 2.0 + 3.0 * r(B, Q)
    valid = r(B, Q) > 0.2
    offsets = (r(B, Q, K, 2) - 0.5) * 4.0
    if Q > 2 and K > 0:
        offsets[:, 0, 0] = torch.tensor([-100.0, 3.0])  # every tap outside
        offsets[:, 1, :] = 0.0
        ref[:, 1] = torch.tensor([0.2, H - 0.1])  # on the map's corner: taps partly outside
        offsets[:, 2, 0] = torch.tensor([W + 1.2, 0.0])  # just beyond the right edge
        valid[:, :3] = True
    attn = torch.softmax(torch.randn(B, Q, K, generator=g, dtype=torch.float64), -1)
    alpha = torch.tensor(0.8, dtype=torch.float64)
    sigma = torch.tensor(0.7, dtype=torch.float64)
    ts = [features, depth, ref, d_proj, offsets, attn, alpha, sigma]
    features, depth, ref, d_proj, offsets, attn, alpha, sigma = [t.to(dtype) for t in ts]
    return features, depth, ref, d_proj, valid, offsets, attn, alpha, sigma


def run_both(cpu, emu, B, H, W, C, Q, K, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    args = inputs(B, H, W, C, Q, K, dtype, g)
    want = cpu.soft_gated_lift(*args)
    got = emu.soft_gated_lift(*args)
    assert_close(got, want, "out")
    grad_out = torch.randn(B, Q, C, generator=g, dtype=torch.float64).to(dtype)
    bwant = cpu.soft_gated_lift_backward(grad_out, *args)
    bgot = emu.soft_gated_lift_backward(grad_out, *args)
    assert_outputs(bgot, bwant, BWD_NAMES)
    return args, want, bwant


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_lift_batched_paths(cpu, emu, dtype):
    B, H, W, C, Q, K = 2, 6, 7, 5, 37, 3  # forward: 370 outputs, backward: 222 samples
    args, want, bwant = run_both(cpu, emu, B, H, W, C, Q, K, dtype, seed=1)
    valid = args[4]
    assert (~valid).any() and (want[~valid] == 0).all()
    assert (want[:, 0] != 0).any()  # the other samples of query 0 still contribute


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("C", [1, 3, 18, 19, 32, 33, 40, 64])
def test_lift_channels(cpu, emu, dtype, C):
    run_both(cpu, emu, 1, 5, 4, C, 9, 4, dtype, seed=C)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "sizes",
    [(2, 4, 5, 3, 6, 0), (2, 4, 5, 3, 0, 2), (0, 4, 5, 3, 6, 2), (2, 4, 5, 0, 6, 2)],
    ids=["K0", "Q0", "B0", "C0"],
)
def test_lift_empty(cpu, emu, dtype, sizes):
    run_both(cpu, emu, *sizes, dtype, seed=0)
