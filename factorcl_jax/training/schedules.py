"""Learning-rate schedules of a training run, as optax takes them."""

from __future__ import annotations

import optax

from factorcl_jax import validation
from factorcl_jax.config.sections import SCHEDULES

__all__ = ["learning_rate_schedule", "per_main_step"]


def learning_rate_schedule(
    learning_rate: float, schedule: str = "constant", total_steps: int | None = None
) -> float | optax.Schedule:
    """The learning rate of step ``t`` as optax takes it.

    * ``"constant"``: ``learning_rate`` at every step.
    * ``"cosine"``: ``learning_rate * (1 + cos(pi * min(t, T) / T)) / 2`` with
      ``T = total_steps`` (:func:`optax.cosine_decay_schedule`): decays to 0 at the last step.

    Raises:
      ValueError: ``learning_rate`` not finite and > 0, an unknown ``schedule``, or
        ``"cosine"`` without ``total_steps >= 1``.
    """
    learning_rate = validation.check_positive_float(learning_rate, "learning_rate")
    if schedule not in SCHEDULES:
        raise ValueError(f"`schedule` must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "constant":
        return learning_rate
    if total_steps is None or total_steps < 1:
        raise ValueError(f"the cosine schedule needs `total_steps` >= 1, got {total_steps}")
    return optax.cosine_decay_schedule(learning_rate, total_steps)


def per_main_step(
    learning_rate: float | optax.Schedule, num_club_iter: int
) -> float | optax.Schedule:
    """The CLUB optimizer's rate: ``num_club_iter`` of its updates share one main step's rate.

    The CLUB critics take ``num_club_iter`` updates per training step; with a schedule, update
    ``c`` reads the rate of main step ``c // num_club_iter``.
    """
    if not callable(learning_rate) or num_club_iter <= 1:
        return learning_rate
    return lambda count: learning_rate(count // num_club_iter)
