"""Accumulation against its oracle with the op's own signature (gaussocc_ops.reference.accumulate):
the CPU kernel ``accumulate_gaussians`` and the oracle called with the same arguments, in float64.

The end-to-end tests (test_accumulate.py) compare the public function across backends; here the
op's five outputs are held one by one (the accumulated sums, the backward's bookkeeping, the
finished probabilities) and the gradients of the op are the oracle's autograd gradients."""

import pytest
import torch
from test_accumulate import random_gaussians

from gaussocc_ops import _ext
from gaussocc_ops.reference import accumulate as ref

GRID = ([-0.2, 0.1, -0.3], [0.4, 0.3, 0.5], [7, 9, 4])
# (radius, mode, empty_index, fill), the op's last arguments: additive, probabilistic,
# GaussianFormer-2
CONFIGS = [
    (3.0, 0, 0, 0.0), (3.0, 1, 2, 0.0), (2.0, 1, 0, 0.0), (2.0, 2, 4, 0.25), (1.5, 2, 1, 0.2)
]  # fmt: skip
NAMES = ["occupancy", "probs", "weight", "log_transmittance", "num_opaque"]


def _ops():
    assert _ext.has_op("accumulate_gaussians"), "the CPU accumulation kernels are not built"
    return torch.ops.gaussocc


def _tensors(seed, B=2, N=9, C=4, opaque=False):
    g = random_gaussians(seed, B=B, N=N, C=C, dtype=torch.float64)
    opacities = g.opacities
    means = g.means
    if opaque:
        # fully opaque Gaussians centred on a voxel centre: factors 1 - a g = 0 (num_opaque)
        opacities = opacities.clone()
        opacities[:, :3] = 1.0
        means = means.clone()
        means[:, :3] = torch.tensor([0.0, 0.25, -0.05], dtype=torch.float64)
        means[0, 1] = torch.tensor([0.6, 0.55, 0.45], dtype=torch.float64)
    valid = g.valid.clone()
    valid[:, :3] = True
    return [means, g.quats, g.scales, opacities, g.features, valid]


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("opaque", [False, True])
def test_op_outputs_match_oracle(cfg, opaque):
    ops = _ops()
    args = (*_tensors(3, opaque=opaque), *GRID, *cfg)
    got = ops.accumulate_gaussians(*args)
    want = ref.accumulate_gaussians(*args)
    for name, x, y in zip(NAMES[:4], got[:4], want[:4], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12, msg=name)
    assert torch.equal(got[4], want[4]), "num_opaque"
    mode = cfg[1]
    if mode == 0:
        assert got[2].shape == (2, 0)
    else:
        # something was accumulated, and the opaque scene has the factors the count is for
        assert want[0].max() > 0.5
        assert bool((want[4] > 0).any()) == opaque
        torch.testing.assert_close(want[1].sum(-1), torch.ones_like(want[0]))


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("opaque", [False, True])
def test_op_gradients_match_oracle(cfg, opaque):
    ops = _ops()
    tensors = _tensors(7, N=6, opaque=opaque)
    inputs = [t.clone().requires_grad_() for t in tensors[:5]]
    gen = torch.Generator().manual_seed(1)

    def grads(fn):
        occupancy, probs = fn(*inputs, tensors[5], *GRID, *cfg)[:2]
        w_occ = torch.randn(occupancy.shape, generator=gen.manual_seed(1), dtype=torch.float64)
        w_probs = torch.randn(probs.shape, generator=gen.manual_seed(2), dtype=torch.float64)
        loss = (occupancy * w_occ).sum() + (probs * w_probs).sum()
        return torch.autograd.grad(loss, inputs)

    names = ["means", "quats", "scales", "opacities", "features"]
    for name, x, y in zip(names, grads(ops.accumulate_gaussians), grads(ref.accumulate_gaussians),
                          strict=True):  # fmt: skip
        torch.testing.assert_close(x, y, rtol=1e-8, atol=1e-10, msg=name)
        assert y.abs().max() > 0, name  # every input's gradient is exercised


@pytest.mark.parametrize("cfg", CONFIGS[1:])
def test_finishing_stage_matches_the_op(cfg):
    """The kernel's probs from its own sums: the oracle's finishing stage, fed the kernel's
    occupancy and weight and the oracle's weighted features, gives the kernel's probs."""
    ops = _ops()
    radius, mode, empty_index, fill = cfg
    args = (*_tensors(5), *GRID, *cfg)
    occupancy, probs, weight = ops.accumulate_gaussians(*args)[:3]
    sums = ref.voxel_sums(args[:6], *args[6:-2])
    weighted = sums[2]
    got = ref.finish_voxels(occupancy, weight, weighted, mode, empty_index, fill)
    torch.testing.assert_close(got, probs, rtol=1e-10, atol=1e-12)
    # and the accumulation stage alone: the kernel's occupancy from its log-space bookkeeping
    torch.testing.assert_close(sums[0], occupancy, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(sums[1], weight, rtol=1e-10, atol=1e-12)


def test_oracle_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 0, 1 or 2"):
        ref.accumulate_gaussians(*_tensors(1), *GRID, 3.0, 3, 0, 0.0)
