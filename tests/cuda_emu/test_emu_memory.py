"""memory_fuse: the CUDA kernel (emulated) against the CPU kernel.

Kernel path (csrc/cuda/memory.cu, one thread per fused memory Gaussian, 128 per block, the math
of gaussocc/memory_math.h): several blocks with a partial last one; targets matched by one and
by several new Gaussians (pairs summed in order); the GPOcc rule (empty coef) and the SGR-OCC
rule (coef in [0, 1], including 0 and 1); rows of the memory that are not targets stay as they
were; tags OR-ed. The fused means, opacities, features and confidences use IEEE operations
without contraction on both sides, so every output is compared bit for bit; the covariance is
fused in double and re-decomposed by the same Jacobi code.
"""

import pytest
import torch
from emu_helpers import DTYPE_IDS, DTYPES, assert_equal

STATE = ("means", "scales", "quats", "opacities", "features", "confidence")


def _memory(g, cap, C, dtype):
    return {
        "means": torch.randn(cap, 3, generator=g, dtype=dtype),
        "scales": torch.rand(cap, 3, generator=g, dtype=dtype) * 0.1 + 0.01,
        "quats": torch.randn(cap, 4, generator=g, dtype=dtype),
        "opacities": torch.rand(cap, generator=g, dtype=dtype),
        "features": torch.softmax(torch.randn(cap, C, generator=g, dtype=dtype), -1),
        "confidence": torch.rand(cap, generator=g, dtype=dtype) + 0.05,
        "observations": torch.randint(1, 5, (cap,), generator=g),
        "last_seen": torch.randint(0, 5, (cap,), generator=g),
        "tags": torch.rand(cap, generator=g) < 0.5,
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("rule", ["gpocc", "sgr"])
def test_memory_fuse(cpu, emu, dtype, rule):
    g = torch.Generator().manual_seed(9)
    cap, n, C = 500, 400, 7
    memory = _memory(g, cap, C, dtype)
    new = _memory(g, n, C, dtype)
    new["quats"] = torch.nn.functional.normalize(new["quats"], dim=-1)
    # 300 targets (3 blocks, the last partial); each matched by 1 to 3 new Gaussians
    targets = torch.randperm(cap, generator=g)[:300].sort().values
    counts = torch.randint(1, 4, (300,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    pair_new = torch.randint(0, n, (int(counts.sum()),), generator=g)
    if rule == "sgr":
        coef = torch.rand(300, generator=g, dtype=dtype)
        coef[:2] = torch.tensor([0.0, 1.0], dtype=dtype)
    else:
        coef = torch.zeros(0, dtype=dtype)
    outs = []
    for ops in (cpu, emu):
        m = {k: v.clone() for k, v in memory.items()}
        ops.memory_fuse(
            *(m[k] for k in (*STATE, "observations", "last_seen", "tags")),
            *(new[k] for k in (*STATE, "tags")),
            targets,
            offsets,
            pair_new,
            coef,
            0.3,
            7,
        )
        outs.append(m)
    got, want = outs[1], outs[0]
    for k in want:
        assert_equal(got[k], want[k], k)
    untouched = torch.ones(cap, dtype=torch.bool)
    untouched[targets] = False
    for k in want:  # the CPU kernel changed the targets only
        assert_equal(want[k][untouched], memory[k][untouched], f"{k} outside the targets")
    assert (want["last_seen"][targets] == 7).all()
    assert not torch.equal(want["means"][targets], memory["means"][targets])
