r"""Row statistics over row x column tiles of a critic, with memory that stays flat in the batch.

Every bound of :mod:`factorcl_jax.bounds` is a formula of a few numbers per row of the
``[n, m]`` score matrix, its *row statistics* (:mod:`factorcl_jax.bounds.statistics`). They
can be accumulated over tiles of ``block_rows x block_cols`` pairs without ever holding the
score matrix:

.. math::
    \ell_i \leftarrow \operatorname{logaddexp}\big(\ell_i,\ \log \textstyle\sum_{j \in
    \text{tile}} e^{s_{ij}}\big), \qquad \sigma_i \leftarrow \sigma_i + \textstyle\sum_{j \in
    \text{tile}} s_{ij}

(the online log-sum-exp: a running maximum and sum in log form). The backward pass is a
``jax.custom_vjp`` that recomputes each tile's scores from the critic's tower outputs and
forms ``dL/ds_ij`` in closed form from the saved statistics, e.g. the softmax weight
``e^{s_ij - l_i}`` for a log-sum-exp, then pulls it back through the critic's pair head.
Only one tile of pair activations (``[block_rows * block_cols, H]`` for the concat critic) is
alive at a time, in the forward and the backward pass: the recipe of FlashAttention (Dao et
al. 2022) and Inf-CL (Cheng et al. 2024, "Breaking the Memory Barrier").

**Ring.** With ``ring=True`` under a mapped ``axis_name`` (``shard_map``/``pmap``) each device
holds its rows *and only its own columns*. The column blocks (the towers' outputs, plus their
labels) travel around the devices with ``jax.lax.ppermute``: at step ``k`` device ``d`` holds
device ``d + k``'s columns, so after ``D`` steps every row has met every column and no device
ever holds more than two blocks. The backward pass sends the columns around again, with the
gradient of each block travelling alongside it until it is back on its owner. A device's own
block comes first, so its row ``i``'s positive is at ``[i, i + offset]`` of that block.

:func:`tiled_value` applies a bound's formula (:mod:`factorcl_jax.bounds.formulas`, the one
the dense path applies) to the tiled statistics; every bound with a tiled form
(``Bound.tiled``) gives the dense value and gradients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds.formulas import MineState, get_bound
from factorcl_jax.bounds.statistics import (
    DRAWS,
    LOG_SUM_EXP,
    STATISTICS,
    check_offset,
    nan_unless_offset_in_range,
)

__all__ = ["EXCHANGES", "PairFn", "tiled_statistics", "tiled_value"]

EXCHANGES = ("all_gather", "ring")
"""How a data-parallel step meets the other devices' columns: gather them all, or pass them
around the devices (``ring=True``)."""

PairFn = Callable[[Any, Array, Array], Array]
"""A critic's pairwise head ``pair(params, u [b, H], v [c, H]) -> scores [b, c]``."""


def tiled_value(
    bound: str,
    pair: PairFn,
    params: Any,
    u: Array,
    v: Array,
    *,
    block_rows: int | None = None,
    block_cols: int | None = None,
    offset: int | Array = 0,
    axis_name: str | None = None,
    ring: bool = False,
    row_labels: Array | None = None,
    column_labels: Array | None = None,
    **options: Any,
) -> Any:
    """The bound ``bound`` of the scores ``pair(params, u, v)``, from tiled row statistics.

    Args:
      bound: a name of :data:`~factorcl_jax.bounds.BOUNDS` with a tiled form.
      pair: the critic's pairwise head.
      params: its parameters.
      u: ``[n, H]`` tower outputs of the rows.
      v: ``[m, H]`` tower outputs of the columns (with ``ring``: this device's ``m_local``).
      block_rows: rows per tile (``None``: all).
      block_cols: columns per tile (``None``: all of a device's block).
      offset: column of row 0's positive (of this device's own block with ``ring``).
      axis_name: mapped axis whose devices hold the batch: ``dv``, ``mine`` and ``smile`` pool
        their log-mean-exp over it, and ``ring`` passes the columns around it.
      ring: ``v`` holds this device's columns only; every device's columns are visited by
        ``ppermute`` around ``axis_name`` (``m = D * m_local``).
      row_labels: ``[n]`` integer labels (``supcon``).
      column_labels: ``[m]`` (``[m_local]`` with ``ring``) integer labels (``supcon``).
      **options: the bound's own options (``log_baseline``, ``clip``, ``state``, ``decay``).

    Returns:
      The value, this device's share (``mine``: ``(value, new_state)``); NaN when a traced
      ``offset`` is out of range.
    """
    entry = get_bound(bound, tiled=True)
    if "axis_name" in entry.options:
        options["axis_name"] = axis_name
    options = entry.check_options(options, u.shape[0])
    statistics = tiled_statistics(
        pair,
        params,
        u,
        v,
        entry.statistics,
        block_rows=block_rows,
        block_cols=block_cols,
        offset=offset,
        axis_name=axis_name,
        ring=ring,
        row_labels=row_labels,
        column_labels=column_labels,
        clip=options.get("clip"),
    )
    num_columns = v.shape[0] * (jax.lax.axis_size(axis_name) if ring else 1)
    value = entry.formula(statistics, num_columns, **options)
    guard = lambda x: nan_unless_offset_in_range(x, offset, u.shape[0], v.shape[0])
    if entry.stateful:
        value, state = value
        return guard(value), MineState(guard(state.log_moving_average))
    return guard(value)


