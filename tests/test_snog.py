import pytest
import torch
from conftest import requires_cuda
from hypothesis import given, settings
from hypothesis import strategies as st

import gaussocc_ops as go
from gaussocc_ops.reference import snog as ref

# Upper 0.1% quantiles of the chi-square distribution (standard tables).
CHI2_999 = {2: 13.816, 19: 43.820}


def accept_op():
    assert go.build_info()["extension"], go.build_info()["error"]
    return torch.ops.gaussocc.snog_accept


def random_candidates(B, T, P, H, W, l, gen, device="cpu"):
    """Candidate top-left corners inside [0, H - l] x [0, W - l], a fifth of them marked outside."""
    rows = torch.randint(0, H - l + 1, (B, T), generator=gen)
    cols = torch.randint(0, W - l + 1, (B, T), generator=gen)
    rows = torch.where(torch.rand(B, T, generator=gen) < 0.2, -1, rows)
    cand = torch.stack((rows, cols), -1).to(torch.int32)
    return (
        cand.to(device),
        torch.zeros(B, P, 2, dtype=torch.int32, device=device),
        torch.zeros(B, dtype=torch.int32, device=device),
    )


def random_instances(B, K, H, W, gen):
    xy0 = torch.rand(B, K, 2, generator=gen) * torch.tensor([W, H])
    size = torch.rand(B, K, 2, generator=gen) * torch.tensor([W, H]) / 2
    xy1 = torch.minimum(xy0 + size, torch.tensor([W, H]).float())
    boxes = torch.cat((xy0, xy1), -1)
    areas = (size.prod(-1) * torch.rand(B, K, generator=gen)).floor()
    valid = torch.rand(B, K, generator=gen) < 0.8
    return boxes, areas, valid


def check_patches(out, H, W, P, l):
    """Count, mask, grid alignment, inside the image and the pairwise distance rule."""
    assert (out.count >= 0).all() and (out.count <= P).all()
    slots = torch.arange(P)
    assert torch.equal(out.valid, slots < out.count[..., None])
    n_images = out.count.numel()
    c = out.centers.double().reshape(n_images, P, 2)
    v = out.valid.reshape(n_images, P)
    assert (c[~v] == 0).all()
    for centers, n in zip(c, v.sum(-1).tolist(), strict=True):
        x = centers[:n]
        top_left = x - l / 2
        assert torch.equal(top_left, top_left.round()), "patches must lie on the pixel grid"
        assert (
            (top_left >= 0).all() and (x[:, 0] + l / 2 <= W).all() and (x[:, 1] + l / 2 <= H).all()
        )
        d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
        off = ~torch.eye(n, dtype=torch.bool)
        assert (d2[off] >= 2 * l * l).all()
        # no two accepted squares overlap
        gap = (x[:, None] - x[None]).abs()
        assert not ((gap < l).all(-1) & off).any()


# ----------------------------------------------------------------------------- accept kernel


def test_accept_kernel_matches_reference_loop():
    gen = torch.Generator().manual_seed(1)
    for B, T, P, H, W, l in [(3, 200, 12, 40, 60, 5), (2, 50, 50, 30, 30, 8), (4, 300, 1, 9, 9, 9)]:
        cand, pos, cnt = random_candidates(B, T, P, H, W, l, gen)
        got = accept_op()(cand, pos, cnt, l)
        want = ref.snog_accept(cand, pos, cnt, l)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_accept_is_greedy_by_hand():
    # l = 2, so candidates closer than sqrt(8) to an accepted one are rejected
    cand = torch.tensor(
        [[[0, 0], [1, 1], [-1, 5], [2, 2], [0, 3], [5, 5], [9, 9]]], dtype=torch.int32
    )
    pos = torch.zeros(1, 3, 2, dtype=torch.int32)
    out_pos, out_cnt = accept_op()(cand, pos, torch.zeros(1, dtype=torch.int32), 2)
    # (1,1): d2 = 2 < 8; (-1,5): outside; (2,2): d2 = 8 ok; (0,3): d2 = 9 to (0,0), 5 to (2,2)
    assert out_cnt.tolist() == [3]
    assert out_pos[0].tolist() == [[0, 0], [2, 2], [5, 5]]


