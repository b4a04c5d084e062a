"""Several seeds (or sample sets) as one compiled program."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax import Array

__all__ = ["over_seeds"]


def over_seeds(run: Callable[..., Any], *, side_by_side: bool | None = None) -> Callable[..., Any]:
    """``run(key, *arrays) -> out`` as ``(keys [S], *arrays [S, ...]) -> out [S, ...]``.

    One program for all seeds: they run side by side (``jax.vmap``) or one after another
    (``jax.lax.map``, the single-seed program in a loop); a single seed calls ``run`` directly.
    ``side_by_side=None`` picks ``vmap`` on accelerators and the loop on CPU, where batching
    every matmul and elementwise pass of a small-batch program over seeds is slower per
    seed-step than running the seeds in turn (``benchmarks/mi_speed.py`` measures both). Both
    give the same results up to float rounding; a program with early stopping under ``vmap``
    runs until every seed has stopped. ``S`` is read from the shape at trace time, so
    ``jax.jit(over_seeds(run))`` compiles the right program.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> run = lambda key, x: x * jax.random.uniform(key)
      >>> out = jax.jit(over_seeds(run))(jax.random.split(jax.random.key(0), 3), jnp.ones((3, 2)))
      >>> out.shape
      (3, 2)
    """

    def seeded(keys: Array, *arrays: Any) -> Any:
        if keys.ndim != 1:
            raise ValueError(f"`keys` must be a [seeds] array of PRNG keys, got shape {keys.shape}")
        if keys.shape[0] == 1:
            first = jax.tree.map(lambda a: a[0], arrays)
            return jax.tree.map(lambda a: a[None], run(keys[0], *first))
        batched = jax.default_backend() != "cpu" if side_by_side is None else side_by_side
        if batched:
            return jax.vmap(run)(keys, *arrays)
        return jax.lax.map(lambda inputs: run(*inputs), (keys, *arrays))

    return seeded
