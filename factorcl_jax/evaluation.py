"""Linear-probe evaluation of trained models, and a train-then-probe convenience.

The paper evaluates a contrastive model by freezing it and fitting a logistic-regression
probe on its representation of the training split; the score is the probe's test accuracy
(Liang et al. 2023, Sec. 4). Two representations can be probed (see :func:`models.embed`):

* ``"encoders"``: the concatenated encoder outputs ``[h_1, h_2]`` (``[n, 2 * embed_dim]``
  for the MLP encoders), what the reference code probes;
* ``"factorized"``: the concatenated heads in the order of the method's representations,
  ``[Z_S1, Z_S2, Z_U1, Z_U2]`` for FactorCL (the paper's final representation) and
  ``[Z_1, Z_2]`` for unfactorized baselines.

Data are in-memory mappings ``{"x1": [N, ...], "x2": [N, ...], "y": [N] int}``, the format of
:func:`factorcl_jax.train.fit`.

Example:
  >>> import numpy as np
  >>> from factorcl_jax.data.synthetic import make_synthetic, train_test_split
  >>> train_split, test_split = train_test_split(make_synthetic(300, seed=0))
  >>> as_dict = lambda d: {"x1": d.x1, "x2": d.x2, "y": d.y}
  >>> result = train_and_probe(
  ...     "SimCLR", as_dict(train_split), as_dict(test_split), epochs=1, batch_size=64,
  ...     encoder_hidden=16, encoder_layers=1, embed_dim=8, critic_hidden=16, progress=False)
  >>> sorted(result.accuracies), 0.0 <= result.accuracies["encoders"] <= 1.0
  (['encoders', 'factorized'], True)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from factorcl_jax import augment, objectives, probe, train

__all__ = [
    "REPRESENTATIONS",
    "TrainAndProbeResult",
    "fit_and_probe",
    "num_classes_of",
    "probe_accuracies",
    "probe_accuracy",
    "train_and_probe",
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
    trainer: train.Trainer,
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

    Both splits are embedded once with :func:`train.embed_dataset` (model frozen); for each
    representation a logistic-regression probe (:func:`probe.fit_linear_probe`, standardised
    features, L-BFGS) is fitted on ``train_data`` and scored on ``test_data``.

    Args:
      trainer: the trainer the model was trained with.
      params: ``state.params`` of its :class:`train.TrainState`.
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
    train_features = train.embed_dataset(trainer, params, train_data, batch_size=batch_size)
    test_features = train.embed_dataset(trainer, params, test_data, batch_size=batch_size)
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


def probe_accuracy(
    trainer: train.Trainer,
    params: Any,
    train_data: Data,
    test_data: Data,
    *,
    representation: str = "encoders",
    **kwargs: Any,
) -> float:
    """Linear-probe test accuracy of one representation (see :func:`probe_accuracies`).

    Args:
      trainer, params, train_data, test_data: as in :func:`probe_accuracies`.
      representation: ``"encoders"`` (the reference's evaluation) or ``"factorized"``.
      **kwargs: ``num_classes``, ``batch_size`` and ``l2`` of :func:`probe_accuracies`.

    Returns:
      Test accuracy in ``[0, 1]``.
    """
    return probe_accuracies(
        trainer, params, train_data, test_data, representations=(representation,), **kwargs
    )[representation]


@dataclasses.dataclass(frozen=True)
class TrainAndProbeResult:
    """What :func:`fit_and_probe` (and :func:`train_and_probe`) measured.

    Attributes:
      method: the method's name, e.g. ``"FactorCL-SUP"``.
      accuracies: ``{representation: linear-probe test accuracy in [0, 1]}``.
      history: per-step measurements of :func:`train.fit` (loss, every term, ...).
      train_seconds: wall time of training (compilation included).
      probe_seconds: wall time of embedding both splits and fitting the probes.
      trainer: the trainer that was built.
      state: the trained :class:`train.TrainState`.
    """

    method: str
    accuracies: dict[str, float]
    history: list[dict[str, float]]
    train_seconds: float
    probe_seconds: float
    trainer: train.Trainer
    state: train.TrainState

    @property
    def wall_seconds(self) -> float:
        """Training plus probing."""
        return self.train_seconds + self.probe_seconds


def train_and_probe(
    method: str | objectives.Method,
    train_data: Data,
    test_data: Data,
    *,
    epochs: int = 10,
    batch_size: int = 256,
    learning_rate: float = 1e-4,
    lr_schedule: str = "constant",
    encoder_hidden: int = 512,
    encoder_layers: int = 3,
    embed_dim: int = 128,
    critic_hidden: int = 512,
    normalize_heads: bool = False,
    num_club_iter: int = 1,
    block_size: int | None = None,
    augmentations: tuple[train.Augmentation, train.Augmentation] | None = None,
    representations: Sequence[str] = REPRESENTATIONS,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainAndProbeResult:
    """Trains ``method`` on ``train_data`` and returns linear-probe test accuracies.

    Builds :func:`train.default_trainer` (MLP encoders, Linear-ReLU-Linear heads, concat
    critics, Adam) and runs :func:`fit_and_probe` (:func:`train.fit`, then
    :func:`probe_accuracies`). The defaults are the paper's synthetic setting.

    Args:
      method: a name from :data:`objectives.METHODS` or a :class:`objectives.Method`.
      train_data: ``{"x1": [N, d1], "x2": [N, d2], "y": [N]}``; ``y`` is used by SUP methods
        and by the probe.
      test_data: ``{"x1": [M, d1], "x2": [M, d2], "y": [M]}``, only seen by the probe.
      epochs: passes over ``train_data``.
      batch_size: rows per step (the last partial batch of an epoch is dropped).
      learning_rate: Adam learning rate of the model and of the critics (the peak of the
        schedule).
      lr_schedule: ``"constant"`` or ``"cosine"`` (decay to 0 over the ``epochs`` of
        training), see :func:`train.learning_rate_schedule`.
      encoder_hidden: hidden width of the encoders and heads.
      encoder_layers: hidden layers per encoder.
      embed_dim: width of the encoder outputs and of every head.
      critic_hidden: width of the critics' two hidden layers.
      normalize_heads: L2-normalise the head outputs (:class:`models.MultimodalModel`).
      num_club_iter: CLUB-critic updates per step.
      block_size: rows per block of the pairwise critics (``None``: dense).
      augmentations: ``(augment_x1, augment_x2)`` for SSL methods; ``None`` uses
        :func:`augment.default_augmentation` on both modalities.
      representations: which representations to probe (:data:`REPRESENTATIONS`).
      num_classes: label classes; ``None`` infers ``max(y) + 1`` from both splits.
      seed: seeds the initialisation, the augmentations and the batch order.
      progress: show a progress bar while training.

    Returns:
      A :class:`TrainAndProbeResult` with the accuracies, the training history, the wall
      times, the trainer and the trained state.
    """
    _check_data(train_data, "train_data")
    _check_data(test_data, "test_data")
    if num_classes is None:
        num_classes = num_classes_of(train_data, test_data)
    trainer = train.default_trainer(
        method,
        num_classes=num_classes,
        encoder_hidden=encoder_hidden,
        encoder_layers=encoder_layers,
        embed_dim=embed_dim,
        critic_hidden=critic_hidden,
        normalize_heads=normalize_heads,
        learning_rate=train.learning_rate_schedule(
            learning_rate, lr_schedule, epochs * (len(train_data["y"]) // batch_size)
        ),
        augmentations=augmentations or (augment.default_augmentation,) * 2,
        num_club_iter=num_club_iter,
        block_size=block_size,
    )
    return fit_and_probe(
        trainer,
        train_data,
        test_data,
        epochs=epochs,
        batch_size=batch_size,
        representations=representations,
        num_classes=num_classes,
        seed=seed,
        progress=progress,
    )


def fit_and_probe(
    trainer: train.Trainer,
    train_data: Data,
    test_data: Data,
    *,
    epochs: int,
    batch_size: int,
    representations: Sequence[str] = REPRESENTATIONS,
    num_classes: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainAndProbeResult:
    """Trains a fresh state of ``trainer`` on ``train_data``, then probes it on ``test_data``.

    The state is initialised from ``jax.random.key(seed)`` (jitted) on the first
    ``batch_size`` rows, trained with :func:`train.fit` (``seed`` also orders the batches),
    then every representation is scored by :func:`probe_accuracies`. Use it with any
    :class:`train.Trainer` (sequence encoders, other critics or optimizers);
    :func:`train_and_probe` builds the default one.

    Args:
      trainer: what to train; its ``num_classes`` must cover the labels of SUP methods.
      train_data: ``{"x1": [N, ...], "x2": [N, ...], "y": [N]}`` plus ``"mask1"``/``"mask2"``
        for sequences; trained on, and the probe is fitted on it.
      test_data: the same keys with ``M`` rows, only seen by the probe.
      epochs, batch_size: passes over ``train_data`` and rows per step (drop-last).
      representations: which representations to probe (:data:`REPRESENTATIONS`).
      num_classes: label classes of the probe; ``None`` infers ``max(y) + 1``.
      seed: seeds the initialisation, the augmentations and the batch order.
      progress: show a progress bar while training.

    Returns:
      A :class:`TrainAndProbeResult`.
    """
    _check_data(train_data, "train_data")
    _check_data(test_data, "test_data")
    representations = _check_representations(representations)
    start = time.perf_counter()
    example = {key: value[:batch_size] for key, value in train_data.items()}
    state = trainer.jit_init(jax.random.key(seed), example)
    state, history = train.fit(
        trainer,
        state,
        train_data,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    jax.block_until_ready(state)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    accuracies = probe_accuracies(
        trainer,
        state.params,
        train_data,
        test_data,
        representations=representations,
        num_classes=num_classes,
    )
    return TrainAndProbeResult(
        method=trainer.method.name,
        accuracies=accuracies,
        history=history,
        train_seconds=train_seconds,
        probe_seconds=time.perf_counter() - start,
        trainer=trainer,
        state=state,
    )