def test_accept_continues_from_state():
    gen = torch.Generator().manual_seed(2)
    cand, pos, cnt = random_candidates(3, 120, 20, 50, 50, 4, gen)
    full = accept_op()(cand, pos, cnt, 4)
    half = accept_op()(cand[:, :60].contiguous(), pos, cnt, 4)
    resumed = accept_op()(cand[:, 60:].contiguous(), *half, 4)
    assert torch.equal(full[0], resumed[0]) and torch.equal(full[1], resumed[1])
    assert torch.equal(ref.snog_accept(cand[:, 60:], *half, 4)[0], resumed[0])


def test_accept_does_not_modify_inputs_and_checks_them():
    gen = torch.Generator().manual_seed(3)
    cand, pos, cnt = random_candidates(2, 30, 5, 20, 20, 3, gen)
    pos_before, cnt_before = pos.clone(), cnt.clone()
    accept_op()(cand, pos, cnt, 3)
    assert torch.equal(pos, pos_before) and torch.equal(cnt, cnt_before)
    with pytest.raises(RuntimeError, match="int32"):
        accept_op()(cand.long(), pos, cnt, 3)
    with pytest.raises(RuntimeError, match="count"):
        accept_op()(cand, pos, torch.full((2,), 9, dtype=torch.int32), 3)


def test_accept_opcheck():
    gen = torch.Generator().manual_seed(4)
    cand, pos, cnt = random_candidates(2, 40, 6, 24, 32, 4, gen)
    torch.library.opcheck(torch.ops.gaussocc.snog_accept.default, (cand, pos, cnt, 4))
    torch.library.opcheck(torch.ops.gaussocc.snog_accept.default, (cand[:0], pos[:0], cnt[:0], 4))


# ----------------------------------------------------------------------------- sampler


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(0, 3),
    K=st.integers(0, 5),
    H=st.integers(1, 48),
    W=st.integers(1, 64),
    P=st.integers(0, 20),
    l=st.integers(1, 12),
    gamma=st.sampled_from([0.0, 0.3, 1.0]),
    tries=st.integers(0, 200),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampler_properties_and_backends_agree(B, K, H, W, P, l, gamma, tries, seed):
    boxes, areas, valid = random_instances(B, K, H, W, torch.Generator().manual_seed(seed))
    outs = {}
    for backend in ("cpu", "reference"):
        gen = torch.Generator().manual_seed(seed)
        outs[backend] = go.snog_sample(
            boxes,
            areas,
            (H, W),
            P,
            l,
            background_ratio=gamma,
            max_tries=tries,
            generator=gen,
            valid=valid,
            backend=backend,
        )
    check_patches(outs["cpu"], H, W, P, l)
    for a, b in zip(outs["cpu"], outs["reference"], strict=True):
        assert torch.equal(a, b)
    if l > H or l > W or tries == 0:
        assert (outs["cpu"].count == 0).all()


def test_same_seed_same_output_and_different_seed_differs():
    boxes, areas, valid = random_instances(4, 6, 96, 160, torch.Generator().manual_seed(0))

    def run(seed):
        return go.snog_sample(
            boxes,
            areas,
            (96, 160),
            24,
            6,
            generator=torch.Generator().manual_seed(seed),
            valid=valid,
        )

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a.centers, c.centers)


def test_fills_all_patches_when_room_and_stops_when_full():
    boxes = torch.tensor([[[40.0, 30.0, 90.0, 70.0]]]).expand(3, 1, 4)
    out = go.snog_sample(
        boxes,
        torch.full((3, 1), 2000.0),
        (128, 128),
        12,
        4,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.count.tolist() == [12, 12, 12]
    # a 16 x 16 image holds at most two 8 x 8 patches (opposite corners, 8 sqrt(2) apart)
    small = go.snog_sample(
        torch.zeros(4, 0, 4),
        torch.zeros(4, 0),
        (16, 16),
        10,
        8,
        max_tries=5000,
        generator=torch.Generator().manual_seed(0),
    )
    assert ((small.count >= 1) & (small.count <= 2)).all()
    check_patches(small, 16, 16, 10, 8)
    # an image the size of one patch holds exactly that patch
    one = go.snog_sample(
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0),
        (8, 8),
        10,
        8,
        generator=torch.Generator().manual_seed(0),
    )
    assert one.count.tolist() == [1, 1] and one.centers[:, 0].tolist() == [[4.0, 4.0]] * 2


