"""Reference model assemblies: small, readable models built from the library's blocks.

* :class:`GPOccLite` — GPOcc (ray samples -> sparse Gaussians -> occupancy, streaming memory).
* :class:`ViPOccDepthBranch` — ViPOcc's depth branch (inverse-depth alignment, SNOG patches,
  temporal alignment and reconstruction consistency).
* :class:`SGROccLifter` — SGR-OCC's soft-gated lifting and ray-constrained refinement.
* :class:`GaussRenderPlugin` — a voxel model trained with or without GaussRender's loss.

Each uses :class:`TinyBackbone` where the papers use a foundation model (VGGT, Depth Anything).
"""

from gaussocc_ops.examples.models.backbone import TinyBackbone
from gaussocc_ops.examples.models.common import sensor_cameras
from gaussocc_ops.examples.models.gpocc import GPOccLite, GPOccOutput
from gaussocc_ops.examples.models.plugin import GaussRenderPlugin, PluginOutput
from gaussocc_ops.examples.models.sgrocc import SGROccLifter, SGROccOutput
from gaussocc_ops.examples.models.vipocc import (
    ViewPair,
    ViPOccDepthBranch,
    ViPOccOutput,
    foundation_prior,
    make_view_pair,
    surface_texture,
)

__all__ = [
    "GPOccLite",
    "GPOccOutput",
    "GaussRenderPlugin",
    "PluginOutput",
    "SGROccLifter",
    "SGROccOutput",
    "TinyBackbone",
    "ViPOccDepthBranch",
    "ViPOccOutput",
    "ViewPair",
    "foundation_prior",
    "make_view_pair",
    "sensor_cameras",
    "surface_texture",
]
