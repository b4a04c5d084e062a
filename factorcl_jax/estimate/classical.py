r"""Classical mutual-information estimators: KSG (k nearest neighbours) and CCA (Gaussian).

These are the non-neural baselines of the benchmark of Czyż et al. 2023 ("Beyond Normal: On
the Evaluation of Mutual Information Estimators"; package ``benchmark-mi``), written from
their definitions:

* **KSG** (Kraskov, Stögbauer & Grassberger 2004, their first estimator, eq. 8)::

      I = psi(k) + psi(N) - mean_i [ psi(n_x(i) + 1) + psi(n_y(i) + 1) ]

  where ``eps_i = max(d_x, d_y)`` to the ``k``-th nearest other sample in the joint space
  and ``n_x(i)``, ``n_y(i)`` count the other samples *strictly* closer than ``eps_i`` in each
  marginal space.
* **CCA**: the MI of a Gaussian with the samples' covariance,
  ``I = -1/2 sum_i log(1 - rho_i^2)`` over the canonical correlations ``rho_i``. Exact (up to
  sampling error) for jointly Gaussian pairs. For other distributions it sees only linear
  dependence and is no bound either way: it misses dependence without correlation, and it
  can also exceed the true MI (a pair of binary variables with correlation 0.99 has at
  most ``log 2 = 0.69`` nats, the Gaussian with that correlation 1.96).

Neither estimator trains anything, so neither has the held-out protocol of
:func:`factorcl_jax.estimate.estimate_mi`: both use every sample, there is no critic that
could memorise pairs, and no standard error from held-out batches. :func:`estimate_ksg` and
:func:`estimate_cca` validate host arrays and return a :class:`ClassicalMIEstimate`; the
jit- and vmap-able cores are :func:`ksg_neighbours`, :func:`ksg_mi`,
:func:`canonical_correlations` and :func:`cca_mi`.

Differences from bmi's ``KSGEnsembleFirstEstimator`` (the benchmark's ``KSG-10``) and
``CCAMutualInformationEstimator``: the KSG value is not clipped at 0 (bmi reports
``max(0, I)``; the raw value keeps KSG's negative bias near independence visible), one ``k``
is used rather than an average over several, distances are float32 rather than float64, and
samples with ``eps_i = 0`` are refused rather than turned into ``psi(0)``. CCA is computed
exactly (a QR factorisation) where bmi runs scikit-learn's iterative CCA.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import digamma

from factorcl_jax.estimate.samples import validate_samples
from factorcl_jax.validation import check_float_matrix, check_int

__all__ = [
    "KSG_METRICS",
    "ClassicalMIEstimate",
    "KSGNeighbours",
    "KSGSettings",
    "canonical_correlations",
    "cca_mi",
    "default_ksg_block_size",
    "estimate_cca",
    "estimate_ksg",
    "ksg_mi",
    "ksg_neighbours",
]

KSG_METRICS = ("euclidean", "chebyshev", "manhattan")
"""Norms of the marginal spaces (the same one for X and Y); the joint space always takes the
maximum of the two marginal distances. bmi's default, and its benchmark's, is Euclidean;
Kraskov et al. use the max-norm (``"chebyshev"``) throughout."""

_BLOCK_ELEMENTS = 2**20
"""Target size of one ``[block, N]`` distance array (4 MiB in float32)."""


# --------------------------------------------------------------------------------- KSG


class KSGNeighbours(NamedTuple):
    """Per-sample neighbourhood statistics of KSG's first estimator.

    Attributes:
      radius: ``[N]`` ``eps_i``, the joint-space distance ``max(d_x, d_y)`` from sample ``i``
        to its ``k``-th nearest other sample.
      count_x: ``[N]`` int32 ``n_x(i)``, the samples ``j != i`` with ``d_x(i, j) < eps_i``.
      count_y: ``[N]`` int32 ``n_y(i)``, the samples ``j != i`` with ``d_y(i, j) < eps_i``.
    """

    radius: Array
    count_x: Array
    count_y: Array


def default_ksg_block_size(num_samples: int) -> int:
    """Rows per block of :func:`ksg_neighbours`: ``[block, N]`` distances of about 2**20
    elements (4 MiB each in float32), at least 1 row and at most ``N``."""
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    return max(1, min(num_samples, _BLOCK_ELEMENTS // num_samples))


def _check_pair(x: Any, y: Any) -> None:
    check_float_matrix(x, "x", axes="[N, dx]")
    check_float_matrix(y, "y", axes="[N, dy]")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same number of rows (paired samples), "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"`x` and `y` must have the same dtype, got {x.dtype} and {y.dtype}")


def _check_ksg_options(num_samples: int, k: Any, metric: Any, block_size: Any) -> int:
    """Checks ``k``, ``metric`` and ``block_size``; returns the resolved block size."""
    if num_samples < 2:
        raise ValueError(f"KSG needs at least 2 samples, got {num_samples}")
    check_int(k, "k", minimum=1, maximum=num_samples - 1)
    if metric not in KSG_METRICS:
        raise ValueError(f"`metric` must be one of {KSG_METRICS}, got {metric!r}")
    if block_size is None:
        return default_ksg_block_size(num_samples)
    return check_int(block_size, "block_size", minimum=1)


def _marginal_distances(rows: Array, points_t: Array, metric: str) -> Array:
    """``[b, N]`` distances from ``rows`` ``[b, d]`` to the columns of ``points_t``
    ``[d, N]``; Euclidean ones are squared (monotone, so every comparison KSG makes is
    unchanged).

    Accumulated one coordinate at a time (``lax.scan``), so each step is a ``[b, N]``
    elementwise update that vectorises along ``N``: about 15x faster on CPU than reducing
    a ``[b, N, d]`` difference over its short last axis.
    """

    def add_coordinate(distances: Array, coordinate: tuple[Array, Array]) -> tuple[Array, None]:
        row_values, point_values = coordinate
        difference = jnp.abs(row_values[:, None] - point_values[None, :])
        if metric == "euclidean":
            return distances + difference**2, None
        if metric == "chebyshev":
            return jnp.maximum(distances, difference), None
        return distances + difference, None

    start = jnp.zeros((rows.shape[0], points_t.shape[1]), rows.dtype)
    return jax.lax.scan(add_coordinate, start, (rows.T, points_t))[0]


@functools.partial(jax.jit, static_argnames=("k", "metric", "block_size"))
def ksg_neighbours(
    x: Array,
    y: Array,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | None = None,
) -> KSGNeighbours:
    """Exact ``k``-NN radii and marginal counts of KSG's first estimator.

    Rows are processed in blocks of ``block_size`` (``lax.map``): a block computes its
    ``[block, N]`` marginal and joint distances to all samples, takes the ``k`` smallest
    joint distances (``lax.top_k``) and counts, so memory is ``O(block * N)``, never
    ``O(N^2)``. A sample is never its own neighbour (excluded by index, so exact duplicates
    of it are neighbours at distance 0). Ties are harmless: ``eps_i`` is the ``k``-th
    smallest distance counted with multiplicity, and the marginal counts are strict.

    Args:
      x: ``[N, dx]`` float samples of X.
      y: ``[N, dy]`` float samples of Y (same dtype), paired row by row with ``x``.
      k: neighbours, in ``[1, N - 1]``.
      metric: norm of each marginal space, one of :data:`KSG_METRICS`.
      block_size: rows per block; default :func:`default_ksg_block_size`.

    Returns:
      :class:`KSGNeighbours` with ``[N]`` radii (in ``metric``'s units) and counts.

    Example:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0], [1.0], [3.0]])
      >>> ksg_neighbours(x, x, k=1).count_x.tolist()  # nearest at 1, 1, 2: none closer
      [0, 0, 0]
    """
    _check_pair(x, y)
    num_samples = x.shape[0]
    block_size = _check_ksg_options(num_samples, k, metric, block_size)
    num_blocks = -(-num_samples // block_size)
    padding = num_blocks * block_size - num_samples
    # Padded rows are scored like any other and their results dropped below.
    x_rows = jnp.pad(x, ((0, padding), (0, 0))).reshape(num_blocks, block_size, x.shape[1])
    y_rows = jnp.pad(y, ((0, padding), (0, 0))).reshape(num_blocks, block_size, y.shape[1])
    starts = jnp.arange(num_blocks, dtype=jnp.int32) * block_size
    columns = jnp.arange(num_samples, dtype=jnp.int32)
    x_points, y_points = x.T, y.T

    def block(inputs: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        x_block, y_block, start = inputs
        distance_x = _marginal_distances(x_block, x_points, metric)
        distance_y = _marginal_distances(y_block, y_points, metric)
        rows = start + jnp.arange(block_size, dtype=jnp.int32)
        others = columns[None, :] != rows[:, None]
        joint = jnp.where(others, jnp.maximum(distance_x, distance_y), jnp.inf)
        # The largest of the k smallest, not ``[:, k - 1]``: XLA turns a top-k whose values
        # are sliced into a full sort (20x slower on CPU).
        radius = -jnp.min(jax.lax.top_k(-joint, k)[0], axis=1)
        count_x = jnp.sum(others & (distance_x < radius[:, None]), axis=1, dtype=jnp.int32)
        count_y = jnp.sum(others & (distance_y < radius[:, None]), axis=1, dtype=jnp.int32)
        return radius, count_x, count_y

    radius, count_x, count_y = (
        out.reshape(-1)[:num_samples] for out in jax.lax.map(block, (x_rows, y_rows, starts))
    )
    if metric == "euclidean":
        radius = jnp.sqrt(radius)
    return KSGNeighbours(radius, count_x, count_y)


def _ksg_from_neighbours(neighbours: KSGNeighbours, k: int) -> Array:
    """KSG's eq. 8 from the neighbourhoods; NaN if some ``eps_i`` is 0 (see :func:`ksg_mi`)."""
    dtype = neighbours.radius.dtype
    num_samples = neighbours.radius.shape[0]
    marginal_terms = digamma((neighbours.count_x + 1).astype(dtype)) + digamma(
        (neighbours.count_y + 1).astype(dtype)
    )
    constant = digamma(jnp.asarray(k, dtype)) + digamma(jnp.asarray(num_samples, dtype))
    value = constant - jnp.mean(marginal_terms)
    return jnp.where(jnp.all(neighbours.radius > 0), value, jnp.nan)