def tiled_statistics(
    pair: PairFn,
    params: Any,
    u: Array,
    v: Array,
    names: Sequence[str],
    *,
    block_rows: int | None = None,
    block_cols: int | None = None,
    offset: int | Array = 0,
    axis_name: str | None = None,
    ring: bool = False,
    row_labels: Array | None = None,
    column_labels: Array | None = None,
    clip: float | None = None,
) -> dict[str, Array]:
    """Row statistics ``names`` of the scores ``pair(params, u, v)``, over tiles.

    Computed over tiles of ``block_rows x block_cols`` pairs without building the ``[n, m]``
    matrix; differentiable (reverse mode) with a backward pass that recomputes the tiles.
    Scores are reduced in float32 whatever the critic's compute dtype.

    Args:
      pair: the critic's pairwise head.
      params: its parameters.
      u: ``[n, H]`` tower outputs of the rows.
      v: ``[m, H]`` tower outputs of the columns; with ``ring`` this device's ``m_local``
        columns (``m = D * m_local`` over the ``D`` devices of ``axis_name``).
      names: statistics of :data:`~factorcl_jax.bounds.statistics.STATISTICS` (not ``draw_*``).
      block_rows: rows per tile (``None``: all ``n``).
      block_cols: columns per tile (``None``: all columns of a block).
      offset: column of row 0's positive (in this device's own block with ``ring``);
        ``0 <= offset <= m - n`` (``m_local - n`` with ``ring``).
      axis_name: the mapped axis the ring runs over (only read with ``ring``).
      ring: visit the columns of every device of ``axis_name`` by ``ppermute``.
      row_labels: ``[n]`` integer labels (``label_*`` statistics only).
      column_labels: ``[m]`` (``[m_local]`` with ``ring``) integer labels of the columns.
      clip: ``tau > 0`` of ``clipped_negative_logsumexp`` (``None``: not clipped).

    Returns:
      ``{name: [n] float32}``.
    """
    names = tuple(dict.fromkeys(names))
    unknown = [name for name in names if name not in STATISTICS or name in DRAWS]
    if unknown or not names:
        tiled = [name for name in STATISTICS if name not in DRAWS]
        raise ValueError(f"`names` must be a non-empty list of {tiled}, got {names}")
    _check_towers(u, v)
    if ring and axis_name is None:
        raise ValueError("`ring=True` needs the `axis_name` of the devices to pass columns over")
    block_rows = _check_block("block_rows", block_rows)
    block_cols = _check_block("block_cols", block_cols)
    labelled = any(name.startswith("label_") for name in names)
    _check_labels(row_labels, column_labels, u.shape[0], v.shape[0], labelled)
    if clip is not None and not clip > 0:
        raise ValueError(f"`clip` must be positive or None, got {clip}")
    num_devices = jax.lax.axis_size(axis_name) if ring else 1
    if v.shape[0] * num_devices < 2:
        raise ValueError(f"the scores need at least 2 columns (one positive), got {v.shape[0]}")
    offset = check_offset(offset, u.shape[0], v.shape[0], name="[rows, columns of a block]")
    if not labelled:
        row_labels = column_labels = None
    # Under shard_map a value is either the same on every device or varies over the axis; the
    # tile loops mix all three inputs, so they must agree (the transpose of this cast sums the
    # gradient of replicated parameters over the devices).
    axes = _varying_axes((params, u, v))
    params, u, v = _vary((params, u, v), axes)
    plan = _Plan(
        pair=pair,
        names=names,
        rows_per_block=min(block_rows or u.shape[0], u.shape[0]),
        cols_per_tile=min(block_cols or v.shape[0], v.shape[0]),
        clip=clip,
        ring_axis=axis_name if ring else None,
        num_devices=num_devices,
        varying_axes=axes,
    )
    offset = jnp.asarray(offset, jnp.int32)
    return _tiled_statistics(plan, params, u, v, offset, row_labels, column_labels)


