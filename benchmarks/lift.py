"""Soft-gated lifting forward + backward: our kernel against the grid_sample reference.

PYTHONPATH=src:. python -m benchmarks lift --device cpu [--queries N] [--json out.json]
"""

from __future__ import annotations

import argparse

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, peak_memory_mb, save, time_fn


def make_inputs(B, C, H, W, Q, K, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    Ks = torch.tensor([[60.0, 0.0, W / 2], [0.0, 60.0, H / 2], [0.0, 0.0, 1.0]]).expand(B, 3, 3)
    viewmats = torch.eye(4).expand(B, 4, 4)
    # Queries spread over the frustum between 0.5 and 5 m.
    u, v = torch.rand(B, Q, generator=g) * W, torch.rand(B, Q, generator=g) * H
    z = 0.5 + 4.5 * torch.rand(B, Q, generator=g)
    queries = torch.stack([(u - W / 2) * z / 60.0, (v - H / 2) * z / 60.0, z], dim=-1)
    inputs = {
        "features": torch.randn(B, C, H, W, generator=g),
        "depth": 0.5 + 4.5 * torch.rand(B, 1, H, W, generator=g),
        "queries": queries,
        "cameras": go.Cameras(
            viewmats.contiguous()[:, None], Ks.contiguous()[:, None], height=H, width=W
        ),
        "offsets": 2.0 * torch.randn(B, Q, K, 2, generator=g),
        "attn": torch.randn(B, Q, K, generator=g).softmax(-1),
    }
    moved = {k: v.to(device) for k, v in inputs.items()}
    for key in ("features", "depth", "offsets", "attn"):
        moved[key].requires_grad_()
    moved["alpha"] = torch.tensor(1.0, device=device, requires_grad=True)
    moved["sigma"] = torch.tensor(0.5, device=device, requires_grad=True)
    return moved


def run(inputs, backend, backward):
    out = go.soft_gated_lift(
        inputs["features"],
        inputs["depth"],
        inputs["queries"],
        inputs["cameras"],
        inputs["offsets"],
        inputs["attn"],
        inputs["alpha"],
        inputs["sigma"],
        backend=backend,
    )
    if backward:
        out.sum().backward()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks lift", description=__doc__)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--height", type=int, default=60)
    parser.add_argument("--width", type=int, default=80)
    parser.add_argument("--queries", type=int, default=60 * 60 * 36)
    parser.add_argument("--points", type=int, default=16, help="samples per query K")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kernel = "cuda" if device.type == "cuda" else "cpu"
    inputs = make_inputs(
        args.batch, args.channels, args.height, args.width, args.queries, args.points, device
    )
    backends = [kernel] + ([] if args.skip_reference else ["reference"])
    results = {"machine": machine(), "config": vars(args), "timings": {}}
    print(results["machine"])
    print(
        f"B={args.batch} C={args.channels} HxW={args.height}x{args.width} Q={args.queries} "
        f"K={args.points}"
    )
    for backend in backends:
        for backward in (False, True):
            label = f"{backend} {'forward+backward' if backward else 'forward'}"
            stats = time_fn(
                lambda b=backend, bw=backward: run(inputs, b, bw), device, repeat=args.repeat
            )
            stats["peak_mb"] = peak_memory_mb(
                lambda b=backend, bw=backward: run(inputs, b, bw), device
            )
            results["timings"][label] = stats
            mem = "" if stats["peak_mb"] is None else f"  peak {stats['peak_mb']:.0f} MB"
            print(f"{label:>32}: {stats['median_ms']:9.1f} ms (min {stats['min_ms']:.1f}){mem}")
    if not args.skip_reference:
        for mode in ("forward", "forward+backward"):
            ratio = (
                results["timings"][f"reference {mode}"]["median_ms"]
                / results["timings"][f"{kernel} {mode}"]["median_ms"]
            )
            results[f"speedup {mode}"] = ratio
            print(f"{'speedup ' + mode:>32}: {ratio:.1f}x")
    save(results, args.json)
    return 0
