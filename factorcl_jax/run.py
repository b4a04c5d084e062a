"""The ``factorcl-jax train`` job: train every configured method, checkpoint, probe, report.

For each method of ``config.train.methods`` on the built-in synthetic data (train /
validation / test split):

1. build the trainer from the config; with ``resume``, restore the latest complete Orbax
   checkpoint (moving any that fail to load to ``checkpoints/METHOD/corrupt/``) and the data
   position (epoch, next batch), and drop ``metrics.jsonl`` lines written after that
   checkpoint, so the resumed run ends bit-identical to an uninterrupted one;
2. train, logging every step's measurements to ``metrics.jsonl`` (and TensorBoard when
   ``tensorboardX`` is installed), checkpointing every ``checkpoint.every_steps`` steps and at
   every epoch end with the validation linear-probe accuracy as the checkpoint's metric;
3. fit a linear probe on the frozen training representations and score the test split.

The run directory then holds ``config.json``, ``metrics.jsonl``, ``checkpoints/METHOD/``,
``results.json`` (``{"probe_accuracy": {method: accuracy}, ...}``) and PNG figures.

The job never clobbers a run (:mod:`factorcl_jax.rundir`: a directory holding one is refused
unless resumed or moved aside, and is locked while in use), refuses up front a config whose
data, parameters or pair activations cannot fit in memory, and stops cleanly on SIGTERM or
SIGINT (:mod:`factorcl_jax.preemption`): it saves a checkpoint at the current step and raises
:class:`~factorcl_jax.preemption.Interrupted`; ``resume`` continues bit-identical. A loss that
turns NaN/inf raises :class:`~factorcl_jax.train.NonFiniteLossError` naming the step and the
terms, with the checkpoints saved before it intact.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pathlib
import re
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from factorcl_jax import (
    augment,
    evaluation,
    objectives,
    parallel,
    plotting,
    probe,
    reporting,
    rundir,
    train,
)
from factorcl_jax.checkpoint import Checkpointer
from factorcl_jax.config import RunConfig, save_config, to_dict
from factorcl_jax.data.synthetic import SyntheticData, make_synthetic, train_test_split
from factorcl_jax.preemption import Interrupted, StopSignals

__all__ = [
    "MetricsLog",
    "build_trainer",
    "check_memory",
    "load_splits",
    "method_slug",
    "train_run",
]

WALL_CLOCK_KEYS = ("steps_per_s", "time")
"""Measurement keys that depend on the machine's speed (everything else is deterministic)."""


def method_slug(method: str) -> str:
    """A directory-safe name: ``"Cross+Self+Fact"`` -> ``"cross-self-fact"``."""
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def _as_arrays(data: SyntheticData) -> dict[str, np.ndarray]:
    return {"x1": data.x1, "x2": data.x2, "y": data.y}


def load_splits(config: RunConfig) -> dict[str, dict[str, np.ndarray]]:
    """The synthetic data of ``config`` as ``{"train", "validation", "test"}`` array dicts."""
    data = make_synthetic(
        config.data.num_samples,
        dict(config.data.feature_dims),
        dict(config.data.label_dims),
        config.data.input_dim,
        seed=config.data.seed,
    )
    rest, test = train_test_split(
        data, test_fraction=config.data.test_fraction, seed=config.data.seed
    )
    fraction = config.data.validation_fraction / (1 - config.data.test_fraction)
    training, validation = train_test_split(rest, test_fraction=fraction, seed=config.data.seed)
    return {
        "train": _as_arrays(training),
        "validation": _as_arrays(validation),
        "test": _as_arrays(test),
    }


def build_trainer(
    config: RunConfig, method: str, num_classes: int, steps_per_epoch: int
) -> train.Trainer:
    """The :class:`~factorcl_jax.train.Trainer` of ``method`` under ``config``.

    ``steps_per_epoch`` sets the length of a decaying learning-rate schedule
    (``train.lr_schedule``): ``train.epochs * steps_per_epoch`` steps in all.
    """
    augmentation = augment.make_augmentation(
        config.train.augmentations, scale=config.train.noise_scale, rate=config.train.mask_rate
    )
    return train.default_trainer(
        method,
        num_classes=num_classes,
        encoder_hidden=config.model.encoder_hidden,
        encoder_layers=config.model.encoder_layers,
        embed_dim=config.model.embed_dim,
        critic_hidden=config.model.critic_hidden,
        normalize_heads=config.model.normalize_heads,
        learning_rate=train.learning_rate_schedule(
            config.train.learning_rate,
            config.train.lr_schedule,
            config.train.epochs * steps_per_epoch,
        ),
        augmentations=(augmentation, augmentation),
        num_club_iter=config.train.num_club_iter,
        block_size=config.model.block_size,
        column_block=config.model.column_block,
        exchange=config.model.exchange,
        compute_dtype=config.model.compute_dtype,
    )


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


