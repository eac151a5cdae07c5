import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go

F64 = torch.float64


@settings(max_examples=25, deadline=None)
@given(
    a=st.lists(st.floats(-5, 5), min_size=1, max_size=6),
    shift=st.floats(-2, 2),
    alpha=st.floats(-2, 2),
    sigma=st.floats(0.05, 3),
)
def test_gate_against_scalar_math(a, shift, alpha, sigma):
    d_proj = torch.tensor(a, dtype=F64)
    d_pred = d_proj + shift * torch.linspace(0, 1, len(a), dtype=F64)
    gate = go.gaussian_depth_gate(d_proj, d_pred, alpha, sigma)
    expected = [
        alpha * math.exp(-((x - y) ** 2) / (2 * sigma**2))
        for x, y in zip(d_proj.tolist(), d_pred.tolist(), strict=True)
    ]
    torch.testing.assert_close(gate, torch.tensor(expected, dtype=F64))


def test_gate_broadcasts_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    d_proj = torch.rand(3, 1, generator=g, dtype=F64).requires_grad_()
    d_pred = torch.rand(1, 4, generator=g, dtype=F64).requires_grad_()
    alpha = torch.tensor(0.8, dtype=F64, requires_grad=True)
    sigma = torch.tensor([0.4], dtype=F64, requires_grad=True)
    assert go.gaussian_depth_gate(d_proj, d_pred, alpha, sigma).shape == (3, 4)
    assert torch.autograd.gradcheck(go.gaussian_depth_gate, (d_proj, d_pred, alpha, sigma))


def test_gate_bad_inputs():
    x = torch.rand(3)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        go.gaussian_depth_gate(x, x, 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        go.gaussian_depth_gate(x, x, 1.0, torch.tensor(-0.5))
    with pytest.raises(ValueError, match="must broadcast"):
        go.gaussian_depth_gate(x, torch.rand(4), 1.0, 0.5)
    with pytest.raises(ValueError, match="alpha must be a number or a one-element tensor"):
        go.gaussian_depth_gate(x, x, torch.ones(2), 0.5)
    with pytest.raises(TypeError, match="d_pred must be a floating-point"):
        go.gaussian_depth_gate(x, torch.ones(3, dtype=torch.int64), 1.0, 0.5)


def test_gate_module_parametrisation():
    gate = go.GaussianDepthGate()
    assert gate.alpha.item() == 1.0
    assert abs(gate.sigma.item() - 0.5) < 1e-7
    d_proj, d_pred = torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.5])
    torch.testing.assert_close(gate(d_proj, d_pred), torch.tensor([1.0, math.exp(-0.5)]))
    # A large step that would make a raw sigma negative leaves the log-parametrised one positive.
    opt = torch.optim.SGD(gate.parameters(), lr=100.0)
    gate(d_proj, d_pred).sum().neg().backward()
    assert gate.log_sigma.grad.abs() > 0 and gate.alpha.grad.abs() > 0
    opt.step()
    assert gate.sigma.item() > 0
    with pytest.raises(ValueError, match="sigma must be finite and > 0"):
        go.GaussianDepthGate(sigma=0.0)


def test_align_zero_residual_returns_clamped_prior():
    prior = torch.tensor([0.01, 0.1, 1.0, 7.5, 80.0, 500.0])
    out = go.inverse_depth_align(prior, torch.zeros(6))
    torch.testing.assert_close(out, prior.clamp(0.1, 80.0), rtol=1e-6, atol=0)
    exact = go.inverse_depth_align(prior.double(), torch.zeros(6, dtype=F64), eps=0.0)
    torch.testing.assert_close(exact, prior.double().clamp(0.1, 80.0), rtol=1e-15, atol=0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.sampled_from([0.0, 1e-8, 1e-4]))
def test_align_formula(seed, eps):
    g = torch.Generator().manual_seed(seed)
    prior = 0.5 + 30 * torch.rand(50, generator=g, dtype=F64)
    residual = 0.05 * torch.randn(50, generator=g, dtype=F64)
    out = go.inverse_depth_align(prior, residual, eps=eps, min_depth=0.1, max_depth=80.0)
    for p, r, o in zip(prior.tolist(), residual.tolist(), out.tolist(), strict=True):
        denom = min(max(1.0 / p + r + eps, 1.0 / 80.0), 1.0 / 0.1)
        assert o == pytest.approx(1.0 / denom, rel=1e-12)


