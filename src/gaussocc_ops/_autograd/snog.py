"""Fake kernel of ``snog_accept`` (schema in ``csrc/ops/snog.cpp``; not differentiable)."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext


def _fake(candidates, positions, count, patch_size):
    return torch.empty_like(positions), torch.empty_like(count)


def register() -> None:
    torch.library.register_fake("gaussocc::snog_accept", _fake)


_ext.on_load("snog_accept", register)
