"""The metrics under a real torch.distributed process group: 2 gloo ranks on CPU, each seeing half
of the data, must report from compute() the metrics of one process that sees all of it
(torchmetrics sums the states over the ranks and restores the local ones afterwards)."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import gaussocc_ops as go

GRID = go.VoxelGrid((-3.0, -3.0, -1.0), 0.5, (12, 12, 4))


def make_data():
    g = torch.Generator().manual_seed(0)
    gt = torch.randint(1, 4, (4, 12, 12, 4), generator=g)
    gt[torch.rand(gt.shape, generator=g) < 0.8] = 0
    gt[torch.rand(gt.shape, generator=g) < 0.05] = 255
    pred = gt.clamp(max=3).clone()
    flip = torch.rand(gt.shape, generator=g) < 0.2
    pred[flip] = torch.randint(0, 4, (int(flip.sum()),), generator=g)
    depth_gt = torch.rand(4, 6, 8, generator=g, dtype=torch.float64) * 60
    depth_pred = (
        depth_gt * (0.8 + 0.4 * torch.rand(4, 6, 8, generator=g, dtype=torch.float64)) + 0.5
    )
    return pred, gt, depth_pred, depth_gt


ORIGINS = torch.tensor([[0.25, 0.0, 0.1]], dtype=torch.float64)  # y = 0: on a voxel face


def make_metrics(**options):
    return {
        "ssc": go.metrics.SSCMetrics(4, 0, **options),
        "ray": go.metrics.RayIoU(GRID, 4, 0, num_azimuths=16, pitch_degrees=[-5.0, 5.0], **options),
        "ray_sparseocc": go.metrics.RayIoU(GRID, 4, 0, protocol="sparseocc", **options),
        "bev": go.metrics.BEVIoU(4, 0, absent="exclude", **options),
        "depth": go.metrics.DepthMetrics(median_scaling=True, **options),
        "boundary": go.metrics.BoundaryF1(0, **options),
    }


def feed(metrics, pred, gt, depth_pred, depth_gt, frames=None, step="update"):
    """One frame per step, as a data loader would; ``step="forward"`` calls the metrics."""
    for b in range(pred.shape[0]) if frames is None else frames:
        sl = slice(b, b + 1)
        for name, m in metrics.items():
            call = getattr(m, step)
            if name == "depth":
                call(depth_pred[sl], depth_gt[sl])
            elif name == "ray_sparseocc":
                call(pred[sl], gt[sl], ORIGINS)
            else:
                call(pred[sl], gt[sl])


def _worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        data = [t[rank::2] for t in make_data()]  # rank 0: frames 0, 2; rank 1: frames 1, 3
        metrics, local_only = make_metrics(), make_metrics(sync_on_compute=False)
        called = make_metrics()
        feed(metrics, *data, frames=[0])
        # compute() syncs: frames 0 and 1 of the dataset
        partial = {k: m.compute() for k, m in metrics.items()}
        # ... and restores the local counts: adding the next frame must not count rank 1 twice
        feed(metrics, *data, frames=[1])
        synced = {k: m.compute() for k, m in metrics.items()}
        feed(local_only, *data)
        local = {k: m.compute() for k, m in local_only.items()}
        feed(called, *data, step="forward")
        forward = {k: m.compute() for k, m in called.items()}
        result = {"partial": partial, "synced": synced, "local": local, "forward": forward}
        torch.save(result, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-12, atol=1e-12, equal_nan=True, msg=k)


def test_compute_over_two_gloo_ranks_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    data = make_data()
    whole, first_two = make_metrics(), make_metrics()
    feed(whole, *data)
    feed(first_two, *data, frames=[0, 1])
    expected = {k: m.compute() for k, m in whole.items()}
    expected_partial = {k: m.compute() for k, m in first_two.items()}
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for res in results:
        for name in expected:
            assert_same(res["partial"][name], expected_partial[name])
            assert_same(res["synced"][name], expected[name])
            assert_same(res["forward"][name], expected[name])
    # the halves alone differ from the whole, so the equalities above are not vacuous
    local = results[0]["local"]
    assert not torch.equal(local["ssc"]["iou_per_class"], expected["ssc"]["iou_per_class"])
    assert not torch.equal(local["ray_sparseocc"]["rayiou"], expected["ray_sparseocc"]["rayiou"])
    assert local["depth"]["images"].item() == 2 and expected["depth"]["images"].item() == 4
