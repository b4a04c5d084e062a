"""A term's critic scores and bound in a training step: dense, row-blocked or tiled, on one
device or against the columns of every device.

Each device holds ``n_local`` rows of the global batch. A term's critic scores them against
the ``n_global`` columns of the global batch, this device's own columns first
(:func:`global_columns`), so row ``i``'s positive is at column ``i`` (offset 0) on every
device and a bound of the ``[n_local, n_global]`` scores is this device's share of the
full-batch value. With a trainer's ``column_block`` (or ``exchange="ring"``) the bound comes
from per-row statistics accumulated over row x column tiles (:mod:`factorcl_jax.tiled`),
without the score matrix; the values and gradients are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax import bounds, critics, tiled

if TYPE_CHECKING:
    from factorcl_jax.train import Trainer

__all__ = [
    "global_columns",
    "label_scores",
    "label_term_bound",
    "pair_scores",
    "term_bound",
]


def global_columns(x: Array, axis_name: str | None) -> Array:
    """``[n_local, ...] -> [n_global, ...]``: every device's rows, this device's first.

    The gathered rows are rotated so that device ``k``'s own rows lead: row ``i``'s positive
    then sits at column ``i`` on every device, and every bound of a term (InfoNCE, NCE-CLUB:
    sums over all columns) equals this device's share of the full-batch value without an
    ``offset``. The gradient reaches the other devices' rows through the gather's transpose.
    Without ``axis_name``, ``x`` itself.
    """
    if axis_name is None:
        return x
    gathered = jax.lax.all_gather(x, axis_name, tiled=True)
    return jnp.roll(gathered, -jax.lax.axis_index(axis_name) * x.shape[0], axis=0)


def pair_scores(
    trainer: Trainer, critic_params: Any, left: Array, right: Array, axis_name: str | None = None
) -> Array:
    """``[n_local, n_global]`` float32 critic scores of this device's rows against every column.

    ``left`` and ``right`` are this device's ``[n_local, d]`` rows; the columns are
    :func:`global_columns` of ``right``. Without ``axis_name`` this is the ``[n, n]`` matrix
    of the batch.
    """
    return critics.pairwise_scores(
        trainer.critic,
        critic_params,
        left,
        global_columns(right, axis_name),
        block_size=trainer.block_size,
    ).astype(jnp.float32)


def label_scores(trainer: Trainer, critic_params: Any, left: Array, column_labels: Array) -> Array:
    """``[n_local, m]`` scores of rows against one-hot labels: ``f(z_i, onehot(y_j))``.

    A column depends only on its label, so the critic scores the ``C`` classes once
    (``[n_local, C]``) and the columns are gathered by ``column_labels`` (``[m]``, the
    global batch's labels): the same matrix as scoring the ``m`` one-hot columns, at
    ``n * C`` instead of ``n * m`` pairs (SUP's ``I(Z; Y)`` terms).
    """
    return jnp.take(_class_scores(trainer, critic_params, left), column_labels, axis=1)


def _class_scores(trainer: Trainer, critic_params: Any, left: Array) -> Array:
    """``[n_local, C]`` float32 scores of the rows against each one-hot class."""
    classes = jnp.eye(trainer.num_classes, dtype=left.dtype)
    return critics.pairwise_scores(
        trainer.critic, critic_params, left, classes, block_size=trainer.block_size
    ).astype(jnp.float32)


def term_bound(
    trainer: Trainer,
    bound: str | Callable[[Array], Array],
    critic_params: Any,
    left: Array,
    right: Array,
    axis_name: str | None = None,
    *,
    labels: Array | None = None,
    column_labels: Array | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """A bound of this device's rows against every column, and its score statistics.

    Dense (or row-blocked) it is ``bound(pair_scores(...))``; with ``trainer.tiled`` it comes
    from the row statistics of :func:`factorcl_jax.tiled.row_statistics`, without the score
    matrix. Either way the value is this device's share, positives at offset 0.

    Args:
      trainer: whose critic, blocks, tiles and exchange to use.
      bound: ``"infonce"``, ``"nce_club"`` or ``"supcon"`` (the bounds of the methods), or a
        function of the ``[n_local, n_global]`` score matrix (scored densely even when tiled).
      critic_params: the term's critic.
      left: ``[n_local, dl]`` rows.
      right: ``[n_local, dr]`` this device's columns (every device's are scored).
      axis_name: the data-parallel axis, or ``None``.
      labels: ``[n_local]`` labels of the rows (``supcon``).
      column_labels: ``[n_global]`` labels of the global batch (``supcon``).

    Returns:
      ``(value, (mean positive score, mean negative score))``, the statistics without
      gradient.
    """
    supervised = bound == "supcon"
    if callable(bound) or not trainer.tiled:  # a function of the whole matrix is dense
        scores = pair_scores(trainer, critic_params, left, right, axis_name)
        extra = (labels, column_labels) if supervised else ()
        value = bound(scores) if callable(bound) else getattr(bounds, bound)(scores, *extra)
        return value, _score_statistics(jnp.diagonal(scores), jnp.sum(scores, 1), scores.shape[1])
    ring = trainer.exchange == "ring" and axis_name is not None
    columns = right if ring else global_columns(right, axis_name)
    statistics = tiled.row_statistics(
        trainer.critic,
        critic_params,
        left,
        columns,
        (*tiled.BOUND_STATISTICS[bound], "positive", "sum"),
        block_rows=trainer.block_size,
        block_cols=trainer.column_block,
        axis_name=axis_name,
        ring=ring,
        row_labels=labels if supervised else None,
        column_labels=(labels if ring else column_labels) if supervised else None,
    )
    num_columns = columns.shape[0] * (jax.lax.axis_size(axis_name) if ring else 1)
    value = tiled.bound_from_statistics(bound, statistics, num_columns)
    return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)


def label_term_bound(
    trainer: Trainer,
    bound: str,
    critic_params: Any,
    left: Array,
    labels: Array,
    column_labels: Array,
) -> tuple[Array, tuple[Array, Array]]:
    """:func:`term_bound` against one-hot label columns (SUP's ``I(Z; Y)`` terms).

    Dense it scores :func:`label_scores`; tiled it needs only the ``[n, C]`` class scores and
    the class counts of ``column_labels`` (``[n_global]``)
    (:func:`factorcl_jax.tiled.class_statistics`).
    """
    if not trainer.tiled:
        scores = label_scores(trainer, critic_params, left, column_labels)
        value = getattr(bounds, bound)(scores)
        return value, _score_statistics(jnp.diagonal(scores), jnp.sum(scores, 1), scores.shape[1])
    counts = jnp.bincount(column_labels, length=trainer.num_classes)
    statistics = tiled.class_statistics(_class_scores(trainer, critic_params, left), labels, counts)
    num_columns = column_labels.shape[0]
    value = tiled.bound_from_statistics(bound, statistics, num_columns)
    return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)


def _score_statistics(positives: Array, row_sums: Array, num_columns: int) -> tuple[Array, Array]:
    """Mean score of the positives and of the negatives, from each row's positive ``[n]`` and
    sum over its ``num_columns`` columns ``[n]`` (no gradient)."""
    n = positives.shape[0]
    positive = jnp.mean(positives)
    negative = (jnp.sum(row_sums) - positive * n) / float(n * num_columns - n)  # > int32 max
    return jax.lax.stop_gradient(positive), jax.lax.stop_gradient(negative)
