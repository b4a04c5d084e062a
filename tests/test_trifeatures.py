"""Tests of the Trifeatures renderer and the bimodal pairs (``factorcl_jax.data.trifeatures*``)."""

import math

import numpy as np
import pytest

from factorcl_jax.data import trifeatures as tf
from factorcl_jax.data import trifeatures_images as ti

PALETTE = np.asarray(list(tf.COLORS.values()), np.float32)
RED = list(tf.COLORS).index("red")


@pytest.fixture(scope="module")
def data():
    """The full protocol (3 renders per train combination) at a tiny resolution."""
    return tf.bimodal_trifeatures(10_000, resolution=8, supersample=1, seed=3)


def coverage(images, color):
    """``m`` of ``image = m * color + (1 - m) * background``, read off the red channel."""
    background = ti.BACKGROUND[0]
    return (images[..., 0] - background) / (PALETTE[color, 0] - background)


def all_pairs(shape, texture, color, correlated_colors, *, biased):
    """Every allowed pair, by brute force over the ``P x P`` grid."""
    allowed = shape[:, None] == shape[None, :]
    if biased:
        allowed &= color[None, :] == correlated_colors[texture][:, None]
    return np.argwhere(allowed)


# --------------------------------------------------------------------------- templates


def test_templates_are_ten_distinct_shapes_with_the_closed_form_areas():
    templates = ti.shape_templates()
    assert templates.shape == (10, 128, 128) and templates.dtype == bool
    flat = templates.reshape(10, -1)
    assert len({row.tobytes() for row in flat}) == 10
    area = dict(zip(tf.SHAPES, flat.sum(axis=1), strict=True))
    assert area["square"] == 128**2
    assert area["circle"] == pytest.approx(math.pi * 64**2, rel=0.01)
    bar = 43  # columns 43..85 of the plus's bars
    assert area["plus"] == 2 * 128 * bar - bar**2
    assert area["fivesquare"] == (42 + 43) ** 2 + 43**2  # corners of 42 or 43, a 43 centre
    assert area["triangle"] == pytest.approx(128**2 / 2, rel=0.02)
    for name in ("triangle", "trapezoid", "pentagon", "star", "tee", "rhombus"):
        assert 0.1 * 128**2 < area[name] < 0.9 * 128**2, name


# ---------------------------------------------------------------------------- rendering


def test_render_shape_dtype_range_and_color_model():
    combos = np.arange(1000)
    shape, texture, color = combos // 100, (combos // 10) % 10, combos % 10
    images = ti.render_trifeatures(shape, texture, color, resolution=12, seed=0)
    assert images.shape == (1000, 12, 12, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    # Every pixel is m * color + (1 - m) * background for one m in [0, 1].
    target = PALETTE[color][:, None, None, :] - np.asarray(ti.BACKGROUND, np.float32)
    offset = images - np.asarray(ti.BACKGROUND, np.float32)
    m = (offset * target).sum(-1) / np.maximum((target**2).sum(-1), 1e-12)
    assert m.min() >= -1e-5 and m.max() <= 1 + 1e-5
    np.testing.assert_allclose(offset, m[..., None] * target, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "area"),
    [("square", 128**2 / 224**2), ("circle", math.pi * 64**2 / 224**2)],
)
def test_solid_shape_covers_its_area_whatever_the_pose(name, area):
    """Rotation and placement keep the shape whole inside the canvas: coverage = its area."""
    n = 40
    shape = np.full(n, tf.SHAPES.index(name))
    images = ti.render_trifeatures(
        shape, np.zeros(n, int), np.full(n, RED), resolution=32, supersample=4, seed=1
    )
    per_image = coverage(images, RED).mean(axis=(1, 2))
    np.testing.assert_allclose(per_image, area, rtol=0.03)
    assert len({image.tobytes() for image in images}) == n  # poses differ


@pytest.mark.parametrize(
    ("texture", "fraction"),
    [("solid", 1.0), ("stripes", 0.3), ("grid", 1 - 0.7**2), ("noise", 0.5)],
)
def test_texture_fills_its_closed_form_fraction_of_the_shape(texture, fraction):
    """Texture duty cycles: stripes 3/10 of a period, grid 1 - (7/10)^2, noise a fair coin."""
    n = 60
    shape = np.full(n, tf.SHAPES.index("square"))
    images = ti.render_trifeatures(
        shape,
        np.full(n, tf.TEXTURES.index(texture)),
        np.full(n, RED),
        resolution=64,
        texture_period=10,
        seed=2,
    )
    filled = coverage(images, RED).mean() / (128**2 / 224**2)
    assert filled == pytest.approx(fraction, abs=0.015)


