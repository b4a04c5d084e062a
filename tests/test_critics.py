"""Critics: two-tower scores equal the explicit MLP on concatenated pairs; blocked = dense."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from factorcl_jax import bounds, critics
from factorcl_jax.critics import heads
from factorcl_jax.networks.layers import MLP


def explicit_concat_mlp(params, x, y, activation, output_activation=None):
    """The reference's critic: tile every pair [x_i; y_j] and run the MLP on it, in NumPy."""
    p = params["params"]
    first_kernel = np.concatenate([p["x_projection"]["kernel"], p["y_projection"]["kernel"]])
    first_bias = p["y_projection"]["bias"]
    head = p["head"]
    n, m = x.shape[0], y.shape[0]
    scores = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            h = activation(np.concatenate([x[i], y[j]]) @ first_kernel + first_bias)
            for k in range(len(head)):
                layer = head[f"dense_{k}"]
                h = h @ layer["kernel"] + layer["bias"]
                if k < len(head) - 1:
                    h = activation(h)
            scores[i, j] = h[0] if output_activation is None else output_activation(h[0])
    return scores


def make(critic, n=5, m=7, dx=3, dy=4, seed=0):
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n, dx))
    y = jax.random.normal(ky, (m, dy))
    return x, y, jax.jit(critic.init)(kp, x, y)  # one program, not an eager op per layer


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [(6,), (6, 5), (4, 3, 2)])
def test_concat_critic_equals_mlp_on_explicit_pairs(hidden):
    critic = critics.ConcatCritic(hidden=hidden)
    x, y, params = make(critic)
    relu = lambda t: np.maximum(t, 0)
    expected = explicit_concat_mlp(
        jax.tree.map(np.asarray, params), np.asarray(x), np.asarray(y), relu
    )
    np.testing.assert_allclose(
        critics.pairwise_scores(critic, params, x, y), expected, rtol=1e-5, atol=1e-5
    )


def test_concat_critic_output_and_hidden_activation():
    critic = critics.ConcatCritic(hidden=(5, 4), activation=nn.tanh, output_activation=nn.softplus)
    x, y, params = make(critic)
    softplus = lambda t: np.log1p(np.exp(t))
    expected = explicit_concat_mlp(
        jax.tree.map(np.asarray, params), np.asarray(x), np.asarray(y), np.tanh, softplus
    )
    scores = critics.pairwise_scores(critic, params, x, y)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(scores) > 0)


