r"""Each bound's formula, once, over row statistics; and the one registry of bound names.

Every function here maps the row statistics of :mod:`factorcl_jax.bounds.statistics` (each
``[n]``, this device's rows) and the number of columns ``m`` to the bound's value in nats.
The dense bounds (:mod:`factorcl_jax.bounds.dense`) compute the statistics from a score
matrix and the tiled ones (:mod:`factorcl_jax.bounds.tiled`, and its ring over devices)
accumulate them over tiles; both call the formula here, so the two paths cannot drift.

:data:`BOUNDS` names every bound of the library with what it reads, whether it is a lower
bound, an upper bound or a training objective, the options it takes (each checked in one
place, :meth:`Bound.check_options`), which objective trains its critic, and the range of
values a converged estimate can take (:meth:`Bound.plausible_range`): the estimation
protocol reports anything outside it as divergence, not as an estimate.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = [
    "BOUNDS",
    "DIVERGED_NATS",
    "Bound",
    "MineState",
    "get_bound",
    "mine_init",
]

Statistics = Mapping[str, Array]

DIVERGED_NATS = 1000.0
r"""Magnitude (nats) beyond which an estimate is divergence, not information: no estimator
here can resolve :math:`e^{1000}` distinguishable states from a finite sample."""


class MineState(NamedTuple):
    """Moving average of ``E_q[e^f]`` kept by MINE, stored as its log (``-inf`` = empty)."""

    log_moving_average: Array


def mine_init() -> MineState:
    """An empty MINE state: the first call to :func:`~factorcl_jax.bounds.mine` starts the
    average."""
    return MineState(jnp.asarray(-jnp.inf, dtype=jnp.float32))


def value_with_gradient_of(value: Array, surrogate: Array) -> Array:
    """Returns ``value`` in the forward pass while differentiating as ``surrogate``."""
    return jax.lax.stop_gradient(value) + surrogate - jax.lax.stop_gradient(surrogate)


def pooled_log_mean_exp(row_lse: Array, count: float, axis_name: str | None) -> Array:
    """``log(sum_i exp(row_lse_i) / count)`` with the sum and count pooled over ``axis_name``.

    The rows of every participant are pooled with a max-shifted sum, so under a mapped axis
    the result equals the single-device value on the whole batch.
    """
    shift = jax.lax.stop_gradient(jnp.max(row_lse))
    if axis_name is not None:
        shift = jax.lax.pmax(shift, axis_name)
    total = jnp.sum(jnp.exp(row_lse - shift))
    if axis_name is not None:
        total = jax.lax.psum(total, axis_name)
        count = count * jax.lax.psum(1.0, axis_name)
    return shift + jnp.log(total) - jnp.log(count)


def _negatives(s: Statistics, m: int) -> float:
    """``n (m - 1)`` negatives of this device's rows, as a float (beyond int32 at m = 2^16)."""
    return float(s["positive"].shape[0]) * (m - 1)


# --------------------------------------------------------------------------- the formulas


def infonce(s: Statistics, m: int) -> Array:
    r""":math:`\log m + \frac1n \sum_i (s_{i,i+o} - \log \sum_j e^{s_{ij}})` (Oord et al. 2018)."""
    return math.log(m) + jnp.mean(s["positive"] - s["logsumexp"])


def nce_club(s: Statistics, m: int) -> Array:
    r""":math:`\frac1n \sum_i (s_{i,i+o} - \frac1m \sum_j s_{ij})` (Liang et al. 2023)."""
    return jnp.mean(s["positive"] - s["sum"] / m)


def supcon(s: Statistics, m: int) -> Array:
    r""":math:`\log m + \frac1n \sum_i (\frac{1}{|P(i)|}\sum_{p \in P(i)} s_{ip} - \log \sum_j
    e^{s_{ij}})` (Khosla et al. 2020)."""
    return math.log(m) + jnp.mean(s["label_sum"] / s["label_count"] - s["logsumexp"])


