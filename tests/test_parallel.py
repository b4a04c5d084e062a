"""Data parallelism: a step on 1, 2, 4 or 8 devices is the single-device step.

Every comparison is against ``Trainer.jit_step`` on the same global batch, under both
wrappers (``shard_map`` and ``pmap``). The trainers use SGD: Adam's first update moves every
coordinate by about ``lr * sign(g)``, so a gradient coordinate that is zero up to float
rounding would differ by ``lr`` between two correct runs; with SGD equal parameters mean
equal gradients.
"""

import dataclasses
import functools

import jax
import numpy as np
import optax
import pytest
from helpers import tiny_trainer
from jax.sharding import PartitionSpec as P
from test_train import tiny_data

from factorcl_jax.models import augment
from factorcl_jax.training import loop, parallel, views

METHODS = ("SimCLR", "FactorCL-SUP", "FactorCL-SSL")
WRAPPERS = ("shard_map", "pmap")
# pmap maps the same per-device function as shard_map; what is its own (gradients without
# JAX's tracking of replicated values, the device axis of state and batch) shows at any count
# above one, so it runs on 8 here and on 2 in the blocked test (each count is a compile).
DEVICE_COUNTS = {"shard_map": (1, 2, 4, 8), "pmap": (8,)}
BATCH = tiny_data(32)
KEY = jax.random.key(0)
TOLERANCE = dict(rtol=1e-5, atol=1e-6)
# XLA's CPU optimisations do not change what a program computes but dominate the compile time
# of the ~20 programs below.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def exact_trainer(method, block_size=None, **memory):
    trainer = tiny_trainer(method)
    return dataclasses.replace(
        trainer,
        optimizer=optax.sgd(0.1),
        club_optimizer=optax.sgd(0.1),
        block_size=block_size,
        **memory,
    )


def run_compiled(step, *args):
    return step.lower(*args).compile(FAST_COMPILE)(*args)


@functools.cache
def single_device_step(method):
    trainer = exact_trainer(method)
    state, measured = run_compiled(trainer.jit_step, trainer.init(KEY, BATCH), BATCH)
    return jax.device_get(state), jax.device_get(measured)


def mapped_step(trainer, wrapper, num_devices):
    """One step of ``wrapper`` on the first ``num_devices`` devices: (state, measurements)."""
    devices = jax.devices()[:num_devices]
    state = trainer.init(KEY, BATCH)
    if wrapper == "shard_map":
        mesh = parallel.data_mesh(devices)
        state = parallel.replicate_state(state, mesh)
        new_state, measured = run_compiled(
            parallel.sharded_step(trainer, mesh), state, parallel.shard_batch(BATCH, mesh)
        )
    else:
        state = parallel.replicate(state, devices)
        batch = parallel.split_for_pmap(BATCH, num_devices)
        new_state, measured = run_compiled(parallel.pmapped_step(trainer, devices), state, batch)
        for name, values in jax.device_get(measured).items():
            assert values.shape == (num_devices,) and np.all(values == values[0]), name
        new_state, measured = parallel.unreplicate((new_state, measured))
    assert all(leaf.is_deleted() for leaf in jax.tree.leaves(state.params)), "state not donated"
    return jax.device_get(new_state), jax.device_get(measured)


def assert_same_step(actual, expected):
    (state, measured), (expected_state, expected_measured) = actual, expected
    assert set(measured) == set(expected_measured)
    for name, value in expected_measured.items():
        np.testing.assert_allclose(measured[name], value, **TOLERANCE, err_msg=name)
    assert int(state.step) == int(expected_state.step) == 1
    for group in ("params", "club_params"):
        jax.tree.map(
            functools.partial(np.testing.assert_allclose, **TOLERANCE, err_msg=group),
            getattr(state, group),
            getattr(expected_state, group),
        )


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize("method", METHODS)
def test_one_step_on_several_devices_equals_the_single_device_step(method, wrapper):
    # FactorCL-SSL draws augmentations: equality shows every row gets the same draw.
    for num_devices in DEVICE_COUNTS[wrapper]:
        actual = mapped_step(exact_trainer(method), wrapper, num_devices)
        assert_same_step(actual, single_device_step(method))


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_blocked_scoring_under_the_mapping_equals_the_dense_single_device_step(wrapper):
    # 8 (shard_map) or 16 (pmap) local rows in blocks of 3: the last block is zero-padded.
    num_devices = {"shard_map": 4, "pmap": 2}[wrapper]
    actual = mapped_step(exact_trainer("FactorCL-SSL", block_size=3), wrapper, num_devices)
    assert_same_step(actual, single_device_step("FactorCL-SSL"))


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_ring_exchange_equals_the_single_device_step(wrapper):
    # Columns travel around the devices in tiles of 3 x 5 (8 local rows on 4 devices: neither
    # divides); every term, its score statistics and the CLUB update, augmented views included.
    trainer = exact_trainer("FactorCL-SSL", block_size=3, column_block=5, exchange="ring")
    for num_devices in DEVICE_COUNTS[wrapper]:
        actual = mapped_step(trainer, wrapper, num_devices)
        assert_same_step(actual, single_device_step("FactorCL-SSL"))


