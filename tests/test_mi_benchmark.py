"""mi_benchmark: staircase schedule and shapes, shared programs, bound behaviour, metrics, EMA."""

import functools
import math

import jax
import numpy as np
import pytest

from factorcl_jax import estimate
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import ESTIMATORS, critic_outputs, staircase
from factorcl_jax.estimate.seeds import over_seeds
from factorcl_jax.io import plotting


def run_staircase(tasks, names, hidden, seeds=1, **settings):
    program = staircase.staircase_program(
        tasks, names, estimate.make_critic("concat", hidden), **settings
    )
    return np.asarray(jax.jit(jax.vmap(program))(jax.random.split(jax.random.key(0), seeds)))


@pytest.mark.slow
def test_over_seeds_equals_vmap_for_one_seed_and_several():
    """One seed is a plain call; several run in turn or side by side; all equal jax.vmap."""
    program = staircase.staircase_program(
        mi_tasks.staircase(2, levels=(1.0, 2.0)),
        "infonce",
        estimate.make_critic("concat", (8,)),
        steps_per_level=4,
        batch_size=8,
    )
    reference = jax.jit(jax.vmap(program))
    keys = {seeds: jax.random.split(jax.random.key(2), seeds) for seeds in (1, 3)}
    expected = {seeds: reference(k) for seeds, k in keys.items()}
    for side_by_side in (None, True, False):
        seeded = jax.jit(over_seeds(program, side_by_side=side_by_side))
        for seeds, k in keys.items():
            # Equal up to float rounding, which Adam's first normalised steps amplify.
            np.testing.assert_allclose(seeded(k), expected[seeds], rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="keys"):
        over_seeds(program)(jax.random.split(jax.random.key(0), (2, 2)))


@pytest.mark.slow
def test_staircase_history_follows_the_level_schedule():
    """history[s, l, t] is the estimate on tasks[l]'s batch of step t, before the update."""
    tasks = mi_tasks.staircase(2, levels=(0.5, 4.0))
    critic = estimate.make_critic("concat", (8,))
    steps, batch = 3, 8
    keys = jax.random.split(jax.random.key(1), 3)

    def history(learning_rate):
        program = staircase.staircase_program(
            tasks,
            "nce_club",
            critic,
            steps_per_level=steps,
            batch_size=batch,
            learning_rate=learning_rate,
        )
        return np.asarray(jax.jit(jax.vmap(program))(keys))

    frozen, trained = history(0.0), history(5e-3)
    assert frozen.shape == trained.shape == (3, len(tasks), steps)

    # With learning rate 0 the critic stays at its initialisation, so each entry can be
    # recomputed from the level's own sampler and the program's key schedule.
    rule = ESTIMATORS["nce_club"]
    init_key, train_key = jax.random.split(keys[2])
    params = critic.init(init_key, *tasks[0].sample(init_key, batch))
    step_keys = jax.random.split(train_key, (len(tasks), steps))

    @jax.jit
    def expected(step_keys):
        def estimate(task, key):
            return rule.estimate(critic_outputs(rule, critic, params, *task.sample(key, batch)))

        return [
            jax.vmap(functools.partial(estimate, task))(keys)
            for task, keys in zip(tasks, step_keys, strict=True)
        ]

    np.testing.assert_allclose(frozen[2], np.stack(expected(step_keys)), rtol=1e-4, atol=1e-5)
    # The first estimate is logged before the first update; later ones see a trained critic.
    np.testing.assert_allclose(trained[:, 0, 0], frozen[:, 0, 0], rtol=1e-5)
    assert not np.allclose(trained[:, :, 1:], frozen[:, :, 1:])


@pytest.fixture(scope="module")
def short_staircase():
    """d = 5, MI 1 then 2 nats, 600 steps each, batch 64, one hidden layer of 128; InfoNCE and
    NCE-CLUB read off one critic in one program."""
    tasks = mi_tasks.staircase(5, levels=(1.0, 2.0))
    history = run_staircase(
        tasks, ("infonce", "nce_club"), (128,), steps_per_level=600, batch_size=64
    )
    return tasks, {"infonce": history[:, 0], "nce_club": history[:, 1]}


