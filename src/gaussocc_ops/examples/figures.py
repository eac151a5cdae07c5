"""Pictures of the examples (matplotlib, from the ``examples`` extra).

Voxel labels are drawn exactly with the library's voxel ray caster (:func:`gaussocc_ops.raycast`):
one ray per pixel, the colour of the first occupied voxel (:data:`scenes.CLASS_COLORS`), shaded
by the face it enters and outlined along voxel edges, so every voxel reads as a cube.

* :func:`label_image` / :func:`top_view`: a label volume seen from a pinhole camera / from above.
* :func:`prediction_figure`: input image, ground truth and each model's prediction side by side,
  from the camera and from above, with titles and the class legend.
* :func:`curves_figure`: training loss per step and held-out metrics per epoch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from gaussocc_ops.examples import scenes
from gaussocc_ops.raycast import raycast
from gaussocc_ops.types import VoxelGrid

_LIGHT = torch.nn.functional.normalize(torch.tensor([0.35, 0.55, 1.0]), dim=0)
_EDGE = 0.07  # outline width, in voxels
_FIRST_OBJECT = scenes.INDOOR_CLASSES.index("bed")


def _require_matplotlib():
    try:
        from matplotlib.figure import Figure
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the example figures need matplotlib: pip install 'gaussocc-ops[examples]'"
        ) from e
    return Figure


def pixel_rays(K: torch.Tensor, cam2world: torch.Tensor, image_size):
    """World-frame ``origins, directions [H*W, 3]`` through the pixel centres of a pinhole
    camera ``K [3, 3]``, ``cam2world [4, 4]`` (directions have camera z = 1)."""
    H, W = image_size
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    rays = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
    dirs = rays.reshape(-1, 3) @ cam2world[:3, :3].T
    return cam2world[:3, 3].expand_as(dirs).contiguous(), dirs.contiguous()


@torch.no_grad()
def camera_labels(
    labels: torch.Tensor, grid: VoxelGrid, K: torch.Tensor, cam2world: torch.Tensor, image_size
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a pinhole camera sees of ``labels [X, Y, Z]``: the label of the first occupied
    voxel on each pixel's ray ``[H, W]`` (-1: none) and its z-depth ``[H, W]`` (where the ray
    enters that voxel; ``inf`` for none), by :func:`gaussocc_ops.raycast`."""
    H, W = image_size
    origins, dirs = pixel_rays(K, cam2world, image_size)
    hit = raycast(labels[None], grid, origins[None], dirs[None], empty_class=scenes.EMPTY_CLASS)
    z = hit.distance[0] / dirs.norm(dim=-1)  # distance along a ray of camera z = 1 per unit
    return hit.label[0].reshape(H, W), z.reshape(H, W)


