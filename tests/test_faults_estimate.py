"""Faults of estimation: a number is reported only where the bound can take it; scale,
duplicates and masked inputs handled; inputs fuzzed."""

import jax
import numpy as np
import pytest
from helpers import assert_refused, fast_first, save
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from factorcl_jax import critics, estimate

CASES = {
    "diverged estimate": lambda t: (
        [
            "estimate",
            save(t / "x.npy", np.arange(400.0).reshape(200, 2)),
            t / "x.npy",
            "--bound",
            "nwj",
            "--learning-rate",
            "1e6",
            "--steps",
            "100",
            "--hidden",
            "8",
            "--out",
            t / "est",
        ],
        "training diverged",
    ),
}


@pytest.mark.parametrize(
    "case",
    # The diverged estimate trains a critic; the other mistakes are refused before any work.
    [pytest.param(c, marks=pytest.mark.slow) if c == "diverged estimate" else c for c in CASES],
)
def test_user_mistakes_are_one_line_exit_2_and_change_no_file(case, tmp_path, capsys):
    assert_refused(case, tmp_path, capsys, CASES)


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    x=st.one_of(
        hnp.arrays(
            np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6), elements=finite_or_not
        ),
        hnp.arrays(st.sampled_from([np.int32, np.bool_]), st.just((6, 2))),
        st.lists(st.lists(finite_or_not, min_size=1, max_size=3), max_size=4),
    ),
    batch_size=st.sampled_from([2, 4, 0, -1, 2.5]),
)
def test_fuzz_estimate_mi_refuses_what_it_cannot_estimate(x, batch_size):
    """Non-finite, wrongly shaped or too-small inputs raise ValueError/TypeError before any
    training; whatever is accepted gives a finite estimate."""
    try:
        arrays = np.asarray(x)
    except ValueError:
        arrays = None
    try:
        result = estimate.estimate_mi(
            x, x, critic=critics.ConcatCritic(hidden=(8,)), max_steps=2, batch_size=batch_size
        )
    except (ValueError, TypeError):
        return
    assert arrays is not None and arrays.ndim == 2 and np.isfinite(arrays).all()
    assert np.isfinite(result.estimate)


# ------------------------------------------------------------ a number only where it means one


def _gaussian(n=600, d=2, noise=0.7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, x + noise * rng.normal(size=(n, d))


# One ReLU layer: it blows up to huge scores at a learning rate of 1e6, where the two layers
# of the default in few dimensions can die to 0 nats instead; and it trains in half the time.
SMALL = dict(max_steps=200, eval_every=100, batch_size=32, hidden=(64,))


@pytest.mark.parametrize(
    "bound", fast_first(["infonce", *sorted(set(estimate.ESTIMATORS) - {"infonce"})])
)
def test_no_estimator_reports_a_value_its_bound_cannot_take(bound):
    """A learning rate far too high gives NaN, inf or huge finite scores: the estimate either
    raises, naming the learning rate, or is a value the bound takes on a converged critic."""
    from factorcl_jax import bounds

    x, y = _gaussian()
    try:
        result = estimate.estimate_mi(x, y, bound=bound, learning_rate=1e6, **SMALL)
    except estimate.DivergedEstimateError as error:
        assert "`learning_rate` (was 1e+06)" in str(error)
    else:
        low, high = bounds.BOUNDS[bound].plausible_range(SMALL["batch_size"])
        assert low <= result.estimate <= high and low <= result.in_sample <= high


def test_infonce_whose_critic_diverged_to_huge_scores_raises():
    x, y = _gaussian()
    with pytest.raises(estimate.ImplausibleEstimateError, match=r"outside what infonce takes"):
        estimate.estimate_mi(x, y, learning_rate=1e6, **SMALL)


@pytest.mark.parametrize("scale", fast_first([1e-300, 1e-200, 1e-170, 5e-320, 1e-6, 1e6, 1e300]))
def test_the_estimate_does_not_depend_on_the_scale_of_the_data(scale):
    """Standardisation is scale-free: no underflow of the spread at 1e-300 or in subnormals,
    no overflow at 1e300 (the same estimate as the unscaled data)."""
    x, y = _gaussian()
    if scale == 5e-320:  # subnormal: a handful of integer multiples of the smallest float
        x, y = np.round(x * 1000), np.round(y * 1000)
    expected = estimate.estimate_mi(x, y, **SMALL)
    scaled = estimate.estimate_mi(x * scale, y * scale, **SMALL)
    assert expected.estimate > 0.5
    np.testing.assert_allclose(scaled.estimate, expected.estimate, atol=0.02)


def test_an_offset_far_larger_than_the_signal_does_not_hide_it():
    x, y = _gaussian()
    expected = estimate.estimate_mi(x, y, **SMALL)
    shifted = estimate.estimate_mi(x * 1e-6 + 5e3, y * 1e-6 - 5e3, **SMALL)
    np.testing.assert_allclose(shifted.estimate, expected.estimate, atol=0.02)


@pytest.mark.parametrize("copies", fast_first([8, 2, 4]))
def test_duplicated_independent_pairs_give_no_information(copies):
    """Copies of a pair never straddle the split, so a critic that memorises its training
    pairs scores nothing it has seen: about 0 nats, and the summary counts the copies."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4000 // copies, 3)), rng.normal(size=(4000 // copies, 3))
    x, y = np.repeat(x, copies, axis=0), np.repeat(y, copies, axis=0)
    result = estimate.estimate_mi(x, y, max_steps=400, eval_every=100, hidden=(64,))
    assert result.duplicates == len(x) - len(x) // copies
    assert f"{result.duplicates} duplicate pair(s)" in result.summary()
    assert result.estimate < 0.1


def test_no_copy_of_a_training_pair_is_held_out():
    from factorcl_jax.estimate import samples

    rng = np.random.default_rng(2)
    x = np.repeat(rng.normal(size=(50, 2)), rng.integers(1, 6, 50), axis=0)
    y = x[:, :1].copy()
    groups = samples.pair_groups(x, y)
    key = jax.random.key(0)
    for folds in (None, 4):
        for train, held in samples.split_rows(groups, 0.3, folds, key):
            assert not set(groups[train]) & set(groups[held])
            assert len(train) + len(held) == len(x)


@pytest.mark.parametrize("which", ["x", "y"])
def test_masked_arrays_are_refused(which):
    x, y = _gaussian()
    masked = np.ma.masked_array(x, mask=np.abs(x) > 2)
    arrays = {"x": x, "y": y, which: masked}
    with pytest.raises(TypeError, match=f"`{which}` is a masked array"):
        estimate.estimate_mi(arrays["x"], arrays["y"], **SMALL)
