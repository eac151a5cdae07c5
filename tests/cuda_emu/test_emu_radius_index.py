"""radius_index_insert / radius_index_query: the CUDA kernels (emulated) against the CPU kernels.

Kernel paths (csrc/cuda/radius_index.cu, one thread per filed slot or per query, 128 per block):
several blocks with a partial last one; filing into new and existing cells (atomic claims of
table entries, atomic pushes onto cell lists from many threads of one block); re-filing with
moved_only where some slots stayed in their cell (no node) and some moved; removed and re-filed
slots (stale nodes the search skips); queries with no neighbour, fewer than K, more than K and
ties at equal distance; points beyond the clamped cell range; radius 0; K = 0 and M = 0.

The CUDA filing order depends on the thread schedule, so node numbers may differ from the CPU's:
the index states are compared by what they mean (the cell of every slot, the live slots of every
cell), and the queries bit-identically (neighbour slots) and within the stated tolerance
(distances).
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_close, assert_equal


def _state(points_rows, node_capacity, table_size):
    long = {"dtype": torch.long}
    return {
        "table_keys": torch.full((table_size,), -1, **long),
        "table_heads": torch.full((table_size,), -1, **long),
        "node_slot": torch.zeros(node_capacity, **long),
        "node_next": torch.zeros(node_capacity, **long),
        "slot_node": torch.full((points_rows,), -1, **long),
        "slot_cell": torch.zeros(points_rows, **long),
        "node_count": torch.zeros(1, **long),
    }


def _insert(ops, s, points, slots, cell, moved_only):
    ops.radius_index_insert(
        s["table_keys"],
        s["table_heads"],
        s["node_slot"],
        s["node_next"],
        s["slot_node"],
        s["slot_cell"],
        s["node_count"],
        points,
        slots,
        cell,
        moved_only,
    )


def _query(ops, s, points, queries, cell, radius, k):
    return ops.radius_index_query(
        s["table_keys"],
        s["table_heads"],
        s["node_slot"],
        s["node_next"],
        s["slot_node"],
        points,
        queries,
        cell,
        radius,
        k,
    )


def _cells(s):
    """{cell key: sorted live slots} read from the table and the node lists."""
    out = {}
    keys, heads = s["table_keys"].tolist(), s["table_heads"].tolist()
    nslot, nnext, snode = s["node_slot"].tolist(), s["node_next"].tolist(), s["slot_node"].tolist()
    for key, head in zip(keys, heads):
        if key < 0:
            continue
        live, node = [], head
        while node >= 0:
            if snode[nslot[node]] == node:
                live.append(nslot[node])
            node = nnext[node]
        if live:
            out[key] = sorted(live)
    return out


def _assert_same_meaning(got, want):
    assert_equal(got["node_count"], want["node_count"], "node count")
    assert_equal(got["slot_node"] >= 0, want["slot_node"] >= 0, "filed slots")
    filed = want["slot_node"] >= 0
    assert_equal(got["slot_cell"][filed], want["slot_cell"][filed], "cell of each filed slot")
    assert _cells(got) == _cells(want), "live slots per cell differ"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_radius_index_insert_update_query(cpu, emu, dtype):
    g = torch.Generator().manual_seed(3)
    P, cell, radius, K = 700, 0.1, 0.1 + 1e-6, 5
    points = torch.rand(P, 3, generator=g, dtype=torch.float64)
    lattice = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1)
    points[:64] = 0.1 * lattice.reshape(-1, 3) + 0.2  # ties at exactly 0.1
    points[64:80] = points[80:96]  # coincident pairs: ties at distance 0
    points[96:100] = torch.tensor([1e6, -2e6, 3e7], dtype=torch.float64)  # clamped cells
    points = points.to(dtype)
    states = [_state(P, 2048, 4096) for _ in range(2)]
    first = torch.randperm(600, generator=g)  # 600 slots, several blocks, partial last
    for ops, s in zip((cpu, emu), states):
        _insert(ops, s, points, first, cell, False)
    _assert_same_meaning(states[1], states[0])
    # move 200 slots: half stay in their cell (no new node), half jump
    moved = torch.arange(100, 300)
    step = torch.where(torch.arange(200)[:, None] % 2 == 0, 1e-4, 0.3).to(dtype)
    points[moved] += step * torch.randn(200, 3, generator=g, dtype=dtype).sign()
    for ops, s in zip((cpu, emu), states):
        _insert(ops, s, points, moved, cell, True)
    _assert_same_meaning(states[1], states[0])
    assert 0 < int(states[0]["node_count"]) - 600 < 200  # some re-filed, some not
    # remove some (the op's caller marks them) and file the rest, plus a removed one again
    for s in states:
        s["slot_node"][300:350] = -1
    rest = torch.cat([torch.arange(600, 700), torch.tensor([310, 320])])
    for ops, s in zip((cpu, emu), states):
        _insert(ops, s, points, rest, cell, False)
    _assert_same_meaning(states[1], states[0])

    queries = torch.rand(300, 3, generator=g, dtype=torch.float64).to(dtype) * 1.2 - 0.1
    queries[0] = 0.1 * torch.tensor([1.0, 1.0, 1.0], dtype=dtype) + 0.2  # six ties at 0.1
    queries[1] = points[70]  # coincident points
    queries[2] = points[96]  # in a clamped cell
    queries[3] = torch.tensor([9.0, 9.0, 9.0], dtype=dtype)  # nothing near
    want = _query(cpu, states[0], points, queries, cell, radius, K)
    got = _query(emu, states[1], points, queries, cell, radius, K)
    assert_equal(got[0], want[0], "neighbour slot")
    assert_close(got[1], want[1], "distance")
    # the emulated state answers the CPU query identically too
    assert_equal(_query(cpu, states[1], points, queries, cell, radius, K)[0], want[0], "slot")
    found = (want[0] >= 0).sum(-1)
    assert (found == 0).any() and ((found > 0) & (found < K)).any() and (found == K).any()
    assert want[0][0].tolist()[:K] != [-1] * K


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_radius_index_zero_radius_and_empty_queries(cpu, emu, dtype):
    points = torch.tensor([[0.5, 0.5, 0.5]] * 5 + [[0.7, 0.5, 0.5]], dtype=dtype)
    states = [_state(6, 16, 32) for _ in range(2)]
    for ops, s in zip((cpu, emu), states):
        _insert(ops, s, points, torch.arange(6), 0.25, False)
    queries = torch.tensor([[0.5, 0.5, 0.5], [0.7, 0.5, 0.5], [0.6, 0.5, 0.5]], dtype=dtype)
    for radius, k in ((0.0, 3), (0.3, 0)):
        want = _query(cpu, states[0], points, queries, 0.25, radius, k)
        got = _query(emu, states[1], points, queries, 0.25, radius, k)
        assert_equal(got[0], want[0], "neighbour slot")
        assert_close(got[1], want[1], "distance")
    assert want[0].shape == (3, 0)
    zero = _query(cpu, states[0], points, queries, 0.25, 0.0, 3)[0]
    assert zero[0].tolist() == [0, 1, 2] and zero[1].tolist() == [5, -1, -1]
    none = queries[:0]
    got = _query(emu, states[1], points, none, 0.25, 0.3, 2)
    assert got[0].shape == (0, 2)
