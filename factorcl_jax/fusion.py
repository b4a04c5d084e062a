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
:mod:`factorcl_jax.views` computes the views a method declares with
:func:`view_representations`. This module holds what the terms need:

* :class:`FusionModel`: per-modality encoders, a linear adapter from each encoder output to
  ``tokens_per_modality`` tokens, and a small pre-LayerNorm Transformer over a CLS token and
  every modality's tokens; the fused representation is the CLS output after a final
  LayerNorm, and a Linear-ReLU-Linear projection head maps it to the space the critic scores.
  Modalities are masked out by excluding their tokens from attention; a masked token is
  replaced by a learned mask token.
* :class:`CosineCritic`: ``f(z, z') = cos(z, z') / temperature``, the critic of both papers.
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
  feature for tabular data); here every encoder returns a vector (sequence encoders pool over
  time) that the adapter splits into tokens.
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

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from factorcl_jax.models import l2_normalize
from factorcl_jax.networks.layers import MLP
from factorcl_jax.objectives import FusedView

__all__ = [
    "CosineCritic",
    "FusionModel",
    "token_masks",
    "view_representations",
]


class CosineCritic(nn.Module):
    """``f(x, y) = cos(x, y) / temperature``: the critic of CoMM and InfMasking, no parameters.

    Follows the ``embed_x`` / ``embed_y`` / ``pair`` protocol of :mod:`factorcl_jax.critics`,
    so :func:`factorcl_jax.critics.pairwise_scores` scores all pairs with one matmul.

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


class FusionModel(nn.Module):
    """Encoders, modality tokens and a Transformer that fuses them into one representation.

    ``x_m -> h_m = encoder_m(x_m) [n, D_m] -> T tokens A_m h_m + b_m [n, T, width]``; the
    ``M * T`` tokens and a learned CLS token go through ``num_layers`` pre-LayerNorm blocks
    (``t += MHA(LN(t))``, ``t += MLP(LN(t))``) and a final LayerNorm; the CLS output is the
    fused representation ``[n, width]``, and ``head`` (Linear-ReLU-Linear) projects it to the
    ``[n, embed_dim]`` that the critic scores.

    Attributes:
      encoders: one module per modality, each ``batch -> [n, D_m]`` (sequence encoders get
        ``mask=`` like in :class:`factorcl_jax.models.MultimodalModel`).
      tokens_per_modality: ``T``, tokens each encoder output is split into.
      width: token width; divisible by ``num_heads``.
      num_heads: attention heads.
      num_layers: Transformer blocks (the papers use 1).
      mlp_dim: hidden width of each block's MLP (``None``: ``4 * width``).
      head_hidden: hidden width of the projection head.
      embed_dim: output width of the projection head.

    Example:
      >>> import jax
      >>> from factorcl_jax.models import MLPEncoder
      >>> model = FusionModel((MLPEncoder(16, 8, 1), MLPEncoder(16, 8, 1)), width=8, num_heads=2,
      ...                     head_hidden=16, embed_dim=4)
      >>> inputs = [jnp.ones((3, 5)), jnp.ones((3, 6))]
      >>> params = model.init(jax.random.key(0), inputs)
      >>> encoded, fused = model.apply(params, inputs)
      >>> [h.shape for h in encoded], fused["fused"].shape
      ([(3, 8), (3, 8)], (3, 8))
    """

    encoders: Sequence[nn.Module]
    tokens_per_modality: int = 4
    width: int = 64
    num_heads: int = 4
    num_layers: int = 1
    mlp_dim: int | None = None
    head_hidden: int = 512
    embed_dim: int = 128

    @property
    def representations(self) -> dict[str, int]:
        """``{}``: a fused model has no per-modality heads; its methods read fused views."""
        return {}

    @property
    def num_tokens(self) -> int:
        """``M * T`` modality tokens (the CLS token not counted)."""
        return len(self.encoders) * self.tokens_per_modality

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
            nn.Dense(self.tokens_per_modality * self.width, name=f"tokens_{m}")
            for m in range(len(self.encoders))
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

    def encode(
        self, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> list[Array]:
        """Encoder outputs ``[h_1, ..., h_M]``, one ``[n, D_m]`` per modality."""
        if len(inputs) != len(self.encoders):
            raise ValueError(f"expected {len(self.encoders)} modalities, got {len(inputs)}")
        masks = [None] * len(inputs) if masks is None else masks
        return [
            encoder(x) if mask is None else encoder(x, mask=mask)
            for encoder, x, mask in zip(self.encoders, inputs, masks, strict=True)
        ]

    def tokens(
        self, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], Array]:
        """``(encoded, tokens)``: encoder outputs and the ``[n, M * T, width]`` modality tokens,
        modality by modality (token ``l`` belongs to modality ``l // T``)."""
        encoded = self.encode(inputs, masks)
        tokens = [
            adapter(h).reshape(h.shape[0], self.tokens_per_modality, self.width)
            for adapter, h in zip(self.adapters, encoded, strict=True)
        ]
        return encoded, jnp.concatenate(tokens, axis=1)

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

    def project(self, fused: Array) -> Array:
        """``[r, width] -> [r, embed_dim]``: the projection head the critic scores."""
        return self.head(fused)

    def fuse_and_project(
        self, tokens: Array, attend: Array | None = None, replace: Array | None = None
    ) -> Array:
        """:meth:`project` of :meth:`fuse`: ``[r, L, width] -> [r, embed_dim]``."""
        return self.project(self.fuse(tokens, attend, replace))

    def __call__(
        self, inputs: Sequence[Array], masks: Sequence[Array | None] | None = None
    ) -> tuple[list[Array], dict[str, Array]]:
        """``(encoded, {"fused": [n, width]})`` of the full input: the evaluation representation."""
        encoded, tokens = self.tokens(inputs, masks)
        fused = self.fuse(tokens)
        if self.is_initializing():  # create the head's parameters, used only in training
            self.project(fused)
        return encoded, {"fused": fused}


def token_masks(
    view: FusedView,
    num_rows: int,
    num_modalities: int,
    tokens_per_modality: int,
    noise: Array | None = None,
) -> tuple[Array, Array]:
    """``(attend, replace)``, each ``[draws * n, M * T]`` bool: which tokens a view fuses.

    ``attend`` is false at the tokens of modalities not in ``view.modalities``. With
    ``view.mask_ratio = rho > 0``, every seen modality keeps ``k = floor(T (1 - rho))`` tokens
    per row and draw, those of smallest ``noise``; ``replace`` is true at the others. Row
    ``t * n + i`` is draw ``t`` of sample ``i``.

    Args:
      view: the :class:`~factorcl_jax.objectives.FusedView`.
      num_rows: ``n``.
      num_modalities: ``M``.
      tokens_per_modality: ``T``.
      noise: ``[n, draws, M * T]`` uniform noise; needed when ``view.mask_ratio > 0``.

    Raises:
      ValueError: a view that names a missing modality, keeps no token, or lacks its noise.
    """
    length = num_modalities * tokens_per_modality
    seen = range(num_modalities) if view.modalities is None else view.modalities
    if any(m >= num_modalities for m in seen):
        raise ValueError(
            f"fused view {view} sees modality {max(seen)}, but the model has {num_modalities}"
        )
    modality_of = jnp.arange(length) // tokens_per_modality
    attend_row = jnp.isin(modality_of, jnp.asarray(tuple(seen)))
    rows = view.draws * num_rows
    attend = jnp.broadcast_to(attend_row[None, :], (rows, length))
    if view.mask_ratio == 0:
        return attend, jnp.zeros((rows, length), bool)
    kept = math.floor(tokens_per_modality * (1 - view.mask_ratio))
    if kept < 1:
        raise ValueError(
            f"fused view {view}: mask_ratio {view.mask_ratio} of {tokens_per_modality} tokens "
            "per modality keeps none; use more tokens_per_modality or a smaller ratio"
        )
    expected = (num_rows, view.draws, length)
    if noise is None or noise.shape != expected:
        raise ValueError(
            f"fused view {view} needs `noise` of shape {expected}, "
            f"got {None if noise is None else noise.shape}"
        )
    per_modality = noise.reshape(num_rows, view.draws, num_modalities, tokens_per_modality)
    rank = jnp.argsort(jnp.argsort(per_modality, axis=-1), axis=-1)
    keep = (rank < kept).reshape(num_rows, view.draws, length)
    keep = jnp.swapaxes(keep, 0, 1).reshape(rows, length)
    return attend, attend & ~keep


def view_representations(
    model: FusionModel,
    params: Any,
    inputs: Mapping[int | None, Sequence[Array]],
    masks: Sequence[Array | None] | None,
    views: Mapping[str, FusedView],
    noise: Mapping[str, Array],
) -> dict[str, Array]:
    """``{name: [draws * n, embed_dim]}``: the projected fused representation of every view.

    Each input is encoded and tokenised once; the rows of every view of that input (one per
    sample and draw) are fused in one Transformer call.

    Args:
      model: the fused model.
      params: its parameters.
      inputs: ``{augmentation: modalities}``, the batch as each view's ``augmentation`` draws
        it (``None``: as is).
      masks: the sequences' validity masks (``None`` where absent).
      views: ``{name: FusedView}`` of the method.
      noise: ``{name: [n, draws, M * T] uniform}`` for the views with a ``mask_ratio``.
    """
    representations = {}
    for augmentation in dict.fromkeys(view.augmentation for view in views.values()):
        names = [name for name, view in views.items() if view.augmentation == augmentation]
        _, tokens = model.apply(params, inputs[augmentation], masks, method=FusionModel.tokens)
        n = tokens.shape[0]
        parts = []
        for name in names:
            view = views[name]
            attend, replace = token_masks(
                view, n, len(model.encoders), model.tokens_per_modality, noise.get(name)
            )
            parts.append((jnp.tile(tokens, (view.draws, 1, 1)), attend, replace))
        stacked = [jnp.concatenate(arrays, axis=0) for arrays in zip(*parts, strict=True)]
        projected = model.apply(params, *stacked, method=FusionModel.fuse_and_project)
        ends = list(itertools.accumulate(views[name].draws * n for name in names))
        for name, z in zip(names, jnp.split(projected, ends[:-1]), strict=True):
            representations[name] = z
    return representations