@functools.partial(jax.jit, static_argnames=("k", "metric", "block_size"))
def ksg_mi(
    x: Array,
    y: Array,
    *,
    k: int = 10,
    metric: str = "euclidean",
    block_size: int | None = None,
) -> Array:
    r"""KSG's first estimator of ``I(X; Y)`` in nats (Kraskov et al. 2004, eq. 8).

    .. math::
        \hat I = \psi(k) + \psi(N) - \frac{1}{N} \sum_i
                 \big[\psi(n_x(i) + 1) + \psi(n_y(i) + 1)\big]

    with the neighbourhoods of :func:`ksg_neighbours` (same arguments). The data are used as
    given; :func:`estimate_ksg` standardises them first, as bmi does. If some sample has
    ``k`` or more exact duplicates in the joint space (``eps_i = 0``), the value is NaN:
    the estimator assumes continuous distributions, and ``psi(n + 1)`` of an empty
    neighbourhood would be a finite wrong number.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(2000, 1)).astype(np.float32)
      >>> y = (0.8 * x + 0.6 * rng.normal(size=(2000, 1))).astype(np.float32)
      >>> round(float(ksg_mi(x, y)), 1)  # the Gaussian's MI is -log 0.6 = 0.51
      0.5
    """
    return _ksg_from_neighbours(ksg_neighbours(x, y, k=k, metric=metric, block_size=block_size), k)


