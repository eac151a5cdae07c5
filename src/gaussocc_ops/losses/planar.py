"""Semantic-adaptive planar regularisation (SGR-OCC App. D, "semantic-adaptive GRM")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gaussocc_ops._checks import check_float, check_tensor, compute_dtype, describe
from gaussocc_ops.losses._common import Reduction, check_reduction, reduce_weighted


def planar_regularization_loss(
    points: torch.Tensor,
    neighbors: torch.Tensor,
    normals: torch.Tensor,
    *,
    kappa: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    class_weights: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    reduction: Reduction = "sum",
) -> torch.Tensor:
    """``L_grm = sum_p kappa_p sum_k (n_p . (P_p - P_adj,k))^2`` (SGR-OCC App. D).

    Penalises the offset of each point ``P_p`` from the plane through its neighbours
    ``P_adj`` with normal ``n_p`` (normalised here). ``kappa_p`` is either given per point, or
    looked up per class as ``class_weights[labels_p]`` (strong, ~1, for structural classes such
    as wall/floor; small for objects), or 1.

    Args:
        points: ``[..., N, 3]``.
        neighbors: ``[..., N, 3]`` (one neighbour) or ``[..., N, K, 3]``.
        normals: ``[..., N, 3]`` non-zero plane normals.
        kappa: optional ``[..., N]`` per-point weights.
        labels: optional ``[..., N]`` int classes (with ``class_weights [C]``); excludes ``kappa``.
        valid: optional ``[..., N]`` bool; invalid points contribute nothing.
        reduction: ``"sum"`` (the paper's), ``"mean"`` (over valid points, 0 if none) or
            ``"none"`` (``[..., N]``).

    Example:
        >>> P, adj = torch.tensor([[0., 0., 1.]]), torch.zeros(1, 3)
        >>> n = torch.tensor([[0., 0., 2.]])
        >>> float(planar_regularization_loss(P, adj, n))
        1.0
    """
    check_reduction(reduction)
    check_tensor("points", points, min_dim=2, last=(3,))
    check_tensor("normals", normals, min_dim=2, last=(3,))
    check_tensor("neighbors", neighbors, min_dim=2, last=(3,))
    for name, t in (("points", points), ("normals", normals), ("neighbors", neighbors)):
        check_float(name, t)
        if t.device != points.device:
            raise ValueError(f"{name} is on {t.device} but points is on {points.device}")
    if normals.shape != points.shape:
        raise ValueError(
            f"normals must have the shape of points {tuple(points.shape)}, got {describe(normals)}"
        )
    if neighbors.shape == points.shape:
        neighbors = neighbors.unsqueeze(-2)
    elif neighbors.shape[:-2] != points.shape[:-1]:
        raise ValueError(
            f"neighbors must be {tuple(points.shape)} or {tuple(points.shape[:-1]) + ('K', 3)}, "
            f"got {describe(neighbors)}"
        )
    dtype = compute_dtype(points, neighbors, normals)
    p, q, n = points.to(dtype), neighbors.to(dtype), normals.to(dtype)
    n = F.normalize(n, dim=-1, eps=torch.finfo(dtype).tiny)
    offsets = torch.einsum("...d,...kd->...k", n, p.unsqueeze(-2) - q)
    per_point = (offsets**2).sum(-1)

    point_shape = points.shape[:-1]
    if kappa is not None and labels is not None:
        raise ValueError("give either kappa or labels + class_weights, not both")
    if kappa is not None:
        check_tensor("kappa", kappa)
        if kappa.shape != point_shape:
            raise ValueError(f"kappa must have shape {tuple(point_shape)}, got {describe(kappa)}")
        per_point = per_point * kappa.to(dtype)
    elif labels is not None or class_weights is not None:
        if labels is None or class_weights is None:
            raise ValueError("labels and class_weights must be given together")
        check_tensor("labels", labels)
        check_tensor("class_weights", class_weights, min_dim=1)
        if labels.shape != point_shape or labels.dtype.is_floating_point:
            raise ValueError(
                f"labels must be integer with shape {tuple(point_shape)}, got {describe(labels)}"
            )
        per_point = per_point * class_weights.to(dtype)[labels.long()]
    weights = torch.ones_like(per_point)
    if valid is not None:
        check_tensor("valid", valid)
        if valid.shape != point_shape or valid.dtype != torch.bool:
            raise ValueError(
                f"valid must be bool with shape {tuple(point_shape)}, got {describe(valid)}"
            )
        weights = valid.to(dtype)
        per_point = torch.where(valid, per_point, torch.zeros_like(per_point))
    return reduce_weighted(per_point, weights, reduction)


class PlanarRegularizationLoss(nn.Module):
    """Module form of :func:`planar_regularization_loss` with fixed per-class weights
    (a float32 buffer: it follows ``.to(device)``).

    Shape:
        - points, normals: ``[..., N, 3]``; neighbors: ``[..., N, 3]`` or ``[..., N, K, 3]``;
          labels, valid: ``[..., N]``.
        - output: scalar, or ``[..., N]`` with ``reduction="none"``.

    Example:
        >>> loss_fn = PlanarRegularizationLoss(torch.tensor([1.0, 1.0, 0.1]))  # wall, floor, chair
        >>> loss_fn
        PlanarRegularizationLoss(num_classes=3, reduction='sum')
    """

    class_weights: torch.Tensor

    def __init__(self, class_weights: torch.Tensor, reduction: Reduction = "sum") -> None:
        super().__init__()
        check_reduction(reduction)
        weights = torch.as_tensor(class_weights)
        if weights.dim() != 1 or weights.numel() == 0:
            raise ValueError(
                f"class_weights must be a non-empty [C] vector, got {describe(weights)}"
            )
        if weights.is_complex() or weights.dtype == torch.bool:
            raise TypeError(f"class_weights must be real numbers, got {describe(weights)}")
        self.register_buffer("class_weights", weights.detach().to(torch.float32).clone())
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"num_classes={self.class_weights.numel()}, reduction={self.reduction!r}"

    def forward(
        self,
        points: torch.Tensor,
        neighbors: torch.Tensor,
        normals: torch.Tensor,
        labels: torch.Tensor,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return planar_regularization_loss(
            points,
            neighbors,
            normals,
            labels=labels,
            class_weights=self.class_weights,
            valid=valid,
            reduction=self.reduction,
        )
