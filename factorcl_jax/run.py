"""The ``factorcl-jax train`` job: train every configured method, checkpoint, probe, report.

For each method of ``config.train.methods`` on the built-in synthetic data (train /
validation / test split):

1. build the trainer from the config; with ``resume``, restore the latest complete Orbax
   checkpoint and the data position (epoch, next batch), and drop ``metrics.jsonl`` lines
   written after that checkpoint, so the resumed run ends bit-identical to an uninterrupted
   one;
2. train, logging every step's measurements to ``metrics.jsonl`` (and TensorBoard when
   ``tensorboardX`` is installed), checkpointing every ``checkpoint.every_steps`` steps and at
   every epoch end with the validation linear-probe accuracy as the checkpoint's metric;
3. fit a linear probe on the frozen training representations and score the test split.

The run directory then holds ``config.json``, ``metrics.jsonl``, ``checkpoints/METHOD/``,
``results.json`` (``{"probe_accuracy": {method: accuracy}, ...}``) and PNG figures.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import time
from collections.abc import Mapping
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
    train,
)
from factorcl_jax.checkpoint import Checkpointer
from factorcl_jax.config import RunConfig, save_config, to_dict
from factorcl_jax.data.synthetic import SyntheticData, make_synthetic, train_test_split

__all__ = ["MetricsLog", "build_trainer", "load_splits", "method_slug", "train_run"]

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

    def truncate(self, method: str, last_step: int) -> None:
        """Drops ``method``'s lines after ``last_step`` (and any torn last line)."""
        if not self.enabled or not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("method") != method or record.get("step", 0) <= last_step:
                kept.append(line)
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def read(self, method: str) -> list[dict[str, Any]]:
        """``method``'s records, in order."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("method") == method:
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
    checkpoints = Checkpointer(
        run_dir / "checkpoints" / method_slug(method),
        keep_last=config.checkpoint.keep_last,
        keep_best=config.checkpoint.keep_best,
    )
    state, start_epoch, start_batch = None, 0, 0
    sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec())
    if resume:
        abstract = jax.eval_shape(trainer.init, key, example)
        restored = checkpoints.restore_latest(abstract, sharding=sharding)
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

    start = time.perf_counter()
    fit = train.fit if mesh is None else functools.partial(parallel.fit, mesh=mesh)
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
    train_seconds = time.perf_counter() - start
    checkpoints.close()
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


def train_run(
    config: RunConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    progress: bool = True,
    echo=print,
    devices: int | None = None,
) -> dict[str, Any]:
    """Runs the whole ``train`` job into ``run_dir`` and returns what ``results.json`` holds.

    Args:
      config: the resolved run configuration.
      run_dir: output directory (created).
      resume: continue from the latest complete checkpoints in ``run_dir``.
      progress: show progress bars.
      echo: where to print tables (``print``; a no-op to stay quiet).
      devices: train data-parallel over this many devices (all processes together);
        ``None``: one device, or every device when several processes run.
    """
    run_dir = pathlib.Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / "config.json").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        if saved != to_dict(config):
            raise ValueError(
                f"--resume needs the run's own config: {run_dir / 'config.json'} "
                f"differs from the requested one"
            )
    splits = load_splits(config)
    if config.train.batch_size > len(splits["train"]["y"]):
        raise ValueError(
            f"train.batch_size = {config.train.batch_size} exceeds the "
            f"{len(splits['train']['y'])} training rows of data.num_samples = "
            f"{config.data.num_samples}"
        )
    mesh = _mesh(devices, config.train.batch_size)
    if parallel.is_main_process():
        save_config(config, run_dir / "config.json")
    else:
        echo = lambda *_: None
        progress = False
    num_classes = evaluation.num_classes_of(splits["train"], splits["test"])
    log = MetricsLog(run_dir)
    per_method = {}
    try:
        for method in config.train.methods:
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
            )
    finally:
        log.close()
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
