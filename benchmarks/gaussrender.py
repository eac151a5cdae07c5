"""GaussRenderLoss forward + backward: time and peak memory, or (``--memory``) the device memory
of its CUDA path.

Timing defaults: grid 200 x 200 x 16 (0.4 m voxels), 18 classes, one 450 x 800 camera and a
200 x 200 BEV view, batch sizes 1 and 4. Two predictions: "trained" (logits close to the ground
truth, so most voxels are empty and dropped before rendering) and "untrained" (random logits:
every voxel is rendered). ``cached`` reuses the ground-truth renders (fixed cameras);
``uncached`` renders the ground truth in every call.

``--compare-compact`` times, in the same run and alternating step by step, the loss as it is
(one Gaussian per voxel, the dropped ones invalid: no host synchronisation) against the loss with
its voxelization forced to ``compact=True`` (the kept voxels packed), and checks that both give
the same loss and gradient bit for bit.

``--memory`` (defaults: a 900 x 1600 camera and a 400 x 400 BEV view) reports the bytes of every
buffer the CUDA path allocates, from formulas (``memory_formulas``) whose data-dependent lengths
(Gaussians, tile intersections) are counted by running the step on the CPU kernels, which bin
the same way; and the peak of one step on a GPU: the CPU run's allocation timeline (every
tensor the Python code and the ops allocate, the same on both devices) with the CUDA binning's
scratch buffers added inside each rasterize call. ``--check`` verifies both at a reduced size
against the emulated CUDA kernels (cuda-emu), whose adapters allocate exactly what they allocate
on a GPU: every allocation inside each op, and the step's peak, to the byte.
"""

from __future__ import annotations

import argparse
import warnings

import torch

import gaussocc_ops as go
from benchmarks._alloc import AllocationTrace, use_emulated_kernels
from benchmarks._timing import machine, peak_memory_mb, save, time_fn
from gaussocc_ops import cameras as camlib

SPLAT_OPS = ("project_gaussians", "project_gaussians_backward", "rasterize", "rasterize_backward")
TILE = 16
MB = 2**20


def cases(args, grid, device):
    """The benchmarked cases, in order: ``(B, kind, cached, labels, logits)`` for every batch
    size, prediction kind and ground-truth caching, the data drawn from one seeded generator."""
    gen = torch.Generator().manual_seed(0)
    for B in args.batch:
        labels = synthetic_labels(grid, B, args.classes, gen).to(device)
        for kind in args.kinds:
            logits = predictions(labels.cpu(), args.classes, kind, gen).to(device)
            for cached in (True, False):
                yield B, kind, cached, labels, logits


def make_loss(cams, grid, args, cached: bool, device) -> go.GaussRenderLoss:
    """The benchmarked loss: ``cams`` and the BEV view, the last class empty."""
    return go.GaussRenderLoss(
        cams.to(device),
        grid=grid,
        num_classes=args.classes,
        empty_class=args.classes - 1,
        bev_resolution=args.bev,
        cache_gt=cached,
        backend=args.backend,
    )


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


# --- device memory of the CUDA path (--memory) --------------------------------------------------


