"""Radius neighbour search: sorted-cell-grid kernel vs brute force (chunked exact cdist + top-k).

    PYTHONPATH=src:. python -m benchmarks radius [--points 100000] [--queries 20000] [--device cpu]

Brute force is linear in the number of queries; it is timed on ``--brute-queries`` of them and
scaled to ``--queries`` (and its answer on those queries is checked against the kernel's).
"""

from __future__ import annotations

import argparse

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, save, time_fn


def brute_force(queries, points, radius, k, chunk=512):
    idx_out, dist_out = [], []
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(
            queries[start : start + chunk], points, compute_mode="donot_use_mm_for_euclid_dist"
        )
        d = torch.where(d <= radius, d, torch.full_like(d, float("inf")))
        dist, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
        idx_out.append(torch.where(torch.isinf(dist), torch.full_like(idx, -1), idx))
        dist_out.append(dist)
    return torch.cat(idx_out), torch.cat(dist_out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--brute-queries", type=int, default=2_000)
    parser.add_argument("--radius", type=float, default=0.1)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--extent", type=float, default=20.0, help="scene cube edge (metres)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    g = torch.Generator().manual_seed(0)
    # a surface-like cloud: points on 40 random planes through the scene, plus 10% clutter
    n_plane = int(args.points * 0.9)
    normals = torch.nn.functional.normalize(torch.randn(40, 3, generator=g), dim=-1)
    offsets = torch.rand(40, 3, generator=g) * args.extent
    pick = torch.randint(0, 40, (n_plane,), generator=g)
    raw = torch.rand(n_plane, 3, generator=g) * args.extent
    on_plane = raw - ((raw - offsets[pick]) * normals[pick]).sum(-1, keepdim=True) * normals[pick]
    clutter = torch.rand(args.points - n_plane, 3, generator=g) * args.extent
    points = torch.cat([on_plane, clutter]).to(args.device)
    sel = torch.randint(0, args.points, (args.queries,), generator=g).to(args.device)
    queries = points[sel] + 0.05 * torch.randn(args.queries, 3, generator=g).to(args.device)

    def kernel():
        return go.radius_neighbors(queries, points, args.radius, args.k, backend=args.device)

    nb = min(args.brute_queries, args.queries)
    t_kernel = time_fn(kernel, args.device, warmup=1, repeat=args.repeat)
    t_brute = time_fn(
        lambda: brute_force(queries[:nb], points, args.radius, args.k),
        args.device,
        warmup=0,
        repeat=1,
    )
    ours = kernel()
    ref_idx, _ = brute_force(queries[:nb], points, args.radius, args.k)
    agree = float((ours.indices[:nb] == ref_idx).all(dim=1).float().mean())
    brute_ms = t_brute["median_ms"] * args.queries / nb
    found = float((ours.indices >= 0).sum(1).float().mean())
    results = {
        "machine": machine(),
        "args": vars(args),
        "kernel_ms": t_kernel["median_ms"],
        "brute_force_ms_scaled": brute_ms,
        "speedup": brute_ms / t_kernel["median_ms"],
        "mean_neighbours_found": found,
        "rows_identical_to_brute_force": agree,
    }
    print(f"machine: {results['machine']}")
    print(
        f"{args.points} points, {args.queries} queries, radius {args.radius}, k {args.k}, "
        f"{args.device}; mean neighbours found {found:.2f}"
    )
    print(f"  grid kernel   : {t_kernel['median_ms']:9.1f} ms (median of {args.repeat})")
    print(f"  brute force   : {brute_ms:9.1f} ms (timed on {nb} queries, scaled)")
    print(f"  speed-up      : {results['speedup']:9.1f}x")
    print(f"  fraction of rows identical to brute force: {agree:.4f}")
    save(results, args.json)
    return 0
