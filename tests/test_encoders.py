"""Sequence encoders: padding never changes the output, and they train in every method."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from factorcl_jax import critics, models, objectives
from factorcl_jax.models import augment, encoders
from factorcl_jax.training import loop
from factorcl_jax.training.step import Trainer

ENCODERS = {
    "transformer": encoders.TransformerEncoder(output_dim=8, num_heads=2, num_layers=2),
    "gru_last": encoders.GRUEncoder(hidden_dim=8),
    "gru_mean": encoders.GRUEncoder(hidden_dim=8, pooling="mean"),
}


def sequences(num_samples=4, steps=6, dim=3, seed=0):
    """Right-padded sequences ``[n, steps, dim]`` with lengths ``steps, ..., 1`` and masks."""
    rng = np.random.default_rng(seed)
    lengths = np.linspace(steps, 1, num_samples).astype(int)
    mask = np.arange(steps)[None, :] < lengths[:, None]
    x = np.where(mask[:, :, None], rng.normal(size=(num_samples, steps, dim)), 0.0)
    return x.astype(np.float32), mask


def init_and_apply(encoder, x, mask=None):
    """``(params, jitted apply)``; jit keeps eager op-by-op compilation out of the tests."""
    params = jax.jit(encoder.init)(jax.random.key(0), x, mask=mask)
    return params, jax.jit(encoder.apply)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ENCODERS))
def test_extra_padding_does_not_change_the_output(name):
    x, mask = sequences()
    params, apply = init_and_apply(ENCODERS[name], x, mask)
    reference = apply(params, x, mask=mask)
    assert reference.shape == (4, 8) and bool(jnp.isfinite(reference).all())
    # Four more padding steps holding garbage: masked out, so the output is the same.
    garbage = np.random.default_rng(1).normal(size=(4, 4, 3)).astype(np.float32)
    padded = apply(
        params,
        np.concatenate([x, garbage], axis=1),
        mask=np.concatenate([mask, np.zeros((4, 4), bool)], axis=1),
    )
    np.testing.assert_allclose(padded, reference, rtol=1e-5, atol=1e-5)
    # The full-length first sequence needs no mask; the last, cut to its length, neither.
    np.testing.assert_allclose(apply(params, x[:1]), reference[:1], rtol=1e-5, atol=1e-5)
    last = apply(params, x[-1:, : mask[-1].sum()])
    np.testing.assert_allclose(last, reference[-1:], rtol=1e-5, atol=1e-5)
    # Sequences without any real step still encode to finite values.
    assert bool(jnp.isfinite(apply(params, x, mask=np.zeros_like(mask))).all())


def test_gru_last_is_the_state_after_the_last_real_step():
    x, mask = sequences()
    params, apply = init_and_apply(ENCODERS["gru_last"], x, mask)
    gap = mask.copy()
    gap[0, 2] = False  # a padding step in the middle is skipped, not zeroed
    skipped = apply(params, x, mask=gap)
    without_step = apply(params, np.delete(x[:1], 2, axis=1))
    np.testing.assert_allclose(skipped[:1], without_step, rtol=1e-5, atol=1e-5)


def test_masked_mean():
    values = jnp.arange(12.0).reshape(2, 3, 2)
    mask = jnp.array([[True, False, True], [False, False, False]])
    np.testing.assert_allclose(encoders.masked_mean(values, mask), [[2.0, 3.0], [0.0, 0.0]])


def test_multibench_sizes():
    vision, text = jnp.ones((2, 50, 20)), jnp.ones((2, 50, 300))
    for dims, x in (((20, 40), vision), ((300, 600), text)):
        encoder = encoders.TransformerEncoder(output_dim=dims[1], num_layers=1)
        params = jax.eval_shape(encoder.init, jax.random.key(0), x)
        out = jax.eval_shape(encoder.apply, params, x)
        assert out.shape == (2, dims[1])


@pytest.mark.parametrize(
    ("encoder", "x", "mask", "match"),
    [
        (ENCODERS["gru_last"], jnp.ones((2, 3)), None, r"`x` must have shape \[n, T, d\]"),
        (ENCODERS["transformer"], jnp.ones((2, 3, 4)), jnp.ones((2, 4), bool), "`mask` must"),
        (ENCODERS["gru_last"], jnp.ones((2, 3, 4), jnp.int32), None, "floating"),
        (encoders.TransformerEncoder(7, num_heads=2), jnp.ones((2, 3, 4)), None, "divisible"),
        (encoders.TransformerEncoder(10, max_length=2), jnp.ones((2, 3, 4)), None, "max_length"),
        (encoders.GRUEncoder(4, pooling="max"), jnp.ones((2, 3, 4)), None, "pooling"),
    ],
)
def test_bad_inputs_name_the_argument(encoder, x, mask, match):
    with pytest.raises((ValueError, TypeError), match=match):
        encoder.init(jax.random.key(0), x, mask=mask)


@pytest.mark.slow
def test_sequence_encoders_train_as_factorcl_encoders():
    # FactorCL-SSL exercises every path a sequence batch takes: augmentations, conditioning on
    # augmented views and the NCE-CLUB critics (SUP only swaps the target for labels).
    method = objectives.get_method("FactorCL-SSL")
    x1, mask1 = sequences(num_samples=8, steps=5, dim=3, seed=0)
    x2, mask2 = sequences(num_samples=8, steps=5, dim=4, seed=1)
    batch = {"x1": x1, "x2": x2, "mask1": mask1, "mask2": mask2, "y": np.arange(8) % 2}
    model = models.MultimodalModel(
        encoders=(
            encoders.TransformerEncoder(8, num_heads=2, num_layers=1),
            encoders.GRUEncoder(8),
        ),
        representations=dict(method.representations),
        head_hidden=16,
        embed_dim=8,
    )
    trainer = Trainer(
        method=method,
        model=model,
        critic=critics.ConcatCritic((16,)),
        optimizer=optax.adam(1e-2),
        club_optimizer=optax.adam(1e-2),
        augmentations=(augment.default_augmentation,) * 2,
        joint_augmentation=augment.aligned_time_mask,  # both sequences have 5 steps
    )
    state = jax.jit(trainer.init)(jax.random.key(0), batch)
    losses = []
    for _ in range(5):
        state, measured = trainer.jit_step(state, batch)
        losses.append(float(measured["loss"]))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    embedded = loop.embed_dataset(trainer, state.params, batch)
    assert embedded["factorized"].shape == (8, 8 * len(method.representations))