# ------------------------------------------------------------------------- checks


def _check_towers(u: Array, v: Array) -> None:
    for name, array in (("u", u), ("v", v)):
        if getattr(array, "ndim", None) != 2:
            raise ValueError(
                f"`{name}` (tower outputs) must have shape [rows, H], got "
                f"{getattr(array, 'shape', type(array).__name__)}"
            )
    if u.shape[0] < 1:
        raise ValueError(f"`x` needs at least 1 row, got {u.shape[0]}")


def _check_block(name: str, block: int | None) -> int | None:
    if block is not None and (not isinstance(block, int) or isinstance(block, bool) or block < 1):
        raise ValueError(f"`{name}` must be a positive int or None, got {block!r}")
    return block


def _check_labels(
    row_labels: Array | None, column_labels: Array | None, n: int, m: int, needed: bool
) -> None:
    if not needed:
        return
    for name, labels, size in (("row_labels", row_labels, n), ("column_labels", column_labels, m)):
        if labels is None:
            raise ValueError(f"`{name}` ([{size}] integers) are needed by the label statistics")
        if labels.shape != (size,) or not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(
                f"`{name}` must be [{size}] integers, got {labels.dtype}{list(labels.shape)}"
            )


# ------------------------------------------------------------------------- the tiles


@dataclasses.dataclass(frozen=True, eq=False)
class _Plan:
    """What the tile loops need besides arrays (closed over by the custom VJP)."""

    pair: Callable[[Any, Array, Array], Array]  # (params, u [br, H], v [bc, H]) -> [br, bc]
    names: tuple[str, ...]
    rows_per_block: int
    cols_per_tile: int
    clip: float | None
    ring_axis: str | None
    num_devices: int
    varying_axes: tuple[str, ...]


def _varying(leaf: Array) -> frozenset[str]:
    """The mapped axes ``leaf`` varies over under ``shard_map`` (empty elsewhere)."""
    aval = jax.typeof(leaf)
    vma = getattr(aval, "vma", None)  # older JAX; newer JAX keeps it under ``mat``
    if vma is None:
        vma = getattr(getattr(aval, "mat", None), "varying", ())
    return frozenset(vma)


def _varying_axes(tree: Any) -> tuple[str, ...]:
    return tuple(sorted(frozenset().union(*map(_varying, jax.tree.leaves(tree)))))


def _vary(tree: Any, axes: tuple[str, ...]) -> Any:
    """Every leaf of ``tree`` marked as varying over ``axes`` (a no-op outside shard_map)."""

    def cast(leaf: Array) -> Array:
        missing = tuple(a for a in axes if a not in _varying(leaf))
        return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree.map(cast, tree)


