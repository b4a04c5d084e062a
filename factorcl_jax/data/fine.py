"""Fine distributions: Gaussian mixtures on ``(x, y)`` and their pushforwards, with exact PMI.

Czyż et al. 2023, "The Mixtures and the Neural Critics: On the Pointwise Mutual Information
Profiles of Fine Distributions" (bmi's Bend and Mix Models). A mixture

    p(x, y) = sum_k w_k N((x, y); m_k, S_k)

has Gaussian-mixture marginals ``p(x) = sum_k w_k N(x; m_k[:x_dim], S_k[xx])`` (and likewise
``p(y)``), so the pointwise MI ``log p(x, y) - log p(x) - log p(y)`` is exact (three
``logsumexp`` over components). One-to-one maps of x and of y
(:func:`factorcl_jax.data.mi_tasks.transformed`) keep it: the pushforward's PMI at
``(f(x), g(y))`` is the mixture's at ``(x, y)``, which ``TransformedTask`` evaluates by
inverting the maps. The MI has no closed form; :func:`monte_carlo_mi` averages the exact PMI
over samples, and a mixture task stores that average with its standard error
(``true_mi``, ``true_mi_stderr``, ``mi_samples``).

The families of bmi's benchmark (their parameters and bmi's defaults)::

  x_distribution(correlation=0.9)           gmm_x-corr{c}                 X, 1 x 1
  ai_distribution()                         gmm_ai                        AI, 1 x 1
  waves(n_components=12, amplitude=5, frequency=3)
                                            gmm_waves-k{k}+x=...          Waves, 2 x 1
  galaxy(speed=0.5, distance=3)             gmm_galaxy-distance{d}+x=...  Galaxy, 2 x 1
  concentric_gaussians(x_dim, n_components) gmm_concentric-dx{d}-k{k}     Concentric, d x 1
  normal_with_inliers(x_dim, y_dim, inlier_fraction, num_pairs=2, strength=2)
      gmm_inliers-dx{d}-dy{e}-pairs{k}-strength{s}-fraction{f}   Multinormal with inliers

Their MI values were computed once by ``monte_carlo_mi(task, jax.random.key(0), 2**24)``
(default batches) and are stored here; other parameters are estimated on construction
(``DEFAULT_MC_SAMPLES`` pairs, key 0).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from factorcl_jax.data import mi_tasks

__all__ = [
    "GaussianMixtureTask",
    "ai_distribution",
    "concentric_gaussians",
    "galaxy",
    "gaussian_mixture",
    "mixture_from_name",
    "monte_carlo_mi",
    "normal_with_inliers",
    "sparse_correlation",
    "true_mi_stderr",
    "waves",
    "x_distribution",
]

DEFAULT_MC_SAMPLES = 2**20
"""Monte-Carlo samples for the MI of a mixture whose value is not stored."""

_STORED_MI: dict[str, tuple[float, float, int]] = {
    # name: (MI, standard error, samples) by monte_carlo_mi(task, jax.random.key(0), 2**24).
    "gmm_x-corr0.9": (0.4086155536434362, 0.00018222893224867373, 2**24),
    "gmm_ai": (0.7764001911705416, 0.00021230667356982925, 2**24),
    "gmm_waves-k12": (1.3070140565341215, 9.358485122149366e-05, 2**24),
    "gmm_galaxy-distance3.0": (0.4942171417972078, 0.0001248150159546497, 2**24),
    "gmm_concentric-dx3-k5": (0.45551094470504727, 0.00016292999263898877, 2**24),
    "gmm_concentric-dx5-k5": (0.6274534876588053, 0.00017323421931227358, 2**24),
    "gmm_concentric-dx3-k10": (0.559871586145107, 0.00018217468214336296, 2**24),
    "gmm_concentric-dx5-k10": (0.7514627513373603, 0.00019423013249183268, 2**24),
    "gmm_concentric-dx25-k5": (1.1906655703764615, 0.00015508155074212798, 2**24),
    "gmm_inliers-dx5-dy5-pairs2-strength2.0-fraction0.2": (
        0.6353927661030809,
        0.0002824713611369968,
        2**24,
    ),
    "gmm_inliers-dx25-dy25-pairs2-strength2.0-fraction0.2": (
        0.6355720338675613,
        0.0002824059804686115,
        2**24,
    ),
    "gmm_inliers-dx5-dy5-pairs2-strength2.0-fraction0.5": (
        0.26977963767029656,
        0.000205167278805636,
        2**24,
    ),
    "gmm_inliers-dx25-dy25-pairs2-strength2.0-fraction0.5": (
        0.2697898566580078,
        0.00020506842390018352,
        2**24,
    ),
}


_check_int = mi_tasks._check_int
_check_nonnegative = mi_tasks._check_float


def _check_interval(value: Any, name: str, low: float, high: float, *, closed: bool) -> float:
    """A finite float in ``[low, high]`` (``closed``) or ``(low, high)``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a real number, got {value!r}") from None
    inside = low <= number <= high if closed else low < number < high
    if isinstance(value, bool | str) or not math.isfinite(number) or not inside:
        interval = f"[{low:g}, {high:g}]" if closed else f"({low:g}, {high:g})"
        raise ValueError(f"`{name}` must lie in {interval}, got {value!r}")
    return number


