"""KSG and CCA against brute-force NumPy references and Gaussian closed forms; invariances,
determinism, jit/vmap and input errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import digamma

from factorcl_jax.estimate import classical

# ---------------------------------------------------------------- NumPy references (float64)


def ref_ksg(x, y, k, metric):
    """KSG's eq. 8 one sample at a time: sort the joint distances to the other samples, take
    the k-th, count strictly closer ones in each marginal space."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    norm = {
        "euclidean": lambda d: np.sqrt(np.sum(d**2, axis=1)),
        "chebyshev": lambda d: np.max(np.abs(d), axis=1),
        "manhattan": lambda d: np.sum(np.abs(d), axis=1),
    }[metric]
    n = len(x)
    radius, count_x, count_y = np.zeros(n), np.zeros(n, int), np.zeros(n, int)
    for i in range(n):
        others = np.arange(n) != i
        distance_x, distance_y = norm(x[others] - x[i]), norm(y[others] - y[i])
        radius[i] = np.sort(np.maximum(distance_x, distance_y))[k - 1]
        count_x[i] = np.sum(distance_x < radius[i])
        count_y[i] = np.sum(distance_y < radius[i])
    mi = digamma(k) + digamma(n) - np.mean(digamma(count_x + 1) + digamma(count_y + 1))
    return radius, count_x, count_y, mi


