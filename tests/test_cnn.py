"""Tests of the AlexNet-style image encoder in ``factorcl_jax.cnn``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from factorcl_jax.models.cnn import AlexNetEncoder, feature_map_side

SMALL = (8, 16, 16, 16, 16)
"""Narrow widths: the tests check shapes and wiring, not capacity."""


X = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3))


@pytest.fixture(scope="module")
def params():
    """Parameters for every mode that shares their shapes (mean pooling, tokens, with or without
    normalisation, any dtype): He-scaled NumPy draws in the layout ``init`` would return.
    Drawing them in NumPy keeps the test off XLA's slow CPU compilation of JAX's samplers."""
    encoder = AlexNetEncoder(output_dim=6, pooling="mean", widths=SMALL)
    layout = jax.eval_shape(encoder.init, jax.random.key(0), X)
    rng = np.random.default_rng(0)

    def draw(leaf):
        if leaf.ndim == 1:  # biases
            return jnp.asarray(rng.normal(0.0, 0.1, leaf.shape), jnp.float32)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), leaf.shape), jnp.float32)

    return jax.tree.map(draw, layout)


def encode(params, x, **options):
    return jax.jit(AlexNetEncoder(output_dim=6, widths=SMALL, **options).apply)(params, x)


@pytest.mark.parametrize(
    ("resolution", "stem"),
    [(32, {}), (20, {}), (64, {"stem_kernel": 11, "stem_stride": 4})],
)
def test_output_shapes_in_both_modes(resolution, stem):
    x = jax.ShapeDtypeStruct((3, resolution, resolution, 3), jnp.float32)
    side = feature_map_side(resolution, **stem)
    for output, pooling, shape in [
        ("pooled", "flatten", (3, 12)),
        ("pooled", "mean", (3, 12)),
        ("tokens", "flatten", (3, side**2, 12)),
    ]:
        encoder = AlexNetEncoder(
            output_dim=12, output=output, pooling=pooling, widths=SMALL, **stem
        )
        out, variables = jax.eval_shape(encoder.init_with_output, jax.random.key(0), x)
        assert out.shape == shape and out.dtype == jnp.float32
        if pooling == "flatten" and output == "pooled":  # CoMM's head reads the whole map
            kernel = variables["params"]["Dense_0"]["kernel"]
            assert kernel.shape == (side**2 * SMALL[-1], 12)


def test_feature_map_side_at_the_documented_resolutions():
    """The sides the docs quote (the token counts of the shape test check the formula)."""
    assert feature_map_side(32) == 4
    assert feature_map_side(64) == 8
    assert feature_map_side(224, stem_kernel=11, stem_stride=4) == 7
    assert feature_map_side(20) == 3  # 20 -> 10 -> 5 -> 3


def test_mean_pooling_is_the_mean_of_the_tokens(params):
    """Both read the map through the same linear layer: pooled = mean over tokens (affine)."""
    pooled = encode(params, X, pooling="mean")
    tokens = encode(params, X, output="tokens")
    assert pooled.shape == (4, 6) and tokens.shape == (4, 16, 6)
    np.testing.assert_allclose(pooled, tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert bool(jnp.isfinite(tokens).all())


def test_images_are_encoded_independently(params):
    out = encode(params, X, pooling="mean")
    np.testing.assert_allclose(
        encode(params, X[1:2], pooling="mean"), out[1:2], rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(out[0], out[1])


def test_normalization_uses_the_imagenet_statistics(params):
    """With ``normalize``, an image equal to the ImageNet mean reads as zero."""
    mean = jnp.broadcast_to(jnp.asarray((0.485, 0.456, 0.406)), X.shape)
    np.testing.assert_allclose(
        encode(params, mean, pooling="mean"),
        encode(params, jnp.zeros_like(mean), pooling="mean", normalize=False),
        atol=1e-6,
    )


def test_bfloat16_computation_keeps_float32_parameters(params):
    out = encode(params, X.astype(jnp.bfloat16), pooling="mean", dtype=jnp.bfloat16)
    assert out.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    reference = encode(params, X, pooling="mean")
    np.testing.assert_allclose(out.astype(jnp.float32), reference, rtol=0.1, atol=0.05)


@pytest.mark.parametrize(
    ("encoder", "x", "error", "match"),
    [
        (AlexNetEncoder(output="vector"), jnp.ones((1, 16, 16, 3)), ValueError, "output"),
        (AlexNetEncoder(pooling="max"), jnp.ones((1, 16, 16, 3)), ValueError, "pooling"),
        (AlexNetEncoder(stem_kernel=4), jnp.ones((1, 16, 16, 3)), ValueError, "stem_kernel"),
        (AlexNetEncoder(widths=(8, 8)), jnp.ones((1, 16, 16, 3)), ValueError, "widths"),
        (AlexNetEncoder(), jnp.ones((1, 16, 16)), ValueError, r"\[n, H, W, 3\]"),
        (AlexNetEncoder(), jnp.ones((1, 16, 16, 3), jnp.int32), TypeError, "floating"),
    ],
)
def test_bad_configurations_and_inputs_are_refused(encoder, x, error, match):
    with pytest.raises(error, match=match):
        jax.eval_shape(encoder.init, jax.random.key(0), x)
