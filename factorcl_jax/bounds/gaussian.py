"""CLUB's Gaussian bounds: the log-likelihood that trains ``q(y | x)`` and the upper bound.

These read a diagonal Gaussian ``q(y | x) = N(mean(x), diag exp(log_variance(x)))`` and the
columns ``y`` instead of a score matrix; row ``i`` is paired with ``y[i + offset]``, checked
and guarded like every bound's offset (:mod:`factorcl_jax.bounds.statistics`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds.statistics import check_offset, nan_unless_offset_in_range

__all__ = ["club_gaussian", "gaussian_log_likelihood"]


def _check_gaussian(mean: Array, log_variance: Array, y: Array, offset: int | Array) -> int | Array:
    for name, array in (("mean", mean), ("log_variance", log_variance), ("y", y)):
        if getattr(array, "ndim", None) != 2:
            raise ValueError(
                f"`{name}` must have shape [rows, d], got shape "
                f"{getattr(array, 'shape', type(array).__name__)}"
            )
        if not jnp.issubdtype(array.dtype, jnp.floating):
            raise TypeError(f"`{name}` must be floating-point, got dtype {array.dtype}")
    if mean.shape != log_variance.shape:
        raise ValueError(
            f"`mean` and `log_variance` must have the same shape [n, d], got "
            f"{mean.shape} and {log_variance.shape}"
        )
    if y.shape[1] != mean.shape[1]:
        raise ValueError(
            f"`y` must have shape [m, d] with d = {mean.shape[1]} like `mean`, got {y.shape}"
        )
    if y.shape[0] < 2:
        raise ValueError(f"`y` needs at least 2 rows (a positive and a negative), got {y.shape}")
    return check_offset(offset, mean.shape[0], y.shape[0], name="[mean rows, y rows]")


def gaussian_log_likelihood(
    mean: Array, log_variance: Array, y: Array, *, offset: int | Array = 0
) -> Array:
    r"""Mean log-density of the positives under a diagonal Gaussian ``q(y | x)``.

    .. math::
        \frac{1}{n}\sum_i \log \mathcal{N}\big(y_{i+o};\ \mu_i, \operatorname{diag} e^{\ell_i}\big)

    This is what CLUB's variational network maximises.

    Args:
      mean: ``[n, d]`` predicted means ``mu(x_i)``.
      log_variance: ``[n, d]`` predicted log-variances ``l(x_i)``.
      y: ``[m, d]`` targets; row ``i`` is paired with ``y[i + offset]``.
      offset: index of row 0's partner in ``y``.

    Returns:
      Scalar mean log-likelihood in nats.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> z = jnp.zeros((2, 1))
      >>> round(float(bounds.gaussian_log_likelihood(z, z, z)), 4)  # log N(0; 0, 1)
      -0.9189
    """
    offset = _check_gaussian(mean, log_variance, y, offset)
    partners = jax.lax.dynamic_slice_in_dim(y, offset, mean.shape[0], axis=0)
    squared = jnp.square(partners - mean) * jnp.exp(-log_variance)
    per_row = -0.5 * jnp.sum(squared + log_variance + math.log(2 * math.pi), axis=1)
    return nan_unless_offset_in_range(jnp.mean(per_row), offset, mean.shape[0], y.shape[0])


def club_gaussian(mean: Array, log_variance: Array, y: Array, *, offset: int | Array = 0) -> Array:
    r"""CLUB upper bound (Cheng et al. 2020) with a diagonal Gaussian ``q(y | x)``.

    .. math::
        I_{CLUB} = \frac{1}{n}\sum_i \Big( \log q(y_{i+o} | x_i)
                   - \frac{1}{m}\sum_{j=1}^{m} \log q(y_j | x_i) \Big)

    This is :func:`nce_club` on the scores ``s_ij = log q(y_j | x_i)``, computed in
    ``O((n + m) d)`` from the column mean and second moment of ``y`` instead of the ``[n, m]``
    matrix: ``mean_j (y_j - mu_i)^2 = (ybar - mu_i)^2 + var(y)`` per coordinate.

    Args:
      mean: ``[n, d]`` predicted means ``mu(x_i)``.
      log_variance: ``[n, d]`` predicted log-variances.
      y: ``[m, d]`` columns; row ``i`` is paired with ``y[i + offset]``.
      offset: index of row 0's partner in ``y``.

    Returns:
      Scalar estimate in nats.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> y = jnp.array([[1.0], [-1.0]])
      >>> round(float(bounds.club_gaussian(y, jnp.zeros((2, 1)), y)), 6)
      1.0
    """
    offset = _check_gaussian(mean, log_variance, y, offset)
    partners = jax.lax.dynamic_slice_in_dim(y, offset, mean.shape[0], axis=0)
    precision = jnp.exp(-log_variance)
    column_mean = jnp.mean(y, axis=0, keepdims=True)
    column_variance = jnp.mean(jnp.square(y - column_mean), axis=0, keepdims=True)
    positive = jnp.square(partners - mean)
    all_pairs = jnp.square(column_mean - mean) + column_variance
    value = jnp.mean(0.5 * jnp.sum((all_pairs - positive) * precision, axis=1))
    return nan_unless_offset_in_range(value, offset, mean.shape[0], y.shape[0])
