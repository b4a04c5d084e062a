"""Bimodal Trifeatures: pairs of procedurally drawn images with controllable interactions.

**Trifeatures** (Hermann & Lampinen 2020, "What shapes feature representations? Exploring
datasets, architectures, and training") draws one object per image from three independent
features, ten values each: a *shape* (``SHAPES``), a *texture* (``TEXTURES``) and a *color*
(``COLORS``), on a grey background. Geometry is that of the reference renderer, in units of its
224-pixel canvas:

* the shape is a 128 x 128 binary template, rotated by an integer angle in ``[-45, 45)``
  degrees and placed at an integer offset such that its rotated bounding box (side
  ``L = round(128 (|cos a| + |sin a|))``) lies inside the canvas;
* the texture is a binary pattern of period 10 (stripes, grid, dots, ...; noise and rain are
  random), shifted by an integer phase in ``[0, 10)`` along each axis and rotated about the
  canvas centre by its own integer angle in ``[-45, 45)``;
* pixel value ``m * color + (1 - m) * background`` with ``m = shape * texture``, so where the
  texture is off inside the shape, the background shows through.

Images are rendered at ``resolution`` pixels by sampling that scene at ``supersample^2`` points
per pixel and averaging ``m`` (anti-aliased edges). The texture period is ``texture_period``
output pixels: at 224 pixels the reference's 10; at small resolutions ``10 * R / 224`` would
fall below what the ten textures can be told apart by, so the default is
``max(10 * R / 224, MIN_TEXTURE_PERIOD)`` (5 pixels at 32 x 32). All texture detail (line
widths, dot radius, noise cells, rain streaks) is defined in units of ``period / 10``.
Rendering runs in NumPy, vectorised over images and pixels: the 2600-image pool below takes
about 2 s at 32 pixels and about a minute at 224 pixels (``supersample=2``) on 2 CPU cores.

**The image pool** (CoMM's protocol, Dufumier et al. 2025, "What to align in multimodal
contrastive learning?"). Of the 1000 (shape, texture, color) combinations a seeded random 20%
(``test_fraction``) are *test* combinations, drawn once each; the other 800 are *train*
combinations, each drawn ``num_per_combination`` (3) times with independent nuisance: 2400 train
and 200 test images. Train and test share no combination.

**Pairs.** A pair ``(i, j)`` of images of the same split is one sample; image ``i`` is modality
1, image ``j`` modality 2. Allowed pairs always share their shape; their textures and colors are
otherwise free:

* redundancy (``task="share"``): ``y = shape`` (either image tells it);
* uniqueness (``"unique1"`` / ``"unique2"``): ``y = texture_1`` / ``texture_2`` (only one
  image tells it);
* synergy (``"synergy"``): a seeded permutation ``pi`` of the ten colors links each texture to
  one color (``correlated_pairs``: ``(t, pi(t))``), and ``y = 1[color_2 == pi(texture_1)]``:
  neither image alone says anything about ``y``.

``biased=False`` draws ``num_pairs`` pairs uniformly without replacement among *all* allowed
pairs of a split (ordered, ``i == j`` included), so ``texture_1``, ``texture_2``, ``color_1``
and ``color_2`` are (up to the missing test combinations) independent, and about one pair in
ten has ``y_synergy = 1``. ``biased=True`` draws only among pairs with
``color_2 == pi(texture_1)`` (every such pair has ``y_synergy = 1``): the self-supervised data of
the synergy experiment, whose probe then trains and tests on unbiased pairs, scored by balanced
accuracy (chance 50%). A split with fewer allowed pairs than ``num_pairs`` holds all of them
(the 200 test images give about 4000 unbiased pairs).

Randomness comes from ``numpy.random.SeedSequence(seed)``, spawned into independent streams for
the combination split, the two renders, the permutation and the two pair draws: the same seed
gives the same images and permutation whatever ``biased`` and ``num_pairs`` are, so a biased
pretraining set and the unbiased probing sets share their pool (see
:meth:`BimodalTrifeatures.with_pairs`).

Example:
  >>> data = bimodal_trifeatures(500, resolution=16, num_per_combination=1, seed=0)
  >>> data.train["x1"].shape, data.train["y"].shape, data.num_classes
  ((500, 16, 16, 3), (500,), 10)
  >>> bool((data.labels("train")["shape"] == data.train["y"]).all())
  True
  >>> biased = data.with_pairs(biased=True).with_task("synergy")
  >>> int(biased.train["y"].min()), biased.num_classes
  (1, 2)
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
from collections.abc import Mapping

import numpy as np

from factorcl_jax import validation

__all__ = [
    "BACKGROUND",
    "COLORS",
    "MIN_TEXTURE_PERIOD",
    "SHAPES",
    "TASKS",
    "TASK_LABELS",
    "TEXTURES",
    "BimodalTrifeatures",
    "TrifeaturesImages",
    "bimodal_trifeatures",
    "default_texture_period",
    "pair_labels",
    "render_trifeatures",
    "sample_pairs",
    "save_pair_grid",
    "shape_templates",
]

SHAPES: tuple[str, ...] = (
    "triangle",
    "square",
    "plus",
    "circle",
    "tee",
    "rhombus",
    "pentagon",
    "star",
    "fivesquare",
    "trapezoid",
)
TEXTURES: tuple[str, ...] = (
    "solid",
    "stripes",
    "grid",
    "hexgrid",
    "dots",
    "noise",
    "triangles",
    "zigzags",
    "rain",
    "pluses",
)
COLORS: Mapping[str, tuple[float, float, float]] = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "pink": (1.0, 0.4, 1.0),
    "cyan": (0.0, 1.0, 1.0),
    "purple": (0.3, 0.0, 0.5),
    "ocean": (0.1, 0.4, 0.5),
    "orange": (1.0, 0.6, 0.0),
    "white": (1.0, 1.0, 1.0),
}
"""RGB in ``[0, 1]`` of the ten colors, in label order."""
BACKGROUND: tuple[float, float, float] = (0.5, 0.5, 0.5)

TASKS: tuple[str, ...] = ("share", "unique1", "unique2", "synergy")
TASK_LABELS: Mapping[str, str] = {
    "share": "shape",
    "unique1": "texture1",
    "unique2": "texture2",
    "synergy": "synergy",
}
"""The label each task reads from :meth:`BimodalTrifeatures.labels`."""

CANVAS = 224
"""Side of the reference canvas; all geometry is in its pixels."""
TEMPLATE = 128
"""Side of the shape templates."""
MAX_ANGLE = 45
"""Shapes and textures are rotated by integer angles in ``[-MAX_ANGLE, MAX_ANGLE)`` degrees."""
TEXTURE_UNITS = 10
"""Texture period in texture units; one unit is one pixel of the reference's texture."""
MIN_TEXTURE_PERIOD = 5.0
"""Smallest default texture period, in output pixels."""
_SAMPLES_PER_CHUNK = 2**22
"""Scene samples evaluated at once (bounds the memory of rendering to a few hundred MB)."""


