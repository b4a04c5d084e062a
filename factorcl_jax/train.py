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

Data parallelism is the same step with ``axis_name`` set (:mod:`factorcl_jax.parallel` maps
it over devices): every device holds the state and ``n_local`` rows of the global batch. It
embeds its rows, gathers the columns of every critic from all devices (or, with
``exchange="ring"``, passes them around the devices), so each row is scored against the
``n_global`` columns of the global batch (``[n_local, n_global]`` scores), and the losses,
measurements and gradients are averaged over devices. With ``axis_name=None`` every
collective below is skipped and the step is the single-device one.

Memory: ``block_size`` scores rows in blocks; ``column_block`` (or the ring) computes every
bound over row x column tiles without the score matrix (:mod:`factorcl_jax.tiled`); the
modules' ``compute_dtype`` (:func:`default_trainer`) runs matmuls in bfloat16.
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

from factorcl_jax import bounds, critics, fusion, models, objectives, tiled, validation
from factorcl_jax.objectives import Method, Views

__all__ = [
    "COMPUTE_DTYPES",
    "EXCHANGES",
    "NonFiniteLossError",
    "TrainState",
    "Trainer",
    "batches",
    "compute_dtype_of",
    "default_trainer",
    "embed_dataset",
    "fit",
    "global_columns",
    "learning_rate_schedule",
]

Batch = Mapping[str, Array]
"""``{"x1": [n, ...], "x2": [n, ...], "y": [n] int, "mask1": [n, T1], "mask2": [n, T2]}``.

``y`` is needed by SUP methods; the masks (true at real time steps) only by sequence data.
"""

Augmentation = Callable[..., Array]
"""``(key, x, *, mask=None) -> augmented x`` of the same shape (see :mod:`augment`)."""

JointAugmentation = Callable[..., tuple[Array, Array]]
"""``(key, x1, x2, *, mask=None) -> (x1_aug, x2_aug)``: one draw for both modalities, e.g.
:func:`augment.aligned_time_mask` (the same time steps dropped in time-aligned sequences)."""

EXCHANGES = ("all_gather", "ring")
"""Values of :attr:`Trainer.exchange`."""

