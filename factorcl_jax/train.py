"""Training FactorCL and its baselines: state, the jitted step, the loop.

Read top to bottom:

1. :class:`Trainer` holds everything static about a run (method, model, critic, optimizers,
   augmentations, ``num_club_iter``); it is hashable so the step can be jitted on it.
2. :meth:`Trainer.init` builds a :class:`TrainState` pytree: main parameters (encoders, heads
   and the critics of the InfoNCE terms), CLUB-critic parameters, two optax states, the step
   counter and a PRNG key.
3. :meth:`Trainer.step` is one update, jitted with the state donated:

   * the main parameters maximise the method's objective with the CLUB critics held fixed
     (``stop_gradient``), so the encoders *minimise* the NCE-CLUB upper bounds;
   * then the CLUB critics take ``num_club_iter`` steps maximising their own InfoNCE on the
     embeddings of this batch, held fixed (the critic that makes NCE-CLUB an upper bound is
     the one that maximises InfoNCE).

   It returns measurements a researcher needs to debug contrastive training: every term's
   value, positive/negative score statistics per term, the CLUB critics' InfoNCE, gradient
   and parameter norms. A step whose loss is not finite leaves the state unchanged.
4. :func:`fit` loops over an in-memory dataset (seeded shuffling per epoch, drop-last), shows
   a progress bar, and stops with a clear error naming the step and term on NaN/inf.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from tqdm.auto import tqdm

from factorcl_jax import bounds, critics, models, objectives
from factorcl_jax.objectives import Method, Views

__all__ = [
    "NonFiniteLossError",
    "TrainState",
    "Trainer",
    "batches",
    "default_trainer",
    "embed_dataset",
    "fit",
]

Batch = Mapping[str, Array]
"""``{"x1": [n, ...], "x2": [n, ...], "y": [n] int, "mask1": [n, T1], "mask2": [n, T2]}``.

