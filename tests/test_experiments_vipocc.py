"""The ViPOcc experiment's measurements: the rendered-depth probe and the alignment landscape."""

import torch

from gaussocc_ops.examples import experiments as E
from gaussocc_ops.examples import scenes
from gaussocc_ops.examples.models import ViPOccDepthBranch, make_view_pair
from gaussocc_ops.examples.models.vipocc import Rendering
from gaussocc_ops.rays import _pixel_grid_rays

GRID = scenes.indoor_grid(shape=(30, 30, 18), voxel_size=0.16)
SIZE = (48, 64)


def _pair(texture):
    return make_view_pair(
        [0, 1], grid=GRID, image_size=SIZE, angles=[20.0, 200.0], texture=texture,
        generator=torch.Generator().manual_seed(0),
    )


def test_rendered_depth_errors_convert_ray_distance_to_z():
    pair = _pair(0.3)
    model = ViPOccDepthBranch(num_patches=6, patch_size=4)
    with torch.no_grad():
        out = model(pair.rgb[:, 0], pair.prior[:, 0])
        real = model.render_patches  # the sampler's pixels, then an exact or a 10 % long depth
        H, W = SIZE
        norm = _pixel_grid_rays(pair.K, H, W, normalize=False).norm(dim=-1).flatten(1)
        truth = pair.depth[:, 0, 0].flatten(1)

        def exact(scale):
            def render(*args):
                r = real(*args)
                idx = r.index.flatten(1)
                dist = (scale * truth * norm).gather(1, idx).view_as(r.distance)
                return Rendering(dist, r.rgb, r.index, r.valid)

            return render

        model.render_patches = exact(1.0)
        errors = E.rendered_depth_errors(model, out, pair)
        assert errors["rendered_error"] < 1e-5
        model.render_patches = exact(1.1)
        long = E.rendered_depth_errors(model, out, pair)
        r = real(out.recon_features, pair.K, pair.rgb[:, 1], pair.target_to_source,
                 *_patches(model, pair))
        valid = r.valid[..., None, None].expand_as(r.index).flatten(1)
        picked = truth.gather(1, r.index.flatten(1))[valid]
        torch.testing.assert_close(long["rendered_error"], float(0.1 * picked.mean()), rtol=1e-4,
                                   atol=1e-6)
        # before training the aligned depth is the prior
        prior = pair.prior[:, 0, 0].flatten(1).gather(1, r.index.flatten(1))[valid]
        torch.testing.assert_close(errors["patch_error"], float((prior - picked).abs().mean()),
                                   rtol=1e-4, atol=1e-6)


def _patches(model, pair):
    from gaussocc_ops.snog import snog_sample

    p = snog_sample(pair.boxes2d, pair.areas, SIZE, model.num_patches, model.patch_size,
                    generator=torch.Generator().manual_seed(0), valid=pair.instance_valid)
    return p.centers, p.valid


def test_landscape_rows_show_what_the_texture_changes():
    scales = (0.8, 0.9, 1.0, 1.1, 1.2)
    plain = E._landscape_row(_pair(0.0), scales)
    textured = E._landscape_row(_pair(0.3), scales)
    # flat-coloured renders: most pixels have no image gradient; textured ones almost none
    assert plain[0] > 0.6 and textured[0] < 0.05
    assert textured[1] > 2 * plain[1]
    # L_ta along a global scale of the true depth is lowest at the truth, and below the prior
    curve = textured[2:-1]
    assert min(curve) == curve[scales.index(1.0)] < textured[-1]
