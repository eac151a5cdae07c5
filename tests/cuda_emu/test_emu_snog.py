"""snog_accept: the CUDA kernel (emulated) against the CPU kernel, bit-identical.

Kernel paths (csrc/cuda/snog.cu, one warp per image, 4 warps per block): images in several
blocks and a last block with idle warps; accepted lists longer than one and two warp strides
(the lanes test 32 accepted patches each per step); a candidate rejected by one lane only;
negative rows (skipped); the P limit reached mid-way; positions accepted before the call;
empty inputs (launcher returns before the launch).
"""

import pytest
import torch
from emu_helpers import assert_equal


def _run_both(cpu, emu, cand, pos, count, patch):
    want = cpu.snog_accept(cand, pos, count, patch)
    got = emu.snog_accept(cand, pos, count, patch)
    assert_equal(got[0], want[0], "positions")
    assert_equal(got[1], want[1], "count")
    return want


@pytest.mark.parametrize("patch", [1, 3, 8])
def test_snog_many_images_long_lists(cpu, emu, patch):
    g = torch.Generator().manual_seed(patch)
    B, T, P = 6, 700, 400
    cand = torch.randint(-4, 120, (B, T, 2), generator=g, dtype=torch.int32)
    pos = torch.zeros(B, P, 2, dtype=torch.int32)
    count = torch.zeros(B, dtype=torch.int32)
    want = _run_both(cpu, emu, cand, pos, count, patch)
    if patch == 1:
        assert (want[1] == P).all()  # the limit stops the walk
    else:
        assert (want[1] > 64).all() and (want[1] < P).all()  # > two warp strides of accepted


def test_snog_prefilled_and_clamped_counts(cpu, emu):
    g = torch.Generator().manual_seed(7)
    B, T, P = 5, 90, 40
    cand = torch.randint(-2, 50, (B, T, 2), generator=g, dtype=torch.int32)
    pos = torch.randint(0, 50, (B, P, 2), generator=g, dtype=torch.int32)
    count = torch.tensor([0, 3, P, 33, 1], dtype=torch.int32)  # P: already full
    want = _run_both(cpu, emu, cand, pos, count, 2)
    assert want[1][2] == P and (want[1] >= count).all()


def test_snog_all_rejected_or_skipped(cpu, emu):
    B, T, P = 3, 40, 10
    cand = torch.full((B, T, 2), 5, dtype=torch.int32)
    cand[0, :, 0] = -1  # no candidate at all in image 0
    pos = torch.zeros(B, P, 2, dtype=torch.int32)
    pos[:, 0] = 5
    count = torch.tensor([0, 1, 1], dtype=torch.int32)
    want = _run_both(cpu, emu, cand, pos, count, 4)
    assert want[1].tolist() == [0, 1, 1]


@pytest.mark.parametrize("shape", [(0, 5, 3), (2, 0, 3), (2, 5, 0)], ids=["B0", "T0", "P0"])
def test_snog_empty(cpu, emu, shape):
    B, T, P = shape
    cand = torch.randint(0, 9, (B, T, 2), dtype=torch.int32)
    pos = torch.zeros(B, P, 2, dtype=torch.int32)
    count = torch.zeros(B, dtype=torch.int32)
    _run_both(cpu, emu, cand, pos, count, 1)
