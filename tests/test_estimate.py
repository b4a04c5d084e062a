"""estimate_mi: Gaussian sanity against known MI, every estimator runs, input validation."""

import math

import numpy as np
import pytest

from factorcl_jax import critics
from factorcl_jax.estimate import ESTIMATORS, estimate_mi

DIM, TRUE_MI = 5, 1.0
RHO = math.sqrt(1 - math.exp(-2 * TRUE_MI / DIM))
# NCE-CLUB at the optimal InfoNCE critic: I + lautum information = sum rho^2 / (1 - rho^2).
NCE_CLUB_AT_OPTIMUM = DIM * RHO**2 / (1 - RHO**2)


@pytest.fixture(scope="module")
def gaussian_pairs():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, DIM))
    y = RHO * x + math.sqrt(1 - RHO**2) * rng.normal(size=(20000, DIM))
    return x.astype(np.float32), y.astype(np.float32)


def fit(pairs, bound, **kwargs):
    settings = dict(
        bound=bound,
        critic=critics.ConcatCritic(hidden=(64,)),
        batch_size=64,
        steps=600,
        learning_rate=3e-3,
        eval_batches=32,
    )
    settings.update(kwargs)
    return estimate_mi(*pairs, **settings)


def test_optimal_value_constant():
    assert NCE_CLUB_AT_OPTIMUM == pytest.approx(2.46, abs=0.01)


def test_infonce_recovers_known_gaussian_mi(gaussian_pairs):
    result = fit(gaussian_pairs, "infonce")
    assert abs(result.estimate - TRUE_MI) < 0.25, result.estimate
    assert result.history.shape == (600,)
    assert result.estimate <= math.log(64)


def test_nce_club_upper_bounds_known_gaussian_mi(gaussian_pairs):
    result = fit(gaussian_pairs, "nce_club")
    assert TRUE_MI - 0.1 < result.estimate < NCE_CLUB_AT_OPTIMUM + 0.25, result.estimate


def test_club_upper_bounds_known_gaussian_mi(gaussian_pairs):
    result = fit(gaussian_pairs, "club", critic=critics.GaussianCritic(hidden=(32,)))
    assert TRUE_MI - 0.1 < result.estimate < NCE_CLUB_AT_OPTIMUM + 0.25, result.estimate


@pytest.mark.parametrize("bound", sorted(set(ESTIMATORS) - {"infonce", "nce_club", "club"}))
def test_lower_bound_estimators_learn_something_and_stay_finite(gaussian_pairs, bound):
    result = fit(gaussian_pairs, bound, steps=300, learning_rate=1e-3)
    assert np.all(np.isfinite(result.history))
    assert result.history[-50:].mean() > result.history[:10].mean()
    assert 0.2 < result.estimate < TRUE_MI + 0.5, result.estimate


def test_estimate_is_deterministic_per_seed(gaussian_pairs):
    small = (gaussian_pairs[0][:256], gaussian_pairs[1][:256])
    a = fit(small, "infonce", steps=20, batch_size=32)
    b = fit(small, "infonce", steps=20, batch_size=32)
    c = fit(small, "infonce", steps=20, batch_size=32, seed=1)
    np.testing.assert_array_equal(a.history, b.history)
    assert not np.array_equal(a.history, c.history)


def test_blocked_estimate_matches_dense(gaussian_pairs):
    small = (gaussian_pairs[0][:256], gaussian_pairs[1][:256])
    dense = fit(small, "nce_club", steps=10, batch_size=32)
    blocked = fit(small, "nce_club", steps=10, batch_size=32, block_size=8)
    np.testing.assert_allclose(blocked.history, dense.history, rtol=1e-4, atol=1e-5)


def test_input_validation():
    x = np.zeros((100, 2))
    with pytest.raises(ValueError, match="same number of rows"):
        estimate_mi(x, np.zeros((99, 2)), batch_size=10)
    with pytest.raises(ValueError, match="`y` contains NaN"):
        estimate_mi(x, np.full((100, 2), np.nan), batch_size=10)
    with pytest.raises(ValueError, match="`x` contains NaN or inf"):
        estimate_mi(np.full((100, 2), np.inf), x, batch_size=10)
    with pytest.raises(ValueError, match=r"at least `batch_size` = 128 rows, got 100"):
        estimate_mi(x, x, batch_size=128)
    with pytest.raises(ValueError, match="`x` must have shape"):
        estimate_mi(np.zeros(100), x, batch_size=10)
    with pytest.raises(ValueError, match="`bound` must be one of"):
        estimate_mi(x, x, bound="mutual", batch_size=10)
    with pytest.raises(ValueError, match="`steps`"):
        estimate_mi(x, x, batch_size=10, steps=0)
    with pytest.raises(TypeError, match="`x` must be numeric"):
        estimate_mi(np.array([["a", "b"]] * 100), x, batch_size=10)
