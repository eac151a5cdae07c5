"""Data-parallel training of :class:`GaussRenderPlugin` on synthetic rooms.

One process::

    python -m gaussocc_ops.examples.train --epochs 2 --batch-size 2

Two CPU processes with DDP (gloo)::

    torchrun --nproc_per_node=2 -m gaussocc_ops.examples.train --backend gloo --batch-size 1

Each rank trains on its share of every global batch (``batch_order``, like
``DistributedSampler``), DDP averages the gradients, and the held-out metrics are accumulated
per rank on its share of the validation scenes and summed over the ranks by
``SSCMetrics.compute()`` (a ``torchmetrics.Metric``). All loss
terms are means of per-sample means, so ``N`` ranks with batch ``b`` follow the same trajectory
as one process with batch ``N b`` (up to float rounding).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.models import GaussRenderPlugin
from gaussocc_ops.examples.training import SceneData, batch_order, predict, progress_bar
from gaussocc_ops.metrics import SSCMetrics
from gaussocc_ops.types import VoxelGrid

NUM_CLASSES = len(scenes.INDOOR_CLASSES)
VAL_SEED_OFFSET = 10_000


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m gaussocc_ops.examples.train",
        description="Data-parallel training of GaussRenderPlugin on synthetic rooms (one "
        "process, or several under torchrun with --backend gloo).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--backend",
        default=None,
        choices=["gloo"],
        help="torch.distributed backend for runs under torchrun (CPU: gloo)",
    )
    p.add_argument("--epochs", type=int, default=2, help="training epochs")
    p.add_argument("--train-scenes", type=int, default=16, help="training rooms")
    p.add_argument("--val-scenes", type=int, default=4, help="held-out rooms")
    p.add_argument("--batch-size", type=int, default=2, help="rooms per step and process")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    p.add_argument(
        "--gaussrender-weight", type=float, default=0.0, help="lambda of GaussRenderLoss (0: off)"
    )
    p.add_argument("--grid-shape", type=int, nargs=3, default=(30, 30, 18), help="voxels X Y Z")
    p.add_argument("--voxel-size", type=float, default=0.16, help="voxel side in metres")
    p.add_argument("--image-size", type=int, nargs=2, default=(96, 128), help="image H W")
    p.add_argument("--seed", type=int, default=0, help="initialisation and batch order")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--save", default=None, help="rank 0 writes losses, metrics and weights here")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def mean_over_ranks(value: float, world_size: int) -> float:
    if world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t) / world_size


def run(args: argparse.Namespace, rank: int = 0, world_size: int = 1) -> dict:
    """Train and evaluate; call inside an initialised process group when ``world_size > 1``.

    Returns (on every rank) ``{"step_losses": [...], "epochs": [{"loss", "sc_iou", "miou"}],
    "state_dict": ...}`` with losses averaged over ranks and metrics synchronised.
    """
    torch.manual_seed(args.seed)
    grid = VoxelGrid((0.0, 0.0, 0.0), args.voxel_size, tuple(args.grid_shape))
    size = tuple(args.image_size)
    train = SceneData.make(range(args.train_scenes), grid, size)
    val_seeds = range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + args.val_scenes)
    val = SceneData.make(list(val_seeds)[rank::world_size], grid, size)
    model = GaussRenderPlugin(
        grid,
        NUM_CLASSES,
        gaussrender_weight=args.gaussrender_weight,
        render_size=None,  # the images' size
        render_mask=scenes.below_ceiling(grid),
    )
    net = DistributedDataParallel(model) if world_size > 1 else model
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    log = print if rank == 0 and not args.quiet else (lambda *a, **k: None)
    log(
        f"{world_size} process(es) x batch {args.batch_size}, {len(train)} training rooms, "
        f"{args.val_scenes} held-out rooms, grid {grid.shape}"
    )
    step_losses, epochs = [], []
    for epoch in range(args.epochs):
        order = batch_order(
            len(train),
            args.batch_size,
            epoch=epoch,
            seed=args.seed,
            rank=rank,
            world_size=world_size,
        )
        show = rank == 0 and not args.quiet
        with (
            progress_bar(len(order), f"epoch {epoch + 1}/{args.epochs}")
            if show
            else contextlib.nullcontext(None)
        ) as bar:
            net.train()
            for i, index in enumerate(order):
                batch = train.select(index)
                out = net(batch.rgb, batch.K, batch.cam2world, batch.prior)
                loss = model.loss(out, batch)["total"]
                opt.zero_grad(set_to_none=True)
                loss.backward()  # DDP averages the gradients over the ranks here
                opt.step()
                step_losses.append(mean_over_ranks(float(loss.detach()), world_size))
                if bar is not None:
                    bar(i + 1, step_losses[-1])
            metric = SSCMetrics(NUM_CLASSES, scenes.EMPTY_CLASS)
            for held_out, pred in predict(model, val):
                metric.update(pred, held_out.voxel_labels)
            r = metric.compute()  # sums the counts over the ranks
            n = len(order)
            epochs.append(
                {
                    "loss": sum(step_losses[-n:]) / max(n, 1),
                    "sc_iou": float(r["iou"]),
                    "miou": float(r["miou"]),
                }
            )
            if bar is not None:
                bar(
                    n,
                    epochs[-1]["loss"],
                    f"| val SC-IoU {100 * epochs[-1]['sc_iou']:.1f} "
                    f"mIoU {100 * epochs[-1]['miou']:.1f}",
                )
    return {"step_losses": step_losses, "epochs": epochs, "state_dict": model.state_dict()}


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and args.backend is None:
        raise SystemExit(f"WORLD_SIZE={world_size}: pass --backend gloo to train with DDP")
    distributed = args.backend is not None and world_size > 1
    if distributed:
        dist.init_process_group(args.backend)
    try:
        rank = dist.get_rank() if distributed else 0
        result = run(args, rank, world_size if distributed else 1)
        if rank == 0 and args.save:
            Path(args.save).parent.mkdir(parents=True, exist_ok=True)
            torch.save(result, args.save)
    finally:
        if distributed:
            # DDP's reducer holds the process group; free it (it sits in reference cycles) so the
            # group's threads are joined here and not torn down during interpreter exit.
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
