import math
import os

import pytest
import torch
from conftest import requires_cuda

import gaussocc_ops as go
from gaussocc_ops import cameras as camlib
from gaussocc_ops.gaussrender import GaussRenderLoss

pytestmark = pytest.mark.filterwarnings("ignore:gaussocc_ops. no compiled kernel")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The reference splatting is many small ops: one thread is faster on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


EMPTY = 3
NUM_CLASSES = 4
GRID = go.VoxelGrid((-3.0, -3.0, 0.0), 0.5, (12, 12, 4))


def scene(batch=2):
    """Floor (class 0) with a box of class 1 and a slab of class 2; a few ignored voxels."""
    gt = torch.full((batch, *GRID.shape), EMPTY)
    gt[:, :, :, 0] = 0
    gt[:, 3:6, 3:7, 1:3] = 1
    gt[:, 8:11, 6:9, 1] = 2
    gt[:, 0, 0, 3] = 255
    if batch > 1:
        gt[1, 3:6, 3:7, 1:3] = EMPTY
        gt[1, 1:3, 8:11, 1:4] = 1
    return gt


def sensor_cams(n=2, size=(16, 24)):
    ang = torch.arange(n) * 2 * math.pi / n + 0.4
    eyes = torch.stack([4.5 * ang.cos(), 4.5 * ang.sin(), torch.full((n,), 1.5)], -1)
    H, W = size
    K = camlib.pinhole_intrinsics(90.0, height=H, width=W).expand(n, 3, 3)
    return go.Cameras(
        camlib.look_at(eyes, torch.tensor([0.0, 0, 0.5]).expand(n, 3)), K, width=W, height=H
    )


def perfect_logits(gt, margin=20.0):
    labels = torch.where(gt == 255, torch.full_like(gt, EMPTY), gt)
    one_hot = torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 4, 1, 2, 3).float()
    return margin * (2 * one_hot - 1)


def make_loss(cams=None, **kw):
    kw.setdefault("generator", torch.Generator().manual_seed(0))
    return GaussRenderLoss(
        cams if cams is not None else sensor_cams(),
        grid=GRID,
        num_classes=NUM_CLASSES,
        empty_class=EMPTY,
        **kw,
    )


@pytest.mark.parametrize(
    "strategy", [None, "sensor", "elevated", "elevated_around", "random", "dynamic"]
)
def test_perfect_prediction_gives_zero_loss(strategy):
    gt = scene()
    loss_fn = make_loss(strategy=strategy)
    loss, terms = loss_fn(perfect_logits(gt), gt, return_terms=True)
    assert float(loss) < 1e-5
    bad = perfect_logits(torch.full_like(gt, EMPTY))
    assert float(make_loss(strategy=strategy)(bad, gt)) > 0.5  # the cameras see the scene


def test_loss_grows_as_voxels_are_removed_or_shifted():
    gt = scene(batch=1)
    loss_fn = make_loss()
    removed_box = gt.clone()
    removed_box[:, 3:6, 3:7, 1:3] = EMPTY
    removed_more = removed_box.clone()
    removed_more[:, 8:11, 6:9, 1] = EMPTY
    removed_most = removed_more.clone()
    removed_most[:, :6, :, 0] = EMPTY
    losses = [
        float(loss_fn(perfect_logits(p), gt)) for p in (gt, removed_box, removed_more, removed_most)
    ]
    assert losses[0] < 1e-5
    assert losses[0] < losses[1] < losses[2] < losses[3]
    shifted = torch.full_like(gt, EMPTY)
    shifted[:, :, :, 0] = 0
    shifted[:, 4:7, 3:7, 1:3] = 1  # the box one voxel along +x
    shifted[:, 8:11, 6:9, 1] = 2
    far = shifted.clone()
    far[:, 4:7] = gt[:, 4:7]
    far[:, 6:9, 3:7, 1:3] = 1  # three voxels along +x
    assert (
        1e-4 < float(loss_fn(perfect_logits(shifted), gt)) < float(loss_fn(perfect_logits(far), gt))
    )


