"""Orbax checkpoints of the whole train state, with the data position for exact resume.

Each checkpoint (one Orbax step directory) holds two items:

* ``state``: the :class:`~factorcl_jax.state.TrainState` pytree (PRNG keys stored as their
  raw ``uint32`` data), saved with ``StandardSave``;
* ``meta``: JSON with the data position (``epoch``, ``next_batch``, shuffling ``seed``), the
  step, the run config and an optional validation ``metric``.

Orbax writes a checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save (even by ``kill -9``) leaves no half-written step that looks complete.
:meth:`Checkpointer.restore_latest` walks back from the newest step, skipping any checkpoint
that fails to load or whose contents disagree with its metadata (one warning line for all of
them); it never deletes one. With ``move_aside=True`` (what resuming uses) the skipped ones are
moved to ``DIRECTORY/corrupt/STEP`` so that training on can save those steps again.
Retention keeps the last ``keep_last`` loadable checkpoints plus the best by ``metric``.
Restoring places every array with the sharding the caller asks for, so a state saved from one
device count restores onto another. A ``read_only`` checkpointer creates and changes nothing.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pathlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from factorcl_jax.rundir import RunWarning

__all__ = ["Checkpointer"]


@contextlib.contextmanager
def _quiet_absl() -> Iterator[None]:
    """Orbax logs an ERROR for every unreadable file it meets; a checkpoint that fails to
    load is reported once by :meth:`Checkpointer.restore_latest` instead."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
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
    unraisable ``RuntimeError: Event loop is closed``, and each read that failed too is
    logged by asyncio as "Task/Future exception was never retrieved" when it is collected
    (a page of tracebacks, at any later moment, even at exit). They are harmless leftovers
    of a restore already reported as failed: the first kind is dropped by an unraisable
    hook, the second by a filter on the ``asyncio`` logger that matches only errors naming a
    checkpoint directory in :data:`_FAILED_READS`. Its coroutines that never ran warn
    "coroutine ... was never awaited" when collected; that warning is ignored once a restore
    has failed.
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
        # Orbax logs every save and restore at INFO; a training run only needs its warnings.
        logging.getLogger("absl").setLevel(logging.WARNING)
        with _quiet_absl():
            self.manager = ocp.CheckpointManager(
                self.directory, options=options, item_names=("state", "meta")
            )

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint directory, oldest first."""
        with _quiet_absl():
            self.manager.reload()
            return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        """Saves ``state`` and ``meta`` (JSON-serialisable) as ``step``, then applies retention."""
        meta = {**meta, "step": int(step)}
        self.manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_to_saveable(state)), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self.manager.wait_until_finished()
        self._apply_retention()

    def read_meta(self, step: int) -> dict[str, Any] | None:
        """The ``meta`` item of ``step``, or ``None`` when it cannot be read."""
        try:
            with _quiet_absl():
                restored = self.manager.restore(
                    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )
            meta = dict(restored["meta"])
        except Exception:  # any unreadable checkpoint is skipped, not fatal
            return None
        return meta if meta.get("step") == step else None

    def restore_latest(
        self,
        abstract_state: Any,
        *,
        sharding: jax.sharding.Sharding | None = None,
        move_aside: bool = False,
    ) -> tuple[Any, dict[str, Any]] | None:
        """The newest checkpoint that loads and checks out, as ``(state, meta)``, or ``None``.

        Checkpoints that fail are reported in one :class:`~factorcl_jax.rundir.RunWarning`
        and listed in :attr:`skipped` as ``(step, reason)``, newest first.

        Args:
          abstract_state: the state's structure, e.g. ``jax.eval_shape(trainer.init, ...)``.
          sharding: where to place every array (default: the first local device).
          move_aside: move each failing checkpoint to ``DIRECTORY/corrupt/STEP`` (kept, never
            deleted), so that its step can be saved again.
        """
        if move_aside and self.read_only:
            raise ValueError("a read_only Checkpointer cannot move checkpoints aside")
        sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = _abstract_saveable(abstract_state, sharding)
        # Before the first attempt: the leftovers of a failed one can arrive even before its
        # exception has propagated here.
        _ignore_reads_finishing_after_a_failed_restore()
        self.skipped = []
        found = None
        for step in reversed(self.steps()):
            try:
                with _quiet_absl():
                    restored = self.manager.restore(
                        step,
                        args=ocp.args.Composite(
                            state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()
                        ),
                    )
                state = _from_saveable(restored["state"], abstract_state)
                meta = dict(restored["meta"])
                self._check(step, state, meta)
            except Exception as error:  # fall back to an older checkpoint
                _restore_failed(self.directory / str(step))
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:160]
                self.skipped.append((step, reason))
                continue
            found = state, meta
            break
        if self.skipped:
            # Collect the failed restores' leftovers now, while the filters above apply (and
            # inside the caller's warning handling), rather than at some later moment.
            gc.collect()
            self._report_skipped(move_aside)
        return found

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

    @staticmethod
    def _check(step: int, state: Any, meta: dict[str, Any]) -> None:
        if meta.get("step") != step or int(state.step) != step:
            raise ValueError(
                f"step mismatch: directory {step}, meta {meta.get('step')}, state {int(state.step)}"
            )
        leaves = [
            leaf for leaf in jax.tree.leaves(state) if jnp.issubdtype(leaf.dtype, jnp.floating)
        ]
        if not all(bool(np.isfinite(np.asarray(leaf)).all()) for leaf in leaves):
            raise ValueError("non-finite values in the saved state")

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
        for step in loadable:
            if step not in keep:
                self.manager.delete(step)

    def close(self) -> None:
        """Waits for pending work and releases Orbax resources."""
        self.manager.close()
