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
(:func:`factorcl_jax.builder.build_trainer`), the train job, the examples and the benchmarks.
:data:`PRESETS` are named configs, each defined once here (``factorcl-jax presets`` prints
them); code derives its own settings from a preset with :func:`replace`. A config loads from
TOML, JSON or YAML (``pyyaml`` needed for YAML), takes ``section.key=value`` overrides with type
checking, and round-trips through :func:`to_dict` / :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

from factorcl_jax import augment, objectives, rundir, validation
from factorcl_jax.bounds.tiled import EXCHANGES
from factorcl_jax.networks.layers import COMPUTE_DTYPES
from factorcl_jax.schedules import SCHEDULES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PRESETS",
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
    "flatten",
    "from_dict",
    "get_preset",
    "load_config",
    "replace",
    "save_config",
    "to_dict",
]


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
      ``"gru"`` a GRU of width ``encoder_hidden`` (:mod:`factorcl_jax.encoders`);
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
    :data:`factorcl_jax.augment.AUGMENTATIONS`) drawn per sample; ``scale`` is the standard
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
        if method not in objectives.METHODS:
            raise ConfigError(
                f"unknown method {method!r} in train.methods; choose from "
                f"{', '.join(objectives.METHODS)}"
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
      >>> quick = replace(PRESETS["cpu"], train={"epochs": 1}, model={"embed_dim": 16})
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


_CPU = RunConfig()
PRESETS: dict[str, RunConfig] = {
    "cpu": _CPU,
    "quick": replace(
        _CPU,
        data={"num_samples": 1200},
        model={"encoder_hidden": 32, "embed_dim": 16, "head_hidden": 32, "critic_hidden": 32},
        train={"epochs": 2, "batch_size": 64},
    ),
    "synthetic": replace(_CPU, data={"num_samples": 30000}, train={"epochs": 10}),
    "paper": replace(
        _CPU,
        data={"num_samples": 30000},
        model={
            "encoder_hidden": 512,
            "encoder_layers": 3,
            "embed_dim": 128,
            "head_hidden": 512,
            "critic_hidden": 512,
            "normalize_heads": False,
        },
        train={"epochs": 10, "batch_size": 256, "learning_rate": 1e-4, "lr_schedule": "constant"},
    ),
}
"""Named configurations, each with one meaning:

* ``cpu`` (the default, ``factorcl-jax train`` with no arguments): the synthetic data at 6000
  samples, small MLPs, 8 epochs of Adam at 1e-3 with cosine decay and L2-normalised heads;
  about a minute on 2 CPU cores.
* ``quick``: a smoke test of ``cpu`` (tiny networks, 2 epochs), seconds.
* ``synthetic``: ``cpu`` on the paper's 30000 samples for its 10 epochs
  (``examples/synthetic.py``).
* ``paper``: the paper's synthetic setting: encoders ``100 -> 512 -> 512 -> 512 -> 128``,
  critics of width 512, batch 256, 10 epochs, Adam at a constant 1e-4, 30000 samples.
"""


# ---------------------------------------------------------------- dict round trip


def to_dict(config: RunConfig) -> dict[str, Any]:
    """Plain nested dict (JSON-serialisable) of ``config``."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Checks ``value`` against a dataclass field type, converting lists to tuples."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0])
    if origin is tuple:
        (item,) = {a for a in typing.get_args(annotation) if a is not Ellipsis}
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list of {item.__name__}, got {value!r}")
        return tuple(_coerce(v, item, key) for v in value)
    if origin is dict:
        key_type, value_type = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a table/dict, got {value!r}")
        return {
            _coerce(k, key_type, key): _coerce(v, value_type, f"{key}.{k}")
            for k, v in value.items()
        }
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float, str, bool):
        if not isinstance(value, annotation) or (annotation is int and isinstance(value, bool)):
            raise ConfigError(f"{key} must be {annotation.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {annotation}")  # pragma: no cover


def _section_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_dict(raw: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    """Builds a :class:`RunConfig` from a nested dict, on top of ``base`` (default ``cpu``).

    A ``"preset"`` key picks the base preset. Unknown sections or keys and wrongly typed
    values raise :class:`ConfigError` naming the key.
    """
    raw = dict(raw)
    preset = raw.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"preset must be a name ({', '.join(PRESETS)}), got {preset!r}")
    if preset is not None:
        base = get_preset(preset)
    base = base or PRESETS["cpu"]
    sections = {}
    for section, section_type in _section_types(RunConfig).items():
        current = getattr(base, section)
        values = raw.pop(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"section {section!r} must be a table/dict, got {values!r}")
        fields = _section_types(section_type)
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"unknown key {section}.{key}; known: "
                    f"{', '.join(f'{section}.{k}' for k in fields)}"
                )
            values[key] = _coerce(value, fields[key], f"{section}.{key}")
        sections[section] = dataclasses.replace(current, **values)
    if raw:
        raise ConfigError(
            f"unknown config section(s) {sorted(raw)}; known: "
            f"{', '.join(_section_types(RunConfig))}"
        )
    return RunConfig(**sections)


def get_preset(name: str) -> RunConfig:
    """The preset called ``name``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


# ---------------------------------------------------------------- files and overrides


def _line_of(text: bytes | str, position: int) -> int:
    return text[:position].count(b"\n" if isinstance(text, bytes) else "\n") + 1


def _parse_file(path: pathlib.Path, text: str, suffix: str) -> Any:
    """The config file's raw contents; a syntax error names the file and its line."""
    kind = suffix[1:].upper()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need pyyaml (pip install pyyaml)") from None
        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or type(error).__name__
            raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON at line {error.lineno}: {error.msg}") from None
    except tomllib.TOMLDecodeError as error:
        # tomllib's message ends with "(at line L, column C)".
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except (RecursionError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{path}: not valid {kind}: {type(error).__name__}") from None


def load_config(path: str | pathlib.Path, base: RunConfig | None = None) -> RunConfig:
    """Reads a TOML (``.toml``), JSON (``.json``) or YAML (``.yaml``/``.yml``) config file.

    Raises:
      ConfigError: naming the file (and the line of a syntax error or of bytes that are not
        UTF-8), or the key of a wrong value.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise ConfigError(f"{path}: unknown config format {suffix!r} (use .toml, .json, .yaml)")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: line {_line_of(data, error.start)} is not UTF-8 text "
            f"(byte {data[error.start]:#04x})"
        ) from None
    raw = _parse_file(path, text, suffix)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a table/dict")
    try:
        return from_dict(raw, base)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def save_config(config: RunConfig, path: str | pathlib.Path) -> pathlib.Path:
    """Writes ``config`` as JSON (the resolved config of a run), atomically."""
    return rundir.atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")


def _parse_value(text: str) -> Any:
    """An override's value: JSON when it parses (numbers, lists, null, true), else a string."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        if "," in text:
            return [_parse_value(part.strip()) for part in text.split(",")]
        return text


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Applies ``section.key=value`` overrides (values parsed as JSON, else strings;
    ``a,b`` is a list) with the same type checks as config files."""
    raw: dict[str, dict[str, Any]] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ConfigError(
                f"override {override!r} must look like section.key=value, e.g. train.epochs=3"
            )
        raw.setdefault(section, {})[field] = _parse_value(value.strip())
    return from_dict(raw, base=config)