def test_adam_on_the_loss_alone_raises_3d_iou():
    grid = go.VoxelGrid((-1.5, -1.5, 0.0), 0.5, (6, 6, 3))
    gt = torch.full((1, 6, 6, 3), EMPTY)
    gt[:, :, :, 0] = 0
    gt[0, 1:3, 1:4, 1:3] = 1
    gt[0, 4:6, 3:5, 1] = 2
    ang = torch.arange(2) * math.pi + 0.3
    eyes = torch.stack([3.5 * ang.cos(), 3.5 * ang.sin(), torch.full((2,), 3.5)], -1)
    cams = go.Cameras(
        camlib.look_at(eyes, torch.tensor([0.0, 0, 0.5]).expand(2, 3)),
        camlib.pinhole_intrinsics(80.0, height=12, width=12).expand(2, 3, 3),
        width=12,
        height=12,
    )
    loss_fn = GaussRenderLoss(
        cams, grid=grid, num_classes=NUM_CLASSES, empty_class=EMPTY, weight=1.0
    )
    pred = torch.randn(1, NUM_CLASSES, 6, 6, 3, generator=torch.Generator().manual_seed(0))
    pred.requires_grad_()

    def iou():
        occ, occ_gt = pred.argmax(1) != EMPTY, gt != EMPTY
        return float((occ & occ_gt).sum() / (occ | occ_gt).sum())

    before = iou()
    opt = torch.optim.Adam([pred], lr=0.2)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = loss_fn(pred, gt)
        first = float(loss.detach()) if first is None else first
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.3 * first
    assert iou() > max(before + 0.3, 0.8), (before, iou())


def test_gradients_reach_logits_and_opacity():
    gt = scene(batch=1)
    pred = torch.randn(1, NUM_CLASSES, *GRID.shape, requires_grad=True)
    opacity = torch.rand(1, *GRID.shape, requires_grad=True)
    make_loss()(pred, gt, opacity).backward()
    assert pred.grad.abs().sum() > 0 and opacity.grad.abs().sum() > 0
    assert torch.isfinite(pred.grad).all() and torch.isfinite(opacity.grad).all()
    # with a given opacity the empty logit only enters through the other classes' colours
    assert float(pred.grad[:, EMPTY].abs().max()) == 0.0


def test_gradcheck_float64_tiny_scene():
    grid = go.VoxelGrid((-1.0, -1.0, 0.0), 0.5, (4, 4, 2))
    gt = torch.full((1, 4, 4, 2), 2)
    gt[:, :, :, 0] = 0
    gt[:, 1:3, 1:3, 1] = 1
    cams = go.Cameras(
        camlib.look_at(torch.tensor([[2.5, 0.3, 2.0]]), torch.tensor([[0.0, 0, 0]])),
        camlib.pinhole_intrinsics(80.0, height=6, width=8)[None],
        width=8,
        height=6,
    )
    loss_fn = GaussRenderLoss(cams, grid=grid, num_classes=3, empty_class=2, bev_resolution=4)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, 2, dtype=torch.float64, generator=gen).requires_grad_()
    opacity = (
        0.2 + 0.6 * torch.rand(1, 4, 4, 2, dtype=torch.float64, generator=gen)
    ).requires_grad_()
    assert loss_fn(logits, gt).dtype == torch.float64
    assert torch.autograd.gradcheck(
        lambda x, o: loss_fn(x, gt, o), (logits, opacity), fast_mode=True
    )


def test_batch_of_two_matches_two_batches_of_one():
    gt = scene(batch=2)
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape, generator=torch.Generator().manual_seed(1))
    loss_fn = make_loss()
    loss, terms = loss_fn(pred, gt, return_terms=True)
    singles = [loss_fn(pred[b : b + 1], gt[b : b + 1], return_terms=True) for b in range(2)]
    for key, value in terms.items():
        torch.testing.assert_close(
            value, torch.cat([s[1][key] for s in singles]), rtol=1e-5, atol=1e-6
        )
    torch.testing.assert_close(loss, (singles[0][0] + singles[1][0]) / 2)
    assert float(terms["sem_cam"].min()) > 0 and float(terms["depth_bev"].min()) > 0


def test_per_sample_cameras():
    gt = scene(batch=2)
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape, generator=torch.Generator().manual_seed(3))
    a, b = sensor_cams(), camlib.elevated(sensor_cams(), lift=2.0)
    both = go.Cameras(
        torch.cat([a.viewmats[None], b.viewmats]),
        torch.cat([a.Ks[None], b.Ks]),
        height=16,
        width=24,
    )
    _, terms = make_loss(both)(pred, gt, return_terms=True)
    _, first = make_loss(a)(pred[:1], gt[:1], return_terms=True)
    _, second = make_loss(b)(pred[1:], gt[1:], return_terms=True)
    for key in terms:
        torch.testing.assert_close(terms[key], torch.cat([first[key], second[key]]))
    _, swapped = make_loss(a)(pred[1:], gt[1:], return_terms=True)
    assert not torch.allclose(swapped["sem_cam"], second["sem_cam"])


def test_sample_without_occupied_voxels():
    gt = scene(batch=2)
    gt[1] = EMPTY
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape, requires_grad=True)
    loss, terms = make_loss()(pred, gt, return_terms=True)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert float(terms["depth_cam"][1]) == 0.0 and float(terms["sem_cam"][1]) > 0
    all_empty = torch.full_like(gt, EMPTY)
    zero = make_loss()(perfect_logits(all_empty), all_empty)
    assert float(zero) < 1e-6
    batch0 = make_loss()(pred[:0], gt[:0])
    assert float(batch0) == 0.0


