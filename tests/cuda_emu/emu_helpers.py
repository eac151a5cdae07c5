"""Comparisons of the emulated CUDA kernels' outputs with the CPU kernels' outputs.

Tolerances (stated once, used by every parity test):

* integer outputs (radii, tile offsets, Gaussian ids, last ids, neighbour and hit indices,
  accepted patches, opaque counts): bit-identical.
* floating outputs: ``|got - want| <= atol * scale + rtol * |want|`` elementwise, with
  ``scale = max(1, max |want|)`` over the whole output, and ``(rtol, atol)`` of ``TOL`` for its
  dtype. The CUDA kernels sum in another order than the CPU kernels (warp reductions, atomics
  from many blocks), so sums with cancellation differ by a few ulps of their largest terms;
  ``scale`` expresses that. The emulator compiles without FMA contraction and with glibc's math,
  as the CPU kernels do, so the only source of difference is the summation order.
"""

from __future__ import annotations

import torch

TOL = {
    torch.float32: (2e-5, 2e-5),
    torch.float64: (1e-11, 1e-11),
}

DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["f32", "f64"]


def assert_equal(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    """Bit-identical integer (or boolean) outputs."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    if torch.equal(got, want):
        return
    diff = (got != want).nonzero()
    first = tuple(diff[0].tolist())
    raise AssertionError(
        f"{what}: {len(diff)} of {want.numel()} entries differ; first at {first}: "
        f"emulated CUDA {got[first].item()}, CPU {want[first].item()}"
    )


def assert_close(
    got: torch.Tensor,
    want: torch.Tensor,
    what: str,
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> None:
    """Floating outputs within the stated tolerance (see the module docstring)."""
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    r, a = TOL[want.dtype]
    rtol = r if rtol is None else rtol
    atol = a if atol is None else atol
    if want.numel() == 0:
        return
    # inf == inf (misses), NaN nowhere
    assert not torch.isnan(want).any(), f"{what}: the CPU kernel returned NaN"
    assert not torch.isnan(got).any(), f"{what}: the emulated kernel returned NaN"
    same_inf = torch.isinf(want) & (got == want)
    finite = torch.isfinite(want)
    assert torch.equal(torch.isinf(got) & ~same_inf, torch.zeros_like(same_inf)), (
        f"{what}: infinities differ"
    )
    scale = max(1.0, want[finite].abs().max().item()) if finite.any() else 1.0
    err = (got - want).abs()
    bound = atol * scale + rtol * want.abs()
    bad = finite & ~(err <= bound)
    if bad.any():
        idx = bad.nonzero()
        first = tuple(idx[0].tolist())
        worst = (err - bound).masked_fill(~bad, -1).argmax()
        worst_idx = tuple(int(i) for i in torch.unravel_index(worst, want.shape))
        raise AssertionError(
            f"{what}: {len(idx)} of {want.numel()} entries beyond atol={atol}*{scale:.3g}, "
            f"rtol={rtol}; first at {first}: emulated CUDA {got[first].item()!r}, CPU "
            f"{want[first].item()!r}; worst at {worst_idx}: {got[worst_idx].item()!r} vs "
            f"{want[worst_idx].item()!r}"
        )


def assert_outputs(got, want, names, int_names=()) -> None:
    """Compares tuples of outputs by name: ``int_names`` bit-identical, the others close."""
    assert len(got) == len(want) == len(names)
    for g, w, n in zip(got, want, names):
        if n in int_names or not w.is_floating_point():
            assert_equal(g, w, n)
        else:
            assert_close(g, w, n)
