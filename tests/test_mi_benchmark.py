"""mi_benchmark: staircase schedule and shapes, bound behaviour, metrics, EMA, fixed-sample, CLI."""

import functools
import json
import math

import jax
import numpy as np
import pytest

from factorcl_jax import mi_benchmark
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import ESTIMATORS, critic_outputs


def test_staircase_history_follows_the_level_schedule():
    """history[s, l, t] is the estimate on tasks[l]'s batch of step t, before the update."""
    tasks = mi_tasks.staircase(2, levels=(0.5, 4.0))
    critic = mi_benchmark.make_critic("concat", (8,))
    steps, batch = 3, 8
    keys = jax.random.split(jax.random.key(1), 3)

    def history(learning_rate):
        program = mi_benchmark.staircase_program(
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
    """d = 5, MI 1 then 2 nats, 600 steps each, batch 64, one hidden layer of 128."""
    tasks = mi_tasks.staircase(5, levels=(1.0, 2.0))
    settings = dict(steps_per_level=600, batch_size=64, hidden=(128,), seed=0)
    return tasks, {
        name: mi_benchmark.run_staircase(tasks, name, "concat", **settings)
        for name in ("infonce", "nce_club")
    }


def test_short_staircase_nce_club_is_between_truth_and_optimal_critic(short_staircase):
    tasks, results = short_staircase
    result = results["nce_club"]
    assert result.history.shape == (1, 2, 600)
    np.testing.assert_allclose(result.true_mi, [1.0, 2.0])
    np.testing.assert_allclose(result.optimal_value, [t.nce_club_optimal_value for t in tasks])
    estimate = mi_benchmark.level_metrics(result.history, result.true_mi, window=300)["estimate"]
    assert np.all(estimate > result.true_mi - 0.1), estimate
    assert np.all(estimate < result.optimal_value + 0.3), (estimate, result.optimal_value)
    assert result.compile_seconds > 0 and result.run_seconds > 0


def test_short_staircase_infonce_stays_below_truth_and_log_batch(short_staircase):
    _, results = short_staircase
    result = results["infonce"]
    estimate = mi_benchmark.level_metrics(result.history, result.true_mi, window=300)["estimate"]
    assert np.all(estimate < result.true_mi + 0.1), estimate
    assert np.all(estimate < math.log(64)), estimate
    assert estimate[0] > 0.5, "the critic should learn most of the first nat"


def test_level_metrics_match_numpy():
    rng = np.random.default_rng(0)
    history = rng.normal(loc=[[1.0], [3.0]], scale=0.5, size=(3, 2, 50))
    true_mi = np.array([1.2, 2.5])
    metrics = mi_benchmark.level_metrics(history, true_mi, window=20)
    for level in range(2):
        tail = history[:, level, -20:].ravel()
        np.testing.assert_allclose(metrics["estimate"][level], tail.mean())
        np.testing.assert_allclose(metrics["bias"][level], tail.mean() - true_mi[level])
        np.testing.assert_allclose(metrics["variance"][level], np.var(tail))
        np.testing.assert_allclose(metrics["mse"][level], np.mean((tail - true_mi[level]) ** 2))
    np.testing.assert_allclose(metrics["mse"], metrics["bias"] ** 2 + metrics["variance"])


def test_level_metrics_validate_arguments():
    with pytest.raises(ValueError, match="`window`"):
        mi_benchmark.level_metrics(np.zeros((2, 10)), [1.0, 2.0], window=11)
    with pytest.raises(ValueError, match="`true_mi`"):
        mi_benchmark.level_metrics(np.zeros((2, 10)), [1.0], window=5)


def test_ema_matches_hand_computation():
    # span 3: alpha = 2 / 4 = 0.5.
    np.testing.assert_allclose(
        mi_benchmark.ema([1.0, 2.0, 4.0, 0.0], span=3), [1, 1.5, 2.75, 1.375]
    )
    # span 200 along the last axis of a [2, T] array, row by row.
    values = np.random.default_rng(1).normal(size=(2, 30))
    alpha, expected = 2 / 201, values.copy()
    for t in range(1, 30):
        expected[:, t] = alpha * values[:, t] + (1 - alpha) * expected[:, t - 1]
    np.testing.assert_allclose(mi_benchmark.ema(values), expected)


def test_fixed_sample_estimate_is_near_the_truth_on_an_easy_task():
    task = mi_tasks.correlated_gaussian(2, 1.0)
    result = mi_benchmark.run_fixed_sample(
        task, "infonce", "concat", num_samples=2000, hidden=(64,), max_steps=800, eval_every=100
    )
    assert abs(result.estimate - 1.0) < 0.3, result
    assert result.batch_estimates.shape == (1000 // 64,)
    assert 100 <= result.best_step <= result.steps_run <= 800


def test_critic_choices_and_validation():
    assert mi_benchmark.critic_kinds_for("club", ("concat", "separable")) == ("gaussian",)
    assert mi_benchmark.critic_kinds_for("smile", ("separable",)) == ("separable",)
    with pytest.raises(ValueError, match="`kind`"):
        mi_benchmark.make_critic("bilinear", (8,))
    with pytest.raises(ValueError, match="`hidden`"):
        mi_benchmark.make_critic("concat", ())
    with pytest.raises(ValueError, match="`tasks`"):
        mi_benchmark.staircase_program(
            [mi_tasks.correlated_gaussian(2, 1.0), mi_tasks.correlated_gaussian(3, 1.0)],
            "infonce",
            mi_benchmark.make_critic("concat", (8,)),
        )
    with pytest.raises(ValueError, match="`estimator`"):
        mi_benchmark.run_fixed_sample(mi_tasks.correlated_gaussian(2, 1.0), "mi", "concat")


def test_main_writes_results_json_and_png(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = (
        "--quick --dims 3 --levels 1 2 --steps 20 --hidden 8 --estimators nce_club --window 10"
        " --fixed-tasks gaussian-d2-mi1 --fixed-estimators infonce --fixed-samples 256"
        " --fixed-max-steps 40 --eval-every 20"
    ).split()
    payload = mi_benchmark.main([*argv, "--out", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert results["rows"] == json.loads(json.dumps(payload["rows"]))
    required = {"task", "estimator", "critic", "true_mi", "estimate", "bias", "variance", "mse"}
    required |= {"compile_seconds", "run_seconds", "mode"}
    assert all(required <= row.keys() for row in results["rows"])
    staircase = [row for row in results["rows"] if row["mode"] == "staircase"]
    assert [(row["level"], row["true_mi"]) for row in staircase] == [(0, 1.0), (1, 2.0)]
    assert [row["mode"] for row in results["rows"]].count("fixed_sample") == 1
    assert results["pngs"] == ["staircase-gaussian.png"]
    assert (out / "staircase-gaussian.png").stat().st_size > 0
    assert np.load(out / "histories.npz")["gaussian-d3.nce_club.concat"].shape == (1, 2, 20)
    assert "nce_club/concat" in capsys.readouterr().out  # the side-by-side estimates table
