"""A user's own network plugs in: Flax NNX, Equinox and plain-function critics with the same
weights as a Linen critic give the same scores (dense, row-blocked, tiled) and the same
``estimate_mi``; the adapters refuse what is not a network."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers import fast_first

from factorcl_jax import bounds, critics, networks
from factorcl_jax.estimate import estimate_mi

DX, DY, HIDDEN = 3, 2, 16
TOLERANCE = dict(rtol=2e-5, atol=2e-6)


def linen_reference(seed=0):
    """The library's one-layer concat critic and its parameters."""
    critic = critics.ConcatCritic(hidden=(HIDDEN,))
    params = jax.jit(critic.init)(jax.random.key(seed), jnp.ones((1, DX)), jnp.ones((1, DY)))
    return critic, params


def weights(params):
    """``(A, B, b, w, c)``: ``f(x, y) = w . relu(A x + B y + b) + c``."""
    p = params["params"]
    return (
        p["x_projection"]["kernel"],
        p["y_projection"]["kernel"],
        p["y_projection"]["bias"],
        p["head"]["dense_0"]["kernel"][:, 0],
        p["head"]["dense_0"]["bias"][0],
    )


class NnxConcat(nnx.Module):
    """The same critic written with Flax NNX."""

    def __init__(self, rngs):
        self.x_projection = nnx.Linear(DX, HIDDEN, use_bias=False, rngs=rngs)
        self.y_projection = nnx.Linear(DY, HIDDEN, rngs=rngs)
        self.head = nnx.Linear(HIDDEN, 1, rngs=rngs)

    def embed_x(self, x):
        return self.x_projection(x)

    def embed_y(self, y):
        return self.y_projection(y)

    def pair(self, u, v):
        return self.head(jax.nn.relu(u[:, None, :] + v[None, :, :]))[..., 0]


def nnx_critic(params):
    a, b, bias, w, c = weights(params)
    module = NnxConcat(nnx.Rngs(0))
    module.x_projection.kernel[...] = a
    module.y_projection.kernel[...] = b
    module.y_projection.bias[...] = bias
    module.head.kernel[...] = w[:, None]
    module.head.bias[...] = c[None]
    return module


class EquinoxConcat(eqx.Module):
    """The same critic written with Equinox."""

    a: jax.Array
    b: jax.Array
    bias: jax.Array
    w: jax.Array
    c: jax.Array

    def embed_x(self, x):
        return x @ self.a

    def embed_y(self, y):
        return y @ self.b + self.bias[None, :]

    def pair(self, u, v):
        return jax.nn.relu(u[:, None, :] + v[None, :, :]) @ self.w + self.c


def function_critic(fixed):
    """Two matrices and a ReLU head as plain functions; ``init`` returns ``fixed``."""
    return networks.FunctionCritic(
        init=lambda key, x, y: fixed,
        embed_x=lambda p, x: x @ p[0],
        embed_y=lambda p, y: y @ p[1] + p[2][None, :],
        pair=lambda p, u, v: jax.nn.relu(u[:, None, :] + v[None, :, :]) @ p[3] + p[4],
    )


def every_form(params):
    return {
        "nnx": nnx_critic(params),
        "equinox": EquinoxConcat(*weights(params)),
        "functions": function_critic(weights(params)),
    }


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(10, DX)), jnp.float32)
    y = jnp.asarray(rng.normal(size=(13, DY)), jnp.float32)
    return x, y


@pytest.mark.parametrize("form", fast_first(["nnx", "equinox", "functions"]))
def test_a_users_critic_with_the_same_weights_scores_like_the_linen_one(form, problem):
    x, y = problem
    linen, params = linen_reference()
    critic = every_form(params)[form]
    own = networks.as_critic(critic).init(jax.random.key(9), x, y)

    def dense_infonce(x):
        return bounds.infonce(critics.pairwise_scores(linen, params, x, y), offset=2)

    def tiled_infonce(x):
        return critics.tiled_bound(
            "infonce", critic, own, x, y, block_rows=4, block_cols=5, offset=2
        )

    @jax.jit  # one compiled program: the user's network under jit, as a step runs it
    def both(x):
        dense = critics.pairwise_scores(linen, params, x, y)
        theirs = critics.pairwise_scores(critic, own, x, y)
        blocked = critics.pairwise_scores(critic, own, x, y, block_size=3)
        tiled = jax.value_and_grad(tiled_infonce)(x)
        return dense, theirs, blocked, jax.value_and_grad(dense_infonce)(x), tiled

    dense, theirs, blocked, expected, actual = both(x)
    np.testing.assert_allclose(theirs, dense, **TOLERANCE)
    np.testing.assert_allclose(blocked, dense, **TOLERANCE)
    np.testing.assert_allclose(actual[0], expected[0], **TOLERANCE)
    np.testing.assert_allclose(actual[1], expected[1], **TOLERANCE)