@pytest.mark.slow
@pytest.mark.parametrize("method", ["FactorCL-SUP", "SupCon"])
def test_ring_exchange_carries_the_labels_of_every_device(method):
    # SUP's label terms count the global batch's classes; SupCon's positives travel the ring.
    trainer = exact_trainer(method, column_block=4, exchange="ring")
    assert_same_step(mapped_step(trainer, "shard_map", 4), single_device_step(method))


def test_a_global_batch_not_divisible_by_the_device_count_is_a_clear_error():
    mesh = parallel.data_mesh(jax.devices()[:4])
    batch = tiny_data(10)
    message = r"global batch size \(10\) must be divisible by the number of devices \(4\)"
    with pytest.raises(ValueError, match=message):
        parallel.shard_batch(batch, mesh)
    with pytest.raises(ValueError, match=message):
        parallel.split_for_pmap(batch, 4)
    trainer = exact_trainer("SimCLR")
    with pytest.raises(ValueError, match=message):
        parallel.fit(
            trainer,
            trainer.init(KEY, batch),
            tiny_data(40),
            mesh=mesh,
            epochs=1,
            batch_size=10,
            progress=False,
        )


@pytest.mark.slow
def test_supcon_sees_the_labels_of_the_global_batch():
    # Label-defined positives span devices: the columns' labels must be gathered too.
    actual = mapped_step(exact_trainer("SupCon"), "shard_map", 4)
    assert_same_step(actual, single_device_step("SupCon"))


@pytest.mark.slow
def test_fit_on_a_mesh_takes_the_steps_of_train_fit():
    data = tiny_data(64)
    trainer = exact_trainer("SimCLR")
    options = dict(epochs=1, batch_size=16, seed=3, progress=False)
    expected_state, expected_history = loop.fit(trainer, trainer.init(KEY, data), data, **options)
    mesh = parallel.data_mesh(jax.devices()[:4])
    state = parallel.replicate_state(trainer.init(KEY, data), mesh)
    seen = []
    state, history = parallel.fit(
        trainer, state, data, mesh=mesh, on_step=lambda *args: seen.append(args[2:]), **options
    )
    assert seen == [(0, 1), (0, 2), (0, 3), (0, 4)]
    assert [h["step"] for h in history] == [h["step"] for h in expected_history] == [1, 2, 3, 4]
    for row, expected in zip(history, expected_history, strict=True):
        np.testing.assert_allclose(row["loss"], expected["loss"], **TOLERANCE)
    jax.tree.map(
        functools.partial(np.testing.assert_allclose, **TOLERANCE),
        jax.device_get(state.params),
        jax.device_get(expected_state.params),
    )


def test_a_non_finite_loss_on_one_device_leaves_the_state_unchanged_on_all():
    trainer = exact_trainer("SimCLR")
    batch = tiny_data(32)
    batch["x1"][29, 0] = np.nan  # a row of the last of 4 devices
    mesh = parallel.data_mesh(jax.devices()[:4])
    state = parallel.replicate_state(trainer.init(KEY, batch), mesh)
    before = jax.device_get((state.params, state.club_params))
    after, measured = run_compiled(
        parallel.sharded_step(trainer, mesh), state, parallel.shard_batch(batch, mesh)
    )
    assert np.isnan(float(measured["loss"])) and int(after.step) == 0

    def assert_on_every_device(array, expected):
        for shard in array.addressable_shards:
            np.testing.assert_array_equal(shard.data, expected)

    jax.tree.map(assert_on_every_device, (after.params, after.club_params), before)


def test_joint_augmentation_draws_the_global_batch_on_every_device():
    # One time mask for both modalities of time-aligned sequences; each device must keep its
    # rows of the single-device draw, and the dropped steps must match across modalities.
    trainer = dataclasses.replace(
        exact_trainer("FactorCL-SSL"),
        augmentations=(augment.identity, augment.identity),
        joint_augmentation=augment.aligned_time_mask,
    )
    rng = np.random.default_rng(0)
    batch = {
        "x1": rng.normal(size=(32, 6, 3)).astype(np.float32) + 5.0,
        "x2": rng.normal(size=(32, 6, 2)).astype(np.float32) + 5.0,
        "mask1": np.arange(6)[None, :] < rng.integers(3, 7, size=(32, 1)),
    }
    expected = jax.device_get(views.augment_batch(trainer.augmenter, batch, KEY))
    dropped = [(x == 0).all(axis=-1) for x in expected]
    np.testing.assert_array_equal(dropped[0], dropped[1])
    assert dropped[0].any() and not dropped[0][~batch["mask1"]].any()  # padding left alone
    mesh = parallel.data_mesh(jax.devices()[:4])
    per_device = functools.partial(
        views.augment_batch, trainer.augmenter, key=KEY, axis_name=parallel.DATA_AXIS
    )
    sharded = jax.jit(
        jax.shard_map(
            per_device, mesh=mesh, in_specs=P(parallel.DATA_AXIS), out_specs=P(parallel.DATA_AXIS)
        )
    )
    actual = jax.device_get(sharded(batch))
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_array_equal(a, e)
