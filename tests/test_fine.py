"""Gaussian mixtures (fine distributions): exact densities, sampling law, Monte-Carlo MI.

References are independent of the module: SciPy's normal densities mixed by hand in
float64, the mixture's moments from its parameters, and the closed-form MI of mixtures that
reduce to one Gaussian.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first

from factorcl_jax.data import fine, mi_tasks

FAMILIES = {
    "x": lambda: fine.x_distribution(),
    "ai": fine.ai_distribution,
    "waves": lambda: fine.waves().base,
    "galaxy": lambda: fine.galaxy().base,
    "concentric-3-5": lambda: fine.concentric_gaussians(3, 5),
    "concentric-5-10": lambda: fine.concentric_gaussians(5, 10),
    "inliers-5-0.2": lambda: fine.normal_with_inliers(5, 5, 0.2),
    "inliers-25-0.5": lambda: fine.normal_with_inliers(25, 25, 0.5),
}


def _mixture_log_pdf(task, z, block):
    """``log sum_k w_k N(z; m_k, S_k)`` of one block by SciPy, float64."""
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    means, covariances = np.asarray(task.means), np.asarray(task.covariances)
    logs = [
        math.log(w) + stats.multivariate_normal(m[block], s[block][:, block]).logpdf(z)
        for w, m, s in zip(task.weights, means, covariances, strict=True)
        if w > 0
    ]
    return special.logsumexp(np.stack(logs), axis=0)


def _moments(task):
    """Mean ``sum_k w_k m_k`` and covariance ``sum_k w_k (S_k + m_k m_k^T) - mean mean^T``."""
    w, m, s = np.asarray(task.weights), np.asarray(task.means), np.asarray(task.covariances)
    mean = w @ m
    second = np.einsum("k,kij->ij", w, s + m[:, :, None] * m[:, None, :])
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize("family", fast_first(["ai", "concentric-3-5", "inliers-5-0.2", "waves"]))
def test_log_densities_and_pmi_match_scipy(family):
    task = FAMILIES[family]()
    x, y = task.sample(jax.random.key(0), 256)
    z = np.concatenate([x, y], axis=1).astype(np.float64)
    joint, marginal_x, marginal_y = task.log_densities(x, y)
    expected = [
        _mixture_log_pdf(task, z, slice(None)),
        _mixture_log_pdf(task, z[:, : task.x_dim], slice(0, task.x_dim)),
        _mixture_log_pdf(task, z[:, task.x_dim :], slice(task.x_dim, None)),
    ]
    for value, reference in zip((joint, marginal_x, marginal_y), expected, strict=True):
        np.testing.assert_allclose(value, reference, rtol=1e-5, atol=2e-4)
    np.testing.assert_allclose(
        task.pointwise_mi(x, y), expected[0] - expected[1] - expected[2], rtol=1e-4, atol=4e-4
    )


@pytest.mark.parametrize("family", fast_first(["ai", "waves", "concentric-3-5", "inliers-5-0.2"]))
def test_samples_have_the_mixture_moments(family):
    task = FAMILIES[family]()
    x, y = task.sample(jax.random.key(1), 200_000)
    assert x.dtype == jnp.float32 and y.dtype == jnp.float32
    z = np.concatenate([x, y], axis=1).astype(np.float64)
    mean, covariance = _moments(task)
    scale = np.sqrt(np.diag(covariance))
    np.testing.assert_allclose(z.mean(0) / scale, mean / scale, atol=0.015)
    correlation = np.cov(z, rowvar=False) / np.outer(scale, scale)
    np.testing.assert_allclose(correlation, covariance / np.outer(scale, scale), atol=0.015)


def test_component_frequencies_follow_the_weights():
    """Concentric y sits at the component's index: its histogram counts the components."""
    task = fine.gaussian_mixture(
        [0.1, 0.6, 0.3],
        [[0.0, 1.0], [0.0, 2.0], [0.0, 3.0]],
        [np.diag([1.0, 1e-4])] * 3,
        1,
        name="three",
        mi=0.0,
        mi_stderr=0.0,
        mi_samples=1,
    )
    _, y = task.sample(jax.random.key(2), 100_000)
    counts = np.bincount(np.rint(np.asarray(y[:, 0])).astype(int) - 1, minlength=3) / 1e5
    np.testing.assert_allclose(counts, [0.1, 0.6, 0.3], atol=0.006)


