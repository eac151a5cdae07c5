import math

import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops import _ext
from gaussocc_ops.lift import project_queries

F64 = torch.float64


def make_inputs(B=2, C=3, H=6, W=8, Q=10, K=3, dtype=F64, seed=0, behind=0.2):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(B, C, H, W, generator=g, dtype=dtype)
    depth = 2.0 + torch.rand(B, 1, H, W, generator=g, dtype=dtype)
    Ks = torch.tensor([[6.0, 0.0, W / 2], [0.0, 6.0, H / 2], [0.0, 0.0, 1.0]], dtype=dtype)
    Ks = Ks.expand(B, 3, 3).clone()
    angle = 0.2 * torch.rand(B, generator=g, dtype=dtype)
    viewmats = torch.eye(4, dtype=dtype).repeat(B, 1, 1)
    viewmats[:, 0, 0], viewmats[:, 0, 2] = angle.cos(), angle.sin()
    viewmats[:, 2, 0], viewmats[:, 2, 2] = -angle.sin(), angle.cos()
    viewmats[:, :3, 3] = 0.1 * torch.randn(B, 3, generator=g, dtype=dtype)
    queries = torch.randn(B, Q, 3, generator=g, dtype=dtype) * 0.8
    queries[..., 2] += 2.5
    flip = torch.rand(B, Q, generator=g) < behind  # some queries behind the camera
    queries[..., 2] = torch.where(flip, -queries[..., 2], queries[..., 2])
    offsets = 1.5 * torch.randn(B, Q, K, 2, generator=g, dtype=dtype)
    attn = torch.rand(B, Q, K, generator=g, dtype=dtype)
    return features, depth, queries, (Ks, viewmats), offsets, attn


def lift_and_grads(backend, features, depth, queries, cams, offsets, attn, alpha, sigma):
    leaves = [
        t.detach().clone().requires_grad_()
        for t in (features, depth, queries, offsets, attn, alpha, sigma)
    ]
    f, d, q, o, a, al, si = leaves
    out = go.soft_gated_lift(f, d, q, cams, o, a, al, si, backend=backend)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    grads = torch.autograd.grad((out * weights).sum() + (out**2).sum(), leaves, allow_unused=True)
    return out.detach(), grads


def test_extension_has_lift_kernels():
    assert _ext.has_op("soft_gated_lift"), go.build_info()["error"]
    assert _ext.has_op("soft_gated_lift_backward")


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 2),
    C=st.integers(1, 5),
    H=st.integers(1, 7),
    W=st.integers(1, 7),
    Q=st.integers(0, 12),
    K=st.integers(1, 4),
    seed=st.integers(0, 10_000),
    sigma=st.floats(0.2, 2.0),
    alpha=st.floats(-1.0, 2.0),
)
def test_cpu_matches_reference(B, C, H, W, Q, K, seed, sigma, alpha):
    inputs = make_inputs(B, C, H, W, Q, K, seed=seed)
    scalars = (torch.tensor(alpha, dtype=F64), torch.tensor(sigma, dtype=F64))
    out_ref, g_ref = lift_and_grads("reference", *inputs, *scalars)
    out_cpu, g_cpu = lift_and_grads("cpu", *inputs, *scalars)
    torch.testing.assert_close(out_cpu, out_ref, rtol=1e-9, atol=1e-10)
    names = ("features", "depth", "queries", "offsets", "attn", "alpha", "sigma")
    for name, a, b in zip(names, g_cpu, g_ref, strict=True):
        a = torch.zeros(()) if a is None else a
        b = torch.zeros(()) if b is None else b
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-9, msg=f"gradient of {name}")


