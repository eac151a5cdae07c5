"""Per-frame insert latency of GaussianMemory on synthetic streams.

    PYTHONPATH=src:. python -m benchmarks memory [--streams dense corridor30 corridor100
        corridor300] [--threads N] [--baseline-rev REV] [--device cpu] [--json out.json]

Streams (fixed seeds):

* ``dense``: the 30-frame stream of 6 000 Gaussians a frame (``--frames``, ``--per-frame``): a
  static box of surface points (40 x 10 x 3 m, 36 000 points) seen by a camera moving 30 m along
  it; each frame takes 6 000 of the points within 8 m of the camera, with 3 cm noise, so most
  Gaussians fuse into the memory.
* ``corridorN``: N frames of 2 500 Gaussians of a corridor (3 m wide, 2.5 m high: floor and two
  walls) walked at 0.5 m a frame; each frame samples the surface points within 8 m ahead of the
  camera, with 2 cm noise. The memory grows with the walked length (about 13 000 Gaussians
  after 30 frames, 105 000 after 300), so an insert whose cost grows with the memory shows it.

``--baseline-rev REV`` also runs ``src/gaussocc_ops/memory.py`` as of git revision ``REV`` (its
``insert(gaussians, cam2world)``) on the same frames in the same process, for a before/after
table measured under the same conditions. Each stream runs ``--repeat`` times per
implementation, the implementations alternating; it reports the median over the runs of the
per-run median insert time, the minimum single insert, and for the corridors the ratio of that
median to the 30-frame corridor's. Timings on a shared machine are noisy: compare numbers of one
run, and prefer ``--threads 1`` for costs (with 2 threads on a loaded 2-core machine every
parallel region waits for the scheduler).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import gaussocc_ops as go
from benchmarks._timing import machine, save, sync

K = torch.tensor([[300.0, 0, 320], [0, 300.0, 240], [0, 0, 1]])
HEIGHT, WIDTH = 480, 640


def dense_stream(frames: int, per_frame: int):
    g = torch.Generator().manual_seed(0)
    scene = torch.rand(per_frame * 6, 3, generator=g) * torch.tensor([40.0, 10.0, 3.0])
    for f in range(frames):
        eye = torch.tensor([f * 30.0 / frames, 5.0, 1.5])
        near = ((scene - eye).norm(dim=-1) < 8).nonzero().squeeze(1)
        pick = near[torch.randperm(near.numel(), generator=g)[:per_frame]]
        yield scene[pick] + 0.03 * torch.randn(pick.numel(), 3, generator=g), eye, g


def corridor_stream(frames: int, per_frame: int = 2500, speed: float = 0.5):
    g = torch.Generator().manual_seed(1)
    length = frames * speed + 10.0
    density = 2 * per_frame / (8.0 * 8.0)  # points per m^2: twice what one frame takes
    area = {"floor": 3.0 * length, "wall": 2.5 * length}
    parts = []
    n = int(area["floor"] * density)
    parts.append(
        torch.stack(
            [torch.rand(n, generator=g) * length, torch.rand(n, generator=g) * 3, torch.zeros(n)],
            -1,
        )
    )
    for y in (0.0, 3.0):
        n = int(area["wall"] * density)
        parts.append(
            torch.stack(
                [
                    torch.rand(n, generator=g) * length,
                    torch.full((n,), y),
                    torch.rand(n, generator=g) * 2.5,
                ],
                -1,
            )
        )
    scene = torch.cat(parts)
    for f in range(frames):
        eye = torch.tensor([f * speed, 1.5, 1.5])
        ahead = (scene[:, 0] >= eye[0]) & (scene[:, 0] < eye[0] + 8.0)
        near = ahead.nonzero().squeeze(1)
        pick = near[torch.randperm(near.numel(), generator=g)[:per_frame]]
        yield scene[pick] + 0.02 * torch.randn(pick.numel(), 3, generator=g), eye, g


def make_frames(points_eye_g, device):
    """Camera-frame Gaussians, the pose and the single-view camera of every frame."""
    frames = []
    for pts, eye, g in points_eye_g:
        n = pts.shape[0]
        cam2world = torch.eye(4)
        cam2world[:3, 3] = eye
        gaussians = go.Gaussians.isotropic(
            (pts - eye).to(device),
            0.05,
            torch.rand(n, generator=g).to(device),
            torch.softmax(3 * torch.randn(n, 12, generator=g), -1).to(device),
        )
        camera = go.Cameras.from_cam2world(
            cam2world[None].to(device), K[None].to(device), height=HEIGHT, width=WIDTH
        )
        frames.append((gaussians, cam2world.to(device), camera))
    return frames


def load_revision(rev: str):
    """``src/gaussocc_ops/memory.py`` at git revision ``rev`` as a module."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(
        ["git", "show", f"{rev}:src/gaussocc_ops/memory.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"memory_{rev}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"memory_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(memory_cls, frames, args, device) -> dict:
    memory = memory_cls(radius=args.radius, mode=args.mode, device=device)
    takes_camera = "camera" in inspect.signature(memory.insert).parameters
    depth = torch.full((HEIGHT, WIDTH), 5.0, device=device)
    times, sizes = [], []
    for gaussians, cam2world, camera in frames:
        if takes_camera:
            extra = {"depth": depth} if args.mode == "sgr" else {}
            call = (gaussians, camera)
        else:  # the API before Cameras: insert(gaussians, cam2world, depth=, intrinsics=)
            extra = {"depth": depth, "intrinsics": K.to(device)} if args.mode == "sgr" else {}
            call = (gaussians, cam2world)
        sync(device)
        t0 = time.perf_counter()
        memory.insert(*call, **extra)
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
        sizes.append(len(memory))
    return {
        "insert_ms": times,
        "sizes": sizes,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "last_tenth_median_ms": statistics.median(times[-max(1, len(times) // 10) :]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", nargs="+", default=["dense", "corridor30", "corridor100", "corridor300"]
    )
    parser.add_argument("--frames", type=int, default=30, help="frames of the dense stream")
    parser.add_argument("--per-frame", type=int, default=6000, help="of the dense stream")
    parser.add_argument("--radius", type=float, default=0.08)
    parser.add_argument("--mode", default="gpocc", choices=["gpocc", "sgr"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--baseline-rev", default=None, help="also time memory.py at this rev")
    parser.add_argument("--repeat", type=int, default=1, help="runs per stream and version")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    impls = {"current": go.GaussianMemory}
    if args.baseline_rev:
        impls[f"baseline {args.baseline_rev}"] = load_revision(args.baseline_rev).GaussianMemory
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"machine: {machine()}; load average at start {load}")
    print(
        f"command: python -m benchmarks memory {' '.join(sys.argv[2:] if argv is None else argv)}"
    )
    results = {"machine": machine(), "load_start": load, "args": vars(args), "streams": {}}
    for stream in args.streams:
        if stream == "dense":
            points = dense_stream(args.frames, args.per_frame)
            label = f"dense {args.frames} x {args.per_frame}"
        elif stream.startswith("corridor"):
            points = corridor_stream(int(stream.removeprefix("corridor")))
            label = f"corridor {stream.removeprefix('corridor')} x 2500"
        else:
            raise SystemExit(f"unknown stream {stream!r}")
        frames = make_frames(points, args.device)
        results["streams"][stream] = {}
        runs = {name: [] for name in impls}
        for _ in range(args.repeat):
            for name, cls in impls.items():
                runs[name].append(run(cls, frames, args, args.device))
        for name, rs in runs.items():
            r = {
                "runs": rs,
                "median_ms": statistics.median(x["median_ms"] for x in rs),
                "min_ms": min(x["min_ms"] for x in rs),
                "last_tenth_median_ms": statistics.median(x["last_tenth_median_ms"] for x in rs),
                "run_medians_ms": [round(x["median_ms"], 2) for x in rs],
                "size": rs[0]["sizes"][-1],
            }
            results["streams"][stream][name] = r
            print(
                f"{label:22s} {name:18s} median {r['median_ms']:7.1f} ms  min {r['min_ms']:6.1f} ms"
                f"  last 10% {r['last_tenth_median_ms']:7.1f} ms  memory {r['size']:7d}"
                f"  (run medians {r['run_medians_ms']})"
            )
    corridors = [s for s in results["streams"] if s.startswith("corridor")]
    if "corridor30" in corridors and len(corridors) > 1:
        for name in impls:
            base = results["streams"]["corridor30"][name]["median_ms"]
            ratios = {s: results["streams"][s][name]["median_ms"] / base for s in corridors}
            print(
                f"median / corridor30 median ({name}): "
                + ", ".join(f"{s} {v:.2f}x" for s, v in ratios.items())
            )
    results["load_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"load average at end {results['load_end']}")
    save(results, args.json)
    return 0
