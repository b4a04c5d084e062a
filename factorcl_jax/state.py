"""The train state: everything a training step changes, and how a fresh one is made."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flax.struct
import jax
import jax.numpy as jnp
from jax import Array

from factorcl_jax import objectives
from factorcl_jax.views import Batch, batch_inputs, batch_views

if TYPE_CHECKING:
    from factorcl_jax.train import Trainer

__all__ = ["TrainState", "init_state"]


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


def init_state(trainer: Trainer, key: Array, example_batch: Batch) -> TrainState:
    """A fresh state of ``trainer`` whose shapes fit ``example_batch`` (only shapes are read).

    Parameters depend on feature widths, not on the number of rows, so the model and the
    critics are initialised on the batch's first two rows: the memory of the initialisation
    does not grow with the example batch (no critic scores all its pairs). The key is split
    into the model's, the critics' (term ``k`` folds in ``k``) and the state's ``rng``.
    """
    model_key, critic_key, rng = jax.random.split(key, 3)
    example_batch = {name: value[:2] for name, value in example_batch.items()}
    model_params = trainer.model.init(model_key, *batch_inputs(example_batch))
    views = batch_views(trainer, model_params, example_batch, rng)
    method = trainer.method
    critic_params = {}
    for index, term in enumerate(method.terms):
        left, right = objectives.term_inputs(method, term, views)
        critic_params[term.name] = trainer.critic.init(
            jax.random.fold_in(critic_key, index), left, right
        )
    club_names = {term.name for term in method.club_terms}
    params = {
        "model": model_params,
        "critics": {k: v for k, v in critic_params.items() if k not in club_names},
    }
    club_params = {k: v for k, v in critic_params.items() if k in club_names}
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        club_params=club_params,
        opt_state=trainer.optimizer.init(params),
        club_opt_state=trainer.club_optimizer.init(club_params),
        rng=rng,
    )
