"""Tiled bounds equal the dense bounds (values and gradients), on one device and on a ring."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from factorcl_jax import bounds, critics
from factorcl_jax.bounds.statistics import STATISTICS, class_statistics

CRITICS = {
    "concat": critics.ConcatCritic(hidden=(6, 5)),
    "separable": critics.SeparableCritic(hidden=(6,), embed_dim=4),
}
TOLERANCE = dict(rtol=1e-5, atol=1e-6)
# 7 rows against 11 columns, positives at [i, i + 2]: neither size divides the 3 x 4 tiles.
N, M, OFFSET = 7, 11, 2
ROW_LABELS = jnp.array([0, 1, 0, 2, 1, 1, 0])
COLUMN_LABELS = jnp.array([1, 2, 0, 1, 0, 2, 1, 1, 0, 2, 1])  # [OFFSET:OFFSET + N] = rows'


def make(critic, n=N, m=M, seed=0):
    kx, ky, kp = jax.random.split(jax.random.key(seed), 3)
    x = jax.random.normal(kx, (n, 3))
    y = jax.random.normal(ky, (m, 4))
    return x, y, jax.jit(critic.init)(kp, x, y)  # one program, not an eager op per layer


def dense_bound(name, scores, offset, **options):
    """The bound of :mod:`bounds` on a score matrix (MINE: its value, state dropped)."""
    if name == "supcon":
        return bounds.supcon(scores, ROW_LABELS, COLUMN_LABELS, offset=offset)
    if name == "mine":
        return bounds.mine(scores, bounds.mine_init(), offset=offset, **options)[0]
    return getattr(bounds, name)(scores, offset=offset, **options)


def tiled_value(name, critic, params, x, y, **kwargs):
    labels = dict(row_labels=ROW_LABELS, column_labels=COLUMN_LABELS) if name == "supcon" else {}
    if name == "mine":
        kwargs["state"] = bounds.mine_init()
    value = critics.tiled_bound(name, critic, params, x, y, **labels, **kwargs)
    return value[0] if name == "mine" else value


OPTIONS = {"tuba": {"log_baseline": 0.5}, "smile": {"clip": 1.0}}
TILED = [entry.name for entry in bounds.BOUNDS.values() if entry.tiled and not entry.gaussian]


def test_every_tiled_bound_equals_the_dense_bound_small_case():
    """Fast tier: every bound with a tiled form and both critic kinds, values and gradients,
    in one compiled program (3 x 4 tiles of a 7 x 11 problem, positives at offset 2)."""

    def both(params, x, y):
        out = {}
        for critic_name, critic in CRITICS.items():
            for name in TILED:
                options = OPTIONS.get(name, {})
                dense = lambda p, x, y, c=critic, n=name, o=options: dense_bound(
                    n, critics.pairwise_scores(c, p, x, y), OFFSET, **o
                )
                tiles = lambda p, x, y, c=critic, n=name, o=options: tiled_value(
                    n, c, p, x, y, block_rows=3, block_cols=4, offset=OFFSET, **o
                )
                grad = jax.value_and_grad
                out[critic_name, name] = (
                    grad(dense, argnums=(0, 1, 2))(params[critic_name], x, y),
                    grad(tiles, argnums=(0, 1, 2))(params[critic_name], x, y),
                )
        return out

    x, y, concat = make(CRITICS["concat"])
    separable = jax.jit(CRITICS["separable"].init)(jax.random.key(3), x, y)
    results = jax.jit(both)({"concat": concat, "separable": separable}, x, y)
    assert len(results) == 2 * len(TILED) == 20
    for key, (expected, actual) in results.items():
        assert jnp.isfinite(expected[0]), key
        chex.assert_trees_all_close(actual, expected, **TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("critic_name", list(CRITICS))
@pytest.mark.parametrize("name", TILED)
def test_tiled_bound_equals_the_dense_bound_and_its_gradients(name, critic_name):
    critic = CRITICS[critic_name]
    x, y, params = make(critic)
    options = OPTIONS.get(name, {})

    def dense(params, x, y):
        return dense_bound(name, critics.pairwise_scores(critic, params, x, y), OFFSET, **options)

    def tiles(params, x, y):
        return tiled_value(
            name, critic, params, x, y, block_rows=3, block_cols=4, offset=OFFSET, **options
        )

    expected = jax.value_and_grad(dense, argnums=(0, 1, 2))(params, x, y)
    actual = jax.jit(jax.value_and_grad(tiles, argnums=(0, 1, 2)))(params, x, y)
    assert jnp.isfinite(expected[0])
    chex.assert_trees_all_close(actual, expected, **TOLERANCE)


@pytest.mark.parametrize("blocks", fast_first([(7, 11), (None, None), (1, 1), (64, 2), (2, 64)]))
def test_any_tile_shape_gives_the_dense_value(blocks):
    critic = CRITICS["concat"]
    x, y, params = make(critic)
    expected = bounds.infonce(critics.pairwise_scores(critic, params, x, y), offset=OFFSET)
    block_rows, block_cols = blocks
    actual = critics.tiled_bound(
        bounds.infonce, critic, params, x, y, block_rows=block_rows, block_cols=block_cols,
        offset=OFFSET,
    )  # fmt: skip
    np.testing.assert_allclose(actual, expected, **TOLERANCE)


def test_mine_state_and_unclipped_smile_match_the_dense_bounds():
    critic = CRITICS["concat"]
    x, y, params = make(critic)
    scores = critics.pairwise_scores(critic, params, x, y)
    state = bounds.mine_init()
    for _ in range(2):  # the second call mixes the moving average
        expected, expected_state = bounds.mine(scores, state, decay=0.9)
        actual, state = critics.tiled_bound(
            "mine", critic, params, x, y, block_rows=2, block_cols=5, state=state, decay=0.9
        )
        np.testing.assert_allclose(actual, expected, **TOLERANCE)
        np.testing.assert_allclose(state.log_moving_average, expected_state.log_moving_average)
    unclipped = critics.tiled_bound("smile", critic, params, x, y, block_cols=5, clip=None)
    np.testing.assert_allclose(unclipped, bounds.smile(scores, clip=None), **TOLERANCE)


@pytest.mark.slow
def test_class_statistics_equal_the_statistics_of_one_hot_columns():
    critic = CRITICS["concat"]
    rows, _, _ = make(critic)
    labels = jnp.array([2, 0, 0, 1, 2, 0, 2, 0, 1, 0, 0])
    classes = jax.nn.one_hot(labels, 4)  # class 3 has no column
    params = critic.init(jax.random.key(1), rows, classes)
    row_labels = labels[OFFSET : OFFSET + N]
    names = ["positive", "sum", "logsumexp"]
    expected = critics.row_statistics(critic, params, rows, classes, names, offset=OFFSET)
    class_scores = critics.pairwise_scores(critic, params, rows, jnp.eye(4))
    counts = jnp.bincount(labels, length=4)
    actual = class_statistics(class_scores, row_labels, counts)
    chex.assert_trees_all_close(actual, expected, **TOLERANCE)


@pytest.mark.slow
def test_tiled_memory_grows_linearly_not_with_the_score_matrix():
    critic = critics.ConcatCritic(hidden=(64, 64))

    def temp_bytes(n):
        x, y = jnp.ones((n, 8)), jnp.ones((n, 8))
        params = critic.init(jax.random.key(0), x, y)
        loss = lambda p: critics.tiled_bound(
            "infonce", critic, p, x, y, block_rows=32, block_cols=32
        )
        compiled = jax.jit(jax.grad(loss)).lower(params).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(512), temp_bytes(2048)
    assert large < 2048 * 2048 * 4  # less than the float32 score matrix alone
    assert large < 4 * small  # 4x the rows: at most 4x the memory (N^2 would be 16x)


def test_counts_beyond_int32_stay_finite():
    # A batch of 2^16 on one device has n * (m - 1) > 2^31 negatives.
    n, m = 2**16, 2**16
    statistics = {name: jnp.zeros((n,)) for name in STATISTICS}
    for name in ("dv", "js_fgan", "smile"):
        value = bounds.BOUNDS[name].formula(statistics, m)
        assert jnp.isfinite(value), name


def test_bad_arguments_are_clear_errors():
    critic = CRITICS["concat"]
    x, y, params = make(critic)
    with pytest.raises(ValueError, match="`bound` must be one of"):
        critics.tiled_bound("club_gaussian", critic, params, x, y)
    with pytest.raises(ValueError, match="`bound` must be one of"):
        critics.tiled_bound(lambda s: s, critic, params, x, y)
    with pytest.raises(TypeError, match=r"infonce takes no option\(s\) \['clip'\]"):
        critics.tiled_bound("infonce", critic, params, x, y, clip=1.0)
    with pytest.raises(ValueError, match="`block_cols` must be a positive int"):
        critics.tiled_bound("infonce", critic, params, x, y, block_cols=0)
    with pytest.raises(ValueError, match=r"`offset` must be in \[0, m - n\] = \[0, 4\]"):
        critics.tiled_bound("infonce", critic, params, x, y, offset=5)
    with pytest.raises(ValueError, match="`row_labels`"):
        critics.tiled_bound("supcon", critic, params, x, y)
    with pytest.raises(ValueError, match=r"`column_labels` must be \[11\] integers"):
        critics.tiled_bound(
            "supcon", critic, params, x, y, row_labels=ROW_LABELS, column_labels=ROW_LABELS
        )
    with pytest.raises(ValueError, match="`ring=True` needs the `axis_name`"):
        critics.tiled_bound("infonce", critic, params, x, y, ring=True)
    with pytest.raises(ValueError, match="`x` must have shape"):
        critics.tiled_bound("infonce", critic, params, x[0], y)
    with pytest.raises(ValueError, match="`names`"):
        critics.row_statistics(critic, params, x, y, ["diagonal"])
    with pytest.raises(TypeError, match="mine needs `state`"):
        critics.tiled_bound("mine", critic, params, x, y)
    with pytest.raises(ValueError, match="`bound` must be one of"):
        critics.tiled_bound("infmasking", critic, params, x, y, draws=2)


def test_an_offset_of_any_integer_type_is_accepted_and_a_traced_one_out_of_range_is_nan():
    critic = CRITICS["concat"]
    x, y, params = make(critic)  # 7 x 11: offsets 0..4
    expected = bounds.infonce(critics.pairwise_scores(critic, params, x, y), offset=OFFSET)
    for offset in (np.int64(OFFSET), np.int8(OFFSET), jnp.int16(OFFSET), np.array(OFFSET)):
        actual = critics.tiled_bound("infonce", critic, params, x, y, block_cols=4, offset=offset)
        np.testing.assert_allclose(actual, expected, **TOLERANCE)
    traced = jax.jit(
        lambda offset: critics.tiled_bound(
            "infonce", critic, params, x, y, block_rows=3, block_cols=4, offset=offset
        )
    )
    np.testing.assert_allclose(traced(jnp.int32(OFFSET)), expected, **TOLERANCE)
    for offset in (-1, 5, 9):
        assert np.isnan(traced(jnp.int32(offset))), offset
    with pytest.raises(TypeError, match="`offset`"):
        critics.tiled_bound("infonce", critic, params, x, y, offset=True)


# --------------------------------------------------------------------------- the ring

RING_BOUNDS = ("infonce", "nce_club", "supcon", "dv")
LOCAL_ROWS = 5


def ring_value_and_grads(name, critic, params, x, y, labels, wrapper, num_devices):
    """The mean over devices of the ring bound and its gradients (params, x, y) on the global
    batch ``x, y`` split over ``num_devices``, with ``shard_map`` or ``pmap``."""

    def local(params, x, y, labels):
        options = dict(row_labels=labels, column_labels=labels) if name == "supcon" else {}
        return critics.tiled_bound(
            name, critic, params, x, y, block_rows=2, block_cols=3, axis_name="data",
            ring=True, **options,
        )  # fmt: skip

    devices = jax.devices()[:num_devices]
    if wrapper == "shard_map":
        mesh = jax.sharding.Mesh(np.asarray(devices), ("data",))
        mean = lambda *args: jax.lax.pmean(local(*args), "data")
        mapped = jax.shard_map(
            mean, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data")), out_specs=P()
        )
        put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
        args = (put(params, P()), put(x, P("data")), put(y, P("data")), put(labels, P("data")))
        return jax.jit(jax.value_and_grad(mapped, argnums=(0, 1, 2)))(*args)

    def per_device(params, x, y, labels):
        # Each device differentiates its own share; a column's gradient from every device's
        # rows comes home around the ring, so the mean's gradient is the share's over D.
        value, (dp, dx, dy) = jax.value_and_grad(local, argnums=(0, 1, 2))(params, x, y, labels)
        mean = lambda tree: jax.lax.pmean(tree, "data")
        return mean(value), (mean(dp), dx / num_devices, dy / num_devices)

    split = lambda a: a.reshape(num_devices, -1, *a.shape[1:])
    value, (dp, dx, dy) = jax.pmap(
        per_device, axis_name="data", in_axes=(None, 0, 0, 0), devices=devices
    )(params, split(x), split(y), split(labels))
    merge = lambda a: a.reshape(-1, *a.shape[2:])
    return value[0], (jax.tree.map(lambda a: a[0], dp), merge(dx), merge(dy))


@functools.cache
def global_problem(critic_name):
    x, y, params = make(CRITICS[critic_name], n=8 * LOCAL_ROWS, m=8 * LOCAL_ROWS, seed=3)
    return x, y, params, jnp.arange(8 * LOCAL_ROWS) % 3


def dense_reference(name, critic_name, num_devices):
    critic = CRITICS[critic_name]
    x, y, params, labels = global_problem(critic_name)
    rows = num_devices * LOCAL_ROWS

    def dense(params, x, y):
        scores = critics.pairwise_scores(critic, params, x, y)
        if name == "supcon":
            return bounds.supcon(scores, labels[:rows], labels[:rows])
        return getattr(bounds, name)(scores)

    return jax.value_and_grad(dense, argnums=(0, 1, 2))(params, x[:rows], y[:rows])


@pytest.mark.slow
@pytest.mark.parametrize("name", RING_BOUNDS)
@pytest.mark.parametrize(
    "wrapper, num_devices", [("shard_map", 1), ("shard_map", 2), ("shard_map", 4),
                             ("shard_map", 8), ("pmap", 8)],
)  # fmt: skip
def test_ring_over_devices_equals_the_dense_bound_of_the_global_batch(name, wrapper, num_devices):
    # dv pools its log-mean-exp over the devices too.
    x, y, params, labels = global_problem("concat")
    rows = num_devices * LOCAL_ROWS
    actual = ring_value_and_grads(
        name, CRITICS["concat"], params, x[:rows], y[:rows], labels[:rows], wrapper, num_devices
    )
    chex.assert_trees_all_close(actual, dense_reference(name, "concat", num_devices), **TOLERANCE)


@pytest.mark.slow
@pytest.mark.parametrize("wrapper", ["shard_map", "pmap"])
def test_ring_with_the_separable_critic(wrapper):
    x, y, params, labels = global_problem("separable")
    rows = 4 * LOCAL_ROWS
    actual = ring_value_and_grads(
        "infonce", CRITICS["separable"], params, x[:rows], y[:rows], labels[:rows], wrapper, 4
    )
    chex.assert_trees_all_close(actual, dense_reference("infonce", "separable", 4), **TOLERANCE)
