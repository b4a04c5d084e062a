"""Mutual-information bounds as pure functions of a critic score matrix.

Every bound takes ``scores`` of shape ``[n, m]`` with ``scores[i, j] = f(x_i, y_j)``: row
``i`` holds one sample ``x_i`` scored against every column ``y_j``. The positive (jointly
drawn) pair of row ``i`` sits at column ``i + offset``; all other columns are negatives,
i.e. samples of the product of marginals ``p(x) p(y)``. With ``offset`` a device holding rows
``[k * n, (k + 1) * n)`` of a global batch scores them against all ``m`` global columns and
evaluates its share of the bound; the mean of the shares over devices (a ``pmean``) is the
full-batch value. Bounds whose formula holds a log-mean-exp over the *whole* batch (``dv``,
``mine``, ``smile``) take ``axis_name`` so that this log-mean-exp spans the global batch
under ``shard_map``/``pmap``/``vmap``.

All values are in nats. Lower bounds (``infonce``, ``nwj``, ``tuba``, ``dv``, ``mine``,
``js``, ``smile``) are maximised to train a critic; ``nce_club`` and ``club_gaussian`` are
upper bounds evaluated with a critic trained elsewhere (by ``infonce`` and
``gaussian_log_likelihood`` respectively).

References:
  Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding" (InfoNCE).
  Liang et al. 2023, "Factorized Contrastive Learning" (NCE-CLUB).
  Cheng et al. 2020, "CLUB: A Contrastive Log-ratio Upper Bound of Mutual Information".
  Nguyen, Wainwright, Jordan 2010 (NWJ); Donsker & Varadhan 1983 (DV);
  Belghazi et al. 2018, "MINE"; Nowozin et al. 2016, "f-GAN" (JS);
  Poole et al. 2019, "On Variational Bounds of Mutual Information" (TUBA, JS-trained NWJ);
  Song & Ermon 2020, "Understanding the Limitations of Variational MI Estimators" (SMILE).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from factorcl_jax.validation import check_float_matrix

__all__ = [
    "MineState",
    "club_gaussian",
    "dv",
    "gaussian_log_likelihood",
    "infmasking",
    "infonce",
    "js",
    "js_fgan",
    "mine",
    "mine_init",
    "nce_club",
    "nwj",
    "smile",
    "supcon",
    "tuba",
]


def _check_scores(scores: Array, offset: int | Array, name: str = "scores") -> None:
    """Validates a score matrix and the offset of its positives (static checks only)."""
    check_float_matrix(scores, name)
    n, m = scores.shape
    if n < 1:
        raise ValueError(f"`{name}` needs at least 1 row, got shape {scores.shape}")
    if m < 2:
        raise ValueError(
            f"`{name}` needs at least 2 columns (one positive, one negative), "
            f"got shape {scores.shape}"
        )
    if isinstance(offset, (jax.Array, np.ndarray)):
        if offset.shape != () or not jnp.issubdtype(offset.dtype, jnp.integer):
            raise TypeError(
                f"`offset` must be an int or an integer scalar array, got "
                f"{offset.dtype}{list(offset.shape)}"
            )
        try:
            offset = int(offset)
        except jax.errors.ConcretizationTypeError:
            # A traced offset (``axis_index * n`` under shard_map) cannot be checked here;
            # every bound passes its value through ``_nan_unless_offset_in_range``.
            return
    if not isinstance(offset, (int, np.integer)) or isinstance(offset, bool):
        raise TypeError(f"`offset` must be an int, got {type(offset).__name__}")
    if not 0 <= offset <= m - n:
        raise ValueError(
            f"`offset` must be in [0, m - n] = [0, {m - n}] for `{name}` of shape "
            f"{scores.shape} (positives at [i, i + offset]), got {offset}"
        )


def _nan_unless_offset_in_range(value: Array, offset: int | Array, n: int, m: int) -> Array:
    """``value``, or NaN (value *and* gradient) when a traced ``offset`` is outside
    ``[0, m - n]``.

    A traced offset has no value while tracing, so :func:`_check_scores` cannot refuse it;
    read as is it would pick wrong columns (a negative index wraps around, a dynamic slice
    clamps) and give a finite, wrong bound. Multiplying by ``1`` or ``NaN`` leaves in-range
    values bit for bit unchanged.
    """
    if not isinstance(offset, jax.core.Tracer):
        return value
    valid = (offset >= 0) & (offset <= m - n)
    return value * jnp.where(valid, 1.0, jnp.nan).astype(value.dtype)


def _positives(scores: Array, offset: int | Array) -> Array:
    """``scores[i, i + offset]`` for every row: ``[n]``."""
    columns = jnp.arange(scores.shape[0]) + offset
    return jnp.take_along_axis(scores, columns[:, None], axis=1, mode="fill")[:, 0]


def _positive_mask(shape: tuple[int, int], offset: int | Array) -> Array:
    """Boolean ``[n, m]`` mask, true at the positive of each row."""
    n, m = shape
    return jnp.arange(m)[None, :] == (jnp.arange(n) + offset)[:, None]


def _negative_logsumexp(scores: Array, offset: int | Array) -> Array:
    """``logsumexp_{j != i + offset} scores[i, j]`` for every row: ``[n]``."""
    masked = jnp.where(_positive_mask(scores.shape, offset), -jnp.inf, scores)
    return jax.nn.logsumexp(masked, axis=1)


def _negative_log_mean_exp(scores: Array, offset: int | Array, axis_name: str | None) -> Array:
    """Log of the mean of ``exp(scores)`` over all negatives of the (global) batch: scalar.

    Under a mapped ``axis_name`` the ``n * (m - 1)`` negatives of every participant are pooled
    with a max-shifted sum, so the result equals the single-device value on the full matrix.
    """
    count = scores.shape[0] * (scores.shape[1] - 1)
    return _pooled_log_mean_exp(_negative_logsumexp(scores, offset), count, axis_name)


def _pooled_log_mean_exp(row_lse: Array, count: int, axis_name: str | None) -> Array:
    """``log(sum_i exp(row_lse_i) / count)`` with the sum and count pooled over ``axis_name``."""
    shift = jax.lax.stop_gradient(jnp.max(row_lse))
    if axis_name is not None:
        shift = jax.lax.pmax(shift, axis_name)
    total = jnp.sum(jnp.exp(row_lse - shift))
    # The count is a float: n * (m - 1) negatives exceed int32 from a batch of 2^16 on.
    count = float(count)
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
        count = count * jax.lax.psum(1.0, axis_name)
    return shift + jnp.log(total) - jnp.log(count)


def _negative_mean_exp(scores: Array, offset: int | Array, log_baseline: Array) -> Array:
    """Per-row ``mean_{j != i + offset} exp(scores[i, j] - log_baseline_i)``: ``[n]``."""
    m = scores.shape[1]
    return jnp.exp(_negative_logsumexp(scores, offset) - log_baseline - math.log(m - 1))


def _value_with_gradient_of(value: Array, surrogate: Array) -> Array:
    """Returns ``value`` in the forward pass while differentiating as ``surrogate``."""
    return jax.lax.stop_gradient(value) + surrogate - jax.lax.stop_gradient(surrogate)


def infonce(scores: Array, *, offset: int | Array = 0) -> Array:
    r"""InfoNCE lower bound (Oord et al. 2018).

    .. math::
        I_{NCE} = \log m + \frac{1}{n} \sum_i \Big( s_{i, i+o}
                  - \log \sum_{j=1}^{m} e^{s_{ij}} \Big) \le \log m

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive (``0 <= offset <= m - n``); a Python int or an
        integer scalar array (traced under ``shard_map``, e.g. ``axis_index * n``). A
        concrete offset out of range raises ``ValueError``; a traced one cannot be checked
        while tracing, so out of range it makes the value (and gradient) NaN, never a finite
        wrong number. This holds for every bound here.

    Returns:
      Scalar estimate in nats, averaged over the ``n`` rows; never above ``log m``.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> float(bounds.infonce(jnp.eye(4) * 100.0))  # perfect critic: log 4
      1.386...
    """
    _check_scores(scores, offset)
    per_row = _positives(scores, offset) - jax.nn.logsumexp(scores, axis=1)
    value = math.log(scores.shape[1]) + jnp.mean(per_row)
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


def nce_club(scores: Array, *, offset: int | Array = 0) -> Array:
    r"""NCE-CLUB upper bound (Liang et al. 2023), a CLUB-style bound on an InfoNCE critic.

    .. math::
        I_{NCE\text{-}CLUB} = \frac{1}{n} \sum_i \Big( s_{i, i+o}
                              - \frac{1}{m} \sum_{j=1}^{m} s_{ij} \Big)

    i.e. the mean positive score minus the mean over all ``n * m`` pairs. With the critic
    ``f*`` that maximises InfoNCE, this upper-bounds ``I(X; Y)``: at
    ``f = log p(y|x)/p(y) + c(x)`` it equals ``I`` plus the lautum information.

    Args:
      scores: ``[n, m]`` scores of an InfoNCE-trained critic, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.

    Returns:
      Scalar estimate in nats, averaged over the ``n`` rows.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> float(bounds.nce_club(jnp.array([[2.0, 0.0], [0.0, 2.0]])))
      1.0
    """
    _check_scores(scores, offset)
    value = jnp.mean(_positives(scores, offset) - jnp.mean(scores, axis=1))
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


def tuba(scores: Array, *, offset: int | Array = 0, log_baseline: Array | float = 0.0) -> Array:
    r"""TUBA lower bound (Poole et al. 2019) with baseline ``a(x_i) = exp(log_baseline_i)``.

    .. math::
        I_{TUBA} = \frac{1}{n} \sum_i \Big( 1 + s_{i,i+o} - b_i
                   - \frac{1}{m-1} \sum_{j \ne i+o} e^{s_{ij} - b_i} \Big),
        \quad b_i = \text{log\_baseline}_i

    Negatives exclude each row's positive. ``nwj`` is ``tuba`` with ``log_baseline = 1``.

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.
      log_baseline: scalar or ``[n]`` per-row log-baseline.

    Returns:
      Scalar estimate in nats. Where ``exp(s - b)`` exceeds the float range the value is
      ``-inf`` (the exact limit), never NaN.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.tuba(jnp.zeros((3, 3)))), 6)
      0.0
    """
    _check_scores(scores, offset)
    log_baseline = jnp.asarray(log_baseline, dtype=scores.dtype)
    if log_baseline.shape not in ((), (scores.shape[0],)):
        raise ValueError(
            f"`log_baseline` must be a scalar or have shape [n] = "
            f"[{scores.shape[0]}], got shape {log_baseline.shape}"
        )
    positive_term = 1.0 + _positives(scores, offset) - log_baseline
    value = jnp.mean(positive_term - _negative_mean_exp(scores, offset, log_baseline))
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


def nwj(scores: Array, *, offset: int | Array = 0) -> Array:
    r"""NWJ lower bound (Nguyen, Wainwright & Jordan 2010), also called f-MINE.

    .. math::
        I_{NWJ} = \frac{1}{n} \sum_i s_{i,i+o}
                  - \frac{1}{e\, n (m-1)} \sum_i \sum_{j \ne i+o} e^{s_{ij}}

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.

    Returns:
      Scalar estimate in nats (``-inf`` where ``exp`` overflows, never NaN).

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.nwj(jnp.ones((3, 3)))), 6)  # 1 - e^0
      0.0
    """
    return tuba(scores, offset=offset, log_baseline=1.0)


def dv(scores: Array, *, offset: int | Array = 0, axis_name: str | None = None) -> Array:
    r"""Donsker-Varadhan lower bound.

    .. math::
        I_{DV} = \frac{1}{n} \sum_i s_{i,i+o}
                 - \log \frac{1}{n(m-1)} \sum_i \sum_{j \ne i+o} e^{s_{ij}}

    The log-mean-exp runs over every negative of the batch; pass ``axis_name`` under a
    mapped axis so it covers the global batch (then ``pmean`` the result as usual).

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.
      axis_name: name of a mapped axis whose rows together form the batch, or ``None``.

    Returns:
      Scalar estimate in nats.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.dv(jnp.eye(3) * 2.0)), 6)
      2.0
    """
    _check_scores(scores, offset)
    value = jnp.mean(_positives(scores, offset)) - _negative_log_mean_exp(scores, offset, axis_name)
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


class MineState(NamedTuple):
    """Moving average of ``E_q[e^f]`` kept by MINE, stored as its log (``-inf`` = empty)."""

    log_moving_average: Array


def mine_init() -> MineState:
    """An empty MINE state: the first call to :func:`mine` starts the average."""
    return MineState(jnp.asarray(-jnp.inf, dtype=jnp.float32))


def mine(
    scores: Array,
    state: MineState,
    *,
    offset: int | Array = 0,
    decay: float = 0.99,
    axis_name: str | None = None,
) -> tuple[Array, MineState]:
    r"""MINE (Belghazi et al. 2018): the DV bound with a bias-corrected gradient.

    The value is :func:`dv`. The gradient replaces the minibatch denominator of
    ``grad log E_q[e^f]`` by a moving average ``a_t`` of ``E_q[e^f]``:

    .. math::
        \nabla I = \nabla \bar s_{pos} - \frac{\nabla \hat E_q[e^{f}]}{a_t}, \quad
        a_t = \text{decay}\, a_{t-1} + (1 - \text{decay})\, \hat E_q[e^{f}]

    The average is kept in log space so large scores cannot overflow.

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      state: the :class:`MineState` returned by the previous call (or :func:`mine_init`).
      offset: column of row 0's positive.
      decay: moving-average decay in ``[0, 1)``.
      axis_name: mapped axis spanning the global batch, or ``None``.

    Returns:
      ``(estimate, new_state)``.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> value, state = bounds.mine(jnp.eye(3) * 2.0, bounds.mine_init())
      >>> round(float(value), 6)
      2.0
    """
    _check_scores(scores, offset)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"`decay` must be in [0, 1), got {decay}")
    batch_log_mean_exp = _negative_log_mean_exp(scores, offset, axis_name)
    value, new_state = _mine_update(
        jnp.mean(_positives(scores, offset)), batch_log_mean_exp, state, decay
    )
    in_range = lambda x: _nan_unless_offset_in_range(x, offset, *scores.shape)
    return in_range(value), MineState(in_range(new_state.log_moving_average))


def _mine_update(
    positive_mean: Array, batch_log_mean_exp: Array, state: MineState, decay: float
) -> tuple[Array, MineState]:
    """MINE's value, bias-corrected gradient and new state from the batch's two terms."""
    observed = jax.lax.stop_gradient(batch_log_mean_exp)
    previous = state.log_moving_average
    log_decay = math.log(decay) if decay > 0 else -math.inf
    mixed = jnp.logaddexp(previous + log_decay, observed + math.log1p(-decay))
    new_log_average = jnp.where(jnp.isfinite(previous), mixed, observed)
    value = positive_mean - batch_log_mean_exp
    surrogate = positive_mean - jnp.exp(batch_log_mean_exp - new_log_average)
    new_state = MineState(new_log_average.astype(state.log_moving_average.dtype))
    return _value_with_gradient_of(value, surrogate), new_state


def js_fgan(scores: Array, *, offset: int | Array = 0) -> Array:
    r"""The f-GAN Jensen-Shannon objective (Nowozin et al. 2016), used to train critics.

    .. math::
        J = -\frac{1}{n}\sum_i \operatorname{softplus}(-s_{i,i+o})
            - \frac{1}{n(m-1)} \sum_i \sum_{j \ne i+o} \operatorname{softplus}(s_{ij})

    Its maximiser is ``f = log p(x, y) / (p(x) p(y))``. This is a divergence objective, not
    an MI estimate; :func:`js` turns it into one.

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.

    Returns:
      Scalar objective.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.js_fgan(jnp.zeros((2, 2)))), 4)  # -2 log 2
      -1.3863
    """
    _check_scores(scores, offset)
    n, m = scores.shape
    positive_mask = _positive_mask(scores.shape, offset)
    positive_term = -jnp.mean(jax.nn.softplus(-_positives(scores, offset)))
    negative_sum = jnp.sum(jnp.where(positive_mask, 0.0, jax.nn.softplus(scores)))
    return _nan_unless_offset_in_range(positive_term - negative_sum / (n * (m - 1)), offset, n, m)


def js(scores: Array, *, offset: int | Array = 0) -> Array:
    r"""JS-trained NWJ estimate (Poole et al. 2019): the value of ``nwj(scores + 1)``,
    differentiated as :func:`js_fgan`.

    The critic trained by the Jensen-Shannon objective approaches the log density ratio
    ``log p(x,y)/(p(x)p(y))``; NWJ attains ``I`` at that ratio plus one, so the estimate is

    .. math::
        I_{JS} = 1 + \bar s_{pos} - \frac{1}{n(m-1)} \sum_i \sum_{j \ne i+o} e^{s_{ij}}

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.

    Returns:
      Scalar estimate in nats, with the gradient of the JS objective.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.js(jnp.zeros((3, 3)))), 6)
      0.0
    """
    _check_scores(scores, offset)
    return _value_with_gradient_of(nwj(scores + 1.0, offset=offset), js_fgan(scores, offset=offset))


def smile(
    scores: Array,
    *,
    offset: int | Array = 0,
    clip: float | None = 5.0,
    axis_name: str | None = None,
) -> Array:
    r"""SMILE (Song & Ermon 2020): DV with clipped negative scores, differentiated as JS.

    .. math::
        I_{SMILE} = \bar s_{pos} - \log \frac{1}{n(m-1)}
                    \sum_i \sum_{j \ne i+o} e^{\operatorname{clip}(s_{ij}, -\tau, \tau)}

    Clipping bounds the variance of the partition-function estimate at the price of bias;
    ``clip=None`` gives the unclipped DV value.

    Args:
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.
      clip: ``tau > 0`` or ``None``.
      axis_name: mapped axis spanning the global batch, or ``None``.

    Returns:
      Scalar estimate in nats, with the gradient of :func:`js_fgan`.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> round(float(bounds.smile(jnp.eye(3) * 2.0, clip=1.0)), 6)
      2.0
    """
    _check_scores(scores, offset)
    if clip is not None and not clip > 0:
        raise ValueError(f"`clip` must be positive or None, got {clip}")
    clipped = scores if clip is None else jnp.clip(scores, -clip, clip)
    log_mean_exp = _negative_log_mean_exp(clipped, offset, axis_name)
    value = jnp.mean(_positives(scores, offset)) - log_mean_exp
    value = _value_with_gradient_of(value, js_fgan(scores, offset=offset))
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


def supcon(
    scores: Array, row_labels: Array, column_labels: Array, *, offset: int | Array = 0
) -> Array:
    r"""Supervised contrastive objective (Khosla et al. 2020), maximised.

    Every column with the row's label is a positive:

    .. math::
        \frac{1}{n}\sum_i \frac{1}{|P(i)|} \sum_{p \in P(i)}
        \Big(s_{ip} - \log \sum_j e^{s_{ij}}\Big) + \log m,
        \quad P(i) = \{j : y_j = y_i\}

    Args:
      scores: ``[n, m]`` critic scores.
      row_labels: ``[n]`` integer labels of the rows.
      column_labels: ``[m]`` integer labels of the columns (``row_labels`` must equal
        ``column_labels[offset:offset + n]``, so each row has at least its own positive).
      offset: column of row 0's own pair (used for shape validation only).

    Returns:
      Scalar objective; ``log m`` when every row puts all its mass on its positives.

    Example:
      >>> import jax.numpy as jnp
      >>> from factorcl_jax import bounds
      >>> labels = jnp.array([0, 0, 1])
      >>> round(float(bounds.supcon(jnp.zeros((3, 3)), labels, labels)), 4)  # log3 - log3
      0.0
    """
    _check_scores(scores, offset)
    if row_labels.shape != (scores.shape[0],) or column_labels.shape != (scores.shape[1],):
        raise ValueError(
            f"`row_labels` and `column_labels` must have shapes [n] and [m] for "
            f"scores {scores.shape}, got {row_labels.shape} and "
            f"{column_labels.shape}"
        )
    positive = (row_labels[:, None] == column_labels[None, :]).astype(scores.dtype)
    log_softmax = scores - jax.nn.logsumexp(scores, axis=1, keepdims=True)
    per_row = jnp.sum(positive * log_softmax, axis=1) / jnp.sum(positive, axis=1)
    value = math.log(scores.shape[1]) + jnp.mean(per_row)
    return _nan_unless_offset_in_range(value, offset, *scores.shape)


def _check_gaussian(mean: Array, log_variance: Array, y: Array, offset: int | Array) -> None:
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
    _check_scores(
        jax.ShapeDtypeStruct((mean.shape[0], y.shape[0]), mean.dtype),
        offset,
        name="[mean rows, y rows]",
    )


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
    _check_gaussian(mean, log_variance, y, offset)
    partners = jax.lax.dynamic_slice_in_dim(y, offset, mean.shape[0], axis=0)
    squared = jnp.square(partners - mean) * jnp.exp(-log_variance)
    per_row = -0.5 * jnp.sum(squared + log_variance + math.log(2 * math.pi), axis=1)
    return _nan_unless_offset_in_range(jnp.mean(per_row), offset, mean.shape[0], y.shape[0])


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
    _check_gaussian(mean, log_variance, y, offset)
    partners = jax.lax.dynamic_slice_in_dim(y, offset, mean.shape[0], axis=0)
    precision = jnp.exp(-log_variance)
    column_mean = jnp.mean(y, axis=0, keepdims=True)
    column_variance = jnp.mean(jnp.square(y - column_mean), axis=0, keepdims=True)
    positive = jnp.square(partners - mean)
    all_pairs = jnp.square(column_mean - mean) + column_variance
    value = jnp.mean(0.5 * jnp.sum((all_pairs - positive) * precision, axis=1))
    return _nan_unless_offset_in_range(value, offset, mean.shape[0], y.shape[0])


def infmasking(scores: Array, *, draws: int, variance_scale: float = 1.0) -> Array:
    r"""InfMasking's bound: InfoNCE against infinitely many random masks, in closed form.

    Row ``i`` scores its ``K = draws`` masked views at columns ``t n + i`` (``t < K``, the views
    stacked draw by draw, ``n`` rows); every other column is a negative. A masked view's
    positive score ``s`` is taken as Gaussian with the mean ``\mu_i`` and (biased) variance
    ``\sigma_i^2`` of the ``K`` drawn ones, so ``E[e^s] = e^{\mu_i + \sigma_i^2 / 2}``, and
    Jensen's inequality lower-bounds the InfoNCE averaged over masks:

    .. math::
        I_{InfMask} = \log(m - K + 1) + \frac{1}{n} \sum_i \Big( \mu_i
            - \log \big( e^{\mu_i + \lambda \sigma_i^2 / 2}
            + \sum_{j \notin P_i} e^{s_{ij}} \big) \Big)

    with ``P_i`` the positive columns of row ``i`` and ``lambda = variance_scale``. With
    ``K = 1`` and ``lambda = 0`` it is :func:`infonce`. (Wen et al. 2025,
    "InfMasking", NeurIPS; the public code's loss equals ``-I_InfMask`` up to the constant.)

    Under data parallelism the columns are the global batch with this device's ``K n`` columns
    first (:func:`factorcl_jax.scoring.global_columns`), so the positives sit at the same columns.

    Args:
      scores: ``[n, m]`` scores, ``m >= K n`` and ``m > K``; the first ``K n`` columns are
        the rows' masked views, draw-major.
      draws: ``K >= 1``.
      variance_scale: ``lambda >= 0``.

    Returns:
      Scalar estimate in nats, averaged over rows.

    Example:
      >>> scores = jax.random.normal(jax.random.key(0), (4, 4))
      >>> bool(jnp.allclose(infmasking(scores, draws=1, variance_scale=0.0), infonce(scores)))
      True
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"`draws` must be an int >= 1, got {draws!r}")
    if not variance_scale >= 0:
        raise ValueError(f"`variance_scale` must be >= 0, got {variance_scale}")
    if getattr(scores, "ndim", None) != 2 or not jnp.issubdtype(scores.dtype, jnp.floating):
        raise ValueError(
            f"`scores` must be a floating-point [n, m] array, got "
            f"{getattr(scores, 'shape', type(scores).__name__)}"
        )
    n, m = scores.shape
    if m < draws * n or m == draws:
        raise ValueError(
            f"`scores` of shape {scores.shape} must have at least draws * n = {draws * n} "
            f"columns (the {draws} masked views of the {n} rows) and a negative"
        )
    rows = jnp.arange(n)
    positive_columns = jnp.arange(draws)[None, :] * n + rows[:, None]  # [n, K]
    positives = jnp.take_along_axis(scores, positive_columns, axis=1)
    mean = jnp.mean(positives, axis=1)
    variance = jnp.mean(jnp.square(positives - mean[:, None]), axis=1)
    is_positive = jnp.zeros((n, m), bool).at[rows[:, None], positive_columns].set(True)
    expected_positive = mean + 0.5 * variance_scale * variance
    logits = jnp.concatenate([expected_positive[:, None], scores], axis=1)
    where = jnp.concatenate([jnp.ones((n, 1), bool), ~is_positive], axis=1)
    normaliser = jax.nn.logsumexp(logits, axis=1, where=where)
    return math.log(m - draws + 1) + jnp.mean(mean - normaliser)