def binning_sequence(M, n, depth_bytes, cub="real", design="now"):
    """The scratch buffers of the CUDA binning of one rasterize call, as the adapter
    (csrc/cuda/splat_launch.cpp) allocates and frees them: ``[(name, +bytes | -bytes), ...]``.

    ``M`` = images x Gaussians (the entries), ``n`` = tile intersections, ``depth_bytes`` the
    float size (4 or 8). ``cub``: the size of CUB's temp storage, ``"real"`` (SortPairs keeps a
    third key and value buffer in it, ``n (key + value)`` bytes, plus histograms well under 1 MB;
    DeviceScan needs a few KB: counted as 0) or ``"emulated"`` (cuda-emu's stand-in asks
    ``256 + 8 n``). Each temp allocation has one extra byte (the adapter asks ``bytes + 1``).
    ``design="before"``: the binning before the 32-bit keys (one sort of 64-bit keys
    ``tile << 32 | float depth``, int64 counts, everything freed at the end).
    ``ids`` (int32, ``4 n``) is the one buffer that is kept (for the backward).
    """

    def temp(items, key_value_bytes):
        if cub == "emulated":
            return 256 + 8 * items + 1
        return items * key_value_bytes + 1

    def scan_temp(items):
        return 256 + 8 * items + 1 if cub == "emulated" else 1

    if design == "before":
        live = [
            ("counts int64", 8 * M),
            ("cum int64", 8 * M),
            ("scan temp", scan_temp(M)),
            ("keys int64", 8 * n),
            ("values int32", 4 * n),
            ("sorted keys int64", 8 * n),
            ("ids int32", 4 * n),
            ("sort temp", temp(n, 12)),
        ]
        frees = [(name, -b) for name, b in reversed(live) if name != "ids int32"]
        return live + frees
    K = 4 if depth_bytes == 4 else 8
    return [
        ("counts int32", 4 * M),
        ("order int32", 4 * M),
        (f"depth keys uint{8 * K}", K * M),
        (f"sorted depth keys uint{8 * K}", K * M),
        ("index int32", 4 * M),
        ("depth sort temp", temp(M, K + 4)),
        ("depth sort temp", -temp(M, K + 4)),
        ("index int32", -4 * M),
        (f"sorted depth keys uint{8 * K}", -K * M),
        (f"depth keys uint{8 * K}", -K * M),
        ("cum int64", 8 * M),
        ("counts in order int64", 8 * M),
        ("counts int32", -4 * M),
        ("scan temp", scan_temp(M)),
        ("scan temp", -scan_temp(M)),
        ("counts in order int64", -8 * M),
        ("keys uint32", 4 * n),
        ("values int32", 4 * n),
        ("order int32", -4 * M),
        ("cum int64", -8 * M),
        ("sorted keys uint32", 4 * n),
        ("ids int32", 4 * n),
        ("tile sort temp", temp(n, 8)),
        ("tile sort temp", -temp(n, 8)),
        ("keys uint32", -4 * n),
        ("values int32", -4 * n),
        ("sorted keys uint32", -4 * n),
    ]


def sequence_peak(seq) -> int:
    total = peak = 0
    for _, b in seq:
        total += b
        peak = max(peak, total)
    return peak


def raster_outputs(B, V, H, W, C, tiles, item):
    """The rasterize outputs, allocated first: features, depth, alpha, last ids, tile offsets."""
    pix = B * V * H * W
    return [
        ("features", pix * C * item),
        ("depth", pix * item),
        ("alpha", pix * item),
        ("last ids int32", pix * 4),
        ("tile offsets int64", 8 * (B * V * tiles + 1)),
    ]


