"""Fit a critic to paired samples and report a held-out mutual-information estimate.

:func:`estimate_mi` is the one estimation protocol of the library (the command line and the
benchmarks use it too): split the pairs, train on one part, early-stop on the held-out
training objective, and report the held-out estimate with its standard error, beside the
in-sample value so that a critic that memorised its training pairs is visible. Critic size,
batch and step budget follow :func:`~factorcl_jax.estimate.settings.default_settings` unless
given; how each estimator trains is :mod:`factorcl_jax.estimate.estimators`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array

from factorcl_jax import bounds
from factorcl_jax.estimate.estimators import (
    CRITIC_KINDS,
    ESTIMATORS,
    CriticState,
    Estimator,
    critic_outputs,
    critic_step,
    get_estimator,
    init_critic_state,
    make_critic,
    pointwise_mi,
)
from factorcl_jax.estimate.samples import (
    as_float32,
    normal_scores,
    pair_groups,
    split_rows,
    standardized,
    validate_samples,
)
from factorcl_jax.estimate.seeds import over_seeds
from factorcl_jax.estimate.settings import Settings, resolve_settings
from factorcl_jax.networks.adapters import as_critic, as_gaussian
from factorcl_jax.validation import (
    check_finite_float,
    check_int,
    check_positive_int,
    check_seed,
)

__all__ = [
    "DivergedEstimateError",
    "ImplausibleEstimateError",
    "MIEstimate",
    "NonFiniteEstimateError",
    "estimate_mi",
    "estimate_mi_seeds",
]


class DivergedEstimateError(FloatingPointError):
    """Raised by :func:`estimate_mi` when training diverged, instead of reporting a number
    (see its two kinds below); the message names the bound and the learning rate."""


class NonFiniteEstimateError(DivergedEstimateError):
    """No evaluation had a finite held-out objective, or the kept critic's batch estimates
    are NaN/inf."""


class ImplausibleEstimateError(DivergedEstimateError):
    """The kept critic's estimate is finite but a value the bound cannot take on a converged
    critic (outside :meth:`~factorcl_jax.bounds.Bound.plausible_range`: InfoNCE beyond
    ``±log(batch)``, any bound below ``-log(batch)`` or above
    :data:`~factorcl_jax.bounds.DIVERGED_NATS`)."""


@dataclasses.dataclass(frozen=True)
class MIEstimate:
    """Result of :func:`estimate_mi`.

    Attributes:
      estimate: held-out estimate (nats): the mean over disjoint held-out batches of the
        critic at its best checkpoint (averaged over folds with ``folds``).
      stderr: its standard error, ``std(batch estimates) / sqrt(number of batches)``.
      in_sample: the same critic's estimate on disjoint batches of its *training* pairs (as
        many as held-out batches, fewer when the training part is smaller); a value well
        above ``estimate`` means the critic memorised pairs.
      bound: the estimator's name.
      best_step: training steps at the best checkpoint (mean over folds).
      steps_run: training steps before early stopping (mean over folds).
      num_train: training pairs (per fold).
      num_heldout: held-out pairs scored (all folds together).
      folds: ``None`` for one train/held-out split, else the number of folds.
      settings: the resolved :class:`Settings`.
      heldout_batches: ``[batches]`` held-out batch estimates (all folds).
      curve: per evaluation of the first split: ``step``, ``heldout_objective``,
        ``heldout_estimate``, ``in_sample_estimate`` (each ``[evaluations]``).
      history: ``[steps_run]`` estimate on each training minibatch of the first split,
        logged before its update.
      params: the first split's critic at its best checkpoint.
      seconds: wall time of the call, compilation included.
      critic: what was trained, e.g. ``"concat [80]"`` (a library critic and its hidden
        widths) or the class name of a critic given as an object.
      duplicates: rows that repeat an earlier ``(x, y)`` pair; every copy of a pair is kept
        on the same side of the split (and in the same fold), so a memorised pair is never
        scored as held out.
      pointwise: with ``pointwise=True``, the kept critic's estimate of the pointwise MI
        ``log p(x, y) / (p(x) p(y))`` of every held-out pair of the first split, scored in its
        held-out batch (:func:`~factorcl_jax.estimate.estimators.pointwise_mi`); else
        ``None``. Their mean is the estimate of that split.
      pointwise_rows: the rows of ``x`` and ``y`` those pairs are, or ``None``.
    """

    estimate: float
    stderr: float
    in_sample: float
    bound: str
    best_step: int
    steps_run: int
    num_train: int
    num_heldout: int
    folds: int | None
    settings: Settings
    heldout_batches: np.ndarray
    curve: dict[str, np.ndarray]
    history: np.ndarray
    params: Any
    seconds: float
    critic: str
    duplicates: int
    pointwise: np.ndarray | None = None
    pointwise_rows: np.ndarray | None = None

    def summary(self) -> str:
        """One line, e.g. ``I(X; Y) ≈ 0.41 ± 0.02 nats (held-out, 2500 pairs; infonce,
        stopped at step 1400)``."""
        split = f"{self.folds}-fold, " if self.folds else ""
        copies = (
            f"; {self.duplicates} duplicate pair(s), each kept with its copies"
            if self.duplicates
            else ""
        )
        return (
            f"I(X; Y) ≈ {self.estimate:.3g} ± {self.stderr:.2g} nats (held-out, {split}"
            f"{self.num_heldout} pairs; {self.bound}, stopped at step {self.best_step}{copies})"
        )


class _Fit(NamedTuple):
    """What the compiled training program returns for one split."""

    params: Any
    best_objective: Array  # held-out training objective at the best evaluation (-inf: none)
    heldout_batches: Array  # [batches] held-out estimates at the best evaluation
    in_sample_batches: Array  # [in-sample batches] training-pair estimates, same evaluation
    best_evaluation: Array  # index of the best evaluation
    evaluations: Array  # evaluations run
    curve: Array  # [max evaluations, 3]: held-out objective, held-out and in-sample estimate
    history: Array  # [max_steps] minibatch estimates


def _batches(x: Array, count: int, batch_size: int) -> Array:
    """The first ``count * batch_size`` rows of ``x`` as ``[count, batch_size, d]``."""
    return x[: count * batch_size].reshape(count, batch_size, x.shape[1])


def _fit_program(
    estimator: Estimator,
    critic: Any,
    settings: Settings,
    num_heldout_batches: int,
    num_in_sample_batches: int,
    block_size: int | None,
) -> Callable[..., _Fit]:
    """``(key, x_train, y_train, x_held, y_held) -> _Fit`` as one pure, jit-able function.

    A ``lax.while_loop`` over evaluations: each runs a ``lax.scan`` of ``eval_every``
    training steps on minibatches of the training pairs (without replacement within a
    batch), then scores the held-out batches and ``num_in_sample_batches`` batches of
    training pairs; it stops after ``patience`` evaluations without a better held-out
    training objective or at ``max_steps``, keeping the critic of the best evaluation.
    """
    optimizer = optax.adam(settings.learning_rate)
    batch, chunk = settings.batch_size, settings.eval_every
    max_evaluations = settings.max_steps // chunk

    def evaluate(state: CriticState, x: Array, y: Array) -> tuple[Array, Array]:
        """``([b] objectives, [b] estimates)`` over batches ``[b, n, d]``."""

        def score(pair: tuple[Array, Array]) -> tuple[Array, Array]:
            outputs = critic_outputs(estimator, critic, state.params, *pair, block_size=block_size)
            objective, _ = estimator.training_objective(outputs, state.estimator_carry)
            return objective, estimator.estimate(outputs)

        return jax.lax.map(score, (x, y))

    def fit(key: Array, x_train: Array, y_train: Array, x_held: Array, y_held: Array) -> _Fit:
        init_key, train_key = jax.random.split(key)
        state = init_critic_state(
            estimator, critic, optimizer, init_key, x_train[:batch], y_train[:batch]
        )
        # Held-out batches, then batches of training pairs: one evaluation program.
        x_eval = jnp.concatenate([x_held, _batches(x_train, num_in_sample_batches, batch)])
        y_eval = jnp.concatenate([y_held, _batches(y_train, num_in_sample_batches, batch)])

        def train_step(state: CriticState, rows: Array) -> tuple[CriticState, Array]:
            return critic_step(
                estimator,
                critic,
                optimizer,
                state,
                x_train[rows],
                y_train[rows],
                block_size=block_size,
            )

        # Minibatches cut from shuffles of the training rows (no pair twice in a batch): a
        # permutation per pass over the data, not one per step.
        batches_per_pass = x_train.shape[0] // batch
        passes = -(-chunk // batches_per_pass)

        def chunk_rows(chunk_key: Array) -> Array:
            keys = jax.random.split(chunk_key, passes)
            orders = jax.vmap(lambda k: jax.random.permutation(k, x_train.shape[0]))(keys)
            rows = orders[:, : batches_per_pass * batch].reshape(-1, batch)
            return rows[:chunk]

        def not_done(carry: tuple) -> Array:
            index, stale = carry[0], carry[1]
            return (index < max_evaluations) & (stale < settings.patience)

        def body(carry: tuple) -> tuple:
            index, stale, state, best, history, curve = carry
            rows = chunk_rows(jax.random.fold_in(train_key, index))
            state, estimates = jax.lax.scan(train_step, state, rows)
            history = jax.lax.dynamic_update_slice(history, estimates, (index * chunk,))
            objectives, estimates = evaluate(state, x_eval, y_eval)
            objective = jnp.mean(objectives[:num_heldout_batches])
            held, in_sample = jnp.split(estimates, [num_heldout_batches])
            row = jnp.stack([objective, jnp.mean(held), jnp.mean(in_sample)])
            curve = curve.at[index].set(row)
            better = objective > best[0]
            best = jax.tree.map(
                lambda new, old: jnp.where(better, new, old),
                (objective, index, state.params, held, in_sample),
                best,
            )
            return index + 1, jnp.where(better, 0, stale + 1), state, best, history, curve

        best = (
            jnp.array(-jnp.inf),
            jnp.array(0),
            state.params,
            jnp.full((num_heldout_batches,), jnp.nan),
            jnp.full((num_in_sample_batches,), jnp.nan),
        )
        carry = (
            jnp.array(0),
            jnp.array(0),
            state,
            best,
            jnp.full((max_evaluations * chunk,), jnp.nan),
            jnp.full((max_evaluations, 3), jnp.nan),
        )
        evaluations, _, _, best, history, curve = jax.lax.while_loop(not_done, body, carry)
        objective, best_index, params, held, in_sample = best
        return _Fit(params, objective, held, in_sample, best_index, evaluations, curve, history)

    return fit


@functools.lru_cache(maxsize=16)
def _compiled_fit_program(
    bound: str,
    critic: Any,
    settings: Settings,
    batches: int,
    in_sample_batches: int,
    block_size: int | None,
) -> Callable[..., _Fit]:
    """``(keys [K], x_train [K, ...], y_train, x_held, y_held) -> _Fit`` of ``K`` splits as
    one jitted program (:func:`~factorcl_jax.estimate.seeds.over_seeds`), kept so that calls
    with equal settings (seeds, folds, tasks of the same shape) compile once."""
    estimator = ESTIMATORS[bound]
    fit = _fit_program(estimator, critic, settings, batches, in_sample_batches, block_size)
    return jax.jit(over_seeds(fit))


def estimate_mi(
    x: Any,
    y: Any,
    *,
    bound: str = "infonce",
    critic: str | Any | None = None,
    hidden: Sequence[int] | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    heldout_fraction: float | None = None,
    folds: int | None = None,
    standardize: bool = True,
    ranks: bool = False,
    seed: int = 0,
    block_size: int | None = None,
    pointwise: bool = False,
) -> MIEstimate:
    """Estimates ``I(X; Y)`` from paired samples with ``bound``, on held-out pairs.

    The protocol:

    1. The rows are shuffled (``seed``) and split: ``heldout_fraction`` of them held out
       (default half), or with ``folds=k`` into ``k`` folds, each held out once while the
       critic trains on the rest. Rows that repeat the same ``(x, y)`` pair are kept on one
       side together: a copy of a training pair is never scored as held out.
    2. With ``standardize``, every feature is centred and scaled by the training part's
       mean and standard deviation, in float64 and scale-free (each feature is first divided
       by its largest magnitude, so neither 1e-300 nor 1e300 under- or overflows).
    3. One compiled program trains the critic on minibatches of the training part (Adam,
       ``eval_every`` steps per chunk) and after every chunk scores it on the held-out pairs,
       cut into disjoint batches of ``batch_size``. Training stops after ``patience``
       evaluations without a better held-out *training objective* (the estimate itself for
       the lower bounds, InfoNCE for NCE-CLUB, the log-likelihood for CLUB) or at
       ``max_steps``; the critic of the best evaluation is kept.
    4. The estimate is that critic's mean over the held-out batches, with standard error
       ``std / sqrt(batches)`` (over all folds' batches with ``folds``); the in-sample value
       is the same critic on as many batches of its own training pairs. A value the bound
       cannot take on a converged critic (:meth:`~factorcl_jax.bounds.Bound.plausible_range`)
       is divergence and raises, as does a non-finite one: a number is never reported for
       a critic that diverged.

    Estimating on the training pairs instead lets a flexible critic memorise them and report
    information that is not there; the gap ``in_sample - estimate`` shows how much.

    Args:
      x: ``[N, dx]`` samples of X (array-like, finite; not a masked array).
      y: ``[N, dy]`` samples of Y paired row by row with ``x``.
      bound: a key of :data:`ESTIMATORS`: ``"infonce"``, ``"nce_club"``, ``"nwj"``,
        ``"tuba"``, ``"dv"``, ``"mine"``, ``"js"``, ``"smile"`` or ``"club"``.
      critic: ``None`` (the library's concat critic, or CLUB's Gaussian ``q(y|x)``), a kind
        of :data:`CRITIC_KINDS` (``"concat"``, ``"separable"``) sized by ``hidden``, or a
        critic of your own in any form of the network protocol (a Flax Linen, NNX or
        Equinox module, or an object with ``init``, ``embed_x``, ``embed_y``, ``pair``;
        for ``"club"`` one with ``init`` and ``predict``).
      hidden: hidden widths of the library's critic (rule: :func:`default_settings`); not
        with a critic object, which has its own.
      batch_size: pairs per training and held-out batch (rule: :func:`default_settings`).
      max_steps: training-step budget, a multiple of ``eval_every``.
      learning_rate: Adam learning rate (default 3e-3).
      eval_every: training steps between held-out evaluations (default 100).
      patience: evaluations without improvement before stopping (default 10).
      heldout_fraction: share of the pairs held out, in ``(0, 1)`` (default 0.5); not with
        ``folds``.
      folds: ``k >= 2`` for k-fold estimation (``k`` trainings), or ``None``.
      standardize: standardise features with the training part's statistics, in float64
        (then the computation runs in float32).
      ranks: replace every feature by its normal scores (``Phi^-1`` of its empirical CDF on
        the training part, ties averaged): a strictly increasing map of each coordinate, which
        leaves the MI unchanged and tames heavy tails and bounded marginals.
      pointwise: also return, for the first split, the kept critic's per-pair estimate of the
        pointwise MI on every held-out pair (:attr:`MIEstimate.pointwise`).
      seed: seed of the split, the initialisation and the minibatches, in ``[0, 2**32 - 1]``.
      block_size: row block of :func:`~factorcl_jax.critics.pairwise_scores`.

    Returns:
      An :class:`MIEstimate`; ``str(result.summary())`` is a one-line report. Several sample
      sets (seeds of a benchmark) run as one compiled program with
      :func:`estimate_mi_seeds`.

    Raises:
      NonFiniteEstimateError: training diverged (no finite held-out objective, or NaN/inf
        estimates at the kept critic), e.g. with a learning rate far too high.
      ImplausibleEstimateError: the kept critic's estimate is finite but outside what the
        bound can take (divergence to huge finite scores).

    Example:
      >>> import numpy as np
      >>> from factorcl_jax.estimate import estimate_mi
      >>> x = np.random.default_rng(0).normal(size=(512, 2))  # doctest: +SLOW
      >>> result = estimate_mi(x, x + 0.5 * np.random.default_rng(1).normal(size=(512, 2)),
      ...                      max_steps=200, eval_every=100)
      >>> result.num_heldout, result.settings.batch_size
      (256, 64)
    """
    return estimate_mi_seeds(
        [x],
        [y],
        seeds=[seed],
        bound=bound,
        critic=critic,
        hidden=hidden,
        batch_size=batch_size,
        max_steps=max_steps,
        learning_rate=learning_rate,
        eval_every=eval_every,
        patience=patience,
        heldout_fraction=heldout_fraction,
        folds=folds,
        standardize=standardize,
        ranks=ranks,
        block_size=block_size,
        pointwise=pointwise,
    )[0]


class _Prepared(NamedTuple):
    """One sample set's splits, ready for the compiled program."""

    train: list[tuple[np.ndarray, np.ndarray]]  # per split: float32 [num_train, dx], [.., dy]
    held: list[tuple[np.ndarray, np.ndarray]]  # per split: float32 held-out pairs
    held_rows: list[np.ndarray]  # per split: the held-out rows of the sample set
    duplicates: int


def estimate_mi_seeds(
    xs: Sequence[Any],
    ys: Sequence[Any],
    *,
    seeds: Sequence[int],
    bound: str = "infonce",
    critic: str | Any | None = None,
    hidden: Sequence[int] | None = None,
    batch_size: int | None = None,
    max_steps: int | None = None,
    learning_rate: float | None = None,
    eval_every: int | None = None,
    patience: int | None = None,
    heldout_fraction: float | None = None,
    folds: int | None = None,
    standardize: bool = True,
    ranks: bool = False,
    block_size: int | None = None,
    pointwise: bool = False,
    errors: str = "raise",
) -> list[MIEstimate | DivergedEstimateError]:
    """:func:`estimate_mi` of several sample sets at once: ``xs[k], ys[k]`` split and trained
    with ``seeds[k]``, every split of every set in one compiled program
    (:func:`~factorcl_jax.estimate.seeds.over_seeds`: one after another on CPU, side by side
    on accelerators). The sets must have the same number of rows and features (e.g. the seeds
    of a benchmark task); every other argument is :func:`estimate_mi`'s, and the settings
    are resolved once for all. Each result equals :func:`estimate_mi` of its set and seed
    (up to float rounding), except ``seconds``, the wall time of the whole call. With
    ``errors="return"`` a set whose training diverged gets its
    :class:`DivergedEstimateError` in place of a result (a benchmark records it and goes on);
    ``"raise"`` raises the first.

    Example:
      >>> import numpy as np
      >>> rng = np.random.default_rng(0)
      >>> xs = rng.normal(size=(3, 512, 2))  # doctest: +SLOW
      >>> ys = xs + 0.5 * rng.normal(size=(3, 512, 2))
      >>> results = estimate_mi_seeds(xs, ys, seeds=[0, 1, 2], max_steps=200, eval_every=100)
      >>> [r.num_heldout for r in results]
      [256, 256, 256]
    """
    start = time.perf_counter()
    estimator = get_estimator(bound)
    if len(xs) != len(ys) or len(xs) != len(seeds) or not len(xs):
        raise ValueError(
            f"`xs`, `ys` and `seeds` need one entry per sample set, got {len(xs)}, {len(ys)} "
            f"and {len(seeds)}"
        )
    pairs = [validate_samples(x, y) for x, y in zip(xs, ys, strict=True)]
    shapes = {(x.shape, y.shape) for x, y in pairs}
    if len(shapes) != 1:
        raise ValueError(f"every sample set needs the same shapes, got {sorted(shapes)}")
    num_samples = pairs[0][0].shape[0]
    seeds = [check_seed(seed, "seed") for seed in seeds]
    if folds is not None:
        if heldout_fraction is not None:
            raise ValueError(
                "`heldout_fraction` and `folds` exclude each other: with `folds` every fold "
                "is held out once (a share of 1 / folds); give one of them"
            )
        folds = check_int(folds, "folds", minimum=2)
        if folds > num_samples // 4:
            raise ValueError(
                f"`folds` must be <= num_samples / 4 = {num_samples // 4}, got {folds}"
            )
    else:
        heldout_fraction = check_finite_float(
            0.5 if heldout_fraction is None else heldout_fraction,
            "heldout_fraction",
            above=0.0,
            below=1.0,
        )
    if errors not in ("raise", "return"):
        raise ValueError(f"`errors` must be 'raise' or 'return', got {errors!r}")
    for name, flag in (("standardize", standardize), ("ranks", ranks), ("pointwise", pointwise)):
        if not isinstance(flag, bool):
            raise TypeError(f"`{name}` must be a bool, got {flag!r}")
    if block_size is not None:
        block_size = check_positive_int(block_size, "block_size")
    if critic is not None and not isinstance(critic, str) and hidden is not None:
        raise ValueError(
            "`hidden` sizes the library's critics; a critic given as an object brings its own "
            "widths: pass one or the other"
        )
    keys = [jax.random.split(jax.random.key(seed)) for seed in seeds]
    sets = []
    for (x, y), (split_key, _) in zip(pairs, keys, strict=True):
        groups = pair_groups(x, y)
        splits = split_rows(groups, heldout_fraction, folds, split_key)
        sets.append((x, y, groups, splits))
    num_train = min(len(train) for *_, splits in sets for train, _ in splits)
    num_heldout = min(len(held) for *_, splits in sets for _, held in splits)
    if min(num_train, num_heldout) < 2:
        what = f"`folds` = {folds}" if folds else f"`heldout_fraction` = {heldout_fraction}"
        distinct = min(int(groups.max()) + 1 for _, _, groups, _ in sets)
        copies = (
            f" (they hold {distinct} distinct (x, y) pair(s), and the copies of a pair stay on "
            "one side)"
            if distinct < num_samples
            else ""
        )
        raise ValueError(
            f"{what} of {num_samples} pairs{copies} leaves {num_train} training and "
            f"{num_heldout} held-out pairs; each part needs at least 2"
        )
    prepared = [
        _prepare(x, y, groups, splits, num_train, standardize, ranks)
        for x, y, groups, splits in sets
    ]
    given = dict(
        hidden=hidden,
        max_steps=max_steps,
        learning_rate=learning_rate,
        eval_every=eval_every,
        patience=patience,
    )
    dims = (pairs[0][0].shape[1], pairs[0][1].shape[1])
    settings = resolve_settings(num_train, num_heldout, *dims, batch_size=batch_size, **given)
    critic_object, description = _resolve_critic(critic, estimator, bound, settings.hidden)
    fit_keys = [fit_key for _, fit_key in keys]
    fits = _run(bound, critic_object, settings, prepared, fit_keys, num_heldout, block_size)
    # InfoNCE cannot exceed log(batch): near that ceiling a default batch is doubled.
    while batch_size is None and _near_ceiling(bound, fits, settings, num_train, num_heldout):
        settings = resolve_settings(
            num_train, num_heldout, *dims, batch_size=2 * settings.batch_size, **given
        )
        fits = _run(bound, critic_object, settings, prepared, fit_keys, num_heldout, block_size)
    seconds = time.perf_counter() - start
    results = []
    for fitted, ready in zip(fits, prepared, strict=True):
        try:
            _check_converged(fitted, bound, settings)
        except DivergedEstimateError as error:
            if errors == "raise":
                raise
            results.append(error)
            continue
        values = None
        if pointwise:
            values = _pointwise_of(
                estimator, bound, critic_object, fitted[0].params, ready, settings.batch_size
            )
        results.append(
            _result(fitted, ready, bound, settings, folds, num_train, description, seconds, values)
        )
    return results


def _prepare(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    splits: list[tuple[np.ndarray, np.ndarray]],
    num_train: int,
    standardize: bool,
    ranks: bool,
) -> _Prepared:
    """The float32 parts of every split: the training part's statistics (ranks, mean and
    spread) applied to both parts."""
    train, held = [], []
    for train_rows, held_rows in splits:
        parts = {}
        for name, values in (("x", x), ("y", y)):
            fit, other = values[train_rows[:num_train]], values[held_rows]
            if ranks:
                fit, other = normal_scores(fit, other)
            if standardize:
                fit, other = standardized(fit, other, name)
            parts[name] = (as_float32(fit, name), as_float32(other, name))
        train.append((parts["x"][0], parts["y"][0]))
        held.append((parts["x"][1], parts["y"][1]))
    duplicates = int(len(x) - (groups.max() + 1))
    return _Prepared(train, held, [rows for _, rows in splits], duplicates)


def _run(
    bound: str,
    critic: Any,
    settings: Settings,
    prepared: list[_Prepared],
    fit_keys: list[Array],
    num_heldout: int,
    block_size: int | None,
) -> list[list[_Fit]]:
    """Every split of every set through one compiled program; ``[set][split]`` fits."""
    batches = num_heldout // settings.batch_size
    folds = len(prepared[0].train)
    if batches * folds < 2:
        raise ValueError(
            f"the {num_heldout} held-out pairs make {batches} batch of `batch_size` = "
            f"{settings.batch_size}; the standard error needs at least 2: hold out more pairs "
            "(`heldout_fraction`), use `folds`"
            + (", or a smaller `batch_size`" if settings.batch_size > 2 else ", or more pairs")
        )
    num_train = prepared[0].train[0][0].shape[0]
    in_sample_batches = min(batches, num_train // settings.batch_size)
    program = _compiled_fit_program(bound, critic, settings, batches, in_sample_batches, block_size)
    keys = jnp.stack([jax.random.fold_in(key, index) for key in fit_keys for index in range(folds)])
    stack = lambda parts, side: np.stack(
        [split[side] for ready in prepared for split in parts(ready)]
    )
    held = lambda side: np.stack(
        [
            np.asarray(_batches(jnp.asarray(split[side]), batches, settings.batch_size))
            for ready in prepared
            for split in ready.held
        ]
    )
    stacked = jax.device_get(
        program(
            keys,
            stack(lambda r: r.train, 0),
            stack(lambda r: r.train, 1),
            held(0),
            held(1),
        )
    )
    flat = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(len(keys))]
    return [flat[k * folds : (k + 1) * folds] for k in range(len(prepared))]


def _near_ceiling(
    bound: str, fits: list[list[_Fit]], settings: Settings, num_train: int, num_heldout: int
) -> bool:
    """Whether a default batch should double: the bound's ceiling is ``log(batch)``, a set's
    held-out estimate is within 1 nat of it, and twice the batch still leaves four batches in
    each part (and at most 1024 pairs)."""
    high = bounds.BOUNDS[bound].plausible_range(settings.batch_size)[1]
    if high > math.log(settings.batch_size) + 1e-9:
        return False
    doubled = 2 * settings.batch_size
    if doubled > 1024 or 4 * doubled > min(num_train, num_heldout):
        return False
    means = [float(np.mean([np.mean(f.heldout_batches) for f in fitted])) for fitted in fits]
    return max(means) > high - 1.0


def _result(
    fits: list[_Fit],
    ready: _Prepared,
    bound: str,
    settings: Settings,
    folds: int | None,
    num_train: int,
    description: str,
    seconds: float,
    pointwise: tuple[np.ndarray, np.ndarray] | None,
) -> MIEstimate:
    heldout_batches = np.concatenate([np.asarray(f.heldout_batches, np.float64) for f in fits])
    in_sample = np.concatenate([np.asarray(f.in_sample_batches, np.float64) for f in fits])
    first = fits[0]
    evaluations = int(first.evaluations)
    chunk = settings.eval_every
    curve = np.asarray(first.curve[:evaluations], np.float64)
    return MIEstimate(
        estimate=float(np.mean(heldout_batches)),
        stderr=float(np.std(heldout_batches) / math.sqrt(len(heldout_batches))),
        in_sample=float(np.mean(in_sample)),
        bound=bound,
        best_step=round(np.mean([(int(f.best_evaluation) + 1) * chunk for f in fits])),
        steps_run=round(np.mean([int(f.evaluations) * chunk for f in fits])),
        num_train=num_train,
        num_heldout=len(heldout_batches) * settings.batch_size,
        folds=folds,
        settings=settings,
        heldout_batches=heldout_batches,
        curve={
            "step": chunk * np.arange(1, evaluations + 1),
            "heldout_objective": curve[:, 0],
            "heldout_estimate": curve[:, 1],
            "in_sample_estimate": curve[:, 2],
        },
        history=np.asarray(first.history[: evaluations * chunk], np.float64),
        params=first.params,
        seconds=seconds,
        critic=description,
        duplicates=ready.duplicates,
        pointwise=None if pointwise is None else pointwise[0],
        pointwise_rows=None if pointwise is None else pointwise[1],
    )


def _pointwise_of(
    estimator: Estimator, bound: str, critic: Any, params: Any, ready: _Prepared, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """``([pairs] pointwise MI estimates, [pairs] their rows)`` of the first split's held-out
    pairs, scored in the disjoint batches the estimate was read from
    (:func:`~factorcl_jax.estimate.estimators.pointwise_mi`)."""
    x_held, y_held = ready.held[0]
    count = len(x_held) // batch
    held = [_batches(jnp.asarray(a), count, batch) for a in (x_held, y_held)]
    values = _compiled_pointwise(bound, critic)(params, *held)
    return np.asarray(values, np.float64).reshape(-1), ready.held_rows[0][: count * batch]


@functools.lru_cache(maxsize=16)
def _compiled_pointwise(bound: str, critic: Any) -> Callable[..., Array]:
    """``(params, x [b, n, dx], y [b, n, dy]) -> [b, n]`` per-pair estimates, jitted."""
    estimator = ESTIMATORS[bound]

    def per_batch(params: Any, batch: tuple[Array, Array]) -> Array:
        return pointwise_mi(bound, critic_outputs(estimator, critic, params, *batch))

    return jax.jit(lambda params, x, y: jax.lax.map(lambda b: per_batch(params, b), (x, y)))


def _resolve_critic(
    critic: str | Any | None, estimator: Estimator, bound: str, hidden: tuple[int, ...]
) -> tuple[Any, str]:
    """The critic ``estimate_mi`` trains, as a protocol object, and how to name it."""
    if critic is None:
        critic = "gaussian" if estimator.gaussian else "concat"
    elif isinstance(critic, str) and estimator.gaussian:
        raise ValueError(
            f"`critic` = {critic!r} does not apply to bound {bound!r}: CLUB trains a Gaussian "
            "q(y|x); leave `critic` unset (or pass a Gaussian model object)"
        )
    if isinstance(critic, str):
        if critic not in CRITIC_KINDS and critic != "gaussian":
            raise ValueError(
                f"`critic` must be one of {list(CRITIC_KINDS)} or an object, got {critic!r}"
            )
        return make_critic(critic, hidden), f"{critic} {list(hidden)}"
    adapted = as_gaussian(critic) if estimator.gaussian else as_critic(critic)
    source = getattr(adapted, "module", None) or getattr(adapted, "source", None) or adapted
    return adapted, type(source).__name__


def _check_converged(fits: Sequence[_Fit], bound: str, settings: Settings) -> None:
    """Raises a :class:`DivergedEstimateError` unless every split kept a critic whose held-out
    objective and batch estimates are finite and whose held-out and in-sample estimates lie
    in the bound's plausible range."""
    low, high = bounds.BOUNDS[bound].plausible_range(settings.batch_size)
    advice = f"try a lower `learning_rate` (was {settings.learning_rate:g})"
    for index, fit in enumerate(fits):
        split = f" (fold {index + 1} of {len(fits)})" if len(fits) > 1 else ""
        step = (int(fit.best_evaluation) + 1) * settings.eval_every
        if not np.isfinite(fit.best_objective):
            first = fit.curve[0, 0]
            raise NonFiniteEstimateError(
                f"{bound}: training diverged{split}: the held-out objective was never finite "
                f"(first evaluation, step {settings.eval_every}: {first}); {advice}"
            )
        for name, values in (
            ("held-out", fit.heldout_batches),
            ("in-sample", fit.in_sample_batches),
        ):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise NonFiniteEstimateError(
                    f"{bound}: {bad} {name} batch estimate(s) are NaN or inf at the best "
                    f"evaluation (step {step}){split}; {advice}"
                )
            value = float(np.mean(values))
            if not low <= value <= high:
                raise ImplausibleEstimateError(
                    f"{bound}: training diverged{split}: the {name} estimate {value:.3g} nats "
                    f"(step {step}) is outside what {bound} takes on a converged critic with "
                    f"batches of {settings.batch_size} ([{low:.3g}, {high:.3g}]); {advice}"
                )