def _train_method(
    config: RunConfig,
    method: str,
    splits: Mapping[str, dict[str, np.ndarray]],
    run_dir: pathlib.Path,
    log: MetricsLog,
    *,
    resume: bool,
    progress: bool,
    num_classes: int,
    mesh: jax.sharding.Mesh | None,
    stop: StopSignals,
) -> dict[str, Any]:
    """Trains (or resumes) one method; returns its probe accuracies and timings.

    With a ``mesh`` the step runs data-parallel over its devices (and processes), each
    process feeding its own shard of the training rows; only the main process logs.
    """
    data = splits["train"]
    batch_size = config.train.batch_size
    shard = data if mesh is None else parallel.process_shard(data)
    per_epoch = len(shard["y"]) // (batch_size // jax.process_count())
    trainer = build_trainer(config, method, num_classes, per_epoch)
    example = {key: value[:batch_size] for key, value in data.items()}
    key = jax.random.key(config.train.seed)
    with Checkpointer(
        run_dir / "checkpoints" / method_slug(method),
        keep_last=config.checkpoint.keep_last,
        keep_best=config.checkpoint.keep_best,
    ) as checkpoints:
        state, start_epoch, start_batch = None, 0, 0
        sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        if resume:
            abstract = jax.eval_shape(trainer.init, key, example)
            restored = checkpoints.restore_latest(
                abstract, sharding=sharding, move_aside=parallel.is_main_process()
            )
            if restored is not None:
                state, meta = restored
                start_epoch, start_batch = meta["epoch"], meta["next_batch"]
                log.truncate(method, meta["step"])
        if state is None:
            log.truncate(method, 0)
            state = trainer.jit_init(key, example)
            if mesh is not None:
                state = parallel.replicate_state(state, mesh)
        representation = config.train.probe_representation

        def validation_accuracy(state: train.TrainState) -> float:
            return evaluation.probe_accuracies(
                trainer,
                state.params,
                data,
                splits["validation"],
                num_classes=num_classes,
                representations=(representation,),
            )[representation]

        saved = {"step": int(state.step)}

        def save(state: train.TrainState, epoch: int, next_batch: int, metric: float | None):
            checkpoints.save(
                int(state.step),
                state,
                {
                    "epoch": epoch,
                    "next_batch": next_batch,
                    "seed": config.train.seed,
                    "method": method,
                    "metric": metric,
                },
            )
            saved["step"] = int(state.step)

        clock = {"last": time.perf_counter()}

        def on_step(state: train.TrainState, measured: dict, epoch: int, next_batch: int):
            now = time.perf_counter()
            measured["steps_per_s"] = 1.0 / max(now - clock["last"], 1e-9)
            clock["last"] = now
            log.write(method, measured)
            step = measured["step"]
            if next_batch == per_epoch:
                save(state, epoch, next_batch, validation_accuracy(state))
            elif config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0:
                save(state, epoch, next_batch, None)
            if stop.requested():
                if saved["step"] != step:
                    save(state, epoch, next_batch, None)
                raise Interrupted(stop.signum, step, saved=True)

        start = time.perf_counter()
        fit = train.fit if mesh is None else functools.partial(parallel.fit, mesh=mesh)
        try:
            state, _ = fit(
                trainer,
                state,
                shard,
                epochs=config.train.epochs,
                batch_size=batch_size,
                seed=config.train.seed,
                progress=progress,
                on_step=on_step,
                start_epoch=start_epoch,
                start_batch=start_batch,
            )
        except train.NonFiniteLossError as error:
            raise train.NonFiniteLossError(
                f"{method}: {error}; the run stopped with its checkpoints up to step "
                f"{saved['step']} intact (lower train.learning_rate, or try "
                "model.normalize_heads=true, in a new run)"
            ) from None
        train_seconds = time.perf_counter() - start
    accuracy = evaluation.probe_accuracies(
        trainer,
        state.params,
        data,
        splits["test"],
        num_classes=num_classes,
        representations=(representation,),
    )[representation]
    return {
        "probe_accuracy": accuracy,
        "train_seconds": train_seconds,
        "steps": int(state.step),
        "history": log.read(method),
    }


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.3g} GiB"


