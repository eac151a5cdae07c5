"""Pure-PyTorch reference of the GaussianMemory fusion step (op ``memory_fuse``)."""

from __future__ import annotations

import torch

from gaussocc_ops.geometry import covariance, decompose_covariance


def memory_fuse(
    means: torch.Tensor,
    scales: torch.Tensor,
    quats: torch.Tensor,
    opacities: torch.Tensor,
    features: torch.Tensor,
    confidence: torch.Tensor,
    observations: torch.Tensor,
    last_seen: torch.Tensor,
    tags: torch.Tensor,
    new_means: torch.Tensor,
    new_scales: torch.Tensor,
    new_quats: torch.Tensor,
    new_opacities: torch.Tensor,
    new_features: torch.Tensor,
    new_confidence: torch.Tensor,
    new_tags: torch.Tensor,
    targets: torch.Tensor,
    offsets: torch.Tensor,
    pair_new: torch.Tensor,
    coef: torch.Tensor,
    gamma: float,
    frame: int,
) -> None:
    """In-place fusion of the frame rows ``pair_new[offsets[t]:offsets[t+1]]`` into memory row
    ``targets[t]`` (the signature and layout of ``torch.ops.gaussocc.memory_fuse``).

    ``p = new_confidence``; GPOcc (empty ``coef``):
    ``theta <- (gamma p_i theta_i + (1 - gamma) sum_j p_j theta_j) / (gamma p_i + (1 - gamma)
    sum_j p_j)``; SGR-OCC (``coef = C [T]``): ``theta <- C theta_i + (1 - C) sum_j p_j theta_j /
    sum_j p_j``; for the mean, the covariance ``R diag(s^2) R^T`` (re-decomposed with
    ``torch.linalg.eigh``), the opacity, the features and the confidence. Matched rows get
    ``observations + 1``, ``last_seen = frame`` and ``tags |= any(new_tags[j])``.
    """
    T = targets.numel()
    if T == 0:
        return
    dtype, device = means.dtype, means.device
    inverse = torch.repeat_interleave(torch.arange(T, device=device), offsets[1:] - offsets[:-1])
    w = new_confidence[pair_new]
    weight = torch.zeros(T, dtype=dtype, device=device).index_add_(0, inverse, w)

    def new_sum(value):  # sum_j p_j theta_j over J(i), one row per target, in pair order
        flat = value[pair_new].reshape(len(pair_new), -1)
        out = torch.zeros(T, flat.shape[1], dtype=dtype, device=device)
        return out.index_add_(0, inverse, w[:, None] * flat).reshape(T, *value.shape[1:])

    old = {
        "means": means[targets],
        "cov": covariance(scales[targets], quats[targets]),
        "opacities": opacities[targets],
        "features": features[targets],
        "confidence": confidence[targets],
    }
    sums = {
        "means": new_sum(new_means),
        "cov": new_sum(covariance(new_scales, new_quats)),
        "opacities": new_sum(new_opacities),
        "features": new_sum(new_features),
        "confidence": new_sum(new_confidence),
    }
    if coef.numel() == 0:
        w_old = gamma * old["confidence"]
        norm = w_old + (1 - gamma) * weight
        fused = {
            k: (_rows(w_old, v) * v + (1 - gamma) * sums[k]) / _rows(norm, v)
            for k, v in old.items()
        }
    else:
        fused = {
            k: _rows(coef, v) * v + _rows(1 - coef, v) * sums[k] / _rows(weight, v)
            for k, v in old.items()
        }
    fused["scales"], fused["quats"] = decompose_covariance(fused.pop("cov"))
    for name, buffer in (
        ("means", means),
        ("scales", scales),
        ("quats", quats),
        ("opacities", opacities),
        ("features", features),
        ("confidence", confidence),
    ):
        buffer.index_copy_(0, targets, fused[name])
    observations.index_add_(0, targets, torch.ones_like(targets))
    last_seen.index_fill_(0, targets, frame)
    seen_tag = torch.zeros(T, dtype=torch.long, device=device).index_add_(
        0, inverse, new_tags[pair_new].long()
    )
    tags.index_copy_(0, targets, tags[targets] | (seen_tag > 0))


def _rows(per_row: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``[T]`` values shaped to multiply the rows of ``like [T, ...]``."""
    return per_row.reshape(-1, *([1] * (like.dim() - 1)))
