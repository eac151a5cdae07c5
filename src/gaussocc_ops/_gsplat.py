"""``backend="gsplat"``: our conventions mapped onto gsplat's ``rasterization`` (CUDA only).

gsplat composites with the same rules as our kernels (alpha clamp 0.999, skip below 1/255,
stop at T <= 1e-4, opacity-aware pixel boxes, the same FOV clamp of the EWA Jacobian), so its
images agree with ours to float32 rounding. Depth comes from its "RGB+D" mode (accumulated z);
the background is added by the caller, as for our kernels.
"""

from __future__ import annotations

EXTRA_HINT = "pip install 'gaussocc-ops[gsplat]'"


def _rasterization():
    """gsplat's ``rasterization``, imported on the first ``backend="gsplat"`` call only."""
    try:
        from gsplat import rasterization
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != "gsplat":
            raise
        raise ImportError(
            "backend='gsplat' needs the optional dependency gsplat, which is not installed: "
            f"{EXTRA_HINT}"
        ) from exc
    except Exception as exc:  # installed, but its CUDA code failed to compile or load
        raise RuntimeError(
            "backend='gsplat': gsplat is installed but failed to import (it compiles its CUDA "
            f"code on first use): {type(exc).__name__}: {exc}"
        ) from exc
    return rasterization


def splat(
    means, quats, scales, opacities, features, viewmats, Ks, width, height, near, far, eps2d, ortho
):
    """Flattened inputs as in ``reference.splat.splat``; returns (features, depth, alpha)."""
    rasterization = _rasterization()
    C = features.shape[-1]
    dtype = means.dtype
    args = [t.float() for t in (means, quats, scales, opacities, features, viewmats, Ks)]
    try:
        colors, alphas, _ = rasterization(
            *args,
            width=width,
            height=height,
            near_plane=near,
            far_plane=far,
            eps2d=eps2d,
            packed=False,
            tile_size=16,
            render_mode="RGB+D",
            rasterize_mode="classic",
            camera_model="ortho" if ortho else "pinhole",
        )
    except Exception as exc:
        raise RuntimeError(f"gsplat's rasterization failed: {type(exc).__name__}: {exc}") from exc
    colors = colors.to(dtype)
    return colors[..., :C], colors[..., C], alphas[..., 0].to(dtype)
