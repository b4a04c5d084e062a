"""Faults of the bounds: every bound at extreme scores, NaN never hidden or invented, and a
fuzz of their inputs against a float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import fast_first
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from test_bounds import REFERENCES

from factorcl_jax import bounds

BOUNDS = {
    "infonce": bounds.infonce,
    "nce_club": bounds.nce_club,
    "nwj": bounds.nwj,
    "dv": bounds.dv,
    "js": bounds.js,
    "smile": bounds.smile,
    "js_fgan": bounds.js_fgan,
    "mine": lambda s, **kw: bounds.mine(s, bounds.mine_init(), **kw)[0],
}
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
BIG = float(np.float32(1e30))
# float32-representable, so that no cast overflows: values beyond float32 are the CLI's
# `_load_table` cases above.
finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=32)


def square_or_wide(scores: np.ndarray) -> np.ndarray:
    return scores.T if scores.shape[0] > scores.shape[1] else scores


@pytest.mark.slow
@FUZZ
@given(
    name=st.sampled_from(sorted(BOUNDS)),
    scores=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(-BIG, BIG, width=32),
    ),
    nan_at=st.one_of(st.none(), st.tuples(st.integers(0, 5), st.integers(0, 5))),
)
def test_fuzz_bounds_never_hide_or_invent_a_nan(name, scores, nan_at):
    """Finite float32 scores of any magnitude give a number or +-inf, never NaN; a NaN
    anywhere in the scores gives NaN, never a number."""
    scores = square_or_wide(scores).copy()
    if nan_at is not None:
        scores[nan_at[0] % scores.shape[0], nan_at[1] % scores.shape[1]] = np.nan
    value = float(BOUNDS[name](jnp.asarray(scores)))
    assert np.isnan(value) == (nan_at is not None), (name, scores, value)


@pytest.mark.slow
@FUZZ
@given(
    name=st.sampled_from(sorted(REFERENCES)),
    scores=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=6),
        elements=st.floats(-60, 60, width=32),
    ),
    offset=st.integers(0, 4),
)
def test_fuzz_bounds_agree_with_a_float64_reference(name, scores, offset):
    """A finite float32 value is the float64 value up to float32 rounding: never a finite
    wrong number."""
    scores = square_or_wide(scores)
    n, m = scores.shape
    offset = min(offset, m - n)
    fn, reference = REFERENCES[name]
    value = float(fn(jnp.asarray(scores), offset=offset))
    with np.errstate(all="ignore"):
        expected = float(reference(scores.astype(np.float64), offset))
    if np.isfinite(value):
        scale = 1.0 + np.abs(scores).max()
        assert abs(value - expected) <= 1e-4 * scale * (1.0 + abs(expected)), (value, expected)
    else:
        assert not np.isfinite(expected) or expected < -1e30, (name, value, expected)


@FUZZ
@given(
    name=st.sampled_from(sorted(BOUNDS)),
    scores=st.one_of(
        hnp.arrays(
            st.sampled_from([np.int32, np.bool_, np.complex64, np.uint8]),
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=4),
        ),
        hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=3)),
    ),
    offset=st.one_of(st.integers(-3, 10), st.sampled_from([True, 1.5, "0"])),
)
def test_fuzz_bounds_refuse_bad_inputs_with_value_or_type_errors(name, scores, offset):
    """Wrong dtypes, ranks, sizes and offsets raise ValueError/TypeError, or give a number
    when they are in fact valid."""
    try:
        value = BOUNDS[name](jnp.asarray(scores), offset=offset)
    except (ValueError, TypeError):
        return
    n, m = scores.shape
    assert scores.dtype == np.float32 and scores.ndim == 2 and m >= 2 and n >= 1
    assert isinstance(offset, int) and 0 <= offset <= m - n
    assert value.shape == ()


# ------------------------------------------------------------------ every bound x extreme scores

EXPONENTIAL = {"nwj", "tuba", "js"}
"""Bounds linear in ``e^{s}`` of the negatives: ``-inf`` (the exact limit) once a negative
score exceeds float32's ``log`` of its largest value, as documented in ``bounds.dense``."""


