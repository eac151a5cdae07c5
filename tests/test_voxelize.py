import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops import cameras as camlib

pytestmark = pytest.mark.filterwarnings("ignore:gaussocc_ops. no compiled kernel")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The reference splatting is many small ops: one thread is faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GRID = go.VoxelGrid((-1.0, -2.0, 0.5), (0.5, 0.4, 0.3), (3, 2, 2))


def brute_force(logits, grid, empty_class, colors):
    """One Gaussian per voxel by explicit loops: (centre, colour, opacity) in x-major order."""
    B, C = logits.shape[:2]
    out = []
    for b in range(B):
        rows = []
        for i, j, k in itertools.product(*(range(n) for n in grid.shape)):
            centre = [
                o + (idx + 0.5) * s
                for o, idx, s in zip(grid.origin, (i, j, k), grid.voxel_size, strict=True)
            ]
            z = logits[b, :, i, j, k].double()
            p = torch.exp(z - z.max())
            p = p / p.sum()
            opacity = 1 - p[empty_class]
            if colors == "occupied":
                p = p.clone()
                p[empty_class] = 0
                p = p / p.sum()
            rows.append((torch.tensor(centre), p, opacity))
        out.append(rows)
    return out


@pytest.mark.parametrize("colors", ["occupied", "all"])
def test_voxels_to_gaussians_matches_brute_force(colors):
    logits = torch.randn(2, 4, *GRID.shape, generator=torch.Generator().manual_seed(0))
    g = go.voxels_to_gaussians(logits, GRID, empty_class=1, colors=colors, min_opacity=0)
    assert g.valid is None and g.num_gaussians == GRID.num_voxels
    for b, rows in enumerate(brute_force(logits, GRID, 1, colors)):
        for n, (centre, p, opacity) in enumerate(rows):
            torch.testing.assert_close(g.means[b, n], centre.float())
            torch.testing.assert_close(g.features[b, n].double(), p, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(g.opacities[b, n].double(), opacity, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g.scales[0, 0], torch.tensor([0.25, 0.2, 0.15]))
    assert torch.equal(g.quats[1, 3], torch.tensor([1.0, 0, 0, 0]))


@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), seed=st.integers(0, 2**16), density=st.floats(0.0, 1.0))
def test_ragged_masks_keep_exactly_the_masked_voxels(B, seed, density):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, 3, *GRID.shape, generator=gen)
    mask = torch.rand(B, *GRID.shape, generator=gen) < density
    opacity = torch.rand(B, *GRID.shape, generator=gen)
    g = go.voxels_to_gaussians(
        logits, GRID, empty_class=0, opacity=opacity, valid_mask=mask, min_opacity=0
    )
    dense = go.voxels_to_gaussians(logits, GRID, empty_class=0, opacity=opacity, min_opacity=0)
    counts = mask.reshape(B, -1).sum(1)
    assert g.num_gaussians == int(counts.max())
    for b in range(B):
        kept = mask[b].reshape(-1)
        n = int(counts[b])
        assert g.valid[b, :n].all() and not g.valid[b, n:].any()
        torch.testing.assert_close(g.means[b, :n], dense.means[b, kept])
        torch.testing.assert_close(g.features[b, :n], dense.features[b, kept])
        torch.testing.assert_close(g.opacities[b, :n], dense.opacities[b, kept])
        assert float(g.effective_opacities()[b, n:].abs().sum()) == 0.0