def test_images_differ_in_each_feature_and_repeat_per_seed():
    base = np.array([2]), np.array([1]), np.array([4])
    image = ti.render_trifeatures(*base, seed=5)
    np.testing.assert_array_equal(image, ti.render_trifeatures(*base, seed=5))
    assert not np.array_equal(image, ti.render_trifeatures(*base, seed=6))
    for feature in range(3):
        changed = [values.copy() for values in base]
        changed[feature] = (changed[feature] + 3) % 10
        other = ti.render_trifeatures(*changed, seed=5)  # same pose, one feature changed
        assert np.abs(other - image).mean() > 0.01, feature


def test_nuisance_draws_stay_in_the_reference_ranges():
    pose = ti._draw_nuisance(5000, np.random.default_rng(0))
    angles = pose["shape_angle"]
    assert angles.min() == -ti.MAX_ANGLE and angles.max() == ti.MAX_ANGLE - 1
    radians = np.deg2rad(angles)
    half_side = ti.TEMPLATE * (np.abs(np.cos(radians)) + np.abs(np.sin(radians))) / 2
    centre = pose["shape_centre"]
    assert (centre - half_side[:, None] >= -0.5).all()
    assert (centre + half_side[:, None] <= ti.CANVAS + 0.5).all()
    assert set(np.unique(pose["texture_phase"])) == set(range(10))


def test_default_texture_period():
    assert ti.default_texture_period(224) == 10
    assert ti.default_texture_period(32) == ti.MIN_TEXTURE_PERIOD


# -------------------------------------------------------------------------------- pools


def test_pool_splits_the_combinations(data):
    train, test = data.train_pool, data.test_pool
    assert train.images.shape == (2400, 8, 8, 3) and test.images.shape == (200, 8, 8, 3)
    codes = [100 * pool.shape + 10 * pool.texture + pool.color for pool in (train, test)]
    assert np.bincount(codes[0], minlength=1000).max() == 3
    assert set(np.unique(codes[0])).isdisjoint(codes[1]) and len(set(codes[1])) == 200
    assert len(set(codes[0])) + len(set(codes[1])) == 1000


def test_pairs_share_their_shape_and_labels_match_the_pool(data):
    for split in ("train", "test"):
        pool, pairs = data._pool_and_pairs(split)
        labels = data.labels(split)
        np.testing.assert_array_equal(pool.shape[pairs[:, 0]], pool.shape[pairs[:, 1]])
        np.testing.assert_array_equal(labels["shape"], pool.shape[pairs[:, 0]])
        np.testing.assert_array_equal(labels["texture1"], pool.texture[pairs[:, 0]])
        np.testing.assert_array_equal(labels["texture2"], pool.texture[pairs[:, 1]])
        np.testing.assert_array_equal(labels["color2"], pool.color[pairs[:, 1]])
        expected = labels["color2"] == data.correlated_colors[labels["texture1"]]
        np.testing.assert_array_equal(labels["synergy"], expected)
        assert len(np.unique(pairs, axis=0)) == len(pairs)  # without replacement
        split_data = data.split(split)
        np.testing.assert_array_equal(split_data["x1"], pool.images[pairs[:, 0]])
        np.testing.assert_array_equal(split_data["x2"], pool.images[pairs[:, 1]])
        np.testing.assert_array_equal(split_data["y"], labels["shape"])


def test_small_split_holds_every_allowed_pair(data):
    """The test split has fewer allowed pairs than num_pairs: all of them, biased or not."""
    for biased in (False, True):
        drawn = data.with_pairs(biased=biased).test_pairs
        pool = data.test_pool
        expected = all_pairs(
            pool.shape, pool.texture, pool.color, data.correlated_colors, biased=biased
        )
        assert len(drawn) == len(expected) < 10_000
        np.testing.assert_array_equal(np.unique(drawn, axis=0), np.unique(expected, axis=0))


def test_biased_pairs_all_satisfy_the_correlation(data):
    biased = data.with_pairs(biased=True)
    labels = biased.labels("train")
    assert len(labels["synergy"]) == 10_000 and labels["synergy"].all()
    np.testing.assert_array_equal(labels["color2"], biased.correlated_colors[labels["texture1"]])
    # The correlation is one of a permutation: each texture keeps its own color.
    assert sorted(biased.correlated_pairs[:, 1].tolist()) == list(range(10))
    # Shapes and textures stay balanced (each about 1/10 of the pairs).
    for name in ("shape", "texture1"):
        counts = np.bincount(labels[name], minlength=10)
        assert counts.min() > 700 and counts.max() < 1300, (name, counts)


