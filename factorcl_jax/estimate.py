"""Fit a critic to paired samples and report a mutual-information estimate.

An :class:`Estimator` names how a critic is trained and how the estimate is read off it:
most lower bounds train and report the same quantity; NCE-CLUB trains its critic by InfoNCE
and reports the upper bound on the same scores (as in FactorCL); CLUB trains a Gaussian
``q(y|x)`` by maximum likelihood; MINE carries its moving average through training.
:func:`estimate_mi` compiles the whole training loop (one ``lax.scan`` over steps, fresh
minibatches drawn with PRNG keys) and then evaluates the trained critic on fresh batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from factorcl_jax import bounds, critics

__all__ = [
    "ESTIMATORS",
    "CriticState",
    "Estimator",
    "MIEstimate",
    "critic_outputs",
    "critic_step",
    "estimate_mi",
    "init_critic_state",
]


class Estimator(NamedTuple):
    """How one MI estimator trains its critic and reads off its estimate.

    Attributes:
      training_objective: ``(outputs, carry) -> (objective, carry)``; the critic maximises
        ``objective``. ``carry`` is estimator state threaded through training (MINE's moving
        average), ``None`` for stateless estimators.
      estimate: ``outputs -> scalar`` estimate in nats.
      init_carry: ``() -> carry`` at the start of training.
      gaussian: whether the critic is a :class:`~factorcl_jax.critics.GaussianCritic`
        (outputs ``(mean, log_variance, y)``) rather than a pairwise critic (outputs
        ``[n, m]`` scores).
    """

    training_objective: Callable[[Any, Any], tuple[Array, Any]]
    estimate: Callable[[Any], Array]
    init_carry: Callable[[], Any] = lambda: None
    gaussian: bool = False


def _stateless(bound: Callable[[Array], Array]) -> Callable[[Any, Any], tuple[Array, Any]]:
    return lambda outputs, carry: (bound(outputs), carry)


def _mine_objective(scores: Array, state: bounds.MineState) -> tuple[Array, bounds.MineState]:
    return bounds.mine(scores, state)


def _gaussian_likelihood(outputs: tuple[Array, Array, Array], carry: None) -> tuple[Array, None]:
    return bounds.gaussian_log_likelihood(*outputs), carry


ESTIMATORS: dict[str, Estimator] = {
    "infonce": Estimator(_stateless(bounds.infonce), bounds.infonce),
    "nce_club": Estimator(_stateless(bounds.infonce), bounds.nce_club),
    "nwj": Estimator(_stateless(bounds.nwj), bounds.nwj),
    "dv": Estimator(_stateless(bounds.dv), bounds.dv),
    "mine": Estimator(_mine_objective, bounds.dv, bounds.mine_init),
    "js": Estimator(_stateless(bounds.js), bounds.js),
    "smile": Estimator(_stateless(bounds.smile), bounds.smile),
    "club": Estimator(
        _gaussian_likelihood, lambda outputs: bounds.club_gaussian(*outputs), gaussian=True
    ),
}
"""Estimators by name: the bounds of :mod:`factorcl_jax.bounds` with their training rule."""


def critic_outputs(
    estimator: Estimator,
    critic: nn.Module,
    params: Any,
    x: Array,
    y: Array,
    *,
    block_size: int | None = None,
) -> Any:
    """What ``estimator`` consumes: ``[n, n]`` scores, or ``(mean, log_variance, y)``."""
    if estimator.gaussian:
        mean, log_variance = critic.apply(params, x, y)
        return mean, log_variance, y
    return critics.pairwise_scores(critic, params, x, y, block_size=block_size)


class CriticState(NamedTuple):
    """Critic variables, optimizer state and the estimator's carry (MINE's average)."""

    params: Any
    opt_state: Any
    estimator_carry: Any


def critic_step(
    estimator: Estimator,
    critic: nn.Module,
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
      critic: the critic module (pairwise, or Gaussian for CLUB).
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
    critic: nn.Module,
    optimizer: optax.GradientTransformation,
    key: Array,
    x: Array,
    y: Array,
) -> CriticState:
    """Fresh critic variables, optimizer state and estimator carry for batches like ``x, y``."""
    params = critic.init(key, x, y)
    return CriticState(params, optimizer.init(params), estimator.init_carry())


@dataclasses.dataclass(frozen=True)
class MIEstimate:
    """Result of :func:`estimate_mi`.

    Attributes:
      estimate: mean estimate (nats) of the trained critic over ``eval_batches`` fresh batches.
      history: ``[steps]`` estimate on each training minibatch, logged before its update.
      params: the trained critic's variables.
      bound: the estimator's name.
    """

    estimate: float
    history: np.ndarray
    params: Any
    bound: str


def _validate_samples(x: Any, y: Any, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    arrays = []
    for name, array in (("x", x), ("y", y)):
        array = np.asarray(array)
        if array.ndim != 2:
            raise ValueError(
                f"`{name}` must have shape [num_samples, features], got shape {array.shape}"
            )
        if not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"`{name}` must be numeric, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"`{name}` contains NaN or inf values")
        arrays.append(array.astype(np.float32))
    x, y = arrays
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must have the same number of rows (paired samples), "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"`batch_size` must be an int >= 2, got {batch_size!r}")
    if x.shape[0] < batch_size:
        raise ValueError(f"need at least `batch_size` = {batch_size} rows, got {x.shape[0]}")
    return x, y


def estimate_mi(
    x: Any,
    y: Any,
    *,
    bound: str = "infonce",
    critic: nn.Module | None = None,
    batch_size: int = 128,
    steps: int = 2000,
    learning_rate: float = 5e-4,
    seed: int = 0,
    eval_batches: int = 16,
    block_size: int | None = None,
) -> MIEstimate:
    """Trains a critic on ``(x, y)`` pairs and estimates ``I(X; Y)`` with ``bound``.

    Every step draws a fresh minibatch (without replacement within the batch), logs the
    estimate on it, then takes one Adam step on the estimator's training objective; the whole
    loop is one compiled ``lax.scan``. The reported estimate averages the trained critic's
    value over ``eval_batches`` further fresh batches.

    Args:
      x: ``[N, dx]`` samples of X (array-like, finite).
      y: ``[N, dy]`` samples of Y paired row by row with ``x``.
      bound: a key of :data:`ESTIMATORS`: ``"infonce"``, ``"nce_club"``, ``"nwj"``, ``"dv"``,
        ``"mine"``, ``"js"``, ``"smile"`` or ``"club"``.
      critic: a pairwise critic (default ``ConcatCritic(hidden=(512, 512))``) or, for
        ``"club"``, a ``GaussianCritic`` (default ``GaussianCritic(hidden=(512,))``).
      batch_size: pairs per minibatch (``2 <= batch_size <= N``).
      steps: training steps (``>= 1``).
      learning_rate: Adam learning rate.
      seed: seed of initialisation and minibatch sampling.
      eval_batches: fresh batches averaged for the final estimate (``>= 1``).
      block_size: row block of :func:`~factorcl_jax.critics.pairwise_scores`.

    Returns:
      An :class:`MIEstimate` with the estimate, the ``[steps]`` history and the critic.

    Example:
      >>> import numpy as np
      >>> from factorcl_jax.estimate import estimate_mi
      >>> x = np.random.default_rng(0).normal(size=(512, 2))
      >>> result = estimate_mi(x, x + 0.1, steps=5, batch_size=32)
      >>> result.history.shape
      (5,)
    """
    if bound not in ESTIMATORS:
        raise ValueError(f"`bound` must be one of {sorted(ESTIMATORS)}, got {bound!r}")
    for name, value in (("steps", steps), ("eval_batches", eval_batches)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    x, y = _validate_samples(x, y, batch_size)
    estimator = ESTIMATORS[bound]
    if critic is None:
        critic = critics.GaussianCritic() if estimator.gaussian else critics.ConcatCritic()
    x, y = jnp.asarray(x), jnp.asarray(y)
    num_samples = x.shape[0]
    optimizer = optax.adam(learning_rate)

    def draw(key: Array) -> tuple[Array, Array]:
        rows = jax.random.choice(key, num_samples, (batch_size,), replace=False)
        return x[rows], y[rows]

    def outputs(params: Any, batch: tuple[Array, Array]) -> Any:
        return critic_outputs(estimator, critic, params, *batch, block_size=block_size)

    def train_step(state: CriticState, key: Array) -> tuple[CriticState, Array]:
        return critic_step(estimator, critic, optimizer, state, *draw(key), block_size=block_size)

    @jax.jit
    def fit(key: Array) -> tuple[Any, Array, Array]:
        init_key, train_key, eval_key = jax.random.split(key, 3)
        state = init_critic_state(
            estimator, critic, optimizer, init_key, x[:batch_size], y[:batch_size]
        )
        state, history = jax.lax.scan(train_step, state, jax.random.split(train_key, steps))
        params = state.params
        evaluate = lambda key: estimator.estimate(outputs(params, draw(key)))
        final = jnp.mean(jax.lax.map(evaluate, jax.random.split(eval_key, eval_batches)))
        return params, history, final

    params, history, final = fit(jax.random.key(seed))
    return MIEstimate(float(final), np.asarray(history), params, bound)
