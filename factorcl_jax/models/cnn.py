"""A small AlexNet-style image encoder, as a per-modality encoder or a patch tokeniser.

CoMM (Dufumier et al. 2025) encodes each Trifeatures image with AlexNet's convolutional stack
(Krizhevsky et al. 2012; torchvision's ``AlexNet.features``): five convolutions of widths
64, 192, 384, 256, 256 with ReLU, and 3 x 3 / stride-2 max pooling after the first, second and
fifth. Its per-modality baselines read the flattened last feature map through one linear layer;
CoMM's fusion instead reads the map as patch tokens (one token per position) for a Transformer.

The first convolution's kernel (odd) and stride are configurable: ``stem_kernel=11,
stem_stride=4`` are AlexNet's, for 224-pixel inputs (a 7 x 7 map, 49 tokens); the default
``5, 1`` suits 32 to 64 pixels (4 x 4 tokens at 32, 8 x 8 at 64). Convolutions pad by half
their kernel and pooling by one, so the map side is ``ceil(ceil(ceil(R' / 2) / 2) / 2)`` with
``R' = ceil(R / stem_stride)`` (:func:`feature_map_side`). The default widths are AlexNet's;
``widths=(32, 64, 128, 128, 128)`` takes about a sixth of the multiply-adds.

``encoder(x)`` follows the library's encoder convention (:class:`factorcl_jax.models.MLPEncoder`):

* ``output="pooled"``: ``[n, H, W, 3] -> [n, output_dim]``, a linear map of the feature map,
  flattened (``pooling="flatten"``, CoMM's ``AlexNetEncoder``) or averaged over positions
  (``pooling="mean"``, independent of the resolution);
* ``output="tokens"``: ``[n, H, W, 3] -> [n, T, output_dim]``, ``T = side^2`` positions in
  row-major order, each projected by one shared linear map (CoMM's patch adapter with patch
  size 1; positional embeddings are the fusion's business).

Inputs are RGB in ``[0, 1]``; with ``normalize=True`` (default) they are standardised with the
ImageNet mean and standard deviation first, as CoMM's data pipeline does.

Example:
  >>> import jax, jax.numpy as jnp
  >>> x = jnp.zeros((2, 32, 32, 3))  # doctest: +SLOW
  >>> encoder = AlexNetEncoder(output_dim=16, output="tokens")
  >>> tokens, variables = jax.eval_shape(encoder.init_with_output, jax.random.key(0), x)
  >>> tokens.shape  # params = encoder.init(key, x); encoder.apply(params, x) -> [2, 16, 16]
  (2, 16, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array

from factorcl_jax import validation

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OUTPUTS",
    "POOLINGS",
    "AlexNetEncoder",
    "feature_map_side",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OUTPUTS = ("pooled", "tokens")
POOLINGS = ("flatten", "mean")
_POOL_AFTER = (0, 1, 4)
"""Convolutions followed by max pooling (AlexNet's layout)."""


def feature_map_side(resolution: int, *, stem_stride: int = 1, stem_kernel: int = 5) -> int:
    """Side of the last feature map for ``resolution``-pixel inputs (``sqrt`` of ``T``).

    Example:
      >>> feature_map_side(32), feature_map_side(64), feature_map_side(224, stem_stride=4,
      ...                                                               stem_kernel=11)
      (4, 8, 7)
    """
    resolution = validation.check_positive_int(resolution, "resolution")
    stem_stride = validation.check_positive_int(stem_stride, "stem_stride")
    stem_kernel = validation.check_positive_int(stem_kernel, "stem_kernel")
    side = (resolution + 2 * (stem_kernel // 2) - stem_kernel) // stem_stride + 1
    for _ in _POOL_AFTER:
        side = math.ceil(side / 2)
    return side


class AlexNetEncoder(nn.Module):
    """AlexNet's convolutional stack, returning a vector or patch tokens (module docstring).

    Attributes:
      output_dim: width ``D`` of the vector or of each token.
      output: ``"pooled"`` (``[n, D]``) or ``"tokens"`` (``[n, T, D]``).
      pooling: ``"flatten"`` or ``"mean"``, how ``"pooled"`` reads the feature map.
      widths: the five convolution widths.
      stem_kernel, stem_stride: the first convolution's kernel and stride (AlexNet: 11, 4).
      normalize: standardise inputs with ``IMAGENET_MEAN`` / ``IMAGENET_STD``.
      dtype: computation dtype (``None``: that of the inputs); parameters stay float32.
    """

    output_dim: int = 256
    output: str = "pooled"
    pooling: str = "flatten"
    widths: Sequence[int] = (64, 192, 384, 256, 256)
    stem_kernel: int = 5
    stem_stride: int = 1
    normalize: bool = True
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        if self.output not in OUTPUTS:
            raise ValueError(f"`output` must be one of {OUTPUTS}, got {self.output!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}, got {self.pooling!r}")
        if self.stem_kernel % 2 == 0 or self.stem_kernel < 1 or self.stem_stride < 1:
            raise ValueError(
                "`stem_kernel` must be an odd int >= 1 and `stem_stride` an int >= 1, got "
                f"{self.stem_kernel} and {self.stem_stride}"
            )
        if len(self.widths) != 5:
            raise ValueError(f"`widths` must hold five convolution widths, got {self.widths!r}")
        if getattr(x, "ndim", None) != 4 or x.shape[-1] != 3:
            raise ValueError(
                f"AlexNetEncoder: `x` must have shape [n, H, W, 3], got "
                f"{getattr(x, 'shape', type(x).__name__)}"
            )
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise TypeError(f"AlexNetEncoder: `x` must be floating-point, got dtype {x.dtype}")
        if self.normalize:
            mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
            std = jnp.asarray(IMAGENET_STD, x.dtype)
            x = (x - mean[None, None, None, :]) / std[None, None, None, :]
        for index, width in enumerate(self.widths):
            kernel = (self.stem_kernel if index == 0 else 5 if index == 1 else 3,) * 2
            stride = (self.stem_stride,) * 2 if index == 0 else (1, 1)
            padding = [(kernel[0] // 2,) * 2] * 2
            x = nn.Conv(width, kernel, stride, padding=padding, dtype=self.dtype)(x)
            x = nn.relu(x)
            if index in _POOL_AFTER:
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        n, height, width, channels = x.shape
        tokens = x.reshape(n, height * width, channels)
        dense = nn.Dense(self.output_dim, dtype=self.dtype)
        if self.output == "tokens":
            return dense(tokens)
        if self.pooling == "mean":
            return dense(tokens.mean(axis=1))
        return dense(tokens.reshape(n, height * width * channels))
