"""A GaussRenderLoss training step without host synchronisations, and under torch.compile.

* ``torch.compile(loss_fn, fullgraph=True)`` traces forward and backward as whole graphs (no graph
  break) and matches eager;
* in eager, with value checks off, the step runs no operator that reads a tensor back to the
  host (checked op by op with a dispatch mode on the CPU, and with CUDA's sync debug mode on a
  GPU); with value checks on, the one synchronisation is the label check at the call.
"""

import math
import os
import traceback

import pytest
import torch
from conftest import requires_cuda
from torch.utils._python_dispatch import TorchDispatchMode

import gaussocc_ops as go
from gaussocc_ops import cameras as camlib
from gaussocc_ops.gaussrender import GaussRenderLoss

pytestmark = pytest.mark.filterwarnings(
    # raised inside Inductor's own code generation
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)

EMPTY = 3
NUM_CLASSES = 4
GRID = go.VoxelGrid((-2.0, -2.0, 0.0), 0.5, (8, 8, 4))

# operators that read tensor data back to the host (on a GPU: a device->host synchronisation),
# or whose output size depends on the data (the host must learn it)
SYNC_OPS = {
    "aten::_local_scalar_dense",  # .item(), bool(t), int(t), float(t)
    "aten::item",
    "aten::is_nonzero",
    "aten::equal",
    "aten::allclose",
    "aten::nonzero",
    "aten::masked_select",
    "aten::_unique",
    "aten::_unique2",
    "aten::unique_dim",
    "aten::unique_consecutive",
}


PACKAGE = os.path.dirname(os.path.abspath(go.__file__)) + os.sep  # the library's own frames


