"""Benchmark MI estimators on tasks with known MI: the Gaussian staircase and fixed samples.

Two protocols, both compiled end to end:

* **Staircase** (Poole et al. 2019; the FactorCL paper's Experiment 1). One critic is trained
  continuously while the true MI steps through ``levels`` (default 2, 4, 6, 8, 10 nats,
  ``steps_per_level`` steps each). Every step draws a fresh batch from the level's task, logs
  the estimate on it, then takes one Adam step. The whole staircase is one ``lax.scan`` over
  levels of a ``lax.scan`` over steps; the level index is a scan input that picks the level's
  sampler with ``lax.switch``, so one program covers every level, and the program is
  ``vmap``-ped over seeds. :func:`level_metrics` reduces the ``[seeds, levels, steps]``
  history to the bias, variance and MSE of the last ``window`` steps of each level
  (Cheng et al. 2020, "CLUB").
* **Fixed sample**: ``num_samples`` pairs of a task, half to train on, half held out; training
  stops early when the held-out objective stops improving, and the held-out estimate at the
  best checkpoint is reported (:func:`run_fixed_sample`).

How an estimator trains and what it reports comes from
:data:`factorcl_jax.estimate.ESTIMATORS` and :func:`~factorcl_jax.estimate.critic_outputs`;
this module only schedules data, steps and timing. ``main`` is the command line
(``factorcl-jax bench mi``, ``python benchmarks/mi_estimation.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import pathlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from factorcl_jax import critics
from factorcl_jax.data import mi_tasks
from factorcl_jax.estimate import (
    ESTIMATORS,
    CriticState,
    critic_outputs,
    critic_step,
    init_critic_state,
)
from factorcl_jax.reporting import format_table, make_run_dir, write_json

__all__ = [
    "CRITIC_KINDS",
    "PAPER_FIGURE",
    "PRESETS",
    "FixedSampleResult",
    "StaircasePanel",
    "StaircaseResult",
    "critic_kinds_for",
    "ema",
    "level_metrics",
    "main",
    "make_critic",
    "plot_staircase",
    "run_fixed_sample",
    "run_staircase",
    "staircase_program",
]

CRITIC_KINDS = ("concat", "separable")
"""Pairwise critics compared for every estimator except CLUB (which uses its Gaussian q)."""

PAPER_FIGURE = {"infonce": "InfoNCE", "club": "CLUB", "nce_club": "NCE-CLUB"}
"""The estimators of the FactorCL paper's staircase figure, with their plot labels."""

SEPARABLE_EMBED_DIM = 32
"""Output width of the separable critic's towers (Poole et al. 2019 use 32)."""


# --------------------------------------------------------------------------- critics, steps


