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

Each function here is :func:`evaluate` of its name: the row statistics of the matrix
(:func:`~factorcl_jax.bounds.statistics.dense_statistics`) into the bound's one formula
(:mod:`factorcl_jax.bounds.formulas`), the formula the tiled path uses too.

All values are in nats. Lower bounds (``infonce``, ``nwj``, ``tuba``, ``dv``, ``mine``,
``js``, ``smile``, ``infmasking``) are maximised to train a critic; ``nce_club`` and
``club_gaussian`` are upper bounds evaluated with a critic trained elsewhere (by ``infonce``
and ``gaussian_log_likelihood`` respectively).

**Extreme scores.** Every bound is finite, with finite gradients, for finite scores up to
magnitudes whose row sums stay in the float range (log-sum-exps and softplus are shifted;
scores of ``±1e30`` in float32 are fine, ``3e38`` on a few columns overflows their sum),
except where the exact value itself is not a float: ``nwj``, ``tuba`` and ``js`` are linear
in ``e^{s_ij}`` of the negatives, so once a negative score exceeds about 88 (float32's
``log`` of its largest value; 709 in float64) their value is ``-inf``, the exact limit (the
true value is below ``-e^88 / (m - 1)``), never NaN; there ``nwj``'s and ``tuba``'s gradients
are not finite either, while ``js`` (differentiated as ``js_fgan``) keeps a finite gradient.
At scores of ``-1e4`` they are finite like the others (tested for every bound and pattern in
``tests/test_faults_bounds.py``).

References:
  Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding" (InfoNCE).
  Liang et al. 2023, "Factorized Contrastive Learning" (NCE-CLUB).
  Cheng et al. 2020, "CLUB: A Contrastive Log-ratio Upper Bound of Mutual Information".
  Nguyen, Wainwright, Jordan 2010 (NWJ); Donsker & Varadhan 1983 (DV);
  Belghazi et al. 2018, "MINE"; Nowozin et al. 2016, "f-GAN" (JS);
  Poole et al. 2019, "On Variational Bounds of Mutual Information" (TUBA, JS-trained NWJ);
  Song & Ermon 2020, "Understanding the Limitations of Variational MI Estimators" (SMILE);
  Khosla et al. 2020, "Supervised Contrastive Learning"; Wen et al. 2025, "InfMasking".
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from jax import Array

from factorcl_jax.bounds.formulas import MineState, get_bound
from factorcl_jax.bounds.statistics import (
    check_offset,
    check_scores,
    dense_statistics,
    nan_unless_offset_in_range,
)

__all__ = [
    "dv",
    "evaluate",
    "infmasking",
    "infonce",
    "js",
    "js_fgan",
    "mine",
    "nce_club",
    "nwj",
    "smile",
    "supcon",
    "tuba",
]


def evaluate(
    name: str,
    scores: Array,
    *,
    offset: int | Array = 0,
    row_labels: Array | None = None,
    column_labels: Array | None = None,
    **options: Any,
) -> Any:
    """The bound ``name`` (a key of :data:`~factorcl_jax.bounds.BOUNDS`) of a score matrix.

    Checks the scores, the offset and the bound's options (one place each), computes the row
    statistics the bound reads and applies its formula; a traced offset out of range makes
    the value (and gradient) NaN.

    Args:
      name: the bound, e.g. ``"infonce"``.
      scores: ``[n, m]`` critic scores, positives at ``[i, i + offset]``.
      offset: column of row 0's positive.
      row_labels: ``[n]`` integer labels (``supcon``).
      column_labels: ``[m]`` integer labels (``supcon``).
      **options: the bound's own options (``log_baseline``, ``clip``, ``state``, ...).

    Example:
      >>> float(evaluate("nce_club", jnp.array([[2.0, 0.0], [0.0, 2.0]])))
      1.0
    """
    bound = get_bound(name)
    if bound.gaussian:
        raise ValueError(f"{name} reads a Gaussian q(y|x), not a score matrix")
    n, m = check_scores(scores)
    options = bound.check_options(options, n)
    draws = options.get("draws", 1)
    if m < draws * n or m == draws:
        raise ValueError(
            f"`scores` of shape {scores.shape} must have at least draws * n = {draws * n} "
            f"columns (the {draws} positives of each of the {n} rows) and a negative"
        )
    span = draws * n  # the columns the positives of the n rows take, from the offset on
    offset = check_offset(offset, span, m)
    if bound.labelled:
        _check_labels(row_labels, column_labels, n, m)
    statistics = dense_statistics(
        scores,
        bound.statistics,
        offset=offset,
        clip=options.get("clip"),
        row_labels=row_labels,
        column_labels=column_labels,
        draws=draws,
    )
    value = bound.formula(statistics, m, **options)
    guard = lambda v: nan_unless_offset_in_range(v, offset, span, m)
    if bound.stateful:
        value, state = value
        return guard(value), MineState(guard(state.log_moving_average))
    return guard(value)


def _check_labels(row_labels: Any, column_labels: Any, n: int, m: int) -> None:
    for name, labels, size in (("row_labels", row_labels, n), ("column_labels", column_labels, m)):
        shape = getattr(labels, "shape", None)
        if shape != (size,) or not jnp.issubdtype(labels.dtype, jnp.integer):
            described = "None" if labels is None else f"{getattr(labels, 'dtype', '?')}{shape}"
            raise ValueError(
                f"`row_labels` and `column_labels` must be integer arrays of shapes [n] and "
                f"[m] = [{n}] and [{m}]; `{name}` is {described}"
            )


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
    return evaluate("infonce", scores, offset=offset)


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
    return evaluate("nce_club", scores, offset=offset)


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
    return evaluate("tuba", scores, offset=offset, log_baseline=log_baseline)


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
    return evaluate("nwj", scores, offset=offset)


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
    return evaluate("dv", scores, offset=offset, axis_name=axis_name)


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
    return evaluate("mine", scores, offset=offset, state=state, decay=decay, axis_name=axis_name)


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
    return evaluate("js_fgan", scores, offset=offset)


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
    return evaluate("js", scores, offset=offset)


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
    return evaluate("smile", scores, offset=offset, clip=clip, axis_name=axis_name)


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
    return evaluate(
        "supcon", scores, offset=offset, row_labels=row_labels, column_labels=column_labels
    )


def infmasking(
    scores: Array, *, draws: int, variance_scale: float = 1.0, offset: int | Array = 0
) -> Array:
    r"""InfMasking's bound: InfoNCE against infinitely many random masks, in closed form.

    Row ``i`` scores its ``K = draws`` masked views at columns ``t n + i + offset`` (``t < K``,
    the views stacked draw by draw, ``n`` rows); every other column is a negative. A masked view's
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
    first, so the positives sit at the same columns.

    Args:
      scores: ``[n, m]`` scores, ``m >= K n`` and ``m > K``; the ``K n`` columns from
        ``offset`` on are the rows' masked views, draw-major.
      draws: ``K >= 1``.
      variance_scale: ``lambda >= 0``.
      offset: column of row 0's first view.

    Returns:
      Scalar estimate in nats, averaged over rows.

    Example:
      >>> import jax
      >>> from factorcl_jax import bounds
      >>> scores = jax.random.normal(jax.random.key(0), (4, 4))
      >>> bool(jnp.allclose(bounds.infmasking(scores, draws=1, variance_scale=0.0),
      ...                   bounds.infonce(scores)))
      True
    """
    return evaluate("infmasking", scores, offset=offset, draws=draws, variance_scale=variance_scale)