@pytest.mark.slow
def test_zero_weights_reduce_the_mixture_to_one_gaussian_or_to_independence():
    """All weight on a normal: its PMI exactly; all on the product of its marginals: 0."""
    normal = mi_tasks.sparse_normal(3, 2, 0.8)
    covariances = (np.asarray(normal.covariance), np.eye(5))
    signal = fine.GaussianMixtureTask((1.0, 0.0), ((0.0,) * 5,) * 2, covariances, 3, "signal")
    x, y = signal.sample(jax.random.key(3), 1000)
    np.testing.assert_allclose(signal.pointwise_mi(x, y), normal.pointwise_mi(x, y), atol=2e-5)
    noise = fine.GaussianMixtureTask((0.0, 1.0), ((0.0,) * 5,) * 2, covariances, 3, "noise")
    x, y = noise.sample(jax.random.key(4), 1000)
    np.testing.assert_allclose(noise.pointwise_mi(x, y), 0.0, atol=1e-5)
    np.testing.assert_allclose(
        np.cov(np.concatenate([x, y], 1), rowvar=False), np.eye(5), atol=0.12
    )


@pytest.mark.slow
def test_monte_carlo_mi_is_the_batched_mean_and_standard_error():
    task = FAMILIES["x"]()
    key = jax.random.key(5)

    def pmi(batch_key, size):
        return task.pointwise_mi(*task.sample(batch_key, size))

    pmi = jax.jit(pmi, static_argnums=1)
    chunks = [
        np.asarray(pmi(jax.random.fold_in(key, i), size), np.float64)
        for i, size in enumerate([3000, 3000, 1000])
    ]
    values = np.concatenate(chunks)
    mean, stderr = fine.monte_carlo_mi(task, key, 7000, batch_size=3000)
    assert mean == pytest.approx(values.mean(), rel=1e-9)
    assert stderr == pytest.approx(values.std(ddof=1) / math.sqrt(7000), rel=1e-6)
    # A Gaussian with known MI: the estimate lands within its error.
    normal = mi_tasks.sparse_normal(2, 2, 1.0)
    mean, stderr = fine.monte_carlo_mi(normal, jax.random.key(6), 50_000)
    assert abs(mean - 1.0) < 5 * stderr and 0 < stderr < 0.01


def test_monte_carlo_mi_refuses_non_finite_pmi():
    task = mi_tasks.additive_uniform(0.5)

    class Broken:
        name = "broken"
        sample = staticmethod(task.sample)

        @staticmethod
        def pointwise_mi(x, y):
            return jnp.log(x[:, 0] - 0.5)

    with pytest.raises(ValueError, match="non-finite pointwise MI"):
        fine.monte_carlo_mi(Broken(), jax.random.key(0), 100)


@pytest.mark.parametrize("family", fast_first(["x", "concentric-5-10", "inliers-25-0.5"]))
def test_stored_mi_agrees_with_a_fresh_monte_carlo_estimate(family):
    task = FAMILIES[family]()
    assert task.mi_samples == 2**24 and 0 < task.true_mi_stderr < 3e-4
    mean, stderr = fine.monte_carlo_mi(task, jax.random.key(7), 2**15)
    assert abs(mean - task.true_mi) < 5 * math.hypot(stderr, task.true_mi_stderr)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_stored_mi_agrees_with_a_large_monte_carlo_estimate(family):
    task = FAMILIES[family]()
    mean, stderr = fine.monte_carlo_mi(task, jax.random.key(8), 2**20)
    assert abs(mean - task.true_mi) < 4 * math.hypot(stderr, task.true_mi_stderr)


@pytest.mark.slow
@pytest.mark.parametrize("build", [fine.waves, fine.galaxy], ids=["waves", "galaxy"])
def test_pushforward_pmi_is_the_base_pmi_at_the_latent_pair(build):
    task = build()
    key = jax.random.key(9)
    x, y = task.sample(key, 5000)
    latent = task.base.sample(key, 5000)
    np.testing.assert_allclose(task.inverse(x, y)[0], latent[0], atol=2e-4)
    np.testing.assert_allclose(task.pointwise_mi(x, y), task.base.pointwise_mi(*latent), atol=2e-3)
    assert task.true_mi == task.base.true_mi
    assert fine.true_mi_stderr(task) == task.base.true_mi_stderr
    assert fine.true_mi_stderr(mi_tasks.sparse_normal(2, 2, 1.0)) == 0.0


def test_bmi_parameters_of_the_families():
    """Spot checks of the parameters bmi's task constructors use."""
    waves = fine.waves()
    assert waves.x_maps == ("waves5.0-3.0", "scale0.1,0.5", "shift-0.8,0.0")
    assert np.asarray(waves.base.means)[[0, 5, 11]].tolist() == [
        [0.0, 0.0, 0.0],
        [7.5, 0.0, 1.5],
        [16.5, 0.0, 4.5],
    ]
    assert fine.galaxy().x_maps == ("spiral0.5-plane0-1",)
    assert np.asarray(fine.galaxy().base.means).tolist() == [[-1.5] * 3, [1.5] * 3]
    concentric = fine.concentric_gaussians(3, 10)
    assert np.diag(np.asarray(concentric.covariances[9])).tolist() == [100.0] * 3 + [1e-4]
    correlation = fine.sparse_correlation(3, 3, 2, 2.0)
    assert correlation[0, 3] == correlation[1, 4] == pytest.approx(0.8) and correlation[2, 5] == 0
    ai = fine.ai_distribution()
    assert ai.covariances[4][0][1] == pytest.approx(math.sqrt(0.008) * 0.95)


