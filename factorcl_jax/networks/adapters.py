"""Adapters from Flax Linen, Flax NNX, Equinox and plain functions to the network protocol.

:func:`as_critic`, :func:`as_encoder` and :func:`as_gaussian` take a network in any of these
forms and return an object with the protocol's pure functions
(:mod:`factorcl_jax.networks.protocol`):

* a **Flax Linen** module: ``params`` are its variables; ``embed_x`` is
  ``module.apply(params, x, method=module.embed_x)``, and so on (``init`` is
  ``module.init``);
* a **Flax NNX** module: split once into its graph and state; ``params`` are its
  ``nnx.Param`` variables (other state, e.g. batch statistics, is held fixed), and each
  function merges them back and calls the module's method. ``init`` returns the module's own
  parameters (NNX modules initialise when built); ``NnxCritic(factory)`` with a factory
  ``rngs -> module`` draws new parameters from each key instead;
* an **Equinox** module: ``params`` are its inexact arrays (``eqx.partition``), the rest is
  static; ``init`` likewise returns the module's own arrays, or ``EquinoxCritic(factory)``
  with a factory ``key -> module`` draws new ones;
* **plain functions**: :class:`FunctionCritic`, :class:`FunctionEncoder`,
  :class:`FunctionGaussian` hold them as given.

An object that already has the protocol's methods is returned as it is. Equinox is an
optional dependency (``pip install equinox``), imported only when an Equinox module is given.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
from jax import Array

__all__ = [
    "EquinoxCritic",
    "EquinoxEncoder",
    "EquinoxGaussian",
    "FunctionCritic",
    "FunctionEncoder",
    "FunctionGaussian",
    "LinenCritic",
    "LinenEncoder",
    "LinenGaussian",
    "NnxCritic",
    "NnxEncoder",
    "NnxGaussian",
    "as_critic",
    "as_encoder",
    "as_gaussian",
]

_CRITIC = ("init", "embed_x", "embed_y", "pair")
_ENCODER = ("init", "apply")
_GAUSSIAN = ("init", "predict")


# ------------------------------------------------------------------------------- Linen


@dataclasses.dataclass(frozen=True)
class LinenCritic:
    """A Linen module with ``embed_x``, ``embed_y``, ``pair`` methods (and ``__call__(x, y)``
    for ``init``), as protocol functions. Equal adapters of equal modules hash alike."""

    module: nn.Module

    def init(self, key: Array, x: Array, y: Array) -> Any:
        return self.module.init(key, x, y)

    def embed_x(self, params: Any, x: Array) -> Array:
        return self.module.apply(params, x, method=self.module.embed_x)

    def embed_y(self, params: Any, y: Array) -> Array:
        return self.module.apply(params, y, method=self.module.embed_y)

    def pair(self, params: Any, u: Array, v: Array) -> Array:
        return self.module.apply(params, u, v, method=self.module.pair)


@dataclasses.dataclass(frozen=True)
class LinenEncoder:
    """A Linen module ``module(x, **kwargs) -> [n, D]`` as ``init`` / ``apply``."""

    module: nn.Module

    def init(self, key: Array, x: Array, **kwargs: Any) -> Any:
        return self.module.init(key, x, **kwargs)

    def apply(self, params: Any, x: Array, **kwargs: Any) -> Array:
        return self.module.apply(params, x, **kwargs)


@dataclasses.dataclass(frozen=True)
class LinenGaussian:
    """A Linen module ``module(x, y) -> (mean, log_variance)`` as ``init`` / ``predict``."""

    module: nn.Module

    def init(self, key: Array, x: Array, y: Array) -> Any:
        return self.module.init(key, x, y)

    def predict(self, params: Any, x: Array, y: Array) -> tuple[Array, Array]:
        return self.module.apply(params, x, y)


# ------------------------------------------------- NNX and Equinox: parameters split off


class _CriticCalls:
    """The critic's functions of a module rebuilt from ``params`` (``self.module(params)``,
    given by the NNX or Equinox base)."""

    def embed_x(self, params: Any, x: Array) -> Array:
        return self.module(params).embed_x(x)

    def embed_y(self, params: Any, y: Array) -> Array:
        return self.module(params).embed_y(y)

    def pair(self, params: Any, u: Array, v: Array) -> Array:
        return self.module(params).pair(u, v)


class _EncoderCalls:
    """An encoder's ``apply``: the module rebuilt from ``params``, called on ``x``."""

    def apply(self, params: Any, x: Array, **kwargs: Any) -> Array:
        return self.module(params)(x, **kwargs)


