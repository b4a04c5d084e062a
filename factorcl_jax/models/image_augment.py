"""Keyed, jit-able image augmentations: SimCLR's recipe, one random draw per image.

SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", Appendix A) augments an image by a random resized crop (scale 0.08-1, aspect
3/4-4/3, resized back), a color jitter (brightness, contrast, saturation 0.4, hue 0.1, applied
with probability 0.8, the four in random order), a random grayscale (0.2), a Gaussian blur
(0.5; sigma in ``[0.1, 2]``, kernel about 10% of the side) and a horizontal flip (0.5). CoMM
(Dufumier et al. 2025) augments each Trifeatures image this way; :func:`simclr_augmentation`
composes the five in that order. Each step follows torchvision's definition (``RandomResizedCrop``
with bilinear resampling, ``ColorJitter``, ``RandomGrayscale``, ``GaussianBlur``,
``RandomHorizontalFlip``).

Every function has the signature of :mod:`factorcl_jax.augment`,
``fn(key, images, *, ..., mask=None) -> images_aug``:

- ``key``: a JAX PRNG key (``jax.random.key(0)`` or a legacy ``uint32[2]`` key);
- ``images``: floating ``[n, H, W, 3]`` RGB in ``[0, 1]``;
- ``mask``: images have no validity mask; passing one is an error (it is accepted as a keyword
  so that trainers can call every augmentation the same way).

The output has the shape and dtype of ``images`` (low-precision images are augmented in float32)
and stays in ``[0, 1]``. Image ``i`` draws its randomness from row ``i`` of one
``jax.random.uniform(key, (n, m))``, so the same key gives the same output, and every function
works under ``jax.jit`` and ``jax.vmap``. Hyperparameters are Python numbers (bind them with
``functools.partial`` before jitting); each function compiles once per image shape and
hyperparameter set, also when called outside ``jit``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> images = jnp.full((4, 32, 32, 3), 0.5)
  >>> jax.jit(horizontal_flip)(jax.random.key(0), images).shape
  (4, 32, 32, 3)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax import validation

__all__ = [
    "GRAYSCALE_WEIGHTS",
    "color_jitter",
    "default_blur_kernel_size",
    "gaussian_blur",
    "grayscale",
    "horizontal_flip",
    "random_grayscale",
    "random_resized_crop",
    "simclr_augmentation",
]

GRAYSCALE_WEIGHTS = (0.2989, 0.587, 0.114)
"""ITU-R 601-2 luma weights of R, G, B (torchvision's ``rgb_to_grayscale``)."""


# --------------------------------------------------------------------------- validation


def _check_images(images: Any, mask: Any) -> Array:
    """``images`` as a floating ``[n, H, W, 3]`` JAX array; refuses a ``mask``."""
    if mask is not None:
        raise ValueError("`mask` must be None: images [n, H, W, 3] have no validity mask")
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"`images` must have shape [n, H, W, 3], got {shape}")
    images = jnp.asarray(images)
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"`images` must be floating-point RGB in [0, 1], got dtype {images.dtype}")
    return images.astype(images.dtype)  # a weakly typed input would compile a second time


def _check_probability(p: Any, name: str = "p") -> float:
    return validation.check_finite_float(p, name, at_least=0.0, at_most=1.0)


def _check_range(values: Any, name: str, *, low: float, high: float = math.inf) -> tuple:
    """A pair ``(a, b)`` with ``low <= a <= b <= high``."""
    if not isinstance(values, tuple | list) or len(values) != 2:
        raise TypeError(f"`{name}` must be a pair (min, max), got {values!r}")
    a = validation.check_finite_float(values[0], f"{name}[0]", at_least=low)
    b = validation.check_finite_float(values[1], f"{name}[1]", at_least=a)
    if b > high:
        raise ValueError(f"`{name}` must lie in [{low}, {high}], got {values!r}")
    return a, b


def _per_image(
    key: Array,
    images: Array,
    augment_one: Callable[[Array, Array], Array],
    num_uniforms: int,
) -> Array:
    """``augment_one(u_i, image_i)`` for every image, ``u = U[0, 1)^{n x num_uniforms}``.

    One draw from ``key`` gives every image its own row of uniforms (one random-bit call per
    augmentation keeps compilation fast). Low-precision images are augmented in float32 and
    cast back.
    """
    uniforms = jax.random.uniform(key, (images.shape[0], num_uniforms))
    work = images.astype(jnp.promote_types(images.dtype, jnp.float32))
    out = jax.vmap(augment_one)(uniforms, work)
    return jnp.clip(out, 0.0, 1.0).astype(images.dtype)


# ------------------------------------------------------------------------ color helpers


