"""The ``factorcl-jax train`` job: train every configured method, checkpoint, probe, report.

For each method of ``config.train.methods`` on the built-in synthetic data (train /
validation / test split):

1. build the trainer from the config; with ``resume``, restore the latest complete Orbax
   checkpoint (moving newer ones that fail to load to ``checkpoints/METHOD/corrupt/``) and
   the data position (epoch, next batch), and drop ``metrics.jsonl`` lines written after that
   checkpoint, so the resumed run ends bit-identical to an uninterrupted one;
2. train, logging every step's measurements to ``metrics.jsonl`` (and TensorBoard when
   ``tensorboardX`` is installed), checkpointing every ``checkpoint.every_steps`` steps and at
   every epoch end with the validation linear-probe accuracy as the checkpoint's metric;
3. fit a linear probe on the frozen training representations and score the test split.

The run directory then holds ``config.json``, ``metrics.jsonl``, ``checkpoints/METHOD/``,
``results.json`` (``{"probe_accuracy": {method: accuracy}, ...}``) and PNG figures.

A resume never starts a method over: before anything is written, every method's checkpoints
are checked, and a method that has checkpoints none of which loads (damaged, or written for
another config: checkpoints carry the digest of the config they were written under) stops
the job with :class:`ResumeError`, the run directory unchanged. Resuming a finished run
(``results.json`` holds every method) is a no-op that says so. Training time adds up over
the processes a run took (checkpoints carry it), and ``config.json``, the run's identity, is
written again at every checkpoint and at the end if it went missing.

The job never clobbers a run (:mod:`factorcl_jax.runs.rundir`: a directory holding one is
refused unless resumed or moved aside, and is locked while in use), refuses up front a config
whose data, parameters or pair activations cannot fit in memory
(:mod:`factorcl_jax.runs.memory`), and stops cleanly on SIGTERM, SIGINT or SIGHUP
(:mod:`factorcl_jax.runs.preemption`): it saves a checkpoint at the current step and raises
:class:`~factorcl_jax.runs.preemption.Interrupted`; ``resume`` continues bit-identical. A
loss that turns NaN/inf raises :class:`~factorcl_jax.training.loop.NonFiniteLossError`
naming the step and the terms, with the checkpoints saved before it intact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import pathlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from factorcl_jax import evaluation, objectives
from factorcl_jax.config import RunConfig, save_config, to_dict
from factorcl_jax.data.synthetic import make_splits
from factorcl_jax.io import atomic, plotting, tables
from factorcl_jax.runs import rundir
from factorcl_jax.runs.checkpoint import Checkpointer, CheckpointsUnloadable
from factorcl_jax.runs.memory import check_memory
from factorcl_jax.runs.metrics import MetricsLog, method_slug
from factorcl_jax.runs.preemption import Interrupted, StopSignals
from factorcl_jax.training import loop, parallel
from factorcl_jax.training.builder import build_trainer
from factorcl_jax.training.state import TrainState
from factorcl_jax.training.step import Trainer

__all__ = ["ResumeError", "load_splits", "restore_method", "train_run"]


class ResumeError(rundir.RunDirectoryError):
    """A run cannot be resumed as asked; nothing in its directory was changed."""


def load_splits(config: RunConfig) -> dict[str, dict[str, np.ndarray]]:
    """The synthetic data of ``config`` as ``{"train", "validation", "test"}`` array dicts."""
    return make_splits(**dataclasses.asdict(config.data))


def method_trainer(config: RunConfig, method: str, splits: Mapping[str, Any]) -> Trainer:
    """The trainer of ``method`` in a run of ``config`` on ``splits`` (one process's share of
    the training rows per step sets the schedule's length)."""
    num_classes = evaluation.num_classes_of(splits["train"], splits["test"])
    batch_per_process = config.train.batch_size // jax.process_count()
    rows_per_process = len(splits["train"]["y"]) // jax.process_count()
    return build_trainer(
        config,
        method,
        num_classes=num_classes,
        steps_per_epoch=rows_per_process // batch_per_process,
    )


@dataclasses.dataclass
class _AfterStep:
    """What the train job does after every step of one method: log the measurements,
    checkpoint at epoch ends (with the validation probe accuracy) and every
    ``checkpoint.every_steps`` steps, and on SIGTERM/SIGINT save and stop."""

    method: str
    config: RunConfig
    run_dir: pathlib.Path
    log: MetricsLog
    checkpoints: Checkpointer
    stop: StopSignals
    steps_per_epoch: int
    validation_accuracy: Callable[[TrainState], float]
    saved_step: int
    seconds_before: float
    """Training time of the processes before this one (from the restored checkpoint)."""
    started: float = dataclasses.field(default_factory=time.perf_counter)
    last_time: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def train_seconds(self) -> float:
        """Training time of the run so far, over every process it took."""
        return self.seconds_before + time.perf_counter() - self.started

    def __call__(self, state: TrainState, measured: dict, epoch: int, next_batch: int) -> None:
        now = time.perf_counter()
        measured["steps_per_s"] = 1.0 / max(now - self.last_time, 1e-9)
        self.last_time = now
        self.log.write(self.method, measured)
        step, every = measured["step"], self.config.checkpoint.every_steps
        if next_batch == self.steps_per_epoch:
            self.save(state, epoch, next_batch, self.validation_accuracy(state))
        elif every and step % every == 0:
            self.save(state, epoch, next_batch, None)
        if self.stop.requested():
            if self.saved_step != step:
                self.save(state, epoch, next_batch, None)
            raise Interrupted(self.stop.signum, step, saved=True)

    def save(self, state: TrainState, epoch: int, next_batch: int, metric: float | None) -> None:
        meta = {
            "epoch": epoch,
            "next_batch": next_batch,
            "seed": self.config.train.seed,
            "method": self.method,
            "metric": metric,
            "config_digest": rundir.config_digest(to_dict(self.config)),
            "train_seconds": self.train_seconds,
        }
        self.checkpoints.save(int(state.step), state, meta)
        self.saved_step = int(state.step)
        _keep_config(self.config, self.run_dir)


def _train_method(
    config: RunConfig,
    method: str,
    splits: Mapping[str, dict[str, np.ndarray]],
    run_dir: pathlib.Path,
    log: MetricsLog,
    *,
    resume: bool,
    progress: bool,
    mesh: jax.sharding.Mesh | None,
    stop: StopSignals,
) -> dict[str, Any]:
    """Trains (or resumes) one method; returns its test probe accuracy and timings.

    With a ``mesh`` the step runs data-parallel over its devices (and processes), each
    process feeding its own shard of the training rows; only the main process logs.
    """
    data = splits["train"]
    shard = data if mesh is None else parallel.process_shard(data)
    trainer = method_trainer(config, method, splits)
    with _checkpointer(run_dir, config, method) as checkpoints:
        state, meta = _initial_state(trainer, config, data, checkpoints, resume=resume, mesh=mesh)
        log.truncate(method, int(state.step))
        after_step = _AfterStep(
            method,
            config,
            run_dir,
            log,
            checkpoints,
            stop,
            steps_per_epoch=len(shard["y"]) // (config.train.batch_size // jax.process_count()),
            validation_accuracy=functools.partial(
                _probe_accuracy, trainer, config, data, splits["validation"]
            ),
            saved_step=int(state.step),
            seconds_before=float(meta.get("train_seconds", 0.0)),
        )
        fit = loop.fit if mesh is None else functools.partial(parallel.fit, mesh=mesh)
        try:
            result = evaluation.fit_and_probe(
                trainer,
                shard,
                splits["test"],
                config,
                progress=progress,
                start=evaluation.Start(state, meta["epoch"], meta["next_batch"]),
                fit=fit,
                on_step=after_step,
                probe_data=data,
            )
        except loop.NonFiniteLossError as error:
            raise loop.NonFiniteLossError(
                f"{method}: {error}; the run stopped with its checkpoints up to step "
                f"{after_step.saved_step} intact (lower train.learning_rate, or try "
                "model.normalize_heads=true, in a new run)"
            ) from None
    return {
        "probe_accuracy": result.accuracies[config.probe.representation],
        "train_seconds": after_step.seconds_before + result.train_seconds,
        "steps": int(result.state.step),
        "history": log.read(method),
    }


def _checkpointer(run_dir: pathlib.Path, config: RunConfig, method: str) -> Checkpointer:
    return Checkpointer(
        run_dir / "checkpoints" / method_slug(method),
        keep_last=config.checkpoint.keep_last,
        keep_best=config.checkpoint.keep_best,
    )


def _initial_state(
    trainer: Trainer,
    config: RunConfig,
    data: Mapping[str, np.ndarray],
    checkpoints: Checkpointer,
    *,
    resume: bool,
    mesh: jax.sharding.Mesh | None,
) -> tuple[TrainState, dict[str, Any]]:
    """The latest loadable checkpoint and its data position when resuming, else a fresh
    state at ``{"epoch": 0, "next_batch": 0}``; replicated over ``mesh``."""
    key = jax.random.key(config.train.seed)
    example = {name: value[: config.train.batch_size] for name, value in data.items()}
    if resume:
        sharding = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        try:
            restored = checkpoints.restore_latest(
                jax.eval_shape(trainer.init, key, example),
                sharding=sharding,
                move_aside=parallel.is_main_process(),
                expected={"config_digest": rundir.config_digest(to_dict(config))},
            )
        except CheckpointsUnloadable as error:
            raise ResumeError(_unloadable(trainer.method.name, error)) from None
        if restored is not None:
            return restored
    state = trainer.init(key, example)
    if mesh is not None:
        state = parallel.replicate_state(state, mesh)
    return state, {"epoch": 0, "next_batch": 0}


def restore_method(
    run_dir: pathlib.Path, config: RunConfig, method: str, splits: Mapping[str, Any]
) -> tuple[Trainer, tuple[TrainState, dict[str, Any]] | None, list[tuple[int, str]]]:
    """A trained method of a run, read-only (nothing is moved or written).

    Returns:
      ``(trainer, restored, skipped)``: ``restored`` is ``(state, meta)`` of the latest
      loadable checkpoint or ``None`` when there is none; ``skipped`` lists ``(step, reason)``
      of newer ones that failed to load (not warned about: the caller reports them).

    Raises:
      ResumeError: the method has checkpoints, but none of them loads (damaged, or written
        for another config than ``config``).
    """
    trainer = method_trainer(config, method, splits)
    example = {name: value[: config.train.batch_size] for name, value in splits["train"].items()}
    abstract = jax.eval_shape(trainer.init, jax.random.key(0), example)
    directory = run_dir / "checkpoints" / method_slug(method)
    expected = {"config_digest": rundir.config_digest(to_dict(config))}
    with Checkpointer(directory, read_only=True) as checkpoints, warnings.catch_warnings():
        warnings.simplefilter("ignore", rundir.RunWarning)
        try:
            restored = checkpoints.restore_latest(abstract, expected=expected)
        except CheckpointsUnloadable as error:
            raise ResumeError(_unloadable(method, error)) from None
    return trainer, restored, list(checkpoints.skipped)


def _unloadable(method: str, error: CheckpointsUnloadable) -> str:
    """One line: which checkpoints of ``method`` fail, why, and what to do."""
    if error.config_mismatch:
        hint = (
            "they were written under another config than the run's config.json; run with the "
            "config they were written under, or start again with --overwrite"
        )
    else:
        hint = "restore those files, or start again with --overwrite (moves the run aside)"
    return f"no loadable checkpoint for {method}: {error}; nothing was changed: {hint}"


def _probe_accuracy(
    trainer: Trainer,
    config: RunConfig,
    train_data: Mapping[str, np.ndarray],
    test_data: Mapping[str, np.ndarray],
    state: TrainState,
) -> float:
    """Linear-probe accuracy of ``config.probe.representation`` on ``test_data``."""
    representation = config.probe.representation
    return evaluation.probe_accuracies(
        trainer,
        state.params,
        train_data,
        test_data,
        representations=(representation,),
        l2=config.probe.l2,
    )[representation]


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
      loop.NonFiniteLossError: the loss turned NaN/inf (naming the step and terms).
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
        if resume:
            finished = _finished_results(run_dir, config)
            if finished is not None:
                warnings.warn(
                    f"{run_dir} is a finished run (results.json): nothing to resume, nothing "
                    "was changed; probe it with `factorcl-jax probe`, or start again with "
                    "--overwrite",
                    rundir.RunWarning,
                    stacklevel=2,
                )
                return finished
            for method in config.train.methods:  # before anything is written
                restore_method(run_dir, config, method, splits)
        if not parallel.is_main_process():
            echo = lambda *_: None
            progress = False
        _keep_config(config, run_dir)
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
                        mesh=mesh,
                        stop=stop,
                    )
        finally:
            log.close()
        return _report(config, run_dir, splits, per_method, echo)


