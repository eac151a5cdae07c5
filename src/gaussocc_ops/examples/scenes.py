"""Synthetic scenes shipped with the package: rooms (or a small outdoor lot) built from boxes.

Everything is an axis-aligned box with a semantic class and an instance id, so RGB, depth,
instance and semantic images are exact ray-box intersections and the voxel ground truth is an
exact point-in-box test. Deterministic from a seed; a frame takes milliseconds on a CPU.

Classes (``INDOOR_CLASSES`` / ``OUTDOOR_CLASSES``): index 0 is the empty class, as in
Occ-ScanNet; every API here still takes ``empty_class`` explicitly. ``CLASS_COLORS`` holds the
colours the figures draw each indoor class in (``CLASS_COLORS_HEX`` as strings).

Cameras: :func:`scene_camera` is an overview camera high in a corner of the room that sees
nearly all of it (the single-view examples); :func:`walk_camera` walks on a circle around the
room's centre looking across it, so that nearby angles give consecutive video frames (ViPOcc's
view pairs, GPOcc's streams).

    >>> scene = make_scene(0)
    >>> frame = render_frame(scene, scene_camera(scene, 0))
    >>> frame.rgb.shape, frame.depth.shape
    (torch.Size([3, 96, 128]), torch.Size([1, 96, 128]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch

from gaussocc_ops.cameras import look_at, pinhole_intrinsics
from gaussocc_ops.types import VoxelGrid

INDOOR_CLASSES = ("empty", "floor", "wall", "ceiling", "bed", "table", "chair", "cabinet", "sofa")
OUTDOOR_CLASSES = ("empty", "road", "sidewalk", "building", "car", "truck", "vegetation")
EMPTY_CLASS = 0

_INDOOR_COLORS = torch.tensor(
    [
        [0, 0, 0],
        [0.55, 0.45, 0.35],
        [0.85, 0.85, 0.8],
        [0.95, 0.95, 0.95],
        [0.3, 0.4, 0.8],
        [0.6, 0.35, 0.15],
        [0.8, 0.2, 0.2],
        [0.4, 0.6, 0.3],
        [0.7, 0.5, 0.7],
    ]
)
# Colours of the classes in the figures (label maps), one per INDOOR_CLASSES entry; the empty
# class is not drawn (white background).
CLASS_COLORS_HEX = (
    "#ffffff",  # empty (not drawn)
    "#a0785a",  # floor: brown
    "#c8c8c8",  # wall: light grey
    "#78a0c8",  # ceiling: steel blue
    "#e6a01e",  # bed: orange
    "#8c3cb4",  # table: purple
    "#dc2828",  # chair: red
    "#28a03c",  # cabinet: green
    "#1e5ad2",  # sofa: blue
)
CLASS_COLORS = torch.tensor(
    [[int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in CLASS_COLORS_HEX]
)

_OUTDOOR_COLORS = torch.tensor(
    [
        [0, 0, 0],
        [0.3, 0.3, 0.32],
        [0.6, 0.6, 0.55],
        [0.7, 0.55, 0.45],
        [0.8, 0.15, 0.15],
        [0.2, 0.3, 0.7],
        [0.2, 0.6, 0.2],
    ]
)


@dataclass
class Scene:
    """Boxes ``[K, 6]`` as ``(x0, y0, z0, x1, y1, z1)`` with ``labels [K]`` and instance
    ``ids [K]``; later boxes win where boxes overlap. ``bounds`` is the region cameras stay in."""

    boxes: torch.Tensor
    labels: torch.Tensor
    ids: torch.Tensor
    colors: torch.Tensor  # [K, 3] per-box albedo
    bounds: torch.Tensor  # [2, 3] min / max corner of the scene
    num_classes: int
    outdoor: bool
    seed: int


@dataclass
class Frame:
    """One rendered view. Images are ``[C, H, W]``; ``depth`` is camera-frame z (0 = no hit)."""

    rgb: torch.Tensor  # [3, H, W] in [0, 1]
    depth: torch.Tensor  # [1, H, W]
    semantics: torch.Tensor  # [H, W] int64 class per pixel (empty where nothing is hit)
    instances: torch.Tensor  # [H, W] int64 instance id (-1 where nothing is hit)
    boxes2d: torch.Tensor  # [M, 4] (x0, y0, x1, y1) pixel boxes of the visible object instances
    areas: torch.Tensor  # [M] their pixel counts
    instance_labels: torch.Tensor  # [M] their classes
    K: torch.Tensor  # [3, 3]
    cam2world: torch.Tensor  # [4, 4]


@dataclass
class Batch:
    """A batch of frames with their scenes' voxel ground truth (``[B, ...]`` everywhere; the
    2D instance boxes are padded to the largest count with ``instance_valid``). ``depth`` is the
    exact depth, ``prior`` the depth a model is given (:func:`noisy_prior` of it)."""

    rgb: torch.Tensor
    depth: torch.Tensor
    semantics: torch.Tensor
    K: torch.Tensor
    cam2world: torch.Tensor
    voxel_labels: torch.Tensor  # [B, X, Y, Z]
    boxes2d: torch.Tensor
    areas: torch.Tensor
    instance_valid: torch.Tensor
    grid: VoxelGrid = field(default=None)
    prior: torch.Tensor = field(default=None)  # [B, 1, H, W] depth prior (noisy_prior)

    def to(self, device) -> Batch:
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, torch.Tensor):
                moved[k] = v.to(device)
        return Batch(**moved)


#: ``(scale_noise, shift_noise)`` of the depth prior the single-view examples give their models:
#: a per-image scale error within 5 % and an offset within 5 cm.
PRIOR_NOISE = (0.05, 0.05)


def indoor_grid(shape=(60, 60, 36), voxel_size=0.08) -> VoxelGrid:
    """The room's grid (Occ-ScanNet local style: 60x60x36 voxels of 8 cm by default)."""
    return VoxelGrid(origin=(0.0, 0.0, 0.0), voxel_size=voxel_size, shape=tuple(shape))


