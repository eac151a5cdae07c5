"""The shared geometry helpers: quaternions, rotations, covariances."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gaussocc_ops.geometry import (
    covariance,
    decompose_covariance,
    quat_multiply,
    quat_to_rotmat,
    rotmat_to_quat,
)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_rotmat_to_quat_inverts_quat_to_rotmat(seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(16, 4, generator=g, dtype=torch.float64), dim=-1)
    q[0] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # 180 degrees: w = 0
    back = rotmat_to_quat(quat_to_rotmat(q))
    sign = torch.where(q[:, :1] < 0, -1.0, 1.0).to(q)
    assert torch.allclose(back, q * sign, atol=1e-9) or torch.allclose(
        quat_to_rotmat(back), quat_to_rotmat(q), atol=1e-9
    )
    assert (back[:, 0] >= 0).all()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_decompose_covariance_round_trip(seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(8, 3, 3, generator=g, dtype=torch.float64)
    cov = A @ A.transpose(-1, -2) + 1e-3 * torch.eye(3, dtype=torch.float64)
    scales, quats = decompose_covariance(cov)
    torch.testing.assert_close(covariance(scales, quats), cov)
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(8, dtype=torch.float64))


def test_quat_to_rotmat_is_a_rotation_and_ignores_the_norm():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(32, 4, generator=g, dtype=torch.float64)
    R = quat_to_rotmat(q)
    eye = torch.eye(3, dtype=torch.float64).expand(32, 3, 3)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(32, dtype=torch.float64))
    torch.testing.assert_close(quat_to_rotmat(3.5 * q), R)
    torch.testing.assert_close(quat_to_rotmat(-q), R)
    # rotating a vector v equals q (0, v) q* (Hamilton product)
    v = torch.randn(32, 3, generator=g, dtype=torch.float64)
    qn = torch.nn.functional.normalize(q, dim=-1)
    conj = qn * torch.tensor([1.0, -1, -1, -1], dtype=torch.float64)
    pure = torch.cat([torch.zeros(32, 1, dtype=torch.float64), v], -1)
    rotated = quat_multiply(quat_multiply(qn, pure), conj)
    torch.testing.assert_close(rotated[:, 1:], (R @ v[..., None])[..., 0])
    torch.testing.assert_close(rotated[:, 0], torch.zeros(32, dtype=torch.float64))


@pytest.mark.parametrize("seed", [1, 2])
def test_quat_multiply_composes_rotations(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(16, 4, generator=g, dtype=torch.float64), dim=-1)
    b = torch.nn.functional.normalize(torch.randn(16, 4, generator=g, dtype=torch.float64), dim=-1)
    torch.testing.assert_close(
        quat_to_rotmat(quat_multiply(a, b)), quat_to_rotmat(a) @ quat_to_rotmat(b)
    )


def test_covariance_is_r_s2_rt():
    R = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)  # 90 deg about z
    q = torch.tensor([2**-0.5, 0, 0, 2**-0.5], dtype=torch.float64)
    s = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(covariance(s, q), R @ torch.diag(s**2) @ R.T)
    torch.testing.assert_close(covariance(s, q), torch.diag(torch.tensor([4.0, 1, 9]).double()))
