"""Gaussian-to-occupancy accumulation: forward, forward+backward and peak memory.

Workloads:
  a        25 600 Gaussians, scales log-uniform in [0.08, 0.64] m, 200x200x16 grid at 0.5 m, C = 18
  a-large  as (a) with scales log-uniform in [0.2, 1.8] m (the case where a pair list needs GBs)
  b        GPOcc local: 6 000 Gaussians, scales in [0.01, 0.08] m, 60x60x36 at 0.08 m, C = 12
  scale-n  (a) with N = 1 600, 6 400, 25 600
  scale-s  (a) with the largest scale 0.16, 0.32, 0.64, 1.28 m
  ref      (a) cropped to 50x50x16 voxels and 1 600 Gaussians (same density): kernel vs reference

``pairs`` is the number of (voxel, Gaussian) entries a pair-list design would store (voxels in the
3-sigma boxes, clipped to the grid); ``pair_list_mb`` counts 12 bytes per entry (an int64 key and
an int32 id, before any sort buffers). Peak memory: CUDA allocator peak above the inputs, or on CPU
the growth of the resident set (VmHWM after resetting it).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, peak_memory_mb, save, sync, time_fn

GRID_A = go.VoxelGrid(origin=(-50.0, -50.0, -5.0), voxel_size=0.5, shape=(200, 200, 16))
GRID_B = go.VoxelGrid(origin=(-2.4, -2.4, -1.0), voxel_size=0.08, shape=(60, 60, 36))
GRID_REF = go.VoxelGrid(origin=(-12.5, -12.5, -5.0), voxel_size=0.5, shape=(50, 50, 16))


def make_gaussians(n, grid, smin, smax, C, device, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lower = torch.tensor(grid.origin)
    upper = torch.tensor(grid.upper)
    means = lower + (upper - lower) * torch.rand(n, 3, generator=gen)
    log_s = math.log(smin) + (math.log(smax) - math.log(smin)) * torch.rand(n, 3, generator=gen)
    g = go.Gaussians(
        means=means[None],
        scales=log_s.exp()[None],
        quats=torch.randn(1, n, 4, generator=gen),
        opacities=torch.rand(1, n, generator=gen),
        features=torch.rand(1, n, C, generator=gen).softmax(-1),
    )
    return g.to(device)


def box_pairs(g: go.Gaussians, grid: go.VoxelGrid, k: float = 3.0) -> int:
    """Voxels in the clipped k-sigma boxes, summed over the Gaussians."""
    from gaussocc_ops.geometry import quat_to_rotmat

    rot = quat_to_rotmat(g.quats[0].cpu().double())
    var = (rot**2 * g.scales[0].cpu().double()[:, None, :] ** 2).sum(-1)
    half = k * var.sqrt()
    lo = (g.means[0].cpu().double() - half - torch.tensor(grid.origin)) / torch.tensor(
        grid.voxel_size
    )
    hi = (g.means[0].cpu().double() + half - torch.tensor(grid.origin)) / torch.tensor(
        grid.voxel_size
    )
    dims = torch.tensor(grid.shape, dtype=torch.float64)
    lo = torch.ceil(lo - 0.5).clamp(min=0)
    hi = torch.floor(hi - 0.5).clamp(max=dims - 1)
    return int((hi - lo + 1).clamp(min=0).prod(-1).sum())


def cpu_peak_mb(fn) -> float | None:
    """Growth of the resident set while ``fn()`` runs (Linux: VmHWM reset via clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base = _status_kb("VmRSS")
        fn()
        return (_status_kb("VmHWM") - base) / 1024
    except OSError:
        return None


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def measure(g, grid, device, backend, repeat):
    params = [g.means, g.scales, g.quats, g.opacities, g.features]
    leaf = go.Gaussians(*(t.detach().clone().requires_grad_() for t in params))

    def forward():
        with torch.no_grad():
            go.gaussians_to_occupancy(g, grid, backend=backend)

    def forward_backward():
        out = go.gaussians_to_occupancy(leaf, grid, backend=backend)
        (out.occupancy.sum() + out.probs.square().sum()).backward()
        for t in (leaf.means, leaf.scales, leaf.quats, leaf.opacities, leaf.features):
            t.grad = None

    fwd = time_fn(forward, device, repeat=repeat)
    both = time_fn(forward_backward, device, repeat=repeat)
    peak = (
        peak_memory_mb if torch.device(device).type == "cuda" else (lambda fn, _d: cpu_peak_mb(fn))
    )
    output_mb = (grid.num_voxels * (g.num_channels + 2) * 4) / 2**20
    return {
        "forward_ms": round(fwd["median_ms"], 2),
        "forward_backward_ms": round(both["median_ms"], 2),
        "peak_forward_mb": _round(peak(forward, device)),
        "peak_forward_backward_mb": _round(peak(forward_backward, device)),
        "output_mb": round(output_mb, 1),
    }


def _round(x):
    return None if x is None else round(x, 1)


def run_workload(name, device, repeat):
    backend = "cuda" if torch.device(device).type == "cuda" else "cpu"
    if name in ("a", "a-large", "b"):
        n, grid, smin, smax, C = {
            "a": (25_600, GRID_A, 0.08, 0.64, 18),
            "a-large": (25_600, GRID_A, 0.2, 1.8, 18),
            "b": (6_000, GRID_B, 0.01, 0.08, 12),
        }[name]
        g = make_gaussians(n, grid, smin, smax, C, device)
        row = {"workload": name, "N": n, "pairs": box_pairs(g, grid)}
        row.update(measure(g, grid, device, backend, repeat))
        row["pair_list_mb"] = round(row["pairs"] * 12 / 2**20, 1)
        return [row]
    if name == "scale-n":
        rows = []
        for n in (1_600, 6_400, 25_600):
            g = make_gaussians(n, GRID_A, 0.08, 0.64, 18, device)
            rows.append(
                {
                    "workload": name,
                    "N": n,
                    "pairs": box_pairs(g, GRID_A),
                    **measure(g, GRID_A, device, backend, repeat),
                }
            )
        return rows
    if name == "scale-s":
        rows = []
        for smax in (0.16, 0.32, 0.64, 1.28):
            g = make_gaussians(25_600, GRID_A, 0.08, smax, 18, device)
            rows.append(
                {
                    "workload": name,
                    "smax": smax,
                    "pairs": box_pairs(g, GRID_A),
                    **measure(g, GRID_A, device, backend, repeat),
                }
            )
        return rows
    if name == "ref":
        g = make_gaussians(1_600, GRID_REF, 0.08, 0.64, 18, device)
        kernel = measure(g, GRID_REF, device, backend, repeat)
        reference = measure(g, GRID_REF, device, "reference", 1)
        return [
            {
                "workload": name,
                "N": 1_600,
                "kernel": kernel,
                "reference": reference,
                "speedup_forward": round(reference["forward_ms"] / kernel["forward_ms"], 1),
                "speedup_forward_backward": round(
                    reference["forward_backward_ms"] / kernel["forward_backward_ms"], 1
                ),
            }
        ]
    raise ValueError(f"unknown workload {name!r}")


WORKLOADS = ("a", "a-large", "b", "scale-n", "scale-s", "ref")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks accumulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None, help="write the results to this file")
    args = parser.parse_args(argv)
    print(machine())
    results = {"machine": machine(), "device": args.device, "rows": []}
    for name in args.workloads:
        for row in run_workload(name, args.device, args.repeat):
            print(row, flush=True)
            results["rows"].append(row)
        sync(args.device)
    save(results, args.json)
    return 0
