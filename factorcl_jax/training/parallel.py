"""Data-parallel FactorCL over devices and hosts, with negatives from the global batch.

The per-device step is :meth:`factorcl_jax.Trainer.step` with ``axis_name`` set: each
device embeds its ``n_local`` rows of the global batch, meets the columns of every device
(gathered by ``all_gather``, or with ``Trainer.exchange == "ring"`` passed around the devices
by ``ppermute`` one block at a time, so per-device memory does not grow with the device
count), scores ``[n_local, n_global]`` pairs and averages losses, measurements and gradients
over devices, so one step on ``D`` devices equals one step on one device with the same global
batch. This module only maps that function:

* :func:`sharded_step` — ``jax.shard_map`` over a 1-D ``('data',)`` mesh (recommended; works
  across hosts). The state is replicated (``P()``), the batch split by rows (``P('data')``).
* :func:`pmapped_step` — ``jax.pmap`` for pmap-style code: the state carries a leading device
  axis (:func:`replicate`), the batch is ``[D, n_local, ...]`` (:func:`split_for_pmap`).

Multi-host (one process per host, each seeing its local devices) uses JAX's multi-controller
runtime: :func:`initialize_distributed` first, then every process runs the same program on
the mesh of all devices (:func:`data_mesh`), feeding its own rows (:func:`process_shard`,
:func:`shard_batch`); :func:`fit` is :func:`factorcl_jax.training.loop.fit` on that mesh and
:func:`is_main_process` tells which process writes logs and files.

Example (one host, every local device)::

    mesh = parallel.data_mesh()
    state = parallel.replicate_state(trainer.init(key, example_batch), mesh)
    state, history = parallel.fit(trainer, state, data, mesh=mesh, epochs=10, batch_size=256)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from factorcl_jax.training import loop
from factorcl_jax.training.loop import StepFn
from factorcl_jax.training.state import TrainState
from factorcl_jax.training.step import Trainer

__all__ = [
    "DATA_AXIS",
    "data_mesh",
    "fit",
    "initialize_distributed",
    "is_main_process",
    "pmapped_step",
    "process_shard",
    "replicate",
    "replicate_state",
    "shard_batch",
    "sharded_step",
    "split_for_pmap",
    "unreplicate",
]

DATA_AXIS = "data"
"""Name of the mesh axis (and of the ``pmap`` axis) the global batch is split over."""

# --------------------------------------------------------------------------- the mesh


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``'data'`` over ``devices`` (default: every device of every process).

    Devices are ordered by process, so each process's devices hold one contiguous block of the
    global batch (what :func:`jax.make_array_from_process_local_data` expects).
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("`devices` must name at least one device, got none")
    ordered = sorted(devices, key=lambda device: (device.process_index, device.id))
    return Mesh(np.asarray(ordered), (DATA_AXIS,))


def _check_divisible(global_batch: int, num_devices: int) -> None:
    if global_batch % num_devices:
        raise ValueError(
            f"the global batch size ({global_batch}) must be divisible by the number of "
            f"devices ({num_devices}): each device takes an equal share of the rows"
        )


def replicate_state(state: TrainState, mesh: Mesh) -> TrainState:
    """``state`` replicated on every device of ``mesh`` (``NamedSharding(mesh, P())``).

    Every process must pass the same values (e.g. the same ``init`` key or checkpoint).
    """
    sharding = NamedSharding(mesh, P())
    if jax.process_count() == 1:
        return jax.device_put(state, sharding)
    return jax.tree.map(lambda x: _from_every_process(x, sharding), state)


def _from_every_process(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    """A global array of ``sharding`` from this process's copy of ``x``."""
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        # PRNG keys have no NumPy form: move their raw bits and wrap them again.
        data = _from_every_process(jax.random.key_data(x), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Places a batch on ``mesh`` split by rows: ``NamedSharding(mesh, P('data'))``.

    Args:
      batch: ``{name: [n_process, ...]}``, this process's rows of the global batch; on one
        process the whole global batch. With ``P`` processes the global batch is the
        concatenation of every process's rows in process order, ``n_global = P * n_process``.
      mesh: a ``('data',)`` mesh (:func:`data_mesh`).

    Returns:
      ``{name: [n_global, ...]}`` global arrays, each device holding ``n_global / D`` rows.

    Raises:
      ValueError: if ``n_global`` is not divisible by the number of devices of ``mesh``.
    """
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    num_rows = {len(array) for array in batch.values()}
    if len(num_rows) != 1:
        raise ValueError(
            "all arrays of `batch` need the same number of rows, got "
            f"{ {name: len(array) for name, array in batch.items()} }"
        )
    global_batch = num_rows.pop() * jax.process_count()
    _check_divisible(global_batch, mesh.size)
    if jax.process_count() == 1:
        return jax.device_put(dict(batch), sharding)
    return {
        name: jax.make_array_from_process_local_data(
            sharding, np.asarray(array), (global_batch, *np.shape(array)[1:])
        )
        for name, array in batch.items()
    }


# --------------------------------------------------------------------------- the two wrappers


def sharded_step(trainer: Trainer, mesh: Mesh) -> StepFn:
    """``trainer.step`` under ``jax.shard_map`` over ``mesh``, jitted with the state donated.

    The returned ``step(state, batch)`` takes a replicated state (:func:`replicate_state`) and a
    batch split by rows (:func:`shard_batch`; a host batch is split by ``jit`` too) and returns
    the replicated new state and measurements. ``check_vma`` stays on, so a value that should
    be identical on every device but is not is a trace-time error.
    """
    per_device = functools.partial(trainer.step, axis_name=DATA_AXIS)
    mapped = jax.shard_map(
        per_device, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P())
    )
    return jax.jit(mapped, donate_argnums=0)


def pmapped_step(trainer: Trainer, devices: Sequence[jax.Device] | None = None) -> StepFn:
    """``trainer.step`` under ``jax.pmap`` over ``devices`` (default: local devices), donated.

    The returned ``step(state, batch)`` takes the state with a leading device axis
    (:func:`replicate`) and a ``[D, n_local, ...]`` batch (:func:`split_for_pmap`); it returns
    the new state likewise and measurements of shape ``[D]`` (equal along the device axis).
    """
    per_device = functools.partial(trainer.step, axis_name=DATA_AXIS)
    return jax.pmap(per_device, axis_name=DATA_AXIS, devices=devices, donate_argnums=0)


def replicate(tree: Any, devices: Sequence[jax.Device] | None = None) -> Any:
    """``tree`` with a leading axis of ``len(devices)`` copies, one on each device (for pmap)."""
    devices = jax.local_devices() if devices is None else list(devices)
    sharding = NamedSharding(Mesh(np.asarray(devices), (DATA_AXIS,)), P(DATA_AXIS))
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (len(devices), *jnp.shape(x))), tree)
    return jax.device_put(stacked, sharding)


def unreplicate(tree: Any) -> Any:
    """The first copy of a :func:`replicate`-d tree (drops the leading device axis)."""
    return jax.tree.map(lambda x: x[0], tree)


def split_for_pmap(batch: Mapping[str, Any], num_devices: int) -> dict[str, Any]:
    """``{name: [n, ...]} -> {name: [num_devices, n / num_devices, ...]}`` for :func:`pmapped_step`.

    Raises:
      ValueError: if ``n`` is not divisible by ``num_devices``.
    """
    split = {}
    for name, array in batch.items():
        _check_divisible(len(array), num_devices)
        split[name] = np.reshape(array, (num_devices, -1, *np.shape(array)[1:]))
    return split


# --------------------------------------------------------------------------- multi-host


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> None:
    """Joins this process to a multi-host job (``jax.distributed.initialize``).

    Call it once per process, before any other JAX call. Arguments left ``None`` come from
    the environment: ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` and ``JAX_LOCAL_DEVICE_IDS`` (comma-separated;
    read by JAX itself). Whatever is still unset is auto-detected by JAX on clusters it knows
    (SLURM, Open MPI, Kubernetes, Cloud TPU).

    Raises:
      ValueError: if ``JAX_NUM_PROCESSES`` or ``JAX_PROCESS_ID`` is not an integer.
    """
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=_int_from_env(num_processes, "JAX_NUM_PROCESSES"),
        process_id=_int_from_env(process_id, "JAX_PROCESS_ID"),
        local_device_ids=local_device_ids,
    )


def _int_from_env(value: int | None, variable: str) -> int | None:
    if value is not None or variable not in os.environ:
        return value
    try:
        return int(os.environ[variable])
    except ValueError:
        raise ValueError(
            f"environment variable {variable} must be an integer, got {os.environ[variable]!r}"
        ) from None


def is_main_process() -> bool:
    """Whether this is process 0, the one that writes logs, results and checkpoints."""
    return jax.process_index() == 0


def process_shard(
    data: Mapping[str, np.ndarray],
    process_index: int | None = None,
    process_count: int | None = None,
) -> dict[str, np.ndarray]:
    """This process's rows of a dataset: rows ``process_index::process_count``.

    Every shard is cut to ``N // process_count`` rows (up to ``process_count - 1`` rows are
    dropped), so all processes take the same number of steps per epoch; unequal counts would
    leave the others waiting in a collective. With one process this is ``data`` itself.

    Args:
      data: ``{name: [N, ...]}`` arrays with the same number of rows.
      process_index: default ``jax.process_index()``.
      process_count: default ``jax.process_count()``.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
        raise ValueError(
            f"`process_index` must be in [0, {process_count}) (`process_count`), "
            f"got {process_index}"
        )
    sizes = {name: len(array) for name, array in data.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"all arrays in `data` need the same number of rows, got {sizes}")
    per_process = next(iter(sizes.values())) // process_count
    return {
        name: np.asarray(array)[process_index::process_count][:per_process]
        for name, array in data.items()
    }


def fit(
    trainer: Trainer,
    state: TrainState,
    data: Mapping[str, np.ndarray],
    *,
    mesh: Mesh,
    epochs: int,
    batch_size: int,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[TrainState, dict[str, float], int, int], None] | None = None,
    start_epoch: int = 0,
    start_batch: int = 0,
) -> tuple[TrainState, list[dict[str, float]]]:
    """:func:`factorcl_jax.training.loop.fit` with the data-parallel step on ``mesh``.

    ``batch_size`` is the global batch (rows per step, over all devices and processes). Each process
    draws ``batch_size / process_count`` rows per step from its ``data`` (its :func:`process_shard`,
    the whole dataset on one process) in the order of :func:`factorcl_jax.training.loop.batches`;
    step ``k``'s global batch is the concatenation of every process's batch ``k``. On one process
    the run takes exactly the steps of ``loop.fit``. The other arguments, the returned history and
    resuming are as in ``loop.fit``. ``on_step`` runs on every process (a multi-host Orbax save
    needs all of them); log from the main process only (:func:`is_main_process`). The progress bar
    shows on it alone.

    Raises:
      ValueError: if ``batch_size`` is not divisible by the number of devices and processes,
        or if the processes hold different numbers of rows.
    """
    _check_divisible(batch_size, mesh.size)
    if batch_size % jax.process_count():
        raise ValueError(
            f"the global batch size ({batch_size}) must be divisible by the number of "
            f"processes ({jax.process_count()})"
        )
    if jax.process_count() > 1:
        num_rows = len(next(iter(data.values())))
        multihost_utils.assert_equal(
            num_rows, f"every process needs the same number of rows in `data` (here {num_rows})"
        )
    return loop.fit(
        trainer,
        state,
        data,
        epochs=epochs,
        batch_size=batch_size // jax.process_count(),
        seed=seed,
        progress=progress and is_main_process(),
        on_step=on_step,
        start_epoch=start_epoch,
        start_batch=start_batch,
        step_fn=sharded_step(trainer, mesh),
        place_batch=lambda batch: shard_batch(batch, mesh),
    )