def test_align_never_negative_or_infinite():
    prior = torch.tensor([[0.0, 1.0, 5.0, 90.0, float("inf")]]).expand(5, 5)
    residual = torch.tensor([-1e9, -1.0, -0.2, 0.0, 1e9])[:, None].expand(5, 5).clone()
    residual.requires_grad_()
    out = go.inverse_depth_align(prior, residual, min_depth=0.5, max_depth=60.0)
    assert bool(torch.isfinite(out).all())
    assert bool((out >= 0.5 - 1e-6).all() and (out <= 60.0 + 1e-3).all())
    # -1/D cancels the prior exactly: the denominator is clamped instead of dividing by zero.
    cancel = go.inverse_depth_align(torch.tensor([4.0]), torch.tensor([-0.25]), eps=0.0)
    assert cancel.item() == pytest.approx(80.0)
    out.sum().backward()
    assert bool(torch.isfinite(residual.grad).all())


def test_align_gradcheck_and_bad_inputs():
    g = torch.Generator().manual_seed(1)
    prior = (1 + 10 * torch.rand(2, 1, 3, 3, generator=g, dtype=F64)).requires_grad_()
    residual = (0.01 * torch.randn(2, 1, 3, 3, generator=g, dtype=F64)).requires_grad_()
    assert torch.autograd.gradcheck(go.inverse_depth_align, (prior, residual))
    with pytest.raises(ValueError, match="min_depth < max_depth"):
        go.inverse_depth_align(prior, residual, min_depth=5.0, max_depth=1.0)
    with pytest.raises(ValueError, match="must broadcast to prior_depth"):
        go.inverse_depth_align(prior, torch.zeros(4))
    with pytest.raises(ValueError, match="eps must be in"):
        go.inverse_depth_align(prior, residual, eps=1.0)


def test_alignment_module():
    torch.manual_seed(0)
    align = go.InverseDepthAlignment(4, kernel_size=3, max_depth=50.0)
    feats = torch.randn(2, 4, 6, 8)
    prior = 1 + 60 * torch.rand(2, 1, 6, 8)
    torch.testing.assert_close(align(feats, prior), prior.clamp(0.1, 50.0), rtol=1e-6, atol=0)
    with torch.no_grad():
        align.head.weight.normal_(0, 0.01)
        align.head.bias.fill_(0.01)
    expected = 1.0 / (
        1.0 / prior.clamp(0.1, 50.0)
        + F.conv2d(feats, align.head.weight, align.head.bias, padding=1)
        + 1e-8
    ).clamp(1 / 50.0, 1 / 0.1)
    out = align(feats, prior)
    torch.testing.assert_close(out, expected)
    out.mean().backward()
    assert align.head.weight.grad.abs().sum() > 0
    # Features at a lower resolution: the residual is upsampled bilinearly.
    big_prior = 1 + 60 * torch.rand(2, 1, 12, 16)
    up = F.interpolate(align.head(feats), size=(12, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(
        align(feats, big_prior), go.inverse_depth_align(big_prior, up, max_depth=50.0)
    )
    with pytest.raises(ValueError, match=r"prior_depth must be \[B, 1, H, W\]"):
        align(feats, prior.expand(2, 2, 6, 8))
    with pytest.raises(ValueError, match="features must be"):
        align(feats[:1], prior)


def test_identity_fusion_is_exact_at_init():
    torch.manual_seed(0)
    fuse = go.IdentityInitFusion(16, hist_channels=8)
    f_curr = torch.randn(3, 50, 16) * 1e3
    f_hist = torch.randn(3, 50, 8) * 1e3
    assert torch.equal(fuse(f_hist, f_curr), f_curr)
    assert torch.equal(fuse.weight_curr, torch.eye(16))


def test_identity_fusion_formula_after_training_step():
    torch.manual_seed(1)
    fuse = go.IdentityInitFusion(6)
    f_hist, f_curr = torch.randn(4, 6), torch.randn(4, 6)
    fuse(f_hist, f_curr).pow(2).sum().backward()
    assert fuse.weight_hist.grad.abs().sum() > 0 and fuse.delta_curr.grad.abs().sum() > 0
    with torch.no_grad():
        for p in fuse.parameters():
            p.add_(0.1 * torch.randn_like(p))
    W_h, W_c, b = fuse.weight_hist, fuse.weight_curr, fuse.bias
    expected = f_hist @ W_h.T + f_curr @ W_c.T + b
    torch.testing.assert_close(fuse(f_hist, f_curr), expected)
    with pytest.raises(ValueError, match=r"f_curr must have shape \[\.\.\., 6\]"):
        fuse(f_hist, torch.randn(4, 5))
    with pytest.raises(ValueError, match="share leading dims"):
        fuse(torch.randn(3, 6), f_curr)