def outdoor_grid(shape=(100, 100, 8), voxel_size=0.5) -> VoxelGrid:
    """A small outdoor BEV-style grid centred on the origin, ground at z = 0."""
    return VoxelGrid(
        origin=(-shape[0] * voxel_size / 2, -shape[1] * voxel_size / 2, -1.0),
        voxel_size=voxel_size,
        shape=tuple(shape),
    )


def make_scene(
    seed: int,
    *,
    outdoor: bool = False,
    grid: VoxelGrid | None = None,
    num_objects: tuple[int, int] = (4, 8),
) -> Scene:
    """A random room (floor, four walls, ceiling and furniture) or outdoor lot (road, sidewalks,
    buildings, vehicles, trees) filling ``grid`` (default :func:`indoor_grid` /
    :func:`outdoor_grid`).

    ``num_objects`` bounds the number of objects drawn; each is placed where its footprint stays
    10 cm away from the others' (an object that finds no such place in 30 tries is left out).
    """
    g = torch.Generator().manual_seed(seed)
    grid = grid or (outdoor_grid() if outdoor else indoor_grid())
    lo = torch.tensor(grid.origin)
    hi = torch.tensor(grid.upper)
    vs = torch.tensor(grid.voxel_size)

    def rand(a, b):
        return float(a + (b - a) * torch.rand((), generator=g))

    boxes, labels = [], []
    if not outdoor:
        t = vs * 1.5  # surfaces one and a half voxels thick
        x0, y0, z0 = lo.tolist()
        x1, y1, z1 = hi.tolist()
        boxes += [
            [x0, y0, z0, x1, y1, z0 + t[2]],  # floor
            [x0, y0, z1 - t[2], x1, y1, z1],  # ceiling
            [x0, y0, z0, x0 + t[0], y1, z1],
            [x1 - t[0], y0, z0, x1, y1, z1],
            [x0, y0, z0, x1, y0 + t[1], z1],
            [x0, y1 - t[1], z0, x1, y1, z1],
        ]
        labels += [1, 3, 2, 2, 2, 2]
        floor = z0 + float(t[2])
        sizes = {
            4: (1.2, 1.8, 0.5),
            5: (0.8, 1.2, 0.75),
            6: (0.45, 0.5, 0.9),
            7: (0.5, 0.9, 1.6),
            8: (0.9, 1.8, 0.8),
        }
        margin = float(t[0]) + 0.05
    else:
        x0, y0, _ = lo.tolist()
        x1, y1, _ = hi.tolist()
        boxes += [[x0, y0, -0.5, x1, y1, 0.0]]
        labels += [2]
        road_w = rand(6.0, 9.0)
        boxes += [[x0, -road_w / 2, -0.5, x1, road_w / 2, 0.02]]
        labels += [1]
        floor = 0.0
        sizes = {3: (6.0, 10.0, 2.5), 4: (1.8, 4.5, 1.5), 5: (2.5, 8.0, 3.0), 6: (2.0, 2.0, 3.0)}
        margin = 1.0
    n_obj = int(torch.randint(num_objects[0], num_objects[1] + 1, (), generator=g))
    classes = list(sizes)
    first_object = len(boxes)
    for _ in range(n_obj):
        cls = classes[int(torch.randint(len(classes), (), generator=g))]
        w, l, h = sizes[cls]
        w, l, h = w * rand(0.8, 1.2), l * rand(0.8, 1.2), h * rand(0.8, 1.2)
        if rand(0, 1) < 0.5:
            w, l = l, w
        for _attempt in range(_PLACEMENT_ATTEMPTS):  # objects do not overlap (gap >= 10 cm)
            cx = rand(x0 + margin + w / 2, x1 - margin - w / 2)
            cy = rand(y0 + margin + l / 2, y1 - margin - l / 2)
            if outdoor and cls in (4, 5):  # vehicles on the road
                cy = rand(-2.5, 2.5)
            box = [cx - w / 2, cy - l / 2, floor, cx + w / 2, cy + l / 2, floor + h]
            if not any(_footprints_overlap(box, other, 0.1) for other in boxes[first_object:]):
                boxes.append(box)
                labels.append(cls)
                break
    boxes_t = torch.tensor(boxes)
    labels_t = torch.tensor(labels)
    palette = _OUTDOOR_COLORS if outdoor else _INDOOR_COLORS
    jitter = 0.85 + 0.3 * torch.rand(len(boxes), 3, generator=g)
    colors = (palette[labels_t] * jitter).clamp(0, 1)
    return Scene(
        boxes=boxes_t,
        labels=labels_t,
        ids=torch.arange(len(boxes)),
        colors=colors,
        bounds=torch.stack([lo, hi]),
        num_classes=len(OUTDOOR_CLASSES if outdoor else INDOOR_CLASSES),
        outdoor=outdoor,
        seed=seed,
    )


