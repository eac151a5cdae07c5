"""Autograd formulas and fake (meta) kernels of the compiled ops, one module per op.

Each module defines a ``register()`` that calls ``torch.library.register_autograd`` (for
differentiable ops, whose backward is itself a compiled ``<op>_backward`` op) and
``torch.library.register_fake`` (shapes and dtypes of the outputs, for ``torch.compile`` and
``torch.library.opcheck``), and hands it to :func:`gaussocc_ops._ext.on_load`: it runs when the
kernels that define ``torch.ops.gaussocc.<op>`` are loaded (on first use), never at import.

The public modules hold none of this; :mod:`gaussocc_ops._dispatch` imports this package.
"""

from gaussocc_ops._autograd import (
    accumulate,
    lift,
    memory,
    radius,
    radius_index,
    raycast,
    snog,
    splat,
)

__all__ = ["accumulate", "lift", "memory", "radius", "radius_index", "raycast", "snog", "splat"]
