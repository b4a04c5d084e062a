"""The data loop: shuffled epochs over an in-memory dataset, the progress bar, and embedding a
dataset with a trained model.

:func:`fit` runs a trainer's step over ``epochs`` of seeded shuffles (drop-last), resumes exactly at
``(epoch, batch)``, and stops with :class:`NonFiniteLossError` naming the step and the terms when a
loss turns NaN/inf. :func:`factorcl_jax.training.parallel.fit` is the same loop with a data-parallel
step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax import Array
from tqdm.auto import tqdm

from factorcl_jax import validation
from factorcl_jax.training.state import TrainState
from factorcl_jax.training.step import Trainer

__all__ = ["NonFiniteLossError", "StepFn", "batches", "embed_dataset", "fit"]

StepFn = Callable[[Any, Any], tuple[Any, Mapping[str, Array]]]
"""``(state, batch) -> (state, measurements)``, e.g. :attr:`Trainer.jit_step`."""


class NonFiniteLossError(FloatingPointError):
    """Raised by :func:`fit` when a step's loss or a term is NaN/inf."""


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
        ``trainer.jit_step`` (:func:`factorcl_jax.training.parallel.fit` passes a data-parallel
        one).
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
