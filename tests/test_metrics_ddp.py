"""sync() over a real torch.distributed process group: 2 gloo ranks on CPU, each seeing half of
the data, must report the metrics of one process that sees all of it."""

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


def make_metrics():
    return {
        "ssc": go.metrics.SSCMetrics(4, 0),
        "ray": go.metrics.RayIoU(GRID, 4, 0, num_azimuths=16, pitch_degrees=[-5.0, 5.0]),
        "bev": go.metrics.BEVIoU(4, 0, absent="exclude"),
        "depth": go.metrics.DepthMetrics(median_scaling=True),
        "boundary": go.metrics.BoundaryF1(0),
    }


def feed(metrics, pred, gt, depth_pred, depth_gt):
    for b in range(pred.shape[0]):  # one frame per step, as a data loader would
        sl = slice(b, b + 1)
        for name in ("ssc", "ray", "bev", "boundary"):
            metrics[name].update(pred[sl], gt[sl])
        metrics["depth"].update(depth_pred[sl], depth_gt[sl])


def _worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        data = [t[rank::2] for t in make_data()]  # rank 0: frames 0, 2; rank 1: frames 1, 3
        metrics = make_metrics()
        feed(metrics, *data)
        local = {k: m.compute() for k, m in metrics.items()}
        for m in metrics.values():
            m.sync()
        synced = {k: m.compute() for k, m in metrics.items()}
        for m in metrics.values():
            m.sync()  # a second sync must not count the other rank twice
        again = {k: m.compute() for k, m in metrics.items()}
        torch.save({"local": local, "synced": synced, "again": again}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-12, atol=1e-12, msg=k)


def test_sync_over_two_gloo_ranks_equals_single_process(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    whole = make_metrics()
    feed(whole, *make_data())
    expected = {k: m.compute() for k, m in whole.items()}
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for res in results:
        for name in expected:
            assert_same(res["synced"][name], expected[name])
            assert_same(res["again"][name], expected[name])
    # the halves alone differ from the whole, so the equality above is not vacuous
    assert not torch.equal(
        results[0]["local"]["ssc"]["iou_per_class"], expected["ssc"]["iou_per_class"]
    )
    assert (
        results[0]["local"]["depth"]["images"].item() == 2
        and expected["depth"]["images"].item() == 4
    )
