"""Whole files written atomically: a reader (or a crash) sees the old file or the new one."""

from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
from collections.abc import Mapping
from typing import Any

__all__ = ["atomic_write_text", "write_json"]


def atomic_write_text(path: str | pathlib.Path, text: str) -> pathlib.Path:
    """Writes ``text`` to ``path`` through a temporary file and an atomic rename.

    A crash leaves either the old file or the new one, never a truncated mix.
    """
    path = pathlib.Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return path


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
