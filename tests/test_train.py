"""Training: every method trains under jit and its loss falls; the two-group step; NaN stop."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import tiny_config, tiny_trainer

from factorcl_jax import objectives
from factorcl_jax.config import ConfigError
from factorcl_jax.networks import layers
from factorcl_jax.networks.layers import compute_dtype_of
from factorcl_jax.training import loop, schedules, scoring, views


def tiny_data(num_rows=64, seed=0):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(num_rows, 3))
    x1 = np.concatenate([shared, rng.normal(size=(num_rows, 3))], axis=1)
    x2 = np.concatenate([shared, rng.normal(size=(num_rows, 3))], axis=1)
    y = (shared[:, 0] + x1[:, 3] > 0).astype(np.int32)
    return {"x1": x1.astype(np.float32), "x2": x2.astype(np.float32), "y": y}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(objectives.METHODS))
def test_every_method_trains_under_jit_and_its_loss_falls(method):
    data = tiny_data()
    trainer = tiny_trainer(method)
    state = trainer.init(jax.random.key(0), data)
    losses = []
    for _ in range(25):  # the same full batch every step: the loss must go down
        state, measured = trainer.jit_step(state, data)
        losses.append(float(measured["loss"]))
        assert np.isfinite(losses[-1])
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05, losses
    for term in objectives.METHODS[method].terms:
        assert f"term/{term.name}" in measured
        assert f"scores/{term.name}/positive" in measured
    assert int(state.step) == 25


@pytest.mark.slow
@pytest.mark.parametrize("method", ["FactorCL-SUP", "FactorCL-SSL"])
def test_normalized_heads_give_unit_rows_and_train(method):
    data = tiny_data()
    trainer = tiny_trainer(method, model={"normalize_heads": True})
    state = trainer.init(jax.random.key(0), data)
    losses = []
    for _ in range(25):
        state, measured = trainer.jit_step(state, data)
        losses.append(float(measured["loss"]))
    assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.05
    _, representations = trainer.model.apply(state.params["model"], [data["x1"], data["x2"]])
    assert set(representations) == {"S1", "S2", "U1", "U2"}
    for z in representations.values():
        np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=-1), 1.0, rtol=1e-5)
    unnormalized = tiny_trainer(method)
    _, raw = unnormalized.model.apply(state.params["model"], [data["x1"], data["x2"]])
    np.testing.assert_allclose(
        representations["S1"],
        raw["S1"] / np.linalg.norm(raw["S1"], axis=-1, keepdims=True),
        rtol=1e-5,
        atol=1e-6,
    )


def test_l2_normalize_has_a_finite_gradient_at_zero():
    grad = jax.grad(lambda z: layers.l2_normalize(z).sum())(jnp.zeros((2, 3)))
    assert np.isfinite(np.asarray(grad)).all()


def test_learning_rate_schedules():
    assert schedules.learning_rate_schedule(1e-3) == 1e-3
    cosine = schedules.learning_rate_schedule(1e-3, "cosine", total_steps=100)
    np.testing.assert_allclose(
        [cosine(0), cosine(50), cosine(100), cosine(150)], [1e-3, 5e-4, 0, 0]
    )
    for args, message in [
        ((0.0,), "`learning_rate` must be a finite number > 0, got 0.0"),
        ((float("inf"),), "`learning_rate` must be a finite number > 0, got inf"),
        ((float("nan"),), "`learning_rate` must be a finite number > 0, got nan"),
        ((1e-3, "linear"), "`schedule` must be one of"),
        ((1e-3, "cosine"), "`total_steps` >= 1"),
    ]:
        with pytest.raises(ValueError, match=message):
            schedules.learning_rate_schedule(*args)


def changed(before, after):
    leaves = zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True)
    return any(not np.array_equal(b, a) for b, a in leaves)


@pytest.mark.slow
def test_club_critics_follow_the_schedule_once_per_main_step():
    # total_steps=2: main steps 1 and 2 run at rates s(0) > s(1) > 0, step 3 at s(2) = 0. The
    # CLUB critics take two updates per main step and must see the same rates, so they still
    # move in step 2 (stepping the schedule per CLUB update would reach s(2) = 0 there).
    data = tiny_data()
    trainer = tiny_trainer(
        "FactorCL-SUP",
        steps_per_epoch=1,  # 2 epochs of one step each
        train={"learning_rate": 1e-2, "lr_schedule": "cosine", "num_club_iter": 2},
    )
    state = trainer.init(jax.random.key(0), data)
    moved = []
    for _ in range(3):
        before = jax.tree.map(np.array, (state.params, state.club_params))
        state, _ = trainer.jit_step(state, data)
        after = jax.tree.map(np.asarray, (state.params, state.club_params))
        moved.append([changed(b, a) for b, a in zip(before, after, strict=True)])
    assert moved == [[True, True], [True, True], [False, False]]


@pytest.mark.slow
def test_main_step_leaves_club_critics_to_their_own_update():
    data = tiny_data()
    trainer = tiny_trainer("FactorCL-SUP")
    state = trainer.init(jax.random.key(1), data)
    grads = jax.grad(lambda c: trainer.loss(state.params, c, data, jax.random.key(2))[0])(
        state.club_params
    )
    assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(grads))
    before = jax.tree.map(np.array, state.club_params)
    frozen = dataclasses.replace(trainer, num_club_iter=0)
    after_frozen, _ = frozen.jit_step(jax.tree.map(jnp.array, state), data)
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, after_frozen.club_params), before)
    after, measured = trainer.jit_step(jax.tree.map(jnp.array, state), data)
    assert "club_critic/unique/club/infonce" in measured
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), after.club_params, before)
    assert all(jax.tree.leaves(changed))


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["infonce", "nce_club"])
def test_label_terms_from_class_scores_equal_scoring_every_one_hot_column(bound):
    data = tiny_data(num_rows=16)
    trainer = tiny_trainer("FactorCL-SUP", num_classes=3)
    state = trainer.init(jax.random.key(4), data)
    critic_params = state.params["critics"]["unique1/infonce_target"]
    rows = jax.random.normal(jax.random.key(5), (16, 8))
    labels = jnp.asarray([0, 2, 1, 1] * 4)
    plan = scoring.MemoryPlan()

    def both(critic_params, rows):
        gathered = scoring.label_term_bound(
            bound, trainer.critic, critic_params, rows, labels, labels, 3, plan
        )
        explicit = scoring.term_bound(
            bound, trainer.critic, critic_params, rows, jax.nn.one_hot(labels, 3), plan
        )
        return gathered, explicit

    gathered, explicit = both(critic_params, rows)
    chex.assert_trees_all_close(gathered, explicit, rtol=1e-5, atol=1e-6)
    grads = [
        jax.grad(lambda p, r, k=k: jnp.sin(both(p, r)[k][0]), argnums=(0, 1))(critic_params, rows)
        for k in (0, 1)
    ]
    chex.assert_trees_all_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_num_club_iter_steps_the_club_critics_that_many_times():
    data = tiny_data()
    counts = {}
    for iters in (1, 3):
        trainer = tiny_trainer("FactorCL-SUP", train={"num_club_iter": iters})
        state = trainer.init(jax.random.key(0), data)
        state, _ = trainer.jit_step(state, data)
        counts[iters] = int(state.club_opt_state[0].count)
    assert counts == {1: 1, 3: 3}


@pytest.mark.slow
def test_step_is_deterministic_and_donates_its_state():
    data = tiny_data()
    trainer = tiny_trainer("FactorCL-SSL")
    first = trainer.init(jax.random.key(0), data)
    second = trainer.init(jax.random.key(0), data)
    a, ma = trainer.jit_step(first, data)
    b, mb = trainer.jit_step(second, data)
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(ma, mb)
    kernel = first.params["model"]["encoders"][0]["params"]["MLP_0"]["dense_0"]["kernel"]
    assert kernel.is_deleted()


@pytest.mark.slow
def test_fit_shuffles_by_seed_and_epoch_and_resumes_exactly():
    data = tiny_data(96)
    trainer = tiny_trainer("SimCLR")
    state, history = loop.fit(
        trainer,
        trainer.init(jax.random.key(0), data),
        data,
        epochs=2,
        batch_size=32,
        seed=3,
        progress=False,
    )
    assert [h["step"] for h in history] == list(range(1, 7))
    # Stop after epoch 0, batch 1 and resume from that position.
    partial, _ = loop.fit(
        trainer,
        trainer.init(jax.random.key(0), data),
        data,
        epochs=1,
        batch_size=32,
        seed=3,
        progress=False,
    )
    partial_state = partial
    resumed, rest = loop.fit(
        trainer, partial_state, data, epochs=2, batch_size=32, seed=3, progress=False, start_epoch=1
    )
    chex.assert_trees_all_equal(resumed.params, state.params)
    assert [h["loss"] for h in rest] == [h["loss"] for h in history[3:]]


def test_batches_are_a_permutation_and_drop_the_last_partial_batch():
    data = {"x1": np.arange(10), "x2": np.arange(10)}
    seen = np.concatenate([b["x1"] for b in loop.batches(data, 3, seed=0, epoch=0)])
    assert len(seen) == 9 and len(set(seen.tolist())) == 9
    again = np.concatenate([b["x1"] for b in loop.batches(data, 3, seed=0, epoch=0)])
    other = np.concatenate([b["x1"] for b in loop.batches(data, 3, seed=0, epoch=1)])
    np.testing.assert_array_equal(seen, again)
    assert not np.array_equal(seen, other)


@pytest.mark.slow
def test_non_finite_loss_stops_with_step_and_term_and_keeps_state():
    data = tiny_data()
    data["x1"][5, 0] = np.nan
    trainer = tiny_trainer("FactorCL-SSL")
    state = trainer.init(jax.random.key(0), tiny_data())
    seen = []
    with pytest.raises(loop.NonFiniteLossError, match=r"step 1 .*term/shared/infonce"):
        loop.fit(
            trainer,
            state,
            data,
            epochs=1,
            batch_size=64,
            progress=False,
            on_step=lambda *args: seen.append(args),
        )
    assert seen == []


def test_trainer_and_fit_validate_their_arguments():
    with pytest.raises(ValueError, match="needs `augmentations`"):
        dataclasses.replace(tiny_trainer("FactorCL-SSL"), augmentations=None)
    trainer = tiny_trainer("SimCLR")
    with pytest.raises(TypeError, match="`joint_augmentation` must be a function"):
        dataclasses.replace(trainer, joint_augmentation="aligned_time_mask")
    data = tiny_data()
    with pytest.raises(ValueError, match=r"`batch_size` must be an int in \[2, 64\]"):
        loop.fit(
            trainer,
            trainer.init(jax.random.key(0), data),
            data,
            epochs=1,
            batch_size=65,
            progress=False,
        )
    with pytest.raises(ValueError, match="same number of rows"):
        loop.fit(
            trainer,
            trainer.init(jax.random.key(0), data),
            {**data, "y": data["y"][:10]},
            epochs=1,
            batch_size=8,
            progress=False,
        )
    for bad_labels in (data["y"] + 2, data["y"] - 1, data["y"].astype(np.float32)):
        with pytest.raises(ValueError, match=r"`data\['y'\]` must hold integer labels in \[0, 2\)"):
            loop.fit(
                trainer,
                trainer.init(jax.random.key(0), data),
                {**data, "y": bad_labels},
                epochs=1,
                batch_size=8,
                progress=False,
            )
    state = trainer.init(jax.random.key(0), data)
    for kwargs, error, message in [
        ({"epochs": 0}, ValueError, r"`epochs` must be an int in \[1, "),
        ({"epochs": 2.0}, TypeError, "`epochs` must be an int"),
        ({"seed": -1}, ValueError, r"`seed` must be an int in \[0, 4294967295\]"),
        ({"seed": 2**32}, ValueError, r"`seed` must be an int in \[0, 4294967295\]"),
        ({"start_epoch": 3}, ValueError, r"`start_epoch` must be an int in \[0, 2\]"),
        ({"start_batch": -1}, ValueError, "`start_batch`"),
    ]:
        with pytest.raises(error, match=message):
            loop.fit(trainer, state, data, **{"epochs": 2, "batch_size": 8, **kwargs})
    sup = tiny_trainer("SupCon")
    with pytest.raises(ValueError, match="the batch needs 'y'"):
        sup.init(jax.random.key(0), {"x1": data["x1"], "x2": data["x2"]})


def test_embed_dataset_compiles_once_per_trainer():
    data = tiny_data(num_rows=40)
    trainer = tiny_trainer("SimCLR")
    state = trainer.init(jax.random.key(0), data)
    first = loop.embed_dataset(trainer, state.params, data, batch_size=16)
    second = loop.embed_dataset(trainer, state.params, data, batch_size=16)
    assert trainer.jit_embed._cache_size() == 2  # batches of 16 rows and the last 8
    chex.assert_trees_all_equal(first, second)
    assert first["encoders"].shape == (40, 16) and first["factorized"].shape == (40, 16)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["FactorCL-SUP", "FactorCL-SSL"])
def test_init_is_compiled_once_per_trainer_and_equals_the_op_by_op_init(method):
    data = tiny_data(num_rows=16)
    trainer = tiny_trainer(method)
    compiled = trainer.init(jax.random.key(3), data)
    with jax.disable_jit():
        eager = trainer.init(jax.random.key(3), data)

    chex.assert_trees_all_close(raw(compiled), raw(eager), rtol=1e-6, atol=1e-6)
    trainer.init(jax.random.key(4), tiny_data(num_rows=64))  # rows beyond two are not read
    assert trainer._compiled_init._cache_size() == 1


# ------------------------------------------------------------------ memory: tiles, init, bf16


def raw(state):
    """``state`` with PRNG keys as their bits, so trees compare with chex."""
    is_key = lambda a: jnp.issubdtype(a.dtype, jax.dtypes.prng_key)
    return jax.tree.map(lambda a: jax.random.key_data(a) if is_key(a) else a, state)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["SimCLR", "SupCon", "FactorCL-SUP", "FactorCL-SSL"])
def test_a_tiled_step_equals_the_dense_step(method):
    # 40 rows in tiles of 16 x 6 (neither divides 40); every term and its score statistics.
    data = tiny_data(40)
    dense = dataclasses.replace(
        tiny_trainer(method),
        optimizer=optax.sgd(0.1),
        club_optimizer=optax.sgd(0.1),
    )
    tiled = dataclasses.replace(dense, block_size=16, column_block=6)
    assert tiled.memory.tiled and not dense.memory.tiled
    results = [
        jax.device_get(trainer.jit_step(trainer.init(jax.random.key(0), data), data))
        for trainer in (dense, tiled)
    ]
    (dense_state, dense_measured), (tiled_state, tiled_measured) = results
    assert set(tiled_measured) == set(dense_measured)
    chex.assert_trees_all_close(tiled_measured, dense_measured, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(
        (tiled_state.params, tiled_state.club_params),
        (dense_state.params, dense_state.club_params),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["FactorCL-SUP", "FactorCL-SSL"])
def test_init_reads_only_shapes_and_equals_an_init_on_the_whole_batch(method):
    trainer = tiny_trainer(method)
    data = tiny_data(64)
    state = trainer.init(jax.random.key(3), data)
    # The same parameters as flax's init on every row, with every critic scoring all pairs.
    model_key, critic_key, rng = jax.random.split(jax.random.key(3), 3)
    model_params = trainer.model.init(model_key, *views.batch_inputs(data))
    batch_views = trainer.views(model_params, data, rng)
    score_all_pairs = lambda critic, x, y: critic.pair(critic.embed_x(x), critic.embed_y(y))
    for index, term in enumerate(trainer.method.terms):
        left, right = objectives.term_inputs(trainer.method, term, batch_views)
        expected = trainer.critic.module.init(
            jax.random.fold_in(critic_key, index), left, right, method=score_all_pairs
        )
        group = state.club_params if term.bound == "nce_club" else state.params["critics"]
        chex.assert_trees_all_equal(group[term.name], expected)
    chex.assert_trees_all_equal(state.params["model"], model_params)
    # ... and the same state whatever the example batch's size.
    chex.assert_trees_all_equal(raw(trainer.init(jax.random.key(3), tiny_data(4096))), raw(state))

    def temp_bytes(num_rows):
        batch = tiny_data(num_rows)
        compiled = jax.jit(trainer.init).lower(jax.random.key(3), batch).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(4096) == temp_bytes(64)


BF16_TOLERANCE = 0.01
"""Nats: the largest difference allowed between a bfloat16 and a float32 step's terms."""


