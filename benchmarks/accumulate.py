"""Gaussian-to-occupancy accumulation: forward, forward+backward and peak memory.

Workloads:
  a        25 600 Gaussians, scales log-uniform in [0.08, 0.64] m, 200x200x16 grid at 0.5 m, C = 18
  a-large  as (a) with scales log-uniform in [0.2, 1.8] m (the case where a pair list needs GBs)
  b        GPOcc local: 6 000 Gaussians, scales in [0.01, 0.08] m, 60x60x36 at 0.08 m, C = 12
  scale-n  (a) with N = 1 600, 6 400, 25 600
  scale-s  (a) with the largest scale 0.16, 0.32, 0.64, 1.28 m
  ref      (a) cropped to 50x50x16 voxels and 1 600 Gaussians (same density): kernel vs reference

``--memory`` counts the bytes the probabilistic mode allocates (``benchmarks/_alloc.py``: every
tensor allocation, from torch.profiler's memory events) instead of timing: the forward without
and with autograd, and the backward from given output gradients (channel-first contiguous, as a
loss over ``probs [B, C + 1, X, Y, Z]`` produces them). With ``--emulated [LIB]`` the CUDA
kernels run in cuda-emu (their adapters allocate on the CPU exactly the buffers they allocate on a
GPU), so the counts are the CUDA path's. Workloads: ``a`` (full size) and ``ref``.

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
from benchmarks._alloc import AllocationTrace, use_emulated_kernels
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
MEMORY_WORKLOADS = {
    "a": (25_600, GRID_A, 0.08, 0.64, 18),
    "ref": (1_600, GRID_REF, 0.08, 0.64, 18),
    "small": (
        400,
        go.VoxelGrid(origin=(-6.0, -6.0, -5.0), voxel_size=0.5, shape=(24, 24, 16)),
        0.08,
        0.64,
        18,
    ),
}


def _nbytes(*tensors) -> int:
    return sum(t.untyped_storage().nbytes() for t in tensors)


def cpu_kernel_private_bytes(g: go.Gaussians, grid: go.VoxelGrid, k: float = 3.0) -> int:
    """``std::vector`` memory of the CPU forward (not torch allocations, so not traced): the
    prepared Gaussians (conic + box, 6 values and 6 int64, plus a flag) and the per-plane id
    lists (one int32 per Gaussian and x-plane of its box, plus the plane offsets)."""
    from gaussocc_ops.geometry import quat_to_rotmat

    n = g.num_gaussians
    item = g.means.element_size()
    rot = quat_to_rotmat(g.quats[0].double())
    var = (rot[:, 0] ** 2 * g.scales[0].double() ** 2).sum(-1)
    half = k * var.sqrt()
    lo = torch.ceil((g.means[0, :, 0].double() - half - grid.origin[0]) / grid.voxel_size[0] - 0.5)
    hi = torch.floor((g.means[0, :, 0].double() + half - grid.origin[0]) / grid.voxel_size[0] - 0.5)
    planes = int((hi.clamp(max=grid.shape[0] - 1) - lo.clamp(min=0) + 1).clamp(min=0).sum())
    return n * (6 * item + 6 * 8 + 1) + planes * 4 + (grid.shape[0] + 1) * 8


def measure_memory(g: go.Gaussians, grid: go.VoxelGrid, mode: str = "probabilistic") -> dict:
    """Bytes allocated by the forward (no grad; with grad) and the backward of one call."""
    kw = dict(mode=mode, backend="cpu")
    with torch.no_grad(), AllocationTrace() as t0:
        out = go.gaussians_to_occupancy(g, grid, **kw)
    out_bytes = _nbytes(out.occupancy, out.probs)
    del out
    leaf = go.Gaussians(
        *(
            t.detach().clone().requires_grad_()
            for t in (g.means, g.scales, g.quats, g.opacities, g.features)
        )
    )
    with AllocationTrace() as t1:
        out = go.gaussians_to_occupancy(leaf, grid, **kw)
    gen = torch.Generator().manual_seed(0)
    g_occ = torch.randn(out.occupancy.shape, generator=gen, dtype=out.occupancy.dtype)
    g_probs = torch.randn(out.probs.shape, generator=gen, dtype=out.probs.dtype)
    with AllocationTrace() as t2:
        torch.autograd.backward([out.occupancy, out.probs], [g_occ, g_probs])
    input_grads = _nbytes(
        *(t.grad for t in (leaf.means, leaf.scales, leaf.quats, leaf.opacities, leaf.features))
    )
    mb = 2**20
    return {
        "output_mb": round(out_bytes / mb, 2),
        "forward_nograd_peak_mb": round(t0.peak / mb, 2),
        "forward_grad_peak_mb": round(t1.peak / mb, 2),
        "forward_grad_retained_mb": round(t1.net / mb, 2),
        "backward_peak_mb": round(t2.peak / mb, 2),
        "input_grads_mb": round(input_grads / mb, 2),
        "extra_forward_x_output": round((t1.peak - out_bytes) / out_bytes, 3),
        "extra_backward_x_output": round((t2.peak - input_grads) / out_bytes, 3),
        # forward retained (outputs + saved state) plus the backward's peak, over the output
        "forward_backward_peak_x_output": round(
            max(t1.peak, t1.net + t2.peak - input_grads) / out_bytes, 3
        ),
    }


def run_memory(workloads, emulated, mode: str = "probabilistic") -> list[dict]:
    rows = []
    for name in workloads:
        n, grid, smin, smax, C = MEMORY_WORKLOADS[name]
        g = make_gaussians(n, grid, smin, smax, C, "cpu")
        row = {
            "workload": name,
            "N": n,
            "grid": grid.shape,
            "C": C,
            "kernels": "emulated CUDA" if emulated else "CPU",
            "mode": mode,
        }
        row.update(measure_memory(g, grid, mode))
        if not emulated:
            row["cpu_kernel_private_mb"] = round(cpu_kernel_private_bytes(g, grid) / 2**20, 2)
        rows.append(row)
    return rows


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
    parser.add_argument("--memory", action="store_true", help="count allocated bytes instead")
    parser.add_argument(
        "--memory-workloads", nargs="+", default=["a", "ref"], choices=sorted(MEMORY_WORKLOADS)
    )
    parser.add_argument(
        "--emulated",
        nargs="?",
        const="build/cuda_emu/gaussocc_emu.so",
        default=None,
        metavar="LIB",
        help="with --memory: run the CUDA kernels in cuda-emu (this library)",
    )
    parser.add_argument(
        "--memory-mode",
        default="probabilistic",
        choices=["probabilistic", "gaussianformer2"],
        help="with --memory: the accumulation mode to count",
    )
    args = parser.parse_args(argv)
    print(machine())
    if args.memory:
        if args.emulated:
            print(
                "kernels:",
                use_emulated_kernels(
                    ["accumulate_gaussians", "accumulate_gaussians_backward"], args.emulated
                ),
            )
        rows = run_memory(args.memory_workloads, args.emulated, args.memory_mode)
        for row in rows:
            print(row, flush=True)
        save({"machine": machine(), "memory": rows}, args.json)
        return 0
    results = {"machine": machine(), "device": args.device, "rows": []}
    for name in args.workloads:
        for row in run_workload(name, args.device, args.repeat):
            print(row, flush=True)
            results["rows"].append(row)
        sync(args.device)
    save(results, args.json)
    return 0
