"""estimate_mi: the held-out protocol, defaults sized to the data, estimators, validation."""

import math

import jax
import numpy as np
import pytest

from factorcl_jax import critics, estimate
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import ESTIMATORS, default_settings, estimate_mi


def sample(task, num_samples, seed=0):
    x, y = task.sample(jax.random.key(seed), num_samples)
    return np.asarray(x), np.asarray(y)


@pytest.fixture(scope="module")
def gaussian():
    """d = 2, I = 1 nat, 2000 pairs; NCE-CLUB's optimal-critic value is I + lautum = 3.44."""
    task = mi_tasks.correlated_gaussian(2, 1.0)
    return task, sample(task, 2000)


@pytest.fixture(scope="module")
def default_result(gaussian):
    return estimate_mi(*gaussian[1])


@pytest.mark.slow
def test_default_call_is_held_out_and_near_the_truth(gaussian, default_result):
    task, _ = gaussian
    result = default_result
    settings = default_settings(1000, 2, 2)
    assert result.settings == settings and settings.batch_size == 128
    assert result.num_train == 1000 and result.num_heldout == 1000 // 128 * 128
    assert result.heldout_batches.shape == (1000 // 128,)
    assert result.estimate == pytest.approx(np.mean(result.heldout_batches))
    assert result.stderr == pytest.approx(np.std(result.heldout_batches) / math.sqrt(7))
    assert abs(result.estimate - task.true_mi) < 0.2, result.summary()
    assert 0 < result.best_step <= result.steps_run <= settings.max_steps
    assert len(result.curve["step"]) == result.steps_run // settings.eval_every
    assert result.history.shape == (result.steps_run,)
    assert result.summary().startswith(f"I(X; Y) ≈ {result.estimate:.3g} ± ")
    assert f"held-out, {result.num_heldout} pairs; infonce, stopped at step" in result.summary()


@pytest.mark.slow
def test_in_sample_estimate_exceeds_held_out_one_when_a_large_critic_memorises():
    """256 pairs, a 512-wide critic trained far past its best held-out point: on its own
    training pairs it reports several nats (near log 32), the held-out curve falls below
    zero, and the reported estimate, taken at the best held-out point, stays below the
    truth as a lower bound should."""
    task = mi_tasks.correlated_gaussian(5, 0.5)
    result = estimate_mi(
        *sample(task, 256),
        hidden=(512,),
        batch_size=32,
        max_steps=600,
        eval_every=50,
        patience=100,
    )
    assert result.steps_run == 600  # patience larger than the budget: trained to the end
    assert result.curve["in_sample_estimate"][-1] > 4 * task.true_mi
    assert result.curve["heldout_estimate"][-1] < 0
    assert result.in_sample > result.estimate
    assert 0 < result.estimate < task.true_mi + 2 * result.stderr, result.summary()


@pytest.mark.slow
def test_nce_club_and_club_sit_above_the_truth_and_infonce_below(gaussian, default_result):
    task, pairs = gaussian
    nce_club = estimate_mi(*pairs, bound="nce_club")
    club = estimate_mi(*pairs, bound="club")
    assert default_result.estimate < task.true_mi + 0.1
    optimum = task.nce_club_optimal_value
    assert task.true_mi - 0.1 < nce_club.estimate < optimum + 0.3, nce_club.summary()
    assert task.true_mi - 0.1 < club.estimate < optimum + 0.3, club.summary()


@pytest.mark.slow
@pytest.mark.parametrize("bound", sorted(set(ESTIMATORS) - {"infonce", "nce_club", "club"}))
def test_every_lower_bound_estimator_learns_and_stays_finite(gaussian, bound):
    task, pairs = gaussian
    result = estimate_mi(*pairs, bound=bound, max_steps=300)
    assert np.all(np.isfinite(result.history)) and np.all(np.isfinite(result.heldout_batches))
    assert 0.2 < result.estimate < task.true_mi + 0.3, result.summary()


@pytest.mark.slow
def test_k_fold_holds_every_pair_out_once(gaussian):
    _, (x, y) = gaussian
    result = estimate_mi(x[:800], y[:800], folds=2, max_steps=200, batch_size=64)
    assert result.folds == 2 and result.num_train == 400
    assert result.num_heldout == 2 * (400 // 64) * 64
    assert result.heldout_batches.shape == (2 * (400 // 64),)
    assert "2-fold" in result.summary()


def test_estimate_is_deterministic_per_seed(gaussian):
    _, (x, y) = gaussian
    small = dict(max_steps=100, batch_size=32, hidden=(16,))
    a = estimate_mi(x[:400], y[:400], **small)
    b = estimate_mi(x[:400], y[:400], **small)
    c = estimate_mi(x[:400], y[:400], seed=1, **small)
    np.testing.assert_array_equal(a.history, b.history)
    assert a.estimate == b.estimate
    assert not np.array_equal(a.history, c.history)


def test_affine_rescaling_leaves_the_estimate_unchanged(gaussian):
    """MI is invariant to per-feature affine maps, and so is the standardised estimate: a
    signal of 1e-6 on an offset of 5e3 (below float32's resolution there) still counts."""
    _, (x, y) = gaussian
    x, y = x[:400].astype(np.float64), y[:400].astype(np.float64)
    small = dict(max_steps=100, batch_size=32, hidden=(16,))
    plain = estimate_mi(x, y, **small)
    rescaled = estimate_mi(x * 1e6 - 3.0, y * 1e-6 + 5e3, **small)
    assert plain.estimate > 0.3, plain.summary()
    assert rescaled.estimate == pytest.approx(plain.estimate, abs=0.02)


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["nwj", "js"])
def test_diverged_training_raises_instead_of_reporting_a_value(gaussian, bound):
    """With a learning rate far too high, NWJ's held-out objective is NaN and JS's -inf from
    the first evaluation on: no critic is ever kept, and that is an error, not 0 nats."""
    _, (x, y) = gaussian
    with pytest.raises(estimate.NonFiniteEstimateError, match=r"training diverged.*learning_rate"):
        estimate_mi(x[:400], y[:400], bound=bound, learning_rate=1e6, max_steps=100, hidden=(8,))


@pytest.mark.slow
def test_a_small_training_part_scores_as_many_in_sample_batches_as_it_holds(gaussian):
    _, (x, y) = gaussian
    result = estimate_mi(
        x[:400], y[:400], heldout_fraction=0.9, batch_size=16, max_steps=100, hidden=(8,)
    )
    assert result.num_train == 40 and result.num_heldout == 360 // 16 * 16
    assert np.isfinite(result.estimate) and np.isfinite(result.in_sample)


@pytest.mark.slow
def test_blocked_estimate_matches_dense(gaussian):
    _, (x, y) = gaussian
    small = dict(bound="nce_club", max_steps=100, batch_size=32, hidden=(16, 16))
    dense = estimate_mi(x[:400], y[:400], **small)
    blocked = estimate_mi(x[:400], y[:400], block_size=8, **small)
    np.testing.assert_allclose(blocked.history, dense.history, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_explicit_critic_is_used():
    x = np.random.default_rng(0).normal(size=(256, 3))
    critic = critics.SeparableCritic(hidden=(8,), embed_dim=4)
    result = estimate_mi(x, x, critic=critic, max_steps=100, batch_size=32)
    assert set(result.params["params"]) == {"x_tower", "y_tower"}
    assert result.critic == "SeparableCritic"
    with pytest.raises(ValueError, match="`hidden` sizes the library's critics"):
        estimate_mi(x, x, critic=critic, hidden=(8,))


def test_default_settings_follow_the_documented_rule():
    assert default_settings(2500, 5, 5) == estimate.Settings((80,), 128, 7800, 3e-3, 100, 10)
    small = default_settings(100, 1, 1)
    assert small.hidden == (64, 16) and small.batch_size == 16 and small.max_steps == 4000
    # A second layer up to FEW_DIMENSIONS input dimensions in all, one layer above.
    assert default_settings(1000, 3, 3).hidden == (64, 16)
    assert default_settings(1000, 3, 4).hidden == (64,)
    large = default_settings(100_000, 25, 25)
    assert large.hidden == (256,) and large.batch_size == 128 and large.max_steps == 16000
    # A small held-out part sizes the batch too: 20 held-out pairs make 5 batches of 4.
    lopsided = default_settings(380, 2, 2, num_heldout=20)
    assert lopsided.batch_size == 4 and lopsided.max_steps == 16000


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"learning_rate": -1}, ValueError, "`learning_rate`"),
        ({"learning_rate": float("nan")}, ValueError, "`learning_rate`"),
        ({"seed": -1}, ValueError, r"`seed` must be an int in \[0, 4294967295\]"),
        ({"seed": 2**32}, ValueError, "`seed`"),
        ({"seed": 1.5}, TypeError, "`seed`"),
        ({"max_steps": 0}, ValueError, "`max_steps`"),
        ({"max_steps": 2.0}, TypeError, "`max_steps`"),
        ({"batch_size": 1}, ValueError, "`batch_size`"),
        ({"batch_size": 64}, ValueError, "`batch_size` must be <= the pairs in each part"),
        ({"eval_every": 30, "max_steps": 100}, ValueError, "multiple of `eval_every`"),
        ({"patience": 0}, ValueError, "`patience`"),
        ({"heldout_fraction": 1.0}, ValueError, "`heldout_fraction`"),
        ({"heldout_fraction": 0.001}, ValueError, "0 held-out pairs; each part needs at least 2"),
        (
            {"heldout_fraction": 0.2, "batch_size": 16},
            ValueError,
            "20 held-out pairs make 1 batch .* needs at least 2",
        ),
        ({"heldout_fraction": 0}, ValueError, "`heldout_fraction`"),
        ({"folds": 1}, ValueError, "`folds`"),
        ({"folds": 50}, ValueError, "`folds`"),
        ({"hidden": (8, 0)}, ValueError, "`hidden`"),
        ({"bound": "mutual"}, ValueError, "unknown bound 'mutual'"),
        ({"critic": 3}, TypeError, "a critic must be"),
        ({"critic": "bilinear"}, ValueError, "`critic` must be one of"),
        ({"bound": "club", "critic": "separable"}, ValueError, "does not apply to bound 'club'"),
        ({"folds": 4, "heldout_fraction": 0.3}, ValueError, "exclude each other"),
        ({"standardize": "yes"}, TypeError, "`standardize`"),
        ({"block_size": 0}, ValueError, "`block_size`"),
    ],
)
def test_arguments_are_validated_at_the_entry_point(kwargs, error, match):
    x = np.random.default_rng(0).normal(size=(100, 2))
    with pytest.raises(error, match=match):
        estimate_mi(x, x, **kwargs)