@pytest.mark.slow
@pytest.mark.parametrize("tiles", [None, (16, 24)])
def test_a_bfloat16_step_stays_within_tolerance_of_float32(tiles):
    data = tiny_data(64)
    options = {} if tiles is None else {"block_size": tiles[0], "column_block": tiles[1]}
    measured = {}
    for dtype in ("float32", "bfloat16"):
        trainer = tiny_trainer("FactorCL-SSL", memory={"compute_dtype": dtype, **options})
        state, measured[dtype] = trainer.jit_step(trainer.init(jax.random.key(0), data), data)
        floats = [
            leaf
            for leaf in jax.tree.leaves((state.params, state.opt_state, state.club_opt_state))
            if jnp.issubdtype(leaf.dtype, jnp.floating)
        ]
        assert {leaf.dtype for leaf in floats} == {jnp.dtype(jnp.float32)}
        assert all(value.dtype == jnp.float32 for value in measured[dtype].values())
    bf16 = tiny_trainer("FactorCL-SSL", memory={"compute_dtype": "bfloat16"})
    encoder_params = state.params["model"]["encoders"][0]
    hidden = bf16.model.encoders[0].apply(encoder_params, data["x1"])
    assert hidden.dtype == jnp.bfloat16  # the matmuls do run in bfloat16
    for name, value in measured["float32"].items():
        if name.startswith(("term/", "club_critic/")) or name == "loss":
            assert abs(float(measured["bfloat16"][name]) - float(value)) < BF16_TOLERANCE, name


def test_compute_dtype_and_tiles_are_validated():
    with pytest.raises(ValueError, match="`compute_dtype` must be one of"):
        compute_dtype_of("float16")
    with pytest.raises(ConfigError, match=r"memory\.compute_dtype must be one of"):
        tiny_config(memory={"compute_dtype": "float16"})
    trainer = tiny_trainer("SimCLR")
    with pytest.raises(ValueError, match="`exchange` must be one of"):
        dataclasses.replace(trainer, exchange="allreduce")
    with pytest.raises(ValueError, match="`column_block` must be a positive int"):
        dataclasses.replace(trainer, column_block=0)


def test_score_statistics_count_negatives_beyond_int32():
    positive, negative = scoring._score_statistics(
        jnp.ones((2**16,)), jnp.full((2**16,), 2.0**16), 2**16
    )
    np.testing.assert_allclose([positive, negative], [1.0, 1.0])
