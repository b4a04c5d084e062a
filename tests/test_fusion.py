"""Fused methods: CoMM and InfMasking terms against NumPy, gradients, masking, the trainer."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import TINY, evaluate_on_scores, fast_first, tiny_trainer
from test_parallel import assert_same_step, exact_trainer, mapped_step, single_device_step
from test_train import tiny_data

from factorcl_jax import bounds, critics, models
from factorcl_jax.models import fusion
from factorcl_jax.objectives import METHODS, FusedView, Method, Term, Views
from factorcl_jax.training import views

TEMPERATURE = 0.1

# ---------------------------------------------------------------- NumPy references (float64)


def ref_cosine_scores(x, y, temperature=TEMPERATURE):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return np.array([[x[i] @ y[j] / temperature for j in range(len(y))] for i in range(len(x))])


def ref_infonce(scores):
    n = scores.shape[0]
    return np.mean([scores[i, i] - np.log(np.mean(np.exp(scores[i]))) for i in range(n)])


def ref_infmasking(scores, draws, variance_scale):
    n, m = scores.shape
    total = 0.0
    for i in range(n):
        positive_columns = [t * n + i for t in range(draws)]
        positives = np.array([scores[i, j] for j in positive_columns])
        mean = positives.mean()
        variance = np.mean((positives - mean) ** 2)
        negatives = [scores[i, j] for j in range(m) if j not in positive_columns]
        total += mean - np.log(
            np.exp(mean + variance_scale * variance / 2) + np.sum(np.exp(negatives))
        )
    return math.log(m - draws + 1) + total / n


def random_views(method, n=5, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        name: rng.normal(size=(view.draws * n, dim)).astype(np.float32)
        for name, view in method.fused_views.items()
    }


def cosine_score(term, left, right):
    return critics.CosineCritic(TEMPERATURE).apply({}, left, right)


# ---------------------------------------------------------------- the bound and the critic


def test_cosine_critic_matches_numpy_and_has_no_parameters():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 3)), rng.normal(size=(6, 3))
    critic = critics.CosineCritic(TEMPERATURE)
    assert critic.init(jax.random.key(0), jnp.asarray(x), jnp.asarray(y)) == {}
    np.testing.assert_allclose(
        critic.apply({}, jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)),
        ref_cosine_scores(x, y),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="`temperature` must be > 0"):
        critics.CosineCritic(0.0).apply({}, jnp.ones((2, 2)), jnp.ones((2, 2)))


@pytest.mark.parametrize(
    ("n", "draws", "extra", "variance_scale"),
    fast_first([(4, 3, 0, 1.0), (3, 2, 5, 0.5)], unpack=True),
)
def test_infmasking_matches_numpy(n, draws, extra, variance_scale):
    # ``extra`` columns stand for other devices' columns under data parallelism.
    scores = np.random.default_rng(2).normal(size=(n, draws * n + extra)) * 3
    value = bounds.infmasking(
        jnp.asarray(scores, jnp.float32), draws=draws, variance_scale=variance_scale
    )
    np.testing.assert_allclose(value, ref_infmasking(scores, draws, variance_scale), rtol=1e-5)


def test_infmasking_is_infonce_for_one_draw_without_variance_and_grows_with_variance():
    scores = jax.random.normal(jax.random.key(3), (5, 5)) * 2
    np.testing.assert_allclose(
        bounds.infmasking(scores, draws=1, variance_scale=0.0),
        ref_infonce(np.asarray(scores, np.float64)),
        rtol=1e-5,
    )
    masked = jax.random.normal(jax.random.key(4), (4, 12)) * 2
    # The variance enters only the normaliser: a larger lambda lowers the bound.
    values = [float(bounds.infmasking(masked, draws=3, variance_scale=s)) for s in (0, 1, 4)]
    assert values[0] > values[1] > values[2]


def numeric_gradient(fn, x, eps=1e-5):
    """Central finite differences of a float64 NumPy function."""
    grad = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (fn(up) - fn(down)) / (2 * eps)
    return grad


@pytest.mark.slow
def test_infmasking_gradient_matches_finite_differences_and_is_jit_and_vmap_safe():
    scores = np.random.default_rng(5).normal(size=(3, 10))

    def bound(s):
        return bounds.infmasking(s, draws=3, variance_scale=1.0)

    grad = jax.grad(bound)(jnp.asarray(scores, jnp.float32))
    numeric = numeric_gradient(lambda s: ref_infmasking(s, 3, 1.0), scores)
    np.testing.assert_allclose(grad, numeric, atol=1e-4)
    stacked = jnp.asarray(np.stack([scores, 2 * scores]), jnp.float32)
    np.testing.assert_allclose(
        jax.vmap(jax.jit(bound))(stacked), [bound(s) for s in stacked], rtol=1e-6
    )
    assert np.isfinite(bound(1e4 * stacked[0]))
    assert np.isfinite(jax.grad(bound)(1e4 * stacked[0])).all()


@pytest.mark.parametrize(
    ("kwargs", "shape", "match"),
    [
        ({"draws": 0}, (2, 4), "`draws` must be an int >= 1"),
        ({"draws": 2, "variance_scale": -1.0}, (2, 4), "`variance_scale` must be >= 0"),
        ({"draws": 3}, (2, 4), "at least draws \\* n = 6"),
        ({"draws": 1}, (1, 1), "one negative"),
    ],
)
def test_infmasking_errors_name_the_argument(kwargs, shape, match):
    with pytest.raises(ValueError, match=match):
        bounds.infmasking(jnp.zeros(shape), **kwargs)


# ---------------------------------------------------------------- the methods' terms


def test_comm_terms_equal_the_papers_symmetrised_sum():
    method = METHODS["CoMM"]
    reps = random_views(method)
    loss, values = evaluate_on_scores(method, Views(reps), cosine_score)
    infonce = lambda a, b: ref_infonce(ref_cosine_scores(reps[a], reps[b]))
    expected = {
        "fused/infonce": infonce("Z'", "Z''"),
        "fused/infonce_swapped": infonce("Z''", "Z'"),
        "modality1/infonce": infonce("Z'_1", "Z''"),
        "modality1/infonce_swapped": infonce("Z''_1", "Z'"),
        "modality2/infonce": infonce("Z'_2", "Z''"),
        "modality2/infonce_swapped": infonce("Z''_2", "Z'"),
    }
    assert set(values) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(values[name], value, rtol=1e-5, err_msg=name)
    # I(Z'; Z'') + sum_i I(Z_i; Z'), each term the mean of its two directions.
    paper = sum(
        (expected[f"{term}/infonce"] + expected[f"{term}/infonce_swapped"]) / 2
        for term in ("fused", "modality1", "modality2")
    )
    np.testing.assert_allclose(-loss, paper, rtol=1e-5)


def test_infmasking_terms_add_the_masked_alignment_to_comm():
    method = METHODS["InfMasking"]
    draws = method.fused_views["Z'_masked"].draws
    assert draws == 6 and method.fused_views["Z'_masked"].mask_ratio == 0.7
    reps = random_views(method)
    loss, values = evaluate_on_scores(method, Views(reps), cosine_score)
    masked = {
        "masked/infmasking": ref_infmasking(ref_cosine_scores(reps["Z'"], reps["Z'_masked"]), 6, 1),
        "masked/infmasking_swapped": ref_infmasking(
            ref_cosine_scores(reps["Z''"], reps["Z''_masked"]), 6, 1
        ),
    }
    for name, value in masked.items():
        np.testing.assert_allclose(values[name], value, rtol=1e-5, err_msg=name)
    _, comm_values = evaluate_on_scores(METHODS["CoMM"], Views(reps), cosine_score)
    comm = sum(0.5 * value for value in comm_values.values())
    np.testing.assert_allclose(-loss, comm + sum(masked.values()), rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CoMM", "InfMasking"])
def test_objective_gradients_match_finite_differences_of_numpy(name):
    method, n, dim = METHODS[name], 3, 2
    reps = random_views(method, n=n, dim=dim, seed=6)
    names = list(reps)
    flat = np.concatenate([reps[k].ravel() for k in names]).astype(np.float64)

    def unflatten(flat):
        sizes = [reps[k].size for k in names]
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return {k: p.reshape(reps[k].shape) for k, p in zip(names, parts, strict=True)}

    def ref_objective(flat):
        r = unflatten(flat)
        total = 0.0
        for term in method.terms:
            scores = ref_cosine_scores(r[term.left], r[term.right])
            if term.bound == "infmasking":
                draws = method.fused_views[term.right].draws
                total += term.weight * ref_infmasking(scores, draws, 1.0)
            else:
                total += term.weight * ref_infonce(scores)
        return total

    def loss(reps):
        return evaluate_on_scores(method, Views(reps), cosine_score)[0]

    grads = jax.grad(loss)({k: jnp.asarray(v) for k, v in reps.items()})
    grad = np.concatenate([np.asarray(grads[k]).ravel() for k in names])
    np.testing.assert_allclose(-grad, numeric_gradient(ref_objective, flat), atol=2e-3)
    assert np.abs(grad).max() > 1e-2


# ---------------------------------------------------------------- the model and its masks


def tiny_model(**kwargs):
    encoders = (models.MLPEncoder(16, 8, 1), models.MLPEncoder(16, 8, 1))
    return fusion.FusionModel(encoders, width=8, num_heads=2, head_hidden=16, embed_dim=4, **kwargs)


def inputs(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [
        jnp.asarray(rng.normal(size=(n, 5)), jnp.float32),
        jnp.asarray(rng.normal(size=(n, 6)), jnp.float32),
    ]


@pytest.mark.slow
def test_a_masked_out_modality_cannot_change_the_fused_output():
    model, x = tiny_model(), inputs()
    params = model.init(jax.random.key(0), x)
    declared = {
        "only1": FusedView(None, (0,)),
        "only2": FusedView(None, (1,)),
        "all": FusedView(None),
    }

    def fused(x1, x2, name):
        representations = views.view_representations(
            model, params, {None: [x1, x2]}, None, declared, {}
        )
        return representations[name]

    for name, dead, live in (("only1", 1, 0), ("only2", 0, 1)):
        jacobians = jax.jacrev(fused, argnums=(0, 1))(*x, name)
        assert not np.any(np.asarray(jacobians[dead])), name  # exactly zero
        assert np.abs(np.asarray(jacobians[live])).max() > 1e-4, name
    full = jax.jacrev(fused, argnums=(0, 1))(*x, "all")
    assert all(np.abs(np.asarray(j)).max() > 1e-4 for j in full)
    # Changing the masked-out modality leaves the output unchanged, bit for bit.
    np.testing.assert_array_equal(fused(x[0], 7 * x[1], "only1"), fused(*x, "only1"))


@pytest.mark.slow
def test_random_token_masks_keep_the_same_number_of_tokens_per_modality():
    view = FusedView(0, mask_ratio=0.5, draws=3)
    noise = jax.random.uniform(jax.random.key(1), (4, 3, 2 * 6))
    attend, replace = views.token_masks(view, 4, 2, 6, noise)
    assert attend.shape == replace.shape == (12, 12) and bool(attend.all())
    kept = ~np.asarray(replace).reshape(12, 2, 6)
    np.testing.assert_array_equal(kept.sum(-1), 3)  # floor(6 * (1 - 0.5)) per modality
    # Rows t * n + i: different draws of one sample and different samples get other masks.
    rows = {tuple(row) for row in kept.reshape(12, 12)}
    assert len(rows) > 8
    only2 = views.token_masks(FusedView(0, (1,), mask_ratio=0.5), 4, 2, 6, noise[:, :1])
    np.testing.assert_array_equal(np.asarray(only2[0])[:, :6], False)
    np.testing.assert_array_equal(np.asarray(only2[1])[:, :6], False)  # not attended anyway
    assert np.asarray(only2[1])[:, 6:].sum(-1).tolist() == [3] * 4


@pytest.mark.slow
def test_randomly_masked_tokens_get_no_gradient():
    model, x = tiny_model(tokens_per_modality=4), inputs()
    params = model.init(jax.random.key(0), x)
    _, tokens = model.tokens(params, x)
    view = FusedView(0, mask_ratio=0.75, draws=1)
    _, replace = views.token_masks(view, 3, 2, 4, jax.random.uniform(jax.random.key(2), (3, 1, 8)))

    def projected(tokens):
        return model.fuse_and_project(params, tokens, None, replace)

    jacobian = np.asarray(jax.jacrev(projected)(tokens))  # [3, 4, 3, 8, 8]
    per_token = np.abs(jacobian).sum(axis=(0, 1, 4))  # [3 rows, 8 tokens]
    replaced = np.asarray(replace)
    assert np.all(per_token[replaced] == 0) and np.all(per_token[~replaced] > 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"augmentation": -1}, "`augmentation`"),
        ({"modalities": (0, -1)}, "`modalities`"),
        ({"modalities": ()}, "`modalities`"),
        ({"mask_ratio": 1.0}, "`mask_ratio`"),
        ({"draws": 0}, "`draws`"),
        ({"draws": 2}, "repeats one view"),
    ],
)
def test_fused_view_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedView(**kwargs)


def test_token_mask_errors():
    with pytest.raises(ValueError, match="keeps none"):
        views.token_masks(FusedView(mask_ratio=0.9), 2, 2, 4, jnp.zeros((2, 1, 8)))
    with pytest.raises(ValueError, match="needs `noise` of shape"):
        views.token_masks(FusedView(mask_ratio=0.5), 2, 2, 4, None)
    with pytest.raises(ValueError, match="sees modality 2"):
        views.token_masks(FusedView(modalities=(2,)), 2, 2, 4)


def test_fused_methods_must_read_declared_views():
    views = {"Z'": FusedView(0), "Z''": FusedView(1)}
    with pytest.raises(ValueError, match="must read declared fused views"):
        Method("bad", {}, (Term("t", "infonce", 1.0, "Z'", "Z3"),), False, views)
    with pytest.raises(ValueError, match="reads its views, not heads"):
        Method("bad", {"Z1": 0}, (Term("t", "infonce", 1.0, "Z'", "Z''"),), False, views)


# ---------------------------------------------------------------- the trainer


@pytest.mark.slow
def test_the_trainer_computes_the_declared_views_and_probes_the_fused_representation():
    data = tiny_data(16)
    trainer = tiny_trainer("InfMasking")
    state = trainer.init(jax.random.key(0), data)
    batch_views = trainer.views(state.params["model"], data, jax.random.key(1))
    shapes = {name: z.shape for name, z in batch_views.representations.items()}
    embed_dim = TINY.model.embed_dim
    assert shapes == {
        name: (view.draws * 16, embed_dim)
        for name, view in METHODS["InfMasking"].fused_views.items()
    }
    assert batch_views.augmented is None
    # Two augmentation draws: the same samples, different inputs to the fusion.
    fused = batch_views.representations
    assert not np.allclose(fused["Z'"], fused["Z''"])
    embedded = trainer.embed(state.params, data)
    assert embedded["factorized"].shape == (16, embed_dim)  # the fused width
    assert embedded["encoders"].shape == (16, 2 * embed_dim)


def test_a_fused_method_needs_a_fusion_model_and_augmentations():
    plain = tiny_trainer("SimCLR")
    with pytest.raises(ValueError, match=r"must be a FusionModel"):
        dataclasses.replace(plain, method=METHODS["CoMM"], model=models.MultimodalModel((), {}))
    with pytest.raises(ValueError, match="needs `augmentations`"):
        dataclasses.replace(tiny_trainer("CoMM"), augmentations=None)


@pytest.mark.slow
def test_a_fused_step_on_several_devices_equals_the_single_device_step():
    # Augmentations and random token masks are drawn for the global batch on every device.
    actual = mapped_step(exact_trainer("InfMasking"), "shard_map", 4)
    assert_same_step(actual, single_device_step("InfMasking"))
