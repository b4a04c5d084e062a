"""bmi's v2 suite in JAX against bmi's own numbers (tests/fixtures/bmi_v2_truths.json).

The fixture was written by ``benchmarks/bmi_reference.py`` run with bmi's package (see its
``source`` field): the 26 task ids and names in bmi's order, each ground truth, the Monte-Carlo
error and sample size of the 13 fine-distribution truths, and the empirical characteristic
function of bmi's own unscaled samples (5000 pairs x 10 seeds) at 48 fixed frequencies.
Closed forms are also recomputed here from bmi's covariance constructions with NumPy and
SciPy.
"""

import json
import math
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first

from factorcl_jax.data import bmi_suite

FIXTURE = json.loads(
    (pathlib.Path(__file__).parent / "fixtures" / "bmi_v2_truths.json").read_text()
)
ROWS = {row["task_id"]: row for row in FIXTURE["tasks"]}
SUITE = {task.name: task for task in bmi_suite.bmi_v2_suite()}
IDS = list(ROWS)


def test_the_suite_is_bmis_26_tasks_in_order():
    assert len(IDS) == 26 and list(SUITE) == IDS == list(bmi_suite.BMI_V2_TASKS)
    for task_id, task in SUITE.items():
        row = ROWS[task_id]
        assert (task.task_name, task.x_dim, task.y_dim) == (
            row["task_name"],
            row["dim_x"],
            row["dim_y"],
        )
    assert bmi_suite.BMI_V2_NUM_SAMPLES == FIXTURE["num_samples"] == 5000
    assert list(bmi_suite.BMI_V2_SEEDS) == FIXTURE["seeds"] == list(range(10))
    # X, AI, Waves, Galaxy, five concentric and four inlier mixtures.
    assert sum(row["method"] == "monte_carlo" for row in ROWS.values()) == 13
    assert bmi_suite.bmi_v2_task("1v1-AI") == SUITE["1v1-AI"]


@pytest.mark.parametrize("task_id", IDS)
def test_ground_truth_agrees_with_bmi(task_id):
    task, row = SUITE[task_id], ROWS[task_id]
    if row["method"] == "closed_form":
        assert task.true_mi_stderr == 0.0
        assert task.true_mi == pytest.approx(row["mi"], abs=1e-6)
    else:
        # Two independent Monte-Carlo estimates: within 4 of their combined standard errors.
        assert row["mc_samples"] == 100_000 and 0 < task.true_mi_stderr < row["mc_stderr"]
        combined = math.hypot(task.true_mi_stderr, row["mc_stderr"])
        assert abs(task.true_mi - row["mi"]) < 4 * combined


def _gaussian_mi(covariance, x_dim):
    log_det = lambda m: np.linalg.slogdet(m)[1]
    return 0.5 * (
        log_det(covariance[:x_dim, :x_dim])
        + log_det(covariance[x_dim:, x_dim:])
        - log_det(covariance)
    )


def _two_pair(dim):
    """bmi's latent model with strength 2: corr(x_i, y_i) = 4 / 5 for i < 2."""
    covariance = np.eye(2 * dim)
    covariance[[0, 1], [dim, dim + 1]] = covariance[[dim, dim + 1], [0, 1]] = 0.8
    return covariance


def _student_entropy(dim, df):
    """Arellano-Valle et al. 2013, eq. 7: entropy of a standard ``dim``-variate t."""
    special = pytest.importorskip("scipy.special")
    half = (df + dim) / 2
    return (
        special.gammaln(df / 2)
        - special.gammaln(half)
        + dim / 2 * math.log(df * math.pi)
        + half * (special.digamma(half) - special.digamma(df / 2))
    )


CLOSED_FORMS = {
    "1v1-additive-0.75": lambda: 1 / (4 * 0.75),
    "swissroll_x-normal_cdf-1v1-normal-0.75": lambda: -0.5 * math.log(1 - 0.75**2),
    **{
        f"multinormal-dense-{d}-{d}-0.5": (lambda d=d: _gaussian_mi(0.5 * np.eye(2 * d) + 0.5, d))
        for d in (5, 25, 50)
    },
    **{
        f"{prefix}multinormal-sparse-{d}-{d}-2-2.0": (lambda d=d: _gaussian_mi(_two_pair(d), d))
        for prefix, d in (("", 5), ("", 25), ("spiral-", 3), ("spiral-", 5))
    },
    **{
        f"asinh-student-identity-{d}-{d}-{df}": (
            lambda d=d, df=df: 2 * _student_entropy(d, df) - _student_entropy(2 * d, df)
        )
        for d, df in ((1, 1), (2, 1), (3, 2), (5, 2))
    },
}


@pytest.mark.parametrize("task_id", list(CLOSED_FORMS))
def test_closed_form_truths_match_independent_formulas(task_id):
    assert SUITE[task_id].true_mi == pytest.approx(CLOSED_FORMS[task_id](), abs=1e-10)