StepFn = Callable[[Any, Any], tuple[Any, Mapping[str, Array]]]
"""``(state, batch) -> (state, measurements)``, e.g. :attr:`Trainer.jit_step`."""


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
      model: encoders and heads; its ``representations`` must be the method's (a
        :class:`fusion.FusionModel` for a fused method).
      critic: the critic module used for every term (e.g. ``ConcatCritic((512, 512))``).
      optimizer: optax transformation of the main parameters.
      club_optimizer: optax transformation of the CLUB critics.
      num_classes: label classes (one-hot width for SUP methods).
      augmentations: ``(augment_x1, augment_x2)``, used by SSL methods.
      joint_augmentation: optional :data:`JointAugmentation` applied to both modalities
        together after ``augmentations`` (SSL methods only); it gets the first modality's
        mask as the shared validity mask of time-aligned sequences.
      num_club_iter: CLUB-critic updates per step.
      block_size: row block of the pairwise critics (``None``: dense).
      column_block: columns per tile. When set, every bound is computed over tiles of
        ``block_size x column_block`` pairs (:mod:`factorcl_jax.tiled`): no ``[n, m]`` score
        matrix, one tile of pair activations at a time, the same values and gradients.
      exchange: how a data-parallel step meets the other devices' columns: ``"all_gather"``
        (gather them all) or ``"ring"`` (pass them around the devices by ``ppermute``; tiled,
        so per-device memory does not grow with the device count).
    """

    method: Method
    model: models.MultimodalModel | fusion.FusionModel
    critic: nn.Module
    optimizer: optax.GradientTransformation
    club_optimizer: optax.GradientTransformation
    num_classes: int = 2
    augmentations: tuple[Augmentation, Augmentation] | None = None
    num_club_iter: int = 1
    block_size: int | None = None
    joint_augmentation: JointAugmentation | None = None
    column_block: int | None = None
    exchange: str = "all_gather"

    def __post_init__(self) -> None:
        if dict(self.model.representations) != dict(self.method.representations):
            raise ValueError(
                f"model representations {dict(self.model.representations)} do "
                f"not match {self.method.name}'s {dict(self.method.representations)}"
            )
        if self.method.fused_views and not isinstance(self.model, fusion.FusionModel):
            raise ValueError(
                f"{self.method.name} reads fused views: its model must be a "
                f"fusion.FusionModel, got {type(self.model).__name__}"
            )
        if self.method.uses_augmentation and self.augmentations is None:
            raise ValueError(f"{self.method.name} needs `augmentations` (one per modality)")
        if self.joint_augmentation is not None and not callable(self.joint_augmentation):
            raise TypeError(
                "`joint_augmentation` must be a function (key, x1, x2, *, mask) -> (x1, x2), "
                f"got {type(self.joint_augmentation).__name__}"
            )
        if not isinstance(self.num_club_iter, int) or self.num_club_iter < 0:
            raise ValueError(f"`num_club_iter` must be an int >= 0, got {self.num_club_iter!r}")
        for name in ("block_size", "column_block"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"`{name}` must be a positive int or None, got {value!r}")
        if self.exchange not in EXCHANGES:
            raise ValueError(f"`exchange` must be one of {EXCHANGES}, got {self.exchange!r}")

    @property
    def tiled(self) -> bool:
        """Whether bounds are computed over row x column tiles (``column_block`` or a ring)."""
        return self.column_block is not None or self.exchange == "ring"

    # ------------------------------------------------------------------ views and scores

    def views(
        self, model_params: Any, batch: Batch, key: Array, axis_name: str | None = None
    ) -> Views:
        """Representations of the batch (and of its augmented views / one-hot labels).

        For a fused method the representations are its fused views (:meth:`fused_views`).
        Under ``axis_name`` the augmented views of this device's rows are drawn as if the
        global batch were augmented at once (see :func:`_augment_global_batch`).
        """
        inputs, masks = _inputs(batch)
        augmented = None
        if self.method.fused_views:
            representations = self.fused_views(model_params, batch, key, axis_name)
        else:
            _, representations = self.model.apply(model_params, inputs, masks)
            if self.method.uses_augmentation:
                augmented_inputs = self.augment(batch, key, axis_name)
                _, augmented = self.model.apply(model_params, augmented_inputs, masks)
        labels = batch.get("y")
        onehot = column_labels = None
        if self.method.supervised:
            if labels is None:
                raise ValueError(f"{self.method.name} is supervised: the batch needs 'y'")
            onehot = jax.nn.one_hot(labels, self.num_classes)
            column_labels = global_columns(labels, axis_name)
        return Views(representations, augmented, onehot, labels, column_labels)

    def fused_views(
        self, model_params: Any, batch: Batch, key: Array, axis_name: str | None = None
    ) -> dict[str, Array]:
        """``{name: [draws * n, E]}``: every fused view the method declares.

        Augmentation draw ``a`` is :meth:`augment` with key ``fold_in(k1, a)``; the random token
        masks of the ``k``-th declared view come from uniform noise with key ``fold_in(k2, k)``
        (``k1, k2 = split(key)``). Under ``axis_name`` both are drawn for the global batch, so
        every row gets the draws it gets on one device.
        """
        inputs, masks = _inputs(batch)
        views = self.method.fused_views
        augment_key, mask_key = jax.random.split(key)
        drawn = {None: inputs}
        for augmentation in {view.augmentation for view in views.values()} - {None}:
            drawn[augmentation] = self.augment(
                batch, jax.random.fold_in(augment_key, augmentation), axis_name
            )
        rows = jnp.zeros((inputs[0].shape[0], 0))  # only its row count is read
        noise = {
            name: _augment_global_batch(
                _uniform_noise((view.draws, self.model.num_tokens)),
                jax.random.fold_in(mask_key, index),
                (rows,),
                None,
                axis_name,
            )
            for index, (name, view) in enumerate(views.items())
            if view.mask_ratio > 0
        }
        return fusion.view_representations(self.model, model_params, drawn, masks, views, noise)

    def augment(
        self, batch: Batch, key: Array, axis_name: str | None = None
    ) -> tuple[Array, Array]:
        """The augmented modalities ``(x1_aug, x2_aug)`` of a batch (shapes of ``x1``, ``x2``).

        Each modality goes through its own augmentation (keys ``split(key, 2)``), then both
        through ``joint_augmentation`` when set (key ``fold_in(key, 2)``). Under ``axis_name``
        the draws are those of the global batch (see :func:`_augment_global_batch`).
        """
        if self.augmentations is None:
            raise ValueError("this trainer has no `augmentations`")
        inputs, masks = _inputs(batch)
        keys = jax.random.split(key, len(inputs))
        augmented = tuple(
            _augment_global_batch(augment, k, (x,), mask, axis_name)
            for augment, k, x, mask in zip(self.augmentations, keys, inputs, masks, strict=True)
        )
        if self.joint_augmentation is not None:
            joint_key = jax.random.fold_in(key, len(inputs))
            augmented = tuple(
                _augment_global_batch(
                    self.joint_augmentation, joint_key, augmented, masks[0], axis_name
                )
            )
        return augmented

    def scores(
        self, critic_params: Any, left: Array, right: Array, axis_name: str | None = None
    ) -> Array:
        """``[n_local, n_global]`` critic scores of this device's rows against every column.

        ``left`` and ``right`` are this device's ``[n_local, d]`` rows; the columns are
        :func:`global_columns` of ``right``, so row ``i``'s positive is at column ``i`` (offset
        0) on every device. Without ``axis_name`` this is the ``[n, n]`` matrix of the batch.
        """
        return critics.pairwise_scores(
            self.critic,
            critic_params,
            left,
            global_columns(right, axis_name),
            block_size=self.block_size,
        ).astype(jnp.float32)

    def label_scores(self, critic_params: Any, left: Array, column_labels: Array) -> Array:
        """``[n_local, m]`` scores of rows against one-hot labels: ``f(z_i, onehot(y_j))``.

        A column depends only on its label, so the critic scores the ``C`` classes once
        (``[n_local, C]``) and the columns are gathered by ``column_labels`` (``[m]``, the
        global batch's labels): the same matrix as scoring the ``m`` one-hot columns, at
        ``n * C`` instead of ``n * m`` pairs (SUP's ``I(Z; Y)`` terms).
        """
        return jnp.take(self._class_scores(critic_params, left), column_labels, axis=1)

    def _class_scores(self, critic_params: Any, left: Array) -> Array:
        """``[n_local, C]`` float32 scores of the rows against each one-hot class."""
        classes = jnp.eye(self.num_classes, dtype=left.dtype)
        return critics.pairwise_scores(
            self.critic, critic_params, left, classes, block_size=self.block_size
        ).astype(jnp.float32)

    def bound(
        self,
        bound: str | Callable[[Array], Array],
        critic_params: Any,
        left: Array,
        right: Array,
        axis_name: str | None = None,
        *,
        labels: Array | None = None,
        column_labels: Array | None = None,
    ) -> tuple[Array, tuple[Array, Array]]:
        """A bound of this device's rows against every column, and its score statistics.

        Dense (or row-blocked) it is ``bound(scores(...))``; with :attr:`tiled` it comes from
        the row statistics of :func:`factorcl_jax.tiled.row_statistics`, without the score
        matrix. Either way the value is this device's share, positives at offset 0.

        Args:
          bound: ``"infonce"``, ``"nce_club"`` or ``"supcon"`` (the bounds of the methods), or
            a function of the ``[n_local, n_global]`` score matrix (scored densely even with
            :attr:`tiled`).
          critic_params: the term's critic.
          left: ``[n_local, dl]`` rows.
          right: ``[n_local, dr]`` this device's columns (every device's are scored).
          axis_name: the data-parallel axis, or ``None``.
          labels: ``[n_local]`` labels of the rows (``supcon``).
          column_labels: ``[n_global]`` labels of the global batch (``supcon``).

        Returns:
          ``(value, (mean positive score, mean negative score))``, the statistics without
          gradient.
        """
        supervised = bound == "supcon"
        if callable(bound) or not self.tiled:  # a function of the whole matrix is dense
            scores = self.scores(critic_params, left, right, axis_name)
            extra = (labels, column_labels) if supervised else ()
            value = bound(scores) if callable(bound) else getattr(bounds, bound)(scores, *extra)
            return value, _score_statistics(
                jnp.diagonal(scores), jnp.sum(scores, 1), scores.shape[1]
            )
        ring = self.exchange == "ring" and axis_name is not None
        columns = right if ring else global_columns(right, axis_name)
        statistics = tiled.row_statistics(
            self.critic,
            critic_params,
            left,
            columns,
            (*tiled.BOUND_STATISTICS[bound], "positive", "sum"),
            block_rows=self.block_size,
            block_cols=self.column_block,
            axis_name=axis_name,
            ring=ring,
            row_labels=labels if supervised else None,
            column_labels=(labels if ring else column_labels) if supervised else None,
        )
        num_columns = columns.shape[0] * (jax.lax.axis_size(axis_name) if ring else 1)
        value = tiled.bound_from_statistics(bound, statistics, num_columns)
        return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)

    def label_bound(
        self, bound: str, critic_params: Any, left: Array, labels: Array, column_labels: Array
    ) -> tuple[Array, tuple[Array, Array]]:
        """:meth:`bound` against one-hot label columns (SUP's ``I(Z; Y)`` terms).

        Dense it scores :meth:`label_scores`; with :attr:`tiled` it needs only the ``[n, C]``
        class scores and the class counts of ``column_labels`` (``[n_global]``)
        (:func:`factorcl_jax.tiled.class_statistics`).
        """
        if not self.tiled:
            scores = self.label_scores(critic_params, left, column_labels)
            value = getattr(bounds, bound)(scores)
            return value, _score_statistics(
                jnp.diagonal(scores), jnp.sum(scores, 1), scores.shape[1]
            )
        counts = jnp.bincount(column_labels, length=self.num_classes)
        statistics = tiled.class_statistics(self._class_scores(critic_params, left), labels, counts)
        num_columns = column_labels.shape[0]
        value = tiled.bound_from_statistics(bound, statistics, num_columns)
        return value, _score_statistics(statistics["positive"], statistics["sum"], num_columns)

    # ------------------------------------------------------------------ initialisation

    def init(self, key: Array, example_batch: Batch) -> TrainState:
        """A fresh state whose shapes fit ``example_batch`` (only shapes are read).

        Parameters depend on feature widths, not on the number of rows, so the model and the
        critics are initialised on the batch's first two rows: the memory of ``init`` does not
        grow with the example batch (no critic scores all its pairs).
        """
        model_key, critic_key, rng = jax.random.split(key, 3)
        example_batch = {name: value[:2] for name, value in example_batch.items()}
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

    def loss(
        self,
        params: Any,
        club_params: Any,
        batch: Batch,
        key: Array,
        axis_name: str | None = None,
    ):
        """``(loss, (term values, score statistics, CLUB-critic inputs))``; CLUB critics fixed.

        Under ``axis_name`` the values are this device's share (its rows against the global
        batch's columns); their mean over devices is the full-batch value.
        """
        views = self.views(params["model"], batch, key, axis_name)
        column_labels = views.labels if views.column_labels is None else views.column_labels
        statistics = {}

        def value(term: objectives.Term, left: Array, right: Array) -> Array:
            if term.bound == "nce_club":
                critic_params = jax.lax.stop_gradient(club_params[term.name])
            else:
                critic_params = params["critics"][term.name]
            if self.method.supervised and term.right == objectives.TARGET:
                value, statistics[term.name] = self.label_bound(
                    term.bound, critic_params, left, views.labels, column_labels
                )
            else:
                value, statistics[term.name] = self.bound(
                    term.bound,
                    critic_params,
                    left,
                    right,
                    axis_name,
                    labels=views.labels,
                    column_labels=column_labels,
                )
            return value

        loss, values = objectives.evaluate_values(self.method, views, value)
        club_inputs = {
            term.name: jax.lax.stop_gradient(objectives.term_inputs(self.method, term, views))
            for term in self.method.club_terms
        }
        return loss, (values, statistics, club_inputs)

    def club_update(
        self,
        club_params: Any,
        club_opt_state: Any,
        club_inputs: Mapping,
        axis_name: str | None = None,
    ):
        """``num_club_iter`` InfoNCE ascent steps of the CLUB critics on fixed embeddings.

        ``club_inputs[name]`` is the term's ``([n_local, dl], [n_local, dr])`` rows; under
        ``axis_name`` each critic scores them against the global batch's columns and the
        gradients and values are averaged over devices.
        """

        def club_loss(club_params: Any) -> tuple[Array, dict[str, Array]]:
            values = {
                name: self.bound("infonce", club_params[name], *club_inputs[name], axis_name)[0]
                for name in club_inputs
            }
            return -sum(values.values(), start=jnp.zeros(())), values

        values = {}
        for _ in range(self.num_club_iter):
            grads, values = jax.grad(club_loss, has_aux=True)(_device_copy(club_params, axis_name))
            grads, values = _mean_over_devices((grads, values), axis_name)
            updates, club_opt_state = self.club_optimizer.update(grads, club_opt_state, club_params)
            club_params = optax.apply_updates(club_params, updates)
        return club_params, club_opt_state, values

    def step(
        self, state: TrainState, batch: Batch, axis_name: str | None = None
    ) -> tuple[TrainState, dict[str, Array]]:
        """One training step; see the module docstring. Pure: jit it (see :meth:`jit_step`).

        Args:
          state: the train state (replicated on every device under ``axis_name``).
          batch: ``[n, ...]`` arrays; under ``axis_name`` this device's ``n_local`` rows of
            the global batch.
          axis_name: the mapped axis the devices of a data-parallel step share, or ``None``.

        Returns:
          ``(new_state, measurements)``; measurements are scalars, identical on every device.
        """
        key = jax.random.fold_in(state.rng, state.step)
        grad_fn = jax.value_and_grad(self.loss, has_aux=True)
        (loss, (values, statistics, club_inputs)), grads = grad_fn(
            _device_copy(state.params, axis_name), state.club_params, batch, key, axis_name
        )
        loss, values, statistics, grads = _mean_over_devices(
            (loss, values, statistics, grads), axis_name
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        club_params, club_opt_state, club_values = self.club_update(
            state.club_params, state.club_opt_state, club_inputs, axis_name
        )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            club_params=club_params,
            opt_state=opt_state,
            club_opt_state=club_opt_state,
        )
        # The loss is already the mean over devices, so every device keeps or drops the update.
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
    def jit_init(self) -> Callable[[Array, Batch], TrainState]:
        """:meth:`init` under ``jax.jit``: one compile instead of op-by-op dispatch."""
        return jax.jit(self.init)

    @functools.cached_property
    def jit_step(self) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
        """:meth:`step` under ``jax.jit`` with the state donated."""
        return jax.jit(self.step, donate_argnums=0)

    def embed(self, params: Any, batch: Batch) -> dict[str, Array]:
        """Evaluation representations (``"encoders"`` and ``"factorized"``) of a batch."""
        return models.embed(self.model, params["model"], *_inputs(batch))

    @functools.cached_property
    def jit_embed(self) -> Callable[[Any, Batch], dict[str, Array]]:
        """:meth:`embed` under ``jax.jit``, compiled once per trainer and batch shape."""
        return jax.jit(self.embed)


def global_columns(x: Array, axis_name: str | None) -> Array:
    """``[n_local, ...] -> [n_global, ...]``: every device's rows, this device's first.

    The gathered rows are rotated so that device ``k``'s own rows lead: row ``i``'s positive
    then sits at column ``i`` on every device, and every bound of a term (InfoNCE, NCE-CLUB:
    sums over all columns) equals this device's share of the full-batch value without an
    ``offset``. The gradient reaches the other devices' rows through the gather's transpose.
    Without ``axis_name``, ``x`` itself.
    """
    if axis_name is None:
        return x
    gathered = jax.lax.all_gather(x, axis_name, tiled=True)
    return jnp.roll(gathered, -jax.lax.axis_index(axis_name) * x.shape[0], axis=0)


def _augment_global_batch(
    augment: Callable[..., Any],
    key: Array,
    arrays: tuple[Array, ...],
    mask: Array | None,
    axis_name: str | None,
) -> Any:
    """``augment(key, *arrays, mask=mask)`` of this device's ``[n_local, ...]`` rows, drawn for
    the global batch; the result has ``augment``'s structure (an array, or a tuple of them).

    An augmentation draws the randomness of every row from one key for the whole batch (and
    mixup pairs rows across it), so a row's draw depends on its global index and the global
    batch size. Augmenting the gathered global batch and keeping this device's rows gives every
    row the draw it gets on one device, whatever the device count; the price is one gather of
    the raw inputs and an augmentation of ``n_global`` rows per device.
    """
    if axis_name is None:
        return augment(key, *arrays, mask=mask)
    n_local = arrays[0].shape[0]
    gather = lambda value: jax.lax.all_gather(value, axis_name, tiled=True)
    augmented = augment(key, *map(gather, arrays), mask=None if mask is None else gather(mask))
    start = jax.lax.axis_index(axis_name) * n_local
    local = lambda value: jax.lax.dynamic_slice_in_dim(value, start, n_local, axis=0)
    return jax.tree.map(local, augmented)


def _uniform_noise(shape: tuple[int, ...]) -> Callable[..., Array]:
    """``(key, x, *, mask=None) -> [n, *shape]`` uniform noise, one row per row of ``x``: random
    draws shaped like an augmentation, so :func:`_augment_global_batch` can draw them."""

    def draw(key: Array, x: Array, *, mask: Array | None = None) -> Array:
        return jax.random.uniform(key, (x.shape[0], *shape))

    return draw


def _device_copy(params: Any, axis_name: str | None) -> Any:
    """``params`` as this device's own copy, so their gradient is this device's partial sum.

    Under ``shard_map`` JAX tracks replicated values and would psum the gradient of replicated
    parameters itself; ``pmap`` never does. Marking them as varying over ``axis_name`` (a no-op
    under ``pmap``) gives both the same partial gradient, which :func:`_mean_over_devices`
    then averages.
    """
    return params if axis_name is None else jax.lax.pcast(params, axis_name, to="varying")


def _mean_over_devices(tree: Any, axis_name: str | None) -> Any:
    """``pmean`` of every leaf over ``axis_name`` (``tree`` itself without one)."""
    return tree if axis_name is None else jax.lax.pmean(tree, axis_name)


def _score_statistics(positives: Array, row_sums: Array, num_columns: int) -> tuple[Array, Array]:
    """Mean score of the positives and of the negatives, from each row's positive ``[n]`` and
    sum over its ``num_columns`` columns ``[n]`` (no gradient)."""
    n = positives.shape[0]
    positive = jnp.mean(positives)
    negative = (jnp.sum(row_sums) - positive * n) / float(n * num_columns - n)  # > int32 max
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


def _check_data(data: Mapping[str, np.ndarray], batch_size: int, num_classes: int) -> int:
    sizes = {name: len(array) for name, array in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"all arrays in `data` need the same number of rows, got {sizes}")
    if "y" in data and len(data["y"]):
        labels = np.asarray(data["y"])
        if not np.issubdtype(labels.dtype, np.integer) or not (
            0 <= labels.min() and labels.max() < num_classes
        ):
            raise ValueError(
                f"`data['y']` must hold integer labels in [0, {num_classes}) (the trainer's "
                f"num_classes), got dtype {labels.dtype}, range [{labels.min()}, {labels.max()}]"
            )
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
    step_fn: StepFn | None = None,
    place_batch: Callable[[dict[str, np.ndarray]], Any] | None = None,
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
      step_fn: the update, ``(state, batch) -> (state, measurements)``; default
        ``trainer.jit_step`` (:func:`factorcl_jax.parallel.fit` passes a data-parallel one).
      place_batch: maps each host batch of ``batch_size`` rows to the ``step_fn`` input, e.g.
        onto a device mesh; default: the host batch as is.

    Raises:
      NonFiniteLossError: naming the step and the term when a loss turns NaN/inf; the state
        passed to ``on_step`` before that stayed finite.
    """
    num_rows = _check_data(data, batch_size, trainer.num_classes)
    validation.check_positive_int(epochs, "epochs")
    validation.check_seed(seed, "seed")
    validation.check_int(start_epoch, "start_epoch", minimum=0, maximum=epochs)
    validation.check_nonnegative_int(start_batch, "start_batch")
    step_fn = trainer.jit_step if step_fn is None else step_fn
    place_batch = (lambda batch: batch) if place_batch is None else place_batch
    per_epoch = num_rows // batch_size
    history = []
    total = max(epochs * per_epoch - (start_epoch * per_epoch + start_batch), 0)
    bar = tqdm(total=total, disable=not progress, dynamic_ncols=True, leave=False)
    for epoch in range(start_epoch, epochs):
        first = start_batch if epoch == start_epoch else 0
        for index, batch in enumerate(
            batches(data, batch_size, seed=seed, epoch=epoch, start=first), start=first
        ):
            state, measured = step_fn(state, place_batch(batch))
            measured = {k: float(v) for k, v in jax.device_get(measured).items()}
            measured["step"] = int(state.step)
            measured["epoch"] = epoch
            if not math.isfinite(measured["loss"]):
                terms = [k for k, v in measured.items() if k.startswith("term/")]
                bad = [k for k in terms if not math.isfinite(measured[k])] or ["loss"]
                more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
                raise NonFiniteLossError(
                    f"non-finite loss at step {measured['step'] + 1} (epoch {epoch}, batch "
                    f"{index}) in {', '.join(bad[:3])}{more}; the state was left at step "
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
    embed = trainer.jit_embed
    num_rows = len(data["x1"])
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, num_rows, batch_size):
        chunk = {
            k: data[k][start : start + batch_size]
            for k in ("x1", "x2", "mask1", "mask2")
            if k in data
        }
        for name, value in embed(params, chunk).items():
            parts.setdefault(name, []).append(np.asarray(value))
    return {name: np.concatenate(values) for name, values in parts.items()}


SCHEDULES = ("constant", "cosine")
"""Names accepted by :func:`learning_rate_schedule`."""


def learning_rate_schedule(
    learning_rate: float, schedule: str = "constant", total_steps: int | None = None
) -> float | optax.Schedule:
    """The learning rate of step ``t`` as optax takes it.

    * ``"constant"``: ``learning_rate`` at every step.
    * ``"cosine"``: ``learning_rate * (1 + cos(pi * min(t, T) / T)) / 2`` with
      ``T = total_steps`` (:func:`optax.cosine_decay_schedule`): decays to 0 at the last step.

    Raises:
      ValueError: ``learning_rate <= 0``, an unknown ``schedule``, or ``"cosine"`` without
        ``total_steps >= 1``.
    """
    learning_rate = validation.check_positive_float(learning_rate, "learning_rate")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        return learning_rate
    if total_steps is None or total_steps < 1:
        raise ValueError(f"the cosine schedule needs total_steps >= 1, got {total_steps}")
    return optax.cosine_decay_schedule(learning_rate, total_steps)


def _per_main_step(
    learning_rate: float | optax.Schedule, num_club_iter: int
) -> float | optax.Schedule:
    """The CLUB optimizer's rate: ``num_club_iter`` of its updates share one main step's rate."""
    if not callable(learning_rate) or num_club_iter <= 1:
        return learning_rate
    return lambda count: learning_rate(count // num_club_iter)


def default_trainer(
    method: str | Method,
    *,
    num_classes: int = 2,
    encoder_hidden: int = 512,
    encoder_layers: int = 3,
    embed_dim: int = 128,
    critic_hidden: int = 512,
    normalize_heads: bool = False,
    learning_rate: float | optax.Schedule = 1e-4,
    augmentations: tuple[Augmentation, Augmentation] | None = None,
    num_club_iter: int = 1,
    block_size: int | None = None,
    temperature: float = 0.1,
    tokens_per_modality: int = 4,
    column_block: int | None = None,
    exchange: str = "all_gather",
    compute_dtype: str | Any = "float32",
) -> Trainer:
    """A trainer with MLP encoders, Linear-ReLU-Linear heads and concat critics.

    The defaults are the paper's synthetic setting: encoders ``d -> 512 -> 512 -> 512 -> 128``,
    heads of width 512 to 128, critics with two hidden layers of 512, Adam at ``1e-4``.
    ``learning_rate`` is a float or an optax schedule of the main step
    (:func:`learning_rate_schedule`); the CLUB critics follow the same schedule, stepping it
    once per main step. ``normalize_heads`` L2-normalises the head outputs
    (:class:`models.MultimodalModel`). ``block_size``, ``column_block`` and ``exchange`` are
    the :class:`Trainer`'s. ``compute_dtype`` (``"float32"`` or ``"bfloat16"``) is the dtype
    of every matmul and pair activation; parameters, optimizer states, log-sum-exp
    accumulations and bound values stay float32.

    A fused method (CoMM, InfMasking) gets the same encoders under a
    :class:`fusion.FusionModel` (``tokens_per_modality`` tokens of width ``embed_dim`` per
    modality, one Transformer block, the same head) and, as in its papers, the cosine critic
    at ``temperature`` (:class:`fusion.CosineCritic`) instead of the concat critic.
    """
    method = objectives.get_method(method) if isinstance(method, str) else method
    dtype = compute_dtype_of(compute_dtype)
    encoders = tuple(
        models.MLPEncoder(encoder_hidden, embed_dim, encoder_layers, dtype=dtype) for _ in range(2)
    )
    if method.fused_views:
        model = fusion.FusionModel(
            encoders,
            tokens_per_modality=tokens_per_modality,
            width=embed_dim,
            num_heads=math.gcd(4, embed_dim),  # 4 heads unless the width forbids it
            head_hidden=encoder_hidden,
            embed_dim=embed_dim,
        )
        critic = fusion.CosineCritic(temperature)
    else:
        model = models.MultimodalModel(
            encoders,
            dict(method.representations),
            head_hidden=encoder_hidden,
            embed_dim=embed_dim,
            normalize_heads=normalize_heads,
            dtype=dtype,
        )
        critic = critics.ConcatCritic(hidden=(critic_hidden, critic_hidden), dtype=dtype)
    return Trainer(
        method=method,
        model=model,
        critic=critic,
        optimizer=optax.adam(learning_rate),
        club_optimizer=optax.adam(_per_main_step(learning_rate, num_club_iter)),
        num_classes=num_classes,
        augmentations=augmentations,
        num_club_iter=num_club_iter,
        block_size=block_size,
        column_block=column_block,
        exchange=exchange,
    )


COMPUTE_DTYPES = ("float32", "bfloat16")
"""Names accepted by :func:`compute_dtype_of`."""


def compute_dtype_of(name: str | Any) -> Any:
    """The modules' ``dtype`` for a compute dtype name: ``None`` (the float32 inputs') for
    ``"float32"``, ``jnp.bfloat16`` for ``"bfloat16"``.

    Raises:
      ValueError: any other name or dtype.
    """
    if name is not None and not isinstance(name, str):
        name = jnp.dtype(name).name
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"`compute_dtype` must be one of {COMPUTE_DTYPES}, got {name!r}")
    return None if name == "float32" else jnp.bfloat16
