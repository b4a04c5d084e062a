"""The samples an estimate reads: validated, split by unique pair, standardised scale-free."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np
from jax import Array

from factorcl_jax.validation import FLOAT32_MAX, check_real_array

__all__ = [
    "as_float32",
    "normal_scores",
    "pair_groups",
    "split_rows",
    "standardized",
    "validate_samples",
]


def validate_samples(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``x [N, dx]`` and ``y [N, dy]`` as finite float64 host arrays with the same number
    of rows, or a ``ValueError`` / ``TypeError`` naming the argument."""
    # float64 until standardised: a small signal on a large offset survives the rescaling.
    x = check_real_array(x, "x", ndim=2, dtype=np.float64)
    y = check_real_array(y, "y", ndim=2, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same number of rows (paired samples), "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    return x, y


def pair_groups(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``[N]`` group of every row: rows holding the same ``(x, y)`` pair share a group, and
    groups are numbered by their first row (without duplicates, group ``i`` is row ``i``)."""
    _, first, inverse = np.unique(
        np.concatenate([x, y], axis=1), axis=0, return_index=True, return_inverse=True
    )
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse.reshape(-1)]


def split_rows(
    groups: np.ndarray, heldout_fraction: float, folds: int | None, key: Array
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``[(train rows, held-out rows)]``: one random split, or ``folds`` folds, of whole
    groups of rows (:func:`pair_groups`), so that copies of a pair never straddle a split.

    The groups are shuffled and taken in turn until the held-out part (or each fold) has its
    share of the rows; with duplicates each part's rows are shuffled again so that copies
    are not adjacent in the held-out batches.
    """
    num_samples = len(groups)
    num_groups = int(groups.max()) + 1
    order = np.asarray(jax.random.permutation(key, num_groups))
    position = np.empty(num_groups, np.int64)
    position[order] = np.arange(num_groups)
    rows = np.argsort(position[groups], kind="stable")  # rows, group by group in shuffled order
    sizes = np.bincount(groups, minlength=num_groups)[order]
    before = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # rows ahead of each group
    if folds is None:
        held_groups = before < round(num_samples * heldout_fraction)
        part = np.repeat(np.where(held_groups, 0, 1), sizes)
        parts = [rows[part == 1], rows[part == 0]]  # train, held
    else:
        fold = np.minimum(before * folds // num_samples, folds - 1)
        part = np.repeat(fold, sizes)
        parts = [rows[part == k] for k in range(folds)]
    if num_groups < num_samples:
        reshuffle = np.random.default_rng(np.asarray(jax.random.key_data(key)).tolist())
        parts = [reshuffle.permutation(p) for p in parts]
    if folds is None:
        return [(parts[0], parts[1])]
    return [(np.concatenate(parts[:k] + parts[k + 1 :]), parts[k]) for k in range(folds)]


def standardized(train: np.ndarray, held: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Both float64 parts centred and scaled by the training part's per-feature mean and std.

    Scale-free: each feature is divided by its largest magnitude on the training part first
    (its squares can then neither underflow nor overflow), then by its standard deviation
    there. A feature constant on the training part is only centred.
    """
    magnitude = np.max(np.abs(train), axis=0)
    magnitude = np.where(magnitude > 0, magnitude, 1.0)
    train, held = train / magnitude, held / magnitude
    mean = train.mean(axis=0)
    std = (train - mean).std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (held - mean) / std


def as_float32(array: np.ndarray, name: str) -> np.ndarray:
    """A standardised part in float32, refusing values float32 cannot hold."""
    largest = float(np.max(np.abs(array))) if array.size else 0.0
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"`{name}` holds values {largest:.3g} standard deviations from the training part's "
            "mean, beyond float32: a feature nearly constant on the training part varies "
            "wildly elsewhere; drop or rescale it"
        )
    return array.astype(np.float32)


def normal_scores(train: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both float64 parts through each feature's normal scores on the training part.

    ``z = Phi^-1(F(v))`` with ``F`` the training part's empirical CDF, ``F(v) = (#{t < v} +
    #{t <= v}) / (2 n)`` (ties averaged), kept in ``[1 / (2n), 1 - 1 / (2n)]``: a
    non-decreasing map of each coordinate, strictly increasing on the training values, so the
    mutual information is unchanged while heavy tails and bounded marginals become Gaussian.
    A held-out value beyond the training range maps to the extreme score.
    """
    n = train.shape[0]
    ordered = np.sort(train, axis=0)

    def scores(values: np.ndarray) -> np.ndarray:
        columns = []
        for k in range(values.shape[1]):
            left = np.searchsorted(ordered[:, k], values[:, k], side="left")
            right = np.searchsorted(ordered[:, k], values[:, k], side="right")
            columns.append((left + right) / (2.0 * n))
        cdf = np.clip(np.stack(columns, axis=1), 0.5 / n, 1 - 0.5 / n)
        return np.sqrt(2.0) * _inverse_erf(2.0 * cdf - 1.0)

    return scores(train), scores(held)


def _inverse_erf(values: np.ndarray) -> np.ndarray:
    """``erf^-1`` in float64 on host (JAX's, computed in float64 outside any trace)."""
    with jax.enable_x64(True):
        return np.asarray(jax.scipy.special.erfinv(jnp.asarray(values, jnp.float64)))
