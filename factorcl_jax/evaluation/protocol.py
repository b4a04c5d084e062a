"""Linear-probe evaluation of trained models, and train-then-probe.

The paper evaluates a contrastive model by freezing it and fitting a logistic-regression
probe on its representation of the training split; the score is the probe's test accuracy
(Liang et al. 2023, Sec. 4). Two representations can be probed (see :func:`models.embed`):

* ``"encoders"``: the concatenated encoder outputs ``[h_1, h_2]`` (``[n, 2 * embed_dim]``
  for the MLP encoders), what the reference code probes;
* ``"factorized"``: the concatenated heads in the order of the method's representations,
  ``[Z_S1, Z_S2, Z_U1, Z_U2]`` for FactorCL (the paper's final representation),
  ``[Z_1, Z_2]`` for unfactorized baselines, the fused representation of fused methods.

Data are in-memory mappings ``{"x1": [N, ...], "x2": [N, ...], "y": [N] int}``, the format of
:func:`factorcl_jax.training.loop.fit`.

Example:
  >>> from factorcl_jax.training.builder import build_trainer
  >>> from factorcl_jax.config import PRESETS
  >>> from factorcl_jax.data.synthetic import make_synthetic, train_test_split
  >>> train_split, test_split = train_test_split(make_synthetic(300, seed=0))
  >>> config = PRESETS["quick"]
  >>> trainer = build_trainer(config, "SimCLR", steps_per_epoch=300 // 64)
  >>> result = fit_and_probe(  # doctest: +SLOW
  ...     trainer, train_split.arrays(), test_split.arrays(), config, progress=False)
  >>> sorted(result.accuracies), 0.0 <= result.accuracies["factorized"] <= 1.0
  (['factorized'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from factorcl_jax.config import RunConfig
from factorcl_jax.evaluation import probe
from factorcl_jax.training import loop
from factorcl_jax.training.state import TrainState
from factorcl_jax.training.step import Trainer

__all__ = [
    "REPRESENTATIONS",
    "FitAndProbeResult",
    "Start",
    "fit_and_probe",
    "num_classes_of",
    "probe_accuracies",
    "raw_input_accuracy",
]

REPRESENTATIONS: tuple[str, ...] = ("encoders", "factorized")
"""Representations a probe can read: concatenated encoder outputs, or concatenated heads."""

Data = Mapping[str, np.ndarray]


def _check_data(data: Any, name: str) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(
            f"`{name}` must be a mapping {{'x1': [N, ...], 'x2': [N, ...], 'y': [N]}}, "
            f"got {type(data).__name__}"
        )
    missing = [key for key in ("x1", "x2", "y") if key not in data]
    if missing:
        raise ValueError(f"`{name}` lacks {missing}; it has {sorted(data)}")
    rows = {key: np.shape(data[key])[0] if np.ndim(data[key]) else 0 for key in data}
    if len(set(rows.values())) != 1 or rows["y"] == 0:
        raise ValueError(f"`{name}` arrays need the same, non-zero number of rows, got {rows}")
    if np.ndim(data["y"]) != 1 or not np.issubdtype(np.asarray(data["y"]).dtype, np.integer):
        raise ValueError(f"`{name}['y']` must be integer labels [N], got {np.shape(data['y'])}")


def _check_representations(representations: Sequence[str]) -> tuple[str, ...]:
    if isinstance(representations, str):
        representations = (representations,)
    unknown = [name for name in representations if name not in REPRESENTATIONS]
    if unknown or not representations:
        raise ValueError(
            f"`representations` must be a non-empty subset of {REPRESENTATIONS}, "
            f"got {list(representations)}"
        )
    return tuple(representations)


def num_classes_of(*datasets: Data) -> int:
    """Number of classes ``max(y) + 1`` over ``datasets`` (at least 2)."""
    return max(2, *(int(np.max(data["y"])) + 1 for data in datasets))


def probe_accuracies(
    trainer: Trainer,
    params: Any,
    train_data: Data,
    test_data: Data,
    *,
    representations: Sequence[str] = REPRESENTATIONS,
    num_classes: int | None = None,
    batch_size: int = 1024,
    l2: float = 1e-4,
) -> dict[str, float]:
    """Linear-probe test accuracy of each representation of a trained model.

    Both splits are embedded once with :func:`loop.embed_dataset` (model frozen); for each
    representation a logistic-regression probe (:func:`probe.fit_linear_probe`, standardised
    features, L-BFGS) is fitted on ``train_data`` and scored on ``test_data``.

    Args:
      trainer: the trainer the model was trained with.
      params: ``state.params`` of its :class:`~factorcl_jax.training.state.TrainState`.
      train_data: ``{"x1": [N, ...], "x2": [N, ...], "y": [N]}`` the probe is fitted on.
      test_data: ``{"x1": [M, ...], "x2": [M, ...], "y": [M]}`` it is scored on.
      representations: names from :data:`REPRESENTATIONS`.
      num_classes: label classes; ``None`` infers ``max(y) + 1`` from both splits.
      batch_size: rows per embedding batch.
      l2: the probe's L2 penalty on standardised features.

    Returns:
      ``{representation: test accuracy in [0, 1]}``.
    """
    _check_data(train_data, "train_data")
    _check_data(test_data, "test_data")
    representations = _check_representations(representations)
    if num_classes is None:
        num_classes = num_classes_of(train_data, test_data)
    train_features = loop.embed_dataset(trainer, params, train_data, batch_size=batch_size)
    test_features = loop.embed_dataset(trainer, params, test_data, batch_size=batch_size)
    return {
        name: probe.linear_probe_accuracy(
            train_features[name],
            np.asarray(train_data["y"], np.int32),
            test_features[name],
            np.asarray(test_data["y"], np.int32),
            num_classes=num_classes,
            l2=l2,
        )
        for name in representations
    }


def raw_input_accuracy(
    train_data: Data,
    test_data: Data,
    *,
    keys: Sequence[str] = ("x1", "x2"),
    num_classes: int | None = None,
    l2: float = 1e-4,
) -> float:
    """Linear-probe test accuracy on the raw inputs ``keys`` concatenated (each flattened to
    ``[N, features]``): the sanity row beside the learned representations."""
    _check_data(train_data, "train_data")
    _check_data(test_data, "test_data")
    if num_classes is None:
        num_classes = num_classes_of(train_data, test_data)

    def features(data: Data) -> np.ndarray:
        return np.concatenate([np.reshape(data[k], (len(data[k]), -1)) for k in keys], axis=1)

    return probe.linear_probe_accuracy(
        features(train_data),
        np.asarray(train_data["y"], np.int32),
        features(test_data),
        np.asarray(test_data["y"], np.int32),
        num_classes=num_classes,
        l2=l2,
    )


@dataclasses.dataclass(frozen=True)
class FitAndProbeResult:
    """What :func:`fit_and_probe` measured.

    Attributes:
      method: the method's name, e.g. ``"FactorCL-SUP"``.
      accuracies: ``{representation: linear-probe test accuracy in [0, 1]}``.
      history: per-step measurements of :func:`loop.fit` (loss, every term, ...).
      train_seconds: wall time of training (compilation included).
      probe_seconds: wall time of embedding both splits and fitting the probes.
      state: the trained :class:`~factorcl_jax.training.state.TrainState`.
    """

    method: str
    accuracies: dict[str, float]
    history: list[dict[str, float]]
    train_seconds: float
    probe_seconds: float
    state: TrainState

    @property
    def wall_seconds(self) -> float:
        """Training plus probing."""
        return self.train_seconds + self.probe_seconds


@dataclasses.dataclass(frozen=True)
class Start:
    """Where :func:`fit_and_probe` starts training: a state and the data position after it
    (``epoch``, ``next_batch`` of that epoch), e.g. a restored checkpoint's."""

    state: TrainState
    epoch: int = 0
    next_batch: int = 0