def test_sampling_is_deterministic_and_jit_able():
    task = FAMILIES["concentric-3-5"]()
    key = jax.random.key(10)
    x, y = task.sample(key, 64)
    x_again, y_again = task.sample(key, 64)
    np.testing.assert_array_equal(x, x_again)
    np.testing.assert_array_equal(y, y_again)
    x_jit, y_jit = jax.jit(task.sample, static_argnums=1)(key, 64)
    np.testing.assert_allclose(x_jit, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_jit, y, rtol=1e-5, atol=1e-6)
    x_other, _ = task.sample(jax.random.key(11), 64)
    assert not np.allclose(x_other, x)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_names_rebuild_the_task(family):
    task = FAMILIES[family]()
    assert mi_tasks.make_task(task.name) == task
    assert hash(mi_tasks.make_task(task.name)) == hash(task)
    assert mi_tasks.make_task(fine.waves().name) == fine.waves()


@pytest.mark.slow
def test_unstored_parameters_are_estimated_on_construction():
    arguments = ([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [np.eye(2), np.diag([2.0, 0.5])], 1)
    task = fine.gaussian_mixture(
        *arguments, name="unstored", key=jax.random.key(3), num_mc_samples=4096
    )
    bare = fine.GaussianMixtureTask(*map(tuple, arguments[:3]), 1, "unstored")
    expected = fine.monte_carlo_mi(bare, jax.random.key(3), 4096)
    assert (task.true_mi, task.true_mi_stderr, task.mi_samples) == (*expected, 4096)
    assert fine.x_distribution(0.5).mi_samples == fine.DEFAULT_MC_SAMPLES
    given = fine.gaussian_mixture(
        [1.0], [[0.0, 0.0]], [np.eye(2)], 1, name="given", mi=0.0, mi_stderr=0.0, mi_samples=1
    )
    assert given.true_mi == 0.0


def _mixture(weights, means, covariances, x_dim=1):
    return fine.GaussianMixtureTask(weights, means, covariances, x_dim, "bad")


EYES = (np.eye(2),) * 2
ZEROS = ((0, 0),) * 2


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: _mixture((0.5, 0.4), ZEROS, EYES), ValueError, "sum to 1"),
        (lambda: _mixture((1.5, -0.5), ZEROS, EYES), ValueError, ">= 0"),
        (lambda: _mixture((1.0,), ((0, 0, 0),), (np.eye(2),)), ValueError, "`covariances` must"),
        (lambda: _mixture((1.0,), ((0,),), (np.eye(1),)), ValueError, "`means` must have shape"),
        (lambda: _mixture((1.0,), ZEROS[:1], (np.ones((2, 2)),)), ValueError, "positive definite"),
        (lambda: _mixture((1.0,), ZEROS[:1], ([[1, 0.5], [0, 1]],)), ValueError, "symmetric"),
        (lambda: _mixture((1.0,), ZEROS[:1], EYES[:1], x_dim=2), ValueError, "`x_dim`"),
        (lambda: _mixture((1.0,), ZEROS[:1], EYES[:1]).true_mi, ValueError, "stores no MI"),
        (lambda: fine.x_distribution(1.0), ValueError, "`correlation`"),
        (lambda: fine.normal_with_inliers(5, 5, 1.5), ValueError, "`inlier_fraction`"),
        (lambda: fine.concentric_gaussians(0), ValueError, "`x_dim`"),
        (lambda: fine.waves(2.5), ValueError, "`n_components`"),
        (lambda: fine.normal_with_inliers(2, 3, 0.1, num_pairs=3), ValueError, "`num_pairs`"),
        (lambda: fine.mixture_from_name("gmm_y"), ValueError, "unknown mixture name"),
        (lambda: mi_tasks.make_task("gmm_y-k3"), ValueError, "unknown mixture name"),
        (
            lambda: fine.monte_carlo_mi(fine.ai_distribution(), jax.random.key(0), 0),
            ValueError,
            "`num_samples`",
        ),
        (
            lambda: fine.ai_distribution().pointwise_mi(jnp.zeros((3, 2)), jnp.zeros((3, 1))),
            ValueError,
            "`x`",
        ),
    ],
)
def test_bad_arguments_raise(build, error, match):
    with pytest.raises(error, match=match):
        build()
