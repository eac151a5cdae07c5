"""RayIoU ray casting (kernel vs a NumPy Amanatides-Woo walk) and the occupancy losses.

PYTHONPATH=src:. python -m benchmarks metrics [--device cpu|cuda] [--batch 4] [--threads N]

Rays: the RayIoU pattern (360 azimuths x 21 pitches) from the grid centre of one 200x200x16
driving-scene grid (benchmarks/raycast.py's scene), float32. Losses: logits [B, C, X, Y, Z] with
labels from the same scene generator, forward and forward+backward, and their sum.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import gaussocc_ops as go
from benchmarks._timing import machine, peak_memory_mb, save, time_fn
from benchmarks.raycast import scene
from gaussocc_ops.reference.raycast_dda import raycast_dda

EMPTY = 17
PARTS = {
    "focal_loss": lambda x, y: go.losses.focal_loss(x, y, gamma=2.0),
    "lovasz_softmax": lambda x, y: go.losses.lovasz_softmax(x, y),
    "geo_scal_loss": lambda x, y: go.losses.geo_scal_loss(x, y, empty_class=EMPTY),
    "sem_scal_loss": lambda x, y: go.losses.sem_scal_loss(x, y),
}
LOSSES = {**PARTS, "sum": lambda x, y: sum(f(x, y) for f in PARTS.values())}


def bench_rays(args, device) -> dict:
    grid, labels = scene(tuple(args.grid), 1, args.occupancy, device)
    metric = go.metrics.RayIoU(grid, 18, EMPTY, num_azimuths=args.azimuths)
    dirs = metric.directions
    dirs = (dirs / dirs.norm(dim=-1, keepdim=True)).unsqueeze(0)
    origins = metric.origins.expand_as(dirs).contiguous()
    o_dev, d_dev = origins.to(device), dirs.to(device)

    def kernel():
        return go.raycast(labels, grid, o_dev, d_dev, empty_class=EMPTY, backend=device.type)

    np_labels, np_o, np_d = labels.cpu().numpy(), origins.numpy(), dirs.numpy()

    def numpy_dda():
        return raycast_dda(np_labels, np_o, np_d, grid.origin, grid.voxel_size, EMPTY)

    out = {"rays": dirs.shape[1], "grid": list(args.grid)}
    out["kernel"] = time_fn(kernel, device, repeat=args.repeat)
    out["numpy_dda"] = time_fn(numpy_dda, "cpu", repeat=max(1, args.repeat // 2))
    for stat in ("median", "min"):
        out[f"speedup_{stat}"] = out["numpy_dda"][f"{stat}_ms"] / out["kernel"][f"{stat}_ms"]
    k, (dist, lab) = kernel(), numpy_dda()
    same = lab == k.label.cpu().numpy()
    both_hit = same & (lab >= 0)
    out["label_agreement"] = float(same.mean())
    out["hit_fraction"] = float((lab >= 0).mean())
    out["max_distance_diff_m"] = float(
        np.abs(dist[both_hit] - k.distance.cpu().numpy()[both_hit]).max(initial=0.0)
    )
    pred = labels.clone()
    pred[..., 1:] = torch.roll(labels[..., 1:], 1, dims=1)
    out["rayiou_update"] = time_fn(lambda: metric.update(pred, labels), device, repeat=args.repeat)
    return out


def bench_losses(args, device) -> dict:
    _, labels = scene(tuple(args.grid), args.batch, args.loss_occupancy, device, seed=1)
    labels[:, :, :, -1] = 255  # an ignored top layer
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(args.batch, 18, *args.grid, generator=g).to(device).requires_grad_()

    def forward(fn):
        return lambda: fn(logits, labels)

    def forward_backward(fn):
        def run():
            logits.grad = None
            fn(logits, labels).backward()

        return run

    out = {"shape": list(logits.shape), "losses": {}}
    for name, fn in LOSSES.items():
        t0 = time.perf_counter()
        r = {
            "forward": time_fn(
                forward(fn), device, warmup=args.loss_warmup, repeat=args.loss_repeat
            ),
            "forward_backward": time_fn(
                forward_backward(fn), device, warmup=args.loss_warmup, repeat=args.loss_repeat
            ),
            "peak_mb": peak_memory_mb(forward_backward(fn), device),
        }
        out["losses"][name] = r
        print(f"  {name} done in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def report(results: dict, device) -> None:
    if "rays" in results:
        r = results["rays"]
        print(f"RayIoU rays: grid {tuple(r['grid'])}, {r['rays']} rays, float32")
        for name, label in (("kernel", f"{device.type} kernel"), ("numpy_dda", "NumPy DDA")):
            t = r[name]
            print(
                f"  {label:>12}: median {t['median_ms']:9.2f} ms  min {t['min_ms']:9.2f} ms  "
                f"({r['rays'] / t['median_ms'] / 1e3:.3f} Mrays/s)"
            )
        print(
            f"  speed-up {r['speedup_median']:.1f}x (medians), {r['speedup_min']:.1f}x (minima; "
            f"goal >= 20x); labels agree on "
            f"{r['label_agreement']:.5f} of the rays ({r['hit_fraction']:.3f} hit), max distance "
            f"difference on agreeing hits {r['max_distance_diff_m']:.2e} m"
        )
        print(
            f"  RayIoU.update (GT + prediction casts, counting): "
            f"median {r['rayiou_update']['median_ms']:.2f} ms"
        )
    if "losses" in results:
        r = results["losses"]
        print(f"losses on logits {tuple(r['shape'])}:")
        print(f"  {'loss':>15} {'forward ms':>12} {'fwd+bwd ms':>12} {'peak MB':>10}")
        for name, t in r["losses"].items():
            peak = "-" if t["peak_mb"] is None else f"{t['peak_mb']:.0f}"
            print(
                f"  {name:>15} {t['forward']['median_ms']:12.1f} "
                f"{t['forward_backward']['median_ms']:12.1f} {peak:>10}"
            )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--grid", type=int, nargs=3, default=[200, 200, 16])
    parser.add_argument("--azimuths", type=int, default=360)
    parser.add_argument("--occupancy", type=float, default=0.03, help="of the ray-casting scene")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4, help="batch of the loss inputs")
    parser.add_argument("--loss-occupancy", type=float, default=0.3)
    parser.add_argument("--loss-warmup", type=int, default=1)
    parser.add_argument("--loss-repeat", type=int, default=3)
    parser.add_argument("--skip-rays", action="store_true")
    parser.add_argument("--skip-losses", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = {"machine": machine()}
    print(f"machine: {results['machine']}", flush=True)
    if not args.skip_rays:
        results["rays"] = bench_rays(args, device)
    if not args.skip_losses:
        results["losses"] = bench_losses(args, device)
    report(results, device)
    save(results, args.json)
    return 0