@dataclasses.dataclass(frozen=True)
class GaussianMixtureTask:
    """``(x, y) ~ sum_k w_k N(m_k, S_k)``, ``x`` the first ``x_dim`` coordinates.

    Fields are tuples so that the task stays hashable: ``weights`` ``[K]`` (``>= 0``, sum 1),
    ``means`` ``[K, d]``, ``covariances`` ``[K, d, d]`` (each symmetric positive definite),
    ``d = x_dim + y_dim``. ``mi``, ``mi_stderr`` and ``mi_samples`` are a Monte-Carlo estimate
    of ``I(X; Y)`` (:func:`monte_carlo_mi`); build tasks with :func:`gaussian_mixture`, which
    computes it when it is not given.
    """

    weights: tuple[float, ...]
    means: tuple[tuple[float, ...], ...]
    covariances: tuple[tuple[tuple[float, ...], ...], ...]
    x_dim: int
    name: str
    mi: float | None = None
    mi_stderr: float | None = None
    mi_samples: int | None = None

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, np.float64)
        means = np.asarray(self.means, np.float64)
        covariances = np.asarray(self.covariances, np.float64)
        if weights.ndim != 1 or weights.size < 1:
            raise ValueError(f"`weights` must have shape [K] with K >= 1, got {weights.shape}")
        num_components = weights.size
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"`weights` must be finite and >= 0, got {weights.tolist()}")
        if abs(weights.sum() - 1.0) > 1e-9:
            raise ValueError(f"`weights` must sum to 1, got sum {weights.sum()!r}")
        if means.ndim != 2 or means.shape[0] != num_components or means.shape[1] < 2:
            raise ValueError(
                f"`means` must have shape [K, d] = [{num_components}, d >= 2], got {means.shape}"
            )
        dim = means.shape[1]
        if covariances.shape != (num_components, dim, dim):
            raise ValueError(
                f"`covariances` must have shape [K, d, d] = [{num_components}, {dim}, {dim}], "
                f"got {covariances.shape}"
            )
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(covariances))):
            raise ValueError("`means` and `covariances` must be finite")
        if not np.allclose(covariances, np.swapaxes(covariances, 1, 2), rtol=1e-10, atol=1e-12):
            raise ValueError("`covariances` must be symmetric")
        x_dim = _check_int(self.x_dim, "x_dim")
        if x_dim >= dim:
            raise ValueError(f"`x_dim` must be < d = {dim} (y needs a coordinate), got {x_dim}")
        for index, covariance in enumerate(covariances):
            mi_tasks._cholesky(covariance, f"covariances[{index}]")
        if self.mi is not None:
            _check_interval(self.mi, "mi", -math.inf, math.inf, closed=False)
            _check_nonnegative(self.mi_stderr, "mi_stderr")
            _check_int(self.mi_samples, "mi_samples")
        object.__setattr__(self, "weights", tuple(map(float, weights)))
        object.__setattr__(self, "means", tuple(tuple(map(float, row)) for row in means))
        object.__setattr__(
            self,
            "covariances",
            tuple(tuple(tuple(map(float, row)) for row in matrix) for matrix in covariances),
        )
        object.__setattr__(self, "x_dim", x_dim)
        object.__setattr__(self, "name", str(self.name))

    @property
    def y_dim(self) -> int:
        return len(self.means[0]) - self.x_dim

    def _stored(self, value: float | None) -> float:
        if value is None:
            raise ValueError(
                f"task {self.name!r} stores no MI; build it with gaussian_mixture(...), which "
                f"estimates it by monte_carlo_mi"
            )
        return value

    @property
    def true_mi(self) -> float:
        """The stored Monte-Carlo estimate of ``I(X; Y)``; see ``true_mi_stderr``."""
        return self._stored(self.mi)

    @property
    def true_mi_stderr(self) -> float:
        """Standard error of ``true_mi``: ``std(pmi) / sqrt(mi_samples)``."""
        return self._stored(self.mi_stderr)

    @functools.cached_property
    def _parameters(self) -> dict[str, dict[str, np.ndarray]]:
        """Per block (``joint``, ``x``, ``y``): means, Cholesky factors, whitening matrices
        ``L^{-1}`` and ``log w_k - 1/2 log det S_k - d/2 log 2 pi``, float64."""
        weights = np.asarray(self.weights)
        means = np.asarray(self.means)
        covariances = np.asarray(self.covariances)
        with np.errstate(divide="ignore"):  # a zero weight gives log w = -inf
            log_weights = np.log(weights)
        blocks = {
            "joint": slice(None),
            "x": slice(0, self.x_dim),
            "y": slice(self.x_dim, None),
        }
        parameters = {}
        for name, block in blocks.items():
            block_covariances = covariances[:, block, block]
            cholesky = np.linalg.cholesky(block_covariances)
            dim = cholesky.shape[-1]
            log_det = 2.0 * np.sum(np.log(np.diagonal(cholesky, axis1=1, axis2=2)), axis=1)
            parameters[name] = {
                "means": means[:, block],
                "cholesky": cholesky,
                "whiten": np.linalg.inv(cholesky),
                "log_normaliser": log_weights - 0.5 * log_det - 0.5 * dim * math.log(2 * math.pi),
            }
        return parameters

    def _log_density(self, z: Array, block: str) -> Array:
        """``log sum_k w_k N(z; m_k, S_k)`` of one block: ``[n]`` for ``z [n, d_block]``."""
        parameters = {k: jnp.asarray(v, jnp.float32) for k, v in self._parameters[block].items()}
        difference = z[:, None, :] - parameters["means"][None, :, :]  # [n, K, d]
        whitened = jnp.einsum("ked,nkd->nke", parameters["whiten"], difference)
        log_components = parameters["log_normaliser"][None, :] - 0.5 * jnp.sum(
            jnp.square(whitened), axis=-1
        )
        return jax.scipy.special.logsumexp(log_components, axis=-1)

    def log_densities(self, x: Array, y: Array) -> tuple[Array, Array, Array]:
        """``(log p(x, y), log p(x), log p(y))``, each ``[n]``, for ``x [n, x_dim]``,
        ``y [n, y_dim]``."""
        mi_tasks._check_pair(x, y, self.x_dim, self.y_dim)
        joint = self._log_density(jnp.concatenate([x, y], axis=-1), "joint")
        return joint, self._log_density(x, "x"), self._log_density(y, "y")

    def pointwise_mi(self, x: Array, y: Array) -> Array:
        """``log p(x, y) - log p(x) - log p(y)``: ``[n]``."""
        joint, marginal_x, marginal_y = self.log_densities(x, y)
        return joint - marginal_x - marginal_y

    def sample(self, key: Array, num_samples: int) -> tuple[Array, Array]:
        """``(x [n, x_dim], y [n, y_dim])`` float32: a component ``k ~ w``, then
        ``m_k + L_k eps`` with ``eps ~ N(0, I)``."""
        num_samples = _check_int(num_samples, "num_samples")
        parameters = self._parameters["joint"]
        key_component, key_noise = jax.random.split(key)
        log_weights = jnp.log(jnp.asarray(self.weights, jnp.float32))  # log 0 = -inf
        component = jax.random.categorical(key_component, log_weights, shape=(num_samples,))
        noise = jax.random.normal(key_noise, (num_samples, len(self.means[0])), jnp.float32)
        # Every component's draw, then the chosen one: K n d values, no [n, d, d] gather.
        draws = jnp.asarray(parameters["means"], jnp.float32)[:, None, :] + jnp.einsum(
            "ked,nd->kne", jnp.asarray(parameters["cholesky"], jnp.float32), noise
        )
        z = jnp.take_along_axis(draws, component[None, :, None], axis=0)[0]
        return z[:, : self.x_dim], z[:, self.x_dim :]