def ref_canonical_correlations(x, y):
    """Singular values of S_xx^{-1/2} S_xy S_yy^{-1/2} (whitening by eigh), in float64."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)

    def inverse_sqrt(s):
        values, vectors = np.linalg.eigh(s)
        return vectors @ np.diag(values**-0.5) @ vectors.T

    whitened = inverse_sqrt(x.T @ x) @ (x.T @ y) @ inverse_sqrt(y.T @ y)
    return np.linalg.svd(whitened, compute_uv=False)


def ref_cca_mi(x, y):
    return -0.5 * np.sum(np.log1p(-(ref_canonical_correlations(x, y) ** 2)))


def gaussian_pairs(n, dim, rho, seed):
    """``[n, dim]`` x and y with corr(x_i, y_i) = rho[i], all else independent; the MI is
    ``-1/2 sum log(1 - rho^2)``."""
    rng = np.random.default_rng(seed)
    rho = np.broadcast_to(np.asarray(rho, np.float64), (dim,))
    x = rng.normal(size=(n, dim))
    y = rho * x + np.sqrt(1 - rho**2) * rng.normal(size=(n, dim))
    return x, y, float(-0.5 * np.sum(np.log1p(-(rho**2))))


# ------------------------------------------------------------------- KSG vs brute force


@pytest.mark.parametrize(
    ("metric", "dx", "dy", "k"),
    [
        ("euclidean", 1, 1, 1),
        ("euclidean", 2, 3, 5),
        ("chebyshev", 3, 1, 10),
        ("chebyshev", 2, 3, 5),
        ("manhattan", 2, 2, 4),
    ],
)
def test_ksg_neighbours_match_brute_force(metric, dx, dy, k):
    rng = np.random.default_rng(dx + 10 * dy + 100 * k)
    x = rng.normal(size=(150, dx)).astype(np.float32)
    y = (x[:, :1] + rng.normal(size=(150, dy))).astype(np.float32)
    radius, count_x, count_y, mi = ref_ksg(x, y, k, metric)
    neighbours = classical.ksg_neighbours(x, y, k=k, metric=metric, block_size=32)
    np.testing.assert_allclose(neighbours.radius, radius, rtol=1e-5)
    np.testing.assert_array_equal(neighbours.count_x, count_x)
    np.testing.assert_array_equal(neighbours.count_y, count_y)
    np.testing.assert_allclose(classical.ksg_mi(x, y, k=k, metric=metric), mi, atol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "chebyshev"])
def test_ksg_ties_and_duplicates_follow_the_strict_definition(metric):
    # Small integers: distances are exact, so many tie exactly with eps_i, and some samples
    # repeat (fewer than k times, so every eps_i > 0).
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, size=(120, 2)).astype(np.float32)
    y = (x[:, :1] + rng.integers(0, 3, size=(120, 1))).astype(np.float32)
    _, counts = np.unique(np.concatenate([x, y], axis=1), axis=0, return_counts=True)
    assert 1 < counts.max() <= 4  # duplicates exist, none reaches k = 5
    radius, count_x, count_y, mi = ref_ksg(x, y, 5, metric)
    neighbours = classical.ksg_neighbours(x, y, k=5, metric=metric)
    np.testing.assert_allclose(neighbours.radius, radius, rtol=1e-6)
    np.testing.assert_array_equal(neighbours.count_x, count_x)
    np.testing.assert_array_equal(neighbours.count_y, count_y)
    np.testing.assert_allclose(classical.ksg_mi(x, y, k=5, metric=metric), mi, atol=1e-5)


def test_ksg_block_size_changes_nothing():
    x, y, _ = gaussian_pairs(101, 2, 0.5, seed=1)
    x, y = x.astype(np.float32), y.astype(np.float32)
    results = [classical.ksg_neighbours(x, y, k=4, block_size=b) for b in (1, 7, 64, 101)]
    for result in results[1:]:
        # XLA may sum a distance's coordinates in another order for another block shape.
        np.testing.assert_allclose(result.radius, results[0].radius, rtol=1e-6)
        np.testing.assert_array_equal(result.count_x, results[0].count_x)
        np.testing.assert_array_equal(result.count_y, results[0].count_y)


def test_default_block_size_bounds_the_distance_arrays():
    assert classical.default_ksg_block_size(5000) * 5000 <= 2**20
    assert classical.default_ksg_block_size(10) == 10
    assert classical.default_ksg_block_size(2**21) == 1


# --------------------------------------------------------------------- closed forms


@pytest.mark.parametrize(("dim", "rho"), [(1, 0.8), (2, 0.6), (1, 0.0)])
def test_ksg_near_the_gaussian_mi(dim, rho):
    # At N = 2000, k = 10 and these dimensions KSG's bias is below 0.01 nats and its spread
    # over samples about 0.015-0.02 (measured over 10 seeds; Kraskov et al. 2004 report the
    # same near-unbiasedness for low-dimensional Gaussians), so 0.07 is about 4 sd.
    x, y, truth = gaussian_pairs(2000, dim, rho, seed=7)
    result = classical.estimate_ksg(x, y)
    assert abs(result.estimate - truth) < 0.07


def test_cca_equals_the_float64_reference_and_the_gaussian_mi():
    x, y, truth = gaussian_pairs(20_000, 3, [0.9, 0.5, 0.0], seed=2)
    result = classical.estimate_cca(x, y)
    np.testing.assert_allclose(result.estimate, ref_cca_mi(x, y), rtol=1e-4)
    np.testing.assert_allclose(
        result.canonical_correlations, ref_canonical_correlations(x, y), atol=1e-5
    )
    # Sampling sd of -1/2 log(1 - rho^2) is about rho / sqrt(N) per pair: 0.009 in all.
    assert abs(result.estimate - truth) < 0.04


def test_cca_keeps_accuracy_close_to_perfect_correlation():
    # rho = 0.99999: 1 - rho^2 = 2e-5, which float32 cosines cannot resolve; the sines can.
    x, y, _ = gaussian_pairs(5000, 2, [0.99999, 0.3], seed=4)
    reference = ref_cca_mi(x, y)
    assert reference > 5
    np.testing.assert_allclose(classical.estimate_cca(x, y).estimate, reference, rtol=1e-3)


def test_cca_handles_unequal_dimensions_either_way():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 4))
    y = x[:, :2] @ rng.normal(size=(2, 2)) + rng.normal(size=(500, 2))
    for a, b in [(x, y), (y, x)]:
        result = classical.estimate_cca(a, b)
        assert result.canonical_correlations.shape == (2,)
        np.testing.assert_allclose(result.estimate, ref_cca_mi(a, b), rtol=1e-4)


# ------------------------------------------------------------------------- invariances


def test_invariance_to_per_coordinate_scaling_and_shift():
    x, y, _ = gaussian_pairs(400, 3, 0.7, seed=6)
    scale_x, scale_y = np.array([1e-3, 2.0, 50.0]), np.array([7.0, 0.1, 3.0])
    shifted_x, shifted_y = x * scale_x + 5.0, y * scale_y - 2.0
    ksg = classical.estimate_ksg(x, y, metric="chebyshev").estimate
    np.testing.assert_allclose(
        classical.estimate_ksg(shifted_x, shifted_y, metric="chebyshev").estimate, ksg, atol=1e-6
    )
    mixing = np.random.default_rng(0).normal(size=(3, 3))  # any invertible map, for CCA
    np.testing.assert_allclose(
        classical.estimate_cca(shifted_x @ mixing, shifted_y).estimate,
        classical.estimate_cca(x, y).estimate,
        rtol=1e-4,
    )


def test_unstandardised_max_norm_ksg_is_invariant_to_a_common_scale():
    x, y, _ = gaussian_pairs(300, 2, 0.7, seed=8)
    raw = classical.estimate_ksg(x, y, metric="chebyshev", standardize=False).estimate
    scaled = classical.estimate_ksg(4 * x, 4 * y, metric="chebyshev", standardize=False)
    assert scaled.estimate == raw  # a power of 2 rescales every distance exactly
    # KSG's own scale: the joint space compares d_x with d_y, so scaling one side matters.
    assert classical.estimate_ksg(4 * x, y, metric="chebyshev", standardize=False).estimate != raw


def test_row_permutation_and_swapping_x_y():
    x, y, _ = gaussian_pairs(300, 2, 0.6, seed=9)
    order = np.random.default_rng(1).permutation(300)
    for estimate in (classical.estimate_ksg, classical.estimate_cca):
        value = estimate(x, y).estimate
        np.testing.assert_allclose(estimate(x[order], y[order]).estimate, value, rtol=1e-5)
        np.testing.assert_allclose(estimate(y, x).estimate, value, rtol=1e-5)


def test_deterministic():
    x, y, _ = gaussian_pairs(300, 2, 0.6, seed=10)
    assert classical.estimate_ksg(x, y).estimate == classical.estimate_ksg(x, y).estimate
    assert classical.estimate_cca(x, y).estimate == classical.estimate_cca(x, y).estimate


# ------------------------------------------------------------------------- jit and vmap


def test_vmap_over_datasets_equals_one_at_a_time():
    pairs = [gaussian_pairs(64, 2, rho, seed=i) for i, rho in enumerate((0.0, 0.5, 0.9))]
    xs = jnp.asarray(np.stack([p[0] for p in pairs]), jnp.float32)
    ys = jnp.asarray(np.stack([p[1] for p in pairs]), jnp.float32)
    ksg = jax.vmap(lambda x, y: classical.ksg_mi(x, y, k=3, block_size=16))(xs, ys)
    cca = jax.vmap(classical.cca_mi)(xs, ys)
    for i in range(3):
        np.testing.assert_allclose(ksg[i], classical.ksg_mi(xs[i], ys[i], k=3), atol=1e-6)
        np.testing.assert_allclose(cca[i], classical.cca_mi(xs[i], ys[i]), rtol=1e-5)


def test_ksg_mi_is_nan_where_k_duplicates_make_a_radius_zero():
    x = jnp.asarray(np.repeat(np.arange(10.0), 3)[:, None], jnp.float32)  # each value 3 times
    assert np.isfinite(classical.ksg_mi(x, x, k=3))
    assert np.isnan(classical.ksg_mi(x, x, k=2))


# ------------------------------------------------------------------------ result object


def test_results_describe_themselves():
    x, y, _ = gaussian_pairs(200, 2, 0.6, seed=11)
    ksg = classical.estimate_ksg(x, y, k=5, metric="manhattan")
    assert ksg.settings == classical.KSGSettings(5, "manhattan", True, 200)
    assert (ksg.estimator, ksg.num_samples, ksg.canonical_correlations) == ("ksg", 200, None)
    assert ksg.summary().startswith(f"I(X; Y) ≈ {ksg.estimate:.3g} nats (ksg, k=5, manhattan")
    assert "no held-out split" in ksg.summary()
    cca = classical.estimate_cca(x, y)
    assert (cca.estimator, cca.settings) == ("cca", None)
    assert cca.summary().startswith(f"I(X; Y) ≈ {cca.estimate:.3g} nats (cca; all 200 pairs")
    assert ksg.seconds > 0 and cca.seconds > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        ksg.estimate = 0.0


# -------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("estimate", [classical.estimate_ksg, classical.estimate_cca])
@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (np.zeros((20, 2)), np.zeros((19, 2)), ValueError, "same number of rows"),
        (np.zeros(20), np.zeros((20, 1)), ValueError, "`x` must have 2 axes"),
        (np.zeros((20, 1)), np.full((20, 1), np.nan), ValueError, "`y` holds 20 NaN"),
        (np.zeros((20, 1)), np.zeros((20, 1), complex), TypeError, "`y` holds complex"),
        (np.array([["a"]] * 20), np.zeros((20, 1)), TypeError, "`x` must hold real numbers"),
    ],
)
def test_bad_samples_are_refused(estimate, x, y, error, match):
    with pytest.raises(error, match=match):
        estimate(x, y)


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"k": 0}, ValueError, r"`k` must be an int in \[1, 29\]"),
        ({"k": 30}, ValueError, r"`k` must be an int in \[1, 29\]"),
        ({"k": 2.0}, TypeError, "`k` must be an int"),
        ({"k": True}, TypeError, "`k` must be an int"),
        ({"metric": "cosine"}, ValueError, "`metric` must be one of"),
        ({"block_size": 0}, ValueError, "`block_size` must be an int"),
        ({"standardize": 1}, TypeError, "`standardize` must be a bool"),
    ],
)
def test_bad_ksg_options_are_refused(options, error, match):
    x, y, _ = gaussian_pairs(30, 1, 0.5, seed=0)
    with pytest.raises(error, match=match):
        classical.estimate_ksg(x, y, **options)


def test_ksg_refuses_samples_with_k_duplicates():
    x = np.repeat(np.arange(10.0), 3)[:, None]
    with pytest.raises(ValueError, match=r"30 sample\(s\) .* 2 or more exact duplicates"):
        classical.estimate_ksg(x, x, k=2)
    with pytest.raises(ValueError, match="overflow float32"):
        classical.estimate_ksg(x * 1e30, x * 1e30, k=3, standardize=False)
    with pytest.raises(ValueError, match="at least 2 samples"):
        classical.estimate_ksg(np.zeros((1, 1)), np.zeros((1, 1)), k=1)


def test_cca_refuses_degenerate_samples():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    with pytest.raises(ValueError, match="more samples than dimensions"):
        classical.estimate_cca(x[:4], y[:4])
    with pytest.raises(ValueError, match=r"`x` has linearly dependent columns .*rank 1 of 2"):
        classical.estimate_cca(np.stack([x[:, 0], 3 * x[:, 0]], axis=1), y)
    with pytest.raises(ValueError, match="`y` has linearly dependent columns"):
        classical.estimate_cca(x, np.stack([y[:, 0], np.ones(50)], axis=1))
    with pytest.raises(ValueError, match="a linear function of `x`"):
        classical.estimate_cca(x, np.stack([x[:, 0] - x[:, 1], y[:, 0]], axis=1))


def test_the_jax_functions_refuse_bad_arrays():
    x = jnp.zeros((10, 2), jnp.float32)
    with pytest.raises(TypeError, match="`x` must be a floating-point array"):
        classical.ksg_neighbours(jnp.zeros((10, 2), jnp.int32), x)
    with pytest.raises(TypeError, match="same dtype"):
        classical.cca_mi(x, x.astype(jnp.float16))
    with pytest.raises(ValueError, match=r"`y` must have shape \[N, dy\]"):
        classical.ksg_mi(x, jnp.zeros(10), k=3)