def check_memory(config: RunConfig, devices: int = 1, *, available: int | None = None) -> None:
    """Refuses a config that cannot fit in memory, before anything is allocated.

    Counts a lower bound of the bytes needed, so it never refuses a config that fits: the
    float32 data (``num_samples x (2 input_dim + latents)``); the parameters, with Adam's two
    moments, of two ``input_dim -> encoder_hidden x encoder_layers -> embed_dim`` encoders,
    two heads and one critic; and one critic's pair activations (``rows x batch_size x
    critic_hidden`` with ``rows`` the batch, or ``model.block_size``). On CPU everything
    shares the host's memory; on an accelerator the parameters and one device's share of the
    activations must fit the device.

    Args:
      config: the run configuration.
      devices: devices the batch is split over.
      available: bytes of memory to assume for everything (default: measured).

    Raises:
      MemoryError: naming the largest part, the bytes needed and the bytes available.
    """
    data, model, batch = config.data, config.model, config.train.batch_size
    width, embed, critic = model.encoder_hidden, model.embed_dim, model.critic_hidden
    encoder = data.input_dim * width + (model.encoder_layers - 1) * width**2 + width * embed
    parameters = 2 * encoder + 4 * embed * width + 2 * embed * critic + critic**2
    rows = batch if model.block_size is None else min(batch, model.block_size)
    parts = {
        "data": 4 * data.num_samples * (2 * data.input_dim + sum(data.feature_dims.values())),
        "parameters and Adam state": 3 * 4 * parameters,
        "pair activations": 4 * rows * batch * critic,
    }
    hints = {
        "data": "lower data.num_samples or data.input_dim",
        "parameters and Adam state": "lower model.encoder_hidden, model.critic_hidden or "
        "data.input_dim",
        "pair activations": "lower train.batch_size or model.critic_hidden, or set "
        "model.block_size",
    }
    device = jax.devices()[0]
    if available is None and device.platform != "cpu":
        limit = (device.memory_stats() or {}).get("bytes_limit")
        if limit:
            on_device = {k: v for k, v in parts.items() if k != "data"}
            on_device["pair activations"] //= max(devices, 1)
            _refuse_beyond(on_device, limit, f"one {device.platform} device", hints)
        parts = {"data": parts["data"]}
    if available is None:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    _refuse_beyond(parts, available, "this machine", hints)


def _refuse_beyond(parts: dict[str, int], limit: int, where: str, hints: dict[str, str]) -> None:
    if sum(parts.values()) > limit:
        largest = max(parts, key=parts.__getitem__)
        raise MemoryError(
            f"this config needs at least {_gib(sum(parts.values()))} ({largest}: "
            f"{_gib(parts[largest])}) but {where} has {_gib(limit)}; {hints[largest]}"
        )


def _mesh(devices: int | None, batch_size: int) -> jax.sharding.Mesh | None:
    """The data-parallel mesh of ``devices`` devices, or ``None`` for single-device training."""
    available = jax.device_count()
    if devices is None:
        devices = available if jax.process_count() > 1 else 1
    if not 1 <= devices <= available:
        raise ValueError(
            f"--devices must be in [1, {available}] (devices visible to JAX), got {devices}"
        )
    if batch_size % devices:
        raise ValueError(
            f"train.batch_size = {batch_size} must be divisible by the {devices} devices"
        )
    if devices == 1 and jax.process_count() == 1:
        return None
    if devices != available and jax.process_count() > 1:
        raise ValueError("multi-process runs use every device: leave --devices unset")
    return parallel.data_mesh(jax.devices()[:devices])


@contextlib.contextmanager
def _run_directory(
    run_dir: pathlib.Path, config: RunConfig, *, resume: bool, overwrite: bool
) -> Iterator[None]:
    """The main process checks and locks ``run_dir``; the others follow its decision."""
    main = parallel.is_main_process()
    with contextlib.ExitStack() as stack:
        refusal = None
        try:
            stack.enter_context(
                rundir.open_run_dir(
                    run_dir, to_dict(config), resume=resume, overwrite=overwrite, lock=main
                )
            )
        except rundir.RunDirectoryError as error:
            refusal = error
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            accepted = multihost_utils.broadcast_one_to_all(np.int32(refusal is None and main))
            if not main and refusal is None and not int(accepted):
                refusal = rundir.RunDirectoryError(f"process 0 refused the run directory {run_dir}")
        if refusal is not None:
            raise refusal
        yield


