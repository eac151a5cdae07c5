"""RayIoU under SparseOcc's protocol, against a plain implementation of that protocol written here
from its statement (one ray at a time, Python floats), and on constructed cases with known
answers.

The protocol, as SparseOcc's released ray_metrics.py / dvr kernel define it:
1. rays: pitches -(pi/2 - atan(k + 1)), k = 0..9, continued with the last step while the last
   pitch < 0.21; azimuths 0..359 degrees; (cos e cos a, cos e sin a, sin e) stored as float32;
2. per origin: origin and origin + ray are mapped to voxel units ((p - grid origin) / voxel) in
   the origin's dtype and rounded to float32; the direction is their difference, normalised in
   double;
3. the walk starts in voxel int(origin) (truncation), and repeatedly: if the voxel is inside the
   grid, it is recorded; if not and one was recorded, stop; the face crossed first is x if
   tMax_x < tMax_y and tMax_x < tMax_z, else y if tMax_y < tMax_z, else z (tMax: the ray parameter
   of the next face, advanced by tDelta = 1 / |d| per step); at most 1001 voxels;
4. the first recorded voxel whose label is not the free class gives (label, the tMax at which the
   ray leaves it); without one, the last recorded voxel and its exit; with none, -1 and (0, 0, 0);
5. distance in metres: float32(voxel units) * float32(voxel size);
6. rays whose GT label is free are dropped; per class c, threshold t: gt_c, pred_c, tp_c(t) =
   same class and |d_pred - d_gt| < t (float32); IoU = tp / (gt + pred - tp); RayIoU = nanmean over
   thresholds x non-free classes.
"""

import math
import sys

import numpy as np
import pytest
import torch

import gaussocc_ops as go
from gaussocc_ops.metrics import _sparseocc

OCC3D = go.VoxelGrid((-40.0, -40.0, -1.0), 0.4, (200, 200, 16))
FREE = 17
BIG = sys.float_info.max


def lidar_rays_from_statement():
    pitches = []
    for k in range(10):
        pitches.append(-(math.pi / 2 - math.atan(k + 1)))
    while pitches[-1] < 0.21:
        pitches.append(pitches[-1] + (pitches[-1] - pitches[-2]))
    rays = []
    for e in pitches:
        for a_deg in range(360):
            a = np.deg2rad(a_deg)
            rays.append((np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)))
    return np.array(rays, dtype=np.float32)


def walk(labels, free, o, e):
    """One ray, per steps 2-4 above. o, e: float32 points in voxel units."""
    size = labels.shape
    o = [float(c) for c in o]
    e = [float(c) for c in e]
    r = [e[a] - o[a] for a in range(3)]
    n = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
    d = [r[a] / n for a in range(3)]
    step = [1 if d[a] >= 0 else -1 for a in range(3)]
    v = [int(o[a]) for a in range(3)]
    t_max = [((v[a] + (step[a] > 0)) - o[a]) / d[a] if d[a] != 0 else BIG for a in range(3)]
    t_delta = [step[a] / d[a] if d[a] != 0 else BIG for a in range(3)]
    last = None
    for _ in range(1001):
        inside = all(0 <= v[a] < size[a] for a in range(3))
        if not inside and last is not None:
            break
        if t_max[0] < t_max[1]:
            a = 0 if t_max[0] < t_max[2] else 2
        else:
            a = 1 if t_max[1] < t_max[2] else 2
        if inside:
            last = (t_max[a], tuple(v))
            if labels[last[1]] != free:
                break
        v[a] += step[a]
        t_max[a] += t_delta[a]
    return (-1.0, (0, 0, 0)) if last is None else last


def to_voxels(points, grid):
    """Step 2: in the points' dtype (numpy promotion), rounded to float32."""
    offset = np.array(grid.origin, dtype=np.float32)
    scale = np.array(grid.voxel_size, dtype=np.float32)
    return ((points - offset) / scale).astype(np.float32)


