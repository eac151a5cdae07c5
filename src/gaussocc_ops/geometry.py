"""Quaternions, rotations and covariances: the geometry shared by the library, the reference
oracles and the tests.

Quaternions are ``(w, x, y, z)`` (Hamilton convention, scalar first); rotation matrices act on
column vectors; a Gaussian's covariance is ``Sigma = R diag(s^2) R^T`` with ``R`` the rotation of
its quaternion and ``s`` its scales.
"""

from __future__ import annotations

import torch

__all__ = [
    "covariance",
    "decompose_covariance",
    "quat_multiply",
    "quat_to_rotmat",
    "rigid_inverse",
    "rotmat_to_quat",
    "viewmat_centers",
]


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` quaternions ``(w, x, y, z)`` (any norm > 0) → ``[..., 3, 3]`` rotations.

    Example:
        >>> quat_to_rotmat(torch.tensor([0.0, 0.0, 0.0, 2.0])).tolist()  # 180 degrees about z
        [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*quats.shape[:-1], 3, 3)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a b`` of ``[..., 4]`` quaternions ``(w, x, y, z)`` (broadcasting).

    ``quat_to_rotmat(quat_multiply(a, b)) == quat_to_rotmat(a) @ quat_to_rotmat(b)`` for unit
    quaternions.

    Example:
        >>> i, j = torch.tensor([0.0, 1, 0, 0]), torch.tensor([0.0, 0, 1, 0])
        >>> quat_multiply(i, j).tolist()  # i j = k
        [0.0, 0.0, 0.0, 1.0]
    """
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotmat_to_quat(R: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` rotations → unit quaternions ``(w, x, y, z)`` with ``w >= 0``.

    Each rotation uses the largest of ``|w|, |x|, |y|, |z|`` as pivot (Shepperd's method), so
    the division is always by at least 1/2.

    Example:
        >>> R = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])  # 90 degrees about z
        >>> [round(v, 4) for v in rotmat_to_quat(R).tolist()]
        [0.7071, 0.0, 0.0, 0.7071]
    """
    m = R.unbind(-1)
    m00, m10, m20 = m[0].unbind(-1)
    m01, m11, m21 = m[1].unbind(-1)
    m02, m12, m22 = m[2].unbind(-1)
    squares = torch.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1
    )
    pivot = squares.argmax(-1, keepdim=True)
    root = squares.gather(-1, pivot).clamp_min(1e-12).sqrt().squeeze(-1)  # 2 |pivot component|
    candidates = torch.stack(
        [
            torch.stack([root * root, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, root * root, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, root * root, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, root * root], -1),
        ],
        -2,
    )
    q = candidates.gather(-2, pivot[..., None].expand(*pivot.shape[:-1], 1, 4)).squeeze(-2)
    q = q / (2 * root[..., None])
    q = torch.nn.functional.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def covariance(scales: torch.Tensor, quats: torch.Tensor) -> torch.Tensor:
    """``Sigma = R diag(s^2) R^T`` of ``[..., 3]`` scales and ``[..., 4]`` quaternions →
    ``[..., 3, 3]``.

    Example:
        >>> covariance(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0, 0, 0])).diagonal()
        tensor([1., 4., 9.])
    """
    M = quat_to_rotmat(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def decompose_covariance(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales ``[..., 3]`` (ascending) and unit quaternions ``[..., 4]`` (``w >= 0``) with
    ``covariance(scales, quats) == cov`` for symmetric positive semi-definite ``[..., 3, 3]``
    ``cov`` (eigen-decomposition).

    Example:
        >>> s, q = decompose_covariance(torch.diag(torch.tensor([9.0, 1.0, 4.0])))
        >>> s.tolist()
        [1.0, 2.0, 3.0]
    """
    evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
    det = torch.linalg.det(evecs)
    evecs = torch.cat([evecs[..., :2], evecs[..., 2:] * torch.sign(det)[..., None, None]], -1)
    return evals.clamp_min(0).sqrt(), rotmat_to_quat(evecs)


def rigid_inverse(T: torch.Tensor) -> torch.Tensor:
    """The exact inverse ``[R^T, -R^T t; 0 0 0 1]`` of rigid transforms ``T = [R t; 0 0 0 1]``
    ``[..., 4, 4]`` (camera-to-world <-> world-to-camera); the last row of ``T`` is not read.

    Example:
        >>> T = torch.eye(4); T[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
        >>> rigid_inverse(T)[:3, 3].tolist()
        [-1.0, -2.0, -3.0]
    """
    R, t = T[..., :3, :3], T[..., :3, 3:]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -(Rt @ t)], dim=-1)
    bottom = torch.zeros_like(T[..., 3:, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


def viewmat_centers(viewmats: torch.Tensor) -> torch.Tensor:
    """Camera positions ``[..., 3]`` in the world frame of world-to-camera transforms
    ``[..., 4, 4]``: ``-R^T t``.

    Example:
        >>> vm = torch.eye(4); vm[:3, 3] = torch.tensor([1.0, 2.0, 3.0])
        >>> viewmat_centers(vm).tolist()
        [-1.0, -2.0, -3.0]
    """
    R, t = viewmats[..., :3, :3], viewmats[..., :3, 3:]
    return -(R.transpose(-1, -2) @ t).squeeze(-1)
