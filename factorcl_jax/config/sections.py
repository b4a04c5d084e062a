"""The sections of one description of a run, their types, ranges and validation.

A :class:`RunConfig` has one section per concern, each a frozen dataclass::

    data        built-in synthetic data: sizes, shared/unique blocks, splits
    model       encoders, heads, critics (and the fusion of fused methods)
    train       methods, epochs, batch, optimiser, CLUB iterations, seed
    augment     augmentations of the SSL methods
    memory      row blocks, column tiles, how devices exchange columns, compute dtype
    probe       how the linear probe reads a trained model
    checkpoint  how often to save and what to keep

Every value is checked when a config is built (types, ranges, names among their choices);
a wrong one raises :class:`ConfigError` naming its key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from factorcl_jax import validation
from factorcl_jax.bounds.tiled import EXCHANGES
from factorcl_jax.models import augment
from factorcl_jax.networks.layers import COMPUTE_DTYPES
from factorcl_jax.objectives import METHODS

__all__ = [
    "SCHEDULES",
    "AugmentConfig",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "MemoryConfig",
    "ModelConfig",
    "ProbeConfig",
    "RunConfig",
    "TrainConfig",
    "augmentation_hyperparameters",
    "flatten",
    "replace",
]

SCHEDULES = ("constant", "cosine")
"""Learning-rate schedules a config may name (``train.lr_schedule``;
:func:`factorcl_jax.training.schedules.learning_rate_schedule`)."""


class ConfigError(ValueError):
    """A configuration value, key or file is wrong; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The built-in synthetic data (:mod:`factorcl_jax.data.synthetic`).

    ``feature_dims`` / ``label_dims`` map latent block names (``"12"`` shared, ``"1"`` and
    ``"2"`` unique) to their sizes and to how many of their coordinates the label reads; each
    modality is mapped to ``input_dim`` features. ``test_fraction`` and
    ``validation_fraction`` of the ``num_samples`` rows are held out.
    """

    num_samples: int = 6000
    feature_dims: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"12": 10, "1": 6, "2": 6}
    )
    label_dims: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"12": 10, "1": 6, "2": 6}
    )
    input_dim: int = 100
    test_fraction: float = 0.2
    validation_fraction: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks of every method.

    * encoders (one per modality), by ``encoder``: ``"mlp"`` maps
      ``d -> encoder_hidden x encoder_layers -> embed_dim``; for sequences ``[n, T, d]``,
      ``"transformer"`` is ``encoder_layers`` pre-LayerNorm blocks of width ``encoder_hidden``
      with ``encoder_heads`` heads and learned positions up to ``max_length`` steps, and
      ``"gru"`` a GRU of width ``encoder_hidden`` (:mod:`factorcl_jax.models.encoders`);
    * a Linear-ReLU-Linear head per representation: ``embed_dim -> head_hidden -> embed_dim``,
      L2-normalised when ``normalize_heads``;
    * a concat critic ``MLP([x; y])`` per term: ``critic_layers`` hidden layers of
      ``critic_hidden``;
    * fused methods (CoMM, InfMasking): ``tokens_per_modality`` tokens of width ``embed_dim``
      per modality into one Transformer block, and the cosine critic at ``temperature``.
    """

    encoder: str = "mlp"
    encoder_hidden: int = 128
    encoder_layers: int = 2
    encoder_heads: int = 4
    max_length: int = 50
    embed_dim: int = 64
    head_hidden: int = 128
    critic_hidden: int = 128
    critic_layers: int = 2
    normalize_heads: bool = True
    tokens_per_modality: int = 4
    temperature: float = 0.1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation of every method of the run: Adam at ``learning_rate`` under ``lr_schedule``
    (``"constant"`` or ``"cosine"`` decay to 0 over the run), the CLUB critics stepped
    ``num_club_iter`` times per step; ``seed`` seeds initialisation, augmentations and the
    batch order."""

    methods: tuple[str, ...] = ("FactorCL-SSL", "SimCLR")
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    num_club_iter: int = 1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Unimodal augmentations of the SSL methods: one of ``names`` (from
    :data:`factorcl_jax.models.augment.AUGMENTATIONS`) drawn per sample; ``scale`` is the standard
    deviation of ``gaussian_noise``, ``rate`` the masked fraction of ``feature_mask`` /
    ``time_mask``."""

    names: tuple[str, ...] = ("gaussian_noise", "feature_mask")
    scale: float = 0.3
    rate: float = 0.3


