"""The demo, its model and its pictures: a short run must learn and write its figures; the
GaussRender term must reach the model's parameters; the cameras, the voxel pictures and the
held-out measures must agree with the exact synthetic renderer."""

import dataclasses
import io
import math
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

import gaussocc_ops as go
from gaussocc_ops.examples import demo, figures, scenes
from gaussocc_ops.examples.models import GaussRenderPlugin, sensor_cameras
from gaussocc_ops.examples.training import (
    FloatingVoxels,
    HeldOutMetrics,
    SceneData,
    progress_bar,
    visible_free_space,
)

GRID = scenes.indoor_grid(shape=(30, 30, 18), voxel_size=0.16)
SIZE = (96, 128)


def test_quick_demo_learns_and_writes_figures(tmp_path, capsys):
    result = demo.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    runs = result["runs"]
    untrained = runs["ce+lovasz"]["epochs"][0]
    for name in ("ce+lovasz", "ce+lovasz+gaussrender"):
        epochs = runs[name]["epochs"]
        assert len(epochs) == 4  # before training and after each of the 3 epochs
        # both start from the same weights
        assert epochs[0]["sc_iou"] == untrained["sc_iou"]
        assert epochs[-1]["sc_iou"] > untrained["sc_iou"] + 0.05, (name, epochs[-1])
        assert epochs[-1]["miou"] > untrained["miou"] + 0.05, (name, epochs[-1])
        assert printed.count(f"[{name}] epoch 3/3") == 1
    assert "held-out results on 4 rooms never seen in training" in printed

    files = result["files"]
    assert [f.name for f in files] == ["demo_predictions.png", "demo_training.png"]
    assert all(str(f) in printed for f in files)  # the summary names the figures
    for f in files:
        image = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).float()
        assert image.std() > 20, f"{f} is blank"
    # the prediction figure draws the first held-out room's floor and walls in their colours
    drawn = _drawn_pixels(files[0])
    assert drawn["floor"] > 1000 and drawn["wall"] > 1000, drawn


def _drawn_pixels(path) -> dict:
    """Per class: the pixels of the image at ``path`` that are its colour times a shade in
    [0.3, 1] (the voxel pictures shade each face)."""
    pixels = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).float().reshape(-1, 3)
    out = {}
    for index, name in enumerate(scenes.INDOOR_CLASSES[1:], start=1):
        color = scenes.CLASS_COLORS[index] * 255
        s = (pixels @ color) / (color @ color)
        fit = (pixels - s[:, None] * color).abs().max(-1).values
        out[name] = int(((fit <= 3) & (s >= 0.3) & (s <= 1.001)).sum())
    return out


def test_prediction_figure_draws_exactly_the_classes_of_the_labels(tmp_path):
    data = SceneData.make([10000], GRID)
    truth = data.voxel_labels[0]
    path = figures.prediction_figure(
        tmp_path / "f.png", data.rgb[0], {"ground truth": truth, "again": truth}, GRID,
        data.K[0], data.cam2world[0], title="room 10000", depth=data.prior[0, 0],
    )
    drawn = _drawn_pixels(path)
    for index, name in enumerate(scenes.INDOOR_CLASSES[1:], start=1):
        voxels = int((truth == index).sum())
        if name != "ceiling" and voxels >= 50:
            assert drawn[name] > 1000, (name, voxels, drawn)
        elif voxels == 0:  # only its legend patch and stray antialiased pixels
            assert drawn[name] < 300, (name, drawn)


