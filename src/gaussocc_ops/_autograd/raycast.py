"""Fake kernel of ``raycast`` (schema in ``csrc/ops/raycast.cpp``; not differentiable)."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext


def _fake(labels, origins, directions, grid_origin, voxel_size, empty_label, max_distance):
    B, R = origins.shape[:2]
    return origins.new_empty(B, R), origins.new_empty(B, R, dtype=torch.int64)


def register() -> None:
    torch.library.register_fake("gaussocc::raycast", _fake)


_ext.on_load("raycast", register)