# --------------------------------------------------------------------------------- CCA


@jax.jit
def _principal_angles(x: Array, y: Array) -> tuple[Array, Array]:
    """Cosines and sines ``[q]``, ``q = min(dx, dy)``, of the principal angles between the
    column spaces of the centred ``x`` ``[N, dx]`` and ``y`` ``[N, dy]``.

    With orthonormal bases (QR) ``Q_x``, ``Q_y`` and ``Q_y`` the narrower one, the cosines
    are the singular values of ``Q_x^T Q_y`` and the sines those of ``Q_y - Q_x Q_x^T Q_y``,
    its part orthogonal to ``Q_x`` (Björck & Golub 1973). Both come out sorted largest
    first, so ``cosines[i]`` and ``sines[i]`` belong to different angles (unneeded: every
    use sums over all of them).
    """
    _check_pair(x, y)
    num_samples, dims = x.shape[0], x.shape[1] + y.shape[1]
    if num_samples <= dims:
        raise ValueError(
            f"CCA needs more samples than dimensions (dx + dy = {dims}), got {num_samples}"
        )
    basis_x = jnp.linalg.qr(x - jnp.mean(x, axis=0, keepdims=True))[0]
    basis_y = jnp.linalg.qr(y - jnp.mean(y, axis=0, keepdims=True))[0]
    if basis_y.shape[1] > basis_x.shape[1]:
        basis_x, basis_y = basis_y, basis_x
    overlap = basis_x.T @ basis_y
    cosines = jnp.linalg.svd(overlap, compute_uv=False)
    sines = jnp.linalg.svd(basis_y - basis_x @ overlap, full_matrices=False, compute_uv=False)
    return jnp.minimum(cosines, 1.0), jnp.minimum(sines, 1.0)


