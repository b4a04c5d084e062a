"""Tasks with known MI: every sampler matches its stated MI, names round-trip, args are checked.

The references are written independently of the module: correlations and covariances of
large samples plugged into the Gaussian formulas, SciPy's densities, and numerical
integration of the Student-t entropy.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first

from factorcl_jax.data import mi_tasks
from factorcl_jax.data.mi_tasks import (
    correlated_gaussian,
    cubic_gaussian,
    dense_normal,
    make_task,
    multivariate_normal,
    sparse_normal,
    staircase,
    student_t,
    transformed,
)

NUM_SAMPLES = 200_000

TASK_NAMES = [
    "gaussian-d20-mi4.0",
    "gaussian-d1-mi0.5",
    "cubic-d5-mi2.0",
    "mvn_sparse-dx3-dy4-pairs2-mi1.0",
    "mvn_dense-dx3-dy2-within0.5-mi1.5",
    "mvn_equicorr-dx3-dy2-corr0.5",
    "student_t-df3.0-gaussian-d5-mi1.0",
    "student_t-df1.0-mvn_dense-dx2-dy3-within0.3-mi0.5",
    "gaussian-d4-mi2.0+x=asinh+y=half_cube",
    "mvn_dense-dx3-dy2-within0.5-mi1.0+x=spiral0.5+y=cube",
    "student_t-df5.0-gaussian-d2-mi1.0+x=spiral1.0",
    "additive_uniform-eps0.75",
    "additive_uniform-eps0.3",
    "gaussian-d3-mi1.0+x=normal_cdf+y=spiral0.5-plane0-2",
    "gaussian-d1-mi0.5+x=normal_cdf+x=swissroll+y=normal_cdf",
    "gaussian-d2-mi1.0+x=waves5.0-3.0+x=scale0.1,-2.0+x=shift-0.8,0.0",
]


def _sample64(task, seed=0, num_samples=NUM_SAMPLES):
    x, y = task.sample(jax.random.key(seed), num_samples)
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def _mi_from_correlations(x, y):
    """``-1/2 sum_k log(1 - r_k^2)`` with ``r_k`` the sample correlation of ``(x_k, y_k)``."""
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    r = np.mean(x * y, axis=0)
    return -0.5 * np.sum(np.log1p(-r * r))


def _mi_from_covariance(covariance, x_dim):
    """``1/2 (log det S_xx + log det S_yy - log det S)`` by NumPy."""

    def log_det(m):
        return np.linalg.slogdet(m)[1]

    return 0.5 * (
        log_det(covariance[:x_dim, :x_dim])
        + log_det(covariance[x_dim:, x_dim:])
        - log_det(covariance)
    )


# --------------------------------------------------------------------- Gaussian family


def test_nce_club_optimal_value_matches_paper():
    assert mi_tasks.nce_club_optimal_value(2, 20) == pytest.approx(4.43, abs=5e-3)
    assert mi_tasks.nce_club_optimal_value(1, 5) == pytest.approx(2.46, abs=5e-3)
    rho = mi_tasks.rho_from_mi(2.0, 20)
    assert mi_tasks.nce_club_optimal_value(2.0, 20) == pytest.approx(20 * rho**2 / (1 - rho**2))
    assert mi_tasks.lautum_information(2.0, 20) == pytest.approx(4.428055 - 2.0, abs=1e-5)
    task = correlated_gaussian(20, 2.0)
    assert task.nce_club_optimal_value == pytest.approx(task.true_mi + task.lautum_information)


def test_rho_and_mi_are_inverse():
    for dim, mi in [(1, 0.0), (1, 3.0), (20, 2.0), (200, 10.0)]:
        rho = mi_tasks.rho_from_mi(mi, dim)
        assert -0.5 * dim * math.log(1 - rho**2) == pytest.approx(mi, abs=1e-12)
        if rho < 1.0:
            assert mi_tasks.mi_from_rho(rho, dim) == pytest.approx(mi, abs=1e-9)
    assert mi_tasks.mi_from_rho(-0.5, 3) == pytest.approx(-1.5 * math.log(0.75))


@pytest.mark.parametrize("family", ["gaussian", "cubic"])
def test_staircase_levels_and_correlations_give_back_the_mi(family):
    tasks = staircase(20, family=family)
    assert [task.true_mi for task in tasks] == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert [task.name for task in tasks] == [f"{family}-d20-mi{m}.0" for m in (2, 4, 6, 8, 10)]
    if family == "gaussian":
        for seed, task in enumerate(tasks):
            x, y = _sample64(task, seed, 100_000)
            np.testing.assert_allclose(x.std(0), 1.0, atol=0.02)
            np.testing.assert_allclose(y.std(0), 1.0, atol=0.02)
            assert _mi_from_correlations(x, y) == pytest.approx(task.true_mi, abs=0.05)


@pytest.mark.slow
def test_lautum_information_by_monte_carlo():
    """``E_{p(x)p(y)}[-pointwise_mi]``: pair each x with another sample's y."""
    for task in (correlated_gaussian(20, 2.0), dense_normal(3, 2, 1.0), sparse_normal(2, 3, 1.5)):
        x, y = task.sample(jax.random.key(1), NUM_SAMPLES)
        negative = -np.asarray(task.pointwise_mi(x, jnp.roll(y, 1, axis=0)), np.float64)
        error = 5 * negative.std() / math.sqrt(len(negative)) + 0.01
        assert negative.mean() == pytest.approx(task.lautum_information, abs=error)
    # The block formula of the normal agrees with the per-pair one.
    assert sparse_normal(4, 4, 2.0, num_pairs=4).lautum_information == pytest.approx(
        mi_tasks.lautum_information(2.0, 4), abs=1e-9
    )


