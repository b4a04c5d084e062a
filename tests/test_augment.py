"""Tests of the keyed, vectorised augmentations in ``factorcl_jax.models.augment``."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first

from factorcl_jax.models import augment

KEY = jax.random.key(0)
VECTORS = jax.random.normal(jax.random.key(1), (64, 24))
SEQUENCES = jax.random.normal(jax.random.key(2), (16, 20, 5))
# Left-padded sequences: sample i has 20 - (i % 8) valid steps at the end.
LENGTHS = 20 - (np.arange(16) % 8)
SEQ_MASK = jnp.asarray(np.arange(20)[None, :] >= 20 - LENGTHS[:, None])

VECTOR_AUGMENTATIONS = {
    "identity": augment.identity,
    "gaussian_noise": functools.partial(augment.gaussian_noise, scale=0.3),
    "feature_mask": functools.partial(augment.feature_mask, rate=0.3),
    "permute_segments": functools.partial(augment.permute_segments, num_segments=4),
    "mixup": functools.partial(augment.mixup, alpha=0.4),
    "random_choice": functools.partial(
        augment.random_choice, augmentations=[augment.identity, augment.gaussian_noise]
    ),
    "make_augmentation": augment.make_augmentation(
        ["gaussian_noise", "feature_mask", "permute_segments"], scale=0.2, rate=0.5
    ),
    "default_augmentation": augment.default_augmentation,
}
SEQUENCE_AUGMENTATIONS = {
    **VECTOR_AUGMENTATIONS,
    "time_mask": functools.partial(augment.time_mask, rate=0.3),
}
# Sequence behaviour differs from vector behaviour only in these; mixup is covered masked.
SEQUENCE_SPECIFIC = ("feature_mask", "time_mask", "permute_segments")
MASK_AWARE = ("gaussian_noise", "time_mask", "permute_segments", "mixup", "default_augmentation")
RANDOM = [name for name in VECTOR_AUGMENTATIONS if name != "identity"]


def _cases(table, x, mask=None):
    extra = {} if mask is None else {"mask": mask}
    return [pytest.param(table[name], x, extra, id=name) for name in table]


ALL_CASES = (
    _cases(VECTOR_AUGMENTATIONS, VECTORS)
    + [
        pytest.param(*p.values, id="seq-" + p.id)
        for p in _cases(SEQUENCE_AUGMENTATIONS, SEQUENCES)
        if p.id in SEQUENCE_SPECIFIC
    ]
    + [
        pytest.param(*p.values, id="masked-" + p.id)
        for p in _cases(SEQUENCE_AUGMENTATIONS, SEQUENCES, SEQ_MASK)
        if p.id in MASK_AWARE
    ]
)


@pytest.mark.slow
@pytest.mark.parametrize(("fn", "x", "extra"), ALL_CASES)
def test_shape_dtype_input_unchanged_and_jit(fn, x, extra):
    x_numpy = np.asarray(x).copy()
    out = fn(KEY, x, **extra)
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_array_equal(np.asarray(x), x_numpy)
    jitted = jax.jit(lambda key, x: fn(key, x, **extra))(KEY, x)
    np.testing.assert_allclose(jitted, out, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", fast_first(RANDOM))
def test_deterministic_given_key(name):
    fn = VECTOR_AUGMENTATIONS[name]
    a = fn(jax.random.key(3), VECTORS)
    np.testing.assert_array_equal(a, fn(jax.random.key(3), VECTORS))
    assert not np.array_equal(a, fn(jax.random.key(4), VECTORS))


def test_numpy_input_not_mutated_and_legacy_key():
    x = np.ones((8, 6), np.float32)
    out = augment.feature_mask(jax.random.PRNGKey(0), x, rate=0.5)
    assert (x == 1).all() and (np.asarray(out) == 0).any()


@pytest.mark.slow
def test_bfloat16_preserved():
    x = VECTORS.astype(jnp.bfloat16)
    for fn in (augment.gaussian_noise, augment.mixup, augment.permute_segments):
        assert fn(KEY, x).dtype == jnp.bfloat16


def test_gaussian_noise_std_close_to_scale():
    x = jnp.zeros((2000, 50))
    noise = augment.gaussian_noise(KEY, x, scale=0.3)
    assert abs(float(noise.std()) - 0.3) < 0.005
    assert abs(float(noise.mean())) < 0.005


def test_gaussian_noise_spares_padding():
    out = augment.gaussian_noise(KEY, SEQUENCES, scale=1.0, mask=SEQ_MASK)
    padding = ~np.asarray(SEQ_MASK)
    np.testing.assert_array_equal(np.asarray(out)[padding], np.asarray(SEQUENCES)[padding])
    assert (np.asarray(out)[~padding] != np.asarray(SEQUENCES)[~padding]).all()


def test_feature_mask_rate():
    x = jnp.ones((1000, 100))
    out = augment.feature_mask(KEY, x, rate=0.2)
    assert abs(float((out == 0).mean()) - 0.2) < 0.01
    assert set(np.unique(np.asarray(out)).tolist()) == {0.0, 1.0}


def test_feature_mask_drops_whole_channels_of_sequences():
    out = np.asarray(augment.feature_mask(KEY, jnp.ones((50, 7, 9)), rate=0.5))
    dropped = out == 0
    assert (dropped == dropped[:, :1, :]).all()
    assert 0.4 < dropped.mean() < 0.6


def test_time_mask_rate_and_whole_steps():
    x = jnp.ones((500, 40, 3))
    out = np.asarray(augment.time_mask(KEY, x, rate=0.25))
    dropped = out == 0
    assert (dropped == dropped[:, :, :1]).all()
    assert abs(dropped.mean() - 0.25) < 0.01


def test_time_mask_rate_relative_to_valid_steps():
    x = jnp.ones((400, 30, 2))
    mask = jnp.asarray(np.arange(30)[None, :] >= (np.arange(400) % 20)[:, None])
    out = np.asarray(augment.time_mask(KEY, x, rate=0.5, mask=mask))
    valid = np.asarray(mask)
    assert (out[~valid] == 1).all()  # padding untouched
    assert abs((out[valid] == 0).mean() - 0.5) < 0.02


def _sorted_rows(a):
    a = np.asarray(a)
    return np.sort(a.reshape(a.shape[0], -1), axis=1)


@pytest.mark.parametrize("num_segments", [1, 3, 4, 24])
def test_permute_segments_keeps_values_per_sample(num_segments):
    out = augment.permute_segments(KEY, VECTORS, num_segments=num_segments)
    np.testing.assert_array_equal(_sorted_rows(out), _sorted_rows(VECTORS))
    if num_segments == 1:
        np.testing.assert_array_equal(out, VECTORS)
    else:
        assert not np.array_equal(out, VECTORS)


def test_permute_segments_moves_contiguous_blocks():
    x = jnp.tile(jnp.arange(12.0)[None], (200, 1))
    out = np.asarray(augment.permute_segments(KEY, x, num_segments=3))
    blocks = out.reshape(200, 3, 4)
    # Each block is one original segment, in order: its first value is a segment start.
    assert np.isin(blocks[:, :, 0], [0, 4, 8]).all()
    np.testing.assert_array_equal(np.diff(blocks, axis=2), 1.0)
    # Over many samples all 3! = 6 orders appear.
    assert len({tuple(row) for row in blocks[:, :, 0].tolist()}) == 6


def test_permute_segments_time_axis_with_padding():
    out = np.asarray(augment.permute_segments(KEY, SEQUENCES, num_segments=3, mask=SEQ_MASK))
    x = np.asarray(SEQUENCES)
    valid = np.asarray(SEQ_MASK)
    np.testing.assert_array_equal(out[~valid], x[~valid])
    for i in range(x.shape[0]):
        # Whole time steps move (feature vectors stay together), and only valid ones.
        got = sorted(map(tuple, out[i][valid[i]].tolist()))
        assert got == sorted(map(tuple, x[i][valid[i]].tolist()))


def test_mixup_between_pair_and_closer_to_original():
    # One-hot rows make the mix readable: row i of the output is lam e_i + (1 - lam) e_p(i).
    n = VECTORS.shape[0]
    out = np.asarray(augment.mixup(KEY, jnp.eye(n), alpha=0.5))
    own = np.diag(out)
    other = out - np.diag(own)
    partner = other.argmax(axis=1)
    assert ((own >= 0.5) & (own <= 1.0)).all()
    np.testing.assert_allclose(other.max(axis=1), 1.0 - own, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert (np.count_nonzero(other, axis=1) <= 1).all()  # exactly one partner
    assert (partner != np.arange(n)).all() and len(set(partner.tolist())) == n
    assert own.std() > 0.05  # weights are random, not a constant
    # A generic batch lies between each sample and its partner, and more on the sample side.
    x = np.asarray(VECTORS)
    mixed = np.asarray(augment.mixup(KEY, VECTORS, alpha=0.5))
    np.testing.assert_allclose(mixed, own[:, None] * x + (1 - own[:, None]) * x[partner], atol=1e-5)


@pytest.mark.slow
def test_mixup_masked_never_mixes_padding():
    out = np.asarray(augment.mixup(KEY, SEQUENCES, alpha=1.0, mask=SEQ_MASK))
    x = np.asarray(SEQUENCES)
    valid = np.asarray(SEQ_MASK)
    np.testing.assert_array_equal(out[~valid], x[~valid])
    # The first step is padding in most samples, so a sample whose first valid step is 0 keeps
    # its own value wherever its partner is padded; at least one step must have changed.
    assert (out[valid] != x[valid]).any()


def test_random_choice_selects_per_sample():
    zero = lambda key, x, mask=None: jnp.zeros_like(x)
    one = lambda key, x, mask=None: jnp.ones_like(x)
    out = np.asarray(augment.random_choice(KEY, jnp.full((1000, 3), 0.5), [zero, one]))
    assert (out == out[:, :1]).all()  # one choice per sample, not per entry
    assert set(np.unique(out).tolist()) == {0.0, 1.0}
    assert abs(out[:, 0].mean() - 0.5) < 0.05


def test_make_augmentation_sequence_and_kwargs_routing():
    noise_then_mask = augment.make_augmentation(
        ["gaussian_noise", "feature_mask"], compose="sequence", scale=0.0, rate=1.0
    )
    np.testing.assert_array_equal(noise_then_mask(KEY, VECTORS), 0.0)
    only_noise = augment.make_augmentation("gaussian_noise", scale=0.0)
    np.testing.assert_array_equal(only_noise(KEY, VECTORS), VECTORS)


def test_aligned_time_mask_masks_the_same_steps():
    x1 = jnp.ones((64, 30, 4))
    x2 = jnp.ones((64, 30, 9), jnp.bfloat16)
    a, b = augment.aligned_time_mask(KEY, x1, x2, rate=0.3)
    assert a.shape == x1.shape and b.shape == x2.shape and b.dtype == jnp.bfloat16
    dropped_a = np.asarray(a[..., 0] == 0)
    np.testing.assert_array_equal(dropped_a, np.asarray(b == 0).all(axis=-1))
    np.testing.assert_array_equal(dropped_a, np.asarray(a == 0).all(axis=-1))
    assert abs(dropped_a.mean() - 0.3) < 0.03
    jitted = jax.jit(augment.aligned_time_mask)(KEY, x1, x2, rate=0.3)
    np.testing.assert_array_equal(jitted[0], a)
    # Independent keys per modality would mask different steps; one key masks the same.
    a2, _ = augment.aligned_time_mask(KEY, x1, x2, rate=0.3, mask=jnp.ones((64, 30), bool))
    np.testing.assert_array_equal(a2, a)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: augment.gaussian_noise(KEY, VECTORS, scale=-1.0), ValueError, "scale"),
        (lambda: augment.feature_mask(KEY, VECTORS, rate=1.5), ValueError, "rate"),
        (lambda: augment.feature_mask(KEY, VECTORS, rate="x"), TypeError, "rate"),
        (lambda: augment.time_mask(KEY, VECTORS), ValueError, r"\[n, T, d\]"),
        (lambda: augment.time_mask(KEY, SEQUENCES, mask=SEQ_MASK[:, :5]), ValueError, "mask"),
        (lambda: augment.gaussian_noise(KEY, VECTORS, mask=SEQ_MASK), ValueError, "mask"),
        (lambda: augment.gaussian_noise(KEY, VECTORS[0]), ValueError, "shape"),
        (lambda: augment.gaussian_noise(KEY, jnp.ones((3, 4), int)), TypeError, "floating"),
        (lambda: augment.gaussian_noise(KEY, [[1.0]]), TypeError, "array"),
        (lambda: augment.gaussian_noise(0, VECTORS), TypeError, "key"),
        (lambda: augment.gaussian_noise(jax.random.split(KEY), VECTORS), ValueError, "key"),
        (lambda: augment.permute_segments(KEY, VECTORS, num_segments=25), ValueError, "num_"),
        (lambda: augment.permute_segments(KEY, VECTORS, num_segments=2.0), TypeError, "num_"),
        (lambda: augment.mixup(KEY, VECTORS, alpha=0.0), ValueError, "alpha"),
        (lambda: augment.random_choice(KEY, VECTORS, []), ValueError, "augmentations"),
        (lambda: augment.random_choice(KEY, VECTORS, augment.identity), TypeError, "augment"),
        (
            lambda: augment.random_choice(KEY, VECTORS, [lambda k, x: x[:1]]),
            ValueError,
            r"augmentations\[0\]",
        ),
        (
            lambda: augment.aligned_time_mask(KEY, SEQUENCES, SEQUENCES[:, :3]),
            ValueError,
            "share n and T",
        ),
        (lambda: augment.make_augmentation(["blur"]), ValueError, "unknown augmentation"),
        (lambda: augment.make_augmentation("identity", scal=0.1), TypeError, "scal"),
        (lambda: augment.make_augmentation("identity", compose="all"), ValueError, "compose"),
    ],
)
def test_bad_arguments_raise(call, error, match):
    with pytest.raises(error, match=match):
        call()