def _gaussian_mi_from_sines(sines: Array) -> Array:
    return -jnp.sum(jnp.log(sines))


@jax.jit
def canonical_correlations(x: Array, y: Array) -> Array:
    """Sample canonical correlations of ``x`` ``[N, dx]`` and ``y`` ``[N, dy]``.

    The cosines of the principal angles between the column spaces of the centred samples,
    from QR factorisations (Björck & Golub 1973): no covariance matrix is formed, so the
    conditioning of the data is not squared and no regularisation is needed.

    Returns:
      ``[min(dx, dy)]`` correlations in ``[0, 1]``, largest first.

    Example:
      >>> import numpy as np
      >>> x = np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32)
      >>> canonical_correlations(x, x @ np.array([[1.0], [2.0]], np.float32)).round(4).tolist()
      [1.0]
    """
    return _principal_angles(x, y)[0]


@jax.jit
def cca_mi(x: Array, y: Array) -> Array:
    r"""Gaussian MI from the canonical correlations, in nats.

    .. math::
        \hat I = -\tfrac12 \sum_i \log(1 - \rho_i^2) = -\sum_i \log \sin\theta_i

    The MI of the Gaussian fitted to the samples, ``1/2 log(det S_xx det S_yy / det S)`` for
    the sample covariance ``S`` of ``[x, y]``. It is taken from the sines of the principal
    angles (:func:`canonical_correlations` gives the cosines ``rho_i``) because they keep
    their relative accuracy as ``rho -> 1``: in float32, ``rho = 0.99999`` is known to about
    1e-7, not enough for ``1 - rho^2 = 2e-5``, whose sine ``0.0045`` is known to 1e-4.
    Infinite if some combination of ``y`` is exactly a linear function of ``x``.

    Args:
      x: ``[N, dx]`` float samples of X, linearly independent columns.
      y: ``[N, dy]`` float samples of Y (same dtype), paired row by row; ``N > dx + dy``.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(100_000, 1))
      >>> y = 0.8 * x + 0.6 * rng.normal(size=(100_000, 1))
      >>> round(float(cca_mi(x.astype(np.float32), y.astype(np.float32))), 2)  # -log 0.6
      0.51
    """
    return _gaussian_mi_from_sines(_principal_angles(x, y)[1])


# ----------------------------------------------------------------------- host entry points


@dataclasses.dataclass(frozen=True)
class KSGSettings:
    """What :func:`estimate_ksg` ran with, defaults filled in.

    Attributes:
      k: neighbours.
      metric: norm of each marginal space (:data:`KSG_METRICS`).
      standardize: whether each coordinate was scaled to mean 0, variance 1 first.
      block_size: rows per block of the k-NN search.
    """

    k: int
    metric: str
    standardize: bool
    block_size: int


