"""The train state: everything a training step changes, and how a fresh one is made."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax import Array

from factorcl_jax.objectives import Method, Views, term_inputs

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


def init_state(
    method: Method,
    critic: Any,
    optimizer: optax.GradientTransformation,
    club_optimizer: optax.GradientTransformation,
    model_params: Any,
    views: Views,
    critic_key: Array,
    rng: Array,
) -> TrainState:
    """A fresh state: ``model_params``, a critic per term initialised on the term's inputs of
    ``views`` (term ``k`` with ``fold_in(critic_key, k)``), both optimizers' states, step 0.

    Args:
      method: the objective, whose terms get critics (NCE-CLUB terms in ``club_params``).
      critic: the critic (a protocol object: ``init(key, x, y)``).
      optimizer: optax transformation of the main parameters.
      club_optimizer: optax transformation of the CLUB critics.
      model_params: the model's initial parameters.
      views: the views of an example batch (only their shapes are read by ``critic.init``).
      critic_key: key of the critics.
      rng: the state's base key.
    """
    critic_params = {}
    for index, term in enumerate(method.terms):
        left, right = term_inputs(method, term, views)
        critic_params[term.name] = critic.init(jax.random.fold_in(critic_key, index), left, right)
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
        opt_state=optimizer.init(params),
        club_opt_state=club_optimizer.init(club_params),
        rng=rng,
    )
