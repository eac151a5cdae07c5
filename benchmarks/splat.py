"""Splatting benchmark: ``python -m benchmarks splat --device cpu|cuda``.

CPU: our kernel vs the pure-PyTorch reference on 20k Gaussians, C = 19, 2 views of 256x256.
The reference is brute force (every pixel against every Gaussian, cost exactly proportional to
pixels x Gaussians): its forward is timed on the same Gaussians at ``--ref-fwd-size`` pixels and
scaled to the full image; its forward+backward (whose autograd graph would need far more memory
than a machine has at full size) on the reduced workload ``--ref-gaussians`` / ``--ref-size``.

CUDA: our kernel vs gsplat on the GaussRender workload: one Gaussian per voxel of a
200x200x16 grid of 0.5 m voxels (C = 18 semantic channels + depth), rendered into one 900x1600
pinhole camera and one 400x400 orthographic BEV camera.
"""

from __future__ import annotations

import argparse
import math

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, peak_memory_mb, save, time_fn


def random_gaussians(n, channels, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(1, n, 3, generator=g) - 0.5) * torch.tensor([8.0, 8.0, 6.0]) + torch.tensor(
        [0, 0, 9.0]
    )
    scales = torch.rand(1, n, 3, generator=g) * 0.25 + 0.05
    quats = torch.randn(1, n, 4, generator=g)
    opacities = torch.rand(1, n, generator=g) * 0.8 + 0.1
    features = torch.rand(1, n, channels, generator=g).softmax(-1)
    return [t.to(device) for t in (means, scales, quats, opacities, features)]


def two_cameras(size, device):
    H, W = size
    eyes = torch.tensor([[[0.0, 0.0, 0.0], [1.0, -0.5, 0.5]]])
    vm = go.cameras.look_at(eyes, torch.tensor([0.0, 0.0, 9.0]).expand(1, 2, 3), up=(0, -1, 0))
    K = go.cameras.pinhole_intrinsics(70.0, height=H, width=W).expand(1, 2, 3, 3).clone()
    return go.Cameras(vm, K, width=W, height=H).to(device)


def voxel_scene(device, channels=18):
    """All 640k voxel Gaussians of a 200x200x16 grid, opacities like a trained occupancy model."""
    grid = go.VoxelGrid.from_bounds((-50.0, -50.0, -5.0), (50.0, 50.0, 3.0), (200, 200, 16))
    centers = grid.centers(device=device).reshape(1, -1, 3)
    n = centers.shape[1]
    g = torch.Generator(device=device).manual_seed(0)
    logits = torch.randn(1, n, channels + 1, generator=g, device=device) * 2
    logits[..., -1] += 2.5  # most voxels are empty
    probs = logits.softmax(-1)
    opac = 1 - probs[..., -1]
    scales = torch.full_like(centers, 0.25)
    quats = torch.zeros(1, n, 4, device=device)
    quats[..., 0] = 1
    return [centers, scales, quats, opac, probs[..., :channels].contiguous()], grid


def gaussrender_cameras(grid, device):
    eye = torch.tensor([[[0.0, 0.0, 1.5]]])
    vm = go.cameras.look_at(eye, torch.tensor([[[20.0, 0.0, 0.5]]]))
    K = torch.tensor([[[1266.0, 0, 800], [0, 1266.0, 450], [0, 0, 1]]])
    front = go.Cameras(vm, K, width=1600, height=900).to(device)
    bev = go.cameras.bev(grid, 400, device=device)
    return front, bev


def run_case(tensors, cams_list, backend, device, repeat, backward=True):
    leaves = [t.detach().clone().requires_grad_(backward) for t in tensors]

    def forward():
        return [go.splat(go.Gaussians(*leaves), cams, backend=backend) for cams in cams_list]

    def forward_backward():
        outs = forward()
        loss = sum(o.features.sum() + o.depth.sum() for o in outs)
        loss.backward()

    result = {}
    with torch.no_grad():
        result["forward"] = time_fn(forward, device, repeat=repeat)
        result["forward_peak_mb"] = peak_memory_mb(forward, device)
    if backward:
        result["forward_backward"] = time_fn(forward_backward, device, repeat=repeat)
        result["forward_backward_peak_mb"] = peak_memory_mb(forward_backward, device)
    return result


def max_abs_diff(tensors, cams_list, backend_a, backend_b):
    diffs = []
    with torch.no_grad():
        for cams in cams_list:
            a = go.splat(go.Gaussians(*tensors), cams, backend=backend_a)
            b = go.splat(go.Gaussians(*tensors), cams, backend=backend_b)
            diffs += [float((x - y).abs().max()) for x, y in zip(a, b)]
    return max(diffs)