def test_bev_renders_a_floor_as_a_uniform_image_at_the_right_depth():
    labels = torch.full((1, *GRID.shape), EMPTY)
    labels[:, :, :, 1] = 2  # a one-layer floor at z in [0.5, 1.0)
    g = go.labels_to_gaussians(labels, GRID, num_classes=NUM_CLASSES, empty_class=EMPTY)
    bev = camlib.bev(GRID, 12, height_above=1.0)
    out = go.splat(g, bev, depth_mode="expected")
    probs = out.features[0, 0]
    torch.testing.assert_close(
        probs,
        torch.nn.functional.one_hot(torch.tensor(2), 4).float().expand_as(probs),
        atol=2e-3,
        rtol=0,
    )
    # camera 1 m above the grid top (z = 2): the floor centres (z = 0.75) lie 2.25 m below it
    torch.testing.assert_close(out.depth[0, 0], torch.full((12, 12, 1), 2.25), atol=1e-3, rtol=0)


def test_depth_term_normalisation_by_hand():
    gt = torch.full((1, *GRID.shape), EMPTY)
    gt[:, :, :, 0] = 0
    up = torch.full_like(gt, EMPTY)
    up[:, :, :, 1] = 0  # the same floor one voxel (0.5 m) higher
    loss_fn = GaussRenderLoss(
        None, grid=GRID, num_classes=NUM_CLASSES, empty_class=EMPTY, weight=2.0
    )
    loss, terms = loss_fn(perfect_logits(up), gt, return_terms=True)
    # BEV camera 1 m above the top (z = 2): the deepest grid corner lies 3 m below it
    d_range = 3.0
    assert float(terms["sem_bev"]) < 1e-6
    torch.testing.assert_close(
        terms["depth_bev"], torch.tensor([0.999 * 0.5 / d_range]), rtol=1e-3, atol=0
    )
    torch.testing.assert_close(loss, 2.0 * terms["depth_bev"][0], rtol=1e-5, atol=0)
    fixed = GaussRenderLoss(
        None, grid=GRID, num_classes=NUM_CLASSES, empty_class=EMPTY, depth_range=10.0
    )
    _, terms10 = fixed(perfect_logits(up), gt, return_terms=True)
    torch.testing.assert_close(terms10["depth_bev"], terms["depth_bev"] * d_range / 10.0)


def test_ignored_and_masked_voxels_do_not_matter():
    gt = scene(batch=1)
    gt[:, 8:11, 6:9, 1] = 255
    pred = torch.randn(1, NUM_CLASSES, *GRID.shape, generator=torch.Generator().manual_seed(2))
    other = pred.clone()
    other[:, :, 8:11, 6:9, 1] = torch.randn(NUM_CLASSES, 3, 3) * 5
    loss_fn = make_loss()
    torch.testing.assert_close(loss_fn(pred, gt), loss_fn(other, gt))
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[:, :, :6] = False
    other[:, :, :, :6] = torch.randn(NUM_CLASSES, 12, 6, 4) * 5
    torch.testing.assert_close(loss_fn(pred, gt, mask=mask), loss_fn(other, gt, mask=mask))
    assert not torch.allclose(loss_fn(pred, gt), loss_fn(other, gt))


def test_ground_truth_cache_and_precomputed_targets(monkeypatch):
    gt = scene()
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape)
    loss_fn = make_loss()
    calls = []
    original = loss_fn.render_targets
    monkeypatch.setattr(
        loss_fn, "render_targets", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    first = loss_fn(pred, gt)
    second = loss_fn(pred, gt.clone())
    assert len(calls) == 1 and torch.equal(first, second)
    changed = gt.clone()
    changed[:, 8:11, 6:9, 1] = EMPTY
    third = loss_fn(pred, changed)
    assert len(calls) == 2 and not torch.equal(first, third)
    uncached = make_loss(cache_gt=False)
    torch.testing.assert_close(uncached(pred, changed), third)
    targets = uncached.render_targets(gt)
    torch.testing.assert_close(uncached(pred, changed, targets=targets), first)


def test_call_time_cameras_render_size_and_callable_strategy():
    gt = scene()
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape)
    big = sensor_cams(size=(32, 48))
    small = make_loss(big, render_size=(16, 24), bev=False)
    direct = make_loss(bev=False)
    torch.testing.assert_close(small(pred, gt), direct(pred, gt), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(direct(pred, gt, cams=big), make_loss(big, bev=False)(pred, gt))
    seen = {}

    def strategy(cams, grid, *, pred_logits, gt_labels, generator):
        seen.update(grid=grid, pred=pred_logits, gt=gt_labels, generator=generator)
        return camlib.elevated(cams, lift=2.0, batch_size=pred_logits.shape[0])

    gen = torch.Generator().manual_seed(0)
    custom = make_loss(strategy=strategy, generator=gen)
    named = make_loss(strategy="elevated", strategy_kwargs={"lift": 2.0})
    torch.testing.assert_close(custom(pred, gt), named(pred, gt))
    assert (
        seen["grid"] is GRID
        and seen["pred"] is pred
        and seen["gt"] is gt
        and seen["generator"] is gen
    )


def test_autocast_and_half_inputs_compute_in_float32():
    gt = scene(batch=1)
    pred = torch.randn(1, NUM_CLASSES, *GRID.shape)
    loss_fn = make_loss()
    ref = loss_fn(pred, gt)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = loss_fn(pred, gt)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, ref)
    half = loss_fn(pred.to(torch.bfloat16), gt)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, loss_fn(pred.to(torch.bfloat16).float(), gt))