def _shade(labels, grid, origins, dirs, background=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Colours ``[R, 3]`` of rays ``origins, dirs [R, 3]`` through ``labels [X, Y, Z]``."""
    hit = raycast(labels[None], grid, origins[None], dirs[None], empty_class=scenes.EMPTY_CLASS)
    t, label = hit.distance[0], hit.label[0]
    found = label >= 0
    unit = dirs / dirs.norm(dim=-1, keepdim=True)
    point = origins + unit * torch.where(found, t, torch.zeros_like(t))[:, None]
    # the entry face is the axis on which the hit point lies on a voxel boundary
    cell = (point - torch.tensor(grid.origin)) / torch.tensor(grid.voxel_size)
    off = (cell - cell.round()).abs()
    axis = off.argmin(-1)
    normal = torch.nn.functional.one_hot(axis, 3).float()
    shade = 0.55 + 0.45 * (normal @ _LIGHT).abs()
    # outline the objects' voxels: a second coordinate close to a voxel boundary too (the room's
    # shell stays plain, its far-away edges would only add a moire)
    second = off.scatter(1, axis[:, None], 1.0).min(-1).values
    edge = (second < _EDGE) & (label >= _FIRST_OBJECT)
    shade = torch.where(edge, shade * 0.6, shade)
    colors = scenes.CLASS_COLORS[label.clamp(min=0)] * shade[:, None]
    return torch.where(found[:, None], colors, torch.tensor(background))


@torch.no_grad()
def label_image(
    labels: torch.Tensor, grid: VoxelGrid, K: torch.Tensor, cam2world: torch.Tensor, image_size
) -> torch.Tensor:
    """``[H, W, 3]`` colours of ``labels [X, Y, Z]`` seen by the pinhole camera ``K [3, 3]``
    (for ``image_size = (H, W)``), ``cam2world [4, 4]``; empty space is white."""
    H, W = image_size
    origins, dirs = pixel_rays(K, cam2world, image_size)
    return _shade(labels, grid, origins, dirs).reshape(H, W, 3)


@torch.no_grad()
def top_view(labels: torch.Tensor, grid: VoxelGrid, pixels_per_voxel: int = 4) -> torch.Tensor:
    """``[Y*p, X*p, 3]`` orthographic view from above (rows: +y up, columns: +x) of
    ``labels [X, Y, Z]``; pass labels without the ceiling to see into a room."""
    X, Y, _ = grid.shape
    (x0, y0, _), (x1, y1, z1) = grid.origin, grid.upper
    p = pixels_per_voxel
    xs = x0 + (torch.arange(X * p) + 0.5) * (x1 - x0) / (X * p)
    ys = y1 - (torch.arange(Y * p) + 0.5) * (y1 - y0) / (Y * p)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    origins = torch.stack([gx, gy, torch.full_like(gx, z1 + 1.0)], -1).reshape(-1, 3)
    # a slight tilt shows the sides of tall objects as thin shaded rims
    dirs = torch.tensor([0.12, -0.18, -1.0]).expand_as(origins)
    return _shade(labels, grid, origins, dirs.contiguous()).reshape(Y * p, X * p, 3)


def without_ceiling(labels: torch.Tensor) -> torch.Tensor:
    """``labels`` with the ceiling class set to empty (for views from above)."""
    ceiling = scenes.INDOOR_CLASSES.index("ceiling")
    return torch.where(labels == ceiling, torch.zeros_like(labels), labels)


def _legend(fig) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=scenes.CLASS_COLORS_HEX[i], edgecolor="black", label=name)
        for i, name in enumerate(scenes.INDOOR_CLASSES)
        if i != scenes.EMPTY_CLASS
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        frameon=False,
        fontsize=8,
        handlelength=1.2,
        columnspacing=1.0,
    )


def prediction_figure(
    path: str | Path,
    rgb: torch.Tensor,
    labels: Mapping[str, torch.Tensor],
    grid: VoxelGrid,
    K: torch.Tensor,
    cam2world: torch.Tensor,
    *,
    title: str,
    scale: int = 2,
    subtitles: Mapping[str, str] | None = None,
    depth: torch.Tensor | None = None,
) -> Path:
    """Write one figure: the input ``rgb [3, H, W]`` (and below it the input ``depth [H, W]``
    when given), then each of ``labels`` (name -> ``[X, Y, Z]``, the ground truth first) drawn
    from the input camera (``scale`` times the input resolution, top row) and from above
    without the ceiling (bottom row), with a title per panel (``subtitles[name]`` adds a
    second line, e.g. metrics) and the class legend. Returns ``path``."""
    Figure = _require_matplotlib()
    H, W = rgb.shape[-2:]
    size = (H * scale, W * scale)
    Ks = K.clone()
    Ks[:2] *= scale
    n = len(labels) + 1
    fig = Figure(figsize=(2.6 * n, 4.9), layout="constrained")
    axes = fig.subplots(2, n)
    axes[0, 0].imshow(rgb.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    axes[0, 0].set_title(f"input image ({H}x{W})", fontsize=9)
    if depth is not None:
        shown = axes[1, 0].imshow(depth.numpy(), cmap="viridis_r", interpolation="nearest")
        axes[1, 0].set_title("input depth prior (m)", fontsize=9)
        fig.colorbar(shown, ax=axes[1, 0], shrink=0.7)
    else:
        axes[1, 0].axis("off")
    for col, (name, lab) in enumerate(labels.items(), start=1):
        extra = f"\n{subtitles[name]}" if subtitles and name in subtitles else ""
        cam = label_image(lab, grid, Ks, cam2world, size)
        axes[0, col].imshow(cam.numpy(), interpolation="nearest")
        axes[0, col].set_title(f"{name}: camera view{extra}", fontsize=9)
        top = top_view(without_ceiling(lab), grid)
        axes[1, col].imshow(top.numpy(), interpolation="nearest")
        axes[1, col].set_title(f"{name}: from above", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    _legend(fig)
    fig.get_layout_engine().set(rect=(0, 0.06, 1, 0.94))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


#: The held-out metrics :func:`curves_figure` plots, with their axis labels.
CURVES = {
    "sc_iou": "SC-IoU (%)",
    "miou": "mIoU (%)",
    "furniture_miou": "furniture mIoU (%)",
    "rayiou": "RayIoU (%)",
    "floating": "floating voxels (% of seen free space)",
}


def curves_figure(
    path: str | Path,
    runs: Mapping[str, Mapping[str, Sequence]],
    *,
    title: str,
) -> Path:
    """Write the training curves of ``runs`` (name -> ``{"step_losses": [...], "epochs":
    [{metric: value}, ...]}``, metrics as fractions, epoch 0 = before training): the training
    loss per step (and its running mean) and every :data:`CURVES` metric per epoch on the
    held-out scenes. Returns ``path``."""
    Figure = _require_matplotlib()
    fig = Figure(figsize=(13, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).flat
    ax = next(axes)
    for name, run in runs.items():
        losses = torch.tensor(run["step_losses"], dtype=torch.float64)
        k = max(1, len(losses) // 20)
        smooth = torch.nn.functional.avg_pool1d(losses[None, None], k, 1)[0, 0]
        line = ax.plot(range(1, len(losses) + 1), losses.numpy(), alpha=0.25)[0]
        ax.plot(range(k, len(losses) + 1), smooth.numpy(), color=line.get_color(), label=name)
    ax.set(title="training loss", xlabel="step", yscale="log")
    ax.legend(fontsize=8)
    for key, label in CURVES.items():
        ax = next(axes)
        for name, run in runs.items():
            values = [100 * e[key] for e in run["epochs"]]
            ax.plot(range(len(values)), values, marker="o", markersize=3, label=name)
        ax.set(title=f"held-out {label}", xlabel="epoch")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    return path