# -------------------------------------------------------------------- multivariate normals


@pytest.mark.parametrize(
    "task",
    [
        sparse_normal(3, 4, 1.0),
        sparse_normal(5, 2, 2.0, num_pairs=1),
        dense_normal(3, 2, 1.5),
        dense_normal(4, 4, 3.0, within_correlation=0.2),
        multivariate_normal(2, 2, [[0.3, 0.1], [-0.2, 0.4]], x_covariance=[[1.0, 0.5], [0.5, 2.0]]),
    ],
    ids=lambda task: task.name,
)
def test_multivariate_normal_empirical_covariance_gives_back_the_mi(task):
    covariance = np.asarray(task.covariance)
    assert _mi_from_covariance(covariance, task.x_dim) == pytest.approx(task.true_mi, abs=1e-10)
    x, y = _sample64(task)
    empirical = np.cov(np.concatenate([x, y], axis=1), rowvar=False)
    np.testing.assert_allclose(empirical, covariance, atol=0.03)
    assert _mi_from_covariance(empirical, task.x_dim) == pytest.approx(task.true_mi, abs=0.03)


def test_dense_normal_correlates_every_coordinate():
    task = dense_normal(3, 4, 1.0)
    covariance = np.asarray(task.covariance)
    assert np.all(np.abs(covariance) > 1e-3)
    assert task.true_mi == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(np.diag(covariance), 1.0)


# ---------------------------------------------------------------- pointwise MI (all tasks)


@pytest.mark.slow
@pytest.mark.parametrize("name", TASK_NAMES)
def test_pointwise_mi_monte_carlo_matches_true_mi_and_sampling_is_deterministic(name):
    """``E_p[log p(x, y) / (p(x) p(y))] = I`` with the exact densities; same key, same arrays."""
    task = make_task(name)
    key = jax.random.key(2)
    x, y = task.sample(key, NUM_SAMPLES)
    assert x.shape == (NUM_SAMPLES, task.x_dim) and y.shape == (NUM_SAMPLES, task.y_dim)
    assert x.dtype == jnp.float32 and y.dtype == jnp.float32
    pointwise = np.asarray(task.pointwise_mi(x, y), np.float64)
    assert pointwise.shape == (NUM_SAMPLES,)
    error = 5 * pointwise.std() / math.sqrt(NUM_SAMPLES) + 0.005
    assert pointwise.mean() == pytest.approx(task.true_mi, abs=error)

    x_again, y_again = task.sample(key, NUM_SAMPLES)
    np.testing.assert_array_equal(x_again, x)
    np.testing.assert_array_equal(y_again, y)
    x_other, y_other = task.sample(jax.random.key(3), NUM_SAMPLES)
    assert not np.allclose(x_other, x) and not np.allclose(y_other, y)
    assert hash(task) == hash(make_task(name))


