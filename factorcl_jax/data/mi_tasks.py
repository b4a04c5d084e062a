"""Sampling tasks whose mutual information is known exactly, to benchmark MI estimators.

A task is a small frozen (hashable) object with

* ``name: str`` — stable; :func:`make_task` rebuilds an equal task from it,
* ``true_mi: float`` — ``I(X; Y)`` in nats,
* ``x_dim``, ``y_dim: int``,
* ``sample(key, num_samples) -> (x [n, x_dim], y [n, y_dim])`` float32 — a pure function of
  the PRNG key (same key, same arrays), jit-able with ``num_samples`` static,
* ``pointwise_mi(x, y) -> [n]`` — the exact ``log p(x, y) / (p(x) p(y))``. Its mean over
  samples of the task is an unbiased Monte-Carlo estimate of ``true_mi``, and it is the
  optimal critic of the contrastive bounds (up to a function of ``x`` alone).

Families and their names (floats are written positionally, shortest round-trip form)::

  gaussian-d{dim}-mi{mi}                       correlated_gaussian(dim, mi)
  cubic-d{dim}-mi{mi}                          cubic_gaussian(dim, mi)
  mvn_sparse-dx{x_dim}-dy{y_dim}-pairs{k}-mi{mi}   sparse_normal(x_dim, y_dim, mi, num_pairs=k)
  mvn_dense-dx{x_dim}-dy{y_dim}-within{a}-mi{mi}   dense_normal(x_dim, y_dim, mi, a)
  mvn_equicorr-dx{x_dim}-dy{y_dim}-corr{a}         equicorrelated_normal(x_dim, y_dim, a)
  student_t-df{df}-{gaussian name}             student_t(gaussian task, df)
  additive_uniform-eps{eps}                    additive_uniform(eps)
  gmm_...                                      Gaussian mixtures, factorcl_jax.data.fine
  {name}+x={map}+y={map}                       transformed(task, x_map=..., y_map=...)

e.g. ``"gaussian-d20-mi4.0"``, ``"student_t-df3.0-gaussian-d5-mi1.0"``,
``"mvn_dense-dx3-dy2-within0.5-mi1.0+x=asinh+y=spiral0.5"``. Maps (listed in
:func:`transformed`: ``asinh``, ``cube``, ``half_cube``, ``normal_cdf``, ``spiral{speed}``,
``waves``, ``scale``, ``shift``, ``swissroll``) are one-to-one, so they keep the MI.
A normal built from an explicit covariance (:func:`multivariate_normal`) is named
``mvn-dx{x_dim}-dy{y_dim}-cov{digest}`` and cannot be rebuilt from its name.

The Gaussian staircase of Poole et al. 2019 ("On Variational Bounds of Mutual Information"),
used by the FactorCL paper (Liang et al. 2023) to compare InfoNCE with NCE-CLUB, is
:func:`staircase`. The Student-t and transformed families follow Czyż et al. 2023,
"Beyond Normal: On the Evaluation of Mutual Information Estimators".
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "TASKS",
    "AdditiveUniformTask",
    "CorrelatedGaussianTask",
    "MITask",
    "MultivariateNormalTask",
    "StudentTTask",
    "TransformedTask",
    "additive_uniform",
    "correlated_gaussian",
    "cubic_gaussian",
    "dense_normal",
    "equicorrelated_normal",
    "lautum_information",
    "make_task",
    "mi_from_rho",
    "multivariate_normal",
    "nce_club_optimal_value",
    "register_family",
    "rho_from_mi",
    "sparse_normal",
    "staircase",
    "student_t",
    "student_t_mi_correction",
    "transformed",
]


@runtime_checkable
class MITask(Protocol):
    """A distribution of pairs ``(x, y)`` with known mutual information (see module doc)."""

    @property
    def name(self) -> str: ...

    @property
    def true_mi(self) -> float: ...

    @property
    def x_dim(self) -> int: ...

    @property
    def y_dim(self) -> int: ...

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]: ...

    def pointwise_mi(self, x: Array, y: Array) -> Array: ...


# ----------------------------------------------------------------------------- validation


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"`{name}` must be >= {minimum}, got {value}")
    return int(value)


def _check_float(value: Any, name: str, *, positive: bool = False) -> float:
    """A finite float, ``>= 0`` (or ``> 0`` with ``positive``)."""
    try:
        if isinstance(value, str | bytes):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"`{name}` must be a finite real number, got {value!r}")
    if number < 0 or (positive and number == 0):
        raise ValueError(f"`{name}` must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return number


def _check_pair(x: Array, y: Array, x_dim: int, y_dim: int) -> None:
    x_shape, y_shape = jnp.shape(x), jnp.shape(y)
    if len(x_shape) != 2 or x_shape[1] != x_dim:
        raise ValueError(f"`x` must have shape [n, {x_dim}], got {x_shape}")
    if len(y_shape) != 2 or y_shape[1] != y_dim:
        raise ValueError(f"`y` must have shape [n, {y_dim}], got {y_shape}")
    if x_shape[0] != y_shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same number of rows, got shapes {x_shape} and {y_shape}"
        )


def _format_float(value: float) -> str:
    """Shortest round-trip decimal without exponent or sign, e.g. ``4.0``, ``0.00001``."""
    return np.format_float_positional(float(value), unique=True, trim="0")


# ----------------------------------------------------------------- correlated Gaussian pairs


def rho_from_mi(mi: float, dim: int) -> float:
    """Per-coordinate correlation giving ``mi`` nats over ``dim`` independent pairs.

    ``I = -dim/2 log(1 - rho^2)``, so ``rho = sqrt(1 - exp(-2 I / dim))``.
    """
    mi, dim = _check_float(mi, "mi"), _check_int(dim, "dim")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def mi_from_rho(rho: float, dim: int) -> float:
    """``I = -dim/2 log(1 - rho^2)`` nats for ``dim`` independent pairs of correlation ``rho``."""
    dim = _check_int(dim, "dim")
    try:
        rho = float(rho)
    except (TypeError, ValueError):
        raise ValueError(f"`rho` must be a real number, got {rho!r}") from None
    if not -1.0 < rho < 1.0:
        raise ValueError(f"`rho` must lie in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def nce_club_optimal_value(mi: float, dim: int) -> float:
    """NCE-CLUB at the optimal InfoNCE critic for :func:`correlated_gaussian`: ``I + L``.

    The optimal InfoNCE critic is ``f(x, y) = log p(x, y) / (p(x) p(y)) + c(x)``; NCE-CLUB
    ``E_p[f] - E_{p(x)p(y)}[f]`` then equals ``I + L`` with ``L`` the lautum information
    (:func:`lautum_information`). For ``dim`` pairs of correlation ``rho`` this is::

        I + L = sum_coordinates rho^2 / (1 - rho^2) = dim * (exp(2 I / dim) - 1)

    e.g. ``4.43`` at ``(mi=2, dim=20)`` and ``2.46`` at ``(mi=1, dim=5)``.
    """
    mi, dim = _check_float(mi, "mi"), _check_int(dim, "dim")
    return dim * math.expm1(2.0 * mi / dim)


def lautum_information(mi: float, dim: int) -> float:
    """Lautum information of :func:`correlated_gaussian`: ``E_{p(x)p(y)}[log p(x)p(y)/p(x,y)]``.

    It is the KL divergence with the arguments of the MI swapped (Palomar & Verdú 2008). Per
    pair, under ``p(x)p(y)`` (``E x^2 = E y^2 = 1``, ``E xy = 0``) the negative pointwise MI
    ``1/2 log(1 - rho^2) + (x^2 - 2 rho x y + y^2) / (2 (1 - rho^2)) - (x^2 + y^2) / 2`` has
    mean ``rho^2 / (1 - rho^2) + 1/2 log(1 - rho^2)``, so::

        L = dim * (exp(2 I / dim) - 1) - I = nce_club_optimal_value(mi, dim) - mi
    """
    return nce_club_optimal_value(mi, dim) - _check_float(mi, "mi")


@dataclasses.dataclass(frozen=True)
class CorrelatedGaussianTask:
    """``dim`` independent pairs ``(x_k, y_k)`` of standard normals with correlation ``rho``.

    ``x ~ N(0, I)``, ``y = rho x + sqrt(1 - rho^2) eps`` with ``eps ~ N(0, I)``, so that
    ``I(X; Y) = -dim/2 log(1 - rho^2) = mi``. Name: ``gaussian-d{dim}-mi{mi}``.
    """

    dim: int
    mi: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "dim", _check_int(self.dim, "dim"))
        object.__setattr__(self, "mi", _check_float(self.mi, "mi"))

    @property
    def name(self) -> str:
        return f"gaussian-d{self.dim}-mi{_format_float(self.mi)}"

    @property
    def true_mi(self) -> float:
        return self.mi

    @property
    def x_dim(self) -> int:
        return self.dim

    @property
    def y_dim(self) -> int:
        return self.dim

    @property
    def rho(self) -> float:
        """The per-coordinate correlation ``sqrt(1 - exp(-2 mi / dim))``."""
        return rho_from_mi(self.mi, self.dim)

    @property
    def lautum_information(self) -> float:
        """``E_{p(x)p(y)}[-pointwise_mi]``; see :func:`lautum_information`."""
        return lautum_information(self.mi, self.dim)

    @property
    def nce_club_optimal_value(self) -> float:
        """``true_mi + lautum_information``; see :func:`nce_club_optimal_value`."""
        return nce_club_optimal_value(self.mi, self.dim)

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, dim], y [n, dim])`` float32."""
        num_samples = _check_int(num_samples, "num_samples")
        key_x, key_noise = jax.random.split(key)
        shape = (num_samples, self.dim)
        x = jax.random.normal(key_x, shape, jnp.float32)
        noise = jax.random.normal(key_noise, shape, jnp.float32)
        # sqrt(1 - rho^2) = exp(-mi / dim) exactly, without cancellation at large mi.
        return x, self.rho * x + math.exp(-self.mi / self.dim) * noise

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``log p(x, y) / (p(x) p(y))``: ``[n]`` for ``x, y`` of shape ``[n, dim]``."""
        return _gaussian_pointwise_mi(self, x, y)

    def _squared_mahalanobis(self, x: Array, y: Array) -> tuple[Array, Array, Array]:
        # Joint: x^T x + (y - rho x)^T (y - rho x) / (1 - rho^2), from p(x) p(y | x).
        residual = y - self.rho * x
        x_term = jnp.sum(jnp.square(x), axis=-1)
        joint = x_term + jnp.sum(jnp.square(residual), axis=-1) * math.exp(2 * self.mi / self.dim)
        return joint, x_term, jnp.sum(jnp.square(y), axis=-1)

    @property
    def _log_det_covariances(self) -> tuple[float, float, float]:
        # det of a pair's covariance is 1 - rho^2 = exp(-2 mi / dim).
        return -2.0 * self.mi, 0.0, 0.0


def correlated_gaussian(dim: int, mi: float) -> CorrelatedGaussianTask:
    """``dim`` independent correlated standard-normal pairs with ``I(X; Y) = mi`` nats.

    Example::

      task = correlated_gaussian(20, 4.0)          # name "gaussian-d20-mi4.0"
      x, y = task.sample(jax.random.key(0), 64)    # [64, 20], [64, 20]
    """
    return CorrelatedGaussianTask(dim, mi)


def cubic_gaussian(dim: int, mi: float) -> TransformedTask:
    """:func:`correlated_gaussian` with ``y -> y^3`` (invertible, so the MI is unchanged).

    Name: ``cubic-d{dim}-mi{mi}``; equal to ``transformed(correlated_gaussian(dim, mi),
    y_map="cube")``.
    """
    return TransformedTask(correlated_gaussian(dim, mi), y_maps=("cube",))


def staircase(
    dim: int, levels: Iterable[float] = (2, 4, 6, 8, 10), family: str = "gaussian"
) -> list[CorrelatedGaussianTask | TransformedTask]:
    """The MI staircase: one ``family`` task (``"gaussian"`` or ``"cubic"``) per MI level."""
    factories = {"gaussian": correlated_gaussian, "cubic": cubic_gaussian}
    if family not in factories:
        raise ValueError(f"`family` must be one of {sorted(factories)}, got {family!r}")
    if isinstance(levels, str) or not isinstance(levels, Iterable) or not tuple(levels):
        raise ValueError(f"`levels` must be a non-empty sequence of MI values, got {levels!r}")
    return [factories[family](dim, level) for level in levels]


# ------------------------------------------------------------------- multivariate normals


def _cholesky(matrix: np.ndarray, name: str) -> np.ndarray:
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"`{name}` must be positive definite (its Cholesky factorisation "
            f"failed; smallest eigenvalue {np.linalg.eigvalsh(matrix)[0]:.3g})"
        ) from None


@dataclasses.dataclass(frozen=True)
class MultivariateNormalTask:
    """``(x, y) ~ N(0, S)`` with ``S`` a positive-definite ``[x_dim + y_dim]^2`` covariance.

    ``true_mi = 1/2 (log det S_xx + log det S_yy - log det S)``. Samples are
    ``z = L eps`` with ``S = L L^T`` (Cholesky), ``x = z[:x_dim]``, ``y = z[x_dim:]``.
    Build it with :func:`multivariate_normal`, :func:`sparse_normal` or :func:`dense_normal`;
    ``covariance`` is kept as nested tuples so that the task stays hashable.
    """

    covariance: tuple[tuple[float, ...], ...]
    x_dim: int
    name: str

    def __post_init__(self) -> None:
        matrix = np.asarray(self.covariance, np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
            raise ValueError(
                f"`covariance` must be a square matrix of size >= 2, got shape {matrix.shape}"
            )
        if not np.all(np.isfinite(matrix)):
            raise ValueError("`covariance` must be finite")
        if not np.allclose(matrix, matrix.T, rtol=1e-10, atol=1e-12):
            raise ValueError("`covariance` must be symmetric")
        x_dim = _check_int(self.x_dim, "x_dim")
        if x_dim >= matrix.shape[0]:
            raise ValueError(
                f"`x_dim` must be < the covariance size {matrix.shape[0]} "
                f"(y needs at least one coordinate), got {x_dim}"
            )
        _cholesky(matrix, "covariance")
        object.__setattr__(self, "covariance", tuple(tuple(map(float, row)) for row in matrix))
        object.__setattr__(self, "x_dim", x_dim)
        object.__setattr__(self, "name", str(self.name))

    @property
    def y_dim(self) -> int:
        return len(self.covariance) - self.x_dim

    @functools.cached_property
    def _factors(self) -> dict[str, np.ndarray]:
        """Float64 Cholesky factor of ``S`` and whitening matrices ``L^{-1}`` of S, S_xx, S_yy."""
        matrix = np.asarray(self.covariance, np.float64)
        cholesky = np.linalg.cholesky(matrix)
        whiten = np.linalg.inv(cholesky)
        whiten_y = np.linalg.inv(np.linalg.cholesky(matrix[self.x_dim :, self.x_dim :]))
        # The leading block of the Cholesky factor of S is the Cholesky factor of S_xx.
        return {
            "cholesky": cholesky,
            "whiten": whiten,
            "whiten_x": whiten[: self.x_dim, : self.x_dim],
            "whiten_y": whiten_y,
        }

    @property
    def _log_det_covariances(self) -> tuple[float, float, float]:
        factors = self._factors

        def log_det(whiten: np.ndarray) -> float:
            return float(-2.0 * np.sum(np.log(np.diag(whiten))))

        return (
            log_det(factors["whiten"]),
            log_det(factors["whiten_x"]),
            log_det(factors["whiten_y"]),
        )

    @property
    def true_mi(self) -> float:
        log_det, log_det_x, log_det_y = self._log_det_covariances
        return 0.5 * (log_det_x + log_det_y - log_det)

    @property
    def lautum_information(self) -> float:
        """Lautum information ``L = E_{p(x)p(y)}[log p(x)p(y)/p(x,y)] = KL(N(0, D) || N(0, S))``.

        With ``D = diag(S_xx, S_yy)``: ``L = 1/2 tr(S^{-1} D) - (x_dim + y_dim)/2 - true_mi``
        (the log-det terms of the KL are ``-true_mi``).
        """
        matrix = np.asarray(self.covariance, np.float64)
        block_diagonal = np.zeros_like(matrix)
        block_diagonal[: self.x_dim, : self.x_dim] = matrix[: self.x_dim, : self.x_dim]
        block_diagonal[self.x_dim :, self.x_dim :] = matrix[self.x_dim :, self.x_dim :]
        whiten = self._factors["whiten"]
        trace = float(np.trace(whiten @ block_diagonal @ whiten.T))
        return 0.5 * (trace - len(matrix)) - self.true_mi

    @property
    def nce_club_optimal_value(self) -> float:
        """NCE-CLUB at the optimal InfoNCE critic: ``true_mi + lautum_information``."""
        return self.true_mi + self.lautum_information

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, x_dim], y [n, y_dim])`` float32."""
        num_samples = _check_int(num_samples, "num_samples")
        cholesky = jnp.asarray(self._factors["cholesky"], jnp.float32)
        eps = jax.random.normal(key, (num_samples, len(self.covariance)), jnp.float32)
        z = eps @ cholesky.T
        return z[:, : self.x_dim], z[:, self.x_dim :]

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``log p(x, y) / (p(x) p(y))``: ``[n]`` for ``x [n, x_dim]``, ``y [n, y_dim]``."""
        return _gaussian_pointwise_mi(self, x, y)

    def _squared_mahalanobis(self, x: Array, y: Array) -> tuple[Array, Array, Array]:
        factors = {k: jnp.asarray(v, jnp.float32) for k, v in self._factors.items()}
        joint = jnp.concatenate([x, y], axis=-1) @ factors["whiten"].T
        return (
            jnp.sum(jnp.square(joint), axis=-1),
            jnp.sum(jnp.square(x @ factors["whiten_x"].T), axis=-1),
            jnp.sum(jnp.square(y @ factors["whiten_y"].T), axis=-1),
        )


def multivariate_normal(
    x_dim: int,
    y_dim: int,
    cross_covariance: np.ndarray,
    *,
    x_covariance: np.ndarray | None = None,
    y_covariance: np.ndarray | None = None,
    name: str | None = None,
) -> MultivariateNormalTask:
    """A jointly Gaussian task from its blocks ``S = [[S_xx, S_xy], [S_xy^T, S_yy]]``.

    Args:
      x_dim, y_dim: dimensions of x and y.
      cross_covariance: ``S_xy`` of shape ``[x_dim, y_dim]``.
      x_covariance, y_covariance: ``S_xx`` ``[x_dim, x_dim]`` and ``S_yy`` ``[y_dim, y_dim]``;
        identity when ``None``.
      name: defaults to ``mvn-dx{x_dim}-dy{y_dim}-cov{digest}`` (a hash of ``S``).

    Returns:
      the task, ``true_mi = 1/2 (log det S_xx + log det S_yy - log det S)``.

    Raises:
      ValueError: on wrong shapes or a ``S`` that is not symmetric positive definite.
    """
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")

    def block(value: np.ndarray | None, shape: tuple[int, int], arg: str) -> np.ndarray:
        if value is None:
            return np.eye(shape[0])
        matrix = np.asarray(value, np.float64)
        if matrix.shape != shape:
            raise ValueError(f"`{arg}` must have shape {list(shape)}, got {list(matrix.shape)}")
        return matrix

    cross = block(cross_covariance, (x_dim, y_dim), "cross_covariance")
    covariance = np.block(
        [
            [block(x_covariance, (x_dim, x_dim), "x_covariance"), cross],
            [cross.T, block(y_covariance, (y_dim, y_dim), "y_covariance")],
        ]
    )
    if name is None:
        digest = hashlib.sha256(np.ascontiguousarray(covariance).tobytes()).hexdigest()[:12]
        name = f"mvn-dx{x_dim}-dy{y_dim}-cov{digest}"
    return MultivariateNormalTask(covariance, x_dim, name)


def sparse_normal(
    x_dim: int, y_dim: int, mi: float, num_pairs: int | None = None
) -> MultivariateNormalTask:
    """Standard normal x and y where only ``(x_k, y_k)``, ``k < num_pairs``, are correlated.

    Each of the ``num_pairs`` pairs has correlation ``rho_from_mi(mi, num_pairs)``; the
    other coordinates are independent noise. ``num_pairs`` defaults to
    ``min(2, x_dim, y_dim)``. Name: ``mvn_sparse-dx{x_dim}-dy{y_dim}-pairs{k}-mi{mi}``.
    """
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")
    mi = _check_float(mi, "mi")
    num_pairs = min(2, x_dim, y_dim) if num_pairs is None else num_pairs
    num_pairs = _check_int(num_pairs, "num_pairs")
    if num_pairs > min(x_dim, y_dim):
        raise ValueError(
            f"`num_pairs` must be <= min(x_dim, y_dim) = {min(x_dim, y_dim)}, got {num_pairs}"
        )
    cross = np.zeros((x_dim, y_dim))
    cross[np.arange(num_pairs), np.arange(num_pairs)] = rho_from_mi(mi, num_pairs)
    return multivariate_normal(
        x_dim,
        y_dim,
        cross,
        name=f"mvn_sparse-dx{x_dim}-dy{y_dim}-pairs{num_pairs}-mi{_format_float(mi)}",
    )


def _equicorrelation_sqrt(dim: int, within: float) -> np.ndarray:
    """Symmetric square root of ``R = (1 - a) I + a 1 1^T``: ``sqrt(1-a) I + b 1 1^T``."""
    base = math.sqrt(1.0 - within)
    return base * np.eye(dim) + (math.sqrt(1.0 - within + within * dim) - base) / dim


def dense_normal(
    x_dim: int, y_dim: int, mi: float, within_correlation: float = 0.5
) -> MultivariateNormalTask:
    """A normal in which every coordinate is correlated with every other one.

    With ``A_d`` the symmetric square root of the equicorrelation matrix
    ``R_d = (1 - a) I_d + a 1 1^T`` (``a = within_correlation``) and ``C`` the
    ``[x_dim, y_dim]`` matrix with ``rho`` on its first ``k = min(x_dim, y_dim)`` diagonal
    entries::

        S_xx = R_{x_dim},   S_yy = R_{y_dim},   S_xy = A_{x_dim} C A_{y_dim}

    i.e. ``(x, y) = (A u, A v)`` for ``k`` correlated standard pairs ``(u_i, v_i)``. The
    invertible maps ``A`` keep the MI, ``-k/2 log(1 - rho^2)``; ``rho`` is set to give ``mi``.
    Name: ``mvn_dense-dx{x_dim}-dy{y_dim}-within{a}-mi{mi}``.
    """
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")
    mi = _check_float(mi, "mi")
    within = _check_float(within_correlation, "within_correlation")
    if within >= 1.0:
        raise ValueError(f"`within_correlation` must lie in [0, 1), got {within_correlation}")
    num_pairs = min(x_dim, y_dim)
    canonical = np.zeros((x_dim, y_dim))
    canonical[np.arange(num_pairs), np.arange(num_pairs)] = rho_from_mi(mi, num_pairs)
    mix_x, mix_y = _equicorrelation_sqrt(x_dim, within), _equicorrelation_sqrt(y_dim, within)
    return multivariate_normal(
        x_dim,
        y_dim,
        mix_x @ canonical @ mix_y,
        x_covariance=mix_x @ mix_x,
        y_covariance=mix_y @ mix_y,
        name=f"mvn_dense-dx{x_dim}-dy{y_dim}-within{_format_float(within)}-mi{_format_float(mi)}",
    )


def equicorrelated_normal(
    x_dim: int, y_dim: int, correlation: float = 0.5
) -> MultivariateNormalTask:
    """Standard normals with one correlation ``a`` between *every* two of the
    ``x_dim + y_dim`` coordinates: ``S = (1 - a) I + a 1 1^T`` (Czyż et al. 2023's "dense"
    multinormal, ``a = 0.5``).

    With ``det R_n = (1 - a)^(n-1) (1 + (n - 1) a)`` for the ``n x n`` block::

        I = 1/2 (log det R_dx + log det R_dy - log det R_{dx+dy})

    e.g. 0.593 nats for 5 + 5 and 1.292 for 25 + 25 coordinates at ``a = 0.5``.
    Name: ``mvn_equicorr-dx{x_dim}-dy{y_dim}-corr{a}``.
    """
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")
    correlation = _check_float(correlation, "correlation")
    if correlation >= 1.0:
        raise ValueError(f"`correlation` must lie in [0, 1), got {correlation}")
    covariance = (1 - correlation) * np.eye(x_dim + y_dim) + correlation
    return MultivariateNormalTask(
        covariance,
        x_dim,
        f"mvn_equicorr-dx{x_dim}-dy{y_dim}-corr{_format_float(correlation)}",
    )


def _gaussian_pointwise_mi(
    task: CorrelatedGaussianTask | MultivariateNormalTask, x: Array, y: Array
) -> Array:
    """``log N(x, y; S) - log N(x; S_xx) - log N(y; S_yy)`` (the ``2 pi`` factors cancel)."""
    _check_pair(x, y, task.x_dim, task.y_dim)
    joint, x_term, y_term = task._squared_mahalanobis(x, y)
    log_det, log_det_x, log_det_y = task._log_det_covariances
    return 0.5 * (log_det_x + log_det_y - log_det) - 0.5 * (joint - x_term - y_term)


# ------------------------------------------------------------------------------- Student-t


def _digamma(value: float) -> float:
    """``psi(v) = d/dv log Gamma(v)`` for ``v > 0`` (float64, error < 1e-13).

    Shifts ``v`` up to ``>= 10`` with ``psi(v) = psi(v + 1) - 1/v``, then uses the asymptotic
    series ``log v - 1/(2v) - sum_k B_2k / (2k v^2k)``.
    """
    shift = 0.0
    while value < 10.0:
        shift -= 1.0 / value
        value += 1.0
    inv2 = 1.0 / (value * value)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return shift + math.log(value) - 0.5 / value - series


def _student_t_log_normaliser(df: float, dim: int) -> float:
    """``log Gamma((df + p)/2) - log Gamma(df/2) - p/2 log(df pi)`` of a ``p``-variate t."""
    return math.lgamma((df + dim) / 2) - math.lgamma(df / 2) - dim / 2 * math.log(df * math.pi)


def student_t_mi_correction(df: float, x_dim: int, y_dim: int) -> float:
    """MI that a shared Student-t scale adds to a Gaussian pair: ``I_t = I_gauss + c``.

    For ``(x, y) = (g_x, g_y) / sqrt(w / df)``, ``(g_x, g_y) ~ N(0, S)``, ``w ~ chi^2_df``, the pair
    is multivariate t with scale ``S`` and ``df`` degrees of freedom, and so are its marginals (same
    ``df``, scales ``S_xx``, ``S_yy``). ``I = h(X) + h(Y) - h(X, Y)`` with the entropies ``h = 1/2
    log det S + log[(df pi)^(p/2) Gamma(df/2) / Gamma((df + p)/2)] + (df + p)/2 [psi((df + p)/2) -
    psi(df/2)]``: the log-det terms give ``I_gauss``, the ``(df pi)^(p/2)`` factors cancel, and with
    ``p = x_dim + y_dim``::

        c = log G(df/2) + log G((df+p)/2) - log G((df+x_dim)/2) - log G((df+y_dim)/2)
            + (df+x_dim)/2 psi((df+x_dim)/2) + (df+y_dim)/2 psi((df+y_dim)/2)
            - (df+p)/2 psi((df+p)/2) - df/2 psi(df/2)

    (``G`` = Gamma, ``psi`` = digamma). ``c > 0`` even for uncorrelated ``S`` and
    ``c -> 0`` as ``df -> inf``; e.g. ``c(1, 1, 1) = 0.2242``, ``c(3, 5, 5) = 0.2985``.
    """
    df = _check_float(df, "df", positive=True)
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")
    total = x_dim + y_dim

    def half(dim: int) -> float:
        return (df + dim) / 2

    return (
        math.lgamma(half(0))
        + math.lgamma(half(total))
        - math.lgamma(half(x_dim))
        - math.lgamma(half(y_dim))
        + half(x_dim) * _digamma(half(x_dim))
        + half(y_dim) * _digamma(half(y_dim))
        - half(total) * _digamma(half(total))
        - half(0) * _digamma(half(0))
    )


@dataclasses.dataclass(frozen=True)
class StudentTTask:
    """Multivariate Student-t: a Gaussian task's pair divided by one shared random scale.

    ``(x, y) = (g_x, g_y) / sqrt(w / df)`` with ``(g_x, g_y)`` drawn from ``gaussian`` (a
    :class:`CorrelatedGaussianTask` or :class:`MultivariateNormalTask`, covariance ``S``) and
    ``w ~ chi^2_df`` shared by x and y. ``true_mi = gaussian.true_mi +
    student_t_mi_correction(df, x_dim, y_dim)``. Name: ``student_t-df{df}-{gaussian.name}``.
    """

    gaussian: CorrelatedGaussianTask | MultivariateNormalTask
    df: float

    def __post_init__(self) -> None:
        if not isinstance(self.gaussian, CorrelatedGaussianTask | MultivariateNormalTask):
            raise ValueError(
                f"`gaussian` must be a CorrelatedGaussianTask or "
                f"MultivariateNormalTask, got {type(self.gaussian).__name__}"
            )
        object.__setattr__(self, "df", _check_float(self.df, "df", positive=True))

    @property
    def name(self) -> str:
        return f"student_t-df{_format_float(self.df)}-{self.gaussian.name}"

    @property
    def x_dim(self) -> int:
        return self.gaussian.x_dim

    @property
    def y_dim(self) -> int:
        return self.gaussian.y_dim

    @property
    def true_mi(self) -> float:
        return self.gaussian.true_mi + student_t_mi_correction(self.df, self.x_dim, self.y_dim)

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, x_dim], y [n, y_dim])`` float32. Heavy-tailed: no variance for ``df <= 2``."""
        num_samples = _check_int(num_samples, "num_samples")
        key_gaussian, key_scale = jax.random.split(key)
        x, y = self.gaussian.sample(key_gaussian, num_samples)
        # w = 2 Gamma(df/2); drawn in log space so that small df cannot underflow w to 0.
        log_w = math.log(2.0) + jax.random.loggamma(
            key_scale, self.df / 2, (num_samples, 1), jnp.float32
        )
        inverse_scale = jnp.exp(0.5 * (math.log(self.df) - log_w))
        return x * inverse_scale, y * inverse_scale

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``log t(x, y; S) - log t(x; S_xx) - log t(y; S_yy)``: ``[n]``.

        ``log t(z; S) = log Gamma((df+p)/2) - log Gamma(df/2) - p/2 log(df pi)
        - 1/2 log det S - (df+p)/2 log(1 + z^T S^{-1} z / df)``.
        """
        _check_pair(x, y, self.x_dim, self.y_dim)
        joint, x_term, y_term = self.gaussian._squared_mahalanobis(x, y)
        log_det, log_det_x, log_det_y = self.gaussian._log_det_covariances
        df, x_dim, y_dim = self.df, self.x_dim, self.y_dim
        constant = (
            _student_t_log_normaliser(df, x_dim + y_dim)
            - _student_t_log_normaliser(df, x_dim)
            - _student_t_log_normaliser(df, y_dim)
            + 0.5 * (log_det_x + log_det_y - log_det)
        )
        return (
            constant
            - (df + x_dim + y_dim) / 2 * jnp.log1p(joint / df)
            + (df + x_dim) / 2 * jnp.log1p(x_term / df)
            + (df + y_dim) / 2 * jnp.log1p(y_term / df)
        )


def student_t(
    gaussian: CorrelatedGaussianTask | MultivariateNormalTask | str | Mapping[str, Any],
    df: float,
) -> StudentTTask:
    """Multivariate Student-t with ``df`` degrees of freedom around a Gaussian task.

    ``gaussian`` is a Gaussian task or anything :func:`make_task` builds one from, e.g.
    ``student_t("gaussian-d5-mi1.0", 3)`` (name ``student_t-df3.0-gaussian-d5-mi1.0``,
    ``true_mi = 1.0 + student_t_mi_correction(3, 5, 5) = 1.2985``).
    """
    if isinstance(gaussian, str | Mapping):
        gaussian = make_task(gaussian)
    return StudentTTask(gaussian, df)


# ----------------------------------------------------------------- additive uniform noise


@dataclasses.dataclass(frozen=True)
class AdditiveUniformTask:
    """``x ~ U(0, 1)``, ``y = x + e`` with ``e ~ U(-eps, eps)`` independent of ``x``.

    ``p(y | x) = 1 / (2 eps)`` on ``|y - x| < eps``, and ``p(y)`` is the trapezoid
    ``|[y - eps, y + eps] ∩ [0, 1]| / (2 eps)``, so the pointwise MI is minus the log length
    of that overlap, and (Czyż et al. 2023, appendix; bmi's ``AdditiveUniformSampler``)::

        I = 1 / (4 eps)           for eps >= 1/2
        I = eps - log(2 eps)      for eps <= 1/2

    (both give 1/2 at eps = 1/2). Name: ``additive_uniform-eps{eps}``.
    """

    epsilon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", _check_float(self.epsilon, "epsilon", positive=True))

    @property
    def name(self) -> str:
        return f"additive_uniform-eps{_format_float(self.epsilon)}"

    @property
    def x_dim(self) -> int:
        return 1

    @property
    def y_dim(self) -> int:
        return 1

    @property
    def true_mi(self) -> float:
        eps = self.epsilon
        return 0.25 / eps if eps >= 0.5 else eps - math.log(2.0 * eps)

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, 1], y [n, 1])`` float32."""
        num_samples = _check_int(num_samples, "num_samples")
        key_x, key_noise = jax.random.split(key)
        x = jax.random.uniform(key_x, (num_samples, 1), jnp.float32)
        noise = jax.random.uniform(
            key_noise, (num_samples, 1), jnp.float32, -self.epsilon, self.epsilon
        )
        return x, x + noise

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``-log |[y - eps, y + eps] ∩ [0, 1]|``: ``[n]``; ``-inf`` where ``p(x, y) = 0``."""
        _check_pair(x, y, 1, 1)
        x, y = x[:, 0], y[:, 0]
        overlap = jnp.minimum(1.0, y + self.epsilon) - jnp.maximum(0.0, y - self.epsilon)
        inside = (jnp.abs(y - x) <= self.epsilon) & (x >= 0.0) & (x <= 1.0)
        return jnp.where(inside, -jnp.log(jnp.where(inside, overlap, 1.0)), -jnp.inf)


def additive_uniform(epsilon: float) -> AdditiveUniformTask:
    """``y = x + e``, ``x ~ U(0, 1)``, ``e ~ U(-epsilon, epsilon)``; e.g. ``1/3`` nats at 0.75."""
    return AdditiveUniformTask(epsilon)


# ------------------------------------------------------------------ invertible transforms

_ELEMENTWISE_MAPS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "asinh": (jnp.arcsinh, jnp.sinh),
    "cube": (lambda t: t**3, jnp.cbrt),
    "half_cube": (
        lambda t: t * jnp.sqrt(jnp.abs(t)),
        lambda t: jnp.sign(t) * jnp.abs(t) ** (2 / 3),
    ),
    "normal_cdf": (jax.scipy.special.ndtr, jax.scipy.special.ndtri),
}
_FLOAT = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SIGNED_FLOATS = rf"-?{_FLOAT}(?:,-?{_FLOAT})*"
_SPIRAL = re.compile(rf"spiral(?P<speed>{_FLOAT})?(?:-plane(?P<first>\d+)-(?P<second>\d+))?")
_WAVES = re.compile(rf"waves(?P<amplitude>{_FLOAT})-(?P<frequency>{_FLOAT})")
_SCALE_OR_SHIFT = re.compile(rf"(?P<kind>scale|shift)(?P<values>{_SIGNED_FLOATS})")
_SWISS_ROLL_RADIUS = 21.0


def _spiral(v: Array, speed: float, plane: tuple[int, int] | None = None) -> Array:
    """Rotate coordinate planes by the angle ``speed * |v|^2``.

    ``plane=None`` rotates ``(v_0, v_1), (v_2, v_3), ...`` (an odd last coordinate is kept);
    ``plane=(i, j)`` rotates only ``(v_i, v_j)``: ``v -> exp(speed |v|^2 A) v`` with ``A``
    the generator of so(dim) with ``A[i, j] = -1``, ``A[j, i] = 1`` (bmi's ``Spiral``).
    Rotations keep ``|v|``, so the inverse is the same map with ``-speed``. The Jacobian
    ``R (I + 2 speed A v v^T)`` has determinant ``1 + 2 speed v^T A v = 1``: the map preserves
    volume.
    """
    dim = v.shape[1]
    if plane is None:
        first_index = np.arange(0, 2 * (dim // 2), 2)
        second_index = first_index + 1
    else:
        first_index, second_index = np.array([plane[0]]), np.array([plane[1]])
    angle = speed * jnp.sum(jnp.square(v), axis=-1, keepdims=True)  # [n, 1]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    first, second = v[:, first_index], v[:, second_index]
    return (
        v.at[:, first_index]
        .set(cos * first - sin * second)
        .at[:, second_index]
        .set(sin * first + cos * second)
    )


def _swiss_roll(u: Array) -> Array:
    """``[n, 1] -> [n, 2]``: ``t = 1.5 pi (1 + 2 u)``, ``(t cos t, t sin t) / 21`` (bmi's
    ``swissroll2d``). One-to-one on ``u`` in ``[0, 1]`` (``t > 0``), so an embedding."""
    t = 1.5 * math.pi * (1.0 + 2.0 * u)
    return jnp.concatenate([t * jnp.cos(t), t * jnp.sin(t)], axis=-1) / _SWISS_ROLL_RADIUS


def _unroll_swiss_roll(z: Array) -> Array:
    """``[n, 2] -> [n, 1]``, the left inverse of :func:`_swiss_roll`: ``t = 21 |z|``."""
    t = _SWISS_ROLL_RADIUS * jnp.linalg.norm(z, axis=-1, keepdims=True)
    return (t / (1.5 * math.pi) - 1.0) / 2.0


def _format_floats(values: Iterable[float]) -> str:
    # + 0.0 turns -0.0 into 0.0, so that equal maps have one name.
    return ",".join(
        np.format_float_positional(float(v) + 0.0, unique=True, trim="0") for v in values
    )


def _parse_map(token: Any, arg: str) -> str:
    """Canonical token of a map (see :func:`transformed` for the list)."""
    if isinstance(token, str):
        if token in _ELEMENTWISE_MAPS or token == "swissroll":
            return token
        match = _SPIRAL.fullmatch(token)
        if match:
            speed = 1.0 if match["speed"] is None else float(match["speed"])
            canonical = f"spiral{_format_float(_check_float(speed, 'spiral speed', positive=True))}"
            if match["first"] is None:
                return canonical
            first, second = int(match["first"]), int(match["second"])
            if first >= second:
                raise ValueError(f"`{arg}`: a spiral plane i-j needs i < j, got {token!r}")
            return f"{canonical}-plane{first}-{second}"
        match = _WAVES.fullmatch(token)
        if match:
            amplitude, frequency = float(match["amplitude"]), float(match["frequency"])
            return f"waves{_format_float(amplitude)}-{_format_float(frequency)}"
        match = _SCALE_OR_SHIFT.fullmatch(token)
        if match:
            values = [float(v) for v in match["values"].split(",")]
            if match["kind"] == "scale" and 0.0 in values:
                raise ValueError(f"`{arg}`: a scale needs nonzero factors, got {token!r}")
            return f"{match['kind']}{_format_floats(values)}"
    raise ValueError(
        f"`{arg}` must be one of {sorted([*_ELEMENTWISE_MAPS, 'swissroll'])}, "
        f"'spiral{{speed}}' (e.g. 'spiral0.5'), 'spiral{{speed}}-plane{{i}}-{{j}}', "
        f"'waves{{amplitude}}-{{frequency}}', 'scale{{a}},{{b}},...' or 'shift{{a}},{{b}},...', "
        f"got {token!r}"
    )


def _map_output_dim(token: str, dim: int, arg: str) -> int:
    """The dimension after the map ``token`` on ``dim`` coordinates; raises if it cannot act."""
    if token.startswith("spiral"):
        match = _SPIRAL.fullmatch(token)
        needed = 2 if match["second"] is None else int(match["second"]) + 1
        if dim < needed:
            raise ValueError(f"`{arg}`: {token} needs at least {needed} dimensions, got {dim}")
    elif token.startswith("waves") and dim < 2:
        raise ValueError(f"`{arg}`: {token} needs at least 2 dimensions, got {dim}")
    elif token.startswith(("scale", "shift")):
        count = token.count(",") + 1
        if count != dim:
            raise ValueError(f"`{arg}`: {token} has {count} values for {dim} dimensions")
    elif token == "swissroll":
        if dim != 1:
            raise ValueError(f"`{arg}`: swissroll embeds 1 dimension in 2, got {dim}")
        return 2
    return dim


def _output_dim(maps: tuple[str, ...], dim: int, arg: str) -> int:
    for token in maps:
        dim = _map_output_dim(token, dim, arg)
    return dim


def _apply_map(token: str, v: Array, inverse: bool) -> Array:
    if token in _ELEMENTWISE_MAPS:
        return _ELEMENTWISE_MAPS[token][int(inverse)](v)
    if token == "swissroll":
        return _unroll_swiss_roll(v) if inverse else _swiss_roll(v)
    match = _SPIRAL.fullmatch(token)
    if match:
        speed = float(match["speed"])
        plane = None if match["first"] is None else (int(match["first"]), int(match["second"]))
        return _spiral(v, -speed if inverse else speed, plane)
    match = _WAVES.fullmatch(token)
    if match:
        shift = float(match["amplitude"]) * jnp.sin(float(match["frequency"]) * v[:, 1])
        return v.at[:, 0].add(-shift if inverse else shift)
    match = _SCALE_OR_SHIFT.fullmatch(token)
    values = jnp.asarray([[float(value) for value in match["values"].split(",")]], v.dtype)
    if match["kind"] == "scale":
        return v / values if inverse else v * values
    return v - values if inverse else v + values


def _as_map_tuple(maps: str | Sequence[str] | None, arg: str) -> tuple[str, ...]:
    if maps is None:
        return ()
    if isinstance(maps, str):
        maps = (maps,)
    return tuple(_parse_map(token, arg) for token in maps)


@dataclasses.dataclass(frozen=True)
class TransformedTask:
    """``(f(x), g(y))`` for ``(x, y)`` from ``base`` and invertible ``f``, ``g``: same MI.

    ``f`` applies ``x_maps`` in order, ``g`` applies ``y_maps``. ``pointwise_mi`` inverts the
    maps and evaluates the base's: the Jacobians of ``f`` and ``g`` cancel between
    ``p(x, y)`` and ``p(x) p(y)``. The ``swissroll`` map embeds one coordinate in two (so
    ``x_dim`` may exceed the base's); there the densities are taken on the embedded curve,
    and the PMI is the base's as well. A transformed base is flattened into one layer, so
    equal compositions give equal tasks and names (``{base}+x={map}...+y={map}...``); a
    correlated Gaussian whose first y map is ``cube`` is named ``cubic-d{dim}-mi{mi}``.
    """

    base: MITask
    x_maps: tuple[str, ...] = ()
    y_maps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        x_maps, y_maps = _as_map_tuple(self.x_maps, "x_map"), _as_map_tuple(self.y_maps, "y_map")
        base = self.base
        if isinstance(base, TransformedTask):
            base, x_maps, y_maps = base.base, base.x_maps + x_maps, base.y_maps + y_maps
        if not isinstance(base, MITask):
            raise ValueError(f"`task` must be an MI task, got {type(base).__name__}")
        _output_dim(x_maps, base.x_dim, "x_map")
        _output_dim(y_maps, base.y_dim, "y_map")
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "x_maps", x_maps)
        object.__setattr__(self, "y_maps", y_maps)

    @property
    def name(self) -> str:
        prefix, y_maps = self.base.name, self.y_maps
        if isinstance(self.base, CorrelatedGaussianTask) and y_maps[:1] == ("cube",):
            prefix, y_maps = "cubic" + prefix[len("gaussian") :], y_maps[1:]
        return (
            prefix
            + "".join(f"+x={token}" for token in self.x_maps)
            + "".join(f"+y={token}" for token in y_maps)
        )

    @property
    def true_mi(self) -> float:
        return self.base.true_mi

    @property
    def x_dim(self) -> int:
        return _output_dim(self.x_maps, self.base.x_dim, "x_map")

    @property
    def y_dim(self) -> int:
        return _output_dim(self.y_maps, self.base.y_dim, "y_map")

    @property
    def lautum_information(self) -> float:
        """The base's lautum information (invariant under invertible maps of x and y)."""
        return self.base.lautum_information

    @property
    def nce_club_optimal_value(self) -> float:
        """The base's ``true_mi + lautum_information``."""
        return self.base.nce_club_optimal_value

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(f(x) [n, x_dim], g(y) [n, y_dim])`` for ``(x, y) = base.sample(key, n)``."""
        x, y = self.base.sample(key, num_samples)
        for token in self.x_maps:
            x = _apply_map(token, x, inverse=False)
        for token in self.y_maps:
            y = _apply_map(token, y, inverse=False)
        return x, y

    def inverse(self, x: Array, y: Array) -> tuple[Array, Array]:
        """``(f^{-1}(x), g^{-1}(y))``: a transformed sample back in the base's coordinates."""
        _check_pair(x, y, self.x_dim, self.y_dim)
        for token in reversed(self.x_maps):
            x = _apply_map(token, x, inverse=True)
        for token in reversed(self.y_maps):
            y = _apply_map(token, y, inverse=True)
        return x, y

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``log p(x, y) / (p(x) p(y))`` of the transformed pair: ``[n]``."""
        return self.base.pointwise_mi(*self.inverse(x, y))


def transformed(
    task: MITask | str | Mapping[str, Any],
    x_map: str | Sequence[str] | None = None,
    y_map: str | Sequence[str] | None = None,
) -> MITask:
    """``task`` with invertible maps on x and/or y; ``true_mi`` is unchanged.

    Maps (one token or a sequence applied in order):

    * per coordinate: ``"asinh"``, ``"cube"`` (``t^3``), ``"half_cube"`` (``t |t|^(1/2)``),
      ``"normal_cdf"`` (``Phi(t)``, the standard normal CDF; its inverse loses precision in
      float32 beyond ``|t| ~ 5``), ``"scale{a},{b},..."`` (``t_k -> a_k t_k``, nonzero) and
      ``"shift{a},{b},..."`` (``t_k -> t_k + a_k``), one value per coordinate;
    * ``"spiral{speed}"`` (default speed 1): rotate the planes ``(v_0, v_1), (v_2, v_3), ...``
      by ``speed * |v|^2`` radians, volume preserving; ``"spiral{speed}-plane{i}-{j}"``
      rotates the plane ``(v_i, v_j)`` only (bmi's spiral);
    * ``"waves{amplitude}-{frequency}"``: ``v_0 -> v_0 + amplitude sin(frequency v_1)``, a
      shear (bmi's Waves);
    * ``"swissroll"``: embeds one coordinate ``u`` in two, ``t = 1.5 pi (1 + 2 u)``,
      ``(t cos t, t sin t) / 21``, one-to-one for ``u`` in ``[0, 1]`` (bmi's Swiss roll).

    Example: ``transformed("gaussian-d4-mi1.0", x_map="spiral0.5")`` is named
    ``gaussian-d4-mi1.0+x=spiral0.5``. Without maps, ``task`` itself is returned.
    """
    if isinstance(task, str | Mapping):
        task = make_task(task)
    x_maps, y_maps = _as_map_tuple(x_map, "x_map"), _as_map_tuple(y_map, "y_map")
    if not x_maps and not y_maps:
        if not isinstance(task, MITask):
            raise ValueError(f"`task` must be an MI task, got {type(task).__name__}")
        return task
    return TransformedTask(task, x_maps, y_maps)


# -------------------------------------------------------------------------------- registry

TASKS: Mapping[str, Callable[..., MITask]] = MappingProxyType(
    {
        "gaussian": correlated_gaussian,
        "cubic": cubic_gaussian,
        "mvn_sparse": sparse_normal,
        "mvn_dense": dense_normal,
        "mvn_equicorr": equicorrelated_normal,
        "student_t": student_t,
        "additive_uniform": additive_uniform,
        "transformed": transformed,
    }
)
"""Task families by name, each a factory; ``make_task({"family": f, **kwargs})`` calls one."""

_NAME_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], MITask]], ...] = (
    (
        re.compile(rf"gaussian-d(\d+)-mi({_FLOAT})"),
        lambda m: correlated_gaussian(int(m[1]), float(m[2])),
    ),
    (re.compile(rf"cubic-d(\d+)-mi({_FLOAT})"), lambda m: cubic_gaussian(int(m[1]), float(m[2]))),
    (
        re.compile(rf"mvn_sparse-dx(\d+)-dy(\d+)-pairs(\d+)-mi({_FLOAT})"),
        lambda m: sparse_normal(int(m[1]), int(m[2]), float(m[4]), int(m[3])),
    ),
    (
        re.compile(rf"mvn_dense-dx(\d+)-dy(\d+)-within({_FLOAT})-mi({_FLOAT})"),
        lambda m: dense_normal(int(m[1]), int(m[2]), float(m[4]), float(m[3])),
    ),
    (
        re.compile(rf"mvn_equicorr-dx(\d+)-dy(\d+)-corr({_FLOAT})"),
        lambda m: equicorrelated_normal(int(m[1]), int(m[2]), float(m[3])),
    ),
    (
        re.compile(rf"additive_uniform-eps({_FLOAT})"),
        lambda m: additive_uniform(float(m[1])),
    ),
    (
        re.compile(rf"student_t-df({_FLOAT})-(.+)"),
        lambda m: student_t(_task_from_base_name(m[2]), float(m[1])),
    ),
)


_FAMILIES_ABOVE: dict[str, Callable[[str], MITask]] = {}
"""Task families defined in modules that build on this one, by name prefix
(:func:`register_family`)."""


def register_family(prefix: str, parse: Callable[[str], MITask]) -> None:
    """Lets :func:`make_task` rebuild tasks whose names start with ``prefix`` (a family of a
    module built on this one, e.g. the Gaussian mixtures ``gmm_...`` of
    :mod:`factorcl_jax.data.fine`, which registers itself when imported)."""
    _FAMILIES_ABOVE[prefix] = parse


def _task_from_base_name(name: str) -> MITask:
    for pattern, build in _NAME_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return build(match)
    for prefix, parse in _FAMILIES_ABOVE.items():
        if name.startswith(prefix):
            return parse(name)
    if name.startswith("gmm_"):
        raise ValueError(
            f"task {name!r} is a Gaussian mixture of factorcl_jax.data.fine: import that "
            "module to build it from its name"
        )
    if re.fullmatch(r"mvn-dx\d+-dy\d+-cov[0-9a-f]+", name):
        raise ValueError(
            f"task {name!r} was built from an explicit covariance; its name holds "
            f"only a digest, so rebuild it with multivariate_normal(...)"
        )
    raise ValueError(
        f"unknown task name {name!r}; expected one of the formats "
        f"gaussian-d{{dim}}-mi{{mi}}, cubic-d{{dim}}-mi{{mi}}, "
        f"mvn_sparse-dx{{x}}-dy{{y}}-pairs{{k}}-mi{{mi}}, "
        f"mvn_dense-dx{{x}}-dy{{y}}-within{{a}}-mi{{mi}}, "
        f"mvn_equicorr-dx{{x}}-dy{{y}}-corr{{a}}, "
        f"student_t-df{{df}}-{{gaussian name}}, additive_uniform-eps{{eps}}, gmm_..., "
        f"optionally followed by "
        f"+x={{map}} / +y={{map}}"
    )


def make_task(name_or_spec: str | Mapping[str, Any] | MITask) -> MITask:
    """Builds a task from its name, from a spec ``{"family": ..., **kwargs}``, or returns it.

    ``make_task(task.name) == task`` for every task not built from an explicit covariance.
    A name may be written loosely (``"gaussian-d20-mi4"``); the task's ``name`` is canonical
    (``"gaussian-d20-mi4.0"``). A spec calls ``TASKS[family](**kwargs)``, e.g.
    ``make_task({"family": "mvn_dense", "x_dim": 3, "y_dim": 2, "mi": 1.0})``.

    Raises:
      ValueError: for an unknown name, family or malformed map.
    """
    if isinstance(name_or_spec, Mapping):
        kwargs = dict(name_or_spec)
        family = kwargs.pop("family", None)
        if family not in TASKS:
            raise ValueError(f"spec `family` must be one of {sorted(TASKS)}, got {family!r}")
        return TASKS[family](**kwargs)
    if isinstance(name_or_spec, MITask) and not isinstance(name_or_spec, str):
        return name_or_spec
    if not isinstance(name_or_spec, str):
        raise ValueError(
            f"`name_or_spec` must be a task name, a spec mapping or a task, got "
            f"{type(name_or_spec).__name__}"
        )
    base_name, *map_parts = name_or_spec.strip().split("+")
    x_maps, y_maps = [], []
    for part in map_parts:
        side, _, token = part.partition("=")
        if side not in ("x", "y") or not token:
            raise ValueError(
                f"malformed map {part!r} in task name {name_or_spec!r}; expected "
                f"+x={{map}} or +y={{map}}"
            )
        (x_maps if side == "x" else y_maps).append(token)
    task = _task_from_base_name(base_name)
    return transformed(task, x_maps, y_maps) if map_parts else task