def test_unbiased_labels_have_the_pool_distribution(data):
    """Uniform draws among same-shape pairs: compare counts with the exact expectation."""
    pool, labels = data.train_pool, data.labels("train")
    n = len(labels["shape"])
    one_hot = {name: np.eye(10)[getattr(pool, name)] for name in ("shape", "texture", "color")}
    per_shape = {
        name: one_hot["shape"].T @ one_hot[name] for name in ("texture", "color")
    }  # [shape, value] counts of the pool
    sizes = np.bincount(pool.shape, minlength=10).astype(float)
    total = (sizes**2).sum()
    # P(texture1 = a, texture2 = b) = sum_s n_sa n_sb / sum_s n_s^2.
    expected = per_shape["texture"].T @ per_shape["texture"] / total * n
    observed = np.histogram2d(labels["texture1"], labels["texture2"], bins=10)[0]
    chi_square = ((observed - expected) ** 2 / expected).sum()
    assert chi_square < 99 + 5 * math.sqrt(2 * 99)  # 99 degrees of freedom
    # Independence (up to the missing test combinations): the table is close to its margins.
    independent = np.outer(expected.sum(1), expected.sum(0)) / n
    assert np.abs(expected - independent).max() < 0.05 * independent.mean()
    # Shapes: P(s) = n_s^2 / sum n^2, about 1/10 each.
    counts = np.bincount(labels["shape"], minlength=10)
    expected_shape = sizes**2 / total * n
    assert ((counts - expected_shape) ** 2 / expected_shape).sum() < 9 + 5 * math.sqrt(18)
    # Synergy rate: exactly the fraction of allowed pairs with color2 = pi(texture1).
    linked = per_shape["color"][:, data.correlated_colors]  # [shape, t] images of color pi(t)
    positive = (per_shape["texture"] * linked).sum() / total
    sd = math.sqrt(positive * (1 - positive) / n)
    assert labels["synergy"].mean() == pytest.approx(positive, abs=5 * sd)
    assert positive == pytest.approx(0.1, abs=0.01)


# -------------------------------------------------------------------- determinism, API


def test_same_seed_same_data_and_biased_sets_share_the_pool(data):
    again = tf.bimodal_trifeatures(10_000, resolution=8, supersample=1, seed=3, biased=True)
    np.testing.assert_array_equal(again.train_pool.images, data.train_pool.images)
    np.testing.assert_array_equal(again.correlated_colors, data.correlated_colors)
    np.testing.assert_array_equal(again.train_pairs, data.with_pairs(biased=True).train_pairs)
    np.testing.assert_array_equal(data.with_pairs(biased=False).train_pairs, data.train_pairs)
    # The test pool depends on the seed only, not on the size of the train pool.
    small = tf.bimodal_trifeatures(10, resolution=8, supersample=1, num_per_combination=1, seed=3)
    np.testing.assert_array_equal(small.test_pool.images, data.test_pool.images)
    other = tf.bimodal_trifeatures(10, resolution=8, supersample=1, num_per_combination=1, seed=4)
    assert not np.array_equal(other.test_pool.images, data.test_pool.images)


def test_tasks_pick_y_and_the_class_count(data):
    for task, label in tf.TASK_LABELS.items():
        view = data.with_task(task)
        np.testing.assert_array_equal(view.test["y"], view.labels("test")[label])
        assert view.num_classes == (2 if task == "synergy" else 10)
        assert view.test["y"].dtype == np.int32


def test_sample_pairs_caps_and_orders(data):
    pool = data.test_pool
    pairs = tf.sample_pairs(
        pool.shape,
        pool.texture,
        pool.color,
        50,
        correlated_colors=data.correlated_colors,
        biased=False,
        seed=0,
    )
    assert pairs.shape == (50, 2)
    again = tf.sample_pairs(
        pool.shape,
        pool.texture,
        pool.color,
        50,
        correlated_colors=data.correlated_colors,
        biased=False,
        seed=0,
    )
    np.testing.assert_array_equal(pairs, again)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "redundancy"}, ValueError, "task"),
        ({"num_pairs": 0}, ValueError, "num_pairs"),
        ({"resolution": 4}, ValueError, "resolution"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"texture_period": -1.0}, ValueError, "texture_period"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bimodal_trifeatures_refuses_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tf.bimodal_trifeatures(**{"num_pairs": 10, "resolution": 8, **kwargs})


def test_render_and_pairs_refuse_bad_labels():
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        ti.render_trifeatures([0, 10], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="same length"):
        ti.render_trifeatures([0, 1], [0], [0, 0])
    with pytest.raises(ValueError, match="permutation"):
        tf.sample_pairs([0], [0], [0], 1, correlated_colors=np.zeros(10, int), biased=True, seed=0)
    with pytest.raises(ValueError, match="split"):
        tf.bimodal_trifeatures(10, resolution=8, num_per_combination=1).labels("val")


@pytest.mark.slow
def test_save_pair_grid_writes_a_png(data, tmp_path):
    pytest.importorskip("matplotlib")
    path = tf.save_pair_grid(data.with_task("synergy"), tmp_path / "pairs.png", num_pairs=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