``y`` is needed by SUP methods; the masks (true at real time steps) only by sequence data.
"""

Augmentation = Callable[..., Array]
"""``(key, x, *, mask=None) -> augmented x`` of the same shape (see :mod:`augment`)."""


def _inputs(batch: Batch) -> tuple[tuple[Array, Array], tuple[Array | None, Array | None]]:
    """The modalities of a batch and their masks (``None`` where absent)."""
    return (batch["x1"], batch["x2"]), (batch.get("mask1"), batch.get("mask2"))


class TrainState(flax.struct.PyTreeNode):
    """Everything that changes during training.

    Attributes:
      step: number of updates taken (int32 scalar).
      params: ``{"model": encoders and heads, "critics": {term: InfoNCE critic}}``.
      club_params: ``{term: critic}`` of the NCE-CLUB terms.
      opt_state: optax state of ``params``.
      club_opt_state: optax state of ``club_params``.
      rng: base PRNG key; step ``k`` uses ``fold_in(rng, k)``.
    """

    step: Array
    params: Any
    club_params: Any
    opt_state: Any
    club_opt_state: Any
    rng: Array


class NonFiniteLossError(FloatingPointError):
    """Raised by :func:`fit` when a step's loss or a term is NaN/inf."""


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """Static description of a run; its methods are pure functions of the state.

    Attributes:
      method: the objective (:data:`factorcl_jax.objectives.METHODS`).
      model: encoders and heads; its ``representations`` must be the method's.
      critic: the critic module used for every term (e.g. ``ConcatCritic((512, 512))``).
      optimizer: optax transformation of the main parameters.
      club_optimizer: optax transformation of the CLUB critics.
      num_classes: label classes (one-hot width for SUP methods).
      augmentations: ``(augment_x1, augment_x2)``, used by SSL methods.
      num_club_iter: CLUB-critic updates per step.
      block_size: row block of the pairwise critics (``None``: dense).
    """

    method: Method
    model: models.MultimodalModel
    critic: nn.Module
    optimizer: optax.GradientTransformation
    club_optimizer: optax.GradientTransformation
    num_classes: int = 2
    augmentations: tuple[Augmentation, Augmentation] | None = None
    num_club_iter: int = 1
    block_size: int | None = None

    def __post_init__(self) -> None:
        if dict(self.model.representations) != dict(self.method.representations):
            raise ValueError(
                f"model representations {dict(self.model.representations)} do "
                f"not match {self.method.name}'s {dict(self.method.representations)}"
            )
        if self.method.uses_augmentation and self.augmentations is None:
            raise ValueError(f"{self.method.name} needs `augmentations` (one per modality)")
        if not isinstance(self.num_club_iter, int) or self.num_club_iter < 0:
            raise ValueError(f"`num_club_iter` must be an int >= 0, got {self.num_club_iter!r}")

    # ------------------------------------------------------------------ views and scores

    def views(self, model_params: Any, batch: Batch, key: Array) -> Views:
        """Representations of the batch (and of its augmented views / one-hot labels)."""
        inputs = (batch["x1"], batch["x2"])
        _, representations = self.model.apply(model_params, inputs)
        augmented = None
        if self.method.uses_augmentation:
            keys = jax.random.split(key, len(inputs))
            augmented_inputs = tuple(
                augment(k, x)
                for augment, k, x in zip(self.augmentations, keys, inputs, strict=True)
            )
            _, augmented = self.model.apply(model_params, augmented_inputs)
        labels = batch.get("y")
        onehot = None
        if self.method.supervised:
            if labels is None:
                raise ValueError(f"{self.method.name} is supervised: the batch needs 'y'")
            onehot = jax.nn.one_hot(labels, self.num_classes)
        return Views(representations, augmented, onehot, labels)

    def scores(self, critic_params: Any, left: Array, right: Array) -> Array:
        """``[n, n]`` critic scores of every (row, column) pair."""
        return critics.pairwise_scores(
            self.critic, critic_params, left, right, block_size=self.block_size
        )

    # ------------------------------------------------------------------ initialisation

    def init(self, key: Array, example_batch: Batch) -> TrainState:
        """A fresh state whose shapes fit ``example_batch`` (only shapes are read)."""
        model_key, critic_key, rng = jax.random.split(key, 3)
        model_params = self.model.init(model_key, *_inputs(example_batch))
        views = self.views(model_params, example_batch, rng)
        critic_params = {}
        for index, term in enumerate(self.method.terms):
            left, right = objectives.term_inputs(self.method, term, views)
            critic_params[term.name] = self.critic.init(
                jax.random.fold_in(critic_key, index), left, right
            )
        club_names = {term.name for term in self.method.club_terms}
        params = {
            "model": model_params,
            "critics": {k: v for k, v in critic_params.items() if k not in club_names},
        }
        club_params = {k: v for k, v in critic_params.items() if k in club_names}
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            params=params,
            club_params=club_params,
            opt_state=self.optimizer.init(params),
            club_opt_state=self.club_optimizer.init(club_params),
            rng=rng,
        )

    # ------------------------------------------------------------------ the step

    def loss(self, params: Any, club_params: Any, batch: Batch, key: Array):
        """``(loss, (term values, score statistics, CLUB-critic inputs))``; CLUB critics fixed."""
        views = self.views(params["model"], batch, key)
        statistics = {}

        def score(term: objectives.Term, left: Array, right: Array) -> Array:
            if term.bound == "nce_club":
                critic_params = jax.lax.stop_gradient(club_params[term.name])
            else:
                critic_params = params["critics"][term.name]
            scores = self.scores(critic_params, left, right)
            statistics[term.name] = _score_statistics(scores)
            return scores

        loss, values = objectives.evaluate(self.method, views, score)
        club_inputs = {
            term.name: jax.lax.stop_gradient(objectives.term_inputs(self.method, term, views))
            for term in self.method.club_terms
        }
        return loss, (values, statistics, club_inputs)

    def club_update(self, club_params: Any, club_opt_state: Any, club_inputs: Mapping):
        """``num_club_iter`` InfoNCE ascent steps of the CLUB critics on fixed embeddings."""

        def club_loss(club_params: Any) -> tuple[Array, dict[str, Array]]:
            values = {
                name: bounds.infonce(self.scores(club_params[name], *club_inputs[name]))
                for name in club_inputs
            }
            return -sum(values.values(), start=jnp.zeros(())), values

        values = {}
        for _ in range(self.num_club_iter):
            grads, values = jax.grad(club_loss, has_aux=True)(club_params)
            updates, club_opt_state = self.club_optimizer.update(grads, club_opt_state, club_params)
            club_params = optax.apply_updates(club_params, updates)
        return club_params, club_opt_state, values

    def step(self, state: TrainState, batch: Batch) -> tuple[TrainState, dict[str, Array]]:
        """One training step; see the module docstring. Pure: jit it (see :meth:`jit_step`)."""
        key = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (values, statistics, club_inputs)), grads = grad_fn(
            state.params, state.club_params, batch, key
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        club_params, club_opt_state, club_values = self.club_update(
            state.club_params, state.club_opt_state, club_inputs
        )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            club_params=club_params,
            opt_state=opt_state,
            club_opt_state=club_opt_state,
        )
        finite = jnp.isfinite(loss)
        new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        measurements = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),
        }
        for name, value in values.items():
            measurements[f"term/{name}"] = value
        for name, (positive, negative) in statistics.items():
            measurements[f"scores/{name}/positive"] = positive
            measurements[f"scores/{name}/negative"] = negative
        for name, value in club_values.items():
            measurements[f"club_critic/{name}/infonce"] = value
        return new_state, measurements

    @functools.cached_property
    def jit_step(self) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
        """:meth:`step` under ``jax.jit`` with the state donated."""
        return jax.jit(self.step, donate_argnums=0)

    def embed(self, params: Any, batch: Batch) -> dict[str, Array]:
        """Evaluation representations (``"encoders"`` and ``"factorized"``) of a batch."""
        return models.embed(self.model, params["model"], *_inputs(batch))