def grayscale(images: Array) -> Array:
    """Luma ``0.2989 R + 0.587 G + 0.114 B``: ``[..., 3] -> [...]``."""
    weights = jnp.asarray(GRAYSCALE_WEIGHTS, images.dtype)
    return images @ weights


def _rgb_to_hsv(rgb: Array) -> Array:
    """``[..., 3]`` RGB in ``[0, 1]`` to HSV, hue in ``[0, 1)`` (0 where the pixel is grey)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    maxc = jnp.maximum(jnp.maximum(r, g), b)
    minc = jnp.minimum(jnp.minimum(r, g), b)
    chroma = maxc - minc
    saturation = chroma / jnp.where(maxc > 0, maxc, 1)
    safe = jnp.where(chroma > 0, chroma, 1)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = jnp.where(maxc == r, bc - gc, jnp.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = jnp.where(chroma > 0, _fraction(hue / 6.0), 0.0)
    return jnp.stack([hue, saturation, maxc], axis=-1)


def _fraction(x: Array) -> Array:
    """``x mod 1`` in ``[0, 1)`` (``x - floor(x)`` compiles faster than ``%`` on CPU)."""
    return x - jnp.floor(x)


def _hsv_to_rgb(hsv: Array) -> Array:
    """Inverse of :func:`_rgb_to_hsv`."""
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = jnp.floor(h * 6.0)
    f = h * 6.0 - sector
    sector = sector.astype(jnp.int32) % 6
    p = jnp.clip(v * (1.0 - s), 0.0, 1.0)
    q = jnp.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = jnp.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    choices = [
        jnp.stack(channels, axis=-1)
        for channels in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    return jnp.select([sector[..., None] == k for k in range(6)], choices)


def _shift_hue(rgb: Array, shift: Array) -> Array:
    """Adds ``shift`` to the HSV hue (mod 1) of ``[..., 3]`` RGB."""
    hsv = _rgb_to_hsv(rgb)
    return _hsv_to_rgb(hsv.at[..., 0].set(_fraction(hsv[..., 0] + shift)))


def _blend(image: Array, other: Array | float, factor: Array) -> Array:
    """``clip(factor * image + (1 - factor) * other, 0, 1)`` (torchvision's ``_blend``)."""
    return jnp.clip(factor * image + (1.0 - factor) * other, 0.0, 1.0)


# ------------------------------------------------------------------------ augmentations


_CROP_ATTEMPTS = 10


def _crop_box(
    uniforms: Array, height: int, width: int, scale: tuple, ratio: tuple
) -> tuple[Array, Array, Array, Array]:
    """torchvision's ``RandomResizedCrop.get_params``: ``(top, left, h, w)`` int32 scalars.

    ``uniforms``: ``[2 * 10 + 2]`` draws from ``U[0, 1)``. Up to 10 tries of
    ``area ~ U(scale) * H * W`` and ``log aspect ~ U(log ratio)``; the first box that fits is
    kept, at a uniform position. If none fits: the largest central box whose aspect is clamped
    to ``ratio``.
    """
    tries = _CROP_ATTEMPTS
    area = height * width * (scale[0] + (scale[1] - scale[0]) * uniforms[:tries])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = jnp.exp(low + (high - low) * uniforms[tries : 2 * tries])
    w = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    h = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = jnp.argmax(fits)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_w, fallback_h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fallback_w, fallback_h = round(height * ratio[1]), height
    else:
        fallback_w, fallback_h = width, height
    found = fits.any()
    h = jnp.where(found, h[first], fallback_h)
    w = jnp.where(found, w[first], fallback_w)

    def uniform_position(u: Array, free: Array) -> Array:
        return jnp.minimum(jnp.floor(u * (free + 1)).astype(jnp.int32), free)

    top = jnp.where(
        found, uniform_position(uniforms[2 * tries], height - h), (height - fallback_h) // 2
    )
    left = jnp.where(
        found, uniform_position(uniforms[2 * tries + 1], width - w), (width - fallback_w) // 2
    )
    return top, left, h, w


def _bilinear_weights(start: Array, length: Array, size: int) -> Array:
    """``[size, size]`` rows of bilinear weights resampling ``[start, start + length)`` to ``size``.

    Half-pixel centres (``align_corners=False``): output ``p`` reads source coordinate
    ``start + (p + 0.5) * length / size - 0.5``, clamped to the box, between its two neighbours.
    """
    position = start + (jnp.arange(size) + 0.5) * (length / size) - 0.5
    position = jnp.clip(position, start, start + length - 1)
    below = jnp.floor(position)
    fraction = position - below
    below = below.astype(jnp.int32)
    above = jnp.minimum(below + 1, start + length - 1)
    source = jnp.arange(size)
    return (1.0 - fraction)[:, None] * (source[None, :] == below[:, None]) + fraction[:, None] * (
        source[None, :] == above[:, None]
    )


def random_resized_crop(
    key: Array,
    images: Array,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    mask: Array | None = None,
) -> Array:
    """Crops a random box of each image and resizes it back to ``H x W`` (bilinear).

    The box has area ``a H W`` with ``a ~ U(scale)`` and aspect ``w / h`` log-uniform in
    ``ratio`` (torchvision's ``RandomResizedCrop``, up to 10 tries, then a central box). The
    resampling is ``out = A_y @ box @ A_x^T`` with the bilinear weight matrices of
    :func:`_bilinear_weights`, so every output pixel is a convex combination of box pixels.

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating in ``[0, 1]``.
      scale: ``(min, max)`` fraction of the area, ``0 < min <= max <= 1``.
      ratio: ``(min, max)`` aspect ``w / h``, ``0 < min <= max``.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    scale = _check_range(scale, "scale", low=1e-6, high=1.0)
    ratio = _check_range(ratio, "ratio", low=1e-6)
    return _random_resized_crop(key, images, scale, ratio)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _random_resized_crop(key: Array, images: Array, scale: tuple, ratio: tuple) -> Array:
    height, width = images.shape[1:3]

    def crop_one(uniforms: Array, image: Array) -> Array:
        top, left, h, w = _crop_box(uniforms, height, width, scale, ratio)
        rows = _bilinear_weights(top, h, height).astype(image.dtype)
        cols = _bilinear_weights(left, w, width).astype(image.dtype)
        return jnp.einsum("ph,hwc,qw->pqc", rows, image, cols)

    return _per_image(key, images, crop_one, 2 * _CROP_ATTEMPTS + 2)


def color_jitter(
    key: Array,
    images: Array,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
    mask: Array | None = None,
) -> Array:
    """With probability ``p``, jitters brightness, contrast, saturation and hue, in random order.

    Per image (torchvision's ``ColorJitter``): ``b, c, s ~ U[max(0, 1 - x), 1 + x]`` for
    ``x = brightness, contrast, saturation`` and ``h ~ U[-hue, hue]``; in a random order,
    brightness ``clip(b img)``, contrast ``clip(c img + (1 - c) mean(gray(img)))``, saturation
    ``clip(s img + (1 - s) gray(img))``, hue: the HSV hue shifted by ``h`` (mod 1).

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating in ``[0, 1]``.
      brightness, contrast, saturation: jitter strengths, ``>= 0``.
      hue: hue jitter, in ``[0, 0.5]``.
      p: probability of jittering an image, in ``[0, 1]``.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    strengths = [
        validation.check_finite_float(value, name, at_least=0.0)
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        )
    ]
    hue = validation.check_finite_float(hue, "hue", at_least=0.0, at_most=0.5)
    p = _check_probability(p)
    return _color_jitter(key, images, (*strengths, hue), p)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _color_jitter(key: Array, images: Array, strengths: tuple, p: float) -> Array:
    *strengths, hue = strengths
    lows = jnp.asarray([max(0.0, 1.0 - x) for x in strengths] + [-hue])
    highs = jnp.asarray([1.0 + x for x in strengths] + [hue])

    def jitter_one(uniforms: Array, image: Array) -> Array:
        b, c, s, h = lows + (highs - lows) * uniforms[1:5]
        ops = [
            lambda img: _blend(img, 0.0, b),
            lambda img: _blend(img, grayscale(img).mean(), c),
            lambda img: _blend(img, grayscale(img)[..., None], s),
            lambda img: _shift_hue(img, h),
        ]
        order = jnp.argsort(uniforms[5:9])  # a uniformly random permutation of the four
        # A loop (not four unrolled switches) compiles the four operations once, not 16 times.
        jittered = jax.lax.fori_loop(
            0, 4, lambda step, img: jax.lax.switch(order[step], ops, img), image
        )
        return jnp.where(uniforms[0] < p, jittered, image)

    return _per_image(key, images, jitter_one, 9)


def random_grayscale(
    key: Array, images: Array, *, p: float = 0.2, mask: Array | None = None
) -> Array:
    """With probability ``p``, replaces an image by its luma on all three channels.

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating in ``[0, 1]``.
      p: probability, in ``[0, 1]``.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    return _random_grayscale(key, images, _check_probability(p))


@functools.partial(jax.jit, static_argnums=2)
def _random_grayscale(key: Array, images: Array, p: float) -> Array:
    def gray_one(uniforms: Array, image: Array) -> Array:
        gray = jnp.broadcast_to(grayscale(image)[..., None], image.shape)
        return jnp.where(uniforms[0] < p, gray, image)

    return _per_image(key, images, gray_one, 1)


def default_blur_kernel_size(side: int) -> int:
    """SimCLR's kernel: 10% of the side, rounded down to an odd size, at least 3."""
    size = int(0.1 * side)
    return max(3, size if size % 2 else size - 1)


def gaussian_blur(
    key: Array,
    images: Array,
    *,
    sigma: tuple[float, float] = (0.1, 2.0),
    kernel_size: int | None = None,
    p: float = 0.5,
    mask: Array | None = None,
) -> Array:
    """With probability ``p``, blurs an image with a Gaussian of ``sigma ~ U(sigma)`` pixels.

    Separable kernel ``k_t = exp(-t^2 / (2 sigma^2)) / sum``, ``t = -(K-1)/2 .. (K-1)/2``, with
    reflected borders (torchvision's ``GaussianBlur``). CoMM blurs with PIL, whose kernel is not
    truncated; ``kernel_size = 2 * ceil(3 * sigma_max) + 1`` comes close to it.

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating in ``[0, 1]``.
      sigma: ``(min, max)`` standard deviation in pixels, ``0 < min <= max``.
      kernel_size: odd ``K >= 3``, smaller than ``H`` and ``W``; ``None``:
        :func:`default_blur_kernel_size` of the smaller side.
      p: probability, in ``[0, 1]``.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    sigma = _check_range(sigma, "sigma", low=1e-6)
    p = _check_probability(p)
    side = min(images.shape[1:3])
    if kernel_size is None:
        kernel_size = default_blur_kernel_size(side)
    kernel_size = validation.check_int(kernel_size, "kernel_size", minimum=3)
    if kernel_size % 2 == 0 or kernel_size >= side:
        raise ValueError(
            f"`kernel_size` must be odd and smaller than the image side {side}, got {kernel_size}"
        )
    return _gaussian_blur(key, images, sigma, kernel_size, p)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _gaussian_blur(key: Array, images: Array, sigma: tuple, kernel_size: int, p: float) -> Array:
    radius = kernel_size // 2
    taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    height, width = images.shape[1:3]

    def blur_one(uniforms: Array, image: Array) -> Array:
        std = sigma[0] + (sigma[1] - sigma[0]) * uniforms[1]
        kernel = jnp.exp(-(taps**2) / (2.0 * std**2))
        kernel = kernel / kernel.sum()
        padded = jnp.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
        rows = sum(kernel[t] * padded[t : t + height] for t in range(kernel_size))
        blurred = sum(kernel[t] * rows[:, t : t + width] for t in range(kernel_size))
        return jnp.where(uniforms[0] < p, blurred, image)

    return _per_image(key, images, blur_one, 2)


def horizontal_flip(
    key: Array, images: Array, *, p: float = 0.5, mask: Array | None = None
) -> Array:
    """With probability ``p``, mirrors an image left to right (``image[:, ::-1]``).

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating.
      p: probability, in ``[0, 1]``.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    return _horizontal_flip(key, images, _check_probability(p))


@functools.partial(jax.jit, static_argnums=2)
def _horizontal_flip(key: Array, images: Array, p: float) -> Array:
    def flip_one(uniforms: Array, image: Array) -> Array:
        return jnp.where(uniforms[0] < p, image[:, ::-1], image)

    return _per_image(key, images, flip_one, 1)


def simclr_augmentation(
    key: Array,
    images: Array,
    *,
    crop_scale: tuple[float, float] | None = (0.08, 1.0),
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    blur_kernel_size: int | None = None,
    mask: Array | None = None,
) -> Array:
    """SimCLR's augmentation as CoMM applies it: crop, jitter (0.8), gray (0.2), blur (0.5), flip.

    ``random_resized_crop(scale=crop_scale)``, ``color_jitter(0.4, 0.4, 0.4, 0.1, p=0.8)``,
    ``random_grayscale(p=0.2)``, ``gaussian_blur(sigma=blur_sigma, p=0.5)``,
    ``horizontal_flip(p=0.5)``, in that order, each with its own key.

    Args:
      key: PRNG key.
      images: ``[n, H, W, 3]`` floating in ``[0, 1]``.
      crop_scale: area range of the crop; ``None`` skips the crop (CoMM's ``"all_wo_crop"``).
      blur_sigma, blur_kernel_size: see :func:`gaussian_blur`.
      mask: must be None.

    Returns:
      ``[n, H, W, 3]`` of the dtype of ``images``, in ``[0, 1]``.
    """
    validation.check_prng_key(key)
    images = _check_images(images, mask)
    key_crop, key_jitter, key_gray, key_blur, key_flip = jax.random.split(key, 5)
    if crop_scale is not None:
        images = random_resized_crop(key_crop, images, scale=crop_scale)
    images = color_jitter(key_jitter, images)
    images = random_grayscale(key_gray, images)
    images = gaussian_blur(key_blur, images, sigma=blur_sigma, kernel_size=blur_kernel_size)
    return horizontal_flip(key_flip, images)
