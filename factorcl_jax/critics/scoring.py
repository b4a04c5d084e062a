"""Scoring every pair of a batch with any critic: densely, in row blocks, or over tiles.

Every function takes a critic in any form the protocol accepts (a Flax Linen, NNX or Equinox
module, or an object with ``init``, ``embed_x``, ``embed_y``, ``pair``;
:func:`~factorcl_jax.networks.adapters.as_critic`) and its parameters. The towers run once
per row and once per column; only the pairwise head sees pairs.

* :func:`pairwise_scores`: the ``[n, m]`` score matrix, optionally in row blocks;
* :func:`tiled_bound`: a bound over row x column tiles, without the score matrix
  (:mod:`factorcl_jax.bounds.tiled`);
* :func:`row_statistics`: the tiled row statistics themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds import tiled
from factorcl_jax.bounds.formulas import BOUNDS
from factorcl_jax.networks.adapters import as_critic
from factorcl_jax.validation import check_float_matrix

__all__ = ["check_pair_inputs", "pairwise_scores", "row_statistics", "tiled_bound"]


def check_pair_inputs(x: Array, y: Array) -> None:
    """Raises unless ``x`` and ``y`` are floating-point ``[rows, features]`` arrays."""
    check_float_matrix(x, "x", axes="[rows, features]")
    check_float_matrix(y, "y", axes="[rows, features]")


def pairwise_scores(
    critic: Any,
    params: Any,
    x: Array,
    y: Array,
    *,
    block_size: int | None = None,
) -> Array:
    """Scores ``f(x_i, y_j)`` of every pair: ``[n, dx], [m, dy] -> [n, m]``.

    The towers run once per row and once per column. With ``block_size`` the pairwise head
    runs over blocks of ``block_size`` rows under ``lax.map`` with ``jax.checkpoint``, so the
    head's activations cost ``O(block_size * m * H)`` memory in the forward *and* backward
    pass (the backward recomputes one block at a time) instead of ``O(n * m * H)``. Values and
    gradients equal the dense path; rows are zero-padded up to a multiple of the block.

    Args:
      critic: any critic (see the module docstring).
      params: its parameters, e.g. ``as_critic(critic).init(key, x, y)``.
      x: ``[n, dx]`` rows.
      y: ``[m, dy]`` columns.
      block_size: rows per block, or ``None`` for one dense evaluation.

    Returns:
      ``[n, m]`` scores.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from factorcl_jax import critics
      >>> critic = critics.ConcatCritic(hidden=(16, 16))
      >>> x, y = jnp.ones((8, 3)), jnp.ones((8, 5))
      >>> params = critic.init(jax.random.key(0), x, y)
      >>> critics.pairwise_scores(critic, params, x, y, block_size=4).shape
      (8, 8)
    """
    critic = as_critic(critic)
    check_pair_inputs(x, y)
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        raise ValueError(f"`block_size` must be a positive int or None, got {block_size!r}")
    u, v = critic.embed_x(params, x), critic.embed_y(params, y)
    n = u.shape[0]
    if block_size is None or block_size >= n:
        return critic.pair(params, u, v)

    def score_block(u_block: Array) -> Array:
        return critic.pair(params, u_block, v)

    num_blocks = -(-n // block_size)
    padded = jnp.pad(u, ((0, num_blocks * block_size - n), (0, 0)))
    blocks = padded.reshape(num_blocks, block_size, u.shape[1])
    scores = jax.lax.map(jax.checkpoint(score_block), blocks)
    return scores.reshape(num_blocks * block_size, v.shape[0])[:n]


def row_statistics(
    critic: Any,
    params: Any,
    x: Array,
    y: Array,
    names: Sequence[str],
    **tiles: Any,
) -> dict[str, Array]:
    """Row statistics of the critic's scores over tiles
    (:func:`factorcl_jax.bounds.tiled.tiled_statistics` on its towers' outputs).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from factorcl_jax import critics
      >>> critic = critics.ConcatCritic(hidden=(16, 16))
      >>> x, y = jnp.ones((10, 3)), jnp.ones((10, 5))
      >>> params = critic.init(jax.random.key(0), x, y)
      >>> stats = critics.row_statistics(critic, params, x, y, ["logsumexp"], block_rows=4,
      ...                                block_cols=3)
      >>> stats["logsumexp"].shape
      (10,)
    """
    critic = as_critic(critic)
    check_pair_inputs(x, y)
    u, v = critic.embed_x(params, x), critic.embed_y(params, y)
    return tiled.tiled_statistics(critic.pair, params, u, v, names, **tiles)


def tiled_bound(
    bound: str | Callable[..., Any],
    critic: Any,
    params: Any,
    x: Array,
    y: Array,
    **tiles_and_options: Any,
) -> Any:
    """``bound(pairwise_scores(critic, params, x, y), ...)`` over tiles of the critic.

    The same value and gradients as the dense bound, with memory ``O((n + m) H)`` plus one
    tile of ``block_rows x block_cols`` pairs instead of ``O(n m)`` scores and ``O(b m H)``
    pair activations.

    Args:
      bound: a bound of :mod:`factorcl_jax.bounds` with a tiled form (``bounds.infonce``, ...)
        or its name.
      critic: any critic (see the module docstring).
      params: its parameters.
      x: ``[n, dx]`` rows.
      y: ``[m, dy]`` columns (with ``ring``: this device's ``[m_local, dy]``).
      **tiles_and_options: ``block_rows``, ``block_cols``, ``offset``, ``axis_name``,
        ``ring``, ``row_labels``, ``column_labels`` (see
        :func:`factorcl_jax.bounds.tiled.tiled_value`) and the bound's own options
        (``log_baseline``, ``clip``, ``state``, ``decay``).

    Returns:
      The bound's scalar value, this device's share (``mine``: ``(value, new_state)``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from factorcl_jax import bounds, critics
      >>> critic = critics.ConcatCritic(hidden=(16, 16))
      >>> x, y = jax.random.normal(jax.random.key(1), (10, 3)), jnp.ones((10, 5))
      >>> params = critic.init(jax.random.key(0), x, y)
      >>> tiled = critics.tiled_bound(  # doctest: +SLOW
      ...     bounds.infonce, critic, params, x, y, block_rows=4, block_cols=3)
      >>> dense = bounds.infonce(critics.pairwise_scores(critic, params, x, y))
      >>> bool(jnp.allclose(tiled, dense, rtol=1e-5))
      True
    """
    critic = as_critic(critic)
    check_pair_inputs(x, y)
    name = _bound_name(bound)
    u, v = critic.embed_x(params, x), critic.embed_y(params, y)
    return tiled.tiled_value(name, critic.pair, params, u, v, **tiles_and_options)


def _bound_name(bound: str | Callable[..., Any]) -> str:
    """The registry name of ``bound``: a name, or the public function of
    :mod:`factorcl_jax.bounds` of that name."""
    from factorcl_jax import bounds

    name = bound if isinstance(bound, str) else getattr(bound, "__name__", None)
    entry = BOUNDS.get(name) if isinstance(name, str) else None
    tiled_names = [b.name for b in BOUNDS.values() if b.tiled and not b.gaussian]
    if (
        entry is None
        or name not in tiled_names
        or not (isinstance(bound, str) or getattr(bounds, name, None) is bound)
    ):
        raise ValueError(
            f"`bound` must be one of {tiled_names} (a function of factorcl_jax.bounds or its "
            f"name), got {bound!r}"
        )
    return name
