"""Sequence encoders for time-series modalities (MultiBench affect data, MIMIC).

Both encoders map a batch of sequences to one vector per sequence,

    ``encoder(x [n, T, d], mask [n, T] bool | None = None) -> [n, output_dim]``,

where ``mask[i, t]`` is true at real time steps and false on padding (``None``: every step is
real). Padding never changes the output: a sequence padded to any length encodes to the same
vector (up to float rounding). That makes them usable as the per-modality encoders of every
FactorCL method: :class:`factorcl_jax.models.MultimodalModel` calls ``encoder(x, mask=mask)``
when the batch carries ``"mask1"``/``"mask2"``.

* :class:`TransformerEncoder`: a linear input projection (MultiBench's 1x1 convolution), a
  learnable positional embedding, pre-LayerNorm self-attention blocks whose attention ignores
  padding keys, and masked mean pooling. MultiBench sizes it ``d -> 2 d`` (MOSI: vision
  ``20 -> 40``, text ``300 -> 600``).
* :class:`GRUEncoder`: a GRU whose state is not updated at padding steps; the output is the
  state after the last real step (``pooling="last"``) or the masked mean of the states
  (``pooling="mean"``). MultiBench's MIMIC time-series encoder is a GRU ``12 -> 30``.

Example:
  >>> import jax, jax.numpy as jnp
  >>> encoder = TransformerEncoder(output_dim=8, num_heads=2, num_layers=1)
  >>> x, mask = jnp.ones((3, 5, 4)), jnp.arange(5)[None, :] < jnp.array([[5], [3], [1]])
  >>> params = encoder.init(jax.random.key(0), x, mask=mask)  # doctest: +SLOW
  >>> encoder.apply(params, x, mask=mask).shape
  (3, 8)
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

__all__ = ["GRUEncoder", "TransformerEncoder", "masked_mean"]


def _check_sequence(x: Any, mask: Any, name: str) -> tuple[Array, Array]:
    """Validates ``x [n, T, d]`` and ``mask [n, T]``; returns ``(x, bool mask)``."""
    if getattr(x, "ndim", None) != 3:
        raise ValueError(
            f"{name}: `x` must have shape [n, T, d], got {getattr(x, 'shape', type(x).__name__)}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name}: `x` must be floating-point, got dtype {x.dtype}")
    if mask is None:
        return x, jnp.ones(x.shape[:2], bool)
    if getattr(mask, "shape", None) != x.shape[:2]:
        raise ValueError(
            f"{name}: `mask` must have shape [n, T] = {x.shape[:2]} to match `x` of shape "
            f"{x.shape}, got {getattr(mask, 'shape', type(mask).__name__)}"
        )
    return x, jnp.asarray(mask).astype(bool)


def masked_mean(values: Array, mask: Array) -> Array:
    """Mean over real steps: ``[n, T, d], [n, T] bool -> [n, d]``.

    ``out_i = sum_t mask_it * values_it / max(sum_t mask_it, 1)``, so an all-padding row gives 0.

    Example:
      >>> masked_mean(jnp.arange(6.0).reshape(1, 3, 2), jnp.array([[True, True, False]]))
      Array([[1., 2.]], dtype=float32)
    """
    weights = mask.astype(values.dtype)[:, :, None]
    total = jnp.sum(values * weights, axis=1)
    count = jnp.maximum(jnp.sum(weights, axis=1), jnp.ones((), values.dtype))
    return total / count


class TransformerEncoder(nn.Module):
    """Transformer over time, masked mean pooled: ``[n, T, d] -> [n, output_dim]``.

    ``h_0 = x W_in + b + P[:T]`` (``P`` a learnable ``[max_length, output_dim]`` table), then
    ``num_layers`` pre-LayerNorm blocks ``h += MHA(LN(h))``, ``h += MLP(LN(h))`` whose
    attention only attends to real steps, a final LayerNorm, and the mean over real steps.
    No dropout, so the module is deterministic (the trainer passes no dropout key).

    Attributes:
      output_dim: model width and output width; divisible by ``num_heads``.
      num_heads: attention heads.
      num_layers: Transformer blocks (MultiBench uses 5 layers, 5 heads).
      mlp_dim: hidden width of each block's MLP (``None``: ``4 * output_dim``).
      max_length: longest sequence the positional table covers.
    """

    output_dim: int
    num_heads: int = 5
    num_layers: int = 5
    mlp_dim: int | None = None
    max_length: int = 512

    @nn.compact
    def __call__(self, x: Array, mask: Array | None = None) -> Array:
        x, mask = _check_sequence(x, mask, type(self).__name__)
        length = x.shape[1]
        if self.output_dim % self.num_heads:
            raise ValueError(
                f"TransformerEncoder: `output_dim` ({self.output_dim}) must be divisible by "
                f"`num_heads` ({self.num_heads})"
            )
        if length > self.max_length:
            raise ValueError(
                f"TransformerEncoder: sequences have {length} steps, more than `max_length` "
                f"({self.max_length}) positional embeddings"
            )
        positions = self.param(
            "positional_embedding",
            nn.initializers.normal(0.02),
            (self.max_length, self.output_dim),
        )
        h = nn.Dense(self.output_dim, name="input_projection")(x) + positions[None, :length]
        attention_mask = nn.make_attention_mask(jnp.ones_like(mask), mask)  # keys: real only
        for index in range(self.num_layers):
            y = nn.LayerNorm(name=f"attention_norm_{index}")(h)
            h = h + nn.MultiHeadDotProductAttention(self.num_heads, name=f"attention_{index}")(
                y, mask=attention_mask
            )
            y = nn.LayerNorm(name=f"mlp_norm_{index}")(h)
            y = nn.Dense(self.mlp_dim or 4 * self.output_dim, name=f"mlp_hidden_{index}")(y)
            h = h + nn.Dense(self.output_dim, name=f"mlp_out_{index}")(nn.gelu(y))
        return masked_mean(nn.LayerNorm(name="final_norm")(h), mask)


class _MaskedGRUStep(nn.Module):
    """One GRU step whose state is kept where the step is padding."""

    hidden_dim: int

    @nn.compact
    def __call__(self, carry: Array, step: tuple[Array, Array]) -> tuple[Array, Array]:
        x_t, real_t = step
        updated, _ = nn.GRUCell(self.hidden_dim, name="cell")(carry, x_t)
        carry = jnp.where(real_t[:, None], updated, carry)
        return carry, carry


class GRUEncoder(nn.Module):
    """GRU over time: ``[n, T, d] -> [n, hidden_dim]``; padding steps leave the state alone.

    ``s_t = GRU(s_{t-1}, x_t)`` at real steps and ``s_t = s_{t-1}`` at padding (``s_0 = 0``),
    so the state after the sequence is the state after its last real step wherever the
    padding sits.

    Attributes:
      hidden_dim: state width, also the output width.
      pooling: ``"last"`` (state after the last real step) or ``"mean"`` (mean of the states
        at real steps).
    """

    hidden_dim: int
    pooling: str = "last"

    @nn.compact
    def __call__(self, x: Array, mask: Array | None = None) -> Array:
        x, mask = _check_sequence(x, mask, type(self).__name__)
        if self.pooling not in ("last", "mean"):
            raise ValueError(
                f"GRUEncoder: `pooling` must be 'last' or 'mean', got {self.pooling!r}"
            )
        scan = nn.scan(
            _MaskedGRUStep,
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        initial = jnp.zeros((x.shape[0], self.hidden_dim), x.dtype)
        last, states = scan(self.hidden_dim, name="gru")(initial, (x, mask))
        return last if self.pooling == "last" else masked_mean(states, mask)
