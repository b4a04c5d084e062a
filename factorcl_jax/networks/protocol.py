"""The network protocol: critics and encoders as pure functions over parameter pytrees.

Everything in the library that runs a network reads only these functions, so any network
that provides them plugs in: the library's own Flax Linen modules, a Flax NNX module, an
Equinox module, or plain JAX functions (:mod:`factorcl_jax.networks.adapters` turns each into
an object with these methods; :func:`~factorcl_jax.networks.adapters.as_critic` and
:func:`~factorcl_jax.networks.adapters.as_encoder` pick the adapter).

A **critic** ``f(x, y)`` scores every pair of a batch as two towers and a pairwise head:

* ``init(key, x [n, dx], y [m, dy]) -> params``,
* ``embed_x(params, x [n, dx]) -> u [n, H]`` (once per row),
* ``embed_y(params, y [m, dy]) -> v [m, H]`` (once per column),
* ``pair(params, u [b, H], v [c, H]) -> scores [b, c]`` (a separable critic is
  ``u @ v.T``).

An **encoder** maps a modality's batch to one representation per sample:

* ``init(key, x [n, ...]) -> params``,
* ``apply(params, x [n, ...]) -> z [n, D]`` (sequence encoders also take ``mask=[n, T]``).

A **Gaussian model** is CLUB's variational ``q(y | x) = N(mean(x), diag exp(log_variance(x)))``:

* ``init(key, x [n, dx], y [m, d]) -> params``,
* ``predict(params, x [n, dx], y [m, d]) -> (mean [n, d], log_variance [n, d])`` (``y`` is
  read for its width only).

``params`` is any pytree of arrays; the functions must be pure (the same ``params`` and
inputs give the same outputs) so that ``jit``, ``grad`` and ``vmap`` apply, and ``init``
should read only shapes, since the library initialises on the first rows of a batch.
Objects with these methods are used by identity under ``jit`` caches: make one adapter per
network and reuse it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from jax import Array

__all__ = ["Critic", "Encoder", "GaussianModel"]


@runtime_checkable
class Critic(Protocol):
    """Two towers and a pairwise head (see the module docstring)."""

    def init(self, key: Array, x: Array, y: Array) -> Any: ...

    def embed_x(self, params: Any, x: Array) -> Array: ...

    def embed_y(self, params: Any, y: Array) -> Array: ...

    def pair(self, params: Any, u: Array, v: Array) -> Array: ...


@runtime_checkable
class Encoder(Protocol):
    """A modality's encoder (see the module docstring)."""

    def init(self, key: Array, x: Array, **kwargs: Any) -> Any: ...

    def apply(self, params: Any, x: Array, **kwargs: Any) -> Array: ...


@runtime_checkable
class GaussianModel(Protocol):
    """CLUB's ``q(y | x)`` (see the module docstring)."""

    def init(self, key: Array, x: Array, y: Array) -> Any: ...

    def predict(self, params: Any, x: Array, y: Array) -> tuple[Array, Array]: ...
