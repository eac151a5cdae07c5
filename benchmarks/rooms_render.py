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


def _time_call(args: list, repeat: int) -> tuple[float, float, int]:
    """Best CPU ms of the forward and of the backward of one captured ``rasterize`` call, and
    the length of its tile lists."""
    ops = torch.ops.gaussocc
    H, W, tile = args[6], args[7], args[8]
    out = ops.rasterize(*args)
    g = torch.Generator().manual_seed(0)
    cot = [torch.randn(x.shape, generator=g) for x in out[:3]]
    fwd = _cpu_ms(lambda: ops.rasterize(*args), repeat)
    m2, conics, depths, _, opac, feats = args[:6]
    bwd = _cpu_ms(
        lambda: ops.rasterize_backward(
            m2, conics, depths, opac, feats, out[2], out[3], out[4], out[5], *cot, H, W, tile
        ),
        repeat,
    )
    return fwd, bwd, out[5].numel()


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
    names = ["ground truth, camera", "ground truth, BEV", "prediction, camera", "prediction, BEV"]
    calls = _capture_rasterize_inputs(args.seed)

    # the ground truth's opacities are 0 or 1, the prediction's in between; camera before BEV
    def key(i):
        opac = calls[i][4]
        return (bool(((opac > 0) & (opac < 1)).any()), -calls[i][6])

    order = sorted(range(len(calls)), key=key)
    print(f"{'render':<22} {'Gaussians':>9} {'image':>7} {'list':>7} {'fwd ms':>7} {'bwd ms':>7}")
    total = 0.0
    for name, i in zip(names, order):
        a = calls[i]
        fwd, bwd, entries = _time_call(a, args.repeat)
        total += fwd + (bwd if name.startswith("prediction") else 0.0)
        image = f"{a[6]}x{a[7]}"
        print(f"{name:<22} {a[0].shape[2]:>9} {image:>7} {entries:>7} {fwd:7.1f} {bwd:7.1f}")
    print(f"per training step (both forwards, the prediction's backwards): {total:.1f} ms")
    return 0