def bench_cpu(args):
    tensors = random_gaussians(args.gaussians, args.channels, "cpu")
    cams = [two_cameras((args.size, args.size), "cpu")]
    results = {
        "machine": machine(),
        "workload": f"{args.gaussians} Gaussians, C={args.channels}, "
        f"2 views {args.size}x{args.size}",
    }
    results["cpu_kernel"] = run_case(tensors, cams, "cpu", "cpu", args.repeat)
    print(f"cpu kernel : {fmt(results['cpu_kernel'])}")
    if not args.skip_reference:
        # Same Gaussians on fewer pixels: brute force costs O(pixels x Gaussians), so its time at
        # the full size is the measured time scaled by the pixel ratio.
        fwd_cams = [two_cameras((args.ref_fwd_size, args.ref_fwd_size), "cpu")]
        scale = (args.size / args.ref_fwd_size) ** 2
        results["same_gaussians_workload"] = (
            f"{args.gaussians} Gaussians, 2 views {args.ref_fwd_size}^2"
        )
        results["same_gaussians_cpu_kernel"] = run_case(
            tensors, fwd_cams, "cpu", "cpu", args.repeat, backward=False
        )
        results["same_gaussians_reference"] = run_case(
            tensors, fwd_cams, "reference", "cpu", 1, backward=False
        )
        ref_ms = results["same_gaussians_reference"]["forward"]["median_ms"]
        ker_ms = results["same_gaussians_cpu_kernel"]["forward"]["median_ms"]
        results["reference_forward_extrapolated_ms"] = ref_ms * scale
        results["forward_speedup"] = ref_ms * scale / results["cpu_kernel"]["forward"]["median_ms"]
        print(
            f"{results['same_gaussians_workload']}: cpu fwd {ker_ms:.1f} ms, reference fwd "
            f"{ref_ms:.1f} ms ({ref_ms / ker_ms:.1f}x)"
        )
        print(
            f"reference fwd extrapolated to {args.size}^2: {ref_ms * scale:.0f} ms -> forward "
            f"speedup {results['forward_speedup']:.1f}x"
        )
        small = random_gaussians(args.ref_gaussians, args.channels, "cpu")
        small_cams = [two_cameras((args.ref_size, args.ref_size), "cpu")]
        results["reduced_workload"] = (
            f"{args.ref_gaussians} Gaussians, C={args.channels}, 2 views {args.ref_size}^2"
        )
        results["reduced_cpu_kernel"] = run_case(small, small_cams, "cpu", "cpu", args.repeat)
        results["reduced_reference"] = run_case(small, small_cams, "reference", "cpu", 1)
        fb = (
            results["reduced_reference"]["forward_backward"]["median_ms"]
            / results["reduced_cpu_kernel"]["forward_backward"]["median_ms"]
        )
        results["reduced_forward_backward_speedup"] = fb
        print(f"{results['reduced_workload']}: cpu {fmt(results['reduced_cpu_kernel'])}")
        print(f"  reference: {fmt(results['reduced_reference'])} -> fwd+bwd speedup {fb:.1f}x")
        results["max_abs_diff_vs_reference"] = max_abs_diff(small, small_cams, "cpu", "reference")
        diff = results["max_abs_diff_vs_reference"]
        print(f"  max |cpu - reference|: {diff:.2e}")
    return results


def bench_cuda(args):
    tensors, grid = voxel_scene("cuda")
    front, bev = gaussrender_cameras(grid, "cuda")
    results = {
        "machine": machine(),
        "workload": "200x200x16 voxel Gaussians (640k), C=18 + depth, "
        "900x1600 pinhole + 400x400 ortho BEV",
    }
    for backend in ("cuda", "gsplat"):
        try:
            results[backend] = run_case(tensors, [front, bev], backend, "cuda", args.repeat)
            print(f"{backend:7s}: {fmt(results[backend])}")
        except RuntimeError as exc:
            results[backend] = {"error": str(exc)}
            print(f"{backend:7s}: failed: {exc}")
    if "forward" in results.get("gsplat", {}):
        results["max_abs_diff_vs_gsplat"] = max_abs_diff(tensors, [front, bev], "cuda", "gsplat")
        print(f"max |ours - gsplat|: {results['max_abs_diff_vs_gsplat']:.2e}")
    return results


def fmt(r):
    parts = [f"fwd {r['forward']['median_ms']:.1f} ms"]
    if "forward_backward" in r:
        parts.append(f"fwd+bwd {r['forward_backward']['median_ms']:.1f} ms")
    for key in ("forward_peak_mb", "forward_backward_peak_mb"):
        if r.get(key) is not None:
            parts.append(f"{key.replace('_mb', '')} {r[key]:.0f} MB")
    return ", ".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks splat", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--gaussians", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=19)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--ref-fwd-size", type=int, default=64)
    parser.add_argument("--ref-gaussians", type=int, default=2_000)
    parser.add_argument("--ref-size", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda needs a CUDA device")
    results = bench_cpu(args) if args.device == "cpu" else bench_cuda(args)
    save(results, args.json)
    assert math.isfinite(results.get("forward_speedup", 1.0))
    return 0