def monte_carlo_mi(
    task: mi_tasks.MITask, key: Array, num_samples: int, *, batch_size: int = 2**16
) -> tuple[float, float]:
    """``(mean, standard error)`` of ``task.pointwise_mi`` over ``num_samples`` of its pairs.

    The mean of the exact PMI is an unbiased estimate of ``I(X; Y)``; the standard error is
    ``std(pmi) / sqrt(num_samples)`` (sample std). Pairs are drawn in batches of
    ``batch_size``, batch ``i`` from ``jax.random.fold_in(key, i)``, and summed in float64, so
    memory is bounded whatever ``num_samples``.

    Raises:
      ValueError: if any PMI is NaN or infinite (the task's PMI is wrong somewhere).
    """
    num_samples = _check_int(num_samples, "num_samples")
    batch_size = _check_int(batch_size, "batch_size")
    programs: dict[int, Any] = {}
    count, mean, squares = 0, 0.0, 0.0
    for index in range(math.ceil(num_samples / batch_size)):
        size = min(batch_size, num_samples - index * batch_size)
        if size not in programs:
            programs[size] = jax.jit(
                lambda batch_key, size=size: task.pointwise_mi(*task.sample(batch_key, size))
            )
        values = np.asarray(programs[size](jax.random.fold_in(key, index)), np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"task {task.name!r}: {int(np.sum(~np.isfinite(values)))} non-finite pointwise MI "
                f"value(s) in batch {index}"
            )
        # Chan et al.'s pairwise update of the mean and the sum of squared deviations.
        batch_mean = values.mean()
        delta = batch_mean - mean
        total = count + size
        squares += np.sum(np.square(values - batch_mean)) + delta * delta * count * size / total
        mean += delta * size / total
        count = total
    variance = squares / (count - 1) if count > 1 else 0.0
    return float(mean), float(math.sqrt(variance / count))


