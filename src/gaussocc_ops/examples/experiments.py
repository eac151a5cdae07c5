"""Each paper's effect, measured over seeds on held-out synthetic rooms.

    python -m gaussocc_ops.examples.experiments gaussrender   # baseline vs + GaussRenderLoss
    python -m gaussocc_ops.examples.experiments vipocc        # aligned depth vs the prior
    python -m gaussocc_ops.examples.experiments gpocc         # streamed frames vs single frames
    python -m gaussocc_ops.examples.experiments all

Every experiment trains on rooms with seeds 0, 1, ... and evaluates on rooms with seeds from
10000 on, which no training ever sees; it repeats the training for ``--seeds`` seeds (model
initialisation, batch order, camera draws) and prints mean +- std over the seeds as a Markdown
table (the tables of docs/examples.md are copied from this output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.training import NUM_CLASSES, SceneData, fit

VAL_SEED_OFFSET = 10_000
GRID_SHAPE = (30, 30, 18)
VOXEL_SIZE = 0.16


def room_grid():
    """The examples' grid: 30 x 30 x 18 voxels of 16 cm (a 4.8 x 4.8 x 2.88 m room)."""
    return scenes.indoor_grid(shape=GRID_SHAPE, voxel_size=VOXEL_SIZE)


# ---------------------------------------------------------------------------------------------
# statistics and tables


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def pm(values: Sequence[float], scale: float = 100.0, digits: int = 1) -> str:
    """``"61.2 ± 1.3"`` of ``values * scale``."""
    m, s = mean_std([scale * v for v in values])
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cache(args) -> Path | None:
    return None if args.no_cache else Path(args.out) / "runs"


# ---------------------------------------------------------------------------------------------
# GaussRender


@dataclass(frozen=True)
class RenderSetting:
    """One training configuration of :class:`GaussRenderPlugin`: ``weight`` is GaussRender's
    ``lambda`` (0: the CE + Lovász baseline) and ``strategy`` its camera strategy."""

    weight: float = 0.0
    strategy: str = "sensor"
    bev: bool = True

    @property
    def name(self) -> str:
        if self.weight == 0:
            return "ce+lovasz"
        bev = "" if self.bev else ", no BEV"
        return f"+gaussrender ({self.strategy}, λ={self.weight:g}{bev})"


@dataclass
class Recipe:
    """The training recipe shared by the demo and the GaussRender experiment."""

    epochs: int = 10
    train_scenes: int = 64
    val_scenes: int = 16
    batch_size: int = 4
    lr: float = 1e-2
    hidden: int = 24
    image_size: tuple[int, int] = (96, 128)
    render_size: tuple[int, int] = (48, 64)


def make_plugin(setting: RenderSetting, recipe: Recipe, seed: int):
    """The model of ``setting``, initialised from ``seed`` (the same weights for every
    setting: the rendering loss has no parameters)."""
    from gaussocc_ops.examples.models import GaussRenderPlugin

    grid = room_grid()
    torch.manual_seed(seed)
    return GaussRenderPlugin(
        grid,
        NUM_CLASSES,
        hidden=recipe.hidden,
        gaussrender_weight=setting.weight,
        camera_strategy=setting.strategy,
        render_size=recipe.render_size,
        render_mask=scenes.below_ceiling(grid),
        bev=setting.bev,
        generator=torch.Generator().manual_seed(seed),
    )


_DATA: dict = {}


def room_data(recipe: Recipe) -> tuple[SceneData, SceneData]:
    """Training rooms ``0 .. train_scenes - 1`` and held-out rooms from 10000 (cached)."""
    key = (recipe.train_scenes, recipe.val_scenes, tuple(recipe.image_size))
    if key not in _DATA:
        grid = room_grid()
        train = SceneData.make(range(recipe.train_scenes), grid, recipe.image_size)
        val_seeds = range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + recipe.val_scenes)
        _DATA[key] = (train, SceneData.make(val_seeds, grid, recipe.image_size))
    return _DATA[key]


