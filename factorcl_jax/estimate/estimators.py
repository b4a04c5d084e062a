"""How each MI estimator trains its critic and reads off its estimate, and one training step.

An :class:`Estimator` names how a critic is trained and how the estimate is read off it, for
every bound of :data:`factorcl_jax.bounds.BOUNDS` marked as an estimator: most lower bounds
train and report the same quantity; NCE-CLUB trains its critic by InfoNCE and reports the
upper bound on the same scores (as in FactorCL); CLUB trains a Gaussian ``q(y|x)`` by maximum
likelihood; MINE carries its moving average through training. A critic is anything the
network protocol accepts (:mod:`factorcl_jax.networks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array

from factorcl_jax import bounds, critics
from factorcl_jax.bounds.formulas import pooled_log_mean_exp
from factorcl_jax.bounds.statistics import dense_statistics
from factorcl_jax.networks.adapters import as_critic, as_gaussian

__all__ = [
    "CRITIC_KINDS",
    "ESTIMATORS",
    "SEPARABLE_EMBED_DIM",
    "CriticState",
    "Estimator",
    "critic_outputs",
    "critic_step",
    "get_estimator",
    "init_critic_state",
    "make_critic",
    "pointwise_mi",
]


class Estimator(NamedTuple):
    """How one MI estimator trains its critic and reads off its estimate.

    Attributes:
      training_objective: ``(outputs, carry) -> (objective, carry)``; the critic maximises
        ``objective``. ``carry`` is estimator state threaded through training (MINE's moving
        average), ``None`` for stateless estimators. Estimators trained the same way share
        this function (the same object), so one trained critic serves all of them.
      estimate: ``outputs -> scalar`` estimate in nats.
      init_carry: ``() -> carry`` at the start of training.
      gaussian: whether the critic is a Gaussian ``q(y | x)`` (outputs
        ``(mean, log_variance, y)``) rather than a pairwise critic (outputs ``[n, m]``
        scores).
    """

    training_objective: Callable[[Any, Any], tuple[Array, Any]]
    estimate: Callable[[Any], Array]
    init_carry: Callable[[], Any] = lambda: None
    gaussian: bool = False


def _training_objective(name: str) -> Callable[[Any, Any], tuple[Array, Any]]:
    """``(outputs, carry) -> (objective, carry)`` of the bound ``name``."""
    entry = bounds.BOUNDS[name]
    if entry.gaussian:
        return lambda outputs, carry: (bounds.gaussian_log_likelihood(*outputs), carry)
    if entry.stateful:
        return lambda outputs, carry: bounds.evaluate(name, outputs, state=carry)
    return lambda outputs, carry: (bounds.evaluate(name, outputs), carry)


def _estimate_of(name: str) -> Callable[[Any], Array]:
    """``outputs -> estimate`` of the bound ``name`` (MINE's is its DV value)."""
    entry = bounds.BOUNDS[name]
    if entry.gaussian:
        return lambda outputs: bounds.club_gaussian(*outputs)
    if entry.stateful:
        return lambda outputs: bounds.evaluate(name, outputs, state=bounds.mine_init())[0]
    return lambda outputs: bounds.evaluate(name, outputs)


def _estimators() -> dict[str, Estimator]:
    names = [entry.name for entry in bounds.BOUNDS.values() if entry.estimator]
    training = {
        trained_by: _training_objective(trained_by)
        for trained_by in {bounds.BOUNDS[name].trained_by for name in names}
    }
    return {
        name: Estimator(
            training[bounds.BOUNDS[name].trained_by],
            _estimate_of(name),
            bounds.mine_init if bounds.BOUNDS[name].stateful else (lambda: None),
            gaussian=bounds.BOUNDS[name].gaussian,
        )
        for name in names
    }


ESTIMATORS: dict[str, Estimator] = _estimators()
"""The estimators of :data:`factorcl_jax.bounds.BOUNDS` (those marked ``estimator``), each
with its training rule: a lower bound trains its own critic; NCE-CLUB reads its upper bound
off the InfoNCE-trained critic (as in FactorCL); CLUB trains a Gaussian ``q(y|x)`` by maximum
likelihood; MINE carries its moving average through training."""

CRITIC_KINDS = ("concat", "separable")
"""The library's pairwise critics by name (:func:`make_critic`); CLUB trains its Gaussian
``q(y|x)``."""

SEPARABLE_EMBED_DIM = 32
"""Output width of the separable critic's towers (Poole et al. 2019 use 32)."""


def get_estimator(name: str) -> Estimator:
    """``ESTIMATORS[name]``, or a ``ValueError`` listing the known names."""
    return ESTIMATORS[bounds.get_bound(name, estimator=True).name]


def make_critic(kind: str, hidden: Sequence[int]) -> Any:
    """The library's critic ``kind`` with hidden widths ``hidden``, as a protocol object.

    ``kind`` is ``"concat"`` (``MLP([x; y])``, :class:`~factorcl_jax.critics.ConcatCritic`),
    ``"separable"`` (``g(x) . h(y)``, towers of width ``hidden`` then
    :data:`SEPARABLE_EMBED_DIM`) or ``"gaussian"`` (CLUB's ``q(y|x)``).

    Example:
      >>> make_critic("concat", (64,))
      LinenCritic(module=ConcatCritic(...))
    """
    hidden = tuple(hidden) if isinstance(hidden, Sequence) else hidden
    if (
        not isinstance(hidden, tuple)
        or not hidden
        or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in hidden)
    ):
        raise ValueError(f"`hidden` must be a non-empty sequence of positive ints, got {hidden}")
    if kind == "concat":
        return as_critic(critics.ConcatCritic(hidden=hidden))
    if kind == "separable":
        return as_critic(critics.SeparableCritic(hidden=hidden, embed_dim=SEPARABLE_EMBED_DIM))
    if kind == "gaussian":
        return as_gaussian(critics.GaussianCritic(hidden=hidden))
    raise ValueError(f"`critic` must be one of {[*CRITIC_KINDS, 'gaussian']}, got {kind!r}")