def test_bad_inputs_raise_clear_errors():
    gt = scene(batch=1)
    loss_fn = make_loss()
    with pytest.raises(ValueError, match="num_classes"):
        loss_fn(torch.randn(1, NUM_CLASSES + 1, *GRID.shape), gt)
    with pytest.raises(ValueError, match="grid.shape"):
        loss_fn(torch.randn(1, NUM_CLASSES, 12, 12, 5), gt)
    with pytest.raises(ValueError, match="gt_labels"):
        loss_fn(torch.randn(1, NUM_CLASSES, *GRID.shape), gt[..., :2])
    with pytest.raises(ValueError, match="batch size"):
        loss_fn(torch.randn(2, NUM_CLASSES, *GRID.shape), gt)
    bad = gt.clone()
    bad[0, 0, 0, 0] = 9
    with pytest.raises(ValueError, match="found 9"):
        loss_fn(torch.randn(1, NUM_CLASSES, *GRID.shape), bad)
    with pytest.raises(ValueError, match="mask"):
        loss_fn(torch.randn(1, NUM_CLASSES, *GRID.shape), gt, mask=torch.ones(1, 12, 12, 4))
    with pytest.raises(ValueError, match="strategy"):
        make_loss(strategy="orbit")
    with pytest.raises(ValueError, match="empty_class"):
        GaussRenderLoss(None, grid=GRID, num_classes=4, empty_class=4)
    with pytest.raises(ValueError, match="ignore_index"):
        GaussRenderLoss(None, grid=GRID, num_classes=4, empty_class=3, ignore_index=2)
    with pytest.raises(ValueError, match="nothing to render"):
        GaussRenderLoss(None, grid=GRID, num_classes=4, empty_class=3, bev=False)


def _ddp_model():
    torch.manual_seed(0)
    return torch.nn.Conv3d(1, NUM_CLASSES, 3, padding=1)


def _ddp_worker(rank, world, init_file, out_file):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    model = torch.nn.parallel.DistributedDataParallel(_ddp_model())
    x = torch.randn(2, 1, *GRID.shape, generator=torch.Generator().manual_seed(1))
    make_loss()(model(x[rank : rank + 1]), scene()[rank : rank + 1]).backward()
    if rank == 0:
        torch.save([p.grad for p in model.parameters()], out_file)
    dist.barrier()  # both ranks have written what the test checks
    # Leave without running C++ destructors: tearing down DDP's reducer threads and gloo at
    # interpreter exit can abort the process ("terminate called without an active exception").
    os._exit(0)


def test_ddp_gradients_equal_the_single_process_batch(tmp_path):
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "grads.pt")), nprocs=2
    )
    ddp_grads = torch.load(tmp_path / "grads.pt")
    model = _ddp_model()
    x = torch.randn(2, 1, *GRID.shape, generator=torch.Generator().manual_seed(1))
    make_loss()(model(x), scene()).backward()
    for got, want in zip(ddp_grads, model.parameters(), strict=True):
        torch.testing.assert_close(got, want.grad, rtol=1e-4, atol=1e-6)


@requires_cuda
def test_cuda_matches_cpu():
    gt = scene()
    pred = torch.randn(2, NUM_CLASSES, *GRID.shape, requires_grad=True)
    loss_cpu = make_loss()(pred, gt)
    loss_cpu.backward()
    pred_cuda = pred.detach().cuda().requires_grad_()
    loss_cuda = make_loss()(pred_cuda, gt.cuda())
    loss_cuda.backward()
    torch.testing.assert_close(loss_cuda.cpu(), loss_cpu, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pred_cuda.grad.cpu(), pred.grad, rtol=1e-3, atol=1e-5)
