import math

import pytest
import torch

import gaussocc_ops as go


def test_hand_computed_values():
    d_proj = torch.tensor([2.0, 2.0, 3.0, 1.0])
    d_pred = torch.tensor([2.0, 2.2, 3.0, 1.0])
    logits = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.3, 0.0], [1.0, 0.0]])
    c = go.hybrid_confidence(
        d_proj, d_pred, logits, sigma_geo=0.2, temperature=0.5, tau_min=0.2, tau_max=0.8
    )
    top = [0.5, 1 / (1 + math.exp(-8)), 1 / (1 + math.exp(-0.6)), 1 / (1 + math.exp(-2))]
    c_sem = [min(1.0, max(0.0, (t - 0.2) / 0.6)) for t in top]
    c_geo = [1.0, math.exp(-0.04 / (2 * 0.04)), 1.0, 1.0]
    torch.testing.assert_close(c, torch.tensor([g * s for g, s in zip(c_geo, c_sem, strict=True)]))
    assert c_sem[1] == 1.0  # clamped above


def test_below_tau_min_and_invisible_give_zero():
    logits = torch.zeros(2, 10)  # uniform: top probability 0.1 < tau_min
    assert go.hybrid_confidence(torch.ones(2), torch.ones(2), logits).tolist() == [0.0, 0.0]
    sharp = torch.tensor([[9.0, 0.0], [9.0, 0.0]])
    visible = torch.tensor([True, False])
    c = go.hybrid_confidence(torch.ones(2), torch.ones(2), sharp, visible=visible)
    assert c[0] > 0.99 and c[1] == 0


def test_temperature_sharpens():
    logits = torch.tensor([[1.0, 0.0]])
    soft = go.hybrid_confidence(torch.ones(1), torch.ones(1), logits, temperature=1.0)
    sharp = go.hybrid_confidence(torch.ones(1), torch.ones(1), logits, temperature=0.5)
    assert sharp > soft


def test_broadcast_and_batch_dims():
    g = torch.Generator().manual_seed(0)
    d_proj = torch.rand(2, 3, 5, generator=g) + 1
    d_pred = torch.rand(5, generator=g) + 1
    logits = torch.randn(2, 3, 5, 4, generator=g)
    c = go.hybrid_confidence(d_proj, d_pred, logits)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(
                c[i, j], go.hybrid_confidence(d_proj[i, j], d_pred, logits[i, j])
            )


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    d_proj = (torch.rand(6, generator=g, dtype=torch.float64) + 1).requires_grad_()
    d_pred = (torch.rand(6, generator=g, dtype=torch.float64) + 1).requires_grad_()
    # logits inside the unclamped range of C_sem
    logits = (torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.3).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b, lg: go.hybrid_confidence(a, b, lg, temperature=1.0, tau_min=0.0, tau_max=1.0),
        (d_proj, d_pred, logits),
    )


def test_half_is_upcast_and_empty_is_valid():
    c = go.hybrid_confidence(torch.ones(3).half(), torch.ones(3).half(), torch.randn(3, 2).half())
    assert c.dtype == torch.float32
    assert go.hybrid_confidence(torch.ones(0), torch.ones(0), torch.ones(0, 4)).shape == (0,)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"logits": torch.zeros(3, 2)}, "logits must have shape"),
        ({"d_pred": torch.zeros(3)}, "do not broadcast"),
        ({"visible": torch.ones(4)}, "visible must be a bool"),
        ({"sigma_geo": 0.0}, "sigma_geo must be finite and > 0"),
        ({"temperature": -1.0}, "temperature must be finite and > 0"),
        ({"tau_min": 0.8, "tau_max": 0.2}, "tau_min < tau_max"),
    ],
)
def test_validation(kwargs, match):
    args = {"d_proj": torch.ones(4), "d_pred": torch.ones(4), "logits": torch.zeros(4, 2)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        go.hybrid_confidence(**args)
