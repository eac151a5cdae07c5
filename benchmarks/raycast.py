"""RayIoU ray casting: our CPU/CUDA kernel vs the pure-PyTorch reference on an occupancy grid.

PYTHONPATH=src:. python -m benchmarks raycast [--device cpu|cuda] [--grid 200 200 16]
"""

from __future__ import annotations

import argparse

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, save, time_fn


def scene(shape, batch, occupancy, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    X, Y, Z = shape
    grid = go.VoxelGrid((-40.0, -40.0, -1.0), (80.0 / X, 80.0 / Y, 6.4 / Z), shape)
    labels = torch.randint(1, 18, (batch, X, Y, Z), generator=g)
    labels[torch.rand(batch, X, Y, Z, generator=g) > occupancy] = 17
    labels[..., 0] = 1  # a ground plane, as in driving scenes
    return grid, labels.to(device)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--grid", type=int, nargs=3, default=[200, 200, 16])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--azimuths", type=int, default=360)
    parser.add_argument("--occupancy", type=float, default=0.03)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) reference")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    grid, labels = scene(tuple(args.grid), args.batch, args.occupancy, device)
    metric = go.metrics.RayIoU(grid, 18, 17, num_azimuths=args.azimuths)
    dirs = metric.directions.to(device)
    origins = metric.origins.to(device).expand_as(dirs)
    rays = dirs.shape[0] * args.batch
    print(f"machine: {machine()}")
    print(f"grid {tuple(args.grid)} x batch {args.batch}, {rays} rays, occupancy {args.occupancy}")

    def cast(backend):
        return lambda: go.raycast(labels, grid, origins, dirs, empty_class=17, backend=backend)

    results = {"machine": machine(), "grid": args.grid, "batch": args.batch, "rays": rays}
    kernel = args.device
    results[kernel] = time_fn(cast(kernel), device, repeat=args.repeat)
    if not args.no_reference:
        results["reference"] = time_fn(
            cast("reference"), device, warmup=0, repeat=max(1, args.repeat // 2)
        )
        a, b = cast(kernel)(), cast("reference")()
        results["label_agreement"] = (a.label == b.label).float().mean().item()
    pred = labels.clone()
    pred[..., 1:] = torch.roll(labels[..., 1:], 1, dims=1)
    results["rayiou_update"] = time_fn(
        lambda: metric.update(pred, labels), device, repeat=args.repeat
    )

    for name in (kernel, "reference"):
        if name in results:
            r = results[name]
            print(
                f"{name:>14}: median {r['median_ms']:9.2f} ms  min {r['min_ms']:9.2f} ms  "
                f"({rays / r['median_ms'] / 1e3:.2f} Mrays/s)"
            )
    r = results["rayiou_update"]
    print(f"RayIoU.update: median {r['median_ms']:9.2f} ms (GT + prediction casts, counting)")
    if "reference" in results:
        speedup = results["reference"]["median_ms"] / results[kernel]["median_ms"]
        results["speedup"] = speedup
        print(
            f"speedup {kernel} kernel vs reference: {speedup:.1f}x, label agreement "
            f"{results['label_agreement']:.6f}"
        )
    save(results, args.json)
    return 0
