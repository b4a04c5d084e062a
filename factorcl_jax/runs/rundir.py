"""Run directories treated like a database's data: never clobbered, locked while in use.

A run directory holds a run when any of :data:`RUN_FILES` is in it; one policy decides what a
job may do with it. :func:`open_run_dir` is what a resumable job (``factorcl-jax train``) uses:

* a fresh or empty directory (or one without run files) is used as is;
* a directory holding a run is refused with :class:`RunDirectoryError` unless the job
  resumes it (``resume=True``) or moves it aside (``overwrite=True``: every entry goes to a
  sibling ``DIR.old-YYYYmmdd-HHMMSS``; nothing is deleted);
* resuming needs the run's ``config.json``, readable, and a requested config equal to it
  except for :data:`RESUMABLE_KEYS` (checkpoint cadence and retention).

One-shot scripts (the benchmarks, the examples, ``factorcl-jax estimate``) use
:func:`check_run_dir` / :func:`make_run_dir`: the same refusal of a directory holding a run,
without resuming (they write ``results.json`` last, which marks a finished run).

For its whole life a job holds an exclusive ``fcntl.flock`` on ``DIR/.lock``, which also
records its pid while held (and is left empty on release, so a job that changed nothing
leaves the directory byte for byte as it was); a second job on the same directory is refused
naming that pid. The kernel drops the lock when the process dies, even by ``kill -9``, so a
stale ``.lock`` never blocks.

Whole files are written with :func:`~factorcl_jax.io.atomic.atomic_write_text` (a temporary
file in the same directory, flushed and renamed over the target), so a reader never sees half
a file.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import hashlib
import json
import os
import pathlib
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks
    fcntl = None

__all__ = [
    "LOCK_FILE",
    "RESUMABLE_KEYS",
    "RUN_FILES",
    "RunDirectoryError",
    "RunLock",
    "RunWarning",
    "check_run_dir",
    "config_differences",
    "config_digest",
    "make_run_dir",
    "move_aside",
    "open_run_dir",
    "read_saved_config",
    "run_files",
]

LOCK_FILE = ".lock"
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "results.json",
    "checkpoints",
    "tensorboard",
    "training_curves.png",
    "bound_terms.png",
    "probe_accuracy.png",
)
"""What a train job writes; a directory holding any of them holds a run."""
RESUMABLE_KEYS = ("checkpoint.every_steps", "checkpoint.keep_last", "checkpoint.keep_best")
"""Config keys a resumed run may change: they decide what is kept, not what is computed."""


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked; the message says why and what to do."""


class RunWarning(UserWarning):
    """Something about a run directory the user should know, in one line (e.g. a checkpoint
    moved aside); the command shows these as ``factorcl-jax: warning: ...``."""


