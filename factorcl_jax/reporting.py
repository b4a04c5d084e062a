"""Run directories, readable tables and JSON results shared by scripts and the CLI."""

from __future__ import annotations

import datetime
import json
import math
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

from factorcl_jax.rundir import RunDirectoryError, atomic_write_text

__all__ = ["check_run_dir", "format_table", "make_run_dir", "write_json"]


def check_run_dir(out: str | pathlib.Path) -> pathlib.Path:
    """``out`` as a path, after checking that a run may be written there (nothing created).

    Raises:
      RunDirectoryError: ``out`` is a file, or already holds a finished run's
        ``results.json`` (which is never overwritten).
    """
    path = pathlib.Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"--out {path} is a file, not a directory")
    if (path / "results.json").exists():
        raise RunDirectoryError(
            f"{path} already holds a finished run ({path / 'results.json'}); give a new "
            "--out, or move that run away first"
        )
    return path


def make_run_dir(out: str | pathlib.Path | None, name: str) -> pathlib.Path:
    """Returns ``out`` (created), or a fresh ``runs/NAME-YYYYmmdd-HHMMSS[-k]`` directory.

    Raises:
      RunDirectoryError: ``out`` is a file, or already holds a finished run's
        ``results.json`` (which is never overwritten).
    """
    if out is not None:
        path = check_run_dir(out)
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = pathlib.Path("runs") / f"{name}-{stamp}"
    path, suffix = base, 1
    while path.exists():
        path = base.with_name(f"{base.name}-{suffix}")
        suffix += 1
    path.mkdir(parents=True)
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        magnitude = abs(value)
        if magnitude != 0 and (magnitude >= 1e5 or magnitude < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}" if magnitude < 10 else f"{value:.1f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Formats ``rows`` as an aligned plain-text table of the given ``columns``."""
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max([len(column)] + [len(r[k]) for r in cells]) for k, column in enumerate(columns)]
    line = lambda values: "  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(columns), rule, *(line(r) for r in cells)])


def write_json(path: str | pathlib.Path, payload: Any) -> pathlib.Path:
    """Writes ``payload`` as indented JSON (NaN/inf become ``null``) and returns the path.

    The file is replaced atomically: a reader (or a crash) sees the old file or the new one.
    """

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return atomic_write_text(path, json.dumps(clean(payload), indent=2) + "\n")
