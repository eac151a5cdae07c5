"""Input validation shared by every op.

Errors name the argument, what was expected and what came.

Two kinds of checks:

* **structure** (types, shapes, dtypes, devices, Python numbers): free, always on;
* **values** (finite, ranges, non-zero quaternions, label ranges, ...): each needs a pass over the
  data and, on a GPU, a device→host synchronisation to read the answer. They run once, at the
  public boundary, on the caller's inputs only, and can be switched off for speed with
  :func:`set_value_checks` / :func:`value_checks` or ``GAUSSOCC_VALUE_CHECKS=0``. They are also
  skipped while ``torch.compile`` traces (a data-dependent ``bool()`` would break the graph).
  Library code that builds tensors from already validated ones does not check them again.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_value_checks = os.environ.get("GAUSSOCC_VALUE_CHECKS", "1").strip().lower() not in (
    "0",
    "false",
    "off",
    "no",
)


def value_checks_enabled() -> bool:
    """True when the value checks of inputs run (the default; see :func:`set_value_checks`).

    They never run while ``torch.compile`` traces a function.

    Example:
        >>> value_checks_enabled()
        True
    """
    return _value_checks and not torch.compiler.is_compiling()


def set_value_checks(enabled: bool) -> None:
    """Switch the value checks of inputs on or off for the whole process.

    The value checks (finite inputs, value ranges, valid quaternions and intrinsics, label ranges,
    ...) read tensor values back to the host: on a GPU each is a device→host synchronisation.
    With ``set_value_checks(False)`` a training step runs without them (the structure checks,
    shapes, dtypes and devices, stay). The environment variable ``GAUSSOCC_VALUE_CHECKS=0`` sets
    the default at import; :func:`value_checks` switches them for a ``with`` block.

    Example:
        >>> set_value_checks(False); value_checks_enabled()
        False
        >>> set_value_checks(True); value_checks_enabled()
        True
    """
    global _value_checks
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    _value_checks = enabled


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager: the value checks of inputs on or off inside the ``with`` block (see
    :func:`set_value_checks`), restored afterwards.

    Example:
        >>> with value_checks(False):
        ...     value_checks_enabled()
        False
    """
    global _value_checks
    before = _value_checks
    set_value_checks(enabled)
    try:
        yield
    finally:
        _value_checks = before


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def check_tensor(
    name: str, value, *, min_dim: int = 0, last: Sequence[int | None] = ()
) -> torch.Tensor:
    """Check that ``value`` is a tensor with at least ``min_dim`` dims whose trailing sizes are
    ``last`` (None matches any size)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    need = max(min_dim, len(last))
    if value.dim() < need:
        raise ValueError(f"{name} must have at least {need} dims, got {describe(value)}")
    if last:
        tail = tuple(value.shape[value.dim() - len(last) :])
        for got, want in zip(tail, last):
            if want is not None and got != want:
                spec = ", ".join("*" if w is None else str(w) for w in last)
                raise ValueError(f"{name} must have shape [..., {spec}], got {describe(value)}")
    return value


def check_float(name: str, t: torch.Tensor) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a floating-point tensor, got {describe(t)}")


def check_float_tensors(**tensors) -> None:
    """Each keyword argument (``name=value``) is a floating-point tensor; the types of all are
    checked before their dtypes."""
    for name, value in tensors.items():
        check_tensor(name, value)
    for name, value in tensors.items():
        check_float(name, value)


def check_finite(name: str, t: torch.Tensor) -> None:
    """A value check: ``t`` holds no NaN or Inf (skipped when value checks are off)."""
    if value_checks_enabled() and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values ({describe(t)})")


def check_same_device(**tensors: torch.Tensor) -> torch.device:
    items = [(k, v) for k, v in tensors.items() if v is not None]
    device = items[0][1].device
    for k, v in items[1:]:
        if v.device != device:
            raise ValueError(
                f"{k} is on {v.device} but {items[0][0]} is on {device}; "
                "all inputs must share a device"
            )
    return device


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (half precision is upcast)."""
    return (
        torch.float64
        if any(t is not None and t.dtype == torch.float64 for t in tensors)
        else torch.float32
    )


def check_int(name: str, value, minimum: int | None = None, *, type_error: bool = True) -> int:
    """``value`` is an int (not a bool) ``>= minimum``. A value of another type is a TypeError,
    or (``type_error=False``, for the functions that have always said so) a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        if not type_error:
            bound = "" if minimum is None else f" >= {minimum}"
            raise ValueError(f"{name} must be an int{bound}, got {value!r}")
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_number(name: str, value, *, minimum: float | None = None, strict: bool = False) -> float:
    """``value`` is a finite real number (not a bool), ``>= minimum`` (``> minimum`` when
    ``strict``); returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value)
    if minimum is not None:
        ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = "" if minimum is None else f" and {'>' if strict else '>='} {minimum}"
        raise ValueError(f"{name} must be finite{bound}, got {value}")
    return value


def check_image_size(name: str, size) -> tuple[int, int]:
    """``size`` is ``(H, W)``, two positive ints, height first."""
    try:
        H, W = size
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (H, W), height first, got {size!r}") from None
    for axis, v in (("H", H), ("W", W)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(
                f"{name} must be two positive ints (H, W), got {size!r} ({axis} = {v!r})"
            )
    return H, W


def as_scalar(name: str, value, like: torch.Tensor) -> torch.Tensor:
    """A Python number or a one-element float tensor as a 0-dim tensor of ``like``'s dtype and
    device (differentiable for a tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got {describe(value)}"
            )
        check_float(name, value)
        if value.device != like.device:
            raise ValueError(f"{name} is on {value.device} but the inputs are on {like.device}")
        return value.reshape(()).to(like.dtype)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float or a tensor, got {type(value).__name__}")
    return torch.tensor(float(value), dtype=like.dtype, device=like.device)


def check_positive(name: str, value: torch.Tensor) -> None:
    """A value check: the one-element tensor ``value`` is ``> 0``."""
    if value_checks_enabled() and not bool(value.detach() > 0):
        raise ValueError(f"{name} must be > 0, got {value.item()}")