_PLACEMENT_ATTEMPTS = 30


def _footprints_overlap(a, b, gap: float) -> bool:
    """Whether the xy footprints of boxes ``a`` and ``b`` come closer than ``gap``."""
    return a[0] < b[3] + gap and b[0] < a[3] + gap and a[1] < b[4] + gap and b[1] < a[4] + gap


def noisy_prior(
    depth: torch.Tensor,
    scale_noise: float,
    shift_noise: float,
    generator: torch.Generator | None = None,
    min_depth: float = 0.1,
) -> torch.Tensor:
    """A stand-in for a depth foundation model's (or a depth sensor's) output: ``s D + b`` with
    one ``s ~ U(1 - scale_noise, 1 + scale_noise)`` and ``b ~ U(-shift_noise, shift_noise)``
    (metres) per image, clamped to ``min_depth`` (``depth [B, 1, H, W]``; pixels without depth
    stay 0)."""
    u = torch.rand(depth.shape[0], 2, 1, 1, 1, generator=generator, dtype=depth.dtype)
    scale = 1 + scale_noise * (2 * u[:, 0] - 1)
    shift = shift_noise * (2 * u[:, 1] - 1)
    prior = (scale * depth + shift).clamp_min(min_depth)
    return torch.where(depth > 0, prior, torch.zeros_like(depth))


def below_ceiling(grid: VoxelGrid) -> torch.Tensor:
    """``[X, Y, Z]`` bool: the voxels of an indoor grid that are not the ceiling slab (the same
    in every room: the room's shell depends on the grid only). Top-down views see into the room
    once the ceiling is left out."""
    shell = voxel_labels(make_scene(0, grid=grid, num_objects=(0, 0)), grid)
    return shell != INDOOR_CLASSES.index("ceiling")


def voxel_labels(scene: Scene, grid: VoxelGrid) -> torch.Tensor:
    """``[X, Y, Z]`` int64 class of every voxel centre (the last box containing it; empty = 0)."""
    centers = grid.centers().reshape(-1, 1, 3)
    inside = ((centers >= scene.boxes[None, :, :3]) & (centers < scene.boxes[None, :, 3:])).all(-1)
    last = torch.where(
        inside, torch.arange(len(scene.boxes)), torch.full_like(inside, -1, dtype=torch.long)
    )
    winner = last.max(dim=1).values
    labels = torch.where(winner >= 0, scene.labels[winner.clamp(min=0)], torch.zeros_like(winner))
    return labels.reshape(grid.shape)


