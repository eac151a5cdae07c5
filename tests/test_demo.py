"""The demo and its plug-in model: a short run must learn and write valid pictures; the
GaussRender term must reach the model's parameters; the sensor cameras must see the scene the
synthetic renderer drew."""

import struct
import zlib

import torch

import gaussocc_ops as go
from gaussocc_ops.examples import demo, scenes
from gaussocc_ops.examples.models import GaussRenderPlugin, sensor_cameras
from gaussocc_ops.examples.training import ProgressBar

GRID = scenes.indoor_grid(shape=(30, 30, 18), voxel_size=0.16)


def read_png(path):
    """Decode an 8-bit RGB, non-interlaced PNG (what save_png writes) independently."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        if tag == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert (depth, color) == (8, 2)
            size = (h, w)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    h, w = size
    assert len(raw) == h * (1 + 3 * w)
    rows = [raw[r * (1 + 3 * w) + 1 : (r + 1) * (1 + 3 * w)] for r in range(h)]
    return torch.tensor(list(b"".join(rows)), dtype=torch.uint8).reshape(h, w, 3)


def test_quick_demo_learns_and_writes_pictures(tmp_path, capsys):
    result = demo.main(["--quick", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    untrained = result["untrained"]
    for name in ("ce+lovasz", "ce+lovasz+gaussrender"):
        final = result[name]["final"]
        assert final["sc_iou"] > untrained["sc_iou"] + 0.08, (name, final, untrained)
        assert final["miou"] > untrained["miou"] + 0.01, (name, final, untrained)
        assert len(result[name]["history"]) == 3
    assert "untrained model: SC-IoU" in printed and "pictures written to" in printed
    assert printed.count("epoch 3/3 [########################]") == 2

    H, W = demo.PICTURE_SIZE
    expected = {"input_rgb.png": (4 * 48, 4 * 64)}
    for name in ("gt", "ce+lovasz", "ce+lovasz+gaussrender"):
        expected[f"{name}_camera_semantics.png"] = (H, W)
        expected[f"{name}_camera_depth.png"] = (H, W)
        expected[f"{name}_bev.png"] = (demo.BEV_SIZE, demo.BEV_SIZE)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)
    for fname, size in expected.items():
        image = read_png(tmp_path / fname)
        assert image.shape[:2] == size, fname
        assert image.float().std() > 5, f"{fname} is blank"


def test_gaussrender_gradients_reach_the_model():
    batch = scenes.make_batch([3, 4], grid=GRID, image_size=(48, 64))
    torch.manual_seed(0)
    model = GaussRenderPlugin(GRID, len(scenes.INDOOR_CLASSES), gaussrender_weight=15.0)
    terms = model.loss(model(batch.rgb, batch.K, batch.cam2world), batch)
    assert set(terms) == {"ce", "lovasz", "depth", "gaussrender", "total"}
    total = terms["ce"] + terms["lovasz"] + terms["depth"] + terms["gaussrender"]
    torch.testing.assert_close(terms["total"], total)
    terms["gaussrender"].backward()
    for name in ("backbone.net.0.weight", "head.0.weight", "head.4.bias"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    # the depth cues of the lifting (gate, free space) carry it to the depth head too
    assert model.depth_head.conv.weight.grad.abs().sum() > 0


def test_gaussrender_term_is_a_mean_of_per_sample_terms():
    batch = scenes.make_batch([5, 6], grid=GRID, image_size=(48, 64))
    torch.manual_seed(1)
    model = GaussRenderPlugin(GRID, len(scenes.INDOOR_CLASSES), gaussrender_weight=5.0)
    with torch.no_grad():
        out = model(batch.rgb, batch.K, batch.cam2world)
        both = model.loss(out, batch)
        single = []
        for b in range(2):
            sub = scenes.make_batch([5 + b], grid=GRID, image_size=(48, 64))
            one = type(out)(out.logits[b : b + 1], out.depth[b : b + 1])
            single.append(model.loss(one, sub))
    for key in both:
        torch.testing.assert_close(
            both[key], (single[0][key] + single[1][key]) / 2, rtol=1e-5, atol=1e-6, msg=key
        )


def test_sensor_cameras_see_the_rendered_scene():
    """Splatting the true voxels into sensor_cameras(batch) must reproduce the synthetic depth."""
    batch = scenes.make_batch([7], grid=GRID, image_size=(48, 64))
    cams = sensor_cameras(batch.K, batch.cam2world, (48, 64))
    g = go.labels_to_gaussians(batch.voxel_labels, GRID, num_classes=9, empty_class=0)
    out = go.splat(g, cams, depth_mode="expected")
    covered = out.alpha[0, 0, ..., 0] > 0.9
    err = (out.depth[0, 0, ..., 0] - batch.depth[0, 0]).abs()[covered]
    assert covered.float().mean() > 0.9
    assert err.median() < 0.16  # within a voxel of the exact ray-box depth


def test_progress_bar_plain_text(capsys):
    import io

    stream = io.StringIO()
    bar = ProgressBar(4, prefix="e1 ", width=8, stream=stream)
    bar.update(1, loss=2.0)
    assert stream.getvalue() == ""  # not a terminal: nothing until close
    bar.update(2, loss=1.5)
    bar.close(" done")
    line = stream.getvalue()
    assert line.startswith("e1 [####....] 2/4 loss 1.500 ") and line.endswith(" done\n")