def fit_and_probe(
    trainer: Trainer,
    train_data: Data,
    test_data: Data,
    config: RunConfig,
    *,
    representations: Sequence[str] | None = None,
    num_classes: int | None = None,
    progress: bool = True,
    start: Start | None = None,
    fit: Callable[..., tuple[TrainState, list[dict[str, float]]]] = loop.fit,
    on_step: Callable[[TrainState, dict[str, float], int, int], None] | None = None,
    probe_data: Data | None = None,
) -> FitAndProbeResult:
    """Trains ``trainer`` on ``train_data`` as ``config.train`` says, then probes it on
    ``test_data``: the one train-then-probe driver (the ``train`` job runs it too).

    Without ``start`` the state is initialised from ``jax.random.key(config.train.seed)``
    (jitted) on the first rows; ``fit`` (:func:`~factorcl_jax.training.loop.fit`, or the
    data-parallel :func:`~factorcl_jax.training.parallel.fit` with its mesh bound) trains it
    for ``config.train.epochs`` epochs of ``config.train.batch_size`` rows (the seed also
    orders the batches), from ``start``'s data position; then every representation is scored
    by :func:`probe_accuracies` with ``config.probe.l2``. Build the trainer with
    :func:`factorcl_jax.training.build_trainer` from the same config, or bring any
    :class:`~factorcl_jax.training.Trainer` (sequence encoders, your own networks, other
    critics or optimizers).

    Args:
      trainer: what to train; its ``num_classes`` must cover the labels of SUP methods.
      train_data: ``{"x1": [N, ...], "x2": [N, ...], "y": [N]}`` plus ``"mask1"``/``"mask2"``
        for sequences; trained on, and (unless ``probe_data``) the probe is fitted on it.
      test_data: the same keys with ``M`` rows, only seen by the probe.
      config: the run's epochs, batch size, seed (``train``) and probe (``probe``).
      representations: which representations to probe (:data:`REPRESENTATIONS`); default
        ``(config.probe.representation,)``.
      num_classes: label classes of the probe; ``None`` infers ``max(y) + 1``.
      progress: show a progress bar while training.
      start: the state to train from and its data position (default: a fresh state).
      fit: the data loop.
      on_step: called after every step (logging, checkpoints; see ``fit``).
      probe_data: the rows the probe is fitted on, when not ``train_data`` (a process of a
        multi-host run trains on its shard and probes on all rows).

    Returns:
      A :class:`FitAndProbeResult`.
    """
    _check_data(train_data, "train_data")
    _check_data(test_data, "test_data")
    if representations is None:
        representations = (config.probe.representation,)
    representations = _check_representations(representations)
    settings = config.train
    began = time.perf_counter()
    if start is None:
        example = {key: value[: settings.batch_size] for key, value in train_data.items()}
        start = Start(trainer.init(jax.random.key(settings.seed), example))
    state, history = fit(
        trainer,
        start.state,
        train_data,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        seed=settings.seed,
        progress=progress,
        on_step=on_step,
        start_epoch=start.epoch,
        start_batch=start.next_batch,
    )
    state = jax.block_until_ready(state)
    train_seconds = time.perf_counter() - began
    began = time.perf_counter()
    accuracies = probe_accuracies(
        trainer,
        state.params,
        train_data if probe_data is None else probe_data,
        test_data,
        representations=representations,
        num_classes=num_classes,
        l2=config.probe.l2,
    )
    return FitAndProbeResult(
        method=trainer.method.name,
        accuracies=accuracies,
        history=history,
        train_seconds=train_seconds,
        probe_seconds=time.perf_counter() - began,
        state=state,
    )