def rasterize_allocations(B, V, N, C, H, W, n, item, cub, design="now"):
    """Every allocation (bytes, in order) the CUDA rasterize adapter makes for one call."""
    tiles = -(-W // TILE) * -(-H // TILE)
    out = [b for _, b in raster_outputs(B, V, H, W, C, tiles, item)]
    seq = binning_sequence(B * V * N, n, item, cub, design)
    return out + [b for _, b in seq if b > 0]


def _splat_calls(trace):
    """Per rasterize call of a traced step: sizes (B, V, N, C, H, W), intersections n (the
    CPU kernel's ids, allocated inside the call) and the allocation level at the call's end."""
    levels = trace.levels()
    calls = []
    for call in trace.calls:
        if call["name"] != "gaussocc::rasterize":
            continue
        B, V, N = call["inputs"][2]
        C = call["inputs"][5][-1]
        W, H = call["inputs"][6], call["inputs"][7]
        inside = [
            i
            for i, (t, size, stack) in enumerate(trace.events)
            if size > 0 and call["start"] <= t <= call["end"] and "gaussocc::rasterize" in stack
        ]
        ids_bytes = trace.events[inside[-1]][1]  # the CPU kernel allocates ids last
        calls.append(
            {"B": B, "V": V, "N": N, "C": C, "H": H, "W": W, "n": ids_bytes // 4,
             "level_end": levels[inside[-1]][1], "ids_bytes": ids_bytes}
        )  # fmt: skip
    return calls


def cuda_step_peak(trace, item, cub, design="now") -> tuple[int, list[dict]]:
    """The peak of a step traced on the CPU kernels, as it would be on the CUDA kernels: the
    CPU kernels allocate the same tensors except the binning's scratch buffers, which are added
    inside each rasterize call (with ``ids``, which both allocate, counted once)."""
    peak = trace.peak
    calls = _splat_calls(trace)
    for c in calls:
        seq = binning_sequence(c["B"] * c["V"] * c["N"], c["n"], item, cub, design)
        c["binning_peak"] = sequence_peak(seq)
        peak = max(peak, c["level_end"] - c["ids_bytes"] + c["binning_peak"])
    return peak, calls


def traced_step(loss_fn, logits, labels) -> AllocationTrace:
    pred = logits.detach().clone().requires_grad_()
    with AllocationTrace(ops=tuple("gaussocc::" + o for o in SPLAT_OPS)) as trace:
        loss_fn(pred, labels).backward()
    return trace


def memory_formulas(B, N_pred, N_gt, C, views, item=4) -> list[dict]:
    """The per-render buffers of the CUDA path (bytes), for the rows of the report. ``views``:
    ``{name: (H, W, n_pred, n_gt)}`` with the intersections of each render."""
    rows = []
    for name, (H, W, n_pred, n_gt) in views.items():
        pix = B * H * W
        tiles = -(-W // TILE) * -(-H // TILE)
        for who, N, n in (("pred", N_pred, n_pred), ("gt", N_gt, n_gt)):
            M = B * N
            kept = who == "pred"
            now = sequence_peak(binning_sequence(M, n, item))
            before = sequence_peak(binning_sequence(M, n, item, design="before"))
            rows += [
                dict(view=name, render=who, buffer="projection: means2d, conics, depths, radii",
                     formula="32 B N", bytes=32 * M, kept=kept),
                dict(view=name, render=who, buffer="tile intersection ids (int32)",
                     formula="4 n", bytes=4 * n, kept=kept),
                dict(view=name, render=who, buffer="tile offsets (int64)",
                     formula="8 (B tiles + 1)", bytes=8 * (B * tiles + 1), kept=kept),
                dict(view=name, render=who, buffer="binning scratch, peak (before: 64-bit keys)",
                     formula="max(28 M, 24 M, 12 M + 8 n, 24 n); before 16 M + 36 n",
                     bytes=now, before=before, kept=False),
                dict(view=name, render=who, buffer="rendered features",
                     formula="4 B H W C", bytes=pix * C * item, kept=False),
                dict(view=name, render=who, buffer="depth, alpha",
                     formula="8 B H W", bytes=2 * pix * item, kept=kept),
                dict(view=name, render=who, buffer="last ids (int32)",
                     formula="4 B H W", bytes=4 * pix, kept=kept),
            ]  # fmt: skip
            if kept:
                rows += [
                    dict(view=name, render=who, buffer="backward: gradient image of the features",
                         formula="4 B H W C", bytes=pix * C * item, kept=False),
                    dict(view=name, render=who,
                         buffer="backward: rasterize gradients (means2d, conics, depths, "
                                "opacities, features)",
                         formula="4 B N (7 + C)", bytes=M * (7 + C) * item, kept=False),
                    dict(view=name, render=who,
                         buffer="backward: projection gradients (means, quats, scales)",
                         formula="40 B N", bytes=M * 10 * item, kept=False),
                ]  # fmt: skip
    return rows


def check_emulated(args) -> dict:
    """At a reduced size: every allocation inside each emulated CUDA rasterize call equals the
    formula, and the step's peak on the emulated kernels equals the CPU trace plus the formula's
    scratch buffers (cuda-emu's CUB stand-in sizes its temp storage ``256 + 8 n``)."""
    X, Y, Z = args.check_grid
    grid = go.VoxelGrid((-X * args.voxel / 2, -Y * args.voxel / 2, -1.0), args.voxel, (X, Y, Z))
    cams = camera(grid, *args.check_image)
    gen = torch.Generator().manual_seed(1)
    cases = []
    for B in (1, 2):
        labels = synthetic_labels(grid, B, args.classes, gen)
        for kind in ("trained", "untrained"):
            logits = predictions(labels, args.classes, kind, gen)
            loss_fn = _loss(cams, grid, args.classes, args.check_bev, cache_gt=False)
            cases.append((B, kind, loss_fn, logits, labels, traced_step(loss_fn, logits, labels)))
    use_emulated_kernels(list(SPLAT_OPS), args.emulated_lib)  # from here on, for every call
    results = []
    for B, kind, loss_fn, logits, labels, cpu in cases:
        want_peak, calls = cuda_step_peak(cpu, 4, "emulated")
        emu = traced_step(loss_fn, logits, labels)
        got = [
            [s for t, s, st in emu.events
             if s > 0 and c["start"] <= t <= c["end"] and "gaussocc_emu::rasterize" in st]
            for c in emu.calls if c["name"] == "gaussocc::rasterize"
        ]  # fmt: skip
        want = [
            rasterize_allocations(c["B"], c["V"], c["N"], c["C"], c["H"], c["W"], c["n"], 4,
                                  "emulated")
            for c in calls
        ]  # fmt: skip
        row = {
            "B": B,
            "prediction": kind,
            "rasterize_calls": len(want),
            "intersections": [c["n"] for c in calls],
            "allocations_match": got == want,
            "emulated_peak": emu.peak,
            "formula_peak": want_peak,
            "peak_match": emu.peak == want_peak,
        }
        if got != want:
            row["got"], row["want"] = got, want
        print(row, flush=True)
        results.append(row)
    return {"grid": (X, Y, Z), "image": args.check_image, "bev": args.check_bev, "rows": results}


def _loss(cams, grid, classes, bev, cache_gt):
    return go.GaussRenderLoss(
        cams, grid=grid, num_classes=classes, empty_class=classes - 1, bev_resolution=bev,
        cache_gt=cache_gt, backend="cpu",
    )  # fmt: skip


def memory_report(args) -> dict:
    X, Y, Z = args.grid
    grid = go.VoxelGrid((-X * args.voxel / 2, -Y * args.voxel / 2, -1.0), args.voxel, (X, Y, Z))
    H, W = args.image
    cams = camera(grid, H, W)
    gen = torch.Generator().manual_seed(0)
    report = {"machine": machine(), "args": vars(args), "configs": []}
    for B in args.batch:
        labels = synthetic_labels(grid, B, args.classes, gen)
        for kind in args.kinds:
            logits = predictions(labels, args.classes, kind, gen)
            for cached in (False, True):
                loss_fn = _loss(cams, grid, args.classes, args.bev, cached)
                if cached:
                    loss_fn(logits, labels)  # fills the ground-truth cache
                trace = traced_step(loss_fn, logits, labels)
                now, calls = cuda_step_peak(trace, 4, "real")
                before, _ = cuda_step_peak(trace, 4, "real", design="before")
                cfg = {
                    "B": B,
                    "prediction": kind,
                    "gt": "cached" if cached else "uncached",
                    "renders": [
                        {k: c[k] for k in ("N", "H", "W", "n", "binning_peak")} for c in calls
                    ],
                    "step_peak_cpu_trace": trace.peak,
                    "step_peak_cuda": now,
                    "step_peak_cuda_before": before,
                    # the largest tensors alive at the CPU trace's peak, with the innermost
                    # operator that allocated each
                    "live_at_peak": [
                        (size, stack[-1] if stack else "")
                        for size, stack in trace.live_at_peak()[:8]
                    ],
                }
                if not cached:
                    # uncached: ground truth first (cam, bev), then the prediction (cam, bev)
                    gt_cam, gt_bev, pr_cam, pr_bev = calls
                    views = {
                        "cam": (H, W, pr_cam["n"], gt_cam["n"]),
                        "bev": (args.bev, args.bev, pr_bev["n"], gt_bev["n"]),
                    }
                    cfg["buffers"] = memory_formulas(
                        B, pr_cam["N"], gt_cam["N"], args.classes, views
                    )
                report["configs"].append(cfg)
                print(
                    f"B={B} {kind:9s} GT {cfg['gt']:8s} step peak (CUDA) "
                    f"{now / MB:8.1f} MB (before: {before / MB:8.1f} MB); renders "
                    + ", ".join(f"N={c['N']} {c['H']}x{c['W']} n={c['n']}" for c in calls),
                    flush=True,
                )
    return report


def compare_compact(args, grid, cams, device) -> dict:
    """Same-run timing of fixed-size against compacted voxelization in the loss (see above)."""
    import statistics
    import time

    from gaussocc_ops import gaussrender

    def forced(fn):
        return lambda *a, **k: fn(*a, **{**k, "compact": True})

    def use(fns):
        gaussrender.voxels_to_gaussians, gaussrender._labels_to_gaussians = fns

    fixed = (gaussrender.voxels_to_gaussians, gaussrender._labels_to_gaussians)
    compacted = tuple(forced(fn) for fn in fixed)
    rows = []
    for B, kind, cached, labels, logits in cases(args, grid, device):
        steps, results = {}, {}
        for name, fns in (("fixed", fixed), ("compacted", compacted)):
            loss_fn = make_loss(cams, grid, args, cached, device)
            pred = logits.clone().requires_grad_()

            def step(loss_fn=loss_fn, pred=pred, fns=fns, labels=labels):
                use(fns)
                try:
                    pred.grad = None
                    loss = loss_fn(pred, labels)
                    loss.backward()
                finally:
                    use(fixed)
                return loss.detach(), pred.grad

            results[name] = step()  # (fills the ground-truth cache)
            step()
            steps[name] = step
        times = {name: [] for name in steps}
        for _ in range(args.repeat):
            for name, step in steps.items():
                t0 = time.perf_counter()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append((time.perf_counter() - t0) * 1000.0)
        med = {name: statistics.median(t) for name, t in times.items()}
        row = {
            "batch": B,
            "prediction": kind,
            "gt": "cached" if cached else "uncached",
            "fixed_ms": med["fixed"],
            "compacted_ms": med["compacted"],
            "identical": all(
                torch.equal(a, b)
                for a, b in zip(results["fixed"], results["compacted"], strict=True)
            ),
        }
        rows.append(row)
        print(
            f"B={B} {kind:9s} GT {row['gt']:8s} fixed-size {med['fixed']:9.1f} ms  "
            f"compacted {med['compacted']:9.1f} ms  ratio "
            f"{med['fixed'] / med['compacted']:.2f}  identical {row['identical']}"
        )
    return {"machine": machine(), "args": vars(args), "compare_compact": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--grid", type=int, nargs=3, default=(200, 200, 16), metavar=("X", "Y", "Z")
    )
    parser.add_argument("--voxel", type=float, default=0.4, help="voxel size in metres")
    parser.add_argument("--classes", type=int, default=18)
    parser.add_argument(
        "--image",
        type=int,
        nargs=2,
        default=None,
        metavar=("H", "W"),
        help="camera size (default 450 800; with --memory 900 1600)",
    )
    parser.add_argument(
        "--bev",
        type=int,
        default=None,
        help="BEV resolution, pixels per side (default 200; with --memory 400)",
    )
    parser.add_argument("--batch", type=int, nargs="+", default=(1, 4))
    parser.add_argument("--kinds", nargs="+", default=("trained", "untrained"))
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="write the results to this file")
    parser.add_argument(
        "--compare-compact",
        action="store_true",
        help="time fixed-size against compacted voxelization in the loss (see above)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="report the device memory of the CUDA path (see above)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="with --memory: check the formulas against the emulated kernels",
    )
    parser.add_argument("--emulated-lib", default=None, help="cuda-emu library for --check")
    parser.add_argument("--check-grid", type=int, nargs=3, default=(40, 36, 8))
    parser.add_argument("--check-image", type=int, nargs=2, default=(90, 160))
    parser.add_argument("--check-bev", type=int, default=44)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="gaussocc_ops: no compiled kernel")
    if args.image is None:
        args.image = (900, 1600) if args.memory else (450, 800)
    if args.bev is None:
        args.bev = 400 if args.memory else 200
    if args.memory:
        if args.threads:
            torch.set_num_threads(args.threads)
        out = {}
        if args.check:
            out["check"] = check_emulated(args)
        else:
            out["report"] = memory_report(args)
        save(out, args.json)
        return 0
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
    if args.compare_compact:
        save(compare_compact(args, grid, cams, device), args.json)
        return 0
    results = {"machine": machine(), "args": vars(args), "rows": []}
    for B, kind, cached, labels, logits in cases(args, grid, device):
        loss_fn = make_loss(cams, grid, args, cached, device)
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
