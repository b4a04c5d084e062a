"""Tests of the SimCLR image augmentations in ``factorcl_jax.image_augment``."""

import colorsys
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from helpers import fast_first

from factorcl_jax.models import image_augment as ia

KEY = jax.random.key(0)
IMAGES = jax.random.uniform(jax.random.key(1), (6, 16, 16, 3))

AUGMENTATIONS = {
    "random_resized_crop": ia.random_resized_crop,
    "color_jitter": ia.color_jitter,
    "random_grayscale": ia.random_grayscale,
    "gaussian_blur": ia.gaussian_blur,
    "horizontal_flip": ia.horizontal_flip,
    "simclr_augmentation": ia.simclr_augmentation,
}
ALWAYS = {  # every image changes, so distinct keys give distinct outputs
    "random_resized_crop": ia.random_resized_crop,
    "color_jitter": ia.color_jitter,
    "gaussian_blur": functools.partial(ia.gaussian_blur, p=1.0),
    "simclr_augmentation": ia.simclr_augmentation,
}


def crop_uniforms(key, n):
    """The uniforms ``random_resized_crop`` draws: row ``i`` sets the box of image ``i``."""
    return jax.random.uniform(key, (n, 2 * ia._CROP_ATTEMPTS + 2))


@pytest.mark.parametrize("name", fast_first(AUGMENTATIONS))
def test_shape_dtype_range_and_determinism(name):
    out = AUGMENTATIONS[name](KEY, IMAGES)
    assert out.shape == IMAGES.shape and out.dtype == IMAGES.dtype
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    np.testing.assert_array_equal(out, AUGMENTATIONS[name](KEY, IMAGES))


@pytest.mark.parametrize("name", ALWAYS)
def test_other_keys_give_other_outputs(name):
    assert not np.allclose(ALWAYS[name](KEY, IMAGES), ALWAYS[name](jax.random.key(7), IMAGES))


@pytest.mark.parametrize("name", ["random_resized_crop", "gaussian_blur"])
def test_jit_of_the_call_equals_the_call(name):
    np.testing.assert_allclose(
        jax.jit(AUGMENTATIONS[name])(KEY, IMAGES), AUGMENTATIONS[name](KEY, IMAGES), atol=1e-5
    )


@pytest.mark.parametrize("name", ["random_resized_crop", "color_jitter"])
def test_vmap_over_keys_equals_separate_calls(name):
    keys = jax.random.split(KEY, 3)
    stacked = jnp.stack([IMAGES, IMAGES[::-1], IMAGES * 0.5])
    mapped = jax.vmap(AUGMENTATIONS[name])(keys, stacked)
    for index in range(3):
        np.testing.assert_allclose(
            mapped[index], AUGMENTATIONS[name](keys[index], stacked[index]), atol=1e-5
        )


def test_legacy_keys_and_low_precision_images():
    flipped = ia.horizontal_flip(jax.random.PRNGKey(0), IMAGES)
    assert flipped.shape == IMAGES.shape
    half = ia.random_grayscale(KEY, IMAGES.astype(jnp.bfloat16), p=0.5)
    assert half.dtype == jnp.bfloat16 and half.shape == IMAGES.shape


def test_each_image_gets_its_own_draw():
    """Identical images come out different: the draw is per image, not per batch."""
    same = jnp.broadcast_to(IMAGES[:1], IMAGES.shape)
    out = ia.simclr_augmentation(KEY, same)
    assert len({np.asarray(image).tobytes() for image in out}) == len(out)


@pytest.mark.parametrize(
    "fn",
    [
        functools.partial(ia.random_grayscale, p=0.0),
        functools.partial(ia.gaussian_blur, p=0.0),
        functools.partial(ia.horizontal_flip, p=0.0),
        functools.partial(ia.random_resized_crop, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
    ],
)
def test_probability_zero_or_full_crop_is_the_identity(fn):
    np.testing.assert_allclose(fn(KEY, IMAGES), IMAGES, atol=1e-6)


def test_flip_and_grayscale_at_probability_one():
    np.testing.assert_array_equal(ia.horizontal_flip(KEY, IMAGES, p=1.0), IMAGES[:, :, ::-1])
    gray = np.asarray(ia.random_grayscale(KEY, IMAGES, p=1.0))
    luma = np.asarray(IMAGES) @ np.asarray(ia.GRAYSCALE_WEIGHTS)
    for channel in range(3):
        np.testing.assert_allclose(gray[..., channel], luma, atol=1e-6)


def test_crop_boxes_follow_scale_and_ratio():
    box = jax.jit(jax.vmap(lambda u: ia._crop_box(u, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3))))
    top, left, h, w = (np.asarray(v) for v in box(crop_uniforms(KEY, 4000)))
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    area = h * w / 32**2
    assert area.min() >= 0.05 and area.max() <= 1.0  # rounding of h and w loosens 0.08
    aspect = w / h
    assert aspect.min() >= 0.6 and aspect.max() <= 1.6
    assert 0.4 < area.mean() < 0.6  # U(0.08, 1) has mean 0.54 (before boxes that do not fit)
    assert len(np.unique(top)) > 20 and len(np.unique(left)) > 20
    # A box that never fits (area above the image) falls back to the central crop.
    never = jax.jit(jax.vmap(lambda u: ia._crop_box(u, 32, 32, (2.0, 2.0), (1.0, 1.0))))
    top, left, h, w = (np.asarray(v) for v in never(crop_uniforms(KEY, 4000)[:3]))
    assert (top == 0).all() and (left == 0).all() and (h == 32).all() and (w == 32).all()