# ------------------------------------------------------------------------------- shapes


@functools.cache
def shape_templates() -> np.ndarray:
    """The ten binary shape templates, ``[10, 128, 128]`` bool, row ``i`` top to bottom.

    Each template is a set of pixels ``(i, j)`` of the 128 x 128 grid (``k = 128``):

    * triangle: ``|j - k/2| - floor(i/2) < 1``; square: every pixel;
    * plus: a vertical and a horizontal bar over ``[k/2 - k/6, k/2 + k/6]`` (integer bounds);
    * circle: ``(i + 0.5 - k/2)^2 + (j + 0.5 - k/2)^2 < (k/2)^2``;
    * tee: the plus's vertical bar and the top third of the rows;
    * rhombus (a sheared square): ``0 < j - k/2 + floor(i/2) < k/2``;
    * pentagon: a triangle of slope 1.25 over the top 40% of the rows on a trapezoid;
    * star: a narrow spike (top 40%), two arms (the next 20%) and two legs (the bottom);
    * fivesquare: the four corner squares and the centre square of a 3 x 3 split;
    * trapezoid: ``floor(i / 3.1) < j < k - floor(i / 3.1)``.
    """
    k = TEMPLATE
    i = np.arange(k)[:, None].astype(np.float64)
    j = np.arange(k)[None, :].astype(np.float64)
    rows = np.broadcast_to(i, (k, k))
    half, sixth, third = k // 2, k // 6, k // 3

    def between(value, low, high):
        return (low < value) & (value < high)

    vertical_bar = (half - sixth <= j) & (j < half + sixth + 1)
    horizontal_bar = (half - sixth <= i) & (i < half + sixth + 1)
    top = int(k * 0.4)
    pentagon_bottom = np.floor((i - top) / 3.1)
    star_arms, star_legs = top + int(0.2 * k), top + int(0.15 * k)
    leg_inner = k * 0.33 - 0.43 * (i - star_legs)
    leg_outer = k * 0.62 - 1.05 * (i - star_legs)
    middle_rows = (third <= i) & (i < 2 * k // 3)
    middle_cols = (third <= j) & (j < 2 * k // 3)
    trapezoid_side = np.floor(i / 3.1)
    templates = {
        "triangle": np.abs(j - half) - np.floor(i / 2) < 1,
        "square": np.ones((k, k), bool),
        "plus": vertical_bar | horizontal_bar,
        "circle": (i + 0.5 - half) ** 2 + (j + 0.5 - half) ** 2 < half**2,
        "tee": vertical_bar | (i < third),
        "rhombus": between(j - half + np.floor(i / 2), 0, half),
        "pentagon": np.where(
            rows < top,
            np.abs(j - half) - 1.25 * i < 1,
            between(j, pentagon_bottom, k - pentagon_bottom),
        ),
        "star": ((rows < top) & (np.abs(j - half) - np.floor(i / 4) < 1))
        | ((top <= rows) & (rows < star_arms) & between(j, (i - top) * 2.4, k - (i - top) * 2.4))
        | (
            (star_legs <= rows)
            & (between(j, leg_inner, leg_outer) | between(k - j, leg_inner, leg_outer))
        ),
        "fivesquare": (~middle_rows & ~middle_cols) | (middle_rows & middle_cols),
        "trapezoid": between(j, trapezoid_side, k - trapezoid_side),
    }
    stacked = np.stack([np.broadcast_to(templates[name], (k, k)) for name in SHAPES])
    stacked.flags.writeable = False
    return stacked


# ----------------------------------------------------------------------------- textures


def _hash(key: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Uniform uint64 per ``(key, row, col)``: SplitMix64's finaliser of a linear mix."""
    z = (
        key
        + row.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        + col.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_RAIN_HEIGHT = TEXTURE_UNITS - TEXTURE_UNITS // 3
_RAIN_THRESHOLD = np.uint64(int(0.05 * 2.0**64))


def _texture(name: str, row: np.ndarray, col: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Texture ``name`` (bool) at integer texture coordinates; ``key`` seeds noise and rain.

    With period ``p = 10``, ``y = row mod p``, ``x = col mod p``, ``w = p // 3``,
    ``s = p // 5``: stripes ``y < w``; grid ``y < w or x < w``; hexgrid: three families of lines,
    ``(col ± floor(1.73 row)) mod p < s`` or ``y < s``; dots ``(y - p/2)^2 + (x - p/2)^2 <
    (3p // 7)^2``; noise: a fair coin per unit cell; triangles ``floor(y/2) > |x - p/2|``;
    zigzags: bands ``floor(y/2) < x' < p - p//2 + floor(y/2)`` with ``x' = x`` on even and
    ``p - 1 - x`` on odd rows of cells; rain: each cell starts a one-cell-wide streak
    ``p - p//3`` cells down with probability 0.05; pluses: plus signs of half-width 1.5, centred
    in the cells on even rows of cells and on cell corners on odd ones.
    """
    p = TEXTURE_UNITS
    y, x = row % p, col % p
    odd_cell_row = (row // p) % 2 == 1
    if name == "solid":
        return np.ones(row.shape, bool)
    if name == "stripes":
        return y < p // 3
    if name == "grid":
        return (y < p // 3) | (x < p // 3)
    if name == "hexgrid":
        slanted = np.floor(1.73 * row).astype(np.int64)
        thin = p // 5
        return ((col + slanted) % p < thin) | ((col - slanted) % p < thin) | (y < thin)
    if name == "dots":
        return (y - p // 2) ** 2 + (x - p // 2) ** 2 < (3 * p // 7) ** 2
    if name == "noise":
        return (_hash(key, row, col) >> np.uint64(63)) == 1
    if name == "triangles":
        return y // 2 - np.abs(x - p // 2) > 0
    if name == "zigzags":
        x = np.where(odd_cell_row, p - 1 - x, x)
        return (y // 2 < x) & (x < p - p // 2 + y // 2)
    if name == "rain":
        starts = [_hash(key, row - d, col) < _RAIN_THRESHOLD for d in range(_RAIN_HEIGHT)]
        return np.logical_or.reduce(starts)
    if name == "pluses":
        width = 1.5
        corner = (
            (x < width)
            | (p - x < width)
            | ((np.abs(y - p / 2) < width) & (np.abs(x - p / 2) > width))
        )
        centre = (np.abs(x - p / 2) < width) | (np.abs(y - p / 2) < width)
        return np.where(odd_cell_row, corner, centre)
    raise AssertionError(name)


# ---------------------------------------------------------------------------- rendering


def default_texture_period(resolution: int) -> float:
    """``max(10 * resolution / 224, MIN_TEXTURE_PERIOD)`` output pixels (10 at 224)."""
    return max(TEXTURE_UNITS * resolution / CANVAS, MIN_TEXTURE_PERIOD)


def _check_labels(shape, texture, color) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, values in (("shape", shape), ("texture", texture), ("color", color)):
        values = np.asarray(values)
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(
                f"`{name}` must be a 1-D integer array of labels, got shape {values.shape} "
                f"and dtype {values.dtype}"
            )
        if values.size and (values.min() < 0 or values.max() > 9):
            raise ValueError(
                f"`{name}` labels must lie in [0, 9], got {values.min()}..{values.max()}"
            )
        arrays.append(values.astype(np.int64))
    if not len(arrays[0]) == len(arrays[1]) == len(arrays[2]):
        raise ValueError(
            "`shape`, `texture` and `color` must have the same length, got "
            f"{len(arrays[0])}, {len(arrays[1])} and {len(arrays[2])}"
        )
    return arrays[0], arrays[1], arrays[2]


def _draw_nuisance(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-image pose of the shape and the texture, in canvas pixels and degrees."""
    shape_angle = rng.integers(-MAX_ANGLE, MAX_ANGLE, n)
    radians = np.deg2rad(shape_angle)
    side = (TEMPLATE * (np.abs(np.cos(radians)) + np.abs(np.sin(radians))) + 0.5).astype(np.int64)
    offset = rng.integers(0, CANVAS - side[:, None], (n, 2))
    return {
        "shape_angle": shape_angle,
        "shape_centre": offset + side[:, None] / 2.0,
        "texture_angle": rng.integers(-MAX_ANGLE, MAX_ANGLE, n),
        "texture_phase": rng.integers(0, TEXTURE_UNITS, (n, 2)),
        "key": rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True),
    }


def _rotate(dy: np.ndarray, dx: np.ndarray, degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotates offsets ``[n, h, w]`` by ``-degrees`` (the inverse of the object's rotation)."""
    radians = np.deg2rad(degrees)[:, None, None]
    cos, sin = np.cos(radians).astype(np.float32), np.sin(radians).astype(np.float32)
    return cos * dy - sin * dx, sin * dy + cos * dx


def _coverage(
    shape: np.ndarray,
    texture: np.ndarray,
    pose: Mapping[str, np.ndarray],
    points: np.ndarray,
    unit: float,
) -> np.ndarray:
    """``m = shape * texture`` at the sample ``points`` (canvas pixels), ``[n, S, S]`` bool."""
    centre = pose["shape_centre"].astype(np.float32)
    dy = points[None, :, None] - centre[:, 0, None, None]
    dx = points[None, None, :] - centre[:, 1, None, None]
    ty, tx = _rotate(dy, dx, pose["shape_angle"])
    row = np.floor(ty + TEMPLATE / 2).astype(np.int32)
    col = np.floor(tx + TEMPLATE / 2).astype(np.int32)
    inside = (row >= 0) & (row < TEMPLATE) & (col >= 0) & (col < TEMPLATE)
    flat = (shape.astype(np.int32)[:, None, None] * TEMPLATE + np.clip(row, 0, TEMPLATE - 1)) * (
        TEMPLATE
    ) + np.clip(col, 0, TEMPLATE - 1)
    covered = inside & shape_templates().reshape(-1)[flat]
    centred = points - CANVAS / 2
    vy, vx = _rotate(centred[None, :, None], centred[None, None, :], pose["texture_angle"])
    row = np.floor(vy / unit).astype(np.int64) + pose["texture_phase"][:, 0, None, None]
    col = np.floor(vx / unit).astype(np.int64) + pose["texture_phase"][:, 1, None, None]
    textured = np.zeros_like(covered)
    for index, name in enumerate(TEXTURES):
        selected = np.flatnonzero(texture == index)
        if selected.size:
            key = pose["key"][selected, None, None]
            textured[selected] = _texture(name, row[selected], col[selected], key)
    return covered & textured


def render_trifeatures(
    shape,
    texture,
    color,
    *,
    resolution: int = 32,
    texture_period: float | None = None,
    supersample: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """Draws one Trifeatures image per ``(shape, texture, color)`` triple (module docstring).

    Args:
      shape, texture, color: ``[n]`` integer labels in ``[0, 9]`` (indices into ``SHAPES``,
        ``TEXTURES``, ``COLORS``).
      resolution: side ``R`` of the square output, ``>= 8``.
      texture_period: texture period in output pixels, ``> 0``; ``None``:
        :func:`default_texture_period`.
      supersample: scene samples per pixel along each axis (``supersample^2`` per pixel),
        ``>= 1``; 1 samples pixel centres only (hard edges).
      seed: seeds every image's pose (shape angle and position, texture angle and phase) and
        its noise / rain; the pose does not depend on the labels.

    Returns:
      ``[n, R, R, 3]`` float32 in ``[0, 1]``: ``m * COLORS[color] + (1 - m) * BACKGROUND``,
      ``m`` the fraction of a pixel's samples inside the textured shape.
    """
    shape, texture, color = _check_labels(shape, texture, color)
    resolution = validation.check_int(resolution, "resolution", minimum=8, maximum=4096)
    supersample = validation.check_int(supersample, "supersample", minimum=1, maximum=16)
    seed = validation.check_seed(seed, "seed")
    if texture_period is None:
        texture_period = default_texture_period(resolution)
    texture_period = validation.check_positive_float(texture_period, "texture_period")
    n = len(shape)
    pose = _draw_nuisance(n, np.random.default_rng(seed))
    pixel = CANVAS / resolution
    side = resolution * supersample
    points = ((np.arange(side) + 0.5) * (pixel / supersample)).astype(np.float32)
    unit = texture_period * pixel / TEXTURE_UNITS
    coverage = np.empty((n, resolution, resolution), np.float32)
    chunk = max(1, _SAMPLES_PER_CHUNK // side**2)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        samples = _coverage(
            shape[rows], texture[rows], {k: v[rows] for k, v in pose.items()}, points, unit
        )
        blocks = samples.reshape(-1, resolution, supersample, resolution, supersample)
        coverage[rows] = blocks.mean(axis=(2, 4), dtype=np.float32)
    palette = np.asarray(list(COLORS.values()), np.float32)
    m = coverage[..., None]
    images = m * palette[color][:, None, None, :] + (1 - m) * np.asarray(BACKGROUND, np.float32)
    return np.clip(images, 0.0, 1.0)


# -------------------------------------------------------------------------------- pairs


def _check_permutation(correlated_colors) -> np.ndarray:
    values = np.asarray(correlated_colors)
    if values.shape != (10,) or sorted(values.tolist()) != list(range(10)):
        raise ValueError(
            "`correlated_colors` must be a permutation of 0..9 (the color linked to each "
            f"texture), got {values!r}"
        )
    return values.astype(np.int64)


def sample_pairs(
    shape,
    texture,
    color,
    num_pairs: int,
    *,
    correlated_colors,
    biased: bool,
    seed: int,
) -> np.ndarray:
    """Draws ``min(num_pairs, A)`` of the ``A`` allowed pairs, uniformly without replacement.

    A pair ``(i, j)`` (ordered, ``i == j`` allowed) is allowed when ``shape[i] == shape[j]``
    and, if ``biased``, ``color[j] == correlated_colors[texture[i]]``. The allowed set is a
    union of blocks ``I_g x J_g`` (images grouped by the key they must share), so a draw of
    flat indices into the blocks enumerates nothing.

    Args:
      shape, texture, color: ``[P]`` integer labels of the image pool.
      num_pairs: pairs wanted, ``>= 1``.
      correlated_colors: ``[10]`` permutation, the color ``pi(t)`` linked to texture ``t``.
      biased: keep only pairs with ``color_2 == pi(texture_1)``.
      seed: seeds the draw.

    Returns:
      ``[N, 2]`` int64 rows ``(i, j)`` into the pool, in random order.
    """
    shape, texture, color = _check_labels(shape, texture, color)
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    correlated_colors = _check_permutation(correlated_colors)
    seed = validation.check_seed(seed, "seed")
    if biased:
        key1 = shape * 10 + correlated_colors[texture]
        key2 = shape * 10 + color
    else:
        key1, key2 = shape, shape
    groups = 100
    order1, order2 = np.argsort(key1, kind="stable"), np.argsort(key2, kind="stable")
    count1 = np.bincount(key1, minlength=groups)
    count2 = np.bincount(key2, minlength=groups)
    start1 = np.concatenate([[0], np.cumsum(count1)[:-1]])
    start2 = np.concatenate([[0], np.cumsum(count2)[:-1]])
    block = count1 * count2
    block_end = np.cumsum(block)
    total = int(block_end[-1])
    if total == 0:
        raise ValueError("the image pool has no allowed pair (no two images share a shape)")
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=min(num_pairs, total), replace=False)
    group = np.searchsorted(block_end, flat, side="right")
    first, second = np.divmod(flat - (block_end[group] - block[group]), count2[group])
    return np.stack([order1[start1[group] + first], order2[start2[group] + second]], axis=1)


def pair_labels(shape, texture, color, pairs, *, correlated_colors) -> dict[str, np.ndarray]:
    """Every label of the pairs ``[N, 2]`` of a pool, each ``[N]`` int32.

    ``shape`` (of image 1, shared), ``texture1``, ``texture2``, ``color1``, ``color2`` and
    ``synergy = 1[color2 == correlated_colors[texture1]]``.
    """
    shape, texture, color = _check_labels(shape, texture, color)
    correlated_colors = _check_permutation(correlated_colors)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"`pairs` must be an integer array [N, 2], got shape {pairs.shape}")
    first, second = pairs[:, 0], pairs[:, 1]
    labels = {
        "shape": shape[first],
        "texture1": texture[first],
        "texture2": texture[second],
        "color1": color[first],
        "color2": color[second],
        "synergy": color[second] == correlated_colors[texture[first]],
    }
    return {name: values.astype(np.int32) for name, values in labels.items()}


# ------------------------------------------------------------------------------ dataset


@dataclasses.dataclass(frozen=True, eq=False)
class TrifeaturesImages:
    """A pool of Trifeatures images and their labels.

    Attributes:
      images: ``[P, R, R, 3]`` float32 in ``[0, 1]``.
      shape, texture, color: ``[P]`` int32 labels (indices into ``SHAPES``, ``TEXTURES``,
        ``COLORS``).
    """

    images: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    color: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class BimodalTrifeatures:
    """Bimodal Trifeatures: two image pools and the pairs drawn from each.

    ``train`` / ``test`` materialise ``{"x1": [N, R, R, 3], "x2": [N, R, R, 3], "y": [N] int32}``
    (the layout ``loop.fit`` takes) on first access. At large resolutions gather batches from
    the pools instead: ``train_pool.images[train_pairs[rows, 0]]`` is modality 1 of ``rows``.

    Attributes:
      train_pool, test_pool: the images of the train and test combinations.
      train_pairs, test_pairs: ``[N, 2]`` int64 rows ``(image 1, image 2)`` into the pools.
      correlated_colors: ``[10]`` int32, the color ``pi(t)`` linked to texture ``t``.
      biased: whether the pairs were drawn among ``color_2 == pi(texture_1)`` only.
      task: one of ``TASKS``; it picks ``y`` (``TASK_LABELS``).
      num_pairs, seed: as passed to :func:`bimodal_trifeatures` (for :meth:`with_pairs`).
    """

    train_pool: TrifeaturesImages
    test_pool: TrifeaturesImages
    train_pairs: np.ndarray
    test_pairs: np.ndarray
    correlated_colors: np.ndarray
    biased: bool
    task: str
    num_pairs: int
    seed: int

    @property
    def num_classes(self) -> int:
        """2 for ``"synergy"``, 10 otherwise."""
        return 2 if self.task == "synergy" else 10

    @property
    def correlated_pairs(self) -> np.ndarray:
        """``[10, 2]`` int32 rows ``(texture t, color pi(t))``."""
        return np.stack([np.arange(10, dtype=np.int32), self.correlated_colors], axis=1)

    def _pool_and_pairs(self, split: str) -> tuple[TrifeaturesImages, np.ndarray]:
        if split == "train":
            return self.train_pool, self.train_pairs
        if split == "test":
            return self.test_pool, self.test_pairs
        raise ValueError(f"`split` must be 'train' or 'test', got {split!r}")

    def labels(self, split: str) -> dict[str, np.ndarray]:
        """:func:`pair_labels` of ``split`` (``"train"`` or ``"test"``), each ``[N]`` int32."""
        pool, pairs = self._pool_and_pairs(split)
        return pair_labels(
            pool.shape, pool.texture, pool.color, pairs, correlated_colors=self.correlated_colors
        )

    def split(self, split: str) -> dict[str, np.ndarray]:
        """``{"x1", "x2", "y"}`` of ``split``, a fresh copy of the pair images."""
        pool, pairs = self._pool_and_pairs(split)
        return {
            "x1": pool.images[pairs[:, 0]],
            "x2": pool.images[pairs[:, 1]],
            "y": self.labels(split)[TASK_LABELS[self.task]],
        }

    @functools.cached_property
    def train(self) -> dict[str, np.ndarray]:
        """``split("train")``, computed once."""
        return self.split("train")

    @functools.cached_property
    def test(self) -> dict[str, np.ndarray]:
        """``split("test")``, computed once."""
        return self.split("test")

    def with_task(self, task: str) -> BimodalTrifeatures:
        """The same pools and pairs with ``y`` read from ``task``."""
        return dataclasses.replace(self, task=_check_task(task))

    def with_pairs(self, *, biased: bool, num_pairs: int | None = None) -> BimodalTrifeatures:
        """Pairs drawn again from the same pools (e.g. unbiased probing pairs of a biased set)."""
        num_pairs = self.num_pairs if num_pairs is None else num_pairs
        train_pairs, test_pairs = _draw_pairs(
            self.train_pool, self.test_pool, self.correlated_colors, num_pairs, biased, self.seed
        )
        return dataclasses.replace(
            self,
            train_pairs=train_pairs,
            test_pairs=test_pairs,
            biased=bool(biased),
            num_pairs=num_pairs,
        )


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}, got {task!r}")
    return task


def _streams(seed: int) -> dict[str, int]:
    """Independent seeds of the dataset's random streams."""
    names = ("split", "train_render", "test_render", "permutation", "train_pairs", "test_pairs")
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {
        name: int(child.generate_state(1)[0]) for name, child in zip(names, children, strict=True)
    }


def _draw_pairs(train_pool, test_pool, correlated_colors, num_pairs, biased, seed):
    streams = _streams(seed)
    return tuple(
        sample_pairs(
            pool.shape,
            pool.texture,
            pool.color,
            num_pairs,
            correlated_colors=correlated_colors,
            biased=bool(biased),
            seed=streams[stream],
        )
        for pool, stream in ((train_pool, "train_pairs"), (test_pool, "test_pairs"))
    )


def bimodal_trifeatures(
    num_pairs: int = 10_000,
    *,
    biased: bool = False,
    task: str = "share",
    resolution: int = 32,
    num_per_combination: int = 3,
    test_fraction: float = 0.2,
    texture_period: float | None = None,
    supersample: int = 2,
    seed: int = 0,
) -> BimodalTrifeatures:
    """Renders the image pools and draws the pairs of bimodal Trifeatures (module docstring).

    Args:
      num_pairs: pairs per split (a split with fewer allowed pairs holds all of them).
      biased: draw only pairs with ``color_2 == pi(texture_1)`` (synergy pretraining).
      task: ``"share"``, ``"unique1"``, ``"unique2"`` or ``"synergy"``: which label is ``y``.
      resolution: image side in pixels (32 on CPU; 64 or 224 on accelerators).
      num_per_combination: images drawn per train combination (test combinations: one).
      test_fraction: fraction of the 1000 combinations held out for testing, in ``(0, 1)``.
      texture_period, supersample: see :func:`render_trifeatures`.
      seed: seeds everything (see the module docstring).

    Returns:
      A :class:`BimodalTrifeatures`.
    """
    task = _check_task(task)
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    num_per_combination = validation.check_positive_int(num_per_combination, "num_per_combination")
    test_fraction = validation.check_finite_float(
        test_fraction, "test_fraction", above=0.0, below=1.0
    )
    seed = validation.check_seed(seed, "seed")
    streams = _streams(seed)
    combinations = np.arange(1000)
    num_test = 1000 - int((1 - test_fraction) * 1000)
    shuffled = np.random.default_rng(streams["split"]).permutation(combinations)
    test_combinations = np.sort(shuffled[:num_test])
    train_combinations = np.repeat(np.sort(shuffled[num_test:]), num_per_combination)
    pools = []
    for combos, stream in (
        (train_combinations, "train_render"),
        (test_combinations, "test_render"),
    ):
        shape, texture, color = combos // 100, (combos // 10) % 10, combos % 10
        images = render_trifeatures(
            shape,
            texture,
            color,
            resolution=resolution,
            texture_period=texture_period,
            supersample=supersample,
            seed=streams[stream],
        )
        labels = (values.astype(np.int32) for values in (shape, texture, color))
        pools.append(TrifeaturesImages(images, *labels))
    correlated_colors = (
        np.random.default_rng(streams["permutation"]).permutation(10).astype(np.int32)
    )
    train_pairs, test_pairs = _draw_pairs(
        pools[0], pools[1], correlated_colors, num_pairs, biased, seed
    )
    return BimodalTrifeatures(
        train_pool=pools[0],
        test_pool=pools[1],
        train_pairs=train_pairs,
        test_pairs=test_pairs,
        correlated_colors=correlated_colors,
        biased=bool(biased),
        task=task,
        num_pairs=num_pairs,
        seed=seed,
    )


# ----------------------------------------------------------------------------- plotting


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            'the pair grid needs matplotlib: pip install "factorcl-jax[plot]"'
        ) from None
    return plt


def save_pair_grid(
    data: BimodalTrifeatures,
    path: str | pathlib.Path,
    *,
    split: str = "train",
    num_pairs: int = 8,
) -> pathlib.Path:
    """Saves the first ``num_pairs`` pairs of ``split`` as a PNG: one column per pair, image 1
    above image 2, each titled with its shape, texture and color (and the pair's synergy label).
    """
    num_pairs = validation.check_positive_int(num_pairs, "num_pairs")
    pool, pairs = data._pool_and_pairs(split)
    labels = data.labels(split)
    count = min(num_pairs, len(pairs))
    plt = _pyplot()
    figure, axes = plt.subplots(2, count, figsize=(1.9 * count, 4.4), squeeze=False)
    names = list(COLORS)
    for column in range(count):
        for row in range(2):
            image = pool.images[pairs[column, row]]
            axis = axes[row, column]
            axis.imshow(image, interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            texture = TEXTURES[labels[f"texture{row + 1}"][column]]
            color = names[labels[f"color{row + 1}"][column]]
            axis.set_title(f"{SHAPES[labels['shape'][column]]}\n{texture}, {color}", fontsize=7)
        axes[1, column].set_xlabel(f"synergy={labels['synergy'][column]}", fontsize=7)
    axes[0, 0].set_ylabel("image 1", fontsize=8)
    axes[1, 0].set_ylabel("image 2", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return pathlib.Path(path)