def _keep_config(config: RunConfig, run_dir: pathlib.Path) -> None:
    """Writes the run's ``config.json`` (main process) unless it is there and unchanged: it is
    the run's identity, needed to resume or probe it."""
    if not parallel.is_main_process():
        return
    path = run_dir / "config.json"
    with contextlib.suppress(rundir.RunDirectoryError):
        if rundir.read_saved_config(run_dir) == to_dict(config):
            return
    save_config(config, path)


def _finished_results(run_dir: pathlib.Path, config: RunConfig) -> dict[str, Any] | None:
    """The results of a finished run in ``run_dir`` (its ``results.json`` reads and holds every
    method of ``config``), else ``None``."""
    try:
        results = json.loads((run_dir / "results.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    accuracies = results.get("probe_accuracy") if isinstance(results, dict) else None
    if not isinstance(accuracies, dict) or set(accuracies) != set(config.train.methods):
        return None
    return results


def _report(
    config: RunConfig,
    run_dir: pathlib.Path,
    splits: Mapping[str, dict[str, np.ndarray]],
    per_method: dict[str, dict[str, Any]],
    echo,
) -> dict[str, Any]:
    """The raw-input sanity probe, the table, ``results.json`` and the figures."""
    raw = evaluation.raw_input_accuracy(splits["train"], splits["test"], l2=config.probe.l2)
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
        tables.format_table(
            rows, ["method", "method_kind", "probe_accuracy", "steps", "train_seconds"]
        )
    )
    results = {
        "probe_accuracy": accuracies,
        "raw_input_probe_accuracy": raw,
        "probe_representation": config.probe.representation,
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
    try:
        histories = {m: r["history"] for m, r in per_method.items()}
        plotting.plot_training_curves(histories, run_dir / "training_curves.png")
        plotting.plot_terms(histories, run_dir / "bound_terms.png")
        plotting.plot_probe_accuracy(
            {**accuracies, "raw inputs": raw}, run_dir / "probe_accuracy.png"
        )
    except plotting.PlottingUnavailable as error:
        echo(f"(no plots: {error})")
    _keep_config(config, run_dir)
    # Last: results.json marks a finished run.
    atomic.write_json(run_dir / "results.json", results)
    echo(f"\nwrote {run_dir / 'results.json'}")
    return results