def _score_statistics(scores: Array) -> tuple[Array, Array]:
    """Mean score of the positives (diagonal) and of the negatives (off-diagonal)."""
    n, m = scores.shape
    positive = jnp.mean(jnp.diagonal(scores))
    negative = (jnp.sum(scores) - positive * n) / (n * m - n)
    return jax.lax.stop_gradient(positive), jax.lax.stop_gradient(negative)


def batches(
    data: Mapping[str, np.ndarray], batch_size: int, *, seed: int, epoch: int, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Shuffled minibatches of one epoch (drop-last), from batch index ``start``.

    The order depends only on ``(seed, epoch)``, so a run resumed at ``(epoch, start)`` sees
    exactly the batches an uninterrupted run would.
    """
    num_rows = len(next(iter(data.values())))
    order = np.random.default_rng([seed, epoch]).permutation(num_rows)
    for index in range(start, num_rows // batch_size):
        rows = order[index * batch_size : (index + 1) * batch_size]
        yield {name: array[rows] for name, array in data.items()}


def _check_data(data: Mapping[str, np.ndarray], batch_size: int) -> int:
    sizes = {name: len(array) for name, array in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"all arrays in `data` need the same number of rows, got {sizes}")
    num_rows = next(iter(sizes.values()))
    if not isinstance(batch_size, int) or not 2 <= batch_size <= num_rows:
        raise ValueError(
            f"`batch_size` must be an int in [2, {num_rows}] (rows of `data`), got {batch_size!r}"
        )
    return num_rows


def fit(
    trainer: Trainer,
    state: TrainState,
    data: Mapping[str, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[TrainState, dict[str, float], int, int], None] | None = None,
    start_epoch: int = 0,
    start_batch: int = 0,
) -> tuple[TrainState, list[dict[str, float]]]:
    """Trains for ``epochs`` over ``data`` and returns the state and per-step measurements.

    Args:
      trainer: the run's :class:`Trainer`.
      state: initial (or restored) state; it is donated to the step.
      data: ``{"x1": [N, ...], "x2": [N, ...], "y": [N]}`` host arrays.
      epochs: total epochs (``start_epoch`` counts as already begun).
      batch_size: rows per step; the last partial batch of each epoch is dropped.
      seed: shuffling seed.
      progress: show a tqdm bar with the loss and the main terms.
      on_step: called as ``on_step(state, measurements, epoch, next_batch)`` after each step
        (logging, checkpointing).
      start_epoch: epoch to start from (resuming).
      start_batch: batch index within ``start_epoch`` to start from (resuming).

    Raises:
      NonFiniteLossError: naming the step and the term when a loss turns NaN/inf; the state
        passed to ``on_step`` before that stayed finite.
    """
    num_rows = _check_data(data, batch_size)
    per_epoch = num_rows // batch_size
    history = []
    total = max(epochs * per_epoch - (start_epoch * per_epoch + start_batch), 0)
    bar = tqdm(total=total, disable=not progress, dynamic_ncols=True, leave=False)
    for epoch in range(start_epoch, epochs):
        first = start_batch if epoch == start_epoch else 0
        for index, batch in enumerate(
            batches(data, batch_size, seed=seed, epoch=epoch, start=first), start=first
        ):
            state, measured = trainer.jit_step(state, batch)
            measured = {k: float(v) for k, v in jax.device_get(measured).items()}
            measured["step"] = int(state.step)
            measured["epoch"] = epoch
            if not math.isfinite(measured["loss"]):
                bad = [k for k, v in measured.items() if not math.isfinite(v)]
                raise NonFiniteLossError(
                    f"non-finite loss at step {measured['step'] + 1} (epoch {epoch}, batch "
                    f"{index}): {', '.join(bad)}; the state was left at step "
                    f"{measured['step']}"
                )
            history.append(measured)
            if on_step is not None:
                on_step(state, measured, epoch, index + 1)
            bar.update(1)
            bar.set_postfix(_postfix(measured), refresh=False)
    bar.close()
    return state, history


def _postfix(measured: Mapping[str, float]) -> dict[str, str]:
    shown = {"step": str(measured["step"]), "loss": f"{measured['loss']:.3f}"}
    for key, value in measured.items():
        if key.startswith("term/"):
            shown[key.removeprefix("term/")] = f"{value:.3f}"
    return shown


def embed_dataset(
    trainer: Trainer, params: Any, data: Mapping[str, np.ndarray], *, batch_size: int = 1024
) -> dict[str, np.ndarray]:
    """Evaluation representations of every row of ``data``, computed in batches."""
    embed = jax.jit(trainer.embed)
    num_rows = len(data["x1"])
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, num_rows, batch_size):
        chunk = {k: data[k][start : start + batch_size] for k in ("x1", "x2")}
        for name, value in embed(params, chunk).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


def default_trainer(
    method: str | Method,
    *,
    num_classes: int = 2,
    encoder_hidden: int = 512,
    encoder_layers: int = 3,
    embed_dim: int = 128,
    critic_hidden: int = 512,
    learning_rate: float = 1e-4,
    augmentations: tuple[Augmentation, Augmentation] | None = None,
    num_club_iter: int = 1,
    block_size: int | None = None,
) -> Trainer:
    """A trainer with MLP encoders, Linear-ReLU-Linear heads and concat critics.

    The defaults are the paper's synthetic setting: encoders ``d -> 512 -> 512 -> 512 -> 128``,
    heads of width 512 to 128, critics with two hidden layers of 512, Adam at ``1e-4``.
    """
    method = objectives.get_method(method) if isinstance(method, str) else method
    encoders = tuple(models.MLPEncoder(encoder_hidden, embed_dim, encoder_layers) for _ in range(2))
    model = models.MultimodalModel(
        encoders, dict(method.representations), head_hidden=encoder_hidden, embed_dim=embed_dim
    )
    return Trainer(
        method=method,
        model=model,
        critic=critics.ConcatCritic(hidden=(critic_hidden, critic_hidden)),
        optimizer=optax.adam(learning_rate),
        club_optimizer=optax.adam(learning_rate),
        num_classes=num_classes,
        augmentations=augmentations,
        num_club_iter=num_club_iter,
        block_size=block_size,
    )