def tuba(s: Statistics, m: int, *, log_baseline: Array | float = 0.0) -> Array:
    r""":math:`\frac1n \sum_i (1 + s_{i,i+o} - b_i - \frac{1}{m-1}\sum_{j \ne i+o}
    e^{s_{ij} - b_i})` (Poole et al. 2019)."""
    b = jnp.asarray(log_baseline, s["positive"].dtype)
    mean_exp = jnp.exp(s["negative_logsumexp"] - b - math.log(m - 1))
    return jnp.mean(1.0 + s["positive"] - b - mean_exp)


def nwj(s: Statistics, m: int) -> Array:
    r"""TUBA with :math:`b = 1` (Nguyen, Wainwright & Jordan 2010)."""
    return tuba(s, m, log_baseline=1.0)


def dv(s: Statistics, m: int, *, axis_name: str | None = None) -> Array:
    r""":math:`\bar s_{pos} - \log \frac{1}{n(m-1)} \sum_i \sum_{j \ne i+o} e^{s_{ij}}`
    (Donsker & Varadhan), the log-mean-exp pooled over ``axis_name``."""
    pooled = pooled_log_mean_exp(s["negative_logsumexp"], _negatives(s, m), axis_name)
    return jnp.mean(s["positive"]) - pooled


def mine(
    s: Statistics,
    m: int,
    *,
    state: MineState,
    decay: float = 0.99,
    axis_name: str | None = None,
) -> tuple[Array, MineState]:
    r"""The DV value with MINE's bias-corrected gradient (Belghazi et al. 2018):
    :math:`\nabla \bar s_{pos} - \nabla \hat E_q[e^f] / a_t`, with the moving average
    :math:`a_t = \text{decay}\, a_{t-1} + (1 - \text{decay})\, \hat E_q[e^f]` kept in log space.
    """
    batch = pooled_log_mean_exp(s["negative_logsumexp"], _negatives(s, m), axis_name)
    positive_mean = jnp.mean(s["positive"])
    observed = jax.lax.stop_gradient(batch)
    previous = state.log_moving_average
    log_decay = math.log(decay) if decay > 0 else -math.inf
    mixed = jnp.logaddexp(previous + log_decay, observed + math.log1p(-decay))
    new_log_average = jnp.where(jnp.isfinite(previous), mixed, observed)
    value = positive_mean - batch
    surrogate = positive_mean - jnp.exp(batch - new_log_average)
    new_state = MineState(new_log_average.astype(previous.dtype))
    return value_with_gradient_of(value, surrogate), new_state


def js_fgan(s: Statistics, m: int) -> Array:
    r""":math:`-\frac1n\sum_i \mathrm{softplus}(-s_{i,i+o}) - \frac{1}{n(m-1)} \sum_i \sum_{j
    \ne i+o} \mathrm{softplus}(s_{ij})` (Nowozin et al. 2016)."""
    return -jnp.mean(jax.nn.softplus(-s["positive"])) - (
        jnp.sum(s["negative_softplus_sum"]) / _negatives(s, m)
    )


def js(s: Statistics, m: int) -> Array:
    r"""The value of NWJ on ``s + 1``, :math:`1 + \bar s_{pos} - \frac{1}{n(m-1)} \sum_i
    \sum_{j \ne i+o} e^{s_{ij}}`, differentiated as :func:`js_fgan` (Poole et al. 2019)."""
    value = jnp.mean(1.0 + s["positive"] - jnp.exp(s["negative_logsumexp"] - math.log(m - 1)))
    return value_with_gradient_of(value, js_fgan(s, m))


def smile(
    s: Statistics, m: int, *, clip: float | None = 5.0, axis_name: str | None = None
) -> Array:
    r""":math:`\bar s_{pos} - \log \frac{1}{n(m-1)} \sum_i \sum_{j \ne i+o}
    e^{\mathrm{clip}(s_{ij}, -\tau, \tau)}`, differentiated as :func:`js_fgan` (Song & Ermon
    2020)."""
    clipped = pooled_log_mean_exp(s["clipped_negative_logsumexp"], _negatives(s, m), axis_name)
    return value_with_gradient_of(jnp.mean(s["positive"]) - clipped, js_fgan(s, m))


