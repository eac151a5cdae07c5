"""Main demo: ``python -m gaussocc_ops.examples.demo``.

Trains :class:`GaussRenderPlugin` (a small image-to-voxel model) on synthetic rooms on the CPU
twice from the same initialisation, once with cross-entropy + Lovász only and once adding
``GaussRenderLoss``, prints a progress bar and the held-out SC-IoU / mIoU after every epoch
(and of the untrained model), and writes pictures: the input image, semantic and depth renders
of the predicted and true occupancy seen from the camera, and BEV maps.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import gaussocc_ops as go
from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.models import GaussRenderPlugin, sensor_cameras
from gaussocc_ops.examples.training import (
    ProgressBar,
    SceneData,
    batch_order,
    evaluate,
    train_epoch,
)
from gaussocc_ops.imageio import colorize_depth, colorize_probs, palette, save_png

NUM_CLASSES = len(scenes.INDOOR_CLASSES)
EMPTY = scenes.EMPTY_CLASS
VAL_SEED_OFFSET = 10_000  # held-out scenes never overlap the training seeds
PICTURE_SIZE = (192, 256)  # camera renders (H, W)
BEV_SIZE = 180


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo_out", help="folder for the pictures")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--train-scenes", type=int, default=32)
    p.add_argument("--val-scenes", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--gaussrender-weight", type=float, default=5.0, help="lambda of L_2D")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a busy machine more threads often run slower)",
    )
    p.add_argument("--quick", action="store_true", help="a short run (tests, smoke checks)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.train_scenes, args.val_scenes = 3, 8, 3
    return args


def metrics_of(model, data: SceneData) -> dict[str, float]:
    m = evaluate(model, data, go.metrics.SSCMetrics(NUM_CLASSES, EMPTY))
    r = m.compute()
    return {"sc_iou": float(r["iou"]), "miou": float(r["miou"]), "per_class": r["iou_per_class"]}


def fmt(metrics: dict[str, float]) -> str:
    return f"SC-IoU {100 * metrics['sc_iou']:5.1f}  mIoU {100 * metrics['miou']:5.1f}"


def train_variant(name, model, train, val, args, log) -> dict:
    """Train ``model`` for ``args.epochs`` epochs; returns its per-epoch history."""
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = []
    for epoch in range(args.epochs):
        order = batch_order(len(train), args.batch_size, epoch=epoch, seed=args.seed)
        bar = ProgressBar(len(order), prefix=f"  [{name}] epoch {epoch + 1}/{args.epochs} ")
        losses = train_epoch(model, model.loss, opt, train, order, bar)
        metrics = metrics_of(model, val)
        bar.close(f" | val {fmt(metrics)}")
        history.append({"loss": sum(losses) / len(losses), **metrics})
    log(f"  [{name}] final: {fmt(history[-1])}")
    return {"history": history, "final": history[-1]}


@torch.no_grad()
def render_labels(labels: torch.Tensor, grid, cams, keep=None):
    """Semantic colours ``[H, W, 3]`` and depth picture ``[H, W, 3]`` of labels ``[X, Y, Z]``."""
    g = go.labels_to_gaussians(
        labels[None],
        grid,
        num_classes=NUM_CLASSES,
        empty_class=EMPTY,
        valid_mask=None if keep is None else keep[None],
    )
    out = go.splat(g, cams, depth_mode="expected")
    alpha = out.alpha[0, 0, ..., 0]
    colors = palette(NUM_CLASSES)
    colors[EMPTY] = 0.0
    return colorize_probs(out.features[0, 0], colors), colorize_depth(
        out.depth[0, 0, ..., 0], alpha > 0.5
    )


def upscale(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour enlargement of an ``[H, W, 3]`` image."""
    return image.repeat_interleave(factor, 0).repeat_interleave(factor, 1)


@torch.no_grad()
def write_pictures(out: Path, models: dict, val: SceneData) -> list[Path]:
    """Pictures of the first held-out scene: input, GT and each model's prediction."""
    scene = val.select([0])
    grid = val.grid
    H, W = scene.rgb.shape[-2:]
    cams = go.cameras.resized(sensor_cameras(scene.K, scene.cam2world, (H, W)), *PICTURE_SIZE)
    bev = go.cameras.bev(grid, BEV_SIZE)
    below_ceiling = torch.zeros(grid.shape, dtype=torch.bool)
    below_ceiling[..., : grid.shape[2] - 2] = True  # the top layers are the ceiling
    labels = {"gt": scene.voxel_labels[0]}
    for name, model in models.items():
        model.eval()
        labels[name] = model(scene.rgb, scene.K, scene.cam2world).logits[0].argmax(0)
    files = [save_png(out / "input_rgb.png", upscale(scene.rgb[0].permute(1, 2, 0), 4))]
    for name, lab in labels.items():
        sem, depth = render_labels(lab, grid, cams)
        files.append(save_png(out / f"{name}_camera_semantics.png", sem))
        files.append(save_png(out / f"{name}_camera_depth.png", depth))
        bev_sem, _ = render_labels(lab, grid, bev, keep=below_ceiling)
        files.append(save_png(out / f"{name}_bev.png", bev_sem))
    return files


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    log = print
    t_start = time.perf_counter()
    info = go.build_info()
    log(
        f"gaussocc_ops {go.__version__}: extension={info['extension']}, "
        f"cuda_kernels={info['cuda_kernels']}, torch threads={torch.get_num_threads()}"
    )
    grid = scenes.indoor_grid(shape=(30, 30, 18), voxel_size=0.16)
    train = SceneData.make(range(args.train_scenes), grid)
    val = SceneData.make(range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + args.val_scenes), grid)
    log(
        f"data: {len(train)} training / {len(val)} held-out rooms, images "
        f"{tuple(train.rgb.shape[-2:])}, grid {grid.shape} of {grid.voxel_size[0]:.2f} m, "
        f"{NUM_CLASSES} classes ({', '.join(scenes.INDOOR_CLASSES)})"
    )

    torch.manual_seed(args.seed)
    init = GaussRenderPlugin(grid, NUM_CLASSES).state_dict()
    variants = {"ce+lovasz": 0.0, "ce+lovasz+gaussrender": args.gaussrender_weight}
    models = {}
    for name, weight in variants.items():
        models[name] = GaussRenderPlugin(grid, NUM_CLASSES, gaussrender_weight=weight)
        models[name].load_state_dict(init)
    untrained = metrics_of(models["ce+lovasz"], val)
    log(f"untrained model: {fmt(untrained)}")

    results = {"untrained": untrained}
    for name, model in models.items():
        log(
            f"training {name} ({args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr}"
            + (f", GaussRender lambda {variants[name]}" if variants[name] else "")
            + ")"
        )
        results[name] = train_variant(name, model, train, val, args, log)

    log("held-out results (IoU per class in %: " + " ".join(scenes.INDOOR_CLASSES[1:]) + "):")
    for name in ("untrained", *models):
        final = untrained if name == "untrained" else results[name]["final"]
        per_class = " ".join(f"{100 * v:.0f}" for v in final["per_class"][1:].tolist())
        log(f"  {name:<24} {fmt(final)}  per class: {per_class}")
    out = Path(args.out)
    files = write_pictures(out, models, val)
    log(f"{len(files)} pictures written to {out.resolve()}: " + ", ".join(f.name for f in files))
    log(f"total time {time.perf_counter() - t_start:.0f} s")
    results["files"] = files
    return results


if __name__ == "__main__":
    main()
