"""Small building blocks shared by critics and models: the MLP, the compute dtype, unit rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array, lax

__all__ = ["COMPUTE_DTYPES", "MLP", "at_least_float32", "compute_dtype_of", "l2_normalize"]


class MLP(nn.Module):
    """A stack of ``Dense`` layers with ``activation`` between them.

    Maps ``[..., d_in]`` to ``[..., features[-1]]``; the last layer is linear unless
    ``activate_final``. ``dtype`` is the computation dtype (e.g. ``jnp.bfloat16``; ``None``:
    that of the inputs and parameters); parameters are always float32.
    """

    features: Sequence[int]
    activation: Callable[[Array], Array] = nn.relu
    activate_final: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        for index, width in enumerate(self.features):
            x = nn.Dense(width, dtype=self.dtype, name=f"dense_{index}")(x)
            if index < len(self.features) - 1 or self.activate_final:
                x = self.activation(x)
        return x


COMPUTE_DTYPES = ("float32", "bfloat16")
"""Names accepted by :func:`compute_dtype_of`."""


def compute_dtype_of(name: str | Any) -> Any:
    """The modules' ``dtype`` for a compute dtype name: ``None`` (the float32 inputs') for
    ``"float32"``, ``jnp.bfloat16`` for ``"bfloat16"``.

    Raises:
      ValueError: any other name or dtype.
    """
    if name is not None and not isinstance(name, str):
        name = jnp.dtype(name).name
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"`compute_dtype` must be one of {COMPUTE_DTYPES}, got {name!r}")
    return None if name == "float32" else jnp.bfloat16


def at_least_float32(z: Array) -> Array:
    """``z`` in float32 when computed in a narrower dtype (bfloat16): the [n, E] outputs are
    small, and norms, concatenations and bounds downstream keep float32 precision."""
    return z.astype(jnp.promote_types(z.dtype, jnp.float32))


def l2_normalize(z: Array, eps: float = 1e-12) -> Array:
    """``z / sqrt(sum(z^2, axis=-1) + eps)``: rows of unit norm, finite gradient at ``z = 0``."""
    return z * lax.rsqrt(jnp.sum(jnp.square(z), axis=-1, keepdims=True) + eps)