@pytest.mark.parametrize("task_id", fast_first(IDS))
def test_sampler_shapes_standardisation_and_determinism(task_id):
    task = SUITE[task_id]
    key = jax.random.key(0)
    size = FIXTURE["num_samples"]  # the shapes of the law test below: compiled once
    x, y = task.sample(key, size)
    assert x.shape == (size, task.x_dim) and y.shape == (size, task.y_dim)
    assert x.dtype == jnp.float32 and y.dtype == jnp.float32
    for v in (np.asarray(x, np.float64), np.asarray(y, np.float64)):
        assert np.all(np.isfinite(v))
        np.testing.assert_allclose(v.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(v.std(0), 1.0, atol=1e-4)
    x_again, y_again = task.sample(key, size)
    np.testing.assert_array_equal(x_again, x)
    np.testing.assert_array_equal(y_again, y)
    x_other, y_other = task.sample(jax.random.key(1), size)
    assert not np.allclose(x_other, x) and not np.allclose(y_other, y)
    x_pmi, y_pmi, pointwise = task.sample_with_pointwise_mi(key, size)
    np.testing.assert_array_equal(x_pmi, x)
    np.testing.assert_array_equal(y_pmi, y)
    assert pointwise.shape == (size,) and np.all(np.isfinite(pointwise))
    np.testing.assert_array_equal(pointwise, task.base.pointwise_mi(*task.base.sample(key, size)))


def _frequencies(dim):
    """``benchmarks/bmi_reference.py``'s ``frequencies``: 12 fixed unit directions at 4 lengths."""
    k = np.arange(1, FIXTURE["num_directions"] + 1)[:, None]
    j = np.arange(1, dim + 1)[None, :]
    directions = np.cos(2 * np.pi * np.mod(k * j * (math.sqrt(5) - 1) / 2, 1.0))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.concatenate([scale * directions for scale in FIXTURE["frequency_scales"]])


@pytest.mark.parametrize("task_id", fast_first(IDS))
def test_samples_follow_bmis_law(task_id):
    """Our unscaled pairs' characteristic function at 48 frequencies against bmi's.

    Both are means of ``cos(t . z)`` and ``sin(t . z)`` over iid pairs (10 x 5000 each), ``z``
    the pairs on bmi's pooled per-coordinate location and scale; their difference has
    standard error ``sqrt(var (1/n + 1/n_bmi))``, with the variance read off our sample.
    """
    task, reference = SUITE[task_id], ROWS[task_id]["characteristic_function"]
    size = FIXTURE["num_samples"]
    z = np.concatenate(
        [np.concatenate(task.base.sample(jax.random.key(seed), size), 1) for seed in range(10)]
    ).astype(np.float64)
    z = (z - np.asarray(reference["location"])) / np.asarray(reference["scale"])
    phase = z @ _frequencies(z.shape[1]).T
    num_bmi = FIXTURE["num_samples"] * len(FIXTURE["seeds"])
    for part, values in (("real", np.cos(phase)), ("imag", np.sin(phase))):
        stderr = np.sqrt(values.var(axis=0) * (1 / len(z) + 1 / num_bmi))
        difference = np.abs(values.mean(axis=0) - np.asarray(reference[part]))
        assert np.all(difference < 5 * stderr + 1e-3), (part, np.max(difference / stderr))


def test_standardise_is_sklearns_scale():
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    v = jax.random.normal(jax.random.key(2), (300, 4)) * jnp.array([[1.0, 5.0, 0.1, 2.0]]) + 3.0
    v = v.at[:, 3].set(7.0)  # a constant column is only centred
    np.testing.assert_allclose(
        bmi_suite.standardise(v), preprocessing.scale(np.asarray(v, np.float64)), atol=2e-5
    )
    np.testing.assert_array_equal(bmi_suite.standardise(v)[:, 3], 0.0)
    with pytest.raises(ValueError, match="`v` must have shape"):
        bmi_suite.standardise(jnp.zeros(3))


@pytest.mark.slow
def test_jit_sampling_matches_eager():
    task = SUITE["2v1-waves-12-5.0-3.0"]  # a mixture, a shear, an affine map, rescaling
    key = jax.random.key(0)
    size = FIXTURE["num_samples"]
    x, y = task.sample(key, size)
    x_jit, y_jit = jax.jit(task.sample, static_argnums=1)(key, size)
    np.testing.assert_allclose(x_jit, x, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(y_jit, y, rtol=1e-4, atol=1e-5)


def test_pointwise_mi_of_standardised_points_is_refused_and_ids_are_checked():
    task = SUITE["1v1-X-0.9"]
    with pytest.raises(NotImplementedError, match="sample_with_pointwise_mi"):
        task.pointwise_mi(*task.sample(jax.random.key(0), 8))
    with pytest.raises(ValueError, match="`task_id`"):
        bmi_suite.bmi_v2_task("1v1-X")


@pytest.mark.slow
@pytest.mark.parametrize("task_id", [t for t in IDS if ROWS[t]["method"] == "closed_form"])
def test_mean_pointwise_mi_is_the_closed_form_truth(task_id):
    """The suite's composed tasks (maps, embeddings) carry exact PMI: its mean is the MI."""
    task = SUITE[task_id]
    values = np.concatenate(
        [
            np.asarray(task.sample_with_pointwise_mi(jax.random.key(seed), 50_000)[2], np.float64)
            for seed in range(4)
        ]
    )
    error = 5 * values.std() / math.sqrt(len(values)) + 2e-3
    assert values.mean() == pytest.approx(task.true_mi, abs=error)


@pytest.mark.slow
def test_benchmark_script_writes_the_table(tmp_path):
    root = pathlib.Path(__file__).resolve().parents[1]
    command = [sys.executable, "benchmarks/bmi_suite.py", "--quick", "--out", str(tmp_path)]
    completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [row["task_id"] for row in rows] == IDS
    for row in rows:
        assert row["our_mi"] == SUITE[row["task_id"]].true_mi and row["sample_s"] > 0
        assert row["bmi_mi"] == ROWS[row["task_id"]]["mi"]
