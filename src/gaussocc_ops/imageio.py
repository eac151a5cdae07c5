"""Minimal image output with no dependency beyond the standard library: PNG files and a
categorical palette for semantic maps."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch


def save_png(path: str | Path, image) -> Path:
    """Write ``image`` (``[H, W]`` or ``[H, W, 3]``; uint8, or float in ``[0, 1]``) as a PNG."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image must be [H, W] or [H, W, 3], got shape {arr.shape}")
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[row].tobytes() for row in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def palette(num_classes: int) -> torch.Tensor:
    """``[num_classes, 3]`` distinct colours in ``[0, 1]`` (golden-ratio hues)."""
    hues = (torch.arange(num_classes, dtype=torch.float64) * 0.618033988749895) % 1.0
    k = (torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)[None] + hues[:, None] * 6) % 6
    rgb = 1 - 0.75 * torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return rgb.float()


def colorize_probs(probs: torch.Tensor, colors: torch.Tensor | None = None) -> torch.Tensor:
    """``[..., C]`` class probabilities → ``[..., 3]`` colours (probability-weighted palette)."""
    colors = palette(probs.shape[-1]) if colors is None else colors
    return probs.float() @ colors.to(probs.device)


def colorize_depth(depth: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``[H, W]`` depth → ``[H, W, 3]`` grey image (near = bright), invalid pixels black."""
    d = depth.float()
    mask = torch.isfinite(d) & (d > 0) if valid is None else valid
    if not bool(mask.any()):
        return torch.zeros(*d.shape, 3)
    lo, hi = d[mask].min(), d[mask].max()
    g = torch.where(mask, 1 - (d - lo) / (hi - lo).clamp(min=1e-6) * 0.85, torch.zeros_like(d))
    return g[..., None].expand(*d.shape, 3)
