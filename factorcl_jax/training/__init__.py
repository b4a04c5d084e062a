"""The training step, its helpers and the loops that run it (one device, many, many hosts).

* :mod:`~factorcl_jax.training.step`: :class:`Trainer`, the loss, the CLUB update and the
  jitted two-group step;
* :mod:`~factorcl_jax.training.views`, :mod:`~factorcl_jax.training.scoring`,
  :mod:`~factorcl_jax.training.state`: what the terms read, each term's bound (dense,
  row-blocked, tiled; gathered or ring), the train state — each taking explicit arguments;
* :mod:`~factorcl_jax.training.schedules`, :mod:`~factorcl_jax.training.builder`: learning-rate
  schedules, and the one place a config becomes a :class:`Trainer`;
* :mod:`~factorcl_jax.training.loop`, :mod:`~factorcl_jax.training.parallel`: the data loop,
  and the step over devices (``shard_map``, ``pmap``) and hosts.
"""

from factorcl_jax.training.builder import build_trainer
from factorcl_jax.training.scoring import MemoryPlan
from factorcl_jax.training.state import TrainState
from factorcl_jax.training.step import Trainer

__all__ = ["MemoryPlan", "TrainState", "Trainer", "build_trainer"]