def reference_rayiou(preds, gts, origins, grid, num_classes=18, free=FREE, rays=None):
    rays = lidar_rays_from_statement() if rays is None else rays
    voxel = np.float32(grid.voxel_size[0])
    thresholds = [1, 2, 4]
    gt_cnt, pred_cnt = np.zeros(num_classes), np.zeros(num_classes)
    tp = np.zeros((3, num_classes))
    for pred, gt, frame_origins in zip(preds, gts, origins, strict=True):
        for o in frame_origins:
            o_vox = to_voxels(o, grid)
            ends = to_voxels(rays + o, grid)
            for e in ends:
                dg, vg = walk(gt, free, o_vox, e)
                dp, vp = walk(pred, free, o_vox, e)
                lg, lp = int(gt[vg]), int(pred[vp])
                if lg == free:
                    continue
                err = abs(np.float32(dp) * voxel - np.float32(dg) * voxel)
                for c in range(num_classes):
                    gt_cnt[c] += lg == c
                    pred_cnt[c] += lp == c
                    for j, t in enumerate(thresholds):
                        tp[j, c] += lg == c and lp == c and err < t
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (gt_cnt + pred_cnt - tp)
    keep = [c for c in range(num_classes) if c != free]
    return np.nanmean(iou[:, keep]), iou


def cluttered_scene(seed, density=0.12):
    """An Occ3D-format frame dense enough that rays stop within a few tens of voxels."""
    g = np.random.default_rng(seed)
    gt = np.full((200, 200, 16), FREE, dtype=np.uint8)
    gt[:, :, :2] = g.integers(10, 14, (200, 200, 2))  # ground classes
    clutter = g.random((200, 200, 16)) < density
    gt[clutter] = g.integers(0, 17, int(clutter.sum()))
    gt[g.random(gt.shape) < 0.01] = 255
    gt[95:106, 95:106, 2:10] = FREE  # clear around the sensors
    pred = gt.copy()
    pred[:100] = np.roll(gt[:100], 1, axis=0)  # half the scene one voxel off
    flip = g.random(gt.shape) < 0.05
    pred[flip] = g.integers(0, 18, int(flip.sum()))
    pred[g.random(gt.shape) < 0.005] = 255
    return pred, gt


def test_pattern_is_sparseoccs():
    rays = go.metrics.sparseocc_ray_pattern()
    want = lidar_rays_from_statement()
    assert rays.dtype == torch.float32 and np.array_equal(rays.numpy(), want)
    assert want.shape == (39 * 360, 3)  # 10 pitches from atan, 29 continued up to 0.21 rad


def test_sparseocc_rayiou_equals_plain_statement_on_occ3d_frames():
    frames = [cluttered_scene(0), cluttered_scene(1)]
    # nuScenes' lidar sits at y = 0.0 in the ego frame: a voxel face (100.0 in voxel units)
    origins = [
        np.array([[0.9858, 0.0, 1.8402]], dtype=np.float64),
        np.array([[1.3, -0.4, 1.9]], dtype=np.float64),
    ]
    want, want_iou = reference_rayiou(
        [p for p, _ in frames], [g for _, g in frames], origins, OCC3D
    )
    m = go.metrics.RayIoU(OCC3D, 18, FREE, protocol="sparseocc")
    for (p, g), o in zip(frames, origins, strict=True):
        m.update(torch.from_numpy(p)[None], torch.from_numpy(g)[None], [torch.from_numpy(o)])
    out = m.compute()
    assert abs(out["rayiou"].item() - want) <= 1e-12
    np.testing.assert_array_equal(out["iou_per_class"].numpy(), want_iou)
    assert 0.2 < want < 0.95  # a scene where the thresholds matter


