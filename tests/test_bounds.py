"""Bounds against slow, obvious NumPy references; properties; jit/vmap/grad; errors."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first

from factorcl_jax import bounds

# ---------------------------------------------------------------- NumPy references (float64)


def ref_pairs(scores, offset):
    n, m = scores.shape
    positives = np.array([scores[i, i + offset] for i in range(n)])
    negatives = [[scores[i, j] for j in range(m) if j != i + offset] for i in range(n)]
    return positives, np.array(negatives)


def ref_infonce(scores, offset=0):
    n = scores.shape[0]
    total = 0.0
    for i in range(n):
        total += scores[i, i + offset] - np.log(np.mean(np.exp(scores[i])))
    return total / n


def ref_nce_club(scores, offset=0):
    positives, _ = ref_pairs(scores, offset)
    return positives.mean() - scores.mean()


def ref_tuba(scores, offset=0, log_baseline=0.0):
    positives, negatives = ref_pairs(scores, offset)
    b = np.broadcast_to(np.asarray(log_baseline, dtype=np.float64), positives.shape)
    rows = [
        1 + positives[i] - b[i] - np.mean(np.exp(negatives[i] - b[i]))
        for i in range(len(positives))
    ]
    return np.mean(rows)


def ref_nwj(scores, offset=0):
    positives, negatives = ref_pairs(scores, offset)
    return positives.mean() - np.exp(-1) * np.exp(negatives).mean()


def ref_dv(scores, offset=0):
    positives, negatives = ref_pairs(scores, offset)
    return positives.mean() - np.log(np.exp(negatives).mean())


def ref_js_fgan(scores, offset=0):
    positives, negatives = ref_pairs(scores, offset)
    softplus = lambda t: np.log1p(np.exp(t))
    return -softplus(-positives).mean() - softplus(negatives).mean()


def ref_js_value(scores, offset=0):
    return ref_nwj(scores + 1.0, offset)


def ref_smile(scores, offset=0, clip=5.0):
    positives, negatives = ref_pairs(scores, offset)
    return positives.mean() - np.log(np.exp(np.clip(negatives, -clip, clip)).mean())


def ref_gaussian_log_density(mean, log_variance, y):
    """[n, m] matrix of log N(y_j; mean_i, exp(log_variance_i))."""
    n, m = mean.shape[0], y.shape[0]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            var = np.exp(log_variance[i])
            out[i, j] = np.sum(-0.5 * (y[j] - mean[i]) ** 2 / var - 0.5 * np.log(2 * np.pi * var))
    return out


REFERENCES = {
    "infonce": (bounds.infonce, ref_infonce),
    "nce_club": (bounds.nce_club, ref_nce_club),
    "nwj": (bounds.nwj, ref_nwj),
    "tuba": (bounds.tuba, ref_tuba),
    "dv": (bounds.dv, ref_dv),
    "js_fgan": (bounds.js_fgan, ref_js_fgan),
    "js": (bounds.js, ref_js_value),
    "smile": (bounds.smile, ref_smile),
    "mine": (lambda s, **kw: bounds.mine(s, bounds.mine_init(), **kw)[0], ref_dv),
}
ROW_DECOMPOSABLE = ["infonce", "nce_club", "nwj", "tuba", "js_fgan", "js"]
GLOBAL_LOG_MEAN_EXP = ["dv", "smile", "mine"]


def random_scores(seed, n, m, scale=2.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(n, m)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize(
    ("n", "m", "offset"), fast_first([(4, 9, 2), (5, 5, 0), (3, 8, 0), (3, 8, 5)], unpack=True)
)
def test_matches_numpy_reference(name, n, m, offset):
    fn, ref = REFERENCES[name]
    scores = random_scores(n * 100 + m + offset, n, m)
    got = fn(jnp.asarray(scores), offset=offset)
    np.testing.assert_allclose(got, ref(scores.astype(np.float64), offset), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", fast_first(sorted(REFERENCES)))
def test_jit_and_vmap_agree_with_eager(name):
    fn, _ = REFERENCES[name]
    batch = jnp.asarray(np.stack([random_scores(k, 4, 6) for k in range(3)]))
    eager = jnp.stack([fn(s, offset=1) for s in batch])
    chex.assert_trees_all_close(jax.jit(lambda s: fn(s, offset=1))(batch[0]), eager[0], rtol=1e-6)
    chex.assert_trees_all_close(jax.vmap(lambda s: fn(s, offset=1))(batch), eager, rtol=1e-6)


@pytest.mark.parametrize(
    "name", fast_first(["infonce", "nce_club", "nwj", "tuba", "dv", "js_fgan"])
)
def test_gradient_matches_finite_differences(name):
    fn, ref = REFERENCES[name]
    scores = random_scores(7, 4, 6, scale=1.0).astype(np.float64)
    grad = np.asarray(jax.grad(lambda s: fn(s, offset=1))(jnp.asarray(scores, jnp.float32)))
    eps = 1e-5
    numeric = np.zeros_like(scores)
    for index in np.ndindex(*scores.shape):
        bumped = scores.copy()
        bumped[index] += eps
        lowered = scores.copy()
        lowered[index] -= eps
        numeric[index] = (ref(bumped, 1) - ref(lowered, 1)) / (2 * eps)
    np.testing.assert_allclose(grad, numeric, atol=1e-4)


@pytest.mark.slow
def test_surrogate_gradients_are_the_training_objectives():
    scores = jnp.asarray(random_scores(3, 5, 5))
    js_grad = jax.grad(bounds.js_fgan)(scores)
    chex.assert_trees_all_close(jax.grad(bounds.js)(scores), js_grad, atol=1e-6)
    chex.assert_trees_all_close(jax.grad(bounds.smile)(scores), js_grad, atol=1e-6)
    # MINE with an empty average starts it at the batch value: the gradient is then DV's.
    mine_grad = jax.grad(lambda s: bounds.mine(s, bounds.mine_init())[0])(scores)
    chex.assert_trees_all_close(mine_grad, jax.grad(bounds.dv)(scores), atol=1e-6)


def test_mine_moving_average_and_bias_corrected_gradient():
    scores = jnp.asarray(random_scores(4, 4, 4))
    state = bounds.MineState(jnp.asarray(3.0))
    value, new_state = bounds.mine(scores, state, decay=0.9)
    _, negatives = ref_pairs(np.asarray(scores, np.float64), 0)
    batch_mean = np.exp(negatives).mean()
    expected_average = 0.9 * np.exp(3.0) + 0.1 * batch_mean
    np.testing.assert_allclose(np.exp(new_state.log_moving_average), expected_average, rtol=1e-5)
    np.testing.assert_allclose(value, ref_dv(np.asarray(scores, np.float64)), rtol=1e-5)
    grad = jax.grad(lambda s: bounds.mine(s, state, decay=0.9)[0])(scores)
    # d/ds of mean(pos) - E_q[e^s] / a: positives get 1/n, negatives -e^s / (count * a).
    mask = np.eye(4, dtype=bool)
    expected = np.where(mask, 1 / 4, -np.exp(np.asarray(scores)) / (12 * expected_average))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)
    mine_jit = jax.jit(lambda s, st: bounds.mine(s, st))
    chex.assert_trees_all_close(mine_jit(scores, state), bounds.mine(scores, state), rtol=1e-6)


@pytest.mark.slow
def test_infonce_never_exceeds_log_m():
    for seed in range(20):
        scores = random_scores(seed, 6, 9, scale=5.0)
        assert float(bounds.infonce(jnp.asarray(scores), offset=seed % 4)) <= math.log(9) + 1e-6
    perfect = bounds.infonce(jnp.eye(8) * 1e4)
    np.testing.assert_allclose(perfect, math.log(8), rtol=1e-6)


@pytest.mark.parametrize("name", ROW_DECOMPOSABLE)
@pytest.mark.parametrize("parts", fast_first([4, 2]))
def test_sharded_offsets_average_to_full_value(name, parts):
    fn, _ = REFERENCES[name]
    scores = jnp.asarray(random_scores(11, 8, 8))
    rows = 8 // parts
    shares = [fn(scores[k * rows : (k + 1) * rows], offset=k * rows) for k in range(parts)]
    np.testing.assert_allclose(np.mean(shares), fn(scores), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", fast_first(sorted(REFERENCES)))
def test_mapped_shards_with_traced_offsets_equal_full_value(name):
    """Each shard of a mapped axis holds 2 rows; its offset is ``axis_index * 2`` (traced)."""
    fn, _ = REFERENCES[name]
    kwargs = {"axis_name": "shard"} if name in GLOBAL_LOG_MEAN_EXP else {}
    scores = jnp.asarray(random_scores(12, 8, 8, scale=3.0))
    parts, rows = 4, 2

    def share(block):
        offset = jax.lax.axis_index("shard") * rows
        return jax.lax.pmean(fn(block, offset=offset, **kwargs), "shard")

    per_shard = jax.vmap(share, axis_name="shard")(scores.reshape(parts, rows, 8))
    np.testing.assert_allclose(per_shard, np.full(parts, fn(scores)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["infonce", "nce_club", "dv", "smile", "js_fgan", "mine"])
@pytest.mark.parametrize("magnitude", fast_first([1e4, -1e4]))
def test_extreme_scores_give_finite_values_and_gradients(name, magnitude):
    fn, _ = REFERENCES[name]
    scores = jnp.asarray(random_scores(5, 6, 6, scale=1.0)) * magnitude
    value, grad = jax.value_and_grad(fn)(scores)
    assert np.isfinite(value), (name, value)
    assert np.all(np.isfinite(grad)), name


@pytest.mark.parametrize("name", ["nwj", "tuba", "js"])
def test_exponential_bounds_overflow_to_minus_inf_not_nan(name):
    fn, _ = REFERENCES[name]
    low = jnp.full((4, 4), -1e4)
    assert np.isfinite(fn(low))
    assert np.all(np.isfinite(jax.grad(fn)(low)))
    high = jnp.full((4, 4), 1e4).at[0, 1].set(2e4)
    assert float(fn(high)) == -np.inf


@pytest.mark.slow
def test_club_gaussian_is_nce_club_on_log_density_scores():
    rng = np.random.default_rng(0)
    mean, log_variance = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)) * 0.3
    y = rng.normal(size=(7, 4))
    density = ref_gaussian_log_density(mean, log_variance, y)
    args = [jnp.asarray(a, jnp.float32) for a in (mean, log_variance, y)]
    np.testing.assert_allclose(
        bounds.club_gaussian(*args, offset=2), ref_nce_club(density, 2), rtol=1e-5
    )
    positives, _ = ref_pairs(density, 2)
    np.testing.assert_allclose(
        bounds.gaussian_log_likelihood(*args, offset=2), positives.mean(), rtol=1e-5
    )
    assert np.all(np.isfinite(jax.grad(bounds.club_gaussian, argnums=(0, 1, 2))(*args)[0]))


@pytest.mark.parametrize(
    "fn",
    [
        bounds.infonce,
        bounds.nce_club,
        bounds.nwj,
        bounds.dv,
        bounds.js,
        bounds.smile,
        bounds.js_fgan,
    ],
)
def test_bad_inputs_name_the_argument(fn):
    with pytest.raises(ValueError, match=r"`scores`.*rank 2"):
        fn(jnp.zeros((4,)))
    with pytest.raises(ValueError, match=r"at least 2 columns"):
        fn(jnp.zeros((1, 1)))
    with pytest.raises(TypeError, match=r"`scores`.*floating"):
        fn(jnp.zeros((3, 3), dtype=jnp.int32))
    with pytest.raises(ValueError, match=r"`offset`.*\[0, 2\]"):
        fn(jnp.zeros((3, 5)), offset=3)
    with pytest.raises(ValueError, match=r"`offset`"):
        fn(jnp.zeros((3, 5)), offset=-1)
    with pytest.raises(TypeError, match=r"`scores` must be an array"):
        fn([[0.0, 1.0], [1.0, 0.0]])


def test_bad_gaussian_inputs_name_the_argument():
    z = jnp.zeros((3, 2))
    with pytest.raises(ValueError, match="`log_variance`"):
        bounds.club_gaussian(z, jnp.zeros((3, 3)), z)
    with pytest.raises(ValueError, match="`y` must have shape"):
        bounds.club_gaussian(z, z, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match="`mean`"):
        bounds.gaussian_log_likelihood(jnp.zeros(3), z, z)
    with pytest.raises(ValueError, match="`offset`"):
        bounds.club_gaussian(z, z, z, offset=1)
    with pytest.raises(ValueError, match="`log_baseline`"):
        bounds.tuba(jnp.zeros((3, 3)), log_baseline=jnp.zeros(4))
    with pytest.raises(ValueError, match="`clip`"):
        bounds.smile(jnp.zeros((3, 3)), clip=0.0)
    with pytest.raises(ValueError, match="`decay`"):
        bounds.mine(jnp.zeros((3, 3)), bounds.mine_init(), decay=1.0)


def _every_bound_of_an_offset():
    """``{name: f(scores, offset)}`` for every bound, on ``[4, 12]`` scores (offsets 0..8)."""
    labels = jnp.arange(12) % 3
    gaussian = jnp.asarray(random_scores(3, 4, 3, scale=0.5))
    y = jnp.asarray(random_scores(4, 12, 3))
    fns = {name: fn for name, (fn, _) in REFERENCES.items()}
    fns["supcon"] = lambda s, offset: bounds.supcon(s, labels[:4], labels, offset=offset)
    fns["gaussian_log_likelihood"] = lambda s, offset: bounds.gaussian_log_likelihood(
        s[:, :3], gaussian, y, offset=offset
    )
    fns["club_gaussian"] = lambda s, offset: bounds.club_gaussian(
        s[:, :3], gaussian, y, offset=offset
    )
    return fns


@pytest.mark.parametrize("name", sorted(_every_bound_of_an_offset()))
def test_a_traced_offset_out_of_range_gives_nan_never_a_wrong_number(name):
    # Under jit the offset has no value to check; out of [0, m - n] = [0, 8] the value and
    # the gradient are NaN (a negative index would otherwise wrap around, a slice clamp).
    fn = _every_bound_of_an_offset()[name]
    scores = jnp.asarray(random_scores(7, 4, 12))
    traced = jax.jit(jax.value_and_grad(lambda s, offset: fn(s, offset=offset)))
    for offset in (0, 3, 8):
        value, grad = traced(scores, jnp.int32(offset))
        np.testing.assert_allclose(value, fn(scores, offset=offset), rtol=1e-5, atol=1e-6)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), (name, offset)
    for offset in (-1, -4, 9, 11, 1000):
        value, grad = traced(scores, jnp.int32(offset))
        used = grad[:, :3] if "gaussian" in name else grad  # the Gaussians read 3 columns
        assert np.isnan(value), (name, offset, value)
        assert np.all(np.isnan(used)), (name, offset)