class _GaussianCalls:
    """A Gaussian model's ``predict``: the module rebuilt from ``params``, called on
    ``(x, y)``."""

    def predict(self, params: Any, x: Array, y: Array) -> tuple[Array, Array]:
        return self.module(params)(x, y)


# ------------------------------------------------------------------------------- NNX


@dataclasses.dataclass(frozen=True, eq=False)
class _Nnx:
    """An NNX module (or factory ``rngs -> module``) split into graph, parameters and the
    rest of its state; :meth:`module` merges parameters back in."""

    source: Any

    def __post_init__(self) -> None:
        from flax import nnx

        module = self.source if isinstance(self.source, nnx.Module) else self.source(nnx.Rngs(0))
        graph, params, rest = nnx.split(module, nnx.Param, ...)
        object.__setattr__(self, "_graph", graph)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_rest", rest)

    def init(self, key: Array, *inputs: Any, **kwargs: Any) -> Any:
        from flax import nnx

        if isinstance(self.source, nnx.Module):
            return self._params
        return nnx.split(self.source(nnx.Rngs(key)), nnx.Param, ...)[1]

    def module(self, params: Any) -> Any:
        from flax import nnx

        return nnx.merge(self._graph, params, self._rest)


class NnxCritic(_CriticCalls, _Nnx):
    """An NNX critic module with ``embed_x``, ``embed_y``, ``pair`` methods."""


class NnxEncoder(_EncoderCalls, _Nnx):
    """An NNX encoder module ``module(x, **kwargs) -> [n, D]``."""


class NnxGaussian(_GaussianCalls, _Nnx):
    """An NNX module ``module(x, y) -> (mean, log_variance)``."""


# ------------------------------------------------------------------------------- Equinox


def _equinox():
    import equinox

    return equinox


@dataclasses.dataclass(frozen=True, eq=False)
class _Equinox:
    """An Equinox module (or factory ``key -> module``) partitioned into its inexact arrays
    (the parameters) and the static rest."""

    source: Any

    def __post_init__(self) -> None:
        eqx = _equinox()
        module = (
            self.source if isinstance(self.source, eqx.Module) else self.source(jax.random.key(0))
        )
        params, static = eqx.partition(module, eqx.is_inexact_array)
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_static", static)

    def init(self, key: Array, *inputs: Any, **kwargs: Any) -> Any:
        eqx = _equinox()
        if isinstance(self.source, eqx.Module):
            return self._params
        return eqx.partition(self.source(key), eqx.is_inexact_array)[0]

    def module(self, params: Any) -> Any:
        return _equinox().combine(params, self._static)


class EquinoxCritic(_CriticCalls, _Equinox):
    """An Equinox critic module with ``embed_x``, ``embed_y``, ``pair`` methods."""


class EquinoxEncoder(_EncoderCalls, _Equinox):
    """An Equinox encoder module ``module(x, **kwargs) -> [n, D]`` (batched inputs)."""


class EquinoxGaussian(_GaussianCalls, _Equinox):
    """An Equinox module ``module(x, y) -> (mean, log_variance)``."""


# ------------------------------------------------------------------------------- functions


