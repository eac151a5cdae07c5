"""DDP training on CPU: two real gloo processes started by torchrun with batch 1 each must follow
the trajectory of one process with batch 2 on the same scenes (losses, weights, synced metrics).
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

import gaussocc_ops
from gaussocc_ops.examples import scenes, train
from gaussocc_ops.examples.models import GaussRenderPlugin
from gaussocc_ops.examples.training import SceneData, batch_order
from gaussocc_ops.types import VoxelGrid

COMMON = [
    "--epochs",
    "2",
    "--train-scenes",
    "4",
    "--val-scenes",
    "3",
    "--grid-shape",
    "16",
    "16",
    "10",
    "--voxel-size",
    "0.3",
    "--image-size",
    "24",
    "32",
    "--gaussrender-weight",
    "5",
    "--lr",
    "3e-3",
    "--quiet",
]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_match_one_process(tmp_path):
    save = tmp_path / "ddp.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    src = str(Path(gaussocc_ops.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        "gaussocc_ops.examples.train",
        "--backend",
        "gloo",
        "--batch-size",
        "1",
        "--save",
        str(save),
        *COMMON,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = torch.load(save, weights_only=False)

    single = train.main(["--batch-size", "2", *COMMON])

    assert len(ddp["step_losses"]) == len(single["step_losses"]) == 4  # 2 epochs x 2 steps
    torch.testing.assert_close(
        torch.tensor(ddp["step_losses"]), torch.tensor(single["step_losses"]), rtol=1e-4, atol=1e-5
    )
    # and the training did something: the trained weights fit the training rooms better
    grid = VoxelGrid((0.0, 0.0, 0.0), 0.3, (16, 16, 10))
    data = SceneData.make(range(4), grid, (24, 32))
    torch.manual_seed(0)  # train.run's initialisation
    model = GaussRenderPlugin(
        grid, 9, gaussrender_weight=5.0, render_size=None, render_mask=scenes.below_ceiling(grid)
    )
    with torch.no_grad():
        before = model.loss(model(data.rgb, data.K, data.cam2world, data.prior), data)["total"]
        model.load_state_dict(single["state_dict"])
        after = model.loss(model(data.rgb, data.K, data.cam2world, data.prior), data)["total"]
    assert after < 0.9 * before, (before, after)
    for name, value in single["state_dict"].items():
        torch.testing.assert_close(ddp["state_dict"][name], value, rtol=1e-3, atol=1e-4, msg=name)
    for e_ddp, e_one in zip(ddp["epochs"], single["epochs"], strict=True):
        # metrics of 3 held-out scenes split 2 + 1 over the ranks, summed by compute()
        for key in ("sc_iou", "miou"):
            assert abs(e_ddp[key] - e_one[key]) < 2e-3, (key, e_ddp, e_one)


def test_batch_order_splits_global_batches_over_ranks():
    for world, b in ((2, 1), (2, 3), (3, 2)):
        one = batch_order(13, b * world, epoch=4, seed=7)
        ranks = [
            batch_order(13, b, epoch=4, seed=7, rank=r, world_size=world) for r in range(world)
        ]
        assert all(len(r) == len(one) == 13 // (b * world) for r in ranks)
        for step, global_batch in enumerate(one):
            parts = [r[step] for r in ranks]
            assert all(len(p) == b for p in parts)
            assert sorted(sum(parts, [])) == sorted(global_batch)
        seen = sum(one, [])
        assert len(set(seen)) == len(seen)  # no scene twice in an epoch
    assert batch_order(13, 2, epoch=0, seed=7) != batch_order(13, 2, epoch=1, seed=7)
