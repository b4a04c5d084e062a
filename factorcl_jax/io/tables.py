"""Tables a person can read: aligned plain-text tables, and the numeric tables the command
reads (``.npy`` / ``.npz`` / ``.csv``)."""

from __future__ import annotations

import math
import os
import pathlib
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from factorcl_jax.validation import check_real_array

__all__ = ["TABLE_SUFFIXES", "TableError", "format_table", "load_table"]


class TableError(ValueError):
    """A data file that cannot be read as a table; the message names the file and why."""


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


TABLE_SUFFIXES = (".npy", ".npz", ".csv")


def load_table(path: pathlib.Path, key: str | None) -> np.ndarray:
    """A ``[rows, features]`` float64 array from ``.npy``/``.npz``/``.csv``; 1-D is one feature.

    Never unpickles (``allow_pickle=False``); refuses, in one line naming the file, what is
    missing, a directory, empty, unreadable, not of its format, not real numbers (complex
    included), non-finite, beyond float64's range, or without rows or features.
    """
    if not os.path.lexists(path):
        raise TableError(f"file not found: {path}")
    if path.is_dir():
        raise TableError(f"{path} is a directory, not a data file")
    if not path.exists():
        raise TableError(f"{path} is a broken symbolic link")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise TableError(f"{path}: unsupported file type {path.suffix!r} (use .npy, .npz, .csv)")
    try:
        if path.stat().st_size == 0:
            raise TableError(f"{path} is empty (0 bytes)")
        # NumPy leaks the file it opened when a .npz is not a zip; open it here instead.
        if key is not None and suffix != ".npz":
            raise TableError(f"{path} is not an .npz: array names (--x-key/--y-key) do not apply")
        if suffix == ".npy":
            with path.open("rb") as handle:
                array = np.load(handle, allow_pickle=False)
        elif suffix == ".npz":
            with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
                names = ", ".join(archive.files) or "no arrays"
                if key is None:
                    raise TableError(
                        f"{path} is an .npz: say which array with --x-key/--y-key (it has {names})"
                    )
                if key not in archive.files:
                    raise TableError(f"{path} has no array {key!r} (it has {names})")
                array = archive[key]
        else:
            array = _load_csv(path)
    except TableError:
        raise
    except OSError as error:
        raise TableError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as error:
        detail = " ".join(str(error).split())[:200] or type(error).__name__
        raise TableError(f"{path} is not a valid {suffix[1:]} file: {detail}") from None
    if not isinstance(array, np.ndarray):
        raise TableError(f"{path}: expected an array, got {type(array).__name__}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise TableError(f"{path}: expected a [rows, features] array, got shape {array.shape}")
    try:
        return check_real_array(array, str(path), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TableError(str(error)) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _load_csv(path: pathlib.Path) -> np.ndarray:
    """Comma-separated numbers, one row per line (UTF-8, with or without a byte-order mark).

    A first line none of whose fields is a number is a header and skipped; a first line
    with some numbers and some garbage is a malformed row, never silently dropped.
    """
    read = lambda skip: np.loadtxt(
        path, delimiter=",", ndmin=2, dtype=np.float64, skiprows=skip, encoding="utf-8-sig"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # NumPy's "input contained no data"
        try:
            array = read(0)
        except ValueError as first_line_error:
            with path.open(encoding="utf-8-sig") as handle:
                first = handle.readline()
            if any(_is_number(field) for field in first.split(",")):
                raise first_line_error from None
            array = read(1)
            if array.size == 0:  # nothing after the "header": it was the data, and bad
                raise first_line_error from None
    if array.size == 0:
        raise TableError(f"{path} holds no numbers")
    return array