def run_files(path: str | pathlib.Path) -> list[str]:
    """The entries of :data:`RUN_FILES` present in ``path``."""
    path = pathlib.Path(path)
    return [name for name in RUN_FILES if os.path.lexists(path / name)]


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and not prefix:
            flat.update(_flatten(value, f"{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_differences(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Dotted keys (``"train.epochs"``) whose values differ between two config dicts."""
    old, new = _flatten(saved), _flatten(requested)
    return sorted(key for key in old.keys() | new.keys() if old.get(key, ...) != new.get(key, ...))


def config_digest(config: Mapping[str, Any]) -> str:
    """A digest of everything in a config dict that decides what a run computes: a SHA-256 of
    its canonical JSON without :data:`RESUMABLE_KEYS`. Checkpoints store it, so a checkpoint
    written under another config is recognised as such."""
    flat = {k: v for k, v in _flatten(config).items() if k not in RESUMABLE_KEYS}
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]


def read_saved_config(path: str | pathlib.Path) -> dict[str, Any]:
    """The parsed ``config.json`` of the run in ``path``.

    Raises:
      RunDirectoryError: when it is missing, unreadable, not UTF-8 JSON, or not an object.
    """
    config_path = pathlib.Path(path) / "config.json"
    if not config_path.is_file():
        raise RunDirectoryError(f"{path} holds no config.json, so it is not a run to resume")
    try:
        raw = json.loads(config_path.read_bytes().decode("utf-8"))
    except OSError as error:
        raise RunDirectoryError(f"cannot read {config_path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        where = f" (line {error.lineno})" if isinstance(error, json.JSONDecodeError) else ""
        raise RunDirectoryError(
            f"{config_path} is corrupt{where}: {type(error).__name__}; restore it or start a "
            "new run in another directory"
        ) from None
    if not isinstance(raw, dict):
        raise RunDirectoryError(f"{config_path} is corrupt: expected a JSON object")
    return raw


def move_aside(path: str | pathlib.Path) -> pathlib.Path:
    """Moves every entry of ``path`` but its lock into a new sibling ``NAME.old-STAMP``."""
    path = pathlib.Path(path)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = path.with_name(f"{path.name}.old-{stamp}")
    target, suffix = base, 1
    while os.path.lexists(target):
        target = base.with_name(f"{base.name}-{suffix}")
        suffix += 1
    target.mkdir()
    for entry in sorted(path.iterdir()):
        if entry.name != LOCK_FILE:
            os.rename(entry, target / entry.name)
    return target


class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` holding this process's pid.

    Raises:
      RunDirectoryError: when another process holds it (naming that process's pid).
    """

    def __init__(self, directory: str | pathlib.Path) -> None:
        self.path = pathlib.Path(directory) / LOCK_FILE
        self._handle = None

    def acquire(self) -> RunLock:
        handle = open(self.path, "a+", encoding="utf-8")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    handle.close()
                    raise
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                handle.close()
                raise RunDirectoryError(
                    f"{self.path.parent} is in use by another run (pid {holder}); wait for it "
                    "to finish or use another --out"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
            if fcntl is not None:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _check(
    path: pathlib.Path,
    requested_config: Mapping[str, Any] | None,
    resume: bool,
    overwrite: bool,
    resumable: bool = True,
) -> list[str]:
    """Refuses what a job may not do with ``path``, reading only; returns the run files found.

    ``resumable`` jobs (``factorcl-jax train``) name ``--resume`` and ``--overwrite`` as ways
    on; one-shot scripts only another ``--out``.
    """
    if os.path.lexists(path) and not path.is_dir():
        raise RunDirectoryError(f"{path} exists and is not a directory")
    if resume:
        if not path.is_dir():
            raise RunDirectoryError(f"--resume: run directory {path} does not exist")
        saved = read_saved_config(path)
        differing = [
            key
            for key in config_differences(saved, requested_config or {})
            if key not in RESUMABLE_KEYS
        ]
        if differing:
            raise RunDirectoryError(
                f"--resume needs the run's own config: {path / 'config.json'} differs in "
                f"{', '.join(differing)}"
            )
        return []
    existing = run_files(path) if path.is_dir() else []
    if existing and not overwrite:
        ways = (
            "continue it with --resume, move it aside with --overwrite, or choose another --out"
            if resumable
            else "choose another --out, or move that run away first"
        )
        raise RunDirectoryError(f"{path} already holds a run ({', '.join(existing)}); {ways}")
    return existing


def check_run_dir(out: str | pathlib.Path) -> pathlib.Path:
    """``out`` as a path, after checking that a one-shot script (a benchmark, an example, the
    ``estimate`` command) may write a new run there; nothing is created.

    Raises:
      RunDirectoryError: ``out`` is a file, or already holds a run (:func:`run_files`).
    """
    path = pathlib.Path(out)
    _check(path, None, resume=False, overwrite=False, resumable=False)
    return path


def make_run_dir(out: str | pathlib.Path | None, name: str) -> pathlib.Path:
    """Returns ``out`` (created, after :func:`check_run_dir`), or a fresh
    ``runs/NAME-YYYYmmdd-HHMMSS[-k]`` directory.

    Raises:
      RunDirectoryError: ``out`` is a file, or already holds a run.
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


@contextlib.contextmanager
def open_run_dir(
    path: str | pathlib.Path,
    requested_config: Mapping[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    lock: bool = True,
) -> Iterator[pathlib.Path]:
    """Checks, locks and yields the run directory ``path`` for a train job (see module doc).

    A refusal changes nothing on disk: the checks run before anything is created, and again
    under the lock (another job may have started in between).

    Args:
      path: the run directory (created when missing, unless resuming).
      requested_config: the job's resolved config as a dict (``config.to_dict``).
      resume: continue the run in ``path``.
      overwrite: move an existing run aside first (not with ``resume``).
      lock: take the lock (``False`` on the non-main processes of a multi-process job,
        which share the main process's directory and only check it).

    Raises:
      RunDirectoryError: one line saying why ``path`` cannot be used.
    """
    path = pathlib.Path(path)
    if resume and overwrite:
        raise RunDirectoryError("--resume and --overwrite exclude each other")
    _check(path, requested_config, resume, overwrite)
    if not lock:
        yield path
        return
    path.mkdir(parents=True, exist_ok=True)
    with RunLock(path):
        if _check(path, requested_config, resume, overwrite):
            moved = move_aside(path)
            warnings.warn(f"moved the earlier run in {path} to {moved}", RunWarning, stacklevel=3)
        yield path