def true_mi_stderr(task: mi_tasks.MITask) -> float:
    """Standard error of ``task.true_mi``: a mixture's Monte-Carlo error (through any maps),
    0 for a closed form."""
    while isinstance(task, mi_tasks.TransformedTask):
        task = task.base
    return task.true_mi_stderr if isinstance(task, GaussianMixtureTask) else 0.0


def gaussian_mixture(
    weights: Sequence[float],
    means: Sequence[Sequence[float]],
    covariances: Sequence[Sequence[Sequence[float]]],
    x_dim: int,
    *,
    name: str,
    mi: float | None = None,
    mi_stderr: float | None = None,
    mi_samples: int | None = None,
    key: Array | None = None,
    num_mc_samples: int = DEFAULT_MC_SAMPLES,
) -> GaussianMixtureTask:
    """A mixture task; its MI is ``mi`` (with ``mi_stderr``, ``mi_samples``) when given, the
    stored value for ``name`` when there is one, else ``monte_carlo_mi(task, key,
    num_mc_samples)`` (``key`` defaults to ``jax.random.key(0)``).

    Example::

      task = gaussian_mixture([0.5, 0.5], [[0, 0], [0, 0]],
                              [[[1, 0.9], [0.9, 1]], [[1, -0.9], [-0.9, 1]]], 1, name="x")
      task.true_mi, task.true_mi_stderr     # about 0.409 +- 0.0007
    """
    task = GaussianMixtureTask(tuple(weights), tuple(means), tuple(covariances), x_dim, name)
    if mi is None and name in _STORED_MI:
        mi, mi_stderr, mi_samples = _STORED_MI[name]
    if mi is None:
        num_mc_samples = _check_int(num_mc_samples, "num_mc_samples")
        key = jax.random.key(0) if key is None else key
        mi, mi_stderr = monte_carlo_mi(task, key, num_mc_samples)
        mi_samples = num_mc_samples
    return dataclasses.replace(task, mi=mi, mi_stderr=mi_stderr, mi_samples=mi_samples)


# ------------------------------------------------------------------ bmi's fine families


def _format(value: float) -> str:
    return mi_tasks._format_float(value)


def _correlated_pair(correlation: float) -> list[list[float]]:
    return [[1.0, correlation], [correlation, 1.0]]


def x_distribution(correlation: float = 0.9) -> GaussianMixtureTask:
    """The X: ``N(0, [[1, c], [c, 1]])`` and ``N(0, [[1, -c], [-c, 1]])``, weights 1/2.

    Uncorrelated, yet dependent; bmi's ``task_x`` (id ``1v1-X-0.9``).
    """
    correlation = _check_interval(correlation, "correlation", -1.0, 1.0, closed=False)
    return gaussian_mixture(
        [0.5, 0.5],
        [[0.0, 0.0], [0.0, 0.0]],
        [_correlated_pair(correlation), _correlated_pair(-correlation)],
        1,
        name=f"gmm_x-corr{_format(correlation)}",
    )


