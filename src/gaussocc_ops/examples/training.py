"""Training utilities shared by the demo, the experiments and the DDP trainer: in-memory
synthetic data, a DistributedSampler-like batch order, one training epoch, the held-out
metrics (SC-IoU / mIoU, RayIoU from the cameras, floating voxels) and a rich progress bar."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torchmetrics

from gaussocc_ops.examples import scenes
from gaussocc_ops.metrics import RayIoU, SSCMetrics
from gaussocc_ops.types import VoxelGrid

NUM_CLASSES = len(scenes.INDOOR_CLASSES)
EMPTY = scenes.EMPTY_CLASS
#: The furniture classes (bed, table, chair, cabinet, sofa): everything but the room's shell.
FURNITURE = tuple(range(scenes.INDOOR_CLASSES.index("bed"), NUM_CLASSES))
#: RayIoU's distance tolerances for the rooms: 1, 2 and 4 voxels of 16 cm (the Occ3D protocol's
#: 1, 2 and 4 m are 2.5 to 10 of its 0.4 m voxels, as lenient as a whole room here).
RAY_THRESHOLDS = (0.16, 0.32, 0.64)


@dataclass
class SceneData:
    """One view of each of ``N`` scenes with the voxel ground truth (``[N, ...]`` tensors; the
    fields the example models' ``loss`` reads from a :class:`scenes.Batch`).

    ``depth`` is the exact depth (metrics, pictures), ``prior`` the depth prior the model gets.
    """

    seeds: list[int]
    rgb: torch.Tensor  # [N, 3, H, W]
    depth: torch.Tensor  # [N, 1, H, W]
    prior: torch.Tensor  # [N, 1, H, W]
    K: torch.Tensor  # [N, 3, 3]
    cam2world: torch.Tensor  # [N, 4, 4]
    voxel_labels: torch.Tensor  # [N, X, Y, Z]
    grid: VoxelGrid

    @classmethod
    def make(cls, seeds, grid: VoxelGrid, image_size=(96, 128)) -> SceneData:
        """Render view 0 of every scene ``seeds`` with :func:`scenes.make_batch`."""
        b = scenes.make_batch(list(seeds), grid=grid, image_size=image_size)
        return cls(
            list(seeds), b.rgb, b.depth, b.prior, b.K, b.cam2world, b.voxel_labels, grid
        )

    @classmethod
    def walk(
        cls,
        frames: list[tuple[int, float]],
        grid: VoxelGrid,
        image_size=(96, 128),
        prior_noise: tuple[float, float] = scenes.PRIOR_NOISE,
    ) -> SceneData:
        """Frames ``(scene seed, angle in degrees)`` of :func:`scenes.walk_camera`, each with
        its room's full voxel labels and a depth prior drawn from the seed and the angle."""
        items, cache = [], {}
        for seed, angle in frames:
            if seed not in cache:
                scene = scenes.make_scene(int(seed), grid=grid)
                cache[seed] = (scene, scenes.voxel_labels(scene, grid))
            scene, labels = cache[seed]
            camera = scenes.walk_camera(scene, angle, image_size=image_size)
            frame = scenes.render_frame(scene, camera)
            g = torch.Generator().manual_seed(int(seed) * 7919 + int(round(angle * 10)) + 3)
            prior = scenes.noisy_prior(frame.depth[None], *prior_noise, generator=g)[0]
            items.append((frame, prior, labels))
        return cls(
            [seed for seed, _ in frames],
            torch.stack([f.rgb for f, _, _ in items]),
            torch.stack([f.depth for f, _, _ in items]),
            torch.stack([p for _, p, _ in items]),
            torch.stack([f.K for f, _, _ in items]),
            torch.stack([f.cam2world for f, _, _ in items]),
            torch.stack([lab for _, _, lab in items]),
            grid,
        )

    def __len__(self) -> int:
        return len(self.seeds)

    def select(self, index) -> SceneData:
        """The scenes at positions ``index`` (a list of ints), in that order."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return SceneData(
            [self.seeds[i] for i in idx.tolist()],
            self.rgb[idx],
            self.depth[idx],
            self.prior[idx],
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


def train_epoch(
    model, optimizer, data: SceneData, order, *, scheduler=None, progress=None, net=None
) -> list[float]:
    """One pass over the batches ``order``; returns each step's local loss.

    ``model.loss`` gives the loss; ``net`` (default ``model``, e.g. its DDP wrapper) runs the
    forward pass. ``progress(step, mean_loss)`` is called after every step.
    """
    net = model if net is None else net
    net.train()
    step_losses = []
    for i, index in enumerate(order):
        batch = data.select(index)
        out = net(batch.rgb, batch.K, batch.cam2world, batch.prior)
        loss = model.loss(out, batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # under DDP the gradients are averaged over the ranks here
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        step_losses.append(float(loss.detach()))
        if progress is not None:
            progress(i + 1, sum(step_losses) / len(step_losses))
    return step_losses


@torch.no_grad()
def predict(
    model, data: SceneData, batch_size: int = 8
) -> Iterator[tuple[SceneData, torch.Tensor]]:
    """``(batch, labels [b, X, Y, Z])``: the model's argmax prediction, batch by batch."""
    model.eval()
    for start in range(0, len(data), batch_size):
        batch = data.select(list(range(start, min(start + batch_size, len(data)))))
        logits = model(batch.rgb, batch.K, batch.cam2world, batch.prior).logits
        yield batch, logits.argmax(1)


def _project_centers(K, cam2world, grid, dtype):
    """Voxel centres in each camera: ``z [B, N]`` and pixel coordinates ``uv [B, N, 2]``."""
    centers = grid.centers(dtype=dtype).reshape(-1, 3)
    world2cam = torch.linalg.inv(cam2world)
    p = centers @ world2cam[:, :3, :3].transpose(1, 2) + world2cam[:, None, :3, 3]
    z = p[..., 2]
    return z, (p @ K.transpose(1, 2))[..., :2] / z.clamp(min=1e-6)[..., None]


def in_view(K: torch.Tensor, cam2world: torch.Tensor, image_size, grid: VoxelGrid) -> torch.Tensor:
    """``[B, X, Y, Z]`` bool: voxels whose centre lies in the view frustum of each camera."""
    H, W = image_size
    z, uv = _project_centers(K, cam2world, grid, K.dtype)
    inside = (z > 1e-3) & (uv[..., 0] >= 0) & (uv[..., 0] < W) & (uv[..., 1] >= 0)
    inside = inside & (uv[..., 1] < H)
    return inside.reshape(-1, *grid.shape)


def visible_free_space(
    depth: torch.Tensor, K: torch.Tensor, cam2world: torch.Tensor, grid: VoxelGrid
) -> torch.Tensor:
    """``[B, X, Y, Z]`` bool: voxels whose centre the camera sees in front of the first surface
    (more than half a voxel before the exact ``depth [B, 1, H, W]`` at the nearest pixel), i.e.
    observed free space."""
    B, _, H, W = depth.shape
    z, uv = _project_centers(K, cam2world, grid, depth.dtype)
    col, row = uv[..., 0].floor().long(), uv[..., 1].floor().long()
    inside = (z > 1e-3) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    flat = (row.clamp(0, H - 1) * W + col.clamp(0, W - 1))
    d = depth.reshape(B, -1).gather(1, flat)
    seen = inside & (d > 0) & (z < d - 0.5 * max(grid.voxel_size))
    return seen.reshape(B, *grid.shape)


class FloatingVoxels(torchmetrics.Metric):
    """Floating voxels: the share of the observed free space (voxels the ground truth calls
    empty and the camera sees in front of the first surface, :func:`visible_free_space`) that a
    prediction fills. Lower is better; counts are summed over the dataset (and over DDP ranks).
    """

    higher_is_better = False
    full_state_update = False

    def __init__(self, empty_class: int = EMPTY, **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty_class = empty_class
        self.add_state("filled", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("free", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor, visible_free: torch.Tensor) -> None:
        """``pred``, ``target`` ``[B, X, Y, Z]`` labels; ``visible_free`` the bool mask."""
        free = visible_free & (target == self.empty_class)
        self.free += free.sum()
        self.filled += (free & (pred != self.empty_class)).sum()

    def compute(self) -> torch.Tensor:
        return self.filled.double() / self.free.clamp_min(1).double()


class HeldOutMetrics:
    """SC-IoU / mIoU / per-class IoU (``SSCMetrics``), the furniture mIoU, RayIoU cast from
    each frame's camera centre and :class:`FloatingVoxels`, accumulated over held-out batches.

    ``compute()`` returns floats (fractions) ``sc_iou, miou, furniture_miou, rayiou, floating``
    and the tensor ``per_class``.
    """

    def __init__(self, grid: VoxelGrid) -> None:
        self.grid = grid
        self.ssc = SSCMetrics(NUM_CLASSES, EMPTY)
        self.ray = RayIoU(
            grid,
            NUM_CLASSES,
            EMPTY,
            thresholds=RAY_THRESHOLDS,
            num_azimuths=180,
            pitch_degrees=[float(p) for p in range(-60, 21, 4)],
        )
        self.floating = FloatingVoxels(EMPTY)

    def update(self, batch: SceneData, pred: torch.Tensor) -> None:
        self.ssc.update(pred, batch.voxel_labels)
        self.ray.update(pred, batch.voxel_labels, batch.cam2world[:, None, :3, 3])
        free = visible_free_space(batch.depth, batch.K, batch.cam2world, self.grid)
        self.floating.update(pred, batch.voxel_labels, free)

    def compute(self) -> dict:
        r = self.ssc.compute()
        per_class = r["iou_per_class"]
        return {
            "sc_iou": float(r["iou"]),
            "miou": float(r["miou"]),
            "furniture_miou": float(per_class[list(FURNITURE)].mean()),
            "rayiou": float(self.ray.compute()["rayiou"]),
            "floating": float(self.floating.compute()),
            "per_class": per_class,
        }


def held_out_metrics(model, data: SceneData) -> dict:
    """:class:`HeldOutMetrics` of ``model`` on every scene of ``data``."""
    metrics = HeldOutMetrics(data.grid)
    for batch, pred in predict(model, data):
        metrics.update(batch, pred)
    return metrics.compute()


def progress_console(stream=None):
    """A rich console on ``stream`` (default stdout); on a log (not a terminal) 160 columns
    wide, so that finished lines are not cut."""
    from rich.console import Console

    console = Console(file=stream if stream is not None else sys.stdout, highlight=False)
    if not console.is_terminal:
        console.width = 160
    return console


def progress_columns() -> tuple:
    """The examples' progress bar: description, bar, ``done/total``, the ``info`` field and
    the elapsed time."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return (
        TextColumn("{task.description}", markup=False),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
    )


@contextmanager
def progress_bar(total: int, description: str, stream=None):
    """A rich progress bar over ``total`` steps: yields ``update(done, loss)``; ``update.info``
    (a one-element list) holds text shown after the bar. On a terminal it redraws in place;
    otherwise (logs, tests) only the finished line is written."""
    from rich.progress import Progress

    with Progress(*progress_columns(), console=progress_console(stream)) as progress:
        task = progress.add_task(description, total=total, info="")

        def update(done: int, loss: float | None = None, info: str | None = None) -> None:
            text = f"loss {loss:.3f}" if loss is not None else ""
            if info:
                text = f"{text} {info}".strip()
            progress.update(task, completed=done, info=text)

        yield update


def fmt_metrics(m: dict) -> str:
    """``SC-IoU 88.1  mIoU 61.2  furniture 38.0  RayIoU 40.2  floating 1.3`` (percent)."""
    return (
        f"SC-IoU {100 * m['sc_iou']:5.1f}  mIoU {100 * m['miou']:5.1f}  "
        f"furniture {100 * m['furniture_miou']:5.1f}  RayIoU {100 * m['rayiou']:5.1f}  "
        f"floating {100 * m['floating']:4.1f}"
    )


def fmt_short(m: dict) -> str:
    """``SC-IoU 88.1 mIoU 61.2 furniture 38.0`` (percent)."""
    return (
        f"SC-IoU {100 * m['sc_iou']:.1f} mIoU {100 * m['miou']:.1f} "
        f"furniture {100 * m['furniture_miou']:.1f}"
    )


def fit(
    model,
    train: SceneData,
    val: SceneData,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    name: str = "",
    progress: bool = True,
    on_step=None,
    on_epoch=None,
) -> dict:
    """Train ``model`` with Adam and a one-cycle learning rate (peak ``lr``) for ``epochs``
    passes over ``train`` (batches from :func:`batch_order` with ``seed``), measuring
    :func:`held_out_metrics` on ``val`` before training and after every epoch.

    ``progress`` draws a rich progress bar per epoch; ``on_step(epoch, step, steps, mean_loss)``
    and ``on_epoch(epoch, metrics)`` are called as training goes (e.g. to report from another
    process). Returns ``{"step_losses": [...], "epochs": [metrics before training, after epoch
    1, ...]}`` (metrics as in :meth:`HeldOutMetrics.compute`, plus the epoch's mean ``loss``).
    """
    steps_per_epoch = len(train) // batch_size
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=max(epochs * steps_per_epoch, 1), pct_start=0.15
    )
    history = {"step_losses": [], "epochs": [held_out_metrics(model, val)]}
    for epoch in range(epochs):
        order = batch_order(len(train), batch_size, epoch=epoch, seed=seed)
        if progress:
            with progress_bar(len(order), f"  [{name}] epoch {epoch + 1}/{epochs}") as bar:
                losses = train_epoch(model, opt, train, order, scheduler=sched, progress=bar)
                metrics = held_out_metrics(model, val)
                bar(len(order), sum(losses) / len(losses), f"| held-out {fmt_short(metrics)}")
        else:
            report = None
            if on_step is not None:
                steps = len(order)

                def report(step, loss, epoch=epoch, steps=steps):
                    on_step(epoch, step, steps, loss)
            losses = train_epoch(model, opt, train, order, scheduler=sched, progress=report)
            metrics = held_out_metrics(model, val)
        history["step_losses"] += losses
        history["epochs"].append({"loss": sum(losses) / len(losses), **metrics})
        if on_epoch is not None:
            on_epoch(epoch, history["epochs"][-1])
    return history
