"""The training step of FactorCL and its baselines.

Read top to bottom:

1. :class:`Trainer` holds everything static about a run (method, model, critic, optimizers,
   augmentations, ``num_club_iter``, memory settings); it is hashable so the step can be
   jitted on it. :func:`factorcl_jax.training.builder.build_trainer` makes one from a run's config.
2. :meth:`Trainer.init` builds a :class:`~factorcl_jax.training.state.TrainState`: main parameters
   (encoders, heads and the critics of the InfoNCE terms), CLUB-critic parameters, two optax
   states, the step counter and a PRNG key (:mod:`factorcl_jax.training.state`).
3. :meth:`Trainer.step` is one update, jitted with the state donated:

   * the main parameters maximise the method's objective with the CLUB critics held fixed
     (``stop_gradient``), so the encoders *minimise* the NCE-CLUB upper bounds
     (:meth:`Trainer.loss`: the batch's views from :mod:`factorcl_jax.training.views`, each term's
     bound from :mod:`factorcl_jax.training.scoring`, summed by :func:`objectives.evaluate_values`);
   * then the CLUB critics take ``num_club_iter`` steps maximising their own InfoNCE on the
     embeddings of this batch, held fixed (:meth:`Trainer.club_update`: the critic that makes
     NCE-CLUB an upper bound is the one that maximises InfoNCE).

   It returns measurements a researcher needs to debug contrastive training: every term's
   value, positive/negative score statistics per term, the CLUB critics' InfoNCE, gradient
   and parameter norms. A step whose loss is not finite leaves the state unchanged.

The loop over a dataset is :func:`factorcl_jax.training.loop.fit`. Data parallelism is the same step
with ``axis_name`` set (:mod:`factorcl_jax.training.parallel` maps it over devices): every device
holds the state and ``n_local`` rows of the global batch, scores them against the columns of every
device (gathered, or passed around a ring), and the losses, measurements and gradients are averaged
over devices. With ``axis_name=None`` every collective is skipped.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import Array

from factorcl_jax import objectives
from factorcl_jax.models import FusionModel, MultimodalModel, embed
from factorcl_jax.models.augment import Augmentation
from factorcl_jax.networks.adapters import as_critic
from factorcl_jax.objectives import Method
from factorcl_jax.training.scoring import MemoryPlan, label_term_bound, term_bound
from factorcl_jax.training.state import TrainState, init_state
from factorcl_jax.training.views import (
    Augmenter,
    Batch,
    JointAugmentation,
    batch_inputs,
    batch_views,
)

__all__ = ["Trainer"]


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
    """Static description of a run; its methods are pure functions of the state.

    Attributes:
      method: the objective (:data:`factorcl_jax.objectives.METHODS`).
      model: encoders and heads; its ``representations`` must be the method's (a
        :class:`~factorcl_jax.models.FusionModel` for a fused method).
      critic: the critic used for every term (e.g. ``ConcatCritic((512, 512))``), in any form
        of the network protocol (a Flax Linen, NNX or Equinox module, or functions;
        :func:`~factorcl_jax.networks.adapters.as_critic`); kept as its protocol object.
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
        ``block_size x column_block`` pairs (:mod:`factorcl_jax.bounds.tiled`): no ``[n, m]`` score
        matrix, one tile of pair activations at a time, the same values and gradients.
      exchange: how a data-parallel step meets the other devices' columns: ``"all_gather"``
        (gather them all) or ``"ring"`` (pass them around the devices by ``ppermute``; tiled,
        so per-device memory does not grow with the device count).
    """

    method: Method
    model: MultimodalModel | FusionModel
    critic: Any
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
        if self.method.fused_views and not isinstance(self.model, FusionModel):
            raise ValueError(
                f"{self.method.name} reads fused views: its model must be a "
                f"FusionModel, got {type(self.model).__name__}"
            )
        if self.method.uses_augmentation and self.augmentations is None:
            raise ValueError(f"{self.method.name} needs `augmentations` (one per modality)")
        if not isinstance(self.num_club_iter, int) or self.num_club_iter < 0:
            raise ValueError(f"`num_club_iter` must be an int >= 0, got {self.num_club_iter!r}")
        object.__setattr__(self, "critic", as_critic(self.critic))
        MemoryPlan(self.block_size, self.column_block, self.exchange)  # checks the three
        self.augmenter  # noqa: B018 - checks the augmentations

    @property
    def augmenter(self) -> Augmenter | None:
        """The run's augmentations (``None`` without ``augmentations``)."""
        if self.augmentations is None:
            return None
        return Augmenter(tuple(self.augmentations), self.joint_augmentation)

    @property
    def memory(self) -> MemoryPlan:
        """How the step scores pairs: row blocks, column tiles, the exchange of columns."""
        return MemoryPlan(self.block_size, self.column_block, self.exchange)

    def init(self, key: Array, example_batch: Batch) -> TrainState:
        """A fresh state whose shapes fit ``example_batch`` (only shapes are read).

        Parameters depend on feature widths, not on the number of rows, so the model and the
        critics are initialised on the batch's first two rows: the memory of the
        initialisation does not grow with the example batch (no critic scores all its
        pairs). The key is split into the model's, the critics' (term ``k`` folds in ``k``)
        and the state's ``rng`` (:func:`~factorcl_jax.training.state.init_state`). It runs as
        one program compiled once per trainer and feature widths (a fraction of the time of
        running its operations one by one; under ``jax.disable_jit()`` it runs them so).
        """
        example_batch = {name: value[:2] for name, value in example_batch.items()}
        return self._compiled_init(key, example_batch)

    @functools.cached_property
    def _compiled_init(self) -> Callable[[Array, Batch], TrainState]:
        return jax.jit(self._fresh_state)

    def _fresh_state(self, key: Array, example_batch: Batch) -> TrainState:
        model_key, critic_key, rng = jax.random.split(key, 3)
        model_params = self.model.init(model_key, *batch_inputs(example_batch))
        views = self.views(model_params, example_batch, rng)
        return init_state(
            self.method,
            self.critic,
            self.optimizer,
            self.club_optimizer,
            model_params,
            views,
            critic_key,
            rng,
        )

    def views(
        self, model_params: Any, batch: Batch, key: Array, axis_name: str | None = None
    ) -> objectives.Views:
        """What the terms read of ``batch`` (:func:`~factorcl_jax.training.views.batch_views`)."""
        return batch_views(
            self.method,
            self.model,
            self.augmenter,
            self.num_classes,
            model_params,
            batch,
            key,
            axis_name,
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
                value, statistics[term.name] = label_term_bound(
                    term.bound,
                    self.critic,
                    critic_params,
                    left,
                    views.labels,
                    column_labels,
                    self.num_classes,
                    self.memory,
                )
            else:
                value, statistics[term.name] = term_bound(
                    term.bound,
                    self.critic,
                    critic_params,
                    left,
                    right,
                    self.memory,
                    axis_name,
                    labels=views.labels,
                    column_labels=column_labels,
                    options=term.options,
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
                name: term_bound(
                    "infonce", self.critic, params, *club_inputs[name], self.memory, axis_name
                )[0]
                for name, params in club_params.items()
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
    def jit_step(self) -> Callable[[TrainState, Batch], tuple[TrainState, dict[str, Array]]]:
        """:meth:`step` under ``jax.jit`` with the state donated."""
        return jax.jit(self.step, donate_argnums=0)

    def embed(self, params: Any, batch: Batch) -> dict[str, Array]:
        """Evaluation representations (``"encoders"`` and ``"factorized"``) of a batch."""
        return embed(self.model, params["model"], *batch_inputs(batch))

    @functools.cached_property
    def jit_embed(self) -> Callable[[Any, Batch], dict[str, Array]]:
        """:meth:`embed` under ``jax.jit``, compiled once per trainer and batch shape."""
        return jax.jit(self.embed)


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