def test_sparseocc_float32_origins_and_frames_batched():
    pred, gt = cluttered_scene(2)
    origins = [np.array([[0.9858, 0.0, 1.8402], [-3.1, 2.2, 1.7]], dtype=np.float32)]
    rays = lidar_rays_from_statement()[::7]  # a subset keeps the plain walk short
    want, _ = reference_rayiou([pred], [gt], origins, OCC3D, rays=rays)
    m = go.metrics.RayIoU(OCC3D, 18, FREE, protocol="sparseocc")
    m.directions = torch.from_numpy(rays)
    m.update(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], torch.from_numpy(origins[0]))
    assert abs(m.compute()["rayiou"].item() - want) <= 1e-12
    # the same frame twice in one batch with per-frame origin lists counts it twice
    twice = go.metrics.RayIoU(OCC3D, 18, FREE, protocol="sparseocc")
    twice.directions = m.directions
    o = torch.from_numpy(origins[0])
    twice.update(
        torch.from_numpy(np.stack([pred, pred])), torch.from_numpy(np.stack([gt, gt])), [o, o]
    )
    torch.testing.assert_close(twice.tp, 2 * m.tp, rtol=0, atol=0)
    torch.testing.assert_close(twice.compute()["rayiou"], m.compute()["rayiou"])


# ---------------------------------------------------------------- constructed cases
def cast_one(labels, o, e, frame=0, free=0):
    labels = torch.as_tensor(labels)
    o = torch.tensor([o], dtype=torch.float32)
    e = torch.tensor([e], dtype=torch.float32)
    d, i = _sparseocc.cast(labels, torch.tensor([frame]), o, e, free)
    return d.item(), i.item()


def row(*values):
    """One frame [1, X, 1, 1] of 1 m voxels."""
    return torch.tensor(values).view(1, -1, 1, 1)


def test_walk_distance_is_where_the_ray_leaves_the_voxel():
    assert cast_one(row(0, 0, 3, 0), (0.5, 0.5, 0.5), (1.5, 0.5, 0.5)) == (2.5, 2)
    # the library's own convention: where the ray enters it
    hit = go.raycast(
        row(0, 0, 3, 0),
        go.VoxelGrid((0.0, 0.0, 0.0), 1.0, (4, 1, 1)),
        torch.tensor([[[0.5, 0.5, 0.5]]]),
        torch.tensor([[[1.0, 0.0, 0.0]]]),
        empty_class=0,
    )
    assert hit.distance.item() == 1.5 and hit.label.item() == 3


def test_walk_label_255_stops_the_ray_and_misses_take_the_last_voxel():
    assert cast_one(row(0, 255, 3, 0), (0.5, 0.5, 0.5), (1.5, 0.5, 0.5)) == (1.5, 1)
    # nothing occupied: the exit of the last voxel inside, and that (free) voxel
    assert cast_one(row(0, 0, 0, 0), (0.5, 0.5, 0.5), (1.5, 0.5, 0.5)) == (3.5, 3)
    # frame 1's voxels follow frame 0's in the returned index
    two = torch.cat([row(0, 0, 0, 0), row(0, 0, 9, 0)])
    assert cast_one(two, (0.5, 0.5, 0.5), (1.5, 0.5, 0.5), frame=1) == (2.5, 4 + 2)


def test_walk_start_voxel_is_int_of_the_origin():
    # origin on the face x = 2 moving -x: the walk starts in voxel 2 (int(2.0)) and leaves it at
    # t = 0, so an occupied voxel 2 is hit at distance 0 although the ray never enters it
    assert cast_one(row(0, 0, 5, 0), (2.0, 0.5, 0.5), (1.0, 0.5, 0.5)) == (0.0, 2)
    assert cast_one(row(0, 5, 0, 0), (2.0, 0.5, 0.5), (1.0, 0.5, 0.5)) == (1.0, 1)
    # int() truncates toward zero: x = -0.5 starts "inside" voxel 0, left at x = 1
    assert cast_one(row(5, 0, 0, 0), (-0.5, 0.5, 0.5), (0.5, 0.5, 0.5)) == (1.5, 0)
    # an origin outside moving away never enters: -1 and voxel (0, 0, 0)
    assert cast_one(row(5, 0, 0, 0), (-1.5, 0.5, 0.5), (-2.5, 0.5, 0.5)) == (-1.0, 0)


