"""Calls every compiled op of an installed gaussocc_ops once through the public API (forward,
and backward where differentiable) on small float64 inputs, compares each result with the
pure-PyTorch reference, and checks with the profiler that every registered op really ran.

Run it from outside the checkout, so that the installed package is the one imported:
    cd /tmp && python /path/to/scripts/smoke_installed.py [--expect-source jit|prebuilt]
Prints one line per op and exits non-zero on the first disagreement.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

import gaussocc_ops as go

DT = torch.float64


def close(name, got, want, atol=1e-9, rtol=1e-7):
    for g, w in zip(got, want, strict=True):
        if g is None and w is None:
            continue
        torch.testing.assert_close(g, w, atol=atol, rtol=rtol, msg=lambda m: f"{name}: {m}")


def grads(fn, inputs, backend):
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves, backend)
    loss = sum(
        (o.double() * torch.linspace(0.5, 1.5, o.numel(), dtype=DT).view_as(o)).sum()
        for o in out
        if o.is_floating_point()
    )
    loss.backward()
    return [o.detach() for o in out], [t.grad for t in leaves]


def check_splat(g):
    N, C = 24, 3
    means = torch.randn(N, 3, generator=g, dtype=DT) * 0.6 + torch.tensor([0, 0, 4.0], dtype=DT)
    quats = torch.randn(N, 4, generator=g, dtype=DT)
    scales = torch.rand(N, 3, generator=g, dtype=DT) * 0.3 + 0.1
    opac = torch.rand(N, generator=g, dtype=DT) * 0.8 + 0.1
    feats = torch.rand(N, C, generator=g, dtype=DT)
    K = torch.tensor([[[30.0, 0, 16], [0, 30.0, 12], [0, 0, 1]]], dtype=DT)
    cams = go.Cameras(torch.eye(4, dtype=DT)[None], K, width=32, height=24)

    def fn(m, q, s, o, f, backend):
        out = go.splat(go.Gaussians(m, s, q, o, f), cams, depth_mode="expected", backend=backend)
        return list(out)

    inputs = (means, quats, scales, opac, feats)
    out_c, grad_c = grads(fn, inputs, "cpu")
    out_r, grad_r = grads(fn, inputs, "reference")
    close("splat forward", out_c, out_r)
    close("splat backward", grad_c, grad_r, atol=1e-7, rtol=1e-5)
    return f"splat: {N} Gaussians, 32x24, alpha max {out_c[2].max().item():.3f}"


def check_accumulate(g):
    N, C = 12, 2
    means = torch.rand(N, 3, generator=g, dtype=DT) * 2
    quats = torch.randn(N, 4, generator=g, dtype=DT)
    scales = torch.rand(N, 3, generator=g, dtype=DT) * 0.3 + 0.15
    opac = torch.rand(N, generator=g, dtype=DT) * 0.9
    feats = torch.softmax(torch.randn(N, C, generator=g, dtype=DT), -1)
    grid = go.VoxelGrid(origin=(0, 0, 0), voxel_size=0.25, shape=(8, 8, 8))

    def fn(m, q, s, o, f, backend):
        out = go.gaussians_to_occupancy(
            go.Gaussians(m, s, q, o, f), grid, empty_class=0, backend=backend
        )
        return [out.occupancy, out.probs]

    inputs = (means, quats, scales, opac, feats)
    out_c, grad_c = grads(fn, inputs, "cpu")
    out_r, grad_r = grads(fn, inputs, "reference")
    close("gaussians_to_occupancy forward", out_c, out_r)
    close("gaussians_to_occupancy backward", grad_c, grad_r, atol=1e-7, rtol=1e-5)
    occupied = int((out_c[0] > 0.5).sum())
    return f"gaussians_to_occupancy: {N} Gaussians, 8^3 voxels, {occupied} occupied"


def check_lift(g):
    B, C, H, W, Q, K = 1, 4, 12, 16, 10, 4
    feats = torch.rand(B, C, H, W, generator=g, dtype=DT)
    depth = 1.5 + torch.rand(B, 1, H, W, generator=g, dtype=DT)
    Ks = torch.tensor([[[8.0, 0, 8], [0, 8.0, 6], [0, 0, 1]]], dtype=DT)
    cams = go.Cameras(torch.eye(4, dtype=DT)[None], Ks, height=H, width=W)
    queries = torch.rand(B, Q, 3, generator=g, dtype=DT) * torch.tensor([1.0, 1.0, 1.0], dtype=DT)
    queries = queries - torch.tensor([0.5, 0.5, -1.2], dtype=DT)
    offsets = torch.randn(B, Q, K, 2, generator=g, dtype=DT)
    attn = torch.softmax(torch.randn(B, Q, K, generator=g, dtype=DT), -1)

    def fn(f, d, off, a, backend):
        return [go.soft_gated_lift(f, d, queries, cams, off, a, 1.0, 0.5, backend=backend)]

    inputs = (feats, depth, offsets, attn)
    out_c, grad_c = grads(fn, inputs, "cpu")
    out_r, grad_r = grads(fn, inputs, "reference")
    close("soft_gated_lift forward", out_c, out_r)
    close("soft_gated_lift backward", grad_c, grad_r, atol=1e-7, rtol=1e-5)
    return f"soft_gated_lift: {Q} queries x {K} taps, |out| {out_c[0].abs().sum().item():.3f}"


def check_snog(g):
    boxes = torch.tensor([[[10.0, 4.0, 40.0, 30.0], [50.0, 10.0, 60.0, 40.0]]])
    areas = torch.tensor([[600.0, 250.0]])
    out = {}
    for backend in ("cpu", "reference"):
        gen = torch.Generator().manual_seed(7)
        out[backend] = go.snog_sample(boxes, areas, (48, 64), 8, 6, generator=gen, backend=backend)
    close("snog_sample", list(out["cpu"]), list(out["reference"]), atol=0, rtol=0)
    return f"snog_sample: {int(out['cpu'].count)} patches accepted"


def check_radius(g):
    q = torch.rand(2, 20, 3, generator=g, dtype=DT)
    p = torch.rand(2, 50, 3, generator=g, dtype=DT)
    a = go.radius_neighbors(q, p, radius=0.3, max_neighbors=5, backend="cpu")
    b = go.radius_neighbors(q, p, radius=0.3, max_neighbors=5, backend="reference")
    close("radius_neighbors", list(a), list(b), atol=1e-12, rtol=0)
    return f"radius_neighbors: {int((a[0] >= 0).sum())} neighbours found"


def check_raycast(g):
    grid = go.VoxelGrid((0.0, 0.0, 0.0), 0.5, (6, 5, 4))
    labels = torch.randint(1, 4, (1, 6, 5, 4), generator=g)
    labels[torch.rand(1, 6, 5, 4, generator=g) > 0.2] = 0
    origins = torch.rand(1, 40, 3, generator=g, dtype=DT) * 3 - 0.25
    dirs = torch.randn(1, 40, 3, generator=g, dtype=DT)
    a = go.raycast(labels, grid, origins, dirs, empty_class=0, backend="cpu")
    b = go.raycast(labels, grid, origins, dirs, empty_class=0, backend="reference")
    close("raycast", list(a), list(b), atol=1e-9, rtol=1e-9)
    return f"raycast: {int((a.label >= 0).sum())} of 40 rays hit"


def check_memory(g):
    """A short stream with fusions and evictions: the compiled memory (cell hash, fusion,
    eviction heap) against the pure-PyTorch one."""
    K = torch.tensor([[[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]]], dtype=DT)
    camera = go.Cameras.from_cam2world(torch.eye(4, dtype=DT)[None], K, height=48, width=64)
    kwargs = {"radius": 0.15, "max_size": 60, "dtype": DT}
    mems = [go.GaussianMemory(**kwargs), go.GaussianMemory(**kwargs, backend="reference")]
    evicted = 0
    for _ in range(4):
        n = 30
        frame = go.Gaussians(
            torch.rand(n, 3, generator=g, dtype=DT) + torch.tensor([0, 0, 2.0], dtype=DT),
            torch.rand(n, 3, generator=g, dtype=DT) * 0.05 + 0.01,
            torch.randn(n, 4, generator=g, dtype=DT),
            torch.rand(n, generator=g, dtype=DT),
            torch.softmax(torch.randn(n, 3, generator=g, dtype=DT), -1),
        )
        results = [m.insert(frame, camera) for m in mems]
        if results[0] != results[1]:
            raise AssertionError(f"GaussianMemory: {results[0]} != {results[1]}")
        evicted += results[0].evicted
        for k in ("means", "opacities", "features", "confidence"):
            close(f"GaussianMemory.{k}", [getattr(mems[0], k)], [getattr(mems[1], k)], 0, 0)
    return f"GaussianMemory: {len(mems[0])} Gaussians after 4 frames, {evicted} evicted"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--expect-source", choices=("jit", "prebuilt"))
    args = parser.parse_args()
    start = time.perf_counter()
    info = go.build_info()  # loads (and, the first time, compiles) the kernels
    print(
        f"kernels: {info['source']} ({info['library']}), loaded in "
        f"{time.perf_counter() - start:.1f} s; package {go.__file__}"
    )
    if not info["extension"]:
        print(f"FAILED: no compiled kernels: {info['error']}")
        return 1
    if args.expect_source and info["source"] != args.expect_source:
        print(f"FAILED: kernels came from {info['source']}, expected {args.expect_source}")
        return 1
    g = torch.Generator().manual_seed(0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for check in (
            check_splat,
            check_accumulate,
            check_lift,
            check_snog,
            check_radius,
            check_raycast,
            check_memory,
        ):
            print("ok", check(g))
    ran = {e.name.split("::", 1)[1] for e in prof.events() if e.name.startswith("gaussocc::")}
    not_run = sorted(set(info["ops"]) - ran)
    if not_run:
        print(f"FAILED: compiled ops never called: {not_run}")
        return 1
    print(
        f"all {len(info['ops'])} compiled ops ran and agree with the reference "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
