"""Fake kernels of ``memory_fuse`` and ``memory_evict_heap`` (schemas in
``csrc/ops/memory.cpp``; not differentiable).

``memory_fuse`` mutates the memory in place and returns nothing. ``memory_evict_heap`` mutates
the heap in place and returns the ``pop`` rows it evicted, ``[pop]`` int64."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext


def _fuse_fake(
    means,
    scales,
    quats,
    opacities,
    features,
    confidence,
    observations,
    last_seen,
    tags,
    new_means,
    new_scales,
    new_quats,
    new_opacities,
    new_features,
    new_confidence,
    new_tags,
    targets,
    offsets,
    pair_new,
    coef,
    gamma,
    frame,
):
    return None


def _evict_fake(heap, heap_pos, heap_size, confidence, last_seen, removed, added, pop):
    return heap.new_empty(pop)


def register() -> None:
    torch.library.register_fake("gaussocc::memory_fuse", _fuse_fake)
    torch.library.register_fake("gaussocc::memory_evict_heap", _evict_fake)


_ext.on_load("memory_fuse", register)
