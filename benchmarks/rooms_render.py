"""The rasterizer on the example rooms: ``python -m benchmarks rooms_render``.

One training step of the demo's GaussRender model (4 rooms, 30 x 30 x 18 voxels, random
cameras at 48 x 64 and the 30 x 30 BEV view) renders four times: the prediction and the ground
truth, each from the camera and from above. This captures the ``rasterize`` inputs of those four
calls and times the op's forward and backward on each, in CPU seconds of this process (one
thread), which a busy machine disturbs less than wall time. To compare two builds, run it on
each.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _capture_rasterize_inputs(seed: int) -> list[list]:
    from gaussocc_ops import _dispatch
    from gaussocc_ops.examples.experiments import Recipe, RenderSetting, make_plugin, room_data

    recipe = Recipe(train_scenes=4, val_scenes=1)
    train, _ = room_data(recipe)
    model = make_plugin(RenderSetting(15.0, "random"), recipe, seed)
    batch = train.select(torch.arange(4))
    with torch.no_grad():
        logits = model(batch.rgb, batch.K, batch.cam2world, batch.prior).logits
    calls: list[list] = []
    kernel = _dispatch.kernel

    def capturing(name, backend):
        fn = kernel(name, backend)
        if name != "rasterize":
            return fn

        def wrapped(*args):
            calls.append([a.detach().clone() if torch.is_tensor(a) else a for a in args])
            return fn(*args)

        return wrapped

    _dispatch.kernel = capturing
    try:
        cams = model.render_cameras(batch.K, batch.cam2world, tuple(batch.rgb.shape[-2:]))
        mask = model.render_mask.expand_as(batch.voxel_labels)
        with torch.no_grad():
            model.gaussrender(logits, batch.voxel_labels, mask=mask, cams=cams)
    finally:
        _dispatch.kernel = kernel
    return calls


def _cpu_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return 1000 * best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks rooms_render", description=__doc__)
    p.add_argument("--repeat", type=int, default=5, help="timed repetitions (the best is shown)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and camera draw")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import gaussocc_ops as go

    if not go.build_info()["extension"]:
        print("the compiled CPU kernels are not available", file=sys.stderr)
        return 1
    ops = torch.ops.gaussocc
    names = ["ground truth, camera", "ground truth, BEV", "prediction, camera", "prediction, BEV"]
    calls = _capture_rasterize_inputs(args.seed)
    order = sorted(range(len(calls)), key=lambda i: (calls[i][0].shape[2], -calls[i][6]))
    print(f"{'render':<22} {'Gaussians':>9} {'image':>7} {'list':>7} {'fwd ms':>7} {'bwd ms':>7}")
    total = 0.0
    for name, i in zip(names, order):
        a = calls[i]
        H, W, tile = a[6], a[7], a[8]
        out = ops.rasterize(*a)
        cot = [torch.randn(x.shape, generator=torch.Generator().manual_seed(0)) for x in out[:3]]
        fwd = _cpu_ms(lambda: ops.rasterize(*a), args.repeat)

        def backward():
            ops.rasterize_backward(a[0], a[1], a[2], a[4], a[5], out[2], out[3], out[4], out[5],
                                   *cot, H, W, tile)

        bwd = _cpu_ms(backward, args.repeat)
        total += fwd + (bwd if name.startswith("prediction") else 0.0)
        print(f"{name:<22} {a[0].shape[2]:>9} {H:>3}x{W:<3} {out[5].numel():>7} {fwd:7.1f} "
              f"{bwd:7.1f}")
    print(f"per training step (both forwards, the prediction's backwards): {total:.1f} ms")
    return 0
