"""GaussRenderLoss forward + backward: time and peak memory.

Defaults are the issue's setting: grid 200 x 200 x 16 (0.4 m voxels), 18 classes, one 450 x 800
camera and a 200 x 200 BEV view, batch sizes 1 and 4. Two predictions are timed: "trained"
(logits close to the ground truth, so most voxels are empty and dropped before rendering) and
"untrained" (random logits: every voxel is rendered). ``cached`` reuses the ground-truth renders
(fixed cameras); ``uncached`` renders the ground truth in every call.
"""

from __future__ import annotations

import argparse
import warnings

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, peak_memory_mb, save, time_fn
from gaussocc_ops import cameras as camlib


def synthetic_labels(grid: go.VoxelGrid, batch: int, num_classes: int, gen: torch.Generator):
    """A ground floor (class 0) and random boxes of the other non-empty classes."""
    X, Y, Z = grid.shape
    empty = num_classes - 1
    labels = torch.full((batch, X, Y, Z), empty, dtype=torch.long)
    labels[..., 0] = 0
    n_boxes = max(1, X * Y // 400)
    for b in range(batch):
        size = torch.randint(2, max(3, X // 12), (n_boxes, 3), generator=gen)
        corner = torch.rand(n_boxes, 3, generator=gen)
        for (sx, sy, sz), (u, v, _) in zip(size.tolist(), corner.tolist(), strict=True):
            x0, y0 = int(u * (X - sx)), int(v * (Y - sy))
            cls = 1 + int(torch.randint(0, num_classes - 2, (1,), generator=gen))
            labels[b, x0 : x0 + sx, y0 : y0 + sy, 1 : 1 + min(sz, Z - 1)] = cls
    return labels


def predictions(labels, num_classes: int, kind: str, gen: torch.Generator):
    shape = (labels.shape[0], num_classes, *labels.shape[1:])
    noise = torch.randn(shape, generator=gen)
    if kind == "untrained":
        return noise
    one_hot = torch.nn.functional.one_hot(labels, num_classes).permute(0, 4, 1, 2, 3).float()
    return 12.0 * one_hot + noise


def camera(grid: go.VoxelGrid, height: int, width: int) -> go.Cameras:
    """A front camera 1.5 m above the grid floor at the grid centre, looking along +x."""
    (x0, y0, z0), (x1, y1, _) = grid.origin, grid.upper
    eye = torch.tensor([[(x0 + x1) / 2, (y0 + y1) / 2, z0 + 1.5]])
    target = eye + torch.tensor([[10.0, 0.0, -1.0]])
    K = camlib.pinhole_intrinsics(70.0, height=height, width=width)[None]
    return go.Cameras(camlib.look_at(eye, target), K, width=width, height=height)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--grid", type=int, nargs=3, default=(200, 200, 16), metavar=("X", "Y", "Z")
    )
    parser.add_argument("--voxel", type=float, default=0.4, help="voxel size in metres")
    parser.add_argument("--classes", type=int, default=18)
    parser.add_argument("--image", type=int, nargs=2, default=(450, 800), metavar=("H", "W"))
    parser.add_argument("--bev", type=int, default=200, help="BEV resolution (pixels per side)")
    parser.add_argument("--batch", type=int, nargs="+", default=(1, 4))
    parser.add_argument("--kinds", nargs="+", default=("trained", "untrained"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="gaussocc_ops: no compiled kernel")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    X, Y, Z = args.grid
    grid = go.VoxelGrid((-X * args.voxel / 2, -Y * args.voxel / 2, -1.0), args.voxel, (X, Y, Z))
    cams = camera(grid, *args.image)
    print(f"machine: {machine()}")
    print(
        f"grid {tuple(args.grid)}, {args.classes} classes, camera {args.image[0]}x{args.image[1]}, "
        f"BEV {args.bev}x{args.bev}, device {device}, backend {args.backend}"
    )
    results = {"machine": machine(), "args": vars(args), "rows": []}
    gen = torch.Generator().manual_seed(0)
    for B in args.batch:
        labels = synthetic_labels(grid, B, args.classes, gen).to(device)
        for kind in args.kinds:
            logits = predictions(labels.cpu(), args.classes, kind, gen).to(device)
            for cached in (True, False):
                loss_fn = go.GaussRenderLoss(
                    cams.to(device),
                    grid=grid,
                    num_classes=args.classes,
                    empty_class=args.classes - 1,
                    bev_resolution=args.bev,
                    cache_gt=cached,
                    backend=args.backend,
                )
                pred = logits.clone().requires_grad_()

                def step(loss_fn=loss_fn, pred=pred, labels=labels):
                    pred.grad = None
                    loss_fn(pred, labels).backward()

                step()  # fills the ground-truth cache
                timing = time_fn(step, device, warmup=1, repeat=args.repeat)
                mem = peak_memory_mb(step, device)
                kept = go.voxels_to_gaussians(logits, grid, empty_class=args.classes - 1)
                row = {
                    "batch": B,
                    "prediction": kind,
                    "gt": "cached" if cached else "uncached",
                    "rendered_gaussians": kept.num_gaussians,
                    "median_ms": timing["median_ms"],
                    "min_ms": timing["min_ms"],
                    "peak_mem_mb": mem,
                }
                results["rows"].append(row)
                mem_text = "n/a (CPU)" if mem is None else f"{mem:.0f} MB"
                print(
                    f"B={B} {kind:9s} GT {row['gt']:8s} Gaussians/sample<={kept.num_gaussians:7d}"
                    f"  fwd+bwd {timing['median_ms']:9.1f} ms (min {timing['min_ms']:.1f})"
                    f"  peak extra memory {mem_text}"
                )
    save(results, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
