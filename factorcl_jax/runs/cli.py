"""The ``factorcl-jax`` command (also ``python -m factorcl_jax``).

Subcommands::

    train               train methods on the built-in synthetic data, checkpoint, probe, plot
    probe               linear-probe a trained run's checkpoint on a data split
    presets             print the named configurations and their values
    estimate            estimate the MI between two arrays from .npy / .npz / .csv files
    bench               run the benchmarks with a quick preset
    convert-multibench  turn a trusted MultiBench pickle into the .npz the loaders read

:func:`main` is the command's one error boundary. A user mistake (unknown method, bad
override, unreadable or malformed file, a run directory that is in use or already holds a
run, a config too large for memory, a loss that turns NaN, ...) prints one line
``factorcl-jax: error: ...`` and exits with status 2. SIGTERM, SIGINT and SIGHUP during
training save a checkpoint and exit with 143, 130 and 129. Anything unexpected prints one
line naming the exception and exits with status 1. ``--traceback`` (anywhere on the command
line) shows the Python traceback instead. Warnings about the run (a checkpoint moved aside,
...) are one line ``factorcl-jax: warning: ...``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence

__all__ = ["main"]

USAGE_ERROR = 2
INTERNAL_ERROR = 1
PROG = "factorcl-jax"


class UsageError(Exception):
    """A mistake in what the user asked for; reported in one line with exit status 2."""


# ---------------------------------------------------------------- train


def _resolve_config(args: argparse.Namespace):
    """The requested config: ``--config`` or ``--preset`` (default ``cpu``; when resuming,
    the run's saved ``config.json``), then overrides, ``--method`` and ``--seed``."""
    from factorcl_jax import config as config_lib
    from factorcl_jax.runs import rundir

    if args.resume and args.config is None and args.preset is None:
        if args.out is None:
            raise UsageError("--resume needs --out DIR, the run directory to continue")
        if not pathlib.Path(args.out).is_dir():
            raise UsageError(f"--resume: run directory {args.out} does not exist")
        saved = rundir.read_saved_config(args.out)
        try:
            base = config_lib.from_dict(saved)
        except config_lib.ConfigError as error:
            raise UsageError(f"{pathlib.Path(args.out) / 'config.json'}: {error}") from None
    else:
        base = config_lib.get_preset(args.preset or "cpu")
    resolved = config_lib.load_config(args.config, base) if args.config else base
    overrides = list(args.overrides)
    for option, key, value in (
        ("--method", "train.methods", ",".join(args.method or ())),
        ("--seed", "train.seed", args.seed),
    ):
        if value in (None, ""):
            continue
        if any(item.strip().startswith(f"{key}=") for item in overrides):
            raise UsageError(f"{option} and the override {key}=... exclude each other")
        overrides.append(f"{key}={value}")
    return config_lib.apply_overrides(resolved, overrides)


def _progress_enabled(args: argparse.Namespace) -> bool:
    return not args.quiet and sys.stderr.isatty()


def _command_train(args: argparse.Namespace) -> int:
    from factorcl_jax.runs import job, rundir

    if args.resume and args.overwrite:
        raise UsageError(
            "--resume and --overwrite exclude each other: continue the run, or "
            "move it aside and start again"
        )
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR, the run directory to continue")
    if args.out is not None and not args.out.strip():
        raise UsageError("--out must name a directory, got an empty string")
    if None not in (args.num_processes, args.process_id) and args.process_id >= args.num_processes:
        raise UsageError(
            f"--process-id must be in [0, {args.num_processes - 1}] for --num-processes "
            f"{args.num_processes}, got {args.process_id}"
        )
    if args.coordinator_address or args.num_processes is not None:
        from factorcl_jax.training import parallel

        parallel.initialize_distributed(
            coordinator_address=args.coordinator_address,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    config = _resolve_config(args)
    run_dir = args.out if args.out is not None else rundir.make_run_dir(None, "train")
    echo = (lambda *_: None) if args.quiet else print
    job.train_run(
        config,
        run_dir,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=_progress_enabled(args),
        echo=echo,
        devices=args.devices,
    )
    return 0


# ---------------------------------------------------------------- probe


def _command_probe(args: argparse.Namespace) -> int:
    from factorcl_jax import config as config_lib
    from factorcl_jax import evaluation
    from factorcl_jax.runs import job, metrics, rundir

    run_dir = pathlib.Path(args.run)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a directory")
    if not (run_dir / "config.json").is_file():
        raise UsageError(f"{run_dir} is not a run directory (no config.json)")
    try:
        config = config_lib.from_dict(rundir.read_saved_config(run_dir))
    except config_lib.ConfigError as error:
        raise UsageError(f"{run_dir / 'config.json'}: {error}") from None
    methods = args.method or list(config.train.methods)
    for method in methods:
        if method not in config.train.methods:
            raise UsageError(
                f"method {method!r} was not trained in {run_dir}; it has "
                f"{', '.join(config.train.methods)}"
            )
    splits = job.load_splits(config)
    representation = args.representation or config.probe.representation
    for method in methods:
        trainer, restored, skipped = job.restore_method(run_dir, config, method, splits)
        failed = ", ".join(str(step) for step, _ in skipped)
        if restored is None:
            detail = f": checkpoint(s) {failed} failed to load ({skipped[0][1]})" if skipped else ""
            directory = run_dir / "checkpoints" / metrics.method_slug(method)
            raise UsageError(f"no loadable checkpoint for {method} in {directory}{detail}")
        if skipped:
            _warn(f"{method}: checkpoint(s) {failed} failed to load; probing an older one")
        state, meta = restored
        accuracy = evaluation.probe_accuracies(
            trainer,
            state.params,
            splits["train"],
            splits[args.split],
            representations=(representation,),
            l2=config.probe.l2,
        )[representation]
        print(
            f"{method}: step {meta['step']}, {args.split} accuracy {accuracy:.4f} "
            f"({representation})"
        )
    return 0


# ---------------------------------------------------------------- presets


def _command_presets(args: argparse.Namespace) -> int:
    from factorcl_jax import config as config_lib
    from factorcl_jax.io import tables

    names = args.names or list(config_lib.PRESETS)
    values = {name: config_lib.flatten(config_lib.get_preset(name)) for name in names}
    keys = list(values[names[0]])
    rows = [{"key": key, **{name: _shown(values[name][key]) for name in names}} for key in keys]
    print(tables.format_table(rows, ["key", *names]))
    return 0


def _shown(value: object) -> str:
    """A config value as a TOML-like string: lists joined by commas, dicts as ``k=v``."""
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool) or value is None:
        return "null" if value is None else str(value).lower()
    return str(value)


# ---------------------------------------------------------------- estimate


def _command_estimate(args: argparse.Namespace) -> int:
    from factorcl_jax import estimate
    from factorcl_jax.io import atomic, plotting, tables
    from factorcl_jax.runs import rundir

    x_path = pathlib.Path(args.x)
    y_path = pathlib.Path(args.y) if args.y else x_path
    if args.y is None and x_path.suffix.lower() != ".npz":
        raise UsageError("give two files X Y, or one .npz with --x-key and --y-key")
    x = tables.load_table(x_path, args.x_key)
    y = tables.load_table(y_path, args.y_key)
    if x.shape[0] != y.shape[0]:
        raise UsageError(
            f"X and Y must have the same number of rows (paired samples), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    estimator = estimate.get_estimator(args.bound)
    if args.critic is not None and estimator.gaussian:
        raise UsageError(
            f"--critic does not apply to --bound {args.bound}: CLUB trains a Gaussian q(y|x)"
        )
    if args.folds is not None and args.heldout_fraction is not None:
        raise UsageError(
            "--heldout-fraction and --folds exclude each other (with --folds every fold is "
            "held out once): give one of them"
        )
    # Checked before the estimate (a finished run in --out is never overwritten), created
    # once it succeeded: a failed estimate leaves no directory behind.
    if args.out:
        rundir.check_run_dir(args.out)
    result = estimate.estimate_mi(
        x,
        y,
        bound=args.bound,
        critic=args.critic,
        hidden=args.hidden,
        batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        eval_every=args.eval_every,
        patience=args.patience,
        heldout_fraction=args.heldout_fraction,
        folds=args.folds,
        ranks=args.ranks,
        seed=args.seed,
    )
    settings = result.settings
    out = rundir.make_run_dir(args.out, "estimate") if args.out or args.plot else None
    print(result.summary())
    print(
        f"in-sample (training pairs): {result.in_sample:.3g} nats; critic {result.critic}, "
        f"batch {settings.batch_size}, {result.steps_run} steps, {result.seconds:.1f} s"
    )
    if out is not None:
        summary = {
            "bound": args.bound,
            "estimate_nats": result.estimate,
            "stderr_nats": result.stderr,
            "in_sample_nats": result.in_sample,
            "heldout_pairs": result.num_heldout,
            "train_pairs": result.num_train,
            "folds": result.folds,
            "best_step": result.best_step,
            "steps_run": result.steps_run,
            "rows": int(x.shape[0]),
            "x_features": int(x.shape[1]),
            "y_features": int(y.shape[1]),
            "critic": result.critic,
            "duplicate_pairs": result.duplicates,
            "ranks": args.ranks,
            "settings": {**vars(settings), "hidden": list(settings.hidden)},
            "seconds": result.seconds,
            "curve": {k: v.tolist() for k, v in result.curve.items()},
            "history": result.history.tolist(),
        }
        if args.plot:
            path = plotting.plot_mi_history(
                result.history, out / "mi_history.png", bound=args.bound, estimate=result.estimate
            )
            print(f"plot: {path}")
        # Last: results.json marks a finished run.
        atomic.write_json(out / "results.json", summary)
        print(f"wrote {out / 'results.json'}")
    return 0


# ---------------------------------------------------------------- bench

BENCHMARKS = {
    "mi": "mi_estimation",
    "mi_speed": "mi_speed",
    "bounds": "bounds",
    "train_step": "train_step",
    "scaling": "scaling",
}
"""``factorcl-jax bench NAME`` runs ``benchmarks/SCRIPT.py`` of a source checkout."""


def _benchmarks_folder() -> pathlib.Path:
    """The ``benchmarks/`` folder of the source checkout this package runs from, or of the
    current directory when that is a checkout; a wheel install ships none."""
    package_root = pathlib.Path(__file__).resolve().parents[1]
    for root in (package_root, pathlib.Path.cwd()):
        folder = root / "benchmarks"
        if (folder / "common.py").is_file() and (root / "factorcl_jax").is_dir():
            return folder
    raise UsageError(
        "benchmarks run from a source checkout: clone the repository and run `factorcl-jax "
        "bench` inside it (or `python benchmarks/NAME.py`); this installation at "
        f"{package_root} has no benchmarks/ folder"
    )


def _command_bench(args: argparse.Namespace) -> int:
    folder = _benchmarks_folder()
    names = [args.name] if args.name != "all" else list(BENCHMARKS)
    quick = [] if args.full else ["--quick"]
    for name in names:
        out = [] if args.out is None else ["--out", str(pathlib.Path(args.out) / name)]
        print(f"== benchmark: {name} ==", flush=True)
        completed = subprocess.run(
            [sys.executable, str(folder / f"{BENCHMARKS[name]}.py"), *quick, *out, *args.extra],
            check=False,
        )
        if completed.returncode != 0:
            return completed.returncode
    return 0


# ---------------------------------------------------------------- convert-multibench


def _command_convert(args: argparse.Namespace) -> int:
    from factorcl_jax.data import multibench

    source = pathlib.Path(args.source)
    if not source.is_file():
        raise UsageError(f"file not found: {source}")
    if not args.trust_pickle:
        raise UsageError(
            f"refusing to unpickle {source}: loading a pickle runs any code it holds; pass "
            "--trust-pickle if you trust where the file came from"
        )
    shapes = multibench.convert_pickle(source, args.target, trust_pickle=True)
    _warn(f"unpickled {source} (--trust-pickle), which runs any code a pickle holds")
    print(f"wrote {args.target}: {len(shapes)} arrays")
    for key, shape in shapes.items():
        print(f"  {key}: {list(shape)}")
    return 0


# ---------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; ``train`` overrides may also follow its options
    (``train --config FILE train.epochs=3``), which plain argparse refuses."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and not any(item.startswith("-") for item in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


class _Parser(argparse.ArgumentParser):
    """argparse, with mistakes reported as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        self.exit(USAGE_ERROR, f"{PROG}: error: {where}{' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    from factorcl_jax import objectives
    from factorcl_jax.config import PRESETS

    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument(
        "--traceback", action="store_true", help="show Python tracebacks instead of one-line errors"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train and evaluate on the built-in synthetic data",
        description="Train methods on the built-in synthetic data (shared and unique "
        "information), checkpoint them, and report linear-probe test accuracy. "
        "With no arguments: FactorCL-SSL and SimCLR with the CPU preset.",
    )
    train.add_argument(
        "overrides",
        nargs="*",
        metavar="section.key=value",
        help="config overrides, e.g. train.epochs=3 model.embed_dim=32",
    )
    train.add_argument(
        "--method",
        action="append",
        choices=list(objectives.METHODS),
        metavar="METHOD",
        help=f"method to train (repeatable); one of: {', '.join(objectives.METHODS)}",
    )
    train.add_argument("--config", help="config file (.toml, .json, .yaml)")
    train.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="base configuration (default: cpu; with --resume: the run's config.json)",
    )
    train.add_argument("--out", help="run directory (default: a new runs/train-...)")
    train.add_argument("--seed", type=int, help="training seed (train.seed)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest complete checkpoint",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="move a run already in --out aside (to OUT.old-DATE) and start afresh",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars or tables")
    train.add_argument(
        "--devices",
        type=_positive_int,
        help="train data-parallel over this many devices (default: 1; every "
        "device in a multi-process run)",
    )
    train.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        help="multi-host: address of process 0 (or JAX_COORDINATOR_ADDRESS)",
    )
    train.add_argument(
        "--num-processes",
        type=_positive_int,
        help="multi-host: number of processes (or JAX_NUM_PROCESSES)",
    )
    train.add_argument(
        "--process-id",
        type=_nonnegative_int,
        help="multi-host: this process's index (or JAX_PROCESS_ID)",
    )
    train.set_defaults(handler=_command_train)

    probe = commands.add_parser(
        "probe",
        help="linear-probe a trained run's checkpoints",
        description="Fit a linear probe on the training split's "
        "frozen representations of a run's latest "
        "checkpoint and score a split.",
    )
    probe.add_argument("run", help="run directory written by `factorcl-jax train`")
    probe.add_argument("--method", action="append", help="method(s) to probe (default: all)")
    probe.add_argument("--split", default="test", choices=["train", "validation", "test"])
    probe.add_argument(
        "--representation",
        choices=["encoders", "factorized"],
        help="default: the run's probe.representation",
    )
    probe.set_defaults(handler=_command_probe)

    presets = commands.add_parser(
        "presets",
        help="list the named configurations with their values",
        description="Print every value of the named configurations (each defined once in "
        "factorcl_jax.config.PRESETS), one row per config key.",
    )
    presets.add_argument("names", nargs="*", metavar="NAME", help=f"of: {', '.join(PRESETS)}")
    presets.set_defaults(handler=_command_presets)

    estimate = commands.add_parser(
        "estimate",
        help="estimate I(X; Y) between two arrays",
        description="Train a critic on half of the paired rows of X and Y (early-stopped on "
        "the other half) and report the held-out MI estimate with its standard error, "
        "beside the in-sample value. Files: .npy, .csv (rows = samples; a header line is "
        "skipped), or one .npz with --x-key/--y-key. 1-D arrays are one feature.",
    )
    estimate.add_argument("x", help="X samples (.npy/.npz/.csv)")
    estimate.add_argument("y", nargs="?", help="Y samples (omit with an .npz and keys)")
    estimate.add_argument("--x-key", help="array name of X inside an .npz")
    estimate.add_argument("--y-key", help="array name of Y inside an .npz")
    estimate.add_argument(
        "--bound",
        default="infonce",
        help="infonce (default), nce_club, nwj, dv, mine, js, smile or club",
    )
    estimate.add_argument(
        "--critic",
        choices=["concat", "separable"],
        help="the pairwise critic (default concat; not with --bound club)",
    )
    estimate.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="+",
        help="critic hidden widths (default: one layer sized to the data)",
    )
    estimate.add_argument(
        "--steps", type=_positive_int, help="training-step budget (default: sized to the data)"
    )
    estimate.add_argument("--batch-size", type=_positive_int, help="default: sized to the data")
    estimate.add_argument("--learning-rate", type=float, help="Adam learning rate (3e-3)")
    estimate.add_argument(
        "--eval-every", type=_positive_int, help="steps between held-out evaluations (100)"
    )
    estimate.add_argument(
        "--patience", type=_positive_int, help="evaluations without progress before stopping (10)"
    )
    estimate.add_argument(
        "--heldout-fraction",
        type=float,
        help="share of the pairs held out for the estimate (default 0.5; not with --folds)",
    )
    estimate.add_argument(
        "--folds",
        type=int,
        help="k-fold estimation: k trainings, each fold held out once (not with "
        "--heldout-fraction)",
    )
    estimate.add_argument(
        "--ranks",
        action="store_true",
        help="replace each feature by its normal scores first (the MI is unchanged; tames "
        "heavy tails and bounded marginals)",
    )
    estimate.add_argument("--seed", type=int, default=0)
    estimate.add_argument("--plot", action="store_true", help="save the estimate's curve (PNG)")
    estimate.add_argument("--out", help="directory for results.json (and the plot)")
    estimate.set_defaults(handler=_command_estimate)

    bench = commands.add_parser(
        "bench",
        help="run the benchmarks (quick preset)",
        description="Run the scripts of benchmarks/ (in a source checkout) with their quick "
        "preset: mi (estimators on known-MI tasks), mi_speed (the estimator loop against a "
        "roofline), bounds, train_step, scaling, or all.",
    )
    bench.add_argument("name", nargs="?", default="all", choices=["all", *BENCHMARKS])
    bench.add_argument(
        "extra", nargs=argparse.REMAINDER, help="further arguments passed to the benchmark"
    )
    bench.add_argument("--full", action="store_true", help="the full preset, not --quick")
    bench.add_argument("--out", help="output directory (one subdirectory per benchmark)")
    bench.set_defaults(handler=_command_bench)

    convert = commands.add_parser(
        "convert-multibench",
        help="turn a trusted MultiBench pickle into an .npz",
        description="Unpickle a MultiBench file (affect data or MIMIC) once and write the "
        ".npz that factorcl_jax.data.multibench loads without running code. Unpickling runs "
        "any code the file holds: this needs --trust-pickle.",
    )
    convert.add_argument("source", metavar="IN.pkl", help="the pickle (.pkl, .pk, .pickle)")
    convert.add_argument("target", metavar="OUT.npz", help="the .npz to write (must not exist)")
    convert.add_argument(
        "--trust-pickle", action="store_true", help="I trust this file: unpickle it"
    )
    convert.set_defaults(handler=_command_convert)
    return parser


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    if not issubclass(category, UserWarning) or category is UserWarning:
        text = f"{category.__name__}: {text}"
    _warn(text)


def _one_line(error: BaseException, limit: int = 500) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or (
        type(error).__name__ in ("XlaRuntimeError", "JaxRuntimeError")
        and "RESOURCE_EXHAUSTED" in str(error)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    before_dashes = argv[: argv.index("--")] if "--" in argv else argv
    show_traceback = "--traceback" in before_dashes
    if show_traceback:
        argv.remove("--traceback")
    from factorcl_jax.runs.checkpoint import quiet_absl

    with warnings.catch_warnings(), _terminate_as_exception(), quiet_absl():
        from factorcl_jax.runs.rundir import RunWarning

        warnings.simplefilter("always", RunWarning)
        warnings.showwarning = _show_warning
        try:
            args = _parse(argv)
            return args.handler(args)
        except Exception as error:
            return _report_error(error, show_traceback)
        except KeyboardInterrupt:
            if show_traceback:
                raise
            print(f"{PROG}: stopped by SIGINT", file=sys.stderr)
            return 130


@contextlib.contextmanager
def _terminate_as_exception() -> Iterator[None]:
    """Outside training (which saves a checkpoint first), SIGTERM and SIGHUP stop the command
    like Ctrl-C does: through the error boundary, in one line, with status 143 / 129."""
    from factorcl_jax.runs.preemption import Interrupted

    def stop(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = (signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in stopping}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report_error(error: Exception, show_traceback: bool) -> int:
    """Prints ``error`` in one line and returns the exit status; re-raises for --traceback."""
    from factorcl_jax.config import ConfigError
    from factorcl_jax.runs.preemption import Interrupted

    if show_traceback:
        raise error
    if isinstance(error, Interrupted):
        print(f"{PROG}: {_one_line(error)}", file=sys.stderr)
        return error.exit_status
    if isinstance(error, BrokenPipeError):  # e.g. piped into `head`
        sys.stdout = open(os.devnull, "w")
        return 141
    if _is_out_of_memory(error):
        print(f"{PROG}: error: out of memory: {_one_line(error, 300)}", file=sys.stderr)
        return USAGE_ERROR
    if isinstance(
        error,
        (UsageError, ConfigError, ValueError, TypeError, OSError, ArithmeticError, RecursionError),
    ):
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    print(
        f"{PROG}: internal error: {type(error).__name__}: {_one_line(error, 300)} "
        "(rerun with --traceback for details)",
        file=sys.stderr,
    )
    return INTERNAL_ERROR


if __name__ == "__main__":
    sys.exit(main())