def critic_kinds_for(estimator: str, kinds: Sequence[str]) -> tuple[str, ...]:
    """The critic kinds ``estimator`` runs with: ``("gaussian",)`` for CLUB, else ``kinds``."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    return ("gaussian",) if ESTIMATORS[estimator].gaussian else tuple(kinds)


def make_critic(kind: str, hidden: Sequence[int]) -> nn.Module:
    """A critic with hidden widths ``hidden`` (the paper's Gaussian setting: ``(512,)``).

    ``kind`` is ``"concat"`` (``MLP([x; y])``), ``"separable"`` (``g(x) . h(y)``, towers of
    width ``hidden`` then :data:`SEPARABLE_EMBED_DIM`) or ``"gaussian"`` (CLUB's ``q(y|x)``).
    """
    hidden = tuple(hidden)
    if not hidden or any(not isinstance(w, int) or w < 1 for w in hidden):
        raise ValueError(f"`hidden` must be a non-empty sequence of positive ints, got {hidden}")
    if kind == "concat":
        return critics.ConcatCritic(hidden=hidden)
    if kind == "separable":
        return critics.SeparableCritic(hidden=hidden, embed_dim=SEPARABLE_EMBED_DIM)
    if kind == "gaussian":
        return critics.GaussianCritic(hidden=hidden)
    raise ValueError(f"`kind` must be one of {[*CRITIC_KINDS, 'gaussian']}, got {kind!r}")


def _compile(fn: Callable, *args: Any) -> tuple[Callable, float]:
    """``(jax.jit(fn).lower(*args).compile(), seconds spent lowering and compiling)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _timed(compiled: Callable, *args: Any) -> tuple[Any, float]:
    """``(compiled(*args), wall seconds)`` with the result ready on its device."""
    start = time.perf_counter()
    result = jax.block_until_ready(compiled(*args))
    return result, time.perf_counter() - start


# -------------------------------------------------------------------------------- staircase


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    return int(value)


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
    estimator: str,
    critic: nn.Module,
    *,
    steps_per_level: int = 4000,
    batch_size: int = 64,
    learning_rate: float = 5e-3,
) -> Callable[[Array], Array]:
    """The staircase as one pure function ``key -> history [levels, steps_per_level]``.

    ``history[l, t]`` is the estimate on the fresh batch of step ``t`` of level ``l``, logged
    before that step's Adam update. One critic and one optimizer state run through all levels
    (``tasks[l]`` is level ``l``). The function is a ``lax.scan`` over levels (inputs: the
    level index, which selects ``tasks[l].sample`` via ``lax.switch``, and the level's
    ``[steps_per_level]`` step keys) of a ``lax.scan`` over steps; ``jit`` it, and ``vmap``
    it over a ``[seeds]`` batch of keys to run several seeds in one program.

    Args:
      tasks: one task per level, all with the same ``x_dim`` and ``y_dim``.
      estimator: a key of :data:`~factorcl_jax.estimate.ESTIMATORS`.
      critic: a pairwise critic, or a ``GaussianCritic`` for ``"club"``.
      steps_per_level: training steps per level.
      batch_size: pairs per fresh batch.
      learning_rate: Adam learning rate.

    Returns:
      ``run(key) -> [len(tasks), steps_per_level]`` float32 estimates.

    Example:
      >>> import jax
      >>> from factorcl_jax import mi_benchmark
      >>> from factorcl_jax.data import mi_tasks
      >>> run = mi_benchmark.staircase_program(
      ...     mi_tasks.staircase(2, levels=(1, 2)), "infonce",
      ...     mi_benchmark.make_critic("concat", (8,)), steps_per_level=3, batch_size=4)
      >>> jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 5)).shape
      (5, 2, 3)
    """
    tasks = _check_tasks(tasks)
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    steps_per_level = _check_positive_int(steps_per_level, "steps_per_level")
    batch_size = _check_positive_int(batch_size, "batch_size")
    if batch_size < 2:
        raise ValueError(f"`batch_size` must be >= 2 (positives need negatives), got {batch_size}")
    rule = ESTIMATORS[estimator]
    optimizer = optax.adam(learning_rate)
    samplers = [functools.partial(task.sample, num_samples=batch_size) for task in tasks]

    def run(key: Array) -> Array:
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

        _, history = jax.lax.scan(level, state, (jnp.arange(len(tasks)), step_keys))
        return history

    return run


@dataclasses.dataclass(frozen=True)
class StaircaseResult:
    """Output of :func:`run_staircase`.

    Attributes:
      history: ``[seeds, levels, steps_per_level]`` logged estimates.
      true_mi: ``[levels]`` true MI of each level.
      optimal_value: ``[levels]`` NCE-CLUB at the optimal InfoNCE critic (``I`` + lautum
        information) where the task knows it, else NaN.
      compile_seconds: lowering + XLA compilation of the vmapped program.
      run_seconds: wall time of one compiled run over all seeds, levels and steps.
    """

    history: np.ndarray
    true_mi: np.ndarray
    optimal_value: np.ndarray
    compile_seconds: float
    run_seconds: float


def _optimal_value(task: mi_tasks.MITask) -> float:
    """NCE-CLUB at the optimal InfoNCE critic, ``I + lautum``; NaN where the task lacks it."""
    return float(getattr(task, "nce_club_optimal_value", math.nan))


def _level_values(tasks: Sequence[mi_tasks.MITask]) -> tuple[np.ndarray, np.ndarray]:
    """``([levels] true MI, [levels] NCE-CLUB optimal-critic value)``."""
    true_mi = np.array([task.true_mi for task in tasks])
    return true_mi, np.array([_optimal_value(task) for task in tasks])


def run_staircase(
    tasks: Sequence[mi_tasks.MITask],
    estimator: str,
    critic_kind: str,
    *,
    seeds: int = 1,
    seed: int = 0,
    steps_per_level: int = 4000,
    batch_size: int = 64,
    hidden: Sequence[int] = (512,),
    learning_rate: float = 5e-3,
) -> StaircaseResult:
    """Compiles and runs :func:`staircase_program` for ``seeds`` seeds in one program.

    Defaults are the paper's: 4000 steps per level, batch 64, one hidden layer of 512,
    Adam 5e-3. Seeds are ``jax.random.split(jax.random.key(seed), seeds)``.

    Args:
      tasks: one task per level (e.g. :func:`~factorcl_jax.data.mi_tasks.staircase`).
      estimator: a key of :data:`~factorcl_jax.estimate.ESTIMATORS`.
      critic_kind: ``"concat"``, ``"separable"`` or (CLUB) ``"gaussian"``.
      seeds: independent runs, vmapped.
      seed: base seed.
      steps_per_level, batch_size, learning_rate: see :func:`staircase_program`.
      hidden: hidden widths of the critic.

    Returns:
      A :class:`StaircaseResult` with the ``[seeds, levels, steps]`` history and timings.
    """
    tasks = _check_tasks(tasks)
    seeds = _check_positive_int(seeds, "seeds")
    program = staircase_program(
        tasks,
        estimator,
        make_critic(critic_kind, hidden),
        steps_per_level=steps_per_level,
        batch_size=batch_size,
        learning_rate=learning_rate,
    )
    keys = jax.random.split(jax.random.key(seed), seeds)
    compiled, compile_seconds = _compile(jax.vmap(program), keys)
    history, run_seconds = _timed(compiled, keys)
    return StaircaseResult(np.asarray(history), *_level_values(tasks), compile_seconds, run_seconds)


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
      >>> from factorcl_jax.mi_benchmark import level_metrics
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
    window = _check_positive_int(window, "window")
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


def ema(values: np.ndarray | Array, span: int = 200) -> np.ndarray:
    r"""Exponential moving average along the last axis, ``alpha = 2 / (span + 1)``.

    .. math::
        s_0 = v_0, \qquad s_t = \alpha\, v_t + (1 - \alpha)\, s_{t-1}

    (``pandas.Series.ewm(span=span, adjust=False).mean()``). Shapes: ``[..., T] -> [..., T]``.

    Example:
      >>> from factorcl_jax.mi_benchmark import ema
      >>> ema([0.0, 3.0, 3.0], span=2).tolist()  # alpha = 2/3
      [0.0, 2.0, 2.666...]
    """
    values = np.asarray(values, np.float64)
    span = _check_positive_int(span, "span")
    if values.ndim < 1 or values.shape[-1] < 1:
        raise ValueError(f"`values` must have shape [..., T] with T >= 1, got {values.shape}")
    alpha = 2.0 / (span + 1.0)
    smoothed = np.empty_like(values)
    smoothed[..., 0] = values[..., 0]
    for t in range(1, values.shape[-1]):
        smoothed[..., t] = alpha * values[..., t] + (1.0 - alpha) * smoothed[..., t - 1]
    return smoothed


# ----------------------------------------------------------------------------- fixed sample


@dataclasses.dataclass(frozen=True)
class FixedSampleResult:
    """Output of :func:`run_fixed_sample`.

    Attributes:
      estimate: mean held-out estimate at the best checkpoint (nats).
      batch_estimates: ``[held-out batches]`` estimates at that checkpoint.
      true_mi: the task's MI.
      best_step: training steps taken at the best checkpoint.
      steps_run: training steps taken before early stopping (or ``max_steps``).
      compile_seconds: compilation of the training chunk and the held-out evaluation.
      run_seconds: wall time of training and evaluation.
    """

    estimate: float
    batch_estimates: np.ndarray
    true_mi: float
    best_step: int
    steps_run: int
    compile_seconds: float
    run_seconds: float


def run_fixed_sample(
    task: mi_tasks.MITask,
    estimator: str,
    critic_kind: str,
    *,
    num_samples: int = 5000,
    batch_size: int = 64,
    hidden: Sequence[int] = (512,),
    learning_rate: float = 5e-3,
    max_steps: int = 5000,
    eval_every: int = 100,
    patience: int = 5,
    seed: int = 0,
) -> FixedSampleResult:
    """Estimates ``task``'s MI from ``num_samples`` pairs: train on half, estimate on half.

    Training draws minibatches of the first half (without replacement within a batch) for
    compiled chunks of ``eval_every`` steps. After each chunk the critic is scored on the
    held-out half, cut into ``floor(num_samples / 2 / batch_size)`` disjoint batches of
    ``batch_size``. Early stopping watches the held-out *training objective* — the estimate
    itself for the lower bounds, InfoNCE for NCE-CLUB and the log-likelihood for CLUB (whose
    upper-bound estimates are not what their critics maximise) — and stops after
    ``patience`` chunks without improvement; the held-out estimate at the best chunk is
    reported.

    Args:
      task: an MI task (:mod:`factorcl_jax.data.mi_tasks`).
      estimator: a key of :data:`~factorcl_jax.estimate.ESTIMATORS`.
      critic_kind: ``"concat"``, ``"separable"`` or (CLUB) ``"gaussian"``.
      num_samples: pairs drawn from the task (``>= 4 * batch_size``).
      batch_size: pairs per training and held-out batch.
      hidden: hidden widths of the critic.
      learning_rate: Adam learning rate.
      max_steps: training-step budget.
      eval_every: steps per compiled chunk between held-out evaluations.
      patience: chunks without held-out improvement before stopping.
      seed: seed of the sample, the initialisation and the minibatches.

    Returns:
      A :class:`FixedSampleResult`.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {sorted(ESTIMATORS)}, got {estimator!r}")
    for name, value in (
        ("num_samples", num_samples),
        ("batch_size", batch_size),
        ("max_steps", max_steps),
        ("eval_every", eval_every),
        ("patience", patience),
    ):
        _check_positive_int(value, name)
    if batch_size < 2 or num_samples < 4 * batch_size:
        raise ValueError(
            f"`num_samples` must be >= 4 * batch_size = {4 * batch_size} and `batch_size` "
            f">= 2, got num_samples={num_samples}, batch_size={batch_size}"
        )
    if eval_every > max_steps:
        raise ValueError(f"`eval_every` must be <= `max_steps` = {max_steps}, got {eval_every}")
    rule, critic = ESTIMATORS[estimator], make_critic(critic_kind, hidden)
    optimizer = optax.adam(learning_rate)
    data_key, init_key, train_key = jax.random.split(jax.random.key(seed), 3)
    (x_train, y_train), held_out = _split_halves(*task.sample(data_key, num_samples), batch_size)

    def train_chunk(state: CriticState, key: Array, x: Array, y: Array) -> CriticState:
        def step(state: CriticState, key: Array) -> tuple[CriticState, None]:
            rows = jax.random.choice(key, x.shape[0], (batch_size,), replace=False)
            return critic_step(rule, critic, optimizer, state, x[rows], y[rows])[0], None

        return jax.lax.scan(step, state, jax.random.split(key, eval_every))[0]

    def evaluate(state: CriticState, x: Array, y: Array) -> tuple[Array, Array]:
        """``(mean objective, [batches] estimates)`` over held-out batches ``[b, n, d]``."""

        def score(batch: tuple[Array, Array]) -> tuple[Array, Array]:
            outputs = critic_outputs(rule, critic, state.params, *batch)
            objective, _ = rule.training_objective(outputs, state.estimator_carry)
            return objective, rule.estimate(outputs)

        objectives, estimates = jax.lax.map(score, (x, y))
        return jnp.mean(objectives), estimates

    state = init_critic_state(
        rule, critic, optimizer, init_key, x_train[:batch_size], y_train[:batch_size]
    )
    compiled_chunk, chunk_seconds = _compile(train_chunk, state, train_key, x_train, y_train)
    compiled_evaluate, evaluate_seconds = _compile(evaluate, state, *held_out)
    best_objective, best_estimates, best_step, stale, steps_run = -math.inf, None, 0, 0, 0
    start = time.perf_counter()
    for chunk in range(max_steps // eval_every):
        state = compiled_chunk(state, jax.random.fold_in(train_key, chunk), x_train, y_train)
        steps_run += eval_every
        objective, estimates = jax.device_get(compiled_evaluate(state, *held_out))
        if best_estimates is None or objective > best_objective:
            best_objective, best_estimates, best_step, stale = objective, estimates, steps_run, 0
        else:
            stale += 1
            if stale >= patience:
                break
    return FixedSampleResult(
        estimate=float(np.mean(best_estimates)),
        batch_estimates=np.asarray(best_estimates, np.float64),
        true_mi=float(task.true_mi),
        best_step=best_step,
        steps_run=steps_run,
        compile_seconds=chunk_seconds + evaluate_seconds,
        run_seconds=time.perf_counter() - start,
    )


def _split_halves(
    x: Array, y: Array, batch_size: int
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Splits ``N`` pairs into a training half and held-out batches.

    Returns ``((x [N//2, dx], y [N//2, dy]), (x [b, batch_size, dx], y [b, batch_size, dy]))``
    with ``b = (N - N//2) // batch_size`` disjoint held-out batches (the remainder is dropped).
    """
    half = x.shape[0] // 2
    num_batches = (x.shape[0] - half) // batch_size
    end = half + num_batches * batch_size
    return (x[:half], y[:half]), (
        x[half:end].reshape(num_batches, batch_size, x.shape[1]),
        y[half:end].reshape(num_batches, batch_size, y.shape[1]),
    )


# ------------------------------------------------------------------------------------ plots


class StaircasePanel(NamedTuple):
    """One subplot of :func:`plot_staircase`.

    Attributes:
      title: e.g. ``"d = 20"``.
      true_mi: ``[levels]`` true MI per level.
      optimal_value: ``[levels]`` NCE-CLUB's optimal-critic value (NaN where unknown).
      curves: label -> ``[seeds, levels, steps]`` history.
    """

    title: str
    true_mi: np.ndarray
    optimal_value: np.ndarray
    curves: Mapping[str, np.ndarray]


def _figure_class() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "plots need matplotlib: pip install 'factorcl-jax[plot]' (or pass --no-plots)"
        ) from None
    return Figure


