"""Training utilities shared by the demo and the DDP trainer: in-memory synthetic data, a
DistributedSampler-like batch order, one training epoch, evaluation and a text progress bar."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch

from gaussocc_ops.examples import scenes
from gaussocc_ops.metrics import SSCMetrics
from gaussocc_ops.types import VoxelGrid


@dataclass
class SceneData:
    """One view of each of ``N`` scenes with the voxel ground truth (``[N, ...]`` tensors; the
    fields the example models' ``loss`` reads from a :class:`scenes.Batch`)."""

    seeds: list[int]
    rgb: torch.Tensor  # [N, 3, H, W]
    depth: torch.Tensor  # [N, 1, H, W]
    K: torch.Tensor  # [N, 3, 3]
    cam2world: torch.Tensor  # [N, 4, 4]
    voxel_labels: torch.Tensor  # [N, X, Y, Z]
    grid: VoxelGrid

    @classmethod
    def make(cls, seeds, grid: VoxelGrid, image_size=(48, 64)) -> SceneData:
        """Render view 0 of every scene ``seeds`` with :func:`scenes.make_batch`."""
        b = scenes.make_batch(list(seeds), grid=grid, image_size=image_size)
        return cls(list(seeds), b.rgb, b.depth, b.K, b.cam2world, b.voxel_labels, grid)

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index) -> SceneData:
        """The scenes at positions ``index`` (a list of ints), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return SceneData(
            [self.seeds[i] for i in idx.tolist()],
            self.rgb[idx],
            self.depth[idx],
            self.K[idx],
            self.cam2world[idx],
            self.voxel_labels[idx],
            self.grid,
        )


def batch_order(
    num_items: int, batch_size: int, *, epoch: int, seed: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """The batches of one epoch for one rank, like ``DistributedSampler`` + ``DataLoader``.

    The epoch's permutation (drawn from ``seed + epoch``) is cut into global batches of
    ``batch_size * world_size`` items (a last incomplete one is dropped); rank ``r`` takes the
    items at positions ``r, r + world_size, ...`` of each. So ``world_size`` ranks with batch
    ``b`` see, step by step, exactly the items of one process with batch ``b * world_size``.

    Example:
        >>> one = batch_order(8, 4, epoch=0, seed=0)
        >>> two = [batch_order(8, 2, epoch=0, seed=0, rank=r, world_size=2) for r in (0, 1)]
        >>> [sorted(a + b) for a, b in zip(*two)] == [sorted(b) for b in one]
        True
    """
    perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed + epoch))
    step = batch_size * world_size
    batches = []
    for start in range(0, num_items - step + 1, step):
        batches.append(perm[start : start + step][rank::world_size].tolist())
    return batches


def train_epoch(model, loss_fn, optimizer, data: SceneData, order, progress=None) -> list[float]:
    """One pass over the batches ``order``; returns each step's local loss."""
    model.train()
    step_losses = []
    for i, index in enumerate(order):
        batch = data.select(index)
        out = model(batch.rgb, batch.K, batch.cam2world)
        loss = loss_fn(out, batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step_losses.append(float(loss.detach()))
        if progress is not None:
            progress.update(i + 1, loss=sum(step_losses) / len(step_losses))
    return step_losses


@torch.no_grad()
def evaluate(model, data: SceneData, metric: SSCMetrics, batch_size: int = 4) -> SSCMetrics:
    """Add the model's argmax predictions on every scene of ``data`` to ``metric``."""
    model.eval()
    for start in range(0, len(data), batch_size):
        batch = data.select(list(range(start, min(start + batch_size, len(data)))))
        logits = model(batch.rgb, batch.K, batch.cam2world).logits
        metric.update(logits.argmax(1), batch.voxel_labels)
    return metric


class ProgressBar:
    """A one-line text progress bar: ``prefix [#####.....] 5/10 loss 1.23 4.1s``.

    On a terminal the line is redrawn in place (``\\r``); otherwise only the finished line is
    written, so logs stay clean. No dependency beyond the standard library.
    """

    def __init__(self, total: int, prefix: str = "", width: int = 24, stream=None) -> None:
        self.total, self.prefix, self.width = total, prefix, width
        self.stream = stream if stream is not None else sys.stdout
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.line = ""

    def update(self, done: int, **info: float) -> None:
        filled = int(self.width * done / max(self.total, 1))
        bar = "#" * filled + "." * (self.width - filled)
        extra = " ".join(f"{k} {v:.3f}" for k, v in info.items())
        elapsed = time.perf_counter() - self.start
        self.line = f"{self.prefix}[{bar}] {done}/{self.total} {extra} {elapsed:.1f}s"
        if self.live:
            self.stream.write("\r" + self.line)
            self.stream.flush()

    def close(self, suffix: str = "") -> None:
        self.stream.write(("\r" if self.live else "") + self.line + suffix + "\n")
        self.stream.flush()