def test_help_is_plain_text_with_a_description_per_option():
    out = subprocess.run(
        [sys.executable, "-m", "gaussocc_ops.examples.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "``" not in out and ":class:" not in out and ":func:" not in out
    lines = out.splitlines()
    for opt in ("--out", "--epochs", "--train-scenes", "--val-scenes", "--batch-size", "--lr",
                "--gaussrender-weight", "--camera-strategy", "--seed", "--threads", "--quick"):
        (i,) = [k for k, line in enumerate(lines) if line.strip().startswith(opt)]
        # a description follows on the option's line or the next one
        text = lines[i].strip()[len(opt):].split("  ", 1)[-1] + " " + lines[i + 1]
        assert len(text.split()) >= 3, (opt, lines[i : i + 2])


def test_gaussrender_gradients_reach_the_model():
    batch = scenes.make_batch([3, 4], grid=GRID)
    torch.manual_seed(0)
    model = GaussRenderPlugin(GRID, 9, gaussrender_weight=15.0)
    terms = model.loss(model(batch.rgb, batch.K, batch.cam2world, batch.prior), batch)
    assert set(terms) == {"ce", "lovasz", "gaussrender", "total"}
    torch.testing.assert_close(terms["total"], terms["ce"] + terms["lovasz"] + terms["gaussrender"])
    terms["gaussrender"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"the rendering loss does not reach {name}"


def test_loss_is_a_mean_of_per_sample_terms():
    """Needed for DDP: N ranks with batch b must equal one process with batch N b."""
    batch = scenes.make_batch([5, 6], grid=GRID)
    torch.manual_seed(1)
    for strategy in ("sensor", "elevated"):
        model = GaussRenderPlugin(
            GRID, 9, gaussrender_weight=5.0, camera_strategy=strategy,
            render_mask=scenes.below_ceiling(GRID),
        )
        with torch.no_grad():
            out = model(batch.rgb, batch.K, batch.cam2world, batch.prior)
            both = model.loss(out, batch)
            single = []
            for b in range(2):
                sub = scenes.make_batch([5 + b], grid=GRID)
                single.append(model.loss(type(out)(out.logits[b : b + 1]), sub))
        for key in both:
            torch.testing.assert_close(
                both[key], (single[0][key] + single[1][key]) / 2, rtol=1e-5, atol=1e-6, msg=key
            )


def test_camera_strategies_move_the_sensor_camera_as_documented():
    batch = scenes.make_batch([2, 3], grid=GRID)
    sensor = sensor_cameras(batch.K, batch.cam2world, SIZE).centers()[:, 0]
    for strategy in ("sensor", "elevated", "elevated_around", "random"):
        model = GaussRenderPlugin(
            GRID, 9, gaussrender_weight=1.0, camera_strategy=strategy,
            generator=torch.Generator().manual_seed(0),
        )
        cams = model.render_cameras(batch.K, batch.cam2world, SIZE)
        assert (cams.height, cams.width) == (48, 64)
        centers = cams.centers()[:, 0]
        if strategy == "sensor":
            torch.testing.assert_close(centers, sensor)
        elif strategy == "elevated":
            torch.testing.assert_close(centers, sensor + torch.tensor([0.0, 0.0, 1.5]))
        elif strategy == "elevated_around":
            torch.testing.assert_close(centers[:, 2], sensor[:, 2] + 1.5)
            assert ((centers - sensor)[:, :2].norm(dim=-1) <= 0.5 * 2.4 + 1e-5).all()
        else:
            assert ((centers - sensor)[:, :2].norm(dim=-1) <= 0.5 * 2.4 + 1e-5).all()
            assert ((centers - sensor)[:, 2] >= 0).all() and ((centers - sensor)[:, 2] <= 1.5).all()


def test_sensor_cameras_see_the_rendered_scene():
    """Splatting the true voxels into sensor_cameras(batch) reproduces the synthetic depth."""
    batch = scenes.make_batch([7], grid=GRID)
    cams = sensor_cameras(batch.K, batch.cam2world, SIZE)
    g = go.labels_to_gaussians(batch.voxel_labels, GRID, num_classes=9, empty_class=0)
    out = go.splat(g, cams, depth_mode="expected")
    covered = out.alpha[0, 0, ..., 0] > 0.9
    err = (out.depth[0, 0, ..., 0] - batch.depth[0, 0]).abs()[covered]
    assert covered.float().mean() > 0.9
    assert err.median() < 0.16  # within a voxel of the exact ray-box depth


def test_voxel_pictures_match_the_exact_renderer():
    """Ray casting the voxel labels sees what the exact ray-box renderer sees of the voxelised
    room: every box snapped to the voxel boundaries around the voxel centres it contains."""
    v = GRID.voxel_size[0]
    for seed in (10000, 10001):
        scene = scenes.make_scene(seed, grid=GRID)
        labels = scenes.voxel_labels(scene, GRID)
        snapped = dataclasses.replace(
            scene,
            boxes=torch.cat([torch.ceil(scene.boxes[:, :3] / v - 0.5) * v,
                             torch.ceil(scene.boxes[:, 3:] / v - 0.5) * v], 1),
        )
        assert torch.equal(scenes.voxel_labels(snapped, GRID), labels)
        K, cam2world, size = scenes.scene_camera(scene, 0)
        frame = scenes.render_frame(snapped, (K, cam2world, size))
        seen, z = figures.camera_labels(labels, GRID, K, cam2world, size)
        assert (seen == frame.semantics).float().mean() > 0.999
        assert ((z - frame.depth[0]).abs() < 1e-3).float().mean() > 0.999
        # and the exact picture of the room itself differs only by the voxelisation
        exact = scenes.render_frame(scene, (K, cam2world, size)).semantics
        assert (seen == exact).float().mean() > 0.9
        image = figures.label_image(labels, GRID, K, cam2world, size)
        # every pixel is its class colour times a shade in [0.33, 1]
        ratio = image / scenes.CLASS_COLORS[seen.clamp(min=0)].clamp_min(1e-6)
        hit = seen >= 0
        chroma = scenes.CLASS_COLORS[seen.clamp(min=0)].min(-1).values > 0.1
        r = ratio[hit & chroma]
        assert (r.max(-1).values - r.min(-1).values).max() < 1e-4  # a grey shade of the colour
        assert r.min() >= 0.32 and r.max() <= 1 + 1e-6


def test_visible_free_space_is_in_front_of_the_surfaces():
    """Checked against exact ray-box intersection along the ray through each voxel centre."""
    batch = scenes.make_batch([10002], grid=GRID)
    free = visible_free_space(batch.depth, batch.K, batch.cam2world, GRID)[0]
    scene = scenes.make_scene(10002, grid=GRID)
    eye = batch.cam2world[0, :3, 3]
    centers = GRID.centers().reshape(-1, 3)
    d = centers - eye
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t0 = (scene.boxes[None, :, :3] - eye) * inv[:, None]
    t1 = (scene.boxes[None, :, 3:] - eye) * inv[:, None]
    t_near = torch.minimum(t0, t1).max(-1).values
    t_far = torch.maximum(t0, t1).min(-1).values
    t_hit = torch.where(t_near > 1e-6, t_near, t_far)
    t_hit = torch.where((t_far >= t_near) & (t_hit > 1e-6), t_hit, torch.full_like(t_hit, math.inf))
    # the centre lies before every box along its ray (t = 1 at the centre) by half a voxel
    margin = 0.08 / d.norm(dim=-1)
    exact = (t_hit.min(-1).values > 1 + margin).reshape(GRID.shape)
    assert free.sum() > 1000
    assert (batch.voxel_labels[0][free] == 0).all()  # observed free space is empty
    # the nearest pixel's depth stands for the ray through the centre: near silhouettes they
    # differ (92.8 % of the voxels agree in this room)
    assert (free == exact).float().mean() > 0.9


def test_held_out_metrics_of_the_ground_truth_and_of_floating_voxels():
    data = SceneData.make([10003, 10004], GRID)
    m = HeldOutMetrics(GRID)
    m.update(data, data.voxel_labels)
    r = m.compute()
    assert r["sc_iou"] == 1.0 and r["miou"] == 1.0 and r["furniture_miou"] == 1.0
    assert r["rayiou"] == 1.0 and r["floating"] == 0.0
    free = visible_free_space(data.depth, data.K, data.cam2world, GRID)
    floating = FloatingVoxels()
    pred = data.voxel_labels.clone()
    pred[free] = torch.randint(0, 2, (int(free.sum()),)) * 4  # half of the free voxels: "bed"
    floating.update(pred, data.voxel_labels, free)
    # the share of the free voxels that the ground truth calls empty which pred fills
    observed = free & (data.voxel_labels == 0)
    expected = (pred[observed] != 0).double().mean()
    torch.testing.assert_close(floating.compute(), expected, rtol=0, atol=1e-12)


def test_progress_bar_writes_one_plain_line_off_a_terminal():
    stream = io.StringIO()
    with progress_bar(4, "  [base] epoch 1/2", stream=stream) as update:
        update(1, 2.0)
        update(4, 1.5, "| held-out SC-IoU 80.0")
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert text.startswith("  [base] epoch 1/2 ")  # square brackets are not rich markup
    assert "4/4" in text and "loss 1.500 | held-out SC-IoU 80.0" in text
