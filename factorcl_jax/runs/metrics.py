"""The metrics log of a run: one JSON line per step in ``metrics.jsonl`` (and TensorBoard
events when ``tensorboardX`` is installed), truncated on resume to the restored step."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

from factorcl_jax.training import parallel

__all__ = ["MetricsLog", "method_slug"]


def method_slug(method: str) -> str:
    """A directory-safe name: ``"Cross+Self+Fact"`` -> ``"cross-self-fact"``."""
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


class MetricsLog:
    """Appends one JSON line per step to ``metrics.jsonl`` (and TensorBoard when available).

    Only the main process of a multi-process run writes; elsewhere writes are no-ops.
    """

    def __init__(self, run_dir: pathlib.Path) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.tensorboard_dir = run_dir / "tensorboard"
        self._writers: dict[str, Any] = {}
        self.enabled = parallel.is_main_process()

    @staticmethod
    def _parse(line: bytes) -> dict[str, Any] | None:
        """The record on ``line``, or ``None`` when it is not one of ours."""
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # torn, edited or not UTF-8
            return None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            return None
        return record

    def truncate(self, method: str, last_step: int) -> None:
        """Drops ``method``'s records after ``last_step``, and a torn last line.

        Every other line stays byte for byte, and the file is replaced atomically, so a kill
        in the middle loses nothing.
        """
        if not self.enabled or not self.path.exists():
            return
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if not data.endswith(b"\n"):
            lines[-1] = b""  # an append cut short by a kill
        kept = []
        for line in lines:
            record = self._parse(line) if line else None
            if record is not None and record.get("method") == method:
                if record["step"] > last_step:
                    continue
            if line:
                kept.append(line + b"\n")
        new = b"".join(kept)
        if new != data:
            temporary = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
            with temporary.open("wb") as handle:
                handle.write(new)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)

    def read(self, method: str) -> list[dict[str, Any]]:
        """``method``'s records, in order (lines that are not records are skipped)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_bytes().split(b"\n"):
            record = self._parse(line) if line else None
            if record is not None and record.get("method") == method:
                records.append(record)
        return records

    def write(self, method: str, measured: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"method": method, **measured}) + "\n")
        writer = self._writer(method)
        if writer is not None:
            for key, value in measured.items():
                if key not in ("step", "epoch"):
                    writer.add_scalar(key, value, measured["step"])

    def _writer(self, method: str):
        if method not in self._writers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                self._writers[method] = None
            else:
                # metrics.jsonl keeps every value; TensorBoard's "NaN or Inf found" log lines
                # would only break the command's one-line error reports.
                logging.getLogger("tensorboardX").setLevel(logging.ERROR)
                self._writers[method] = SummaryWriter(
                    str(self.tensorboard_dir / method_slug(method))
                )
        return self._writers[method]

    def close(self) -> None:
        for writer in self._writers.values():
            if writer is not None:
                writer.close()
