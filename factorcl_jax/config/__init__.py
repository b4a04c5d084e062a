"""One description of a run: a tree of typed, frozen dataclasses, and the named presets.

A :class:`RunConfig` has one section per concern, each a frozen dataclass::

    data        built-in synthetic data: sizes, shared/unique blocks, splits
    model       encoders, heads, critics (and the fusion of fused methods)
    train       methods, epochs, batch, optimiser, CLUB iterations, seed
    augment     augmentations of the SSL methods
    memory      row blocks, column tiles, how devices exchange columns, compute dtype
    probe       how the linear probe reads a trained model
    checkpoint  how often to save and what to keep

Every hyperparameter is one field of one section, read from there by the builder
(:func:`factorcl_jax.training.builder.build_trainer`), the train job, the examples and the
benchmarks. :data:`PRESETS` are named configs, each defined once here (``factorcl-jax presets``
prints them); code derives its own settings from a preset with :func:`replace`. A config loads from
TOML, JSON or YAML (``pyyaml`` needed for YAML), takes ``section.key=value`` overrides with type
checking, and round-trips through :func:`to_dict` / :func:`from_dict`.
"""

from factorcl_jax.config.files import apply_overrides, from_dict, load_config, save_config, to_dict
from factorcl_jax.config.presets import PRESETS, get_preset
from factorcl_jax.config.sections import (
    SCHEDULES,
    AugmentConfig,
    CheckpointConfig,
    ConfigError,
    DataConfig,
    MemoryConfig,
    ModelConfig,
    ProbeConfig,
    RunConfig,
    TrainConfig,
    augmentation_hyperparameters,
    flatten,
    replace,
)

__all__ = [
    "PRESETS",
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
    "apply_overrides",
    "augmentation_hyperparameters",
    "flatten",
    "from_dict",
    "get_preset",
    "load_config",
    "replace",
    "save_config",
    "to_dict",
]
