"""Calls every CUDA kernel of gaussocc_ops once on small inputs, and checks each result against
the CPU kernel, for compute-sanitizer (memcheck, racecheck, synccheck) in scripts/gpu_check.sh.

    python scripts/cuda_kernels_once.py            (needs a CUDA device and the CUDA kernels)
    python scripts/cuda_kernels_once.py --device cpu   (the same calls on the CPU: checks the
                                                         script's own arguments, runs anywhere)

Shapes are small but reach the kernels' main paths: more than 256 Gaussians on one tile, two
channel passes, B > 1, invalid Gaussians and queries, opaque voxels, rays from inside and
outside. Exits non-zero when a CUDA result differs from the CPU one.
"""

from __future__ import annotations

import sys

import torch

import gaussocc_ops


def _close(name, got, want, rtol, atol):
    got = got.cpu()
    if want.is_floating_point():
        scale = max(1.0, want.abs().max().item()) if want.numel() else 1.0
        ok = torch.allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=False)
    else:
        ok = torch.equal(got, want)
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return ok


def main() -> int:
    dev = torch.device(sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "--device" else "cuda")
    info = gaussocc_ops.build_info()  # loads (the first time: compiles) the kernels
    if not info["extension"]:
        print(f"no compiled kernels: {info['error']}")
        return 2
    cuda_ok = torch.cuda.is_available() and info["cuda_kernels"]
    if dev.type == "cuda" and not cuda_ok:
        print("needs a CUDA device and the extension built with its CUDA kernels")
        return 2
    ops = torch.ops.gaussocc
    g = torch.Generator().manual_seed(0)
    ok = True

    def both(name, fn, args, rtol=1e-4, atol=1e-4):
        nonlocal ok
        want = fn(*args)
        got = fn(*[a.to(dev) if isinstance(a, torch.Tensor) else a for a in args])
        if dev.type == "cuda":
            torch.cuda.synchronize()
        want = want if isinstance(want, (tuple, list)) else (want,)
        got = got if isinstance(got, (tuple, list)) else (got,)
        for i, (x, y) in enumerate(zip(got, want)):
            ok &= _close(f"{name}[{i}]", x, y, rtol, atol)
        return want

    # splatting: 2 scenes x 2 views, 300 Gaussians near the image centre, C = 35 (2 passes)
    B, V, N, C, W, H = 2, 2, 300, 35, 40, 24
    z = 3 + 2 * torch.rand(B, N, generator=g)
    means = torch.stack(
        [
            (torch.rand(B, N, generator=g) - 0.5) * z * 0.3,
            (torch.rand(B, N, generator=g) - 0.5) * z * 0.2,
            z,
        ],
        -1,
    )
    quats = torch.randn(B, N, 4, generator=g)
    scales = 0.05 + 0.3 * torch.rand(B, N, 3, generator=g)
    opac = 0.02 + 0.5 * torch.rand(B, N, generator=g)
    feats = torch.randn(B, N, C, generator=g)
    viewmats = torch.eye(4).expand(B, V, 4, 4).contiguous()
    viewmats[:, 1, 0, 3] = 0.2
    Ks = torch.tensor([[36.0, 0, 20], [0, 36.0, 12], [0, 0, 1]]).expand(B, V, 3, 3).contiguous()
    for ortho in (False, True):
        K = Ks.clone()
        if ortho:
            K[..., 0, 0] = K[..., 1, 1] = 8.0
        pargs = (means, quats, scales, opac, viewmats, K, H, W, 0.1, 100.0, 0.3, ortho)
        proj = both(f"project_gaussians(ortho={ortho})", ops.project_gaussians, pargs)
        grads = [torch.randn(t.shape, generator=g) for t in proj[:3]]
        both(
            "project_gaussians_backward",
            ops.project_gaussians_backward,
            (means, quats, scales, viewmats, K, proj[3], *grads, H, W, 0.3, ortho),
        )
        rargs = (proj[0], proj[1], proj[2], proj[3], opac, feats, H, W, 16)
        out = both("rasterize", ops.rasterize, rargs)
        gi = [torch.randn(t.shape, generator=g) for t in out[:3]]
        both(
            "rasterize_backward",
            ops.rasterize_backward,
            (proj[0], proj[1], proj[2], opac, feats, out[2], out[3], out[4], out[5], *gi, H, W, 16),
            rtol=1e-3,
            atol=1e-4,
        )

    # accumulation, the three modes, with invalid and opaque Gaussians; the probs gradient
    # permuted ([B, C + 1, V] memory), as a loss over probs [B, C + 1, X, Y, Z] produces it
    N, C = 45, 19
    means = torch.rand(B, N, 3, generator=g) * torch.tensor([2.0, 1.5, 2.0]) - 0.2
    quats = torch.randn(B, N, 4, generator=g)
    scales = 0.05 + 0.25 * torch.rand(B, N, 3, generator=g)
    opac = torch.rand(B, N, generator=g)
    opac[:, :3] = 1.0
    feats = torch.randn(B, N, C, generator=g)
    valid = torch.rand(B, N, generator=g) > 0.2
    grid = ([0.0, 0.0, 0.0], [0.25, 0.25, 0.5], [8, 6, 4])
    for mode, name in ((0, "additive"), (1, "probabilistic"), (2, "gaussianformer2")):
        cfg = (3.0 if mode < 2 else 1.5, mode, 7 if mode else 0, 1.0 / C)
        fwd = both(
            f"accumulate_gaussians({name})",
            ops.accumulate_gaussians,
            (means, quats, scales, opac, feats, valid, *grid, *cfg),
        )
        Bp, Vp, K = fwd[1].shape
        g_occ = torch.randn(fwd[0].shape, generator=g)
        g_probs = torch.randn(Bp, K, Vp, generator=g).transpose(1, 2)
        both(
            f"accumulate_gaussians_backward({name})",
            ops.accumulate_gaussians_backward,
            (means, quats, scales, opac, feats, valid, *fwd[1:], g_occ, g_probs, *grid, *cfg),
        )

    # soft-gated lifting
    Bq, Hm, Wm, Cm, Q, K = 2, 6, 7, 33, 20, 3
    largs = (
        torch.randn(Bq, Hm, Wm, Cm, generator=g),
        2 + 3 * torch.rand(Bq, Hm, Wm, generator=g),
        torch.rand(Bq, Q, 2, generator=g) * torch.tensor([Wm, Hm]),
        2 + 3 * torch.rand(Bq, Q, generator=g),
        torch.rand(Bq, Q, generator=g) > 0.2,
        (torch.rand(Bq, Q, K, 2, generator=g) - 0.5) * 4,
        torch.softmax(torch.randn(Bq, Q, K, generator=g), -1),
        torch.tensor(0.8),
        torch.tensor(0.7),
    )
    both("soft_gated_lift", ops.soft_gated_lift, largs)
    both(
        "soft_gated_lift_backward",
        ops.soft_gated_lift_backward,
        (torch.randn(Bq, Q, Cm, generator=g), *largs),
    )

    # radius neighbours, ray casting, SNOG accept
    both(
        "radius_neighbors",
        ops.radius_neighbors,
        (torch.rand(2, 150, 3, generator=g), torch.rand(2, 400, 3, generator=g), 0.1, 6, 0.0),
    )
    labels = torch.where(
        torch.rand(2, 5, 4, 3, generator=g) < 0.7, 0, torch.randint(1, 5, (2, 5, 4, 3), generator=g)
    )
    o = torch.rand(2, 300, 3, generator=g) * 4 - 1
    d = torch.nn.functional.normalize(torch.randn(2, 300, 3, generator=g), dim=-1)
    both("raycast", ops.raycast, (labels, o, d, [0.0, 0.0, 0.0], [0.5, 0.5, 0.5], 0, 1e9))
    cand = torch.randint(-2, 100, (6, 500, 2), generator=g, dtype=torch.int32)
    both(
        "snog_accept",
        ops.snog_accept,
        (cand, torch.zeros(6, 200, 2, dtype=torch.int32), torch.zeros(6, dtype=torch.int32), 3),
    )
    # streaming memory: cell-hash index insert/query, fusion, eviction heap (a stream that fuses,
    # inserts and evicts), the same stream on the CPU kernels and on the device
    Km = torch.tensor([[[40.0, 0, 32], [0, 40.0, 24], [0, 0, 1]]])
    camera = gaussocc_ops.Cameras.from_cam2world(torch.eye(4)[None], Km, height=48, width=64)
    mems = {
        d: gaussocc_ops.GaussianMemory(radius=0.15, max_size=300, device=d) for d in ("cpu", dev)
    }
    for f in range(6):
        n = 120
        frame = gaussocc_ops.Gaussians(
            torch.rand(n, 3, generator=g) * 1.5 + torch.tensor([0, 0, 2.0]),
            torch.rand(n, 3, generator=g) * 0.05 + 0.01,
            torch.randn(n, 4, generator=g),
            torch.rand(n, generator=g),
            torch.softmax(torch.randn(n, 5, generator=g), -1),
        )
        res = {d: m.insert(frame.to(d), camera.to(d)) for d, m in mems.items()}
        same = res["cpu"] == res[dev]
        print(f"{'ok  ' if same else 'FAIL'} GaussianMemory.insert[{f}] {res[dev]}")
        ok &= same
    for k in ("means", "opacities", "features", "confidence"):
        ok &= _close(
            f"GaussianMemory.{k}", getattr(mems[dev], k), getattr(mems["cpu"], k), 1e-4, 1e-5
        )

    print(f"all kernels ran on {dev}" + ("" if ok else ", SOME DIFFER FROM THE CPU KERNELS"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