def _blocks(array: Array | None, block: int, fill: float | int = 0) -> Array | None:
    """``[k, ...] -> [ceil(k / block), block, ...]``, padded with ``fill``."""
    if array is None:
        return None
    count = -(-array.shape[0] // block)
    padding = [(0, count * block - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
    return jnp.pad(array, padding, constant_values=fill).reshape(count, block, *array.shape[1:])


def _tile_masks(
    rows: Array,
    columns: Array,
    n: int,
    m_block: int,
    own: Array,
    offset: Array,
    row_labels: Array | None,
    column_labels: Array | None,
) -> tuple[Array, Array, Array | None]:
    """``(valid, positive, same_label)`` ``[br, bc]`` masks of one tile.

    ``rows``/``columns`` are the tile's row and column indices (padding beyond ``n`` /
    ``m_block``); positives only exist in the device's own block (``own``).
    """
    valid = (rows[:, None] < n) & (columns[None, :] < m_block)
    positive = valid & own & (columns[None, :] == rows[:, None] + offset)
    same_label = None
    if row_labels is not None:
        same_label = valid & (row_labels[:, None] == column_labels[None, :])
    return valid, positive, same_label


def _included(name: str, masks) -> Array:
    """Pairs of the tile a statistic reduces over."""
    valid, positive, same_label = masks
    return {
        "positive": positive,
        "sum": valid,
        "logsumexp": valid,
        "negative_logsumexp": valid & ~positive,
        "clipped_negative_logsumexp": valid & ~positive,
        "negative_softplus_sum": valid & ~positive,
        "label_sum": same_label,
        "label_count": same_label,
    }[name]


def _transformed(name: str, scores: Array, clip: float | None) -> Array:
    """The per-pair quantity a statistic reduces (the score, a clipped score, ...)."""
    if name == "clipped_negative_logsumexp" and clip is not None:
        return jnp.clip(scores, -clip, clip)
    if name == "negative_softplus_sum":
        return jax.nn.softplus(scores)
    if name == "label_count":
        return jnp.ones_like(scores)
    return scores


def _derivative(name: str, scores: Array, clip: float | None) -> Array:
    """``d transformed / d score`` for every pair of the tile."""
    if name == "clipped_negative_logsumexp" and clip is not None:
        return ((scores > -clip) & (scores < clip)).astype(scores.dtype)
    if name == "negative_softplus_sum":
        return jax.nn.sigmoid(scores)
    if name == "label_count":
        return jnp.zeros_like(scores)
    return jnp.ones_like(scores)


def _tile_reduction(name: str, scores: Array, masks, clip: float | None) -> Array:
    """The statistic over one tile's columns: ``[br, bc] -> [br]``."""
    include = _included(name, masks)
    values = _transformed(name, scores, clip)
    if name in LOG_SUM_EXP:
        return jax.nn.logsumexp(jnp.where(include, values, -jnp.inf), axis=1)
    return jnp.sum(jnp.where(include, values, 0.0), axis=1)


def _combine(name: str, accumulated: Array, tile: Array) -> Array:
    return jnp.logaddexp(accumulated, tile) if name in LOG_SUM_EXP else accumulated + tile


def _score_cotangent(plan: _Plan, scores: Array, masks, statistics, cotangents) -> Array:
    """``dL/ds_ij = sum_k g_k,i * d statistic_k,i / d s_ij`` on one ``[br, bc]`` tile.

    For a log-sum-exp statistic ``l_i`` the derivative is ``e^{t_ij - l_i} t'_ij`` (softmax
    weights from the saved ``l_i``); for a sum it is ``t'_ij``.
    """
    total = jnp.zeros_like(scores)
    for name in plan.names:
        weight = _derivative(name, scores, plan.clip)
        if name in LOG_SUM_EXP:
            weight = weight * jnp.exp(
                _transformed(name, scores, plan.clip) - statistics[name][:, None]
            )
        term = cotangents[name][:, None] * weight
        total = total + jnp.where(_included(name, masks), term, 0.0)
    return total


def _initial_statistics(plan: _Plan, num_blocks: int) -> dict[str, Array]:
    start = {name: -jnp.inf if name in LOG_SUM_EXP else 0.0 for name in plan.names}
    full = {
        name: jnp.full((num_blocks, plan.rows_per_block), value, jnp.float32)
        for name, value in start.items()
    }
    return _vary(full, plan.varying_axes)


def _ring_pass(plan: _Plan, carry: Any, visit: Callable, travelling: Any) -> tuple[Any, Any]:
    """Runs ``visit(carry, travelling, own)`` on this device's columns and then, with a ring,
    on every other device's, passing ``travelling`` one device back each time.

    Returns the final ``carry`` and ``travelling`` (back on its owner after ``D`` steps).
    """
    if plan.ring_axis is None:
        return visit(carry, travelling, jnp.asarray(True))
    size = plan.num_devices
    # device d sends to d - 1, so at step k it holds the columns of device d + k
    permutation = [(device, (device - 1) % size) for device in range(size)]

    def step(state, index):
        carry, travelling = state
        carry, travelling = visit(carry, travelling, index == 0)
        travelling = jax.lax.ppermute(travelling, plan.ring_axis, permutation)
        return (carry, travelling), None

    (carry, travelling), _ = jax.lax.scan(step, (carry, travelling), jnp.arange(size))
    return carry, travelling


def _prepare(plan: _Plan, u: Array, v: Array, row_labels: Array | None):
    n, m_block = u.shape[0], v.shape[0]
    row_blocks = (
        _blocks(u, plan.rows_per_block),
        _blocks(jnp.arange(n), plan.rows_per_block, fill=n),
        _blocks(row_labels, plan.rows_per_block, fill=-1),
    )
    return n, m_block, row_blocks


def _column_tiles(plan: _Plan, v: Array, column_labels: Array | None, m_block: int):
    return (
        _blocks(v, plan.cols_per_tile),
        _blocks(jnp.arange(m_block), plan.cols_per_tile, fill=m_block),
        _blocks(column_labels, plan.cols_per_tile, fill=-1),
    )


def _forward(plan: _Plan, params, u, v, offset, row_labels, column_labels) -> dict[str, Array]:
    n, m_block, row_blocks = _prepare(plan, u, v, row_labels)

    def visit(accumulated, columns, own):
        v, column_labels = columns
        tiles = _column_tiles(plan, v, column_labels, m_block)

        def row_block(inputs):
            (u_r, rows, labels_r), accumulated_r = inputs

            def column_tile(accumulated_r, tile):
                v_c, cols, labels_c = tile
                scores = plan.pair(params, u_r, v_c).astype(jnp.float32)
                masks = _tile_masks(rows, cols, n, m_block, own, offset, labels_r, labels_c)
                return {
                    name: _combine(name, value, _tile_reduction(name, scores, masks, plan.clip))
                    for name, value in accumulated_r.items()
                }, None

            return jax.lax.scan(column_tile, accumulated_r, tiles)[0]

        return jax.lax.map(row_block, (row_blocks, accumulated)), columns

    start = _initial_statistics(plan, row_blocks[0].shape[0])
    statistics, _ = _ring_pass(plan, start, visit, (v, column_labels))
    return {name: value.reshape(-1)[:n] for name, value in statistics.items()}


def _backward(plan: _Plan, residuals, cotangents):
    params, u, v, offset, row_labels, column_labels, statistics = residuals
    n, m_block, row_blocks = _prepare(plan, u, v, row_labels)
    pad = lambda tree: jax.tree.map(lambda a: _blocks(a, plan.rows_per_block), tree)
    per_row = (pad(statistics), pad(dict(cotangents)))

    def visit(carry, travelling, own):
        params_grad, u_grad = carry
        v, column_labels, v_grad = travelling
        tiles = _column_tiles(plan, v, column_labels, m_block)
        v_grad_tiles = _blocks(v_grad, plan.cols_per_tile)

        def row_block(carry, inputs):
            params_grad, v_grad_tiles = carry
            (u_r, rows, labels_r), (statistics_r, cotangents_r) = inputs

            def column_tile(carry, tile):
                params_grad, u_grad_r = carry
                (v_c, cols, labels_c), v_grad_c = tile
                scores, pullback = jax.vjp(plan.pair, params, u_r, v_c)
                masks = _tile_masks(rows, cols, n, m_block, own, offset, labels_r, labels_c)
                score_grad = _score_cotangent(
                    plan, scores.astype(jnp.float32), masks, statistics_r, cotangents_r
                )
                d_params, d_u, d_v = pullback(score_grad.astype(scores.dtype))
                params_grad = jax.tree.map(jnp.add, params_grad, d_params)
                return (params_grad, u_grad_r + d_u), v_grad_c + d_v

            u_grad_r = _vary(jnp.zeros(u_r.shape, jnp.float32), plan.varying_axes)
            (params_grad, u_grad_r), v_grad_tiles = jax.lax.scan(
                column_tile, (params_grad, u_grad_r), (tiles, v_grad_tiles)
            )
            return (params_grad, v_grad_tiles), u_grad_r

        (params_grad, v_grad_tiles), u_grads = jax.lax.scan(
            row_block, (params_grad, v_grad_tiles), (row_blocks, per_row)
        )
        v_grad = v_grad_tiles.reshape(-1, v.shape[1])[:m_block]
        return (params_grad, u_grad + u_grads), (v, column_labels, v_grad)

    zeros = lambda a: jnp.zeros(a.shape, jnp.float32)
    carry = _vary((jax.tree.map(zeros, params), zeros(row_blocks[0])), plan.varying_axes)
    v_grad = _vary(zeros(v), plan.varying_axes)
    (params_grad, u_grad), (_, _, v_grad) = _ring_pass(
        plan, carry, visit, (v, column_labels, v_grad)
    )
    params_grad = jax.tree.map(lambda g, p: g.astype(p.dtype), params_grad, params)
    u_grad = u_grad.reshape(-1, u.shape[1])[:n].astype(u.dtype)
    return params_grad, u_grad, v_grad.astype(v.dtype), None, None, None


def _tiled_statistics(plan: _Plan, params, u, v, offset, row_labels, column_labels):
    @jax.custom_vjp
    def statistics(params, u, v, offset, row_labels, column_labels):
        return _forward(plan, params, u, v, offset, row_labels, column_labels)

    def forward(params, u, v, offset, row_labels, column_labels):
        values = _forward(plan, params, u, v, offset, row_labels, column_labels)
        return values, (params, u, v, offset, row_labels, column_labels, values)

    statistics.defvjp(forward, lambda residuals, g: _backward(plan, residuals, g))
    return statistics(params, u, v, offset, row_labels, column_labels)
