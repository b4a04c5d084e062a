"""Small building blocks shared by critics and models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
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
