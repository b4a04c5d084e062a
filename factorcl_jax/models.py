"""Encoders and projection heads: one encoder per modality, one head per representation.

A :class:`MultimodalModel` maps the modalities ``(x1, x2)`` to

* ``encoded``: the encoder outputs ``[h1, h2]`` (``[n, encoder_dim]`` each), and
* ``representations``: ``{name: z}`` with ``z = head_name(h_m)`` (``[n, embed_dim]``) for every
  representation of the method, e.g. ``S1, S2, U1, U2`` for FactorCL (``S`` shared, ``U``
  unique, the digit is the modality) or ``Z1, Z2`` for unfactorized baselines.

Heads are Linear-ReLU-Linear, optionally followed by an L2 normalisation
``z / sqrt(||z||^2 + eps)`` (``normalize_heads``), which keeps every head output on the unit
sphere. Encoders are any Flax modules mapping a modality's batch to
``[n, encoder_dim]``; :class:`MLPEncoder` is the vector encoder of the paper's synthetic
experiment (``100 -> 512 -> 512 -> 512 -> 128``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array, lax

from factorcl_jax.networks.layers import MLP

__all__ = ["MLPEncoder", "MultimodalModel", "embed", "l2_normalize"]


class MLPEncoder(nn.Module):
    """``[n, d_in] -> [n, output_dim]``: ``num_layers`` hidden layers of ``hidden_dim``, ReLU.

    ``dtype`` is the computation dtype of the matmuls (``None``: float32 inputs compute in
    float32); parameters stay float32.
    """

    hidden_dim: int = 512
    output_dim: int = 128
    num_layers: int = 3
    activation: Callable[[Array], Array] = nn.relu
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        widths = (*([self.hidden_dim] * self.num_layers), self.output_dim)
        return MLP(widths, activation=self.activation, dtype=self.dtype)(x)


class MultimodalModel(nn.Module):
    """Per-modality encoders plus one projection head per named representation.

    Attributes:
      encoders: one module per modality, each ``batch -> [n, encoder_dim]``.
      representations: ``{name: modality index}``, e.g. ``{"S1": 0, "S2": 1, "U1": 0, "U2": 1}``.
      head_hidden: hidden width of each Linear-ReLU-Linear head.
      embed_dim: output width of each head.
      normalize_heads: L2-normalise every head output (``[n, embed_dim]`` rows of unit norm).
        The critics then score bounded inputs, so a main step with frozen CLUB critics cannot
        push the upper-bound terms to ``±1e4`` by inflating the embeddings; this is what keeps
        FactorCL stable at learning rates of ``1e-3``.
      dtype: computation dtype of the heads (e.g. ``jnp.bfloat16``); encoder outputs and
        representations are returned in (at least) float32, parameters are float32.
    """

    encoders: Sequence[nn.Module]
    representations: Mapping[str, int]
    head_hidden: int = 512
    embed_dim: int = 128
    normalize_heads: bool = False
    dtype: Any = None

    def setup(self) -> None:
        self.heads = {
            name: MLP((self.head_hidden, self.embed_dim), dtype=self.dtype, name=f"head_{name}")
            for name in self.representations
        }

    def encode(
        self, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> list[Array]:
        """Encoder outputs ``[h_1, ..., h_M]``, one ``[n, encoder_dim]`` per modality.

        ``masks[m]`` (``[n, T]``, true at real time steps) is passed to sequence encoders as
        ``encoder(x, mask=mask)``; ``None`` calls ``encoder(x)``.
        """
        if len(inputs) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} modalities, got {len(inputs)}")
        masks = [None] * len(inputs) if masks is None else masks
        return [
            _at_least_float32(encoder(x) if mask is None else encoder(x, mask=mask))
            for encoder, x, mask in zip(self.encoders, inputs, masks, strict=True)
        ]

    def project(self, encoded: Sequence[Array]) -> dict[str, Array]:
        """``{name: head_name(h_modality)}`` for every representation, unit-norm rows when
        ``normalize_heads``."""
        projected = {
            name: _at_least_float32(self.heads[name](encoded[modality]))
            for name, modality in self.representations.items()
        }
        if not self.normalize_heads:
            return projected
        return {name: l2_normalize(z) for name, z in projected.items()}

    def __call__(
        self, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], dict[str, Array]]:
        encoded = self.encode(inputs, masks)
        return encoded, self.project(encoded)


def _at_least_float32(z: Array) -> Array:
    """``z`` in float32 when computed in a narrower dtype (bfloat16): the [n, E] outputs are
    small, and norms, concatenations and bounds downstream keep float32 precision."""
    return z.astype(jnp.promote_types(z.dtype, jnp.float32))


def l2_normalize(z: Array, eps: float = 1e-12) -> Array:
    """``z / sqrt(sum(z^2, axis=-1) + eps)``: rows of unit norm, finite gradient at ``z = 0``."""
    return z * lax.rsqrt(jnp.sum(jnp.square(z), axis=-1, keepdims=True) + eps)


def embed(
    model: MultimodalModel,
    params: Any,
    inputs: Sequence[Array],
    masks: Sequence[Array | None] | None = None,
) -> dict[str, Array]:
    """Representations for evaluation.

    ``model`` is a :class:`MultimodalModel` or a :class:`factorcl_jax.fusion.FusionModel`
    (any module whose ``apply(params, inputs, masks)`` returns ``(encoded, {name: z})``).

    Returns:
      ``{"encoders": [n, M * encoder_dim]`` concatenated encoder outputs,
      ``"factorized": [n, R * embed_dim]`` all heads concatenated in the order of
      ``model.representations`` (``[Z_S1, Z_S2, Z_U1, Z_U2]`` for FactorCL)``}``. For a fused
      model (CoMM, InfMasking) ``"factorized"`` is the ``[n, width]`` fused representation
      before the projection head, the one its papers probe.
    """
    encoded, representations = model.apply(params, inputs, masks)
    return {
        "encoders": jnp.concatenate(encoded, axis=-1),
        "factorized": jnp.concatenate(list(representations.values()), axis=-1),
    }
