"""Fake kernels of ``radius_index_insert`` and ``radius_index_query`` (schemas in
``csrc/ops/radius_index.cpp``; not differentiable).

``radius_index_insert`` returns nothing and mutates the index state in place (its schema marks
the mutated arguments), so its fake kernel returns None; the query returns new tensors."""

from __future__ import annotations

import torch

from gaussocc_ops import _ext


def _insert_fake(
    table_keys,
    table_heads,
    node_slot,
    node_next,
    slot_node,
    slot_cell,
    node_count,
    points,
    slots,
    cell_size,
    moved_only,
):
    return None


def _query_fake(
    table_keys,
    table_heads,
    node_slot,
    node_next,
    slot_node,
    points,
    queries,
    cell_size,
    radius,
    max_neighbors,
):
    M = queries.shape[0]
    return (
        queries.new_empty(M, max_neighbors, dtype=torch.long),
        queries.new_empty(M, max_neighbors),
    )


def register() -> None:
    torch.library.register_fake("gaussocc::radius_index_insert", _insert_fake)
    torch.library.register_fake("gaussocc::radius_index_query", _query_fake)


_ext.on_load("radius_index_query", register)