@dataclasses.dataclass(frozen=True)
class FunctionCritic:
    """A critic from four plain functions (the protocol's, see
    :mod:`factorcl_jax.networks.protocol`).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> critic = FunctionCritic(
      ...     init=lambda key, x, y: {"a": jax.random.normal(key, (x.shape[1], 8)),
      ...                             "b": jax.random.normal(key, (y.shape[1], 8))},
      ...     embed_x=lambda p, x: x @ p["a"], embed_y=lambda p, y: y @ p["b"],
      ...     pair=lambda p, u, v: u @ v.T)
      >>> x = jnp.ones((4, 3))
      >>> params = critic.init(jax.random.key(0), x, x)
      >>> critic.pair(params, critic.embed_x(params, x), jnp.ones((5, 8))).shape
      (4, 5)
    """

    init: Callable[[Array, Array, Array], Any]
    embed_x: Callable[[Any, Array], Array]
    embed_y: Callable[[Any, Array], Array]
    pair: Callable[[Any, Array, Array], Array]


@dataclasses.dataclass(frozen=True)
class FunctionEncoder:
    """An encoder from ``init(key, x) -> params`` and ``apply(params, x) -> [n, D]``."""

    init: Callable[..., Any]
    apply: Callable[..., Array]


@dataclasses.dataclass(frozen=True)
class FunctionGaussian:
    """CLUB's ``q(y | x)`` from ``init(key, x, y)`` and ``predict(params, x, y)``."""

    init: Callable[[Array, Array, Array], Any]
    predict: Callable[[Any, Array, Array], tuple[Array, Array]]


# ------------------------------------------------------------------------------- dispatch


def _kind(network: Any) -> str | None:
    """``"linen"``, ``"nnx"``, ``"equinox"`` or ``None`` (not a module of those)."""
    if isinstance(network, nn.Module):
        return "linen"
    flax_nnx = sys.modules.get("flax.nnx")
    if flax_nnx is not None and isinstance(network, flax_nnx.Module):
        return "nnx"
    equinox = sys.modules.get("equinox")
    if equinox is not None and isinstance(network, equinox.Module):
        return "equinox"
    return None


def _has(network: Any, names: tuple[str, ...]) -> bool:
    return all(callable(getattr(network, name, None)) for name in names)


def _adapt(network: Any, role: str, names: tuple[str, ...], adapters: dict[str, type]) -> Any:
    kind = _kind(network)
    if kind is not None:
        return adapters[kind](network)
    if _has(network, names):
        return network
    raise TypeError(
        f"a {role} must be a Flax Linen, Flax NNX or Equinox module, or an object with "
        f"{', '.join(names)} functions (e.g. {adapters['functions'].__name__}), got "
        f"{type(network).__name__}"
    )


def as_critic(critic: Any) -> Any:
    """``critic`` as an object with ``init``, ``embed_x``, ``embed_y``, ``pair``.

    A Linen, NNX or Equinox module is wrapped (:class:`LinenCritic`, :class:`NnxCritic`,
    :class:`EquinoxCritic`); an object with those four functions is returned as it is.

    Raises:
      TypeError: anything else.
    """
    return _adapt(
        critic,
        "critic",
        _CRITIC,
        {
            "linen": LinenCritic,
            "nnx": NnxCritic,
            "equinox": EquinoxCritic,
            "functions": FunctionCritic,
        },
    )


def as_encoder(encoder: Any) -> Any:
    """``encoder`` as an object with ``init`` and ``apply`` (see :func:`as_critic`)."""
    return _adapt(
        encoder,
        "encoder",
        _ENCODER,
        {
            "linen": LinenEncoder,
            "nnx": NnxEncoder,
            "equinox": EquinoxEncoder,
            "functions": FunctionEncoder,
        },
    )


def as_gaussian(model: Any) -> Any:
    """``model`` as an object with ``init`` and ``predict`` (see :func:`as_critic`)."""
    return _adapt(
        model,
        "Gaussian model",
        _GAUSSIAN,
        {
            "linen": LinenGaussian,
            "nnx": NnxGaussian,
            "equinox": EquinoxGaussian,
            "functions": FunctionGaussian,
        },
    )
