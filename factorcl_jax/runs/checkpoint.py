"""Orbax checkpoints of the whole train state, with the data position for exact resume.

Each checkpoint (one Orbax step directory) holds two items:

* ``state``: the :class:`~factorcl_jax.training.state.TrainState` pytree (PRNG keys stored as their
  raw ``uint32`` data), saved with ``StandardSave``;
* ``meta``: JSON with the caller's fields (the run job stores the data position ``epoch`` /
  ``next_batch``, the shuffling ``seed``, the digest of the run's config, its cumulative
  training time and an optional validation ``metric``), the ``step``, and ``state_digest``,
  a SHA-256 of every saved array's bytes.

Orbax writes a checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save (even by ``kill -9``) leaves no half-written step that looks complete.
:meth:`Checkpointer.restore_latest` walks back from the newest step and takes the first
checkpoint that loads and checks out: its ``meta`` reads, its arrays have the structure,
shapes and dtypes of the state asked for (checked on Orbax's metadata *before* any array is
read, so a checkpoint written for another configuration is reported as such), its ``meta``
matches the caller's ``expected`` fields (the run's config digest), and the restored arrays
hash to ``state_digest`` and are finite. Newer checkpoints that fail are reported in one
warning and, with ``move_aside=True`` (what resuming uses), moved to
``DIRECTORY/corrupt/STEP`` so that training on can save those steps again. When checkpoints
exist but *none* passes, nothing is moved: :class:`CheckpointsUnloadable` says which and why,
so a caller never silently starts over. Retention keeps the last ``keep_last`` loadable
checkpoints plus the best by ``metric``. Restoring places every array with the sharding the
caller asks for, so a state saved from one device count restores onto another. A
``read_only`` checkpointer creates and changes nothing. Orbax's own log lines are kept off the
terminal throughout: a failing checkpoint is reported once, by this module.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import os
import pathlib
import sys
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from factorcl_jax.runs.rundir import RunDirectoryError, RunWarning

__all__ = ["Checkpointer", "CheckpointsUnloadable", "quiet_absl"]


@contextlib.contextmanager
def quiet_absl() -> Iterator[None]:
    """Drops absl's log records while open. Orbax logs through absl (an ERROR for every
    unreadable file it meets, INFO for every save); a checkpoint that fails to load is reported
    once by this module instead, and the command's output is its own table and one-line
    reports."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


_FAILED_READS: set[str] = set()
"""Directories of checkpoints whose restore failed (and was reported) in this process."""


class _DropLeftoverReads(logging.Filter):
    """Drops asyncio's "exception was never retrieved" reports of reads of a failed checkpoint."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        text = f"{record.getMessage()} {error}"
        return not any(path in text for path in _FAILED_READS)


def _restore_failed(step_directory: pathlib.Path) -> None:
    """Marks a checkpoint whose restore failed: its leftover reads are not reported, and the
    aborted restore's pending coroutines do not warn "never awaited" when collected."""
    _FAILED_READS.add(str(step_directory))
    warnings.filterwarnings("ignore", r"coroutine '[\w.]+' was never awaited", RuntimeWarning)


def _ignore_reads_finishing_after_a_failed_restore() -> None:
    """Silences the leftovers of TensorStore reads that outlive a failed restore.

    When one array of a checkpoint fails to load, Orbax's restore raises and closes its event
    loop while TensorStore is still reading the other arrays; each of those then reports an
    unraisable exception (``RuntimeError: Event loop is closed``, or the read's own error in
    a coroutine that is collected unawaited), and each read that failed too is logged by
    asyncio as "Task/Future exception was never retrieved" when it is collected (a page of
    tracebacks, at any later moment, even at exit). They are harmless leftovers of a restore
    already reported as failed: the unraisable ones are dropped by an unraisable hook (only
    the closed-loop error, or errors naming a checkpoint directory in :data:`_FAILED_READS`),
    the logged ones by a filter on the ``asyncio`` logger that matches only errors naming such
    a directory. Coroutines that never ran warn "coroutine ... was never awaited" when
    collected; that warning is ignored once a restore has failed.
    """
    asyncio_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _DropLeftoverReads) for f in asyncio_logger.filters):
        asyncio_logger.addFilter(_DropLeftoverReads())
    previous = sys.unraisablehook
    if getattr(previous, "_factorcl_jax", False):
        return

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
            return
        if any(path in str(error) for path in _FAILED_READS):
            return
        previous(unraisable)

    hook._factorcl_jax = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _is_key(leaf: Any) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_saveable(state: Any) -> Any:
    """Replaces typed PRNG keys by their ``uint32`` key data."""
    return jax.tree.map(lambda leaf: jax.random.key_data(leaf) if _is_key(leaf) else leaf, state)


