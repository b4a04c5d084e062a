r"""Fused multimodal representations: the model and critic of CoMM and InfMasking.

FactorCL keeps one representation per modality (and per factor). Its successors fuse the
modalities into *one* representation and align fused representations of different views of
the batch:

* **CoMM** (Dufumier, Castillo-Navarro, Tuia & Thiran, "What to align in multimodal contrastive
  learning?", ICLR 2025, arXiv:2409.07402) maximises

  .. math::
      I_{NCE}(Z'; Z'') + \sum_{i=1}^{M} I_{NCE}(Z_i; Z')

  where ``Z' = f(t'(X))`` and ``Z'' = f(t''(X))`` fuse two multimodal augmentations of the
  input and ``Z_i`` fuses an augmented input whose modalities other than ``i`` are masked out.
* **InfMasking** (Wen, Dai, Liu, Zheng, Dai, Wang, Kang, Wang, Xu & Duan, "InfMasking:
  Unleashing Synergistic Information by Contrastive Multimodal Interactions", NeurIPS 2025,
  arXiv:2509.25270) adds to CoMM's terms the alignment of the unmasked ``Z'`` with fused
  representations of the same input in which most tokens of *every* modality are masked, at
  random per sample; the expectation over infinitely many masks is replaced by a closed form
  (:func:`factorcl_jax.bounds.infmasking`).

Both are lists of terms of :mod:`factorcl_jax.objectives` (``objectives.METHODS["CoMM"]``,
``["InfMasking"]``) over named *fused views* of the batch (:class:`objectives.FusedView`);
:mod:`factorcl_jax.training.views` computes the views a method declares with
:func:`view_representations`. This module holds what the terms need:

* :class:`FusionModel`: per-modality encoders, a linear adapter from each encoder output to
  ``tokens_per_modality`` tokens, and a small pre-LayerNorm Transformer over a CLS token and
  every modality's tokens; the fused representation is the CLS output after a final
  LayerNorm, and a Linear-ReLU-Linear projection head maps it to the space the critic scores.
  Modalities are masked out by excluding their tokens from attention; a masked token is
  replaced by a learned mask token.
* :class:`~factorcl_jax.critics.CosineCritic`: ``f(z, z') = cos(z, z') / temperature``, the
  critic of both papers.
* :func:`factorcl_jax.bounds.infmasking`: InfMasking's bound (with the other bounds).

Choices made here where the papers leave room (checked against their public code):

* **Symmetrisation (CoMM).** The code fuses the single-modality inputs of *both* augmentations
  and aligns each with the other augmentation's full representation, averaging the two
  directions: the terms are ``I(Z'_i; Z'')`` and ``I(Z''_i; Z')`` with weight 1/2 each, and
  ``I(Z'; Z'')`` likewise.
* **Estimator.** The code uses SimCLR's NT-Xent (negatives from both augmentations); here every
  term is :func:`factorcl_jax.bounds.infonce` on cross-view scores, the papers' ``I_NCE`` and
  the estimator of every other method of the library, so all methods compare on equal terms.
* **Critic and head.** Cosine similarity at temperature 0.1 (both codes' default) on a
  projection head; the code's head is a 3-layer MLP with BatchNorm, here the library's
  Linear-ReLU-Linear head (no batch statistics).
* **Tokens.** The code feeds the fusion the encoders' token sequences (or one token per input
  feature for tabular data). Here an encoder returns either tokens ``[n, T, D]`` (e.g. the
  patch tokens of :class:`factorcl_jax.models.cnn.AlexNetEncoder`), each mapped linearly to
  the fusion's width, or a vector ``[n, D]`` (sequence encoders pool over time) that the
  adapter splits into ``tokens_per_modality`` tokens.
* **Masking.** CoMM drops a masked modality's tokens from the fusion: here they are excluded as
  attention keys, which is the same (a masked modality's input gets exactly zero gradient).
  InfMasking keeps ``floor(T (1 - ratio))`` random tokens of each modality per sample and
  replaces the others by a learned mask token that stays in attention, as its code does.
* **InfMasking's views and weights.** The masked views come from the same augmentation as the
  representation they are aligned with, for both augmentations (the code's default); each of
  the two masking terms weighs as much as one symmetrised CoMM term pair (the code averages
  the five losses). Defaults follow the code's synthetic (Trifeatures) runs: mask ratio 0.7,
  6 masked views, ``lambda = 1``. The code ramps ``lambda`` linearly over the epochs and also
  uses the other rows' *unmasked* representations as negatives; here ``lambda`` is constant
  and the negatives are the other rows' masked views.
* **What is probed.** The fused representation before the projection head (the codes'
  feature extraction): ``models.embed`` returns it as ``"factorized"`` for a fused model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.models.multimodal import encode_modalities, init_encoders
from factorcl_jax.networks.adapters import as_encoder
from factorcl_jax.networks.layers import MLP

__all__ = ["FusionCore", "FusionModel"]


class _TokenAdapter(nn.Module):
    """One modality's encoder output as ``T`` tokens of ``width``: a vector ``[n, D]`` through
    ``Dense(T * width)`` split into ``T`` tokens, or tokens ``[n, T, D]`` each through
    ``Dense(width)``."""

    tokens: int
    width: int

    @nn.compact
    def __call__(self, h: Array) -> Array:
        if h.ndim == 3:
            if h.shape[1] != self.tokens:
                raise ValueError(
                    f"FusionModel: an encoder returns {h.shape[1]} tokens, but "
                    f"`tokens_per_modality` is {self.tokens}"
                )
            return nn.Dense(self.width, name="projection")(h)
        if h.ndim != 2:
            raise ValueError(
                f"FusionModel: an encoder output must be [n, D] or tokens [n, T, D], got shape "
                f"{h.shape}"
            )
        projected = nn.Dense(self.tokens * self.width, name="projection")(h)
        return projected.reshape(h.shape[0], self.tokens, self.width)


class FusionCore(nn.Module):
    """What fuses the encoder outputs: modality tokens, a CLS token, the Transformer, the head.

    Attributes:
      num_modalities: ``M``.
      tokens_per_modality: ``T``: a vector ``h_m [n, D]`` becomes ``T`` tokens
        ``A_m h_m + b_m``; a token output ``h_m [n, T, D]`` must hold ``T`` tokens, each
        mapped by ``A_m``.
      width: token width; divisible by ``num_heads``.
      num_heads: attention heads.
      num_layers: Transformer blocks (the papers use 1).
      mlp_dim: hidden width of each block's MLP (``None``: ``4 * width``).
      head_hidden: hidden width of the projection head.
      embed_dim: output width of the projection head.
    """

    num_modalities: int
    tokens_per_modality: int = 4
    width: int = 64
    num_heads: int = 4
    num_layers: int = 1
    mlp_dim: int | None = None
    head_hidden: int = 512
    embed_dim: int = 128

    def setup(self) -> None:
        if not isinstance(self.tokens_per_modality, int) or self.tokens_per_modality < 1:
            raise ValueError(
                f"FusionModel: `tokens_per_modality` must be an int >= 1, "
                f"got {self.tokens_per_modality!r}"
            )
        if self.width % self.num_heads:
            raise ValueError(
                f"FusionModel: `width` ({self.width}) must be divisible by `num_heads` "
                f"({self.num_heads})"
            )
        self.adapters = [
            _TokenAdapter(self.tokens_per_modality, self.width, name=f"tokens_{m}")
            for m in range(self.num_modalities)
        ]
        self.cls_token = self.param("cls_token", nn.initializers.normal(0.02), (self.width,))
        self.mask_token = self.param("mask_token", nn.initializers.normal(0.02), (self.width,))
        self.attention_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
        self.attentions = [
            nn.MultiHeadDotProductAttention(self.num_heads) for _ in range(self.num_layers)
        ]
        self.mlp_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
        self.mlps = [
            MLP((self.mlp_dim or 4 * self.width, self.width), activation=nn.gelu)
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm()
        self.head = MLP((self.head_hidden, self.embed_dim))

    def tokens(self, encoded: Sequence[Array]) -> Array:
        """``[n, M * T, width]`` modality tokens, modality by modality (token ``l`` belongs to
        modality ``l // T``)."""
        if len(encoded) != self.num_modalities:
            raise ValueError(f"expected {self.num_modalities} modalities, got {len(encoded)}")
        tokens = [adapter(h) for adapter, h in zip(self.adapters, encoded, strict=True)]
        return jnp.concatenate(tokens, axis=1)

    def fuse(
        self, tokens: Array, attend: Array | None = None, replace: Array | None = None
    ) -> Array:
        """``[r, L, width] -> [r, width]``: the CLS output of the Transformer.

        Args:
          tokens: ``[r, L, width]`` modality tokens.
          attend: ``[r, L]`` bool, false at tokens excluded from attention (a masked-out
            modality): they cannot change the output. ``None``: all attended.
          replace: ``[r, L]`` bool, true at tokens replaced by the learned mask token
            (InfMasking's random masking). ``None``: none.
        """
        rows, length, _ = tokens.shape
        if replace is not None:
            tokens = jnp.where(replace[:, :, None], self.mask_token[None, None, :], tokens)
        cls = jnp.broadcast_to(self.cls_token[None, None, :], (rows, 1, self.width))
        h = jnp.concatenate([cls, tokens], axis=1)
        mask = None
        if attend is not None:
            keys = jnp.concatenate([jnp.ones((rows, 1), bool), attend], axis=1)
            mask = nn.make_attention_mask(jnp.ones((rows, length + 1), bool), keys)
        for norm, attention, mlp_norm, mlp in zip(
            self.attention_norms, self.attentions, self.mlp_norms, self.mlps, strict=True
        ):
            y = norm(h)
            h = h + attention(y, mask=mask)
            h = h + mlp(mlp_norm(h))
        return self.final_norm(h)[:, 0]

    def fuse_and_project(
        self, tokens: Array, attend: Array | None = None, replace: Array | None = None
    ) -> Array:
        """The projection head on :meth:`fuse`: ``[r, L, width] -> [r, embed_dim]``."""
        return self.head(self.fuse(tokens, attend, replace))

    def __call__(self, encoded: Sequence[Array]) -> Array:
        """The fused representation of the full input (creates every parameter)."""
        fused = self.fuse(self.tokens(encoded))
        self.head(fused)
        return fused


@dataclasses.dataclass(frozen=True, eq=False)
class FusionModel:
    """Encoders, modality tokens and a Transformer that fuses them into one representation.

    ``x_m -> h_m = encoder_m(x_m)`` (``[n, D_m]``, or tokens ``[n, T, D_m]``) ``-> T`` tokens
    ``[n, T, width]``; the ``M * T`` tokens and a learned CLS token go through ``num_layers``
    pre-LayerNorm blocks (``t += MHA(LN(t))``, ``t += MLP(LN(t))``) and a final LayerNorm; the
    CLS output is the fused representation ``[n, width]``, and a Linear-ReLU-Linear head
    projects it to the ``[n, embed_dim]`` that the critic scores (:class:`FusionCore`).
    ``params = {"encoders": [p_1, ..., p_M], "fusion": core parameters}``.

    Attributes:
      encoders: one encoder per modality in any form of the network protocol (sequence
        encoders get ``mask=`` like in :class:`~factorcl_jax.models.MultimodalModel`).
      tokens_per_modality: ``T``, tokens per modality.
      width: token width; divisible by ``num_heads``.
      num_heads: attention heads.
      num_layers: Transformer blocks (the papers use 1).
      mlp_dim: hidden width of each block's MLP (``None``: ``4 * width``).
      head_hidden: hidden width of the projection head.
      embed_dim: output width of the projection head.

    Example:
      >>> from factorcl_jax.models import MLPEncoder
      >>> model = FusionModel((MLPEncoder(16, 8, 1), MLPEncoder(16, 8, 1)), width=8, num_heads=2,
      ...                     head_hidden=16, embed_dim=4)
      >>> inputs = [jnp.ones((3, 5)), jnp.ones((3, 6))]  # doctest: +SLOW
      >>> encoded, fused = model.apply(model.init(jax.random.key(0), inputs), inputs)
      >>> [h.shape for h in encoded], fused["fused"].shape
      ([(3, 8), (3, 8)], (3, 8))
    """

    encoders: Sequence[Any]
    tokens_per_modality: int = 4
    width: int = 64
    num_heads: int = 4
    num_layers: int = 1
    mlp_dim: int | None = None
    head_hidden: int = 512
    embed_dim: int = 128

    def __post_init__(self) -> None:
        object.__setattr__(self, "encoders", tuple(as_encoder(e) for e in self.encoders))

    @property
    def representations(self) -> dict[str, int]:
        """``{}``: a fused model has no per-modality heads; its methods read fused views."""
        return {}

    @property
    def num_tokens(self) -> int:
        """``M * T`` modality tokens (the CLS token not counted)."""
        return len(self.encoders) * self.tokens_per_modality

    @property
    def core(self) -> FusionCore:
        """The fusion's Linen module."""
        return FusionCore(
            len(self.encoders),
            self.tokens_per_modality,
            self.width,
            self.num_heads,
            self.num_layers,
            self.mlp_dim,
            self.head_hidden,
            self.embed_dim,
        )

    def init(
        self, key: Array, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> dict[str, Any]:
        """Parameters of the encoders and the fusion for batches like ``inputs``."""
        encoder_key, core_key = jax.random.split(key)
        encoders = init_encoders(self.encoders, encoder_key, inputs, masks)
        encoded = encode_modalities(self.encoders, encoders, inputs, masks)
        return {"encoders": encoders, "fusion": self.core.init(core_key, encoded)}

    def tokens(
        self, params: Any, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], Array]:
        """``(encoded, tokens)``: encoder outputs and the ``[n, M * T, width]`` modality tokens."""
        encoded = encode_modalities(self.encoders, params["encoders"], inputs, masks)
        return encoded, self.core.apply(params["fusion"], encoded, method=FusionCore.tokens)

    def fuse_and_project(
        self, params: Any, tokens: Array, attend: Array | None = None, replace: Array | None = None
    ) -> Array:
        """``[r, L, width] -> [r, embed_dim]``: the projected CLS output (see
        :meth:`FusionCore.fuse`)."""
        return self.core.apply(
            params["fusion"], tokens, attend, replace, method=FusionCore.fuse_and_project
        )

    def apply(
        self, params: Any, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], dict[str, Array]]:
        """``(encoded, {"fused": [n, width]})`` of the full input: the evaluation representation."""
        encoded, tokens = self.tokens(params, inputs, masks)
        fused = self.core.apply(params["fusion"], tokens, method=FusionCore.fuse)
        return encoded, {"fused": fused}