def infmasking(s: Statistics, m: int, *, draws: int, variance_scale: float = 1.0) -> Array:
    r""":math:`\log(m - K + 1) + \frac1n \sum_i (\mu_i - \log(e^{\mu_i + \lambda \sigma_i^2 / 2}
    + \sum_{j \notin P_i} e^{s_{ij}}))` over the ``K = draws`` positives of each row (Wen et
    al. 2025)."""
    expected = s["draw_mean"] + 0.5 * variance_scale * s["draw_variance"]
    normaliser = jnp.logaddexp(expected, s["draw_negative_logsumexp"])
    return math.log(m - draws + 1) + jnp.mean(s["draw_mean"] - normaliser)


# --------------------------------------------------------------------------- option checks


def _check_log_baseline(value: Any, n: int) -> Any:
    shape = jnp.shape(value)
    if shape not in ((), (n,)):
        raise ValueError(
            f"`log_baseline` must be a scalar or have shape [n] = [{n}], got shape {shape}"
        )
    return value


def _check_clip(value: Any, n: int) -> Any:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"`clip` must be positive or None, got {value}")
    return value


def _check_decay(value: Any, n: int) -> Any:
    if isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"`decay` must be in [0, 1), got {value}")
    return value


def _check_state(value: Any, n: int) -> Any:
    if not isinstance(value, MineState):
        raise TypeError(
            f"mine needs `state`, a MineState (bounds.mine_init() or the last state), got "
            f"{type(value).__name__}"
        )
    return value


def _check_draws(value: Any, n: int) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`draws` must be an int >= 1, got {value!r}")
    return value


def _check_variance_scale(value: Any, n: int) -> Any:
    if isinstance(value, bool) or not value >= 0:
        raise ValueError(f"`variance_scale` must be >= 0, got {value}")
    return value


def _check_axis_name(value: Any, n: int) -> Any:
    return value


# --------------------------------------------------------------------------- the registry

_OPTION_CHECKS: dict[str, Callable[[Any, int], Any]] = {
    "log_baseline": _check_log_baseline,
    "clip": _check_clip,
    "decay": _check_decay,
    "state": _check_state,
    "draws": _check_draws,
    "variance_scale": _check_variance_scale,
    "axis_name": _check_axis_name,
}


@dataclasses.dataclass(frozen=True)
class Bound:
    """One bound of the library.

    Attributes:
      name: its name, used everywhere (objectives' terms, ``estimate_mi(bound=...)``, tiles).
      kind: ``"lower"`` or ``"upper"`` bound on MI, or ``"objective"`` (trains a critic but
        is not an MI estimate: ``js_fgan``, ``supcon``, ``gaussian_log_likelihood``).
      formula: ``(statistics, m, **options) -> value`` (MINE: ``(value, new state)``), or
        ``None`` for the Gaussian bounds, which read ``(mean, log_variance, y)``.
      statistics: the row statistics the formula reads.
      options: keyword options, with defaults (``None``: required).
      trained_by: the name of the objective whose maximum is the critic this bound is read
        off (itself for most lower bounds; InfoNCE for NCE-CLUB, as in FactorCL).
      tiled: whether the statistics can be accumulated over tiles (``draw_*`` cannot: the
        variance over a row's positives needs all of them at once).
      labelled: reads row and column labels (``label_*`` statistics).
      estimator: an MI estimator of paired samples (one positive per row), available to
        :func:`~factorcl_jax.estimate.estimate_mi`.
    """

    name: str
    kind: str
    formula: Callable[..., Any] | None
    statistics: tuple[str, ...] = ()
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    trained_by: str | None = None
    tiled: bool = True
    labelled: bool = False
    estimator: bool = False

    @property
    def stateful(self) -> bool:
        """Whether the bound threads a state through training (MINE's moving average)."""
        return "state" in self.options

    @property
    def gaussian(self) -> bool:
        """Whether the bound reads a Gaussian ``q(y | x)`` rather than pairwise scores."""
        return self.formula is None

    def check_options(self, options: Mapping[str, Any], n: int) -> dict[str, Any]:
        """``options`` completed with the defaults, each checked; unknown keys refused."""
        unexpected = sorted(set(options) - set(self.options))
        if unexpected:
            raise TypeError(f"{self.name} takes no option(s) {unexpected}")
        resolved = {**self.options, **options}
        return {key: _OPTION_CHECKS[key](value, n) for key, value in resolved.items()}

    def plausible_range(self, m: int, **options: Any) -> tuple[float, float]:
        """The values a converged estimate of this bound can take on batches of ``m`` columns.

        InfoNCE (and InfMasking) never exceed ``log m``; below ``-log m`` a critic does worse
        than a constant one by a margin that only divergence gives, for every bound. Above,
        the other bounds are capped at :data:`DIVERGED_NATS`.
        """
        log_m = math.log(m)
        if self.name == "infonce":
            return -log_m, log_m
        if self.name == "infmasking":
            ceiling = math.log(m - options.get("draws", 1) + 1)
            return -ceiling, ceiling
        return -log_m, DIVERGED_NATS