@pytest.mark.slow
def test_pointwise_mi_matches_scipy_densities():
    stats = pytest.importorskip("scipy.stats")
    gaussian = dense_normal(3, 2, 1.0, within_correlation=0.4)
    x, y = gaussian.sample(jax.random.key(3), 64)
    covariance = np.asarray(gaussian.covariance)
    z = np.concatenate([x, y], axis=1).astype(np.float64)

    def reference(logpdf):
        return (
            logpdf(z, covariance)
            - logpdf(z[:, :3], covariance[:3, :3])
            - logpdf(z[:, 3:], covariance[3:, 3:])
        )

    expected = reference(lambda v, s: stats.multivariate_normal(np.zeros(len(s)), s).logpdf(v))
    np.testing.assert_allclose(gaussian.pointwise_mi(x, y), expected, rtol=1e-4, atol=1e-4)

    for df in (1.0, 4.5):
        task = student_t(gaussian, df)
        x, y = task.sample(jax.random.key(4), 64)
        z = np.concatenate([x, y], axis=1).astype(np.float64)
        expected = reference(
            lambda v, s, df=df: stats.multivariate_t(np.zeros(len(s)), s, df=df).logpdf(v)
        )
        np.testing.assert_allclose(task.pointwise_mi(x, y), expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ Student-t


def _radial_entropy(df, dim):
    """``-int p log p`` of a standard ``dim``-variate t by 1-D quadrature over the radius."""
    integrate = pytest.importorskip("scipy.integrate")
    special = pytest.importorskip("scipy.special")
    log_norm = (
        special.gammaln((df + dim) / 2) - special.gammaln(df / 2) - dim / 2 * math.log(df * math.pi)
    )
    sphere = 2 * math.pi ** (dim / 2) / math.gamma(dim / 2)

    def integrand(r):
        log_p = log_norm - (df + dim) / 2 * math.log1p(r * r / df)
        return -sphere * r ** (dim - 1) * math.exp(log_p) * log_p

    pieces = [(0, 1), (1, 100), (100, math.inf)]
    return sum(
        integrate.quad(integrand, a, b, epsabs=1e-13, epsrel=1e-12, limit=500)[0] for a, b in pieces
    )


@pytest.mark.parametrize("df", [1.0, 3.0, 10.0])
def test_student_t_correction_by_numerical_integration(df):
    entropies = {dim: _radial_entropy(df, dim) for dim in (1, 2, 3, 5)}
    # With identity scale the Gaussian MI is 0: I = c = h(X) + h(Y) - h(X, Y).
    for x_dim, y_dim in [(1, 1), (1, 2), (2, 3)]:
        expected = entropies[x_dim] + entropies[y_dim] - entropies[x_dim + y_dim]
        assert mi_tasks.student_t_mi_correction(df, x_dim, y_dim) == pytest.approx(
            expected, abs=1e-7
        )


def test_student_t_correction_properties():
    special = pytest.importorskip("scipy.special")
    grid = np.array([0.05, 0.5, 1.0, 1.5, 2.0, 3.7, 9.99, 10.0, 50.0, 1e4])
    np.testing.assert_allclose(
        [mi_tasks._digamma(v) for v in grid], special.digamma(grid), rtol=1e-13, atol=1e-13
    )
    assert mi_tasks.student_t_mi_correction(1, 1, 1) == pytest.approx(0.224171, abs=1e-6)
    assert mi_tasks.student_t_mi_correction(3, 5, 5) == pytest.approx(0.298544, abs=1e-6)
    values = [mi_tasks.student_t_mi_correction(df, 4, 3) for df in (0.5, 1, 2, 5, 30, 1000)]
    assert all(v > 0 for v in values) and values == sorted(values, reverse=True)
    assert values[-1] < 1e-4
    assert mi_tasks.student_t_mi_correction(2, 3, 1) == pytest.approx(
        mi_tasks.student_t_mi_correction(2, 1, 3)
    )
    task = student_t("gaussian-d5-mi1.0", 3)
    assert task.true_mi == pytest.approx(1.0 + 0.298544, abs=1e-6)


@pytest.mark.slow
def test_student_t_marginals_follow_the_t_distribution():
    stats = pytest.importorskip("scipy.stats")
    task = student_t(correlated_gaussian(2, 1.0), 3.0)
    x, y = _sample64(task, 5, 20_000)
    for column in (x[:, 0], y[:, 1]):
        assert stats.kstest(column, stats.t(df=3.0).cdf).pvalue > 1e-3
    # Small df must not underflow the chi-square scale to 0 (infinite samples).
    x, y = task.__class__(task.gaussian, 0.2).sample(jax.random.key(0), 20_000)
    assert np.isfinite(np.asarray(x)).mean() > 0.99 and not np.isnan(np.asarray(y)).any()


# ---------------------------------------------------------------------- transformations


def test_cubic_inverse_gives_back_the_gaussian_sample():
    task = cubic_gaussian(5, 2.0)
    base = correlated_gaussian(5, 2.0)
    key = jax.random.key(6)
    x, y = task.sample(key, 100_000)
    base_x, base_y = base.sample(key, 100_000)
    np.testing.assert_array_equal(x, base_x)
    np.testing.assert_allclose(y, base_y**3, rtol=1e-6)
    inverse_x, inverse_y = task.inverse(x, y)
    np.testing.assert_allclose(inverse_y, base_y, rtol=1e-5, atol=1e-6)
    inverse = (np.asarray(inverse_x, np.float64), np.asarray(inverse_y, np.float64))
    assert _mi_from_correlations(*inverse) == pytest.approx(2.0, abs=0.03)
    # The cube changes the correlation, not the MI.
    assert (
        abs(_mi_from_correlations(np.asarray(x, np.float64), np.asarray(y, np.float64)) - 2.0) > 0.1
    )


@pytest.mark.parametrize(
    "token, tolerance",
    fast_first(
        [
            ("asinh", 1e-4),
            ("cube", 1e-4),
            ("half_cube", 1e-4),
            ("spiral0.7", 1e-4),
            ("spiral0.7-plane0-2", 1e-4),
            ("waves5.0-3.0", 1e-4),
            ("scale0.5,-2.0,3.0", 1e-4),
            ("shift-1.0,0.0,2.5", 1e-4),
            # Phi(t) rounds to 1 - 6e-8 steps in float32: the far tail comes back to ~1e-2.
            ("normal_cdf", 2e-2),
        ],
        unpack=True,
    ),
)
def test_maps_are_inverted_and_keep_the_mi(token, tolerance):
    base = correlated_gaussian(3, 1.5)
    task = transformed(base, x_map=token, y_map=token)
    assert task.true_mi == base.true_mi
    key = jax.random.key(7)
    inverse_x, inverse_y = task.inverse(*task.sample(key, 50_000))
    base_x, base_y = base.sample(key, 50_000)
    np.testing.assert_allclose(inverse_x, base_x, rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(inverse_y, base_y, rtol=tolerance, atol=tolerance)
    inverse = (np.asarray(inverse_x, np.float64), np.asarray(inverse_y, np.float64))
    assert _mi_from_correlations(*inverse) == pytest.approx(1.5, abs=0.04)


@pytest.mark.parametrize("dim", [2, 5])
def test_spiral_is_a_volume_preserving_rotation(dim):
    v = jax.random.normal(jax.random.key(8), (4, dim))
    spiral = mi_tasks._spiral(v, 0.5)
    np.testing.assert_allclose(
        np.linalg.norm(spiral, axis=-1), np.linalg.norm(v, axis=-1), rtol=1e-5
    )
    np.testing.assert_allclose(mi_tasks._spiral(spiral, -0.5), v, atol=1e-5)
    jacobians = jax.jit(jax.vmap(jax.jacfwd(lambda p: mi_tasks._spiral(p[None, :], 0.5)[0])))(v)
    np.testing.assert_allclose(np.linalg.det(np.asarray(jacobians, np.float64)), 1.0, atol=1e-4)
    assert not np.allclose(spiral, v)


def test_plane_spiral_is_the_matrix_exponential_of_its_generator():
    """bmi's spiral ``v -> expm(speed |v|^2 A) v``, ``A[i, j] = -1``, ``A[j, i] = 1``."""
    linalg = pytest.importorskip("scipy.linalg")
    v = np.asarray(jax.random.normal(jax.random.key(9), (6, 5)), np.float64)
    generator = np.zeros((5, 5))
    generator[1, 3], generator[3, 1] = -1.0, 1.0
    expected = [linalg.expm(0.3 * (row @ row) * generator) @ row for row in v]
    spiral = mi_tasks._spiral(jnp.asarray(v, jnp.float32), 0.3, (1, 3))
    np.testing.assert_allclose(spiral, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(spiral)[:, [0, 2, 4]], v[:, [0, 2, 4]].astype("f4"))


def test_waves_scale_and_shift_follow_their_formulas():
    v = jax.random.normal(jax.random.key(10), (8, 2))
    v64 = np.asarray(v, np.float64)
    waves = np.asarray(mi_tasks._apply_map("waves5.0-3.0", v, inverse=False), np.float64)
    np.testing.assert_allclose(waves[:, 0], v64[:, 0] + 5 * np.sin(3 * v64[:, 1]), atol=1e-5)
    np.testing.assert_array_equal(waves[:, 1], v64[:, 1])
    affine = mi_tasks._apply_map(
        "shift-0.8,0.0", mi_tasks._apply_map("scale0.1,0.5", v, False), False
    )
    np.testing.assert_allclose(affine, v64 * [0.1, 0.5] + [-0.8, 0.0], atol=1e-6)
    assert mi_tasks._parse_map("shift-0.8,-0", "x_map") == "shift-0.8,0.0"
    assert mi_tasks._parse_map("scale2,.5", "x_map") == "scale2.0,0.5"


@pytest.mark.slow
def test_swiss_roll_embeds_one_coordinate_in_two_and_unrolls():
    task = transformed("gaussian-d1-mi0.5", x_map=["normal_cdf", "swissroll"], y_map="normal_cdf")
    assert (task.x_dim, task.y_dim) == (2, 1)
    x, y = task.sample(jax.random.key(12), 10_000)
    assert x.shape == (10_000, 2) and y.shape == (10_000, 1)
    u = np.asarray(task.base.sample(jax.random.key(12), 10_000)[0], np.float64)
    u = 0.5 * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
    t = 1.5 * math.pi * (1 + 2 * u)
    np.testing.assert_allclose(x, np.concatenate([t * np.cos(t), t * np.sin(t)], 1) / 21, atol=1e-5)
    # The PMI of the embedded pair is the base's, through the left inverse.
    np.testing.assert_allclose(
        task.pointwise_mi(x, y),
        task.base.pointwise_mi(*task.base.sample(jax.random.key(12), 10_000)),
        atol=2e-3,
    )


@pytest.mark.parametrize(
    "maps, match",
    [
        ({"x_map": "swissroll"}, "swissroll embeds 1"),
        ({"y_map": "spiral0.5-plane1-3"}, "needs at least 4 dimensions"),
        ({"y_map": "spiral0.5-plane2-1"}, "i < j"),
        ({"x_map": "scale1.0,2.0"}, "has 2 values for 3 dimensions"),
        ({"x_map": "scale1.0,0.0,2.0"}, "nonzero"),
        ({"x_map": "shift1"}, "has 1 values for 3 dimensions"),
        ({"x_map": "waves1.0"}, "`x_map` must be one of"),
    ],
)
def test_map_arguments_are_checked(maps, match):
    with pytest.raises(ValueError, match=match):
        transformed(correlated_gaussian(3, 1.0), **maps)
    with pytest.raises(ValueError, match=r"waves5\.0-1\.0 needs at least 2"):
        transformed(correlated_gaussian(1, 1.0), x_map="waves5-1")


# ------------------------------------------------------------------ additive uniform noise


@pytest.mark.parametrize("epsilon", fast_first([0.3, 0.5, 0.75, 2.0]))
def test_additive_uniform_mi_by_quadrature_and_monte_carlo(epsilon):
    """``I = h(Y) - log(2 eps)`` with the trapezoid entropy by quadrature; mean of the PMI."""
    integrate = pytest.importorskip("scipy.integrate")

    def density(v):
        return max(0.0, min(1.0, v + epsilon) - max(0.0, v - epsilon)) / (2 * epsilon)

    def integrand(v):
        p = density(v)
        return -p * math.log(p) if p > 0 else 0.0

    knots = sorted({-epsilon, epsilon, 1 - epsilon, 1 + epsilon})
    entropy = sum(
        integrate.quad(integrand, a, b, epsabs=1e-12)[0] for a, b in itertools.pairwise(knots)
    )
    task = mi_tasks.additive_uniform(epsilon)
    assert task.true_mi == pytest.approx(entropy - math.log(2 * epsilon), abs=1e-9)
    x, y = task.sample(jax.random.key(13), 100_000)
    assert float(jnp.min(x)) >= 0 and float(jnp.max(x)) <= 1
    assert float(jnp.max(jnp.abs(y - x))) <= epsilon * (1 + 1e-6)
    pointwise = np.asarray(task.pointwise_mi(x, y), np.float64)
    assert pointwise.mean() == pytest.approx(task.true_mi, abs=5 * pointwise.std() / math.sqrt(1e5))
    far = task.pointwise_mi(jnp.array([[0.2]]), jnp.array([[0.2 + 1.01 * epsilon]]))
    assert float(far[0]) == -math.inf


# ----------------------------------------------------------------- determinism and names


@pytest.mark.parametrize(
    "name", fast_first(["gaussian-d3-mi1.0", "mvn_dense-dx2-dy3-within0.5-mi1.0"])
)
def test_eager_jit_and_vmap_sampling_agree(name):
    task = make_task(name)
    keys = jax.random.split(jax.random.key(11), 3)
    x, y = task.sample(keys[1], 16)
    x_jit, y_jit = jax.jit(task.sample, static_argnums=1)(keys[1], 16)
    np.testing.assert_allclose(x_jit, x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_jit, y, rtol=1e-5, atol=1e-6)
    x_many, y_many = jax.jit(jax.vmap(lambda key: task.sample(key, 16)))(keys)
    assert x_many.shape == (3, 16, task.x_dim) and y_many.shape == (3, 16, task.y_dim)
    np.testing.assert_allclose(x_many[1], x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y_many[1], y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_names_round_trip(name):
    task = make_task(name)
    assert task.name == name
    assert make_task(task.name) == task


def test_name_formats_and_canonical_forms():
    assert correlated_gaussian(20, 4).name == "gaussian-d20-mi4.0"
    assert cubic_gaussian(20, 4).name == "cubic-d20-mi4.0"
    assert make_task("gaussian-d20-mi4") == correlated_gaussian(20, 4.0)
    assert make_task("gaussian-d3-mi1e-5").name == "gaussian-d3-mi0.00001"
    assert sparse_normal(3, 4, 1).name == "mvn_sparse-dx3-dy4-pairs2-mi1.0"
    assert dense_normal(3, 2, 1).name == "mvn_dense-dx3-dy2-within0.5-mi1.0"
    assert student_t("gaussian-d5-mi1", 3).name == "student_t-df3.0-gaussian-d5-mi1.0"
    # Composition is flattened, so the same task has one name however it was built.
    gaussian = correlated_gaussian(4, 2.0)
    nested = transformed(transformed(gaussian, x_map="asinh"), y_map=["cube", "spiral"])
    assert nested == transformed(gaussian, x_map="asinh", y_map=("cube", "spiral1.0"))
    assert nested.name == "cubic-d4-mi2.0+x=asinh+y=spiral1.0"
    assert make_task(nested.name) == nested
    assert transformed(gaussian, y_map="cube") == cubic_gaussian(4, 2.0)
    assert transformed(gaussian) is gaussian
    assert make_task({"family": "mvn_dense", "x_dim": 3, "y_dim": 2, "mi": 1.0}) == dense_normal(
        3, 2, 1.0
    )
    assert (
        make_task({"family": "transformed", "task": "gaussian-d4-mi2.0", "x_map": "asinh"}).name
        == "gaussian-d4-mi2.0+x=asinh"
    )
    assert make_task(gaussian) is gaussian
    assert set(mi_tasks.TASKS) == {
        "gaussian",
        "cubic",
        "mvn_sparse",
        "mvn_dense",
        "mvn_equicorr",
        "student_t",
        "additive_uniform",
        "transformed",
    }


def test_explicit_covariance_task_names_carry_a_digest():
    task = multivariate_normal(2, 1, [[0.5], [0.1]])
    assert task.name.startswith("mvn-dx2-dy1-cov")
    assert task.name == multivariate_normal(2, 1, [[0.5], [0.1]]).name
    assert task.name != multivariate_normal(2, 1, [[0.5], [0.2]]).name
    with pytest.raises(ValueError, match="explicit covariance"):
        make_task(task.name)
    assert multivariate_normal(1, 1, [[0.6]], name="mine").name == "mine"


# ------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: correlated_gaussian(0, 1.0), "`dim`"),
        (lambda: correlated_gaussian(2.5, 1.0), "`dim`"),
        (lambda: correlated_gaussian(True, 1.0), "`dim`"),
        (lambda: correlated_gaussian(3, -1.0), "`mi`"),
        (lambda: correlated_gaussian(3, math.inf), "`mi`"),
        (lambda: correlated_gaussian(3, math.nan), "`mi`"),
        (lambda: correlated_gaussian(3, "a lot"), "`mi`"),
        (lambda: cubic_gaussian(0, 1.0), "`dim`"),
        (lambda: mi_tasks.rho_from_mi(1.0, 0), "`dim`"),
        (lambda: mi_tasks.mi_from_rho(1.0, 2), "`rho`"),
        (lambda: mi_tasks.nce_club_optimal_value(-1.0, 2), "`mi`"),
        (lambda: staircase(5, family="cubes"), "`family`"),
        (lambda: staircase(5, levels=()), "`levels`"),
        (lambda: staircase(5, levels=(1.0, -2.0)), "`mi`"),
        (lambda: sparse_normal(2, 3, 1.0, num_pairs=3), "`num_pairs`"),
        (lambda: sparse_normal(0, 3, 1.0), "`x_dim`"),
        (lambda: dense_normal(2, 3, 1.0, within_correlation=1.0), "`within_correlation`"),
        (lambda: dense_normal(2, 3, -1.0), "`mi`"),
        (lambda: multivariate_normal(1, 1, [[1.5]]), "positive definite"),
        (lambda: multivariate_normal(2, 1, [[0.5, 0.1]]), "`cross_covariance`"),
        (lambda: multivariate_normal(1, 1, [[0.1]], x_covariance=[[math.nan]]), "finite"),
        (lambda: mi_tasks.MultivariateNormalTask(((1.0, 0.2), (0.1, 1.0)), 1, "s"), "symmetric"),
        (lambda: mi_tasks.MultivariateNormalTask(((1.0, 0.0), (0.0, 1.0)), 2, "s"), "`x_dim`"),
        (lambda: student_t(correlated_gaussian(2, 1.0), 0.0), "`df`"),
        (lambda: student_t(correlated_gaussian(2, 1.0), -3.0), "`df`"),
        (lambda: student_t(correlated_gaussian(2, 1.0), math.inf), "`df`"),
        (lambda: student_t("cubic-d2-mi1.0", 3.0), "`gaussian`"),
        (lambda: mi_tasks.student_t_mi_correction(3.0, 0, 1), "`x_dim`"),
        (lambda: transformed(correlated_gaussian(2, 1.0), x_map="square"), "`x_map`"),
        (lambda: transformed(correlated_gaussian(2, 1.0), y_map="spiral-1"), "`y_map`"),
        (lambda: transformed(correlated_gaussian(1, 1.0), y_map="spiral"), "`y_map`"),
        (lambda: mi_tasks.additive_uniform(0.0), "`epsilon`"),
        (lambda: transformed(42, x_map="cube"), "`task`"),
        (lambda: transformed(42), "`task`"),
        (lambda: make_task("gaussian-d20"), "unknown task name"),
        (lambda: make_task("gaussian-d2-mi1.0+z=cube"), "malformed map"),
        (lambda: make_task({"family": "poisson"}), "`family`"),
        (lambda: make_task(3.0), "`name_or_spec`"),
        (lambda: correlated_gaussian(2, 1.0).sample(jax.random.key(0), 0), "`num_samples`"),
        (
            lambda: correlated_gaussian(2, 1.0).pointwise_mi(jnp.zeros((4, 3)), jnp.zeros((4, 2))),
            "`x`",
        ),
        (
            lambda: sparse_normal(2, 2, 1.0).pointwise_mi(jnp.zeros((4, 2)), jnp.zeros((5, 2))),
            "same number of rows",
        ),
    ],
)
def test_bad_arguments_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_equicorrelated_normal_matches_closed_form_and_covariance():
    """MI of the all-pairs-correlated normal: the closed form, and NumPy's log-dets."""
    task = mi_tasks.equicorrelated_normal(5, 5, 0.5)
    log_det = lambda n, a: (n - 1) * np.log(1 - a) + np.log(1 + (n - 1) * a)
    closed_form = 0.5 * (2 * log_det(5, 0.5) - log_det(10, 0.5))
    assert task.true_mi == pytest.approx(closed_form, rel=1e-12)
    assert task.true_mi == pytest.approx(0.5928, abs=1e-4)
    covariance = np.asarray(task.covariance)
    assert np.allclose(covariance[np.triu_indices(10, 1)], 0.5) and np.allclose(
        np.diag(covariance), 1
    )
    with pytest.raises(ValueError, match="`correlation`"):
        mi_tasks.equicorrelated_normal(2, 2, 1.0)