def scene_camera(scene: Scene, index: int, *, image_size=(96, 128), fov_x_deg: float = 90.0):
    """A deterministic overview camera of the scene: ``(K [3, 3], cam2world [4, 4], image_size)``.

    Indoors the camera hangs 2.0-2.4 m high in corner ``(seed + index) % 4`` of the room, 0.35-
    0.45 m from both walls, and looks down across the room at a floor point beyond its centre,
    so that a 90 degree field of view sees nearly all of the furniture (from above: the tops
    and the faces turned towards the camera). Outdoors it is a car-mounted camera 1.6 m high
    looking along the road.
    """
    g = torch.Generator().manual_seed(scene.seed * 7919 + index)
    lo, hi = scene.bounds
    u = torch.rand(6, generator=g)
    if not scene.outdoor:
        corner = (scene.seed + index) % 4
        inset = 0.35 + 0.1 * u[:2]
        cx = lo[0] + inset[0] if corner % 2 == 0 else hi[0] - inset[0]
        cy = lo[1] + inset[1] if corner // 2 == 0 else hi[1] - inset[1]
        eye = torch.stack([cx, cy, lo[2] + 2.0 + 0.4 * u[2]])
        center = (lo + hi) / 2
        aim = center[:2] + 0.8 * (u[3:5] - 0.5)
        target = torch.cat([eye[:2] + 1.15 * (aim - eye[:2]), (lo[2] + 0.2)[None]])
    else:
        x = float(lo[0] + 0.2 * (hi[0] - lo[0]) * u[0])
        eye = torch.tensor([x, float(2.0 * (u[1] - 0.5)), 1.6])
        target = eye + torch.tensor([10.0, 0.0, -1.0])
    viewmat = look_at(eye, target)
    H, W = image_size
    return pinhole_intrinsics(fov_x_deg, height=H, width=W), torch.linalg.inv(viewmat), image_size


def walk_camera(
    scene: Scene,
    angle_deg: float,
    *,
    image_size=(96, 128),
    fov_x_deg: float = 90.0,
    radius: float = 1.5,
    height: float = 1.5,
):
    """A camera of a walk around an indoor room: ``(K [3, 3], cam2world [4, 4], image_size)``.

    The camera stands ``radius`` metres from the room's centre at azimuth ``angle_deg``,
    ``height`` metres above the floor, and looks through the centre at a point 0.7 m high on
    the far side, so every angle sees the opposite half of the room. Angles a few degrees apart
    are consecutive frames of a video (10 degrees: 0.26 m of motion and a 10 degree turn);
    angles spread over 360 degrees cover the whole room.

    Example:
        >>> scene = make_scene(0)
        >>> a, b = walk_camera(scene, 0.0), walk_camera(scene, 10.0)
        >>> round(float((a[1][:3, 3] - b[1][:3, 3]).norm()), 2)  # metres between the frames
        0.26
    """
    if scene.outdoor:
        raise ValueError("walk_camera needs an indoor scene")
    lo, hi = scene.bounds
    center = (lo + hi) / 2
    phi = math.radians(angle_deg)
    direction = torch.tensor([math.cos(phi), math.sin(phi)], dtype=lo.dtype)
    eye = torch.cat([center[:2] + radius * direction, (lo[2] + height)[None]])
    target = torch.cat([center[:2] - 1.2 * direction, (lo[2] + 0.7)[None]])
    H, W = image_size
    return (
        pinhole_intrinsics(fov_x_deg, height=H, width=W),
        torch.linalg.inv(look_at(eye, target)),
        image_size,
    )