def test_walk_edge_crossing_steps_y_before_x():
    labels = torch.zeros(1, 2, 2, 1, dtype=torch.long)
    labels[0, 0, 1, 0], labels[0, 1, 1, 0] = 7, 8
    # through the edge x = y = 1: tMax_x == tMax_y, the tie goes to y: voxel (0, 1) first
    d, i = cast_one(labels, (0.5, 0.5, 0.5), (1.5, 1.5, 0.5))
    assert i == (0 * 2 + 1) * 1 + 0 and d == 0.5 / (1.0 / math.sqrt(2.0))
    assert d == walk(labels[0].numpy(), 0, (0.5, 0.5, 0.5), (1.5, 1.5, 0.5))[0]


def test_walk_gives_up_after_1000_steps():
    labels = torch.zeros(1, 1100, 1, 1, dtype=torch.long)
    labels[0, 1050] = 4  # beyond the walk's reach
    assert cast_one(labels, (0.5, 0.5, 0.5), (1.5, 0.5, 0.5)) == (1000.5, 1000)


def test_sparseocc_ignored_gt_hits_still_count_the_predicted_class():
    grid = go.VoxelGrid((-10.0, -10.0, -4.0), 1.0, (20, 20, 8))
    floor = torch.full((1, 20, 20, 8), 17)
    floor[..., 0] = 1
    origin = torch.tensor([[0.5, 0.5, 0.5]])
    m = go.metrics.RayIoU(grid, 18, 17, protocol="sparseocc")
    m.update(floor, floor, origin)
    out = m.compute()
    assert out["rayiou"].item() == 1.0 and m.gt_count[1] > 0
    unknown = floor.clone()
    unknown[..., 0] = 255  # a GT floor of label 255 stops the rays: they are kept
    m = go.metrics.RayIoU(grid, 18, 17, protocol="sparseocc")
    m.update(floor, unknown, origin)
    out = m.compute()
    assert m.gt_count.sum() == 0 and m.pred_count[1] > 0  # no GT class, the predicted one counts
    assert out["rayiou"].item() == 0.0
    assert torch.isnan(out["iou_per_class"][:, 2:17]).all()  # absent classes: NaN, left out
    # the library's own protocol sees through 255: no GT hit, nothing evaluated
    entry = go.metrics.RayIoU(grid, 18, 17, origins=origin)
    entry.update(floor, unknown)
    assert entry.gt_count.sum() == 0 and entry.pred_count.sum() == 0


def test_sparseocc_arguments():
    with pytest.raises(ValueError, match="fixes num_azimuths"):
        go.metrics.RayIoU(OCC3D, 18, 17, protocol="sparseocc", num_azimuths=90)
    with pytest.raises(ValueError, match="ignore_index"):
        go.metrics.RayIoU(OCC3D, 18, 17, protocol="sparseocc", ignore_index=0)
    with pytest.raises(ValueError, match="cubic"):
        go.metrics.RayIoU(
            go.VoxelGrid((0, 0, 0), (0.4, 0.4, 0.5), (4, 4, 4)), 3, 2, protocol="sparseocc"
        )
    m = go.metrics.RayIoU(OCC3D, 18, 17, protocol="sparseocc")
    labels = torch.full((1, 200, 200, 16), 17)
    with pytest.raises(ValueError, match="origins"):
        m.update(labels, labels)
    with pytest.raises(ValueError, match="one \\[O, 3\\] tensor per frame"):
        m.update(labels, labels, [torch.zeros(1, 3), torch.zeros(1, 3)])
    assert "protocol='sparseocc'" in repr(m) and "rays_per_origin=14040" in repr(m)
