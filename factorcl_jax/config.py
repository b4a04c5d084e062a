"""Run configuration: typed, frozen dataclasses with named presets.

A :class:`RunConfig` has four sections, each a frozen dataclass::

    data        built-in synthetic data: sizes, shared/unique blocks, splits
    model       encoder, head and critic sizes, pairwise block size
    train       methods, epochs, batch, optimiser, augmentations, CLUB iterations, seed
    checkpoint  how often to save and what to keep

Presets: ``cpu`` (the default; minutes on 2 CPU cores) and ``paper`` (the paper's synthetic
setting: hidden 512, embed 128, batch 256, 10 epochs, learning rate 1e-4, 30000 samples).
A config loads from TOML, JSON or YAML (``pyyaml`` needed for YAML), takes ``section.key=value``
overrides with type checking, and round-trips through :func:`to_dict` / :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import types
import typing
from typing import Any

from factorcl_jax import augment, objectives, rundir, validation
from factorcl_jax.train import COMPUTE_DTYPES, EXCHANGES, SCHEDULES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PRESETS",
    "CheckpointConfig",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "from_dict",
    "load_config",
    "save_config",
    "to_dict",
]


class ConfigError(ValueError):
    """A configuration value, key or file is wrong; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The built-in synthetic data (PAPER.md, Experiment 2).

    ``feature_dims`` / ``label_dims`` map latent block names (``"12"`` shared, ``"1"`` and
    ``"2"`` unique) to their sizes and to how many of their coordinates the label reads.
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
    """Encoders ``d -> hidden x layers -> embed_dim``, heads ``-> head width -> embed_dim``
    (L2-normalised when ``normalize_heads``), concat critics with two hidden layers of
    ``critic_hidden``; memory: row blocks (``block_size``), column tiles (``column_block``),
    how devices exchange columns (``exchange``: ``all_gather`` or ``ring``) and the matmul
    dtype (``compute_dtype``: ``float32`` or ``bfloat16``)."""

    encoder_hidden: int = 128
    encoder_layers: int = 2
    embed_dim: int = 64
    critic_hidden: int = 128
    normalize_heads: bool = False
    block_size: int | None = None
    column_block: int | None = None
    exchange: str = "all_gather"
    compute_dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation of every method of the run.

    ``augmentations`` are names from :data:`factorcl_jax.augment.AUGMENTATIONS` (one picked
    per sample); ``probe_representation`` is ``"factorized"`` (the paper's final
    representation, all heads concatenated: ``[Z_S1, Z_S2, Z_U1, Z_U2]`` for FactorCL) or
    ``"encoders"`` (the concatenated encoder outputs).
    """

    methods: tuple[str, ...] = ("FactorCL-SSL", "SimCLR")
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"
    num_club_iter: int = 1
    augmentations: tuple[str, ...] = ("gaussian_noise", "feature_mask")
    noise_scale: float = 0.3
    mask_rate: float = 0.3
    probe_representation: str = "factorized"
    seed: int = 0


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
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)

    def __post_init__(self) -> None:
        _validate(self)


_MINIMUM = {
    "data.num_samples": 1,
    "data.input_dim": 1,
    "model.encoder_hidden": 1,
    "model.encoder_layers": 1,
    "model.embed_dim": 1,
    "model.critic_hidden": 1,
    "model.block_size": 1,
    "model.column_block": 1,
    "train.epochs": 1,
    "train.batch_size": 2,  # a contrastive batch needs a negative for every positive
    "checkpoint.keep_last": 1,
}
"""Smallest value of each integer key; other integers (and dict values) must be >= 0."""
_SEEDS = ("data.seed", "train.seed")


def _check_field(key: str, value: Any) -> None:
    """Range checks every value of its type gets: ints fit int32 (seeds: the PRNG's
    ``[0, 2**32 - 1]``), floats are finite."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if key in _SEEDS:
            validation.check_seed(value, key)
        else:
            validation.check_int(value, key, minimum=_MINIMUM.get(key, 0))
    elif isinstance(value, float):
        validation.check_finite_float(value, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_field(f"{key}.{name}", item)


def _validate(config: RunConfig) -> None:
    try:
        for section in dataclasses.fields(config):
            values = getattr(config, section.name)
            for field in dataclasses.fields(values):
                _check_field(f"{section.name}.{field.name}", getattr(values, field.name))
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None
    for key, allowed in (("exchange", EXCHANGES), ("compute_dtype", COMPUTE_DTYPES)):
        if getattr(config.model, key) not in allowed:
            raise ConfigError(
                f"model.{key} must be one of {allowed}, got {getattr(config.model, key)!r}"
            )
    for key, value in (
        ("data.test_fraction", config.data.test_fraction),
        ("data.validation_fraction", config.data.validation_fraction),
    ):
        if not 0.0 < value < 0.5:
            raise ConfigError(f"{key} must be in (0, 0.5), got {value}")
    if config.train.learning_rate <= 0:
        raise ConfigError(f"train.learning_rate must be > 0, got {config.train.learning_rate}")
    if config.train.noise_scale < 0:
        raise ConfigError(f"train.noise_scale must be >= 0, got {config.train.noise_scale}")
    if not 0 <= config.train.mask_rate <= 1:
        raise ConfigError(f"train.mask_rate must be in [0, 1], got {config.train.mask_rate}")
    try:
        augment.make_augmentation(
            config.train.augmentations, scale=config.train.noise_scale, rate=config.train.mask_rate
        )
    except (TypeError, ValueError) as error:
        raise ConfigError(f"train.augmentations: {error}") from None
    if config.train.lr_schedule not in SCHEDULES:
        raise ConfigError(
            f"train.lr_schedule must be one of {SCHEDULES}, got {config.train.lr_schedule!r}"
        )
    if not config.train.methods:
        raise ConfigError("train.methods must name at least one method")
    for method in config.train.methods:
        if method not in objectives.METHODS:
            raise ConfigError(
                f"unknown method {method!r} in train.methods; choose from "
                f"{', '.join(objectives.METHODS)}"
            )
    if len(set(config.train.methods)) != len(config.train.methods):
        raise ConfigError(f"train.methods names a method twice: {list(config.train.methods)}")
    if config.train.probe_representation not in ("encoders", "factorized"):
        raise ConfigError(
            f"train.probe_representation must be 'encoders' or 'factorized', "
            f"got {config.train.probe_representation!r}"
        )


PRESETS: dict[str, RunConfig] = {
    "cpu": RunConfig(),
    "paper": RunConfig(
        data=DataConfig(num_samples=30000),
        model=ModelConfig(encoder_hidden=512, encoder_layers=3, embed_dim=128, critic_hidden=512),
        train=TrainConfig(epochs=10, batch_size=256, learning_rate=1e-4),
    ),
}
"""Named configurations: ``cpu`` (default) and ``paper``."""


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