@pytest.mark.parametrize("form", fast_first(["nnx", "equinox"]))
def test_gradients_through_a_users_critic_equal_the_linen_ones(form, problem):
    x, y = problem
    linen, params = linen_reference()
    critic = networks.as_critic(every_form(params)[form])
    own = critic.init(jax.random.key(9), x, y)
    linen_grad = jax.grad(lambda x: bounds.nce_club(critics.pairwise_scores(linen, params, x, y)))
    own_grad = jax.grad(lambda x: bounds.nce_club(critics.pairwise_scores(critic, own, x, y)))
    np.testing.assert_allclose(own_grad(x), linen_grad(x), **TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["nnx", "equinox", "functions"])
def test_estimate_mi_with_a_users_critic_equals_the_linen_critic(form):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, DX))
    y = np.concatenate([x[:, :1], x[:, 1:2]], axis=1) + 0.7 * rng.normal(size=(600, DY))
    _, params = linen_reference(seed=4)
    settings = dict(seed=3, max_steps=200, eval_every=100, batch_size=64)
    linen = networks.as_critic(critics.ConcatCritic(hidden=(HIDDEN,)))
    fixed_linen = networks.FunctionCritic(
        init=lambda key, x, y: params,
        embed_x=linen.embed_x,
        embed_y=linen.embed_y,
        pair=linen.pair,
    )
    expected = estimate_mi(x, y, critic=fixed_linen, **settings)
    actual = estimate_mi(x, y, critic=every_form(params)[form], **settings)
    np.testing.assert_allclose(actual.heldout_batches, expected.heldout_batches, rtol=1e-4)
    assert actual.best_step == expected.best_step
    assert actual.estimate > 0.2  # the critic learned something


def test_a_plain_function_critic_trains_through_estimate_mi():
    """Two matrices and a ReLU head, initialised from the key: the estimate is the
    held-out InfoNCE of a trained critic, well above zero on dependent data."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(800, 2))
    y = x + 0.5 * rng.normal(size=(800, 2))

    def init(key, x, y):
        ka, kb, kw = jax.random.split(key, 3)
        return {
            "a": jax.random.normal(ka, (x.shape[1], 32)) / np.sqrt(x.shape[1]),
            "b": jax.random.normal(kb, (y.shape[1], 32)) / np.sqrt(y.shape[1]),
            "w": jax.random.normal(kw, (32,)) / np.sqrt(32),
        }

    critic = networks.FunctionCritic(
        init=init,
        embed_x=lambda p, x: x @ p["a"],
        embed_y=lambda p, y: y @ p["b"],
        pair=lambda p, u, v: jax.nn.relu(u[:, None, :] + v[None, :, :]) @ p["w"],
    )
    result = estimate_mi(x, y, critic=critic, max_steps=300, eval_every=100)
    assert result.critic == "FunctionCritic"
    assert set(result.params) == {"a", "b", "w"}
    assert 0.5 < result.estimate < 2.0  # true MI 2 * log(sqrt(5)) = 1.61 nats


def test_an_nnx_factory_draws_new_parameters_from_each_key():
    critic = networks.NnxCritic(lambda rngs: NnxConcat(rngs))
    first = critic.init(jax.random.key(0), None, None)
    again = critic.init(jax.random.key(0), None, None)
    other = critic.init(jax.random.key(1), None, None)
    leaf = lambda state: np.concatenate([np.ravel(v) for v in jax.tree.leaves(state)])
    np.testing.assert_array_equal(leaf(first), leaf(again))
    assert not np.array_equal(leaf(first), leaf(other))


def test_what_is_not_a_network_is_refused_by_name():
    with pytest.raises(TypeError, match=r"a critic must be .* got int"):
        networks.as_critic(3)
    with pytest.raises(TypeError, match="init, apply"):
        networks.as_encoder(object())
    linen = critics.ConcatCritic(hidden=(4,))
    assert networks.as_critic(networks.as_critic(linen)) == networks.as_critic(linen)
    assert isinstance(networks.as_critic(linen), networks.Critic)


# ------------------------------------------------------------------ a FactorCL step with NNX


class NnxMLPEncoder(nnx.Module):
    """``d -> hidden -> out`` with ReLU, like the library's one-layer ``MLPEncoder``."""

    def __init__(self, d, hidden, out, rngs):
        self.dense_0 = nnx.Linear(d, hidden, rngs=rngs)
        self.dense_1 = nnx.Linear(hidden, out, rngs=rngs)

    def __call__(self, x):
        return self.dense_1(jax.nn.relu(self.dense_0(x)))


class NnxConcatCritic(nnx.Module):
    """``MLP([x; y])`` with two hidden layers as towers and a pair head, like ConcatCritic."""

    def __init__(self, dx, dy, hidden, rngs):
        self.x_projection = nnx.Linear(dx, hidden, use_bias=False, rngs=rngs)
        self.y_projection = nnx.Linear(dy, hidden, rngs=rngs)
        self.dense_0 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.dense_1 = nnx.Linear(hidden, 1, rngs=rngs)

    def embed_x(self, x):
        return self.x_projection(x)

    def embed_y(self, y):
        return self.y_projection(y)

    def pair(self, u, v):
        h = jax.nn.relu(u[:, None, :] + v[None, :, :])
        return self.dense_1(jax.nn.relu(self.dense_0(h)))[..., 0]


