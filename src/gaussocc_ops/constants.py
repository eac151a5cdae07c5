"""Numeric constants shared by the library, the reference oracles and the tests.

The compiled kernels hold the same splatting values (``csrc/include/gaussocc/splat_math.h``);
tests check that the kernels and the oracles agree where these constants act.

Splatting (the conventions of 3DGS / gsplat, see ``docs/splatting.md``):

* :data:`ALPHA_THRESHOLD`: a Gaussian whose alpha at a pixel is below ``1/255`` skips the pixel.
* :data:`ALPHA_MAX`: alpha is clamped to ``0.999``.
* :data:`TRANSMITTANCE_MIN`: compositing stops before the transmittance would drop to ``<= 1e-4``.
* :data:`FOV_CLAMP`: the projection Jacobian uses ``x/z`` clamped to the image half-width plus
  30 % of ``tan(fov / 2)`` (likewise ``y/z``).
* :data:`TILE_SIZE`: the rasterizer's tile edge in pixels, the one value every backend accepts.

Radius index:

* :data:`MAX_RADIUS_IN_CELLS`: a query of :class:`~gaussocc_ops.radius_index.RadiusIndex` (and
  so the fusion radius of :class:`~gaussocc_ops.GaussianMemory`) may reach at most this many
  cells, ``radius <= 31 * cell_size``, so that it visits at most ``64^3`` cells.
"""

from __future__ import annotations

ALPHA_THRESHOLD = 1.0 / 255.0
ALPHA_MAX = 0.999
TRANSMITTANCE_MIN = 1e-4
FOV_CLAMP = 0.3
TILE_SIZE = 16
MAX_RADIUS_IN_CELLS = 31.0

__all__ = [
    "ALPHA_MAX",
    "ALPHA_THRESHOLD",
    "FOV_CLAMP",
    "MAX_RADIUS_IN_CELLS",
    "TILE_SIZE",
    "TRANSMITTANCE_MIN",
]