def test_crop_resizes_its_box_bilinearly():
    """Against scipy: bilinear interpolation of the cropped box, half-pixel centres, clamped."""
    images = np.asarray(IMAGES)
    out = np.asarray(ia.random_resized_crop(KEY, IMAGES))
    size = images.shape[1]
    box = jax.jit(jax.vmap(lambda u: ia._crop_box(u, size, size, (0.08, 1.0), (3 / 4, 4 / 3))))
    boxes = np.stack([np.asarray(v) for v in box(crop_uniforms(KEY, len(images)))], axis=1)
    for (top, left, h, w), image, result in zip(boxes, images, out, strict=True):
        crop = image[top : top + h, left : left + w]
        rows = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)
        cols = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)
        grid = np.meshgrid(rows, cols, indexing="ij")
        expected = np.stack(
            [scipy.ndimage.map_coordinates(crop[..., c], grid, order=1) for c in range(3)], -1
        )
        np.testing.assert_allclose(result, expected, atol=1e-5)


def test_hue_shift_matches_colorsys():
    pixels = np.random.default_rng(3).uniform(size=(200, 3)).astype(np.float32)
    shift = 0.23
    shift_hue = jax.jit(ia._shift_hue)
    ours = np.asarray(shift_hue(jnp.asarray(pixels), shift))
    expected = []
    for r, g, b in pixels:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        expected.append(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v))
    np.testing.assert_allclose(ours, np.asarray(expected), atol=1e-5)
    np.testing.assert_allclose(shift_hue(jnp.asarray(pixels), 0.0), pixels, atol=1e-5)


def test_brightness_jitter_scales_each_image_by_one_factor():
    images = np.asarray(IMAGES)
    only = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "p": 1.0}
    bright = np.asarray(ia.color_jitter(KEY, IMAGES, **{**only, "brightness": 0.4}))
    inside = images > 0.05
    factor = bright[inside] / images[inside]
    assert factor.min() >= 0.6 - 1e-5 and factor.max() <= 1.4 + 1e-5
    # One factor per image: unclipped pixels of an image share their ratio.
    for image, result in zip(images, bright, strict=True):
        ratio = result / np.maximum(image, 1e-6)
        unclipped = (result < 1.0) & (image > 0.05)
        assert np.ptp(ratio[unclipped]) < 1e-4


def test_blur_matches_scipy_with_the_same_kernel():
    sigma, size = 1.3, 5
    out = np.asarray(ia.gaussian_blur(KEY, IMAGES, sigma=(sigma, sigma), kernel_size=size, p=1.0))
    taps = np.arange(size) - size // 2
    kernel = np.exp(-(taps**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    expected = scipy.ndimage.correlate1d(np.asarray(IMAGES), kernel, axis=1, mode="mirror")
    expected = scipy.ndimage.correlate1d(expected, kernel, axis=2, mode="mirror")
    np.testing.assert_allclose(out, expected, atol=1e-5)
    flat = jnp.full(IMAGES.shape, 0.3, IMAGES.dtype)
    np.testing.assert_allclose(ia.gaussian_blur(KEY, flat, p=1.0), flat, atol=1e-6)
    assert ia.default_blur_kernel_size(32) == 3 and ia.default_blur_kernel_size(224) == 21


def test_simclr_without_crop_keeps_the_layout_of_flat_images():
    flat = jnp.full(IMAGES.shape, 0.4, IMAGES.dtype)
    out = ia.simclr_augmentation(KEY, flat, crop_scale=None)
    # Jitter, grayscale, blur and flip of a flat image stay flat.
    np.testing.assert_allclose(out, jnp.broadcast_to(out[:, :1, :1], out.shape), atol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ia.horizontal_flip(KEY, IMAGES, mask=jnp.ones((6, 16))), ValueError, "mask"),
        (lambda: ia.horizontal_flip(KEY, IMAGES[..., :2]), ValueError, r"\[n, H, W, 3\]"),
        (lambda: ia.horizontal_flip(KEY, jnp.ones((2, 4, 4, 3), int)), TypeError, "floating"),
        (lambda: ia.horizontal_flip(0, IMAGES), TypeError, "PRNG key"),
        (lambda: ia.random_grayscale(KEY, IMAGES, p=1.5), ValueError, "`p`"),
        (lambda: ia.gaussian_blur(KEY, IMAGES, kernel_size=4), ValueError, "kernel_size"),
        (lambda: ia.random_resized_crop(KEY, IMAGES, scale=(0.5, 0.2)), ValueError, "scale"),
        (lambda: ia.color_jitter(KEY, IMAGES, hue=0.7), ValueError, "hue"),
    ],
)
def test_bad_arguments_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
