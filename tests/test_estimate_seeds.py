"""estimate_mi_seeds, per-pair PMI estimates, normal scores and the batch that grows with the
information: what each promises, checked on small Gaussian samples."""

import numpy as np
import pytest

from factorcl_jax.estimate import DivergedEstimateError, estimate_mi, estimate_mi_seeds

# One hidden layer: these tests check the protocol, not the critic (the default adds a
# second layer in few dimensions, at twice the time).
QUICK = {"max_steps": 200, "eval_every": 100, "hidden": (64,)}


def gaussian_sets(count, num_samples=512, dim=2, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(count, num_samples, dim))
    return xs, xs + noise * rng.normal(size=xs.shape)


def test_several_sets_in_one_program_equal_one_call_each():
    xs, ys = gaussian_sets(3)
    together = estimate_mi_seeds(xs, ys, seeds=[4, 5, 6], **QUICK)
    for x, y, seed, result in zip(xs, ys, (4, 5, 6), together, strict=True):
        alone = estimate_mi(x, y, seed=seed, **QUICK)
        np.testing.assert_allclose(result.heldout_batches, alone.heldout_batches, atol=1e-5)
        assert result.best_step == alone.best_step and result.settings == alone.settings
    # Different seeds and sets give different estimates: nothing is shared by mistake.
    assert len({round(r.estimate, 6) for r in together}) == 3


def test_sets_of_different_shapes_or_counts_are_refused():
    xs, ys = gaussian_sets(2)
    with pytest.raises(ValueError, match="the same shapes"):
        estimate_mi_seeds([xs[0], xs[1][:400]], [ys[0], ys[1][:400]], seeds=[0, 1])
    with pytest.raises(ValueError, match="one entry per sample set"):
        estimate_mi_seeds(xs, ys, seeds=[0])


def test_pointwise_estimates_average_to_the_infonce_estimate_on_held_out_rows():
    (x,), (y,) = gaussian_sets(1)
    result = estimate_mi(x, y, pointwise=True, **QUICK)
    assert result.pointwise.shape == result.pointwise_rows.shape == (result.num_heldout,)
    # InfoNCE's per-pair reading averages, batch by batch, to the bound on the batch.
    np.testing.assert_allclose(np.mean(result.pointwise), result.estimate, atol=1e-5)
    rows = result.pointwise_rows
    assert len(set(rows.tolist())) == len(rows) and rows.min() >= 0 and rows.max() < len(x)
    assert estimate_mi(x, y, **QUICK).pointwise is None


def test_normal_scores_make_the_estimate_invariant_to_increasing_maps_of_each_coordinate():
    (x,), (y,) = gaussian_sets(1)
    plain = estimate_mi(x, y, ranks=True, **QUICK)
    warped = estimate_mi(np.exp(x), y**3 + y, ranks=True, **QUICK)
    np.testing.assert_allclose(warped.heldout_batches, plain.heldout_batches, atol=1e-5)
    # Without ranks the same maps do change the estimate.
    assert abs(estimate_mi(np.exp(x), y**3 + y, **QUICK).estimate - plain.estimate) > 1e-3


@pytest.mark.slow
def test_a_default_batch_doubles_near_the_log_batch_ceiling_and_a_given_one_never_does():
    (x,), (y,) = gaussian_sets(1, num_samples=2048, dim=3, noise=0.01)
    grown = estimate_mi(x, y, **QUICK)
    assert grown.settings.batch_size > 128
    assert grown.estimate > np.log(128) - 1.0
    assert estimate_mi(x, y, batch_size=128, **QUICK).settings.batch_size == 128


@pytest.mark.slow
def test_a_diverged_set_is_returned_as_its_error_or_raised():
    xs, ys = gaussian_sets(2)
    # QUICK's one ReLU layer diverges at this rate (a deeper critic's units can die instead).
    wild = {"learning_rate": 1e6, **QUICK}
    returned = estimate_mi_seeds(xs, ys, seeds=[0, 1], errors="return", **wild)
    assert all(isinstance(r, DivergedEstimateError) for r in returned)
    with pytest.raises(DivergedEstimateError, match="learning_rate"):
        estimate_mi_seeds(xs, ys, seeds=[0, 1], **wild)
