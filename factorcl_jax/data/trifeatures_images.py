"""Trifeatures images: one object of a given shape, texture and color, drawn procedurally.

**Trifeatures** (Hermann & Lampinen 2020, "What shapes feature representations? Exploring
datasets, architectures, and training") draws one object per image from three independent
features, ten values each: a *shape* (``SHAPES``), a *texture* (``TEXTURES``) and a *color*
(``COLORS``), on a grey background. Geometry is that of the reference renderer (the one CoMM
ships, Dufumier et al. 2025), in units of its 224-pixel canvas:

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
Rendering runs in NumPy, vectorised over images and pixels: 2600 images take about 2 s at 32
pixels and about a minute at 224 pixels (``supersample=2``) on 2 CPU cores.

Example:
  >>> images = render_trifeatures([0, 3], [1, 4], [2, 9], resolution=32, seed=0)
  >>> images.shape, images.dtype
  ((2, 32, 32, 3), dtype('float32'))
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

from factorcl_jax import validation

__all__ = [
    "BACKGROUND",
    "COLORS",
    "MIN_TEXTURE_PERIOD",
    "SHAPES",
    "TEXTURES",
    "check_labels",
    "default_texture_period",
    "render_trifeatures",
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


def check_labels(shape, texture, color) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(shape, texture, color)`` as int64 arrays ``[n]`` of labels in ``[0, 9]``, same length."""
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
    shape, texture, color = check_labels(shape, texture, color)
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