@pytest.mark.slow
def test_short_staircase_nce_club_is_between_truth_and_optimal_critic(short_staircase):
    tasks, histories = short_staircase
    true_mi, optimal = staircase.optimal_values(tasks)
    np.testing.assert_allclose(true_mi, [1.0, 2.0])
    np.testing.assert_allclose(optimal, [t.nce_club_optimal_value for t in tasks])
    assert histories["nce_club"].shape == (1, 2, 600)
    estimate_ = staircase.level_metrics(histories["nce_club"], true_mi, window=300)["estimate"]
    assert np.all(estimate_ > true_mi - 0.1), estimate_
    assert np.all(estimate_ < optimal + 0.3), (estimate_, optimal)


def test_short_staircase_infonce_stays_below_truth_and_log_batch(short_staircase):
    tasks, histories = short_staircase
    true_mi, _ = staircase.optimal_values(tasks)
    estimate_ = staircase.level_metrics(histories["infonce"], true_mi, window=300)["estimate"]
    assert np.all(estimate_ < true_mi + 0.1), estimate_
    assert np.all(estimate_ < math.log(64)), estimate_
    assert estimate_[0] > 0.5, "the critic should learn most of the first nat"


@pytest.mark.slow
def test_shared_program_equals_separate_programs():
    """infonce and nce_club share one critic; nwj trains its own beside it (vmapped): each
    estimator's history equals its own single-estimator program."""
    tasks = mi_tasks.staircase(2, levels=(0.5, 1.0))
    settings = dict(steps_per_level=4, batch_size=8)
    shared = run_staircase(tasks, ("infonce", "nwj", "nce_club"), (8,), seeds=2, **settings)
    assert shared.shape == (2, 3, 2, 4)
    for index, name in enumerate(("infonce", "nwj", "nce_club")):
        alone = run_staircase(tasks, name, (8,), seeds=2, **settings)
        np.testing.assert_allclose(shared[:, index], alone, rtol=2e-5, atol=2e-5)
    with pytest.raises(ValueError, match="pairwise and stateless"):
        staircase.staircase_program(
            tasks, ("infonce", "mine"), estimate.make_critic("concat", (8,))
        )


def test_level_metrics_match_numpy():
    rng = np.random.default_rng(0)
    history = rng.normal(loc=[[1.0], [3.0]], scale=0.5, size=(3, 2, 50))
    true_mi = np.array([1.2, 2.5])
    metrics = staircase.level_metrics(history, true_mi, window=20)
    for level in range(2):
        tail = history[:, level, -20:].ravel()
        np.testing.assert_allclose(metrics["estimate"][level], tail.mean())
        np.testing.assert_allclose(metrics["bias"][level], tail.mean() - true_mi[level])
        np.testing.assert_allclose(metrics["variance"][level], np.var(tail))
        np.testing.assert_allclose(metrics["mse"][level], np.mean((tail - true_mi[level]) ** 2))
    np.testing.assert_allclose(metrics["mse"], metrics["bias"] ** 2 + metrics["variance"])


def test_level_metrics_validate_arguments():
    with pytest.raises(ValueError, match="`window`"):
        staircase.level_metrics(np.zeros((2, 10)), [1.0, 2.0], window=11)
    with pytest.raises(ValueError, match="`true_mi`"):
        staircase.level_metrics(np.zeros((2, 10)), [1.0], window=5)


def test_ema_matches_hand_computation():
    # span 3: alpha = 2 / 4 = 0.5.
    np.testing.assert_allclose(plotting.ema([1.0, 2.0, 4.0, 0.0], span=3), [1, 1.5, 2.75, 1.375])
    # span 200 along the last axis of a [2, T] array, row by row.
    values = np.random.default_rng(1).normal(size=(2, 30))
    alpha, expected = 2 / 201, values.copy()
    for t in range(1, 30):
        expected[:, t] = alpha * values[:, t] + (1 - alpha) * expected[:, t - 1]
    np.testing.assert_allclose(plotting.ema(values), expected)


def test_staircase_validation():
    with pytest.raises(ValueError, match="`tasks`"):
        staircase.staircase_program(
            [mi_tasks.correlated_gaussian(2, 1.0), mi_tasks.correlated_gaussian(3, 1.0)],
            "infonce",
            estimate.make_critic("concat", (8,)),
        )
    tasks = mi_tasks.staircase(2, levels=(1.0,))
    critic = estimate.make_critic("concat", (8,))
    with pytest.raises(ValueError, match="unknown bound"):
        staircase.staircase_program(tasks, "mi", critic)
    with pytest.raises(ValueError, match="`learning_rate`"):
        staircase.staircase_program(tasks, "infonce", critic, learning_rate=-1)
    with pytest.raises(ValueError, match="`batch_size`"):
        staircase.staircase_program(tasks, "infonce", critic, batch_size=1)
