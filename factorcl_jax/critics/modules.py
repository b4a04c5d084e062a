"""The library's critics, as Flax Linen modules: two towers plus a pairwise head.

Each module has the methods of the critic protocol (:mod:`factorcl_jax.networks.protocol`),
as module methods:

* ``embed_x(x: [n, dx]) -> u: [n, H]`` — computed once per row,
* ``embed_y(y: [m, dy]) -> v: [m, H]`` — computed once per column,
* ``pair(u: [b, H], v: [m, H]) -> scores: [b, m]`` — the pairwise head,

and ``__call__(x, y)`` = ``pair(embed_x(x), embed_y(y))`` (used by ``init``, which scores only
the first row and column: parameters depend on widths, not on the batch); the Linen adapter
(:class:`~factorcl_jax.networks.adapters.LinenCritic`) turns them into the protocol's pure
functions, so they work wherever a critic does (:mod:`factorcl_jax.critics.scoring`).

The concat critic ``MLP([x; y])`` of the FactorCL reference has first layer
``W [x; y] + b = A x + (B y + b)``, so ``u = A x`` and ``v = B y + b`` are per-row and
per-column; only ``relu(u_i + v_j)`` and the later layers are pairwise. This never builds the
``[n, m, dx + dy]`` tile and saves the first layer's ``n * m * (dx + dy) * H`` multiply-adds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from factorcl_jax.critics.heads import pair_sums, relu_pair_head
from factorcl_jax.networks.layers import MLP, l2_normalize

__all__ = ["ConcatCritic", "CosineCritic", "GaussianCritic", "SeparableCritic"]


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
        self.head = _PairHead(tuple(self.hidden[1:]), self.activation, dtype=self.dtype)

    def embed_x(self, x: Array) -> Array:
        """``[n, dx] -> [n, hidden[0]]``: the x part ``A x`` of the first layer."""
        return self.x_projection(x)

    def embed_y(self, y: Array) -> Array:
        """``[m, dy] -> [m, hidden[0]]``: the y part ``B y + b`` of the first layer."""
        return self.y_projection(y)

    def pair(self, u: Array, v: Array) -> Array:
        """``[b, H], [m, H] -> [b, m]``: the rest of the MLP on ``activation(u_i + v_j)``.

        With one hidden layer and ReLU the whole pair head is :func:`relu_pair_head`, which
        never writes the ``[b * m, H]`` activations to memory. Deeper heads flatten
        the ``b * m`` pairs to one ``[b * m, H]`` matrix (:func:`pair_sums`) so every head
        layer is a single 2-D GEMM (faster on CPU than a rank-3 ``dot_general``).
        """
        scores = self.head(u, v)
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


class _OutputLayer(nn.Module):
    """The variables of ``nn.Dense(1)`` (same names, shapes and initialisers), unapplied."""

    @nn.compact
    def __call__(self, width: int) -> tuple[Array, Array]:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (width, 1))
        return kernel[:, 0], self.param("bias", nn.initializers.zeros_init(), (1,))[0]


class _PairHead(nn.Module):
    """``[b, H], [m, H] -> [b, m]``: ``MLP((*hidden, 1))`` on ``activation(u_i + v_j)``.

    Its variables are named as ``MLP``'s (``dense_0``, ``dense_1``, ...).
    """

    hidden: tuple[int, ...]
    activation: Callable[[Array], Array]
    dtype: Any = None

    @nn.compact
    def __call__(self, u: Array, v: Array) -> Array:
        b, m = u.shape[0], v.shape[0]
        if not self.hidden and self.activation is nn.relu:
            kernel, bias = _OutputLayer(name="dense_0")(u.shape[1])
            return relu_pair_head(u, v, kernel.astype(u.dtype), bias.astype(u.dtype))
        h = self.activation(pair_sums(u, v))
        for index, width in enumerate(self.hidden):
            h = self.activation(nn.Dense(width, dtype=self.dtype, name=f"dense_{index}")(h))
        return nn.Dense(1, dtype=self.dtype, name=f"dense_{len(self.hidden)}")(h).reshape(b, m)


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


class CosineCritic(nn.Module):
    """``f(x, y) = cos(x, y) / temperature``: the critic of CoMM and InfMasking, no parameters.

    Separable like :class:`SeparableCritic`, so all pairs are one matmul.

    Example:
      >>> critic = CosineCritic(temperature=0.5)
      >>> x = jnp.array([[1.0, 0.0], [0.0, 2.0]])
      >>> critic.apply({}, x, x)
      Array([[2., 0.],
             [0., 2.]], dtype=float32)
    """

    temperature: float = 0.1

    def _check(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"CosineCritic: `temperature` must be > 0, got {self.temperature}")

    def embed_x(self, x: Array) -> Array:
        """``[n, d] -> [n, d]``: unit rows divided by the temperature."""
        self._check()
        return l2_normalize(x) / self.temperature

    def embed_y(self, y: Array) -> Array:
        """``[m, d] -> [m, d]``: unit rows."""
        return l2_normalize(y)

    def pair(self, u: Array, v: Array) -> Array:
        """``[b, d], [m, d] -> [b, m]`` dot products."""
        return u @ v.T

    def __call__(self, x: Array, y: Array) -> Array:
        return self.pair(self.embed_x(x), self.embed_y(y))