def test_float32_matches_reference():
    inputs = make_inputs(B=2, C=16, H=12, W=16, Q=200, K=8, dtype=torch.float32, seed=3)
    alpha, sigma = torch.tensor(0.9), torch.tensor(0.5)
    out_ref, g_ref = lift_and_grads("reference", *inputs, alpha, sigma)
    out_cpu, g_cpu = lift_and_grads("cpu", *inputs, alpha, sigma)
    assert out_cpu.dtype == torch.float32
    torch.testing.assert_close(out_cpu, out_ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_cpu, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def raw_inputs(B=2, C=2, H=4, W=5, Q=3, K=2, seed=1):
    features, depth, queries, (Ks, viewmats), offsets, attn = make_inputs(
        B, C, H, W, Q, K, seed=seed, behind=0.0
    )
    ref, d_proj, valid = project_queries(queries, Ks, viewmats, H, W, 1e-3)
    valid[0, 0] = False  # an invalid query must get zero gradient
    return [
        features.permute(0, 2, 3, 1).contiguous(),
        depth[:, 0].contiguous(),
        ref.contiguous(),
        d_proj.contiguous(),
        valid,
        offsets,
        attn,
        torch.tensor(1.2, dtype=F64),
        torch.tensor(0.7, dtype=F64),
    ]


def test_gradcheck_cpu_kernel():
    args = raw_inputs()
    for i, t in enumerate(args):
        if i != 4:
            t.requires_grad_()
    assert torch.autograd.gradcheck(torch.ops.gaussocc.soft_gated_lift, args, eps=1e-6, atol=1e-6)


def test_opcheck():
    args = raw_inputs()
    for i, t in enumerate(args):
        if i != 4:
            t.requires_grad_()
    torch.library.opcheck(torch.ops.gaussocc.soft_gated_lift.default, args)
    grad_out = torch.randn(2, 3, 2, dtype=F64)
    detached = [grad_out] + [t.detach() for t in args]
    torch.library.opcheck(torch.ops.gaussocc.soft_gated_lift_backward.default, detached)


def test_backward_is_deterministic():
    inputs = make_inputs(B=1, C=8, H=10, W=12, Q=300, K=6, dtype=torch.float32, seed=5)
    scalars = (torch.tensor(1.0), torch.tensor(0.5))
    _, g1 = lift_and_grads("cpu", *inputs, *scalars)
    _, g2 = lift_and_grads("cpu", *inputs, *scalars)
    for a, b in zip(g1, g2, strict=True):
        assert torch.equal(a, b)


def one_pixel_scene(H=4, W=5, C=2):
    """Identity camera, fx = fy = 2, principal point at the image centre; features[c, r, k] =
    100 c + 10 r + k so every pixel is recognisable; constant depth 2."""
    r = torch.arange(H, dtype=F64)[:, None]
    k = torch.arange(W, dtype=F64)[None, :]
    features = torch.stack([100 * c + 10 * r + k for c in range(C)])[None]
    depth = torch.full((1, 1, H, W), 2.0, dtype=F64)
    Ks = torch.tensor([[[2.0, 0, W / 2], [0, 2.0, H / 2], [0, 0, 1]]], dtype=F64)
    return features, depth, (Ks, torch.eye(4, dtype=F64)[None])


def query_at(u, v, z, H=4, W=5):
    """The world point (identity camera) that projects to pixel (u, v) at depth z."""
    return torch.tensor([[[(u - W / 2) * z / 2.0, (v - H / 2) * z / 2.0, z]]], dtype=F64)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_sampling_convention_by_hand(backend):
    features, depth, cams = one_pixel_scene()
    lift = lambda q, off, alpha=1.0, sigma=0.5, d=depth: go.soft_gated_lift(  # noqa: E731
        features,
        d,
        q,
        cams,
        torch.tensor(off, dtype=F64).reshape(1, 1, -1, 2),
        torch.ones(1, 1, len(off), dtype=F64),
        alpha,
        sigma,
        backend=backend,
    )[0, 0]
    # Pixel centre of (row 1, col 3): exactly that pixel.
    q = query_at(3.5, 1.5, 2.0)
    torch.testing.assert_close(lift(q, [[0.0, 0.0]]), features[0, :, 1, 3])
    # Half a pixel right of the centre: the mean of columns 3 and 4.
    torch.testing.assert_close(lift(q, [[0.5, 0.0]]), features[0, :, 1, 3:5].mean(-1))
    # Two samples add up.
    torch.testing.assert_close(
        lift(q, [[0.0, 0.0], [-1.0, 1.0]]), features[0, :, 1, 3] + features[0, :, 2, 2]
    )
    # x = 0.25 on the left border: 3/4 of column 0 and 1/4 of zero padding, for the features
    # and for the depth (read as 1.5 instead of 2: the gate gives exp(-0.5^2 / (2 * 0.5^2))).
    q_left = query_at(0.25, 1.5, 2.0)
    torch.testing.assert_close(
        lift(q_left, [[0.0, 0.0]]), 0.75 * math.exp(-0.5) * features[0, :, 1, 0]
    )
    # Gate: predicted depth one sigma away scales by alpha * exp(-1/2).
    gated = lift(q, [[0.0, 0.0]], alpha=2.0, sigma=0.5, d=depth + 0.5)
    torch.testing.assert_close(gated, 2.0 * math.exp(-0.5) * features[0, :, 1, 3])
    # Behind the camera or outside the image: zero, even when the samples land inside.
    behind = query_at(3.5, 1.5, 2.0) * torch.tensor([1.0, 1.0, -1.0], dtype=F64)
    assert torch.equal(lift(behind, [[0.0, 0.0]]), torch.zeros(2, dtype=F64))
    outside = query_at(5.5, 1.5, 2.0)
    assert torch.equal(lift(outside, [[-2.0, 0.0]]), torch.zeros(2, dtype=F64))


def test_cameras_rescale_to_feature_map_and_batch_dims():
    features, depth, queries, (Ks, viewmats), offsets, attn = make_inputs(
        B=6, C=3, H=6, W=8, Q=20, K=3, dtype=torch.float32, seed=2
    )
    image_Ks = Ks * torch.tensor([4.0, 2.0, 1.0])[:, None]  # image is 4x wider, 2x taller
    cams = go.Cameras(viewmats[:, None], image_Ks[:, None], width=32, height=12)
    out_cams = go.soft_gated_lift(features, depth, queries, cams, offsets, attn, 1.0, 0.5)
    with pytest.warns(DeprecationWarning, match=r"\(Ks, viewmats\)"):
        out_tuple = go.soft_gated_lift(
            features, depth, queries, (Ks, viewmats), offsets, attn, 1.0, 0.5
        )
    torch.testing.assert_close(out_cams, out_tuple)
    assert out_tuple.abs().sum() > 0
    # Leading batch dims [2, 3] give the same as the flat batch of 6.
    unflat = lambda t: t.reshape(2, 3, *t.shape[1:])  # noqa: E731
    out_2d = go.soft_gated_lift(
        unflat(features),
        unflat(depth),
        unflat(queries),
        (unflat(Ks), unflat(viewmats)),
        unflat(offsets),
        unflat(attn),
        1.0,
        0.5,
    )
    torch.testing.assert_close(out_2d.reshape(6, 20, 3), out_tuple)
    # A camera without batch dims is shared by every batch element.
    shared = go.soft_gated_lift(
        features, depth, queries, (Ks[0], viewmats[0]), offsets, attn, 1.0, 0.5
    )
    expected = go.soft_gated_lift(
        features,
        depth,
        queries,
        (Ks[:1].expand(6, 3, 3), viewmats[:1].expand(6, 4, 4)),
        offsets,
        attn,
        1.0,
        0.5,
    )
    torch.testing.assert_close(shared, expected)


def test_half_inputs_are_upcast():
    inputs = make_inputs(B=1, C=4, H=6, W=8, Q=30, K=3, dtype=torch.float32, seed=7)
    half = [t.half() if isinstance(t, torch.Tensor) else t for t in inputs]
    out_half = go.soft_gated_lift(*half, 1.0, 0.5)
    assert out_half.dtype == torch.float32
    upcast = [t.float() if isinstance(t, torch.Tensor) else t for t in half]
    torch.testing.assert_close(out_half, go.soft_gated_lift(*upcast, 1.0, 0.5))


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("shape", [(0, 5, 2), (2, 0, 3), (2, 5, 0)])
def test_empty_inputs(backend, shape):
    B, Q, K = shape
    features, depth = torch.rand(B, 3, 4, 5), torch.rand(B, 1, 4, 5)
    cams = (torch.tensor([[4.0, 0, 2.5], [0, 4.0, 2], [0, 0, 1]]), torch.eye(4))
    out = go.soft_gated_lift(
        features,
        depth,
        torch.rand(B, Q, 3),
        cams,
        torch.rand(B, Q, K, 2),
        torch.rand(B, Q, K),
        1.0,
        0.5,
        backend=backend,
    )
    assert out.shape == (B, Q, 3)
    assert torch.equal(out, torch.zeros(B, Q, 3))


def test_bad_inputs():
    features, depth, queries, cams, offsets, attn = make_inputs(dtype=torch.float32)
    lift = go.soft_gated_lift
    with pytest.raises(ValueError, match="depth must have shape"):
        lift(features, depth[:, :, :-1], queries, cams, offsets, attn, 1.0, 0.5)
    with pytest.raises(ValueError, match="offsets must have shape"):
        lift(features, depth, queries, cams, offsets[:, :-1], attn, 1.0, 0.5)
    with pytest.raises(ValueError, match="attn must have shape"):
        lift(features, depth, queries, cams, offsets, attn[..., :-1], 1.0, 0.5)
    with pytest.raises(TypeError, match="features must be a floating-point"):
        lift(features.long(), depth, queries, cams, offsets, attn, 1.0, 0.5)
    with pytest.raises(TypeError, match="cameras must be"):
        lift(features, depth, queries, cams[0], offsets, attn, 1.0, 0.5)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        lift(features, depth, queries, cams, offsets, attn, 1.0, 0.0)
    with pytest.raises(ValueError, match="offsets contains NaN"):
        lift(features, depth, queries, cams, offsets * float("nan"), attn, 1.0, 0.5)
    with pytest.raises(ValueError, match="camera Ks batch shape"):
        lift(
            features,
            depth,
            queries,
            (cams[0][:1].repeat(3, 1, 1), cams[1]),
            offsets,
            attn,
            1.0,
            0.5,
        )
    two_views = go.Cameras(
        cams[1][:, None].repeat(1, 2, 1, 1), cams[0][:, None].repeat(1, 2, 1, 1), width=8, height=6
    )
    with pytest.raises(ValueError, match="one view"):
        lift(features, depth, queries, two_views, offsets, attn, 1.0, 0.5)
    with pytest.raises(ValueError, match="backend='cuda' needs tensors on cuda"):
        lift(features, depth, queries, cams, offsets, attn, 1.0, 0.5, backend="cuda")


def test_lifter_module():
    torch.manual_seed(0)
    lifter = go.SoftGatingLifter(embed_dim=6, num_points=5, init_radius=1.5)
    features, depth, queries, (Ks, viewmats), _, _ = make_inputs(
        B=1, C=4, Q=15, K=5, dtype=torch.float32
    )
    H, W = features.shape[-2:]
    cams = go.Cameras(viewmats[:, None], Ks[:, None], height=H, width=W)
    embed = torch.randn(1, 15, 6)
    out = lifter(features, depth, queries, cams, embed)
    # At initialisation: offsets are the bias pattern inside the init radius, attention is 1/K.
    pattern = lifter.offset_head.bias.detach().reshape(5, 2)
    assert pattern.norm(dim=-1).max() <= 1.5
    assert pattern.norm(dim=-1).min() > 0
    expected = go.soft_gated_lift(
        features,
        depth,
        queries,
        cams,
        pattern.expand(1, 15, 5, 2),
        torch.full((1, 15, 5), 0.2),
        1.0,
        0.5,
    )
    torch.testing.assert_close(out, expected)
    out.square().sum().backward()
    for name, p in lifter.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@requires_cuda
def test_cuda_matches_cpu():
    inputs = make_inputs(B=2, C=40, H=12, W=16, Q=500, K=6, dtype=torch.float32, seed=11)
    scalars = (torch.tensor(1.1), torch.tensor(0.6))
    out_cpu, g_cpu = lift_and_grads("cpu", *inputs, *scalars)
    cuda = lambda t: t.cuda() if isinstance(t, torch.Tensor) else tuple(x.cuda() for x in t)  # noqa: E731
    out_gpu, g_gpu = lift_and_grads(
        "cuda", *[cuda(t) for t in inputs], *[s.cuda() for s in scalars]
    )
    torch.testing.assert_close(out_gpu.cpu(), out_cpu, rtol=1e-4, atol=1e-5)
    for a, b in zip(g_gpu, g_cpu, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-3, atol=1e-3)


@requires_cuda
def test_cuda_gradcheck_and_opcheck():
    args = [t.cuda() for t in raw_inputs()]
    for i, t in enumerate(args):
        if i != 4:
            t.requires_grad_()
    assert torch.autograd.gradcheck(torch.ops.gaussocc.soft_gated_lift, args, eps=1e-6, atol=1e-6)
    torch.library.opcheck(torch.ops.gaussocc.soft_gated_lift.default, args)
