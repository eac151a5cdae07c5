"""Per-frame insert latency of GaussianMemory on a synthetic 30-frame stream.

    PYTHONPATH=src:. python -m benchmarks memory [--frames 30] [--per-frame 6000] [--device cpu]

A static scene of surface points is observed by a camera moving along a line; each frame sees a
random 60% of the points within 8 m of the camera, with 3 cm noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, save, sync


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--per-frame", type=int, default=6000)
    parser.add_argument("--radius", type=float, default=0.08)
    parser.add_argument("--mode", default="gpocc", choices=["gpocc", "sgr"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    scene = torch.rand(args.per_frame * 6, 3, generator=g) * torch.tensor([40.0, 10.0, 3.0])
    memory = go.GaussianMemory(radius=args.radius, mode=args.mode, device=args.device)
    K = torch.tensor([[300.0, 0, 320], [0, 300.0, 240], [0, 0, 1]], device=args.device)
    depth = torch.full((480, 640), 5.0, device=args.device)
    times, sizes = [], []
    for f in range(args.frames):
        eye = torch.tensor([f * 30.0 / args.frames, 5.0, 1.5])
        near = ((scene - eye).norm(dim=-1) < 8).nonzero().squeeze(1)
        pick = near[torch.randperm(near.numel(), generator=g)[: args.per_frame]]
        pts = scene[pick] + 0.03 * torch.randn(pick.numel(), 3, generator=g)
        cam2world = torch.eye(4)
        cam2world[:3, 3] = eye
        n = pts.shape[0]
        frame = go.Gaussians.isotropic(
            (pts - eye).to(args.device),
            0.05,
            torch.rand(n, generator=g).to(args.device),
            torch.softmax(3 * torch.randn(n, 12, generator=g), -1).to(args.device),
        )
        extra = {"depth": depth, "intrinsics": K} if args.mode == "sgr" else {}
        sync(args.device)
        t0 = time.perf_counter()
        memory.insert(frame, cam2world.to(args.device), **extra)
        sync(args.device)
        times.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(memory))
    results = {"machine": machine(), "args": vars(args), "insert_ms": times, "sizes": sizes}
    print(f"machine: {results['machine']}")
    print(
        f"{args.frames} frames x {args.per_frame} Gaussians, radius {args.radius}, "
        f"mode {args.mode}, {args.device}"
    )
    print(
        f"  insert latency: median {statistics.median(times):.1f} ms, max {max(times):.1f} ms "
        f"(first frame {times[0]:.1f} ms)"
    )
    print(
        f"  memory size after frames 1/10/20/{args.frames}: "
        f"{sizes[0]}/{sizes[min(9, len(sizes) - 1)]}/{sizes[min(19, len(sizes) - 1)]}/{sizes[-1]}"
    )
    save(results, args.json)
    return 0