def test_sample_validation():
    x = np.zeros((100, 2))
    with pytest.raises(ValueError, match="same number of rows"):
        estimate_mi(x, np.zeros((99, 2)))
    with pytest.raises(ValueError, match="`y` holds 200 NaN or inf"):
        estimate_mi(x, np.full((100, 2), np.nan))
    with pytest.raises(ValueError, match="`x` holds 200 NaN or inf"):
        estimate_mi(np.full((100, 2), np.inf), x)
    with pytest.raises(ValueError, match="`x` must have 2 axes"):
        estimate_mi(np.zeros(100), x)
    with pytest.raises(TypeError, match="`x` must hold real numbers"):
        estimate_mi(np.array([["a", "b"]] * 100), x)
    with pytest.raises(TypeError, match="`x` holds complex numbers"):
        estimate_mi(x + 1j, x)
    with pytest.raises(TypeError, match="`x` is a masked array"):
        estimate_mi(np.ma.masked_array(x, mask=x > 0), x)
    with pytest.raises(ValueError, match="axis of length 0"):
        estimate_mi(np.zeros((100, 0)), x)


def test_critic_by_name():
    assert isinstance(estimate.make_critic("concat", (8,)).module, critics.ConcatCritic)
    assert isinstance(estimate.make_critic("gaussian", (8,)).module, critics.GaussianCritic)
    with pytest.raises(ValueError, match="`critic`"):
        estimate.make_critic("bilinear", (8,))
    with pytest.raises(ValueError, match="`hidden`"):
        estimate.make_critic("concat", ())
