"""The example model assemblies: forward passes, losses and gradients, short training runs that
must lower the loss, and GPOccLite's streaming memory."""

import pytest
import torch

from gaussocc_ops import losses
from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.models import (
    GPOccLite,
    SGROccLifter,
    ViPOccDepthBranch,
    foundation_prior,
    make_view_pair,
)
from gaussocc_ops.examples.models.vipocc import DOMAIN_GAP, surface_texture

GRID = scenes.indoor_grid(shape=(30, 30, 18), voxel_size=0.16)
SIZE = (48, 64)
NUM_CLASSES = len(scenes.INDOOR_CLASSES)


@pytest.fixture(scope="module")
def batch():
    return scenes.make_batch([0, 1], grid=GRID, image_size=SIZE)


@pytest.fixture(scope="module")
def pair():
    return make_view_pair(
        [0, 1], grid=GRID, image_size=SIZE, generator=torch.Generator().manual_seed(0)
    )


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


def _assert_all_grads(model, skip=()):
    for name, grad in _grads(model).items():
        if name.split(".")[0] in skip:
            continue
        assert grad is not None and torch.isfinite(grad).all(), name
        assert grad.abs().sum() > 0, f"no gradient reaches {name}"


def _train(model, step, steps, lr):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for i in range(steps):
        loss = step(i)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    return history


def _final(history, k=3):
    return sum(history[-k:]) / k


# ---------------------------------------------------------------- GPOccLite


def test_gpocc_forward_losses_and_gradients(batch):
    torch.manual_seed(0)
    model = GPOccLite(GRID, NUM_CLASSES)
    out = model(batch.rgb, batch.K, batch.cam2world, batch.prior)
    assert out.probs.shape == (2, NUM_CLASSES, *GRID.shape)
    # probabilistic superposition: classes sum to one and the empty channel is 1 - occupancy
    torch.testing.assert_close(out.probs.sum(1), torch.ones_like(out.occupancy))
    torch.testing.assert_close(out.probs[:, 0], 1 - out.occupancy)
    # pruning kept only Gaussians above the threshold
    g = out.gaussians
    assert bool((g.opacities[g.valid] > model.prune_threshold).all())
    # the Gaussians sit in front of the cameras they were sampled from
    world2cam = torch.linalg.inv(batch.cam2world)
    cam = torch.einsum("bij,bnj->bni", world2cam[:, :3, :3], g.means) + world2cam[:, None, :3, 3]
    assert bool((cam[..., 2][g.valid] > 0).all())
    terms = model.loss(out, batch)
    assert set(terms) == {"focal", "lovasz", "geo_scal", "sem_scal", "depth", "total"}
    for name, value in terms.items():
        assert torch.isfinite(value), name
    torch.testing.assert_close(terms["total"], sum(v for k, v in terms.items() if k != "total"))
    terms["total"].backward()
    _assert_all_grads(model)


def test_gpocc_training_lowers_loss(batch):
    model = GPOccLite(GRID, NUM_CLASSES)

    def step(_):
        return model.loss(model(batch.rgb, batch.K, batch.cam2world, batch.prior), batch)["total"]

    history = _train(model, step, steps=20, lr=1e-2)
    assert _final(history) < 0.7 * history[0], history


def test_gpocc_stream_of_one_frame_matches_forward(batch):
    torch.manual_seed(0)
    model = GPOccLite(GRID, NUM_CLASSES).eval()
    with torch.no_grad():
        out = model(batch.rgb[:1], batch.K[:1], batch.cam2world[:1], batch.prior[:1])
    frame = (batch.rgb[0], batch.K[0], batch.cam2world[0], batch.prior[0])
    memory, occ = model.stream([frame], max_size=None)
    assert len(memory) == int(out.gaussians.valid.sum())
    # the camera -> world round trip moves means by float32 round-off, which can move a voxel
    # centre across the 3-sigma support edge of a Gaussian (a jump of a * exp(-4.5) <= 0.011)
    for streamed, direct in ((occ.occupancy, out.occupancy[0]), (occ.probs, out.probs[0])):
        diff = (streamed - direct).abs()
        assert diff.max() < 0.05 and diff.mean() < 1e-3, (diff.max(), diff.mean())


def test_gpocc_streaming_memory_stays_bounded():
    torch.manual_seed(0)
    model = GPOccLite(GRID, NUM_CLASSES).eval()
    scene = scenes.make_scene(3, grid=GRID)
    max_size = 1500
    memory, total_inserted = None, 0
    for view in range(10):
        frame = scenes.render_frame(scene, scenes.walk_camera(scene, 36.0 * view, image_size=SIZE))
        before = 0 if memory is None else len(memory)
        memory, occ = model.stream(
            [(frame.rgb, frame.K, frame.cam2world, frame.depth)], memory, max_size=max_size
        )
        total_inserted += len(memory) - before
        assert len(memory) <= max_size
        assert occ.occupancy.min() >= 0 and occ.occupancy.max() <= 1
        torch.testing.assert_close(occ.probs.sum(0), torch.ones(GRID.shape))
    assert memory.frame_index == 10
    # the bound was exercised: one frame alone already brings more Gaussians than it allows
    with torch.no_grad():
        one = model(frame.rgb[None], frame.K[None], frame.cam2world[None], frame.depth[None])
    one = one.gaussians
    assert int(one.valid.sum()) > max_size