class HostSyncs(TorchDispatchMode):
    """Records every operator that synchronises with the host, with the library frames that
    called it. Boolean-mask indexing counts too (its size comes from a count read back)."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, list[str]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        bool_index = name in ("aten::index", "aten::index_put", "aten::index_put_") and any(
            isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8)
            for i in (args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ())
        )
        if name in SYNC_OPS or bool_index:
            frames = [f.name for f in traceback.extract_stack() if f.filename.startswith(PACKAGE)]
            self.calls.append((name, frames))
        return func(*args, **(kwargs or {}))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scene(batch=2, seed=0):
    """Random labels over a floor, a few ignored voxels, and a prediction close to them."""
    gen = torch.Generator().manual_seed(seed)
    gt = torch.randint(0, NUM_CLASSES, (batch, *GRID.shape), generator=gen)
    gt = torch.where(torch.rand(gt.shape, generator=gen) < 0.6, EMPTY, gt)
    gt[..., 0] = 0
    gt[:, 0, 0, 1] = 255
    one_hot = torch.nn.functional.one_hot(torch.where(gt == 255, EMPTY, gt), NUM_CLASSES)
    noise = torch.randn(batch, NUM_CLASSES, *GRID.shape, generator=gen)
    pred = 4.0 * one_hot.permute(0, 4, 1, 2, 3).float() + noise
    mask = torch.ones_like(gt, dtype=torch.bool)
    mask[:, :2] = False
    return pred, gt, mask


def cameras(n=2, size=(12, 16)):
    ang = torch.arange(n) * 2 * math.pi / n + 0.4
    eyes = torch.stack([3.5 * ang.cos(), 3.5 * ang.sin(), torch.full((n,), 1.5)], -1)
    H, W = size
    K = camlib.pinhole_intrinsics(90.0, height=H, width=W).expand(n, 3, 3)
    target = torch.tensor([0.0, 0, 0.5]).expand(n, 3)
    return go.Cameras(camlib.look_at(eyes, target), K, height=H, width=W)


def make_loss(**kw):
    return GaussRenderLoss(
        cameras(), grid=GRID, num_classes=NUM_CLASSES, empty_class=EMPTY, bev_resolution=8, **kw
    )


def loss_and_grad(fn, pred, gt, **kw):
    pred = pred.clone().requires_grad_(True)
    loss = fn(pred, gt, **kw)
    loss.backward()
    return loss.detach(), pred.grad


@pytest.mark.slow  # Inductor compiles C++: about 75 s on two busy cores with a cold cache
def test_compiled_loss_fullgraph_matches_eager():
    """One graph for forward and one for backward (fullgraph=True raises on any graph break);
    the compiled loss and its gradient equal eager's; new data of the same shapes reuses the
    compiled graphs (no recompilation: nothing in them depends on the data)."""
    torch._dynamo.reset()
    loss_fn = make_loss()  # camera views + BEV, ground-truth cache on (bypassed while tracing)
    compiled = torch.compile(loss_fn, fullgraph=True)
    for seed in (0, 1):
        pred, gt, mask = scene(seed=seed)
        expected = loss_and_grad(loss_fn, pred, gt, mask=mask)
        if seed == 0:
            got = loss_and_grad(compiled, pred, gt, mask=mask)
        else:
            with torch.compiler.set_stance("fail_on_recompile"):
                got = loss_and_grad(compiled, pred, gt, mask=mask)
        assert expected[0] > 0 and expected[1].abs().sum() > 0
        torch.testing.assert_close(got[0], expected[0], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(
    "kw",
    [
        {"cache_gt": False},
        {"strategy": "random", "strategy_kwargs": {"num_views": 1}},
        {"strategy": "dynamic", "strategy_kwargs": {"num_views": 1}},
    ],
    ids=["fixed", "random", "dynamic"],
)
def test_eager_step_reads_nothing_back(kw):
    """With value checks off, forward + backward run no operator that synchronises with the
    host; with them on, the one synchronisation is the label check, once per call."""
    pred, gt, mask = scene()
    loss_fn = make_loss(generator=torch.Generator().manual_seed(0), **kw)
    loss_and_grad(loss_fn, pred, gt, mask=mask)  # first call: cameras set up
    with go.value_checks(False), HostSyncs() as syncs:
        loss, grad = loss_and_grad(loss_fn, pred, gt, mask=mask)
    assert syncs.calls == []
    assert loss > 0 and grad.abs().sum() > 0
    with HostSyncs() as syncs:
        loss_and_grad(loss_fn, pred, gt, mask=mask)
    assert [frames[-1] for _, frames in syncs.calls] == ["check_label_range"]


def test_labels_are_checked_once_per_call_with_the_ground_truth_cache():
    """With the cache (value checks on): a miss checks the labels once, a hit only compares
    them with the cached (checked) ones."""
    pred, gt, mask = scene()
    loss_fn = make_loss(cache_gt=True)
    innermost = []
    for _ in range(2):
        with HostSyncs() as syncs:
            loss_and_grad(loss_fn, pred, gt, mask=mask)
        innermost.append([frames[-1] for _, frames in syncs.calls])
    assert innermost == [["check_label_range"], ["_same", "_same"]]  # labels, then mask


def test_sync_detector_sees_what_the_compacting_path_reads_back():
    """The detector is not blind: the compacting voxelization (a count read back and a
    nonzero) and the ground-truth cache (a label comparison) are caught."""
    pred, gt, mask = scene()
    with go.value_checks(False), HostSyncs() as syncs:
        go.voxels_to_gaussians(pred, GRID, empty_class=EMPTY, valid_mask=mask)
    assert {"aten::_local_scalar_dense", "aten::nonzero"} <= {name for name, _ in syncs.calls}
    loss_fn = make_loss(cache_gt=True)
    loss_fn(pred, gt)
    with go.value_checks(False), HostSyncs() as syncs:
        loss_fn(pred, gt)
    assert "aten::equal" in {name for name, _ in syncs.calls}


class _SyncsAllowedIn(TorchDispatchMode):
    """Lifts CUDA's sync debug mode while ``op`` runs (see the test below)."""

    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._schema.name != self.op:
            return func(*args, **(kwargs or {}))
        before = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return func(*args, **(kwargs or {}))
        finally:
            torch.cuda.set_sync_debug_mode(before)


@requires_cuda
@pytest.mark.parametrize(
    "kw",
    [{}, {"strategy": "random", "strategy_kwargs": {"num_views": 1}}],
    ids=["fixed", "random"],
)
def test_cuda_step_synchronises_only_in_the_rasterizer(kw):
    """On a GPU, with value checks off, a step (forward + backward) makes no synchronisation
    outside ``rasterize``, whose CUDA binning reads its intersection count back to size the
    tile lists (once per call, see docs/design.md); any other would raise. The random views are
    drawn from a CPU generator and copied without blocking."""
    pred, gt, mask = (t.cuda() for t in scene())
    loss_fn = make_loss(
        cache_gt=False, backend="cuda", generator=torch.Generator().manual_seed(0), **kw
    )
    loss_and_grad(loss_fn, pred, gt, mask=mask)  # first call: cameras moved to the GPU
    torch.cuda.synchronize()
    with go.value_checks(False), _SyncsAllowedIn("gaussocc::rasterize"):
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss, grad = loss_and_grad(loss_fn, pred, gt, mask=mask)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    reference = make_loss(cache_gt=False, generator=torch.Generator().manual_seed(0), **kw)
    loss_and_grad(reference, *(t.cpu() for t in (pred, gt)), mask=mask.cpu())  # same draws
    expected = loss_and_grad(reference, *(t.cpu() for t in (pred, gt)), mask=mask.cpu())
    torch.testing.assert_close(loss.cpu(), expected[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad.cpu(), expected[1], rtol=1e-4, atol=1e-6)