def train_setting(
    setting: RenderSetting,
    recipe: Recipe,
    seed: int,
    progress: bool = False,
    threads: int = 1,
    **callbacks,
):
    """Train one ``setting`` from ``seed`` with ``threads`` torch threads; returns
    ``(history, model)``. ``callbacks`` (``on_step``, ``on_epoch``) go to
    :func:`training.fit`."""
    torch.set_num_threads(threads)
    train, val = room_data(recipe)
    model = make_plugin(setting, recipe, seed)
    history = fit(
        model,
        train,
        val,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=seed,
        name=setting.name,
        progress=progress,
        **callbacks,
    )
    return history, model


def _job(args) -> dict:
    setting, recipe, seed = args
    start = time.perf_counter()
    history, _ = train_setting(setting, recipe, seed)
    for epoch in history["epochs"]:
        epoch["per_class"] = epoch["per_class"].tolist()
    return {
        "setting": asdict(setting),
        "seed": seed,
        "history": history,
        "seconds": time.perf_counter() - start,
    }


def _job_file(cache: Path, fn: Callable, job) -> Path:
    """Where the result of ``fn(job)`` is kept: named by a hash of the job's description."""
    text = json.dumps([fn.__name__, [asdict(x) if hasattr(x, "__dataclass_fields__") else x
                                     for x in job]], sort_keys=True, default=str)
    return cache / f"{fn.__name__.strip('_')}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"