def critic_outputs(
    estimator: Estimator,
    critic: Any,
    params: Any,
    x: Array,
    y: Array,
    *,
    block_size: int | None = None,
) -> Any:
    """What ``estimator`` consumes: ``[n, n]`` scores, or ``(mean, log_variance, y)``.

    ``critic`` is a protocol object (:func:`~factorcl_jax.networks.adapters.as_critic`, or
    :func:`~factorcl_jax.networks.adapters.as_gaussian` for CLUB).
    """
    if estimator.gaussian:
        mean, log_variance = critic.predict(params, x, y)
        return mean, log_variance, y
    return critics.pairwise_scores(critic, params, x, y, block_size=block_size)


class CriticState(NamedTuple):
    """Critic parameters, optimizer state and the estimator's carry (MINE's average)."""

    params: Any
    opt_state: Any
    estimator_carry: Any


def critic_step(
    estimator: Estimator,
    critic: Any,
    optimizer: optax.GradientTransformation,
    state: CriticState,
    x: Array,
    y: Array,
    *,
    block_size: int | None = None,
) -> tuple[CriticState, Array]:
    """One update maximising ``estimator``'s training objective on the batch ``(x, y)``.

    Args:
      estimator: an entry of :data:`~factorcl_jax.estimate.ESTIMATORS`.
      critic: the critic as a protocol object (pairwise, or Gaussian for CLUB).
      optimizer: the optax transformation that produced ``state.opt_state``.
      state: current :class:`CriticState`.
      x: ``[n, dx]`` batch of X.
      y: ``[n, dy]`` batch of Y paired row by row with ``x``.
      block_size: row block of :func:`~factorcl_jax.critics.pairwise_scores`.

    Returns:
      ``(new_state, estimate)``: the scalar estimate on this batch is taken *before* the
      update, as the staircase protocol logs it.
    """

    def loss(params: Any) -> tuple[Array, tuple[Array, Any]]:
        outputs = critic_outputs(estimator, critic, params, x, y, block_size=block_size)
        objective, carry = estimator.training_objective(outputs, state.estimator_carry)
        return -objective, (estimator.estimate(outputs), carry)

    grads, (estimate, carry) = jax.grad(loss, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    return CriticState(optax.apply_updates(state.params, updates), opt_state, carry), estimate


def init_critic_state(
    estimator: Estimator,
    critic: Any,
    optimizer: optax.GradientTransformation,
    key: Array,
    x: Array,
    y: Array,
) -> CriticState:
    """Fresh critic parameters, optimizer state and estimator carry for batches like
    ``x, y`` (``critic`` a protocol object)."""
    params = critic.init(key, x, y)
    return CriticState(params, optimizer.init(params), estimator.init_carry())


def pointwise_mi(name: str, outputs: Any) -> Array:
    r"""``[n]`` per-pair estimates of the pointwise MI :math:`\log p(x_i, y_i) / (p(x_i)
    p(y_i))` from one batch of the critic's outputs, the per-pair reading of each bound:

    * ``infonce``: :math:`s_{ii} - \log \frac1m \sum_j e^{s_{ij}}` (the row's InfoNCE term;
      the critic is optimal up to a function of ``x``, which the log-mean-exp removes);
    * ``nce_club``: :math:`s_{ii} - \frac1m \sum_j s_{ij}`;
    * ``nwj``, ``tuba``: :math:`s_{ii} - 1` (their optimal critic is ``1 + PMI``);
    * ``dv``, ``mine``, ``smile``: :math:`s_{ii} - \log \frac{1}{n(m-1)} \sum_{i, j \ne i}
      e^{s_{ij}}` (optimal up to a constant);
    * ``js``: :math:`s_{ii}` (the JS-trained critic is the log density ratio);
    * ``club``: :math:`\log q(y_i | x_i) - \frac1m \sum_j \log q(y_j | x_i)`.

    The mean over the batch is the bound's value on it (``js``, ``nwj``: up to their ``1 +
    ... - e^{...}`` terms).
    """
    entry = bounds.get_bound(name, estimator=True)
    if entry.gaussian:
        mean, log_variance, y = outputs
        precision = jnp.exp(-log_variance)
        column_mean = jnp.mean(y, axis=0, keepdims=True)
        column_variance = jnp.mean(jnp.square(y - column_mean), axis=0, keepdims=True)
        positive = jnp.square(y - mean)
        all_pairs = jnp.square(column_mean - mean) + column_variance
        return 0.5 * jnp.sum((all_pairs - positive) * precision, axis=1)
    scores = outputs
    m = scores.shape[1]
    s = dense_statistics(scores, ("positive", "logsumexp", "sum", "negative_logsumexp"))
    if name == "infonce":
        return s["positive"] - s["logsumexp"] + jnp.log(m)
    if name == "nce_club":
        return s["positive"] - s["sum"] / m
    if name in ("nwj", "tuba"):
        return s["positive"] - 1.0
    if name == "js":
        return s["positive"]
    pooled = pooled_log_mean_exp(s["negative_logsumexp"], float(scores.shape[0]) * (m - 1), None)
    return s["positive"] - pooled
