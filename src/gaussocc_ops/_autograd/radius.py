"""Fake kernel of ``radius_neighbors`` (schema in ``csrc/ops/radius.cpp``; not differentiable)."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext


def _fake(queries, points, radius, max_neighbors, cell_size):
    B, M = queries.shape[:2]
    return (
        queries.new_empty(B, M, max_neighbors, dtype=torch.long),
        queries.new_empty(B, M, max_neighbors),
    )


def register() -> None:
    torch.library.register_fake("gaussocc::radius_neighbors", _fake)


_ext.on_load("radius_neighbors", register)
