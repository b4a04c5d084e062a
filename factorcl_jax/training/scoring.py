"""A term's bound in a training step: its critic's row statistics, dense or tiled, on one
device or against the columns of every device, into the bound's one formula.

Each device holds ``n_local`` rows of the global batch. A term's critic scores them against
the ``n_global`` columns of the global batch, this device's own columns first
(:func:`global_columns`), so row ``i``'s positive is at column ``i`` (offset 0) on every
device and the bound of the ``[n_local, n_global]`` scores is this device's share of the
full-batch value. The row statistics the bound reads (:mod:`factorcl_jax.bounds.statistics`)
come from the score matrix (dense or row-blocked), or with a :class:`MemoryPlan` that tiles
(``column_block`` or ``exchange="ring"``) from tiles of the critic
(:mod:`factorcl_jax.bounds.tiled`) without the matrix; either way the same formula
(:mod:`factorcl_jax.bounds.formulas`) gives the value, with the same gradients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds.formulas import get_bound
from factorcl_jax.bounds.statistics import class_statistics, dense_statistics
from factorcl_jax.bounds.tiled import EXCHANGES
from factorcl_jax.critics.scoring import pairwise_scores, row_statistics

__all__ = ["MemoryPlan", "global_columns", "label_term_bound", "term_bound"]

_MEASURED = ("positive", "sum")
"""Statistics every term also computes, for the mean positive and negative scores."""


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """How a step scores pairs.

    Attributes:
      block_size: rows per block of the pairwise critics (``None``: dense).
      column_block: columns per tile; when set, every bound with a tiled form is computed
        over tiles of ``block_size x column_block`` pairs: no ``[n, m]`` score matrix, one
        tile of pair activations at a time, the same values and gradients.
      exchange: how a data-parallel step meets the other devices' columns: ``"all_gather"``
        (gather them all) or ``"ring"`` (pass them around by ``ppermute``; tiled, so
        per-device memory does not grow with the device count).
    """

    block_size: int | None = None
    column_block: int | None = None
    exchange: str = "all_gather"

    def __post_init__(self) -> None:
        for name in ("block_size", "column_block"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"`{name}` must be a positive int or None, got {value!r}")
        if self.exchange not in EXCHANGES:
            raise ValueError(f"`exchange` must be one of {EXCHANGES}, got {self.exchange!r}")

    @property
    def tiled(self) -> bool:
        """Whether bounds are computed over row x column tiles (``column_block`` or a ring)."""
        return self.column_block is not None or self.exchange == "ring"


def global_columns(x: Array, axis_name: str | None) -> Array:
    """``[n_local, ...] -> [n_global, ...]``: every device's rows, this device's first.

    The gathered rows are rotated so that device ``k``'s own rows lead: row ``i``'s positive
    then sits at column ``i`` on every device, and every bound of a term equals this device's
    share of the full-batch value without an ``offset``. The gradient reaches the other
    devices' rows through the gather's transpose. Without ``axis_name``, ``x`` itself.
    """
    if axis_name is None:
        return x
    gathered = jax.lax.all_gather(x, axis_name, tiled=True)
    return jnp.roll(gathered, -jax.lax.axis_index(axis_name) * x.shape[0], axis=0)


def term_bound(
    bound: str,
    critic: Any,
    critic_params: Any,
    left: Array,
    right: Array,
    memory: MemoryPlan,
    axis_name: str | None = None,
    *,
    labels: Array | None = None,
    column_labels: Array | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """A bound of this device's rows against every column, and its score statistics.

    Args:
      bound: the term's bound, a name of :data:`~factorcl_jax.bounds.BOUNDS`.
      critic: the critic (any form of the network protocol).
      critic_params: the term's critic parameters.
      left: ``[n_local, dl]`` rows.
      right: ``[n_local, dr]`` this device's columns (every device's are scored).
      memory: dense, row-blocked or tiled; gathered or ring.
      axis_name: the data-parallel axis, or ``None``.
      labels: ``[n_local]`` labels of the rows (``supcon``).
      column_labels: ``[n_global]`` labels of the global batch (``supcon``).
      options: the bound's own options (e.g. ``draws`` of ``infmasking``).

    Returns:
      ``(value, (mean positive score, mean negative score))``, the statistics without
      gradient; the value is this device's share, positives at offset 0.
    """
    entry = get_bound(bound)
    options = dict(options or {})
    if "axis_name" in entry.options:
        options["axis_name"] = axis_name
    options = entry.check_options(options, left.shape[0])
    names = (*entry.statistics, *_MEASURED)
    if memory.tiled and entry.tiled:
        ring = memory.exchange == "ring" and axis_name is not None
        columns = right if ring else global_columns(right, axis_name)
        statistics = row_statistics(
            critic,
            critic_params,
            left,
            columns,
            names,
            block_rows=memory.block_size,
            block_cols=memory.column_block,
            axis_name=axis_name,
            ring=ring,
            row_labels=labels if entry.labelled else None,
            column_labels=(labels if ring else column_labels) if entry.labelled else None,
            clip=options.get("clip"),
        )
        num_columns = columns.shape[0] * (jax.lax.axis_size(axis_name) if ring else 1)
    else:
        scores = pairwise_scores(
            critic,
            critic_params,
            left,
            global_columns(right, axis_name),
            block_size=memory.block_size,
        ).astype(jnp.float32)
        statistics = dense_statistics(
            scores,
            names,
            clip=options.get("clip"),
            row_labels=labels,
            column_labels=column_labels,
            draws=options.get("draws", 1),
        )
        num_columns = scores.shape[1]
    value = entry.formula(statistics, num_columns, **options)
    return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)


def label_term_bound(
    bound: str,
    critic: Any,
    critic_params: Any,
    left: Array,
    labels: Array,
    column_labels: Array,
    num_classes: int,
    memory: MemoryPlan,
) -> tuple[Array, tuple[Array, Array]]:
    """:func:`term_bound` against one-hot label columns (SUP's ``I(Z; Y)`` terms).

    A column depends only on its label, so the critic scores the ``C`` classes once
    (``[n_local, C]``) and the row statistics of the ``m`` one-hot columns follow from the
    class counts of ``column_labels`` (``[n_global]``;
    :func:`~factorcl_jax.bounds.statistics.class_statistics`): ``n * C`` pairs instead of
    ``n * m``, on every memory plan.
    """
    entry = get_bound(bound)
    classes = jnp.eye(num_classes, dtype=left.dtype)
    class_scores = pairwise_scores(
        critic, critic_params, left, classes, block_size=memory.block_size
    ).astype(jnp.float32)
    counts = jnp.bincount(column_labels, length=num_classes)
    statistics = class_statistics(class_scores, labels, counts)
    num_columns = column_labels.shape[0]
    value = entry.formula(statistics, num_columns)
    return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)


def _score_statistics(positives: Array, row_sums: Array, num_columns: int) -> tuple[Array, Array]:
    """Mean score of the positives and of the negatives, from each row's positive ``[n]`` and
    sum over its ``num_columns`` columns ``[n]`` (no gradient)."""
    n = positives.shape[0]
    positive = jnp.mean(positives)
    negative = (jnp.sum(row_sums) - positive * n) / float(n * num_columns - n)  # > int32 max
    return jax.lax.stop_gradient(positive), jax.lax.stop_gradient(negative)
