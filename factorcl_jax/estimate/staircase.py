"""Reusable programs for benchmarking MI estimators: the Gaussian staircase and its metrics.

**Staircase** (Poole et al. 2019; the FactorCL paper's Experiment 1). One critic is trained
continuously while the true MI steps through ``levels`` (default 2, 4, 6, 8, 10 nats,
``steps_per_level`` steps each). Every step draws a fresh batch from the level's task, logs
the estimate on it, then takes one Adam step. :func:`staircase_program` is the whole
staircase as one pure function of a PRNG key (``jit`` it;
:func:`~factorcl_jax.estimate.seeds.over_seeds` runs it for a
batch of seeds), and several estimators can share it; :func:`level_metrics` reduces its
history to the bias, variance and MSE of each level (Cheng et al. 2020, "CLUB").

Estimation from a fixed sample is :func:`factorcl_jax.estimate.estimate_mi` (train on one
part, early-stop and estimate on the other); the tasks with known MI are in
:mod:`factorcl_jax.data.mi_tasks`. The command line, tables and figures live in the
repository's ``benchmarks/mi_estimation.py`` (``factorcl-jax bench mi``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate.estimators import (
    CriticState,
    critic_step,
    get_estimator,
    init_critic_state,
)
from factorcl_jax.validation import check_finite_float, check_int, check_positive_int

__all__ = ["level_metrics", "optimal_values", "staircase_program"]


def _check_tasks(tasks: Sequence[mi_tasks.MITask]) -> tuple[mi_tasks.MITask, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("`tasks` must hold at least one task (one per staircase level)")
    shapes = {(task.x_dim, task.y_dim) for task in tasks}
    if len(shapes) != 1:
        raise ValueError(
            f"`tasks` must share x_dim and y_dim (one critic runs through all levels), "
            f"got {sorted(shapes)}"
        )
    return tasks


def staircase_program(
    tasks: Sequence[mi_tasks.MITask],
    estimator: str | Sequence[str],
    critic: nn.Module,
    *,
    steps_per_level: int = 4000,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
) -> Callable[[Array], Array]:
    """The staircase as one pure function ``key -> history``.

    ``history[l, t]`` is the estimate on the fresh batch of step ``t`` of level ``l``, logged
    before that step's Adam update. One critic and one optimizer state run through all levels
    (``tasks[l]`` is level ``l``). The function is a ``lax.scan`` over levels (inputs: the
    level index, which selects ``tasks[l].sample`` via ``lax.switch``, and the level's
    ``[steps_per_level]`` step keys) of a ``lax.scan`` over steps; ``jit`` it, and ``vmap``
    it over a ``[seeds]`` batch of keys to run several seeds in one program.

    With a sequence of estimators the program returns ``[estimators, levels, steps]``: each
    distinct training rule trains one critic (from the same initialisation), the critics run
    side by side under ``vmap``, and every estimator reads its estimate off the critic of its
    rule, so ``("infonce", "nce_club")``, which share InfoNCE training, cost one critic. All
    of them must be pairwise and stateless (not ``"club"`` or ``"mine"``).

    Args:
      tasks: one task per level, all with the same ``x_dim`` and ``y_dim``.
      estimator: a key of :data:`~factorcl_jax.estimate.ESTIMATORS`, or several.
      critic: a pairwise critic, or a ``GaussianCritic`` for ``"club"``.
      steps_per_level: training steps per level.
      batch_size: pairs per fresh batch.
      learning_rate: Adam learning rate.

    Returns:
      ``run(key) -> [len(tasks), steps_per_level]`` float32 estimates, or
      ``[len(estimator), len(tasks), steps_per_level]`` for a sequence.

    Example:
      >>> import jax
      >>> from factorcl_jax import estimate
      >>> from factorcl_jax.estimate import staircase
      >>> from factorcl_jax.data import mi_tasks
      >>> run = staircase.staircase_program(
      ...     mi_tasks.staircase(2, levels=(1, 2)), ("infonce", "nce_club"),
      ...     estimate.make_critic("concat", (8,)), steps_per_level=3, batch_size=4)
      >>> jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 5)).shape  # doctest: +SLOW
      (5, 2, 2, 3)
    """
    tasks = _check_tasks(tasks)
    several = not isinstance(estimator, str)
    names = tuple(estimator) if several else (estimator,)
    if not names:
        raise ValueError("`estimator` must name at least one estimator")
    rules = [get_estimator(name) for name in names]
    if len(rules) > 1 and any(rule.gaussian or rule.init_carry() is not None for rule in rules):
        raise ValueError(
            f"several estimators share a program only when all are pairwise and stateless "
            f"(not club or mine), got {names}"
        )
    steps_per_level = check_positive_int(steps_per_level, "steps_per_level")
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    # A learning rate of 0 freezes the critic (tests read the schedule off it that way).
    optimizer = optax.adam(check_finite_float(learning_rate, "learning_rate", at_least=0.0))
    samplers = [functools.partial(task.sample, num_samples=batch_size) for task in tasks]
    objectives = list(dict.fromkeys(rule.training_objective for rule in rules))
    lane_of = np.array([objectives.index(rule.training_objective) for rule in rules])

    def run_lane(key: Array, lane: Array) -> Array:
        """``[levels, steps, estimators]``: the critic trained by ``objectives[lane]``."""
        rule = rules[0]._replace(
            training_objective=lambda outputs, carry: jax.lax.switch(
                lane, objectives, outputs, carry
            ),
            estimate=lambda outputs: jnp.stack([r.estimate(outputs) for r in rules]),
        )
        init_key, train_key = jax.random.split(key)
        state = init_critic_state(rule, critic, optimizer, init_key, *samplers[0](init_key))
        step_keys = jax.random.split(train_key, (len(tasks), steps_per_level))

        def level(state: CriticState, inputs: tuple[Array, Array]) -> tuple[CriticState, Array]:
            index, keys = inputs

            def step(state: CriticState, key: Array) -> tuple[CriticState, Array]:
                # Any task family works as a level this way, and the index is the same for
                # every seed, so under vmap the switch stays a branch (not a select of all).
                x, y = jax.lax.switch(index, samplers, key)
                return critic_step(rule, critic, optimizer, state, x, y)

            return jax.lax.scan(step, state, keys)

        return jax.lax.scan(level, state, (jnp.arange(len(tasks)), step_keys))[1]

    def run(key: Array) -> Array:
        if len(objectives) == 1:
            lanes = run_lane(key, jnp.array(0))[None]
        else:
            lanes = jax.vmap(run_lane, in_axes=(None, 0))(key, jnp.arange(len(objectives)))
        # lanes: [rules, levels, steps, estimators] -> each estimator off its own rule's critic.
        history = lanes[lane_of, :, :, np.arange(len(rules))]
        return history if several else history[0]

    return run


def level_metrics(
    history: np.ndarray | Array, true_mi: Sequence[float], window: int = 500
) -> dict[str, np.ndarray]:
    r"""Estimate, bias, variance and MSE over the last ``window`` steps of each level.

    With ``e`` the ``S * window`` logged estimates of level ``l`` pooled over every leading
    (seed) axis and ``I_l`` its true MI (Cheng et al. 2020)::

        estimate = mean(e),  bias = mean(e) - I_l,  variance = mean((e - mean(e))^2),
        mse = mean((e - I_l)^2) = bias^2 + variance

    Args:
      history: ``[..., levels, steps]`` estimates (e.g. ``[seeds, levels, steps]``).
      true_mi: ``[levels]`` true MI per level.
      window: trailing steps of each level used (``1 <= window <= steps``).

    Returns:
      ``{"estimate", "bias", "variance", "mse"}``, each ``[levels]`` float64.

    Example:
      >>> import numpy as np
      >>> from factorcl_jax.estimate.staircase import level_metrics
      >>> m = level_metrics(np.array([[0.0, 1.0, 3.0], [5.0, 4.0, 4.0]]), [2.0, 4.0], window=2)
      >>> m["bias"].tolist(), m["variance"].tolist(), m["mse"].tolist()
      ([0.0, 0.0], [1.0, 0.0], [1.0, 0.0])
    """
    history = np.asarray(history, np.float64)
    true_mi = np.asarray(true_mi, np.float64)
    if history.ndim < 2:
        raise ValueError(f"`history` must have shape [..., levels, steps], got {history.shape}")
    levels, steps = history.shape[-2:]
    if true_mi.shape != (levels,):
        raise ValueError(
            f"`true_mi` must have shape [levels] = [{levels}] for `history` of shape "
            f"{history.shape}, got {true_mi.shape}"
        )
    window = check_positive_int(window, "window")
    if window > steps:
        raise ValueError(f"`window` must be <= steps per level = {steps}, got {window}")
    tail = np.moveaxis(history[..., -window:], -2, 0).reshape(levels, -1)
    estimate = tail.mean(axis=1)
    return {
        "estimate": estimate,
        "bias": estimate - true_mi,
        "variance": tail.var(axis=1),
        "mse": np.mean(np.square(tail - true_mi[:, None]), axis=1),
    }


def optimal_values(tasks: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """``([levels] true MI, [levels] NCE-CLUB at the optimal InfoNCE critic)``; the latter,
    ``I + lautum``, is NaN where a task does not know it."""
    true_mi = np.array([task.true_mi for task in tasks], np.float64)
    optimal = [float(getattr(task, "nce_club_optimal_value", np.nan)) for task in tasks]
    return true_mi, np.array(optimal)
