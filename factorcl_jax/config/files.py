"""Configs as dicts and files: the JSON/TOML/YAML round trip and ``section.key=value`` overrides.

A config loads from TOML, JSON or YAML (``pyyaml`` needed for YAML), refusing a key given twice
in any format, takes ``section.key=value`` overrides with type checking, and round-trips
through :func:`to_dict` / :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import types
import typing
from typing import Any

from factorcl_jax.config.presets import PRESETS, get_preset
from factorcl_jax.config.sections import ConfigError, RunConfig
from factorcl_jax.io.atomic import atomic_write_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["apply_overrides", "from_dict", "load_config", "save_config", "to_dict"]


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


# ---------------------------------------------------------------- files and overrides


def _line_of(text: bytes | str, position: int) -> int:
    return text[:position].count(b"\n" if isinstance(text, bytes) else "\n") + 1


class DuplicateKeyError(ConfigError):
    """A mapping of a config file gives the same key twice (which value was meant is unknown)."""


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    """``json.loads``'s ``object_pairs_hook``: a dict, refusing a key given twice."""
    seen: dict[Any, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(f"key {key!r} is given twice")
        seen[key] = value
    return seen


def _yaml_loader() -> type:
    """PyYAML's safe loader, refusing a mapping key given twice (PyYAML keeps the last)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            keys = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in keys:
                    raise DuplicateKeyError(
                        f"key {key!r} is given twice (line {key_node.start_mark.line + 1})"
                    )
                keys.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


def _parse_file(path: pathlib.Path, text: str, suffix: str) -> Any:
    """The config file's raw contents; a syntax error, or a key given twice, names the file
    (and its line)."""
    kind = suffix[1:].upper()
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text, object_pairs_hook=_unique_keys)
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML configs need pyyaml (pip install pyyaml)") from None
        try:
            return yaml.load(text, Loader=_yaml_loader()) or {}
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
    except DuplicateKeyError as error:
        raise DuplicateKeyError(f"{path}: {error}") from None
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
    return atomic_write_text(path, json.dumps(to_dict(config), indent=2) + "\n")


def _parse_value(text: str) -> Any:
    """An override's value: JSON when it parses (numbers, lists, null, true), else a string."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, RecursionError):
        if "," in text:
            return [_parse_value(part.strip()) for part in text.split(",")]
        return text


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Applies ``section.key=value`` overrides (values parsed as JSON, else strings;
    ``a,b`` is a list) with the same type checks as config files; a key given twice is
    refused, as in a file."""
    raw: dict[str, dict[str, Any]] = {}
    for override in overrides:
        key, sep, value = override.partition("=")
        section, dot, field = key.strip().partition(".")
        if not sep or not dot or not field:
            raise ConfigError(
                f"override {override!r} must look like section.key=value, e.g. train.epochs=3"
            )
        if field in raw.get(section, {}):
            raise DuplicateKeyError(f"override {section}.{field} is given twice")
        raw.setdefault(section, {})[field] = _parse_value(value.strip())
    return from_dict(raw, base=config)
