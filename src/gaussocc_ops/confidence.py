"""Hybrid geometric x semantic confidence of reused Gaussians (SGR-OCC Eq. 6-8)."""

from __future__ import annotations

import torch

from gaussocc_ops._checks import (
    check_float,
    check_same_device,
    check_tensor,
    compute_dtype,
    describe,
)


def hybrid_confidence(
    d_proj: torch.Tensor,
    d_pred: torch.Tensor,
    logits: torch.Tensor,
    *,
    visible: torch.Tensor | None = None,
    sigma_geo: float = 0.1,
    temperature: float = 0.5,
    tau_min: float = 0.2,
    tau_max: float = 0.8,
) -> torch.Tensor:
    """Confidence ``C = I_old * C_geo * C_sem`` that a reused anchor is still right.

    ``C_geo = exp(-(d_proj - d_pred)^2 / (2 sigma_geo^2))`` compares the anchor's depth in the
    current camera with the depth predicted at its pixel (SGR-OCC Eq. 6);
    ``C_sem = clamp((max softmax(logits / T) - tau_min) / (tau_max - tau_min), 0, 1)`` is the
    temperature-calibrated top-1 probability (Eq. 7); ``I_old`` is ``visible`` (Eq. 8): 1 for a
    reused anchor that can be checked in the current view, 0 for new anchors and for anchors
    outside the view, which are therefore not protected. The update ratio is ``lambda = 1 - C``.

    Args:
        d_proj: ``[...]`` depth of each anchor in the current camera (metres).
        d_pred: ``[...]`` predicted depth at the anchor's pixel (broadcastable to ``d_proj``).
        logits: ``[..., C]`` semantic logits (log-probabilities work too).
        visible: optional ``[...]`` bool ``I_old``; default all True.
        sigma_geo: depth tolerance ``> 0`` (metres).
        temperature: ``T > 0``; ``T < 1`` sharpens the softmax.
        tau_min, tau_max: calibrated-probability range mapped to ``[0, 1]`` (``tau_min < tau_max``).

    Returns:
        ``[...]`` confidence in ``[0, 1]``, float32 (float64 for float64 inputs), differentiable
        with respect to the depths and the logits.

    Example:
        >>> c = hybrid_confidence(torch.tensor([2.0, 2.0]), torch.tensor([2.0, 2.3]),
        ...                       torch.tensor([[4.0, 0.0], [4.0, 0.0]]), sigma_geo=0.1)
        >>> [round(v, 4) for v in c.tolist()]
        [1.0, 0.0111]
    """
    for name, t in (("d_proj", d_proj), ("d_pred", d_pred)):
        check_tensor(name, t)
        check_float(name, t)
    check_tensor("logits", logits, min_dim=1)
    check_float("logits", logits)
    check_same_device(d_proj=d_proj, d_pred=d_pred, logits=logits, visible=visible)
    try:
        shape = torch.broadcast_shapes(d_proj.shape, d_pred.shape)
    except RuntimeError:
        raise ValueError(
            f"d_proj ({describe(d_proj)}) and d_pred ({describe(d_pred)}) do not broadcast"
        ) from None
    if logits.shape[:-1] != shape or logits.shape[-1] < 1:
        raise ValueError(
            f"logits must have shape {tuple(shape) + ('C',)} with C >= 1, got {describe(logits)}"
        )
    if visible is not None:
        check_tensor("visible", visible)
        if visible.dtype != torch.bool or visible.shape != shape:
            raise ValueError(
                f"visible must be a bool tensor of shape {tuple(shape)}, got {describe(visible)}"
            )
    for name, value in (("sigma_geo", sigma_geo), ("temperature", temperature)):
        if not float(value) > 0 or float(value) == float("inf"):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if not float(tau_min) < float(tau_max):
        raise ValueError(f"need tau_min < tau_max, got tau_min={tau_min}, tau_max={tau_max}")

    dtype = compute_dtype(d_proj, d_pred, logits)
    residual = d_proj.to(dtype) - d_pred.to(dtype)
    c_geo = torch.exp(-residual.square() / (2.0 * float(sigma_geo) ** 2))
    top = torch.softmax(logits.to(dtype) / float(temperature), dim=-1).amax(dim=-1)
    c_sem = ((top - tau_min) / (tau_max - tau_min)).clamp(0.0, 1.0)
    confidence = c_geo * c_sem
    if visible is not None:
        confidence = torch.where(visible, confidence, torch.zeros_like(confidence))
    return confidence
