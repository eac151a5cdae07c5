import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go


def make_gaussians(seed, B=3, N=12, C=3, padded=True, zero_fraction=0.3):
    gen = torch.Generator().manual_seed(seed)
    opac = torch.rand(B, N, generator=gen)
    opac = torch.where(
        torch.rand(B, N, generator=gen) < zero_fraction, torch.zeros_like(opac), opac
    )
    opac[:, ::4] = 0.01  # exactly at the default threshold: dropped
    valid = torch.rand(B, N, generator=gen) > 0.2 if padded else None
    return go.Gaussians(
        means=torch.rand(B, N, 3, generator=gen) * 3,
        scales=0.2 + 0.3 * torch.rand(B, N, 3, generator=gen),
        quats=torch.randn(B, N, 4, generator=gen),
        opacities=opac,
        features=torch.rand(B, N, C, generator=gen).softmax(-1),
        valid=valid,
    )


def brute_force_kept(opac, valid, threshold, max_count):
    """Kept indices of one scene by a plain loop."""
    kept = [i for i, a in enumerate(opac) if a > threshold and (valid is None or valid[i])]
    if max_count is not None:
        best = sorted(kept, key=lambda i: (-opac[i], i))[:max_count]
        kept = sorted(best)
    return kept


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    threshold=st.sampled_from([0.0, 0.01, 0.3, 0.9]),
    max_count=st.one_of(st.none(), st.integers(0, 14)),
    padded=st.booleans(),
)
def test_kept_gaussians_match_a_brute_force_loop(seed, threshold, max_count, padded):
    g = make_gaussians(seed, padded=padded)
    out = go.prune_by_opacity(g, threshold=threshold, max_count=max_count)
    kept = [
        brute_force_kept(
            g.opacities[b].tolist(),
            None if g.valid is None else g.valid[b].tolist(),
            threshold,
            max_count,
        )
        for b in range(3)
    ]
    K = max(len(k) for k in kept)
    assert out.indices.shape == (3, K)
    for b, idx in enumerate(kept):
        n = len(idx)
        assert out.indices[b, :n].tolist() == idx
        assert bool((out.indices[b, n:] == -1).all())
        assert out.gaussians.valid[b].tolist() == [True] * n + [False] * (K - n)
        for name in ("means", "scales", "quats", "opacities", "features"):
            assert torch.equal(getattr(out.gaussians, name)[b, :n], getattr(g, name)[b, idx])
        assert bool((out.gaussians.opacities[b, n:] == 0).all())
        assert bool((out.gaussians.scales[b, n:] == 1).all())


def test_threshold_zero_changes_nothing():
    g = make_gaussians(1, padded=False, zero_fraction=0.0)
    out = go.prune_by_opacity(g, threshold=0.0)
    assert out.indices.tolist() == [list(range(12))] * 3
    assert bool(out.gaussians.valid.all())
    for name in ("means", "scales", "quats", "opacities", "features"):
        assert torch.equal(getattr(out.gaussians, name), getattr(g, name))


def test_threshold_zero_keeps_the_occupancy():
    g = make_gaussians(2, zero_fraction=0.4)
    grid = go.VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=0.4, shape=(8, 8, 5))
    before = go.gaussians_to_occupancy(g, grid, backend="cpu")
    pruned = go.prune_by_opacity(g, threshold=0.0)
    assert pruned.gaussians.num_gaussians < g.num_gaussians
    after = go.gaussians_to_occupancy(pruned.gaussians, grid, backend="cpu")
    torch.testing.assert_close(after.occupancy, before.occupancy)
    torch.testing.assert_close(after.probs, before.probs)


def test_gradients_reach_only_the_kept_gaussians():
    g = make_gaussians(3)
    opac = g.opacities.clone().requires_grad_()
    feats = g.features.clone().requires_grad_()
    g = go.Gaussians(g.means, g.scales, g.quats, opac, feats, g.valid)
    out = go.prune_by_opacity(g)
    (out.gaussians.opacities.sum() + out.gaussians.features.sum()).backward()
    kept = torch.zeros_like(opac, dtype=torch.bool)
    for b in range(3):
        idx = out.indices[b][out.indices[b] >= 0]
        kept[b, idx] = True
    assert torch.equal(opac.grad, kept.float())
    assert torch.equal(feats.grad, kept.float()[..., None].expand_as(feats))


def test_leading_batch_dims_empty_and_no_batch_dims():
    g = make_gaussians(4, B=6)
    nested = go.Gaussians(
        *(
            t.reshape(2, 3, *t.shape[1:])
            for t in (g.means, g.scales, g.quats, g.opacities, g.features, g.valid)
        )
    )
    flat, out = go.prune_by_opacity(g, 0.2), go.prune_by_opacity(nested, 0.2)
    assert torch.equal(out.indices.reshape(flat.indices.shape), flat.indices)
    single = go.prune_by_opacity(g[2], 0.2)
    n = int(flat.gaussians.valid[2].sum())
    assert torch.equal(single.indices, flat.indices[2, :n])
    empty = go.prune_by_opacity(make_gaussians(5, N=0))
    assert empty.indices.shape == (3, 0) and empty.gaussians.num_gaussians == 0
    assert go.prune_by_opacity(g, 1.0).indices.shape == (6, 0)


def test_bad_arguments():
    g = make_gaussians(0)
    with pytest.raises(TypeError, match="gaussians"):
        go.prune_by_opacity(g.opacities)
    with pytest.raises(ValueError, match="threshold"):
        go.prune_by_opacity(g, threshold=-0.1)
    with pytest.raises(TypeError, match="threshold"):
        go.prune_by_opacity(g, threshold="0.1")
    with pytest.raises(ValueError, match="max_count"):
        go.prune_by_opacity(g, max_count=-1)
