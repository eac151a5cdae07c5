"""Main demo: ``python -m gaussocc_ops.examples.demo``.

Builds a small synthetic room of semantic voxels, turns the occupied voxels into Gaussians, and
splats them into a perspective camera and an orthographic BEV camera with our kernels, writing
the semantic, depth and BEV pictures and printing timings and image statistics.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import gaussocc_ops as go
from gaussocc_ops.imageio import colorize_depth, colorize_probs, palette, save_png


def room_labels(grid: go.VoxelGrid, num_classes: int, generator: torch.Generator) -> torch.Tensor:
    """A room: floor (class 0), walls (1), and a few boxes of other classes; empty = -1."""
    X, Y, Z = grid.shape
    labels = torch.full((X, Y, Z), -1, dtype=torch.long)
    labels[:, :, 0] = 0
    labels[0, :, :] = 1
    labels[-1, :, :] = 1
    labels[:, -1, :] = 1
    for k in range(5):
        sx, sy, sz = (int(v) for v in torch.randint(3, 8, (3,), generator=generator))
        x0 = int(torch.randint(2, X - sx - 2, (1,), generator=generator))
        y0 = int(torch.randint(2, Y - sy - 2, (1,), generator=generator))
        labels[x0 : x0 + sx, y0 : y0 + sy, 1 : 1 + sz] = 2 + k % (num_classes - 2)
    return labels


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_out", help="folder for the pictures")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    info = go.build_info()
    print(
        f"gaussocc_ops {go.__version__}: extension={info['extension']} "
        f"cuda_kernels={info['cuda_kernels']} ops={len(info['ops'])}"
    )

    gen = torch.Generator().manual_seed(args.seed)
    num_classes = 6
    grid = go.VoxelGrid(origin=(-3.2, -3.2, 0.0), voxel_size=0.2, shape=(32, 32, 14))
    labels = room_labels(grid, num_classes, gen)
    occupied = labels >= 0
    centers = grid.centers()[occupied]
    feats = torch.nn.functional.one_hot(labels[occupied], num_classes).float()
    g = go.Gaussians.isotropic(centers[None], 0.1, torch.ones(1, len(centers)), feats[None])

    eye = torch.tensor([[-2.6, -2.6, 2.4]])
    viewmat = go.cameras.look_at(eye, torch.tensor([[0.8, 0.8, 0.4]]))
    K = go.cameras.pinhole_intrinsics(320, 240, 90.0)[None]
    cam = go.Cameras(viewmat, K, width=320, height=240)
    bev = go.cameras.bev(grid, 256)

    t0 = time.perf_counter()
    persp = go.splat(g, cam, depth_mode="expected")
    top = go.splat(g, bev, depth_mode="expected")
    dt = time.perf_counter() - t0
    print(
        f"{len(centers)} Gaussians from {grid.shape} voxels, {num_classes} classes; "
        f"rendered 320x240 pinhole + 256x256 BEV in {dt * 1000:.1f} ms"
    )
    colors = palette(num_classes)
    for name, r in (("camera", persp), ("bev", top)):
        alpha = r.alpha[0, 0, ..., 0]
        covered = (alpha > 0.5).float().mean().item()
        classes = r.features[0, 0].argmax(-1)[alpha > 0.5].bincount(minlength=num_classes)
        print(
            f"  {name}: coverage {covered:.1%}, depth {r.depth[0, 0][alpha > 0.5].min():.2f}"
            f"..{r.depth[0, 0][alpha > 0.5].max():.2f} m, pixels per class {classes.tolist()}"
        )
        save_png(out / f"{name}_semantics.png", colorize_probs(r.features[0, 0], colors))
        save_png(out / f"{name}_depth.png", colorize_depth(r.depth[0, 0, ..., 0], alpha > 0.5))
    print(f"pictures written to {out.resolve()}")


if __name__ == "__main__":
    main()
