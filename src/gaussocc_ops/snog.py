"""SNOG patch sampler: semantic-guided, non-overlapping Gaussian-mixture patch sampling
(ViPOcc Eq. 4-6)."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch

from gaussocc_ops import _ext
from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe
from gaussocc_ops.reference import snog as ref

Backend = Literal["auto", "reference", "cpu", "cuda"]
TRIES_PER_PATCH = 32
MIN_CHUNK = 64


class SnogSamples(NamedTuple):
    """Patches drawn by :func:`snog_sample`.

    centers: ``[..., P, 2]`` patch centres as ``(x, y)`` pixel coordinates (x to the right, y
        down; pixel ``(row, col)`` covers ``[col, col + 1) x [row, row + 1)``). Patches lie on
        the pixel grid, so a centre is ``(col0 + l/2, row0 + l/2)`` for the patch's top-left pixel
        ``(row0, col0)``. Slots ``>= count`` hold ``0``.
    valid: ``[..., P]`` bool, ``True`` for the first ``count`` slots.
    count: ``[...]`` int64 number of patches drawn per image (``< P`` when the image could not
        hold ``P`` non-overlapping patches within ``max_tries`` candidates).
    """

    centers: torch.Tensor
    valid: torch.Tensor
    count: torch.Tensor


def snog_sample(
    boxes: torch.Tensor,
    areas: torch.Tensor,
    image_size: tuple[int, int],
    num_patches: int,
    patch_size: int,
    *,
    background_ratio: float = 0.5,
    max_tries: int | None = None,
    generator: torch.Generator | None = None,
    valid: torch.Tensor | None = None,
    backend: Backend = "auto",
) -> SnogSamples:
    """Draw non-overlapping ``l x l`` patches from an instance-guided Gaussian mixture.

    Candidates come from ``p(x) = (1 - g) sum_k pi_k N(x | mu_k, diag(b_k^2 / 4)) + g U(x)``
    with ``mu_k`` the box centre, ``b_k`` its half size (x, y) and
    ``pi_k = log(1 + s_k) / sum_j log(1 + s_j)`` (vipocc Eq. 4-5); each candidate is snapped to
    the nearest patch on the pixel grid, dropped if the patch leaves the image, and rejected if
    ``||x - x_i||^2 < 2 l^2`` for an accepted centre ``x_i`` (Eq. 6), which rules out overlaps.
    Every image takes at most ``max_tries`` candidates, so the call always terminates.

    Args:
        boxes: ``[..., K, 4]`` float instance boxes ``(x0, y0, x1, y1)`` in pixels with
            ``x0 <= x1``, ``y0 <= y1``, touching the image; parts outside the image are clipped.
        areas: ``[..., K]`` instance areas ``s_k`` in pixels (mask pixel counts, ``>= 0``).
            ``log(1 + s)`` instead of the paper's ``log s`` keeps ``s <= 1`` from giving zero or
            negative weights; an instance of area 0 is never drawn.
        image_size: ``(H, W)``, height first.
        num_patches: ``P``, patches per image.
        patch_size: ``l``, patch edge in pixels.
        background_ratio: ``g`` in ``[0, 1]``, weight of the uniform background. Images without a
            valid instance of positive area draw every candidate uniformly.
        max_tries: candidates per image (default ``32 * P``).
        generator: optional ``torch.Generator`` on the device of ``boxes``; the same generator
            state gives the same patches on a given device, whatever the backend.
        valid: optional ``[..., K]`` bool mask of real instances (padding of ragged batches).
        backend: ``"reference"``, ``"cpu"``, ``"cuda"`` or ``"auto"`` (the kernel of the
            input's device). The backends differ only in speed: their outputs are identical.

    Returns:
        :class:`SnogSamples` ``(centers [..., P, 2] as (x, y), valid [..., P], count [...])``;
        centres are float32 (float64 for float64 boxes) and not differentiable.

    Example:
        >>> boxes = torch.tensor([[[100., 40., 180., 120.], [300., 60., 330., 150.]]])
        >>> areas = torch.tensor([[4000., 1500.]])
        >>> g = torch.Generator().manual_seed(0)
        >>> out = snog_sample(boxes, areas, (192, 640), 16, 8, generator=g)
        >>> out.centers.shape, int(out.count)
        (torch.Size([1, 16, 2]), 16)
    """
    H, W = _image_size(image_size)
    P = _nonneg_int("num_patches", num_patches)
    l = _nonneg_int("patch_size", patch_size)
    if l < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    tries = TRIES_PER_PATCH * P if max_tries is None else _nonneg_int("max_tries", max_tries)
    gamma = _ratio(background_ratio)
    mask = _check_instances(boxes, areas, valid, H, W)
    device = boxes.device
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        if generator.device.type != device.type:
            raise ValueError(f"generator is on {generator.device} but boxes are on {device}")
    backend = _resolve_backend(backend, device)
    accept = ref.snog_accept if backend == "reference" else torch.ops.gaussocc.snog_accept

    batch, K = boxes.shape[:-2], boxes.shape[-2]
    B = batch.numel()
    positions = torch.zeros(B, P, 2, dtype=torch.int32, device=device)
    count = torch.zeros(B, dtype=torch.int32, device=device)
    if B > 0 and P > 0 and l <= H and l <= W:
        mixture = _mixture(
            boxes.reshape(B, K, 4), areas.reshape(B, K), mask.reshape(B, K), H, W, gamma
        )
        chunk = max(MIN_CHUNK, 4 * P)
        used = 0
        while used < tries:
            size = min(chunk, tries - used)
            candidates = _draw_candidates(mixture, size, H, W, l, generator)
            positions, count = accept(candidates, positions, count, l)
            used += size
            if bool((count >= P).all()):
                break

    dtype = compute_dtype(boxes)
    slots = torch.arange(P, device=device) < count[:, None].long()
    centers = positions.flip(-1).to(dtype) + l / 2
    centers = torch.where(slots[..., None], centers, torch.zeros((), dtype=dtype, device=device))
    return SnogSamples(
        centers.reshape(*batch, P, 2), slots.reshape(*batch, P), count.long().reshape(batch)
    )


class _Mixture(NamedTuple):
    cdf: torch.Tensor  # [B, K + 1] cumulative weights, component 0 = uniform background
    last: torch.Tensor  # [B, 1] index of the last component with positive weight
    mu: torch.Tensor  # [B, K + 1, 2] (row, col) means; row 0 unused
    sigma: torch.Tensor  # [B, K + 1, 2] (row, col) standard deviations; row 0 unused


def _mixture(boxes, areas, mask, H, W, gamma) -> _Mixture:
    """Weights, means and standard deviations of the mixture of every image, in float64."""
    b = torch.where(
        mask[..., None], boxes.double(), torch.zeros((), dtype=torch.float64, device=boxes.device)
    )
    x0, x1 = b[..., 0].clamp(0, W), b[..., 2].clamp(0, W)
    y0, y1 = b[..., 1].clamp(0, H), b[..., 3].clamp(0, H)
    mu = torch.stack(((y0 + y1) / 2, (x0 + x1) / 2), dim=-1)
    sigma = torch.stack(((y1 - y0) / 4, (x1 - x0) / 4), dim=-1)
    log_area = torch.where(mask, torch.log1p(areas.double().clamp(min=0)), 0.0)
    total = log_area.sum(-1, keepdim=True)
    has_instances = total > 0
    inst = torch.where(has_instances, (1 - gamma) * log_area / total.clamp(min=1e-300), 0.0)
    background = 1.0 + (gamma - 1.0) * has_instances.double()
    weights = torch.cat((background, inst), dim=-1)
    ids = torch.arange(weights.shape[-1], device=weights.device)
    last = torch.where(weights > 0, ids, 0).amax(-1, keepdim=True)
    pad = mu.new_zeros(mu.shape[0], 1, 2)
    return _Mixture(
        weights.cumsum(-1).contiguous(), last, torch.cat((pad, mu), 1), torch.cat((pad, sigma), 1)
    )


def _draw_candidates(
    mixture: _Mixture, size: int, H: int, W: int, l: int, generator
) -> torch.Tensor:
    """``[B, size, 2]`` int32 candidate top-left corners ``(row, col)``, ``-1`` when outside."""
    B = mixture.cdf.shape[0]
    opts = {"dtype": torch.float64, "device": mixture.cdf.device, "generator": generator}
    u = torch.rand(B, size, **opts)
    z = torch.randn(B, size, 2, **opts)
    v = torch.rand(B, size, 2, **opts)
    comp = torch.searchsorted(mixture.cdf, u, right=True).clamp(max=mixture.last)
    idx = comp[..., None].expand(B, size, 2)
    centre = mixture.mu.gather(1, idx) + mixture.sigma.gather(1, idx) * z
    gauss = torch.floor(centre + (1 - l) / 2)
    limit = torch.tensor([H - l, W - l], dtype=torch.float64, device=u.device)
    uniform = torch.minimum(torch.floor(v * (limit + 1)), limit)
    top_left = torch.where(comp[..., None] == 0, uniform, gauss)
    inside = ((top_left >= 0) & (top_left <= limit)).all(-1, keepdim=True)
    return torch.where(inside, top_left, -1.0).to(torch.int32)


def _image_size(image_size) -> tuple[int, int]:
    try:
        H, W = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (H, W), height first, got {image_size!r}") from None
    for name, v in (("H", H), ("W", W)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(
                f"image_size must be two positive ints (H, W), got {image_size!r} ({name} = {v!r})"
            )
    return H, W


def _nonneg_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _ratio(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"background_ratio must be a float, got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"background_ratio must be in [0, 1], got {value}")
    return float(value)


def _check_instances(boxes, areas, valid, H: int, W: int) -> torch.Tensor:
    """Validates boxes, areas and valid; returns the instance mask ``[..., K]``."""
    check_tensor("boxes", boxes, min_dim=2, last=(4,))
    check_float("boxes", boxes)
    shape = boxes.shape[:-1]
    check_tensor("areas", areas)
    if areas.shape != shape:
        raise ValueError(
            f"areas must have shape {tuple(shape)} to match boxes, got {describe(areas)}"
        )
    if areas.dtype == torch.bool or areas.is_complex():
        raise TypeError(f"areas must be a real float or integer tensor, got {describe(areas)}")
    if valid is None:
        mask = torch.ones(shape, dtype=torch.bool, device=boxes.device)
    else:
        check_tensor("valid", valid)
        if valid.dtype != torch.bool or valid.shape != shape:
            raise ValueError(
                f"valid must be a bool tensor of shape {tuple(shape)}, got {describe(valid)}"
            )
        mask = valid
    for name, t in (("areas", areas), ("valid", mask)):
        if t.device != boxes.device:
            raise ValueError(f"{name} is on {t.device} but boxes are on {boxes.device}")
    b, s = boxes[mask].double(), areas[mask].double()
    if b.numel() == 0:
        return mask
    if not bool(torch.isfinite(b).all()):
        raise ValueError("boxes contains NaN or Inf values")
    if not bool(torch.isfinite(s).all()):
        raise ValueError("areas contains NaN or Inf values")
    if bool((s < 0).any()):
        raise ValueError(f"areas must be >= 0 (pixel counts), got min {s.min().item()}")
    x0, y0, x1, y1 = b.unbind(-1)
    if bool(((x1 < x0) | (y1 < y0)).any()):
        raise ValueError("boxes must be (x0, y0, x1, y1) with x0 <= x1 and y0 <= y1")
    if bool(((x1 < 0) | (y1 < 0) | (x0 > W) | (y0 > H)).any()):
        raise ValueError(
            f"boxes must touch the image [0, {W}] x [0, {H}] (W x H); some lie outside it"
        )
    return mask


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend not in ("auto", "reference", "cpu", "cuda"):
        raise ValueError(
            f"backend must be one of 'auto', 'reference', 'cpu', 'cuda', got {backend!r}"
        )
    if backend == "auto":
        if _ext.kernel_available("snog_accept", device):
            return "cpu" if device.type == "cpu" else "cuda"
        _ext.warn_fallback("snog_accept")
        return "reference"
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs tensors on {backend}, got {device}")
        if not _ext.kernel_available("snog_accept", device):
            reason = _ext.build_info()["error"] or "no such kernel"
            raise RuntimeError(
                f"backend={backend!r} is not available: the {backend.upper()} kernels were not "
                f"compiled (gaussocc_ops.build_info(): {reason})"
            )
    return backend


def _register_fake():
    @torch.library.register_fake("gaussocc::snog_accept")
    def _(candidates, positions, count, patch_size):
        return torch.empty_like(positions), torch.empty_like(count)


_ext.on_load("snog_accept", _register_fake)