def _bounds() -> dict[str, Bound]:
    entries = [
        Bound(
            "infonce",
            "lower",
            infonce,
            ("positive", "logsumexp"),
            trained_by="infonce",
            estimator=True,
        ),
        Bound(
            "nce_club", "upper", nce_club, ("positive", "sum"), trained_by="infonce", estimator=True
        ),
        Bound(
            "supcon",
            "objective",
            supcon,
            ("logsumexp", "label_sum", "label_count"),
            labelled=True,
        ),
        Bound(
            "tuba",
            "lower",
            tuba,
            ("positive", "negative_logsumexp"),
            {"log_baseline": 0.0},
            trained_by="tuba",
            estimator=True,
        ),
        Bound(
            "nwj",
            "lower",
            nwj,
            ("positive", "negative_logsumexp"),
            trained_by="nwj",
            estimator=True,
        ),
        Bound(
            "dv",
            "lower",
            dv,
            ("positive", "negative_logsumexp"),
            {"axis_name": None},
            trained_by="dv",
            estimator=True,
        ),
        Bound(
            "mine",
            "lower",
            mine,
            ("positive", "negative_logsumexp"),
            {"state": None, "decay": 0.99, "axis_name": None},
            trained_by="mine",
            estimator=True,
        ),
        Bound("js_fgan", "objective", js_fgan, ("positive", "negative_softplus_sum")),
        Bound(
            "js",
            "lower",
            js,
            ("positive", "negative_logsumexp", "negative_softplus_sum"),
            trained_by="js",
            estimator=True,
        ),
        Bound(
            "smile",
            "lower",
            smile,
            ("positive", "clipped_negative_logsumexp", "negative_softplus_sum"),
            {"clip": 5.0, "axis_name": None},
            trained_by="smile",
            estimator=True,
        ),
        Bound(
            "infmasking",
            "lower",
            infmasking,
            ("draw_mean", "draw_variance", "draw_negative_logsumexp"),
            {"draws": 1, "variance_scale": 1.0},
            trained_by="infmasking",
            tiled=False,
        ),
        Bound("gaussian_log_likelihood", "objective", None),
        Bound("club", "upper", None, trained_by="gaussian_log_likelihood", estimator=True),
    ]
    return {entry.name: entry for entry in entries}


BOUNDS: dict[str, Bound] = _bounds()
"""Every bound by name; ``club`` is CLUB with a Gaussian ``q(y | x)``
(:func:`~factorcl_jax.bounds.club_gaussian`)."""


def get_bound(name: Any, *, tiled: bool = False, estimator: bool = False) -> Bound:
    """``BOUNDS[name]``, or a ``ValueError`` listing the names that fit.

    Args:
      name: the bound's name.
      tiled: it must have a tiled form.
      estimator: it must be an MI estimator (:attr:`Bound.estimator`).
    """
    fits = [
        bound.name
        for bound in BOUNDS.values()
        if (not tiled or (bound.tiled and not bound.gaussian))
        and (not estimator or bound.estimator)
    ]
    if not isinstance(name, str) or name not in fits:
        raise ValueError(f"unknown bound {name!r}: choose one of {', '.join(fits)}")
    return BOUNDS[name]
