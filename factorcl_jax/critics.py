"""Critics that score every pair of a batch: two towers plus a pairwise head.

A critic ``f(x, y)`` is evaluated on all ``n * m`` pairs of a batch to feed the bounds of
:mod:`factorcl_jax.bounds`. Every critic here is a ``flax.linen`` module with three methods:

* ``embed_x(x: [n, dx]) -> u: [n, H]`` — computed once per row,
* ``embed_y(y: [m, dy]) -> v: [m, H]`` — computed once per column,
* ``pair(u: [b, H], v: [m, H]) -> scores: [b, m]`` — the pairwise head,

and ``__call__(x, y)`` = ``pair(embed_x(x), embed_y(y))`` (used by ``init``, which scores only
the first row and column: parameters depend on widths, not on the batch). Any module with
these methods works with :func:`pairwise_scores` and with :func:`tiled_bound`, which computes a
bound over row x column tiles without the score matrix (:mod:`factorcl_jax.tiled`).

The concat critic ``MLP([x; y])`` of the FactorCL reference has first layer
``W [x; y] + b = A x + (B y + b)``, so ``u = A x`` and ``v = B y + b`` are per-row and
per-column; only ``relu(u_i + v_j)`` and the later layers are pairwise. This never builds the
``[n, m, dx + dy]`` tile and saves the first layer's ``n * m * (dx + dy) * H`` multiply-adds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.layers import MLP
from factorcl_jax.tiled import tiled_bound

__all__ = [
    "ConcatCritic",
    "GaussianCritic",
    "SeparableCritic",
    "pair_sums",
    "pairwise_scores",
    "tiled_bound",
]


class ConcatCritic(nn.Module):
    """The MLP critic ``f(x, y) = MLP([x; y])``, scored over all pairs without tiling.

    Attributes:
      hidden: widths of the hidden layers (the reference uses ``(512, 512)``).
      activation: nonlinearity after every hidden layer.
      output_activation: applied to the scalar output, e.g. ``nn.softplus`` to reproduce a
        bounded-below reference critic; ``None`` leaves the score unconstrained.
      dtype: computation dtype of the towers and the pair head, e.g. ``jnp.bfloat16`` for
        bfloat16 matmuls and pair activations (``None``: that of the inputs); parameters
        are float32, and the scores come out in ``dtype`` for the caller to reduce in float32.
    """

    hidden: Sequence[int] = (512, 512)
    activation: Callable[[Array], Array] = nn.relu
    output_activation: Callable[[Array], Array] | None = None
    dtype: Any = None

    def setup(self) -> None:
        if len(self.hidden) < 1:
            raise ValueError(f"`hidden` needs at least one layer width, got {self.hidden}")
        self.x_projection = nn.Dense(self.hidden[0], use_bias=False, dtype=self.dtype)
        self.y_projection = nn.Dense(self.hidden[0], dtype=self.dtype)
        self.head = MLP((*self.hidden[1:], 1), activation=self.activation, dtype=self.dtype)

    def embed_x(self, x: Array) -> Array:
        """``[n, dx] -> [n, hidden[0]]``: the x part ``A x`` of the first layer."""
        return self.x_projection(x)

    def embed_y(self, y: Array) -> Array:
        """``[m, dy] -> [m, hidden[0]]``: the y part ``B y + b`` of the first layer."""
        return self.y_projection(y)

    def pair(self, u: Array, v: Array) -> Array:
        """``[b, H], [m, H] -> [b, m]``: the rest of the MLP on ``activation(u_i + v_j)``.

        The ``b * m`` pairs are flattened to one ``[b * m, H]`` matrix (:func:`pair_sums`) so
        every head layer is a single 2-D GEMM (on CPU ~1.5x faster than a rank-3
        ``dot_general``).
        """
        b, m = u.shape[0], v.shape[0]
        scores = self.head(self.activation(pair_sums(u, v))).reshape(b, m)
        return scores if self.output_activation is None else self.output_activation(scores)

    def __call__(self, x: Array, y: Array) -> Array:
        return self.pair(*_towers(self, x, y))


def _towers(critic: nn.Module, x: Array, y: Array) -> tuple[Array, Array]:
    """``(embed_x(x), embed_y(y))``; under ``init`` of the first row and column only.

    Parameters depend on feature widths alone, so ``critic.init(key, x, y)`` with a real batch
    gives the same variables without scoring its ``n * m`` pairs.
    """
    if critic.is_initializing():
        x, y = x[:1], y[:1]
    return critic.embed_x(x), critic.embed_y(y)


class SeparableCritic(nn.Module):
    """The separable critic ``f(x, y) = g(x) . h(y)`` with MLP towers ``g`` and ``h``.

    Scores of all pairs are one matmul ``[n, E] @ [E, m]``.

    Attributes:
      hidden: hidden widths of each tower.
      embed_dim: width ``E`` of the towers' outputs.
      activation: nonlinearity of the towers.
      dtype: computation dtype of the towers and the dot products (``None``: the inputs');
        parameters are float32.
    """

    hidden: Sequence[int] = (512,)
    embed_dim: int = 128
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = None

    def setup(self) -> None:
        tower = (*self.hidden, self.embed_dim)
        self.x_tower = MLP(tower, activation=self.activation, dtype=self.dtype)
        self.y_tower = MLP(tower, activation=self.activation, dtype=self.dtype)

    def embed_x(self, x: Array) -> Array:
        """``[n, dx] -> [n, E]``."""
        return self.x_tower(x)

    def embed_y(self, y: Array) -> Array:
        """``[m, dy] -> [m, E]``."""
        return self.y_tower(y)

    def pair(self, u: Array, v: Array) -> Array:
        """``[b, E], [m, E] -> [b, m]`` dot products."""
        return u @ v.T

    def __call__(self, x: Array, y: Array) -> Array:
        return self.pair(*_towers(self, x, y))


class GaussianCritic(nn.Module):
    """CLUB's variational network ``q(y | x) = N(mu(x), diag exp(l(x)))``.

    ``__call__(x: [n, dx], y: [m, d]) -> (mean: [n, d], log_variance: [n, d])``; ``y`` is only
    read for its width ``d``. The log-variance passes through ``tanh`` (bounded in
    ``[-1, 1]``) for stability, as in Cheng et al. 2020. Use it with
    :func:`factorcl_jax.bounds.gaussian_log_likelihood` (training) and
    :func:`factorcl_jax.bounds.club_gaussian` (estimate).

    Attributes:
      hidden: hidden widths of the mean and log-variance networks.
      activation: their nonlinearity.
      dtype: computation dtype (``None``: the inputs'); parameters are float32.
    """

    hidden: Sequence[int] = (512,)
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, y: Array) -> tuple[Array, Array]:
        widths = (*self.hidden, y.shape[-1])
        mean = MLP(widths, activation=self.activation, dtype=self.dtype, name="mean")(x)
        log_variance = MLP(widths, activation=self.activation, dtype=self.dtype, name="log_var")(x)
        return mean, jnp.tanh(log_variance)


@jax.custom_vjp
def pair_sums(u: Array, v: Array) -> Array:
    """``[b, H], [m, H] -> [b * m, H]``: row ``i * m + j`` is ``u_i + v_j``.

    The same values as ``(u[:, None] + v[None]).reshape(b * m, H)``, with a backward pass
    written for speed: the cotangent ``g`` is summed over columns as a reduction along the
    contiguous axis (``du_i = sum_j g_ij``) and over rows as a matrix-vector product
    (``dv = 1^T g``), where XLA's CPU reduction over the leading axis of a ``[b, m, H]``
    array is ~50x slower. Differentiable in reverse mode (``grad``, ``vjp``; also twice).

    Example:
      >>> pair_sums(jnp.array([[0.0], [10.0]]), jnp.array([[1.0], [2.0], [3.0]]))[:, 0]
      Array([ 1.,  2.,  3., 11., 12., 13.], dtype=float32)
    """
    return (u[:, None, :] + v[None, :, :]).reshape(u.shape[0] * v.shape[0], u.shape[1])


def _pair_sums_forward(u: Array, v: Array) -> tuple[Array, tuple[int, int]]:
    return pair_sums(u, v), (u.shape[0], v.shape[0])


def _pair_sums_backward(shapes: tuple[int, int], g: Array) -> tuple[Array, Array]:
    b, m = shapes
    du = g.reshape(b, m, -1).sum(axis=1)
    dv = (jnp.ones((b,), g.dtype) @ g.reshape(b, -1)).reshape(m, -1)
    return du, dv


pair_sums.defvjp(_pair_sums_forward, _pair_sums_backward)


def _check_pair_inputs(x: Array, y: Array) -> None:
    for name, array in (("x", x), ("y", y)):
        if getattr(array, "ndim", None) != 2:
            raise ValueError(
                f"`{name}` must have shape [rows, features], got shape "
                f"{getattr(array, 'shape', type(array).__name__)}"
            )
        if not jnp.issubdtype(array.dtype, jnp.floating):
            raise TypeError(f"`{name}` must be floating-point, got dtype {array.dtype}")


def pairwise_scores(
    critic: nn.Module,
    params,
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
      critic: a module with ``embed_x``, ``embed_y`` and ``pair`` (see module docstring).
      params: its variables, as returned by ``critic.init(key, x, y)``.
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
    _check_pair_inputs(x, y)
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"`block_size` must be a positive int or None, got {block_size!r}")
    u = critic.apply(params, x, method=critic.embed_x)
    v = critic.apply(params, y, method=critic.embed_y)
    n = u.shape[0]
    if block_size is None or block_size >= n:
        return critic.apply(params, u, v, method=critic.pair)

    def score_block(u_block: Array) -> Array:
        return critic.apply(params, u_block, v, method=critic.pair)

    num_blocks = -(-n // block_size)
    padded = jnp.pad(u, ((0, num_blocks * block_size - n), (0, 0)))
    blocks = padded.reshape(num_blocks, block_size, u.shape[1])
    scores = jax.lax.map(jax.checkpoint(score_block), blocks)
    return scores.reshape(num_blocks * block_size, v.shape[0])[:n]
