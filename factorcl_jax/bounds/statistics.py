r"""Row statistics of a score matrix: the few numbers per row every bound is a formula of.

A bound of :mod:`factorcl_jax.bounds` reduces each row of the ``[n, m]`` score matrix
``s_ij = f(x_i, y_j)`` over its columns. Row ``i``'s positive sits at column ``i + o`` (``o``
the *offset*); ``P(i) = {j : y_j = y_i}`` are the columns sharing its label (SupCon). The
statistics, each ``[n]``:

* ``positive``: :math:`s_{i, i+o}`;
* ``sum``: :math:`\sum_j s_{ij}`;
* ``logsumexp``: :math:`\log \sum_j e^{s_{ij}}`;
* ``negative_logsumexp``: :math:`\log \sum_{j \ne i+o} e^{s_{ij}}`;
* ``clipped_negative_logsumexp``: :math:`\log \sum_{j \ne i+o} e^{\mathrm{clip}(s_{ij},
  -\tau, \tau)}`;
* ``negative_softplus_sum``: :math:`\sum_{j \ne i+o} \mathrm{softplus}(s_{ij})`;
* ``label_sum``: :math:`\sum_{j \in P(i)} s_{ij}`; ``label_count``: :math:`|P(i)|`;
* ``draw_mean``, ``draw_variance``, ``draw_negative_logsumexp``: the mean and (biased)
  variance of the scores at the ``K`` columns ``i + o + t n`` (``t < K``, ``K = draws``), and
  the log-sum-exp of the other columns (InfMasking's ``K`` masked views of each row).

:func:`dense_statistics` computes them from a score matrix; :mod:`factorcl_jax.bounds.tiled`
accumulates the same statistics over tiles of a critic without the matrix. Both feed the one
formula of each bound (:mod:`factorcl_jax.bounds.formulas`).

This module also holds the one check of an ``offset`` (:func:`check_offset`) and its guard
under ``jit`` (:func:`nan_unless_offset_in_range`), shared by every path.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from factorcl_jax.validation import check_float_matrix

__all__ = [
    "LOG_SUM_EXP",
    "STATISTICS",
    "check_offset",
    "check_scores",
    "class_statistics",
    "dense_statistics",
    "nan_unless_offset_in_range",
]

LOG_SUM_EXP = ("logsumexp", "negative_logsumexp", "clipped_negative_logsumexp")
"""Statistics that are log-sum-exps (accumulated with ``logaddexp``); the others are sums."""
SUMS = ("positive", "sum", "negative_softplus_sum", "label_sum", "label_count")
DRAWS = ("draw_mean", "draw_variance", "draw_negative_logsumexp")
STATISTICS = LOG_SUM_EXP + SUMS + DRAWS
"""Every row statistic by name (see the module docstring)."""


def check_offset(offset: int | Array, n: int, m: int, name: str = "scores") -> int | Array:
    """The offset of row 0's positive, checked against ``n`` rows and ``m`` columns.

    Accepts a Python int, a NumPy integer, or an integer scalar array of any integer dtype;
    refuses booleans and everything else (``TypeError``). A concrete offset must lie in
    ``[0, m - n]`` (``ValueError``); a traced one (e.g. ``axis_index * n`` under
    ``shard_map``) has no value to check while tracing: it is returned as an ``int32``
    array, and the bound's value passes through :func:`nan_unless_offset_in_range`.

    Returns:
      The offset as a Python int, or a traced ``int32`` scalar.
    """
    if isinstance(offset, (jax.Array, np.ndarray)):
        if offset.shape != () or not jnp.issubdtype(offset.dtype, jnp.integer):
            raise TypeError(
                f"`offset` must be an int or an integer scalar array, got "
                f"{offset.dtype}{list(offset.shape)}"
            )
        if isinstance(offset, jax.core.Tracer):
            return offset.astype(jnp.int32)
        offset = int(offset)
    elif isinstance(offset, bool) or not isinstance(offset, numbers.Integral):
        raise TypeError(f"`offset` must be an int, got {type(offset).__name__}")
    offset = int(offset)
    if not 0 <= offset <= m - n:
        raise ValueError(
            f"`offset` must be in [0, m - n] = [0, {m - n}] for `{name}` of shape "
            f"{(n, m)} (positives at [i, i + offset]), got {offset}"
        )
    return offset


def check_scores(scores: Array, name: str = "scores") -> tuple[int, int]:
    """``(n, m)`` of a floating-point score matrix with a row and at least two columns (one
    positive, one negative); reads only shape and dtype, so it works under ``jit``."""
    check_float_matrix(scores, name)
    n, m = scores.shape
    if n < 1:
        raise ValueError(f"`{name}` needs at least 1 row, got shape {scores.shape}")
    if m < 2:
        raise ValueError(
            f"`{name}` needs at least 2 columns (one positive, one negative), "
            f"got shape {scores.shape}"
        )
    return n, m


def nan_unless_offset_in_range(value: Array, offset: int | Array, n: int, m: int) -> Array:
    """``value``, or NaN (value *and* gradient) when a traced ``offset`` is outside
    ``[0, m - n]``.

    A traced offset cannot be refused while tracing; read as is it would pick wrong columns
    (a dynamic slice clamps, a mask matches nothing) and give a finite, wrong bound.
    Multiplying by ``1`` or ``NaN`` leaves in-range values bit for bit unchanged. Concrete
    offsets were checked by :func:`check_offset` and pass through untouched.
    """
    if not isinstance(offset, jax.core.Tracer):
        return value
    valid = (offset >= 0) & (offset <= m - n)
    return value * jnp.where(valid, 1.0, jnp.nan).astype(value.dtype)


def dense_statistics(
    scores: Array,
    names: Sequence[str],
    *,
    offset: int | Array = 0,
    clip: float | None = None,
    row_labels: Array | None = None,
    column_labels: Array | None = None,
    draws: int = 1,
) -> dict[str, Array]:
    """The row statistics ``names`` of a ``[n, m]`` score matrix, each ``[n]``.

    Computed in the dtype of ``scores``; the caller checked ``scores`` and ``offset``
    (:func:`check_scores`, :func:`check_offset`).

    Args:
      scores: ``[n, m]`` scores, positives at ``[i, i + offset]``.
      names: statistics of :data:`STATISTICS`.
      offset: column of row 0's positive.
      clip: ``tau`` of ``clipped_negative_logsumexp`` (``None``: not clipped).
      row_labels: ``[n]`` integer labels (``label_*``).
      column_labels: ``[m]`` integer labels (``label_*``).
      draws: ``K``, the positives per row of the ``draw_*`` statistics.

    Example:
      >>> stats = dense_statistics(jnp.array([[2.0, 0.0], [0.0, 2.0]]), ["positive", "sum"])
      >>> stats["positive"].tolist(), stats["sum"].tolist()
      ([2.0, 2.0], [2.0, 2.0])
    """
    n, m = scores.shape
    columns = jnp.arange(m)[None, :]
    first = jnp.arange(n)[:, None] + offset  # [n, 1]: each row's (first) positive column
    positive = columns == first
    negative_lse = lambda values: jax.nn.logsumexp(jnp.where(positive, -jnp.inf, values), axis=1)
    computed = {}
    for name in names:
        if name == "positive":
            value = jnp.take_along_axis(scores, first, axis=1, mode="fill")[:, 0]
        elif name == "sum":
            value = jnp.sum(scores, axis=1)
        elif name == "logsumexp":
            value = jax.nn.logsumexp(scores, axis=1)
        elif name == "negative_logsumexp":
            value = negative_lse(scores)
        elif name == "clipped_negative_logsumexp":
            value = negative_lse(scores if clip is None else jnp.clip(scores, -clip, clip))
        elif name == "negative_softplus_sum":
            value = jnp.sum(jnp.where(positive, 0.0, jax.nn.softplus(scores)), axis=1)
        elif name in ("label_sum", "label_count"):
            same = row_labels[:, None] == column_labels[None, :]
            value = jnp.sum(jnp.where(same, scores if name == "label_sum" else 1.0, 0.0), axis=1)
            value = value.astype(scores.dtype)
        elif name in DRAWS:
            value = _draw_statistic(name, scores, first, draws)
        else:
            raise ValueError(f"unknown row statistic {name!r}; known: {STATISTICS}")
        computed[name] = value
    return computed


def _draw_statistic(name: str, scores: Array, first: Array, draws: int) -> Array:
    """A ``draw_*`` statistic: the ``K`` positives of each row are columns ``first + t n``."""
    n = scores.shape[0]
    positive_columns = first + jnp.arange(draws)[None, :] * n  # [n, K]
    if name == "draw_negative_logsumexp":
        is_positive = jnp.any(
            jnp.arange(scores.shape[1])[None, :, None] == positive_columns[:, None, :], axis=2
        )
        return jax.nn.logsumexp(jnp.where(is_positive, -jnp.inf, scores), axis=1)
    positives = jnp.take_along_axis(scores, positive_columns, axis=1, mode="fill")
    mean = jnp.mean(positives, axis=1)
    if name == "draw_mean":
        return mean
    return jnp.mean(jnp.square(positives - mean[:, None]), axis=1)


def class_statistics(
    class_scores: Array, row_labels: Array, class_counts: Array
) -> dict[str, Array]:
    r"""Row statistics of scores whose columns are one-hot labels, from ``[n, C]`` scores.

    When column ``j`` is the label ``y_j`` (``s_ij = c_{i, y_j}``, e.g. SUP's ``I(Z; Y)``
    critics), the ``m`` columns repeat ``C`` distinct ones, and with ``k_c`` columns of class
    ``c``:

    .. math::
        \text{positive}_i = c_{i, y_i}, \quad \text{sum}_i = \sum_c k_c\, c_{ic}, \quad
        \text{logsumexp}_i = \log \sum_c k_c\, e^{c_{ic}}

    Args:
      class_scores: ``[n, C]`` scores of every row against every class.
      row_labels: ``[n]`` integer labels; row ``i``'s positive column has label ``y_i``.
      class_counts: ``[C]`` number of columns of each class (``m = sum_c k_c``).

    Returns:
      ``{"positive", "sum", "logsumexp": [n] float32}``.

    Example:
      >>> stats = class_statistics(jnp.array([[1.0, 0.0]]), jnp.array([0]), jnp.array([2, 1]))
      >>> [float(stats[k][0]) for k in ("positive", "sum")]
      [1.0, 2.0]
    """
    class_scores = class_scores.astype(jnp.float32)
    counts = class_counts.astype(jnp.float32)
    return {
        "positive": jnp.take_along_axis(class_scores, row_labels[:, None], axis=1)[:, 0],
        "sum": class_scores @ counts,
        "logsumexp": jax.nn.logsumexp(class_scores, axis=1, b=counts[None, :]),
    }