def _abstract_saveable(abstract_state: Any, sharding: jax.sharding.Sharding) -> Any:
    """The restore target: shapes/dtypes of the saved tree, placed with ``sharding``."""

    def leaf(value: Any) -> jax.ShapeDtypeStruct:
        if _is_key(value):
            value = jax.eval_shape(jax.random.key_data, value)
        return jax.ShapeDtypeStruct(value.shape, value.dtype, sharding=sharding)

    return jax.tree.map(leaf, abstract_state)


def _from_saveable(restored: Any, abstract_state: Any) -> Any:
    """Wraps key data back into typed PRNG keys (default implementation) where
    ``abstract_state`` has keys."""
    return jax.tree.map(
        lambda value, like: jax.random.wrap_key_data(value) if _is_key(like) else value,
        restored,
        abstract_state,
    )


def _path_name(key: Any) -> str:
    """One step of a pytree path as saved: a dict key, attribute name or sequence index."""
    for attribute in ("key", "name", "idx"):
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _leaf_layout(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{"params/model/...": (shape, dtype)}`` of every leaf of ``tree``."""
    return {
        "/".join(map(_path_name, path)): (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
    }


def _layout_difference(saved: Mapping[str, Any], expected: Mapping[str, Any]) -> str | None:
    """How a checkpoint's arrays differ from the state asked for, or ``None`` if they agree."""
    missing = sorted(expected.keys() - saved.keys())
    extra = sorted(saved.keys() - expected.keys())
    if missing or extra:
        parts = [f"lacks {missing[0]}" if missing else "", f"has {extra[0]}" if extra else ""]
        what = " and ".join(part for part in parts if part)
        return (
            f"its arrays are another model's ({len(saved)} saved, {len(expected)} expected; it "
            f"{what})"
        )
    for name in sorted(expected):
        if saved[name] != expected[name]:
            (shape, dtype), (want_shape, want_dtype) = saved[name], expected[name]
            return (
                f"its arrays are another model's ({name}: saved {dtype}{list(shape)}, this "
                f"config needs {want_dtype}{list(want_shape)})"
            )
    return None


def state_digest(state: Any) -> str:
    """SHA-256 of every array of ``state`` (keys as their data): structure, dtypes and bytes.

    Replicated multi-device arrays are read from this process's first copy, so every process
    of a multi-host run computes the same digest.
    """
    digest = hashlib.sha256()
    for name, leaf in sorted(
        ("/".join(map(_path_name, path)), leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(_to_saveable(state))
    ):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = leaf.addressable_data(0)
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class CheckpointsUnloadable(RunDirectoryError):
    """Checkpoints exist but none of them loads; nothing was moved or changed.

    Attributes:
      directory: the checkpoint directory.
      skipped: ``[(step, reason)]`` newest first (empty when every checkpoint was moved to
        ``corrupt/`` earlier).
      config_mismatch: every checkpoint failed because it was written for another
        configuration (other arrays, or another config digest), none because it is damaged.
    """

    def __init__(
        self, directory: pathlib.Path, skipped: list[tuple[int, str]], config_mismatch: bool
    ) -> None:
        self.directory = directory
        self.skipped = skipped
        self.config_mismatch = config_mismatch
        if skipped:
            steps = ", ".join(str(step) for step, _ in skipped)
            detail = (
                f"none of its {len(skipped)} checkpoint(s) loads: {steps} failed to load "
                f"(newest: {skipped[0][1]})"
            )
        else:
            detail = f"its checkpoints were moved to {directory / 'corrupt'} earlier"
        super().__init__(f"{directory}: {detail}")


class _ConfigMismatch(ValueError):
    """A checkpoint written for another configuration (not a damaged one)."""


class Checkpointer:
    """Saves and restores train states under ``directory`` with Orbax.

    Use it as a context manager (or call :meth:`close`) so Orbax's resources are released.

    Args:
      directory: where step directories live (created unless ``read_only``).
      keep_last: loadable checkpoints kept, newest first.
      keep_best: also keep the checkpoint with the highest ``metric``.
      read_only: only restore: create, save, move and delete nothing.
    """

    def __init__(
        self,
        directory: str | pathlib.Path,
        *,
        keep_last: int = 2,
        keep_best: bool = True,
        read_only: bool = False,
    ) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"`keep_last` must be an int >= 1, got {keep_last!r}")
        self.directory = pathlib.Path(directory).absolute()
        if os.path.lexists(self.directory) and not self.directory.is_dir():
            raise ValueError(f"checkpoint directory {self.directory} is not a directory")
        self.keep_last = keep_last
        self.keep_best = keep_best
        self.read_only = read_only
        self.skipped: list[tuple[int, str]] = []
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False,
            create=not read_only,
            cleanup_tmp_directories=not read_only,
            read_only=read_only,
            save_interval_steps=0 if read_only else 1,
        )
        with quiet_absl():
            self.manager = ocp.CheckpointManager(
                self.directory,
                options=options,
                item_handlers={
                    "state": ocp.StandardCheckpointHandler(),
                    "meta": ocp.JsonCheckpointHandler(),
                },
            )

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint directory, oldest first."""
        with quiet_absl():
            self.manager.reload()
            return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
        """Saves ``state`` and ``meta`` (JSON-serialisable) as ``step``, then applies retention.

        ``meta`` is stored with ``step`` and the ``state_digest`` of ``state`` added.
        """
        meta = {**meta, "step": int(step), "state_digest": state_digest(state)}
        with quiet_absl():
            self.manager.save(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(_to_saveable(state)),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=True,
            )
            self.manager.wait_until_finished()
        self._apply_retention()

    def read_meta(self, step: int) -> dict[str, Any] | None:
        """The ``meta`` item of ``step``, or ``None`` when it cannot be read."""
        try:
            return self._meta(step)
        except Exception:  # any unreadable checkpoint is skipped, not fatal
            return None

    def _meta(self, step: int) -> dict[str, Any]:
        with quiet_absl():
            restored = self.manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
        meta = restored["meta"]
        if not isinstance(meta, dict):
            raise ValueError(f"its meta is not a JSON object ({type(meta).__name__})")
        if meta.get("step") != step:
            raise ValueError(f"its meta names step {meta.get('step')!r}, its directory {step}")
        return dict(meta)

    def restore_latest(
        self,
        abstract_state: Any,
        *,
        sharding: jax.sharding.Sharding | None = None,
        move_aside: bool = False,
        expected: Mapping[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]] | None:
        """The newest checkpoint that loads and checks out, as ``(state, meta)``.

        Newer checkpoints that fail are reported in one
        :class:`~factorcl_jax.runs.rundir.RunWarning` and listed in :attr:`skipped` as
        ``(step, reason)``, newest first.

        Args:
          abstract_state: the state's structure, e.g. ``jax.eval_shape(trainer.init, ...)``.
          sharding: where to place every array (default: the first local device).
          move_aside: move each failing checkpoint newer than the one restored to
            ``DIRECTORY/corrupt/STEP`` (kept, never deleted), so that its step can be saved
            again.
          expected: ``meta`` fields a checkpoint must match to be taken (e.g. the digest of
            the run's config); a checkpoint whose ``meta`` lacks a field is not checked on it.

        Returns:
          ``(state, meta)``, or ``None`` when there are no checkpoints at all.

        Raises:
          CheckpointsUnloadable: there are checkpoints (or checkpoints moved to ``corrupt/``)
            but none loads. Nothing is moved, even with ``move_aside``.
        """
        if move_aside and self.read_only:
            raise ValueError("a read_only Checkpointer cannot move checkpoints aside")
        sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = _abstract_saveable(abstract_state, sharding)
        # Before the first attempt: the leftovers of a failed one can arrive even before its
        # exception has propagated here.
        _ignore_reads_finishing_after_a_failed_restore()
        self.skipped = []
        mismatched = []
        found = None
        for step in reversed(self.steps()):
            try:
                found = self._restore(step, target, abstract_state, dict(expected or {}))
            except Exception as error:  # fall back to an older checkpoint
                _restore_failed(self.directory / str(step))
                self.skipped.append((step, " ".join(str(error).split())[:200] or repr(error)))
                mismatched.append(isinstance(error, _ConfigMismatch))
                continue
            break
        if self.skipped:
            # Collect the failed restores' leftovers now, while the filters above apply (and
            # inside the caller's warning handling), rather than at some later moment.
            gc.collect()
        if found is None:
            if self.skipped or self._moved_aside_earlier():
                raise CheckpointsUnloadable(
                    self.directory, list(self.skipped), bool(mismatched) and all(mismatched)
                )
            return None
        if self.skipped:
            self._report_skipped(move_aside)
        return found

    def _restore(
        self, step: int, target: Any, abstract_state: Any, expected: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """One checkpoint, checked in order of cost: meta, array layout, arrays, digest."""
        try:
            meta = self._meta(step)
        except Exception as error:
            raise ValueError(f"its meta does not read ({type(error).__name__}: {error})") from None
        for field, value in expected.items():
            if field in meta and meta[field] != value:
                raise _ConfigMismatch(
                    f"it was written under another config ({field} {meta[field]}, expected {value})"
                )
        try:
            with quiet_absl():
                saved = self.manager.item_metadata(step)["state"]
            layout = _leaf_layout(saved)
        except Exception as error:
            raise ValueError(
                f"its array metadata does not read ({type(error).__name__}: {error})"
            ) from None
        difference = _layout_difference(layout, _leaf_layout(target))
        if difference is not None:
            raise _ConfigMismatch(difference)
        with quiet_absl():
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
            )
        state = _from_saveable(restored["state"], abstract_state)
        if int(state.step) != step:
            raise ValueError(f"step mismatch: directory {step}, state {int(state.step)}")
        if "state_digest" in meta and state_digest(state) != meta["state_digest"]:
            raise ValueError("its arrays differ from what was saved (state digest mismatch)")
        leaves = [
            leaf for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)
        ]
        if not all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in leaves):
            raise ValueError("non-finite values in the saved state")
        return state, meta

    def _moved_aside_earlier(self) -> bool:
        corrupt = self.directory / "corrupt"
        return corrupt.is_dir() and any(corrupt.iterdir())

    def _report_skipped(self, move_aside: bool) -> None:
        steps = ", ".join(str(step) for step, _ in self.skipped)
        if move_aside:
            corrupt = self.directory / "corrupt"
            for step, _ in self.skipped:
                corrupt.mkdir(exist_ok=True)
                target, suffix = corrupt / str(step), 1
                while os.path.lexists(target):
                    target = corrupt / f"{step}-{suffix}"
                    suffix += 1
                os.rename(self.directory / str(step), target)
            self.steps()
            what = f"moved to {corrupt}"
        else:
            what = "skipped"
        warnings.warn(
            f"checkpoint(s) {steps} in {self.directory} failed to load and were {what} "
            f"(newest: {self.skipped[0][1]})",
            RunWarning,
            stacklevel=3,
        )

    def _apply_retention(self) -> None:
        metas = {step: self.read_meta(step) for step in self.steps()}
        loadable = [step for step, meta in metas.items() if meta is not None]
        keep = set(loadable[-self.keep_last :])
        scored = [
            (metas[step]["metric"], step)
            for step in loadable
            if metas[step].get("metric") is not None
        ]
        if self.keep_best and scored:
            keep.add(max(scored)[1])
        with quiet_absl():
            for step in loadable:
                if step not in keep:
                    self.manager.delete(step)

    def close(self) -> None:
        """Waits for pending work and releases Orbax resources."""
        with quiet_absl():
            self.manager.close()