def train_run(
    config: RunConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    echo=print,
    devices: int | None = None,
) -> dict[str, Any]:
    """Runs the whole ``train`` job into ``run_dir`` and returns what ``results.json`` holds.

    Args:
      config: the resolved run configuration.
      run_dir: output directory (created); refused when it holds a run, unless ``resume``
        or ``overwrite``.
      resume: continue the run in ``run_dir`` from its latest complete checkpoints; its
        ``config.json`` must equal ``config`` except for checkpoint cadence and retention.
      overwrite: move a run already in ``run_dir`` aside (to ``RUN_DIR.old-STAMP``) first.
      progress: show progress bars.
      echo: where to print tables (``print``; a no-op to stay quiet).
      devices: train data-parallel over this many devices (all processes together);
        ``None``: one device, or every device when several processes run.

    Raises:
      rundir.RunDirectoryError: ``run_dir`` cannot be used as asked (one line saying why).
      MemoryError: the config cannot fit in memory (:func:`check_memory`).
      Interrupted: SIGTERM/SIGINT stopped training; a checkpoint was saved at that step.
      train.NonFiniteLossError: the loss turned NaN/inf (naming the step and terms).
    """
    run_dir = pathlib.Path(run_dir)
    mesh = _mesh(devices, config.train.batch_size)
    check_memory(config, 1 if mesh is None else mesh.size)
    with _run_directory(run_dir, config, resume=resume, overwrite=overwrite):
        splits = load_splits(config)
        if config.train.batch_size > len(splits["train"]["y"]):
            raise ValueError(
                f"train.batch_size = {config.train.batch_size} exceeds the "
                f"{len(splits['train']['y'])} training rows of data.num_samples = "
                f"{config.data.num_samples}"
            )
        if parallel.is_main_process():
            save_config(config, run_dir / "config.json")
        else:
            echo = lambda *_: None
            progress = False
        num_classes = evaluation.num_classes_of(splits["train"], splits["test"])
        log = MetricsLog(run_dir)
        per_method = {}
        try:
            with StopSignals() as stop:
                for method in config.train.methods:
                    if stop.signum is not None:
                        raise Interrupted(stop.signum)
                    echo(f"training {method} ...")
                    per_method[method] = _train_method(
                        config,
                        method,
                        splits,
                        run_dir,
                        log,
                        resume=resume,
                        progress=progress,
                        num_classes=num_classes,
                        mesh=mesh,
                        stop=stop,
                    )
        finally:
            log.close()
        return _report(config, run_dir, splits, per_method, num_classes, echo)


def _report(
    config: RunConfig,
    run_dir: pathlib.Path,
    splits: Mapping[str, dict[str, np.ndarray]],
    per_method: dict[str, dict[str, Any]],
    num_classes: int,
    echo,
) -> dict[str, Any]:
    """The raw-input sanity probe, the table, ``results.json`` and the figures."""
    raw = probe.linear_probe_accuracy(
        np.concatenate([splits["train"]["x1"], splits["train"]["x2"]], axis=1),
        splits["train"]["y"],
        np.concatenate([splits["test"]["x1"], splits["test"]["x2"]], axis=1),
        splits["test"]["y"],
        num_classes=num_classes,
    )
    accuracies = {method: result["probe_accuracy"] for method, result in per_method.items()}
    rows = [
        {
            "method": method,
            "probe_accuracy": result["probe_accuracy"],
            "steps": result["steps"],
            "train_seconds": result["train_seconds"],
            "method_kind": "SUP" if objectives.METHODS[method].supervised else "SSL",
        }
        for method, result in per_method.items()
    ]
    rows.append({"method": "raw inputs (sanity)", "probe_accuracy": raw})
    echo("")
    echo(
        reporting.format_table(
            rows, ["method", "method_kind", "probe_accuracy", "steps", "train_seconds"]
        )
    )
    results = {
        "probe_accuracy": accuracies,
        "raw_input_probe_accuracy": raw,
        "probe_representation": config.train.probe_representation,
        "train_seconds": {m: r["train_seconds"] for m, r in per_method.items()},
        "steps": {m: r["steps"] for m, r in per_method.items()},
        "final_terms": {
            m: {k: v for k, v in r["history"][-1].items() if k.startswith("term/")}
            for m, r in per_method.items()
            if r["history"]
        },
    }
    if not parallel.is_main_process():
        return results
    reporting.write_json(run_dir / "results.json", results)
    try:
        histories = {m: r["history"] for m, r in per_method.items()}
        plotting.plot_training_curves(histories, run_dir / "training_curves.png")
        plotting.plot_terms(histories, run_dir / "bound_terms.png")
        plotting.plot_probe_accuracy(
            {**accuracies, "raw inputs": raw}, run_dir / "probe_accuracy.png"
        )
    except plotting.PlottingUnavailable as error:
        echo(f"(no plots: {error})")
    echo(f"\nwrote {run_dir / 'results.json'}")
    return results