@dataclasses.dataclass(frozen=True)
class MemoryConfig:
    """Memory and devices: ``block_size`` rows per block of the pairwise critics (``None``:
    dense); ``column_block`` columns per tile (every bound computed over row x column tiles,
    :mod:`factorcl_jax.bounds.tiled`); ``exchange`` how a data-parallel step meets the other
    devices' columns (``"all_gather"`` or ``"ring"``); ``compute_dtype`` of matmuls and pair
    activations (``"float32"`` or ``"bfloat16"``; parameters and reductions stay float32)."""

    block_size: int | None = None
    column_block: int | None = None
    exchange: str = "all_gather"
    compute_dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    """The linear probe (logistic regression, L2 penalty ``l2`` on standardised features) that
    scores a trained model. ``representation`` is ``"factorized"`` (all heads concatenated,
    ``[Z_S1, Z_S2, Z_U1, Z_U2]`` for FactorCL, the fused representation of fused methods) or
    ``"encoders"`` (the concatenated encoder outputs)."""

    representation: str = "factorized"
    l2: float = 1e-4


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    """Save every ``every_steps`` steps (0: at epoch ends only) and at the end; keep the last
    ``keep_last`` checkpoints plus the best one by validation probe accuracy."""

    every_steps: int = 0
    keep_last: int = 2
    keep_best: bool = True


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole run; see the module docstring."""

    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    memory: MemoryConfig = dataclasses.field(default_factory=MemoryConfig)
    probe: ProbeConfig = dataclasses.field(default_factory=ProbeConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        _validate(self)


_MINIMUM = {
    "data.num_samples": 1,
    "data.input_dim": 1,
    "model.encoder_hidden": 1,
    "model.encoder_layers": 1,
    "model.encoder_heads": 1,
    "model.max_length": 1,
    "model.embed_dim": 1,
    "model.head_hidden": 1,
    "model.critic_hidden": 1,
    "model.critic_layers": 1,
    "model.tokens_per_modality": 1,
    "train.epochs": 1,
    "train.batch_size": 2,  # a contrastive batch needs a negative for every positive
    "memory.block_size": 1,
    "memory.column_block": 1,
    "checkpoint.keep_last": 1,
}
"""Smallest value of each integer key; other integers (and dict values) must be >= 0."""
_SEEDS = ("data.seed", "train.seed")
_CHOICES = {
    "model.encoder": ("mlp", "transformer", "gru"),
    "train.lr_schedule": SCHEDULES,
    "memory.exchange": EXCHANGES,
    "memory.compute_dtype": COMPUTE_DTYPES,
    "probe.representation": ("encoders", "factorized"),
}
"""Keys whose value is one of a few names."""


def _check_field(key: str, value: Any) -> None:
    """Range checks every value of its type gets: ints fit int32 (seeds: the PRNG's
    ``[0, 2**32 - 1]``), floats are finite, names are among their choices."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str):
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"{key} must be one of {_CHOICES[key]}, got {value!r}")
    elif isinstance(value, int):
        if key in _SEEDS:
            validation.check_seed(value, key)
        else:
            validation.check_int(value, key, minimum=_MINIMUM.get(key, 0))
    elif isinstance(value, float):
        validation.check_finite_float(value, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_field(f"{key}.{name}", item)


def _check_ranges(config: RunConfig) -> None:
    for key in ("data.test_fraction", "data.validation_fraction"):
        validation.check_finite_float(flatten(config)[key], key, above=0.0, below=0.5)
    validation.check_positive_float(config.train.learning_rate, "train.learning_rate")
    validation.check_positive_float(config.model.temperature, "model.temperature")
    validation.check_finite_float(config.augment.scale, "augment.scale", at_least=0.0)
    validation.check_finite_float(config.augment.rate, "augment.rate", at_least=0.0, at_most=1.0)
    validation.check_finite_float(config.probe.l2, "probe.l2", at_least=0.0)


def _validate(config: RunConfig) -> None:
    try:
        for key, value in flatten(config).items():
            _check_field(key, value)
        _check_ranges(config)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(str(error)) from None
    try:
        augment.make_augmentation(config.augment.names, **augmentation_hyperparameters(config))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"augment.names: {error}") from None
    methods = config.train.methods
    if not methods:
        raise ConfigError("train.methods must name at least one method")
    for method in methods:
        if method not in METHODS:
            raise ConfigError(
                f"unknown method {method!r} in train.methods; choose from {', '.join(METHODS)}"
            )
    if len(set(methods)) != len(methods):
        raise ConfigError(f"train.methods names a method twice: {list(methods)}")


def augmentation_hyperparameters(config: RunConfig) -> dict[str, float]:
    """``{"scale": ..., "rate": ...}`` restricted to what ``augment.names`` take."""
    taken = augment.hyperparameters_of(config.augment.names)
    values = {"scale": config.augment.scale, "rate": config.augment.rate}
    return {name: value for name, value in values.items() if name in taken}


def replace(config: RunConfig, **sections: Mapping[str, Any]) -> RunConfig:
    """``config`` with fields of its sections replaced, validated like any config.

    Example:
      >>> quick = replace(RunConfig(), train={"epochs": 1}, model={"embed_dim": 16})
      >>> quick.train.epochs, quick.model.embed_dim, quick.model.encoder_hidden
      (1, 16, 128)
    """
    known = {field.name for field in dataclasses.fields(RunConfig)}
    unknown = sorted(set(sections) - known)
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; known: {', '.join(known)}")
    try:
        replaced = {
            name: dataclasses.replace(getattr(config, name), **dict(values))
            for name, values in sections.items()
        }
    except TypeError as error:
        raise ConfigError(f"unknown key: {error}") from None
    return dataclasses.replace(config, **replaced)


def flatten(config: RunConfig) -> dict[str, Any]:
    """``{"section.key": value}`` of every field, e.g. ``{"train.epochs": 8, ...}``."""
    return {
        f"{section.name}.{field.name}": getattr(getattr(config, section.name), field.name)
        for section in dataclasses.fields(config)
        for field in dataclasses.fields(getattr(config, section.name))
    }