def test_leading_batch_dims_and_dtypes():
    boxes, areas, valid = random_instances(6, 3, 40, 50, torch.Generator().manual_seed(5))
    flat = go.snog_sample(
        boxes, areas, (40, 50), 5, 4, valid=valid, generator=torch.Generator().manual_seed(1)
    )
    nested = go.snog_sample(
        boxes.reshape(2, 3, 3, 4),
        areas.reshape(2, 3, 3),
        (40, 50),
        5,
        4,
        valid=valid.reshape(2, 3, 3),
        generator=torch.Generator().manual_seed(1),
    )
    assert nested.centers.shape == (2, 3, 5, 2) and nested.count.shape == (2, 3)
    assert torch.equal(nested.centers.reshape(6, 5, 2), flat.centers)
    assert flat.centers.dtype == torch.float32
    half = go.snog_sample(
        boxes.half(),
        areas.long(),
        (40, 50),
        5,
        4,
        valid=valid,
        generator=torch.Generator().manual_seed(1),
    )
    assert half.centers.dtype == torch.float32
    dbl = go.snog_sample(
        boxes.double(),
        areas,
        (40, 50),
        5,
        4,
        valid=valid,
        generator=torch.Generator().manual_seed(1),
    )
    assert dbl.centers.dtype == torch.float64


