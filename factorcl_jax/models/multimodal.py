"""Encoders and projection heads: one encoder per modality, one head per representation.

A :class:`MultimodalModel` maps the modalities ``(x1, x2)`` to

* ``encoded``: the encoder outputs ``[h1, h2]`` (``[n, encoder_dim]`` each), and
* ``representations``: ``{name: z}`` with ``z = head_name(h_m)`` (``[n, embed_dim]``) for every
  representation of the method, e.g. ``S1, S2, U1, U2`` for FactorCL (``S`` shared, ``U``
  unique, the digit is the modality) or ``Z1, Z2`` for unfactorized baselines.

It is a pure function of its parameters (``init``, ``apply``), composed of encoders in any
form of the network protocol (:mod:`factorcl_jax.networks`: a Flax Linen, NNX or Equinox
module, or an object with ``init(key, x)`` and ``apply(params, x)``) and the library's heads.
Heads are Linear-ReLU-Linear, optionally followed by an L2 normalisation
``z / sqrt(||z||^2 + eps)`` (``normalize_heads``), which keeps every head output on the unit
sphere. :class:`MLPEncoder` is the vector encoder of the paper's synthetic experiment
(``100 -> 512 -> 512 -> 512 -> 128``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.networks.adapters import as_encoder
from factorcl_jax.networks.layers import MLP, at_least_float32, l2_normalize

__all__ = ["MLPEncoder", "MultimodalModel", "embed", "encode_modalities", "init_encoders"]


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


def _mask_kwargs(mask: Array | None) -> dict[str, Array]:
    """Sequence encoders take ``mask=``; vector encoders are called without it."""
    return {} if mask is None else {"mask": mask}


def encode_modalities(
    encoders: Sequence[Any],
    params: Sequence[Any],
    inputs: Sequence[Array],
    masks: Sequence[Array | None] | None = None,
) -> list[Array]:
    """Encoder outputs ``[h_1, ..., h_M]`` (at least float32), one per modality.

    ``masks[m]`` (``[n, T]``, true at real time steps) is passed to sequence encoders as
    ``apply(params, x, mask=mask)``; ``None`` calls ``apply(params, x)``.
    """
    if len(inputs) != len(encoders):
        raise ValueError(f"expected {len(encoders)} modalities, got {len(inputs)}")
    masks = [None] * len(inputs) if masks is None else masks
    return [
        at_least_float32(encoder.apply(p, x, **_mask_kwargs(mask)))
        for encoder, p, x, mask in zip(encoders, params, inputs, masks, strict=True)
    ]


def init_encoders(
    encoders: Sequence[Any],
    key: Array,
    inputs: Sequence[Array],
    masks: Sequence[Array | None] | None = None,
) -> list[Any]:
    """Parameters of every encoder, each from its own key folded out of ``key``."""
    if len(inputs) != len(encoders):
        raise ValueError(f"expected {len(encoders)} modalities, got {len(inputs)}")
    masks = [None] * len(inputs) if masks is None else masks
    return [
        encoder.init(jax.random.fold_in(key, index), x, **_mask_kwargs(mask))
        for index, (encoder, x, mask) in enumerate(zip(encoders, inputs, masks, strict=True))
    ]


@dataclasses.dataclass(frozen=True, eq=False)
class MultimodalModel:
    """Per-modality encoders plus one projection head per named representation.

    ``params = {"encoders": [p_1, ..., p_M], "heads": {name: p}}``.

    Attributes:
      encoders: one encoder per modality, each ``batch -> [n, encoder_dim]``, in any form of
        the network protocol (kept as their protocol objects).
      representations: ``{name: modality index}``, e.g. ``{"S1": 0, "S2": 1, "U1": 0, "U2": 1}``.
      head_hidden: hidden width of each Linear-ReLU-Linear head.
      embed_dim: output width of each head.
      normalize_heads: L2-normalise every head output (``[n, embed_dim]`` rows of unit norm).
        The critics then score bounded inputs, so a main step with frozen CLUB critics cannot
        push the upper-bound terms to ``±1e4`` by inflating the embeddings; this is what keeps
        FactorCL stable at learning rates of ``1e-3``.
      dtype: computation dtype of the heads (e.g. ``jnp.bfloat16``); encoder outputs and
        representations are returned in (at least) float32, parameters are float32.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> model = MultimodalModel((MLPEncoder(8, 4, 1), MLPEncoder(8, 4, 1)), {"Z1": 0, "Z2": 1},
      ...                         head_hidden=8, embed_dim=3)
      >>> inputs = [jnp.ones((5, 2)), jnp.ones((5, 6))]  # doctest: +SLOW
      >>> encoded, representations = model.apply(model.init(jax.random.key(0), inputs), inputs)
      >>> [h.shape for h in encoded], representations["Z2"].shape
      ([(5, 4), (5, 4)], (5, 3))
    """

    encoders: Sequence[Any]
    representations: Mapping[str, int]
    head_hidden: int = 512
    embed_dim: int = 128
    normalize_heads: bool = False
    dtype: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoders", tuple(as_encoder(e) for e in self.encoders))
        object.__setattr__(self, "representations", dict(self.representations))
        bad = {k: m for k, m in self.representations.items() if not 0 <= m < len(self.encoders)}
        if bad:
            raise ValueError(
                f"representations {bad} name modalities the {len(self.encoders)} encoders lack"
            )

    @property
    def head(self) -> MLP:
        """The Linear-ReLU-Linear head every representation has (its own parameters)."""
        return MLP((self.head_hidden, self.embed_dim), dtype=self.dtype)

    def init(
        self, key: Array, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> dict[str, Any]:
        """Parameters of the encoders and heads for batches like ``inputs``."""
        encoder_key, head_key = jax.random.split(key)
        encoders = init_encoders(self.encoders, encoder_key, inputs, masks)
        encoded = encode_modalities(self.encoders, encoders, inputs, masks)
        heads = {
            name: self.head.init(jax.random.fold_in(head_key, index), encoded[modality])
            for index, (name, modality) in enumerate(self.representations.items())
        }
        return {"encoders": encoders, "heads": heads}

    def encode(
        self, params: Any, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> list[Array]:
        """Encoder outputs ``[h_1, ..., h_M]``, one ``[n, encoder_dim]`` per modality."""
        return encode_modalities(self.encoders, params["encoders"], inputs, masks)

    def project(self, params: Any, encoded: Sequence[Array]) -> dict[str, Array]:
        """``{name: head_name(h_modality)}`` for every representation, unit-norm rows when
        ``normalize_heads``."""
        projected = {
            name: at_least_float32(self.head.apply(params["heads"][name], encoded[modality]))
            for name, modality in self.representations.items()
        }
        if not self.normalize_heads:
            return projected
        return {name: l2_normalize(z) for name, z in projected.items()}

    def apply(
        self, params: Any, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], dict[str, Array]]:
        """``(encoded, representations)`` of a batch."""
        encoded = self.encode(params, inputs, masks)
        return encoded, self.project(params, encoded)


def embed(
    model: Any,
    params: Any,
    inputs: Sequence[Array],
    masks: Sequence[Array | None] | None = None,
) -> dict[str, Array]:
    """Representations for evaluation.

    ``model`` is a :class:`MultimodalModel` or a :class:`factorcl_jax.models.FusionModel`
    (anything whose ``apply(params, inputs, masks)`` returns ``(encoded, {name: z})``).

    Returns:
      ``{"encoders": [n, M * encoder_dim]`` concatenated encoder outputs (token outputs are
      averaged over their tokens first), ``"factorized": [n, R * embed_dim]`` all heads
      concatenated in the order of ``model.representations`` (``[Z_S1, Z_S2, Z_U1, Z_U2]``
      for FactorCL)``}``. For a fused model (CoMM, InfMasking) ``"factorized"`` is the
      ``[n, width]`` fused representation before the projection head, the one its papers
      probe.
    """
    encoded, representations = model.apply(params, inputs, masks)
    vectors = [h if h.ndim == 2 else jnp.mean(h, axis=tuple(range(1, h.ndim - 1))) for h in encoded]
    return {
        "encoders": jnp.concatenate(vectors, axis=-1),
        "factorized": jnp.concatenate(list(representations.values()), axis=-1),
    }
