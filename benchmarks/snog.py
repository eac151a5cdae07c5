"""SNOG patch sampler: per-batch time of the compiled kernel vs the pure-PyTorch reference.

    PYTHONPATH=src:. python -m benchmarks snog [--device cpu|cuda] [--batch 8] ...

Times the whole ``go.snog_sample`` call (candidate drawing + accept/reject) per backend, and the
accept/reject step alone on one fixed candidate buffer.
"""

from __future__ import annotations

import argparse

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, save, time_fn
from gaussocc_ops.reference import snog as ref


def _instances(B, K, H, W, device):
    gen = torch.Generator().manual_seed(0)
    xy0 = torch.rand(B, K, 2, generator=gen) * torch.tensor([W * 0.9, H * 0.9])
    size = (0.02 + 0.2 * torch.rand(B, K, 2, generator=gen)) * torch.tensor([W, H])
    xy1 = torch.minimum(xy0 + size, torch.tensor([W, H]).float())
    areas = (size.prod(-1) * (0.3 + 0.6 * torch.rand(B, K, generator=gen))).floor()
    return torch.cat((xy0, xy1), -1).to(device), areas.to(device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks snog", description=__doc__)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--patches", type=int, default=64)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--background-ratio", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--json", default=None, help="write the results to this JSON file")
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    B, K, H, W = args.batch, args.instances, args.height, args.width
    P, l = args.patches, args.patch_size
    boxes, areas = _instances(B, K, H, W, device)
    kernel = "cpu" if device.type == "cpu" else "cuda"

    def sample(backend):
        gen = torch.Generator(device).manual_seed(0)
        return go.snog_sample(
            boxes,
            areas,
            (H, W),
            P,
            l,
            background_ratio=args.background_ratio,
            generator=gen,
            backend=backend,
        )

    out = sample(kernel)
    results = {
        "machine": machine(),
        "config": vars(args),
        "patches_drawn_mean": out.count.double().mean().item(),
    }
    for backend in (kernel, "reference"):
        results[f"sample_{backend}"] = time_fn(
            lambda b=backend: sample(b), device, repeat=args.repeat
        )

    gen = torch.Generator().manual_seed(1)
    T = 32 * P
    rows = torch.randint(0, H - l + 1, (B, T), generator=gen)
    cols = torch.randint(0, W - l + 1, (B, T), generator=gen)
    cand = torch.stack((rows, cols), -1).to(torch.int32).to(device)
    pos = torch.zeros(B, P, 2, dtype=torch.int32, device=device)
    cnt = torch.zeros(B, dtype=torch.int32, device=device)
    results[f"accept_{kernel}"] = time_fn(
        lambda: torch.ops.gaussocc.snog_accept(cand, pos, cnt, l), device, repeat=args.repeat
    )
    results["accept_reference"] = time_fn(
        lambda: ref.snog_accept(cand, pos, cnt, l), device, repeat=args.repeat
    )

    print(f"machine: {results['machine']}")
    print(
        f"B={B} K={K} {H}x{W} P={P} l={l} gamma={args.background_ratio}: "
        f"{results['patches_drawn_mean']:.1f} patches/image"
    )
    for stage in ("sample", "accept"):
        fast = results[f"{stage}_{kernel}"]["median_ms"]
        slow = results[f"{stage}_reference"]["median_ms"]
        print(
            f"{stage:7s} {kernel:5s} {fast:9.3f} ms   reference {slow:9.3f} ms   "
            f"speed-up {slow / fast:6.1f}x"
        )
    save(results, args.json)
    return 0