def nnx_state_of(module, assignments):
    """The ``nnx.Param`` state of ``module`` after ``layer.attribute[...] = value``."""
    for (layer, attribute), value in assignments.items():
        getattr(getattr(module, layer), attribute)[...] = value
    return nnx.split(module, nnx.Param, ...)[1]


def nnx_encoder_params(linen):
    p = linen["params"]["MLP_0"]
    module = NnxMLPEncoder(*p["dense_0"]["kernel"].shape, p["dense_1"]["kernel"].shape[1],
                           nnx.Rngs(0))  # fmt: skip
    return nnx_state_of(
        module,
        {(f"dense_{i}", k): p[f"dense_{i}"][k] for i in (0, 1) for k in ("kernel", "bias")},
    )


def nnx_critic_params(linen):
    p = linen["params"]
    dx, hidden = p["x_projection"]["kernel"].shape
    module = NnxConcatCritic(dx, p["y_projection"]["kernel"].shape[0], hidden, nnx.Rngs(0))
    head = p["head"]
    assignments = {
        ("x_projection", "kernel"): p["x_projection"]["kernel"],
        ("y_projection", "kernel"): p["y_projection"]["kernel"],
        ("y_projection", "bias"): p["y_projection"]["bias"],
    }
    for i in (0, 1):
        for k in ("kernel", "bias"):
            assignments[(f"dense_{i}", k)] = head[f"dense_{i}"][k]
    return nnx_state_of(module, assignments)


@pytest.mark.slow
def test_a_factorcl_ssl_step_with_nnx_encoders_and_critics_equals_the_linen_step():
    """The same weights in NNX modules give the same jitted FactorCL-SSL step: every term,
    the loss, and every updated parameter (encoders, heads, critics, CLUB critics)."""
    import dataclasses

    from helpers import tiny_trainer

    from factorcl_jax.models import MultimodalModel

    rng = np.random.default_rng(0)
    batch = {
        "x1": rng.normal(size=(16, 6)).astype(np.float32),
        "x2": rng.normal(size=(16, 5)).astype(np.float32),
        "y": rng.integers(0, 2, 16).astype(np.int32),
    }
    linen = tiny_trainer("FactorCL-SSL")
    model = linen.model
    encoders = (
        networks.NnxEncoder(NnxMLPEncoder(6, 32, 8, nnx.Rngs(1))),
        networks.NnxEncoder(NnxMLPEncoder(5, 32, 8, nnx.Rngs(2))),
    )
    nnx_model = MultimodalModel(
        encoders,
        model.representations,
        head_hidden=model.head_hidden,
        embed_dim=model.embed_dim,
        normalize_heads=model.normalize_heads,
    )
    nnx_trainer = dataclasses.replace(
        linen, model=nnx_model, critic=networks.NnxCritic(NnxConcatCritic(8, 8, 32, nnx.Rngs(3)))
    )
    state = linen.init(jax.random.key(0), batch)
    params = {
        "model": {
            "encoders": [nnx_encoder_params(p) for p in state.params["model"]["encoders"]],
            "heads": state.params["model"]["heads"],
        },
        "critics": {k: nnx_critic_params(p) for k, p in state.params["critics"].items()},
    }
    club = {k: nnx_critic_params(p) for k, p in state.club_params.items()}
    nnx_state = state.replace(
        params=params,
        club_params=club,
        opt_state=nnx_trainer.optimizer.init(params),
        club_opt_state=nnx_trainer.club_optimizer.init(club),
    )
    nnx_state = jax.tree.map(jnp.copy, nnx_state)  # the steps donate their states
    after, measured = linen.jit_step(state, batch)
    nnx_after, nnx_measured = nnx_trainer.jit_step(nnx_state, batch)
    for key, value in measured.items():
        np.testing.assert_allclose(nnx_measured[key], value, rtol=2e-4, atol=2e-5, err_msg=key)
    np.testing.assert_allclose(
        nnx_after.params["model"]["heads"]["S1"]["params"]["dense_0"]["kernel"],
        after.params["model"]["heads"]["S1"]["params"]["dense_0"]["kernel"],
        rtol=2e-4,
        atol=2e-6,
    )
    expected_encoder = nnx_encoder_params(after.params["model"]["encoders"][0])
    np.testing.assert_allclose(
        nnx_after.params["model"]["encoders"][0]["dense_0"]["kernel"][...],
        expected_encoder["dense_0"]["kernel"][...],
        rtol=2e-4,
        atol=2e-6,
    )
    for name, p in after.club_params.items():
        expected_critic = nnx_critic_params(p)
        np.testing.assert_allclose(
            nnx_after.club_params[name]["dense_0"]["kernel"][...],
            expected_critic["dense_0"]["kernel"][...],
            rtol=2e-4,
            atol=2e-6,
        )
    assert float(measured["grad_norm"]) > 0