# ---------------------------------------------------------------- ViPOccDepthBranch


def test_priors_are_the_documented_affine_distortions():
    depth = torch.rand(3, 1, 6, 8) * 3 + 0.5
    noisy = scenes.noisy_prior(depth, 0.2, 0.3, torch.Generator().manual_seed(1))
    gap = foundation_prior(depth, torch.Generator().manual_seed(1))
    a, b, jitter = DOMAIN_GAP["a"], DOMAIN_GAP["b"], DOMAIN_GAP["jitter"]
    for i in range(3):
        x = depth[i].flatten()
        A = torch.stack([x, torch.ones_like(x)], 1)
        scale, shift = torch.linalg.lstsq(A, noisy[i].flatten()[:, None]).solution[:, 0]
        assert 0.8 <= scale <= 1.2 and -0.3 <= shift <= 0.3
        torch.testing.assert_close(scale * x + shift, noisy[i].flatten())
        # foundation_prior: s (a D + b), one s per image within the jitter
        s = gap[i].flatten() / (a * x + b)
        torch.testing.assert_close(s, s[:1].expand_as(s))
        assert abs(float(s[0]) - 1) <= jitter


def test_view_pairs_are_consecutive_frames_that_the_true_depth_aligns(pair):
    # 10 degrees along the walk: the cameras are 0.26 m apart and turned by 10 degrees
    centres = pair.cam2world[:, :, :3, 3]
    torch.testing.assert_close(
        (centres[:, 0] - centres[:, 1]).norm(dim=-1), torch.full((2,), 0.2615), atol=2e-3, rtol=0
    )
    R = pair.target_to_source[:, :3, :3]
    angle = torch.rad2deg(torch.arccos((R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2))
    assert ((angle - 10).abs() < 2.5).all()

    def ta(depth):
        return losses.photometric_alignment_loss(
            pair.rgb[:, 0], pair.rgb[:, 1], depth, pair.target_to_source, pair.K
        )

    # the premise of ViPOcc's temporal alignment: the true depth aligns better than the prior
    assert ta(pair.depth[:, 0, 0]) < 0.8 * ta(pair.prior[:, 0, 0])
    assert ta(pair.depth[:, 0, 0]) < ta(1.1 * pair.depth[:, 0, 0])
    assert ta(pair.depth[:, 0, 0]) < ta(0.9 * pair.depth[:, 0, 0])


@pytest.fixture(scope="module")
def textured_pair():
    return make_view_pair(
        [0, 1], grid=GRID, image_size=SIZE, texture=0.3, generator=torch.Generator().manual_seed(0)
    )


def test_surface_texture_is_a_deterministic_solid_texture():
    bounds = torch.tensor([[0.0, 0.0, 0.0], [4.8, 4.8, 2.9]])
    points = torch.rand(500, 3, generator=torch.Generator().manual_seed(0)) * bounds[1]
    a = surface_texture(points, 3, bounds=bounds)
    assert a.shape == (500,) and bool((a.abs() <= 1).all())
    torch.testing.assert_close(a, surface_texture(points, 3, bounds=bounds))  # same room
    assert (a - surface_texture(points, 4, bounds=bounds)).abs().mean() > 0.1  # another room
    # a function of the world point only: any batch layout gives the same values
    torch.testing.assert_close(
        surface_texture(points.view(20, 25, 3), 3, bounds=bounds), a.view(20, 25)
    )
    # a single octave keeps its spread (values of uniform lattice nodes, interpolated)
    one = surface_texture(points, 3, bounds=bounds, cells=(0.5,))
    assert one.abs().max() <= 1 and one.std() > 0.2
    # smooth: points 1 mm apart differ by far less than points a cell apart
    near = surface_texture(points + 1e-3, 3, bounds=bounds)
    far = surface_texture(points + 0.25, 3, bounds=bounds)
    assert (near - a).abs().max() < 0.1 < (far - a).abs().mean()


def test_textured_view_pairs_show_depth_on_walls(pair, textured_pair):
    # the geometry and the priors are those of the plain renders; only the colours change
    for name in ("depth", "prior", "K", "cam2world", "boxes2d"):
        torch.testing.assert_close(getattr(textured_pair, name), getattr(pair, name))
    ratio = textured_pair.rgb / pair.rgb.clamp_min(1e-6)
    lit = pair.rgb > 0.05
    assert bool(((ratio[lit] >= 0.7 - 1e-4) & (ratio[lit] <= 1.3 + 1e-4)).all())
    # the flat-coloured walls have no image gradient inside a face; the textured ones do
    scene = scenes.make_scene(0, grid=GRID)
    frame = scenes.render_frame(scene, scenes.walk_camera(scene, 30.0, image_size=SIZE))
    from gaussocc_ops.examples.models.vipocc import _textured

    wall = frame.semantics == 2
    inner = wall[1:-1, 1:-1] & wall[:-2, 1:-1] & wall[2:, 1:-1] & wall[1:-1, :-2] & wall[1:-1, 2:]

    def flat_share(rgb):
        gx = (rgb[:, 1:-1, 2:] - rgb[:, 1:-1, :-2]).abs().amax(0)
        gy = (rgb[:, 2:, 1:-1] - rgb[:, :-2, 1:-1]).abs().amax(0)
        return float(((gx < 1e-4) & (gy < 1e-4))[inner].float().mean())

    assert inner.sum() > 200
    assert flat_share(frame.rgb) > 0.8
    assert flat_share(_textured(frame, scene, 0.3)) < 0.05
    with pytest.raises(ValueError, match="texture"):
        make_view_pair([0], grid=GRID, image_size=SIZE, angles=[0.0], texture=1.5)


def test_texture_makes_the_true_depth_stand_out_in_temporal_alignment(pair, textured_pair):
    def ta(p, depth):
        return float(
            losses.photometric_alignment_loss(
                p.rgb[:, 0], p.rgb[:, 1], depth, p.target_to_source, p.K
            )
        )

    depth, prior = pair.depth[:, 0, 0], pair.prior[:, 0, 0]
    # along a global scale of the true depth the loss is lowest at the truth
    scales = [0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25]
    curve = [ta(textured_pair, s * depth) for s in scales]
    assert min(range(len(scales)), key=curve.__getitem__) == scales.index(1.0), curve
    # and the prior is clearly worse than the truth
    assert ta(textured_pair, depth) < 0.7 * ta(textured_pair, prior)

    # per pixel: on the flat renders most pixels' photometric error does not change when
    # their depth is 15 % wrong (no depth signal there); on the textured ones far more do
    def sensitive_share(p):
        from gaussocc_ops.losses.photometric import warp_to_target

        def error(d):
            w = warp_to_target(p.rgb[:, 1], d, p.target_to_source, p.K)
            return (p.rgb[:, 0] - w.image).abs().mean(1), w.valid

        (e0, v0), (e1, v1) = error(depth), error(1.15 * depth)
        return float(((e1 - e0).abs() > 0.01)[v0 & v1].float().mean())

    plain, textured = sensitive_share(pair), sensitive_share(textured_pair)
    assert plain < 0.3 and textured > 2 * plain, (plain, textured)


def test_vipocc_encoders_are_parallel(pair):
    # F_s and F_r come from separate encoders: the aligned depth does not depend on the
    # density field's encoder, and L_ta's gradient does not reach it
    torch.manual_seed(0)
    model = ViPOccDepthBranch()
    with torch.no_grad():
        model.align.head.weight.normal_(0, 1e-2)
        before = model(pair.rgb[:, 0], pair.prior[:, 0])
        for p in model.recon_encoder.parameters():
            p.add_(torch.randn_like(p))
        after = model(pair.rgb[:, 0], pair.prior[:, 0])
    torch.testing.assert_close(after.depth, before.depth)
    assert (after.recon_features - before.recon_features).abs().max() > 1e-3
    model.loss(pair, generator=torch.Generator().manual_seed(0))["ta"].backward()
    assert all(p.grad is None for p in model.recon_encoder.parameters())
    assert model.align.head.weight.grad.abs().sum() > 0


def test_vipocc_forward_losses_and_gradients(pair):
    torch.manual_seed(0)
    model = ViPOccDepthBranch()
    out = model(pair.rgb[:, 0], pair.prior[:, 0])
    # zero-initialised inverse-depth alignment returns the prior
    torch.testing.assert_close(out.depth, pair.prior[:, 0], rtol=1e-5, atol=1e-5)
    terms = model.loss(pair, generator=torch.Generator().manual_seed(0))
    assert set(terms) == {"ta", "rc_depth", "rc_rgb", "total"}
    for name, value in terms.items():
        assert torch.isfinite(value) and value > 0, name
    terms["total"].backward()
    # the depth branch's encoder and `spatial` feed only the zero-initialised alignment head:
    # no gradient before one step
    _assert_all_grads(model, skip=("encoder", "spatial"))
    assert model.align.head.weight.grad.abs().sum() > 0


def test_vipocc_correction_bound_keeps_the_depth_near_the_prior(pair):
    torch.manual_seed(0)
    free = ViPOccDepthBranch()
    bounded = ViPOccDepthBranch(correction_bound=0.3)
    bounded.load_state_dict(free.state_dict())
    with torch.no_grad():
        bounded.align.head.weight.normal_(0, 1e-3)  # a small correction: the bound is inactive
        free.load_state_dict(bounded.state_dict())
        prior = pair.prior[:, 0]
        small_free = free(pair.rgb[:, 0], prior).depth - prior
        small_bounded = bounded(pair.rgb[:, 0], prior).depth - prior
        assert small_free.abs().max() > 1e-3
        torch.testing.assert_close(small_bounded, small_free, rtol=1e-2, atol=1e-5)
        for model in (free, bounded):
            model.align.head.weight.normal_(0, 3.0)  # a large one: the bound holds
        depth = bounded(pair.rgb[:, 0], prior).depth
        assert (depth >= prior / 1.3 - 1e-4).all() and (depth <= prior / 0.7 + 1e-4).all()
        unbounded = free(pair.rgb[:, 0], prior).depth
        assert ((unbounded > prior / 0.7) | (unbounded < prior / 1.3)).any()


def test_vipocc_renders_patches_of_the_sampler(pair):
    torch.manual_seed(0)
    model = ViPOccDepthBranch(num_patches=8, patch_size=4)
    out = model(pair.rgb[:, 0], pair.prior[:, 0])
    from gaussocc_ops.snog import snog_sample

    p = snog_sample(
        pair.boxes2d,
        pair.areas,
        SIZE,
        8,
        4,
        valid=pair.instance_valid,
        generator=torch.Generator().manual_seed(0),
    )
    r = model.render_patches(
        out.recon_features, pair.K, pair.rgb[:, 1], pair.target_to_source, p.centers, p.valid
    )
    assert r.distance.shape == (2, 8, 4, 4) and r.rgb.shape == (2, 8, 3, 4, 4)
    # volume rendering: the weights sum to at most one, so the rendered distance lies in
    # [0, far] and the colour within the source image's range
    assert bool((r.distance >= 0).all() and (r.distance <= model.far).all())
    assert bool((r.rgb >= 0).all() and (r.rgb <= pair.rgb[:, 1].max() + 1e-6).all())
    # the gathered pixels are those of the patches (centre = top-left + l/2)
    rows, cols = r.index // SIZE[1], r.index % SIZE[1]
    torch.testing.assert_close(cols[..., 0, 0].float() + 2, p.centers[..., 0] * p.valid)
    torch.testing.assert_close(rows[..., 0, 0].float() + 2, p.centers[..., 1] * p.valid)


def test_vipocc_training_lowers_loss(pair):
    model = ViPOccDepthBranch()
    history = _train(
        model,
        lambda i: model.loss(pair, generator=torch.Generator().manual_seed(i))["total"],
        steps=20,
        lr=3e-3,
    )
    assert _final(history) < 0.7 * history[0], history


# ---------------------------------------------------------------- SGROccLifter


def test_sgrocc_forward_losses_and_gradients(batch):
    torch.manual_seed(0)
    model = SGROccLifter(GRID, NUM_CLASSES)
    out = model(batch.rgb, batch.K, batch.cam2world)
    assert out.logits.shape == (2, NUM_CLASSES, *GRID.shape)
    # the zero-initialised refinement head leaves the anchors on the voxel centres
    centers = GRID.centers().reshape(-1, 3).expand(2, -1, -1)
    torch.testing.assert_close(out.anchors, centers)
    terms = model.loss(out, batch)
    for name, value in terms.items():
        assert torch.isfinite(value), name
    terms["total"].backward()
    _assert_all_grads(model)


def test_sgrocc_training_lowers_loss_and_refines_along_rays(batch):
    model = SGROccLifter(GRID, NUM_CLASSES)

    def step(_):
        return model.loss(model(batch.rgb, batch.K, batch.cam2world), batch)["total"]

    history = _train(model, step, steps=12, lr=1e-2)
    assert _final(history) < 0.7 * history[0], history
    with torch.no_grad():
        out = model(batch.rgb, batch.K, batch.cam2world)
    centers = GRID.centers().reshape(-1, 3).expand(2, -1, -1)
    moved = out.anchors - centers
    ray = centers - batch.cam2world[:, None, :3, 3]
    ray = ray / ray.norm(dim=-1, keepdim=True)
    # anchors moved, only along their camera rays, by the bounded residual
    assert moved.abs().max() > 0
    assert bool((out.delta.abs() < model.max_delta).all())
    torch.testing.assert_close(moved, out.delta[..., None] * ray, atol=1e-5, rtol=1e-4)
