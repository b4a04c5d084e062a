"""Small building blocks shared by critics and models: the MLP and the compute dtype."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
from jax import Array


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
