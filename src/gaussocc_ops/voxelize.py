"""Voxel "gaussianization" (GaussRender §3.3): one spherical Gaussian per voxel.

Each kept voxel becomes a Gaussian at its centre with identity rotation and a fixed standard
deviation (``voxel_size / 2`` by default, the ``2 s = c`` rule of GaussRender App. E.1). Voxels
that are masked out are *dropped*, not rendered with opacity 0: a batch whose samples keep
different numbers of voxels is returned padded to the largest count, with ``Gaussians.valid``
marking the real entries. Counting the kept voxels reads a number back to the host (on a GPU, a
device→host synchronisation) and gives a data-dependent size; ``compact=False`` returns one
Gaussian per voxel instead, the dropped ones marked invalid (no synchronisation, a fixed size
that ``torch.compile`` can trace). Both render the same images: the projection culls Gaussians
whose opacity is below the renderer's 1/255 threshold, and an invalid one has opacity 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gaussocc_ops._checks import check_tensor, describe, value_checks_enabled
from gaussocc_ops._dispatch import constant
from gaussocc_ops.constants import ALPHA_THRESHOLD
from gaussocc_ops.types import Gaussians, VoxelGrid

Scale = float | Sequence[float] | None


def voxels_to_gaussians(
    logits: torch.Tensor,
    grid: VoxelGrid,
    *,
    empty_class: int,
    opacity: str | torch.Tensor = "empty",
    colors: str = "occupied",
    scale: Scale = None,
    valid_mask: torch.Tensor | None = None,
    min_opacity: float = ALPHA_THRESHOLD,
    compact: bool = True,
) -> Gaussians:
    """Gaussians of a dense semantic prediction.

    The opacity is either given (e.g. predicted by the model) or derived from the empty class,
    ``o = 1 - p_empty`` with ``p = softmax(logits)``. Colours are class probabilities:
    ``colors="occupied"`` uses ``p(class | occupied)``, the softmax over the non-empty classes
    (empty channel 0), so the empty probability enters the render once, through the opacity;
    ``colors="all"`` uses ``p`` itself (all ``C`` classes, the empty one included).

    Args:
        logits: ``[B, C, X, Y, Z]`` class logits over ``grid`` (half precision is upcast).
        grid: the voxel grid; ``grid.shape == (X, Y, Z)``.
        empty_class: index of the empty class in ``[0, C)``.
        opacity: ``"empty"`` for ``1 - p_empty``, or a ``[B, X, Y, Z]`` tensor in ``[0, 1]``.
        colors: ``"occupied"`` (needs ``C >= 2``) or ``"all"``, see above.
        scale: Gaussian standard deviation in metres: a float, three floats (x, y, z), or None for
            ``voxel_size / 2`` per axis.
        valid_mask: optional ``[B, X, Y, Z]`` bool; ``False`` voxels are dropped (ignored labels,
            voxels outside every camera, ...).
        min_opacity: voxels whose opacity is below this are dropped too. The default, the
            renderer's alpha threshold 1/255, is lossless: such a Gaussian never reaches the
            threshold, so it changes neither the image nor any gradient. ``0`` keeps every voxel.
        compact: drop the voxels (True) or keep one Gaussian per voxel with the dropped ones
            marked invalid (False: no device→host synchronisation, a size fixed by the grid).

    Returns:
        :class:`Gaussians` with batch shape ``[B]`` and ``N`` Gaussians: ``N = X Y Z`` and
        ``valid=None`` when nothing is dropped, else (``compact=True``) ``N`` = the largest kept
        count and ``valid`` marks the kept entries; with ``compact=False`` always ``N = X Y Z``
        and ``valid`` marks the kept voxels. Differentiable w.r.t. ``logits`` and ``opacity``.

    Example:
        >>> grid = VoxelGrid((0, 0, 0), 0.5, (4, 4, 2))
        >>> g = voxels_to_gaussians(torch.randn(2, 5, 4, 4, 2), grid, empty_class=4, min_opacity=0)
        >>> g.means.shape, g.features.shape, g.scales[0, 0].tolist()
        (torch.Size([2, 32, 3]), torch.Size([2, 32, 5]), [0.25, 0.25, 0.25])
    """
    _check_compact(compact)
    check_tensor("logits", logits, min_dim=5)
    if logits.dim() != 5:
        raise ValueError(f"logits must have shape [B, C, X, Y, Z], got {describe(logits)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {describe(logits)}")
    B, C = logits.shape[:2]
    _check_grid_shape("logits", logits, grid, offset=2)
    _check_class("empty_class", empty_class, C)
    if colors not in ("occupied", "all"):
        raise ValueError(f"colors must be 'occupied' or 'all', got {colors!r}")
    if colors == "occupied" and C < 2:
        raise ValueError(f"colors='occupied' needs at least 2 classes, logits has {C}")
    dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logits = logits.to(dtype)
    probs = torch.softmax(logits, dim=1)
    if isinstance(opacity, str):
        if opacity != "empty":
            raise ValueError(f"opacity must be 'empty' or a [B, X, Y, Z] tensor, got {opacity!r}")
        opac = 1.0 - probs[:, empty_class]
    else:
        check_tensor("opacity", opacity)
        if opacity.shape != (B, *grid.shape):
            raise ValueError(
                f"opacity must have shape {(B, *grid.shape)} (as logits), got {describe(opacity)}"
            )
        if not opacity.is_floating_point():
            raise TypeError(f"opacity must be a floating-point tensor, got {describe(opacity)}")
        if opacity.device != logits.device:
            raise ValueError(f"opacity is on {opacity.device} but logits is on {logits.device}")
        opac = opacity.to(dtype)
    keep = _check_mask(valid_mask, B, grid, logits.device)
    if min_opacity > 0:
        above = opac.detach() >= min_opacity
        keep = above if keep is None else keep & above
    if colors == "occupied":
        empty = torch.full((1,), empty_class, device=logits.device)
        probs = torch.softmax(logits.index_fill(1, empty, float("-inf")), dim=1)
    features = probs.permute(0, 2, 3, 4, 1).reshape(B, grid.num_voxels, C)
    return _gaussians(grid, opac.reshape(B, grid.num_voxels), features, keep, scale, compact)


def labels_to_gaussians(
    labels: torch.Tensor,
    grid: VoxelGrid,
    *,
    num_classes: int,
    empty_class: int,
    ignore_index: int = 255,
    scale: Scale = None,
    valid_mask: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    compact: bool = True,
) -> Gaussians:
    """Gaussians of ground-truth labels: occupied voxels only, one-hot colours, opacity 1.

    Voxels labelled ``empty_class`` or ``ignore_index`` (and those outside ``valid_mask``) are
    dropped (GaussRender §3.3: "we render only occupied voxels by assigning them an opacity of 1").

    Args:
        labels: ``[B, X, Y, Z]`` integer labels in ``[0, num_classes)`` or ``ignore_index``.
        grid: the voxel grid; ``grid.shape == (X, Y, Z)``.
        num_classes: number of classes ``C`` (the empty class included).
        empty_class: index of the empty class in ``[0, C)``.
        ignore_index: label of unannotated voxels.
        scale: as in :func:`voxels_to_gaussians`.
        valid_mask: optional ``[B, X, Y, Z]`` bool of voxels to keep.
        dtype: floating dtype of the returned Gaussians.
        compact: as in :func:`voxels_to_gaussians`.

    Returns:
        :class:`Gaussians` with batch shape ``[B]``, padded to the largest occupied count with
        ``valid`` marking the real entries (``N = 0`` when no sample has an occupied voxel); with
        ``compact=False`` one Gaussian per voxel (``N = X Y Z``), ``valid`` marking the kept ones.

    Example:
        >>> grid = VoxelGrid((0, 0, 0), 0.5, (4, 4, 2))
        >>> labels = torch.full((1, 4, 4, 2), 3); labels[0, :, :, 0] = 1
        >>> g = labels_to_gaussians(labels, grid, num_classes=4, empty_class=3)
        >>> g.num_gaussians, g.features[0, 0].tolist(), g.means[0, 0].tolist()
        (16, [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25])
    """
    _check_compact(compact)
    check_tensor("labels", labels)
    if labels.dim() != 4:
        raise ValueError(f"labels must have shape [B, X, Y, Z], got {describe(labels)}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got {describe(labels)}")
    _check_grid_shape("labels", labels, grid, offset=1)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    _check_class("empty_class", empty_class, num_classes)
    check_label_range(labels, num_classes, ignore_index)
    keep = _check_mask(valid_mask, labels.shape[0], grid, labels.device)
    return _labels_to_gaussians(
        labels, grid, num_classes, empty_class, ignore_index, scale, keep, dtype, compact
    )


def _labels_to_gaussians(
    labels, grid, num_classes, empty_class, ignore_index, scale, keep, dtype, compact
) -> Gaussians:
    """:func:`labels_to_gaussians` on checked arguments (``keep``: the checked ``valid_mask``)."""
    B = labels.shape[0]
    occupied = (labels != empty_class) & (labels != ignore_index)
    keep = occupied if keep is None else keep & occupied
    flat = labels.reshape(B, grid.num_voxels)
    safe = torch.where(flat == ignore_index, torch.full_like(flat, empty_class), flat)
    # one-hot by comparison: F.one_hot reads the labels' range back to the host on the CPU
    classes = torch.arange(num_classes, device=labels.device)
    features = (safe.unsqueeze(-1) == classes).to(dtype)
    opac = torch.ones(flat.shape, dtype=dtype, device=labels.device)
    return _gaussians(grid, opac, features, keep, scale, compact)


def check_label_range(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """A value check: raise ``ValueError`` if a label is neither in ``[0, num_classes)`` nor
    ``ignore_index`` (skipped when value checks are off, see
    :func:`gaussocc_ops.set_value_checks`)."""
    if not value_checks_enabled() or not labels.numel():
        return
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != ignore_index)
    if bool(bad.any()):
        value = int(labels[bad][0])
        raise ValueError(
            f"labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}, "
            f"found {value}"
        )


def _check_grid_shape(name: str, t: torch.Tensor, grid: VoxelGrid, offset: int) -> None:
    if not isinstance(grid, VoxelGrid):
        raise TypeError(f"grid must be gaussocc_ops.VoxelGrid, got {type(grid).__name__}")
    if tuple(t.shape[offset:]) != grid.shape:
        raise ValueError(
            f"{name} spatial dims {tuple(t.shape[offset:])} must equal grid.shape {grid.shape} "
            f"({describe(t)})"
        )


def _check_compact(compact) -> None:
    if not isinstance(compact, bool):
        raise TypeError(f"compact must be a bool, got {type(compact).__name__}")


def _check_class(name: str, value: int, num_classes: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_classes:
        raise ValueError(f"{name} must be an int in [0, {num_classes}), got {value!r}")


def _check_mask(mask, B: int, grid: VoxelGrid, device) -> torch.Tensor | None:
    if mask is None:
        return None
    check_tensor("valid_mask", mask)
    if mask.dtype != torch.bool or mask.shape != (B, *grid.shape):
        raise ValueError(
            f"valid_mask must be a bool tensor of shape {(B, *grid.shape)}, got {describe(mask)}"
        )
    if mask.device != device:
        raise ValueError(f"valid_mask is on {mask.device} but the voxels are on {device}")
    return mask


def _scales(grid: VoxelGrid, scale: Scale) -> tuple[float, float, float]:
    if scale is None:
        return tuple(s / 2 for s in grid.voxel_size)
    values = (
        (float(scale),) * 3 if isinstance(scale, (int, float)) else tuple(float(s) for s in scale)
    )
    if len(values) != 3 or any(not (v > 0) or v == float("inf") for v in values):
        raise ValueError(f"scale must be a positive float or three positive floats, got {scale!r}")
    return values


def _gaussians(grid, opacities, features, keep, scale, compact=True) -> Gaussians:
    """Assemble Gaussians from per-voxel ``opacities [B, M]`` and ``features [B, M, C]``, keeping
    the voxels where ``keep [B, X, Y, Z]`` holds (all when None): packed and padded per batch
    element (``compact``), or all ``M`` with ``valid = keep``."""
    B, M, C = features.shape
    dtype, device = features.dtype, features.device
    centers = grid.centers(device=device, dtype=dtype).reshape(M, 3)
    valid = None
    if keep is None or not compact:
        means = centers.expand(B, M, 3)
        valid = None if keep is None else keep.reshape(B, M)
    else:
        keep = keep.reshape(B, M)
        counts = keep.sum(1)
        N = int(counts.max()) if B else 0
        b, idx = keep.nonzero(as_tuple=True)  # row-major: grouped by b, voxel order within
        rank = torch.arange(b.numel(), device=device) - (counts.cumsum(0) - counts)[b]
        valid = torch.zeros(B, N, dtype=torch.bool, device=device)
        valid[b, rank] = True

        def pack(values, tail):
            out = values.new_zeros(B, N, *tail)
            return out.index_put((b, rank), values)

        means = pack(centers[idx], (3,))
        opacities = pack(opacities[b, idx], ())
        features = pack(features[b, idx], (C,))
        M = N
    scales = constant(_scales(grid, scale), dtype, device).expand(B, M, 3)
    quats = constant([1.0, 0.0, 0.0, 0.0], dtype, device).expand(B, M, 4)
    return Gaussians._trusted(means, scales, quats, opacities, features, valid)
