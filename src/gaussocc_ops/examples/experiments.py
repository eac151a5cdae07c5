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


def train_setting(setting: RenderSetting, recipe: Recipe, seed: int, progress: bool = False):
    """Train one ``setting`` from ``seed``; returns ``(history, model)`` (see
    :func:`training.fit`)."""
    torch.set_num_threads(1)
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


def run_jobs(fn: Callable, jobs: list, workers: int, log=print) -> list:
    """``[fn(job) for job in jobs]``, in ``workers`` processes (one torch thread each)."""
    results = []
    if workers <= 1:
        for i, job in enumerate(jobs):
            results.append(fn(job))
            log(f"  [{i + 1}/{len(jobs)}] {_describe(results[-1])}")
        return results
    ctx = torch.multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        for i, result in enumerate(pool.imap(fn, jobs)):
            results.append(result)
            log(f"  [{i + 1}/{len(jobs)}] {_describe(result)}")
    return results


def _describe(result: dict) -> str:
    if "setting" not in result:
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
DEFAULT_WEIGHTS = (5.0, 50.0)


def gaussrender_experiment(args, log=print) -> dict:
    """Stage 1: the baseline and each camera strategy at the paper's ``lambda = 15``; stage 2:
    the best strategy of stage 1 (by mean mIoU) at the other ``--weights``."""
    recipe = Recipe(epochs=args.epochs, train_scenes=args.train_scenes, val_scenes=args.val_scenes)
    seeds = list(range(args.seeds))
    log(
        f"GaussRender: {recipe.train_scenes} training / {recipe.val_scenes} held-out rooms, "
        f"{recipe.epochs} epochs, seeds {seeds}, {args.workers} worker process(es)"
    )
    settings = [RenderSetting()] + [RenderSetting(15.0, s) for s in args.strategies]
    jobs = [(setting, recipe, seed) for setting in settings for seed in seeds]
    results = run_jobs(_job, jobs, args.workers, log)
    strategy_rows = [r for r in results if r["setting"]["weight"] > 0]
    best = None
    if strategy_rows and args.weights:
        means = {}
        for r in strategy_rows:
            means.setdefault(r["setting"]["strategy"], []).append(
                r["history"]["epochs"][-1]["miou"]
            )
        best = max(means, key=lambda k: statistics.fmean(means[k]))
        log(f"best camera strategy at λ=15 (mean mIoU): {best}; now λ in {list(args.weights)}")
        jobs = [(RenderSetting(w, best), recipe, seed) for w in args.weights for seed in seeds]
        results += run_jobs(_job, jobs, args.workers, log)
    table = gaussrender_table(results)
    log("\nGaussRender on held-out rooms (final epoch, mean ± std over seeds, %):\n")
    log(table)
    return {"results": results, "table": table, "best_strategy": best}


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
    g = p.add_argument_group("gaussrender")
    g.add_argument("--epochs", type=int, default=10, help="training epochs")
    g.add_argument("--train-scenes", type=int, default=64, help="training rooms")
    g.add_argument("--val-scenes", type=int, default=16, help="held-out rooms")
    g.add_argument(
        "--strategies",
        nargs="*",
        default=list(DEFAULT_STRATEGIES),
        choices=list(DEFAULT_STRATEGIES),
        help="camera strategies compared at lambda = 15",
    )
    g.add_argument(
        "--weights",
        type=float,
        nargs="*",
        default=list(DEFAULT_WEIGHTS),
        help="further lambdas tried with the best strategy",
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
        runner = {"gaussrender": gaussrender_experiment}.get(name)
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