@pytest.mark.slow
def test_separable_critic_is_dot_product_of_towers():
    critic = critics.SeparableCritic(hidden=(8,), embed_dim=6)
    x, y, params = make(critic)
    g = critic.apply(params, x, method=critic.embed_x)
    h = critic.apply(params, y, method=critic.embed_y)
    assert g.shape == (5, 6) and h.shape == (7, 6)
    expected = np.einsum("ie,je->ij", np.asarray(g), np.asarray(h))
    np.testing.assert_allclose(
        critics.pairwise_scores(critic, params, x, y), expected, rtol=1e-5, atol=1e-5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "critic",
    [critics.ConcatCritic(hidden=(8, 8)), critics.SeparableCritic(hidden=(8,))],
    ids=["concat", "separable"],
)
@pytest.mark.parametrize("block_size", [1, 3, 4, 11, 64])
def test_blocked_equals_dense_values_and_gradients(critic, block_size):
    x, y, params = make(critic, n=11, m=11)

    def objective(params, x, y, block):
        scores = critics.pairwise_scores(critic, params, x, y, block_size=block)
        return bounds.infonce(scores) - bounds.nce_club(scores)

    dense = jax.value_and_grad(objective, argnums=(0, 1, 2))(params, x, y, None)
    blocked = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2)), static_argnums=3)(
        params, x, y, block_size
    )
    chex.assert_trees_all_close(blocked, dense, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_blocked_scoring_bounds_activation_memory():
    """The compiled blocked program needs far less temporary memory than the dense one."""
    critic = critics.ConcatCritic(hidden=(64, 64))
    x, y, params = make(critic, n=512, m=512, dx=8, dy=8)

    def temp_bytes(block):
        loss = lambda p: bounds.infonce(critics.pairwise_scores(critic, p, x, y, block_size=block))
        compiled = jax.jit(jax.grad(loss)).lower(params).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    one_dense_activation = 512 * 512 * 64 * 4
    one_block_activation = 32 * 512 * 64 * 4
    assert temp_bytes(None) > one_dense_activation
    assert temp_bytes(32) < 8 * one_block_activation


def test_gaussian_critic_outputs_mean_and_bounded_log_variance():
    critic = critics.GaussianCritic(hidden=(8,))
    x, y, params = make(critic, n=6, m=6)
    mean, log_variance = critic.apply(params, x, y)
    assert mean.shape == (6, 4) and log_variance.shape == (6, 4)
    assert np.all(np.abs(np.asarray(log_variance)) <= 1.0)


def test_pairwise_scores_validates_inputs():
    critic = critics.ConcatCritic(hidden=(4,))
    x, y, params = make(critic)
    with pytest.raises(ValueError, match="`x` must have shape"):
        critics.pairwise_scores(critic, params, x[0], y)
    with pytest.raises(TypeError, match="`y` must be a floating-point array"):
        critics.pairwise_scores(critic, params, x, jnp.ones((3, 4), jnp.int32))
    with pytest.raises(ValueError, match="`block_size`"):
        critics.pairwise_scores(critic, params, x, y, block_size=0)
    with pytest.raises(ValueError, match="`hidden`"):
        critics.ConcatCritic(hidden=()).init(jax.random.key(0), x, y)


def test_pair_sums_matches_broadcast_values_and_derivatives():
    ku, kv, kw = jax.random.split(jax.random.key(3), 3)
    u, v = jax.random.normal(ku, (5, 4)), jax.random.normal(kv, (7, 4))
    weights = jax.random.normal(kw, (35, 4))

    def broadcast(u, v):
        return (u[:, None] + v[None]).reshape(35, 4)

    def loss(pair_fn, u, v):
        return jnp.sum(weights * jnp.tanh(pair_fn(u, v)) ** 2)

    chex.assert_trees_all_close(critics.pair_sums(u, v), broadcast(u, v))
    for order in (jax.grad, lambda f, **kw: jax.grad(lambda *a: jnp.sum(jax.grad(f, **kw)(*a)[0]))):
        chex.assert_trees_all_close(
            order(lambda u, v: loss(critics.pair_sums, u, v), argnums=(0, 1))(u, v),
            order(lambda u, v: loss(broadcast, u, v), argnums=(0, 1))(u, v),
            rtol=1e-5,
            atol=1e-5,
        )
    batched = jax.vmap(critics.pair_sums)(jnp.stack([u, 2 * u]), jnp.stack([v, v]))
    chex.assert_trees_all_close(batched[1], broadcast(2 * u, v))


@pytest.mark.slow
@pytest.mark.parametrize("chunk", [None, 9 * 5 * 4])  # one chunk; rows in chunks of 4 (padded)
def test_relu_pair_head_matches_straightforward_values_and_gradients(chunk, monkeypatch):
    if chunk is not None:
        monkeypatch.setattr(heads, "PAIR_HEAD_CHUNK", chunk)
    ku, kv, kw, kg = jax.random.split(jax.random.key(4), 4)
    u, v = jax.random.normal(ku, (6, 9)), jax.random.normal(kv, (5, 9))
    w, bias = jax.random.normal(kw, (9,)), jnp.array(0.3)
    weights = jax.random.normal(kg, (6, 5))

    def straightforward(u, v, w, bias):
        return (jax.nn.relu(u[:, None] + v[None]) @ w) + bias

    def loss(head, *args):
        return jnp.sum(weights * jnp.tanh(head(*args)))

    args = (u, v, w, bias)
    chex.assert_trees_all_close(critics.relu_pair_head(*args), straightforward(*args), rtol=1e-5)
    grads = jax.grad(functools.partial(loss, critics.relu_pair_head), argnums=(0, 1, 2, 3))
    expected = jax.grad(functools.partial(loss, straightforward), argnums=(0, 1, 2, 3))
    chex.assert_trees_all_close(grads(*args), expected(*args), rtol=1e-5, atol=1e-6)
    # Under vmap (seeds or estimators batched in one program) each member equals its own run.
    stacked = jax.tree.map(lambda a: jnp.stack([a, 2 * a]), args)
    batched = jax.vmap(grads)(*stacked)
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[1], batched),
        expected(*(2 * a for a in args)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_one_layer_relu_concat_critic_keeps_the_mlp_parameters():
    """The fused head has the variables nn.Dense(1) would have: same names, shapes, values."""
    critic = critics.ConcatCritic(hidden=(8,))
    *_, params = make(critic)
    mlp = MLP((1,))
    expected = mlp.init(jax.random.key(0), jnp.ones((1, 8)))["params"]["dense_0"]
    head = params["params"]["head"]["dense_0"]
    assert jax.tree.map(jnp.shape, head) == jax.tree.map(jnp.shape, expected)
    assert not np.any(np.asarray(head["bias"]))


@pytest.mark.slow
@pytest.mark.parametrize(
    "critic",
    [critics.ConcatCritic(hidden=(64, 64)), critics.SeparableCritic(hidden=(16,), embed_dim=8)],
    ids=["concat", "separable"],
)
def test_init_with_a_real_batch_reads_one_row_and_column(critic):
    key = jax.random.key(0)
    score_all_pairs = lambda module, x, y: module.pair(module.embed_x(x), module.embed_y(y))

    def init_temp_bytes(n):
        x, y = jnp.ones((n, 3)), jnp.ones((n, 4))
        return jax.jit(critic.init).lower(key, x, y).compile().memory_analysis().temp_size_in_bytes

    assert init_temp_bytes(4096) == init_temp_bytes(8)
    x, y, _ = make(critic, n=9, m=6)
    chex.assert_trees_all_equal(
        critic.init(key, x, y), critic.init(key, x, y, method=score_all_pairs)
    )