@dataclasses.dataclass(frozen=True)
class ClassicalMIEstimate:
    """Result of :func:`estimate_ksg` or :func:`estimate_cca`.

    Unlike :class:`~factorcl_jax.estimate.MIEstimate`, there is no held-out split: these
    estimators fit nothing that could overfit, so they use all ``num_samples`` pairs, and
    there is no standard error (KSG's per-sample terms share neighbours, so their spread
    over ``sqrt(N)`` is not one; the spread over independent samples of the task is).

    Attributes:
      estimate: the estimate in nats (KSG's can be slightly negative near independence).
      estimator: ``"ksg"`` or ``"cca"``.
      num_samples: pairs used, all of them.
      settings: :class:`KSGSettings` for KSG; ``None`` for CCA, which has none.
      canonical_correlations: ``[min(dx, dy)]`` for CCA, largest first; ``None`` for KSG.
      seconds: wall time of the call, compilation included.
    """

    estimate: float
    estimator: str
    num_samples: int
    settings: KSGSettings | None
    canonical_correlations: np.ndarray | None
    seconds: float

    def summary(self) -> str:
        """One line, e.g. ``I(X; Y) ≈ 0.507 nats (ksg, k=10, euclidean; all 5000 pairs, no
        held-out split)``."""
        if self.settings is None:
            method = self.estimator
        else:
            method = f"{self.estimator}, k={self.settings.k}, {self.settings.metric}"
        return (
            f"I(X; Y) ≈ {self.estimate:.3g} nats ({method}; all {self.num_samples} pairs, "
            f"no held-out split)"
        )


def _standardized(samples: np.ndarray) -> np.ndarray:
    """Each column to mean 0 and variance 1, in float64 (a constant column to 0, as
    scikit-learn's ``StandardScaler`` does)."""
    centred = samples - samples.mean(axis=0)
    scale = centred.std(axis=0)
    return centred / np.where(scale > 0, scale, 1.0)


def estimate_ksg(
    x: Any,
    y: Any,
    *,
    k: int = 10,
    metric: str = "euclidean",
    standardize: bool = True,
    block_size: int | None = None,
) -> ClassicalMIEstimate:
    """KSG's first estimator on all of ``x``, ``y`` (see :func:`ksg_mi`).

    Args:
      x: ``[N, dx]`` finite real samples of X.
      y: ``[N, dy]`` finite real samples of Y, paired row by row with ``x``.
      k: neighbours, in ``[1, N - 1]`` (bmi's benchmark runs ``k = 10``).
      metric: norm of each marginal space, one of :data:`KSG_METRICS`.
      standardize: scale each coordinate to mean 0, variance 1 (in float64) first, as bmi
        does; the estimate is then invariant to per-coordinate affine rescaling.
      block_size: rows per block of the k-NN search; default
        :func:`default_ksg_block_size`.

    Raises:
      ValueError: bad shapes, values or options (naming the argument); samples with ``k``
        or more exact duplicates in the joint space, which KSG cannot handle (add noise far
        below the data's resolution, or remove the duplicates); or, unstandardised,
        distances beyond float32's range.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(2000, 1))
      >>> estimate_ksg(x, 0.8 * x + 0.6 * rng.normal(size=(2000, 1))).summary()
      'I(X; Y) ≈ 0.5... nats (ksg, k=10, euclidean; all 2000 pairs, no held-out split)'
    """
    start = time.perf_counter()
    x, y = validate_samples(x, y)
    if not isinstance(standardize, bool):
        raise TypeError(f"`standardize` must be a bool, got {standardize!r}")
    block_size = _check_ksg_options(x.shape[0], k, metric, block_size)
    if standardize:
        x, y = _standardized(x), _standardized(y)
    x, y = x.astype(np.float32), y.astype(np.float32)
    neighbours = ksg_neighbours(x, y, k=k, metric=metric, block_size=block_size)
    duplicated = int(jnp.sum(neighbours.radius == 0))
    if duplicated:
        raise ValueError(
            f"{duplicated} sample(s) of `x`, `y` have {k} or more exact duplicates in the "
            f"joint space (distance 0 to the k={k}-th neighbour); KSG assumes continuous "
            "distributions: add noise far below the data's resolution, or remove duplicates"
        )
    if not bool(jnp.all(jnp.isfinite(neighbours.radius))):
        raise ValueError(
            "distances between samples of `x`, `y` overflow float32: pass "
            "standardize=True or rescale the data"
        )
    estimate = float(_ksg_from_neighbours(neighbours, k))
    settings = KSGSettings(k, metric, standardize, block_size)
    return ClassicalMIEstimate(
        estimate, "ksg", x.shape[0], settings, None, time.perf_counter() - start
    )