def run_jobs(fn: Callable, jobs: list, workers: int, log=print, cache: Path | None = None) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` processes (one torch thread each). With
    ``cache``, each result is written to a JSON file there and reused by later runs."""
    results: list = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        path = None if cache is None else _job_file(cache, fn, job)
        if path is not None and path.exists():
            results[i] = json.loads(path.read_text())
            log(f"  [{i + 1}/{len(jobs)}] {_describe(results[i])} (cached: {path})")
        else:
            todo.append((i, path))

    def done(i, path, result):
        results[i] = result
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result))
        log(f"  [{i + 1}/{len(jobs)}] {_describe(result)}")

    if workers <= 1 or len(todo) <= 1:
        for i, path in todo:
            done(i, path, fn(jobs[i]))
        return results
    ctx = torch.multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(todo))) as pool:
        pending = [(i, path, pool.apply_async(fn, (jobs[i],))) for i, path in todo]
        for i, path, result in pending:
            done(i, path, result.get())
    return results


def _describe(result: dict) -> str:
    if "history" not in result or not isinstance(result["history"], dict):
        return f"seed {result['seed']} done ({result['seconds']:.0f} s)"
    final = result["history"]["epochs"][-1]
    name = RenderSetting(**result["setting"]).name
    return (
        f"{name} seed {result['seed']}: SC-IoU {100 * final['sc_iou']:.1f} "
        f"mIoU {100 * final['miou']:.1f} furniture {100 * final['furniture_miou']:.1f} "
        f"({result['seconds']:.0f} s)"
    )


GAUSSRENDER_METRICS = (
    ("sc_iou", "SC-IoU", 1),
    ("miou", "mIoU", 1),
    ("furniture_miou", "furniture mIoU", 1),
    ("rayiou", "RayIoU", 1),
    ("floating", "floating voxels (%)", 2),
)


def gaussrender_table(results: list[dict]) -> str:
    """Markdown table: one row per setting, mean ± std over seeds of the final held-out
    metrics, and the mean ± std over seeds of the paired difference to the baseline's mIoU."""
    by_setting: dict[RenderSetting, dict[int, dict]] = {}
    for r in results:
        by_setting.setdefault(RenderSetting(**r["setting"]), {})[r["seed"]] = r
    baseline = by_setting.get(RenderSetting())
    header = ["setting", "seeds"] + [label for _, label, _ in GAUSSRENDER_METRICS]
    header += ["Δ mIoU vs baseline (paired)", "s / run"]
    rows = []
    for setting, runs in by_setting.items():
        finals = [run["history"]["epochs"][-1] for run in runs.values()]
        row = [setting.name, str(len(runs))]
        row += [pm([f[key] for f in finals], digits=d) for key, _, d in GAUSSRENDER_METRICS]
        if baseline is None or setting == RenderSetting():
            row.append("")
        else:
            common = sorted(set(runs) & set(baseline))
            diffs = [
                runs[s]["history"]["epochs"][-1]["miou"]
                - baseline[s]["history"]["epochs"][-1]["miou"]
                for s in common
            ]
            row.append(pm(diffs) if diffs else "")
        row.append(f"{statistics.fmean(r['seconds'] for r in runs.values()):.0f}")
        rows.append(row)
    return markdown_table(header, rows)


DEFAULT_STRATEGIES = ("sensor", "elevated", "elevated_around", "random")
DEFAULT_WEIGHTS = (1.0, 5.0, 15.0)


def gaussrender_experiment(args, log=print) -> dict:
    """Stage 1: the baseline and GaussRender with the sensor camera at each ``--weights``
    (lambda; 15 is the paper's); stage 2: the other camera ``--strategies`` at the lambda of
    stage 1 with the best mean mIoU. Every setting runs from the same initialisation per seed."""
    recipe = Recipe(epochs=args.epochs, train_scenes=args.train_scenes, val_scenes=args.val_scenes)
    seeds = list(range(args.seeds))
    log(
        f"GaussRender: {recipe.train_scenes} training / {recipe.val_scenes} held-out rooms, "
        f"{recipe.epochs} epochs, seeds {seeds}, {args.workers} worker process(es)"
    )
    settings = [RenderSetting()] + [RenderSetting(w, "sensor") for w in args.weights]
    jobs = [(setting, recipe, seed) for setting in settings for seed in seeds]
    results = run_jobs(_job, jobs, args.workers, log, _cache(args))
    means: dict[float, list[float]] = {}
    for r in results:
        if r["setting"]["weight"] > 0:
            means.setdefault(r["setting"]["weight"], []).append(r["history"]["epochs"][-1]["miou"])
    best = max(means, key=lambda w: statistics.fmean(means[w])) if means else None
    stage2 = best if args.strategy_weight is None else args.strategy_weight
    others = [s for s in args.strategies if s != "sensor"]
    if stage2 is not None and others:
        log(
            f"best λ with the sensor camera (mean mIoU): {best}; the cameras {others} "
            f"at λ = {stage2:g}"
        )
        jobs = [(RenderSetting(stage2, s), recipe, seed) for s in others for seed in seeds]
        results += run_jobs(_job, jobs, args.workers, log, _cache(args))
    table = gaussrender_table(results)
    log("\nGaussRender on held-out rooms (final epoch, mean ± std over seeds, %):\n")
    log(table)
    return {"results": results, "table": table, "best_weight": best}


# ---------------------------------------------------------------------------------------------
# ViPOcc: the depth branch trained on consecutive frames


@dataclass(frozen=True)
class DepthSetting:
    """ViPOcc's loss ``L = l1 L_ta + l2 (L_rc^d + L_rc^rgb)`` (Eq. 7) with ``weights = (l1,
    l2)``; ``bian`` weights L_ta by the Bian et al. mask (Eq. 9; False: ``M = 1``). Not in
    ViPOcc's equations: ``bound`` limits the inverse-depth correction to ``|f| <= bound / D_p``
    (None leaves it free as Eq. 3 does) and ``detach`` stops L_rc^d's gradient into the aligned
    depth."""

    weights: tuple[float, float] = (1.0, 1.0)
    bound: float | None = None
    detach: bool = False
    bian: bool = True

    @property
    def name(self) -> str:
        l1, l2 = self.weights
        terms = {(1.0, 0.0): "L_ta (Eq. 9)", (0.0, 1.0): "L_rc (Eq. 10-11)"}.get(
            (l1, l2), f"Eq. 7, λ1={l1:g}, λ2={l2:g}"
        )
        if not self.bian:
            terms += ", M = 1 (not in ViPOcc)"
        if self.detach:
            terms += ", D̂ detached in L_rc^d (not in ViPOcc)"
        if self.bound is not None:
            terms += f", correction bound {self.bound:g} (not in ViPOcc)"
        return terms


@dataclass
class DepthRecipe:
    """ViPOccDepthBranch trained on pairs of consecutive walk frames of the training rooms and
    evaluated on the principal frames of held-out rooms' pairs."""

    train_scenes: int = 32
    pairs_per_train_scene: int = 4
    val_scenes: int = 8
    pairs_per_val_scene: int = 4
    epochs: int = 6
    batch_size: int = 4
    lr: float = 1e-3
    step_deg: float = 10.0
    image_size: tuple[int, int] = (96, 128)
    texture: float = 0.3


def vipocc_data(recipe: DepthRecipe):
    from gaussocc_ops.examples.models import make_view_pair

    key = ("vipocc", recipe.train_scenes, recipe.pairs_per_train_scene, recipe.val_scenes,
           recipe.pairs_per_val_scene, recipe.step_deg, tuple(recipe.image_size), recipe.texture)
    if key not in _DATA:
        grid = room_grid()

        def pairs(first, count, per_scene):
            seeds = [s for s in range(first, first + count) for _ in range(per_scene)]
            angles = [a for s in range(first, first + count) for a in _angles(s, per_scene, True)]
            gen = torch.Generator().manual_seed(first + 1)
            return make_view_pair(
                seeds, grid=grid, image_size=recipe.image_size, angles=angles,
                step_deg=recipe.step_deg, texture=recipe.texture, generator=gen,
            )

        _DATA[key] = (
            pairs(0, recipe.train_scenes, recipe.pairs_per_train_scene),
            pairs(VAL_SEED_OFFSET, recipe.val_scenes, recipe.pairs_per_val_scene),
        )
    return _DATA[key]


def depth_errors(depth: torch.Tensor, truth: torch.Tensor) -> dict:
    """AbsRel (``go.metrics.DepthMetrics``) and the mean absolute error in metres, averaged
    over images, on the pixels with a true depth (``[B, 1, H, W]`` maps)."""
    from gaussocc_ops.metrics import DepthMetrics

    metric = DepthMetrics(min_depth=0.1, max_depth=20.0)
    metric.update(depth, truth)
    valid = (truth > 0.1).flatten(1)
    err = ((depth - truth).abs().flatten(1) * valid).sum(1) / valid.sum(1).clamp_min(1)
    return {"abs_rel": float(metric.compute()["abs_rel"]), "mean_error": float(err.mean())}


def rendered_depth_errors(model, out, pair) -> dict:
    """Mean absolute error (m) against the true z-depth of the density field's rendered depth
    (``D_r / |K^-1 x|``, Eq. 10) and of the aligned depth on the same pixels: those of
    ``model.num_patches`` SNOG patches (a fixed draw) of each principal frame of ``pair``."""
    from gaussocc_ops.snog import snog_sample

    B, _, _, H, W = pair.rgb.shape
    patches = snog_sample(
        pair.boxes2d, pair.areas, (H, W), model.num_patches, model.patch_size,
        generator=torch.Generator().manual_seed(0), valid=pair.instance_valid,
    )
    r = model.render_patches(
        out.recon_features, pair.K, pair.rgb[:, 1], pair.target_to_source, patches.centers,
        patches.valid,
    )
    idx = r.index.flatten(1)
    cols, rows = idx % W + 0.5, idx // W + 0.5
    K = pair.K
    x = (cols - K[:, None, 0, 2]) / K[:, None, 0, 0]
    y = (rows - K[:, None, 1, 2]) / K[:, None, 1, 1]
    rendered_z = r.distance.flatten(1) / torch.sqrt(x**2 + y**2 + 1)
    truth = pair.depth[:, 0, 0].flatten(1).gather(1, idx)
    aligned = out.depth[:, 0].flatten(1).gather(1, idx)
    valid = patches.valid[..., None, None].expand_as(r.index).flatten(1) & (truth > 0.1)
    return {
        "rendered_error": float((rendered_z - truth).abs()[valid].mean()),
        "patch_error": float((aligned - truth).abs()[valid].mean()),
    }


def _landscape_row(val, scales: Sequence[float]) -> list[float]:
    from gaussocc_ops import losses
    from gaussocc_ops.losses.photometric import warp_to_target

    target, source, T, K = val.rgb[:, 0], val.rgb[:, 1], val.target_to_source, val.K
    depth, prior = val.depth[:, 0, 0], val.prior[:, 0, 0]
    gx = (target[..., :, 1:] - target[..., :, :-1]).abs().amax(1)[..., :-1, :]
    gy = (target[..., 1:, :] - target[..., :-1, :]).abs().amax(1)[..., :, :-1]
    flat = float(((gx + gy) < 1e-3).float().mean())
    w0, w1 = warp_to_target(source, depth, T, K), warp_to_target(source, 1.15 * depth, T, K)
    e0, e1 = (target - w0.image).abs().mean(1), (target - w1.image).abs().mean(1)
    sensitive = float(((e1 - e0).abs() > 0.01)[w0.valid & w1.valid].float().mean())
    ta = [
        float(losses.photometric_alignment_loss(target, source, d, T, K))
        for d in [s * depth for s in scales] + [prior]
    ]
    return [flat, sensitive, *ta]


def alignment_landscape(recipe: DepthRecipe) -> str:
    """What the temporal-alignment loss sees on the held-out pairs, with and without the
    surface texture: the share of principal-frame pixels without image gradient, the share
    of valid pixels whose photometric error changes by more than 0.01 when their true depth is
    scaled by 1.15, and ``L_ta`` (Eq. 9 with ``M = 1``) at the true depth scaled by ``s`` and at
    the prior. A Markdown table."""
    from dataclasses import replace

    scales = (0.8, 0.9, 1.0, 1.1, 1.2)
    rows = []
    for texture in sorted({0.0, recipe.texture}):
        _, val = vipocc_data(replace(recipe, texture=texture))
        flat, sensitive, *ta = _landscape_row(val, scales)
        rows.append(
            [f"{texture:g}", f"{100 * flat:.1f}", f"{100 * sensitive:.1f}"]
            + [f"{1000 * v:.1f}" for v in ta]
        )
    return markdown_table(
        ["texture", "pixels without image gradient (%)", "pixels sensitive to depth (%)"]
        + [f"L_ta({s:g} D) ×1000" for s in scales]
        + ["L_ta(D_p) ×1000"],
        rows,
    )


def _vipocc_job(args) -> dict:
    from gaussocc_ops.examples.models import ViewPair, ViPOccDepthBranch

    setting, recipe, seed = args
    torch.set_num_threads(1)
    start = time.perf_counter()
    train, val = vipocc_data(recipe)
    torch.manual_seed(seed)
    model = ViPOccDepthBranch(
        weights=setting.weights, correction_bound=setting.bound, detach_rc_depth=setting.detach,
        bian_mask=setting.bian,
    )
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    # ViPOcc's schedule: the learning rate drops tenfold for the last 40 % of the epochs
    decay_at = round(0.6 * recipe.epochs)
    gen = torch.Generator().manual_seed(seed)
    n = train.rgb.shape[0]
    history = []

    @torch.no_grad()
    def evaluate():
        model.eval()
        out = model(val.rgb[:, 0], val.prior[:, 0])
        model.train()
        errors = depth_errors(out.depth, val.depth[:, 0])
        return {**errors, **rendered_depth_errors(model, out, val)}

    prior = depth_errors(val.prior[:, 0], val.depth[:, 0])
    history.append(evaluate())
    losses = []
    for epoch in range(recipe.epochs):
        for group in opt.param_groups:
            group["lr"] = recipe.lr * (0.1 if epoch >= decay_at else 1.0)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        for i in range(0, n - recipe.batch_size + 1, recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            batch = ViewPair(*(t[idx] for t in train))
            loss = model.loss(batch, generator=gen)["total"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        history.append(evaluate())
    return {
        "setting": {
            "weights": list(setting.weights), "bound": setting.bound, "detach": setting.detach,
            "bian": setting.bian,
        },
        "seed": seed,
        "prior": prior,
        "history": history,
        "losses": losses,
        "seconds": time.perf_counter() - start,
    }


def vipocc_table(results: list[dict]) -> str:
    prior = results[0]["prior"]  # the same held-out frames for every run
    start = results[0]["history"][0]  # before training D̂ is the prior (zero-initialised head)
    rows = [
        [
            "depth prior D_p (the input)",
            "",
            f"{100 * prior['abs_rel']:.1f}",
            f"{100 * prior['mean_error']:.1f}",
            "",
            f"{100 * start['patch_error']:.1f}" if "patch_error" in start else "",
            "",
        ]
    ]
    by_setting: dict = {}
    for r in results:
        key = DepthSetting(
            tuple(r["setting"]["weights"]), r["setting"]["bound"], r["setting"]["detach"],
            r["setting"].get("bian", False),
        )
        by_setting.setdefault(key, []).append(r)
    for setting, runs in by_setting.items():
        finals = [r["history"][-1] for r in runs]
        better = sum(
            f["abs_rel"] < r["prior"]["abs_rel"] and f["mean_error"] < r["prior"]["mean_error"]
            for f, r in zip(finals, runs)
        )
        rendered = [f.get("rendered_error") for f in finals]
        patch = [f.get("patch_error") for f in finals]
        rows.append(
            [f"aligned depth D̂, {setting.name}", str(len(runs))]
            + [pm([f["abs_rel"] for f in finals]), pm([f["mean_error"] for f in finals])]
            + [f"{better}/{len(runs)}"]
            + [pm(patch) if None not in patch else "", pm(rendered) if None not in rendered else ""]
        )
    return markdown_table(
        ["depth of the held-out principal frames", "seeds", "AbsRel (%)", "mean error (cm)",
         "seeds better than D_p on both", "on patches: D̂ error (cm)",
         "on patches: rendered depth error (cm)"],
        rows,
    )


DEPTH_SETTINGS = {
    "ta": DepthSetting((1.0, 0.0)),
    "eq7": DepthSetting((1.0, 1.0)),
    "eq7-w0.1": DepthSetting((1.0, 0.1)),
    "eq7-w0.01": DepthSetting((1.0, 0.01)),
    "ta-m1": DepthSetting((1.0, 0.0), bian=False),
    "eq7-m1": DepthSetting((1.0, 1.0), bian=False),
    "eq7-detached": DepthSetting((1.0, 1.0), detach=True),
    "eq7-bounded": DepthSetting((1.0, 1.0), bound=0.2),
    "ta-bounded": DepthSetting((1.0, 0.0), bound=0.2),
}


def vipocc_experiment(args, log=print) -> dict:
    recipe = DepthRecipe(texture=args.texture)
    seeds = list(range(args.seeds))
    log(
        f"ViPOcc depth: {recipe.train_scenes} x {recipe.pairs_per_train_scene} training pairs "
        f"of consecutive walk frames ({recipe.step_deg:g} degrees apart, surface texture "
        f"{recipe.texture:g}), {recipe.epochs} "
        f"epochs; {recipe.val_scenes} x {recipe.pairs_per_val_scene} held-out principal frames; "
        f"seeds {seeds}"
    )
    landscape = alignment_landscape(recipe)
    log("\nTemporal alignment on the held-out pairs (true depth D scaled by s):\n")
    log(landscape)
    settings = [DEPTH_SETTINGS[name] for name in args.depth_settings]
    jobs = [(s, recipe, seed) for s in settings for seed in seeds]
    results = run_jobs(_vipocc_job, jobs, args.workers, log, _cache(args))
    table = vipocc_table(results)
    log("\nViPOcc depth on held-out frames (final epoch, mean ± std over seeds):\n")
    log(table)
    return {"results": results, "table": table, "landscape": landscape}


# ---------------------------------------------------------------------------------------------
# GPOcc: streaming frames into GaussianMemory


@dataclass
class StreamRecipe:
    """GPOccLite trained on single frames of walks around the training rooms; evaluated by
    streaming ``frames`` frames spread over 360 degrees of a held-out room's walk."""

    train_scenes: int = 32
    frames_per_train_scene: int = 2
    val_scenes: int = 8
    frames: int = 6
    epochs: int = 6
    batch_size: int = 4
    lr: float = 5e-3
    image_size: tuple[int, int] = (96, 128)
    max_size: int | None = 60_000


def _angles(seed: int, count: int, spread: bool) -> list[float]:
    """``count`` walk angles of room ``seed``: random ones, or evenly spread from a random
    start (deterministic from the seed)."""
    g = torch.Generator().manual_seed(seed * 31 + 7)
    if spread:
        start = float(torch.rand((), generator=g)) * 360.0
        return [(start + 360.0 * k / count) % 360.0 for k in range(count)]
    return [float(a) for a in torch.rand(count, generator=g) * 360.0]


def gpocc_data(recipe: StreamRecipe) -> tuple[SceneData, list[SceneData]]:
    """Training frames (labels outside each frame's view frustum set to 255, ignored, as in
    Occ-ScanNet's per-frame ground truth) and, per held-out room, its ``frames`` frames."""
    from gaussocc_ops.examples.training import in_view

    grid = room_grid()
    key = ("gpocc", recipe.train_scenes, recipe.frames_per_train_scene, recipe.val_scenes,
           recipe.frames, tuple(recipe.image_size))
    if key not in _DATA:
        frames = [
            (seed, angle)
            for seed in range(recipe.train_scenes)
            for angle in _angles(seed, recipe.frames_per_train_scene, spread=False)
        ]
        train = SceneData.walk(frames, grid, recipe.image_size)
        seen = in_view(train.K, train.cam2world, recipe.image_size, grid)
        train.voxel_labels = torch.where(seen, train.voxel_labels, 255)
        rooms = []
        for seed in range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + recipe.val_scenes):
            angles = _angles(seed, recipe.frames, spread=True)
            rooms.append(SceneData.walk([(seed, a) for a in angles], grid, recipe.image_size))
        _DATA[key] = (train, rooms)
    return _DATA[key]


def _gpocc_job(args) -> dict:
    from gaussocc_ops.examples.models import GPOccLite
    from gaussocc_ops.examples.training import batch_order, train_epoch
    from gaussocc_ops.metrics import SSCMetrics

    recipe, seed = args
    torch.set_num_threads(1)
    start = time.perf_counter()
    train, rooms = gpocc_data(recipe)
    torch.manual_seed(seed)
    model = GPOccLite(room_grid(), NUM_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    losses = []
    for epoch in range(recipe.epochs):
        order = batch_order(len(train), recipe.batch_size, epoch=epoch, seed=seed)
        losses += train_epoch(model, opt, train, order)
    model.eval()
    single = [SSCMetrics(NUM_CLASSES, 0) for _ in range(recipe.frames)]
    best_single, streamed = SSCMetrics(NUM_CLASSES, 0), SSCMetrics(NUM_CLASSES, 0)
    per_room = []
    with torch.no_grad():
        for room in rooms:
            gt = room.voxel_labels[:1]
            out = model(room.rgb, room.K, room.cam2world, room.prior)
            preds = out.probs.argmax(1)
            scores = []
            for k in range(recipe.frames):
                single[k].update(preds[k : k + 1], gt)
                one = SSCMetrics(NUM_CLASSES, 0)
                one.update(preds[k : k + 1], gt)
                r = one.compute()
                scores.append((float(r["miou"]), float(r["iou"])))
            best = max(range(recipe.frames), key=lambda k: scores[k])
            best_single.update(preds[best : best + 1], gt)
            frames = zip(room.rgb, room.K, room.cam2world, room.prior, strict=True)
            _, occ = model.stream(frames, max_size=recipe.max_size)
            stream_pred = occ.probs.argmax(0)[None]
            streamed.update(stream_pred, gt)
            one = SSCMetrics(NUM_CLASSES, 0)
            one.update(stream_pred, gt)
            r = one.compute()
            per_room.append(
                {"single": scores, "stream": (float(r["miou"]), float(r["iou"]))}
            )

    def pack(metric):
        r = metric.compute()
        return {"sc_iou": float(r["iou"]), "miou": float(r["miou"])}

    return {
        "seed": seed,
        "single": [pack(m) for m in single],
        "best_single": pack(best_single),
        "stream": pack(streamed),
        "per_room": per_room,
        "final_loss": statistics.fmean(losses[-10:]),
        "seconds": time.perf_counter() - start,
    }


def gpocc_table(results: list[dict]) -> str:
    rows = []
    for label, pick in (
        ("single frame (mean over the frames)", lambda r, key: statistics.fmean(
            s[key] for s in r["single"])),
        ("single frame (best frame index)", lambda r, key: max(s[key] for s in r["single"])),
        ("single frame (best of each room, oracle)", lambda r, key: r["best_single"][key]),
        ("all frames streamed into GaussianMemory", lambda r, key: r["stream"][key]),
    ):
        rows.append(
            [label] + [pm([pick(r, key) for r in results]) for key in ("sc_iou", "miou")]
        )
    gains = [
        r["stream"]["miou"] - max(s["miou"] for s in r["single"]) for r in results
    ]
    rows.append(["streamed - best frame index (paired)", "", pm(gains)])
    return markdown_table(["prediction of the whole room", "SC-IoU", "mIoU"], rows)


def gpocc_experiment(args, log=print) -> dict:
    recipe = StreamRecipe()
    seeds = list(range(args.seeds))
    log(
        f"GPOcc streaming: GPOccLite trained on {recipe.train_scenes} x "
        f"{recipe.frames_per_train_scene} walk frames ({recipe.epochs} epochs), evaluated on "
        f"{recipe.val_scenes} held-out rooms x {recipe.frames} frames 360/{recipe.frames} "
        f"degrees apart; seeds {seeds}"
    )
    jobs = [(recipe, seed) for seed in seeds]
    results = run_jobs(_gpocc_job, jobs, args.workers, log, _cache(args))
    table = gpocc_table(results)
    log("\nGPOcc streaming on held-out rooms (whole-room metrics, mean ± std over seeds, %):\n")
    log(table)
    return {"results": results, "table": table}


# ---------------------------------------------------------------------------------------------
# command line


@dataclass
class Outputs:
    tables: dict = field(default_factory=dict)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m gaussocc_ops.examples.experiments",
        description=(
            "Measure each paper's effect on held-out synthetic rooms over several seeds and "
            "print Markdown tables of mean and standard deviation."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "experiment",
        choices=["gaussrender", "vipocc", "gpocc", "all"],
        help="which experiment to run",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    p.add_argument("--workers", type=int, default=2, help="training processes run in parallel")
    p.add_argument("--out", default="experiments_out", help="folder for results and figures")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="retrain everything (by default each finished run is kept in OUT/runs and reused)",
    )
    g = p.add_argument_group("gaussrender")
    g.add_argument("--epochs", type=int, default=10, help="training epochs")
    g.add_argument("--train-scenes", type=int, default=64, help="training rooms")
    g.add_argument("--val-scenes", type=int, default=16, help="held-out rooms")
    g.add_argument(
        "--weights",
        type=float,
        nargs="*",
        default=list(DEFAULT_WEIGHTS),
        help="lambdas tried with the sensor camera (stage 1)",
    )
    g.add_argument(
        "--strategies",
        nargs="*",
        default=list(DEFAULT_STRATEGIES),
        choices=list(DEFAULT_STRATEGIES),
        help="camera strategies tried at the best lambda of stage 1 (stage 2)",
    )
    g.add_argument(
        "--strategy-weight",
        type=float,
        default=None,
        help="lambda of stage 2 (default: the best lambda of stage 1)",
    )
    g = p.add_argument_group("vipocc")
    g.add_argument(
        "--depth-settings",
        nargs="*",
        default=["ta", "eq7", "eq7-w0.1", "eq7-w0.01", "eq7-detached", "ta-m1"],
        choices=list(DEPTH_SETTINGS),
        help="losses trained: ta (temporal alignment, Eq. 9 with the Bian et al. mask), eq7 "
        "(ViPOcc's Eq. 7, both terms, lambda1 = lambda2 = 1), eq7-w0.1 and eq7-w0.01 (Eq. 7 "
        "with lambda2 = 0.1, 0.01), ta-m1 and eq7-m1 (L_ta with M = 1), and, not in "
        "ViPOcc: eq7-detached (the aligned depth detached in L_rc^d), eq7-bounded and "
        "ta-bounded (the inverse-depth correction bounded to 0.2 / D_p)",
    )
    g.add_argument(
        "--texture",
        type=float,
        default=DepthRecipe.texture,
        help="amplitude of the solid surface texture of the view pairs (make_view_pair's "
        "texture; 0: the flat-coloured renders, where photometric alignment sees no depth)",
    )
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = "python -m gaussocc_ops.examples.experiments " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(f"$ {command}")
    results = {}
    todo = ["gaussrender", "vipocc", "gpocc"] if args.experiment == "all" else [args.experiment]
    for name in todo:
        start = time.perf_counter()
        runner = {
            "gaussrender": gaussrender_experiment,
            "gpocc": gpocc_experiment,
            "vipocc": vipocc_experiment,
        }.get(name)
        if runner is None:
            raise SystemExit(f"experiment {name!r} is not available")
        results[name] = runner(args)
        print(f"({name}: {time.perf_counter() - start:.0f} s)")
        path = out / f"{name}.json"
        path.write_text(json.dumps(results[name], indent=1, default=str))
        print(f"results written to {path}")
    return results


if __name__ == "__main__":
    main()