def ai_distribution() -> GaussianMixtureTask:
    """The letters "AI" drawn by six equally weighted Gaussians in the plane (bmi's
    ``task_ai``, id ``1v1-AI``): three for the I, three for the A."""
    spread = math.sqrt(0.04 * 0.2) * 0.95
    return gaussian_mixture(
        [1 / 6] * 6,
        [[1.0, 0.0], [1.0, 1.0], [1.0, -1.0], [-0.8, -0.2], [-1.2, 0.0], [-0.4, 0.0]],
        [
            np.diag([0.01, 0.2]),
            np.diag([0.05, 0.001]),
            np.diag([0.05, 0.001]),
            np.diag([0.03, 0.001]),
            [[0.04, spread], [spread, 0.2]],
            [[0.04, -spread], [-spread, 0.2]],
        ],
        1,
        name="gmm_ai",
    )


def waves(
    n_components: int = 12, amplitude: float = 5.0, frequency: float = 3.0
) -> mi_tasks.TransformedTask:
    """Waves (bmi's ``task_waves``, id ``2v1-waves-12-5.0-3.0``), x 2-D, y 1-D.

    Component ``k < n_components`` of weight ``1/K``: mean ``1.5 (k, 0, k mod 4)``, covariance
    ``diag(0.1, 1, 0.1)``. Then ``x_0 -> x_0 + amplitude sin(frequency x_1)`` and the affine
    ``x -> (0.1 x_0 - 0.8, 0.5 x_1)``.
    """
    n_components = _check_int(n_components, "n_components")
    amplitude = _check_nonnegative(amplitude, "amplitude")
    frequency = _check_nonnegative(frequency, "frequency")
    base = gaussian_mixture(
        [1 / n_components] * n_components,
        [[1.5 * k, 0.0, 1.5 * (k % 4)] for k in range(n_components)],
        [np.diag([0.1, 1.0, 0.1])] * n_components,
        2,
        name=f"gmm_waves-k{n_components}",
    )
    return mi_tasks.TransformedTask(
        base,
        x_maps=(f"waves{_format(amplitude)}-{_format(frequency)}", "scale0.1,0.5", "shift-0.8,0"),
    )


def galaxy(speed: float = 0.5, distance: float = 3.0) -> mi_tasks.TransformedTask:
    """Galaxy (bmi's ``task_galaxy``, id ``2v1-galaxy-0.5-3.0``), x 2-D, y 1-D.

    Two balls ``N(+-distance/2 (1, 1, 1), I_3)`` of weight 1/2, then x spiralled: rotated by
    ``speed |x|^2`` radians (``spiral{speed}-plane0-1``).
    """
    speed = _check_nonnegative(speed, "speed", positive=True)
    distance = _check_nonnegative(distance, "distance")
    base = gaussian_mixture(
        [0.5, 0.5],
        [[sign * distance / 2] * 3 for sign in (-1.0, 1.0)],
        [np.eye(3)] * 2,
        2,
        name=f"gmm_galaxy-distance{_format(distance)}",
    )
    return mi_tasks.TransformedTask(base, x_maps=(f"spiral{_format(speed)}-plane0-1",))


def concentric_gaussians(x_dim: int, n_components: int = 3) -> GaussianMixtureTask:
    """Concentric isotropic Gaussians (bmi's ``task_concentric_multinormal``, id
    ``{x_dim}v1-concentric_gaussians-{n_components}``), y 1-D.

    Component ``i = 1..K`` of weight ``1/K``: ``x ~ N(0, i^2 I)``, ``y ~ N(i, 10^-4)``: y
    nearly names the component, which x reveals only through its radius.
    """
    x_dim = _check_int(x_dim, "x_dim")
    n_components = _check_int(n_components, "n_components")
    return gaussian_mixture(
        [1 / n_components] * n_components,
        [[0.0] * x_dim + [float(i)] for i in range(1, n_components + 1)],
        [np.diag([float(i * i)] * x_dim + [1e-4]) for i in range(1, n_components + 1)],
        x_dim,
        name=f"gmm_concentric-dx{x_dim}-k{n_components}",
    )