def render_frame(scene: Scene, camera) -> Frame:
    """Exact ray-box rendering of RGB (Lambert shading, a checker texture on horizontal surfaces),
    z-depth, semantics and instances, plus the visible objects' 2D boxes and areas."""
    K, cam2world, (H, W) = camera
    v, u = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    dirs_cam = torch.stack(
        [(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1
    )
    dirs = dirs_cam.reshape(-1, 3) @ cam2world[:3, :3].T  # not normalised: t is camera z
    origin = cam2world[:3, 3]
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0 = (scene.boxes[None, :, :3] - origin) * inv[:, None]
    t1 = (scene.boxes[None, :, 3:] - origin) * inv[:, None]
    t_near = torch.minimum(t0, t1).max(-1).values  # [P, K]
    t_far = torch.maximum(t0, t1).min(-1).values
    # Rays from inside a box (the camera inside the room's surfaces never is) see its far side.
    t_hit = torch.where(t_near > 1e-6, t_near, t_far)
    hit = (t_far >= t_near) & (t_hit > 1e-6)
    t_hit = torch.where(hit, t_hit, torch.full_like(t_hit, float("inf")))
    t_best, k = t_hit.min(-1)
    any_hit = torch.isfinite(t_best)
    point = origin + dirs * torch.where(any_hit, t_best, torch.zeros_like(t_best))[:, None]
    box = scene.boxes[k]
    # face normal: the axis whose face the point lies on
    dist = torch.cat([(point - box[:, :3]).abs(), (point - box[:, 3:]).abs()], -1)
    face = dist.argmin(-1)
    normal = torch.zeros_like(point)
    normal[torch.arange(len(point)), face % 3] = torch.where(face < 3, -1.0, 1.0)
    light = torch.nn.functional.normalize(torch.tensor([0.4, 0.3, 1.0]), dim=0)
    shade = 0.45 + 0.55 * (normal @ light).abs()
    checker = ((point[:, 0] / 0.4).floor() + (point[:, 1] / 0.4).floor()) % 2
    texture = torch.where((face % 3) == 2, 0.85 + 0.15 * checker, torch.ones_like(checker))
    rgb = scene.colors[k] * (shade * texture)[:, None]
    rgb = torch.where(any_hit[:, None], rgb, torch.zeros_like(rgb))
    depth = torch.where(any_hit, t_best, torch.zeros_like(t_best))
    semantics = torch.where(any_hit, scene.labels[k], torch.zeros_like(k))
    instances = torch.where(any_hit, scene.ids[k], torch.full_like(k, -1))

    first_object = 1 if scene.outdoor else 6  # room surfaces / ground are not instances
    inst = instances.reshape(H, W)
    boxes2d, areas, inst_labels = [], [], []
    for i in range(first_object, len(scene.boxes)):
        mask = inst == i
        count = int(mask.sum())
        if count == 0:
            continue
        rows = mask.any(1).nonzero()[:, 0]
        cols = mask.any(0).nonzero()[:, 0]
        c0, r0 = float(cols.min()), float(rows.min())
        boxes2d.append([c0, r0, float(cols.max() + 1), float(rows.max() + 1)])
        areas.append(count)
        inst_labels.append(int(scene.labels[i]))
    return Frame(
        rgb=rgb.T.reshape(3, H, W).contiguous(),
        depth=depth.reshape(1, H, W),
        semantics=semantics.reshape(H, W),
        instances=inst,
        boxes2d=torch.tensor(boxes2d, dtype=torch.float32).reshape(-1, 4),
        areas=torch.tensor(areas, dtype=torch.float32),
        instance_labels=torch.tensor(inst_labels, dtype=torch.long),
        K=K,
        cam2world=cam2world,
    )


def make_batch(
    seeds,
    *,
    outdoor: bool = False,
    grid: VoxelGrid | None = None,
    view: int = 0,
    image_size=(96, 128),
    prior_noise: tuple[float, float] = PRIOR_NOISE,
) -> Batch:
    """Frames of the scenes ``seeds`` (the :func:`scene_camera` ``view`` of each) stacked with
    their voxel ground truth and a depth prior: :func:`noisy_prior` with
    ``prior_noise = (scale_noise, shift_noise)``, drawn from a generator seeded by the scene's
    seed and the view, so that a scene always comes with the same prior."""
    grid = grid or (outdoor_grid() if outdoor else indoor_grid())
    frames, labels, priors = [], [], []
    for seed in seeds:
        scene = make_scene(int(seed), outdoor=outdoor, grid=grid)
        frame = render_frame(scene, scene_camera(scene, view, image_size=image_size))
        frames.append(frame)
        labels.append(voxel_labels(scene, grid))
        g = torch.Generator().manual_seed(int(seed) * 7919 + view + 1)
        priors.append(noisy_prior(frame.depth[None], *prior_noise, generator=g)[0])
    M = max([len(f.areas) for f in frames] + [1])

    def pad(t, width):
        out = torch.zeros(M, *t.shape[1:]) if width is None else torch.zeros(M, width)
        out[: len(t)] = t
        return out

    return Batch(
        rgb=torch.stack([f.rgb for f in frames]),
        depth=torch.stack([f.depth for f in frames]),
        semantics=torch.stack([f.semantics for f in frames]),
        K=torch.stack([f.K for f in frames]),
        cam2world=torch.stack([f.cam2world for f in frames]),
        voxel_labels=torch.stack(labels),
        boxes2d=torch.stack([pad(f.boxes2d, 4) for f in frames]),
        areas=torch.stack([pad(f.areas[:, None], 1)[:, 0] for f in frames]),
        instance_valid=torch.stack([torch.arange(M) < len(f.areas) for f in frames]),
        grid=grid,
        prior=torch.stack(priors),
    )