def plot_staircase(
    panels: Sequence[StaircasePanel],
    path: str | pathlib.Path,
    *,
    batch_size: int = 64,
    span: int = 200,
    title: str = "",
) -> pathlib.Path:
    """The paper's staircase figure: one subplot per panel, written as a PNG to ``path``.

    Each curve is the seed-mean of the estimates, EMA-smoothed (:func:`ema`, ``span``);
    the true MI is a solid step line, ``log(batch_size)`` (InfoNCE's ceiling) a dashed
    line and NCE-CLUB's optimal-critic value ``I + lautum`` a dotted step line.

    Raises:
      ImportError: with an install hint, when matplotlib is missing.
    """
    if not panels:
        raise ValueError("`panels` must hold at least one StaircasePanel")
    # A bare Figure (no pyplot): no global backend or figure state is touched.
    figure = _figure_class()(figsize=(max(6.0, 4.2 * len(panels)), 4.4))
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, panel in zip(axes[0], panels, strict=True):
        if not panel.curves:
            raise ValueError(f"panel {panel.title!r} has no curves")
        for label, history in panel.curves.items():
            axis.plot(ema(np.asarray(history).mean(axis=0).reshape(-1), span), label=label)
        steps = np.asarray(history).shape[-1]
        axis.plot(np.repeat(panel.true_mi, steps), color="black", label="true MI")
        if np.all(np.isfinite(panel.optimal_value)):
            axis.plot(
                np.repeat(panel.optimal_value, steps),
                color="black",
                linestyle=":",
                label="NCE-CLUB at optimal critic (I + lautum)",
            )
        axis.axhline(math.log(batch_size), color="gray", linestyle="--", label="log(batch)")
        axis.set(title=panel.title, xlabel="step", ylabel="MI (nats)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=3, fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    figure.tight_layout(rect=(0.0, 0.12, 1.0, 1.0))
    path = pathlib.Path(path)
    figure.savefig(path, dpi=120)
    return path


# -------------------------------------------------------------------------------------- CLI

_ALL_FIXED_TASKS = [
    "gaussian-d5-mi2",
    "cubic-d5-mi2",
    "mvn_sparse-dx5-dy5-pairs2-mi2",
    "mvn_dense-dx5-dy5-within0.5-mi2",
    "student_t-df3-gaussian-d5-mi2",
    "gaussian-d5-mi2+x=asinh+y=spiral0.5",
]
PRESETS: dict[str, dict[str, Any]] = {
    # A smoke run: about a minute on 2 CPU cores.
    "quick": {
        "dims": [20],
        "variants": ["gaussian"],
        "levels": [2.0, 4.0],
        "steps": 300,
        "hidden": [128],
        "estimators": ["infonce", "nce_club", "club"],
        "critics": ["concat"],
        "fixed_tasks": ["gaussian-d5-mi1"],
        "fixed_estimators": ["infonce", "nce_club"],
        "fixed_samples": 2000,
        "fixed_max_steps": 600,
    },
    # Every estimator and critic on the d = 20 staircase (1000 steps per level) and three
    # fixed-sample tasks: about half an hour on 2 CPU cores.
    "default": {
        "dims": [20],
        "variants": ["gaussian"],
        "levels": [2.0, 4.0, 6.0, 8.0, 10.0],
        "steps": 1000,
        "hidden": [512],
        "estimators": list(ESTIMATORS),
        "critics": list(CRITIC_KINDS),
        "fixed_tasks": [
            "gaussian-d5-mi2",
            "student_t-df3-gaussian-d5-mi2",
            "gaussian-d5-mi2+x=asinh+y=spiral0.5",
        ],
        "fixed_estimators": list(ESTIMATORS),
        "fixed_samples": 5000,
        "fixed_max_steps": 2000,
    },
    # The paper's protocol for every dimension, both variants: hours on CPU.
    "paper": {
        "dims": [20, 50, 100, 200],
        "variants": ["gaussian", "cubic"],
        "levels": [2.0, 4.0, 6.0, 8.0, 10.0],
        "steps": 4000,
        "hidden": [512],
        "estimators": list(ESTIMATORS),
        "critics": list(CRITIC_KINDS),
        "fixed_tasks": _ALL_FIXED_TASKS,
        "fixed_estimators": list(ESTIMATORS),
        "fixed_samples": 5000,
        "fixed_max_steps": 5000,
    },
}
"""Named configurations; any explicit flag overrides the chosen preset's value."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factorcl-jax bench mi",
        description="Benchmark MI estimators under jit: the Gaussian staircase (paper, "
        "Experiment 1) and fixed-sample estimation on tasks with known MI. Options left "
        "unset come from the preset (--quick, default, or --paper).",
    )
    add = parser.add_argument
    add("--out", default=None, help="output directory (default: a fresh runs/bench-mi-...)")
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="smoke preset, ~1 min on 2 cores")
    preset.add_argument("--paper", action="store_true", help="the paper's full grid (hours)")
    add("--dims", type=int, nargs="+", help="staircase dimensions (paper: 20 50 100 200)")
    add("--variants", nargs="+", choices=["gaussian", "cubic"], help="staircase families")
    add("--levels", type=float, nargs="+", help="MI levels in nats (2 4 6 8 10)")
    add("--steps", type=int, help="steps per level (paper: 4000)")
    add("--batch-size", type=int, default=64, help="pairs per batch (default 64)")
    add("--hidden", type=int, nargs="+", help="critic hidden widths (paper: 512)")
    add("--learning-rate", type=float, default=5e-3, help="Adam learning rate (default 5e-3)")
    names = ", ".join(ESTIMATORS)
    add("--estimators", nargs="+", choices=list(ESTIMATORS), metavar="NAME", help=names)
    add("--critics", nargs="+", choices=CRITIC_KINDS, help="pairwise critics (CLUB: gaussian)")
    add("--seeds", type=int, default=1, help="seeds, vmapped in one program (default 1)")
    add("--seed", type=int, default=0, help="base seed (default 0)")
    add("--window", type=int, default=500, help="trailing steps per level for the metrics")
    add("--span", type=int, default=200, help="EMA span of the plotted curves")
    add("--fixed-tasks", nargs="*", help="fixed-sample task names (none: skip that mode)")
    add("--fixed-estimators", nargs="+", choices=list(ESTIMATORS), metavar="NAME", help=names)
    add("--fixed-samples", type=int, help="pairs per fixed-sample task (default 5000)")
    add("--fixed-max-steps", type=int, help="fixed-sample step budget")
    add("--eval-every", type=int, default=100, help="fixed-sample steps between evaluations")
    add("--patience", type=int, default=5, help="fixed-sample evaluations without progress")
    add("--no-plots", action="store_true", help="skip the PNGs (no matplotlib needed)")
    return parser


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fills the options left unset from the chosen preset."""
    args.preset = "quick" if args.quick else "paper" if args.paper else "default"
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


STAIRCASE_COLUMNS = [
    "task",
    "estimator",
    "critic",
    "true_mi",
    "estimate",
    "bias",
    "variance",
    "mse",
    "optimal_value",
]
FIXED_COLUMNS = [*STAIRCASE_COLUMNS[:6], "best_step", "steps_run"]
TIMING_COLUMNS = ["mode", "program", "estimator", "critic", "compile_seconds", "run_seconds"]


def _staircase_rows(
    staircase: str,
    tasks: Sequence[mi_tasks.MITask],
    estimator: str,
    kind: str,
    result: StaircaseResult,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """One results.json row per level of one staircase run."""
    window = min(args.window, args.steps)
    metrics = level_metrics(result.history, result.true_mi, window)
    return [
        {
            "mode": "staircase",
            "staircase": staircase,
            "task": task.name,
            "level": level,
            "estimator": estimator,
            "critic": kind,
            "true_mi": float(result.true_mi[level]),
            **{name: float(values[level]) for name, values in metrics.items()},
            "optimal_value": float(result.optimal_value[level]),
            "log_batch": math.log(args.batch_size),
            "seed_count": args.seeds,
            "steps_per_level": args.steps,
            "window": window,
            "compile_seconds": result.compile_seconds,
            "run_seconds": result.run_seconds,
        }
        for level, task in enumerate(tasks)
    ]


@dataclasses.dataclass
class _Results:
    """What a run has produced so far; :meth:`save` rewrites ``out`` after every program, so
    an interrupted paper-size run keeps everything finished before the interruption."""

    out: pathlib.Path
    config: dict[str, Any]
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    histories: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    pngs: list[str] = dataclasses.field(default_factory=list)

    def add(self, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
        """Records one program's rows, prints them with its timings, and saves."""
        self.rows += rows
        print(format_table(rows, columns))
        print(
            f"compiled in {rows[0]['compile_seconds']:.1f} s, "
            f"ran in {rows[0]['run_seconds']:.1f} s\n",
            flush=True,
        )
        self.save()

    def payload(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "config": self.config,
            "pngs": self.pngs,
            "histories": "histories.npz",
            "backend": jax.default_backend(),
            "devices": [str(device) for device in jax.devices()],
            "jax": jax.__version__,
        }

    def save(self) -> None:
        np.savez_compressed(self.out / "histories.npz", **self.histories)
        write_json(self.out / "results.json", self.payload())


def _run_staircases(args: argparse.Namespace, results: _Results) -> None:
    """Every (variant, dim, estimator, critic) staircase, then one figure per variant."""
    for variant in args.variants:
        panels = []
        for dim in args.dims:
            tasks = mi_tasks.staircase(dim, args.levels, family=variant)
            curves = {}
            for estimator in args.estimators:
                for kind in critic_kinds_for(estimator, args.critics):
                    result = run_staircase(
                        tasks,
                        estimator,
                        kind,
                        seeds=args.seeds,
                        seed=args.seed,
                        steps_per_level=args.steps,
                        batch_size=args.batch_size,
                        hidden=args.hidden,
                        learning_rate=args.learning_rate,
                    )
                    results.histories[f"{variant}-d{dim}.{estimator}.{kind}"] = result.history
                    if estimator in PAPER_FIGURE and kind != "separable":
                        curves[PAPER_FIGURE[estimator]] = result.history
                    rows = _staircase_rows(
                        f"{variant}-d{dim}", tasks, estimator, kind, result, args
                    )
                    results.add(rows, STAIRCASE_COLUMNS)
            if curves:
                panels.append(StaircasePanel(f"d = {dim}", *_level_values(tasks), curves))
        if panels and not args.no_plots:
            path = plot_staircase(
                panels,
                results.out / f"staircase-{variant}.png",
                batch_size=args.batch_size,
                span=args.span,
                title=f"{variant} staircase: batch {args.batch_size}, critic hidden "
                f"{list(args.hidden)}, EMA span {args.span}",
            )
            results.pngs.append(path.name)
            results.save()


def _run_fixed_samples(args: argparse.Namespace, results: _Results) -> None:
    """Every (task, estimator, critic) fixed-sample estimate, one row each.

    ``variance`` and ``mse`` are over the held-out batches at the best checkpoint.
    """
    for name in args.fixed_tasks:
        task = mi_tasks.make_task(name)
        for estimator in args.fixed_estimators:
            for kind in critic_kinds_for(estimator, args.critics):
                result = run_fixed_sample(
                    task,
                    estimator,
                    kind,
                    num_samples=args.fixed_samples,
                    batch_size=args.batch_size,
                    hidden=args.hidden,
                    learning_rate=args.learning_rate,
                    max_steps=args.fixed_max_steps,
                    eval_every=args.eval_every,
                    patience=args.patience,
                    seed=args.seed,
                )
                errors = result.batch_estimates - result.true_mi
                row = {
                    "mode": "fixed_sample",
                    "task": task.name,
                    "estimator": estimator,
                    "critic": kind,
                    "true_mi": result.true_mi,
                    "estimate": result.estimate,
                    "bias": result.estimate - result.true_mi,
                    "variance": float(np.var(result.batch_estimates)),
                    "mse": float(np.mean(np.square(errors))),
                    "optimal_value": _optimal_value(task),
                    "num_samples": args.fixed_samples,
                    "best_step": result.best_step,
                    "steps_run": result.steps_run,
                    "compile_seconds": result.compile_seconds,
                    "run_seconds": result.run_seconds,
                }
                results.add([row], FIXED_COLUMNS)


def _pivot(rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One line per task with every ``estimator/critic`` estimate side by side."""
    table: dict[str, dict[str, Any]] = {}
    estimators: dict[str, None] = {}
    for row in rows:
        column = f"{row['estimator']}/{row['critic']}"
        estimators[column] = None
        line = table.setdefault(
            row["task"],
            {"task": row["task"], "true_mi": row["true_mi"], "optimal_value": row["optimal_value"]},
        )
        line[column] = row["estimate"]
    return list(table.values()), ["task", "true_mi", "optimal_value", *estimators]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: runs the benchmark, prints tables, writes results.json, PNGs, histories.

    ``results.json`` holds ``rows`` (keys ``task, estimator, critic, true_mi, estimate, bias,
    variance, mse, compile_seconds, run_seconds`` plus ``mode``, ``level``, ``seed_count``,
    ``optimal_value``, ...), the resolved ``config``, the PNG names and the JAX setup;
    ``histories.npz`` holds each staircase's ``[seeds, levels, steps]`` history under
    ``"{variant}-d{dim}.{estimator}.{critic}"``. Both are rewritten after every compiled
    program. Returns the JSON payload.
    """
    args = _resolve(_parser().parse_args(argv))
    out = make_run_dir(args.out, "bench-mi")
    print(f"backend {jax.default_backend()}, devices {jax.devices()}; writing to {out}\n")
    results = _Results(out, {k: v for k, v in vars(args).items() if k != "out"})
    _run_staircases(args, results)
    _run_fixed_samples(args, results)
    for mode in ("staircase", "fixed_sample"):
        rows = [row for row in results.rows if row["mode"] == mode]
        if rows:
            print(f"{mode}: estimates (nats)\n{format_table(*_pivot(rows))}\n")
    programs = [
        {**row, "program": row.get("staircase", row["task"])}
        for row in results.rows
        if row.get("level", 0) == 0
    ]
    print(f"wall time per compiled program\n{format_table(programs, TIMING_COLUMNS)}")
    print(f"\nwrote {out / 'results.json'}" + "".join(f", {out / png}" for png in results.pngs))
    return results.payload()