def _patterns(n=4, m=8):
    eye = np.eye(n, m, dtype=np.float32)
    checker = np.where((np.arange(n)[:, None] + np.arange(m)[None, :]) % 2, 1.0, -1.0)
    big = np.float32(1e30)  # any larger and a row's sum of scores is beyond float32
    return {
        "all +1e4": np.full((n, m), 1e4, np.float32),
        "all -1e4": np.full((n, m), -1e4, np.float32),
        "positives +1e4, negatives -1e4": (eye * 2 - 1) * np.float32(1e4),
        "positives -1e4, negatives +1e4": (1 - eye * 2) * np.float32(1e4),
        "checkerboard 1e4": (checker * 1e4).astype(np.float32),
        "checkerboard 1e30": (checker * big).astype(np.float32),
        "tiny": (checker * 1e-30).astype(np.float32),
        "zeros": np.zeros((n, m), np.float32),
    }


def _options(name, n, m):
    labels = np.arange(m) % 2
    return {
        "supcon": {"row_labels": jnp.asarray(labels[:n]), "column_labels": jnp.asarray(labels)},
        "mine": {"state": bounds.mine_init()},
        "infmasking": {"draws": 2},
    }.get(name, {})


SCORE_BOUNDS = sorted(name for name, b in bounds.BOUNDS.items() if not b.gaussian)
EXTREME_CASES = [(name, pattern) for name in SCORE_BOUNDS for pattern in _patterns()]


def _exponential_overflow(name, scores):
    """Where the exact value of an exponential bound is below the float range."""
    negatives = scores[~np.eye(*scores.shape, dtype=bool)]
    return name in EXPONENTIAL and negatives.max() > 80


@pytest.mark.parametrize(("name", "pattern"), fast_first(EXTREME_CASES, unpack=True))
def test_every_bound_at_extreme_scores_is_a_number_or_the_documented_limit(name, pattern):
    """Finite scores of any magnitude give a finite value and gradient, or, for the bounds
    linear in ``e^{s}``, exactly ``-inf`` where the true value is below the float range;
    never NaN, on the dense path and (for bounds with a tiled form) over tiles."""
    scores = jnp.asarray(_patterns()[pattern])
    n, m = scores.shape
    options = _options(name, n, m)

    def value(s):
        out = bounds.evaluate(name, s, **options)
        return out[0] if name == "mine" else out

    result, grad = jax.value_and_grad(value)(scores)
    assert not np.isnan(float(result)), (name, pattern)
    if _exponential_overflow(name, np.asarray(scores)):
        assert float(result) == -np.inf, (name, pattern, float(result))
        if name == "js":  # differentiated as js_fgan: finite
            assert np.all(np.isfinite(grad)), (name, pattern)
    else:
        assert np.isfinite(float(result)), (name, pattern, float(result))
        assert np.all(np.isfinite(grad)), (name, pattern)
    if bounds.BOUNDS[name].tiled:
        from factorcl_jax import critics, networks

        table = networks.FunctionCritic(
            init=lambda key, x, y: {},
            embed_x=lambda p, x: x,
            embed_y=lambda p, y: y,
            pair=lambda p, u, v: u @ v.T,
        )
        identity = jnp.eye(m, dtype=jnp.float32)  # scores = rows of `scores` @ identity
        tiled = critics.tiled_bound(
            name, table, {}, scores, identity, block_rows=3, block_cols=3, **options
        )
        tiled = tiled[0] if name == "mine" else tiled
        # Both round the same sums in another order: equal up to float32's spacing there.
        spacing = float(np.spacing(np.float32(np.abs(np.asarray(scores)).max())))
        np.testing.assert_allclose(float(tiled), float(result), rtol=1e-5, atol=8 * spacing)