def test_opacity_pruning_is_lossless_for_renders_and_gradients():
    gen = torch.Generator().manual_seed(1)
    grid = go.VoxelGrid((-1.0, -1.0, 0.0), 0.5, (4, 4, 2))
    logits = torch.randn(1, 3, 4, 4, 2, generator=gen) * 4
    logits[:, 2, :2] += 9.0  # half of the voxels almost surely empty: opacity < 1/255
    cam = go.Cameras(
        camlib.look_at(torch.tensor([[0.2, -2.5, 2.5]]), torch.tensor([[0.0, 0, 0]])),
        camlib.pinhole_intrinsics(90.0, height=12, width=16)[None],
        width=16,
        height=12,
    )
    renders, grads = [], []
    for min_opacity in (0.0, 1.0 / 255.0):
        x = logits.clone().requires_grad_()
        g = go.voxels_to_gaussians(x, grid, empty_class=2, min_opacity=min_opacity)
        out = go.splat(g, cam)
        (out.features.sum() + out.depth.sum()).backward()
        renders.append(out)
        grads.append(x.grad)
    assert renders[1].features.shape[-3:] == renders[0].features.shape[-3:]
    pruned = go.voxels_to_gaussians(logits, grid, empty_class=2)
    assert pruned.num_gaussians < 32  # something was actually dropped
    for a, b in zip(renders[0], renders[1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-7)


def test_labels_to_gaussians_occupied_only_one_hot_opacity_one():
    labels = torch.full((3, *GRID.shape), 2)
    labels[0, 0, 0, 0] = 0
    labels[0, 2, 1, 1] = 1
    labels[0, 1, 1, 0] = 255
    labels[1, :, :, 0] = 3
    # sample 2 has no occupied voxel
    g = go.labels_to_gaussians(labels, GRID, num_classes=4, empty_class=2)
    assert g.num_gaussians == 6
    assert g.valid.sum(1).tolist() == [2, 6, 0]
    torch.testing.assert_close(g.features[0, :2], torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    torch.testing.assert_close(g.means[0, 1], GRID.centers()[2, 1, 1])
    assert torch.equal(g.opacities[g.valid], torch.ones(8))
    assert (g.features[1, :6].argmax(-1) == 3).all()
    empty = go.labels_to_gaussians(labels[2:], GRID, num_classes=4, empty_class=2)
    assert empty.num_gaussians == 0
    bev = camlib.bev(GRID, 6)
    out = go.splat(empty, bev)
    assert float(out.alpha.abs().sum()) == 0.0


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_fixed_size_gaussians_render_as_the_compacted_ones(backend):
    """compact=False: one Gaussian per voxel, the dropped ones invalid; the kept entries are the
    compacted ones in the same order, and both render the same images and gradients."""
    gen = torch.Generator().manual_seed(3)
    grid = go.VoxelGrid((-1.0, -1.0, 0.0), 0.5, (4, 4, 2))
    B, C, M = 2, 3, 32
    logits = torch.randn(B, C, *grid.shape, generator=gen) * 4
    logits[:, 2, :2] += 9.0  # opacity < 1/255 in half of the voxels: dropped too
    mask = torch.rand(B, *grid.shape, generator=gen) < 0.7
    labels = torch.randint(0, C, (B, *grid.shape), generator=gen)
    labels[0, 0, 0, 0] = 255
    cam = go.Cameras(
        camlib.look_at(torch.tensor([[0.2, -2.5, 2.5]]), torch.tensor([[0.0, 0, 0]])),
        camlib.pinhole_intrinsics(90.0, height=12, width=16)[None],
        height=12,
        width=16,
    )
    renders, grads, gaussians = {}, {}, {}
    for compact in (True, False):
        x = logits.clone().requires_grad_()
        pred = go.voxels_to_gaussians(x, grid, empty_class=2, valid_mask=mask, compact=compact)
        gt = go.labels_to_gaussians(
            labels, grid, num_classes=C, empty_class=2, valid_mask=mask, compact=compact
        )
        out = go.splat(pred, cam, backend=backend)
        (out.features.sum() + out.depth.sum()).backward()
        renders[compact] = (*out, *go.splat(gt, cam, backend=backend))
        grads[compact] = x.grad
        gaussians[compact] = (pred, gt)
    for packed, full in zip(gaussians[True], gaussians[False], strict=True):
        assert full.num_gaussians == M and packed.num_gaussians < M
        for b in range(B):
            kept, n = full.valid[b], int(packed.valid[b].sum())
            assert packed.valid[b, :n].all()
            for name in ("means", "scales", "quats", "opacities", "features"):
                assert torch.equal(getattr(packed, name)[b, :n], getattr(full, name)[b, kept])
    # the kernels bit for bit; the reference composites every pixel against all N Gaussians
    # with vectorised sums (culled ones add zeros) whose rounding depends on N
    exact = backend == "auto"
    tol = {"rtol": 0, "atol": 0} if exact else {"rtol": 1e-6, "atol": 1e-6}
    for a, b in zip(renders[True], renders[False], strict=True):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(grads[True], grads[False], **tol)


def test_scale_options():
    labels = torch.zeros(1, *GRID.shape, dtype=torch.long)
    for scale, expected in (
        (None, [0.25, 0.2, 0.15]),
        (0.1, [0.1] * 3),
        ((0.3, 0.2, 0.1), [0.3, 0.2, 0.1]),
    ):
        g = go.labels_to_gaussians(labels, GRID, num_classes=2, empty_class=1, scale=scale)
        torch.testing.assert_close(g.scales[0, 5], torch.tensor(expected))
    with pytest.raises(ValueError, match="scale"):
        go.labels_to_gaussians(labels, GRID, num_classes=2, empty_class=1, scale=-1.0)


def test_dtypes_and_gradients():
    logits = torch.randn(1, 3, *GRID.shape, dtype=torch.float16)
    g = go.voxels_to_gaussians(logits, GRID, empty_class=0, min_opacity=0)
    assert g.features.dtype == torch.float32 and g.means.dtype == torch.float32
    x = torch.randn(2, 3, *GRID.shape, dtype=torch.float64, requires_grad=True)
    o = torch.rand(2, *GRID.shape, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(2, *GRID.shape) < 0.6

    def fn(x, o):
        g = go.voxels_to_gaussians(
            x, GRID, empty_class=0, opacity=o, valid_mask=mask, min_opacity=0
        )
        return g.features, g.opacities

    assert torch.autograd.gradcheck(fn, (x, o), fast_mode=True)


def test_bad_inputs_name_the_argument():
    logits = torch.randn(1, 3, *GRID.shape)
    with pytest.raises(ValueError, match="grid.shape"):
        go.voxels_to_gaussians(logits[..., :1], GRID, empty_class=0)
    with pytest.raises(ValueError, match="empty_class"):
        go.voxels_to_gaussians(logits, GRID, empty_class=3)
    with pytest.raises(ValueError, match="opacity"):
        go.voxels_to_gaussians(logits, GRID, empty_class=0, opacity=torch.rand(1, 2, 2, 2))
    with pytest.raises(ValueError, match="valid_mask"):
        go.voxels_to_gaussians(logits, GRID, empty_class=0, valid_mask=torch.ones(1, *GRID.shape))
    with pytest.raises(ValueError, match="colors"):
        go.voxels_to_gaussians(logits, GRID, empty_class=0, colors="rgb")
    with pytest.raises(TypeError, match="logits"):
        go.voxels_to_gaussians(logits.long(), GRID, empty_class=0)
    labels = torch.zeros(1, *GRID.shape, dtype=torch.long)
    labels[0, 0, 0, 0] = 7
    with pytest.raises(ValueError, match="found 7"):
        go.labels_to_gaussians(labels, GRID, num_classes=3, empty_class=0)
    with pytest.raises(TypeError, match="labels"):
        go.labels_to_gaussians(labels.float(), GRID, num_classes=3, empty_class=0)