_CCA_LINEAR_DEPENDENCE = 16 * float(np.finfo(np.float32).eps)
"""Smallest sine :func:`estimate_cca` accepts: below it (a single pair's MI above 13.4
nats), float32 cannot tell the angle from 0, i.e. ``y`` from a linear function of ``x``."""


def _orthonormal_columns(samples: np.ndarray, name: str) -> np.ndarray:
    """An orthonormal basis ``[N, d]`` of the centred columns, by a float64 QR; refuses
    columns that are linearly dependent after centring (NumPy's ``matrix_rank`` rule)."""
    basis, triangle = np.linalg.qr(samples - samples.mean(axis=0))
    singular_values = np.linalg.svd(triangle, compute_uv=False)
    tolerance = singular_values[0] * max(samples.shape) * np.finfo(np.float64).eps
    rank = int(np.sum(singular_values > tolerance))
    if rank < samples.shape[1]:
        raise ValueError(
            f"{name} has linearly dependent columns after centring (numerical rank {rank} "
            f"of {samples.shape[1]}; a constant column counts): drop the redundant ones"
        )
    return basis


def estimate_cca(x: Any, y: Any) -> ClassicalMIEstimate:
    """The Gaussian MI from canonical correlations on all of ``x``, ``y`` (see
    :func:`cca_mi`).

    Each side is first replaced by an orthonormal basis of its centred columns, computed in
    float64 (a QR): an invertible linear map of each side, which leaves the canonical
    correlations unchanged and hands the float32 computation perfectly conditioned columns,
    however collinear the original features were.

    Args:
      x: ``[N, dx]`` finite real samples of X.
      y: ``[N, dy]`` finite real samples of Y, paired row by row; ``N > dx + dy``.

    Raises:
      ValueError: bad shapes or values (naming the argument); too few samples; linearly
        dependent columns in ``x`` or in ``y``; or some combination of ``y`` a linear
        function of ``x`` (to float32 precision), where the Gaussian MI is infinite.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> x = rng.normal(size=(2000, 1))
      >>> estimate_cca(x, 0.8 * x + 0.6 * rng.normal(size=(2000, 1))).summary()
      'I(X; Y) ≈ 0.5... nats (cca; all 2000 pairs, no held-out split)'
    """
    start = time.perf_counter()
    x, y = validate_samples(x, y)
    dims = x.shape[1] + y.shape[1]
    if x.shape[0] <= dims:
        raise ValueError(
            f"CCA needs more samples than dimensions (dx + dy = {dims}), got {x.shape[0]}"
        )
    basis_x = _orthonormal_columns(x, "`x`").astype(np.float32)
    basis_y = _orthonormal_columns(y, "`y`").astype(np.float32)
    cosines, sines = _principal_angles(basis_x, basis_y)
    if float(jnp.min(sines)) < _CCA_LINEAR_DEPENDENCE:
        raise ValueError(
            "a combination of `y` is a linear function of `x` (a canonical correlation of 1 "
            "to float32 precision), so the Gaussian MI is infinite"
        )
    estimate = float(_gaussian_mi_from_sines(sines))
    return ClassicalMIEstimate(
        estimate,
        "cca",
        x.shape[0],
        None,
        np.asarray(cosines, np.float64),
        time.perf_counter() - start,
    )
