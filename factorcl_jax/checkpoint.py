"""Orbax checkpoints of the whole train state, with the data position for exact resume.

Each checkpoint (one Orbax step directory) holds two items:

* ``state``: the :class:`~factorcl_jax.train.TrainState` pytree (PRNG keys stored as their
  raw ``uint32`` data), saved with ``StandardSave``;
* ``meta``: JSON with the data position (``epoch``, ``next_batch``, shuffling ``seed``), the
  step, the run config and an optional validation ``metric``.

Orbax writes a checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save (even by ``kill -9``) leaves no half-written step that looks complete.
:meth:`Checkpointer.restore_latest` walks back from the newest step, skipping (with a warning)
any checkpoint that fails to load or whose contents disagree with its metadata; it never
deletes one. Retention keeps the last ``keep_last`` loadable checkpoints plus the best by
``metric``. Restoring places every array with the sharding the caller asks for, so a state
saved from one device count restores onto another.
"""

from __future__ import annotations

import logging
import pathlib
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]


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

    Args:
      directory: where step directories live (created).
      keep_last: loadable checkpoints kept, newest first.
      keep_best: also keep the checkpoint with the highest ``metric``.
    """

    def __init__(
        self, directory: str | pathlib.Path, *, keep_last: int = 2, keep_best: bool = True
    ) -> None:
        if keep_last < 1:
            raise ValueError(f"`keep_last` must be >= 1, got {keep_last}")
        self.directory = pathlib.Path(directory).absolute()
        self.keep_last = keep_last
        self.keep_best = keep_best
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, create=True, cleanup_tmp_directories=True
        )
        # Orbax logs every save and restore at INFO; a training run only needs its warnings.
        logging.getLogger("absl").setLevel(logging.WARNING)
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "meta")
        )

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint directory, oldest first."""
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
            restored = self.manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )
            meta = dict(restored["meta"])
        except Exception:  # any unreadable checkpoint is skipped, not fatal
            return None
        return meta if meta.get("step") == step else None

    def restore_latest(
        self, abstract_state: Any, *, sharding: jax.sharding.Sharding | None = None
    ) -> tuple[Any, dict[str, Any]] | None:
        """The newest checkpoint that loads and checks out, as ``(state, meta)``, or ``None``.

        Args:
          abstract_state: the state's structure, e.g. ``jax.eval_shape(trainer.init, ...)``.
          sharding: where to place every array (default: the first local device).
        """
        sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = _abstract_saveable(abstract_state, sharding)
        for step in reversed(self.steps()):
            try:
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
                warnings.warn(
                    f"skipping checkpoint {self.directory / str(step)}: "
                    f"{type(error).__name__}: {str(error)[:200]}",
                    stacklevel=2,
                )
                continue
            return state, meta
        return None

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