def sparse_correlation(x_dim: int, y_dim: int, num_pairs: int, strength: float) -> np.ndarray:
    """bmi's sparse ("2-pair") correlation matrix ``[x_dim + y_dim]^2``: unit variances,
    ``corr(x_i, y_i) = strength^2 / (1 + strength^2)`` for ``i < num_pairs``, else 0.

    It is the correlation of bmi's latent model ``x_i = strength z_i + e_i``,
    ``y_i = strength z_i + f_i`` (``i < num_pairs``; the other coordinates get independent
    noise of the same variance), all latents standard normal.
    """
    num_pairs = _check_int(num_pairs, "num_pairs", minimum=0)
    if num_pairs > min(x_dim, y_dim):
        raise ValueError(f"`num_pairs` must be <= min(x_dim, y_dim), got {num_pairs}")
    strength = _check_nonnegative(strength, "strength")
    correlation = np.eye(x_dim + y_dim)
    index = np.arange(num_pairs)
    correlation[index, x_dim + index] = correlation[x_dim + index, index] = strength**2 / (
        1.0 + strength**2
    )
    return correlation


def normal_with_inliers(
    x_dim: int,
    y_dim: int,
    inlier_fraction: float,
    num_pairs: int = 2,
    strength: float = 2.0,
) -> GaussianMixtureTask:
    """A sparse normal with a fraction of independent "inliers" (bmi's
    ``task_multinormal_sparse_w_inliers``, id
    ``mult-sparse-w-inliers-{x_dim}-{y_dim}-{num_pairs}-{strength}-{inlier_fraction}``).

    ``(1 - f) N(0, R) + f N(0, diag(R_xx, R_yy))`` with ``R`` :func:`sparse_correlation`: the
    inliers are drawn from the product of the signal's marginals (here the identity).
    """
    x_dim, y_dim = _check_int(x_dim, "x_dim"), _check_int(y_dim, "y_dim")
    fraction = _check_interval(inlier_fraction, "inlier_fraction", 0.0, 1.0, closed=True)
    signal = sparse_correlation(x_dim, y_dim, num_pairs, strength)
    noise = signal.copy()
    noise[:x_dim, x_dim:] = noise[x_dim:, :x_dim] = 0.0
    return gaussian_mixture(
        [1.0 - fraction, fraction],
        [[0.0] * (x_dim + y_dim)] * 2,
        [signal, noise],
        x_dim,
        name=(
            f"gmm_inliers-dx{x_dim}-dy{y_dim}-pairs{num_pairs}-strength{_format(strength)}"
            f"-fraction{_format(fraction)}"
        ),
    )


_F = mi_tasks._FLOAT
_NAME_PATTERNS = (
    (re.compile(rf"gmm_x-corr(-?{_F})"), lambda m: x_distribution(float(m[1]))),
    (re.compile(r"gmm_ai"), lambda m: ai_distribution()),
    (re.compile(r"gmm_waves-k(\d+)"), lambda m: waves(int(m[1])).base),
    (re.compile(rf"gmm_galaxy-distance({_F})"), lambda m: galaxy(distance=float(m[1])).base),
    (
        re.compile(r"gmm_concentric-dx(\d+)-k(\d+)"),
        lambda m: concentric_gaussians(int(m[1]), int(m[2])),
    ),
    (
        re.compile(rf"gmm_inliers-dx(\d+)-dy(\d+)-pairs(\d+)-strength({_F})-fraction({_F})"),
        lambda m: normal_with_inliers(
            int(m[1]), int(m[2]), float(m[5]), num_pairs=int(m[3]), strength=float(m[4])
        ),
    ),
)


def mixture_from_name(name: str) -> GaussianMixtureTask:
    """The mixture of one of the families above from its name (``make_task`` calls this)."""
    for pattern, build in _NAME_PATTERNS:
        match = pattern.fullmatch(name)
        if match:
            return build(match)
    raise ValueError(
        f"unknown mixture name {name!r}; expected gmm_x-corr{{c}}, gmm_ai, gmm_waves-k{{k}}, "
        f"gmm_galaxy-distance{{d}}, gmm_concentric-dx{{d}}-k{{k}} or "
        f"gmm_inliers-dx{{d}}-dy{{e}}-pairs{{k}}-strength{{s}}-fraction{{f}}"
    )


mi_tasks.register_family("gmm_", mixture_from_name)