def test_degenerate_instances_never_nan():
    # one-pixel boxes, zero-size boxes, area 0 and area 1: finite outputs, patches still drawn
    boxes = torch.tensor(
        [[[10.0, 10.0, 11.0, 11.0], [20.0, 5.0, 20.0, 5.0], [0.0, 0.0, 64.0, 48.0]]]
    )
    areas = torch.tensor([[1.0, 0.0, 1.0]])
    out = go.snog_sample(
        boxes,
        areas,
        (48, 64),
        8,
        4,
        background_ratio=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.isfinite(out.centers).all() and int(out.count) >= 1
    check_patches(out, 48, 64, 8, 4)
    # all areas zero and gamma = 0: uniform fallback instead of NaN weights
    zero = go.snog_sample(
        boxes,
        torch.zeros(1, 3),
        (48, 64),
        8,
        4,
        background_ratio=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert int(zero.count) == 8


def test_one_pixel_instance_gets_its_own_patches():
    # gamma = 0, areas 1 and 0: the one-pixel instance at (x, y) = (30.5, 20.5) takes everything
    boxes = torch.tensor([[[30.0, 20.0, 31.0, 21.0], [2.0, 2.0, 60.0, 40.0]]])
    out = go.snog_sample(
        boxes,
        torch.tensor([[1.0, 0.0]]),
        (48, 64),
        4,
        3,
        background_ratio=0.0,
        max_tries=50,
        generator=torch.Generator().manual_seed(0),
    )
    assert int(out.count) == 1  # every later candidate lands on the same patch
    assert (out.centers[0, 0] - torch.tensor([30.5, 20.5])).abs().max() <= 0.5


def test_one_instance_gamma0_about_91_percent_inside_box():
    # sigma = half-size / 2 per axis: P(|z| < 2)^2 = 0.9545^2 = 0.911 inside the box
    N = 3000
    box = torch.tensor([150.0, 100.0, 250.0, 160.0])
    out = go.snog_sample(
        box.expand(N, 1, 4),
        torch.full((N, 1), 5000.0),
        (260, 400),
        1,
        2,
        background_ratio=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert (out.count == 1).all()
    x, y = out.centers[:, 0].unbind(-1)
    inside = ((x >= 150) & (x <= 250) & (y >= 100) & (y <= 160)).double().mean().item()
    assert abs(inside - 0.911) < 0.03
    # centred on the box centre
    assert abs(x.mean().item() - 200) < 1.0 and abs(y.mean().item() - 130) < 1.0
    assert abs(x.std().item() - 25) < 1.5 and abs(y.std().item() - 15) < 1.0


def test_gamma1_is_uniform_chi_square():
    # 60 x 100 possible top-left corners, binned 4 x 5: 20 equiprobable cells
    N, H, W, l = 3000, 67, 107, 8
    boxes = torch.tensor([[10.0, 10.0, 30.0, 30.0]]).expand(N, 1, 4)
    out = go.snog_sample(
        boxes,
        torch.full((N, 1), 400.0),
        (H, W),
        1,
        l,
        background_ratio=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    top_left = (out.centers[:, 0] - l / 2).long()
    cell = (top_left[:, 1] // 15) * 5 + top_left[:, 0] // 20
    counts = torch.bincount(cell, minlength=20).double()
    expected = N / 20
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < CHI2_999[19]
    # and not everything in the top-left cell of the coarse grid (a stuck sampler)
    assert counts.max().item() < 2 * expected


def test_gamma1_reaches_every_patch_position():
    # 9 x 11 top-left corners, ~30 draws each: every one, the borders included, must appear
    N, H, W, l = 3000, 12, 14, 4
    out = go.snog_sample(
        torch.zeros(N, 0, 4),
        torch.zeros(N, 0),
        (H, W),
        1,
        l,
        generator=torch.Generator().manual_seed(0),
    )
    top_left = (out.centers[:, 0] - l / 2).long()
    seen = torch.zeros(H - l + 1, W - l + 1, dtype=torch.bool)
    seen[top_left[:, 1], top_left[:, 0]] = True
    assert seen.all()


def test_mixture_weights_follow_log_area():
    # three far-apart boxes; gamma = 0; the first patch of each image comes from instance k
    # with probability log(1 + s_k) / sum_j log(1 + s_j)
    N = 3000
    boxes = torch.tensor(
        [[20.0, 20.0, 40.0, 40.0], [120.0, 20.0, 140.0, 40.0], [220.0, 20.0, 240.0, 40.0]]
    )
    areas = torch.tensor([3.0, 300.0, 30000.0])
    out = go.snog_sample(
        boxes.expand(N, 3, 4),
        areas.expand(N, 3),
        (64, 264),
        1,
        2,
        background_ratio=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    which = torch.bucketize(out.centers[:, 0, 0], torch.tensor([80.0, 180.0]))
    counts = torch.bincount(which, minlength=3).double()
    pi = torch.log1p(areas.double())
    pi = pi / pi.sum()
    chi2 = ((counts - N * pi) ** 2 / (N * pi)).sum().item()
    assert chi2 < CHI2_999[2]
    # larger instances get more, but the smallest (area 3) is far from 0: ~8%
    # (area-proportional weights would give it 0.01%)
    assert counts[0] < counts[1] < counts[2] and counts[0] > 0.05 * N


def test_valid_mask_drops_instances():
    boxes = torch.tensor([[[10.0, 10.0, 20.0, 20.0], [200.0, 10.0, 210.0, 20.0]]]).expand(200, 2, 4)
    areas = torch.full((200, 2), 100.0)
    valid = torch.tensor([True, False]).expand(200, 2)
    out = go.snog_sample(
        boxes,
        areas,
        (64, 256),
        1,
        2,
        background_ratio=0.0,
        valid=valid,
        generator=torch.Generator().manual_seed(0),
    )
    assert (out.centers[:, 0, 0] < 40).all()


def test_bad_inputs_raise_clear_errors():
    boxes = torch.tensor([[[10.0, 10.0, 20.0, 20.0]]])
    areas = torch.tensor([[50.0]])
    with pytest.raises(ValueError, match="x0 <= x1"):
        go.snog_sample(torch.tensor([[[20.0, 10.0, 10.0, 20.0]]]), areas, (64, 64), 4, 4)
    with pytest.raises(ValueError, match="outside"):
        go.snog_sample(torch.tensor([[[70.0, 10.0, 80.0, 20.0]]]), areas, (64, 64), 4, 4)
    with pytest.raises(ValueError, match="areas must be >= 0"):
        go.snog_sample(boxes, -areas, (64, 64), 4, 4)
    with pytest.raises(ValueError, match="areas must have shape"):
        go.snog_sample(boxes, areas[0], (64, 64), 4, 4)
    with pytest.raises(ValueError, match="boxes must have shape"):
        go.snog_sample(boxes[..., :3], areas, (64, 64), 4, 4)
    with pytest.raises(TypeError, match="boxes must be a floating-point"):
        go.snog_sample(boxes.long(), areas, (64, 64), 4, 4)
    with pytest.raises(ValueError, match="NaN"):
        go.snog_sample(boxes * float("nan"), areas, (64, 64), 4, 4)
    with pytest.raises(ValueError, match="image_size"):
        go.snog_sample(boxes, areas, (64,), 4, 4)
    with pytest.raises(ValueError, match="image_size"):
        go.snog_sample(boxes, areas, (0, 64), 4, 4)
    with pytest.raises(ValueError, match="patch_size"):
        go.snog_sample(boxes, areas, (64, 64), 4, 0)
    with pytest.raises(ValueError, match="num_patches"):
        go.snog_sample(boxes, areas, (64, 64), -1, 4)
    with pytest.raises(ValueError, match="background_ratio"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, background_ratio=1.5)
    with pytest.raises(ValueError, match="max_tries"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, max_tries=-3)
    with pytest.raises(ValueError, match="valid must be a bool"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, valid=torch.ones(1, 1))
    with pytest.raises(TypeError, match="generator"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, generator=0)
    with pytest.raises(ValueError, match="backend"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, backend="gpu")
    with pytest.raises(ValueError, match="needs tensors on cuda"):
        go.snog_sample(boxes, areas, (64, 64), 4, 4, backend="cuda")
    # invalid (padding) boxes may hold anything
    pad = torch.tensor([[[10.0, 10.0, 20.0, 20.0], [float("nan"), 0.0, -5.0, 0.0]]])
    out = go.snog_sample(
        pad,
        torch.tensor([[50.0, -1.0]]),
        (64, 64),
        4,
        4,
        valid=torch.tensor([[True, False]]),
        generator=torch.Generator().manual_seed(0),
    )
    assert int(out.count) == 4


def test_boxes_partly_outside_are_clipped():
    # the box reaches past the right edge; after clipping it is [96, 128] x [0, 32]
    boxes = torch.tensor([[96.0, 0.0, 200.0, 32.0]]).expand(500, 1, 4)
    out = go.snog_sample(
        boxes,
        torch.full((500, 1), 900.0),
        (64, 128),
        1,
        2,
        background_ratio=0.0,
        generator=torch.Generator().manual_seed(0),
    )
    x = out.centers[:, 0, 0]
    assert (out.count == 1).all() and abs(x.mean().item() - 112) < 1.5


# ----------------------------------------------------------------------------- patch helpers


def test_patch_pixels_cover_exactly_the_patches():
    out = go.snog_sample(
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0),
        (20, 30),
        5,
        3,
        generator=torch.Generator().manual_seed(0),
    )
    px = go.patch_pixels(out.centers, 3, (20, 30), out.valid)
    for b in range(2):
        hit = torch.zeros(20, 30, dtype=torch.long)
        for p in range(int(out.count[b])):
            x, y = out.centers[b, p].tolist()
            r0, c0 = int(y - 1.5), int(x - 1.5)
            hit[r0 : r0 + 3, c0 : c0 + 3] += 1
            assert torch.equal(
                px.index[b, p].flatten().sort().values,
                torch.tensor([r * 30 + c for r in range(r0, r0 + 3) for c in range(c0, c0 + 3)]),
            )
        assert hit.max() <= 1  # non-overlapping
        flat = px.index[b][out.valid[b]].flatten()
        assert torch.equal(torch.bincount(flat, minlength=600).reshape(20, 30), hit)
    assert torch.equal(px.uv[..., 0], px.cols + 0.5) and torch.equal(px.uv[..., 1], px.rows + 0.5)
    assert (px.index[~out.valid] == 0).all()
    with pytest.raises(ValueError, match="outside"):
        go.patch_pixels(torch.tensor([[1.0, 5.0]]), 4, (20, 30))


def test_patch_rays_unproject_to_pixels():
    gen = torch.Generator().manual_seed(0)
    Ks = torch.tensor([[[80.0, 0.5, 30.0], [0.0, 90.0, 20.0], [0.0, 0.0, 1.0]]]).repeat(2, 1, 1)
    Ks[1, 0, 0] = 60.0
    uv = torch.rand(2, 4, 3, 3, 2, generator=gen, dtype=torch.float64) * 50
    d = go.patch_rays(uv, Ks)
    reproj = torch.einsum("bij,bpqrj->bpqri", Ks.double(), d)
    assert torch.allclose(reproj[..., :2], uv, atol=1e-9) and torch.allclose(
        reproj[..., 2], torch.ones(()).double()
    )
    unit = go.patch_rays(uv, Ks, normalize=True)
    assert torch.allclose(unit.norm(dim=-1), torch.ones(()).double())
    assert torch.allclose(unit * d.norm(dim=-1, keepdim=True), d)
    with pytest.raises(ValueError, match="leading dims"):
        go.patch_rays(uv, Ks[:1].expand(3, 3, 3))


# ----------------------------------------------------------------------------- CUDA


@requires_cuda
def test_cuda_accept_matches_cpu():
    gen = torch.Generator().manual_seed(9)
    for B, T, P, H, W, l in [
        (37, 500, 64, 96, 320, 8),
        (5, 80, 200, 30, 30, 2),
        (0, 10, 4, 9, 9, 3),
    ]:
        cand, pos, cnt = random_candidates(B, T, P, H, W, l, gen)
        cpu = accept_op()(cand, pos, cnt, l)
        gpu = accept_op()(cand.cuda(), pos.cuda(), cnt.cuda(), l)
        assert torch.equal(cpu[0], gpu[0].cpu()) and torch.equal(cpu[1], gpu[1].cpu())
    torch.library.opcheck(
        torch.ops.gaussocc.snog_accept.default, (cand.cuda(), pos.cuda(), cnt.cuda(), l)
    )


@requires_cuda
def test_cuda_sampler_matches_reference_and_is_reproducible():
    boxes, areas, valid = random_instances(8, 20, 192, 640, torch.Generator().manual_seed(0))
    args = (boxes.cuda(), areas.cuda(), (192, 640), 64, 8)
    outs = [
        go.snog_sample(
            *args,
            valid=valid.cuda(),
            backend=backend,
            generator=torch.Generator("cuda").manual_seed(3),
        )
        for backend in ("cuda", "reference", "cuda")
    ]
    for a, b, c in zip(*outs, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)
    check_patches(go.SnogSamples(*(t.cpu() for t in outs[0])), 192, 640, 64, 8)


def test_patch_rays_camera_form_matches_intrinsics():
    """patch_rays(uv, cams) with one-view Cameras is K^-1 (u, v, 1) of the cameras' Ks; the
    deprecated patch_rays(uv, Ks) agrees and warns."""
    gen = torch.Generator().manual_seed(1)
    Ks = torch.tensor([[[80.0, 0.0, 30.0], [0.0, 90.0, 20.0], [0.0, 0.0, 1.0]]]).repeat(2, 1, 1)
    Ks[1, 0, 0] = 60.0
    cams = go.Cameras(torch.eye(4).expand(2, 1, 4, 4), Ks[:, None], height=40, width=60)
    uv = torch.rand(2, 4, 3, 3, 2, generator=gen, dtype=torch.float64) * 50
    d = go.patch_rays(uv, cams)
    reproj = torch.einsum("bij,bpqrj->bpqri", Ks.double(), d)
    torch.testing.assert_close(reproj[..., :2], uv)
    with pytest.warns(DeprecationWarning, match="patch_rays"):
        torch.testing.assert_close(go.patch_rays(uv, Ks), d)
    two_views = go.Cameras(
        torch.eye(4).expand(2, 2, 4, 4), Ks[:, None].expand(2, 2, 3, 3), height=40, width=60
    )
    with pytest.raises(ValueError, match="one view"):
        go.patch_rays(uv, two_views)
